//! `kbridge groups …`

use anyhow::Result;
use clap::{Args, Subcommand};

use super::output::OutputArgs;
use crate::client::KafkaOpts;
use crate::commands::groups::{self, Reset, ResetTo};
use crate::time_spec::parse_time;

#[derive(Debug, Subcommand)]
pub(super) enum GroupsCommand {
    /// List consumer groups with their state
    List {
        #[command(flatten)]
        output: OutputArgs,
    },
    /// State, members and per-partition lag of a group
    Describe {
        group: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Move a group's committed offsets (a dry run unless --execute)
    ResetOffsets(ResetOffsetsArgs),
    /// Delete consumer groups (they must have no members)
    Delete {
        #[arg(required = true)]
        groups: Vec<String>,
    },
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(
    ["to_earliest", "to_latest", "to_offset", "to_datetime", "shift_by"])))]
pub(super) struct ResetOffsetsArgs {
    group: String,
    /// Topic whose partitions are reset (repeatable); all partitions of it
    #[arg(long = "topic", required = true)]
    topics: Vec<String>,
    /// Reset to the log start
    #[arg(long)]
    to_earliest: bool,
    /// Reset to the log end
    #[arg(long)]
    to_latest: bool,
    /// Reset to this offset (clamped to the log's range)
    #[arg(long, value_name = "N")]
    to_offset: Option<i64>,
    /// Reset to the first offset at or after this time (RFC 3339, or relative like -15m)
    #[arg(long, value_name = "TIME", allow_hyphen_values = true, value_parser = parse_time)]
    to_datetime: Option<i64>,
    /// Move each partition's offset by N (negative goes back)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    shift_by: Option<i64>,
    /// Apply the change; without it the plan is only printed
    #[arg(long)]
    execute: bool,
    #[command(flatten)]
    output: OutputArgs,
}

impl ResetOffsetsArgs {
    fn resolve(self) -> Reset {
        // clap's "target" group makes exactly one of them present.
        let to = if self.to_earliest {
            ResetTo::Earliest
        } else if self.to_latest {
            ResetTo::Latest
        } else if let Some(n) = self.to_offset {
            ResetTo::Offset(n)
        } else if let Some(ms) = self.to_datetime {
            ResetTo::Time(ms)
        } else {
            ResetTo::ShiftBy(self.shift_by.unwrap_or(0))
        };
        Reset {
            group: self.group,
            topics: self.topics,
            to,
            execute: self.execute,
            json: self.output.json,
        }
    }
}

impl GroupsCommand {
    pub(super) async fn execute(self, opts: &KafkaOpts) -> Result<()> {
        match self {
            GroupsCommand::List { output } => groups::list(opts, output.json),
            GroupsCommand::Describe { group, output } => {
                groups::describe(opts, &group, output.json)
            }
            GroupsCommand::ResetOffsets(args) => groups::reset_offsets(opts, &args.resolve()),
            GroupsCommand::Delete { groups } => groups::delete(opts, &groups).await,
        }
    }
}
