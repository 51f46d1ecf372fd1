//! What the relay tells operators: Prometheus metrics (all names live here),
//! health endpoints, and a periodic one-line summary in the log.
//!
//! Counters go to the `metrics` facade (exported by
//! metrics-exporter-prometheus when `metrics.addr` is set, a no-op
//! otherwise) and to a few process-local totals that feed the summary line.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::relay::deliver::{Attempt, Reach, Rejection, Trouble, Verdict};
use crate::relay::stage::Stage;

/// What one webhook attempt came to, as the `outcome` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttemptOutcome {
    Delivered,
    Rejected,
    /// No answer: the connection failed (this makes the relay not ready).
    ConnectionError,
    /// The answer says the target's address or kbridge's credentials are
    /// wrong (this makes the relay not ready).
    TargetError,
    /// An answer or a timeout worth another try.
    Retryable,
    /// The target is throttling: the route pauses (this makes the relay
    /// not ready).
    Throttled,
}

impl AttemptOutcome {
    pub(crate) fn of(attempt: &Attempt) -> Self {
        match (&attempt.verdict, attempt.reach) {
            (Verdict::Delivered, _) => AttemptOutcome::Delivered,
            (Verdict::Rejected { .. }, _) => AttemptOutcome::Rejected,
            (Verdict::Retry { .. }, Reach::ConnectionFailed) => AttemptOutcome::ConnectionError,
            (
                Verdict::Retry {
                    trouble: Trouble::Throttled,
                    ..
                },
                _,
            ) => AttemptOutcome::Throttled,
            (
                Verdict::Retry {
                    trouble: Trouble::Misconfigured,
                    ..
                },
                _,
            ) => AttemptOutcome::TargetError,
            (Verdict::Retry { .. }, _) => AttemptOutcome::Retryable,
        }
    }

    fn label(self) -> &'static str {
        match self {
            AttemptOutcome::Delivered => "delivered",
            AttemptOutcome::Rejected => "rejected",
            AttemptOutcome::ConnectionError => "connection_error",
            AttemptOutcome::TargetError => "target_error",
            AttemptOutcome::Retryable => "retryable",
            AttemptOutcome::Throttled => "throttled",
        }
    }
}

/// Why an event was not delivered, as the `reason` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RejectReason {
    /// The webhook's answer refused this alert.
    Answer(Rejection),
    /// `retry.max_attempts` reached.
    RetriesExhausted,
    /// `retry.poison_after` reached while other alerts were delivered.
    Poison,
}

impl RejectReason {
    fn label(self) -> &'static str {
        match self {
            RejectReason::Answer(kind) => kind.label(),
            RejectReason::RetriesExhausted => "retries_exhausted",
            RejectReason::Poison => "poison",
        }
    }
}

/// Totals since start, for the summary line.
#[derive(Default)]
pub(crate) struct Totals {
    consumed: AtomicU64,
    delivered: AtomicU64,
    skipped: AtomicU64,
    invalid: AtomicU64,
    dead_lettered: AtomicU64,
    rejected: AtomicU64,
    retrying: AtomicI64,
    in_flight: AtomicI64,
    lag: AtomicI64,
    /// Readiness: routes whose last webhook attempt failed to connect, or
    /// was refused as the target's fault (credentials, address).
    targets_failing: AtomicI64,
    /// Readiness: partitions are assigned.
    assigned: AtomicBool,
    /// Alerts parked (see `deliver::retry`): not given up, retried slowly.
    parked: AtomicI64,
    /// `max_pending`: parked alerts filling the whole window stop the
    /// relay (not ready).
    window: AtomicI64,
    /// Readiness: dead letters cannot be written.
    dead_letters_failing: AtomicBool,
    /// The audit records of handled events were not written in time for
    /// the last commit.
    audit_failing: AtomicBool,
    /// Readiness: the storm stage cannot write to its topics.
    storm_failing: AtomicI64,
}

impl Totals {
    pub(crate) fn consumed(&self) {
        self.consumed.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("kbridge_events_consumed_total").increment(1);
    }

    pub(crate) fn delivered(&self, route: &Arc<str>, event_time_ms: Option<i64>) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("kbridge_events_delivered_total", "route" => label(route)).increment(1);
        if let Some(ts) = event_time_ms {
            let now = jiff::Timestamp::now().as_millisecond();
            metrics::histogram!("kbridge_delivery_latency_seconds", "route" => label(route))
                .record((now - ts).max(0) as f64 / 1000.0);
        }
    }

    /// Skipped by a route (its filter, the preset's rules), or by every
    /// route (`None`: the label is `-`).
    pub(crate) fn skipped(&self, route: Option<&Arc<str>>) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
        let route = route.map_or(metrics::SharedString::const_str("-"), label);
        metrics::counter!("kbridge_events_skipped_total", "route" => route).increment(1);
    }

    /// An event this partition's previous owner already handled on a
    /// route (its commit said so): not sent again.
    pub(crate) fn handled_before(&self, route: &Arc<str>) {
        metrics::counter!("kbridge_events_handled_before_total", "route" => label(route))
            .increment(1);
    }

    pub(crate) fn invalid(&self, route: &Arc<str>, stage: Stage) {
        self.invalid.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("kbridge_events_invalid_total", "route" => label(route), "stage" => stage.as_str())
            .increment(1);
    }

    pub(crate) fn dead_lettered(&self, route: &Arc<str>, stage: Stage) {
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("kbridge_events_dead_lettered_total", "route" => label(route), "stage" => stage.as_str())
            .increment(1);
    }

    pub(crate) fn rejected(&self, route: &Arc<str>, reason: RejectReason, status: Option<u16>) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("kbridge_events_rejected_total", "route" => label(route), "reason" => reason.label(), "status" => status_label(status))
            .increment(1);
    }

    pub(crate) fn consumer_error(&self) {
        metrics::counter!("kbridge_consumer_errors_total").increment(1);
    }

    pub(crate) fn in_flight(&self, n: usize) {
        self.in_flight.store(n as i64, Ordering::Relaxed);
        metrics::gauge!("kbridge_in_flight_events").set(n as f64);
    }

    /// jq evaluations abandoned past their budget and still running.
    pub(crate) fn jq_abandoned(&self, n: usize) {
        metrics::gauge!("kbridge_jq_abandoned_evaluations").set(n as f64);
    }

    pub(crate) fn pending_bytes(&self, n: usize) {
        metrics::gauge!("kbridge_pending_bytes").set(n as f64);
    }

    pub(crate) fn paused_partitions(&self, n: usize) {
        metrics::gauge!("kbridge_paused_partitions").set(n as f64);
    }

    pub(crate) fn assigned(&self, any: bool) {
        self.assigned.store(any, Ordering::Relaxed);
    }

    /// Per-partition lag and committed offset, from librdkafka's statistics.
    pub(crate) fn partition_stats(&self, stats: &rdkafka::Statistics) {
        let mut total = 0;
        for (topic, t) in &stats.topics {
            for (id, p) in &t.partitions {
                if *id < 0 || p.fetch_state == "none" || p.hi_offset < 0 {
                    continue;
                }
                let lag = if p.committed_offset >= 0 {
                    (p.hi_offset - p.committed_offset).max(0)
                } else {
                    p.consumer_lag.max(0)
                };
                total += lag;
                let labels = [("topic", topic.clone()), ("partition", id.to_string())];
                metrics::gauge!("kbridge_consumer_lag", &labels).set(lag as f64);
                if p.committed_offset >= 0 {
                    metrics::gauge!("kbridge_committed_offset", &labels)
                        .set(p.committed_offset as f64);
                }
            }
        }
        self.lag.store(total, Ordering::Relaxed);
    }

    /// `/readyz`: ready, or why not — and parked alerts either way.
    fn readiness(&self) -> (bool, String) {
        let parked = self.parked.load(Ordering::Relaxed);
        let window = self.window.load(Ordering::Relaxed);
        let mut why = Vec::new();
        if !self.assigned.load(Ordering::Relaxed) {
            why.push("no partitions assigned".to_string());
        }
        let failing = self.targets_failing.load(Ordering::Relaxed);
        if failing > 0 {
            why.push(format!(
                "{failing} route(s) failing as a target: unreachable, throttling, or refusing the relay (credentials, URL)"
            ));
        }
        if self.dead_letters_failing.load(Ordering::Relaxed) {
            why.push(
                "dead letters cannot be written (the dead-letter topic is missing, refuses kbridge, or its producer failed): their partitions wait"
                    .to_string(),
            );
        }
        if self.audit_failing.load(Ordering::Relaxed) {
            why.push(
                "audit records cannot be written (the audit topic is missing, refuses kbridge, or the brokers are slow): offsets are not committed until they are"
                    .to_string(),
            );
        }
        if self.storm_failing.load(Ordering::Relaxed) > 0 {
            why.push(
                "the storm stage cannot write to its topics (state or repartition): their partitions wait"
                    .to_string(),
            );
        }
        let abandoned = crate::relay::route::jq_budget::abandoned();
        if abandoned > 0 {
            why.push(format!(
                "{abandoned} jq evaluation(s) ran past jq.timeout and still run (the relay restarts if they do not end)"
            ));
        }
        if window > 0 && parked >= window {
            why.push(format!(
                "{parked} parked alerts fill the max_pending window: nothing else flows"
            ));
        }
        let parked_note = if parked > 0 {
            format!(
                "; {parked} alert(s) parked: failing where others get through, retried every retry.max_backoff (kbridge_parked_alerts; set dead_letter_topic to set them aside)"
            )
        } else {
            String::new()
        };
        if why.is_empty() {
            (true, format!("ready{parked_note}\n"))
        } else {
            (
                false,
                format!("not ready: {}{parked_note}\n", why.join("; ")),
            )
        }
    }

    /// Counts one webhook attempt of a route; returns whether it failed as
    /// the target's fault (for the route's readiness, `deliver::Target`).
    pub(crate) fn attempt(&self, route: &Arc<str>, attempt: &Attempt, elapsed: Duration) -> bool {
        let outcome = AttemptOutcome::of(attempt);
        metrics::counter!("kbridge_delivery_attempts_total", "route" => label(route), "outcome" => outcome.label(), "status" => status_label(attempt.status()))
            .increment(1);
        metrics::histogram!("kbridge_request_duration_seconds", "route" => label(route))
            .record(elapsed.as_secs_f64());
        matches!(
            outcome,
            AttemptOutcome::ConnectionError
                | AttemptOutcome::TargetError
                | AttemptOutcome::Throttled
        )
    }

    /// Whether dead letters fail to be written now.
    /// Whether the last commit found the audit records it waited for
    /// written.
    pub(crate) fn audit_failing(&self, failing: bool) {
        self.audit_failing.store(failing, Ordering::Relaxed);
        metrics::gauge!("kbridge_audit_failing").set(if failing { 1.0 } else { 0.0 });
    }

    pub(crate) fn dead_letters_failing(&self, failing: bool) {
        self.dead_letters_failing.store(failing, Ordering::Relaxed);
        metrics::gauge!("kbridge_dead_letters_failing").set(if failing { 1.0 } else { 0.0 });
    }

    /// An event a storm route re-keyed into its repartition topic.
    pub(crate) fn storm_forwarded(&self, route: &Arc<str>) {
        metrics::counter!("kbridge_storm_forwarded_total", "route" => label(route)).increment(1);
    }

    /// An event a storm route absorbed (`reason`: dedupe, flap, max_age).
    pub(crate) fn storm_absorbed(&self, route: &Arc<str>, reason: &'static str) {
        metrics::counter!("kbridge_storm_absorbed_total", "route" => label(route), "reason" => reason)
            .increment(1);
    }

    /// An event taken into its group (a digest route).
    pub(crate) fn storm_grouped(&self, route: &Arc<str>) {
        metrics::counter!("kbridge_storm_grouped_total", "route" => label(route)).increment(1);
    }

    /// A group's digest delivered.
    pub(crate) fn storm_digest(&self, route: &Arc<str>) {
        metrics::counter!("kbridge_storm_digests_total", "route" => label(route)).increment(1);
    }

    /// A recovery held (`hold_resolved`).
    pub(crate) fn storm_held(&self, route: &Arc<str>) {
        metrics::counter!("kbridge_storm_held_total", "route" => label(route)).increment(1);
    }

    /// A held recovery sent when its hold ended.
    pub(crate) fn storm_released(&self, route: &Arc<str>) {
        metrics::counter!("kbridge_storm_released_total", "route" => label(route)).increment(1);
    }

    /// The route's alert memory in this instance, in bytes.
    pub(crate) fn storm_state(&self, route: &Arc<str>, bytes: usize) {
        metrics::gauge!("kbridge_storm_state_bytes", "route" => label(route)).set(bytes as f64);
    }

    /// The route's memory reached `max_state_bytes` (`what`: what gave way).
    pub(crate) fn storm_state_full(&self, route: &Arc<str>, what: &'static str) {
        metrics::counter!("kbridge_storm_state_full_total", "route" => label(route), "what" => what)
            .increment(1);
    }

    /// A write to a storm topic fails (+1) or no longer does (-1).
    pub(crate) fn storm_failing(&self, delta: i64) {
        let n = self.storm_failing.fetch_add(delta, Ordering::Relaxed) + delta;
        metrics::gauge!("kbridge_storm_writes_failing").set(n as f64);
    }

    /// An alert was parked (+1), or a parked one left (-1).
    pub(crate) fn parked(&self, delta: i64) {
        let n = self.parked.fetch_add(delta, Ordering::Relaxed) + delta;
        metrics::gauge!("kbridge_parked_alerts").set(n as f64);
    }

    /// The processing window (`max_pending`), for readiness.
    pub(crate) fn set_window(&self, max_pending: usize) {
        self.window.store(max_pending as i64, Ordering::Relaxed);
    }

    /// A delivery task panicked (contained: see `deliver::contained`).
    pub(crate) fn panicked(&self, route: &Arc<str>) {
        metrics::counter!("kbridge_panics_total", "route" => label(route)).increment(1);
    }

    /// A route paused because its target throttles.
    pub(crate) fn paused(&self, route: &Arc<str>) {
        metrics::counter!("kbridge_route_pauses_total", "route" => label(route)).increment(1);
    }

    /// A route's target started (true) or stopped (false) failing.
    pub(crate) fn target_failing(&self, failing: bool) {
        self.targets_failing
            .fetch_add(if failing { 1 } else { -1 }, Ordering::Relaxed);
    }

    /// An event entered (+1) or left (-1) a retry wait.
    pub(crate) fn waiting(&self, delta: i64) {
        let n = self.retrying.fetch_add(delta, Ordering::Relaxed) + delta;
        metrics::gauge!("kbridge_retry_backlog").set(n as f64);
    }
}

/// A route's name as a label: shared, not copied, per event.
fn label(route: &Arc<str>) -> metrics::SharedString {
    metrics::SharedString::from(route.clone())
}

/// An HTTP status as a label, without an allocation for the usual ones
/// (this runs once per webhook request).
fn status_label(status: Option<u16>) -> metrics::SharedString {
    let known = match status {
        None => "none",
        Some(200) => "200",
        Some(201) => "201",
        Some(202) => "202",
        Some(204) => "204",
        Some(400) => "400",
        Some(401) => "401",
        Some(403) => "403",
        Some(404) => "404",
        Some(408) => "408",
        Some(429) => "429",
        Some(500) => "500",
        Some(502) => "502",
        Some(503) => "503",
        Some(504) => "504",
        Some(other) => return other.to_string().into(),
    };
    known.into()
}

/// Installs the Prometheus recorder and serves `/metrics`, `/healthz` and
/// `/readyz` on `addr`.
pub(crate) async fn serve(addr: SocketAddr, totals: Arc<Totals>) -> Result<()> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_seconds".into()),
            &[
                0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                60.0, 300.0,
            ],
        )
        .context("invalid histogram buckets")?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for metrics"))?;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get({
                let handle: PrometheusHandle = handle.clone();
                move || std::future::ready(handle.render())
            }),
        )
        .route("/healthz", get(|| std::future::ready("ok\n")))
        .route(
            "/readyz",
            get(move || {
                let (ready, text) = totals.readiness();
                let status = if ready {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                std::future::ready((status, text))
            }),
        );
    tracing::info!(%addr, "serving /metrics, /healthz, /readyz");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("metrics endpoint stopped: {e}");
        }
    });
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    });
    Ok(())
}

/// Logs a one-line summary every `every`, like Vector's: rates since the
/// last line, lag, in flight.
pub(crate) fn spawn_summary(totals: Arc<Totals>, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        let mut last = (Instant::now(), 0u64, 0u64);
        loop {
            tick.tick().await;
            let consumed = totals.consumed.load(Ordering::Relaxed);
            let delivered = totals.delivered.load(Ordering::Relaxed);
            let secs = last.0.elapsed().as_secs_f64().max(0.001);
            tracing::info!(
                consumed,
                consumed_per_sec = format!("{:.1}", (consumed - last.1) as f64 / secs),
                delivered,
                delivered_per_sec = format!("{:.1}", (delivered - last.2) as f64 / secs),
                skipped = totals.skipped.load(Ordering::Relaxed),
                invalid = totals.invalid.load(Ordering::Relaxed),
                rejected = totals.rejected.load(Ordering::Relaxed),
                dead_lettered = totals.dead_lettered.load(Ordering::Relaxed),
                in_flight = totals.in_flight.load(Ordering::Relaxed),
                retrying = totals.retrying.load(Ordering::Relaxed),
                parked = totals.parked.load(Ordering::Relaxed),
                lag = totals.lag.load(Ordering::Relaxed),
                "summary"
            );
            last = (Instant::now(), consumed, delivered);
        }
    });
}
