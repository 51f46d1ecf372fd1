//! `kbridge dlq redrive TOPIC`: the fix-and-replay loop.
//!
//! Each selected dead letter is planned ([`plan`], pure): refused after
//! `--max-redrives`, fixed with `--fix`, and shown — with `-c`, through
//! its route's own pipeline as `kbridge check` shows it (skip, invalid, or
//! the exact bodies). Nothing is sent without `--execute`, as `groups
//! reset-offsets` does.
//!
//! With `--execute`, to the original topic (the default) or to a route's
//! webhook (`--to webhook`):
//! - **In order per key.** The topic's partitions are read in order, one
//!   record at a time, and a record goes back to its original partition.
//!   Once a record of a key fails, the later records of that key in this
//!   run are held back (reported, not sent).
//! - **Resumable, never twice on its own.** Progress is committed in a
//!   consumer group (`--group`, by default one named after the topic and
//!   the selection), so a run that stops continues where it stopped. To a
//!   topic, the records and the progress are committed in one Kafka
//!   transaction: a run killed at any point sends none twice (the
//!   relay reads committed records only). To a webhook, progress is
//!   committed after each record; a run killed between a delivery and its
//!   commit sends that one record again on the next run, with the same
//!   Idempotency-Key as the relay used.
//! - **Paced**: `--rate`, and to a webhook the route's own `rate_limit`.

use std::collections::{BTreeMap, HashSet};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::letter::{Letter, Record};
use super::read::{Reader, Span};
use super::rewrite::{self, Headers};
use super::select::{Select, jq_input, value_of};
use crate::client::{KafkaContext, KafkaOpts};
use crate::output::outln;
use crate::relay::commit::Ownership;
use crate::relay::config::{RateLimit, RelayConfig};
use crate::relay::live_route::LiveRoute;
use crate::relay::route::jq::Jq;
use crate::relay::route::{Event, RouteDecision};

/// Where re-driven records go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// Back to the topic they were first read from.
    Topic,
    /// Straight to a route's webhook (the `--route`, else the record's).
    Webhook,
}

/// A re-drive, as the command line asked it.
pub(crate) struct Redrive {
    pub topic: String,
    pub span: Span,
    pub select: Select,
    pub fix: Option<Jq>,
    pub target: Target,
    /// `--via`: the route a webhook re-drive sends through (default: the
    /// record's own).
    pub via: Option<String>,
    pub max_redrives: u32,
    pub rate: Option<RateLimit>,
    /// The consumer group of its progress.
    pub group: String,
    /// Start over: the group's progress is not read (it is still written).
    pub restart: bool,
    pub execute: bool,
    pub json: bool,
    /// The relay's configuration: its routes, for the dry run's bodies and
    /// for `--to webhook`.
    pub config: Option<RelayConfig>,
}

/// What a re-drive does with one selected dead letter.
#[derive(Debug, PartialEq)]
pub(crate) enum Plan {
    /// Not re-driven, deliberately (`--max-redrives`).
    Refuse(String),
    /// Cannot be re-driven as asked (a failing `--fix`, no original topic).
    Fail(String),
    Send(Outgoing),
}

/// A dead letter made ready to go again.
#[derive(Debug, PartialEq)]
pub(crate) struct Outgoing {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Headers,
    /// The original topic and partition (to a topic).
    pub topic: Option<String>,
    pub partition: Option<i32>,
    /// `topic-partition-offset` of the original event: its Idempotency-Key
    /// at a webhook, as the relay's.
    pub coordinates: Option<String>,
    /// The re-drive this is (1 for the first).
    pub count: u32,
}

/// Plans one dead letter: pure.
pub(crate) fn plan(
    record: &Record,
    letter: &Letter,
    fix: Option<&Jq>,
    max_redrives: u32,
    target: Target,
) -> Plan {
    if letter.redriven >= max_redrives {
        return Plan::Refuse(format!(
            "re-driven {} time{} already (--max-redrives {max_redrives}); see why with `kbridge dlq show`, fix the cause, or raise --max-redrives",
            letter.redriven,
            if letter.redriven == 1 { "" } else { "s" }
        ));
    }
    let source = letter.source.as_ref();
    if target == Target::Topic && source.is_none() {
        return Plan::Fail(
            "its headers do not say which topic it came from (kbridge.topic, __connect.errors.topic or kafka_dlt-original-topic): re-drive it to a webhook (--to webhook --via ROUTE), or produce it by hand".into(),
        );
    }
    if let Some(bad) =
        source.filter(|s| target == Target::Topic && !crate::relay::config::topic_name_ok(&s.topic))
    {
        return Plan::Fail(format!(
            "its original topic '{}' is not a topic name (a storm digest's dead letter says where its group came from): re-drive it to a webhook (--to webhook --via ROUTE)",
            bad.topic
        ));
    }
    if record.value.is_none() && record.header("kbridge.value_omitted").is_some() {
        return Plan::Fail(format!(
            "its value was left out of the dead letter (too large for the dead-letter topic); it is still at its source{}",
            source.map_or(String::new(), |s| format!(
                " {}/{}@{}",
                s.topic,
                s.partition.map_or("?".into(), |p| p.to_string()),
                s.offset.map_or("?".into(), |o| o.to_string())
            ))
        ));
    }
    let mut value = record.value.clone();
    if let Some(fix) = fix {
        let fixed = jq_input(record).and_then(|input| {
            let out = fix.bodies(&input);
            crate::relay::route::jq::dispose(input);
            out
        });
        value = match fixed {
            Err(e) => return Plan::Fail(format!("--fix: {e}")),
            Ok(outputs) => match <[_; 1]>::try_from(outputs) {
                Ok([Ok(v)]) => Some(v),
                Ok([Err(e)]) => return Plan::Fail(format!("--fix: {e}")),
                Err(outputs) => {
                    return Plan::Fail(format!(
                        "--fix gave {} outputs; it must give the new value, once",
                        outputs.len()
                    ));
                }
            },
        };
    }
    let count = letter.redriven + 1;
    let from = format!("{}/{}@{}", record.topic, record.partition, record.offset);
    Plan::Send(Outgoing {
        key: record.key.clone(),
        value,
        headers: rewrite::redriven(&record.headers, count, &from),
        topic: source.map(|s| s.topic.clone()),
        partition: source.and_then(|s| s.partition),
        coordinates: source
            .and_then(|s| Some(format!("{}-{}-{}", s.topic, s.partition?, s.offset?))),
        count,
    })
}

/// What a run came to.
#[derive(Debug, Default)]
struct Summary {
    read: u64,
    selected: u64,
    sent: u64,
    /// To a webhook: the route skipped it (its filter).
    skipped: u64,
    refused: u64,
    failed: u64,
    held: u64,
    interrupted: bool,
}

/// One record's line: what was (or would be) done.
struct Line<'a> {
    record: &'a Record,
    action: &'static str,
    to: Option<Value>,
    reason: Option<String>,
    value: Option<&'a [u8]>,
    routes: Vec<(String, RouteDecision)>,
}

impl Redrive {
    /// Runs it until done or stopped: the first Ctrl-C or SIGTERM lets the
    /// record in hand finish — a record not yet sent is left for the next
    /// run, one partly sent (the first of its bodies delivered) is
    /// finished — and commits the progress; a second drops the request on
    /// the wire (sent again by the next run, with the same
    /// Idempotency-Key).
    pub(crate) async fn run_until_signalled(self, opts: KafkaOpts) -> Result<ExitCode> {
        let stops = Stops {
            flag: Arc::new(AtomicBool::new(false)),
            soft: Ownership::new(0, &CancellationToken::new()),
            hard: Ownership::new(0, &CancellationToken::new()),
        };
        {
            let stops = stops.clone();
            tokio::spawn(async move {
                if crate::relay::shutdown::wait_for_signal().await.is_ok() {
                    eprintln!(
                        "kbridge: stopping after the record in hand (signal again to drop it)"
                    );
                    stops.flag.store(true, Ordering::Relaxed);
                    stops.soft.end();
                }
                if crate::relay::shutdown::wait_for_signal().await.is_ok() {
                    stops.soft.revoke();
                    stops.hard.end();
                    stops.hard.revoke();
                }
            });
        }
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || self.run(&opts, &stops, &runtime)).await?
    }

    /// Runs it (blocking).
    fn run(
        self,
        opts: &KafkaOpts,
        stops: &Stops,
        runtime: &tokio::runtime::Handle,
    ) -> Result<ExitCode> {
        let stop = &*stops.flag;
        let _entered = runtime.enter();
        let routes = match &self.config {
            Some(cfg) => {
                crate::relay::route::jq_budget::configure(cfg.jq.budget());
                LiveRoute::build_all(cfg, &Arc::new(Default::default()))
                    .map_err(|e| crate::error::UsageError(format!("{e:#}")))?
            }
            None => Vec::new(),
        };
        // Before the progress is read: starting the transactions fences a
        // run still going and aborts what a killed one left open.
        let mut sink = if self.execute {
            Some(Sink::new(opts, &self)?)
        } else {
            None
        };
        let restart = self.restart;
        let mut reader = Reader::open(
            opts,
            &self.topic,
            self.span.clone(),
            Some(&self.group),
            |consumer, all| {
                if restart {
                    return Ok(BTreeMap::new());
                }
                committed(consumer, all, opts.timeout)
            },
        )?;
        let progress_bar = self.progress_bar(reader.total());
        let mut summary = Summary::default();
        let mut failed_keys: HashSet<Vec<u8>> = HashSet::new();
        let mut pace = Pace::new(self.rate);
        while let Some(record) = reader.next()? {
            summary.read += 1;
            progress_bar.inc(1);
            let letter = Letter::of(&record);
            let selected = match self.select.takes(&record, &letter) {
                Ok(s) => s,
                Err(e) => {
                    // Not known to be out of the selection: a failure,
                    // which holds its key back like any other.
                    eprintln!(
                        "kbridge: {}/{}@{}: cannot tell whether it is selected: {e}",
                        record.topic, record.partition, record.offset
                    );
                    summary.failed += 1;
                    if let Some(k) = &record.key {
                        failed_keys.insert(k.clone());
                    }
                    false
                }
            };
            if selected {
                summary.selected += 1;
                let held = record.key.as_ref().is_some_and(|k| failed_keys.contains(k));
                let planned = (!held).then(|| {
                    plan(
                        &record,
                        &letter,
                        self.fix.as_ref(),
                        self.max_redrives,
                        self.target,
                    )
                });
                let line = match &planned {
                    None => {
                        summary.held += 1;
                        Line {
                            record: &record,
                            action: "held",
                            to: None,
                            reason: Some(
                                "held back: an earlier dead letter of its key failed in this run (per-key order); re-drive them together once it is fixed".into(),
                            ),
                            value: None,
                            routes: Vec::new(),
                        }
                    }
                    Some(planned) => self.act(
                        &record,
                        &letter,
                        planned,
                        &routes,
                        sink.as_mut(),
                        &mut pace,
                        stops,
                        reader.consumer(),
                        runtime,
                        &mut summary,
                    )?,
                };
                if line.action == "interrupted" {
                    // Not handled: the next run sends it.
                    summary.interrupted = true;
                    break;
                }
                if line.action == "failed"
                    && let Some(k) = &record.key
                {
                    failed_keys.insert(k.clone());
                }
                progress_bar.suspend(|| self.print(&line))?;
            }
            if let Some(s) = sink.as_mut() {
                s.handled(&record, reader.consumer())?;
            }
            if stop.load(Ordering::Relaxed) {
                summary.interrupted = true;
                break;
            }
        }
        progress_bar.finish_and_clear();
        if let Some(s) = sink.as_mut() {
            s.finish(reader.consumer())?;
        }
        self.report(&summary)?;
        Ok(
            if summary.failed + summary.held > 0 || summary.interrupted {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            },
        )
    }

    /// Does (or, without `--execute`, shows) what the plan says.
    #[allow(clippy::too_many_arguments)]
    fn act<'a>(
        &self,
        record: &'a Record,
        letter: &Letter,
        planned: &'a Plan,
        routes: &[Arc<LiveRoute>],
        sink: Option<&mut Sink>,
        pace: &mut Pace,
        stops: &Stops,
        consumer: &BaseConsumer<KafkaContext>,
        runtime: &tokio::runtime::Handle,
        summary: &mut Summary,
    ) -> Result<Line<'a>> {
        let line = |action, to, reason| Line {
            record,
            action,
            to,
            reason,
            value: None,
            routes: Vec::new(),
        };
        let out = match planned {
            Plan::Refuse(why) => {
                summary.refused += 1;
                return Ok(line("refused", None, Some(why.clone())));
            }
            Plan::Fail(why) => {
                summary.failed += 1;
                return Ok(line("failed", None, Some(why.clone())));
            }
            Plan::Send(out) => out,
        };
        let max_bytes = self
            .config
            .as_ref()
            .map_or(1 << 20, |c| c.max_message_bytes);
        let event = out.value.as_deref().map(|v| Event::of_bytes(v, max_bytes));
        match self.target {
            Target::Topic => {
                let topic = out.topic.clone().unwrap_or_default();
                // Through the record's own route when the config has it,
                // else every route that takes its topic.
                let own: Vec<&Arc<LiveRoute>> = routes
                    .iter()
                    .filter(|r| {
                        letter.route.as_deref() == Some(&**r.name()) && r.route.takes(&topic)
                    })
                    .collect();
                let shown: Vec<&Arc<LiveRoute>> = if own.is_empty() {
                    routes.iter().filter(|r| r.route.takes(&topic)).collect()
                } else {
                    own
                };
                let verdicts = match &event {
                    Some(e) => shown
                        .iter()
                        .map(|r| (r.name().to_string(), r.route.decide(e)))
                        .collect(),
                    None => Vec::new(),
                };
                let to = json!({"topic": topic, "partition": out.partition});
                let mut l = match sink {
                    None => line("redrive", Some(to), None),
                    Some(sink) => {
                        // A transaction is not kept open across a long
                        // wait (the coordinator aborts one after
                        // transaction.timeout.ms).
                        if pace.due_in() > BATCH_TIME {
                            sink.commit(consumer)?;
                        }
                        if !pace.wait(Some(&*stops.flag)) {
                            return Ok(line("interrupted", Some(to), None));
                        }
                        match sink.produce(out)? {
                            Ok(()) => {
                                summary.sent += 1;
                                line("redriven", Some(to), None)
                            }
                            Err(why) => {
                                summary.failed += 1;
                                line("failed", Some(to), Some(why))
                            }
                        }
                    }
                };
                if !self.execute {
                    l.value = out.value.as_deref();
                    l.routes = verdicts;
                }
                Ok(l)
            }
            Target::Webhook => {
                let Some(name) = self.via.clone().or_else(|| letter.route.clone()) else {
                    summary.failed += 1;
                    return Ok(line(
                        "failed",
                        None,
                        Some(
                            "it names no route (written by Kafka Connect, Spring or by hand): name the route to send it through with --via ROUTE".into(),
                        ),
                    ));
                };
                let Some(route) = routes.iter().find(|r| **r.name() == *name) else {
                    summary.failed += 1;
                    let known: Vec<&str> = routes.iter().map(|r| &**r.name()).collect();
                    return Ok(line(
                        "failed",
                        None,
                        Some(format!(
                            "route '{name}' is not in the config (its routes: {}): name one with --via ROUTE",
                            known.join(", ")
                        )),
                    ));
                };
                let to = json!({"route": name});
                let Some(event) = event else {
                    summary.failed += 1;
                    return Ok(line("failed", Some(to), Some("it has no value".into())));
                };
                let decision = route.route.decide(&event);
                let bodies = match &decision {
                    RouteDecision::Deliver { bodies, .. } => bodies.clone(),
                    RouteDecision::Skip(reason) => {
                        summary.skipped += 1;
                        return Ok(line(
                            "skip",
                            Some(to),
                            Some(format!("the route skips it: {reason}")),
                        ));
                    }
                    RouteDecision::Invalid { stage, reason } => {
                        summary.failed += 1;
                        return Ok(line(
                            "failed",
                            Some(to),
                            Some(format!("invalid at {}: {reason}", stage.as_str())),
                        ));
                    }
                };
                if sink.is_none() {
                    let mut l = line("deliver", Some(to), None);
                    l.value = out.value.as_deref();
                    l.routes = vec![(name, decision)];
                    return Ok(l);
                }
                let n = bodies.len();
                let coordinates = out.coordinates.clone().unwrap_or_else(|| {
                    format!("{}-{}-{}", record.topic, record.partition, record.offset)
                });
                let mut told = Vec::new();
                for (i, body) in bodies.into_iter().enumerate() {
                    // The first body waits for the turn and may be left
                    // for the next run; once one is delivered, the record
                    // is finished (only a second signal stops it).
                    let (flag, stop) = match i {
                        0 => (Some(&*stops.flag), &stops.soft),
                        _ => (None, &stops.hard),
                    };
                    if !pace.wait(flag) {
                        return Ok(line("interrupted", Some(to), None));
                    }
                    let key = route.target.idempotency_key(&coordinates, i, n);
                    let sent =
                        runtime.block_on(crate::relay::deliver::redrive(route, body, &key, stop));
                    match sent {
                        Ok(a) => told.push(match a.status {
                            Some(s) => format!("HTTP {s}, {} attempt(s)", a.attempts),
                            None => format!("{} attempt(s)", a.attempts),
                        }),
                        Err(_) if stop.is_ending() => {
                            return Ok(line("interrupted", Some(to), None));
                        }
                        Err(e) => {
                            summary.failed += 1;
                            return Ok(line("failed", Some(to), Some(e)));
                        }
                    }
                }
                summary.sent += 1;
                Ok(line("delivered", Some(to), Some(told.join("; "))))
            }
        }
    }

    fn print(&self, l: &Line<'_>) -> Result<()> {
        let r = l.record;
        if self.json {
            let mut v = json!({
                "dead_letter": {"topic": r.topic, "partition": r.partition, "offset": r.offset},
                "key": r.key.as_deref().map(super::select::text_or_base64),
                "action": l.action,
                "executed": self.execute,
            });
            if let Some(to) = &l.to {
                v["to"] = to.clone();
            }
            if let Some(reason) = &l.reason {
                v["reason"] = Value::from(reason.as_str());
            }
            if let Some(value) = l.value {
                v["value"] = value_of(value);
            }
            if !l.routes.is_empty() {
                v["routes"] = l
                    .routes
                    .iter()
                    .map(|(name, d)| {
                        let mut j = crate::relay::check::verdict(0, name, d);
                        if let Some(o) = j.as_object_mut() {
                            o.remove("line");
                        }
                        j
                    })
                    .collect();
            }
            outln!("{v}")?;
            return Ok(());
        }
        let key = r
            .key
            .as_deref()
            .map(|k| format!(" (key {})", String::from_utf8_lossy(k)))
            .unwrap_or_default();
        let to = match &l.to {
            Some(t) if t["topic"].is_string() => format!(
                " → {}/{}",
                t["topic"].as_str().unwrap_or_default(),
                t["partition"]
                    .as_i64()
                    .map_or("(by key)".into(), |p| p.to_string())
            ),
            Some(t) => format!(" → route {}", t["route"].as_str().unwrap_or_default()),
            None => String::new(),
        };
        let what = match l.action {
            "redrive" => "would re-drive".to_string(),
            "deliver" => "would deliver".to_string(),
            "redriven" => "re-driven".to_string(),
            other => other.to_string(),
        };
        let reason = l
            .reason
            .as_ref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        outln!(
            "{}/{}@{}{key}{to}: {what}{reason}",
            r.topic,
            r.partition,
            r.offset
        )?;
        if l.routes.is_empty()
            && let Some(v) = l.value
        {
            let pretty = match value_of(v) {
                Value::String(s) => s,
                other => serde_json::to_string_pretty(&other).unwrap_or_default(),
            };
            for line in pretty.lines() {
                outln!("    {line}")?;
            }
        }
        for (name, d) in &l.routes {
            match d {
                RouteDecision::Skip(reason) => outln!("    route {name} · skip: {reason}")?,
                RouteDecision::Invalid { stage, reason } => {
                    outln!("    route {name} · invalid at {}: {reason}", stage.as_str())?
                }
                RouteDecision::Deliver { bodies, .. } => {
                    outln!("    route {name} · deliver")?;
                    for b in bodies {
                        let pretty = serde_json::from_slice::<Value>(b)
                            .ok()
                            .and_then(|v| serde_json::to_string_pretty(&v).ok())
                            .unwrap_or_else(|| String::from_utf8_lossy(b).into_owned());
                        for line in pretty.lines() {
                            outln!("    {line}")?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn report(&self, s: &Summary) -> Result<()> {
        let verb = if self.execute {
            "re-drove"
        } else {
            "would re-drive"
        };
        let whereto = match self.target {
            Target::Topic => "to their original topics",
            Target::Webhook => "to the route's webhook",
        };
        let planned = s.selected - s.refused - s.failed - s.held - s.skipped;
        let done = if self.execute { s.sent } else { planned };
        let mut text = format!(
            "{verb} {done} of {} dead letter{} selected {whereto} ({} read",
            s.selected,
            if s.selected == 1 { "" } else { "s" },
            s.read
        );
        for (n, what) in [
            (s.skipped, "skipped by the route"),
            (s.refused, "refused"),
            (s.failed, "failed"),
            (s.held, "held back behind a failure of their key"),
        ] {
            if n > 0 {
                text.push_str(&format!(", {n} {what}"));
            }
        }
        text.push(')');
        if self.json {
            outln!(
                "{}",
                json!({"summary": {
                    "read": s.read, "selected": s.selected, "sent": s.sent,
                    "would_send": if self.execute { 0 } else { planned },
                    "skipped": s.skipped, "refused": s.refused, "failed": s.failed,
                    "held": s.held, "interrupted": s.interrupted,
                    "executed": self.execute, "group": self.group,
                }})
            )?;
        }
        eprintln!("kbridge: {text}");
        if !self.execute {
            eprintln!("kbridge: nothing was sent: run again with --execute to re-drive them");
        } else {
            eprintln!(
                "kbridge: progress is kept in consumer group '{}'",
                self.group
            );
        }
        if s.interrupted {
            eprintln!(
                "kbridge: interrupted: run the same command again to continue where it stopped"
            );
        }
        if s.failed + s.held > 0 {
            eprintln!(
                "kbridge: the failed records stay in {} (as every dead letter does): fix the cause and re-drive them with --partition/--from-offset/--to-offset and --restart",
                self.topic
            );
        }
        Ok(())
    }

    fn progress_bar(&self, total: u64) -> indicatif::ProgressBar {
        use std::io::IsTerminal;
        if self.json || !std::io::stderr().is_terminal() {
            return indicatif::ProgressBar::hidden();
        }
        let bar = indicatif::ProgressBar::new(total);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} dead letters read, {per_sec} ({eta} left)",
        ) {
            bar.set_style(style);
        }
        bar
    }
}

/// The group's committed progress of each partition.
fn committed(
    consumer: &BaseConsumer<KafkaContext>,
    all: &[crate::topic_partition::TopicPartition],
    timeout: Duration,
) -> Result<BTreeMap<i32, i64>> {
    let tpl = crate::topic_partition::TopicPartition::list(all.iter());
    let got = consumer
        .committed_offsets(tpl, timeout)
        .context("cannot read the re-drive's progress (its group's committed offsets): check kbridge may Read and Describe the progress group, or start over with --restart or another --group")?;
    Ok(got
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) if o >= 0 => Some((e.partition(), o)),
            _ => None,
        })
        .collect())
}

/// How a run is stopped: `flag` and `soft` by the first signal (no new
/// record, no more retries), `hard` by the second (a request on the wire
/// is dropped).
#[derive(Clone)]
struct Stops {
    flag: Arc<AtomicBool>,
    soft: Ownership,
    hard: Ownership,
}

/// `--rate`: at most one record per interval.
struct Pace {
    every: Option<Duration>,
    next: Instant,
}

impl Pace {
    fn new(rate: Option<RateLimit>) -> Self {
        Self {
            every: rate.map(|r| r.per / r.requests.max(1)),
            next: Instant::now(),
        }
    }

    /// How long the next record waits for its turn.
    fn due_in(&self) -> Duration {
        self.next.saturating_duration_since(Instant::now())
    }

    /// Waits for the next record's turn; false if `stop` was set meanwhile
    /// (the turn is not taken).
    fn wait(&mut self, stop: Option<&AtomicBool>) -> bool {
        let Some(every) = self.every else { return true };
        loop {
            if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                return false;
            }
            let left = self.due_in();
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
        self.next = self.next.max(Instant::now()) + every;
        true
    }
}

/// Where executed re-drives go, and how their progress is committed.
struct Sink {
    target: Target,
    /// To a topic: the transactional producer.
    producer: Option<ThreadedProducer<DefaultProducerContext>>,
    /// Records in the open transaction.
    in_transaction: usize,
    opened: Instant,
    /// Each partition's next offset to read, not yet committed.
    progress: BTreeMap<i32, i64>,
    topic: String,
    timeout: Duration,
    partitions: BTreeMap<String, i32>,
    opts: KafkaOpts,
}

/// A transaction is committed after this many records, or this long.
const BATCH: usize = 100;
const BATCH_TIME: Duration = Duration::from_millis(500);

impl Sink {
    fn new(opts: &KafkaOpts, r: &Redrive) -> Result<Self> {
        let timeout = opts.timeout.max(Duration::from_secs(30));
        let producer = match r.target {
            Target::Webhook => None,
            Target::Topic => {
                let p: ThreadedProducer<DefaultProducerContext> = opts
                    .client()
                    .set("transactional.id", format!("{}-tx", r.group))
                    .set("enable.idempotence", "true")
                    .set_default("linger.ms", "5")
                    .build(DefaultProducerContext, "the re-drive producer")?;
                // Fences a run still going with the same group, and
                // aborts what a killed run left open.
                p.init_transactions(timeout).map_err(|e| {
                    anyhow!(
                        "cannot start the re-drive's transaction ({e}): the brokers must allow transactions (Kafka ≥ 0.11; on a single broker transaction.state.log.replication.factor=1), and kbridge needs the Write right on transactional id '{}-tx'",
                        r.group
                    )
                })?;
                Some(p)
            }
        };
        Ok(Self {
            target: r.target,
            producer,
            in_transaction: 0,
            opened: Instant::now(),
            progress: BTreeMap::new(),
            topic: r.topic.clone(),
            timeout,
            partitions: BTreeMap::new(),
            opts: opts.clone(),
        })
    }

    /// The partitions of a topic (cached), to tell whether the original
    /// partition still exists.
    fn partitions_of(&mut self, topic: &str) -> Result<i32> {
        if let Some(&n) = self.partitions.get(topic) {
            return Ok(n);
        }
        let client = self.opts.metadata_client()?;
        let md = self.opts.metadata(client.client(), Some(topic))?;
        self.opts.require_topics(&md, &[topic.to_string()])?;
        let n = crate::client::partitions_of(&md, topic)?.len() as i32;
        self.partitions.insert(topic.to_string(), n);
        Ok(n)
    }

    /// Sends one record to its original topic, in the open transaction;
    /// the inner error: why this record cannot go (its topic is gone,
    /// refused), the outer: the transaction failed.
    fn produce(&mut self, out: &Outgoing) -> Result<Result<(), String>> {
        let topic = out.topic.as_deref().unwrap_or_default();
        let partitions = match self.partitions_of(topic) {
            Ok(n) => n,
            Err(e) => {
                return Ok(Err(format!(
                    "its original topic cannot be written: {e:#}; re-drive it elsewhere with --to webhook --via ROUTE, or leave it out with --where"
                )));
            }
        };
        let Some(producer) = &self.producer else {
            return Ok(Ok(()));
        };
        if self.in_transaction == 0 {
            producer
                .begin_transaction()
                .context("cannot begin the re-drive's transaction")?;
            self.opened = Instant::now();
        }
        let mut headers = OwnedHeaders::new_with_capacity(out.headers.len());
        for (k, v) in &out.headers {
            // Header names are NUL-terminated in librdkafka: bytes as
            // they were, read lossily only for the name.
            let name = String::from_utf8_lossy(k);
            headers = headers.insert(Header {
                key: &name,
                value: v.as_deref(),
            });
        }
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).headers(headers);
        if let Some(k) = &out.key {
            record = record.key(k.as_slice());
        }
        if let Some(v) = &out.value {
            record = record.payload(v.as_slice());
        }
        if let Some(p) = out.partition.filter(|p| (0..partitions).contains(p)) {
            record = record.partition(p);
        }
        let mut record = record;
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, back))
                    if e.rdkafka_error_code()
                        == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) =>
                {
                    std::thread::sleep(Duration::from_millis(10));
                    record = back;
                }
                Err((e, _)) => {
                    return Ok(Err(format!("the producer refuses it for {topic}: {e}")));
                }
            }
        }
        self.in_transaction += 1;
        Ok(Ok(()))
    }

    /// The record is done (sent, refused, left out): progress moves past
    /// it, committed now or with its transaction's batch.
    fn handled(&mut self, record: &Record, consumer: &BaseConsumer<KafkaContext>) -> Result<()> {
        self.progress.insert(record.partition, record.offset + 1);
        let due = match self.target {
            Target::Webhook => true,
            Target::Topic => self.in_transaction >= BATCH || self.opened.elapsed() >= BATCH_TIME,
        };
        if due {
            self.commit(consumer)?;
        }
        Ok(())
    }

    /// Commits the progress: with the open transaction (to a topic), or
    /// as the group's offsets (to a webhook).
    fn commit(&mut self, consumer: &BaseConsumer<KafkaContext>) -> Result<()> {
        if self.progress.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (&p, &o) in &self.progress {
            tpl.add_partition_offset(&self.topic, p, Offset::Offset(o))
                .context("cannot note the re-drive's progress")?;
        }
        match &self.producer {
            Some(producer) => {
                if self.in_transaction == 0 {
                    producer
                        .begin_transaction()
                        .context("cannot begin the re-drive's transaction")?;
                }
                let meta = consumer
                    .group_metadata()
                    .ok_or_else(|| anyhow!("the re-drive's consumer has no group"))?;
                let done = producer
                    .send_offsets_to_transaction(&tpl, &meta, self.timeout)
                    .and_then(|()| producer.commit_transaction(self.timeout));
                if let Err(e) = done {
                    let _ = producer.abort_transaction(self.timeout);
                    return Err(anyhow!(
                        "the re-drive's transaction failed ({e}): its records and progress may not have been written; run the same command again to continue where the committed progress is"
                    ));
                }
                self.in_transaction = 0;
                self.opened = Instant::now();
            }
            None => {
                consumer.commit(&tpl, CommitMode::Sync).map_err(|e| {
                    anyhow!(
                        "cannot commit the re-drive's progress ({e}): the record just delivered may be sent again by the next run, with the same Idempotency-Key; check kbridge may Read the progress group"
                    )
                })?;
            }
        }
        self.progress.clear();
        Ok(())
    }

    fn finish(&mut self, consumer: &BaseConsumer<KafkaContext>) -> Result<()> {
        self.commit(consumer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dead_letter(redriven: u32) -> Record {
        let mut headers = vec![
            (b"kbridge.topic".to_vec(), Some(b"guance".to_vec())),
            (b"kbridge.partition".to_vec(), Some(b"2".to_vec())),
            (b"kbridge.offset".to_vec(), Some(b"40".to_vec())),
            (b"kbridge.stage".to_vec(), Some(b"validate".to_vec())),
            (
                b"kbridge.error".to_vec(),
                Some(b"df_title: missing".to_vec()),
            ),
        ];
        if redriven > 0 {
            headers.push((
                b"kbridge.redrive.count".to_vec(),
                Some(redriven.to_string().into_bytes()),
            ));
        }
        Record {
            topic: "dlq".into(),
            partition: 0,
            offset: 7,
            key: Some(b"f-1".to_vec()),
            value: Some(br#"{"df_status":"critical"}"#.to_vec()),
            headers,
            ..Record::default()
        }
    }

    #[test]
    fn a_fix_rewrites_the_value_and_the_record_goes_home() {
        let r = dead_letter(0);
        let fix = Jq::compile(r#".value + {df_title: "fixed"}"#).unwrap();
        let Plan::Send(out) = plan(&r, &Letter::of(&r), Some(&fix), 3, Target::Topic) else {
            panic!("not sent")
        };
        let v: Value = serde_json::from_slice(out.value.as_deref().unwrap()).unwrap();
        assert_eq!(v, json!({"df_status": "critical", "df_title": "fixed"}));
        assert_eq!(
            (out.topic.as_deref(), out.partition, out.count),
            (Some("guance"), Some(2), 1)
        );
        assert_eq!(out.coordinates.as_deref(), Some("guance-2-40"));
        assert_eq!(out.key.as_deref(), Some(&b"f-1"[..]));
    }

    #[test]
    fn refused_after_max_redrives_and_failing_fixes_fail() {
        let r = dead_letter(3);
        assert!(matches!(
            plan(&r, &Letter::of(&r), None, 3, Target::Topic),
            Plan::Refuse(why) if why.contains("re-driven 3 times")
        ));
        let r = dead_letter(0);
        let two = Jq::compile(".value, .value").unwrap();
        assert!(matches!(
            plan(&r, &Letter::of(&r), Some(&two), 3, Target::Topic),
            Plan::Fail(why) if why.contains("2 outputs")
        ));
        let boom = Jq::compile(r#"error("no")"#).unwrap();
        assert!(matches!(
            plan(&r, &Letter::of(&r), Some(&boom), 3, Target::Topic),
            Plan::Fail(why) if why.starts_with("--fix")
        ));
        let mut digest = dead_letter(0);
        digest.headers[0].1 = Some(b"guance:digest:pay-api:3".to_vec());
        assert!(matches!(
            plan(&digest, &Letter::of(&digest), None, 3, Target::Topic),
            Plan::Fail(why) if why.contains("not a topic name")
        ));
        let mut trimmed = dead_letter(0);
        trimmed.value = None;
        trimmed.headers.push((
            b"kbridge.value_omitted".to_vec(),
            Some(b"too large".to_vec()),
        ));
        let invent = Jq::compile(r#".value + {df_title: "x"}"#).unwrap();
        assert!(matches!(
            plan(&trimmed, &Letter::of(&trimmed), Some(&invent), 3, Target::Topic),
            Plan::Fail(why) if why.contains("left out")
        ));
        let mut bare = dead_letter(0);
        bare.headers.clear();
        assert!(matches!(
            plan(&bare, &Letter::of(&bare), None, 3, Target::Topic),
            Plan::Fail(_)
        ));
        assert!(matches!(
            plan(&bare, &Letter::of(&bare), None, 3, Target::Webhook),
            Plan::Send(_)
        ));
    }
}
