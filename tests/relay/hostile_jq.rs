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
    assert!(
        relay.wait_exit(Duration::ZERO).is_none(),
        "the relay runs on"
    );
    relay.stop();
}
