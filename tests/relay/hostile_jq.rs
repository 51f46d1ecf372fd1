//! A jq route against records and programs that would stop a process: a
//! record nested 100,000 deep (jaq's reader recurses per level), a map
//! that calls `halt`, a map that builds a value deeper than any body may
//! be. Each event is invalid on its route, dead-lettered with the reason,
//! and the relay goes on with the next one.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use support::broker::unique;
use support::http_target::{Script, Target};
use support::kafka::{new_topic, wait_fully_committed};
use support::records::{Rec, produce_records, read_all};
use support::relay_cmd::RelayCmd;

/// A route whose map halts when asked to, and builds a deep value when
/// asked to.
const ROUTE: &str = r#"
[[route]]
name = "robot"
map = '''
if .halt then halt_error(1)
elif .deep then {text: (reduce range(200) as $i (.; [.]))}
else {text: .df_title} end
'''
key = '.df_fault_id // "none"'
[route.webhook]
url = "URL"
success = '.code == 0'
"#;

#[test]
fn hostile_records_and_programs_on_a_jq_route_are_dead_lettered_and_the_relay_goes_on() {
    let topic = new_topic("hjq", 1);
    let dlq = new_topic("hjq-dlq", 1);
    let group = unique("hjq-g");
    let target = Target::start(Script::default());
    let deep = "[".repeat(100_000) + &"]".repeat(100_000);
    let records = vec![
        Rec::value(deep.clone()),
        Rec::value(format!(r#"{{"df_title":"x","nested":{deep}}}"#)),
        Rec::event(&json!({"halt": true, "df_fault_id": "f-halt"})),
        Rec::event(&json!({"deep": true, "df_fault_id": "f-deep"})),
        Rec::event(&json!({"df_title": "still here", "df_fault_id": "f-ok"})),
    ];
    let since = std::time::Instant::now();
    produce_records(&topic, &records);
    let mut relay = RelayCmd::new(&topic, &group, &target.url())
        .dead_letters(&dlq)
        .config(&ROUTE.replace("URL", &target.url()))
        .start();
    let dead = read_all(&dlq, 4, Duration::from_secs(30));
    wait_fully_committed(&group, &topic, Duration::from_secs(30));
    let by_offset: BTreeMap<String, (String, String)> = dead
        .iter()
        .map(|d| {
            (
                d.header("kbridge.offset").unwrap_or_default(),
                (
                    d.header("kbridge.stage").unwrap_or_default(),
                    d.header("kbridge.error").unwrap_or_default(),
                ),
            )
        })
        .collect();
    let expect = |offset: &str, stage: &str, reason: &str| {
        let (s, r) = &by_offset[offset];
        assert_eq!(s, stage, "offset {offset}: {r}");
        assert!(r.contains(reason), "offset {offset}: {r}");
    };
    expect("0", "decode", "nested deeper than 128 levels");
    expect("1", "decode", "nested deeper than 128 levels");
    expect("2", "map", "the program called halt (exit code 1)");
    expect(
        "3",
        "map",
        "the map's output is nested deeper than 128 levels",
    );
    target.wait_delivered(1, Duration::from_secs(10));
    assert_eq!(target.delivered()[0].body["text"], "still here");
    support::table::row(
        "jq route: a 100,000-deep record, a halting map, a map building 200 levels",
        5,
        &target.delivered(),
        4,
        since,
    );
    assert!(
        relay.wait_exit(Duration::ZERO).is_none(),
        "the relay runs on"
    );
    relay.stop();
}

/// Programs that never end or never stop giving outputs: each event is
/// invalid on its route after `jq.timeout` (or `jq.max_outputs`), the
/// others flow, and since the abandoned evaluations never end the relay
/// stops by itself — cleanly, everything committed — for systemd to
/// restart it; the restarted relay does not meet those events again.
#[test]
fn programs_that_never_end_cost_their_event_and_a_clean_restart() {
    let topic = new_topic("loopjq", 1);
    let dlq = new_topic("loopjq-dlq", 1);
    let group = unique("loopjq-g");
    let target = Target::start(Script::default());
    let route = r#"
[jq]
timeout = "200ms"
max_outputs = 50
[[route]]
name = "robot"
map = '''
if .spin then last(range(1e15))
elif .many then range(1e9) | {n: .}
else {text: .df_title} end
'''
key = 'if .spinkey then (def f: f; f) else .df_fault_id end'
[route.webhook]
url = "URL"
"#
    .replace("URL", &target.url());
    produce_records(
        &topic,
        &[
            Rec::event(&json!({"spin": true, "df_fault_id": "a"})),
            Rec::event(&json!({"df_title": "one", "df_fault_id": "b"})),
            Rec::event(&json!({"spinkey": true})),
            Rec::event(&json!({"many": true, "df_fault_id": "c"})),
            Rec::event(&json!({"df_title": "two", "df_fault_id": "d"})),
        ],
    );
    let cmd = RelayCmd::new(&topic, &group, &target.url())
        .dead_letters(&dlq)
        .config(&route);
    let mut relay = cmd.start();
    let dead = read_all(&dlq, 3, Duration::from_secs(30));
    let reason = |offset: &str| {
        dead.iter()
            .find(|d| d.header("kbridge.offset").as_deref() == Some(offset))
            .and_then(|d| d.header("kbridge.error"))
            .unwrap_or_default()
    };
    assert!(
        reason("0").contains("ran past jq.timeout (200ms)"),
        "{}",
        reason("0")
    );
    assert!(
        reason("2").contains("key: the program ran past jq.timeout"),
        "{}",
        reason("2")
    );
    assert!(
        reason("3").contains("more than 50 outputs (jq.max_outputs)"),
        "{}",
        reason("3")
    );
    target.wait_delivered(2, Duration::from_secs(10));
    // The spinning evaluations never end: a clean stop, non-zero for
    // systemd's Restart=on-failure, with everything committed.
    let status = relay.expect_exit(Duration::from_secs(30));
    assert!(!status.success() && status.code() != Some(2), "{status:?}");
    assert!(
        relay.has_log("restarting to free their threads"),
        "{}",
        relay.stderr()
    );
    wait_fully_committed(&group, &topic, Duration::from_secs(10));

    produce_records(
        &topic,
        &[Rec::event(
            &json!({"df_title": "three", "df_fault_id": "e"}),
        )],
    );
    let mut relay = cmd.start();
    target.wait_delivered(3, Duration::from_secs(30));
    wait_fully_committed(&group, &topic, Duration::from_secs(30));
    assert!(!relay.has_log("jq.timeout"), "{}", relay.stderr());
    relay.stop();
}
