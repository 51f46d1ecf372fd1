//! The relay service: Kafka in → decode → validate → map → deliver → commit.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct RunArgs {}

pub(crate) async fn run(
    _args: RunArgs,
    _brokers: Option<String>,
    _properties: Vec<(String, String)>,
) -> Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
