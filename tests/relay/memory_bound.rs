//! Memory is bounded in bytes, not only in events: with 1 MiB messages and
//! the target down, `max_pending_bytes` (not `max_pending`) stops the
//! intake, and every message arrives once the target is back.

use std::time::Duration;

use serde_json::json;
use support::broker::unique;
use support::events::alert_event;
use support::http_get::{free_port, get};
use support::http_target::{Reserved, Script, Target};
use support::kafka::{new_topic, wait_fully_committed};
use support::records::{Rec, produce_records_with};
use support::relay_cmd::RelayCmd;
use support::wait::wait_until;

/// A metric's value in a Prometheus text page.
fn gauge(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn bytes_in_flight_stay_under_max_pending_bytes_with_megabyte_messages() {
    let topic = new_topic("bigmem", 1);
    let group = unique("bigmem-g");
    let down = Reserved::bind();
    let url = down.url();
    let big: Vec<Rec> = (0..24)
        .map(|i| {
            let mut e = alert_event(i, &format!("big-{i}"), "critical");
            e["padding"] = json!("x".repeat(1_000_000));
            Rec::event(&e)
        })
        .collect();
    produce_records_with(&topic, &big, &[("message.max.bytes", "2000000")]);
    let port = free_port();
    let mut relay = RelayCmd::new(&topic, &group, &url)
        .config(
            "max_pending = 1000\nmax_pending_bytes = 8388608\n[retry]\nmax_backoff = \"500ms\"\n",
        )
        .start_with(&["--metrics-addr", &format!("127.0.0.1:{port}")]);
    relay.wait_for_log("backpressure:", Duration::from_secs(30));
    // Held there: the window's bytes, not a thousand megabyte events.
    let page = || get(port, "/metrics").unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(10), || gauge(
            &page(),
            "kbridge_pending_bytes"
        )
        .is_some_and(|b| b > 0.0)),
        "{}",
        page()
    );
    let bytes = gauge(&page(), "kbridge_pending_bytes").unwrap_or_default();
    let events = gauge(&page(), "kbridge_in_flight_events").unwrap_or_default();
    assert!(bytes <= 8_388_608.0, "{bytes} bytes in processing");
    assert!(events <= 8.0, "{events} events of ~1 MB in processing");
    let target = Target::start_on(down, Script::default());
    wait_fully_committed(&group, &topic, Duration::from_secs(60));
    assert_eq!(target.distinct(), 24, "{}", target.dump());
    relay.stop();
}
