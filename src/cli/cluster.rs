//! `kbridge cluster …`

use anyhow::Result;
use clap::Subcommand;

use super::output::OutputArgs;
use crate::client::KafkaOpts;
use crate::commands::cluster;

#[derive(Debug, Subcommand)]
pub(super) enum ClusterCommand {
    /// Cluster id, controller and brokers
    Describe {
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Supported API versions of every broker, as kafka-broker-api-versions prints them
    ApiVersions {
        #[command(flatten)]
        output: OutputArgs,
    },
}

impl ClusterCommand {
    /// Blocking: librdkafka's synchronous calls.
    pub(super) fn execute(self, opts: &KafkaOpts) -> Result<()> {
        match self {
            ClusterCommand::Describe { output } => cluster::describe(opts, output.json),
            ClusterCommand::ApiVersions { output } => cluster::api_versions(opts, output.json),
        }
    }
}
