//! `webhook.success` and `webhook.reject`: the target's own rules on its
//! answers. A 200 whose body the success rule refuses, and a 500 the
//! reject rule recognises, are this alert's fault: dead-lettered with the
//! rule named, never retried; a 500 it does not recognise is still an
//! outage, retried until delivered.

use std::time::Duration;

use support::broker::unique;
use support::events::event;
use support::http_target::{Rule, Script, Target};
use support::kafka::{new_topic, wait_fully_committed};
use support::records::{Rec, produce_records, read_all};
use support::relay_cmd::RelayCmd;
use support::wait::wait_until;

#[test]
fn answer_rules_tell_the_alert_s_fault_from_an_outage() {
    let topic = new_topic("rules", 1);
    let dlq = new_topic("rules-dlq", 1);
    let group = unique("rules-g");
    let target = Target::start(Script {
        rules: vec![
            Rule::new(
                "host-1",
                200,
                r#"{"errcode":310000,"errmsg":"keywords not in content"}"#,
            ),
            Rule::new("host-2", 500, r#"{"error":"bad alert: no such host"}"#),
            Rule::new("host-3", 500, r#"{"error":"busy"}"#).times(2),
        ],
        ..Default::default()
    });
    let recs: Vec<Rec> = (0..4).map(|i| Rec::event(&event(i))).collect();
    produce_records(&topic, &recs);
    let mut relay = RelayCmd::new(&topic, &group, &target.url())
        .dead_letters(&dlq)
        .config(
            "[webhook]\nsuccess = '(.errcode // 0) == 0'\nreject = '(.error // \"\") | test(\"bad alert\")'\n",
        )
        .start();
    let dead = read_all(&dlq, 2, Duration::from_secs(30));
    wait_fully_committed(&group, &topic, Duration::from_secs(30));
    let mut reasons: Vec<String> = dead
        .iter()
        .map(|d| d.header("kbridge.error").unwrap_or_default())
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons[0].contains("HTTP 200, but the webhook.success rule does not hold"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].contains("HTTP 500, the webhook.reject rule holds"),
        "{reasons:?}"
    );
    // Refused alerts were tried once; the busy one until it went through.
    let tries = |host: &str| {
        target
            .requests()
            .iter()
            .filter(|r| r.body["alertDims"]["host"] == host)
            .count()
    };
    assert_eq!(
        (tries("host-1"), tries("host-2")),
        (1, 1),
        "{}",
        target.dump()
    );
    assert!(wait_until(Duration::from_secs(10), || tries("host-3") == 3));
    assert_eq!(
        target.distinct(),
        3,
        "host-0 and host-3 delivered, plus host-1's 200\n{}",
        target.dump()
    );
    relay.stop();
}
