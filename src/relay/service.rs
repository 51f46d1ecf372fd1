//! The relay as a service: telemetry up, parts built, topics waited for,
//! subscribed, systemd told, the consume loop run until shutdown.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use rdkafka::consumer::Consumer;
use tokio::sync::mpsc;

use crate::redact;
use crate::relay::config::RelayConfig;
use crate::relay::consume_loop;
use crate::relay::report::Report;
use crate::relay::shared::Shared;
use crate::relay::shutdown::{Abort, STOP_RESERVE, Shutdown};
use crate::relay::systemd;
use crate::relay::telemetry::{self, Totals};

/// systemd's default `TimeoutStopSec`, which the shipped unit keeps.
const SYSTEMD_STOP: Duration = Duration::from_secs(30);

/// How often the relay logs its one-line summary.
const SUMMARY_EVERY: Duration = Duration::from_secs(30);

/// Runs the relay until shutdown; also used by `kbridge demo`, which passes
/// a report channel to show what happened to each event.
pub(crate) async fn serve(
    cfg: RelayConfig,
    shutdown: Shutdown,
    reports: Option<mpsc::UnboundedSender<Report>>,
) -> Result<()> {
    let stop_takes = cfg.drain_timeout + STOP_RESERVE;
    if stop_takes > SYSTEMD_STOP {
        tracing::warn!(
            "a stop may take up to {stop_takes:?} (drain_timeout + {STOP_RESERVE:?}); under systemd, set TimeoutStopSec above it, or systemd kills kbridge before it commits"
        );
    }
    if cfg.route_configs().iter().any(|r| {
        r.dead_letter_topic(cfg.dead_letter_topic.as_deref())
            .is_none()
    }) {
        tracing::warn!("{}", cfg.dead_letter_policy());
    }
    crate::relay::route::jq_budget::configure(cfg.jq.budget());
    let totals = Arc::new(Totals::default());
    if let Some(addr) = cfg.metrics.addr {
        telemetry::serve(addr, totals.clone()).await?;
    }
    telemetry::spawn_summary(totals.clone(), SUMMARY_EVERY);
    let abort = Abort::default();
    let shared = Arc::new(Shared::new(&cfg, totals, reports, &abort)?);

    // The storm stage's topics and the audit topic, made if missing
    // (before the wait, which then finds them).
    let mut stop = shutdown.clone();
    tokio::select! {
        made = async {
            crate::relay::storm::ensure_topics(&cfg).await?;
            crate::relay::audit::ensure_topic(&cfg).await
        } => made?,
        _ = stop.requested() => return Ok(()),
    }
    let mut needed = cfg.subscribed_topics();
    if shared.storm().is_some() {
        needed.push(cfg.storm_state_topic());
    }
    needed.extend(cfg.audit.topic.clone());
    for topic in shared
        .routes()
        .iter()
        .filter_map(|r| r.dead_letter_topic.as_deref())
    {
        if !needed.iter().any(|t| t == topic) {
            needed.push(topic.to_string());
        }
    }
    {
        let consumer = shared.consumer().clone();
        let kafka = cfg.kafka_opts();
        let wait = cfg.topic_wait;
        tracing::info!(topics = ?needed, "connecting; waiting for the topics for up to {wait:?}");
        let waiting = tokio::task::spawn_blocking(move || {
            kafka.wait_for_topics(consumer.client(), &needed, wait)
        });
        // A stop asked for while waiting (systemd gave up on the start,
        // say) ends the wait: nothing was consumed yet.
        let mut stop = shutdown.clone();
        tokio::select! {
            waited = waiting => {
                let counts = waited.context("internal error waiting for topics")??;
                crate::relay::storm::check_partitions(&cfg, &counts)?;
                shared.fleet_share().partition_counts(counts);
            }
            _ = stop.requested() => {
                tracing::info!("stopped while waiting for the topics");
                return Ok(());
            }
        }
    }
    if shared.storm().is_some() {
        let storm = shared.clone();
        tokio::task::spawn_blocking(move || storm.storm().map(|s| s.watch_silences()))
            .await
            .context("internal error reading the silences")?
            .transpose()?;
    }
    shared.start_storm_releases();
    let subscribed = cfg.subscribed_topics();
    let topics: Vec<&str> = subscribed.iter().map(String::as_str).collect();
    shared
        .consumer()
        .subscribe(&topics)
        .context("cannot subscribe to the topics")?;

    tracing::info!(
        brokers = %cfg.brokers,
        topics = ?cfg.topics,
        group = %cfg.group,
        webhook = %redact::url(&cfg.webhook.url),
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
    // On a runtime worker, not on the thread that blocks on `serve`: the
    // delivery tasks it spawns then start from the worker's own queue
    // instead of waking another thread for each event.
    let result =
        tokio::spawn(
            async move { consume_loop::run(shared, &cfg, shutdown, abort, heartbeat).await },
        )
        .await
        .context("the consume loop panicked")
        .and_then(|r| r);
    systemd::status("stopped");
    result
}
