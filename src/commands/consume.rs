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

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use crate::cli::{ConsumeArgs, Format};
use crate::client::{KafkaContext, KafkaOpts};
use crate::time_spec::StartOffset;

type Tp = (String, i32);

/// Applies explicit start offsets the first time a partition is assigned
/// and keeps track of the current assignment (for `-e`).
struct ConsumeContext {
    base: KafkaContext,
    starts: Mutex<HashMap<Tp, Offset>>,
    assigned: Mutex<HashSet<Tp>>,
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
        let elements: Vec<Tp> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                if let Ok(mut starts) = self.starts.lock() {
                    for tp in &elements {
                        if let Some(offset) = starts.remove(tp) {
                            let _ = tpl.set_partition_offset(&tp.0, tp.1, offset);
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

pub(crate) fn run(opts: &KafkaOpts, args: ConsumeArgs, stop: &AtomicBool) -> Result<()> {
    let start = args.offset.unwrap_or(StartOffset::Earliest);
    if start == StartOffset::None && args.group.is_none() {
        bail!(crate::UsageError(
            "-o none needs a group (-g): it means \"start from the group's committed offsets\""
                .into()
        ));
    }
    let mut cfg = opts.config();
    // librdkafka stops fetching for 1 s whenever its prefetch queue fills,
    // which stalls a fast console consumer; -X still wins.
    if !opts
        .properties
        .iter()
        .any(|(k, _)| k == "fetch.queue.backoff.ms")
    {
        cfg.set("fetch.queue.backoff.ms", "10");
    }
    cfg.set(
        "enable.partition.eof",
        if args.exit_at_end { "true" } else { "false" },
    )
    .set("enable.auto.offset.store", "false");
    if let Some(g) = &args.group {
        let reset = match start {
            StartOffset::Latest => "latest",
            StartOffset::None => "error",
            _ => "earliest",
        };
        cfg.set("group.id", g)
            .set("enable.auto.commit", "true")
            .set("auto.offset.reset", reset);
    } else {
        // librdkafka's assign() wants a group id even though assigning never
        // joins a group; with auto-commit off nothing is ever written to it.
        cfg.set(
            "group.id",
            format!("kbridge-console-{}", std::process::id()),
        )
        .set("enable.auto.commit", "false");
    }
    let consumer: BaseConsumer<ConsumeContext> = cfg
        .create_with_context(ConsumeContext {
            base: KafkaContext::default(),
            starts: Mutex::new(HashMap::new()),
            assigned: Mutex::new(HashSet::new()),
        })
        .map_err(|e| anyhow!("cannot create the consumer: {e}; check the -X properties"))?;

    let md = opts.metadata(consumer.client(), None)?;
    opts.require_topics(&md, &args.topics)?;
    let mut all: Vec<Tp> = Vec::new();
    for t in &args.topics {
        for p in crate::client::partitions_of(&md, t)? {
            all.push((t.clone(), p));
        }
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
            let mut tpl = TopicPartitionList::new();
            for ((t, p), off) in all.iter().zip(&starts) {
                tpl.add_partition_offset(t, *p, off.unwrap_or(Offset::Beginning))?;
            }
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

    let result = consume_loop(opts, &consumer, &args, stop);
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
    all: &[Tp],
    start: StartOffset,
) -> Result<Vec<Option<Offset>>> {
    Ok(match start {
        StartOffset::Earliest => vec![Some(Offset::Beginning); all.len()],
        StartOffset::Latest => vec![Some(Offset::End); all.len()],
        StartOffset::None => vec![None; all.len()],
        StartOffset::Absolute(n) => vec![Some(Offset::Offset(n)); all.len()],
        StartOffset::Tail(n) => vec![Some(Offset::OffsetTail(n)); all.len()],
        StartOffset::Time(ms) => {
            let found = offsets_for_time(opts, consumer, all, ms)?;
            found.into_iter().map(Some).collect()
        }
    })
}

/// The first offset at or after `ms` for each partition; the log end when no
/// message is that recent.
pub(crate) fn offsets_for_time<C: ConsumerContext>(
    opts: &KafkaOpts,
    consumer: &BaseConsumer<C>,
    all: &[Tp],
    ms: i64,
) -> Result<Vec<Offset>> {
    let mut tpl = TopicPartitionList::new();
    for (t, p) in all {
        tpl.add_partition_offset(t, *p, Offset::Offset(ms))?;
    }
    let found = consumer
        .offsets_for_times(tpl, opts.timeout)
        .context("cannot look up offsets by time")?;
    all.iter()
        .map(|(t, p)| {
            let e = found
                .find_partition(t, *p)
                .ok_or_else(|| anyhow!("no offset returned for {t}/{p}"))?;
            Ok(match e.offset() {
                Offset::Offset(o) if o >= 0 => Offset::Offset(o),
                _ => Offset::End,
            })
        })
        .collect()
}

fn require_committed(
    opts: &KafkaOpts,
    consumer: &BaseConsumer<ConsumeContext>,
    group: &str,
    all: &[Tp],
) -> Result<()> {
    let mut tpl = TopicPartitionList::new();
    for (t, p) in all {
        tpl.add_partition(t, *p);
    }
    let committed = consumer
        .committed_offsets(tpl, opts.timeout)
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
    args: &ConsumeArgs,
    stop: &AtomicBool,
) -> Result<()> {
    let mut out = BufWriter::with_capacity(256 * 1024, std::io::stdout().lock());
    let mut printed: HashMap<Tp, i64> = HashMap::new();
    let mut unflushed = 0usize;
    let mut count = 0u64;
    let mut eof: HashSet<Tp> = HashSet::new();
    let mut line = Vec::with_capacity(4096);
    let group = args.group.is_some();

    // Flushes output, then stores the offsets of what was printed.
    let checkpoint = |out: &mut BufWriter<_>, printed: &mut HashMap<Tp, i64>| -> Result<bool> {
        match out.flush() {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::BrokenPipe => return Ok(false),
            Err(e) => return Err(e).context("cannot write to standard output"),
        }
        if group {
            for ((t, p), o) in printed.drain() {
                // The legacy store API stores `o + 1`, the next offset to read.
                if let Err(e) = consumer.store_offset(&t, p, o) {
                    tracing::debug!("cannot store offset {t}/{p}@{o}: {e}");
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
                    printed.insert((m.topic().to_string(), m.partition()), m.offset());
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
    eof: &mut HashSet<Tp>,
) -> bool {
    let assigned: HashSet<Tp> = consumer
        .context()
        .assigned
        .lock()
        .map(|a| a.clone())
        .unwrap_or_default();
    let candidates: Vec<&Tp> = assigned
        .iter()
        .filter(|(_, p)| *p == partition)
        .filter(|tp| !eof.contains(*tp))
        .collect();
    if candidates.len() == 1 {
        eof.insert(candidates[0].clone());
    } else {
        let positions = consumer.position().ok();
        for tp in candidates {
            let pos = positions
                .as_ref()
                .and_then(|l| l.find_partition(&tp.0, tp.1))
                .and_then(|e| e.offset().to_raw());
            if let Ok((low, high)) = consumer.fetch_watermarks(&tp.0, tp.1, opts.timeout)
                && pos.filter(|o| *o >= 0).unwrap_or(low) >= high
            {
                eof.insert(tp.clone());
            }
        }
    }
    !assigned.is_empty() && assigned.iter().all(|tp| eof.contains(tp))
}

/// One JSON object per message, as `-f json` prints it.
#[derive(Serialize)]
struct JsonMessage<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    timestamp: Option<i64>,
    key: Option<Text<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_encoding: Option<&'static str>,
    headers: Vec<JsonHeader<'a>>,
    value: Option<Value<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_encoding: Option<&'static str>,
}

#[derive(Serialize)]
struct JsonHeader<'a> {
    key: &'a str,
    value: Option<Text<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    encoding: Option<&'static str>,
}

/// Bytes as a string when they are UTF-8, else base64.
#[derive(Serialize)]
#[serde(untagged)]
enum Text<'a> {
    Utf8(&'a str),
    Base64(String),
}

#[derive(Serialize)]
#[serde(untagged)]
enum Value<'a> {
    Json(&'a serde_json::value::RawValue),
    Parsed(serde_json::Value),
    Text(Text<'a>),
}

fn text(bytes: &[u8]) -> (Text<'_>, Option<&'static str>) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (Text::Utf8(s), None),
        Err(_) => (
            Text::Base64(base64::engine::general_purpose::STANDARD.encode(bytes)),
            Some("base64"),
        ),
    }
}

/// The value as JSON when it parses, else as text. A value spread over
/// several lines is re-serialized so the output stays one object per line.
fn value(bytes: &[u8]) -> (Value<'_>, Option<&'static str>) {
    if let Ok(raw) = serde_json::from_slice::<&serde_json::value::RawValue>(bytes) {
        if !raw.get().contains('\n') {
            return (Value::Json(raw), None);
        }
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(raw.get()) {
            return (Value::Parsed(v), None);
        }
    }
    let (t, enc) = text(bytes);
    (Value::Text(t), enc)
}

pub(crate) fn render(m: &BorrowedMessage<'_>, format: Format, out: &mut Vec<u8>) -> Result<()> {
    match format {
        Format::Text => {
            out.extend_from_slice(m.payload().unwrap_or_default());
            out.push(b'\n');
        }
        Format::Json => {
            let (key, key_encoding) = match m.key().map(text) {
                Some((k, e)) => (Some(k), e),
                None => (None, None),
            };
            let (value, value_encoding) = match m.payload().map(value) {
                Some((v, e)) => (Some(v), e),
                None => (None, None),
            };
            let headers = m
                .headers()
                .map(|hs| {
                    hs.iter()
                        .map(|h| {
                            let (value, encoding) = match h.value.map(text) {
                                Some((v, e)) => (Some(v), e),
                                None => (None, None),
                            };
                            JsonHeader {
                                key: h.key,
                                value,
                                encoding,
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            let record = JsonMessage {
                topic: m.topic(),
                partition: m.partition(),
                offset: m.offset(),
                timestamp: m.timestamp().to_millis(),
                key,
                key_encoding,
                headers,
                value,
                value_encoding,
            };
            serde_json::to_writer(&mut *out, &record)?;
            out.push(b'\n');
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_of(v: Value<'_>) -> String {
        serde_json::to_string(&v).unwrap()
    }

    #[test]
    fn values_render_as_json_text_or_base64() {
        let (v, e) = value(br#"{"a":1}"#);
        assert_eq!((json_of(v), e), (r#"{"a":1}"#.to_string(), None));
        let (v, e) = value(b"{\n  \"a\": 1\n}");
        assert_eq!((json_of(v), e), (r#"{"a":1}"#.to_string(), None));
        let (v, e) = value(b"plain text");
        assert_eq!((json_of(v), e), (r#""plain text""#.to_string(), None));
        let (v, e) = value(&[0xff, 0xfe]);
        assert_eq!((json_of(v), e), (r#""//4=""#.to_string(), Some("base64")));
    }
}
