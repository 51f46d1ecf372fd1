//! `kbridge demo`: the relay end to end on embedded parts.

use anyhow::Result;
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {}

pub(crate) async fn run(_args: DemoArgs) -> Result<()> {
    anyhow::bail!("not implemented yet")
}
