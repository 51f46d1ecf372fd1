//! Topics as the commands and the relay need them: present (or waited
//! for, at a service's start), their partitions, offsets by time.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use rdkafka::Offset;
use rdkafka::client::{Client, ClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::metadata::Metadata;

use super::connect_failure::Failure;
use super::context::LastError;
use super::options::KafkaOpts;
use crate::topic_partition::TopicPartition;

impl KafkaOpts {
    /// Checks that every named topic exists, with a message saying so.
    pub(crate) fn require_topics(&self, metadata: &Metadata, topics: &[String]) -> Result<()> {
        match missing_topics(metadata, topics).first() {
            None => Ok(()),
            Some(t) => Err(anyhow!(
                "topic '{t}' does not exist; create it with `kbridge topics create {t}` or list topics with `kbridge topics list`"
            )),
        }
    }

    /// Waits (at most `wait`) until every topic exists, so that a typo fails
    /// a service's start with a clear message instead of leaving it idle.
    /// Blocking: call it off the async workers.
    pub(crate) fn wait_for_topics<C: ClientContext + LastError>(
        &self,
        client: &Client<C>,
        topics: &[String],
        wait: Duration,
    ) -> Result<std::collections::BTreeMap<String, usize>> {
        let deadline = Instant::now() + wait;
        loop {
            let mut counts = std::collections::BTreeMap::new();
            let missing: Vec<&String> = match client.fetch_metadata(None, Duration::from_secs(2)) {
                Ok(md) => {
                    for t in md.topics() {
                        if topics.iter().any(|w| w == t.name()) {
                            counts.insert(t.name().to_string(), t.partitions().len());
                        }
                    }
                    missing_topics(&md, topics)
                }
                Err(e) => {
                    let cause = self.why_unreachable(client);
                    // A refused password or certificate does not get
                    // better by waiting for the topics.
                    let permanent = cause
                        .as_deref()
                        .and_then(Failure::of)
                        .is_some_and(Failure::is_permanent);
                    if permanent || Instant::now() >= deadline {
                        if let Some(line) = self.refused(cause.as_deref()) {
                            bail!(line);
                        }
                        let cause = cause.unwrap_or_else(|| e.to_string());
                        bail!(
                            "no Kafka broker answered at {} within {wait:?} ({cause}); check `brokers` and the [kafka] security settings",
                            self.brokers
                        );
                    }
                    topics.iter().collect()
                }
            };
            if missing.is_empty() {
                return Ok(counts);
            }
            if Instant::now() >= deadline {
                let names = missing
                    .iter()
                    .map(|t| format!("'{t}'"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let (what, verb) = if missing.len() == 1 {
                    ("topic", "does")
                } else {
                    ("topics", "do")
                };
                bail!(
                    "{what} {names} {verb} not exist (waited {wait:?}); create it with `kbridge topics create` or fix `topics`"
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The first offset at or after `ms` for each partition; the log end
    /// when no message is that recent.
    pub(crate) fn offsets_for_time<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        all: &[TopicPartition],
        ms: i64,
    ) -> Result<Vec<Offset>> {
        let tpl = TopicPartition::list_at(all.iter().map(|tp| (tp, Offset::Offset(ms))));
        let found = consumer
            .offsets_for_times(tpl, self.timeout)
            .context("cannot look up offsets by time")?;
        all.iter()
            .map(|tp| {
                let e = found
                    .find_partition(&tp.topic, tp.partition)
                    .ok_or_else(|| anyhow!("no offset returned for {tp}"))?;
                Ok(match e.offset() {
                    Offset::Offset(o) if o >= 0 => Offset::Offset(o),
                    _ => Offset::End,
                })
            })
            .collect()
    }
}

/// The topics of `wanted` that the metadata does not show as usable.
fn missing_topics<'a>(metadata: &Metadata, wanted: &'a [String]) -> Vec<&'a String> {
    wanted
        .iter()
        .filter(|t| {
            !metadata.topics().iter().any(|m| {
                m.name() == t.as_str() && m.error().is_none() && !m.partitions().is_empty()
            })
        })
        .collect()
}

/// The partitions of `topic` from metadata, in order.
pub(crate) fn partitions_of(metadata: &Metadata, topic: &str) -> Result<Vec<TopicPartition>> {
    let t = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .with_context(|| format!("topic '{topic}' does not exist"))?;
    let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
    ids.sort_unstable();
    Ok(ids
        .into_iter()
        .map(|p| TopicPartition::new(topic, p))
        .collect())
}
