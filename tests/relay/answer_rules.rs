//! `webhook.success` and `webhook.reject`: the target's own rules on its
//! answers. A 200 whose body the success rule refuses, and a 500 the
//! reject rule recognises, are this alert's fault: dead-lettered with the
//! rule named, never retried; a 500 it does not recognise is still an
//! outage, retried until delivered.

use std::time::Duration;

use support::broker::unique;
use support::events::alert_event;
use support::events::event;
use support::http_target::{Busy, Rule, Script, Target};
use support::kafka::{new_topic, wait_fully_committed};
use support::records::{Rec, produce_records, read_all};
use support::relay_cmd::RelayCmd;
use support::wait::wait_until;

#[test]
fn answer_rules_tell_the_alert_s_fault_from_an_outage() {
    let topic = new_topic("rules", 1);
    let dlq = new_topic("rules-dlq", 1);
    let group = unique("rules-g");
    let target = Target::start(Script {
        rules: vec![
            Rule::new(
                "host-1",
                200,
                r#"{"errcode":310000,"errmsg":"keywords not in content"}"#,
            ),
            Rule::new("host-2", 500, r#"{"error":"bad alert: no such host"}"#),
            Rule::new("host-3", 500, r#"{"error":"busy"}"#).times(2),
        ],
        ..Default::default()
    });
    let recs: Vec<Rec> = (0..4).map(|i| Rec::event(&event(i))).collect();
    produce_records(&topic, &recs);
    let mut relay = RelayCmd::new(&topic, &group, &target.url())
        .dead_letters(&dlq)
        .config(
            "[webhook]\nsuccess = '(.errcode // 0) == 0'\nreject = '(.error // \"\") | test(\"bad alert\")'\n",
        )
        .start();
    let dead = read_all(&dlq, 2, Duration::from_secs(30));
    wait_fully_committed(&group, &topic, Duration::from_secs(30));
    let mut reasons: Vec<String> = dead
        .iter()
        .map(|d| d.header("kbridge.error").unwrap_or_default())
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons[0].contains("HTTP 200, but the webhook.success rule does not hold"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].contains("HTTP 500, the webhook.reject rule holds"),
        "{reasons:?}"
    );
    // Refused alerts were tried once; the busy one until it went through.
    let tries = |host: &str| {
        target
            .requests()
            .iter()
            .filter(|r| r.body["alertDims"]["host"] == host)
            .count()
    };
    assert_eq!(
        (tries("host-1"), tries("host-2")),
        (1, 1),
        "{}",
        target.dump()
    );
    assert!(wait_until(Duration::from_secs(10), || tries("host-3") == 3));
    assert_eq!(
        target.distinct(),
        3,
        "host-0 and host-3 delivered, plus host-1's 200\n{}",
        target.dump()
    );
    relay.stop();
}

/// A shipped robot pipeline, made to run here: its URLs pointed at the test
/// targets, its `map_file` found where it lies, its rate limit and pause
/// shortened so the test runs in seconds. The rules are the shipped ones.
fn shipped_pipeline(name: &str, robot: &str, ops: &str) -> String {
    let dir = support::repo_root().join("examples/pipelines");
    let text = std::fs::read_to_string(dir.join(format!("{name}.toml"))).expect("the pipeline");
    text.lines()
        .map(|line| {
            let trimmed = line.trim_start();
            if trimmed.starts_with("url = ") {
                let to = if line.contains("ops.example") {
                    ops
                } else {
                    robot
                };
                format!("url = \"{to}\"")
            } else if let Some(rest) = trimmed.strip_prefix("map_file = \"") {
                let file = rest.split('"').next().unwrap_or_default();
                format!("map_file = \"{}\"", dir.join(file).display())
            } else if trimmed.starts_with("rate_limit = ") {
                "rate_limit = \"20/s\"".to_string()
            } else if trimmed.starts_with("throttle_pause = ") {
                "throttle_pause = \"1s\"".to_string()
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// DingTalk, WeCom and Feishu refuse a message over their quota with HTTP
/// 200 and an error code. With the shipped pipelines and 5 s of "too fast"
/// answers, every alert still arrives (no dead-letter topic: nothing may
/// be given up), and the route pauses instead of hammering the robot: a
/// handful of requests in the window, not one per alert per backoff.
#[test]
fn a_throttled_chat_robot_loses_no_alert_and_is_not_hammered() {
    let robots = [
        (
            "guance-dingtalk",
            r#"{"errcode":130101,"errmsg":"send too fast, exceed 20 times per minute"}"#,
            r#"{"errcode":0,"errmsg":"ok"}"#,
        ),
        (
            "guance-wecom",
            r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#,
            r#"{"errcode":0,"errmsg":"ok"}"#,
        ),
        (
            "guance-feishu",
            r#"{"code":9499,"msg":"too many request","data":{}}"#,
            r#"{"code":0,"msg":"success","data":{}}"#,
        ),
    ];
    let busy_for = Duration::from_secs(5);
    std::thread::scope(|s| {
        for (name, too_fast, ok) in robots {
            s.spawn(move || {
                let topic = new_topic("throttled", 2);
                let group = unique("throttled-g");
                let robot = Target::start(Script {
                    ok_body: Some(ok.into()),
                    busy: Some(Busy {
                        for_: busy_for,
                        status: 200,
                        body: too_fast.into(),
                        share: 1.0,
                    }),
                    ..Default::default()
                });
                let ops = Target::start(Script::default());
                let recs: Vec<Rec> = (0..8)
                    .map(|i| Rec::event(&alert_event(i, &format!("fault-{i}"), "critical")))
                    .collect();
                let since = std::time::Instant::now();
                produce_records(&topic, &recs);
                let mut relay = RelayCmd::new(&topic, &group, &robot.url())
                    .config(&shipped_pipeline(name, &robot.url(), &ops.url()))
                    .env("DINGTALK_TOKEN", "t")
                    .env("WECOM_KEY", "k")
                    .env("FEISHU_HOOK_TOKEN", "h")
                    .start();
                wait_fully_committed(&group, &topic, Duration::from_secs(60));
                let mut titles: Vec<String> = robot
                    .requests()
                    .iter()
                    .filter(|r| r.status == 200 && !r.raw.is_empty())
                    .filter(|r| r.at - robot.requests()[0].at >= busy_for)
                    .map(|r| r.raw.len().to_string() + &String::from_utf8_lossy(&r.raw))
                    .collect();
                titles.sort();
                titles.dedup();
                assert_eq!(
                    titles.len(),
                    8,
                    "{name}: every alert arrives after the quota frees up\n{}",
                    robot.dump()
                );
                let in_window = robot
                    .requests()
                    .iter()
                    .filter(|r| r.at - robot.requests()[0].at < busy_for)
                    .count();
                assert!(
                    in_window <= 8 + 8,
                    "{name}: {in_window} requests while the robot said 'too fast': the route must pause\n{}",
                    robot.dump()
                );
                support::table::row(
                    &format!("{name}: 'too fast' in HTTP 200 for 5 s, no dead-letter topic"),
                    8,
                    &robot
                        .delivered()
                        .into_iter()
                        .filter(|r| r.at - robot.requests()[0].at >= busy_for)
                        .collect::<Vec<_>>(),
                    0,
                    since,
                );
                assert!(
                    relay.has_log("the target is throttling; the route pauses"),
                    "{name}: {}",
                    relay.stderr()
                );
                relay.stop();
            });
        }
    });
}
