//! What was handled beyond a partition's commit point is handed to its
//! next owner in the commit's metadata: an alert stuck at the head of a
//! partition holds the commit point while later ones are delivered, and
//! after a clean stop the restart sends only what was not handled — per
//! route, when an event fans out to two.

use std::time::Duration;

use serde_json::Value;
use support::broker::unique;
use support::events::event;
use support::http_target::{Rule, Script, Target};
use support::kafka::{committed, new_topic, wait_fully_committed};
use support::records::{Rec, produce_records};
use support::relay_cmd::RelayCmd;
use support::wait::wait_until;

const EVENTS: usize = 20;

#[test]
fn a_restart_sends_again_only_what_was_not_handled_on_each_route() {
    let topic = new_topic("handover", 1);
    let group = unique("handover-g");
    // The ops platform refuses event 0 (host-0) for now; the robot takes
    // everything.
    let ops = Target::start(Script {
        rules: vec![Rule::new("host-0", 503, r#"{"code":503,"error":"busy"}"#)],
        ..Default::default()
    });
    let robot = Target::start(Script::default());
    let events: Vec<Value> = (0..EVENTS).map(event).collect();
    produce_records(&topic, &events.iter().map(Rec::event).collect::<Vec<_>>());
    let config = format!(
        r#"commit_interval = "100ms"
drain_timeout = "1s"

[[route]]
name = "ops"
preset = "guance-easyops"
[route.webhook]
url = "{}"

[[route]]
name = "robot"
map = '{{text: .df_title}}'
[route.webhook]
url = "{}"
"#,
        ops.url(),
        robot.url()
    );
    let cmd = RelayCmd::new(&topic, &group, &ops.url()).config(&config);
    let mut relay = cmd.start();
    assert!(
        wait_until(Duration::from_secs(30), || ops.delivered().len()
            == EVENTS - 1
            && robot.delivered().len() == EVENTS),
        "ops {} robot {}\n{}",
        ops.delivered().len(),
        robot.delivered().len(),
        relay.stderr()
    );
    // A clean stop: the drain gives up on event 0 after 1 s.
    relay.stop();
    assert_eq!(
        committed(&group, &topic).get(&0),
        Some(&0),
        "event 0 holds the commit point"
    );

    ops.rescript(|s| s.rules.clear());
    let mut relay = cmd.start();
    wait_fully_committed(&group, &topic, Duration::from_secs(30));
    relay.stop();
    // Event 0 reached the ops platform now; nothing else went out again.
    assert_eq!(ops.distinct(), EVENTS, "{}", ops.dump());
    assert_eq!(
        ops.delivered().len(),
        EVENTS,
        "events 1-19 sent to ops again:\n{}",
        ops.dump()
    );
    assert_eq!(
        robot.requests().len(),
        EVENTS,
        "the robot had event 0 (and the rest) before the stop: sent again\n{}",
        robot.dump()
    );
}
