//! Setting up and inspecting the broker through kbridge's own commands:
//! topics (created, awaited, their watermarks), messages produced and
//! consumed as JSON lines, and a group's committed offsets.

use std::collections::BTreeMap;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use crate::broker::unique;
use crate::kbridge::run;
use crate::output::OutputExt;
use crate::wait::{WAIT, wait_until};

/// Creates a topic through `kbridge topics create` and waits until every
/// partition has a leader, so the next command sees it.
pub fn create_topic(name: &str, partitions: i32) {
    create_topic_with(name, partitions, &[]);
}

/// Like `create_topic`, with topic configs (`-c k=v` each).
pub fn create_topic_with(name: &str, partitions: i32, configs: &[&str]) {
    let p = partitions.to_string();
    let mut args = vec!["topics", "create", name, "-p", p.as_str()];
    for c in configs {
        args.extend(["-c", c]);
    }
    run(&args, "").ok();
    await_topic(name, partitions);
}

/// Creates a topic with a `unique` name and returns the name.
pub fn new_topic(prefix: &str, partitions: i32) -> String {
    new_topic_with(prefix, partitions, &[])
}

/// Like `new_topic`, with topic configs (`-c k=v` each).
pub fn new_topic_with(prefix: &str, partitions: i32, configs: &[&str]) -> String {
    let name = unique(prefix);
    create_topic_with(&name, partitions, configs);
    name
}

/// Waits until `topics describe` shows `partitions` partitions, each with a
/// leader.
pub fn await_topic(name: &str, partitions: i32) {
    let ready = wait_until(WAIT, || {
        let out = run(&["topics", "describe", name, "--json"], "");
        out.status.success()
            && out.json()["partitions"].as_array().is_some_and(|ps| {
                ps.len() == partitions as usize
                    && ps
                        .iter()
                        .all(|p| p["leader"].as_i64().is_some_and(|l| l >= 0))
            })
    });
    assert!(
        ready,
        "topic {name} has no leader for every partition after {WAIT:?}"
    );
}

/// `topics describe --json`: the partitions, in order.
fn partitions(topic: &str) -> Vec<Value> {
    let d = run(&["topics", "describe", topic, "--json"], "")
        .ok()
        .json();
    d["partitions"]
        .as_array()
        .expect("partitions array")
        .clone()
}

/// `topics describe --json`: (low, high) watermarks per partition.
pub fn watermarks(topic: &str) -> Vec<(i64, i64)> {
    partitions(topic)
        .iter()
        .map(|p| {
            (
                p["low_watermark"].as_i64().expect("low_watermark"),
                p["high_watermark"].as_i64().expect("high_watermark"),
            )
        })
        .collect()
}

/// The partitions of a topic and their high watermarks (log end offsets).
pub fn log_end_offsets(topic: &str) -> BTreeMap<i32, i64> {
    partitions(topic)
        .iter()
        .map(|p| {
            (
                p["partition"].as_i64().expect("partition") as i32,
                p["high_watermark"].as_i64().expect("high_watermark"),
            )
        })
        .collect()
}

/// Messages in a topic according to its watermarks.
pub fn message_count(topic: &str) -> i64 {
    watermarks(topic).iter().map(|(l, h)| h - l).sum()
}

/// Produces JSON lines (quietly) and checks that all were delivered.
pub fn produce(topic: &str, lines: &[String], extra: &[&str]) {
    let mut args = vec!["produce", topic, "-q"];
    args.extend_from_slice(extra);
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    run(&args, &input)
        .ok()
        .stderr_has(&format!("{} message(s) delivered", lines.len()));
}

/// `groups reset-offsets GROUP --topic TOPIC… TO…`, with `--execute` when
/// `execute` (else the dry run): the command's output, not yet checked.
pub fn reset_offsets(group: &str, topics: &[&str], to: &[&str], execute: bool) -> Output {
    let mut args = vec!["groups", "reset-offsets", group];
    for t in topics {
        args.extend_from_slice(&["--topic", t]);
    }
    args.extend_from_slice(to);
    if execute {
        args.push("--execute");
    }
    run(&args, "")
}

/// `consume TOPIC -e -f json EXTRA…`: the printed records.
pub fn consume_json(topic: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["consume", topic, "-e", "-f", "json"];
    args.extend_from_slice(extra);
    run(&args, "").ok().json_lines()
}

/// `groups describe GROUP --json`, or `None` when it fails.
pub fn describe_group(group: &str) -> Option<Value> {
    let out = run(&["groups", "describe", group, "--json"], "");
    out.status.success().then(|| out.json())
}

/// The group's committed offsets for `topic`, from
/// `kbridge groups describe G --json`; empty when the group has none.
pub fn committed(group: &str, topic: &str) -> BTreeMap<i32, i64> {
    let mut out = run(&["groups", "describe", group, "--json"], "");
    // A broker that just started may not have its group coordinator yet:
    // a few tries before a failure counts.
    for _ in 0..5 {
        if out.status.success() || out.stderr_str().contains("does not exist") {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
        out = run(&["groups", "describe", group, "--json"], "");
    }
    if !out.status.success() {
        out.stderr_has("does not exist");
        return BTreeMap::new();
    }
    out.json()["partitions"]
        .as_array()
        .expect("partitions array")
        .iter()
        .filter(|p| p["topic"] == topic)
        .filter_map(|p| {
            Some((
                p["partition"].as_i64()? as i32,
                p["current_offset"].as_i64()?,
            ))
        })
        .collect()
}

/// True when the group committed the log end of every non-empty partition
/// of `topic` (lag 0: every event was handled).
pub fn fully_committed(group: &str, topic: &str) -> bool {
    let ends = log_end_offsets(topic);
    let done = committed(group, topic);
    ends.iter()
        .all(|(p, end)| *end == 0 || done.get(p) == Some(end))
}

/// Panics unless the group reaches lag 0 on `topic` within `timeout`.
#[track_caller]
pub fn wait_fully_committed(group: &str, topic: &str, timeout: Duration) {
    if !wait_until(timeout, || fully_committed(group, topic)) {
        panic!(
            "group {group} did not commit the log end of {topic} within {timeout:?}: \
             committed {:?}, log end {:?}",
            committed(group, topic),
            log_end_offsets(topic)
        );
    }
}
