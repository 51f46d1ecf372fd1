//! Bookkeeping for the partitions this instance owns: which offsets are in
//! processing (for the commit point), which alerts are being delivered (for
//! per-alert ordering), and under which [`Ownership`].
//!
//! Shared between the consume loop, the delivery tasks and the rebalance
//! callback. Hence a std `Mutex`: every critical section is short, never
//! awaits and never waits for the network — a revoke waits for its
//! deliveries on the ownership (without the lock) and commits after
//! releasing it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::handed_over::{BUDGET, Handled, Ranges, holds};
use super::offsets::{OffsetTracker, RouteSet, route_bit};
use super::ordering::{KeyedQueue, OrderKey};
use super::ownership::Ownership;
use super::point::CommitPoint;
use crate::topic_partition::TopicPartition;

struct PartitionState<J> {
    ownership: Ownership,
    offsets: OffsetTracker,
    keys: KeyedQueue<OrderKey, J>,
    /// What the previous owner handled beyond its commit point: skipped
    /// here (see `handed_over`).
    handed_over: Option<HandedOver>,
    /// The last point committed for this ownership, with its metadata.
    committed: Option<(i64, String)>,
}

pub(crate) struct Partitions<J> {
    state: Mutex<HashMap<TopicPartition, PartitionState<J>>>,
    epochs: AtomicU64,
    /// The relay's abort: it ends every ownership.
    abort: CancellationToken,
    /// Route names by id: what a commit's metadata calls them.
    routes: Vec<String>,
}

/// A previous owner's record, its route names turned into this relay's
/// route ids once, at the assignment (not per event).
struct HandedOver {
    base: i64,
    /// The routes here that the record speaks for: a route the writer did
    /// not have is not among them, and gets every event.
    took: RouteSet,
    /// Offsets all of `took` handled.
    all: Ranges,
    /// Offsets some routes handled.
    routes: Vec<(RouteSet, Ranges)>,
}

impl HandedOver {
    fn new(record: Handled, names: &[String]) -> Self {
        let bit = |name: &str| names.iter().position(|n| n == name).map_or(0, route_bit);
        Self {
            base: record.base,
            took: record.took.iter().fold(0, |set, n| set | bit(n)),
            all: record.all,
            routes: record
                .routes
                .into_iter()
                .map(|(name, ranges)| (bit(&name), ranges))
                .filter(|(b, _)| *b != 0)
                .collect(),
        }
    }

    /// The routes of `took` that already handled `offset`.
    fn before(&self, offset: i64, took: RouteSet) -> RouteSet {
        let all = if holds(&self.all, offset) {
            self.took
        } else {
            0
        };
        let some = self
            .routes
            .iter()
            .filter(|(_, ranges)| holds(ranges, offset))
            .fold(0, |set, (b, _)| set | b);
        (all | some) & took
    }
}

impl<J> Default for Partitions<J> {
    fn default() -> Self {
        Self::new(CancellationToken::new(), vec!["default".to_string()])
    }
}

/// Why a message was not taken into processing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Its partition is not (or no longer) owned: revoked meanwhile, its
    /// next owner reads it.
    NotOwned,
    /// An offset this ownership already took (librdkafka rewinding a
    /// partition behind our back): not handled twice.
    SeenAgain,
}

impl<J> Partitions<J> {
    /// `abort` ends every ownership when the drain gives up; `routes` are
    /// the route names by id.
    pub(crate) fn new(abort: CancellationToken, routes: Vec<String>) -> Self {
        Self {
            state: Mutex::new(HashMap::new()),
            epochs: AtomicU64::new(1),
            abort,
            routes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<TopicPartition, PartitionState<J>>> {
        // A panic while holding the lock cannot leave the maps half-updated
        // in a way that matters more than stopping would; keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// New ownership of these partitions, with what their previous owner
    /// handled beyond its commit point (`handed_over`, by partition). A
    /// partition already owned keeps its ownership: its events in
    /// processing must still count for its commit point.
    pub(crate) fn assign(
        &self,
        tps: impl IntoIterator<Item = TopicPartition>,
        mut handed_over: HashMap<TopicPartition, Handled>,
    ) {
        let mut s = self.lock();
        for tp in tps {
            let handed_over = handed_over
                .remove(&tp)
                .map(|h| HandedOver::new(h, &self.routes));
            s.entry(tp).or_insert_with(|| PartitionState {
                ownership: Ownership::new(self.epochs.fetch_add(1, Ordering::Relaxed), &self.abort),
                offsets: OffsetTracker::default(),
                keys: KeyedQueue::default(),
                handed_over,
                committed: None,
            });
        }
    }

    /// The current ownerships of these partitions (those owned).
    pub(crate) fn ownerships(&self, tps: &[TopicPartition]) -> Vec<(TopicPartition, Ownership)> {
        let s = self.lock();
        tps.iter()
            .filter_map(|tp| Some((tp.clone(), s.get(tp)?.ownership.clone())))
            .collect()
    }

    /// Takes a message into processing under its partition's current
    /// ownership: the routes that `took` it, of which `work` have a job to
    /// do. Returns the ownership and the routes that already handled it
    /// before the partition came here (skipped: the previous owner's
    /// commit said so); the offset is handled when every other route of
    /// `work` finished its part.
    pub(crate) fn accept(
        &self,
        tp: &TopicPartition,
        offset: i64,
        took: RouteSet,
        work: RouteSet,
    ) -> Result<(Ownership, RouteSet), Refused> {
        let mut s = self.lock();
        let state = s.get_mut(tp).ok_or(Refused::NotOwned)?;
        // The record speaks of the log its writer read from its base on:
        // reading below it (the committed offset was out of range and the
        // partition reset, the log truncated) is another history.
        if state.offsets.is_fresh() && state.handed_over.as_ref().is_some_and(|h| offset < h.base) {
            tracing::warn!(partition = %tp, offset, "reading below the previous owner's commit point: its record of what it handled beyond it is not used");
            state.handed_over = None;
        }
        let before = state
            .handed_over
            .as_ref()
            .map_or(0, |h| h.before(offset, took));
        if state.offsets.accept(offset, took, work & !before) {
            Ok((state.ownership.clone(), before))
        } else {
            Err(Refused::SeenAgain)
        }
    }

    /// Queues a job behind the active one of its key (calling `on_queue` on
    /// it first); returns it when it may start now. A job for a partition no
    /// longer owned is dropped.
    pub(crate) fn submit(
        &self,
        tp: &TopicPartition,
        epoch: u64,
        key: OrderKey,
        job: J,
        on_queue: impl FnOnce(&mut J),
    ) -> Option<J> {
        let mut s = self.lock();
        match s.get_mut(tp) {
            Some(state) if state.ownership.epoch == epoch => state.keys.submit(key, job, on_queue),
            _ => None,
        }
    }

    /// Marks route `route`'s part of an offset handled, and returns the
    /// next job of the same key, if one waits.
    pub(crate) fn finish(
        &self,
        tp: &TopicPartition,
        epoch: u64,
        offset: i64,
        route: usize,
        key: Option<&OrderKey>,
    ) -> Option<J> {
        let mut s = self.lock();
        match s.get_mut(tp) {
            Some(state) if state.ownership.epoch == epoch => {
                state.offsets.finish(offset, route_bit(route));
                key.and_then(|k| state.keys.finish(k))
            }
            _ => None,
        }
    }

    /// A partition's commit point with what was handled beyond it, as the
    /// commit's metadata.
    fn point(&self, tp: &TopicPartition, st: &PartitionState<J>) -> Option<CommitPoint> {
        let offset = st.offsets.committable()?;
        let metadata = st
            .offsets
            .handled_beyond(|id| self.routes.get(id).cloned())
            .encode(BUDGET);
        let mut point = CommitPoint::new(tp.clone(), offset).with_metadata(metadata);
        point.epoch = st.ownership.epoch;
        Some(point)
    }

    /// The commit points (with their metadata) that moved since they were
    /// last committed: what the periodic commit sends.
    pub(crate) fn to_commit(&self) -> Vec<CommitPoint> {
        let s = self.lock();
        s.iter()
            .filter_map(|(tp, st)| {
                let p = self.point(tp, st)?;
                let same = st
                    .committed
                    .as_ref()
                    .is_some_and(|(o, m)| *o == p.offset && *m == p.metadata);
                (!same).then_some(p)
            })
            .collect()
    }

    /// Records these points as committed (for partitions still owned).
    pub(crate) fn committed(&self, points: &[CommitPoint]) {
        let mut s = self.lock();
        for p in points {
            // Not into a later ownership of the same partition (revoked
            // and assigned again while this commit ran).
            if let Some(st) = s.get_mut(&p.partition)
                && st.ownership.epoch == p.epoch
            {
                st.committed = Some((p.offset, p.metadata.clone()));
            }
        }
    }

    /// Gives up these partitions and returns their commit points, for the
    /// caller to commit (after the lock is released). Their ownerships end
    /// at once: no attempt starts and no retry waits any more. Requests on
    /// the wire get until `wait` to finish; then they are dropped, and the
    /// partitions are forgotten. Blocking (up to `wait`).
    pub(crate) fn revoke(&self, tps: &[TopicPartition], wait: Duration) -> Vec<CommitPoint> {
        let deadline = Instant::now() + wait;
        let ending: Vec<Ownership> = {
            let s = self.lock();
            tps.iter()
                .filter_map(|tp| s.get(tp))
                .map(|st| st.ownership.clone())
                .collect()
        };
        for o in &ending {
            o.end();
        }
        let stuck = ending.iter().filter(|o| !o.wait_idle(deadline)).count();
        if stuck > 0 {
            tracing::warn!(
                partitions = stuck,
                "partitions revoked with deliveries still running after {wait:?}; they are cancelled, and the new owner sends their events"
            );
        }
        for o in &ending {
            o.revoke();
        }
        let mut s = self.lock();
        tps.iter()
            .filter_map(|tp| {
                let st = s.remove(tp)?;
                self.point(tp, &st)
            })
            .collect()
    }

    /// Events in processing, over all partitions.
    pub(crate) fn pending(&self) -> usize {
        self.lock().values().map(|st| st.offsets.pending()).sum()
    }

    /// The epoch of a partition's current ownership; `None` if not owned.
    pub(crate) fn epoch_of(&self, tp: &TopicPartition) -> Option<u64> {
        self.lock().get(tp).map(|st| st.ownership.epoch)
    }

    /// Owned partitions.
    pub(crate) fn owned(&self) -> Vec<TopicPartition> {
        self.lock().keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("t", p)
    }

    fn revoke(
        parts: &Partitions<u32>,
        tps: &[TopicPartition],
        wait: Duration,
    ) -> Vec<(TopicPartition, i64)> {
        parts
            .revoke(tps, wait)
            .into_iter()
            .map(|p| (p.partition, p.offset))
            .collect()
    }

    fn epoch(parts: &Partitions<u32>, p: i32, offset: i64) -> u64 {
        parts
            .accept(&tp(p), offset, 1, 1)
            .expect("accepted")
            .0
            .epoch
    }

    fn assign<const N: usize>(parts: &Partitions<u32>, tps: [TopicPartition; N]) {
        parts.assign(tps, HashMap::new());
    }

    /// Partition `p`'s commit point now, as the periodic commit sees it.
    fn point(parts: &Partitions<u32>, p: i32) -> Option<i64> {
        parts
            .to_commit()
            .into_iter()
            .find(|c| c.partition == tp(p))
            .map(|c| c.offset)
    }

    fn key(k: &str) -> OrderKey {
        OrderKey::new(0, k.into())
    }

    /// Finishes an offset of partition 0; returns its commit point then
    /// and the next job.
    fn finish(
        parts: &Partitions<u32>,
        e: u64,
        o: i64,
        key: Option<&str>,
    ) -> (Option<i64>, Option<u32>) {
        let key = key.map(self::key);
        let next = parts.finish(&tp(0), e, o, 0, key.as_ref());
        (point(parts, 0), next)
    }

    #[test]
    fn late_completions_of_a_previous_owner_are_ignored() {
        let parts: Partitions<u32> = Partitions::default();
        assign(&parts, [tp(0)]);
        let e1 = epoch(&parts, 0, 5);
        assert_eq!(revoke(&parts, &[tp(0)], Duration::ZERO), vec![(tp(0), 5)]);
        assign(&parts, [tp(0)]);
        let e2 = epoch(&parts, 0, 5);
        assert_ne!(e1, e2);
        assert_eq!(finish(&parts, e1, 5, None), (Some(5), None));
        assert_eq!(finish(&parts, e2, 5, None), (Some(6), None));
    }

    #[test]
    fn an_offset_seen_again_or_of_a_partition_not_owned_is_refused() {
        let parts: Partitions<u32> = Partitions::default();
        assert_eq!(parts.accept(&tp(0), 7, 1, 1).err(), Some(Refused::NotOwned));
        assign(&parts, [tp(0)]);
        assert!(parts.accept(&tp(0), 7, 1, 1).is_ok());
        assert_eq!(
            parts.accept(&tp(0), 7, 1, 1).err(),
            Some(Refused::SeenAgain)
        );
        assert_eq!(
            parts.accept(&tp(0), 3, 1, 1).err(),
            Some(Refused::SeenAgain)
        );
        assert!(parts.accept(&tp(0), 8, 1, 1).is_ok());
    }

    #[test]
    fn assigning_an_owned_partition_again_keeps_its_events() {
        let parts: Partitions<u32> = Partitions::default();
        assign(&parts, [tp(0)]);
        let e = epoch(&parts, 0, 1);
        assign(&parts, [tp(0), tp(1)]);
        assert_eq!(epoch(&parts, 0, 2), e);
        assert_eq!(finish(&parts, e, 2, None), (Some(1), None));
        assert_eq!(finish(&parts, e, 1, None), (Some(3), None));
    }

    #[test]
    fn revoke_ends_the_ownership_and_waits_for_its_running_deliveries() {
        let parts: std::sync::Arc<Partitions<u32>> = std::sync::Arc::default();
        assign(&parts, [tp(1)]);
        let ownership = parts.accept(&tp(1), 0, 1, 1).expect("accepted").0;
        let running = ownership.run();
        let p2 = parts.clone();
        let t = std::thread::spawn(move || revoke(&p2, &[tp(1)], Duration::from_secs(10)));
        // The delivery task sees the revoke, finishes its event and stops;
        // the revoke returns only then.
        while !ownership.is_ending() {
            std::thread::yield_now();
        }
        parts.finish(&tp(1), ownership.epoch, 0, 0, None);
        drop(running);
        assert_eq!(t.join().unwrap(), vec![(tp(1), 1)]);
    }

    #[test]
    fn a_delivery_still_running_after_the_wait_is_revoked() {
        let parts: Partitions<u32> = Partitions::default();
        assign(&parts, [tp(0)]);
        let ownership = parts.accept(&tp(0), 4, 1, 1).expect("accepted").0;
        let _running = ownership.run();
        assert_eq!(
            revoke(&parts, &[tp(0)], Duration::from_millis(10)),
            vec![(tp(0), 4)],
            "the unfinished event is not committed"
        );
        let revoked = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
            .block_on(async {
                tokio::time::timeout(Duration::from_secs(5), ownership.revoked()).await
            });
        assert!(revoked.is_ok(), "the delivery is told to stop");
    }

    #[test]
    fn same_key_jobs_wait_in_order() {
        let parts: Partitions<u32> = Partitions::default();
        assign(&parts, [tp(0)]);
        let e = epoch(&parts, 0, 1);
        epoch(&parts, 0, 2);
        epoch(&parts, 0, 3);
        assert_eq!(parts.submit(&tp(0), e, key("a"), 1, |_| {}), Some(1));
        let mut second_waiting = false;
        assert_eq!(
            parts.submit(&tp(0), e, key("a"), 2, |_| second_waiting = true),
            None
        );
        assert!(!second_waiting, "the first to wait keeps its slot");
        let mut third_waiting = false;
        assert_eq!(
            parts.submit(&tp(0), e, key("a"), 3, |_| third_waiting = true),
            None
        );
        assert!(third_waiting);
        assert_eq!(finish(&parts, e, 1, Some("a")), (Some(2), Some(2)));
        assert_eq!(finish(&parts, e, 2, Some("a")), (Some(3), Some(3)));
        assert_eq!(finish(&parts, e, 3, Some("a")), (Some(4), None));
    }

    #[test]
    fn what_the_previous_owner_handled_is_skipped_and_handed_on() {
        // Routes 0 "easyops" and 1 "chat". The first owner handles 11 and
        // 12 on both routes and 13 on chat, while 10 is stuck; it is
        // revoked.
        let routes = vec!["easyops".to_string(), "chat".to_string()];
        let first: Partitions<u32> = Partitions::new(CancellationToken::new(), routes.clone());
        first.assign([tp(0)], HashMap::new());
        let mut e = 0;
        for o in 10..15 {
            e = first.accept(&tp(0), o, 0b11, 0b11).unwrap().0.epoch;
        }
        for o in [11, 12] {
            first.finish(&tp(0), e, o, 0, None);
            first.finish(&tp(0), e, o, 1, None);
        }
        first.finish(&tp(0), e, 13, 1, None);
        let points = first.revoke(&[tp(0)], Duration::ZERO);
        assert_eq!(points[0].offset, 10);
        assert_eq!(points[0].metadata, "kb1;10;easyops,chat;r1.2;chat=r3.1");
        // The next owner reads the record and skips what it names.
        let handed = Handled::decode(&points[0].metadata, 10).unwrap().unwrap();
        let next: Partitions<u32> = Partitions::new(CancellationToken::new(), routes);
        next.assign([tp(0)], HashMap::from([(tp(0), handed)]));
        let before = |o| next.accept(&tp(0), o, 0b11, 0b11).unwrap().1;
        assert_eq!(before(10), 0);
        assert_eq!(before(11), 0b11);
        assert_eq!(before(12), 0b11);
        assert_eq!(before(13), 0b10, "chat had it; easyops had not");
        assert_eq!(before(14), 0);
        // What it skipped is handled here too: handed on if it moves on.
        let p = next.to_commit();
        assert_eq!(p[0].offset, 10);
        assert_eq!(p[0].metadata, "kb1;10;easyops,chat;r1.2;chat=r3.1");
    }

    #[test]
    fn a_route_the_previous_owner_did_not_have_gets_every_event() {
        let handed = Handled::decode("kb1;10;easyops;r1.5", 10).unwrap().unwrap();
        let routes = vec!["easyops".to_string(), "chat".to_string()];
        let parts: Partitions<u32> = Partitions::new(CancellationToken::new(), routes);
        parts.assign([tp(0)], HashMap::from([(tp(0), handed)]));
        assert_eq!(parts.accept(&tp(0), 10, 0b11, 0b11).unwrap().1, 0);
        assert_eq!(
            parts.accept(&tp(0), 11, 0b11, 0b11).unwrap().1,
            0b01,
            "easyops handled it; chat is new"
        );
    }

    #[test]
    fn reading_below_the_record_s_base_drops_the_record() {
        let handed = Handled::decode("kb1;10;default;r1.5", 10).unwrap().unwrap();
        let parts: Partitions<u32> = Partitions::default();
        parts.assign([tp(0)], HashMap::from([(tp(0), handed)]));
        // A reset to an earlier offset: another history.
        assert_eq!(parts.accept(&tp(0), 3, 1, 1).unwrap().1, 0);
        for o in 4..16 {
            assert_eq!(parts.accept(&tp(0), o, 1, 1).unwrap().1, 0, "offset {o}");
        }
    }

    mod properties {
        use std::collections::BTreeSet;
        use std::time::Duration;

        use proptest::prelude::*;

        use super::super::Partitions;
        use crate::topic_partition::TopicPartition;

        #[derive(Debug, Clone)]
        enum Op {
            /// A new ownership (after a rebalance), reading again from the
            /// last committed point.
            Assign,
            Accept(u8),
            /// Finish the n-th outstanding event, of this ownership or a
            /// previous one (a late delivery task).
            Finish(usize),
            Revoke,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                1 => Just(Op::Assign),
                4 => any::<u8>().prop_map(|g| Op::Accept(g % 3)),
                4 => any::<usize>().prop_map(Op::Finish),
                1 => Just(Op::Revoke),
            ]
        }

        proptest! {
            /// Under any interleaving of assign / accept / finish / revoke,
            /// a point stored or committed never passes an offset of its
            /// ownership that is not finished, never moves back within an
            /// ownership, and a late finish of an earlier ownership moves
            /// nothing.
            #[test]
            fn no_commit_point_passes_an_unhandled_offset(
                ops in proptest::collection::vec(op(), 1..300),
            ) {
                let parts: Partitions<u32> = Partitions::default();
                let tp = TopicPartition::new("t", 0);
                let mut epoch: Option<u64> = None;
                let mut pending: BTreeSet<i64> = BTreeSet::new();
                // (epoch, offset) of every event not finished yet.
                let mut outstanding: Vec<(u64, i64)> = Vec::new();
                let mut next = 0i64;
                let mut committed: Option<i64> = None;
                let mut owned = false;
                let mut last_stored: Option<i64> = None;
                for op in ops {
                    match op {
                        Op::Assign => {
                            if owned {
                                // Already owned: the ownership stays.
                                parts.assign([tp.clone()], Default::default());
                                continue;
                            }
                            parts.assign([tp.clone()], Default::default());
                            owned = true;
                            epoch = None;
                            pending.clear();
                            next = committed.unwrap_or(0);
                            last_stored = None;
                        }
                        Op::Accept(gap) => {
                            if !owned {
                                continue;
                            }
                            let o = next + i64::from(gap);
                            let e = parts.accept(&tp, o, 1, 1).map(|o| o.0.epoch);
                            prop_assert!(e.is_ok());
                            let e = e.unwrap_or_default();
                            prop_assert!(epoch.is_none_or(|cur| cur == e));
                            epoch = Some(e);
                            pending.insert(o);
                            outstanding.push((e, o));
                            next = o + 1;
                        }
                        Op::Finish(n) => {
                            if outstanding.is_empty() {
                                continue;
                            }
                            let (e, o) = outstanding.remove(n % outstanding.len());
                            let before = parts.to_commit().first().map(|p| p.offset);
                            parts.finish(&tp, e, o, 0, None);
                            let point = parts.to_commit().first().map(|p| p.offset);
                            if Some(e) == epoch {
                                pending.remove(&o);
                                if let Some(p) = point {
                                    prop_assert!(pending.iter().all(|x| *x >= p), "point {} past pending {:?}", p, pending);
                                    prop_assert!(p <= next);
                                    prop_assert!(last_stored.is_none_or(|l| p >= l));
                                    last_stored = Some(p);
                                }
                            } else {
                                prop_assert_eq!(point, before, "a late finish of an earlier ownership moved the point");
                            }
                        }
                        Op::Revoke => {
                            let points: Vec<i64> = parts
                                .revoke(std::slice::from_ref(&tp), Duration::ZERO)
                                .iter()
                                .map(|p| p.offset)
                                .collect();
                            owned = false;
                            if let Some(&p) = points.first() {
                                prop_assert!(pending.iter().all(|x| *x >= p), "committed {} past pending {:?}", p, pending);
                                committed = Some(p);
                            }
                            epoch = None;
                            pending.clear();
                            last_stored = None;
                        }
                    }
                }
            }
        }
    }
}
