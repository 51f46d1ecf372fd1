//! Storm control end to end (`[storm]` for the default route): repeated
//! triggers deduped wherever their partitions were, a flapping recovery
//! absorbed, a held recovery sent when its hold ends — also by the next
//! instance after a SIGKILL, from the memory in the state topic — and
//! stale alerts skipped after an outage.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::broker::unique;
use support::events::alert_event;
use support::http_get::{free_port, get};
use support::http_target::{Script, Target};
use support::kafka::{new_topic, wait_fully_committed};
use support::kbridge::run;
use support::output::OutputExt;
use support::records::{Rec, produce_records, read_all};
use support::relay_cmd::RelayCmd;
use support::wait::wait_until;

/// The default route's storm keys, committing often.
fn storm_config(keys: &str, metrics_port: u16) -> String {
    format!(
        "commit_interval = \"100ms\"\n[metrics]\naddr = \"127.0.0.1:{metrics_port}\"\n[storm]\n{keys}\n"
    )
}

/// The default route's repartition topic for a group.
fn repartition(group: &str) -> String {
    format!("kbridge-{group}-default-repartition")
}

/// An alert event on a partition of its own choosing, unkeyed.
fn on_partition(p: i32, n: usize, fault: &str, status: &str) -> Rec {
    Rec {
        partition: Some(p),
        ..Rec::value(serde_json::to_vec(&alert_event(n, fault, status)).unwrap())
    }
}

/// (alert id, df_status) of every request the target applied, in order.
fn sent(target: &Target) -> Vec<(String, String)> {
    target
        .delivered()
        .iter()
        .map(|r| {
            (
                r.alert_id().to_string(),
                r.body["extInfo"]["df_status"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect()
}

fn pair(fault: &str, status: &str) -> (String, String) {
    (fault.to_string(), status.to_string())
}

/// The value of a metric line that has every one of `labels`.
fn metric(port: u16, name: &str, labels: &[&str]) -> Option<f64> {
    let text = get(port, "/metrics")?;
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|lb| l.contains(lb)))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Waits until the relay handled everything on the source topic and on
/// its repartition topic.
#[track_caller]
fn settle(group: &str, topic: &str) {
    wait_fully_committed(group, topic, Duration::from_secs(30));
    wait_fully_committed(group, &repartition(group), Duration::from_secs(30));
}

#[test]
fn repeated_triggers_are_deduped_across_partitions_and_a_change_of_state_is_sent() {
    let topic = new_topic("storm-dedupe", 3);
    let group = unique("storm-dedupe-g");
    let audit = unique("storm-dedupe-audit");
    let target = Target::start(Script::default());
    let port = free_port();
    let mut relay = RelayCmd::new(&topic, &group, &target.url())
        .config(&format!(
            "{}[audit]\ntopic = \"{audit}\"\n",
            storm_config("dedupe = \"10m\"", port)
        ))
        .start();
    relay.wait_assigned();
    // One fault's events on every partition of the source (as an unkeyed
    // producer spreads them): one at a time, each handled before the next.
    let events = [
        (0, "A", "critical"),
        (1, "A", "critical"),
        (2, "B", "critical"),
        (0, "A", "critical"),
        (1, "A", "ok"),
        (2, "A", "ok"),
        (0, "A", "critical"),
    ];
    for (n, (p, fault, status)) in events.iter().enumerate() {
        produce_records(&topic, &[on_partition(*p, n, fault, status)]);
        settle(&group, &topic);
    }
    assert_eq!(
        sent(&target),
        vec![
            pair("A", "critical"),
            pair("B", "critical"),
            pair("A", "ok"),
            pair("A", "critical"),
        ],
        "{}",
        target.dump()
    );
    assert!(
        wait_until(Duration::from_secs(10), || metric(
            port,
            "kbridge_storm_absorbed_total",
            &["reason=\"dedupe\"", "route=\"default\""]
        ) == Some(3.0)),
        "three repeats counted: {:?}",
        get(port, "/metrics")
    );
    assert!(
        relay.has_log("storm memory read back"),
        "{}",
        relay.stderr()
    );
    // The journey of A, from the audit: what went out and what was
    // deduped, in order.
    let out = run(&["trace", "A", "--audit-topic", &audit, "--json"], "");
    assert!(out.status.success(), "{}", out.stderr_str());
    let trace: Value = serde_json::from_str(&out.stdout_str()).unwrap();
    let outcomes: Vec<&str> = trace["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        [
            "delivered",
            "deduped",
            "deduped",
            "delivered",
            "deduped",
            "delivered"
        ],
        "{trace:#}"
    );
    relay.stop();
}

#[test]
fn a_flap_within_hold_resolved_is_absorbed_and_a_recovery_goes_when_its_hold_ends() {
    let topic = new_topic("storm-flap", 2);
    let group = unique("storm-flap-g");
    let target = Target::start(Script::default());
    let port = free_port();
    let mut relay = RelayCmd::new(&topic, &group, &target.url())
        .config(&storm_config("hold_resolved = \"3s\"", port))
        .start();
    relay.wait_assigned();
    // F flaps: trigger, recovery, trigger within the hold.
    for (n, (p, status)) in [(0, "critical"), (1, "ok"), (0, "critical")]
        .iter()
        .enumerate()
    {
        produce_records(&topic, &[on_partition(*p, n, "F", status)]);
        settle(&group, &topic);
    }
    // G recovers for good.
    produce_records(&topic, &[on_partition(1, 3, "G", "critical")]);
    settle(&group, &topic);
    let recovered_at = Instant::now();
    produce_records(&topic, &[on_partition(0, 4, "G", "ok")]);
    settle(&group, &topic);
    assert!(
        wait_until(Duration::from_secs(15), || sent(&target)
            .contains(&pair("G", "ok"))),
        "the held recovery is sent when its hold ends: {}",
        target.dump()
    );
    let g_ok = target
        .delivered()
        .into_iter()
        .find(|r| r.alert_id() == "G" && r.body["extInfo"]["df_status"] == "ok")
        .unwrap();
    assert!(
        g_ok.at.duration_since(recovered_at) >= Duration::from_millis(2900),
        "held for hold_resolved: {:?}",
        g_ok.at.duration_since(recovered_at)
    );
    assert_eq!(
        sent(&target),
        vec![
            pair("F", "critical"),
            pair("G", "critical"),
            pair("G", "ok")
        ],
        "the flap never reaches the target: {}",
        target.dump()
    );
    assert!(
        wait_until(Duration::from_secs(10), || metric(
            port,
            "kbridge_storm_absorbed_total",
            &["reason=\"flap\""]
        ) == Some(2.0)),
        "the recovery and the re-trigger counted: {:?}",
        get(port, "/metrics")
    );
    relay.stop();
}

#[test]
fn a_held_recovery_survives_a_kill_and_is_sent_once_by_the_restarted_relay() {
    let topic = new_topic("storm-kill", 2);
    let group = unique("storm-kill-g");
    let target = Target::start(Script::default());
    let port = free_port();
    let cmd = RelayCmd::new(&topic, &group, &target.url())
        .config(&storm_config("hold_resolved = \"4s\"", port));
    let mut relay = cmd.start();
    relay.wait_assigned();
    produce_records(&topic, &[on_partition(0, 0, "K", "critical")]);
    settle(&group, &topic);
    produce_records(&topic, &[on_partition(1, 1, "K", "ok")]);
    // Committed: the hold is in the state topic.
    settle(&group, &topic);
    relay.signal("KILL");
    relay.expect_exit(Duration::from_secs(10));
    assert_eq!(sent(&target), vec![pair("K", "critical")]);
    // The state topic holds the alert's memory with its hold.
    let state = read_all(
        &format!("kbridge-{group}-state"),
        1,
        Duration::from_secs(10),
    );
    let last: Value =
        serde_json::from_slice(state.last().unwrap().value.as_ref().unwrap()).unwrap();
    assert_eq!(last["v"], 1, "{last}");
    assert!(last["held"]["until"].is_i64(), "{last}");

    let mut relay = cmd.start();
    relay.wait_assigned();
    assert!(
        wait_until(Duration::from_secs(20), || sent(&target).len() == 2),
        "the restarted relay sends the held recovery: {}",
        target.dump()
    );
    settle(&group, &topic);
    // Sent once: another sweep of the clock sends nothing more.
    assert!(!wait_until(Duration::from_secs(3), || sent(&target).len() > 2));
    assert_eq!(sent(&target), vec![pair("K", "critical"), pair("K", "ok")]);
    relay.stop();
}

#[test]
fn alerts_older_than_max_age_are_skipped_after_an_outage() {
    let topic = new_topic("storm-age", 1);
    let group = unique("storm-age-g");
    let target = Target::start(Script::default());
    let port = free_port();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // Written two hours ago, during the outage, and one now.
    let old = Rec {
        timestamp: Some(now - 2 * 3600 * 1000),
        ..on_partition(0, 0, "OLD", "critical")
    };
    produce_records(&topic, &[old, on_partition(0, 1, "NEW", "critical")]);
    let mut relay = RelayCmd::new(&topic, &group, &target.url())
        .config(&storm_config("max_age = \"1h\"", port))
        .start();
    relay.wait_assigned();
    settle(&group, &topic);
    assert_eq!(sent(&target), vec![pair("NEW", "critical")]);
    assert!(
        wait_until(Duration::from_secs(10), || metric(
            port,
            "kbridge_storm_absorbed_total",
            &["reason=\"max_age\""]
        ) == Some(1.0)),
        "{:?}",
        get(port, "/metrics")
    );
    relay.stop();
}

/// A digest route: a chat robot told about groups of alerts by service.
fn digest_route(url: &str, times: &str) -> String {
    format!(
        r#"commit_interval = "100ms"

[[route]]
name = "robot"
map = '{{group: .group, status: .status, firing: .firing, resolved: .resolved, digest: .digest, changed: [.alerts[] | select(.changed) | {{id, state}}]}}'
key = '.df_fault_id'
rate_limit = "20/min"
[route.storm]
group_by = '.service'
{times}
[route.webhook]
url = "{url}"
success = '.code == 0'
"#
    )
}

/// A storm's alert: fault `i` on one of 40 hosts, each host in one of four
/// services.
fn storm_alert(i: usize, status: &str) -> Rec {
    let mut e = alert_event(i, &format!("fault-{i}"), status);
    let host = i % 40;
    e["host"] = serde_json::json!(format!("host-{host}"));
    e["service"] = serde_json::json!(format!("svc-{}", host % 4));
    Rec::value(serde_json::to_vec(&e).unwrap())
}

/// One digest as the robot got it: group, status, the changed alerts
/// with their state.
type Digest = (String, String, Vec<(String, String)>);

/// The digests a robot got, in order.
fn digests(target: &Target) -> Vec<Digest> {
    target
        .delivered()
        .iter()
        .map(|r| {
            let b = &r.body;
            (
                b["group"].as_str().unwrap_or("").to_string(),
                b["status"].as_str().unwrap_or("").to_string(),
                b["changed"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|c| {
                                (
                                    c["id"].as_str().unwrap_or("").to_string(),
                                    c["state"].as_str().unwrap_or("").to_string(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn a_storm_of_500_alerts_reaches_a_20_per_minute_robot_as_digests_by_service() {
    let topic = new_topic("storm-digest", 3);
    let group = unique("storm-digest-g");
    let robot = Target::start(Script::default());
    let relay_cmd = RelayCmd::new(&topic, &group, &robot.url()).config(&digest_route(
        &robot.url(),
        "group_wait = \"2s\"\ngroup_interval = \"10s\"",
    ));
    let mut relay = relay_cmd.start();
    relay.wait_assigned();
    // 500 alerts over 10 s, 50 a second.
    for second in 0..10 {
        let batch: Vec<Rec> = (second * 50..second * 50 + 50)
            .map(|i| storm_alert(i, "critical"))
            .collect();
        produce_records(&topic, &batch);
        std::thread::sleep(Duration::from_millis(900));
    }
    wait_fully_committed(&group, &topic, Duration::from_secs(60));
    // Every alert was in some digest, told firing.
    let told_firing = |robot: &Target| {
        digests(robot)
            .iter()
            .flat_map(|(_, _, changed)| changed.clone())
            .filter(|(_, state)| state == "critical")
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(90), || told_firing(&robot) >= 500),
        "every alert in a digest: {} told firing in {} digests",
        told_firing(&robot),
        robot.delivered().len()
    );
    // All recover.
    let recoveries: Vec<Rec> = (0..500).map(|i| storm_alert(i, "ok")).collect();
    produce_records(&topic, &recoveries);
    let closed = |robot: &Target| {
        let d = digests(robot);
        (0..4).all(|s| {
            d.iter()
                .rev()
                .find(|(g, _, _)| *g == format!("svc-{s}"))
                .is_some_and(|(_, status, _)| status == "resolved")
        })
    };
    assert!(
        wait_until(Duration::from_secs(90), || closed(&robot)),
        "every group's last digest says resolved: {:?}",
        digests(&robot)
            .iter()
            .map(|(g, s, c)| format!("{g} {s} {}", c.len()))
            .collect::<Vec<_>>()
    );
    let all = digests(&robot);
    // Each alert told firing once and resolved once: no digest repeated.
    let mut firing: Vec<String> = all
        .iter()
        .flat_map(|(_, _, c)| {
            c.iter()
                .filter(|(_, s)| s == "critical")
                .map(|(id, _)| id.clone())
        })
        .collect();
    firing.sort();
    let before = firing.len();
    firing.dedup();
    assert_eq!(
        (before, firing.len()),
        (500, 500),
        "each alert told firing once"
    );
    let resolved = all
        .iter()
        .flat_map(|(_, _, c)| c.iter().filter(|(_, s)| s == "resolved"))
        .count();
    assert_eq!(resolved, 500, "each alert told resolved once");
    // The robot's limit held: at most 20 requests in any minute.
    let at: Vec<Instant> = robot.requests().iter().map(|r| r.at).collect();
    for (i, start) in at.iter().enumerate() {
        let within = at[i..]
            .iter()
            .take_while(|t| t.duration_since(*start) < Duration::from_secs(60))
            .count();
        assert!(within <= 20, "{within} requests within a minute");
    }
    assert!(
        all.len() <= 16,
        "a few digests, not 1,000 messages: {}",
        all.len()
    );
    relay.stop();
}

#[test]
fn a_silence_is_honoured_by_every_instance_and_ends_on_time() {
    let topic = new_topic("storm-silence", 2);
    let group = unique("storm-silence-g");
    let target = Target::start(Script::default());
    let cmd = RelayCmd::new(&topic, &group, &target.url())
        .config("commit_interval = \"100ms\"\n[storm]\nsilences = true\n");
    let mut first = cmd.start();
    first.wait_assigned();
    let mut second = cmd.start();
    second.wait_assigned();
    let state = format!("kbridge-{group}-state");
    let silence = |args: &[&str]| {
        let mut all = vec!["silence"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--state-topic", &state]);
        support::kbridge::run(&all, "")
    };
    let added = silence(&[
        "add",
        "--match",
        ".df_fault_id | startswith(\"maint-\")",
        "--for",
        "1h",
        "--comment",
        "db maintenance",
    ]);
    assert!(added.status.success(), "{}", added.describe());
    let id = added.stdout_str().trim().to_string();
    let listed = silence(&["list"]);
    assert!(
        listed.stdout_str().contains(&id) && listed.stdout_str().contains("active"),
        "{}",
        listed.describe()
    );
    for relay in [&mut first, &mut second] {
        relay.wait_for_log("silence known", Duration::from_secs(10));
    }
    // Silenced on both partitions, whichever instance owns each.
    let mut recs = Vec::new();
    for p in 0..2 {
        recs.push(on_partition(
            p,
            p as usize * 2,
            &format!("maint-{p}"),
            "critical",
        ));
        recs.push(on_partition(
            p,
            p as usize * 2 + 1,
            &format!("live-{p}"),
            "critical",
        ));
    }
    produce_records(&topic, &recs);
    wait_fully_committed(&group, &topic, Duration::from_secs(30));
    let mut ids: Vec<String> = sent(&target).into_iter().map(|(a, _)| a).collect();
    ids.sort();
    assert_eq!(ids, vec!["live-0", "live-1"], "{}", target.dump());

    // Expired: the matcher's events flow again.
    let expired = silence(&["expire", &id]);
    assert!(expired.status.success(), "{}", expired.describe());
    assert!(silence(&["list"]).stdout_str().is_empty());
    assert!(silence(&["list", "--all"]).stdout_str().contains("expired"));
    let known = |relay: &mut support::relay_process::Relay, n: usize| {
        assert!(
            wait_until(Duration::from_secs(10), || relay
                .count_logs("silence known")
                >= n),
            "{}",
            relay.stderr()
        );
    };
    known(&mut first, 2);
    known(&mut second, 2);
    produce_records(&topic, &[on_partition(0, 10, "maint-10", "critical")]);
    assert!(
        wait_until(Duration::from_secs(20), || sent(&target)
            .contains(&pair("maint-10", "critical"))),
        "{}",
        target.dump()
    );

    // A silence for 3 s: in force, then over on time.
    let short = silence(&["add", "-m", "true", "--for", "3s"]);
    assert!(short.status.success(), "{}", short.describe());
    let ends = Instant::now() + Duration::from_secs(3);
    known(&mut first, 3);
    known(&mut second, 3);
    produce_records(&topic, &[on_partition(1, 11, "during", "critical")]);
    wait_fully_committed(&group, &topic, Duration::from_secs(30));
    assert!(
        !sent(&target).contains(&pair("during", "critical")),
        "{}",
        target.dump()
    );
    // Time passes: the silence ends by itself.
    while Instant::now() < ends + Duration::from_millis(300) {
        std::thread::sleep(Duration::from_millis(100));
    }
    produce_records(&topic, &[on_partition(1, 12, "after", "critical")]);
    assert!(
        wait_until(Duration::from_secs(20), || sent(&target)
            .contains(&pair("after", "critical"))),
        "{}",
        target.dump()
    );
    first.stop();
    second.stop();
}

/// How many times the robot was told each (alert, state).
fn tells(robot: &Target) -> BTreeMap<(String, String), usize> {
    let mut n = BTreeMap::new();
    for (_, _, changed) in digests(robot) {
        for c in changed {
            *n.entry(c).or_default() += 1;
        }
    }
    n
}

/// A storm into a digest route while the fleet changes (`change` runs
/// half-way through): no alert is lost, and the duplicates stay within the
/// stated bound — a digest sent again at most once per group per change.
fn digest_storm_with(change: impl FnOnce(&RelayCmd, &mut Vec<support::relay_process::Relay>)) {
    let topic = new_topic("storm-fleet", 4);
    let group = unique("storm-fleet-g");
    let robot = Target::start(Script::default());
    // The robot's limit is not what this is about: 2 a second.
    let config = digest_route(&robot.url(), "group_wait = \"1s\"\ngroup_interval = \"4s\"")
        .replace("20/min", "2/s");
    let cmd = RelayCmd::new(&topic, &group, &robot.url()).config(&config);
    let mut fleet = vec![cmd.start()];
    fleet[0].wait_assigned();
    let mut change = Some(change);
    for second in 0..10 {
        let batch: Vec<Rec> = (second * 50..second * 50 + 50)
            .map(|i| storm_alert(i, "critical"))
            .collect();
        produce_records(&topic, &batch);
        if second == 4
            && let Some(change) = change.take()
        {
            change(&cmd, &mut fleet);
        }
        std::thread::sleep(Duration::from_millis(900));
    }
    let firing_told = |robot: &Target| tells(robot).keys().filter(|(_, s)| s == "critical").count();
    assert!(
        wait_until(Duration::from_secs(120), || firing_told(&robot) == 500),
        "every alert told firing: {} of 500",
        firing_told(&robot)
    );
    produce_records(
        &topic,
        &(0..500).map(|i| storm_alert(i, "ok")).collect::<Vec<_>>(),
    );
    let resolved_told =
        |robot: &Target| tells(robot).keys().filter(|(_, s)| s == "resolved").count();
    assert!(
        wait_until(Duration::from_secs(120), || resolved_told(&robot) == 500),
        "every alert told resolved: {} of 500",
        resolved_told(&robot)
    );
    let told = tells(&robot);
    let again: usize = told.values().map(|n| n - 1).sum();
    let digests_again = {
        // A digest sent again repeats what it said: count the digests
        // whose changed alerts were all told before.
        let mut seen = std::collections::BTreeSet::new();
        digests(&robot)
            .into_iter()
            .filter(|(_, _, changed)| {
                let old = !changed.is_empty() && changed.iter().all(|c| seen.contains(c));
                seen.extend(changed.iter().cloned());
                old
            })
            .count()
    };
    eprintln!(
        "{} digests, {digests_again} sent again, {again} alerts told again",
        digests(&robot).len()
    );
    for relay in &fleet {
        for line in relay
            .stderr()
            .lines()
            .filter(|l| l.contains("storm memory read back"))
        {
            eprintln!("{line}");
        }
    }
    assert!(
        digests_again <= 4,
        "at most one digest again per group: {digests_again} ({again} alerts told again)"
    );
    for relay in &mut fleet {
        if relay.wait_exit(Duration::ZERO).is_none() {
            relay.stop();
        }
    }
}

#[test]
fn a_second_instance_joining_a_digest_storm_loses_no_alert() {
    digest_storm_with(|cmd, fleet| {
        let mut second = cmd.start();
        second.wait_assigned();
        fleet.push(second);
    });
}

#[test]
fn a_relay_killed_in_a_digest_storm_and_restarted_loses_no_alert() {
    digest_storm_with(|cmd, fleet| {
        fleet[0].signal("KILL");
        fleet[0].expect_exit(Duration::from_secs(10));
        let mut again = cmd.start();
        again.wait_assigned();
        fleet.push(again);
    });
}

#[test]
fn absorbed_events_are_dead_lettered_with_their_reason_when_asked() {
    let topic = new_topic("storm-audit", 1);
    let dlq = new_topic("storm-audit-dlq", 1);
    let group = unique("storm-audit-g");
    let target = Target::start(Script::default());
    let port = free_port();
    let mut relay = RelayCmd::new(&topic, &group, &target.url())
        .dead_letters(&dlq)
        .config(&storm_config(
            "dedupe = \"10m\"\ndead_letter_absorbed = true",
            port,
        ))
        .start();
    relay.wait_assigned();
    produce_records(
        &topic,
        &(0..3)
            .map(|n| on_partition(0, n, "A", "critical"))
            .collect::<Vec<_>>(),
    );
    settle(&group, &topic);
    assert_eq!(sent(&target), vec![pair("A", "critical")]);
    let letters = read_all(&dlq, 2, Duration::from_secs(10));
    assert_eq!(letters.len(), 2);
    for l in &letters {
        assert_eq!(l.header("kbridge.stage").as_deref(), Some("dedupe"));
        assert!(
            l.header("kbridge.error")
                .unwrap()
                .contains("repeats the one delivered"),
            "{:?}",
            l.header("kbridge.error")
        );
    }
    relay.stop();
}
