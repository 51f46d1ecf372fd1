//! `--json`, shared by the listing commands.

use clap::Args;

/// `--json` for machines, tables for people.
#[derive(Debug, Clone, Copy, Args)]
pub(super) struct OutputArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}
