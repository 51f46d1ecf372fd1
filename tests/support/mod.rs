//! Shared support for kbridge's integration tests (`mod support;`).
//!
//! Every test runs the real `kbridge` binary against a real Kafka broker:
//! `KBRIDGE_TEST_BROKERS` when set, else the single broker that
//! `scripts/test-kafka.sh start` runs on 127.0.0.1:19092 (started at most
//! once per test process; the script is idempotent and locked, so parallel
//! test binaries share one broker). Tests isolate themselves by using
//! `unique` topic and group names, never by cleaning up the broker.
//!
//! Every child process runs under a deadline, so a hanging command fails its
//! test with its output instead of hanging the whole run, and every kbridge
//! output is checked for panic traces.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

pub mod relay;

/// How long any single command may run before its test fails.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(90);

/// How long conditions on the broker (group membership, state) are awaited.
pub const WAIT: Duration = Duration::from_secs(60);

/// The test broker's bootstrap address, starting it once if needed.
pub fn brokers() -> String {
    static BROKERS: OnceLock<String> = OnceLock::new();
    BROKERS
        .get_or_init(|| {
            if let Ok(b) = std::env::var("KBRIDGE_TEST_BROKERS")
                && !b.trim().is_empty()
            {
                return b;
            }
            test_kafka(&["start"]);
            "127.0.0.1:19092".to_string()
        })
        .clone()
}

/// The 3-node test cluster's bootstrap addresses (`scripts/test-kafka.sh
/// start --cluster`: brokers on 19192-19194), starting it, or the nodes of
/// it that are down, once per test process; `KBRIDGE_TEST_CLUSTER_BROKERS`
/// when set.
pub fn cluster_brokers() -> String {
    static BROKERS: OnceLock<String> = OnceLock::new();
    BROKERS
        .get_or_init(|| {
            if let Ok(b) = std::env::var("KBRIDGE_TEST_CLUSTER_BROKERS")
                && !b.trim().is_empty()
            {
                return b;
            }
            test_kafka(&["start", "--cluster"]);
            "127.0.0.1:19192,127.0.0.1:19193,127.0.0.1:19194".to_string()
        })
        .clone()
}

/// Runs `scripts/test-kafka.sh` with `args`; panics with its output if it
/// fails.
pub fn test_kafka(args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/test-kafka.sh");
    let out = Command::new(script)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{script}`: {e}"));
    assert!(
        out.status.success(),
        "`{script} {}` failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A name no other test (or earlier run) uses: prefix, pid, counter, nanos.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock before 1970")
        .subsec_nanos();
    format!("{prefix}-{}-{n}-{nanos}", std::process::id())
}

/// Wall-clock time in epoch milliseconds (what Kafka timestamps use).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock before 1970")
        .as_millis() as i64
}

/// Epoch milliseconds as RFC 3339 UTC with milliseconds
/// (`2024-06-18T02:00:00.123Z`).
pub fn rfc3339_utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// The kbridge binary under test: a copy, taken when a test first needs it,
/// of `CARGO_BIN_EXE_kbridge`.
///
/// That path (`<target>/debug/kbridge`) is shared by every worktree that
/// builds into the same `CARGO_TARGET_DIR`, and each `cargo build` or
/// `cargo test` there re-links it to its own build; a copy taken right after
/// cargo built this test keeps another worktree's build from replacing the
/// binary in the middle of the run.
pub fn kbridge_bin() -> &'static std::path::Path {
    static BIN: OnceLock<std::path::PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let built = std::path::Path::new(env!("CARGO_BIN_EXE_kbridge"));
        let test = std::env::current_exe().expect("test executable");
        let name = test.file_name().expect("file name").to_string_lossy();
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
        let copy = dir.join(format!("kbridge-for-{name}"));
        let tmp = dir.join(format!("kbridge-for-{name}.{}", std::process::id()));
        std::fs::copy(built, &tmp)
            .and_then(|_| std::fs::rename(&tmp, &copy))
            .unwrap_or_else(|e| {
                panic!("cannot copy {} to {}: {e}", built.display(), copy.display())
            });
        copy
    })
}

/// `kbridge -b <test brokers>`, with no broker or log settings inherited
/// from the environment.
pub fn kbridge() -> Command {
    let mut cmd = kbridge_without_brokers();
    cmd.arg("-b").arg(brokers());
    cmd
}

/// `kbridge` with nothing preset (for tests of `-b`, `KBRIDGE_BROKERS` and
/// usage errors).
pub fn kbridge_without_brokers() -> Command {
    let mut cmd = Command::new(kbridge_bin());
    cmd.env_remove("KBRIDGE_BROKERS")
        .env_remove("KBRIDGE_LOG")
        .env_remove("RUST_LOG");
    cmd
}

/// Runs `kbridge -b <brokers> ARGS` with `stdin` as its input.
pub fn run(args: &[&str], stdin: &str) -> Output {
    run_bytes(args, stdin.as_bytes())
}

/// Like `run`, for input that is not UTF-8.
pub fn run_bytes(args: &[&str], stdin: &[u8]) -> Output {
    let mut cmd = kbridge();
    cmd.args(args);
    run_cmd(cmd, stdin)
}

/// Runs any kbridge command (see `kbridge`, `kbridge_without_brokers`)
/// under the deadline, and checks that it did not panic.
pub fn run_cmd(cmd: Command, stdin: &[u8]) -> Output {
    let out = output_within(cmd, stdin, COMMAND_DEADLINE);
    assert_no_panic(&out);
    out
}

/// Runs another tool (kcat, python3) under the deadline. A missing tool
/// fails the test: these tests never skip.
pub fn run_tool(program: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args);
    output_within(cmd, stdin, COMMAND_DEADLINE)
}

/// Runs `python3 -c SCRIPT ARGS…`; fails the test when python3 or the
/// script fails.
pub fn python(script: &str, args: &[&str]) -> Output {
    let mut all = vec!["-c", script];
    all.extend_from_slice(args);
    let out = run_tool("python3", &all, b"");
    assert!(
        out.status.success(),
        "python3 failed ({}):\n{}",
        out.status,
        out.describe()
    );
    out
}

/// Runs `kcat -b <brokers> ARGS`; fails the test when kcat fails.
pub fn kcat(args: &[&str], stdin: &[u8]) -> Output {
    let b = brokers();
    let mut all = vec!["-b", b.as_str()];
    all.extend_from_slice(args);
    let out = run_tool("kcat", &all, stdin);
    assert!(
        out.status.success(),
        "kcat {all:?} failed ({}):\n{}",
        out.status,
        out.describe()
    );
    out
}

/// Spawns `cmd`, feeds it `stdin`, collects its output, and kills it when
/// it outlives `deadline`.
pub fn output_within(mut cmd: Command, stdin: &[u8], deadline: Duration) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {shown}: {e} (is it installed?)"));
    let input = stdin.to_vec();
    let mut pipe = child.stdin.take().expect("piped stdin");
    let writer = std::thread::spawn(move || {
        // The command may exit without reading its input; that is its business.
        let _ = pipe.write_all(&input);
    });
    let stdout = reader(child.stdout.take().expect("piped stdout"));
    let stderr = reader(child.stderr.take().expect("piped stderr"));
    let status = wait_within(&mut child, deadline);
    let _ = writer.join();
    let stdout = stdout.join().expect("stdout reader");
    let stderr = stderr.join().expect("stderr reader");
    match status {
        Some(status) => Output {
            status,
            stdout,
            stderr,
        },
        None => panic!(
            "{shown} did not finish within {deadline:?}; it was killed.\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ),
    }
}

fn reader(mut r: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Waits for `child` to exit; kills it (and returns `None`) after `deadline`.
pub fn wait_within(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    let mut status = None;
    let exited = wait_until(deadline, || {
        status = child.try_wait().expect("cannot wait for a child process");
        status.is_some()
    });
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
    }
    status
}

/// Polls `cond` every 50 ms until it holds (true) or `timeout` passes (false).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends SIGINT (what Ctrl-C sends) to a child process.
pub fn interrupt(child: &Child) {
    let out = run_tool("kill", &["-INT", &child.id().to_string()], b"");
    assert!(
        out.status.success(),
        "kill -INT failed:\n{}",
        out.describe()
    );
}

/// No kbridge output may ever show a panic: kbridge promises one-line errors.
pub fn assert_no_panic(out: &Output) {
    for (name, text) in [("stdout", out.stdout_str()), ("stderr", out.stderr_str())] {
        for bad in ["panicked", "RUST_BACKTRACE", "internal error"] {
            assert!(
                !text.contains(bad),
                "kbridge {name} contains {bad:?}:\n{}",
                out.describe()
            );
        }
    }
}

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

/// Creates a topic through `kbridge topics create` and waits until every
/// partition has a leader, so the next command sees it.
pub fn create_topic(name: &str, partitions: i32) {
    let p = partitions.to_string();
    run(&["topics", "create", name, "-p", &p], "").ok();
    await_topic(name, partitions);
}

/// Waits until `topics describe` shows `partitions` partitions, each with a
/// leader.
pub fn await_topic(name: &str, partitions: i32) {
    let ready = wait_until(WAIT, || {
        let out = run(&["topics", "describe", name, "--json"], "");
        out.status.success()
            && out.json()["partitions"].as_array().is_some_and(|ps| {
                ps.len() == partitions as usize
                    && ps
                        .iter()
                        .all(|p| p["leader"].as_i64().is_some_and(|l| l >= 0))
            })
    });
    assert!(
        ready,
        "topic {name} has no leader for every partition after {WAIT:?}"
    );
}

/// `topics describe --json`: (low, high) watermarks per partition.
pub fn watermarks(topic: &str) -> Vec<(i64, i64)> {
    let d = run(&["topics", "describe", topic, "--json"], "")
        .ok()
        .json();
    d["partitions"]
        .as_array()
        .expect("partitions array")
        .iter()
        .map(|p| {
            (
                p["low_watermark"].as_i64().expect("low_watermark"),
                p["high_watermark"].as_i64().expect("high_watermark"),
            )
        })
        .collect()
}

/// Messages in a topic according to its watermarks.
pub fn message_count(topic: &str) -> i64 {
    watermarks(topic).iter().map(|(l, h)| h - l).sum()
}

/// Produces JSON lines (quietly) and checks that all were delivered.
pub fn produce(topic: &str, lines: &[String], extra: &[&str]) {
    let mut args = vec!["produce", topic, "-q"];
    args.extend_from_slice(extra);
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    run(&args, &input)
        .ok()
        .stderr_has(&format!("{} message(s) delivered", lines.len()));
}

/// `consume TOPIC -e -f json EXTRA…`: the printed records.
pub fn consume_json(topic: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["consume", topic, "-e", "-f", "json"];
    args.extend_from_slice(extra);
    run(&args, "").ok().json_lines()
}

/// `groups describe GROUP --json`, or `None` when it fails.
pub fn describe_group(group: &str) -> Option<Value> {
    let out = run(&["groups", "describe", group, "--json"], "");
    out.status.success().then(|| out.json())
}

/// `kbridge ARGS` running in the background (a consumer without `-e`),
/// with its output collected. Dropping it kills the process, so a failing
/// test leaves no consumer behind.
pub struct Background {
    child: Child,
    shown: String,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

impl Background {
    /// Starts `kbridge -b <brokers> ARGS` with no input.
    pub fn spawn(args: &[&str]) -> Self {
        let mut cmd = kbridge();
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let shown = format!("{cmd:?}");
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
        let stdout = Some(reader(child.stdout.take().expect("piped stdout")));
        let stderr = Some(reader(child.stderr.take().expect("piped stderr")));
        Background {
            child,
            shown,
            stdout,
            stderr,
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .try_wait()
            .expect("cannot wait for a child process")
            .is_none()
    }

    /// Sends SIGINT (Ctrl-C) and waits for the process to exit.
    pub fn interrupt(mut self) -> Output {
        interrupt(&self.child);
        let status = wait_within(&mut self.child, COMMAND_DEADLINE);
        let stdout = self.stdout.take().expect("stdout").join().expect("reader");
        let stderr = self.stderr.take().expect("stderr").join().expect("reader");
        let Some(status) = status else {
            panic!(
                "{} did not exit within {COMMAND_DEADLINE:?} of SIGINT; killed.\nstdout:\n{}\nstderr:\n{}",
                self.shown,
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            );
        };
        let out = Output {
            status,
            stdout,
            stderr,
        };
        assert_no_panic(&out);
        out
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if self.is_running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Standard base64, as kbridge prints bytes that are not UTF-8.
pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Produces messages with Python's confluent-kafka. `spec` is a JSON array
/// of objects with optional fields `key`, `value` (base64, or null),
/// `headers` ([[name, base64 or null]]), `timestamp` (epoch ms) and
/// `partition`.
pub fn python_produce(topic: &str, spec: &Value) {
    python(PY_PRODUCE, &[&brokers(), topic, &spec.to_string()]);
}

const PY_PRODUCE: &str = r#"
import base64, json, sys
from confluent_kafka import Producer
brokers, topic, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
def b(x):
    return None if x is None else base64.b64decode(x)
p = Producer({"bootstrap.servers": brokers})
errors = []
def on_delivery(err, msg):
    if err is not None:
        errors.append(str(err))
for m in spec:
    kw = {}
    if m.get("timestamp") is not None:
        kw["timestamp"] = m["timestamp"]
    if m.get("partition") is not None:
        kw["partition"] = m["partition"]
    headers = [(k, b(v)) for k, v in m.get("headers", [])]
    p.produce(topic, key=b(m.get("key")), value=b(m.get("value")),
              headers=headers or None, on_delivery=on_delivery, **kw)
left = p.flush(60)
if left or errors:
    sys.exit(f"python producer: {left} message(s) not delivered, errors: {errors}")
"#;

/// Reads `count` messages from every partition's beginning with Python's
/// confluent-kafka (assigned, no group membership, nothing committed) and
/// returns one JSON object per message: partition, offset, timestamp, key,
/// value and headers (bytes as base64, null when absent).
pub fn python_consume(topic: &str, count: usize) -> Vec<Value> {
    let out = python(
        PY_CONSUME,
        &[&brokers(), topic, &count.to_string(), &unique("kbt-py")],
    );
    out.json_lines()
}

const PY_CONSUME: &str = r#"
import base64, json, sys, time
from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
brokers, topic, want, group = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
c = Consumer({"bootstrap.servers": brokers, "group.id": group, "enable.auto.commit": False})
parts = sorted(c.list_topics(topic, timeout=30).topics[topic].partitions)
c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
got = []
deadline = time.monotonic() + 60
while len(got) < want and time.monotonic() < deadline:
    m = c.poll(0.2)
    if m is None:
        continue
    if m.error():
        sys.exit(f"python consumer error: {m.error()}")
    got.append(m)
c.close()
if len(got) != want:
    sys.exit(f"python consumer: got {len(got)} of {want} messages")
def b(x):
    return None if x is None else base64.b64encode(x).decode()
for m in got:
    print(json.dumps({"partition": m.partition(), "offset": m.offset(),
                      "timestamp": m.timestamp()[1], "key": b(m.key()), "value": b(m.value()),
                      "headers": [[k, b(v)] for k, v in (m.headers() or [])]}))
"#;

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339() {
        assert_eq!(super::rfc3339_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            super::rfc3339_utc(1_718_676_000_123),
            "2024-06-18T02:00:00.123Z"
        );
        assert_eq!(
            super::rfc3339_utc(951_782_400_000),
            "2000-02-29T00:00:00.000Z"
        );
    }
}
