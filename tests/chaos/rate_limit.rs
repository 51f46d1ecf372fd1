//! A route's rate limit holds for the whole group: three instances, six
//! partitions, sixty alerts at once, and the target never sees more than
//! the limit in any window — each instance takes the share of the limit
//! that its partitions are of the route's.

use std::time::Duration;

use support::events::alert_event;
use support::http_target::Script;
use support::records::{Rec, produce_records};

use crate::fleet::{Fleet, exclusive};

const ROUTE: &str = r#"
[[route]]
name = "robot"
map = '{text: .df_title, fault: .df_fault_id}'
key = '.df_fault_id'
rate_limit = "12/s"
[route.webhook]
url = "{URL}"
"#;

#[test]
fn a_route_rate_limit_holds_for_three_instances() {
    let _one = exclusive();
    let mut fleet = Fleet::new("fleetrate", 6, Script::default()).config(ROUTE);
    fleet.join("a");
    fleet.join("b");
    fleet.join("c");
    // Every instance owns its two partitions, and has taken its share.
    for name in ["a", "b", "c"] {
        fleet
            .instance(name)
            .wait_for_log("rate limit share: 4 requests", Duration::from_secs(60));
    }
    let alerts: Vec<Rec> = (0..60)
        .map(|i| Rec::event(&alert_event(i, &format!("fleet-{i}"), "critical")))
        .collect();
    produce_records(&fleet.topic, &alerts);
    fleet.wait_committed();
    let requests = fleet.target.requests();
    assert_eq!(fleet.target.distinct(), 60, "{}", fleet.target.dump());
    // No window of (almost) a second sees more than 12 requests of the
    // group: 36 with a limit per process.
    let mut worst = 0;
    for (i, r) in requests.iter().enumerate() {
        let in_window = requests[i..]
            .iter()
            .take_while(|s| s.at - r.at < Duration::from_millis(950))
            .count();
        worst = worst.max(in_window);
    }
    println!(
        "| fleet rate limit 12/s, 3 instances, 60 alerts | 60 | 0 | 0 | worst window {worst} requests |"
    );
    assert!(
        worst <= 12,
        "{worst} requests within 950 ms:\n{}",
        fleet.target.dump()
    );
    let per_instance = |name: &str| {
        requests
            .iter()
            .filter(|r| r.path.ends_with(&format!("/{name}")))
            .count()
    };
    assert_eq!(
        per_instance("a") + per_instance("b") + per_instance("c"),
        60
    );
    fleet.stop_all();
}
