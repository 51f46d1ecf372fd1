//! `kbridge silence …`: silences the relay's storm stage honours.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::client::KafkaOpts;
use crate::relay::silence::{self, NewSilence, Place};
use crate::time_spec::{parse_duration, parse_time};

#[derive(Debug, Subcommand)]
pub(super) enum SilenceCommand {
    /// Silence the events a jq matcher selects, for a time window
    Add(AddArgs),
    /// The silences in force or pending (--all: expired ones too)
    List {
        #[command(flatten)]
        place: PlaceArgs,
        /// Expired silences too
        #[arg(long)]
        all: bool,
        /// One JSON object per silence
        #[arg(long)]
        json: bool,
    },
    /// End a silence now
    Expire {
        #[command(flatten)]
        place: PlaceArgs,
        /// The silence's id (from `add` or `list`)
        id: String,
    },
}

/// Where the silences are kept.
#[derive(Debug, Args)]
pub(super) struct PlaceArgs {
    #[command(flatten)]
    config: super::run::ConfigFile,
    /// The relay's state topic, instead of the one its config names
    #[arg(long, value_name = "T")]
    state_topic: Option<String>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("until").required(true).args(["ends", "duration"])))]
pub(super) struct AddArgs {
    #[command(flatten)]
    place: PlaceArgs,
    /// jq on each event: true silences it (e.g. '.service == "pay-api"')
    #[arg(long = "match", short = 'm', value_name = "JQ")]
    matcher: String,
    /// Only this route's events (default: every route)
    #[arg(long)]
    route: Option<String>,
    /// When it starts: RFC 3339, +2h, now [default: now]
    #[arg(long, value_parser = parse_time)]
    starts: Option<i64>,
    /// When it ends: RFC 3339 (2026-12-06T02:00:00+08:00) or +4h
    #[arg(long, value_parser = parse_time)]
    ends: Option<i64>,
    /// How long it lasts from its start (e.g. 4h)
    #[arg(long = "for", value_parser = parse_duration)]
    duration: Option<std::time::Duration>,
    /// Why (shown with every event it silences)
    #[arg(long, default_value = "")]
    comment: String,
    /// Who [default: $USER]
    #[arg(long)]
    by: Option<String>,
}

impl SilenceCommand {
    pub(super) async fn execute(self, opts: KafkaOpts, brokers_given: bool) -> Result<ExitCode> {
        let place = |p: PlaceArgs| {
            Place::resolve(
                p.config.config.as_deref(),
                p.state_topic,
                opts.clone(),
                brokers_given,
            )
        };
        match self {
            SilenceCommand::Add(a) => {
                let starts = a.starts.unwrap_or_else(crate::relay::storm::now_ms);
                let ends = match (a.ends, a.duration) {
                    (Some(e), _) => e,
                    (None, Some(d)) => starts.saturating_add(d.as_millis() as i64),
                    (None, None) => {
                        return Err(crate::error::UsageError("give --ends or --for".into()).into());
                    }
                };
                let new = NewSilence {
                    matcher: a.matcher,
                    route: a.route,
                    starts,
                    ends,
                    comment: a.comment,
                    created_by: a
                        .by
                        .or_else(|| std::env::var("USER").ok())
                        .unwrap_or_default(),
                };
                silence::add(&place(a.place)?, new).await
            }
            SilenceCommand::List {
                place: p,
                all,
                json,
            } => {
                let p = place(p)?;
                tokio::task::spawn_blocking(move || silence::list(&p, all, json)).await?
            }
            SilenceCommand::Expire { place: p, id } => silence::expire(&place(p)?, &id).await,
        }
    }
}
