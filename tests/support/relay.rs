//! The relay's side of the integration tests that run `kbridge run` as a
//! child: an HTTP receiver answering like the ops platform, Guance events,
//! and the child process with its log.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::routing::post;

use super::{kbridge_bin, wait_until};

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

/// `kbridge run` as a child process: stderr captured line by line, signals,
/// bounded waits, killed on drop (its stderr printed if the test failed).
pub struct Relay {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
    status: Option<ExitStatus>,
    /// Keeps the config file alive as long as the process.
    _config: Option<Arc<tempfile::NamedTempFile>>,
}

impl Relay {
    /// Starts `cmd` (a `kbridge … run …` command) with stderr captured;
    /// `config` is kept alive as long as the process.
    pub fn spawn(mut cmd: Command, config: Option<Arc<tempfile::NamedTempFile>>) -> Self {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("cannot start kbridge run");
        let stderr = child.stderr.take().expect("stderr is piped");
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Relay {
            child,
            lines,
            reader: Some(reader),
            status: None,
            _config: config,
        }
    }

    /// `kbridge -b BROKERS run` from the earliest offset, `extra` flags
    /// added (for tests against brokers other than the shared one).
    pub fn start(brokers: &str, topic: &str, group: &str, webhook: &str, extra: &[&str]) -> Self {
        let mut cmd = Command::new(kbridge_bin());
        cmd.args(["-b", brokers, "run", "--topic", topic, "--group", group])
            .args(extra)
            .args(["--webhook", webhook, "--offset-reset", "earliest"])
            .env_remove("KBRIDGE_BROKERS")
            .env("KBRIDGE_LOG", "info,librdkafka=warn");
        Self::spawn(cmd, None)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    pub fn has_log(&self, needle: &str) -> bool {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }

    pub fn count_logs(&self, needle: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Waits for a stderr line containing `needle`; panics with the stderr
    /// so far if none comes (or the process exits first).
    #[track_caller]
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) {
        let found = wait_until(timeout, || {
            self.has_log(needle) || self.child.try_wait().ok().flatten().is_some()
        });
        if !found || !self.has_log(needle) {
            let exited = self.child.try_wait().ok().flatten();
            panic!(
                "kbridge run did not log {needle:?} within {timeout:?} (exit: {exited:?}); stderr:\n{}",
                self.stderr()
            );
        }
    }

    /// Waits until the relay has joined its group and owns partitions.
    #[track_caller]
    pub fn wait_assigned(&mut self) {
        self.wait_for_log("partitions assigned", Duration::from_secs(20));
    }

    /// Sends a signal by name (`TERM`, `KILL`, `INT`).
    pub fn signal(&self, sig: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("cannot run kill");
        assert!(status.success(), "kill -{sig} {} failed", self.pid());
    }

    /// Waits for the process to exit; `None` if it still runs after
    /// `timeout`. All of stderr is captured once it returns `Some`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.status.is_none() {
            let child = &mut self.child;
            wait_until(timeout, || child.try_wait().expect("try_wait").is_some());
            self.status = Some(self.child.try_wait().expect("try_wait")?);
            if let Some(r) = self.reader.take() {
                let _ = r.join();
            }
        }
        self.status
    }

    /// Like `wait_exit`, but panics (with stderr) if it does not exit.
    #[track_caller]
    pub fn expect_exit(&mut self, timeout: Duration) -> ExitStatus {
        match self.wait_exit(timeout) {
            Some(s) => s,
            None => panic!(
                "kbridge run did not exit within {timeout:?}; stderr:\n{}",
                self.stderr()
            ),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if self.status.is_none() && self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- kbridge run (pid {}) stderr ----\n{}\n----",
                self.child.id(),
                self.stderr()
            );
        }
    }
}

impl Relay {
    /// SIGTERM, and the relay exits 0 within 30 s.
    #[track_caller]
    pub fn stop(&mut self) {
        self.signal("TERM");
        let status = self.expect_exit(Duration::from_secs(30));
        assert!(status.success(), "exit {status:?}\n{}", self.stderr());
    }
}
