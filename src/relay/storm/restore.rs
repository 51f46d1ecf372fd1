//! Reading a partition's memory back from the state topic, when the
//! partition is assigned here: every record of the state partition from
//! its start to its end as the read begins, the latest per key winning (a
//! tombstone forgets) — what compaction will leave, without waiting for
//! the log cleaner.
//!
//! Blocking, bounded by `[storm] restore_timeout`: it runs in the assign
//! callback, before the partition's first event is handed to the consume
//! loop, so that no event is decided against a memory not yet read.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::changelog::{self, Key};
use super::group::{Group, Member, Meta};
use super::memory::Memory;
use crate::client::{KafkaContext, KafkaOpts};

/// One route's memory on one partition, read back.
#[derive(Default)]
pub(crate) struct Memories {
    pub alerts: HashMap<String, Memory>,
    pub groups: HashMap<String, Group>,
}

/// The memories read back, by (route name, partition).
pub(crate) type Restored = HashMap<(String, i32), Memories>;

/// Reads partitions `partitions` of the state topic, keeping the records
/// of `routes`.
pub(crate) fn read(
    kafka: &KafkaOpts,
    topic: &str,
    partitions: &[i32],
    routes: &[&str],
    timeout: Duration,
) -> Result<Restored> {
    let deadline = Instant::now() + timeout;
    let consumer: BaseConsumer<KafkaContext> = kafka
        .client()
        .set_default("client.id", "kbridge-storm-restore")
        .set("group.id", "kbridge-storm-restore")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .build(KafkaContext::default(), "the storm state reader")?;
    let mut out: Restored = HashMap::new();
    let mut ends: HashMap<i32, i64> = HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        let left = deadline.saturating_duration_since(Instant::now());
        let (low, high) = consumer
            .fetch_watermarks(topic, p, left.max(Duration::from_millis(1)))
            .map_err(|e| anyhow!("cannot read the end of {topic} partition {p}: {e}"))?;
        for r in routes {
            out.entry((r.to_string(), p)).or_default();
        }
        if high > low {
            ends.insert(p, high);
            tpl.add_partition_offset(topic, p, Offset::Offset(low))?;
        }
    }
    if ends.is_empty() {
        return Ok(out);
    }
    consumer.assign(&tpl)?;
    let mut records = 0u64;
    // The latest value of each key, by partition: what compaction keeps.
    let mut latest: HashMap<(i32, Key), Vec<u8>> = HashMap::new();
    while !ends.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!(
                "{records} records read from {topic} within [storm] restore_timeout, partitions {:?} not to their end",
                ends.keys().collect::<Vec<_>>()
            );
        }
        let Some(m) = consumer.poll(left.min(Duration::from_millis(200))) else {
            // Nothing more: a compacted log may end in a gap (no record at
            // the end offset - 1); the position says it is read through.
            if let Ok(at) = consumer.position() {
                for e in at.elements() {
                    if let Offset::Offset(o) = e.offset()
                        && ends.get(&e.partition()).is_some_and(|end| o >= *end)
                    {
                        ends.remove(&e.partition());
                    }
                }
            }
            continue;
        };
        let m = m.map_err(|e| anyhow!("cannot read {topic}: {e}"))?;
        records += 1;
        let p = m.partition();
        if let Some(end) = ends.get(&p)
            && m.offset() + 1 >= *end
        {
            ends.remove(&p);
        }
        let Some(key) = m.key().and_then(Key::decode) else {
            continue;
        };
        if !routes.contains(&key.route()) {
            continue;
        }
        match m.payload() {
            None => {
                latest.remove(&(p, key));
            }
            Some(bytes) => {
                latest.insert((p, key), bytes.to_vec());
            }
        }
    }
    for ((p, key), bytes) in latest {
        let warn = |e: String| tracing::warn!(topic, partition = p, key = ?key, "storm state record not used: {e}");
        match &key {
            Key::Alert { route, alert } => match changelog::read_value::<Memory>(&bytes) {
                Ok(memory) => {
                    let entry = out.entry((route.clone(), p)).or_default();
                    entry.alerts.insert(alert.clone(), memory);
                }
                Err(e) => warn(e),
            },
            Key::Group { route, group } => match changelog::read_value::<Meta>(&bytes) {
                Ok(meta) => {
                    let entry = out.entry((route.clone(), p)).or_default();
                    entry.groups.entry(group.clone()).or_default().meta = meta;
                }
                Err(e) => warn(e),
            },
            Key::Member {
                route,
                group,
                alert,
            } => match changelog::read_value::<Member>(&bytes) {
                Ok(member) => {
                    let entry = out.entry((route.clone(), p)).or_default();
                    entry
                        .groups
                        .entry(group.clone())
                        .or_default()
                        .members
                        .insert(alert.clone(), member);
                }
                Err(e) => warn(e),
            },
        }
    }
    tracing::debug!(topic, records, "storm state read back");
    Ok(out)
}
