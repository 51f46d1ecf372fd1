//! The relay's side of the integration tests that run `kbridge run` as a
//! child: an HTTP receiver answering like the ops platform, Guance events,
//! and the child process with its log.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use axum::routing::post;

use super::{kbridge_bin, wait_within};

/// A real HTTP server on 127.0.0.1 answering like the ops platform and
/// recording the Idempotency-Key of every request it accepted.
pub struct Receiver {
    pub url: String,
    pub keys: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    /// How many distinct events (Idempotency-Keys) were accepted.
    pub fn distinct(&self) -> usize {
        self.keys
            .lock()
            .unwrap()
            .iter()
            .collect::<HashSet<_>>()
            .len()
    }
}

/// Serves on 127.0.0.1 (an ephemeral port) from `rt`.
pub fn receiver(rt: &tokio::runtime::Runtime) -> Receiver {
    let keys: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = keys.clone();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(SocketAddr::from((
            [127, 0, 0, 1],
            0,
        ))))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().route(
        "/alerts",
        post(move |headers: HeaderMap| {
            let key = headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_string();
            seen.lock().unwrap().push(key);
            std::future::ready(axum::Json(serde_json::json!({"code": 0})))
        }),
    );
    rt.spawn(async move { axum::serve(listener, app).await });
    Receiver {
        url: format!("http://{addr}/alerts"),
        keys,
    }
}

/// Guance alert number `i`, its alert id `fault-{i}`.
pub fn event(i: usize) -> String {
    serde_json::json!({
        "date": 1731900000000u64 + i as u64,
        "df_source": "monitor",
        "df_status": "critical",
        "df_event_id": format!("event-{i}"),
        "df_fault_id": format!("fault-{i}"),
        "df_title": format!("alert {i}"),
        "df_message": "details",
        "df_workspace_name": "faults",
        "df_dimension_tags": "{\"host\":\"h1\"}"
    })
    .to_string()
}

/// `kbridge run` as a child, its stderr collected line by line.
pub struct Relay {
    pub child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Relay {
    /// `kbridge -b BROKERS run` from the earliest offset, `extra` flags
    /// added.
    pub fn start(brokers: &str, topic: &str, group: &str, webhook: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(kbridge_bin())
            .args(["-b", brokers, "run", "--topic", topic, "--group", group])
            .args(extra)
            .args(["--webhook", webhook, "--offset-reset", "earliest"])
            .env_remove("KBRIDGE_BROKERS")
            .env("KBRIDGE_LOG", "info,librdkafka=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kbridge run");
        let stderr: Arc<Mutex<Vec<String>>> = Arc::default();
        let lines = stderr.clone();
        let pipe = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        Self { child, stderr }
    }

    pub fn logged(&self, needle: &str) -> bool {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }

    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Relay {
    /// SIGTERM, and the relay exits 0 within 30 s.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status =
            wait_within(&mut self.child, Duration::from_secs(30)).expect("kbridge did not stop");
        assert!(status.success(), "exit {status:?}\n{}", self.log());
    }
}
