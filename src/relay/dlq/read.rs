//! Reading a topic as it is now: every partition from a start to the end
//! it had when reading began, then done — so that a dead letter written
//! while `redrive` runs (one that failed again) is not re-driven in the
//! same run, and `stats` ends on a busy topic.
//!
//! Assigned, not subscribed: no rebalance to wait for, and `redrive`
//! commits its progress to its group with explicit offsets. Headers are
//! read as bytes (`crate::headers`), whatever they hold.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::letter::Record;
use crate::client::{KafkaContext, KafkaOpts, partitions_of};
use crate::topic_partition::TopicPartition;

/// Which part of the topic: partitions, an offset range, a time window.
#[derive(Debug, Clone, Default)]
pub(crate) struct Span {
    pub partition: Option<i32>,
    /// First offset (in every partition read).
    pub from_offset: Option<i64>,
    /// Last offset, included.
    pub to_offset: Option<i64>,
    /// Records written at or after this time (epoch ms).
    pub since: Option<i64>,
    /// Records written before this time (epoch ms).
    pub until: Option<i64>,
}

/// An open read of one topic.
pub(crate) struct Reader {
    consumer: BaseConsumer<KafkaContext>,
    topic: String,
    /// Per partition still being read: the end (exclusive) it had at the
    /// start.
    ends: BTreeMap<i32, i64>,
    span: Span,
    quiet_limit: Duration,
    /// Records between the starts and the ends, at the start.
    total: u64,
}

impl Reader {
    /// Opens `topic` from each partition's start: `resume`'s offset for a
    /// partition that has one (a group's committed progress), else the
    /// span's start (`--from-offset`, `--since`), else its beginning.
    pub(crate) fn open(
        opts: &KafkaOpts,
        topic: &str,
        span: Span,
        group: Option<&str>,
        resume: impl Fn(&BaseConsumer<KafkaContext>, &[TopicPartition]) -> Result<BTreeMap<i32, i64>>,
    ) -> Result<Self> {
        let consumer: BaseConsumer<KafkaContext> = opts
            .client()
            .set("group.id", group.unwrap_or("kbridge-dlq-reader"))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set_default("fetch.queue.backoff.ms", "10")
            .build(KafkaContext::default(), "the Kafka client")?;
        let md = opts.metadata(consumer.client(), Some(topic))?;
        opts.require_topics(&md, &[topic.to_string()])?;
        let mut all = partitions_of(&md, topic)?;
        if let Some(p) = span.partition {
            all.retain(|tp| tp.partition == p);
            if all.is_empty() {
                return Err(crate::error::UsageError(format!(
                    "topic '{topic}' has no partition {p}"
                ))
                .into());
            }
        }
        let resumed = resume(&consumer, &all)?;
        let by_time = match span.since {
            Some(ms) => Some(opts.offsets_for_time(&consumer, &all, ms)?),
            None => None,
        };
        let mut ends = BTreeMap::new();
        let mut at = Vec::new();
        let mut total = 0u64;
        for (i, tp) in all.iter().enumerate() {
            let (low, high) = consumer
                .fetch_watermarks(topic, tp.partition, opts.timeout)
                .with_context(|| format!("cannot read the offsets of {tp}"))?;
            let mut start = low;
            if let Some(from) = span.from_offset {
                start = start.max(from);
            }
            if let Some(Offset::Offset(o)) = by_time.as_ref().map(|b| b[i]) {
                start = start.max(o);
            } else if by_time.is_some() {
                start = high; // nothing that recent
            }
            if let Some(&r) = resumed.get(&tp.partition) {
                start = r.max(low);
            }
            let end = match span.to_offset {
                Some(to) => high.min(to.saturating_add(1)),
                None => high,
            };
            if start < end {
                total += (end - start) as u64;
                ends.insert(tp.partition, end);
                at.push((tp, Offset::Offset(start)));
            }
        }
        if !at.is_empty() {
            let tpl: TopicPartitionList = TopicPartition::list_at(at);
            consumer.assign(&tpl).context("cannot read the topic")?;
        }
        Ok(Self {
            consumer,
            topic: topic.to_string(),
            ends,
            span,
            quiet_limit: opts.timeout.max(Duration::from_secs(10)),
            total,
        })
    }

    /// How many records the read spans (at most: the time window may
    /// leave some out).
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// The consumer (for its group's committed offsets and commits).
    pub(crate) fn consumer(&self) -> &BaseConsumer<KafkaContext> {
        &self.consumer
    }

    /// The next record in the span, in each partition's order; `None` when
    /// every partition reached its end.
    pub(crate) fn next(&mut self) -> Result<Option<Record>> {
        let mut quiet_since = Instant::now();
        loop {
            if self.ends.is_empty() {
                return Ok(None);
            }
            let Some(polled) = self.consumer.poll(Duration::from_millis(200)) else {
                if quiet_since.elapsed() > self.quiet_limit {
                    let waiting: Vec<String> = self
                        .ends
                        .keys()
                        .map(|p| format!("{}/{p}", self.topic))
                        .collect();
                    return Err(anyhow!(
                        "no records from {} for {:?}, though the partitions are not at their end: check the brokers (-v shows librdkafka's view)",
                        waiting.join(", "),
                        self.quiet_limit
                    ));
                }
                continue;
            };
            quiet_since = Instant::now();
            let m = match polled {
                Ok(m) => m,
                Err(KafkaError::PartitionEOF(p)) => {
                    self.ends.remove(&p);
                    continue;
                }
                Err(e) => {
                    return Err(anyhow!(
                        "cannot read topic '{}': {e}; check kbridge may Read and Describe it (and Read its group)",
                        self.topic
                    ));
                }
            };
            let Some(&end) = self.ends.get(&m.partition()) else {
                continue;
            };
            if m.offset() >= end {
                self.ends.remove(&m.partition());
                continue;
            }
            if m.offset() + 1 >= end {
                self.ends.remove(&m.partition());
            }
            let ts = m.timestamp().to_millis();
            let in_window = ts.is_none_or(|t| {
                self.span.since.is_none_or(|s| t >= s) && self.span.until.is_none_or(|u| t < u)
            });
            if in_window {
                return Ok(Some(record_of(&m)));
            }
        }
    }
}

/// A consumed message, copied out with its headers as bytes.
fn record_of(m: &BorrowedMessage<'_>) -> Record {
    Record {
        topic: m.topic().to_string(),
        partition: m.partition(),
        offset: m.offset(),
        timestamp_ms: m.timestamp().to_millis(),
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec),
        headers: crate::headers::raw_headers(m)
            .into_iter()
            .map(|h| (h.key.to_vec(), h.value.map(<[u8]>::to_vec)))
            .collect(),
    }
}
