//! `kbridge produce …`

use std::path::PathBuf;

use clap::Args;

use crate::commands::produce::{Produce, Source};
use crate::time_spec::parse_key_value;

#[derive(Debug, Args)]
pub(super) struct ProduceArgs {
    /// Topic to produce to
    topic: String,
    /// File of JSON lines; standard input when absent or "-"
    file: Option<PathBuf>,
    /// Take each message's key from this top-level JSON field (e.g. df_fault_id)
    #[arg(long, value_name = "NAME", conflicts_with = "key")]
    key_field: Option<String>,
    /// Use this key for every message
    #[arg(long, short = 'k', value_name = "K")]
    key: Option<String>,
    /// Header for every message (repeatable)
    #[arg(short = 'H', long = "header", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    headers: Vec<(String, String)>,
    /// Send every message to this partition instead of the partitioner's choice
    #[arg(long)]
    partition: Option<i32>,
    /// Send lines as they are, without checking that they are JSON
    #[arg(long, conflicts_with = "key_field")]
    raw: bool,
    /// Report invalid JSON lines and go on instead of stopping
    #[arg(long)]
    skip_invalid: bool,
    /// Print only the summary, not a report per message
    #[arg(short, long)]
    quiet: bool,
}

impl ProduceArgs {
    pub(super) fn resolve(self) -> Produce {
        let source = match self.file {
            Some(path) if path.as_os_str() != "-" => Source::File(path),
            _ => Source::Stdin,
        };
        Produce {
            topic: self.topic,
            source,
            key_field: self.key_field,
            key: self.key,
            headers: self.headers,
            partition: self.partition,
            raw: self.raw,
            skip_invalid: self.skip_invalid,
            quiet: self.quiet,
        }
    }
}
