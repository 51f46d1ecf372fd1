//! `produce`: JSON lines in, one message and one delivery report each;
//! keys, headers, one partition, raw lines, and where an invalid line or
//! one that cannot be queued stops the run.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use support::broker::unique;
use support::events::numbered;
use support::kafka::{consume_json, create_topic, message_count, produce, watermarks};
use support::kbridge::run;
use support::output::OutputExt;
use support::reports::{Report, reports};

use crate::printed::{ns, sorted};

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
    // Lines are read while the topic is looked up; the ones it would have
    // skipped are not reported for a topic that does not exist.
    let out = run(&["produce", &t, "--skip-invalid"], "{}\nnot json\n{}\n");
    out.exit(1)
        .stderr_has(&format!("topic '{t}' does not exist"));
    assert!(!out.stderr_str().contains("skipped"), "{}", out.describe());
    run(&["topics", "describe", &t], "").exit(1);
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
