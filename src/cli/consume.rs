//! `kbridge consume …`

use anyhow::Result;
use clap::{Args, ValueEnum};

use crate::commands::consume::Consume;
use crate::commands::render::Format;
use crate::error::UsageError;
use crate::time_spec::{StartOffset, parse_start};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FormatArg {
    /// The message value, one per line
    Text,
    /// One JSON object per message: topic, partition, offset, timestamp, key, headers, value
    Json,
}

#[derive(Debug, Args)]
pub(super) struct ConsumeArgs {
    /// Topics to read
    #[arg(required = true)]
    topics: Vec<String>,
    /// Consume in this group and commit what was printed
    #[arg(short, long)]
    group: Option<String>,
    /// Where to start: earliest, latest, none (group must have offsets), N, -N (last N per partition), @TIME
    #[arg(short, long, allow_hyphen_values = true, value_parser = parse_start)]
    offset: Option<StartOffset>,
    /// Exit after COUNT messages
    #[arg(short, long)]
    count: Option<u64>,
    /// Exit when the end of every partition is reached
    #[arg(short = 'e', long = "exit")]
    exit_at_end: bool,
    /// Output format
    #[arg(short, long, value_enum, default_value_t = FormatArg::Text)]
    format: FormatArg,
}

impl ConsumeArgs {
    pub(super) fn resolve(self) -> Result<Consume> {
        let start = self.offset.unwrap_or(StartOffset::Earliest);
        if start == StartOffset::None && self.group.is_none() {
            return Err(UsageError(
                "-o none needs a group (-g): it means \"start from the group's committed offsets\""
                    .into(),
            )
            .into());
        }
        Ok(Consume {
            topics: self.topics,
            group: self.group,
            start,
            count: self.count,
            exit_at_end: self.exit_at_end,
            format: match self.format {
                FormatArg::Text => Format::Text,
                FormatArg::Json => Format::Json,
            },
        })
    }
}
