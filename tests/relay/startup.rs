//! Starting up: offset reset `none`, secrets in webhook headers, topics
//! that do not exist, configuration mistakes.

use std::time::{Duration, Instant};

use support::broker::unique;
use support::events::alert_event;
use support::http_target::{Script, Target};
use support::kafka::{new_topic, wait_fully_committed};
use support::records::{Rec, produce_records};
use support::relay_cmd::RelayCmd;

#[test]
fn offset_reset_none_with_a_fresh_group_fails_with_advice() {
    let topic = new_topic("resetnone", 2);
    let group = unique("resetnone-g");
    let target = Target::start(Script::default());
    produce_records(
        &topic,
        &[Rec::event(&alert_event(1, "fault-1", "critical"))],
    );
    let started = Instant::now();
    let mut relay = RelayCmd::new(&topic, &group, &target.url())
        .offset_reset("none")
        .start();
    let status = relay.expect_exit(Duration::from_secs(30));
    let stderr = relay.stderr();
    assert_eq!(
        status.code(),
        Some(1),
        "a fatal error exits 1; stderr:\n{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(stderr.contains("no committed offset"), "{stderr}");
    assert!(stderr.contains("offset_reset"), "{stderr}");
    assert!(stderr.contains(&group), "names the group: {stderr}");
    assert!(
        target.requests().is_empty(),
        "nothing delivered: {}",
        target.dump()
    );
}

#[test]
fn webhook_headers_take_secrets_from_the_environment_and_never_log_them() {
    let topic = new_topic("secret", 1);
    let group = unique("secret-g");
    // One 503 first, so that the retry path logs too.
    let target = Target::start(Script {
        fail_first: 1,
        ..Default::default()
    });
    let secret = format!("s3cr3t-{}", unique("token"));
    let config = "[webhook.headers]\n\
                  Authorization = \"Bearer ${RELAY_TEST_OPS_TOKEN}\"\n\
                  X-Tenant = \"tenant-${RELAY_TEST_TENANT}\"\n";
    let coords = produce_records(
        &topic,
        &[
            Rec::event(&alert_event(1, "fault-1", "critical")),
            Rec::event(&alert_event(2, "fault-2", "critical")),
        ],
    );
    let mut relay = RelayCmd::new(&topic, &group, &target.url())
        .config(config)
        .env("RELAY_TEST_OPS_TOKEN", &secret)
        .env("RELAY_TEST_TENANT", "42")
        .env("KBRIDGE_LOG", "debug")
        .start();
    relay.wait_assigned();
    wait_fully_committed(&group, &topic, Duration::from_secs(20));
    let reqs = target.requests();
    assert_eq!(reqs.len(), coords.len() + 1, "{}", target.dump());
    for r in &reqs {
        assert_eq!(
            r.headers.get("authorization").map(String::as_str),
            Some(format!("Bearer {secret}").as_str()),
            "request #{}",
            r.seq
        );
        assert_eq!(
            r.headers.get("x-tenant").map(String::as_str),
            Some("tenant-42")
        );
    }
    relay.signal("TERM");
    assert_eq!(relay.expect_exit(Duration::from_secs(20)).code(), Some(0));
    let stderr = relay.stderr();
    assert!(
        stderr.contains("webhook delivery failed"),
        "the retry was logged: {stderr}"
    );
    assert!(
        !stderr.contains(&secret),
        "the secret leaked into the logs:\n{stderr}"
    );
}

#[test]
fn a_topic_that_does_not_exist_fails_the_start_quickly() {
    let target = Target::start(Script::default());
    let missing = unique("missing");
    let group = unique("missing-g");
    let started = Instant::now();
    let mut relay = RelayCmd::new(&missing, &group, &target.url())
        .config("topic_wait = \"2s\"\n")
        .start();
    let status = relay.expect_exit(Duration::from_secs(20));
    let stderr = relay.stderr();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    assert!(stderr.contains(&missing), "names the topic: {stderr}");
    // Wording: "topic(s) 'x' do not exist (waited 2s)".
    assert!(stderr.contains("not exist"), "{stderr}");

    // A dead-letter topic that does not exist fails the same way.
    let topic = new_topic("dlqmissing", 1);
    let dlq = unique("dlqmissing-dlq");
    let mut relay = RelayCmd::new(&topic, &group, &target.url())
        .dead_letters(&dlq)
        .config("topic_wait = \"2s\"\n")
        .start();
    let status = relay.expect_exit(Duration::from_secs(20));
    let stderr = relay.stderr();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&dlq) && stderr.contains("not exist"),
        "{stderr}"
    );
    assert!(target.requests().is_empty());
}

/// A stop asked for while the relay waits for its topics ends the wait at
/// once (before: the stop waited for `topic_wait`).
#[test]
fn a_stop_while_waiting_for_the_topics_is_prompt() {
    let target = Target::start(Script::default());
    let mut relay = RelayCmd::new(&unique("notyet"), &unique("notyet-g"), &target.url())
        .config("topic_wait = \"60s\"\n")
        .start();
    relay.wait_for_log("waiting for the topics", Duration::from_secs(10));
    let asked = Instant::now();
    relay.signal("TERM");
    let status = relay.expect_exit(Duration::from_secs(30));
    assert!(status.success(), "{}", relay.stderr());
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "took {:?}\n{}",
        asked.elapsed(),
        relay.stderr()
    );
}

#[test]
fn configuration_mistakes_exit_2_naming_the_mistake() {
    let topic = new_topic("badconf", 1);
    let target = Target::start(Script::default());
    let cases = [
        ("concurrancy = 3\n", "concurrancy"),
        (
            "[webhook.headers]\nAuthorization = \"Bearer ${RELAY_TEST_UNSET_VARIABLE}\"\n",
            "RELAY_TEST_UNSET_VARIABLE",
        ),
        ("drain_timeout = \"soon\"\n", "drain_timeout"),
    ];
    for (toml, needle) in cases {
        let mut relay = RelayCmd::new(&topic, &unique("badconf-g"), &target.url())
            .config(toml)
            .start();
        let status = relay.expect_exit(Duration::from_secs(10));
        let stderr = relay.stderr();
        assert_eq!(status.code(), Some(2), "{toml:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{toml:?} should name {needle:?}: {stderr}"
        );
    }
    assert!(target.requests().is_empty(), "{}", target.dump());
}

/// `--log-format json`: every stderr line is a JSON object (journald and
/// log shippers parse them).
#[test]
fn json_logs_are_one_object_per_line() {
    let topic = new_topic("jsonlog", 1);
    let group = unique("jsonlog-g");
    let target = Target::start(Script::default());
    produce_records(&topic, &[Rec::value(b"not json".to_vec())]);
    let mut relay =
        RelayCmd::new(&topic, &group, &target.url()).start_with(&["--log-format", "json"]);
    relay.wait_assigned();
    relay.wait_for_log("invalid event", Duration::from_secs(10));
    relay.signal("TERM");
    assert_eq!(relay.expect_exit(Duration::from_secs(20)).code(), Some(0));
    let stderr = relay.stderr();
    for line in stderr.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
    assert!(stderr.contains("\"stage\":\"decode\""), "{stderr}");
}
