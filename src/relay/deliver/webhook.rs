//! Stage 4, the sink: one POST of one alert, its answer classified by
//! `answer`.
//!
//! One pooled HTTP client for the whole process (the seed opened a new
//! connection per event, with no timeout). Retrying is `retry`'s job.

use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine;
use bytes::Bytes;
use reqwest::header::{
    AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER,
};

use super::answer::{Trouble, Verdict, classify};
use super::answer_rules::AnswerRules;
use super::status_policy::StatusPolicy;
use crate::redact;
use crate::relay::config::{WebhookConfig, WebhookTls};

/// The header that lets the target drop duplicates: stable across retries
/// and restarts, because it is the event's Kafka coordinates.
pub(crate) const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// Answers longer than this are cut before classification; the target's
/// answers are small JSON documents.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub(crate) struct Webhook {
    client: reqwest::Client,
    url: reqwest::Url,
    /// `concurrency`: requests in flight at once, whatever the number of
    /// events in processing. Held per attempt, not across backoff waits.
    in_flight: std::sync::Arc<tokio::sync::Semaphore>,
    /// Which answers are about the alert, which about the target.
    policy: std::sync::Arc<StatusPolicy>,
    /// The target's own rules on its answers' bodies.
    rules: std::sync::Arc<AnswerRules>,
    /// When an alert was last delivered, as milliseconds after `epoch` (0:
    /// never), to tell a poison alert from an outage.
    last_delivered: std::sync::Arc<std::sync::atomic::AtomicU64>,
    epoch: std::time::Instant,
}

/// Observes each attempt (metrics, readiness) without the retry loop
/// knowing about them.
pub(crate) trait AttemptObserver: Send + Sync {
    fn attempt(&self, attempt: &Attempt, elapsed: Duration);
    /// An event starts (+1) or ends (-1) waiting to be retried.
    fn waiting(&self, delta: i64);
}

/// A request slot, held while one request is in flight.
pub(crate) struct Slot<'a>(#[allow(dead_code)] Option<tokio::sync::SemaphorePermit<'a>>);

/// The outcome of one attempt: a verdict plus whether the failure was at the
/// connection level (for readiness).
#[derive(Debug)]
pub(crate) struct Attempt {
    pub verdict: Verdict,
    pub status: Option<u16>,
    pub connection_failed: bool,
}

impl Webhook {
    pub(crate) fn new(
        cfg: &WebhookConfig,
        concurrency: usize,
        policy: StatusPolicy,
        rules: std::sync::Arc<AnswerRules>,
    ) -> Result<Self> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (k, v) in &cfg.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .with_context(|| format!("webhook header name '{k}' is invalid"))?;
            let v = v.resolve(&format!("webhook header '{k}'"))?;
            let mut value = HeaderValue::from_str(&v)
                .with_context(|| format!("webhook header '{k}' has an invalid value"))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        if let Some(auth) = &cfg.basic_auth {
            let password = auth.password.resolve("webhook.basic_auth.password")?;
            let token = base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{password}", auth.user));
            let mut value = HeaderValue::from_str(&format!("Basic {token}"))
                .context("webhook.basic_auth: the user or password is not valid in a header")?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let client = with_tls(reqwest::Client::builder(), &cfg.tls)?
            .default_headers(headers)
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(5)))
            .pool_max_idle_per_host(concurrency)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            // A redirect is an answer to classify (see answer.rs), and
            // retries are retry.rs's alone.
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .user_agent(concat!("kbridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the HTTP client")?;
        let url = reqwest::Url::parse(&cfg.url).context("webhook URL is invalid")?;
        Ok(Self {
            client,
            url,
            in_flight: std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency)),
            policy: std::sync::Arc::new(policy),
            rules,
            last_delivered: std::sync::Arc::default(),
            epoch: std::time::Instant::now(),
        })
    }

    /// Waits for a request slot: at most `concurrency` requests are in
    /// flight.
    pub(crate) async fn slot(&self) -> Slot<'_> {
        // The semaphore is never closed, so acquiring cannot fail.
        Slot(self.in_flight.acquire().await.ok())
    }

    /// POSTs one alert body once, in the slot it was given.
    pub(crate) async fn post(
        &self,
        _slot: Slot<'_>,
        body: Bytes,
        idempotency_key: &str,
    ) -> Attempt {
        let sent = self
            .client
            .post(self.url.clone())
            .header(IDEMPOTENCY_KEY, idempotency_key)
            .body(body)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                return Attempt {
                    verdict: Verdict::Retry {
                        reason: describe_error(&e),
                        after: None,
                        trouble: Trouble::Unavailable,
                    },
                    status: None,
                    connection_failed: !e.is_timeout(),
                };
            }
        };
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = match read_capped(resp).await {
            Ok(b) => b,
            Err(e) => {
                return Attempt {
                    verdict: Verdict::Retry {
                        reason: format!(
                            "HTTP {status}, reading the answer failed: {}",
                            describe_error(&e)
                        ),
                        after: None,
                        trouble: Trouble::Unavailable,
                    },
                    status: Some(status),
                    connection_failed: false,
                };
            }
        };
        let verdict = classify(status, &body, retry_after.as_deref(), &self.policy);
        let mut verdict = self.rules.refine(status, &body, verdict);
        if let (Verdict::Rejected { reason, .. } | Verdict::Retry { reason, .. }, Some(to)) =
            (&mut verdict, location)
        {
            reason.push_str(&format!(" (Location: {})", redact::url(&to)));
        }
        if verdict == Verdict::Delivered {
            let ms = self.epoch.elapsed().as_millis() as u64 + 1;
            self.last_delivered
                .fetch_max(ms, std::sync::atomic::Ordering::Relaxed);
        }
        Attempt {
            verdict,
            status: Some(status),
            connection_failed: false,
        }
    }

    /// Whether some alert was delivered after `since`.
    pub(crate) fn delivered_since(&self, since: std::time::Instant) -> bool {
        let since_ms = since.saturating_duration_since(self.epoch).as_millis() as u64 + 1;
        self.last_delivered
            .load(std::sync::atomic::Ordering::Relaxed)
            > since_ms
    }
}

/// The webhook's TLS settings: a private CA (trusted alone), a client
/// certificate for mutual TLS, or — for a test target — no verification,
/// which is logged at every start.
fn with_tls(builder: reqwest::ClientBuilder, tls: &WebhookTls) -> Result<reqwest::ClientBuilder> {
    let read = |what: &str, path: &std::path::Path| {
        std::fs::read(path)
            .with_context(|| format!("webhook.tls.{what}: cannot read {}", path.display()))
    };
    let mut builder = builder;
    if let Some(path) = &tls.ca_file {
        let pem = read("ca_file", path)?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).with_context(|| {
            format!(
                "webhook.tls.ca_file: {} is not a PEM certificate",
                path.display()
            )
        })?;
        if certs.is_empty() {
            anyhow::bail!(
                "webhook.tls.ca_file: {} holds no PEM certificate",
                path.display()
            );
        }
        builder = builder.tls_certs_only(certs);
    }
    if let (Some(cert), Some(key)) = (&tls.client_cert_file, &tls.client_key_file) {
        let identity = reqwest::Identity::from_pkcs8_pem(
            &read("client_cert_file", cert)?,
            &read("client_key_file", key)?,
        )
        .with_context(|| {
            format!(
                "webhook.tls: {} and {} are not a PEM certificate and its PKCS#8 key (convert the key with `openssl pkcs8 -topk8 -nocrypt`)",
                cert.display(),
                key.display()
            )
        })?;
        builder = builder.identity(identity);
    }
    if tls.insecure_skip_verify {
        tracing::warn!(
            "webhook.tls.insecure_skip_verify is on: the webhook's certificate is not checked, so anyone on the path can read and answer the alerts; use ca_file instead"
        );
        builder = builder.danger_accept_invalid_certs(true);
    }
    Ok(builder)
}

async fn read_capped(mut resp: reqwest::Response) -> reqwest::Result<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = MAX_ANSWER_BYTES.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if room <= chunk.len() {
            break;
        }
    }
    Ok(body)
}

/// reqwest's errors nest the useful part (connection refused, timeout).
fn describe_error(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {cause}")
    }
}
