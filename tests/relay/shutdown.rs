//! Stopping mid-flight: SIGTERM drains and commits (no duplicates after a
//! restart), SIGKILL loses nothing (bounded duplicates after a restart).

use std::time::{Duration, Instant};

use support::broker::unique;
use support::events::{alert_event, event};
use support::http_target::{Reserved, Script, Target};
use support::kafka::{committed, describe_group, new_topic};
use support::records::{Rec, produce_records};
use support::relay_cmd::{RelayCmd, event_keys};
use support::wait::wait_until;

const EVENTS: usize = 50;

/// 50 events on 10 alerts (5 each) across 3 partitions, and a target that
/// answers one request at a time, 100 ms each: about 5 s of deliveries.
fn setup(name: &str) -> (String, String, Target, Vec<String>, RelayCmd) {
    let topic = new_topic(name, 3);
    let group = unique(&format!("{name}-g"));
    let target = Target::start(Script {
        delay: Duration::from_millis(100),
        serial: true,
        ..Default::default()
    });
    let events: Vec<_> = (0..EVENTS)
        .map(|i| alert_event(i, &format!("fault-{}", i % 10), "critical"))
        .collect();
    let recs: Vec<Rec> = events.iter().map(Rec::event).collect();
    let keys = event_keys(&topic, &produce_records(&topic, &recs));
    // A short session, so that after a SIGKILL the restarted relay gets
    // the partitions without waiting out librdkafka's 45 s default.
    let cmd = RelayCmd::new(&topic, &group, &target.url()).property("session.timeout.ms=6000");
    (topic, group, target, keys, cmd)
}

#[test]
fn sigterm_mid_flight_drains_commits_and_a_restart_repeats_nothing() {
    let (_, _, target, keys, cmd) = setup("term");
    // At most 8 events in processing: at the signal some are in flight and
    // the rest were never taken, so the restart has work left to do.
    let cmd = cmd.config("max_pending = 8\n");
    let mut relay = cmd.start();
    relay.wait_assigned();
    target.wait_delivered(10, Duration::from_secs(20));
    let signalled = Instant::now();
    relay.signal("TERM");
    let status = relay.expect_exit(Duration::from_secs(25));
    let took = signalled.elapsed();
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM exits 0; stderr:\n{}",
        relay.stderr()
    );
    assert!(
        took < Duration::from_secs(20),
        "drained in {took:?}, over the 20 s drain timeout"
    );
    assert!(
        relay.has_log("offsets committed; leaving the group"),
        "{}",
        relay.stderr()
    );
    let first_run = target.requests();
    assert!(
        first_run.iter().all(|r| r.completed),
        "every request of the first run was answered before it exited:\n{}",
        target.dump()
    );
    assert!(
        first_run.len() < EVENTS && relay.has_log("waiting for in-flight deliveries"),
        "the signal came mid-flight, with events left for the restart:\n{}",
        relay.stderr()
    );

    eprintln!(
        "SIGTERM after {} deliveries; the first run answered {} of {EVENTS} in {took:?}",
        target.delivered().len(),
        first_run.len()
    );
    let mut again = cmd.start_until_committed(Duration::from_secs(20));
    again.signal("TERM");
    assert_eq!(
        again.expect_exit(Duration::from_secs(20)).code(),
        Some(0),
        "{}",
        again.stderr()
    );

    target.assert_none_missing(&keys, "after a SIGTERM and a restart");
    let counts = target.delivered_counts();
    let repeated: Vec<(&String, &usize)> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.is_empty(),
        "delivered twice after a clean SIGTERM: {repeated:?}\n{}",
        target.dump()
    );
    assert_eq!(target.requests().len(), EVENTS, "{}", target.dump());
}

#[test]
fn sigkill_mid_flight_then_restart_loses_nothing() {
    let (_, _, target, keys, cmd) = setup("kill");
    let mut relay = cmd.start();
    relay.wait_assigned();
    target.wait_delivered(10, Duration::from_secs(20));
    relay.signal("KILL");
    relay.expect_exit(Duration::from_secs(5));
    let before = target.delivered().len();

    let _again = cmd.start_until_committed(Duration::from_secs(25));
    target.assert_none_missing(&keys, "lost after SIGKILL");
    let counts = target.delivered_counts();
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    assert!(
        duplicates < EVENTS,
        "{duplicates} duplicates after SIGKILL ({before} delivered before it)"
    );
    // A repeat is the same request: same key, same body.
    let reqs = target.requests();
    for k in counts.iter().filter(|(_, n)| **n > 1).map(|(k, _)| k) {
        let bodies: Vec<_> = reqs
            .iter()
            .filter(|r| r.key() == k)
            .map(|r| &r.raw)
            .collect();
        assert!(
            bodies.windows(2).all(|w| w[0] == w[1]),
            "{k}: repeats differ"
        );
    }
    eprintln!(
        "SIGKILL: {before} delivered before the kill, {duplicates} duplicates after the restart"
    );
    assert!(
        counts.keys().all(|k| keys.contains(k)),
        "unexpected keys: {:?}",
        counts
            .keys()
            .filter(|k| !keys.contains(k))
            .collect::<Vec<_>>()
    );
}

#[test]
fn sigterm_with_a_short_drain_timeout_exits_in_time_and_loses_nothing() {
    let topic = new_topic("drain", 1);
    let group = unique("drain-g");
    // One request at a time, 300 ms each: 15 events need 4.5 s.
    let target = Target::start(Script {
        delay: Duration::from_millis(300),
        serial: true,
        ..Default::default()
    });
    let events: Vec<_> = (0..15).map(event).collect();
    let recs: Vec<Rec> = events.iter().map(Rec::event).collect();
    let keys = event_keys(&topic, &produce_records(&topic, &recs));
    let cmd = RelayCmd::new(&topic, &group, &target.url()).config("drain_timeout = \"1s\"\n");
    let mut relay = cmd.start();
    relay.wait_assigned();
    target.wait_delivered(2, Duration::from_secs(15));
    let signalled = Instant::now();
    relay.signal("TERM");
    let status = relay.expect_exit(Duration::from_secs(15));
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "{}", relay.stderr());
    // 1 s drain, 2 s for aborted retries, the commit and leaving the group.
    assert!(
        took < Duration::from_secs(8),
        "exit took {took:?} with drain_timeout 1s"
    );
    assert!(relay.has_log("drain timeout"), "{}", relay.stderr());

    let _again = cmd.start_until_committed(Duration::from_secs(25));
    target.assert_none_missing(&keys, "lost after a drain timeout");
}

/// While draining (the target is down, so the delivery keeps retrying), a
/// second signal exits at once with status 130, committing nothing that
/// was not delivered; the event is delivered after a restart.
#[test]
fn a_second_signal_exits_at_once_and_the_event_is_not_lost() {
    let topic = new_topic("twice", 1);
    let group = unique("twice-g");
    let port = Reserved::bind();
    let url = port.url();
    let coords = produce_records(
        &topic,
        &[Rec::event(&alert_event(1, "fault-1", "critical"))],
    );
    // The forced exit does not leave the group: a short session lets the
    // restart in without waiting out librdkafka's 45 s default.
    let cmd = RelayCmd::new(&topic, &group, &url).property("session.timeout.ms=6000");
    let mut relay = cmd.start();
    relay.wait_assigned();
    relay.wait_for_log(
        "webhook delivery failed, will retry",
        Duration::from_secs(15),
    );
    relay.signal("TERM");
    relay.wait_for_log("waiting for in-flight deliveries", Duration::from_secs(5));
    assert!(
        relay.wait_exit(Duration::from_millis(500)).is_none(),
        "still draining"
    );
    let signalled = Instant::now();
    relay.signal("TERM");
    let status = relay.expect_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(130), "{}", relay.stderr());
    assert!(
        signalled.elapsed() < Duration::from_secs(3),
        "took {:?}",
        signalled.elapsed()
    );
    assert!(
        committed(&group, &topic).values().all(|o| *o == 0),
        "the undelivered event must not be committed: {:?}",
        committed(&group, &topic)
    );

    let target = Target::start_on(port, Script::default());
    let _again = cmd.start_until_committed(Duration::from_secs(20));
    let key = event_keys(&topic, &coords).remove(0);
    assert_eq!(
        target.delivered().iter().filter(|r| r.key() == key).count(),
        1,
        "{}",
        target.dump()
    );
}

/// The members of a group, from `kbridge groups describe G --json`; none
/// when it cannot be described.
fn members(group: &str) -> usize {
    describe_group(group).map_or(0, |d| d["members"].as_array().map_or(0, Vec::len))
}

/// Guards against a fixed bug (a race, so up to four rounds): when the drain
/// timeout expires, the aborted delivery tasks still hold the consumer, so
/// it is never closed; `unsubscribe()` only queues the LeaveGroup, and the
/// process often exits before librdkafka sends it. The member then stays
/// in the group until its session times out (45 s by default), and a
/// restarted relay gets no partitions meanwhile.
#[test]
fn a_drain_timeout_still_leaves_the_group() {
    for round in 0..4 {
        let topic = new_topic(&format!("leave{round}"), 1);
        let group = unique("leave-g");
        let target = Target::start(Script {
            delay: Duration::from_millis(300),
            serial: true,
            ..Default::default()
        });
        let recs: Vec<Rec> = (0..15).map(|i| Rec::event(&event(i))).collect();
        produce_records(&topic, &recs);
        let mut relay = RelayCmd::new(&topic, &group, &target.url())
            .config("drain_timeout = \"1s\"\n")
            .start();
        relay.wait_assigned();
        target.wait_delivered(2, Duration::from_secs(15));
        relay.signal("TERM");
        assert_eq!(relay.expect_exit(Duration::from_secs(15)).code(), Some(0));
        assert!(relay.has_log("drain timeout"), "{}", relay.stderr());
        assert!(
            wait_until(Duration::from_secs(3), || members(&group) == 0),
            "round {round}: the stopped relay is still a member of {group}; stderr:\n{}",
            relay.stderr()
        );
    }
}
