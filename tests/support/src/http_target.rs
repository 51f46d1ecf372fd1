//! The fake ops platform: a real HTTP server on 127.0.0.1 that records
//! every request and answers as scripted.
//!
//! Default answer: 200 `{"code":0,"data":{}}`. Scriptable: 503 (optionally
//! with `Retry-After`) for the first N requests; 400 "alert dims not match
//! any cmdb instance" when `alertDims.host` equals a given value; a delay
//! before each answer; answering one request at a time. A target can also
//! start late on a port `Reserved` earlier (down, then up).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::runtime::rt;
use crate::wait::wait_until;

/// How the target answers.
#[derive(Debug, Clone, Default)]
pub struct Script {
    /// Answer 503 (or `fail_status`) to this many requests first (counted
    /// over all requests).
    pub fail_first: usize,
    /// The status of those first answers, when not 503 (401: a token that
    /// expired).
    pub fail_status: Option<u16>,
    /// `Retry-After` value sent with those 503s.
    pub retry_after: Option<String>,
    /// Answer 400 "not match any cmdb instance" when `alertDims.host` is this.
    pub reject_host: Option<String>,
    /// Wait this long before each answer.
    pub delay: Duration,
    /// Answer one request at a time (the others wait, in arrival order).
    pub serial: bool,
    /// Special answers by `alertDims.host`, checked before everything else.
    pub rules: Vec<Rule>,
    /// The body of a 200 answer (default `{"code":0,"data":{}}`): a chat
    /// robot says `{"errcode":0,"errmsg":"ok"}`.
    pub ok_body: Option<String>,
    /// Answer this to every request for a while after the first one: a
    /// robot over its quota ("send too fast" in an HTTP 200).
    pub busy: Option<Busy>,
}

/// An answer given within `for_` of the target's first request — to every
/// request, or (a brownout) to a share of them, spread evenly and fixed by
/// the arrival order so a run is repeatable.
#[derive(Debug, Clone)]
pub struct Busy {
    pub for_: Duration,
    pub status: u16,
    pub body: String,
    /// The share of requests given this answer: 1.0 every one, 0.85 a
    /// brownout that lets one in seven through.
    pub share: f64,
}

impl Busy {
    /// Whether request number `seq` gets the busy answer: a fixed
    /// pseudo-random draw per request.
    fn hits(&self, seq: usize) -> bool {
        let draw = (seq as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29)
            % 10_000;
        (draw as f64) < self.share * 10_000.0
    }
}

/// A special answer for the alerts of one host.
#[derive(Debug, Clone)]
pub struct Rule {
    pub host: String,
    pub status: u16,
    pub body: String,
    /// Applies this many times (then the usual answers); `None`: always.
    pub times: Option<usize>,
    /// Wait this long before answering.
    pub delay: Duration,
}

impl Rule {
    pub fn new(host: &str, status: u16, body: &str) -> Self {
        Self {
            host: host.to_string(),
            status,
            body: body.to_string(),
            times: None,
            delay: Duration::ZERO,
        }
    }
    pub fn times(mut self, n: usize) -> Self {
        self.times = Some(n);
        self
    }
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

/// One request as the target saw it.
#[derive(Debug, Clone)]
pub struct Request {
    /// Arrival order, from 0.
    pub seq: usize,
    pub at: Instant,
    pub method: String,
    pub path: String,
    /// The query string (empty without one).
    pub query: String,
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    /// The body parsed as JSON (`Value::Null` when it is not JSON).
    pub body: Value,
    pub raw: Bytes,
    /// The status the target answers (decided on arrival).
    pub status: u16,
    /// The answer was sent (false: still waiting, or the client went away).
    pub completed: bool,
    /// When the target had processed the request — its effect applied —
    /// whether or not the client still waited for the answer: a real
    /// target does not undo a request whose client hung up.
    pub applied_at: Option<Instant>,
}

impl Request {
    pub fn key(&self) -> &str {
        self.headers
            .get("idempotency-key")
            .map(String::as_str)
            .unwrap_or("")
    }
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status) && self.completed
    }
    pub fn alert_id(&self) -> &str {
        self.body["alertId"].as_str().unwrap_or("")
    }
}

struct Inner {
    script: Mutex<Script>,
    log: Mutex<Vec<Request>>,
    serial: tokio::sync::Mutex<()>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// When the first request came (for `Script::busy`).
    first_at: std::sync::OnceLock<Instant>,
}

pub struct Target {
    addr: SocketAddr,
    inner: Arc<Inner>,
    server: tokio::task::JoinHandle<()>,
}

/// A port held for a target that starts later: bound but not listening,
/// so connections to it are refused (the target is down) and no other
/// socket can take it meanwhile.
pub struct Reserved {
    socket: tokio::net::TcpSocket,
    pub port: u16,
}

impl Reserved {
    /// Binds a free port of 127.0.0.1, without listening on it.
    pub fn bind() -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("cannot create a socket");
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("cannot bind a port");
        let port = socket.local_addr().unwrap().port();
        Self { socket, port }
    }

    /// The webhook URL of the target that will listen here.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/alerts", self.port)
    }
}

impl Target {
    /// Starts on any free port of 127.0.0.1.
    pub fn start(script: Script) -> Self {
        let listener = rt()
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", 0)))
            .unwrap_or_else(|e| panic!("the fake target cannot listen on 127.0.0.1: {e}"));
        Self::serve(listener, script)
    }

    /// Starts listening on a reserved port (the target comes up).
    pub fn start_on(reserved: Reserved, script: Script) -> Self {
        let _guard = rt().enter();
        let listener = reserved.socket.listen(1024).unwrap_or_else(|e| {
            panic!(
                "the fake target cannot listen on port {}: {e}",
                reserved.port
            )
        });
        Self::serve(listener, script)
    }

    fn serve(listener: tokio::net::TcpListener, script: Script) -> Self {
        let inner = Arc::new(Inner {
            script: Mutex::new(script),
            log: Mutex::new(Vec::new()),
            serial: tokio::sync::Mutex::new(()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            first_at: std::sync::OnceLock::new(),
        });
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let server = rt().spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("fake target stopped: {e}");
            }
        });
        Self {
            addr,
            inner,
            server,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/alerts", self.addr)
    }

    /// A URL of its own for one sender (`/alerts/<name>`), so that a test
    /// can tell the instances of a fleet apart by `Request::path`.
    pub fn url_for(&self, name: &str) -> String {
        format!("http://{}/alerts/{name}", self.addr)
    }

    /// Changes how the target answers from now on.
    pub fn rescript(&self, change: impl FnOnce(&mut Script)) {
        change(&mut self.inner.script.lock().unwrap());
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.inner.log.lock().unwrap().clone()
    }

    /// Requests answered 2xx (answer sent), in arrival order.
    pub fn delivered(&self) -> Vec<Request> {
        self.requests().into_iter().filter(Request::ok).collect()
    }

    /// The alert ids delivered (a 2xx answered), sorted, each once.
    pub fn delivered_alert_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .delivered()
            .iter()
            .map(|r| r.alert_id().to_string())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// How many times each event (Idempotency-Key) was answered 2xx.
    pub fn delivered_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for r in self.delivered() {
            *counts.entry(r.key().to_string()).or_insert(0) += 1;
        }
        counts
    }

    /// Waits (at most `timeout`) until `n` requests were answered 2xx;
    /// fails the test with every request otherwise.
    pub fn wait_delivered(&self, n: usize, timeout: Duration) {
        assert!(
            wait_until(timeout, || self.delivered().len() >= n),
            "fewer than {n} requests answered 2xx within {timeout:?}:\n{}",
            self.dump()
        );
    }

    /// Asserts that every event of `keys` was answered 2xx at least once;
    /// the failure says `what` lost them and shows every request.
    pub fn assert_none_missing(&self, keys: &[String], what: &str) {
        let counts = self.delivered_counts();
        let missing: Vec<&String> = keys.iter().filter(|k| !counts.contains_key(*k)).collect();
        assert!(
            missing.is_empty(),
            "{what}: {missing:?} never delivered\n{}",
            self.dump()
        );
    }

    /// How many distinct events (Idempotency-Keys) were answered 2xx.
    pub fn distinct(&self) -> usize {
        self.delivered()
            .iter()
            .map(|r| r.key().to_string())
            .collect::<HashSet<_>>()
            .len()
    }

    pub fn max_in_flight(&self) -> usize {
        self.inner.max_in_flight.load(Ordering::SeqCst)
    }

    /// One line per request, for failure messages.
    pub fn dump(&self) -> String {
        self.requests()
            .iter()
            .map(|r| {
                format!(
                    "#{} {} {} key={} alertId={} status={} completed={}\n",
                    r.seq,
                    r.method,
                    r.path,
                    r.key(),
                    r.alert_id(),
                    r.status,
                    r.completed
                )
            })
            .collect()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Decrements the in-flight count however the handler ends (a client that
/// goes away drops the handler future).
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn handle(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = inner.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    inner.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let _in_flight = InFlight(&inner.in_flight);

    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (seq, status, retry_after, delay, serial, answer) = {
        let mut script = inner.script.lock().unwrap();
        let mut log = inner.log.lock().unwrap();
        let host = json["alertDims"]["host"].as_str().unwrap_or("");
        let rule = script
            .rules
            .iter_mut()
            .find(|r| r.host == host && r.times != Some(0))
            .map(|r| {
                if let Some(n) = r.times.as_mut() {
                    *n -= 1;
                }
                r.clone()
            });
        let mut delay = script.delay;
        let mut answer = None;
        let first_at = *inner.first_at.get_or_init(Instant::now);
        let seq = log.len();
        let busy = script
            .busy
            .clone()
            .filter(|b| first_at.elapsed() < b.for_ && b.hits(seq));
        let (status, retry_after) = if let Some(r) = rule {
            delay = r.delay;
            answer = Some(r.body);
            (r.status, None)
        } else if let Some(b) = busy {
            answer = Some(b.body);
            (b.status, None)
        } else if script.fail_first > 0 {
            script.fail_first -= 1;
            (
                script.fail_status.unwrap_or(503),
                script.retry_after.clone(),
            )
        } else if script
            .reject_host
            .as_deref()
            .is_some_and(|h| json["alertDims"]["host"].as_str() == Some(h))
        {
            (400, None)
        } else {
            (200, None)
        };
        log.push(Request {
            seq,
            at: Instant::now(),
            method: method.to_string(),
            path: uri.path().to_string(),
            query: uri.query().unwrap_or_default().to_string(),
            headers: headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: json,
            raw: body,
            status,
            completed: false,
            applied_at: None,
        });
        if status == 200 && answer.is_none() {
            answer = script.ok_body.clone();
        }
        (seq, status, retry_after, delay, script.serial, answer)
    };

    // Processed on a task of its own, so that a client that hangs up does
    // not stop it (see `Request::applied_at`).
    let processing = tokio::spawn({
        let inner = inner.clone();
        async move {
            let _turn = if serial {
                Some(inner.serial.lock().await)
            } else {
                None
            };
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            inner.log.lock().unwrap()[seq].applied_at = Some(Instant::now());
        }
    });
    let _ = processing.await;
    inner.log.lock().unwrap()[seq].completed = true;

    let body = answer.unwrap_or_else(|| {
        match status {
            200 => r#"{"code":0,"data":{}}"#,
            400 => r#"{"code":400,"error":"alert dims not match any cmdb instance"}"#,
            _ => r#"{"code":503,"error":"service unavailable, try later"}"#,
        }
        .to_string()
    });
    let mut resp = (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        body,
    )
        .into_response();
    if let Some(ra) = retry_after {
        resp.headers_mut()
            .insert("retry-after", ra.parse().unwrap());
    }
    resp
}
