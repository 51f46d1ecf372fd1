//! `kbridge check`: the relay's configuration checked as `run` loads it,
//! and what the relay would do with sample events — without Kafka or the
//! network.

use std::io::Write;

use support::events::{sample, sample_names};
use support::kbridge::{kbridge_without_brokers, run_cmd};
use support::output::OutputExt;
use support::repo_root;

fn check(args: &[&str], stdin: &str) -> std::process::Output {
    let mut cmd = kbridge_without_brokers();
    cmd.arg("check").args(args).env("OPS_API_TOKEN", "t0k3n");
    run_cmd(cmd, stdin.as_bytes())
}

/// A config file with `text` (in a temporary directory kept as long as the
/// returned handle) and its path.
fn config_file(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("kbridge.toml");
    std::fs::write(&path, text).expect("write the config");
    (dir, path.display().to_string())
}

fn example() -> String {
    repo_root()
        .join("examples/guance-easyops.toml")
        .display()
        .to_string()
}

#[test]
fn check_shows_what_the_relay_would_do_with_each_sample() {
    let names = sample_names();
    let mut lines: Vec<String> = names
        .iter()
        .map(|n| serde_json::to_string(&sample(n)).unwrap())
        .collect();
    lines.push(String::new());
    lines.push("{\"df_title\": 1}".into());
    let mut events = tempfile::NamedTempFile::new().expect("temp file");
    events
        .write_all(lines.join("\n").as_bytes())
        .expect("write");
    let path = events.path().display().to_string();
    let out = check(&["-c", &example(), "--json", &path], "");
    out.ok();
    let verdicts = out.json_lines();
    assert_eq!(
        verdicts.len(),
        names.len() + 1,
        "one per event, none for the blank line"
    );
    for (v, name) in verdicts.iter().zip(&names) {
        assert_eq!(v["route"], "default", "{v}");
        let expected = if name == "user-event.json" {
            "skip"
        } else {
            "deliver"
        };
        assert_eq!(v["outcome"], expected, "{name}: {v}");
        if expected == "deliver" {
            let body = &v["bodies"][0];
            let event = sample(name);
            let id = event.get("df_fault_id").unwrap_or(&event["df_event_id"]);
            assert_eq!(&body["alertId"], id, "{name}: {v}");
        }
    }
    let last = verdicts.last().unwrap();
    assert_eq!(
        last["line"],
        names.len() as u64 + 2,
        "lines count from 1, blank included"
    );
    assert_eq!(last["outcome"], "invalid");
    assert_eq!(last["stage"], "validate");
    assert!(
        last["reason"].as_str().unwrap().contains("df_title"),
        "{last}"
    );

    // The same from stdin, as text.
    let text = check(&["-c", &example(), "-"], &lines[0]).ok().stdout_str();
    assert!(text.starts_with("line 1 · default · deliver\n{"), "{text}");
}

#[test]
fn check_refuses_an_invalid_config_with_exit_2() {
    let (_dir, bad) = config_file(
        "topics = \"event\"\n[webhook]\nurl = \"https://ops/\"\nheaders = { Authorization = { file = \"/nonexistent/kbridge-token\" } }\n",
    );
    let out = check(&["-c", &bad], "");
    out.exit(2).stderr_has("/nonexistent/kbridge-token");
    let (_dir, bad) = config_file(
        "topics = \"event\"\nconcurrency = \"many\"\n[webhook]\nurl = \"https://ops/\"\n",
    );
    let out = check(&["-c", &bad], "");
    out.exit(2).stderr_has("`concurrency`");
    let out = check(&["-c", &example()], "");
    out.ok().stderr_has("configuration OK");
}

/// A value that cannot work is a configuration error naming its key and
/// range, not a panic or a silent failure at run time.
#[test]
fn check_refuses_durations_and_numbers_out_of_range() {
    for (line, key) in [
        (
            "commit_interval = \"0s\"",
            "commit_interval = 0s is out of range",
        ),
        ("drain_timeout = \"1e18\"", "drain_timeout = "),
        ("drain_timeout = \"1e30\"", "too long a duration"),
        ("topic_wait = 0", "topic_wait = 0s"),
        ("max_message_bytes = 0", "max_message_bytes = 0"),
        ("concurrency = 0", "concurrency = 0"),
        (
            "retry.initial_backoff = \"0s\"",
            "retry.initial_backoff = 0s",
        ),
        ("retry.max_backoff = \"0s\"", "retry.max_backoff = 0s"),
        (
            "retry = { initial_backoff = \"5s\", max_backoff = \"1s\" }",
            "at least retry.initial_backoff",
        ),
    ] {
        let (_dir, bad) = config_file(&format!(
            "topics = \"event\"\n{line}\n[webhook]\nurl = \"https://ops/\"\n"
        ));
        check(&["-c", &bad], "").exit(2).stderr_has(key);
    }
    let (_dir, bad) =
        config_file("topics = \"event\"\n[webhook]\nurl = \"https://ops/\"\ntimeout = \"0s\"\n");
    check(&["-c", &bad], "")
        .exit(2)
        .stderr_has("webhook.timeout = 0s is out of range: it must be from 100ms to 2m");
}

/// The verdicts of `kbridge check --json` for a shipped pipeline's config
/// and a samples file.
fn pipeline(name: &str, samples: &str) -> Vec<serde_json::Value> {
    let config = repo_root().join(format!("examples/pipelines/{name}.toml"));
    let mut cmd = kbridge_without_brokers();
    cmd.args(["check", "--json", "-c"])
        .arg(config)
        .arg(samples)
        .env("FEISHU_HOOK_TOKEN", "0f1e2d3c-aaaa-bbbb-cccc-123456789abc")
        .env("DINGTALK_TOKEN", "abc123def456abc123")
        .env("WECOM_KEY", "693a-key");
    let out = run_cmd(cmd, b"");
    out.ok();
    out.json_lines()
}

/// The Guance samples as one JSON-lines file, and their names in order.
fn guance_samples() -> (tempfile::NamedTempFile, Vec<String>) {
    let names = sample_names();
    let lines: Vec<String> = names
        .iter()
        .map(|n| serde_json::to_string(&sample(n)).unwrap())
        .collect();
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(lines.join("\n").as_bytes()).expect("write");
    (f, names)
}

fn outcomes<'a>(verdicts: &'a [serde_json::Value], route: &str) -> Vec<&'a str> {
    verdicts
        .iter()
        .filter(|v| v["route"] == route)
        .map(|v| v["outcome"].as_str().unwrap_or_default())
        .collect()
}

#[test]
fn every_shipped_pipeline_checks_its_samples() {
    let (file, names) = guance_samples();
    let samples = file.path().display().to_string();
    let user = names
        .iter()
        .position(|n| n == "user-event.json")
        .expect("user-event");
    let alerts = names.len() - 1;

    // The jq twin of the preset delivers what the preset delivers.
    let jq = pipeline("guance-easyops", &samples);
    let native = check(&["-c", &example(), "--json", &samples], "").json_lines();
    for (j, n) in jq.iter().zip(&native) {
        assert_eq!(j["outcome"], n["outcome"], "{j}\n{n}");
        assert_eq!(j["bodies"], n["bodies"], "{j}\n{n}");
    }

    // Feishu beside EasyOps: every alert to both, as a card.
    let v = pipeline("guance-feishu", &samples);
    for route in ["easyops", "feishu"] {
        let o = outcomes(&v, route);
        assert_eq!(
            o.iter().filter(|o| **o == "deliver").count(),
            alerts,
            "{route}: {o:?}"
        );
        assert_eq!(o[user], "skip", "{route}");
    }
    let card = v.iter().find(|v| v["route"] == "feishu").unwrap();
    assert_eq!(card["bodies"][0]["msg_type"], "interactive", "{card}");
    assert_eq!(
        card["bodies"][0]["card"]["header"]["template"], "red",
        "{card}"
    );

    // DingTalk: only critical alerts and recoveries pass its filter.
    let v = pipeline("guance-dingtalk", &samples);
    for (verdict, name) in v.iter().zip(&names) {
        let status = sample(name)["df_status"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let expected = if name == "user-event.json" {
            "skip"
        } else if status == "critical" || status == "ok" {
            "deliver"
        } else {
            "skip"
        };
        assert_eq!(verdict["outcome"], expected, "{name}: {verdict}");
        if expected == "deliver" {
            assert_eq!(verdict["bodies"][0]["msgtype"], "markdown", "{verdict}");
        }
    }

    // WeCom: every alert, as markdown.
    let v = pipeline("guance-wecom", &samples);
    assert_eq!(
        outcomes(&v, "wecom")
            .iter()
            .filter(|o| **o == "deliver")
            .count(),
        alerts
    );
    assert!(
        v[0]["bodies"][0]["markdown"]["content"].is_string(),
        "{}",
        v[0]
    );

    // Alertmanager: one request per alert, recoveries from `resolved`, a
    // payload without alerts[] is invalid with the program's reason.
    let am = repo_root()
        .join("examples/pipelines/samples/alertmanager.jsonl")
        .display()
        .to_string();
    let v = pipeline("alertmanager-easyops", &am);
    assert_eq!(v.len(), 3, "{v:?}");
    let firing = v[0]["bodies"].as_array().expect("bodies");
    assert_eq!(firing.len(), 2, "one request per alert: {}", v[0]);
    assert_eq!(firing[0]["alertId"], "a1b2c3d4e5f60718");
    assert_eq!(firing[0]["time"], 1718704800);
    assert_eq!(firing[0]["isRecover"], false);
    assert_eq!(v[1]["bodies"][0]["isRecover"], true, "{}", v[1]);
    assert_eq!(v[1]["bodies"][0]["alertId"], "a1b2c3d4e5f60718");
    assert_eq!(v[2]["outcome"], "invalid");
    assert_eq!(v[2]["stage"], "map");
    assert_eq!(
        v[2]["reason"],
        "not an Alertmanager webhook payload: no alerts[]"
    );
}

#[test]
fn a_jq_mistake_is_a_config_error_with_its_position() {
    let (_dir, bad) = config_file(
        "topics = \"event\"\n[[route]]\nname = \"chat\"\nmap = '''\n{msg: .df_title,\n text: (.x | nosuch)}'''\n[route.webhook]\nurl = \"https://chat/\"\n",
    );
    check(&["-c", &bad], "")
        .exit(2)
        .stderr_has("route 'chat': map: line 2, column 14: undefined filter nosuch/0");
}

#[test]
fn the_digest_pipelines_replay_the_samples_in_event_time() {
    let (file, names) = guance_samples();
    let samples = file.path().display().to_string();
    let alerts = names.len() - 1;
    for (name, route) in [
        ("guance-dingtalk-digest", "dingtalk"),
        ("guance-wecom-digest", "wecom"),
        ("guance-feishu-digest", "feishu"),
    ] {
        let v = pipeline(name, &samples);
        let o = outcomes(&v, route);
        assert_eq!(
            o.iter().filter(|o| **o == "grouped").count(),
            alerts,
            "{name}: every alert into its group: {o:?}"
        );
        let digests: Vec<&serde_json::Value> =
            v.iter().filter(|v| v["outcome"] == "digest").collect();
        assert!(!digests.is_empty(), "{name}: {v:?}");
        // Each alert's line is in some digest, and a digest has a body.
        let mut lines: Vec<u64> = digests
            .iter()
            .flat_map(|d| {
                d["lines"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|l| l.as_u64().unwrap())
            })
            .collect();
        lines.sort();
        lines.dedup();
        assert_eq!(lines.len(), alerts, "{name}: {digests:?}");
        for d in &digests {
            assert!(
                d["at"].is_string() && d["bodies"][0].is_object(),
                "{name}: {d}"
            );
        }
    }
}

#[test]
fn check_replays_dedupe_and_held_recoveries_in_event_time() {
    let (_dir, config) = config_file(
        "topics = \"event\"\n[webhook]\nurl = \"https://ops/\"\n[storm]\ndedupe = \"10m\"\nhold_resolved = \"2m\"\n",
    );
    let event = |date: u64, status: &str| {
        let mut e = sample("host-cpu-critical.json");
        e["date"] = serde_json::json!(date);
        e["df_status"] = serde_json::json!(status);
        serde_json::to_string(&e).unwrap()
    };
    let t = 1_731_900_000_000u64;
    let lines = [
        event(t, "critical"),
        event(t + 60_000, "critical"),
        event(t + 120_000, "ok"),
        event(t + 150_000, "critical"),
        event(t + 400_000, "ok"),
    ]
    .join("\n");
    let out = check(&["-c", &config, "--json", "-"], &lines);
    out.ok();
    let v = out.json_lines();
    let seen: Vec<(String, String)> = v
        .iter()
        .map(|v| {
            (
                v["outcome"].as_str().unwrap_or_default().to_string(),
                v["why"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        seen,
        vec![
            pair("deliver", ""),
            pair("absorbed", "dedupe"),
            pair("held", ""),
            pair("absorbed", "flap"),
            pair("held", ""),
            pair("released", ""),
        ],
        "{v:?}"
    );
    let released = v.last().unwrap();
    assert_eq!(released["line"], 5);
    assert_eq!(released["at"], "2024-11-18T03:28:40Z", "{released}");
    assert_eq!(
        released["bodies"][0]["alertId"],
        sample("host-cpu-critical.json")["df_fault_id"]
    );
}

#[test]
fn a_digest_route_needs_a_jq_map_and_a_key() {
    for (mapping, key) in [
        ("preset = \"guance-easyops\"", "key = '.df_fault_id'"),
        ("map = '{text: .group}'", ""),
    ] {
        let (_dir, config) = config_file(&format!(
            "topics = \"event\"\n[[route]]\nname = \"robot\"\n{mapping}\n{key}\n[route.storm]\ngroup_by = '.service'\n[route.webhook]\nurl = \"https://robot/\"\n"
        ));
        check(&["-c", &config], "")
            .exit(2)
            .stderr_has("needs a jq map, which receives each group");
    }
}
