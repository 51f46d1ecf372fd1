//! `[audit] topic` under trouble: the audit topic deleted under a running
//! relay holds its commits (the journeys are written before the offsets
//! move) and makes it not ready, saying why; alerts still go out; once the
//! topic is back every journey is written and the commits catch up.

use std::time::Duration;

use serde_json::Value;
use support::broker::unique;
use support::events::alert_event;
use support::http_get::{free_port, get, get_status};
use support::http_target::{Script, Target};
use support::kafka::{committed, create_topic, new_topic, wait_fully_committed};
use support::kbridge::run;
use support::output::OutputExt;
use support::records::{Rec, produce_records};
use support::relay_cmd::RelayCmd;
use support::wait::wait_until;

#[test]
fn an_audit_topic_that_fails_holds_the_commits_and_loses_no_journey() {
    let topic = new_topic("auditgone", 1);
    let audit = new_topic("auditgone-audit", 1);
    let group = unique("auditgone-g");
    let target = Target::start(Script::default());
    let port = free_port();
    let mut relay = RelayCmd::new(&topic, &group, &target.url())
        .config(&format!("[audit]\ntopic = \"{audit}\"\n"))
        .property("message.timeout.ms=2000")
        .start_with(&["--metrics-addr", &format!("127.0.0.1:{port}")]);
    relay.wait_assigned();
    assert!(wait_until(Duration::from_secs(10), || get_status(
        port, "/readyz"
    ) == Some(200)));
    let out = run(&["topics", "delete", &audit], "");
    assert!(out.status.success(), "{out:?}");
    let alerts = ["gone-1", "gone-2", "gone-3"];
    produce_records(
        &topic,
        &alerts
            .iter()
            .enumerate()
            .map(|(i, a)| Rec::event(&alert_event(i, a, "critical")))
            .collect::<Vec<_>>(),
    );
    // The alerts go out; their offsets wait for their journeys.
    target.wait_delivered(3, Duration::from_secs(30));
    assert!(
        wait_until(Duration::from_secs(30), || get(port, "/readyz")
            .is_some_and(|t| t.contains("audit records cannot be written"))),
        "{:?}\n{}",
        get(port, "/readyz"),
        relay.stderr()
    );
    assert!(
        committed(&group, &topic).get(&0).copied().unwrap_or(0) < 3,
        "committed before the audit records were written: {:?}",
        committed(&group, &topic)
    );
    create_topic(&audit, 1);
    wait_fully_committed(&group, &topic, Duration::from_secs(60));
    assert!(wait_until(Duration::from_secs(10), || get_status(
        port, "/readyz"
    ) == Some(200)));
    for alert in alerts {
        let out = run(&["trace", alert, "--audit-topic", &audit, "--json"], "");
        assert!(out.status.success(), "{alert}: {}", out.stderr_str());
        let trace: Value = serde_json::from_str(&out.stdout_str()).unwrap();
        assert_eq!(trace["outcomes"][0]["outcome"], "delivered", "{trace:#}");
    }
    assert_eq!(target.delivered().len(), 3, "sent once each");
    relay.stop();
}
