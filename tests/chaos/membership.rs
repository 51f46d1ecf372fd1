//! Instances joining and leaving a group under a steady stream: scale out,
//! a clean stop, a crash and restart (with and without static membership).

use std::time::Duration;

use support::http_target::Script;
use support::wait::wait_until;

use crate::fleet::{Fleet, RATE, exclusive};
use crate::verdict::Verdict;

/// Waits until `more` further events were delivered (the stream flows).
fn flows(fleet: &Fleet, more: usize) {
    let now = fleet.target.delivered().len();
    assert!(
        wait_until(Duration::from_secs(60), || fleet.target.delivered().len()
            >= now + more),
        "the stream stopped flowing:\n{}",
        fleet.target.dump()
    );
}

/// Events a crashed instance may have delivered but not committed: its
/// share of a commit interval (1 s) and a little more, at the stream's rate.
const CRASH_REPEATS: usize = 2 * RATE as usize;

#[test]
fn scale_out_from_two_to_three_instances() {
    let _one = exclusive();
    let mut fleet = Fleet::new("scale", 6, Script::default());
    fleet.join("a");
    fleet.join("b");
    fleet.start_stream();
    flows(&fleet, 3 * RATE as usize);
    fleet.join("c");
    flows(&fleet, 3 * RATE as usize);
    let sent = fleet.stop_stream();
    fleet.wait_committed();
    // Cooperative: only the partitions that move to C are revoked, each
    // after its deliveries on the wire finished.
    for name in ["a", "b"] {
        let relay = fleet.instance(name);
        assert!(
            !relay.has_log("deliveries still running"),
            "{name}:\n{}",
            relay.stderr()
        );
    }
    Verdict::of(&sent, &fleet.target).assert(
        "scale out from 2 to 3 instances",
        0,
        Duration::from_secs(5),
        &fleet.target,
    );
    fleet.stop_all();
}

#[test]
fn sigterm_one_of_three_instances() {
    let _one = exclusive();
    let mut fleet = Fleet::new("sigterm", 6, Script::default());
    for name in ["a", "b", "c"] {
        fleet.join(name);
    }
    fleet.start_stream();
    flows(&fleet, 3 * RATE as usize);
    fleet.sigterm("b");
    flows(&fleet, 3 * RATE as usize);
    let sent = fleet.stop_stream();
    fleet.wait_committed();
    Verdict::of(&sent, &fleet.target).assert(
        "SIGTERM 1 of 3 instances",
        0,
        Duration::from_secs(5),
        &fleet.target,
    );
    fleet.stop_all();
}

/// SIGKILL, then systemd's restart: without static membership the group
/// waits `session.timeout.ms` (10 s) for the dead member.
#[test]
fn sigkill_and_restart_one_of_three_instances() {
    crash_and_restart(false, "SIGKILL + restart 1 of 3", Duration::from_secs(12));
}

/// With `group_instance_id`, the restarted instance takes its partitions
/// back at once: no rebalance, no session timeout.
#[test]
fn sigkill_and_restart_a_static_member() {
    crash_and_restart(
        true,
        "SIGKILL + restart 1 of 3, static membership",
        Duration::from_secs(3),
    );
}

fn crash_and_restart(static_members: bool, scenario: &str, max_delay: Duration) {
    let _one = exclusive();
    let mut fleet = Fleet::new("sigkill", 6, Script::default());
    if static_members {
        fleet = fleet.static_members();
    }
    for name in ["a", "b", "c"] {
        fleet.join(name);
    }
    fleet.start_stream();
    flows(&fleet, 3 * RATE as usize);
    let b = fleet.instance("b");
    b.signal("KILL");
    b.expect_exit(Duration::from_secs(5));
    fleet.launch("b");
    fleet.instance("b").wait_assigned();
    flows(&fleet, 3 * RATE as usize);
    let sent = fleet.stop_stream();
    fleet.wait_committed();
    Verdict::of(&sent, &fleet.target).assert(scenario, CRASH_REPEATS, max_delay, &fleet.target);
    fleet.stop_all();
}
