//! `kbridge trace ALERT_ID`: the journey of one alert.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use crate::client::KafkaOpts;
use crate::error::UsageError;
use crate::relay::trace::Trace;
use crate::time_spec::parse_time;

#[derive(Debug, Args)]
pub(super) struct TraceArgs {
    /// The alert's id: its route's key (for the Guance preset df_fault_id, else df_event_id)
    alert: String,
    /// The relay's config: its audit topic, or its topics and dead-letter topics
    #[command(flatten)]
    config: super::run::ConfigFile,
    /// The audit topic, instead of the config's [audit] topic
    #[arg(long, value_name = "T")]
    audit_topic: Option<String>,
    /// Without an audit topic: a topic to look for records keyed by the alert id (repeatable)
    #[arg(long = "topic", short = 't', value_name = "T")]
    topics: Vec<String>,
    /// Only records written at or after this time (RFC 3339, or relative like -24h)
    #[arg(long, value_name = "TIME", allow_hyphen_values = true, value_parser = parse_time)]
    since: Option<i64>,
    /// One JSON object: the outcomes with their events and dead letters
    #[arg(long)]
    json: bool,
}

impl TraceArgs {
    pub(super) async fn execute(self, opts: KafkaOpts, brokers_given: bool) -> Result<ExitCode> {
        let config = self.config.load_for(&opts, brokers_given)?;
        let audit_topic = self
            .audit_topic
            .or_else(|| config.as_ref().and_then(|c| c.audit.topic.clone()));
        let mut topics = self.topics;
        let mut dead_letter_topics = Vec::new();
        if let Some(cfg) = &config {
            if topics.is_empty() {
                topics = cfg.topics.clone();
            }
            for r in cfg.route_configs().iter() {
                let dlq = r
                    .dead_letter_topic
                    .clone()
                    .or(cfg.dead_letter_topic.clone());
                if let Some(d) = dlq
                    && !dead_letter_topics.contains(&d)
                {
                    dead_letter_topics.push(d);
                }
            }
        }
        if audit_topic.is_none() && topics.is_empty() {
            return Err(UsageError(
                "name the relay's config (-c FILE), whose [audit] topic holds the journeys, or the audit topic (--audit-topic), or the topics to search by key (--topic)".into(),
            )
            .into());
        }
        let opts = match &config {
            Some(cfg) => KafkaOpts {
                timeout: opts.timeout,
                ..cfg.kafka_opts()
            },
            None => opts,
        };
        let trace = Trace {
            alert: self.alert,
            audit_topic,
            topics,
            dead_letter_topics,
            since: self.since,
            json: self.json,
        };
        tokio::task::spawn_blocking(move || trace.run(&opts)).await?
    }
}
