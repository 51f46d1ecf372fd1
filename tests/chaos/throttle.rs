//! A target that throttles (429 with `Retry-After`) while instances come
//! and go: no instance asks again sooner than it was told, and nothing is
//! lost or sent twice.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use support::http_target::{Request, Script};
use support::wait::wait_until;

use crate::fleet::{Fleet, RATE, exclusive};
use crate::verdict::Verdict;

const RETRY_AFTER: Duration = Duration::from_secs(2);
/// The relay's default `retry.max_backoff`: the longest wait between two
/// attempts once the target answers again.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[test]
fn a_throttling_target_while_instances_come_and_go() {
    let _one = exclusive();
    let mut fleet = Fleet::new(
        "throttle",
        6,
        Script {
            fail_first: usize::MAX,
            fail_status: Some(429),
            retry_after: Some(RETRY_AFTER.as_secs().to_string()),
            ..Default::default()
        },
    );
    fleet.join("a");
    fleet.join("b");
    let started = Instant::now();
    fleet.start_stream();
    let throttled = |n: usize| {
        move |fleet: &Fleet| {
            fleet
                .target
                .requests()
                .iter()
                .filter(|r| r.status == 429)
                .count()
                >= n
        }
    };
    assert!(wait_until(Duration::from_secs(30), || throttled(
        RATE as usize
    )(&fleet)));
    fleet.join("c");
    // A stops while its alerts are throttled: its drain waits for them.
    fleet.instance("a").signal("TERM");
    fleet
        .instance("a")
        .wait_for_log("waiting for in-flight deliveries", Duration::from_secs(30));
    let count = fleet.target.requests().len();
    assert!(wait_until(Duration::from_secs(30), || fleet
        .target
        .requests()
        .len()
        > count + RATE as usize));
    fleet.target.rescript(|s| s.fail_first = 0);
    let throttled_for = started.elapsed();
    let a = fleet.instance("a");
    let status = a.expect_exit(Duration::from_secs(30));
    assert!(status.success(), "{status:?}\n{}", a.stderr());
    let now = fleet.target.delivered().len();
    assert!(wait_until(Duration::from_secs(60), || fleet
        .target
        .delivered()
        .len()
        >= now + 3 * RATE as usize));
    let sent = fleet.stop_stream();
    fleet.wait_committed();

    let early = retried_too_soon(&fleet.target.requests());
    assert!(
        early.is_empty(),
        "retried sooner than Retry-After: {early:?}"
    );
    Verdict::of(&sent, &fleet.target).assert(
        "429 with Retry-After: 2 while instances come and go",
        0,
        throttled_for + MAX_BACKOFF + Duration::from_secs(5),
        &fleet.target,
    );
    fleet.stop_all();
}

/// Requests that one instance (path) sent again for one event (key) less
/// than `Retry-After` after a 429.
fn retried_too_soon(requests: &[Request]) -> Vec<String> {
    let mut by_sender: BTreeMap<(&str, &str), Vec<&Request>> = BTreeMap::new();
    for r in requests {
        by_sender.entry((&r.path, r.key())).or_default().push(r);
    }
    by_sender
        .into_iter()
        .flat_map(|((path, key), rs)| {
            rs.windows(2)
                .filter(|w| w[0].status == 429 && w[1].at - w[0].at < RETRY_AFTER)
                .map(|w| format!("{path} {key}: again after {:?}", w[1].at - w[0].at))
                .collect::<Vec<_>>()
        })
        .collect()
}
