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
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "topics = \"event\"\n[webhook]\nurl = \"https://ops/\"\nheaders = { Authorization = { file = \"/nonexistent/kbridge-token\" } }\n",
    )
    .unwrap();
    let out = check(&["-c", &bad.display().to_string()], "");
    out.exit(2).stderr_has("/nonexistent/kbridge-token");
    std::fs::write(
        &bad,
        "topics = \"event\"\nconcurrency = \"many\"\n[webhook]\nurl = \"https://ops/\"\n",
    )
    .unwrap();
    let out = check(&["-c", &bad.display().to_string()], "");
    out.exit(2).stderr_has("`concurrency`");
    let out = check(&["-c", &example()], "");
    out.ok().stderr_has("configuration OK");
}
