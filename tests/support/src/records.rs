//! Kafka without kbridge, through rdkafka: records produced with exact
//! bytes (keys, headers, partitions, values that are not JSON), read back
//! byte for byte, and offsets committed for a group without joining it. For
//! the relay tests, where kbridge must not be the one that wrote or read.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

use crate::broker::{brokers, unique};
use crate::kafka::log_end_offsets;
use crate::runtime::rt;

/// One message to produce, bytes exactly as given.
#[derive(Debug, Clone, Default)]
pub struct Rec {
    /// The partitioner's choice when `None`.
    pub partition: Option<i32>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    /// The record's timestamp (epoch ms); the producer's clock when `None`.
    pub timestamp: Option<i64>,
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

/// A producer for the test broker; `extra` settings come last, so they can
/// override any default (even `bootstrap.servers`).
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
pub fn produce_records(topic: &str, recs: &[Rec]) -> Vec<(i32, i64)> {
    produce_records_with(topic, recs, &[])
}

/// Like `produce_records`, with producer settings of the test's own.
pub fn produce_records_with(topic: &str, recs: &[Rec], config: &[(&str, &str)]) -> Vec<(i32, i64)> {
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
            if let Some(ts) = r.timestamp {
                record = record.timestamp(ts);
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
    c.commit(&tpl, CommitMode::Sync)
        .unwrap_or_else(|e| panic!("cannot commit {offsets:?} for {group}: {e}"));
}

/// Deletes the records of `partition` before `before` (what retention
/// does), as `kafka-delete-records.sh` would.
pub fn delete_records_before(topic: &str, partition: i32, before: i64) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .expect("cannot create an admin client");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(before))
        .unwrap();
    let done = rt()
        .block_on(admin.delete_records(&tpl, &AdminOptions::new()))
        .unwrap_or_else(|e| panic!("cannot delete records of {topic}: {e}"));
    for e in done.elements() {
        if let Err(err) = e.error() {
            panic!("cannot delete records of {topic} [{partition}]: {err}");
        }
    }
}
