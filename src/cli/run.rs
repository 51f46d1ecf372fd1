//! `kbridge run` and `kbridge demo`: the relay's flags, resolved into the
//! top layer of its configuration.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, ValueEnum};

use crate::client::KafkaOpts;
use crate::logging::LogFormat;
use crate::relay::config::{
    LogOverrides, MetricsOverrides, OffsetReset, Overrides, WebhookOverrides,
};
use crate::time_spec::parse_duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OffsetResetArg {
    Earliest,
    Latest,
    /// Fail when the group has no committed offset
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

/// The relay's config file, as `run` and `check` take it. The value of
/// KBRIDGE_CONFIG is not shown in the help (nor in man pages generated on a
/// build machine).
#[derive(Debug, Args)]
pub(super) struct ConfigFile {
    /// The relay's TOML config file (see examples/guance-easyops.toml)
    #[arg(
        long,
        short = 'c',
        env = "KBRIDGE_CONFIG",
        hide_env_values = true,
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
}

impl ConfigFile {
    /// The relay's config as an operator command reads it (`dlq`,
    /// `trace`): `-b` and `-X` given on the command line win over the
    /// file's; none named, none.
    pub(super) fn load_for(
        &self,
        opts: &KafkaOpts,
        brokers_given: bool,
    ) -> Result<Option<crate::relay::config::RelayConfig>> {
        let Some(path) = self.config.as_deref() else {
            return Ok(None);
        };
        let overrides = Overrides {
            brokers: brokers_given.then(|| opts.brokers.clone()),
            kafka: opts.properties.iter().cloned().collect(),
            ..Default::default()
        };
        crate::relay::config::RelayConfig::load(Some(path), &overrides)
            .map(Some)
            .map_err(|e| crate::error::UsageError(format!("{e:#}")).into())
    }
}

#[derive(Debug, Args)]
pub(super) struct RunArgs {
    #[command(flatten)]
    config: ConfigFile,
    /// Topic to consume (repeatable) [config: topics]
    #[arg(long = "topic", short = 't', value_name = "T")]
    topics: Vec<String>,
    /// Consumer group [config: group; default: omp]
    #[arg(long, short = 'g')]
    group: Option<String>,
    /// Webhook URL of the ops platform [config: webhook.url]
    #[arg(long, value_name = "URL")]
    webhook: Option<String>,
    /// Where a group without committed offsets starts [config: offset_reset; default: latest]
    #[arg(long, value_enum)]
    offset_reset: Option<OffsetResetArg>,
    /// Topic for events that cannot be delivered [config: dead_letter_topic]
    #[arg(long, value_name = "T")]
    dead_letter_topic: Option<String>,
    /// Log format [config: log.format]
    #[arg(long, value_enum)]
    log_format: Option<LogFormatArg>,
    /// Serve Prometheus metrics and health checks on HOST:PORT [config: metrics.addr]
    #[arg(long, value_name = "HOST:PORT")]
    metrics_addr: Option<String>,
}

impl RunArgs {
    /// The flags (and the global `-b`/`-X`, when given) as the top layer of
    /// the relay's configuration.
    fn overrides(self, kafka: KafkaOpts, brokers_given: bool) -> Overrides {
        Overrides {
            brokers: brokers_given.then_some(kafka.brokers),
            topics: (!self.topics.is_empty()).then_some(self.topics),
            group: self.group,
            offset_reset: self.offset_reset.map(|r| match r {
                OffsetResetArg::Earliest => OffsetReset::Earliest,
                OffsetResetArg::Latest => OffsetReset::Latest,
                OffsetResetArg::None => OffsetReset::None,
            }),
            dead_letter_topic: self.dead_letter_topic,
            kafka: kafka.properties.into_iter().collect(),
            webhook: WebhookOverrides { url: self.webhook },
            log: LogOverrides {
                format: self.log_format.map(|f| match f {
                    LogFormatArg::Text => LogFormat::Text,
                    LogFormatArg::Json => LogFormat::Json,
                }),
            },
            metrics: MetricsOverrides {
                addr: self.metrics_addr,
            },
        }
    }

    pub(super) async fn execute(self, kafka: KafkaOpts, brokers_given: bool) -> Result<ExitCode> {
        let config = self.config.config.clone();
        let overrides = self.overrides(kafka, brokers_given);
        crate::relay::run(config.as_deref(), &overrides).await
    }
}

#[derive(Debug, Args)]
pub(super) struct DemoArgs {
    /// Give up if the events are not all handled within this time
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub deadline: Duration,
}
