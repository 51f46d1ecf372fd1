//! `kbridge check`: the relay's configuration checked the way `kbridge run`
//! would load it, and what the relay would do with sample events — without
//! touching Kafka or the network.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

#[derive(Debug, Args)]
pub(super) struct CheckArgs {
    #[command(flatten)]
    config: super::run::ConfigFile,
    /// Sample events, one JSON document per line ('-' reads stdin)
    #[arg(value_name = "EVENTS.jsonl")]
    events: Option<PathBuf>,
    /// The events' topic: only the routes that take it are shown
    #[arg(long, short = 't', value_name = "T")]
    topic: Option<String>,
    /// One JSON object per event and route: line, route, outcome, bodies or reason
    #[arg(long)]
    json: bool,
}

impl CheckArgs {
    pub(super) fn execute(self) -> Result<ExitCode> {
        crate::relay::check::run(
            self.config.config.as_deref(),
            self.events.as_deref(),
            self.topic.as_deref(),
            self.json,
        )
    }
}
