//! `kbridge run` as a child process. The relay tests synchronise on the
//! relay's log, so its stderr is captured line by line as it comes; every
//! wait is bounded; and the process is killed when its test ends, its
//! stderr printed if the test failed, since that log explains the failure.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::child::signal;
use crate::wait::wait_until;

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
    pub(crate) fn spawn(mut cmd: Command, config: Option<Arc<tempfile::NamedTempFile>>) -> Self {
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
        signal(self.pid(), sig);
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
