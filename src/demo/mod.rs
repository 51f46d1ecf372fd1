//! `kbridge demo`: the relay end to end with nothing installed.
//!
//! An embedded broker (librdkafka's mock cluster; its topics are created
//! through the mock's own API, since it answers no admin CreateTopics), a
//! built-in receiver that answers like the ops platform and like a Feishu
//! chat robot, a set of sample Guance events — good, filtered and
//! malformed — and the real relay between them, with two routes: the
//! built-in EasyOps preset, and the shipped Feishu pipeline (jq, at the
//! robot's rate limit). Prints what happened to every event on each route
//! and exits.

mod receiver;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use tokio::sync::mpsc;

use crate::client::{KafkaContext, KafkaOpts};
use crate::output::outln;
use crate::relay::config::{
    OffsetReset, Overrides, Preset, RateLimit, RelayConfig, RetryOverride, RouteConfig,
    WebhookConfig, WebhookOverrides,
};
use crate::relay::report::{Outcome, Report};
use crate::relay::service::serve;
use crate::relay::shutdown::Shutdown;

const TOPIC: &str = "guance-events";
const DLQ: &str = "guance-events-dlq";

/// The demo's routes: every event goes to both.
const ROUTES: [&str; 2] = ["easyops", "feishu"];

/// A sample event: what it shows, its key, its value bytes.
type Sample = (&'static str, Option<String>, Vec<u8>);

fn samples() -> Result<Vec<Sample>> {
    let good = [
        (
            "host CPU critical (trigger)",
            include_str!("../../examples/events/host-cpu-critical.json"),
        ),
        (
            "host CPU ok (recovery of the trigger)",
            include_str!("../../examples/events/host-cpu-ok.json"),
        ),
        (
            "k8s pod error (date in seconds; first try gets 503)",
            include_str!("../../examples/events/k8s-pod-error.json"),
        ),
        (
            "host no data (no df_fault_id)",
            include_str!("../../examples/events/host-nodata.json"),
        ),
        (
            "host unknown to the CMDB",
            include_str!("../../examples/events/unknown-host.json"),
        ),
        (
            "deployment notice (df_source user)",
            include_str!("../../examples/events/user-event.json"),
        ),
    ];
    let mut out = Vec::new();
    for (label, text) in good {
        let v: serde_json::Value =
            serde_json::from_str(text).context("a bundled sample is not JSON")?;
        let key = v["df_fault_id"].as_str().map(str::to_owned);
        out.push((label, key, serde_json::to_vec(&v)?));
    }
    out.push((
        "malformed: date as a string, no df_message",
        None,
        br#"{"df_source":"monitor","df_event_id":"event-bad-1","df_title":"disk","df_status":"critical","df_workspace_name":"demo","date":"1731904800000"}"#.to_vec(),
    ));
    out.push((
        "malformed: not JSON",
        None,
        b"ALERT disk full on pay-node-03".to_vec(),
    ));
    out.push((
        "malformed: not UTF-8",
        None,
        b"{\"df_title\":\"\xff\xfe\"}".to_vec(),
    ));
    out.push(("malformed: a JSON array", None, b"[1,2,3]".to_vec()));
    Ok(out)
}

/// Runs the demo; gives up when the events are not all handled within
/// `deadline`.
pub(crate) async fn run(deadline: Duration) -> Result<()> {
    let mock = MockCluster::new(1).map_err(|e| anyhow!("cannot start the embedded broker: {e}"))?;
    mock.create_topic(TOPIC, 3, 1)
        .map_err(|e| anyhow!("cannot create the demo topic: {e}"))?;
    mock.create_topic(DLQ, 1, 1)
        .map_err(|e| anyhow!("cannot create the dead-letter topic: {e}"))?;
    let brokers = mock.bootstrap_servers();
    let urls = receiver::start(receiver::Rules {
        unknown_hosts: vec!["lab-box-99".into()],
        flaky_alerts: vec!["event-1b2c3d4e5f60718293a4b5c6d7e8f901".into()],
    })
    .await?;
    outln!("kbridge demo")?;
    outln!(
        "  embedded Kafka (librdkafka mock cluster): {brokers}, topics {TOPIC} (3 partitions) and {DLQ}"
    )?;
    outln!("  built-in ops-platform receiver:           {}", urls.ops)?;
    outln!("  built-in Feishu-style chat robot:         {}", urls.robot)?;
    outln!(
        "  routes: easyops (preset guance-easyops), feishu (examples/pipelines/guance-feishu.jq, 100/min)"
    )?;
    outln!()?;

    let samples = samples()?;
    let kafka = KafkaOpts::from_command_line(Some(&brokers), Vec::new(), Duration::from_secs(10));
    let producer: FutureProducer<KafkaContext> = kafka
        .client()
        .build(KafkaContext::default(), "the demo producer")?;
    let mut labels = BTreeMap::new();
    for (label, key, value) in &samples {
        let mut record: FutureRecord<'_, str, [u8]> = FutureRecord::to(TOPIC).payload(value);
        if let Some(k) = key {
            record = record.key(k);
        }
        let delivery = producer
            .send(record, Timeout::After(Duration::from_secs(10)))
            .await
            .map_err(|(e, _)| anyhow!("cannot produce a demo event: {e}"))?;
        labels.insert(
            format!("{TOPIC}-{}-{}", delivery.partition, delivery.offset),
            *label,
        );
    }
    outln!("produced {} sample events; relaying them:", samples.len())?;
    outln!()?;

    let cfg = RelayConfig::load(
        None,
        &Overrides {
            brokers: Some(brokers),
            topics: Some(vec![TOPIC.into()]),
            group: Some("kbridge-demo".into()),
            offset_reset: Some(OffsetReset::Earliest),
            dead_letter_topic: Some(DLQ.into()),
            // The top-level webhook; the routes below take its place.
            webhook: WebhookOverrides {
                url: Some(urls.ops.clone()),
            },
            ..Default::default()
        },
    )?
    .with_routes(routes(&urls))?;
    let (stop, shutdown) = Shutdown::new();
    let (tx, mut rx) = mpsc::unbounded_channel::<Report>();
    let relay = tokio::spawn(serve(cfg, shutdown, Some(tx)));

    // Each event is reported once per route; it is shown when both are in.
    let mut pending: BTreeMap<String, Vec<Report>> = BTreeMap::new();
    let mut counts: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let timeout = tokio::time::sleep(deadline);
    tokio::pin!(timeout);
    let mut handled = 0;
    while handled < samples.len() {
        let report = tokio::select! {
            r = rx.recv() => r.ok_or_else(|| anyhow!("the relay stopped early"))?,
            _ = &mut timeout => bail!("only {handled} of {} events were handled within {deadline:?}", samples.len()),
        };
        let coordinates = report.coordinates.clone();
        let reports = pending.entry(coordinates.clone()).or_default();
        reports.push(report);
        if reports.len() < ROUTES.len() {
            continue;
        }
        let mut reports = pending.remove(&coordinates).unwrap_or_default();
        handled += 1;
        let label = labels.get(&coordinates).copied().unwrap_or("?");
        outln!("● {coordinates}  {label}")?;
        reports.sort_by_key(|r| ROUTES.iter().position(|n| r.route.as_deref() == Some(*n)));
        for report in &reports {
            let route = report.route.as_deref().unwrap_or("-");
            let kind = show(route, &report.outcome)?;
            *counts
                .entry((
                    ROUTES.iter().find(|n| **n == route).copied().unwrap_or("-"),
                    kind,
                ))
                .or_default() += 1;
        }
    }
    stop.raise();
    relay.await.context("the relay task failed")??;
    outln!()?;
    outln!("done: {} events; offsets committed.", samples.len())?;
    for route in ROUTES {
        let summary: Vec<String> = counts
            .iter()
            .filter(|((r, _), _)| *r == route)
            .map(|((_, k), n)| format!("{n} {k}"))
            .collect();
        outln!("  {route:8} {}", summary.join(", "))?;
    }
    outln!(
        "Next: `kbridge run --config examples/guance-easyops.toml` against your own Kafka and webhook;"
    )?;
    outln!(
        "      routes to chat robots and other monitors: examples/pipelines/ (try them with `kbridge check`)."
    )?;
    Ok(())
}

/// The demo's two routes: the built-in preset to the ops platform, and the
/// shipped Feishu pipeline to the chat robot, at Feishu's rate.
fn routes(urls: &receiver::Urls) -> Vec<RouteConfig> {
    let webhook = |url: &str| WebhookConfig {
        url: url.to_string(),
        ..WebhookConfig::default()
    };
    vec![
        RouteConfig {
            name: ROUTES[0].into(),
            topics: None,
            filter: None,
            preset: Some(Preset::GuanceEasyops),
            map: None,
            map_file: None,
            key: None,
            rate_limit: None,
            dead_letter_topic: None,
            retry: RetryOverride::default(),
            storm: Default::default(),
            webhook: webhook(&urls.ops),
        },
        RouteConfig {
            name: ROUTES[1].into(),
            topics: None,
            filter: None,
            preset: None,
            map: Some(include_str!("../../examples/pipelines/guance-feishu.jq").into()),
            map_file: None,
            key: Some(".df_fault_id // .df_event_id".into()),
            rate_limit: Some(RateLimit {
                requests: 100,
                per: Duration::from_secs(60),
            }),
            dead_letter_topic: None,
            retry: RetryOverride::default(),
            storm: Default::default(),
            webhook: WebhookConfig {
                success: Some("(.code // .StatusCode) == 0".into()),
                ..webhook(&urls.robot)
            },
        },
    ]
}

/// Prints one route's outcome for an event; returns its kind.
fn show(route: &str, outcome: &Outcome) -> Result<&'static str> {
    Ok(match outcome {
        Outcome::Delivered {
            key,
            bodies,
            attempts,
            ..
        } => {
            let tries = if *attempts > bodies.len() as u32 {
                format!(" after {attempts} attempts")
            } else {
                String::new()
            };
            outln!("    {route}: delivered{tries}, key {key}")?;
            for body in bodies {
                outln!("      {}", String::from_utf8_lossy(body))?;
            }
            "delivered"
        }
        Outcome::Skipped { reason } => {
            outln!("    {route}: skipped: {reason}")?;
            "skipped"
        }
        Outcome::Absorbed { what, reason } => {
            outln!("    {route}: {what}: {reason}")?;
            "skipped"
        }
        Outcome::DeadLettered { stage, reason, .. } => {
            outln!(
                "    {route}: dead-lettered to {DLQ} (stage {}): {reason}",
                stage.as_str()
            )?;
            "dead-lettered"
        }
        Outcome::Dropped { stage, reason, .. } => {
            outln!("    {route}: dropped (stage {}): {reason}", stage.as_str())?;
            "dropped"
        }
    })
}
