//! Other Kafka clients and tools (kcat, Python's confluent-kafka, bash,
//! kill), run under the deadline. A missing tool fails the test: these
//! tests never skip.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Output};

use serde_json::Value;

use crate::broker::{brokers, unique};
use crate::child::{COMMAND_DEADLINE, output_within};
use crate::output::OutputExt;

/// Runs another tool (kcat, python3) under the deadline.
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

/// One record as bytes for [`kcat_produce`]: a key (none, empty, or any
/// bytes but tab and newline), a value (none: a tombstone; no newline) and
/// headers whose keys and values need not be UTF-8 (nor contain `=`).
#[derive(Debug, Clone, Default)]
pub struct RawRecord {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Produces one record to partition 0 of `topic` with kcat, bytes exactly
/// as given: rdkafka's producer API takes header keys as `&str`, kcat's
/// `-H` any bytes (as `kcat -P -H $'\xff\xfe=x'` does).
pub fn kcat_produce(topic: &str, record: &RawRecord) {
    let b = brokers();
    let mut cmd = Command::new("kcat");
    cmd.args(["-b", b.as_str(), "-P", "-t", topic, "-p", "0"]);
    if record.key.is_some() {
        cmd.args(["-K", "\t"]);
    }
    if record.value.is_none() {
        // An empty value is sent as NULL: a tombstone.
        cmd.arg("-Z");
    }
    for (k, v) in &record.headers {
        cmd.arg("-H")
            .arg(OsStr::from_bytes(&[k.as_slice(), b"=", v].concat()));
    }
    let mut line = Vec::new();
    if let Some(k) = &record.key {
        line.extend_from_slice(k);
        line.push(b'\t');
    }
    line.extend_from_slice(record.value.as_deref().unwrap_or_default());
    line.push(b'\n');
    let out = output_within(cmd, &line, COMMAND_DEADLINE);
    assert!(
        out.status.success(),
        "kcat failed ({}):\n{}",
        out.status,
        out.describe()
    );
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
