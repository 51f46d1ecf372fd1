//! Against a small in-house target (`support::small_target`: one Python
//! process, a listen backlog of 5, 2 ms answers with a 30 ms one every 25th
//! request, 429 `Retry-After: 1` to the first attempt of every 10th alert):
//! the relay must not open more connections than the target can take, and
//! a hand-over or a clean stop must not send an alert twice. A duplicate is
//! what the target *processed* beyond one request per event, including a
//! request it answered after the relay gave up on it.

use std::time::{Duration, Instant};

use support::stream::{Sent, Stream};
use support::wait::wait_until;

use crate::fleet::{Fleet, exclusive};

/// Distinct alerts: an incident's worth. (With the fleet suite's 24, each
/// alert's events queue behind its 429s — per-alert order — and no relay
/// could keep up with 300/s.)
const ALERTS: usize = 600;
use crate::verdict::Verdict;

/// Waits until the small target processed `n` requests.
fn processed(fleet: &Fleet, n: usize) {
    let small = fleet.small.as_ref().expect("a small target");
    assert!(
        wait_until(Duration::from_secs(90), || small.requests().len() >= n),
        "the small target processed {} requests, not {n}",
        small.requests().len()
    );
}

/// The alerts waiting in the topic, counted as sent when the fleet starts.
fn waiting(fleet: &Fleet, n: usize) -> Vec<Sent> {
    Stream::backlog(&fleet.topic, n, ALERTS, 1_000_000)
}

fn started_now(mut backlog: Vec<Sent>) -> Vec<Sent> {
    let now = Instant::now();
    for s in &mut backlog {
        s.at = now;
    }
    backlog
}

/// One instance, 3,000 waiting alerts: started, stopped cleanly a third of
/// the way, started again. No request may be processed twice.
#[test]
fn one_relay_against_a_small_target_started_stopped_and_restarted() {
    let _one = exclusive();
    let mut fleet = Fleet::new("small-one", 6, Default::default()).small_target();
    let backlog = waiting(&fleet, 3_000);
    let sent = started_now(backlog);
    fleet.join("a");
    processed(&fleet, 1_000);
    fleet.sigterm("a");
    fleet.join("a");
    fleet.wait_committed();
    let small = fleet.small.as_ref().expect("a small target");
    Verdict::of(&sent, small).assert(
        "small target (backlog 5), 1 instance: start, SIGTERM, restart",
        0,
        Duration::from_secs(60),
        small,
    );
    fleet.stop_all();
}

/// The fleet: 6 partitions, 1,000 waiting alerts and a stream of
/// 300/s, instances coming and going — scale out from 3 to 4, a SIGKILL and
/// restart, a SIGTERM and restart. Duplicates: at most what the killed
/// instance handled since its last commit (one commit interval, 1 s, of the
/// stream); none from the others. Worst delay 12 s (the session timeout
/// after the SIGKILL dominates).
#[test]
fn a_fleet_against_a_small_target_with_a_stream_and_churn() {
    const RATE: u32 = 300;
    let _one = exclusive();
    let mut fleet = Fleet::new("small-fleet", 6, Default::default()).small_target();
    let backlog = waiting(&fleet, 1_000);
    let mut sent = started_now(backlog);
    for name in ["a", "b", "c"] {
        fleet.launch(name);
    }
    fleet.start_stream_at(RATE, ALERTS);
    for name in ["a", "b", "c"] {
        fleet.instance(name).wait_assigned();
    }
    processed(&fleet, 2_000);
    fleet.join("d");
    processed(&fleet, 3_000);
    let b = fleet.instance("b");
    b.signal("KILL");
    b.expect_exit(Duration::from_secs(5));
    fleet.launch("b");
    fleet.instance("b").wait_assigned();
    processed(&fleet, 5_000);
    fleet.sigterm("c");
    fleet.join("c");
    processed(&fleet, 6_500);
    sent.extend(fleet.stop_stream());
    fleet.wait_committed();
    let small = fleet.small.as_ref().expect("a small target");
    Verdict::of(&sent, small).assert(
        "small target (backlog 5), 300/s + 1,000 waiting, scale out 3→4, SIGKILL + restart, SIGTERM + restart",
        RATE as usize,
        Duration::from_secs(12),
        small,
    );
    fleet.stop_all();
}
