//! Failures that may pass never cost an alert. A brownout — the target
//! failing most requests at random — is not taken for poison alerts;
//! without a dead-letter topic, an alert past `retry.max_attempts` or
//! found poison is parked (retried slowly, reported), never dropped.

use std::time::Duration;

use support::broker::unique;
use support::events::alert_event;
use support::http_get::{free_port, get, get_status};
use support::http_target::{Busy, Rule, Script, Target};
use support::kafka::{new_topic, wait_fully_committed};
use support::records::{Rec, produce_records};
use support::relay_cmd::RelayCmd;
use support::wait::wait_until;

fn alerts(n: usize, prefix: &str) -> Vec<Rec> {
    (0..n)
        .map(|i| Rec::event(&alert_event(i, &format!("{prefix}-{i}"), "critical")))
        .collect()
}

/// 85% of requests answered 503 at random for 15 s, no dead-letter topic,
/// a strict poison budget (4 failures): healthy alerts fail runs of 4 and
/// more while others get through, and every one of them still arrives —
/// none parked as poison, none dropped.
#[test]
fn a_brownout_is_not_taken_for_poison_alerts() {
    let topic = new_topic("brownout", 2);
    let group = unique("brownout-g");
    let target = Target::start(Script {
        busy: Some(Busy {
            for_: Duration::from_secs(15),
            status: 503,
            body: r#"{"error":"overloaded"}"#.into(),
            share: 0.85,
        }),
        ..Default::default()
    });
    let since = std::time::Instant::now();
    produce_records(&topic, &alerts(60, "brown"));
    let mut relay = RelayCmd::new(&topic, &group, &target.url())
        .config(
            "[retry]\ninitial_backoff = \"100ms\"\nmax_backoff = \"500ms\"\npoison_after = { attempts = 4, time = \"0s\" }\n",
        )
        .start();
    wait_fully_committed(&group, &topic, Duration::from_secs(60));
    assert_eq!(target.distinct(), 60, "{}", target.dump());
    support::table::row(
        "brownout: 85% of requests 503 at random for 15 s, poison after 4, no dead-letter topic",
        60,
        &target.delivered(),
        0,
        since,
    );
    assert!(
        target.requests().len() > 120,
        "the brownout failed many requests: {}",
        target.requests().len()
    );
    assert!(
        !relay.has_log("alert parked:") && !relay.has_log("poison alert"),
        "{}",
        relay.stderr()
    );
    relay.stop();
}

/// Without a dead-letter topic, `retry.max_attempts` does not drop an
/// alert whose failure may pass: it is parked and delivered once the
/// target is back.
#[test]
fn without_a_dead_letter_topic_max_attempts_parks_instead_of_dropping() {
    let topic = new_topic("park", 1);
    let group = unique("park-g");
    let target = Target::start(Script {
        fail_first: 12,
        ..Default::default()
    });
    produce_records(&topic, &alerts(3, "park"));
    let mut relay = RelayCmd::new(&topic, &group, &target.url())
        .config("[retry]\nmax_attempts = 2\ninitial_backoff = \"50ms\"\nmax_backoff = \"300ms\"\n")
        .start();
    wait_fully_committed(&group, &topic, Duration::from_secs(30));
    assert_eq!(target.distinct(), 3, "{}", target.dump());
    assert!(
        relay.has_log("alert parked: retry.max_attempts (2) reached"),
        "{}",
        relay.stderr()
    );
    assert!(!relay.has_log("event dropped"), "{}", relay.stderr());
    relay.stop();
}

/// A poison alert (always 500 while the others get through) without a
/// dead-letter topic: parked, the others flow, `/readyz` and the metrics
/// say so, and it is delivered once the target takes it.
#[test]
fn a_poison_alert_without_a_dead_letter_topic_is_parked_and_reported() {
    let topic = new_topic("parkpoison", 1);
    let group = unique("parkpoison-g");
    let target = Target::start(Script {
        rules: vec![Rule::new("host-0", 500, "boom")],
        ..Default::default()
    });
    produce_records(&topic, &alerts(20, "pp"));
    let port = free_port();
    let mut relay = RelayCmd::new(&topic, &group, &target.url())
        .config(
            "[retry]\ninitial_backoff = \"50ms\"\nmax_backoff = \"300ms\"\npoison_after = { attempts = 3, time = \"0s\" }\n",
        )
        .start_with(&["--metrics-addr", &format!("127.0.0.1:{port}")]);
    assert!(
        wait_until(Duration::from_secs(30), || target.distinct() == 19
            && relay.has_log("alert parked: a poison alert")),
        "the others flow past the parked one\n{}\n{}",
        target.dump(),
        relay.stderr()
    );
    let parked = |text: &str| text.contains("1 alert(s) parked");
    assert!(
        wait_until(Duration::from_secs(10), || get(port, "/readyz")
            .is_some_and(|t| parked(&t))),
        "{:?}",
        get(port, "/readyz")
    );
    assert_eq!(
        get_status(port, "/readyz"),
        Some(200),
        "parked alone: ready"
    );
    assert!(
        get(port, "/metrics").is_some_and(|m| m.contains("kbridge_parked_alerts 1")),
        "{:?}",
        get(port, "/metrics")
    );
    target.rescript(|s| s.rules.clear());
    wait_fully_committed(&group, &topic, Duration::from_secs(30));
    assert_eq!(target.distinct(), 20, "{}", target.dump());
    assert!(
        wait_until(Duration::from_secs(10), || get(port, "/metrics")
            .is_some_and(|m| m.contains("kbridge_parked_alerts 0"))),
        "{:?}",
        get(port, "/metrics")
    );
    relay.stop();
}
