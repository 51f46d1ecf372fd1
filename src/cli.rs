//! Command-line interface: what the user can type, and nothing else.
//!
//! Parsing is kept apart from the Kafka work so that every command module
//! receives plain, already-validated values. Options shared by every command
//! (`-b`, `-X`, `--timeout`) are global, as in kcat, so they can be given
//! before or after the subcommand.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::time_spec::{parse_key_value, parse_timeout};

/// Default bootstrap servers when neither `-b` nor `KBRIDGE_BROKERS` is given.
pub(crate) const DEFAULT_BROKERS: &str = "localhost:9092";

#[derive(Debug, Parser)]
#[command(
    name = "kbridge",
    version,
    about = "Relay monitoring alerts from Kafka to an ops platform webhook, and run the everyday Kafka operations",
    propagate_version = true,
    max_term_width = 100
)]
pub(crate) struct Cli {
    /// Bootstrap brokers, comma-separated [default: localhost:9092]
    #[arg(
        short = 'b',
        long,
        env = "KBRIDGE_BROKERS",
        global = true,
        value_name = "LIST"
    )]
    pub brokers: Option<String>,

    /// Any librdkafka property for every client (security.protocol, sasl.*, ssl.*, client.id …)
    #[arg(short = 'X', long = "property", global = true, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub properties: Vec<(String, String)>,

    /// How long to wait for the cluster before giving up (e.g. 10s, 500ms, 1m)
    #[arg(long, global = true, default_value = "10s", value_parser = parse_timeout)]
    pub timeout: Duration,

    /// More log output on stderr (-v: info, -vv: debug, -vvv: librdkafka debug)
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create, list, describe and delete topics
    #[command(subcommand)]
    Topics(TopicsCommand),
    /// Produce JSON lines (from a file or stdin) with delivery reports
    Produce(ProduceArgs),
    /// Print messages from topics, with or without a consumer group
    Consume(ConsumeArgs),
    /// List, describe (with lag), reset and delete consumer groups
    #[command(subcommand)]
    Groups(GroupsCommand),
    /// Cluster id, controller, brokers and API versions
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Run the alert relay: Kafka → validate → map → webhook
    Run(crate::relay::RunArgs),
    /// Show the relay working end to end with an embedded broker and receiver
    Demo(crate::demo::DemoArgs),
    /// Print a shell completion script
    Completions {
        /// The shell to generate completions for
        shell: clap_complete::Shell,
    },
}

/// `--json` for machines, tables for people.
#[derive(Debug, Clone, Copy, Args)]
pub(crate) struct OutputArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TopicsCommand {
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

#[derive(Debug, Args)]
pub(crate) struct ProduceArgs {
    /// Topic to produce to
    pub topic: String,
    /// File of JSON lines; standard input when absent or "-"
    pub file: Option<PathBuf>,
    /// Take each message's key from this top-level JSON field (e.g. df_fault_id)
    #[arg(long, value_name = "NAME", conflicts_with = "key")]
    pub key_field: Option<String>,
    /// Use this key for every message
    #[arg(long, short = 'k', value_name = "K")]
    pub key: Option<String>,
    /// Header for every message (repeatable)
    #[arg(short = 'H', long = "header", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub headers: Vec<(String, String)>,
    /// Send every message to this partition instead of the partitioner's choice
    #[arg(long)]
    pub partition: Option<i32>,
    /// Send lines as they are, without checking that they are JSON
    #[arg(long, conflicts_with = "key_field")]
    pub raw: bool,
    /// Report invalid JSON lines and go on instead of stopping
    #[arg(long)]
    pub skip_invalid: bool,
    /// Print only the summary, not a report per message
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// The message value, one per line
    Text,
    /// One JSON object per message: topic, partition, offset, timestamp, key, headers, value
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct ConsumeArgs {
    /// Topics to read
    #[arg(required = true)]
    pub topics: Vec<String>,
    /// Consume in this group and commit what was printed
    #[arg(short, long)]
    pub group: Option<String>,
    /// Where to start: earliest, latest, none (group must have offsets), N, -N (last N per partition), @TIME
    #[arg(short, long, allow_hyphen_values = true, value_parser = crate::time_spec::parse_start)]
    pub offset: Option<crate::time_spec::StartOffset>,
    /// Exit after COUNT messages
    #[arg(short, long)]
    pub count: Option<u64>,
    /// Exit when the end of every partition is reached
    #[arg(short = 'e', long = "exit")]
    pub exit_at_end: bool,
    /// Output format
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Subcommand)]
pub(crate) enum GroupsCommand {
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
pub(crate) struct ResetOffsetsArgs {
    pub group: String,
    /// Topic whose partitions are reset (repeatable); all partitions of it
    #[arg(long = "topic", required = true)]
    pub topics: Vec<String>,
    /// Reset to the log start
    #[arg(long)]
    pub to_earliest: bool,
    /// Reset to the log end
    #[arg(long)]
    pub to_latest: bool,
    /// Reset to this offset (clamped to the log's range)
    #[arg(long, value_name = "N")]
    pub to_offset: Option<i64>,
    /// Reset to the first offset at or after this time (RFC 3339, or relative like -15m)
    #[arg(long, value_name = "TIME", allow_hyphen_values = true, value_parser = crate::time_spec::parse_time)]
    pub to_datetime: Option<i64>,
    /// Move each partition's offset by N (negative goes back)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub shift_by: Option<i64>,
    /// Apply the change; without it the plan is only printed
    #[arg(long)]
    pub execute: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ClusterCommand {
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn negative_offsets_are_values_not_flags() {
        let cli = Cli::try_parse_from(["kbridge", "consume", "t", "-o", "-5"]).unwrap();
        let Command::Consume(args) = cli.command else {
            panic!("not consume")
        };
        assert_eq!(args.offset, Some(crate::time_spec::StartOffset::Tail(5)));
    }
}
