//! `kbridge trace ALERT_ID`: the journey of one alert — each route's
//! outcome from the audit topic (`relay::audit`), the source record of
//! each, and its dead letters; without an audit topic, the records whose
//! Kafka key is the alert id, in the relay's topics and dead-letter topics
//! within a time window.
//!
//! The audit producer partitions by Kafka's murmur2, so one partition of
//! the audit topic is read, not all of them.

use std::process::ExitCode;

use anyhow::Result;
use rdkafka::producer::Producer;
use serde_json::{Value, json};

use crate::client::{KafkaOpts, partitions_of};
use crate::output::outln;
use crate::relay::audit::{AuditRecord, partition_of};
use crate::relay::dlq::{Letter, Reader, Record, Span};

/// What to trace, and where.
pub(crate) struct Trace {
    pub alert: String,
    /// The audit topic, if the relay writes one.
    pub audit_topic: Option<String>,
    /// Without one: the topics to look for the alert's key in.
    pub topics: Vec<String>,
    pub dead_letter_topics: Vec<String>,
    /// Records written at or after this time (epoch ms).
    pub since: Option<i64>,
    pub json: bool,
}

impl Trace {
    /// Prints the journey (blocking); fails (exit 1) when nothing of the
    /// alert was found.
    pub(crate) fn run(&self, opts: &KafkaOpts) -> Result<ExitCode> {
        match &self.audit_topic {
            Some(topic) => self.with_audit(opts, topic),
            None => self.by_key(opts),
        }
    }

    fn with_audit(&self, opts: &KafkaOpts, topic: &str) -> Result<ExitCode> {
        let client = opts.metadata_client()?;
        let md = opts.metadata(client.client(), Some(topic))?;
        opts.require_topics(&md, &[topic.to_string()])?;
        let partitions = partitions_of(&md, topic)?.len() as i32;
        let p = partition_of(self.alert.as_bytes(), partitions);
        let span = Span {
            partition: Some(p),
            since: self.since,
            ..Span::default()
        };
        let mut steps: Vec<AuditRecord<'static>> = Vec::new();
        let mut reader = Reader::open(opts, topic, span, None, |_, _| Ok(Default::default()))?;
        while let Some(r) = reader.next()? {
            if r.key.as_deref() != Some(self.alert.as_bytes()) {
                continue;
            }
            if let Some(step) = r.value.as_deref().and_then(AuditRecord::parse) {
                steps.push(step);
            }
        }
        if steps.is_empty() {
            eprintln!(
                "kbridge: no audit record of alert '{}' in {topic}{}: check the id (the route's key; for the Guance preset df_fault_id, else df_event_id) or look further back with --since",
                self.alert,
                self.since
                    .map(|s| format!(" since {}", crate::time_spec::show_ms_to_second(s)))
                    .unwrap_or_default()
            );
            return Ok(ExitCode::FAILURE);
        }
        let mut out = Vec::new();
        for step in &steps {
            let event = fetch(
                opts,
                &step.source.topic,
                step.source.partition,
                step.source.offset,
            );
            let letter = step
                .dead_letter
                .as_ref()
                .map(|d| fetch(opts, &d.topic, d.partition, d.offset));
            out.push((step, event, letter));
        }
        if self.json {
            let outcomes: Vec<Value> = out
                .iter()
                .map(|(step, event, letter)| {
                    let mut v = json!(step);
                    v["event"] = match event {
                        Ok(e) => record_json(e),
                        Err(why) => json!({"missing": why}),
                    };
                    if let Some(letter) = letter {
                        v["dead_letter_record"] = match letter {
                            Ok(l) => {
                                let mut j = record_json(l);
                                j["letter"] = json!(Letter::of(l));
                                j
                            }
                            Err(why) => json!({"missing": why}),
                        };
                    }
                    v
                })
                .collect();
            outln!(
                "{}",
                json!({"alert": self.alert, "audit_topic": topic, "outcomes": outcomes})
            )?;
            return Ok(ExitCode::SUCCESS);
        }
        outln!(
            "alert {}: {} outcome{} in {topic} (partition {p})",
            self.alert,
            steps.len(),
            if steps.len() == 1 { "" } else { "s" }
        )?;
        for (step, event, letter) in &out {
            outln!("{}", step_line(step))?;
            let at = format!(
                "{}/{}@{}",
                step.source.topic, step.source.partition, step.source.offset
            );
            match event {
                Ok(e) => outln!("    event {at}: {}", compact(e.value.as_deref()))?,
                Err(why) => outln!("    event {at}: {why}")?,
            }
            if let (Some(d), Some(letter)) = (&step.dead_letter, letter) {
                let where_ = format!("{}/{}@{}", d.topic, d.partition, d.offset);
                match letter {
                    Ok(l) => {
                        let said = Letter::of(l);
                        outln!(
                            "    dead letter {where_}: {}{}",
                            said.reason.unwrap_or_default(),
                            if said.redriven > 0 {
                                format!(" (re-driven {} times)", said.redriven)
                            } else {
                                String::new()
                            }
                        )?
                    }
                    Err(why) => outln!("    dead letter {where_}: {why}")?,
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }

    /// Without an audit: the records keyed by the alert id.
    fn by_key(&self, opts: &KafkaOpts) -> Result<ExitCode> {
        let mut found: Vec<(&str, Record)> = Vec::new();
        for (kind, topics) in [
            ("event", &self.topics),
            ("dead letter", &self.dead_letter_topics),
        ] {
            for topic in topics {
                let span = Span {
                    since: self.since,
                    ..Span::default()
                };
                let mut reader =
                    Reader::open(opts, topic, span, None, |_, _| Ok(Default::default()))?;
                while let Some(r) = reader.next()? {
                    if r.key.as_deref() == Some(self.alert.as_bytes()) {
                        found.push((kind, r));
                    }
                }
            }
        }
        if found.is_empty() {
            eprintln!(
                "kbridge: no record keyed '{}' in {}: without an audit topic ([audit] topic) only records whose Kafka key is the alert id are found; look further back with --since",
                self.alert,
                self.topics
                    .iter()
                    .chain(&self.dead_letter_topics)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            return Ok(ExitCode::FAILURE);
        }
        found.sort_by_key(|(_, r)| r.timestamp_ms);
        if self.json {
            let records: Vec<Value> = found
                .iter()
                .map(|(kind, r)| {
                    let mut j = record_json(r);
                    j["kind"] = Value::from(*kind);
                    if *kind == "dead letter" {
                        j["letter"] = json!(Letter::of(r));
                    }
                    j
                })
                .collect();
            outln!("{}", json!({"alert": self.alert, "records": records}))?;
            return Ok(ExitCode::SUCCESS);
        }
        outln!(
            "alert {}: {} record{} keyed by it (no audit topic: outcomes are not known)",
            self.alert,
            found.len(),
            if found.len() == 1 { "" } else { "s" }
        )?;
        for (kind, r) in &found {
            let at = format!("{}/{}@{}", r.topic, r.partition, r.offset);
            let when = r
                .timestamp_ms
                .map_or("-".into(), crate::time_spec::show_ms_to_second);
            match *kind {
                "dead letter" => outln!(
                    "{when}  dead letter {at}: {}",
                    Letter::of(r).reason.unwrap_or_default()
                )?,
                _ => outln!("{when}  event {at}: {}", compact(r.value.as_deref()))?,
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// One outcome for a person: when, route, what, and how.
fn step_line(s: &AuditRecord<'_>) -> String {
    let when = crate::time_spec::show_ms(s.at);
    let mut how = Vec::new();
    if let Some(stage) = &s.stage {
        how.push(format!("at {stage}"));
    }
    if let Some(a) = s.attempts {
        how.push(format!("{a} attempt{}", if a == 1 { "" } else { "s" }));
    }
    if let Some(st) = s.status {
        how.push(format!("HTTP {st}"));
    }
    if let Some(l) = s.latency_ms {
        how.push(format!("{l} ms after the event"));
    }
    if s.redriven {
        how.push("re-driven".into());
    }
    how.push(format!("by {}", s.instance));
    let reason = s
        .reason
        .as_ref()
        .map(|r| format!("\n    reason: {r}"))
        .unwrap_or_default();
    format!(
        "{when}  {}  {}  ({}){reason}",
        s.route.as_deref().unwrap_or("(no route)"),
        s.outcome,
        how.join(", ")
    )
}

/// A value on one line, cut to a readable length.
fn compact(value: Option<&[u8]>) -> String {
    let Some(v) = value else {
        return "(no value)".into();
    };
    let text = serde_json::from_slice::<Value>(v)
        .map(|j| j.to_string())
        .unwrap_or_else(|_| String::from_utf8_lossy(v).into_owned());
    crate::truncate::truncate(&text, 300)
}

fn record_json(r: &Record) -> Value {
    let mut v = crate::relay::dlq::view(r);
    v["timestamp"] = json!(r.timestamp_ms);
    v
}

/// The record at one offset, or why it cannot be shown.
fn fetch(opts: &KafkaOpts, topic: &str, partition: i32, offset: i64) -> Result<Record, String> {
    let span = Span {
        partition: Some(partition),
        from_offset: Some(offset),
        to_offset: Some(offset),
        ..Span::default()
    };
    let mut reader = Reader::open(opts, topic, span, None, |_, _| Ok(Default::default()))
        .map_err(|e| format!("cannot be read: {e:#}"))?;
    match reader.next() {
        Ok(Some(r)) if r.offset == offset => Ok(r),
        Ok(_) => Err("no longer in the topic (retention)".into()),
        Err(e) => Err(format!("cannot be read: {e:#}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::audit::Place;

    #[test]
    fn a_step_says_when_where_what_and_how() {
        let s = AuditRecord {
            v: 1,
            alert: Some("f-1".into()),
            route: Some("default".into()),
            outcome: "dead_lettered".into(),
            at: 0,
            source: Place {
                topic: "guance".into(),
                partition: 1,
                offset: 2,
            },
            stage: Some("deliver".into()),
            reason: Some("HTTP 400".into()),
            attempts: Some(1),
            status: Some(400),
            latency_ms: Some(12),
            instance: "h:1".into(),
            dead_letter: None,
            redriven: false,
        };
        assert_eq!(
            step_line(&s),
            "1970-01-01T00:00:00Z  default  dead_lettered  (at deliver, 1 attempt, HTTP 400, 12 ms after the event, by h:1)\n    reason: HTTP 400"
        );
        assert_eq!(compact(Some(br#"{ "a" : 1 }"#)), r#"{"a":1}"#);
    }
}
