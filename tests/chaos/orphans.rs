//! A revoke while deliveries are stuck retrying: the old owner stops at
//! once, so no request of its comes after the new owner's first — an old
//! owner's late retry of a trigger must never land after the new owner sent
//! the recovery.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use support::events::alert_event;
use support::http_target::Script;
use support::records::{Rec, produce_records};
use support::stream::Sent;
use support::wait::wait_until;

use crate::fleet::{Fleet, exclusive};
use crate::verdict::Verdict;

/// Produces one event of each fault to partition 0 and 1 (fault-0 and
/// fault-1) with this status.
fn produce(fleet: &Fleet, n: usize, status: &str) -> Vec<Sent> {
    let at = Instant::now();
    let recs: Vec<Rec> = (0..2)
        .map(|p| Rec {
            partition: Some(p),
            ..Rec::event(&alert_event(n + p as usize, &format!("fault-{p}"), status))
        })
        .collect();
    produce_records(&fleet.topic, &recs)
        .into_iter()
        .map(|(partition, offset)| Sent {
            key: format!("{}-{partition}-{offset}", fleet.topic),
            partition,
            offset,
            at,
        })
        .collect()
}

#[test]
fn a_revoke_while_deliveries_are_stuck_retrying_leaves_no_orphan() {
    let _one = exclusive();
    let mut fleet = Fleet::new(
        "orphan",
        2,
        Script {
            fail_first: usize::MAX,
            ..Default::default()
        },
    );
    fleet.join("a");
    let mut sent = produce(&fleet, 0, "critical");
    let tried = |fleet: &Fleet, path: &str, times: usize| {
        sent.iter().all(|s| {
            fleet
                .target
                .requests()
                .iter()
                .filter(|r| r.key() == s.key && r.path.ends_with(path))
                .count()
                >= times
        })
    };
    assert!(wait_until(Duration::from_secs(20), || tried(
        &fleet, "/a", 2
    )));
    fleet.join("b");
    let from_b = |fleet: &Fleet| {
        fleet
            .target
            .requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/b"))
            .collect::<Vec<_>>()
    };
    assert!(wait_until(Duration::from_secs(20), || !from_b(&fleet).is_empty()));
    // The recoveries, while the target still refuses; then it answers.
    sent.extend(produce(&fleet, 2, "ok"));
    let moved: BTreeSet<String> = from_b(&fleet)
        .iter()
        .map(|r| {
            r.key()
                .rsplit_once('-')
                .map_or("", |(tp, _)| tp)
                .to_string()
        })
        .collect();
    // Time for an orphan to show itself: a's retries were 0.2–1.6 s apart.
    let b_asked = from_b(&fleet).len();
    assert!(wait_until(Duration::from_secs(20), || from_b(&fleet).len()
        >= b_asked + 3));
    fleet.target.rescript(|s| s.fail_first = 0);
    fleet.wait_committed();

    let b_started = from_b(&fleet).first().map(|r| r.at).expect("b sent");
    let orphans: Vec<String> = fleet
        .target
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/a") && r.at > b_started)
        .filter(|r| {
            moved
                .iter()
                .any(|tp| r.key().starts_with(&format!("{tp}-")))
        })
        .map(|r| format!("#{} {} {}", r.seq, r.key(), r.alert_id()))
        .collect();
    assert!(
        orphans.is_empty(),
        "the old owner sent after the new owner started: {orphans:?}\n{}",
        fleet.target.dump()
    );
    let a = fleet.instance("a");
    assert!(!a.has_log("deliveries still running"), "{}", a.stderr());
    Verdict::of(&sent, &fleet.target).assert(
        "revoke while deliveries are stuck retrying",
        0,
        Duration::from_secs(60),
        &fleet.target,
    );
    fleet.stop_all();
}
