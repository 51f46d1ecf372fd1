//! `[[route]]` relayed end to end: one topic fanned out to two targets with
//! different mappings, filters skipping, jq errors and partly refused
//! multi-output maps dead-lettered with their route, a rate limit held
//! without loss, and per-key order kept per route under retries.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use support::broker::unique;
use support::events::{alert_event, event};
use support::http_get::{free_port, get, get_status};
use support::http_target::{Request, Reserved, Script, Target};
use support::kafka::{committed, new_topic, wait_fully_committed};
use support::records::{Rec, produce_records, read_all};
use support::relay_cmd::RelayCmd;
use support::repo_root;
use support::wait::wait_until;

/// A chat-robot route: a text message per event, keyed by fault.
fn robot_route(name: &str, url: &str, extra: &str) -> String {
    format!(
        r#"
[[route]]
name = "{name}"
map = '{{msg_type: "text", content: {{text: .df_title}}, fault: .df_fault_id, n: (.df_title | ltrimstr("alert ") | tonumber)}}'
key = '.df_fault_id'
{extra}
[route.webhook]
url = "{url}"
success = '.code == 0'
"#
    )
}

fn ops_route(name: &str, url: &str) -> String {
    format!(
        "\n[[route]]\nname = \"{name}\"\npreset = \"guance-easyops\"\n[route.webhook]\nurl = \"{url}\"\n"
    )
}

/// The event number a request carries: the robot's `n`, or the preset's
/// subject (`alert N`).
fn number(r: &Request) -> i64 {
    r.body["n"].as_i64().unwrap_or_else(|| {
        r.body["subject"]
            .as_str()
            .and_then(|s| s.strip_prefix("alert "))
            .and_then(|n| n.parse().ok())
            .unwrap_or(-1)
    })
}

#[test]
fn two_routes_fan_one_topic_out_and_the_offset_waits_for_both() {
    let topic = new_topic("fanout", 1);
    let group = unique("fanout-g");
    let ops = Target::start(Script::default());
    // The robot is down at first: the ops platform gets every alert, and
    // nothing may be committed until the robot has them too.
    let robot_port = Reserved::bind();
    let robot_url = robot_port.url();
    let mut events: Vec<Value> = (0..6).map(event).collect();
    let mut user = event(6);
    user["df_source"] = json!("user");
    events.push(user);
    events.push(alert_event(7, "fault-0", "ok"));
    produce_records(&topic, &events.iter().map(Rec::event).collect::<Vec<_>>());

    let config = format!(
        "commit_interval = \"100ms\"\n{}{}",
        ops_route("ops", &ops.url()),
        robot_route("robot", &robot_url, "filter = '.df_status != \"ok\"'")
    );
    let mut relay = RelayCmd::new(&topic, &group, &ops.url())
        .config(&config)
        .start();
    // The preset skips the user event: 7 alerts.
    assert!(
        wait_until(Duration::from_secs(30), || ops.distinct() == 7),
        "{}",
        ops.dump()
    );
    assert!(
        !wait_until(Duration::from_secs(2), || committed(&group, &topic)
            .get(&0)
            .is_some_and(|o| *o > 0)),
        "an offset was committed before the robot route delivered it: {:?}",
        committed(&group, &topic)
    );

    let robot = Target::start_on(robot_port, Script::default());
    wait_fully_committed(&group, &topic, Duration::from_secs(60));
    // The robot's filter skips the recovery; its map takes the user event.
    let mut robot_numbers: Vec<i64> = robot.delivered().iter().map(number).collect();
    robot_numbers.sort();
    robot_numbers.dedup();
    assert_eq!(
        robot_numbers,
        (0..7).collect::<Vec<_>>(),
        "{}",
        robot.dump()
    );
    let card = &robot.delivered()[0];
    assert_eq!(card.body["msg_type"], "text");
    assert_eq!(
        card.key(),
        format!("{topic}-0-{}/robot", number(card)),
        "the idempotency key names the route"
    );
    let mut ops_numbers: Vec<i64> = ops.delivered().iter().map(number).collect();
    ops_numbers.sort();
    assert_eq!(ops_numbers, vec![0, 1, 2, 3, 4, 5, 7], "{}", ops.dump());
    assert!(ops.delivered()[0].key().ends_with("/ops"));
    assert!(ops.delivered()[0].body["alertId"].is_string());
    relay.stop();
}

#[test]
fn map_errors_and_refused_outputs_are_dead_lettered_with_their_route() {
    let topic = new_topic("am", 1);
    let dlq = new_topic("am-dlq", 1);
    let group = unique("am-g");
    let ops = Target::start(Script {
        reject_host: Some("lab-box-99".into()),
        ..Default::default()
    });
    let pipeline = repo_root().join("examples/pipelines/alertmanager-easyops.jq");
    let alert = |fingerprint: Option<&str>, host: &str| {
        let mut a = json!({
            "status": "firing",
            "labels": {"alertname": "HostDown", "host": host},
            "annotations": {"summary": format!("{host} is down")},
            "startsAt": "2024-06-18T10:00:00Z",
        });
        if let Some(f) = fingerprint {
            a["fingerprint"] = json!(f);
        }
        a
    };
    let payload =
        |alerts: Vec<Value>| json!({"status": "firing", "groupKey": "g", "alerts": alerts});
    let records = [
        // Three alerts: three requests.
        payload(vec![
            alert(Some("f1"), "pay-node-01"),
            alert(Some("f2"), "pay-node-02"),
            alert(Some("f3"), "pay-node-03"),
        ]),
        // The program's own error().
        json!({"status": "firing", "alerts": "not a list"}),
        // A runtime error on one alert: the event is invalid as a whole.
        payload(vec![alert(Some("f4"), "pay-node-04"), alert(None, "x")]),
        // The second of two alerts is refused by the CMDB: the first is
        // still delivered, and the event is dead-lettered for the second.
        payload(vec![
            alert(Some("f5"), "pay-node-05"),
            alert(Some("f6"), "lab-box-99"),
        ]),
    ];
    produce_records(&topic, &records.iter().map(Rec::event).collect::<Vec<_>>());
    let config = format!(
        "[[route]]\nname = \"am\"\nmap_file = \"{}\"\nkey = '.groupKey'\n[route.webhook]\nurl = \"{}\"\nreject = '(.error // \"\") | test(\"not match any cmdb instance\")'\n",
        pipeline.display(),
        ops.url()
    );
    let mut relay = RelayCmd::new(&topic, &group, &ops.url())
        .dead_letters(&dlq)
        .config(&config)
        .start();
    let dead = read_all(&dlq, 3, Duration::from_secs(30));
    wait_fully_committed(&group, &topic, Duration::from_secs(30));

    let by_offset: BTreeMap<String, _> = dead
        .iter()
        .map(|d| (d.header("kbridge.offset").unwrap_or_default(), d))
        .collect();
    assert_eq!(
        by_offset.keys().collect::<Vec<_>>(),
        ["1", "2", "3"],
        "{dead:?}"
    );
    for d in by_offset.values() {
        assert_eq!(d.header("kbridge.route").as_deref(), Some("am"));
    }
    let error = |o: &str| by_offset[o].header("kbridge.error").unwrap_or_default();
    assert_eq!(
        by_offset["1"].header("kbridge.stage").as_deref(),
        Some("map")
    );
    assert_eq!(
        error("1"),
        "not an Alertmanager webhook payload: no alerts[]"
    );
    assert_eq!(error("2"), "an alert without fingerprint");
    assert_eq!(
        by_offset["3"].header("kbridge.stage").as_deref(),
        Some("deliver")
    );
    assert!(
        error("3").starts_with("output 2 of 2: HTTP 400"),
        "{}",
        error("3")
    );

    let mut keys: Vec<String> = ops
        .delivered()
        .iter()
        .map(|r| r.key().to_string())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            format!("{topic}-0-0/am#1"),
            format!("{topic}-0-0/am#2"),
            format!("{topic}-0-0/am#3"),
            format!("{topic}-0-3/am#1"),
        ],
        "{}",
        ops.dump()
    );
    let first = &ops.delivered()[0];
    assert_eq!(first.body["source"], "alertmanager");
    assert_eq!(first.body["isRecover"], false);
    relay.stop();
}

#[test]
fn a_rate_limited_route_holds_its_rate_and_loses_nothing() {
    let topic = new_topic("paced", 2);
    let group = unique("paced-g");
    let robot = Target::start(Script::default());
    let events: Vec<Rec> = (0..30).map(|i| Rec::event(&event(i))).collect();
    produce_records(&topic, &events);
    // A small window: events over the rate wait holding their slots, and
    // the consume loop waits (or pauses) for them.
    let config = format!(
        "max_pending = 3\n{}",
        robot_route("robot", &robot.url(), "rate_limit = \"10/s\"")
    );
    let mut relay = RelayCmd::new(&topic, &group, &robot.url())
        .config(&config)
        .start();
    wait_fully_committed(&group, &topic, Duration::from_secs(60));
    let requests = robot.requests();
    let mut numbers: Vec<i64> = robot.delivered().iter().map(number).collect();
    numbers.sort();
    numbers.dedup();
    assert_eq!(numbers, (0..30).collect::<Vec<_>>(), "{}", robot.dump());
    // Never more than 10 requests in any second: the 11th after a request
    // comes a second after it, at the earliest (a little slack for the
    // target's clock).
    for w in requests.windows(11) {
        let span = w[10].at - w[0].at;
        assert!(
            span >= Duration::from_millis(950),
            "11 requests within {span:?}: requests {}..={}",
            w[0].seq,
            w[10].seq
        );
    }
    relay.stop();
}

#[test]
fn per_key_order_is_kept_per_route_under_retries() {
    let topic = new_topic("ordered", 2);
    let group = unique("ordered-g");
    // Both targets fail their first answers: the retries must not let a
    // later event of a fault overtake an earlier one on either route.
    let ops = Target::start(Script {
        fail_first: 6,
        ..Default::default()
    });
    let robot = Target::start(Script {
        fail_first: 9,
        ..Default::default()
    });
    let mut recs = Vec::new();
    let mut n = 0;
    for round in ["critical", "critical", "critical", "ok"] {
        for fault in 0..4 {
            let fault = format!("fault-{fault}");
            let e = alert_event(n, &fault, round);
            recs.push(Rec::keyed(&fault, serde_json::to_vec(&e).unwrap()));
            n += 1;
        }
    }
    produce_records(&topic, &recs);
    let config = format!(
        "[retry]\ninitial_backoff = \"20ms\"\nmax_backoff = \"100ms\"\n{}{}",
        ops_route("ops", &ops.url()),
        robot_route("robot", &robot.url(), "")
    );
    let mut relay = RelayCmd::new(&topic, &group, &ops.url())
        .config(&config)
        .start();
    wait_fully_committed(&group, &topic, Duration::from_secs(60));
    for (name, target) in [("ops", &ops), ("robot", &robot)] {
        let requests = target.requests();
        assert!(
            requests.iter().any(|r| !r.ok()),
            "{name}: no retries happened"
        );
        let mut per_fault: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for r in &requests {
            per_fault.entry(number(r) % 4).or_default().push(number(r));
        }
        for (fault, seq) in &per_fault {
            assert!(
                seq.windows(2).all(|w| w[0] <= w[1]),
                "{name}: fault-{fault}'s events were sent out of order: {seq:?}\n{}",
                target.dump()
            );
        }
        let mut delivered: Vec<i64> = target.delivered().iter().map(number).collect();
        delivered.sort();
        delivered.dedup();
        assert_eq!(delivered, (0..16).collect::<Vec<_>>(), "{name}");
    }
    relay.stop();
}

#[test]
fn a_route_whose_target_is_down_makes_the_relay_not_ready_and_metrics_say_which() {
    let topic = new_topic("health", 1);
    let group = unique("health-g");
    let ops = Target::start(Script::default());
    let robot_port = Reserved::bind();
    let robot_url = robot_port.url();
    let events: Vec<Rec> = (0..3).map(|i| Rec::event(&event(i))).collect();
    produce_records(&topic, &events);
    let port = free_port();
    let config = format!(
        "[retry]\ninitial_backoff = \"200ms\"\nmax_backoff = \"500ms\"\n{}{}",
        ops_route("ops", &ops.url()),
        robot_route("robot", &robot_url, "")
    );
    let mut relay = RelayCmd::new(&topic, &group, &ops.url())
        .config(&config)
        .start_with(&["--metrics-addr", &format!("127.0.0.1:{port}")]);
    assert!(
        wait_until(Duration::from_secs(30), || ops.distinct() == 3
            && get_status(port, "/readyz") == Some(503)),
        "the robot's target is down: not ready\n{}",
        relay.stderr()
    );
    // The target counts a request when it answers; the relay counts the
    // delivery once it has read that answer: wait for the metrics too.
    let line = |metrics: &str, name: &str, route: &str| {
        metrics
            .lines()
            .filter(|l| l.starts_with(name) && l.contains(&format!("route=\"{route}\"")))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let counted = |metrics: &str| {
        line(metrics, "kbridge_events_delivered_total", "ops")
            .iter()
            .any(|l| l.ends_with(" 3"))
            && line(metrics, "kbridge_delivery_attempts_total", "robot")
                .iter()
                .any(|l| l.contains("outcome=\"connection_error\""))
    };
    assert!(
        wait_until(Duration::from_secs(10), || get(port, "/metrics")
            .is_some_and(|m| counted(&m))),
        "{}",
        get(port, "/metrics").unwrap_or_default()
    );
    let robot = Target::start_on(robot_port, Script::default());
    wait_fully_committed(&group, &topic, Duration::from_secs(30));
    assert_eq!(robot.distinct(), 3, "{}", robot.dump());
    assert!(
        wait_until(Duration::from_secs(10), || get_status(port, "/readyz")
            == Some(200)),
        "ready again once the robot answers"
    );
    relay.stop();
}

/// `[route.retry]` and a route's `dead_letter_topic` override the relay's:
/// a robot that is down gives its alerts up after two attempts into its
/// own dead-letter topic, while the ops route keeps the relay's settings.
#[test]
fn a_route_has_its_own_retries_and_dead_letter_topic() {
    let topic = new_topic("perroute", 1);
    let ops_dlq = new_topic("perroute-ops-dlq", 1);
    let robot_dlq = new_topic("perroute-robot-dlq", 1);
    let group = unique("perroute-g");
    let ops = Target::start(Script::default());
    let robot = Target::start(Script {
        fail_first: usize::MAX,
        ..Default::default()
    });
    let events: Vec<Rec> = (0..3).map(|i| Rec::event(&event(i))).collect();
    produce_records(&topic, &events);
    let config = format!(
        "{}{}",
        ops_route("ops", &ops.url()),
        robot_route(
            "robot",
            &robot.url(),
            &format!(
                "dead_letter_topic = \"{robot_dlq}\"\n[route.retry]\nmax_attempts = 2\ninitial_backoff = \"50ms\"\n"
            )
        )
    );
    let mut relay = RelayCmd::new(&topic, &group, &ops.url())
        .dead_letters(&ops_dlq)
        .config(&config)
        .start();
    let dead = read_all(&robot_dlq, 3, Duration::from_secs(30));
    wait_fully_committed(&group, &topic, Duration::from_secs(30));
    assert_eq!(dead.len(), 3);
    for d in &dead {
        assert_eq!(d.header("kbridge.route").as_deref(), Some("robot"));
        assert!(
            d.header("kbridge.error")
                .is_some_and(|e| e.contains("gave up after 2 attempts")),
            "{:?}",
            d.header("kbridge.error")
        );
    }
    assert_eq!(robot.requests().len(), 6, "{}", robot.dump());
    assert_eq!(ops.distinct(), 3);
    assert_eq!(support::kafka::message_count(&ops_dlq), 0);
    relay.stop();
}
