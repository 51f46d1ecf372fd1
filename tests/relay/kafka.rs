//! The broker side: which brokers, the kbridge binary for setup commands,
//! producing exact bytes and reading topics back with rdkafka, and the
//! group's committed offsets.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

use crate::util::{rt, unique};

/// The brokers of the test cluster (see `support::brokers`).
pub fn brokers() -> &'static str {
    static BROKERS: OnceLock<String> = OnceLock::new();
    BROKERS.get_or_init(crate::support::brokers)
}

pub use crate::support::kbridge_bin;

/// A `kbridge -b BROKERS` command with no `KBRIDGE_*` from the caller's
/// environment.
pub fn kbridge() -> Command {
    kbridge_via(&[])
}

/// Like `kbridge()`, run through a wrapper command (e.g. `taskset -c 0`).
pub fn kbridge_via(wrapper: &[String]) -> Command {
    let mut c = match wrapper.split_first() {
        None => Command::new(kbridge_bin()),
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(kbridge_bin());
            c
        }
    };
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("KBRIDGE_") {
            c.env_remove(k);
        }
    }
    c.arg("-b").arg(brokers());
    c
}

/// Runs a setup command and insists on success.
#[track_caller]
pub fn kbridge_ok(args: &[&str]) -> Output {
    let out = kbridge()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("cannot run kbridge");
    assert!(
        out.status.success(),
        "kbridge {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Creates a topic with a unique name and returns the name.
pub fn create_topic(prefix: &str, partitions: i32) -> String {
    create_topic_with(prefix, partitions, &[])
}

pub fn create_topic_with(prefix: &str, partitions: i32, configs: &[&str]) -> String {
    let name = unique(prefix);
    let p = partitions.to_string();
    let mut args = vec!["topics", "create", name.as_str(), "-p", p.as_str()];
    for c in configs {
        args.extend(["-c", c]);
    }
    kbridge_ok(&args);
    name
}

/// One message to produce, bytes exactly as given.
#[derive(Debug, Clone, Default)]
pub struct Rec {
    /// The partitioner's choice when `None`.
    pub partition: Option<i32>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Rec {
    pub fn value(v: impl Into<Vec<u8>>) -> Self {
        Self {
            value: Some(v.into()),
            ..Default::default()
        }
    }
    pub fn keyed(key: &str, v: impl Into<Vec<u8>>) -> Self {
        Self {
            key: Some(key.as_bytes().to_vec()),
            value: Some(v.into()),
            ..Default::default()
        }
    }
    /// A JSON event, compact, keyed like `--key-field df_fault_id`
    /// (falling back to df_event_id).
    pub fn event(v: &Value) -> Self {
        let key = v
            .get("df_fault_id")
            .or_else(|| v.get("df_event_id"))
            .and_then(Value::as_str)
            .map(|s| s.as_bytes().to_vec());
        Self {
            key,
            value: Some(serde_json::to_vec(v).unwrap()),
            ..Default::default()
        }
    }
}

fn producer(extra: &[(&str, &str)]) -> FutureProducer {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers())
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "0")
        .set("message.timeout.ms", "20000");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().expect("cannot create the test producer")
}

/// Produces the records in order, each acknowledged before the next;
/// returns (partition, offset) of each.
/// The Idempotency-Key the relay sends for each produced record
/// (`topic-partition-offset`).
pub fn event_keys(topic: &str, coords: &[(i32, i64)]) -> Vec<String> {
    coords
        .iter()
        .map(|(p, o)| format!("{topic}-{p}-{o}"))
        .collect()
}

pub fn produce(topic: &str, recs: &[Rec]) -> Vec<(i32, i64)> {
    produce_with(topic, recs, &[])
}

pub fn produce_with(topic: &str, recs: &[Rec], config: &[(&str, &str)]) -> Vec<(i32, i64)> {
    let producer = producer(config);
    rt().block_on(async {
        let mut out = Vec::with_capacity(recs.len());
        for (i, r) in recs.iter().enumerate() {
            let headers = r.headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
                h.insert(Header {
                    key: k.as_str(),
                    value: Some(v.as_slice()),
                })
            });
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic);
            if !r.headers.is_empty() {
                record = record.headers(headers);
            }
            if let Some(k) = &r.key {
                record = record.key(k.as_slice());
            }
            if let Some(p) = r.partition {
                record = record.partition(p);
            }
            if let Some(v) = &r.value {
                record = record.payload(v.as_slice());
            }
            match producer.send(record, Duration::from_secs(20)).await {
                Ok(d) => out.push((d.partition, d.offset)),
                Err((e, _)) => panic!("producing record {i} to {topic} failed: {e}"),
            }
        }
        out
    })
}

/// One message read back.
#[derive(Debug, Clone)]
pub struct Consumed {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Consumed {
    /// The first header with this name, as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_ref())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

/// The partitions of a topic and their high watermarks (log end offsets).
pub fn log_end_offsets(topic: &str) -> BTreeMap<i32, i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .expect("cannot create a metadata client");
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("no metadata for {topic}: {e}"));
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .unwrap_or_else(|| panic!("topic {topic} not in metadata"));
    t.partitions()
        .iter()
        .map(|p| {
            let (_, high) = c
                .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("no watermarks for {topic}/{}: {e}", p.id()));
            (p.id(), high)
        })
        .collect()
}

/// Reads every message of a topic from the beginning, waiting (up to
/// `timeout`) until at least `at_least` were read and every partition is
/// at its end.
pub fn read_all(topic: &str, at_least: usize, timeout: Duration) -> Vec<Consumed> {
    let ends = log_end_offsets(topic);
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("fetch.message.max.bytes", "4194304")
        .create()
        .expect("cannot create the test consumer");
    let mut tpl = TopicPartitionList::new();
    for p in ends.keys() {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).expect("cannot assign");
    let mut out = Vec::new();
    let mut at_end: BTreeSet<i32> = BTreeSet::new();
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if out.len() >= at_least && at_end.len() == ends.len() {
            return out;
        }
        match c.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                out.push(Consumed {
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                    headers: m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                                .collect()
                        })
                        .unwrap_or_default(),
                });
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => panic!("reading {topic} failed: {e}"),
        }
    }
    panic!(
        "read {} message(s) of {topic} within {timeout:?}, expected at least {at_least} \
         (partitions at end: {at_end:?} of {:?})",
        out.len(),
        ends.keys().collect::<Vec<_>>()
    );
}

/// The group's committed offsets for `topic`, from
/// `kbridge groups describe G --json`; empty when the group has none.
pub fn committed(group: &str, topic: &str) -> BTreeMap<i32, i64> {
    let out = kbridge()
        .args(["groups", "describe", group, "--json"])
        .stdin(Stdio::null())
        .output()
        .expect("cannot run kbridge groups describe");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        assert!(
            stderr.contains("does not exist"),
            "kbridge groups describe {group} failed: {stderr}"
        );
        return BTreeMap::new();
    }
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "groups describe --json printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    v["partitions"]
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
    if !crate::util::wait_until(timeout, || fully_committed(group, topic)) {
        panic!(
            "group {group} did not commit the log end of {topic} within {timeout:?}: \
             committed {:?}, log end {:?}",
            committed(group, topic),
            log_end_offsets(topic)
        );
    }
}

/// Commits offsets for `group` directly (without joining it).
pub fn commit_offsets(group: &str, topic: &str, offsets: &[(i32, i64)]) {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("cannot create a committing consumer");
    let mut tpl = TopicPartitionList::new();
    for (p, o) in offsets {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*o))
            .unwrap();
    }
    c.commit(&tpl, rdkafka::consumer::CommitMode::Sync)
        .unwrap_or_else(|e| panic!("cannot commit {offsets:?} for {group}: {e}"));
}
