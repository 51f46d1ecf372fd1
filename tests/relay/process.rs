//! `kbridge run` as a child process: stderr captured line by line, signals,
//! bounded waits, killed on drop.

use std::io::{BufRead, BufReader};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::kafka::kbridge_via;
use crate::util::wait_until;

/// How to start the relay; `start` may be called again (restart).
#[derive(Clone)]
pub struct RelayCmd {
    pub topic: String,
    pub group: String,
    pub webhook: String,
    pub offset_reset: String,
    pub dead_letter_topic: Option<String>,
    /// TOML text written to a temp file and passed with --config.
    config: Option<Arc<tempfile::NamedTempFile>>,
    pub env: Vec<(String, String)>,
    /// Global options before `run` (e.g. `-X k=v`).
    pub global: Vec<String>,
    /// A command that runs kbridge (e.g. `taskset -c 0`).
    pub wrapper: Vec<String>,
}

impl RelayCmd {
    pub fn new(topic: &str, group: &str, webhook: &str) -> Self {
        Self {
            topic: topic.to_string(),
            group: group.to_string(),
            webhook: webhook.to_string(),
            offset_reset: "earliest".to_string(),
            dead_letter_topic: None,
            config: None,
            env: vec![("KBRIDGE_LOG".into(), "info".into())],
            global: Vec::new(),
            wrapper: Vec::new(),
        }
    }

    pub fn dead_letters(mut self, topic: &str) -> Self {
        self.dead_letter_topic = Some(topic.to_string());
        self
    }

    pub fn offset_reset(mut self, v: &str) -> Self {
        self.offset_reset = v.to_string();
        self
    }

    pub fn config(mut self, toml: &str) -> Self {
        let f = tempfile::Builder::new()
            .prefix("kbridge-relay-test-")
            .suffix(".toml")
            .tempfile()
            .expect("cannot create a config file");
        std::fs::write(f.path(), toml).expect("cannot write the config file");
        self.config = Some(Arc::new(f));
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.retain(|(key, _)| key != k);
        self.env.push((k.to_string(), v.to_string()));
        self
    }

    /// A librdkafka property for every client of the relay (`-X k=v`).
    pub fn property(mut self, kv: &str) -> Self {
        self.global.push("-X".into());
        self.global.push(kv.into());
        self
    }

    /// Runs kbridge through this command (e.g. `["taskset", "-c", "0"]`).
    pub fn wrapped(mut self, wrapper: &[&str]) -> Self {
        self.wrapper = wrapper.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn start(&self) -> Relay {
        self.start_with(&[])
    }

    /// Starts with extra `run` options.
    pub fn start_with(&self, extra: &[&str]) -> Relay {
        let mut c = kbridge_via(&self.wrapper);
        c.args(&self.global).arg("run").args(extra);
        c.args(["--topic", &self.topic, "--group", &self.group]);
        c.args([
            "--webhook",
            &self.webhook,
            "--offset-reset",
            &self.offset_reset,
        ]);
        if let Some(d) = &self.dead_letter_topic {
            c.args(["--dead-letter-topic", d]);
        }
        if let Some(f) = &self.config {
            c.arg("--config").arg(f.path());
        }
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("cannot start kbridge run");
        let stderr = child.stderr.take().unwrap();
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                match line {
                    Ok(l) => sink.lock().unwrap().push(l),
                    Err(_) => break,
                }
            }
        });
        Relay {
            child,
            lines,
            reader: Some(reader),
            status: None,
            _config: self.config.clone(),
        }
    }
}

pub struct Relay {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
    status: Option<ExitStatus>,
    /// Keeps the config file alive as long as the process.
    _config: Option<Arc<tempfile::NamedTempFile>>,
}

impl Relay {
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
            let deadline = Instant::now() + timeout;
            loop {
                if let Some(s) = self.child.try_wait().expect("try_wait") {
                    self.status = Some(s);
                    break;
                }
                if Instant::now() >= deadline {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
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
