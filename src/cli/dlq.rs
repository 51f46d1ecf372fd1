//! `kbridge dlq stats | show | redrive`: dead letters you can act on.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};

use crate::client::KafkaOpts;
use crate::error::UsageError;
use crate::relay::config::RateLimit;
use crate::relay::dlq::{self, Jq, Look, Redrive, RedriveTarget, Select, Span};
use crate::time_spec::parse_time;

#[derive(Debug, Subcommand)]
pub(super) enum DlqCommand {
    /// Count dead letters by route, stage, reason, HTTP status and original topic
    Stats {
        #[command(flatten)]
        filters: Filters,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Print dead letters with their headers decoded and values pretty-printed
    Show {
        #[command(flatten)]
        filters: Filters,
        /// Print at most N records
        #[arg(long, short = 'n', value_name = "N")]
        limit: Option<u64>,
        /// One JSON object per record: key, value, headers, coordinates and what its headers say
        #[arg(long)]
        json: bool,
    },
    /// Fix and replay dead letters to their original topic or a route's webhook (a dry run unless --execute)
    Redrive(RedriveArgs),
}

/// Which dead letters: the topic, a part of it, and what they say.
#[derive(Debug, Args)]
pub(super) struct Filters {
    /// The dead-letter topic
    topic: String,
    /// Only dead letters of this route (Kafka Connect: connector; Spring: consumer group)
    #[arg(long)]
    route: Option<String>,
    /// Only dead letters of this stage (decode, validate, map, deliver, …)
    #[arg(long)]
    stage: Option<String>,
    /// Only dead letters whose reason matches this regular expression
    #[arg(long, value_name = "REGEX")]
    reason: Option<String>,
    /// Only dead letters whose last HTTP answer had this status
    #[arg(long, value_name = "CODE")]
    status: Option<u16>,
    /// Only dead letters written at or after this time (RFC 3339, or relative like -2h)
    #[arg(long, value_name = "TIME", allow_hyphen_values = true, value_parser = parse_time)]
    since: Option<i64>,
    /// Only dead letters written before this time
    #[arg(long, value_name = "TIME", allow_hyphen_values = true, value_parser = parse_time)]
    until: Option<i64>,
    /// Only this partition of the dead-letter topic
    #[arg(long, value_name = "P")]
    partition: Option<i32>,
    /// From this offset (in each partition read)
    #[arg(long, value_name = "N")]
    from_offset: Option<i64>,
    /// To this offset, included
    #[arg(long, value_name = "N")]
    to_offset: Option<i64>,
    /// jq on {key, value, headers, topic, partition, offset}: true selects the record
    #[arg(long = "where", value_name = "JQ")]
    where_: Option<String>,
}

impl Filters {
    fn resolve(self) -> Result<(String, Span, Select)> {
        let compile = |flag: &str, code: &str| {
            Jq::compile(code).map_err(|e| UsageError(format!("{flag}: {e}")))
        };
        let select = Select {
            route: self.route,
            stage: self.stage,
            reason: self
                .reason
                .as_deref()
                .map(Select::reason_matcher)
                .transpose()
                .map_err(UsageError)?,
            status: self.status,
            where_: self
                .where_
                .as_deref()
                .map(|w| compile("--where", w))
                .transpose()?,
        };
        let span = Span {
            partition: self.partition,
            from_offset: self.from_offset,
            to_offset: self.to_offset,
            since: self.since,
            until: self.until,
        };
        Ok((self.topic, span, select))
    }

    /// What `stats` and `show` read.
    fn look(self, json: bool, limit: Option<u64>) -> Result<Look> {
        let (topic, span, select) = self.resolve()?;
        Ok(Look {
            topic,
            span,
            select,
            json,
            limit,
        })
    }

    /// What identifies the selection (not the time window or offsets,
    /// which a resumed run may give relative to now): names the default
    /// progress group.
    fn identity(&self) -> String {
        format!(
            "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
            self.route, self.stage, self.reason, self.status, self.where_, self.partition
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ToArg {
    /// Back to the topic each was first read from (its key, headers and partition)
    Topic,
    /// Straight to a route's webhook, with its rules and rate limit (needs -c)
    Webhook,
}

#[derive(Debug, Args)]
pub(super) struct RedriveArgs {
    #[command(flatten)]
    filters: Filters,
    /// The relay's config: its routes show each record's outcome, and --to webhook sends through them
    #[command(flatten)]
    config: super::run::ConfigFile,
    /// jq on {key, value, headers, topic, partition, offset}: its output is the new value
    #[arg(long, value_name = "JQ")]
    fix: Option<String>,
    /// Where the records go
    #[arg(long, value_enum, default_value_t = ToArg::Topic)]
    to: ToArg,
    /// With --to webhook: the route to send them through [default: each record's own]
    #[arg(long, value_name = "ROUTE")]
    via: Option<String>,
    /// Refuse a record already re-driven this many times
    #[arg(long, value_name = "N", default_value_t = 3)]
    max_redrives: u32,
    /// At most this many records (e.g. 10/s, 20/min)
    #[arg(long, value_name = "N/UNIT", value_parser = RateLimit::parse)]
    rate: Option<RateLimit>,
    /// The consumer group that keeps the progress [default: kbridge-redrive-<topic>-<selection>]
    #[arg(long, short = 'g')]
    group: Option<String>,
    /// Start over instead of continuing where the group's progress stopped
    #[arg(long)]
    restart: bool,
    /// Send them; without it, what would be sent is only shown
    #[arg(long)]
    execute: bool,
    /// One JSON object per record, and a summary
    #[arg(long)]
    json: bool,
}

impl DlqCommand {
    pub(super) async fn execute(self, opts: KafkaOpts, brokers_given: bool) -> Result<ExitCode> {
        match self {
            DlqCommand::Stats { filters, json } => {
                let look = filters.look(json, None)?;
                tokio::task::spawn_blocking(move || dlq::stats(&opts, &look)).await??;
                Ok(ExitCode::SUCCESS)
            }
            DlqCommand::Show {
                filters,
                limit,
                json,
            } => {
                let look = filters.look(json, limit)?;
                tokio::task::spawn_blocking(move || dlq::show(&opts, &look)).await??;
                Ok(ExitCode::SUCCESS)
            }
            DlqCommand::Redrive(args) => args.execute(opts, brokers_given).await,
        }
    }
}

impl RedriveArgs {
    async fn execute(self, opts: KafkaOpts, brokers_given: bool) -> Result<ExitCode> {
        if self.via.is_some() && self.to != ToArg::Webhook {
            return Err(UsageError(
                "--via names the route of a webhook re-drive: add --to webhook".into(),
            )
            .into());
        }
        let target = match self.to {
            ToArg::Topic => RedriveTarget::Topic,
            ToArg::Webhook => RedriveTarget::Webhook,
        };
        let config = match self.config.load_for(&opts, brokers_given)? {
            Some(cfg) => Some(cfg),
            None if target == RedriveTarget::Webhook => {
                return Err(UsageError(
                    "--to webhook sends through a route of the relay's config: name it with -c FILE (or KBRIDGE_CONFIG)".into(),
                )
                .into());
            }
            None => None,
        };
        // The config's brokers and Kafka settings, unless given here.
        let opts = match &config {
            Some(cfg) => KafkaOpts {
                timeout: opts.timeout,
                ..cfg.kafka_opts()
            },
            None => opts,
        };
        let identity = format!("{:?}|{:?}|{}", self.to, self.via, self.filters.identity());
        let fix = self
            .fix
            .as_deref()
            .map(|f| Jq::compile(f).map_err(|e| UsageError(format!("--fix: {e}"))))
            .transpose()?;
        let (topic, span, select) = self.filters.resolve()?;
        let group = self
            .group
            .unwrap_or_else(|| format!("kbridge-redrive-{topic}-{:08x}", fnv1a(&identity)));
        let redrive = Redrive {
            topic,
            span,
            select,
            fix,
            target,
            via: self.via,
            max_redrives: self.max_redrives,
            rate: self.rate,
            group,
            restart: self.restart,
            execute: self.execute,
            json: self.json,
            config,
        };
        redrive.run_until_signalled(opts).await
    }
}

/// FNV-1a, 32 bits: a short, stable name for a selection.
fn fnv1a(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5, |h: u32, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn fnv1a_is_stable() {
        assert_eq!(super::fnv1a(""), 0x811c_9dc5);
        assert_eq!(super::fnv1a("a"), 0xe40c_292c);
    }
}
