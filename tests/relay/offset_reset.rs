//! `offset_reset = "latest"` never skips silently: a group's first start
//! on a topic with messages, and a committed offset that fell out of
//! retention, are each a warning with the range skipped, and a metric.

use std::time::Duration;

use support::broker::unique;
use support::events::event;
use support::http_get::{free_port, get};
use support::http_target::{Script, Target};
use support::kafka::new_topic;
use support::records::{Rec, commit_offsets, delete_records_before, produce_records};
use support::relay_cmd::RelayCmd;
use support::wait::wait_until;

fn skipped_total(port: u16) -> Option<f64> {
    get(port, "/metrics")?
        .lines()
        .find(|l| l.starts_with("kbridge_offsets_skipped_total"))?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()
}

#[test]
fn a_first_start_with_latest_says_what_it_skips() {
    let topic = new_topic("latest", 1);
    let group = unique("latest-g");
    let target = Target::start(Script::default());
    produce_records(
        &topic,
        &(0..5).map(|i| Rec::event(&event(i))).collect::<Vec<_>>(),
    );
    let port = free_port();
    let mut relay = RelayCmd::new(&topic, &group, &target.url())
        .offset_reset("latest")
        .start_with(&["--metrics-addr", &format!("127.0.0.1:{port}")]);
    relay.wait_for_log(
        "offsets 0 to 4 (5 offsets) are never relayed",
        Duration::from_secs(30),
    );
    assert!(
        relay.has_log("no committed offset for this partition"),
        "{}",
        relay.stderr()
    );
    assert!(
        relay.has_log("sets offset_reset = \"earliest\""),
        "the log says what to do instead:\n{}",
        relay.stderr()
    );
    assert!(
        wait_until(Duration::from_secs(10), || skipped_total(port) == Some(5.0)),
        "{:?}",
        get(port, "/metrics")
    );
    assert!(target.requests().is_empty());
    relay.stop();
}

#[test]
fn a_committed_offset_out_of_retention_says_what_latest_skips() {
    let topic = new_topic("retained", 1);
    let group = unique("retained-g");
    let target = Target::start(Script::default());
    produce_records(
        &topic,
        &(0..10).map(|i| Rec::event(&event(i))).collect::<Vec<_>>(),
    );
    commit_offsets(&group, &topic, &[(0, 2)]);
    delete_records_before(&topic, 0, 6);
    let mut relay = RelayCmd::new(&topic, &group, &target.url())
        .offset_reset("latest")
        .start();
    relay.wait_for_log(
        "the committed offset 2 is no longer on the broker",
        Duration::from_secs(30),
    );
    produce_records(&topic, &[Rec::event(&event(10))]);
    relay.wait_for_log(
        "offsets 2 to 9 (8 offsets) are never relayed",
        Duration::from_secs(30),
    );
    target.wait_delivered(1, Duration::from_secs(10));
    relay.stop();
}
