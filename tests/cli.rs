//! Integration tests of the kbridge CLI against a real Kafka broker: every
//! command and option of `src/cli.rs`, error paths included (the relay's
//! `run` and `demo` are tested elsewhere).
//!
//! Each test uses its own topics and groups (`unique`), so tests run in
//! parallel against one broker. Conditions on the broker are awaited by
//! polling (`wait_until`), never by sleeping.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use support::broker::{brokers, unique};
use support::child::{Background, COMMAND_DEADLINE, wait_within};
use support::events::numbered;
use support::kafka::{
    await_topic, consume_json, create_topic, describe_group, message_count, produce, watermarks,
};
use support::kbridge::{assert_no_panic, kbridge, kbridge_without_brokers, run, run_cmd};
use support::output::OutputExt;
use support::reports::{Report, reports};
use support::time::{now_ms, rfc3339_utc};
use support::tools::{b64, python_produce, run_tool};
use support::wait::{WAIT, wait_until};

// ------------------------------------------------------------------ helpers

/// The `n` field of each consumed JSON record's value.
fn ns(records: &[Value]) -> Vec<i64> {
    records
        .iter()
        .map(|r| {
            r["value"]["n"]
                .as_i64()
                .unwrap_or_else(|| panic!("no value.n in {r}"))
        })
        .collect()
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// A table row (whitespace-separated cells) of stdout whose first cell is
/// `first` and second is `second` (or any when `None`).
fn row(stdout: &str, first: &str, second: Option<&str>) -> Vec<String> {
    stdout
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .find(|cells| {
            cells.first().is_some_and(|c| c == first)
                && second.is_none_or(|s| cells.get(1).is_some_and(|c| c == s))
        })
        .unwrap_or_else(|| panic!("no row starting with {first} {second:?} in:\n{stdout}"))
}

fn cells(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// The group's committed offset of each partition of `topic` (None when
/// not committed), from `groups describe --json`.
fn committed(group: &str, topic: &str, partitions: i32) -> Vec<Option<i64>> {
    let offsets = support::kafka::committed(group, topic);
    (0..partitions).map(|p| offsets.get(&p).copied()).collect()
}

fn broker_count() -> usize {
    run(&["cluster", "describe", "--json"], "").ok().json()["brokers"]
        .as_array()
        .expect("brokers")
        .len()
}

fn topic_names(json: &Value) -> Vec<String> {
    json.as_array()
        .expect("array of topics")
        .iter()
        .map(|t| t["name"].as_str().expect("name").to_string())
        .collect()
}

/// Produces batch A, then (once the clock has moved past A's timestamps)
/// batch B, and returns the time between them (epoch ms): the first B
/// message is at or after it, every A message before it.
fn produce_two_batches(topic: &str, a: &[String], b: &[String], extra: &[&str]) -> i64 {
    produce(topic, a, extra);
    let max_a = consume_json(topic, &[])
        .iter()
        .map(|r| r["timestamp"].as_i64().expect("timestamp"))
        .max()
        .expect("batch A consumed");
    assert!(
        wait_until(Duration::from_secs(5), || now_ms() > max_a + 5),
        "the clock does not advance"
    );
    produce(topic, b, extra);
    let all = consume_json(topic, &[]);
    let min_b = all
        .iter()
        .filter_map(|r| r["timestamp"].as_i64())
        .filter(|t| *t > max_a)
        .min()
        .expect("batch B has later timestamps");
    assert_eq!(
        all.iter()
            .filter(|r| r["timestamp"].as_i64() > Some(max_a))
            .count(),
        b.len(),
        "every B message (and no A message) is later than A: {all:?}"
    );
    assert!(min_b > max_a);
    max_a + 1
}

// ------------------------------------------------------------------ topics

#[test]
fn topics_create_with_partitions_replication_and_configs() {
    let t = unique("kbt-create");
    let out = run(
        &[
            "topics",
            "create",
            &t,
            "-p",
            "3",
            "-r",
            "1",
            "-c",
            "retention.ms=3600000",
            "--config",
            "cleanup.policy=compact",
        ],
        "",
    );
    out.ok();
    assert!(
        out.stdout_str().contains(&format!(
            "Created topic {t} with 3 partition(s), replication factor 1."
        )),
        "{}",
        out.describe()
    );
    await_topic(&t, 3);

    let d = run(&["topics", "describe", &t, "--json"], "").ok().json();
    assert_eq!(d["name"], t.as_str());
    let parts = d["partitions"].as_array().expect("partitions");
    assert_eq!(
        parts
            .iter()
            .map(|p| p["partition"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    for p in parts {
        assert_eq!(p["replicas"].as_array().unwrap().len(), 1, "{p}");
    }
    assert_eq!(
        d["configs"],
        json!({"cleanup.policy": "compact", "retention.ms": "3600000"}),
        "only the overrides are shown"
    );

    let table = run(&["topics", "describe", &t], "").ok().stdout_str();
    let first = table.lines().next().expect("a first line");
    assert!(
        first.starts_with(&format!(
            "Topic: {t}\tPartitionCount: 3\tReplicationFactor: 1\tConfigs: "
        )),
        "{table}"
    );
    assert!(first.contains("cleanup.policy=compact"), "{table}");
    assert!(first.contains("retention.ms=3600000"), "{table}");
    assert!(
        table.lines().any(|l| cells(l)
            == [
                "PARTITION",
                "LEADER",
                "REPLICAS",
                "ISR",
                "LOW-WATERMARK",
                "HIGH-WATERMARK",
                "MESSAGES"
            ]),
        "{table}"
    );
    for p in ["0", "1", "2"] {
        let r = row(&table, p, None);
        assert_eq!(r.len(), 7, "{r:?}");
        assert_eq!(&r[4..], ["0", "0", "0"], "{r:?}");
    }

    // Defaults: one partition, replication factor 1, no overrides.
    let t2 = unique("kbt-create-default");
    let out = run(&["topics", "create", &t2], "");
    out.ok();
    assert!(
        out.stdout_str().contains(&format!(
            "Created topic {t2} with 1 partition(s), replication factor 1."
        )),
        "{}",
        out.describe()
    );
    await_topic(&t2, 1);
    let d = run(&["topics", "describe", &t2, "--json"], "").ok().json();
    assert_eq!(d["partitions"].as_array().unwrap().len(), 1);
    assert_eq!(d["configs"], json!({}));
}

#[test]
fn topics_create_existing_topic_fails_unless_if_not_exists() {
    let t = unique("kbt-exists");
    create_topic(&t, 2);
    let out = run(&["topics", "create", &t], "");
    out.exit(1).stderr_has("already exists").stderr_has(&t);
    let out = run(&["topics", "create", &t, "-p", "5", "--if-not-exists"], "");
    out.ok();
    assert!(
        out.stdout_str()
            .contains(&format!("Topic {t} already exists.")),
        "{}",
        out.describe()
    );
    assert_eq!(
        watermarks(&t).len(),
        2,
        "--if-not-exists must not change the topic"
    );
}

#[test]
fn topics_create_rejects_impossible_requests() {
    let brokers = broker_count();
    let too_many = (brokers + 1).to_string();
    let t = unique("kbt-bad-rf");
    run(&["topics", "create", &t, "-r", &too_many], "")
        .exit(1)
        .stderr_has(&format!(
            "replication factor {too_many} is larger than the {brokers} broker(s) available"
        ));
    let t2 = unique("kbt-bad-config");
    run(&["topics", "create", &t2, "-c", "no.such.config=1"], "")
        .exit(1)
        .stderr_has("a -c config is unknown or has an invalid value");
    let t3 = unique("kbt-bad-count");
    run(&["topics", "create", &t3, "-p", "0"], "")
        .exit(2)
        .stderr_has("--partitions must be at least 1");
    run(&["topics", "create", &t3, "--replication-factor", "0"], "")
        .exit(2)
        .stderr_has("--replication-factor must be at least 1");
    run(&["topics", "create", &t3, "-c", "retention.ms"], "")
        .exit(2)
        .stderr_has("is not KEY=VALUE");

    let names = topic_names(&run(&["topics", "list", "--json"], "").ok().json());
    for n in [&t, &t2, &t3] {
        assert!(!names.contains(n), "{n} was created by a failing command");
    }
}

#[test]
fn topics_list_as_table_and_json() {
    let t = unique("kbt-list");
    create_topic(&t, 2);
    // A group commit makes sure __consumer_offsets exists.
    produce(&t, &numbered(0..1), &[]);
    let g = unique("kbt-list-group");
    run(&["consume", &t, "-g", &g, "-e"], "").ok();

    let table = run(&["topics", "list"], "").ok().stdout_str();
    assert_eq!(
        cells(table.lines().next().unwrap_or_default()),
        ["TOPIC", "PARTITIONS", "REPLICATION-FACTOR"],
        "{table}"
    );
    assert_eq!(row(&table, &t, None), [t.as_str(), "2", "1"]);

    let list = run(&["topics", "list", "--json"], "").ok().json();
    let entry = list
        .as_array()
        .expect("array")
        .iter()
        .find(|e| e["name"] == t.as_str())
        .unwrap_or_else(|| panic!("{t} not in {list}"));
    assert_eq!(
        entry,
        &json!({"name": t, "partitions": 2, "replication_factor": 1})
    );
    let names = topic_names(&list);
    assert_eq!(names, sorted(names.clone()), "topics are sorted by name");

    // Internal topics only with --all.
    assert!(!names.iter().any(|n| n.starts_with("__")), "{names:?}");
    let all = topic_names(&run(&["topics", "list", "--all", "--json"], "").ok().json());
    assert!(all.contains(&"__consumer_offsets".to_string()), "{all:?}");
    assert!(all.contains(&t), "{all:?}");
    let table = run(&["topics", "list", "--all"], "").ok().stdout_str();
    row(&table, "__consumer_offsets", None);
}

#[test]
fn topics_describe_shows_leaders_and_watermarks() {
    let t = unique("kbt-describe");
    create_topic(&t, 2);
    produce(&t, &numbered(0..3), &["--partition", "0"]);
    produce(&t, &numbered(3..8), &["--partition", "1"]);

    let d = run(&["topics", "describe", &t, "--json"], "").ok().json();
    let parts = d["partitions"].as_array().expect("partitions");
    assert_eq!(parts.len(), 2);
    for (i, (p, high)) in parts.iter().zip([3, 5]).enumerate() {
        assert_eq!(p["partition"], i as i64);
        let leader = p["leader"].as_i64().expect("leader");
        assert!(leader >= 0, "{p}");
        assert_eq!(p["replicas"], json!([leader]), "{p}");
        assert_eq!(p["isr"], json!([leader]), "{p}");
        assert_eq!(p["low_watermark"], 0, "{p}");
        assert_eq!(p["high_watermark"], high, "{p}");
    }

    let table = run(&["topics", "describe", &t], "").ok().stdout_str();
    assert_eq!(row(&table, "0", None)[4..], ["0", "3", "3"]);
    assert_eq!(row(&table, "1", None)[4..], ["0", "5", "5"]);
}

#[test]
fn topics_describe_unknown_topic_fails() {
    let t = unique("kbt-nope");
    for extra in [&[][..], &["--json"][..]] {
        let mut args = vec!["topics", "describe", t.as_str()];
        args.extend_from_slice(extra);
        let out = run(&args, "");
        out.exit(1)
            .stderr_has(&format!("topic '{t}' does not exist"));
        assert!(out.stdout.is_empty(), "{}", out.describe());
    }
}

#[test]
fn topics_delete_removes_topics_and_reports_unknown_ones() {
    let (a, b, c) = (
        unique("kbt-del-a"),
        unique("kbt-del-b"),
        unique("kbt-del-c"),
    );
    for t in [&a, &b, &c] {
        create_topic(t, 1);
    }
    let out = run(&["topics", "delete", &a, &b], "");
    out.ok();
    assert!(
        out.stdout_str().contains(&format!("Deleted topic {a}.")),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout_str().contains(&format!("Deleted topic {b}.")),
        "{}",
        out.describe()
    );
    let gone = wait_until(WAIT, || {
        let names = topic_names(&run(&["topics", "list", "--json"], "").ok().json());
        !names.contains(&a) && !names.contains(&b)
    });
    assert!(gone, "{a} and {b} are still listed");
    assert!(
        topic_names(&run(&["topics", "list", "--json"], "").ok().json()).contains(&c),
        "{c} was not to be deleted"
    );
    run(&["topics", "describe", &a], "")
        .exit(1)
        .stderr_has("does not exist");

    run(&["topics", "delete", &a], "")
        .exit(1)
        .stderr_has(&format!("topic '{a}' does not exist"));

    // A known and an unknown topic: the known one is deleted, exit 1.
    let out = run(&["topics", "delete", &c, &a], "");
    out.exit(1)
        .stderr_has(&format!("topic '{a}' does not exist"))
        .stderr_has("1 topic(s) not deleted");
    assert!(
        out.stdout_str().contains(&format!("Deleted topic {c}.")),
        "{}",
        out.describe()
    );
}

// ------------------------------------------------------------------ produce

#[test]
fn produce_from_a_file_reports_every_delivered_line() {
    let t = unique("kbt-prod-file");
    create_topic(&t, 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("alerts.jsonl");
    // A blank line (skipped, but counted), a CRLF line, no final newline.
    std::fs::write(&path, "{\"n\":1}\n\n{\"n\":3}\r\n{\"n\":4}").expect("write");
    let out = run(&["produce", &t, path.to_str().unwrap()], "");
    out.ok()
        .stderr_has(&format!("3 message(s) delivered to {t}, 0 failed"));
    let got = sorted(
        reports(&out)
            .into_iter()
            .map(|r| (r.line, r.topic, r.partition, r.offset))
            .collect(),
    );
    assert_eq!(
        got,
        vec![
            (1, t.clone(), 0, 0),
            (3, t.clone(), 0, 1),
            (4, t.clone(), 0, 2)
        ],
        "{}",
        out.describe()
    );
    // Sent as they were, line endings stripped.
    let text = run(&["consume", &t, "-e"], "").ok().stdout_str();
    assert_eq!(text, "{\"n\":1}\n{\"n\":3}\n{\"n\":4}\n");

    run(
        &[
            "produce",
            &t,
            dir.path().join("missing.jsonl").to_str().unwrap(),
        ],
        "",
    )
    .exit(1)
    .stderr_has("cannot open");
    assert_eq!(message_count(&t), 3);
}

#[test]
fn produce_from_stdin_with_and_without_dash() {
    let t = unique("kbt-prod-stdin");
    create_topic(&t, 1);
    let out = run(&["produce", &t], "{\"n\":0}\n{\"n\":1}\n");
    out.ok();
    assert_eq!(
        reports(&out)
            .iter()
            .map(|r| (r.line, r.offset))
            .collect::<Vec<_>>(),
        [(1, 0), (2, 1)],
        "{}",
        out.describe()
    );
    let out = run(&["produce", &t, "-"], "{\"n\":2}\n");
    out.ok();
    assert_eq!(
        reports(&out),
        [Report {
            line: 1,
            topic: t.clone(),
            partition: 0,
            offset: 2
        }]
    );
    assert_eq!(ns(&consume_json(&t, &[])), [0, 1, 2]);
}

#[test]
fn produce_quiet_prints_only_the_summary() {
    let t = unique("kbt-prod-quiet");
    create_topic(&t, 2);
    for flag in ["-q", "--quiet"] {
        let input: String = numbered(0..5).iter().map(|l| format!("{l}\n")).collect();
        let out = run(&["produce", &t, flag], &input);
        out.ok()
            .stderr_has(&format!("5 message(s) delivered to {t}"));
        assert!(out.stdout.is_empty(), "{flag}: {}", out.describe());
    }
    assert_eq!(message_count(&t), 10);
}

#[test]
fn produce_key_field_sets_the_key() {
    let t = unique("kbt-prod-keyfield");
    create_topic(&t, 1);
    let lines = [
        r#"{"df_fault_id":"F-1","sev":2}"#,
        r#"{"df_fault_id":"F-2"}"#,
        r#"{"df_fault_id":7}"#,
        r#"{"other":"x"}"#,
        r#"{"df_fault_id":""}"#,
        r#"{"df_fault_id":null}"#,
    ]
    .map(String::from);
    produce(&t, &lines, &["--key-field", "df_fault_id"]);
    let recs = consume_json(&t, &[]);
    let keys: Vec<&Value> = recs.iter().map(|r| &r["key"]).collect();
    assert_eq!(
        keys,
        [
            &json!("F-1"),
            &json!("F-2"),
            &json!("7"),
            &Value::Null,
            &Value::Null,
            &Value::Null
        ]
    );
    assert_eq!(recs[0]["value"], json!({"df_fault_id": "F-1", "sev": 2}));

    // The key drives the partitioner: one fault id, one partition.
    let t3 = unique("kbt-prod-keyfield3");
    create_topic(&t3, 3);
    let lines: Vec<String> = ["A", "B", "A", "C", "B", "A", "C", "A"]
        .iter()
        .enumerate()
        .map(|(i, k)| format!(r#"{{"df_fault_id":"{k}","i":{i}}}"#))
        .collect();
    produce(&t3, &lines, &["--key-field", "df_fault_id"]);
    let mut partitions: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for r in consume_json(&t3, &[]) {
        partitions
            .entry(r["key"].as_str().expect("key").to_string())
            .or_default()
            .insert(r["partition"].as_i64().unwrap());
    }
    assert_eq!(partitions.len(), 3, "{partitions:?}");
    assert!(
        partitions.values().all(|ps| ps.len() == 1),
        "{partitions:?}"
    );
}

#[test]
fn produce_key_and_headers() {
    let t = unique("kbt-prod-key");
    create_topic(&t, 1);
    produce(
        &t,
        &numbered(0..2),
        &["-k", "K1", "-H", "trace=abc", "-H", "query=a=b"],
    );
    produce(
        &t,
        &numbered(2..3),
        &["--key", "K2", "--header", "only=one"],
    );
    let recs = consume_json(&t, &[]);
    assert_eq!(recs.len(), 3);
    for r in &recs[..2] {
        assert_eq!(r["key"], "K1", "{r}");
        assert_eq!(
            r["headers"],
            json!([{"key": "trace", "value": "abc"}, {"key": "query", "value": "a=b"}]),
            "{r}"
        );
    }
    assert_eq!(recs[2]["key"], "K2");
    assert_eq!(recs[2]["headers"], json!([{"key": "only", "value": "one"}]));

    run(&["produce", &t, "-k", "a", "--key-field", "b"], "{}\n").exit(2);
    run(&["produce", &t, "-H", "novalue"], "{}\n")
        .exit(2)
        .stderr_has("is not KEY=VALUE");
    assert_eq!(message_count(&t), 3, "usage errors send nothing");
}

#[test]
fn produce_to_one_partition() {
    let t = unique("kbt-prod-part");
    create_topic(&t, 3);
    let input: String = numbered(0..6).iter().map(|l| format!("{l}\n")).collect();
    let out = run(&["produce", &t, "--partition", "2"], &input);
    out.ok();
    let reps = reports(&out);
    assert_eq!(reps.len(), 6, "{}", out.describe());
    assert!(reps.iter().all(|r| r.partition == 2), "{reps:?}");
    assert_eq!(watermarks(&t), [(0, 0), (0, 0), (0, 6)]);

    run(&["produce", &t, "--partition", "3"], "{}\n")
        .exit(2)
        .stderr_has("--partition 3 does not exist");
    run(&["produce", &t, "--partition", "-1"], "{}\n").exit(2);
    assert_eq!(message_count(&t), 6);
}

#[test]
fn produce_raw_sends_lines_unchecked() {
    let t = unique("kbt-prod-raw");
    create_topic(&t, 1);
    let out = run(
        &["produce", &t, "--raw"],
        "plain text\n{not json\n{\"ok\":true}\n",
    );
    out.ok().stderr_has("3 message(s) delivered");
    assert_eq!(
        run(&["consume", &t, "-e"], "").ok().stdout_str(),
        "plain text\n{not json\n{\"ok\":true}\n"
    );
    let values: Vec<Value> = consume_json(&t, &[])
        .into_iter()
        .map(|r| r["value"].clone())
        .collect();
    assert_eq!(
        values,
        [json!("plain text"), json!("{not json"), json!({"ok": true})]
    );

    run(&["produce", &t, "--raw", "--key-field", "id"], "x\n").exit(2);
}

#[test]
fn produce_stops_at_the_first_invalid_json_line() {
    let t = unique("kbt-prod-invalid");
    create_topic(&t, 1);
    let input = "{\"n\":1}\n{\"n\":2}\n{\"n\": oops}\n{\"n\":4}\n{\"n\":5}\n";
    let out = run(&["produce", &t], input);
    out.exit(1).stderr_has("line 3").stderr_has("invalid JSON");
    assert_eq!(
        reports(&out).iter().map(|r| r.line).collect::<Vec<_>>(),
        [1, 2],
        "{}",
        out.describe()
    );
    assert_eq!(
        message_count(&t),
        2,
        "lines after the invalid one are not sent"
    );
    assert_eq!(ns(&consume_json(&t, &[])), [1, 2]);
}

#[test]
fn produce_skip_invalid_goes_on() {
    let t = unique("kbt-prod-skip");
    create_topic(&t, 1);
    let input = "{\"n\":1}\n{\"n\":2}\n{\"n\": oops}\n{\"n\":4}\nnot json either\n{\"n\":6}\n";
    let out = run(&["produce", &t, "--skip-invalid"], input);
    out.ok()
        .stderr_has("line 3: invalid JSON")
        .stderr_has("line 5: invalid JSON")
        .stderr_has("skipped")
        .stderr_has("4 message(s) delivered")
        .stderr_has("2 invalid line(s) skipped");
    assert_eq!(
        reports(&out).iter().map(|r| r.line).collect::<Vec<_>>(),
        [1, 2, 4, 6]
    );
    assert_eq!(ns(&consume_json(&t, &[])), [1, 2, 4, 6]);
}

#[test]
fn produce_to_an_unknown_topic_fails() {
    let t = unique("kbt-prod-unknown");
    let out = run(&["produce", &t], "{}\n");
    out.exit(1)
        .stderr_has(&format!("topic '{t}' does not exist"));
    assert!(out.stdout.is_empty(), "{}", out.describe());
    run(&["topics", "describe", &t], "").exit(1);
}

// ------------------------------------------------------------------ consume

#[test]
fn consume_exit_at_end_and_count() {
    let t = unique("kbt-cons-end");
    create_topic(&t, 2);
    // An empty topic: -e exits at once with nothing.
    let out = run(&["consume", &t, "-e"], "");
    out.ok();
    assert!(out.stdout.is_empty(), "{}", out.describe());

    produce(&t, &numbered(0..4), &["--partition", "0"]);
    produce(&t, &numbered(4..7), &["--partition", "1"]);
    let expected: Vec<String> = sorted(numbered(0..7));
    for flag in ["-e", "--exit"] {
        let out = run(&["consume", &t, flag], "");
        assert_eq!(sorted(out.ok().lines()), expected, "{flag}");
    }
    // COUNT without -e: exits after COUNT messages.
    for flag in ["-c", "--count"] {
        let out = run(&["consume", &t, flag, "3"], "");
        assert_eq!(out.ok().lines().len(), 3, "{flag}: {}", out.describe());
    }
    // The end comes before COUNT.
    let out = run(&["consume", &t, "-e", "-c", "100"], "");
    assert_eq!(out.ok().lines().len(), 7);
}

#[test]
fn consume_json_records_have_every_field() {
    let t = unique("kbt-cons-json");
    create_topic(&t, 1);
    let before = now_ms();
    produce(
        &t,
        &[r#"{"a":1,"b":[true,null]}"#.to_string()],
        &["-k", "k1", "-H", "h1=v1"],
    );
    produce(&t, &["plain text".to_string()], &["--raw"]);
    let after = now_ms();

    for flag in ["-f", "--format"] {
        let out = run(&["consume", &t, "-e", flag, "json"], "");
        let recs = out.ok().json_lines();
        assert_eq!(recs.len(), 2, "{}", out.describe());
        let r = recs[0].as_object().expect("object");
        assert_eq!(
            r.keys().cloned().collect::<BTreeSet<_>>(),
            [
                "headers",
                "key",
                "offset",
                "partition",
                "timestamp",
                "topic",
                "value"
            ]
            .map(String::from)
            .into(),
            "{r:?}"
        );
        assert_eq!(r["topic"], t.as_str());
        assert_eq!(r["partition"], 0);
        assert_eq!(r["offset"], 0);
        let ts = r["timestamp"].as_i64().expect("timestamp");
        assert!(
            before - 1000 <= ts && ts <= after + 1000,
            "{ts} not in [{before}, {after}]"
        );
        assert_eq!(r["key"], "k1");
        assert_eq!(r["headers"], json!([{"key": "h1", "value": "v1"}]));
        assert_eq!(
            r["value"],
            json!({"a": 1, "b": [true, null]}),
            "JSON stays JSON"
        );

        let r = &recs[1];
        assert_eq!(r["offset"], 1);
        assert_eq!(r["key"], Value::Null);
        assert_eq!(r["headers"], json!([]));
        assert_eq!(r["value"], "plain text", "text becomes a string");
        assert!(r.get("value_encoding").is_none(), "{r}");
    }
    // Text is the default and prints values only.
    let text = run(&["consume", &t, "-e", "-f", "text"], "")
        .ok()
        .stdout_str();
    assert_eq!(text, "{\"a\":1,\"b\":[true,null]}\nplain text\n");
    assert_eq!(run(&["consume", &t, "-e"], "").ok().stdout_str(), text);
    run(&["consume", &t, "-e", "-f", "xml"], "").exit(2);
}

#[test]
fn consume_json_encodes_binary_as_base64() {
    let t = unique("kbt-cons-bin");
    create_topic(&t, 1);
    let value = [0xff, 0xfe, 0x00, 0x01];
    let key = [0xff, b'k'];
    let header = [0xc3, 0x28];
    python_produce(
        &t,
        &json!([
            {"key": b64(&key), "value": b64(&value),
             "headers": [["bin", b64(&header)], ["txt", b64(b"ok")], ["none", null]]},
            {"key": b64(b"tomb"), "value": null}
        ]),
    );
    let recs = consume_json(&t, &[]);
    assert_eq!(recs.len(), 2, "{recs:?}");
    let r = &recs[0];
    assert_eq!(r["value"], b64(&value));
    assert_eq!(r["value_encoding"], "base64");
    assert_eq!(r["key"], b64(&key));
    assert_eq!(r["key_encoding"], "base64");
    assert_eq!(
        r["headers"],
        json!([
            {"key": "bin", "value": b64(&header), "encoding": "base64"},
            {"key": "txt", "value": "ok"},
            {"key": "none", "value": null}
        ])
    );
    // A tombstone: no value at all.
    assert_eq!(recs[1]["key"], "tomb");
    assert_eq!(recs[1]["value"], Value::Null);
    assert!(recs[1].get("value_encoding").is_none(), "{}", recs[1]);
}

#[test]
fn consume_start_offsets() {
    let t = unique("kbt-cons-offsets");
    create_topic(&t, 2);
    produce(&t, &numbered(0..5), &["--partition", "0"]);
    produce(&t, &numbered(10..15), &["--partition", "1"]);
    let offsets = |recs: Vec<Value>| -> Vec<(i64, i64)> {
        sorted(
            recs.iter()
                .map(|r| {
                    (
                        r["partition"].as_i64().unwrap(),
                        r["offset"].as_i64().unwrap(),
                    )
                })
                .collect(),
        )
    };
    let all: Vec<(i64, i64)> = (0..2).flat_map(|p| (0..5).map(move |o| (p, o))).collect();

    assert_eq!(
        offsets(consume_json(&t, &[])),
        all,
        "earliest is the default"
    );
    for o in ["earliest", "beginning"] {
        assert_eq!(offsets(consume_json(&t, &["-o", o])), all, "-o {o}");
    }
    for o in ["latest", "end"] {
        let out = run(&["consume", &t, "-e", "-o", o], "");
        out.ok();
        assert!(out.stdout.is_empty(), "-o {o}: {}", out.describe());
    }
    assert_eq!(
        offsets(consume_json(&t, &["--offset", "3"])),
        [(0, 3), (0, 4), (1, 3), (1, 4)],
        "absolute offset"
    );
    assert_eq!(
        offsets(consume_json(&t, &["-o", "-1"])),
        [(0, 4), (1, 4)],
        "last one per partition"
    );
    assert_eq!(
        offsets(consume_json(&t, &["-o", "-10"])),
        all,
        "more than there is"
    );
    assert_eq!(
        offsets(consume_json(&t, &["-o", "-3"])),
        [(0, 2), (0, 3), (0, 4), (1, 2), (1, 3), (1, 4)],
        "last three per partition"
    );
    run(&["consume", &t, "-e", "-o", "middle"], "")
        .exit(2)
        .stderr_has("is not an offset");
}

#[test]
fn consume_from_a_point_in_time() {
    let t = unique("kbt-cons-time");
    create_topic(&t, 1);
    let between = produce_two_batches(&t, &numbered(0..3), &numbered(3..6), &[]);

    assert_eq!(
        ns(&consume_json(&t, &["-o", &format!("@{between}")])),
        [3, 4, 5]
    );
    let rfc = rfc3339_utc(between);
    assert_eq!(
        ns(&consume_json(&t, &["-o", &format!("@{rfc}")])),
        [3, 4, 5],
        "@{rfc}"
    );
    assert_eq!(
        ns(&consume_json(&t, &["-o", "@-1h"])),
        [0, 1, 2, 3, 4, 5],
        "relative time"
    );
    let future = format!("@{}", now_ms() + 3_600_000);
    let out = run(&["consume", &t, "-e", "-o", &future], "");
    out.ok();
    assert!(out.stdout.is_empty(), "{}", out.describe());
    run(&["consume", &t, "-e", "-o", "@yesterday"], "")
        .exit(2)
        .stderr_has("is not a time");
}

#[test]
fn consume_with_a_group_commits_what_was_printed() {
    let t = unique("kbt-cons-group");
    let g = unique("kbt-group");
    create_topic(&t, 2);
    produce(&t, &numbered(0..3), &["--partition", "0"]);
    produce(&t, &numbered(3..5), &["--partition", "1"]);

    assert_eq!(sorted(ns(&consume_json(&t, &["-g", &g]))), [0, 1, 2, 3, 4]);
    let d = describe_group(&g).expect("group exists after consuming");
    assert_eq!(d["state"], "Empty", "{d}");
    assert_eq!(d["total_lag"], 0, "{d}");
    let parts: Vec<(i64, i64, i64, i64)> = d["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["topic"] == t.as_str())
        .map(|p| {
            (
                p["partition"].as_i64().unwrap(),
                p["current_offset"].as_i64().expect("committed"),
                p["log_end_offset"].as_i64().unwrap(),
                p["lag"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(parts, [(0, 3, 3, 0), (1, 2, 2, 0)], "{d}");

    // From the committed offsets: nothing new.
    let out = run(&["consume", &t, "--group", &g, "-o", "none", "-e"], "");
    out.ok();
    assert!(out.stdout.is_empty(), "{}", out.describe());

    // New messages, and only those.
    produce(&t, &numbered(5..7), &["--partition", "1"]);
    assert_eq!(ns(&consume_json(&t, &["-g", &g, "-o", "none"])), [5, 6]);
    assert_eq!(committed(&g, &t, 2), [Some(3), Some(4)]);

    // -c: only what was printed is committed.
    produce(&t, &numbered(7..10), &["--partition", "0"]);
    let out = run(&["consume", &t, "-g", &g, "-o", "none", "-c", "1"], "");
    assert_eq!(out.ok().lines(), [r#"{"n":7}"#]);
    assert_eq!(committed(&g, &t, 2), [Some(4), Some(4)]);
    assert_eq!(describe_group(&g).unwrap()["total_lag"], 2);
}

#[test]
fn consume_with_a_group_resumes_from_committed_offsets_by_default() {
    let t = unique("kbt-cons-resume");
    let g = unique("kbt-group");
    create_topic(&t, 1);
    produce(&t, &numbered(0..3), &[]);
    assert_eq!(ns(&consume_json(&t, &["-g", &g])), [0, 1, 2]);
    assert_eq!(committed(&g, &t, 1), [Some(3)]);
    let out = run(&["consume", &t, "-g", &g, "-e"], "");
    assert!(
        out.ok().stdout.is_empty(),
        "second run re-read:\n{}",
        out.describe()
    );
    produce(&t, &numbered(3..4), &[]);
    assert_eq!(ns(&consume_json(&t, &["-g", &g])), [3]);
}

#[test]
fn consume_offset_none_needs_committed_offsets_and_a_group() {
    let t = unique("kbt-cons-none");
    let g = unique("kbt-group");
    create_topic(&t, 1);
    produce(&t, &numbered(0..2), &[]);

    let out = run(&["consume", &t, "-g", &g, "-o", "none", "-e"], "");
    out.exit(1)
        .stderr_has(&format!("group '{g}' has no committed offset for {t}/0"));
    assert!(out.stdout.is_empty(), "{}", out.describe());

    run(&["consume", &t, "-o", "none", "-e"], "")
        .exit(2)
        .stderr_has("-o none needs a group (-g)");

    // Once offsets are set, -o none starts there.
    run(
        &[
            "groups",
            "reset-offsets",
            &g,
            "--topic",
            &t,
            "--to-offset",
            "1",
            "--execute",
        ],
        "",
    )
    .ok();
    assert_eq!(ns(&consume_json(&t, &["-g", &g, "-o", "none"])), [1]);
}

#[test]
fn consume_several_topics_at_once() {
    let (a, b) = (unique("kbt-cons-multi-a"), unique("kbt-cons-multi-b"));
    create_topic(&a, 1);
    create_topic(&b, 2);
    produce(&a, &numbered(0..2), &[]);
    produce(&b, &numbered(2..3), &["--partition", "0"]);
    produce(&b, &numbered(3..5), &["--partition", "1"]);

    let out = run(&["consume", &a, &b, "-e", "-f", "json"], "");
    let recs = out.ok().json_lines();
    let by_topic = |recs: &[Value], t: &str| {
        sorted(
            recs.iter()
                .filter(|r| r["topic"] == t)
                .map(|r| r["value"]["n"].as_i64().unwrap())
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(recs.len(), 5, "{}", out.describe());
    assert_eq!(by_topic(&recs, &a), [0, 1]);
    assert_eq!(by_topic(&recs, &b), [2, 3, 4]);

    // In a group: both topics committed.
    let g = unique("kbt-group");
    let recs = run(&["consume", &a, &b, "-g", &g, "-e", "-f", "json"], "")
        .ok()
        .json_lines();
    assert_eq!(recs.len(), 5);
    assert_eq!(committed(&g, &a, 1), [Some(2)]);
    assert_eq!(committed(&g, &b, 2), [Some(1), Some(2)]);
}

#[test]
fn consume_unknown_topic_fails() {
    let known = unique("kbt-cons-known");
    create_topic(&known, 1);
    let t = unique("kbt-cons-unknown");
    for args in [
        vec!["consume", t.as_str(), "-e"],
        vec!["consume", known.as_str(), t.as_str(), "-e"],
    ] {
        let out = run(&args, "");
        out.exit(1)
            .stderr_has(&format!("topic '{t}' does not exist"));
        assert!(out.stdout.is_empty(), "{}", out.describe());
    }
}

// ------------------------------------------------------------------ groups

#[test]
fn groups_list_and_describe_an_empty_group() {
    let t = unique("kbt-grp");
    let g = unique("kbt-group");
    create_topic(&t, 2);
    produce(&t, &numbered(0..2), &["--partition", "0"]);
    produce(&t, &numbered(2..3), &["--partition", "1"]);
    run(&["consume", &t, "-g", &g, "-e"], "").ok();
    produce(&t, &numbered(3..5), &["--partition", "0"]);

    let table = run(&["groups", "list"], "").ok().stdout_str();
    assert_eq!(
        cells(table.lines().next().unwrap_or_default()),
        ["GROUP", "STATE", "MEMBERS"]
    );
    assert_eq!(row(&table, &g, None), [g.as_str(), "Empty", "0"]);
    let list = run(&["groups", "list", "--json"], "").ok().json();
    let entry = list
        .as_array()
        .expect("array")
        .iter()
        .find(|e| e["group"] == g.as_str())
        .unwrap_or_else(|| panic!("{g} not in {list}"));
    assert_eq!(
        entry,
        &json!({"group": g, "state": "Empty", "protocol_type": "consumer", "members": 0})
    );

    let table = run(&["groups", "describe", &g], "").ok().stdout_str();
    let mut lines = table.lines();
    assert_eq!(
        lines.next(),
        Some(format!("Group: {g}\tState: Empty\tMembers: 0").as_str()),
        "{table}"
    );
    assert!(
        table.lines().any(|l| cells(l)
            == [
                "TOPIC",
                "PARTITION",
                "CURRENT-OFFSET",
                "LOG-END-OFFSET",
                "LAG",
                "CONSUMER-ID",
                "HOST",
                "CLIENT-ID"
            ]),
        "{table}"
    );
    assert_eq!(
        row(&table, &t, Some("0")),
        [t.as_str(), "0", "2", "4", "2", "-", "-", "-"]
    );
    assert_eq!(
        row(&table, &t, Some("1")),
        [t.as_str(), "1", "1", "1", "0", "-", "-", "-"]
    );
    assert_eq!(table.lines().last(), Some("TOTAL LAG: 2"), "{table}");

    let d = describe_group(&g).expect("describe --json");
    assert_eq!(d["group"], g.as_str());
    assert_eq!(d["state"], "Empty");
    assert_eq!(d["members"], json!([]));
    assert_eq!(d["total_lag"], 2);
    assert_eq!(
        d["partitions"],
        json!([
            {"topic": t, "partition": 0, "current_offset": 2, "log_end_offset": 4, "lag": 2,
             "consumer_id": null, "host": null, "client_id": null},
            {"topic": t, "partition": 1, "current_offset": 1, "log_end_offset": 1, "lag": 0,
             "consumer_id": null, "host": null, "client_id": null}
        ])
    );
}

#[test]
fn groups_with_an_active_member() {
    let t = unique("kbt-grp-active");
    let g = unique("kbt-group");
    let client_id = unique("kbt-client");
    create_topic(&t, 2);
    produce(&t, &numbered(0..1), &["--partition", "0"]);
    produce(&t, &numbered(1..2), &["--partition", "1"]);

    let consumer = Background::spawn(&[
        "-X",
        &format!("client.id={client_id}"),
        "consume",
        &t,
        "-g",
        &g,
    ]);
    let mut member = Value::Null;
    let joined = wait_until(WAIT, || {
        let Some(d) = describe_group(&g) else {
            return false;
        };
        let Some(m) = d["members"].as_array().and_then(|m| m.first()) else {
            return false;
        };
        member = m.clone();
        m["assignment"].as_array().is_some_and(|a| a.len() == 2)
    });
    assert!(
        joined,
        "the consumer never got both partitions; last member: {member}"
    );
    let member_id = member["consumer_id"]
        .as_str()
        .expect("consumer_id")
        .to_string();
    let host = member["host"].as_str().expect("host").to_string();
    assert!(member_id.starts_with(&client_id), "{member}");
    assert!(!host.is_empty() && !host.starts_with('/'), "{member}");
    assert_eq!(member["client_id"], client_id.as_str());
    assert_eq!(member["assignment"], json!([[t, 0], [t, 1]]));

    let table = run(&["groups", "describe", &g], "").ok().stdout_str();
    assert!(
        table.starts_with(&format!("Group: {g}\tState: Stable\tMembers: 1")),
        "{table}"
    );
    for p in ["0", "1"] {
        let r = row(&table, &t, Some(p));
        assert_eq!(r.len(), 8, "{r:?}");
        assert_eq!(
            r[5..],
            [member_id.as_str(), host.as_str(), client_id.as_str()],
            "{table}"
        );
    }
    assert_eq!(
        row(&run(&["groups", "list"], "").ok().stdout_str(), &g, None),
        [g.as_str(), "Stable", "1"]
    );

    // Offsets of an active group cannot be reset, nor can it be deleted.
    for extra in [&[][..], &["--execute"][..]] {
        let mut args = vec![
            "groups",
            "reset-offsets",
            g.as_str(),
            "--topic",
            t.as_str(),
            "--to-earliest",
        ];
        args.extend_from_slice(extra);
        run(&args, "").exit(1).stderr_has("1 active member(s)");
    }
    run(&["groups", "delete", &g], "")
        .exit(1)
        .stderr_has("has active members");

    // Ctrl-C: a clean exit that commits what was printed and leaves the group.
    let out = consumer.interrupt();
    out.ok();
    assert_eq!(sorted(out.lines()), numbered(0..2), "{}", out.describe());
    assert!(
        wait_until(WAIT, || describe_group(&g)
            .is_some_and(|d| d["state"] == "Empty")),
        "group {g} never became Empty"
    );
    let d = describe_group(&g).unwrap();
    assert_eq!(d["members"], json!([]));
    assert_eq!(committed(&g, &t, 2), [Some(1), Some(1)]);

    // Now the offsets can be reset: a dry run changes nothing…
    let out = run(
        &[
            "groups",
            "reset-offsets",
            &g,
            "--topic",
            &t,
            "--to-earliest",
        ],
        "",
    );
    out.ok().stderr_has("dry run");
    assert_eq!(committed(&g, &t, 2), [Some(1), Some(1)]);
    // …--execute does.
    run(
        &[
            "groups",
            "reset-offsets",
            &g,
            "--topic",
            &t,
            "--to-earliest",
            "--execute",
        ],
        "",
    )
    .ok()
    .stderr_has(&format!("offsets of group '{g}' reset"));
    assert_eq!(committed(&g, &t, 2), [Some(0), Some(0)]);

    // And the group can be deleted.
    let out = run(&["groups", "delete", &g], "");
    out.ok();
    assert!(
        out.stdout_str().contains(&format!("Deleted group {g}.")),
        "{}",
        out.describe()
    );
    run(&["groups", "describe", &g], "")
        .exit(1)
        .stderr_has("does not exist");
    run(&["groups", "delete", &g], "")
        .exit(1)
        .stderr_has(&format!("consumer group '{g}' does not exist"));
}

#[test]
fn groups_reset_offsets_to_every_target() {
    let t = unique("kbt-grp-reset");
    let g = unique("kbt-group");
    create_topic(&t, 2);
    // Partition 0 and 1: offsets 0..3 in batch A, 3..5 in batch B.
    let a: Vec<String> = numbered(0..3);
    let b: Vec<String> = numbered(3..5);
    produce(&t, &a, &["--partition", "0"]);
    let between = produce_two_batches(&t, &a, &b, &["--partition", "1"]);
    produce(&t, &b, &["--partition", "0"]);
    assert_eq!(watermarks(&t), [(0, 5), (0, 5)]);
    run(&["consume", &t, "-g", &g, "-e"], "").ok();
    assert_eq!(committed(&g, &t, 2), [Some(5), Some(5)]);

    let reset = |target: &[&str], execute: bool| -> std::process::Output {
        let mut args = vec!["groups", "reset-offsets", g.as_str(), "--topic", t.as_str()];
        args.extend_from_slice(target);
        if execute {
            args.push("--execute");
        }
        let out = run(&args, "");
        out.ok();
        out
    };

    // Dry runs: the plan, no change.
    let out = reset(&["--to-earliest"], false);
    out.stderr_has("dry run, nothing changed");
    let table = out.stdout_str();
    assert_eq!(
        cells(table.lines().next().unwrap_or_default()),
        ["TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"]
    );
    assert_eq!(row(&table, &t, Some("0")), [t.as_str(), "0", "5", "0"]);
    assert_eq!(row(&table, &t, Some("1")), [t.as_str(), "1", "5", "0"]);
    let plan = reset(&["--to-offset", "2", "--json"], false).json();
    assert_eq!(
        plan,
        json!([
            {"topic": t, "partition": 0, "current_offset": 5, "new_offset": 2},
            {"topic": t, "partition": 1, "current_offset": 5, "new_offset": 2}
        ])
    );
    assert_eq!(
        committed(&g, &t, 2),
        [Some(5), Some(5)],
        "dry runs change nothing"
    );

    reset(&["--to-earliest"], true).stderr_has("reset");
    assert_eq!(committed(&g, &t, 2), [Some(0), Some(0)]);
    reset(&["--to-latest"], true);
    assert_eq!(committed(&g, &t, 2), [Some(5), Some(5)]);
    reset(&["--to-offset", "2"], true);
    assert_eq!(committed(&g, &t, 2), [Some(2), Some(2)]);
    // The group really reads from there.
    assert_eq!(
        sorted(ns(&consume_json(&t, &["-g", &g, "-o", "none"]))),
        [2, 2, 3, 3, 4, 4]
    );
    assert_eq!(committed(&g, &t, 2), [Some(5), Some(5)]);

    reset(&["--shift-by", "-2"], true);
    assert_eq!(committed(&g, &t, 2), [Some(3), Some(3)]);
    reset(&["--shift-by", "1"], true);
    assert_eq!(committed(&g, &t, 2), [Some(4), Some(4)]);
    reset(&["--shift-by", "-100"], true);
    assert_eq!(
        committed(&g, &t, 2),
        [Some(0), Some(0)],
        "clamped to the log start"
    );
    reset(&["--to-offset", "999"], true);
    assert_eq!(
        committed(&g, &t, 2),
        [Some(5), Some(5)],
        "clamped to the log end"
    );

    // Times: only partition 1 has batch B after `between`; partition 0's
    // batch B was produced later still, so both start at offset 3.
    let out = reset(&["--to-datetime", &rfc3339_utc(between), "--json"], true);
    assert_eq!(
        out.json()
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["new_offset"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [3, 3]
    );
    assert_eq!(committed(&g, &t, 2), [Some(3), Some(3)]);
    reset(&["--to-datetime", "-1h"], true);
    assert_eq!(committed(&g, &t, 2), [Some(0), Some(0)]);
    reset(
        &["--to-datetime", &(now_ms() + 3_600_000).to_string()],
        true,
    );
    assert_eq!(
        committed(&g, &t, 2),
        [Some(5), Some(5)],
        "after the last message: log end"
    );

    // Several topics, one without committed offsets yet.
    let t2 = unique("kbt-grp-reset2");
    create_topic(&t2, 1);
    produce(&t2, &numbered(0..2), &[]);
    let changes = run(
        &[
            "groups",
            "reset-offsets",
            &g,
            "--topic",
            &t,
            "--topic",
            &t2,
            "--to-offset",
            "1",
            "--execute",
            "--json",
        ],
        "",
    )
    .ok()
    .json();
    assert_eq!(
        changes,
        json!([
            {"topic": t, "partition": 0, "current_offset": 5, "new_offset": 1},
            {"topic": t, "partition": 1, "current_offset": 5, "new_offset": 1},
            {"topic": t2, "partition": 0, "current_offset": null, "new_offset": 1}
        ])
    );
    assert_eq!(committed(&g, &t2, 1), [Some(1)]);

    // Usage errors and unknown topics.
    let base = ["groups", "reset-offsets", g.as_str()];
    run(&[&base[..], &["--topic", &t]].concat(), "").exit(2);
    run(&[&base[..], &["--to-earliest"]].concat(), "").exit(2);
    run(
        &[&base[..], &["--topic", &t, "--to-earliest", "--to-latest"]].concat(),
        "",
    )
    .exit(2);
    run(
        &[&base[..], &["--topic", &t, "--to-datetime", "soon"]].concat(),
        "",
    )
    .exit(2)
    .stderr_has("is not a time");
    let unknown = unique("kbt-nope");
    run(
        &[
            &base[..],
            &["--topic", &unknown, "--to-earliest", "--execute"],
        ]
        .concat(),
        "",
    )
    .exit(1)
    .stderr_has(&format!("topic '{unknown}' does not exist"));
    assert_eq!(
        committed(&g, &t, 2),
        [Some(1), Some(1)],
        "failed resets change nothing"
    );
}

#[test]
fn groups_describe_and_delete_unknown_group_fail() {
    let g = unique("kbt-no-group");
    for args in [
        vec!["groups", "describe", g.as_str()],
        vec!["groups", "describe", g.as_str(), "--json"],
    ] {
        let out = run(&args, "");
        out.exit(1)
            .stderr_has(&format!("consumer group '{g}' does not exist"));
        assert!(out.stdout.is_empty(), "{}", out.describe());
    }
    run(&["groups", "delete", &g], "")
        .exit(1)
        .stderr_has(&format!("consumer group '{g}' does not exist"))
        .stderr_has("1 group(s) not deleted");
}

// ------------------------------------------------------------------ cluster

#[test]
fn cluster_describe() {
    let expected_brokers = brokers().split(',').count();
    let d = run(&["cluster", "describe", "--json"], "").ok().json();
    let id = d["cluster_id"].as_str().expect("cluster_id").to_string();
    assert!(!id.is_empty());
    let controller = d["controller_id"].as_i64().expect("controller_id");
    let list = d["brokers"].as_array().expect("brokers");
    assert_eq!(list.len(), expected_brokers, "{d}");
    let addresses: Vec<String> = list
        .iter()
        .map(|b| format!("{}:{}", b["host"].as_str().unwrap(), b["port"]))
        .collect();
    for bootstrap in brokers().split(',') {
        assert!(
            addresses.iter().any(|a| a == bootstrap),
            "{bootstrap} not in {addresses:?}"
        );
    }
    let controllers: Vec<i64> = list
        .iter()
        .filter(|b| b["controller"] == true)
        .map(|b| b["id"].as_i64().unwrap())
        .collect();
    assert_eq!(controllers, [controller], "{d}");

    let table = run(&["cluster", "describe"], "").ok().stdout_str();
    assert_eq!(
        table.lines().next(),
        Some(
            format!("Cluster: {id}\tController: {controller}\tBrokers: {expected_brokers}")
                .as_str()
        ),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| cells(l) == ["ID", "HOST", "PORT", "CONTROLLER"]),
        "{table}"
    );
    let r = row(&table, &controller.to_string(), None);
    assert_eq!(r.last().map(String::as_str), Some("yes"), "{table}");
}

#[test]
fn cluster_api_versions() {
    let d = run(&["cluster", "api-versions", "--json"], "").ok().json();
    let list = d.as_array().expect("array");
    assert_eq!(list.len(), brokers().split(',').count(), "{d}");
    let apis = list[0]["apis"].as_array().expect("apis");
    let find = |name: &str| {
        apis.iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in {d}"))
    };
    for (name, key) in [("Produce", 0), ("Fetch", 1)] {
        let a = find(name);
        assert_eq!(a["key"], key, "{a}");
        let (min, max) = (a["min"].as_i64().unwrap(), a["max"].as_i64().unwrap());
        assert!(0 <= min && min <= max, "{a}");
    }
    // ApiVersions (key 18), whatever its name (see the ignored test below).
    let a = apis
        .iter()
        .find(|a| a["key"] == 18)
        .unwrap_or_else(|| panic!("no ApiVersions (18) in {d}"));
    assert!(
        a["min"].as_i64().unwrap() <= a["max"].as_i64().unwrap() && a["max"].as_i64().unwrap() >= 3,
        "{a}"
    );
    let keys: Vec<i64> = apis.iter().map(|a| a["key"].as_i64().unwrap()).collect();
    assert_eq!(keys, sorted(keys.clone()), "sorted by key");

    let table = run(&["cluster", "api-versions"], "").ok().stdout_str();
    let address = list[0]["address"].as_str().unwrap();
    assert!(
        table.starts_with(&format!("{address} (id: {}) -> (\n", list[0]["id"])),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| cells(l) == ["API", "KEY", "MIN", "MAX"]),
        "{table}"
    );
    for name in ["Produce", "Fetch"] {
        let a = find(name);
        assert_eq!(
            row(&table, name, None),
            [
                name.to_string(),
                a["key"].to_string(),
                a["min"].to_string(),
                a["max"].to_string()
            ]
        );
    }
    assert_eq!(table.lines().last(), Some(")"), "{table}");
}

#[test]
fn cluster_api_versions_uses_kafka_api_names() {
    let d = run(&["cluster", "api-versions", "--json"], "").ok().json();
    let apis = d[0]["apis"].as_array().expect("apis");
    let name = |key: i64| {
        apis.iter()
            .find(|a| a["key"] == key)
            .map(|a| a["name"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("no API {key} in {d}"))
    };
    assert_eq!(name(18), "ApiVersions");
    assert_eq!(name(43), "ElectLeaders");
    let unknown: Vec<&Value> = apis
        .iter()
        .filter(|a| a["name"].as_str().unwrap().starts_with("Unknown"))
        .collect();
    assert!(unknown.is_empty(), "unnamed APIs: {unknown:?}");
    let table = run(&["cluster", "api-versions"], "").ok().stdout_str();
    assert_eq!(row(&table, "ApiVersions", None)[1], "18", "{table}");
}

// ------------------------------------------------------------------ global

/// Commands that need the cluster, each with the input it gets.
const NETWORK_COMMANDS: &[&[&str]] = &[
    &["topics", "list"],
    &["topics", "describe", "t"],
    &["topics", "create", "t"],
    &["topics", "delete", "t"],
    &["produce", "t"],
    &["consume", "t", "-e"],
    &["groups", "list"],
    &["groups", "describe", "g"],
    &[
        "groups",
        "reset-offsets",
        "g",
        "--topic",
        "t",
        "--to-earliest",
    ],
    &["groups", "delete", "g"],
    &["cluster", "describe"],
    &["cluster", "api-versions"],
];

/// Runs every network command against `-b 127.0.0.1:1 --timeout 2s`, in
/// parallel; returns (command, elapsed, output).
fn against_unreachable_broker() -> Vec<(String, Duration, std::process::Output)> {
    let handles: Vec<_> = NETWORK_COMMANDS
        .iter()
        .map(|args| {
            std::thread::spawn(move || {
                let mut cmd = kbridge_without_brokers();
                cmd.args(["-b", "127.0.0.1:1", "--timeout", "2s"])
                    .args(*args);
                let start = Instant::now();
                let out = run_cmd(cmd, b"{}\n");
                (args.join(" "), start.elapsed(), out)
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect()
}

#[test]
fn unreachable_broker_fails_fast_with_one_line() {
    for (cmd, elapsed, out) in against_unreachable_broker() {
        assert_eq!(out.code(), 1, "{cmd}:\n{}", out.describe());
        assert!(elapsed < Duration::from_secs(10), "{cmd} took {elapsed:?}");
        let err = out.stderr_str();
        assert_eq!(
            err.lines().count(),
            1,
            "{cmd}: one line:\n{}",
            out.describe()
        );
        assert!(
            err.starts_with("kbridge: error: "),
            "{cmd}:\n{}",
            out.describe()
        );
        assert!(err.contains("127.0.0.1:1"), "{cmd}:\n{}", out.describe());
        assert!(out.stdout.is_empty(), "{cmd}:\n{}", out.describe());
    }
}

#[test]
fn unreachable_broker_error_names_the_cause() {
    for (cmd, _, out) in against_unreachable_broker() {
        assert!(
            out.stderr_str()
                .to_lowercase()
                .contains("connection refused"),
            "{cmd}:\n{}",
            out.describe()
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let cases: &[&[&str]] = &[
        &[],
        &["bogus"],
        &["topics"],
        &["topics", "create"],
        &["topics", "delete"],
        &["topics", "list", "--bogus"],
        &["--timeout", "soon", "topics", "list"],
        &["--timeout", "-3", "topics", "list"],
        &["-X", "novalue", "topics", "list"],
        &["produce"],
        &["consume"],
        &["consume", "t", "-c", "many"],
        &["groups", "describe"],
        &["groups", "delete"],
        &["cluster"],
        &["completions", "tcsh"],
    ];
    for args in cases {
        let mut cmd = kbridge_without_brokers();
        // Unreachable: usage errors must be found before any network I/O.
        cmd.args(["-b", "127.0.0.1:1"]).args(*args);
        let start = Instant::now();
        let out = run_cmd(cmd, b"");
        assert_eq!(out.code(), 2, "{args:?}:\n{}", out.describe());
        assert!(!out.stderr.is_empty(), "{args:?}:\n{}", out.describe());
        assert!(out.stdout.is_empty(), "{args:?}:\n{}", out.describe());
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{args:?} waited for the network"
        );
    }
}

#[test]
fn help_and_version() {
    let mut cmd = kbridge_without_brokers();
    cmd.arg("--help");
    let out = run_cmd(cmd, b"");
    out.ok();
    for sub in [
        "topics",
        "produce",
        "consume",
        "groups",
        "cluster",
        "completions",
    ] {
        assert!(out.stdout_str().contains(sub), "{sub}:\n{}", out.describe());
    }
    let mut cmd = kbridge_without_brokers();
    cmd.args(["consume", "--help"]);
    let out = run_cmd(cmd, b"");
    out.ok();
    for opt in ["--group", "--offset", "--count", "--exit", "--format"] {
        assert!(out.stdout_str().contains(opt), "{opt}:\n{}", out.describe());
    }
    let mut cmd = kbridge_without_brokers();
    cmd.arg("--version");
    let out = run_cmd(cmd, b"");
    assert_eq!(
        out.ok().stdout_str().trim(),
        format!("kbridge {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn completions_print_scripts() {
    let script = |shell: &str| {
        let mut cmd = kbridge_without_brokers();
        cmd.args(["completions", shell]);
        run_cmd(cmd, b"").ok().stdout_str()
    };
    let bash = script("bash");
    assert!(bash.contains("_kbridge()"), "{bash}");
    assert!(bash.contains("complete -F _kbridge"), "{bash}");
    for word in ["topics", "reset-offsets", "--key-field", "--to-datetime"] {
        assert!(bash.contains(word), "{word} missing from the bash script");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kbridge.bash");
    std::fs::write(&path, &bash).expect("write");
    let check = run_tool("bash", &["-n", path.to_str().unwrap()], b"");
    assert!(check.status.success(), "bash -n:\n{}", check.describe());

    assert!(script("zsh").starts_with("#compdef kbridge"));
    assert!(script("fish").contains("complete -c kbridge"));
}

#[test]
fn brokers_from_the_environment_or_anywhere_on_the_line() {
    let t = unique("kbt-env");
    create_topic(&t, 1);
    let listed = |out: std::process::Output| topic_names(&out.ok().json()).contains(&t);

    let mut cmd = kbridge_without_brokers();
    cmd.env("KBRIDGE_BROKERS", brokers())
        .args(["topics", "list", "--json"]);
    assert!(listed(run_cmd(cmd, b"")), "KBRIDGE_BROKERS");

    let mut cmd = kbridge_without_brokers();
    cmd.args(["topics", "list", "--json", "--brokers", &brokers()]);
    assert!(listed(run_cmd(cmd, b"")), "--brokers after the subcommand");

    let mut cmd = kbridge_without_brokers();
    cmd.env("KBRIDGE_BROKERS", "127.0.0.1:1")
        .args(["topics", "list", "--json", "-b", &brokers()]);
    assert!(listed(run_cmd(cmd, b"")), "-b wins over KBRIDGE_BROKERS");

    let mut cmd = kbridge_without_brokers();
    cmd.env("KBRIDGE_BROKERS", "127.0.0.1:1")
        .args(["--timeout", "1s", "topics", "list"]);
    run_cmd(cmd, b"").exit(1).stderr_has("127.0.0.1:1");
}

#[test]
fn librdkafka_properties_with_x() {
    run(&["-X", "no.such.property=1", "topics", "list"], "")
        .exit(1)
        .stderr_has("check the -X properties");

    // A property takes effect: a 3 kB line is fine by default, too large
    // with message.max.bytes=1000.
    let t = unique("kbt-prop");
    create_topic(&t, 1);
    let big = format!("{{\"x\":\"{}\"}}\n", "y".repeat(3000));
    run(&["produce", &t, "-q"], &big).ok();
    assert_eq!(message_count(&t), 1);
    run(&["-X", "message.max.bytes=1000", "produce", &t], &big)
        .exit(1)
        .stderr_has("line 1")
        .stderr_has("too large");
    run(
        &["--property", "message.max.bytes=1000", "produce", &t],
        &big,
    )
    .exit(1);
    assert_eq!(message_count(&t), 1);
}

#[test]
fn produce_line_that_cannot_be_queued_keeps_earlier_deliveries() {
    let t = unique("kbt-prod-purge");
    create_topic(&t, 1);
    let mut input: String = numbered(0..5000).iter().map(|l| format!("{l}\n")).collect();
    input.push_str(&format!("{{\"x\":\"{}\"}}\n", "y".repeat(3000)));
    let out = run(&["-X", "message.max.bytes=1000", "produce", &t], &input);
    out.exit(1).stderr_has("line 5001");
    assert_eq!(message_count(&t), 5000);
    assert_eq!(
        reports(&out).len(),
        5000,
        "a report for every delivered line"
    );
    assert!(
        !out.stderr_str().contains("delivery to"),
        "no false failures:\n{}",
        out.stderr_str()
            .lines()
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );
    out.stderr_has("5000 message(s) delivered");
}

#[test]
fn verbose_logs_go_to_stderr_only() {
    let t = unique("kbt-verbose");
    create_topic(&t, 1);
    let quiet = run(&["topics", "list", "--json"], "");
    assert!(quiet.ok().stderr.is_empty(), "{}", quiet.describe());
    for v in ["-v", "-vv", "-vvv", "--verbose"] {
        let out = run(&[v, "topics", "list", "--json"], "");
        assert!(topic_names(&out.ok().json()).contains(&t), "{v}");
    }
    let out = run(&["-vvv", "topics", "list", "--json"], "");
    assert!(
        !out.stderr.is_empty(),
        "-vvv logs something:\n{}",
        out.describe()
    );
}

#[test]
fn consume_into_a_closed_pipe_ends_quietly() {
    let t = unique("kbt-pipe");
    create_topic(&t, 1);
    produce(&t, &numbered(0..100), &[]);
    let mut cmd = kbridge();
    cmd.args(["consume", &t, "-e"]);
    let out = closed_stdout(cmd);
    assert_no_panic(&out);
    assert_eq!(out.code(), 0, "{}", out.describe());
    assert!(out.stderr.is_empty(), "{}", out.describe());
}

#[test]
fn other_output_into_a_closed_pipe_ends_quietly() {
    let t = unique("kbt-pipe2");
    let g = unique("kbt-group");
    create_topic(&t, 1);
    produce(&t, &numbered(0..1), &[]);
    run(&["consume", &t, "-g", &g, "-e"], "").ok();
    let cases: Vec<Vec<&str>> = vec![
        vec!["topics", "list"],
        vec!["topics", "list", "--json"],
        vec!["topics", "describe", &t],
        vec!["groups", "list"],
        vec!["groups", "describe", &g],
        vec!["cluster", "describe"],
        vec!["cluster", "api-versions"],
        vec!["completions", "bash"],
    ];
    let mut failures = Vec::new();
    for args in &cases {
        let mut cmd = kbridge();
        cmd.args(args);
        let out = closed_stdout(cmd);
        if out.code() != 0 || !out.stderr.is_empty() {
            failures.push(format!("{args:?}: {}", out.describe()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Runs `cmd` with its stdout a pipe whose reading end is already closed
/// (`kbridge … | head -0`).
fn closed_stdout(mut cmd: std::process::Command) -> std::process::Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn kbridge");
    drop(child.stdout.take());
    let mut stderr = child.stderr.take().expect("stderr");
    let status = wait_within(&mut child, COMMAND_DEADLINE).expect("kbridge hangs on a closed pipe");
    let mut err = Vec::new();
    std::io::Read::read_to_end(&mut stderr, &mut err).expect("read stderr");
    std::process::Output {
        status,
        stdout: Vec::new(),
        stderr: err,
    }
}
