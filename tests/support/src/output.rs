//! Reading a finished command: its output as text, JSON or lines, and
//! assertions that show all of it (exit code, stdout, stderr) when they fail.

use std::process::Output;

use serde_json::Value;

/// Convenience accessors and assertions for a finished command.
pub trait OutputExt {
    fn stdout_str(&self) -> String;
    fn stderr_str(&self) -> String;
    /// The exit code; -1 when killed by a signal.
    fn code(&self) -> i32;
    /// Exit code, stdout and stderr, for assertion messages.
    fn describe(&self) -> String;
    /// Asserts exit status 0 and returns self.
    fn ok(&self) -> &Self;
    /// Asserts this exit code and returns self.
    fn exit(&self, code: i32) -> &Self;
    /// Asserts that stderr contains `needle` and returns self.
    fn stderr_has(&self, needle: &str) -> &Self;
    /// stdout parsed as one JSON document.
    fn json(&self) -> Value;
    /// stdout parsed as one JSON document per line.
    fn json_lines(&self) -> Vec<Value>;
    /// The non-empty lines of stdout.
    fn lines(&self) -> Vec<String>;
}

impl OutputExt for Output {
    fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }
    fn describe(&self) -> String {
        format!(
            "exit: {}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.status,
            self.stdout_str(),
            self.stderr_str()
        )
    }
    fn ok(&self) -> &Self {
        assert!(
            self.status.success(),
            "expected success:\n{}",
            self.describe()
        );
        self
    }
    fn exit(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            code,
            "unexpected exit code:\n{}",
            self.describe()
        );
        self
    }
    fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr_str().contains(needle),
            "stderr does not contain {needle:?}:\n{}",
            self.describe()
        );
        self
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.describe()))
    }
    fn json_lines(&self) -> Vec<Value> {
        self.lines()
            .iter()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| {
                    panic!("line {l:?} is not JSON ({e}):\n{}", self.describe())
                })
            })
            .collect()
    }
    fn lines(&self) -> Vec<String> {
        self.stdout_str()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect()
    }
}
