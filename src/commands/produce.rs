//! `kbridge produce`: JSON lines in, one message each, a delivery report out.
//!
//! Lines are checked before they are sent, so a typo in line 5 000 of a
//! replay file stops the run there with the line number rather than putting
//! garbage on the topic. Lines are read and checked on one thread
//! (`input_lines`), sent on this one, and delivery reports are served on a
//! third (`ReportThread`); bench/results.md compares it with kcat.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Read, Stdout, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer, ProducerContext};

use super::input_lines;
use super::topic_handle::TopicHandle;
use crate::client::{KafkaContext, KafkaOpts};
use crate::error::{Reported, UsageError};

/// Delivery reports arrive on librdkafka's thread; this context counts them
/// and prints one line each unless `--quiet`.
struct ReportContext {
    base: KafkaContext,
    quiet: bool,
    delivered: AtomicU64,
    failed: AtomicU64,
    out: Mutex<BufWriter<Stdout>>,
}

crate::client::wraps_kafka_context!(ReportContext);

impl ReportContext {
    /// Delivery reports served so far.
    fn served(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed)
    }
}

impl ProducerContext for ReportContext {
    /// The input line number, for reports that point back at the source.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, line: usize) {
        match result {
            Ok(m) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
                if !self.quiet
                    && let Ok(mut out) = self.out.lock()
                {
                    let _ = writeln!(
                        out,
                        "line {line}: delivered to {} [{}] at offset {}",
                        m.topic(),
                        m.partition(),
                        m.offset()
                    );
                }
            }
            Err((e, m)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                eprintln!(
                    "kbridge: line {line}: delivery to {} failed: {e}",
                    m.topic()
                );
            }
        }
    }
}

/// What to produce, and how.
#[derive(Debug)]
pub(crate) struct Produce {
    pub topic: String,
    pub source: Source,
    /// Take each message's key from this top-level JSON field.
    pub key_field: Option<String>,
    /// The key of every message.
    pub key: Option<String>,
    pub headers: Vec<(String, String)>,
    /// Every message to this partition instead of the partitioner's choice.
    pub partition: Option<i32>,
    /// Lines as they are, unchecked.
    pub raw: bool,
    /// Report invalid JSON lines and go on instead of stopping.
    pub skip_invalid: bool,
    /// Only the summary, no report per message.
    pub quiet: bool,
}

/// Where the lines come from.
#[derive(Debug)]
pub(crate) enum Source {
    Stdin,
    File(PathBuf),
}

pub(crate) fn run(opts: &KafkaOpts, args: &Produce) -> Result<()> {
    // Bound how long a message may wait for the cluster; -X wins.
    let msg_timeout = opts.timeout.max(Duration::from_secs(30)).as_millis();
    let ctx = ReportContext {
        base: KafkaContext::default(),
        quiet: args.quiet,
        delivered: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        out: Mutex::new(BufWriter::with_capacity(64 * 1024, std::io::stdout())),
    };
    let producer: Arc<BaseProducer<ReportContext>> = Arc::new(
        opts.client()
            .set_default("message.timeout.ms", msg_timeout.to_string())
            .build(ctx, "the producer")?,
    );
    // Declared after the producer, so dropped (joined) before it.
    let _reports = ReportThread::start(producer.clone());

    let (reader, size): (Box<dyn Read + Send>, Option<u64>) = match &args.source {
        Source::File(path) => {
            let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            let size = f.metadata().ok().map(|m| m.len());
            (Box::new(f), size)
        }
        Source::Stdin => (Box::new(std::io::stdin()), None),
    };
    let progress = progress_bar(size, args.quiet);

    let started = Instant::now();
    let skips = Arc::new(HeldBack::default());
    let (raw, key_field) = (args.raw, args.key_field.clone());
    let bar = progress.clone();
    let input = input_lines::spawn(
        reader,
        Box::new(move |body: &[u8]| prepare(body, raw, key_field.as_deref())),
        args.skip_invalid,
        Box::new({
            let skips = skips.clone();
            move |msg: &str| skips.say(&bar, format!("kbridge: {msg}; skipped"))
        }),
    );
    // The topic (and partition) are checked while the first lines are
    // read and checked: the metadata request's round trip overlaps them.
    let md = opts.metadata(producer.client(), Some(&args.topic))?;
    opts.require_topics(&md, std::slice::from_ref(&args.topic))?;
    if let Some(p) = args.partition {
        let count = crate::client::partitions_of(&md, &args.topic)?.len() as i32;
        if p < 0 || p >= count {
            bail!(UsageError(format!(
                "--partition {p} does not exist: '{}' has partitions 0..{}",
                args.topic,
                count - 1
            )));
        }
    }
    skips.release(&progress);
    // Only for a topic that exists: a handle on an unknown topic may ask
    // the cluster for it, and a broker that creates topics on request would.
    let topic = TopicHandle::new(&producer, &args.topic, &args.headers)?;

    let fixed_key = args.key.as_deref().map(str::as_bytes);
    let mut invalid = 0u64;
    let mut stopped: Option<Stop> = None;
    'input: while let Some(chunk) = input.next_chunk() {
        let batch = match chunk {
            input_lines::Chunk::Lines(batch) => batch,
            input_lines::Chunk::Invalid(msg) => {
                stopped = Some(Stop::Invalid(msg));
                break;
            }
            input_lines::Chunk::ReadError(e) => {
                stopped = Some(Stop::Unreadable(e.to_string()));
                break;
            }
        };
        for line in &batch.lines {
            let key = batch.key(line).or(fixed_key);
            if let Err(e) = send(
                &producer,
                &topic,
                args.partition,
                key,
                batch.body(line),
                line.no,
            ) {
                stopped = Some(Stop::Unsendable(format!("{e:#}")));
                break 'input;
            }
        }
        invalid += batch.skipped;
        progress.inc(if size.is_some() {
            batch.bytes
        } else {
            batch.read
        });
        input.recycle(batch);
    }

    // Deliver everything that was queued before deciding the exit status.
    let flush_result = drain(&producer, Duration::from_millis(msg_timeout as u64 + 5_000));
    progress.finish_and_clear();
    let ctx = producer.context();
    if let Ok(mut out) = ctx.out.lock() {
        out.flush().context("cannot write to standard output")?;
    }
    let delivered = ctx.delivered.load(Ordering::Relaxed);
    let failed = ctx.failed.load(Ordering::Relaxed);
    eprintln!(
        "kbridge: {delivered} message(s) delivered to {}, {failed} failed{} in {:.2?}",
        args.topic,
        if invalid > 0 {
            format!(", {invalid} invalid line(s) skipped")
        } else {
            String::new()
        },
        started.elapsed()
    );
    if let Err(left) = flush_result {
        bail!("{left} message(s) were still undelivered when the timeout ran out");
    }
    match stopped {
        Some(Stop::Invalid(msg)) => bail!(
            "{msg}; stopped before sending it (earlier lines were sent); fix the line or pass --skip-invalid"
        ),
        Some(Stop::Unsendable(msg)) => {
            bail!("{msg}; stopped there (earlier lines were sent)")
        }
        Some(Stop::Unreadable(msg)) => {
            bail!("cannot read input: {msg}; stopped there (earlier lines were sent)")
        }
        None => {}
    }
    if failed > 0 {
        return Err(Reported(format!("{failed} message(s) were not delivered")).into());
    }
    Ok(())
}

/// The reader's "skipped" lines, held back until the topic was found: a
/// missing topic is the one error to show then, not lines that were never
/// going to be sent. The reader reads a few batches ahead at most, and
/// only the first `HELD_LINES` lines are kept; the rest are counted.
#[derive(Default)]
struct HeldBack {
    held: Mutex<Held>,
    /// Set once the held lines were printed: lines are printed as they come.
    released: AtomicBool,
}

#[derive(Default)]
struct Held {
    lines: Vec<String>,
    more: u64,
}

const HELD_LINES: usize = 100;

impl HeldBack {
    fn say(&self, bar: &ProgressBar, line: String) {
        if !self.released.load(Ordering::Acquire)
            && let Ok(mut held) = self.held.lock()
            // Checked again under the lock: `release` prints and sets the
            // flag while holding it, so nothing overtakes the held lines.
            && !self.released.load(Ordering::Acquire)
        {
            if held.lines.len() < HELD_LINES {
                held.lines.push(line);
            } else {
                held.more += 1;
            }
            return;
        }
        bar.suspend(|| eprintln!("{line}"));
    }

    /// Prints what was held back; from now on lines are printed at once.
    fn release(&self, bar: &ProgressBar) {
        if let Ok(mut held) = self.held.lock() {
            let held = std::mem::take(&mut *held);
            bar.suspend(|| {
                for line in &held.lines {
                    eprintln!("{line}");
                }
                if held.more > 0 {
                    eprintln!("kbridge: … and {} more invalid line(s) skipped", held.more);
                }
            });
            self.released.store(true, Ordering::Release);
        }
    }
}

/// Why the input was not read to its end.
enum Stop {
    /// A line is not valid JSON.
    Invalid(String),
    /// librdkafka refused to queue a line (too large, unknown partition …).
    Unsendable(String),
    /// Reading the input failed.
    Unreadable(String),
}

/// Validates one line and extracts its key, or says what is wrong with it.
fn prepare(body: &[u8], raw: bool, key_field: Option<&str>) -> Result<Option<Vec<u8>>, String> {
    if raw {
        return Ok(None);
    }
    match key_field {
        None => serde_json::from_slice::<serde::de::IgnoredAny>(body)
            .map(|_| None)
            .map_err(|e| format!("invalid JSON: {e}")),
        Some(field) => {
            let v: serde_json::Value =
                serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
            Ok(match v.get(field) {
                Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.as_bytes().to_vec()),
                Some(serde_json::Value::Null) | None => None,
                Some(serde_json::Value::String(_)) => None,
                Some(other) => Some(other.to_string().into_bytes()),
            })
        }
    }
}

/// Serves the producer's delivery reports on a thread of its own, beside
/// the reading and sending, until dropped: reports are handled as they
/// come, the end is prompt, and the producer is still dropped properly
/// afterwards (its TLS state must not outlive it into the process's exit).
///
/// rust-rdkafka's `poll(timeout)` hands librdkafka the time left rounded
/// down to whole milliseconds and loops until the deadline: a wait shorter
/// than a millisecond polls without blocking, so `poll(1 ms)` in a loop is
/// a busy loop that took a core from the sender and librdkafka's broker
/// thread. A longer wait cannot be cut short at the end (rust-rdkafka's
/// ThreadedProducer polls 100 ms at a time and its drop waits for the last
/// poll). So this thread polls without waiting and sleeps briefly only when
/// there was nothing to serve.
struct ReportThread {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How long the report thread rests when no report was waiting.
const REPORT_IDLE: Duration = Duration::from_millis(1);

/// How long the sender rests when librdkafka's queue is full and no
/// delivery report was waiting to be served.
const QUEUE_FULL_REST: Duration = Duration::from_micros(100);

impl ReportThread {
    fn start(producer: Arc<BaseProducer<ReportContext>>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let ctx = producer.context();
            while !stopped.load(Ordering::Relaxed) {
                let served = ctx.served();
                producer.poll(Duration::ZERO);
                if ctx.served() == served {
                    std::thread::sleep(REPORT_IDLE);
                }
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for ReportThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Waits until every queued message has its delivery report served by the
/// report thread (`in_flight_count` counts a message until its report
/// was handled); `Err` holds how many are left at the timeout.
///
/// librdkafka sends a partly filled batch once `linger.ms` (5 ms) has
/// passed, but at once while a flush is under way: so the wait starts with
/// `rd_kafka_flush`, which (rust-rdkafka takes reports as events) only
/// waits for the report thread to have served them all, and the last
/// batch goes out without waiting for `linger.ms`.
fn drain(producer: &BaseProducer<ReportContext>, timeout: Duration) -> Result<(), i32> {
    let deadline = Instant::now() + timeout;
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: the producer's handle is live for the call; a flush in event
    // mode polls nothing, so the report thread stays the only poller.
    unsafe { rdkafka::bindings::rd_kafka_flush(producer.client().native_ptr(), ms) };
    loop {
        let left = producer.in_flight_count();
        if left == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(left);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Queues one line, serving delivery reports while librdkafka's queue is
/// full.
fn send(
    producer: &BaseProducer<ReportContext>,
    topic: &TopicHandle<'_>,
    partition: Option<i32>,
    key: Option<&[u8]>,
    body: &[u8],
    line_no: usize,
) -> Result<()> {
    loop {
        match topic.send(body, key, partition, line_no) {
            Ok(()) => return Ok(()),
            Err(RDKafkaErrorCode::QueueFull) => {
                // The local queue is full (`queue.buffering.max.messages`)
                // until delivery reports are served: serve them here too,
                // as kcat does, and rest only if none was waiting. A rest
                // of a whole millisecond each time cost a tenth of the
                // throughput.
                let served = producer.context().served();
                producer.poll(Duration::ZERO);
                if producer.context().served() == served {
                    std::thread::sleep(QUEUE_FULL_REST);
                }
            }
            Err(e) => bail!("line {line_no}: cannot queue the message: {e}"),
        }
    }
}

/// A progress bar on a terminal only: bytes for a file, a count for stdin.
/// Hidden when reports go to the same terminal, where it would garble them.
fn progress_bar(size: Option<u64>, quiet: bool) -> ProgressBar {
    if !std::io::stderr().is_terminal() || (!quiet && std::io::stdout().is_terminal()) {
        return ProgressBar::hidden();
    }
    match size {
        Some(len) => ProgressBar::new(len).with_style(
            ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {pos} lines {per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_from_field() {
        let a = Some("df_fault_id");
        assert_eq!(
            prepare(br#"{"df_fault_id":"f1"}"#, false, a).unwrap(),
            Some(b"f1".to_vec())
        );
        assert_eq!(
            prepare(br#"{"df_fault_id":7}"#, false, a).unwrap(),
            Some(b"7".to_vec())
        );
        assert_eq!(prepare(br#"{"other":1}"#, false, a).unwrap(), None);
    }

    #[test]
    fn invalid_json_is_reported_raw_is_not_checked() {
        let err = prepare(b"{not json", false, None).unwrap_err();
        assert!(err.starts_with("invalid JSON"), "{err}");
        assert_eq!(prepare(b"{not json", true, None).unwrap(), None);
    }
}
