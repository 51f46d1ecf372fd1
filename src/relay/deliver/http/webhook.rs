//! The sink: one POST of one alert, its answer classified by
//! `answer`.
//!
//! A few long-lived HTTP/1.1 connections for the whole route (`pool`),
//! each driven by the delivery task that holds it (`connection`); the seed
//! opened a new connection per event, with no timeout. The request's fixed
//! parts (the address, the headers) are built once. Retrying is `retry`'s
//! job.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine;
use bytes::Bytes;
use http::header::{
    AUTHORIZATION, CONTENT_TYPE, HOST, HeaderMap, HeaderName, HeaderValue, LOCATION,
    PROXY_AUTHORIZATION, RETRY_AFTER, USER_AGENT,
};
use http_body_util::Full;

use super::connection::Answer;
use super::connector::Connector;
use super::pool::Pool;
use super::proxy::{self, Proxy};
use super::signing::Signing;
use crate::redact;
use crate::relay::config::{StatusPolicy, WebhookConfig};
use crate::relay::deliver::answer::{Trouble, Verdict, classify};
use crate::relay::deliver::answer_rules::AnswerRules;

/// The header that lets the target drop duplicates: stable across retries
/// and restarts, because it is the event's Kafka coordinates.
pub(crate) const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// Answers longer than this are cut before classification; the target's
/// answers are small JSON documents.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub(crate) struct Webhook {
    pool: Arc<Pool>,
    /// HTTP/1.1's request target: the path and query, or, to a proxy,
    /// the whole URL (absolute form) without its credentials.
    target: http::Uri,
    /// What comes before the path in `target`: empty, or `http://host:port`
    /// through a proxy (a signed URL is rebuilt from it).
    origin: Arc<str>,
    /// The egress proxy, if any, for `kbridge check` and the start line.
    proxy: Option<Proxy>,
    /// Host, content type, user agent and the configured headers.
    headers: Arc<HeaderMap>,
    /// The whole attempt: connecting, sending, reading the answer.
    timeout: Duration,
    /// `concurrency`: requests in flight at once, whatever the number of
    /// events in processing. Held per attempt, not across backoff waits.
    in_flight: std::sync::Arc<tokio::sync::Semaphore>,
    /// Which answers are about the alert, which about the target.
    policy: std::sync::Arc<StatusPolicy>,
    /// The target's own rules on its answers' bodies.
    rules: std::sync::Arc<AnswerRules>,
    /// A signed robot's signature, made per attempt.
    signing: Option<Arc<Signing>>,
}

/// Observes each attempt (metrics, readiness) without the retry loop
/// knowing about them.
pub(crate) trait AttemptObserver: Send + Sync {
    fn attempt(&self, attempt: &Attempt, elapsed: Duration);
    /// An event starts (+1) or ends (-1) waiting to be retried.
    fn waiting(&self, delta: i64);
    /// The target said it is throttling, and the route paused.
    fn paused(&self);
    /// An alert was parked (+1), or a parked alert left (-1).
    fn parked(&self, delta: i64);
}

/// A request slot, held while one request is in flight.
pub(crate) struct Slot<'a>(#[allow(dead_code)] Option<tokio::sync::SemaphorePermit<'a>>);

/// The outcome of one attempt: a verdict, and how far the request got.
#[derive(Debug)]
pub(crate) struct Attempt {
    pub verdict: Verdict,
    pub reach: Reach,
}

/// How far one attempt got: readiness and the metrics tell a target that
/// cannot be reached from one that answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// No connection, or it failed before an answer came.
    ConnectionFailed,
    /// No answer within the webhook's timeout.
    TimedOut,
    /// An answer with this HTTP status.
    Answered(u16),
}

impl Attempt {
    /// The answer's HTTP status, if there was an answer.
    pub(crate) fn status(&self) -> Option<u16> {
        match self.reach {
            Reach::Answered(status) => Some(status),
            Reach::ConnectionFailed | Reach::TimedOut => None,
        }
    }
}

impl Webhook {
    pub(crate) fn new(
        cfg: &WebhookConfig,
        concurrency: usize,
        policy: StatusPolicy,
        rules: std::sync::Arc<AnswerRules>,
    ) -> Result<Self> {
        let url = url::Url::parse(&cfg.url).context("webhook URL is invalid")?;
        let mut headers = HeaderMap::new();
        headers.insert(HOST, host_header(&url)?);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("kbridge/", env!("CARGO_PKG_VERSION"))),
        );
        if let Some(value) = url_credentials(&url)? {
            headers.insert(AUTHORIZATION, value);
        }
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
            headers.insert(
                AUTHORIZATION,
                basic(&auth.user, &password).context("webhook.basic_auth")?,
            );
        }
        let proxy = proxy::choose(cfg.proxy.as_deref(), &url, |name| std::env::var(name).ok())?;
        // Plain HTTP through a proxy: the proxy reads where to from the
        // request line, and takes its credentials from a header of it.
        // (HTTPS goes through a CONNECT tunnel: the request stays as it
        // would be sent directly.)
        let origin = match &proxy {
            Some(p) if url.scheme() == "http" => {
                if let Some(auth) = &p.authorization {
                    headers.insert(PROXY_AUTHORIZATION, auth.clone());
                }
                format!("http://{}", proxy::authority(&url))
            }
            _ => String::new(),
        };
        if let Some(p) = &proxy {
            tracing::info!(
                webhook = %redact::url(&cfg.url),
                "the webhook is reached through the proxy {p:?}"
            );
        }
        let connector = Connector::new(
            &url,
            &cfg.tls,
            proxy.clone(),
            cfg.timeout.min(Duration::from_secs(5)),
        )?;
        let target = match url.query() {
            Some(q) => format!("{origin}{}?{q}", url.path()),
            None => format!("{origin}{}", url.path()),
        };
        let target = target
            .parse::<http::Uri>()
            .context("webhook URL: its path is not a valid request target")?;
        Ok(Self {
            pool: Arc::new(Pool::new(connector, concurrency)),
            target,
            origin: Arc::from(origin),
            proxy,
            headers: Arc::new(headers),
            timeout: cfg.timeout,
            in_flight: std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency)),
            policy: std::sync::Arc::new(policy),
            rules,
            signing: cfg
                .signing
                .as_ref()
                .map(|s| Signing::new(s, "webhook").map(Arc::new))
                .transpose()?,
        })
    }

    /// The egress proxy the webhook is reached through, if any.
    pub(crate) fn proxy(&self) -> Option<&Proxy> {
        self.proxy.as_ref()
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
        let deadline = tokio::time::Instant::now() + self.timeout;
        let unavailable = |reason: String, reach: Reach| Attempt {
            verdict: Verdict::Retry {
                reason,
                after: None,
                trouble: Trouble::Unavailable,
            },
            reach,
        };
        // Waiting for a connection is part of the attempt's time, but a
        // request that never left is not "no answer": the log says which.
        let no_connection = || {
            unavailable(
                format!(
                    "no connection to the webhook within {:?}: those open are busy, and new ones are opened only as the target answers on them (it accepts or answers slowly)",
                    self.timeout
                ),
                Reach::ConnectionFailed,
            )
        };
        let conn = match tokio::time::timeout_at(deadline, self.pool.take()).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(reason)) => return unavailable(reason, Reach::ConnectionFailed),
            Err(_) => return no_connection(),
        };
        // A request sent with moments left would time out unanswered while
        // the target may still process it: a duplicate when it is retried.
        // It leaves only with half its time or more.
        if deadline.saturating_duration_since(tokio::time::Instant::now()) < self.timeout / 2 {
            self.pool.give_back(conn);
            return no_connection();
        }
        let answer =
            match tokio::time::timeout_at(deadline, self.exchange(conn, body, idempotency_key))
                .await
            {
                Ok(Ok(answer)) => answer,
                Ok(Err(reason)) => return unavailable(reason, Reach::ConnectionFailed),
                Err(_) => {
                    self.pool.stalled();
                    return unavailable(
                        format!("timed out: no answer within {:?}", self.timeout),
                        Reach::TimedOut,
                    );
                }
            };
        let status = answer.status;
        let header = |name| {
            answer
                .headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
        };
        let verdict = classify(status, &answer.body, header(RETRY_AFTER), &self.policy);
        let mut verdict = self.rules.refine(status, &answer.body, verdict);
        if let (Verdict::Rejected { reason, .. } | Verdict::Retry { reason, .. }, Some(to)) =
            (&mut verdict, header(LOCATION))
        {
            reason.push_str(&format!(" (Location: {})", redact::url(to)));
        }
        // Through a proxy, a 401 or 407 may be the proxy's own refusal: it
        // says so with Proxy-Authenticate.
        if let (Verdict::Retry { reason, .. }, Some(proxy), Some(_)) = (
            &mut verdict,
            &self.proxy,
            answer.headers.get(http::header::PROXY_AUTHENTICATE),
        ) {
            reason.push_str(&format!(
                " (the proxy {proxy:?} wants credentials: check the user and password in its URL)"
            ));
        }
        Attempt {
            verdict,
            reach: Reach::Answered(status),
        }
    }

    /// One request on a pooled connection. A reused connection that fails
    /// may have been closed by the server while it rested (a keep-alive
    /// timeout): the request is sent once more on a new one.
    async fn exchange(
        &self,
        mut conn: super::connection::Connection,
        body: Bytes,
        idempotency_key: &str,
    ) -> Result<Answer, String> {
        loop {
            let reused = conn.reused;
            let request = self.request(body.clone(), idempotency_key);
            let exchange = conn.exchange(request, MAX_ANSWER_BYTES).await;
            match exchange.result {
                Ok(answer) => {
                    if exchange.reusable {
                        self.pool.give_back(conn);
                    }
                    return Ok(answer);
                }
                Err(e) if reused => {
                    tracing::debug!(error = %e, "a reused webhook connection failed; trying a new one");
                    conn = self.pool.connect().await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn request(&self, body: Bytes, idempotency_key: &str) -> http::Request<Full<Bytes>> {
        let (uri, body) = match &self.signing {
            None => (self.target.clone(), body),
            Some(signing) => {
                let now = jiff::Timestamp::now().as_millisecond();
                let (query, body) = signing.sign(self.target.query(), body, now);
                let uri = match query {
                    Some(q) => format!("{}{}?{q}", self.origin, self.target.path())
                        .parse()
                        .unwrap_or_else(|_| self.target.clone()),
                    None => self.target.clone(),
                };
                (uri, body)
            }
        };
        let mut request = http::Request::new(Full::new(body));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        headers.reserve(self.headers.len() + 1);
        for (name, value) in self.headers.iter() {
            headers.append(name, value.clone());
        }
        // The coordinates (and a route's name): a name that cannot be a
        // header value only costs the target its duplicate check.
        if let Ok(key) = HeaderValue::from_str(idempotency_key) {
            headers.insert(IDEMPOTENCY_KEY, key);
        }
        request
    }
}

/// `Host`: the URL's host, and its port when it is not the scheme's.
fn host_header(url: &url::Url) -> Result<HeaderValue> {
    let host = url.host_str().context("the webhook URL has no host")?;
    let value = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    HeaderValue::from_str(&value).context("the webhook URL's host is not a valid Host header")
}

/// `https://user:password@host/...`: the credentials as Basic
/// authentication (`basic_auth` or an `Authorization` header win).
pub(super) fn url_credentials(url: &url::Url) -> Result<Option<HeaderValue>> {
    if url.username().is_empty() && url.password().is_none() {
        return Ok(None);
    }
    let user = percent_decode(url.username());
    let password = url.password().map(percent_decode).unwrap_or_default();
    basic(&user, &password)
        .context("the user info of the webhook URL")
        .map(Some)
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn basic(user: &str, password: &str) -> Result<HeaderValue> {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut value = HeaderValue::from_str(&format!("Basic {token}"))
        .context("the user or password is not valid in a header")?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    #[test]
    fn host_names_the_port_only_when_it_is_not_the_scheme_s() {
        assert_eq!(
            host_header(&url("https://ops.example/a")).unwrap(),
            "ops.example"
        );
        assert_eq!(
            host_header(&url("http://127.0.0.1:8080/a")).unwrap(),
            "127.0.0.1:8080"
        );
        assert_eq!(host_header(&url("http://[::1]:80/a")).unwrap(), "[::1]");
    }

    /// A server that answers the first request of each connection and
    /// closes the connection on the second one without an answer, as a
    /// server does whose keep-alive timeout ended just as the request came.
    /// Returns its port and the requests it read.
    fn closing_server() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let seen = seen.clone();
                std::thread::spawn(move || {
                    for n in 0.. {
                        // Each request: headers, then a body of the
                        // Content-Length they give.
                        let mut head = Vec::new();
                        let mut byte = [0u8; 1];
                        while !head.ends_with(b"\r\n\r\n") {
                            if stream.read(&mut byte).unwrap_or(0) == 0 {
                                return;
                            }
                            head.push(byte[0]);
                        }
                        let head = String::from_utf8_lossy(&head).to_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse().unwrap());
                        let mut body = vec![0; len];
                        stream.read_exact(&mut body).unwrap();
                        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        if n > 0 {
                            return;
                        }
                        stream
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{\"code\":0}")
                            .unwrap();
                    }
                });
            }
        });
        (port, requests)
    }

    #[tokio::test]
    async fn a_reused_connection_the_server_closed_is_replaced_within_the_attempt() {
        let (port, requests) = closing_server();
        let cfg = WebhookConfig {
            url: format!("http://127.0.0.1:{port}/alerts"),
            ..Default::default()
        };
        let rules = std::sync::Arc::new(AnswerRules::default());
        let webhook = Webhook::new(&cfg, 1, StatusPolicy::default(), rules).unwrap();
        for i in 0..3 {
            let attempt = webhook
                .post(webhook.slot().await, Bytes::from_static(b"{}"), "t-0-1")
                .await;
            assert_eq!(attempt.verdict, Verdict::Delivered, "post {i}: {attempt:?}");
        }
        // The first connection answered once; the second and third posts
        // each found their connection closed and went on a new one.
        assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 5);
    }

    #[test]
    fn url_user_info_becomes_basic_auth() {
        assert!(url_credentials(&url("https://ops/a")).unwrap().is_none());
        let value = url_credentials(&url("https://ops%40corp:p%3Ass@ops/a"))
            .unwrap()
            .unwrap();
        let expected = base64::engine::general_purpose::STANDARD.encode("ops@corp:p:ss");
        assert_eq!(value, format!("Basic {expected}").as_str());
        assert!(value.is_sensitive());
    }
}
