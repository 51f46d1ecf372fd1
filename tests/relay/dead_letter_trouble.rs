//! A dead letter that cannot be written as it is: too large for its topic
//! (made smaller step by step, each step said in a header, never an
//! endless loop), or a dead-letter topic that is gone (said at error level
//! and in `/readyz`; the partition waits, nothing is lost).

use std::time::Duration;

use support::broker::unique;
use support::events::alert_event;
use support::http_get::{free_port, get, get_status};
use support::http_target::{Script, Target};
use support::kafka::{create_topic, new_topic, new_topic_with, wait_fully_committed};
use support::kbridge::run;
use support::records::{Rec, produce_records, read_all};
use support::relay_cmd::RelayCmd;
use support::wait::wait_until;

/// A bad record whose value, headers and key are each too large for a
/// dead-letter topic of 4 KiB: its dead letter leaves all three out, says
/// so, and keeps its reason and coordinates.
#[test]
fn a_dead_letter_too_large_for_its_topic_is_trimmed_step_by_step() {
    let topic = new_topic("dltrim", 1);
    let dlq = new_topic_with("dltrim-dlq", 1, &["max.message.bytes=4096"]);
    let group = unique("dltrim-g");
    let target = Target::start(Script::default());
    let mut bad = Rec::keyed(&"k".repeat(5000), b"not json ".repeat(500));
    bad.headers.push(("trace".into(), vec![b'h'; 5000]));
    // A re-drive's count survives the trimming (`dlq redrive` refuses by it).
    bad.headers
        .push(("kbridge.redrive.count".into(), b"2".to_vec()));
    produce_records(
        &topic,
        &[bad, Rec::event(&alert_event(1, "after", "critical"))],
    );
    let mut relay = RelayCmd::new(&topic, &group, &target.url())
        .dead_letters(&dlq)
        .start();
    let letters = read_all(&dlq, 1, Duration::from_secs(30));
    wait_fully_committed(&group, &topic, Duration::from_secs(30));
    assert_eq!(letters.len(), 1);
    let l = &letters[0];
    assert_eq!(l.value, None);
    assert_eq!(l.key, None);
    assert_eq!(l.header("kbridge.value_size").as_deref(), Some("4500"));
    assert_eq!(l.header("kbridge.headers_omitted").as_deref(), Some("2"));
    assert_eq!(l.header("kbridge.redrive.count").as_deref(), Some("2"));
    assert_eq!(l.header("kbridge.key_size").as_deref(), Some("5000"));
    assert_eq!(l.header("trace"), None);
    assert!(
        l.header("kbridge.error")
            .is_some_and(|e| e.contains("invalid JSON"))
    );
    assert_eq!(target.distinct(), 1);
    relay.stop();
}

/// The dead-letter topic deleted under a running relay: the failure is
/// logged at error level and `/readyz` says so; once the topic is back the
/// dead letter is written and the relay is ready again.
#[test]
fn a_dead_letter_topic_that_fails_makes_the_relay_not_ready_and_loses_nothing() {
    let topic = new_topic("dlgone", 1);
    let dlq = new_topic("dlgone-dlq", 1);
    let group = unique("dlgone-g");
    let target = Target::start(Script::default());
    let port = free_port();
    let mut relay = RelayCmd::new(&topic, &group, &target.url())
        .dead_letters(&dlq)
        .property("message.timeout.ms=2000")
        .start_with(&["--metrics-addr", &format!("127.0.0.1:{port}")]);
    relay.wait_assigned();
    assert!(wait_until(Duration::from_secs(10), || get_status(
        port, "/readyz"
    ) == Some(200)));
    let out = run(&["topics", "delete", &dlq], "");
    assert!(out.status.success(), "{out:?}");
    produce_records(&topic, &[Rec::value(b"not json".to_vec())]);
    assert!(
        wait_until(Duration::from_secs(30), || get(port, "/readyz")
            .is_some_and(|t| t.contains("dead letters cannot be written"))),
        "{:?}\n{}",
        get(port, "/readyz"),
        relay.stderr()
    );
    assert_eq!(get_status(port, "/readyz"), Some(503));
    assert!(
        relay.has_log("cannot write the dead letter"),
        "{}",
        relay.stderr()
    );
    let down_for = std::time::Instant::now();
    create_topic(&dlq, 1);
    let letters = read_all(&dlq, 1, Duration::from_secs(60));
    assert_eq!(letters.len(), 1);
    println!(
        "| dead-letter topic deleted under the relay, then created again | 1 | 0 | 0 | 1 | written {:.1} s after the topic came back |",
        down_for.elapsed().as_secs_f64()
    );
    wait_fully_committed(&group, &topic, Duration::from_secs(30));
    assert!(wait_until(Duration::from_secs(10), || get_status(
        port, "/readyz"
    ) == Some(200)));
    relay.stop();
}
