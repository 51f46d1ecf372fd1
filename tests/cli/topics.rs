//! `topics create|list|describe|delete`: what each prints, as a table and
//! as JSON, and that a failing request creates or deletes nothing.

use serde_json::json;

use support::broker::unique;
use support::events::numbered;
use support::kafka::{await_topic, create_topic, produce, watermarks};
use support::kbridge::run;
use support::output::OutputExt;
use support::wait::{WAIT, wait_until};

use crate::printed::{cells, row, sorted, topic_names};

/// How many brokers the cluster has (no replication factor may exceed it).
fn broker_count() -> usize {
    run(&["cluster", "describe", "--json"], "").ok().json()["brokers"]
        .as_array()
        .expect("brokers")
        .len()
}

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
