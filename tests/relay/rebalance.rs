//! A second instance in the group: partitions move while deliveries are in
//! flight, and nothing is lost.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use support::broker::unique;
use support::events::{alert_event, event};
use support::http_target::{Script, Target};
use support::kafka::{new_topic, wait_fully_committed};
use support::records::{Rec, produce_records};
use support::relay_cmd::{RelayCmd, event_keys};
use support::wait::wait_until;

const EVENTS: usize = 40;

/// Runs instance A (through `wrapper`), lets it deliver a few of 40 events
/// (one request at a time, 100 ms each), starts instance B in the same
/// group, and waits until every event is handled. Returns the 2xx answers
/// per key and A's stderr.
fn takeover(name: &str, wrapper: &[&str]) -> (BTreeMap<String, usize>, String) {
    let topic = new_topic(name, 4);
    let group = unique(&format!("{name}-g"));
    let target = Target::start(Script {
        delay: Duration::from_millis(100),
        serial: true,
        ..Default::default()
    });
    let events: Vec<_> = (0..EVENTS).map(event).collect();
    let recs: Vec<Rec> = events.iter().map(Rec::event).collect();
    let keys = event_keys(&topic, &produce_records(&topic, &recs));
    let cmd = RelayCmd::new(&topic, &group, &target.url());
    let mut a = cmd.clone().wrapped(wrapper).start();
    a.wait_assigned();
    target.wait_delivered(5, Duration::from_secs(15));
    let mut b = cmd.start();
    let delivered_when_b_started = target.delivered().len();
    b.wait_assigned();
    // Cooperative: A gives B its share and keeps the rest.
    a.wait_for_log("partitions revoked", Duration::from_secs(20));
    let revoked_line = a
        .stderr()
        .lines()
        .find(|l| l.contains("partitions revoked"))
        .map(str::to_string)
        .unwrap_or_default();
    assert_eq!(
        revoked_line.matches(topic.as_str()).count(),
        2,
        "only the partitions that move are revoked: {revoked_line}"
    );
    wait_fully_committed(&group, &topic, Duration::from_secs(25));
    target.assert_none_missing(&keys, "lost in the rebalance");
    let counts = target.delivered_counts();
    assert!(
        delivered_when_b_started + 10 < EVENTS,
        "B joined too late to move partitions mid-flight ({delivered_when_b_started} delivered)"
    );
    assert!(a.has_log("partitions revoked"), "{}", a.stderr());
    (counts, a.stderr())
}

#[test]
fn a_second_instance_takes_over_partitions_without_losing_events() {
    let (counts, a_stderr) = takeover("takeover", &[]);
    assert!(
        !a_stderr.contains("deliveries still running"),
        "the revoke should have waited for A's deliveries:\n{a_stderr}"
    );
    assert!(counts.values().all(|n| *n <= 2), "{counts:?}");
}

/// The same with instance A on one CPU (tokio then runs a single worker
/// thread): the revoke callback waits for the revoked partitions'
/// deliveries, which must still be able to finish meanwhile.
#[test]
fn a_rebalance_on_one_cpu_lets_in_flight_deliveries_finish() {
    let (_, a_stderr) = takeover("takeover1cpu", &["taskset", "-c", "0"]);
    assert!(
        !a_stderr.contains("deliveries still running"),
        "the revoke should have waited for A's deliveries:\n{a_stderr}"
    );
}

/// Guards against a fixed bug (a race, so it tries three times): when the
/// last in-flight delivery of a revoked partition finishes during the
/// revoke wait, the revoke commits the new point (say 10) before that
/// delivery task has stored it; librdkafka then commits the partition's
/// older stored offset (say 7) when it unassigns it (auto-commit on
/// unassign), so the committed offset goes back and the new owner
/// delivers 7, 8 and 9 again.
#[test]
fn a_rebalance_after_a_drained_revoke_repeats_nothing() {
    for round in 0..3 {
        let (counts, _) = takeover(&format!("repeat{round}"), &["taskset", "-c", "0"]);
        let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            repeated.is_empty(),
            "round {round}: repeated after a drained revoke: {repeated:?}"
        );
    }
}

/// A crashed instance's partitions move to the survivor within the session
/// timeout — 10 s by default (librdkafka's own 45 s held a crashed
/// instance's alerts that long): alerts produced right after a SIGKILL, one
/// per partition, all arrive within 15 s.
#[test]
fn a_crashed_instance_s_alerts_arrive_within_seconds() {
    let topic = new_topic("crash", 2);
    let group = unique("crash-g");
    let target = Target::start(Script::default());
    let cmd = RelayCmd::new(&topic, &group, &target.url());
    let mut a = cmd.clone().start();
    a.wait_assigned();
    let mut b = cmd.start();
    b.wait_assigned();
    // The rebalance that B's join started is over when A gave B its
    // share.
    a.wait_for_log("partitions revoked", Duration::from_secs(20));
    a.signal("KILL");
    a.expect_exit(Duration::from_secs(5));
    let killed = Instant::now();
    let recs: Vec<Rec> = (0..2)
        .map(|p| Rec {
            partition: Some(p),
            ..Rec::event(&alert_event(
                p as usize,
                &format!("fault-crash-{p}"),
                "critical",
            ))
        })
        .collect();
    produce_records(&topic, &recs);
    assert!(
        wait_until(Duration::from_secs(60), || target.distinct() >= 2),
        "{}\n{}",
        target.dump(),
        b.stderr()
    );
    let delay = killed.elapsed();
    eprintln!("alerts of the crashed instance arrived {delay:?} after the SIGKILL");
    assert!(
        delay <= Duration::from_secs(15),
        "the crashed instance's alert waited {delay:?}"
    );
    b.stop();
}

/// With `webhook.timeout` above 10 s, a trigger still on the wire when its
/// partition moves must not be applied by the target after the next
/// owner's recovery: the revoke waits the webhook's timeout (it used to
/// drop the request after a fixed 10 s, and the target, which had it
/// already, applied it at 12 s — after the new owner's recovery, leaving
/// the alert open).
#[test]
fn a_slow_trigger_on_the_wire_at_a_hand_over_lands_before_the_recovery() {
    let topic = new_topic("slowhand", 2);
    let group = unique("slowhand-g");
    let slow = |host: &str| {
        support::http_target::Rule::new(host, 200, r#"{"code":0}"#)
            .times(1)
            .delay(Duration::from_secs(12))
    };
    let target = Target::start(Script {
        rules: vec![slow("host-slow-0"), slow("host-slow-1")],
        ..Default::default()
    });
    let alert = |p: i32, status: &str| {
        let mut e = alert_event(p as usize, &format!("slow-{p}"), status);
        e["df_dimension_tags"] = serde_json::json!(format!("{{\"host\":\"host-slow-{p}\"}}"));
        Rec {
            partition: Some(p),
            ..Rec::event(&e)
        }
    };
    produce_records(&topic, &[alert(0, "critical"), alert(1, "critical")]);
    let cmd = RelayCmd::new(&topic, &group, &target.url()).config("[webhook]\ntimeout = \"15s\"\n");
    let mut a = cmd.start();
    a.wait_assigned();
    assert!(wait_until(Duration::from_secs(15), || target
        .requests()
        .len()
        == 2));
    produce_records(&topic, &[alert(0, "ok"), alert(1, "ok")]);
    // Whichever partition moves, its trigger is on the wire.
    let mut b = cmd.start();
    // The revoke waits for A's trigger (12 s) before B gets the partition.
    b.wait_for_log("partitions assigned", Duration::from_secs(45));
    wait_fully_committed(&group, &topic, Duration::from_secs(60));
    assert!(wait_until(Duration::from_secs(20), || {
        target.requests().iter().all(|r| r.applied_at.is_some())
    }));
    for p in 0..2 {
        let id = format!("slow-{p}");
        let last = target
            .requests()
            .into_iter()
            .filter(|r| r.alert_id() == id)
            .max_by_key(|r| r.applied_at)
            .expect("requests for the alert");
        assert_eq!(
            last.body["isRecover"],
            true,
            "{id}: the target's last word is the trigger:\n{}",
            target.dump()
        );
    }
    a.stop();
    b.stop();
}
