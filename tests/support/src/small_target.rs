//! A small in-house target (`small_target.py`): one Python process with a
//! listen backlog of 5, answering in 2 ms (30 ms every 25th request) and
//! 429 `Retry-After: 1` to the first attempt of every 10th alert. What it
//! processed is read back as [`Request`]s, the same records the Rust
//! target keeps, so one verdict judges both.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use serde_json::{Value, json};

use crate::http_target::Request;

pub struct SmallTarget {
    pub port: u16,
    log: tempfile::NamedTempFile,
    child: Child,
    /// One moment on both clocks: the target logs wall-clock times.
    anchor: (Instant, f64),
}

impl SmallTarget {
    pub fn start() -> Self {
        let log = tempfile::NamedTempFile::new().expect("a log file");
        let script = crate::repo_root().join("tests/support/small_target.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(log.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start python3 tests/support/small_target.py");
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut first)
            .expect("the small target's port");
        let port = first
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the small target printed {first:?}, not its port"));
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64();
        Self {
            port,
            log,
            child,
            anchor: (Instant::now(), epoch),
        }
    }

    pub fn url_for(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/alerts/{name}", self.port)
    }

    fn instant(&self, epoch: f64) -> Instant {
        let (at, then) = self.anchor;
        let d = epoch - then;
        if d >= 0.0 {
            at + Duration::from_secs_f64(d)
        } else {
            at.checked_sub(Duration::from_secs_f64(-d)).unwrap_or(at)
        }
    }

    /// Every request it processed so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        let text = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        let mut rs: Vec<Request> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|v| {
                let key = v["key"].as_str().unwrap_or("").to_string();
                Request {
                    seq: v["seq"].as_u64().unwrap_or(0) as usize,
                    at: self.instant(v["arrived"].as_f64().unwrap_or(0.0)),
                    method: "POST".into(),
                    path: v["path"].as_str().unwrap_or("").to_string(),
                    query: String::new(),
                    headers: HashMap::from([("idempotency-key".to_string(), key)]),
                    body: json!({ "alertId": v["alert"] }),
                    raw: Bytes::new(),
                    status: v["status"].as_u64().unwrap_or(0) as u16,
                    completed: v["completed"].as_bool().unwrap_or(false),
                    applied_at: v["applied"].as_f64().map(|t| self.instant(t)),
                }
            })
            .collect();
        rs.sort_by_key(|r| r.seq);
        rs
    }
}

impl Drop for SmallTarget {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
