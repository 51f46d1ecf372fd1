//! kbridge and other Kafka clients read each other's messages: kcat and
//! Python's confluent-kafka, in both directions, with keys, headers,
//! timestamps and committed group offsets intact.
//!
//! kcat and confluent-kafka are installed by `.ci/run`; when one is
//! missing these tests fail (they never skip).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use support::broker::{brokers, unique};
use support::events::numbered;
use support::kafka::{consume_json, create_topic, describe_group, produce, reset_offsets};
use support::kbridge::run;
use support::output::OutputExt;
use support::reports::reports;
use support::time::now_ms;
use support::tools::{b64, kcat, python, python_consume, python_produce};

/// Input lines, and the delivery reports (line → (partition, offset)) of
/// producing them with kbridge.
fn kbridge_produce(topic: &str, lines: &[String], extra: &[&str]) -> BTreeMap<usize, (i64, i64)> {
    let mut args = vec!["produce", topic];
    args.extend_from_slice(extra);
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let out = run(&args, &input);
    reports(out.ok())
        .into_iter()
        .map(|r| (r.line, (i64::from(r.partition), r.offset)))
        .collect()
}

fn from_b64(s: &Value) -> Option<Vec<u8>> {
    use base64::Engine;
    s.as_str().map(|s| {
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .expect("base64 from python")
    })
}

fn text(v: &Value) -> Option<String> {
    from_b64(v).map(|b| String::from_utf8(b).expect("UTF-8"))
}

#[test]
fn kcat_reads_what_kbridge_produced() {
    let t = unique("kbt-io-kcat-r");
    create_topic(&t, 2);
    let lines: Vec<String> = (0..4)
        .map(|i| format!(r#"{{"df_fault_id":"F-{i}","n":{i}}}"#))
        .collect();
    let reports = kbridge_produce(
        &t,
        &lines,
        &[
            "--key-field",
            "df_fault_id",
            "-H",
            "src=kbridge",
            "-H",
            "q=a=b",
        ],
    );
    assert_eq!(reports.len(), 4);
    let raw = kbridge_produce(
        &t,
        &["not json at all".to_string()],
        &["--raw", "-k", "raw-key", "--partition", "1"],
    );

    let out = kcat(&["-C", "-t", &t, "-e", "-q", "-J"], b"");
    let recs = out.json_lines();
    assert_eq!(recs.len(), 5, "{}", out.describe());
    for (i, line) in lines.iter().enumerate() {
        let (p, o) = reports[&(i + 1)];
        let r = recs
            .iter()
            .find(|r| r["partition"] == p && r["offset"] == o)
            .unwrap_or_else(|| panic!("kcat did not see {p}/{o}: {recs:?}"));
        assert_eq!(r["topic"], t.as_str());
        assert_eq!(r["key"], format!("F-{i}"), "{r}");
        assert_eq!(r["payload"], line.as_str(), "{r}");
        assert_eq!(r["headers"], json!(["src", "kbridge", "q", "a=b"]), "{r}");
        assert_eq!(r["tstype"], "create", "{r}");
    }
    let (p, o) = raw[&1];
    let r = recs
        .iter()
        .find(|r| r["partition"] == p && r["offset"] == o)
        .expect("raw message");
    assert_eq!(r["key"], "raw-key");
    assert_eq!(r["payload"], "not json at all");

    // The plain format: the value bytes exactly.
    let out = kcat(
        &["-C", "-t", &t, "-p", "1", "-o", &o.to_string(), "-e", "-q"],
        b"",
    );
    assert_eq!(out.stdout_str(), "not json at all\n");
}

#[test]
fn python_reads_what_kbridge_produced() {
    let t = unique("kbt-io-py-r");
    create_topic(&t, 3);
    let lines: Vec<String> = (0..6)
        .map(|i| {
            format!(
                r#"{{"df_fault_id":"F-{}","n":{i},"text":"héllo ✓"}}"#,
                i % 3
            )
        })
        .collect();
    let reports = kbridge_produce(
        &t,
        &lines,
        &["--key-field", "df_fault_id", "-H", "src=kbridge"],
    );
    assert_eq!(reports.len(), 6);

    let recs = python_consume(&t, 6);
    assert_eq!(recs.len(), 6);
    for (i, line) in lines.iter().enumerate() {
        let (p, o) = reports[&(i + 1)];
        let r = recs
            .iter()
            .find(|r| r["partition"] == p && r["offset"] == o)
            .unwrap_or_else(|| panic!("python did not see {p}/{o}: {recs:?}"));
        assert_eq!(text(&r["value"]).as_deref(), Some(line.as_str()), "{r}");
        assert_eq!(text(&r["key"]), Some(format!("F-{}", i % 3)), "{r}");
        assert_eq!(r["headers"][0][0], "src", "{r}");
        assert_eq!(text(&r["headers"][0][1]).as_deref(), Some("kbridge"), "{r}");
        assert_eq!(r["headers"].as_array().unwrap().len(), 1, "{r}");
    }
    // Same key, same partition: kbridge's key is the partitioner's key.
    let mut partition_of_key: BTreeMap<String, i64> = BTreeMap::new();
    for r in &recs {
        let key = text(&r["key"]).unwrap();
        let p = r["partition"].as_i64().unwrap();
        assert_eq!(
            *partition_of_key.entry(key.clone()).or_insert(p),
            p,
            "key {key}"
        );
    }
}

#[test]
fn kbridge_reads_what_kcat_produced() {
    let t = unique("kbt-io-kcat-w");
    create_topic(&t, 1);
    kcat(
        &["-P", "-t", &t, "-K", ":", "-H", "app=kcat", "-H", "x=y=z"],
        b"k1:{\"z\":1}\nk2:text here\n",
    );
    // Without a key separator, and a null key.
    kcat(&["-P", "-t", &t], b"{\"no\":\"key\"}\n");

    let recs = consume_json(&t, &[]);
    assert_eq!(recs.len(), 3, "{recs:?}");
    let headers = json!([{"key": "app", "value": "kcat"}, {"key": "x", "value": "y=z"}]);
    assert_eq!(recs[0]["key"], "k1");
    assert_eq!(recs[0]["value"], json!({"z": 1}));
    assert_eq!(recs[0]["headers"], headers);
    assert_eq!(recs[1]["key"], "k2");
    assert_eq!(recs[1]["value"], "text here");
    assert_eq!(recs[1]["headers"], headers);
    assert_eq!(recs[2]["key"], Value::Null);
    assert_eq!(recs[2]["value"], json!({"no": "key"}));
    assert_eq!(recs[2]["headers"], json!([]));
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r["topic"], t.as_str());
        assert_eq!(r["partition"], 0);
        assert_eq!(r["offset"], i as i64);
    }
    // Text format: the values as kcat sent them.
    let text = run(&["consume", &t, "-e"], "").ok().stdout_str();
    assert_eq!(text, "{\"z\":1}\ntext here\n{\"no\":\"key\"}\n");
}

#[test]
fn kbridge_reads_what_python_produced() {
    let t = unique("kbt-io-py-w");
    create_topic(&t, 2);
    let ts = now_ms() - 3_600_000;
    python_produce(
        &t,
        &json!([
            {"key": b64(b"py-1"), "value": b64(br#"{"df_fault_id":"F-9","sev":"major"}"#),
             "headers": [["a", b64(b"1")], ["bin", b64(&[0x00, 0xff])], ["a", b64(b"2")]],
             "timestamp": ts, "partition": 1},
            {"key": null, "value": b64("multi\nline ✓".as_bytes()), "partition": 0},
            {"key": b64(b"py-3"), "value": null, "partition": 0}
        ]),
    );
    let recs = consume_json(&t, &[]);
    assert_eq!(recs.len(), 3, "{recs:?}");
    let find = |p: i64, o: i64| {
        recs.iter()
            .find(|r| r["partition"] == p && r["offset"] == o)
            .unwrap_or_else(|| panic!("no {p}/{o} in {recs:?}"))
    };
    let r = find(1, 0);
    assert_eq!(r["key"], "py-1");
    assert_eq!(r["timestamp"], ts, "the producer's timestamp is kept");
    assert_eq!(r["value"], json!({"df_fault_id": "F-9", "sev": "major"}));
    assert_eq!(
        r["headers"],
        json!([
            {"key": "a", "value": "1"},
            {"key": "bin", "value": b64(&[0x00, 0xff]), "encoding": "base64"},
            {"key": "a", "value": "2"}
        ]),
        "headers keep their order and duplicates"
    );
    let r = find(0, 0);
    assert_eq!(r["key"], Value::Null);
    assert_eq!(r["value"], "multi\nline ✓");
    let r = find(0, 1);
    assert_eq!(r["key"], "py-3");
    assert_eq!(r["value"], Value::Null);

    // -f json kept the multi-line value on one line (json_lines parsed it);
    // the text format prints the bytes as they are.
    let text = run(&["consume", &t, "-e", "-o", "-2"], "")
        .ok()
        .stdout_str();
    assert!(text.contains("multi\nline ✓\n"), "{text}");
}

#[test]
fn group_offsets_are_shared_with_python() {
    let t = unique("kbt-io-group");
    let g = unique("kbt-io-group");
    create_topic(&t, 1);
    produce(&t, &numbered(0..5), &[]);

    // Python commits offset 3 for the group.
    python(
        r#"
import sys
from confluent_kafka import Consumer, TopicPartition
brokers, topic, group = sys.argv[1:4]
c = Consumer({"bootstrap.servers": brokers, "group.id": group, "enable.auto.commit": False})
c.assign([TopicPartition(topic, 0, 0)])
c.commit(offsets=[TopicPartition(topic, 0, 3)], asynchronous=False)
c.close()
"#,
        &[&brokers(), &t, &g],
    );
    let d = describe_group(&g).expect("kbridge sees the python group");
    assert_eq!(
        d["partitions"],
        json!([{"topic": t, "partition": 0, "current_offset": 3, "log_end_offset": 5, "lag": 2,
                "consumer_id": null, "host": null, "client_id": null}])
    );
    assert_eq!(d["total_lag"], 2);

    // kbridge resets it; python sees the new offset.
    reset_offsets(&g, &[&t], &["--to-offset", "1"], true).ok();
    let out = python(
        r#"
import sys
from confluent_kafka import Consumer, TopicPartition
brokers, topic, group = sys.argv[1:4]
c = Consumer({"bootstrap.servers": brokers, "group.id": group, "enable.auto.commit": False})
print(c.committed([TopicPartition(topic, 0)], timeout=30)[0].offset)
c.close()
"#,
        &[&brokers(), &t, &g],
    );
    assert_eq!(out.stdout_str().trim(), "1");

    // And kbridge, in the group, continues where python's offset says.
    let recs = consume_json(&t, &["-g", &g, "-o", "none"]);
    assert_eq!(
        recs.iter()
            .map(|r| r["offset"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
}
