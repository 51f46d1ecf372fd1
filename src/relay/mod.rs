//! `kbridge run`: the alert relay.
//!
//! Kafka in (`consumer`) → decode → validate → map (`preset`) → deliver
//! (`webhook`, `retry`) or dead-letter (`dead_letter`) → commit (`offsets`,
//! `partitions`), orchestrated by `pipeline`; `shutdown` and `systemd`
//! make it a well-behaved service.

mod commits;
pub(crate) mod config;
mod consumer;
pub(crate) mod dead_letter;
mod decode;
mod map;
mod offsets;
mod ordering;
mod partitions;
pub(crate) mod pipeline;
mod preset;
mod response;
mod retry;
mod shutdown;
mod systemd;
mod telemetry;
mod validate;
mod webhook;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use clap::Args;
use rdkafka::ClientConfig;
use rdkafka::consumer::Consumer;
use rdkafka::producer::FutureProducer;
use tokio::sync::{mpsc, watch};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use config::{LogFormat, OffsetReset, Overrides, RelayConfig};
use dead_letter::DeadLetters;
use partitions::Partitions;
use pipeline::{Relay, Report};
use retry::AttemptObserver;
use webhook::{Attempt, Webhook};

use crate::client::KafkaContext;

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// TOML config file (see examples/guance-easyops.toml)
    #[arg(long, short = 'c', env = "KBRIDGE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Topic to consume (repeatable) [config: topics]
    #[arg(long = "topic", short = 't', value_name = "T")]
    pub topics: Vec<String>,
    /// Consumer group [config: group; default: omp]
    #[arg(long, short = 'g')]
    pub group: Option<String>,
    /// Webhook URL of the ops platform [config: webhook.url]
    #[arg(long, value_name = "URL")]
    pub webhook: Option<String>,
    /// Where a group without committed offsets starts [config: offset_reset; default: latest]
    #[arg(long, value_enum)]
    pub offset_reset: Option<OffsetReset>,
    /// Topic for events that cannot be delivered [config: dead_letter_topic]
    #[arg(long, value_name = "T")]
    pub dead_letter_topic: Option<String>,
    /// Log format [config: log.format]
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Serve Prometheus metrics and health checks on HOST:PORT [config: metrics.addr]
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<String>,
}

impl RunArgs {
    fn overrides(&self, brokers: Option<String>, properties: Vec<(String, String)>) -> Overrides {
        let mut o = Overrides {
            brokers,
            topics: (!self.topics.is_empty()).then(|| self.topics.clone()),
            group: self.group.clone(),
            offset_reset: self.offset_reset,
            dead_letter_topic: self.dead_letter_topic.clone(),
            kafka: properties.into_iter().collect(),
            ..Default::default()
        };
        if let Some(url) = &self.webhook {
            o.webhook.insert("url".into(), url.clone());
        }
        if let Some(f) = self.log_format {
            o.log
                .insert("format".into(), format!("{f:?}").to_lowercase());
        }
        if let Some(a) = &self.metrics_addr {
            o.metrics.insert("addr".into(), a.clone());
        }
        o
    }
}

/// How often the relay logs its one-line summary.
const SUMMARY_EVERY: Duration = Duration::from_secs(30);

/// Entry point of `kbridge run`.
pub(crate) async fn run(
    args: RunArgs,
    brokers: Option<String>,
    properties: Vec<(String, String)>,
) -> Result<ExitCode> {
    let overrides = args.overrides(brokers, properties);
    // A configuration mistake exits 2, which the systemd unit does not
    // restart on (RestartPreventExitStatus=2).
    let cfg = RelayConfig::load(args.config.as_deref(), &overrides)
        .map_err(|e| crate::UsageError(format!("{e:#}")))?;
    let _guard = init_logging(&cfg)?;
    let (_trigger, shutdown) = shutdown::install(cfg.drain_timeout);
    match serve(cfg, shutdown, None).await {
        Ok(()) => {
            tracing::info!("stopped cleanly");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            tracing::error!("{e:#}");
            Err(e)
        }
    }
}

/// Feeds webhook attempts into the telemetry.
struct Observer(Arc<telemetry::Totals>);

impl AttemptObserver for Observer {
    fn waiting(&self, delta: i64) {
        self.0.retry_backlog(delta);
    }

    fn attempt(&self, attempt: &Attempt, elapsed: Duration) {
        let outcome = match (&attempt.verdict, attempt.connection_failed) {
            (response::Verdict::Delivered, _) => "delivered",
            (response::Verdict::Rejected { .. }, _) => "rejected",
            (response::Verdict::Retry { .. }, true) => "connection_error",
            (response::Verdict::Retry { .. }, false) => "retryable",
        };
        self.0.attempt(outcome, attempt.status, elapsed);
    }
}

/// Runs the relay until shutdown; also used by `kbridge demo`, which passes
/// a report channel to show what happened to each event.
pub(crate) async fn serve(
    cfg: RelayConfig,
    shutdown: shutdown::Shutdown,
    reports: Option<mpsc::UnboundedSender<Report>>,
) -> Result<()> {
    let totals = Arc::new(telemetry::Totals::default());
    if let Some(addr) = cfg.metrics.addr {
        telemetry::serve(addr, totals.clone()).await?;
    }
    telemetry::spawn_summary(totals.clone(), SUMMARY_EVERY);
    let webhook = Webhook::new(&cfg.webhook, cfg.concurrency)?;
    let partitions: Arc<Partitions<pipeline::Job>> = Arc::default();
    let consumer = Arc::new(consumer::create(&cfg, partitions.clone(), totals.clone())?);

    let dead_letters = match &cfg.dead_letter_topic {
        Some(topic) => {
            let mut c = ClientConfig::new();
            c.set("bootstrap.servers", &cfg.brokers)
                .set("client.id", "kbridge-dead-letters")
                .set("enable.idempotence", "true")
                .set("acks", "all")
                .set("linger.ms", "5")
                // A dead letter carries the original value, however large
                // it was; the topic's own limit decides, and a value it
                // refuses is left out (see dead_letter.rs).
                .set("message.max.bytes", "100000000");
            for (k, v) in &cfg.kafka {
                c.set(k, v);
            }
            let producer: FutureProducer<KafkaContext> = c
                .create_with_context(KafkaContext::default())
                .map_err(|e| anyhow!("cannot create the dead-letter producer: {e}"))?;
            Some(DeadLetters::new(producer, topic.clone()))
        }
        None => None,
    };

    let mut needed = cfg.topics.clone();
    if let Some(d) = &dead_letters {
        needed.push(d.topic().to_string());
    }
    {
        let consumer = consumer.clone();
        let brokers = cfg.brokers.clone();
        let wait = cfg.topic_wait;
        tokio::task::spawn_blocking(move || {
            consumer::wait_for_topics(consumer.client(), &brokers, &needed, wait)
        })
        .await
        .context("internal error waiting for topics")??;
    }
    let topics: Vec<&str> = cfg.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .context("cannot subscribe to the topics")?;

    let (abort_tx, abort_rx) = watch::channel(false);
    let relay = Arc::new(Relay {
        consumer,
        partitions,
        webhook,
        retry: cfg.retry.clone(),
        dead_letters,
        observer: Arc::new(Observer(totals.clone())),
        totals,
        reports,
        preset: cfg.preset,
        max_message_bytes: cfg.max_message_bytes,
        abort: abort_rx,
    });
    tracing::info!(
        brokers = %cfg.brokers,
        topics = ?cfg.topics,
        group = %cfg.group,
        webhook = %cfg.webhook.url,
        dead_letter_topic = cfg.dead_letter_topic.as_deref().unwrap_or("-"),
        "relay started"
    );
    let heartbeat = systemd::Heartbeat::new();
    systemd::ready(&format!(
        "consuming {} as group {}",
        cfg.topics.join(","),
        cfg.group
    ));
    systemd::spawn_watchdog(heartbeat.clone());
    let result = pipeline::run(relay.clone(), &cfg, shutdown, abort_tx, heartbeat).await;
    systemd::status("stopped");
    result
}

/// Logs to stderr (journald captures it) as text or JSON, and optionally to
/// a file. `KBRIDGE_LOG` overrides the configured level.
fn init_logging(cfg: &RelayConfig) -> Result<crate::logging::Guard> {
    let filter = std::env::var("KBRIDGE_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .map_or_else(
            || {
                EnvFilter::try_new(&cfg.log.level).map_err(|e| {
                    crate::UsageError(format!("log.level '{}' is invalid: {e}", cfg.log.level))
                })
            },
            Ok,
        )?;
    let stderr_layer = match cfg.log.format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let (file_layer, guard) = match &cfg.log.file {
        Some(path) => {
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let name = path
                .file_name()
                .ok_or_else(|| anyhow!("log.file '{}' has no file name", path.display()))?;
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the log directory {}", dir.display()))?;
            let (writer, guard) =
                tracing_appender::non_blocking(tracing_appender::rolling::never(dir, name));
            let layer = match cfg.log.format {
                LogFormat::Text => tracing_subscriber::fmt::layer()
                    .with_writer(writer)
                    .with_ansi(false)
                    .boxed(),
                LogFormat::Json => tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(writer)
                    .boxed(),
            };
            (Some(layer), Some(guard))
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(stderr_layer)
        .with(file_layer)
        .try_init()
        .map_err(|e| anyhow!("cannot set up logging: {e}"))?;
    Ok(guard)
}
