//! `groups list|describe|reset-offsets|delete`: an empty group, one with an
//! active member (which blocks resets and deletion), every reset target,
//! and unknown groups.

use serde_json::{Value, json};

use support::broker::unique;
use support::child::Background;
use support::events::numbered;
use support::kafka::{
    consume_json, create_topic, describe_group, produce, reset_offsets, watermarks,
};
use support::kbridge::run;
use support::output::OutputExt;
use support::time::{now_ms, rfc3339_utc};
use support::wait::{WAIT, wait_until};

use crate::offsets::{committed, produce_two_batches};
use crate::printed::{cells, ns, row, sorted};

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
    for execute in [false, true] {
        reset_offsets(&g, &[&t], &["--to-earliest"], execute)
            .exit(1)
            .stderr_has("1 active member(s)");
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
    let out = reset_offsets(&g, &[&t], &["--to-earliest"], false);
    out.ok().stderr_has("dry run");
    assert_eq!(committed(&g, &t, 2), [Some(1), Some(1)]);
    // …--execute does.
    reset_offsets(&g, &[&t], &["--to-earliest"], true)
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
        let out = reset_offsets(&g, &[&t], target, execute);
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
    let changes = reset_offsets(&g, &[&t, &t2], &["--to-offset", "1", "--json"], true)
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
