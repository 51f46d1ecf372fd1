//! Failover on a real 3-node Apache Kafka cluster (KRaft, three combined
//! broker+controller nodes from `scripts/test-kafka.sh start --cluster`):
//! the relay keeps every alert when the broker leading its partitions dies,
//! and its final commits cover everything it delivered.

use std::time::Duration;

use serde_json::Value;

use support::broker::{cluster_brokers, test_kafka, unique};
use support::events::event;
use support::http_target::{Script, Target};
use support::kbridge::{kbridge_at, run_cmd};
use support::output::OutputExt;
use support::relay_cmd::RelayCmd;
use support::wait::wait_until;

/// Failover (leader election, the group coordinator moving) takes seconds;
/// this bounds the wait for everything to be delivered again.
const FAILOVER_WAIT: Duration = Duration::from_secs(120);

fn kbridge_on(brokers: &str, args: &[&str], stdin: &[u8]) -> std::process::Output {
    let mut cmd = kbridge_at(brokers);
    cmd.args(args);
    run_cmd(cmd, stdin)
}

fn produce(brokers: &str, topic: &str, range: std::ops::Range<usize>) {
    let lines: String = range.map(|i| event(i).to_string() + "\n").collect();
    kbridge_on(
        brokers,
        &["produce", topic, "--key-field", "df_fault_id", "-q"],
        lines.as_bytes(),
    )
    .ok();
}

/// Restarts a stopped node when the test ends, pass or fail, so the next
/// test run finds the cluster whole.
struct Restart(Option<i64>);

impl Drop for Restart {
    fn drop(&mut self) {
        if let Some(node) = self.0 {
            test_kafka(&["start", "--cluster", "--node", &node.to_string()]);
        }
    }
}

#[test]
fn relay_keeps_every_alert_when_the_leader_broker_dies() {
    let brokers = cluster_brokers();
    let target = Target::start(Script::default());
    let topic = unique("failover");
    let group = unique("failover-group");
    kbridge_on(
        &brokers,
        &[
            "topics",
            "create",
            &topic,
            "-p",
            "3",
            "-r",
            "3",
            "-c",
            "min.insync.replicas=2",
        ],
        b"",
    )
    .ok();
    produce(&brokers, &topic, 0..30);
    let mut relay = RelayCmd::new(&topic, &group, &target.url())
        .brokers(&brokers)
        .env("KBRIDGE_LOG", "info,librdkafka=warn")
        .start();
    assert!(
        wait_until(FAILOVER_WAIT, || target.distinct() == 30),
        "before the failure, {} of 30 delivered\n{}",
        target.distinct(),
        relay.stderr()
    );

    // Stop the broker that leads partition 0 (and maybe more).
    let described = kbridge_on(&brokers, &["topics", "describe", &topic, "--json"], b"");
    let leader = described.ok().json()["partitions"][0]["leader"]
        .as_i64()
        .expect("a leader for partition 0");
    let mut restart = Restart(None);
    test_kafka(&["stop", "--cluster", "--node", &leader.to_string()]);
    restart.0 = Some(leader);
    let stopped_at = std::time::Instant::now();

    // The surviving two keep the topic writable (min.insync.replicas=2) and
    // the relay readable: every alert arrives, old and new.
    produce(&brokers, &topic, 30..60);
    assert!(
        wait_until(FAILOVER_WAIT, || target.distinct() == 60),
        "after broker {leader} stopped, {} of 60 delivered\n{}",
        target.distinct(),
        relay.stderr()
    );
    eprintln!(
        "broker {leader} stopped; all 60 delivered {:.1?} later",
        stopped_at.elapsed()
    );
    relay.stop();

    let group_state = kbridge_on(&brokers, &["groups", "describe", &group, "--json"], b"");
    let d: Value = group_state.ok().json();
    let parts = d["partitions"].as_array().expect("partitions");
    assert_eq!(parts.len(), 3, "{d}");
    let total: i64 = parts
        .iter()
        .map(|p| p["log_end_offset"].as_i64().expect("log end"))
        .sum();
    assert_eq!(total, 60, "{d}");
    for p in parts {
        assert_eq!(
            p["lag"].as_i64(),
            Some(0),
            "partition {} not fully committed: {p}\n{}",
            p["partition"],
            relay.stderr()
        );
    }
    drop(restart);
}
