//! `kbridge trace ALERT_ID` against a real relay with `[audit] topic`: the
//! journey of a delivered alert (a trigger, then its recovery), of a
//! dead-lettered one and of a skipped one — each route's outcome, its
//! source record, its dead letter — and, without an audit topic, the
//! records keyed by the alert id.

use std::time::Duration;

use serde_json::Value;
use support::broker::unique;
use support::events::alert_event;
use support::http_target::{Script, Target};
use support::kafka::{new_topic, wait_fully_committed};
use support::kbridge::run;
use support::output::OutputExt;
use support::records::{Rec, produce_records};
use support::relay_cmd::RelayCmd;

fn trace(args: &[&str]) -> Value {
    let mut all = vec!["trace"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = run(&all, "");
    assert!(out.status.success(), "{}", out.stderr_str());
    serde_json::from_str(&out.stdout_str()).unwrap()
}

#[test]
fn trace_tells_the_journey_of_a_delivered_a_dead_lettered_and_a_skipped_alert() {
    let topic = new_topic("trace", 2);
    let dlq = new_topic("trace-dlq", 1);
    let audit = unique("trace-audit");
    let group = unique("trace-g");
    let target = Target::start(Script::default());
    let mut untitled = alert_event(2, "t-bad", "critical");
    untitled.as_object_mut().unwrap().remove("df_title");
    let mut logging = alert_event(3, "t-skip", "critical");
    logging["df_source"] = "logging".into();
    produce_records(
        &topic,
        &[
            Rec::event(&alert_event(1, "t-ok", "critical")),
            Rec::event(&untitled),
            Rec::event(&logging),
            Rec::event(&alert_event(4, "t-ok", "ok")),
        ],
    );
    let mut relay = RelayCmd::new(&topic, &group, &target.url())
        .dead_letters(&dlq)
        .config(&format!("[audit]\ntopic = \"{audit}\"\npartitions = 3\n"))
        .start();
    relay.wait_assigned();
    wait_fully_committed(&group, &topic, Duration::from_secs(30));
    assert_eq!(target.delivered().len(), 2);

    // Committed only once their audit records were: all there now.
    let ok = trace(&["t-ok", "--audit-topic", &audit]);
    let steps = ok["outcomes"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{ok:#}");
    for (step, status) in steps.iter().zip(["critical", "ok"]) {
        assert_eq!(step["outcome"], "delivered");
        assert_eq!(step["route"], "default");
        assert_eq!(step["status"], 200);
        assert_eq!(step["attempts"], 1);
        assert!(step["latency_ms"].as_i64().is_some());
        assert_eq!(step["event"]["value"]["df_status"], status);
        assert_eq!(step["event"]["topic"], topic.as_str());
    }

    let bad = trace(&["t-bad", "--audit-topic", &audit]);
    let step = &bad["outcomes"][0];
    assert_eq!(step["outcome"], "dead_lettered");
    assert_eq!(step["stage"], "validate");
    assert_eq!(step["reason"], "df_title: missing");
    assert_eq!(step["dead_letter"]["topic"], dlq.as_str());
    assert_eq!(
        step["dead_letter_record"]["letter"]["reason"],
        "df_title: missing"
    );
    assert_eq!(step["event"]["value"]["df_fault_id"], "t-bad");

    let skip = trace(&["t-skip", "--audit-topic", &audit]);
    let step = &skip["outcomes"][0];
    assert_eq!(step["outcome"], "skipped");
    assert!(
        step["reason"]
            .as_str()
            .unwrap()
            .contains("df_source is 'logging'"),
        "{step}"
    );

    // For a person.
    let text = run(&["trace", "t-bad", "--audit-topic", &audit], "").stdout_str();
    assert!(text.contains("alert t-bad: 1 outcome"), "{text}");
    assert!(
        text.contains("default  dead_lettered  (at validate"),
        "{text}"
    );
    assert!(
        text.contains(&format!("dead letter {dlq}/0@0: df_title: missing")),
        "{text}"
    );

    // Without an audit topic: the records keyed by the alert id.
    let by_key = trace(&["t-ok", "--topic", &topic]);
    assert_eq!(by_key["records"].as_array().unwrap().len(), 2, "{by_key:#}");

    // An alert it never saw.
    let none = run(&["trace", "t-never", "--audit-topic", &audit], "");
    assert_eq!(none.status.code(), Some(1));
    assert!(
        none.stderr_str()
            .contains("no audit record of alert 't-never'"),
        "{}",
        none.stderr_str()
    );
    relay.stop();
}
