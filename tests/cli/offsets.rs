//! Where a consumer starts: a group's committed offsets, and a point in
//! time between two batches of messages (for `-o @TIME` and
//! `--to-datetime`).

use std::time::Duration;

use support::kafka::{consume_json, produce};
use support::time::now_ms;
use support::wait::wait_until;

/// The group's committed offset of each partition of `topic` (None when
/// not committed), from `groups describe --json`.
pub fn committed(group: &str, topic: &str, partitions: i32) -> Vec<Option<i64>> {
    let offsets = support::kafka::committed(group, topic);
    (0..partitions).map(|p| offsets.get(&p).copied()).collect()
}

/// Produces batch A, then (once the clock has moved past A's timestamps)
/// batch B, and returns the time between them (epoch ms): the first B
/// message is at or after it, every A message before it.
pub fn produce_two_batches(topic: &str, a: &[String], b: &[String], extra: &[&str]) -> i64 {
    produce(topic, a, extra);
    let max_a = consume_json(topic, &[])
        .iter()
        .map(|r| r["timestamp"].as_i64().expect("timestamp"))
        .max()
        .expect("batch A consumed");
    assert!(
        wait_until(Duration::from_secs(5), || now_ms() > max_a + 5),
        "the clock does not advance"
    );
    produce(topic, b, extra);
    let all = consume_json(topic, &[]);
    let min_b = all
        .iter()
        .filter_map(|r| r["timestamp"].as_i64())
        .filter(|t| *t > max_a)
        .min()
        .expect("batch B has later timestamps");
    assert_eq!(
        all.iter()
            .filter(|r| r["timestamp"].as_i64() > Some(max_a))
            .count(),
        b.len(),
        "every B message (and no A message) is later than A: {all:?}"
    );
    assert!(min_b > max_a);
    max_a + 1
}
