//! `kbridge topics …`

use anyhow::Result;
use clap::Subcommand;

use super::output::OutputArgs;
use crate::client::KafkaOpts;
use crate::commands::topics::{self, TopicSpec};
use crate::time_spec::parse_key_value;

#[derive(Debug, Subcommand)]
pub(super) enum TopicsCommand {
    /// List topics with their partition counts
    List {
        #[command(flatten)]
        output: OutputArgs,
        /// Include internal topics such as __consumer_offsets
        #[arg(long)]
        all: bool,
    },
    /// Partitions (leader, replicas, ISR, watermarks) and non-default configs of a topic
    Describe {
        topic: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Create a topic
    Create {
        topic: String,
        /// Number of partitions
        #[arg(short, long, default_value_t = 1)]
        partitions: i32,
        /// Replication factor
        #[arg(short = 'r', long, default_value_t = 1)]
        replication_factor: i32,
        /// Topic config, e.g. -c retention.ms=86400000 (repeatable)
        #[arg(short = 'c', long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
        /// Succeed without change when the topic already exists
        #[arg(long)]
        if_not_exists: bool,
    },
    /// Delete one or more topics
    Delete {
        #[arg(required = true)]
        topics: Vec<String>,
    },
}

impl TopicsCommand {
    pub(super) async fn execute(self, opts: &KafkaOpts) -> Result<()> {
        match self {
            TopicsCommand::List { output, all } => topics::list(opts, output.json, all),
            TopicsCommand::Describe { topic, output } => {
                topics::describe(opts, &topic, output.json).await
            }
            TopicsCommand::Create {
                topic,
                partitions,
                replication_factor,
                configs,
                if_not_exists,
            } => {
                let new = TopicSpec {
                    name: topic,
                    partitions,
                    replication_factor,
                    configs,
                    if_not_exists,
                };
                topics::create(opts, &new).await
            }
            TopicsCommand::Delete { topics } => topics::delete(opts, &topics).await,
        }
    }
}
