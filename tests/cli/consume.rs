//! `consume`: where it starts (offsets, times, a group's committed
//! offsets), when it stops (`-e`, `-c`), what it prints (text, or JSON
//! records with every field and base64 for bytes), and what a group
//! commits.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use support::broker::unique;
use support::events::numbered;
use support::kafka::{consume_json, create_topic, describe_group, produce, reset_offsets};
use support::kbridge::run;
use support::output::OutputExt;
use support::time::{now_ms, rfc3339_utc};
use support::tools::{RawRecord, b64, kcat_produce, python_produce};

use crate::offsets::{committed, produce_two_batches};
use crate::printed::{ns, sorted};

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

/// A header key that is not UTF-8 (Kafka takes any bytes) is printed as
/// base64, marked so, in `-f json`; `-f text` prints the values; nothing
/// crashes (rdkafka's header iterator panics on such a key).
#[test]
fn consume_prints_header_keys_that_are_not_utf8() {
    let t = unique("kbt-cons-hkey");
    create_topic(&t, 1);
    kcat_produce(
        &t,
        &RawRecord {
            key: Some(b"k".to_vec()),
            value: Some(br#"{"a":1}"#.to_vec()),
            headers: vec![
                (vec![0xff, 0xfe], b"x".to_vec()),
                (b"ok".to_vec(), b"y".to_vec()),
            ],
        },
    );
    let recs = consume_json(&t, &[]);
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(
        recs[0]["headers"],
        json!([
            {"key": b64(&[0xff, 0xfe]), "key_encoding": "base64", "value": "x"},
            {"key": "ok", "value": "y"}
        ])
    );
    let out = run(&["consume", &t, "-e"], "");
    assert_eq!(out.ok().stdout, b"{\"a\":1}\n", "{}", out.describe());
}

/// Records at the edges of what Kafka accepts: a 100 KB key that is not
/// UTF-8, 300 headers, an empty key beside an absent one. Both formats print
/// each record whole, in order, and nothing crashes.
#[test]
fn consume_prints_records_at_the_edges() {
    let t = unique("kbt-cons-edges");
    create_topic(&t, 1);
    let big_key: Vec<u8> = (0..100 * 1024).map(|i| 0x80 + (i % 0x80) as u8).collect();
    kcat_produce(
        &t,
        &RawRecord {
            key: Some(big_key.clone()),
            value: Some(br#"{"n":1}"#.to_vec()),
            headers: vec![],
        },
    );
    let headers: Vec<Value> = (0..300)
        .map(|i| json!([format!("h{i}"), b64(format!("v{i}").as_bytes())]))
        .collect();
    python_produce(
        &t,
        &json!([
            {"key": "", "value": b64(br#"{"n":2}"#), "headers": headers, "partition": 0},
            {"value": b64(br#"{"n":3}"#), "partition": 0}
        ]),
    );
    let recs = consume_json(&t, &[]);
    assert_eq!(recs.len(), 3, "{recs:?}");
    assert_eq!(recs[0]["key"], b64(&big_key));
    assert_eq!(recs[0]["key_encoding"], "base64");
    assert_eq!(recs[1]["key"], "", "an empty key is not an absent one");
    let printed = recs[1]["headers"].as_array().expect("headers");
    assert_eq!(printed.len(), 300);
    assert_eq!(printed[0], json!({"key": "h0", "value": "v0"}));
    assert_eq!(printed[299], json!({"key": "h299", "value": "v299"}));
    assert_eq!(recs[2]["key"], Value::Null);
    let out = run(&["consume", &t, "-e"], "");
    assert_eq!(
        out.ok().stdout_str(),
        "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n",
        "{}",
        out.describe()
    );
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
    reset_offsets(&g, &[&t], &["--to-offset", "1"], true).ok();
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
