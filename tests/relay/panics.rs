//! A panic while handling an event is contained: the event is
//! dead-lettered with the panic's message (or parked, without a
//! dead-letter topic), and its partition and alert id move on. The panic
//! is injected (`KBRIDGE_FAULT_PANIC_ON`): no dependency panics on a record
//! today that a test could count on.

use std::time::Duration;

use support::broker::unique;
use support::events::alert_event;
use support::http_target::{Script, Target};
use support::kafka::{committed, new_topic, wait_fully_committed};
use support::records::{Rec, produce_records, read_all};
use support::relay_cmd::RelayCmd;
use support::wait::wait_until;

/// Three events of one alert, the second of which makes kbridge panic.
fn records() -> Vec<Rec> {
    let mut poison = alert_event(1, "fault-p", "critical");
    poison["df_message"] = serde_json::json!("PANIC-ME");
    vec![
        Rec::event(&alert_event(0, "fault-p", "critical")),
        Rec::event(&poison),
        Rec::event(&alert_event(2, "fault-p", "ok")),
        Rec::event(&alert_event(3, "fault-q", "critical")),
    ]
}

#[test]
fn a_panic_is_dead_lettered_and_its_alert_moves_on() {
    let topic = new_topic("panic", 1);
    let dlq = new_topic("panic-dlq", 1);
    let group = unique("panic-g");
    let target = Target::start(Script::default());
    let since = std::time::Instant::now();
    produce_records(&topic, &records());
    let mut relay = RelayCmd::new(&topic, &group, &target.url())
        .dead_letters(&dlq)
        .env("KBRIDGE_FAULT_PANIC_ON", "PANIC-ME")
        .start();
    let dead = read_all(&dlq, 1, Duration::from_secs(30));
    wait_fully_committed(&group, &topic, Duration::from_secs(30));
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].header("kbridge.offset").as_deref(), Some("1"));
    let error = dead[0].header("kbridge.error").unwrap_or_default();
    assert!(
        error.contains("panicked: fault injected by KBRIDGE_FAULT_PANIC_ON"),
        "{error}"
    );
    target.wait_delivered(3, Duration::from_secs(10));
    let subjects: Vec<String> = target
        .delivered()
        .iter()
        .map(|r| r.body["subject"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(subjects.len(), 3, "{}", target.dump());
    support::table::row(
        "a panic while handling one event (injected), dead-letter topic",
        4,
        &target.delivered(),
        1,
        since,
    );
    assert!(relay.wait_exit(Duration::ZERO).is_none(), "still running");
    relay.stop();
}

#[test]
fn without_a_dead_letter_topic_a_panic_is_parked_and_the_others_flow() {
    let topic = new_topic("panicpark", 1);
    let group = unique("panicpark-g");
    let target = Target::start(Script::default());
    produce_records(&topic, &records());
    let mut relay = RelayCmd::new(&topic, &group, &target.url())
        .env("KBRIDGE_FAULT_PANIC_ON", "PANIC-ME")
        .config("drain_timeout = \"1s\"\n[retry]\nmax_backoff = \"200ms\"\n")
        .start();
    // The other alert flows; the panicking event is tried again and
    // again, holding its partition's commit point and its alert's queue.
    assert!(
        wait_until(Duration::from_secs(30), || {
            target
                .delivered_alert_ids()
                .contains(&"fault-q".to_string())
                && relay.count_logs("panicked: fault injected") >= 3
        }),
        "{}\n{}",
        target.dump(),
        relay.stderr()
    );
    assert_eq!(
        target.delivered_alert_ids(),
        ["fault-p", "fault-q"],
        "the recovery waits behind the parked trigger:\n{}",
        target.dump()
    );
    assert!(committed(&group, &topic).get(&0).copied().unwrap_or(0) <= 1);
    relay.stop();
}
