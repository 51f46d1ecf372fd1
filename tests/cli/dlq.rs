//! `kbridge dlq stats | show | redrive` against the real broker, with a
//! real relay and HTTP target where a re-drive must be delivered: dead
//! letters of kbridge, Kafka Connect and Spring read alike; a dry run that
//! shows exact bodies and sends nothing; a fix that then delivers; a
//! re-drive interrupted (SIGINT, then SIGKILL) and resumed with no record
//! sent twice; per-key order; the refusal after N re-drives; a re-drive to
//! a route's webhook at the route's rate limit.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use support::broker::unique;
use support::child::{signal, wait_within};
use support::events::alert_event;
use support::http_target::{Script, Target};
use support::kafka::{message_count, new_topic};
use support::kbridge::{kbridge, run, run_cmd};
use support::output::OutputExt;
use support::records::{Consumed, Rec, produce_records, read_all};
use support::relay_cmd::RelayCmd;
use support::wait::wait_until;

/// A dead letter as the relay writes it, by hand.
fn kbridge_letter(source: &str, offset: i64, stage: &str, error: &str, value: &Value) -> Rec {
    let mut r = Rec::keyed(
        value["df_fault_id"].as_str().unwrap_or("k"),
        serde_json::to_vec(value).unwrap(),
    );
    for (k, v) in [
        ("kbridge.error", error.to_string()),
        ("kbridge.stage", stage.to_string()),
        ("kbridge.route", "default".to_string()),
        ("kbridge.topic", source.to_string()),
        ("kbridge.partition", "0".to_string()),
        ("kbridge.offset", offset.to_string()),
    ] {
        r.headers.push((k.into(), v.into_bytes()));
    }
    r
}

/// An event the Guance preset finds invalid: no `df_title`.
fn untitled(n: usize, fault: &str) -> Value {
    let mut e = alert_event(n, fault, "critical");
    e.as_object_mut().unwrap().remove("df_title");
    e
}

/// A relay config naming the topics, for `-c`; `rest` says where alerts
/// go (`[webhook]`, or routes).
fn config_file(topic: &str, dlq: &str, rest: &str) -> tempfile::NamedTempFile {
    let f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::fs::write(
        f.path(),
        format!(
            "brokers = \"{}\"\ntopics = [\"{topic}\"]\ndead_letter_topic = \"{dlq}\"\n\
             offset_reset = \"earliest\"\n{rest}",
            support::broker::brokers()
        ),
    )
    .unwrap();
    f
}

fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn redriven_from(records: &[Consumed]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for r in records {
        if let Some(from) = r.header("kbridge.redrive.from") {
            *counts.entry(from).or_insert(0) += 1;
        }
    }
    counts
}

#[test]
fn stats_counts_kbridge_connect_and_spring_dead_letters_alike() {
    let dlq = new_topic("dlqstats", 2);
    let mut recs = vec![
        kbridge_letter(
            "guance",
            1,
            "validate",
            "df_title: missing",
            &untitled(1, "a"),
        ),
        kbridge_letter(
            "guance",
            2,
            "validate",
            "df_title: missing",
            &untitled(2, "b"),
        ),
        kbridge_letter(
            "guance",
            3,
            "deliver",
            "gave up after 10 attempts: HTTP 503",
            &alert_event(3, "c", "critical"),
        ),
    ];
    recs[2]
        .headers
        .push(("kbridge.status".into(), b"503".to_vec()));
    for offset in [7, 8] {
        let mut c = Rec::keyed("o", b"{not json".to_vec());
        for (k, v) in [
            ("__connect.errors.topic", "orders".to_string()),
            ("__connect.errors.partition", "1".into()),
            ("__connect.errors.offset", offset.to_string()),
            ("__connect.errors.connector.name", "http-sink".into()),
            ("__connect.errors.stage", "VALUE_CONVERTER".into()),
            (
                "__connect.errors.exception.class.name",
                "org.apache.kafka.connect.errors.DataException".into(),
            ),
            (
                "__connect.errors.exception.message",
                format!("Converting byte[] failed at offset {offset}"),
            ),
        ] {
            c.headers.push((k.into(), v.into_bytes()));
        }
        recs.push(c);
    }
    let mut spring = Rec::keyed("p", b"{\"amount\": -1}".to_vec());
    spring.headers = vec![
        ("kafka_dlt-original-topic".into(), b"payments".to_vec()),
        (
            "kafka_dlt-original-partition".into(),
            3i32.to_be_bytes().to_vec(),
        ),
        (
            "kafka_dlt-original-offset".into(),
            77i64.to_be_bytes().to_vec(),
        ),
        (
            "kafka_dlt-original-consumer-group".into(),
            b"pay-listener".to_vec(),
        ),
        (
            "kafka_dlt-exception-fqcn".into(),
            b"org.springframework.kafka.listener.ListenerExecutionFailedException".to_vec(),
        ),
        (
            "kafka_dlt-exception-message".into(),
            b"amount must be positive".to_vec(),
        ),
    ];
    recs.push(spring);
    recs.push(Rec::value(b"put here by hand".to_vec()));
    produce_records(&dlq, &recs);

    let out = run(&["dlq", "stats", &dlq, "--json"], "");
    assert!(out.status.success(), "{}", out.stderr_str());
    let stats: Value = serde_json::from_str(&out.stdout_str()).unwrap();
    assert_eq!(stats["records"], 7);
    let groups = stats["groups"].as_array().unwrap();
    let find = |route: &str, stage: &str| {
        groups
            .iter()
            .find(|g| g["route"] == route && g["stage"] == stage)
            .unwrap_or_else(|| panic!("no group {route}/{stage} in {stats:#}"))
    };
    let invalid = find("default", "validate");
    assert_eq!(
        (invalid["count"].as_u64(), &invalid["topic"]),
        (Some(2), &json!("guance"))
    );
    let gave_up = find("default", "deliver");
    assert_eq!(gave_up["status"], 503);
    assert_eq!(gave_up["reason"], "gave up after N attempts: HTTP N");
    let connect = find("http-sink", "VALUE_CONVERTER");
    assert_eq!(connect["count"], 2, "one class for both offsets: {connect}");
    assert_eq!(connect["writer"], "connect");
    assert_eq!(connect["topic"], "orders");
    let spring = find("pay-listener", "ListenerExecutionFailedException");
    assert_eq!(spring["topic"], "payments");
    assert_eq!(
        spring["example"],
        "ListenerExecutionFailedException: amount must be positive"
    );
    assert!(groups.iter().any(|g| g["writer"] == "unknown"));
    assert!(stats["oldest"].is_string() && stats["newest"].is_string());

    // The table, and filters.
    let text = run(&["dlq", "stats", &dlq], "").stdout_str();
    assert!(text.contains("7 dead letters"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("COUNT")), "{text}");
    let by_route = run(&["dlq", "stats", &dlq, "--route", "default", "--json"], "");
    let by_route: Value = serde_json::from_str(&by_route.stdout_str()).unwrap();
    assert_eq!(by_route["records"], 3);
    let by_reason = run(
        &["dlq", "stats", &dlq, "--reason", "^gave up", "--json"],
        "",
    );
    let by_reason: Value = serde_json::from_str(&by_reason.stdout_str()).unwrap();
    assert_eq!(by_reason["records"], 1);
    let later = run(&["dlq", "stats", &dlq, "--since", "+1h", "--json"], "");
    let later: Value = serde_json::from_str(&later.stdout_str()).unwrap();
    assert_eq!(later["records"], 0);

    // show: headers decoded, values pretty-printed.
    let shown = run(&["dlq", "show", &dlq, "--route", "pay-listener"], "");
    let shown = shown.stdout_str();
    assert!(
        shown.contains("from payments/3@77 · route pay-listener"),
        "{shown}"
    );
    assert!(shown.contains("\"amount\": -1"), "{shown}");
    let lines =
        json_lines(&run(&["dlq", "show", &dlq, "--status", "503", "--json"], "").stdout_str());
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["letter"]["source"]["offset"], 3);
    assert_eq!(lines[0]["value"]["df_fault_id"], "c");
}

#[test]
fn a_dry_run_shows_the_exact_bodies_and_sends_nothing() {
    let topic = new_topic("dlqdry", 1);
    let dlq = new_topic("dlqdry-dlq", 1);
    produce_records(
        &dlq,
        &[kbridge_letter(
            &topic,
            0,
            "validate",
            "df_title: missing",
            &untitled(1, "dry"),
        )],
    );
    let cfg = config_file(
        &topic,
        &dlq,
        "[webhook]\nurl = \"http://127.0.0.1:9/never\"\n",
    );
    let cfg = cfg.path().to_str().unwrap();
    let out = run(
        &[
            "dlq",
            "redrive",
            &dlq,
            "-c",
            cfg,
            "--json",
            "--fix",
            r#".value + {df_title: "fixed by hand"}"#,
        ],
        "",
    );
    assert!(out.status.success(), "{}", out.stderr_str());
    let lines = json_lines(&out.stdout_str());
    assert_eq!(lines[0]["action"], "redrive");
    assert_eq!(lines[0]["executed"], false);
    assert_eq!(lines[0]["to"], json!({"topic": topic, "partition": 0}));
    assert_eq!(lines[0]["value"]["df_title"], "fixed by hand");
    let route = &lines[0]["routes"][0];
    assert_eq!(route["outcome"], "deliver", "{route}");
    assert_eq!(route["bodies"][0]["subject"], "fixed by hand");
    assert_eq!(route["bodies"][0]["alertId"], "dry");
    assert_eq!(lines.last().unwrap()["summary"]["would_send"], 1);
    assert!(
        out.stderr_str().contains("nothing was sent"),
        "{}",
        out.stderr_str()
    );
    // Nothing sent, no progress kept.
    assert_eq!(message_count(&topic), 0);
    let text = run(&["dlq", "redrive", &dlq, "-c", cfg], "").stdout_str();
    assert!(text.contains("would re-drive"), "{text}");
    assert!(
        text.contains("route default · invalid at validate: df_title: missing"),
        "{text}"
    );
}

#[test]
fn a_fixed_redrive_is_delivered_by_the_relay() {
    let topic = new_topic("dlqfix", 1);
    let dlq = new_topic("dlqfix-dlq", 1);
    let group = unique("dlqfix-g");
    let target = Target::start(Script::default());
    produce_records(&topic, &[Rec::event(&untitled(1, "needs-title"))]);
    let relay = RelayCmd::new(&topic, &group, &target.url())
        .dead_letters(&dlq)
        .start();
    read_all(&dlq, 1, Duration::from_secs(30));
    assert_eq!(target.requests().len(), 0);
    let out = run(
        &[
            "dlq",
            "redrive",
            &dlq,
            "--execute",
            "--fix",
            r#".value + {df_title: "restored"}"#,
        ],
        "",
    );
    assert!(out.status.success(), "{}", out.stderr_str());
    assert!(
        out.stdout_str().contains("re-driven"),
        "{}",
        out.stdout_str()
    );
    target.wait_delivered(1, Duration::from_secs(30));
    let req = &target.delivered()[0];
    assert_eq!(req.body["subject"], "restored");
    assert_eq!(req.alert_id(), "needs-title");
    // The re-driven record carries its last reason aside and a count.
    let back = read_all(&topic, 2, Duration::from_secs(10));
    let again = &back[1];
    assert_eq!(again.header("kbridge.redrive.count").as_deref(), Some("1"));
    assert_eq!(
        again.header("kbridge.previous.error").as_deref(),
        Some("df_title: missing")
    );
    assert_eq!(again.header("kbridge.error"), None);
    drop(relay);
}

/// 120 dead letters re-driven at 40/s: stopped with Ctrl-C, resumed and
/// killed with SIGKILL, resumed to the end — each is in its original topic
/// once, for a reader of committed records (the relay is one).
#[test]
fn an_interrupted_redrive_resumes_and_sends_no_record_twice() {
    let topic = new_topic("dlqresume", 1);
    let dlq = new_topic("dlqresume-dlq", 2);
    let letters: Vec<Rec> = (0..120)
        .map(|i| {
            let mut r = kbridge_letter(
                &topic,
                i,
                "deliver",
                "HTTP 503",
                &alert_event(i as usize, &format!("r-{i}"), "critical"),
            );
            r.partition = Some((i % 2) as i32);
            r
        })
        .collect();
    produce_records(&dlq, &letters);
    let redrive = |extra: &[&str]| {
        let mut c = kbridge();
        c.args([
            "dlq",
            "redrive",
            &dlq,
            "--execute",
            "--group",
            &format!("{dlq}-progress"),
        ])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        c
    };
    let stop_at = |sig: &str, after: i64| {
        let mut child = redrive(&["--rate", "40/s"]).spawn().unwrap();
        assert!(
            wait_until(Duration::from_secs(30), || message_count(&topic) >= after),
            "the re-drive made no progress"
        );
        signal(child.id(), sig);
        wait_within(&mut child, Duration::from_secs(20)).expect("it stops");
    };
    stop_at("INT", 20);
    stop_at("KILL", 60);
    let out = run_cmd(redrive(&[]), b"");
    assert!(out.status.success(), "{}", out.stderr_str());
    // A reader of committed records: every dead letter once.
    let back = read_all(&topic, 120, Duration::from_secs(30));
    let counts = redriven_from(&back);
    assert_eq!(counts.len(), 120, "{counts:?}");
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent twice: {twice:?}");
    assert_eq!(back.len(), 120);
    // And the progress is at the end: a fourth run reads nothing.
    let again = run(
        &[
            "dlq",
            "redrive",
            &dlq,
            "--execute",
            "--group",
            &format!("{dlq}-progress"),
        ],
        "",
    );
    assert!(
        again.stderr_str().contains("(0 read)"),
        "{}",
        again.stderr_str()
    );
}

#[test]
fn per_key_order_holds_through_a_redrive_and_a_failed_record_holds_back_its_key() {
    let topic = new_topic("dlqorder", 1);
    let dlq = new_topic("dlqorder-dlq", 3);
    let mut letters = Vec::new();
    for seq in 0..8 {
        for key in ["k0", "k1", "k2"] {
            let mut r = Rec::keyed(
                key,
                serde_json::to_vec(&json!({"key": key, "seq": seq})).unwrap(),
            );
            for (k, v) in [
                ("kbridge.stage", "deliver"),
                ("kbridge.error", "HTTP 503"),
                ("kbridge.topic", topic.as_str()),
                ("kbridge.partition", "0"),
            ] {
                r.headers.push((k.into(), v.as_bytes().to_vec()));
            }
            // Keys spread over the dead-letter topic's partitions, as its
            // producer's partitioner spreads them.
            r.partition = Some(match key {
                "k0" => 0,
                "k1" => 1,
                _ => 2,
            });
            letters.push(r);
        }
    }
    produce_records(&dlq, &letters);
    let out = run(
        &[
            "dlq",
            "redrive",
            &dlq,
            "--execute",
            "--json",
            "--fix",
            r#"if .value.key == "k1" and .value.seq == 4 then error("cannot fix this one") else .value end"#,
        ],
        "",
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed record fails the run: {}",
        out.stderr_str()
    );
    let lines = json_lines(&out.stdout_str());
    let actions = |action: &str| lines.iter().filter(|l| l["action"] == action).count();
    assert_eq!(actions("failed"), 1);
    assert_eq!(actions("held"), 3, "k1's seq 5, 6, 7 wait behind seq 4");
    assert_eq!(actions("redriven"), 20);
    let back = read_all(&topic, 20, Duration::from_secs(30));
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    for r in &back {
        let v: Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
        let (key, seq) = (
            v["key"].as_str().unwrap().to_string(),
            v["seq"].as_i64().unwrap(),
        );
        let before = last.insert(key.clone(), seq);
        assert!(
            before.is_none_or(|b| b < seq),
            "{key}: {seq} after {before:?}"
        );
    }
    assert_eq!(last.get("k1"), Some(&3));
    assert_eq!(last.get("k0"), Some(&7));
}

/// An event that stays invalid comes back to the dead letters with each
/// re-drive; the fourth time it is refused, and its headers never stack.
#[test]
fn a_record_redriven_three_times_is_refused() {
    let topic = new_topic("dlqmax", 1);
    let dlq = new_topic("dlqmax-dlq", 1);
    let group = unique("dlqmax-g");
    let target = Target::start(Script::default());
    produce_records(&topic, &[Rec::event(&untitled(1, "hopeless"))]);
    let relay = RelayCmd::new(&topic, &group, &target.url())
        .dead_letters(&dlq)
        .start();
    for n in 1..=3 {
        read_all(&dlq, n, Duration::from_secs(30));
        let out = run(&["dlq", "redrive", &dlq, "--execute"], "");
        assert!(out.status.success(), "{}", out.stderr_str());
        assert!(
            out.stdout_str().contains("re-driven"),
            "{}",
            out.stdout_str()
        );
    }
    let letters = read_all(&dlq, 4, Duration::from_secs(30));
    let last = &letters[3];
    assert_eq!(last.header("kbridge.redrive.count").as_deref(), Some("3"));
    let names: Vec<&str> = last.headers.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names
            .iter()
            .filter(|n| **n == "kbridge.previous.error")
            .count(),
        1,
        "{names:?}"
    );
    assert_eq!(
        names.iter().filter(|n| **n == "kbridge.error").count(),
        1,
        "{names:?}"
    );
    let out = run(&["dlq", "redrive", &dlq, "--execute"], "");
    assert!(
        out.status.success(),
        "a refusal is not a failure: {}",
        out.stderr_str()
    );
    assert!(
        out.stdout_str()
            .contains("refused: re-driven 3 times already (--max-redrives 3)"),
        "{}",
        out.stdout_str()
    );
    assert!(
        out.stderr_str().contains("1 refused"),
        "{}",
        out.stderr_str()
    );
    // (Read, not counted by offsets: each re-drive's transaction marker
    // takes an offset too.)
    assert_eq!(
        read_all(&topic, 4, Duration::from_secs(10)).len(),
        4,
        "the original and three re-drives"
    );
    assert_eq!(target.requests().len(), 0);
    drop(relay);
}

/// Straight to a route's webhook: its answer rules, the original event's
/// Idempotency-Key, and its rate limit (5/s) kept; a dead letter Kafka
/// Connect wrote names no route of the config, fails saying so, and goes
/// through the route `--via` names.
#[test]
fn a_redrive_to_a_webhook_keeps_the_routes_rate_limit() {
    let topic = new_topic("dlqhook", 1);
    let dlq = new_topic("dlqhook-dlq", 1);
    let target = Target::start(Script::default());
    let mut letters: Vec<Rec> = (0..12)
        .map(|i| {
            kbridge_letter(
                &topic,
                i,
                "deliver",
                "HTTP 503",
                &alert_event(i as usize, &format!("w-{i}"), "critical"),
            )
        })
        .collect();
    let mut connect = Rec::keyed(
        "w-c",
        serde_json::to_vec(&alert_event(12, "w-c", "critical")).unwrap(),
    );
    connect.headers = vec![
        ("__connect.errors.topic".into(), b"orders".to_vec()),
        (
            "__connect.errors.connector.name".into(),
            b"http-sink".to_vec(),
        ),
    ];
    letters.push(connect);
    produce_records(&dlq, &letters);
    let cfg = config_file(
        &topic,
        &dlq,
        &format!(
            "[[route]]\nname = \"default\"\npreset = \"guance-easyops\"\nrate_limit = \"5/s\"\n\
             [route.webhook]\nurl = \"{}\"\n",
            target.url()
        ),
    );
    let cfg = cfg.path().to_str().unwrap().to_string();
    let redrive = |extra: &[&str]| {
        let mut args = vec![
            "dlq",
            "redrive",
            &dlq,
            "-c",
            &cfg,
            "--to",
            "webhook",
            "--execute",
        ];
        args.extend_from_slice(extra);
        run(&args, "")
    };
    let out = redrive(&[]);
    // The Connect letter fails (no route of ours), saying what to do.
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        out.stdout_str(),
        out.stderr_str()
    );
    assert!(
        out.stdout_str().contains("--via ROUTE"),
        "{}",
        out.stdout_str()
    );
    assert_eq!(target.delivered().len(), 12);
    let reqs = target.requests();
    assert_eq!(reqs[0].key(), format!("{topic}-0-0/default"));
    // At most 5 (and the first second's burst) in any second.
    for r in &reqs {
        let within = reqs
            .iter()
            .filter(|o| o.at >= r.at && o.at < r.at + Duration::from_secs(1))
            .count();
        assert!(within <= 6, "{within} requests within a second");
    }
    assert_eq!(message_count(&topic), 0, "nothing went to the topic");
    // Its progress is kept: again, nothing is sent.
    let again = redrive(&[]);
    assert!(
        again.stderr_str().contains("(0 read)"),
        "{}",
        again.stderr_str()
    );
    assert_eq!(target.requests().len(), 12);
    // Through the route `--via` names, the Connect letter goes.
    let via = redrive(&["--via", "default", "--route", "http-sink"]);
    assert!(
        via.status.success(),
        "{}\n{}",
        via.stdout_str(),
        via.stderr_str()
    );
    assert_eq!(target.delivered().len(), 13);
    assert_eq!(target.delivered()[12].alert_id(), "w-c");
}
