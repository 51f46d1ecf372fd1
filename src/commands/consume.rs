//! `kbridge consume`: the console consumer.
//!
//! Without `-g` it assigns every partition itself (no group, nothing
//! committed), like kcat. With `-g` it joins the group and commits what it
//! has printed: an offset is stored only after its line left our buffer, so a
//! crash can repeat output but never skip it.

use std::collections::{HashMap, HashSet};
use std::io::{BufWriter, ErrorKind, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};

use super::render::{Format, render};
use crate::client::{KafkaContext, KafkaOpts};
use crate::time_spec::StartOffset;
use crate::topic_partition::TopicPartition;

/// What to read, from where, and how to print it.
#[derive(Debug)]
pub(crate) struct Consume {
    pub topics: Vec<String>,
    /// Consume in this group and commit what was printed.
    pub group: Option<String>,
    pub start: StartOffset,
    /// Exit after this many messages.
    pub count: Option<u64>,
    /// Exit when the end of every partition is reached.
    pub exit_at_end: bool,
    pub format: Format,
}

/// Applies explicit start offsets the first time a partition is assigned
/// and keeps track of the current assignment (for `-e`).
struct ConsumeContext {
    base: KafkaContext,
    starts: Mutex<HashMap<TopicPartition, Offset>>,
    assigned: Mutex<HashSet<TopicPartition>>,
}

crate::client::wraps_kafka_context!(ConsumeContext);

impl ConsumerContext for ConsumeContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let elements = TopicPartition::all_of(tpl);
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                if let Ok(mut starts) = self.starts.lock() {
                    for tp in &elements {
                        if let Some(offset) = starts.remove(tp) {
                            let _ = tpl.set_partition_offset(&tp.topic, tp.partition, offset);
                        }
                    }
                }
                if let Ok(mut a) = self.assigned.lock() {
                    if !cooperative {
                        a.clear();
                    }
                    a.extend(elements);
                }
                if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                }
            }
            _ => {
                if let Ok(mut a) = self.assigned.lock() {
                    for tp in &elements {
                        a.remove(tp);
                    }
                }
                if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                }
            }
        };
        if let Err(e) = result {
            tracing::warn!("rebalance failed: {e}");
        }
    }
}

pub(crate) fn run(opts: &KafkaOpts, args: &Consume, stop: &AtomicBool) -> Result<()> {
    let start = args.start;
    let client = opts
        .client()
        // librdkafka stops fetching for 1 s whenever its prefetch queue
        // fills, which stalls a fast console consumer; -X still wins.
        .set_default("fetch.queue.backoff.ms", "10")
        .set(
            "enable.partition.eof",
            if args.exit_at_end { "true" } else { "false" },
        )
        .set("enable.auto.offset.store", "false");
    let client = match &args.group {
        Some(g) => {
            let reset = match start {
                StartOffset::Latest => "latest",
                StartOffset::None => "error",
                _ => "earliest",
            };
            client
                .set("group.id", g)
                .set("enable.auto.commit", "true")
                .set("auto.offset.reset", reset)
        }
        // librdkafka's assign() wants a group id even though assigning never
        // joins a group; with auto-commit off nothing is ever written to it.
        None => client
            .set(
                "group.id",
                format!("kbridge-console-{}", std::process::id()),
            )
            .set("enable.auto.commit", "false"),
    };
    let consumer: BaseConsumer<ConsumeContext> = client.build(
        ConsumeContext {
            base: KafkaContext::default(),
            starts: Mutex::new(HashMap::new()),
            assigned: Mutex::new(HashSet::new()),
        },
        "the consumer",
    )?;

    let md = opts.metadata(consumer.client(), None)?;
    opts.require_topics(&md, &args.topics)?;
    let mut all: Vec<TopicPartition> = Vec::new();
    for t in &args.topics {
        all.extend(crate::client::partitions_of(&md, t)?);
    }
    // In a group, earliest/latest are the reset policy for partitions
    // without a committed offset (as with the Kafka scripts); committed
    // offsets always win. Explicit offsets and times override them.
    let starts = match (&args.group, start) {
        (Some(_), StartOffset::Earliest | StartOffset::Latest) => vec![None; all.len()],
        _ => start_offsets(opts, &consumer, &all, start)?,
    };

    match &args.group {
        None => {
            let tpl = TopicPartition::list_at(
                all.iter()
                    .zip(&starts)
                    .map(|(tp, off)| (tp, off.unwrap_or(Offset::Beginning))),
            );
            if let Ok(mut a) = consumer.context().assigned.lock() {
                a.extend(all.iter().cloned());
            }
            consumer
                .assign(&tpl)
                .context("cannot assign the partitions")?;
        }
        Some(group) => {
            if start == StartOffset::None {
                require_committed(opts, &consumer, group, &all)?;
            }
            if let Ok(mut s) = consumer.context().starts.lock() {
                for (tp, off) in all.iter().zip(starts) {
                    if let Some(off) = off {
                        s.insert(tp.clone(), off);
                    }
                }
            }
            let topics: Vec<&str> = args.topics.iter().map(String::as_str).collect();
            consumer.subscribe(&topics).context("cannot subscribe")?;
        }
    }

    let result = consume_loop(opts, &consumer, args, stop);
    if args.group.is_some() {
        // Commit what was stored (printed); the loop already flushed output.
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => tracing::warn!("final commit failed: {e}"),
        }
        consumer.unsubscribe();
    }
    result
}

/// Resolves explicit start offsets; `None` means "group's committed offset or
/// the reset policy".
fn start_offsets(
    opts: &KafkaOpts,
    consumer: &BaseConsumer<ConsumeContext>,
    all: &[TopicPartition],
    start: StartOffset,
) -> Result<Vec<Option<Offset>>> {
    Ok(match start {
        StartOffset::Earliest => vec![Some(Offset::Beginning); all.len()],
        StartOffset::Latest => vec![Some(Offset::End); all.len()],
        StartOffset::None => vec![None; all.len()],
        StartOffset::Absolute(n) => vec![Some(Offset::Offset(n)); all.len()],
        StartOffset::Tail(n) => vec![Some(Offset::OffsetTail(n)); all.len()],
        StartOffset::Time(ms) => {
            let found = opts.offsets_for_time(consumer, all, ms)?;
            found.into_iter().map(Some).collect()
        }
    })
}

fn require_committed(
    opts: &KafkaOpts,
    consumer: &BaseConsumer<ConsumeContext>,
    group: &str,
    all: &[TopicPartition],
) -> Result<()> {
    let committed = consumer
        .committed_offsets(TopicPartition::list(all), opts.timeout)
        .context("cannot read the group's committed offsets")?;
    let missing: Vec<String> = committed
        .elements()
        .iter()
        .filter(|e| !matches!(e.offset(), Offset::Offset(_)))
        .map(|e| format!("{}/{}", e.topic(), e.partition()))
        .collect();
    drop(committed);
    if !missing.is_empty() {
        bail!(
            "group '{group}' has no committed offset for {} (-o none requires one); start with -o earliest or -o latest, or set offsets with `kbridge groups reset-offsets {group} --topic … --execute`",
            missing.join(", ")
        );
    }
    Ok(())
}

fn consume_loop(
    opts: &KafkaOpts,
    consumer: &BaseConsumer<ConsumeContext>,
    args: &Consume,
    stop: &AtomicBool,
) -> Result<()> {
    let mut out = BufWriter::with_capacity(256 * 1024, std::io::stdout().lock());
    let mut printed: HashMap<TopicPartition, i64> = HashMap::new();
    let mut unflushed = 0usize;
    let mut count = 0u64;
    let mut eof: HashSet<TopicPartition> = HashSet::new();
    let mut line = Vec::with_capacity(4096);
    let group = args.group.is_some();

    // Flushes output, then stores the offsets of what was printed.
    let checkpoint =
        |out: &mut BufWriter<_>, printed: &mut HashMap<TopicPartition, i64>| -> Result<bool> {
            match out.flush() {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::BrokenPipe => return Ok(false),
                Err(e) => return Err(e).context("cannot write to standard output"),
            }
            if group {
                for (tp, o) in printed.drain() {
                    // The legacy store API stores `o + 1`, the next offset to read.
                    if let Err(e) = consumer.store_offset(&tp.topic, tp.partition, o) {
                        tracing::debug!("cannot store offset {tp}@{o}: {e}");
                    }
                }
            }
            Ok(true)
        };

    loop {
        if stop.load(Ordering::Relaxed) || args.count.is_some_and(|c| count >= c) {
            break;
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {
                if unflushed > 0 {
                    unflushed = 0;
                    if !checkpoint(&mut out, &mut printed)? {
                        return Ok(());
                    }
                }
            }
            Some(Ok(m)) => {
                line.clear();
                render(&m, args.format, &mut line)?;
                if let Err(e) = out.write_all(&line) {
                    if e.kind() == ErrorKind::BrokenPipe {
                        return Ok(());
                    }
                    return Err(e).context("cannot write to standard output");
                }
                count += 1;
                unflushed += 1;
                if group {
                    printed.insert(TopicPartition::new(m.topic(), m.partition()), m.offset());
                }
                if unflushed >= 10_000 {
                    unflushed = 0;
                    if !checkpoint(&mut out, &mut printed)? {
                        return Ok(());
                    }
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                if args.exit_at_end && on_eof(opts, consumer, p, &mut eof) {
                    break;
                }
            }
            Some(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset))) => {
                checkpoint(&mut out, &mut printed)?;
                bail!(
                    "a partition has no committed offset for this group and -o none forbids a reset; start with -o earliest or -o latest"
                );
            }
            Some(Err(e)) => {
                tracing::warn!("consumer error: {e}");
                if let Some((code, reason)) = consumer.client().fatal_error() {
                    bail!("fatal consumer error {code:?}: {reason}");
                }
            }
        }
    }
    checkpoint(&mut out, &mut printed)?;
    Ok(())
}

/// Records an end-of-partition event; true once every assigned partition has
/// reached its end. The event names only the partition number, so when
/// several topics share it the position is compared with the high watermark.
fn on_eof(
    opts: &KafkaOpts,
    consumer: &BaseConsumer<ConsumeContext>,
    partition: i32,
    eof: &mut HashSet<TopicPartition>,
) -> bool {
    let assigned: HashSet<TopicPartition> = consumer
        .context()
        .assigned
        .lock()
        .map(|a| a.clone())
        .unwrap_or_default();
    let candidates: Vec<&TopicPartition> = assigned
        .iter()
        .filter(|tp| tp.partition == partition)
        .filter(|tp| !eof.contains(*tp))
        .collect();
    if candidates.len() == 1 {
        eof.insert(candidates[0].clone());
    } else {
        let positions = consumer.position().ok();
        for tp in candidates {
            let pos = positions
                .as_ref()
                .and_then(|l| l.find_partition(&tp.topic, tp.partition))
                .and_then(|e| e.offset().to_raw());
            if let Ok((low, high)) =
                consumer.fetch_watermarks(&tp.topic, tp.partition, opts.timeout)
                && pos.filter(|o| *o >= 0).unwrap_or(low) >= high
            {
                eof.insert(tp.clone());
            }
        }
    }
    !assigned.is_empty() && assigned.iter().all(|tp| eof.contains(tp))
}
