//! Command-line interface: what the user can type, and how it becomes the
//! plain values the commands, the relay and the demo take.
//!
//! Every clap type lives under `cli`, and only `main` imports it: the
//! layers below never see a parser. Each file here holds the arguments of
//! one command family and the step that resolves them ("parsed → resolved",
//! as ripgrep's `lowargs`/`hiargs`). Options shared by every command (`-b`,
//! `-X`, `--timeout`) are global, as in kcat, so they can be given before or
//! after the subcommand.

mod check;
mod cluster;
mod consume;
mod dlq;
mod groups;
mod manual;
mod output;
mod produce;
mod run;
mod silence;
mod topics;
mod trace;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Result;
use clap::{ArgAction, CommandFactory, Parser, Subcommand};

use crate::client::KafkaOpts;
use crate::logging::Quietness;
use crate::time_spec::{parse_key_value, parse_timeout};

#[derive(Debug, Parser)]
#[command(
    name = "kbridge",
    version,
    long_version = crate::build_info::long_version(),
    about = "Relay monitoring alerts from Kafka to an ops platform webhook, and run the everyday Kafka operations",
    long_about = "Relay monitoring alerts from Kafka to an ops platform webhook, and run the everyday Kafka \
                  operations.\n\n\
                  `kbridge run` consumes alert events in a consumer group, validates and maps them, and posts \
                  them to the webhook; an offset is committed only once its event was delivered, \
                  dead-lettered or deliberately skipped. Its configuration is a TOML file \
                  (/etc/kbridge/kbridge.toml when installed from the package); `kbridge check` tries one. \
                  Beside it, the everyday Kafka operations: topics, produce, consume, groups and cluster.\n\n\
                  Every command takes -b for the brokers and -X for any librdkafka property \
                  (security.protocol, sasl.*, ssl.*), before or after the subcommand, as kcat does.",
    propagate_version = true,
    max_term_width = 100
)]
pub(crate) struct Cli {
    /// Bootstrap brokers, comma-separated [default: localhost:9092]
    #[arg(
        short = 'b',
        long,
        env = "KBRIDGE_BROKERS",
        hide_env_values = true,
        global = true,
        value_name = "LIST"
    )]
    brokers: Option<String>,

    /// Any librdkafka property for every client (security.protocol, sasl.*, ssl.*, client.id …)
    #[arg(short = 'X', long = "property", global = true, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    properties: Vec<(String, String)>,

    /// How long to wait for the cluster before giving up (e.g. 10s, 500ms, 1m)
    #[arg(long, global = true, default_value = "10s", value_parser = parse_timeout)]
    timeout: Duration,

    /// More log output on stderr (-v: info, -vv: debug, -vvv: librdkafka debug)
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, list, describe and delete topics
    #[command(subcommand)]
    Topics(topics::TopicsCommand),
    /// Produce JSON lines (from a file or stdin) with delivery reports
    Produce(produce::ProduceArgs),
    /// Print messages from topics, with or without a consumer group
    Consume(consume::ConsumeArgs),
    /// List, describe (with lag), reset and delete consumer groups
    #[command(subcommand)]
    Groups(groups::GroupsCommand),
    /// Cluster id, controller, brokers and API versions
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Run the alert relay: Kafka → validate → map → webhook
    Run(run::RunArgs),
    /// Show the relay working end to end with an embedded broker and receiver
    Demo(run::DemoArgs),
    /// Check the relay's config, and show what it would do with sample events
    Check(check::CheckArgs),
    /// Dead letters: counts, records decoded, and fix-and-replay
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// The journey of an alert: each route's outcome, its source records and dead letters
    Trace(trace::TraceArgs),
    /// Silence alerts for a time window (every relay of the group honours it)
    #[command(subcommand)]
    Silence(silence::SilenceCommand),
    /// Print a shell completion script
    Completions {
        /// The shell to generate completions for
        shell: clap_complete::Shell,
    },
    /// Write the manual pages: kbridge(1) and one per subcommand
    Manpages {
        /// The directory to write them into (created if missing)
        #[arg(value_name = "DIR")]
        out_dir: std::path::PathBuf,
    },
}

impl Cli {
    /// How the command logs to stderr; `None` for the relay, which sets up
    /// its own logging from its configuration.
    pub(crate) fn log_quietness(&self) -> Option<Quietness> {
        match self.command {
            Command::Run(_) => None,
            Command::Demo(_) => Some(Quietness::Errors),
            _ => Some(Quietness::Warnings),
        }
    }

    /// Runs the command.
    pub(crate) async fn execute(self) -> Result<ExitCode> {
        // The relay takes `-b` only when given: its config file may name
        // the brokers.
        let brokers_given = self.brokers.is_some();
        let opts =
            KafkaOpts::from_command_line(self.brokers.as_deref(), self.properties, self.timeout);
        match self.command {
            Command::Topics(cmd) => cmd.execute(&opts).await?,
            Command::Groups(cmd) => cmd.execute(&opts).await?,
            Command::Cluster(cmd) => blocking(move || cmd.execute(&opts)).await?,
            Command::Produce(args) => {
                let produce = args.resolve();
                blocking(move || crate::commands::produce::run(&opts, &produce)).await?
            }
            Command::Consume(args) => {
                let consume = args.resolve()?;
                let stop = Arc::new(AtomicBool::new(false));
                let on_signal = stop.clone();
                tokio::spawn(async move {
                    if tokio::signal::ctrl_c().await.is_ok() {
                        on_signal.store(true, Ordering::Relaxed);
                    }
                });
                blocking(move || crate::commands::consume::run(&opts, &consume, &stop)).await?
            }
            Command::Run(args) => return args.execute(opts, brokers_given).await,
            Command::Demo(args) => crate::demo::run(args.deadline).await?,
            Command::Check(args) => return args.execute(),
            Command::Silence(cmd) => return cmd.execute(opts, brokers_given).await,
            Command::Dlq(cmd) => return cmd.execute(opts, brokers_given).await,
            Command::Trace(args) => return args.execute(opts, brokers_given).await,
            Command::Completions { shell } => {
                let mut script = Vec::new();
                clap_complete::generate(shell, &mut Cli::command(), "kbridge", &mut script);
                std::io::Write::write_all(&mut std::io::stdout().lock(), &script)?;
            }
            Command::Manpages { out_dir } => {
                for page in manual::write_pages(Cli::command(), &out_dir)? {
                    println!("{}", page.display());
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Runs synchronous librdkafka work off the async workers.
async fn blocking<F>(f: F) -> Result<()>
where
    F: FnOnce() -> Result<()> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| anyhow::anyhow!("internal error: {e}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            args.resolve().unwrap().start,
            crate::time_spec::StartOffset::Tail(5)
        );
    }
}
