//! A stop while the group coordinator is stuck (librdkafka's mock cluster,
//! its round-trip time on the coordinator set to a minute): the final
//! commit and the LeaveGroup cannot finish, and the stop must still end
//! within systemd's 30 s — with deliveries done, and in the worst path,
//! with deliveries stuck until the drain timeout too.

use std::time::{Duration, Instant};

use rdkafka::mocking::{MockCluster, MockCoordinator};

use support::broker::unique;
use support::events::event;
use support::http_target::{Script, Target};
use support::records::{Rec, produce_records_with};
use support::relay_cmd::RelayCmd;
use support::wait::wait_until;

use crate::fleet::exclusive;

/// systemd's default `TimeoutStopSec`, which the unit keeps.
const SYSTEMD_STOP: Duration = Duration::from_secs(30);

/// Runs one relay on a three-broker mock cluster whose group coordinator
/// is broker 3, lets it handle 20 events, makes the coordinator stuck,
/// stops the relay, and returns how long the stop took.
fn stop_with_a_stuck_coordinator(
    name: &str,
    script: Script,
    handled: impl Fn(&Target) -> bool,
) -> Duration {
    let _one = exclusive();
    let mock = MockCluster::new(3).expect("mock cluster");
    let topic = unique(name);
    let group = unique(&format!("{name}-g"));
    mock.create_topic(&topic, 2, 1).expect("topic");
    for p in 0..2 {
        mock.partition_leader(&topic, p, Some(1)).expect("leader");
    }
    mock.coordinator(MockCoordinator::Group(group.clone()), 3)
        .expect("coordinator");
    let brokers = mock.bootstrap_servers();
    let target = Target::start(script);
    let recs: Vec<Rec> = (0..20).map(|i| Rec::event(&event(i))).collect();
    produce_records_with(&topic, &recs, &[("bootstrap.servers", &brokers)]);
    let mut relay = RelayCmd::new(&topic, &group, &target.url())
        .brokers(&brokers)
        .env("KBRIDGE_LOG", "info,librdkafka=warn")
        .start();
    relay.wait_assigned();
    assert!(
        wait_until(Duration::from_secs(30), || handled(&target)),
        "{}\n{}",
        target.dump(),
        relay.stderr()
    );
    mock.broker_round_trip_time(3, Duration::from_secs(60))
        .expect("rtt");
    let asked = Instant::now();
    relay.signal("TERM");
    let status = relay.expect_exit(SYSTEMD_STOP + Duration::from_secs(10));
    let took = asked.elapsed();
    assert!(status.success(), "{status:?}\n{}", relay.stderr());
    assert!(
        took < SYSTEMD_STOP,
        "the stop took {took:?}, past systemd's {SYSTEMD_STOP:?}:\n{}",
        relay.stderr()
    );
    took
}

#[test]
fn a_stop_with_a_stuck_group_coordinator_ends_in_time() {
    let took =
        stop_with_a_stuck_coordinator("stuck-coord", Script::default(), |t| t.distinct() == 20);
    println!(
        "| SIGTERM, group coordinator stuck | 20 | 0 | 0 | stop took {:.1} s |",
        took.as_secs_f64()
    );
}

/// The worst path: deliveries stuck too (the target answers 503), so the
/// drain waits its whole timeout (20 s) before the commit and the leave.
#[test]
fn a_stop_with_stuck_deliveries_and_a_stuck_coordinator_ends_in_time() {
    let took = stop_with_a_stuck_coordinator(
        "stuck-all",
        Script {
            fail_first: usize::MAX,
            ..Default::default()
        },
        |t| t.requests().len() >= 20,
    );
    println!(
        "| SIGTERM, deliveries and group coordinator stuck | 20 | 0 | 0 | stop took {:.1} s |",
        took.as_secs_f64()
    );
}
