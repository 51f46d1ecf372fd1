//! Bookkeeping for the partitions this instance owns: which offsets are in
//! processing (for the commit point) and which alerts are being delivered
//! (for per-alert ordering).
//!
//! Shared between the consume loop, the delivery tasks and the rebalance
//! callback, which runs inside librdkafka's poll and must wait — with a
//! bound — for the revoked partitions' deliveries before committing them.
//! Hence a std `Mutex` and `Condvar`: every critical section is short and
//! never awaits.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::offsets::OffsetTracker;
use super::ordering::KeyedQueue;
use super::point::CommitPoint;
use crate::topic_partition::TopicPartition;

struct PartitionState<J> {
    /// Changes on every (re)assignment, so that late completions from a
    /// previous ownership are ignored.
    epoch: u64,
    offsets: OffsetTracker,
    keys: KeyedQueue<String, J>,
}

pub(crate) struct Partitions<J> {
    state: Mutex<HashMap<TopicPartition, PartitionState<J>>>,
    changed: Condvar,
    epochs: AtomicU64,
}

impl<J> Default for Partitions<J> {
    fn default() -> Self {
        Self {
            state: Mutex::new(HashMap::new()),
            changed: Condvar::new(),
            epochs: AtomicU64::new(1),
        }
    }
}

impl<J> Partitions<J> {
    fn lock(&self) -> MutexGuard<'_, HashMap<TopicPartition, PartitionState<J>>> {
        // A panic while holding the lock cannot leave the maps half-updated
        // in a way that matters more than stopping would; keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fresh(&self) -> PartitionState<J> {
        PartitionState {
            epoch: self.epochs.fetch_add(1, Ordering::Relaxed),
            offsets: OffsetTracker::default(),
            keys: KeyedQueue::default(),
        }
    }

    /// New ownership of these partitions.
    pub(crate) fn assign(&self, tps: impl IntoIterator<Item = TopicPartition>) {
        let mut s = self.lock();
        for tp in tps {
            let fresh = self.fresh();
            s.insert(tp, fresh);
        }
    }

    /// Takes a message into processing; returns the ownership epoch, or
    /// `None` for an offset this ownership already took.
    pub(crate) fn accept(&self, tp: &TopicPartition, offset: i64) -> Option<u64> {
        let mut s = self.lock();
        let state = s.entry(tp.clone()).or_insert_with(|| self.fresh());
        state.offsets.accept(offset).then_some(state.epoch)
    }

    /// Queues a job behind the active one of its key (calling `on_queue` on
    /// it first); returns it when it may start now. A job for a partition no
    /// longer owned is dropped.
    pub(crate) fn submit(
        &self,
        tp: &TopicPartition,
        epoch: u64,
        key: String,
        job: J,
        on_queue: impl FnOnce(&mut J),
    ) -> Option<J> {
        let mut s = self.lock();
        match s.get_mut(tp) {
            Some(state) if state.epoch == epoch => state.keys.submit(key, job, on_queue),
            _ => None,
        }
    }

    /// Marks an offset handled, hands a moved commit point to `store`, and
    /// returns the next job of the same key, if one waits.
    ///
    /// `store` runs under the lock: a revoke (which takes the lock, commits
    /// and forgets the partition) can then never be followed by a late,
    /// older store that librdkafka would commit when it unassigns.
    pub(crate) fn finish(
        &self,
        tp: &TopicPartition,
        epoch: u64,
        offset: i64,
        key: Option<&String>,
        store: impl FnOnce(&CommitPoint),
    ) -> Option<J> {
        let mut s = self.lock();
        let next = match s.get_mut(tp) {
            Some(state) if state.epoch == epoch => {
                state.offsets.finish(offset);
                if let Some(offset) = state.offsets.advance() {
                    store(&CommitPoint::new(tp.clone(), offset));
                }
                key.and_then(|k| state.keys.finish(k))
            }
            _ => None,
        };
        drop(s);
        self.changed.notify_all();
        next
    }

    /// Gives up these partitions: waits up to `wait` for their pending
    /// events, then hands their commit points to `commit` (under the lock)
    /// and forgets them.
    pub(crate) fn revoke(
        &self,
        tps: &[TopicPartition],
        wait: Duration,
        commit: impl FnOnce(&[CommitPoint]),
    ) {
        let deadline = Instant::now() + wait;
        let mut s = self.lock();
        loop {
            let pending: usize = tps
                .iter()
                .filter_map(|tp| s.get(tp))
                .map(|st| st.offsets.pending())
                .sum();
            let now = Instant::now();
            if pending == 0 || now >= deadline {
                if pending > 0 {
                    tracing::warn!(
                        pending,
                        "partitions revoked with deliveries still running; their events will be read again by the new owner"
                    );
                }
                break;
            }
            s = self
                .changed
                .wait_timeout(s, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        let points: Vec<CommitPoint> = tps
            .iter()
            .filter_map(|tp| {
                let st = s.remove(tp)?;
                Some(CommitPoint::new(tp.clone(), st.offsets.committable()?))
            })
            .collect();
        commit(&points);
    }

    /// Events in processing, over all partitions.
    pub(crate) fn pending(&self) -> usize {
        self.lock().values().map(|st| st.offsets.pending()).sum()
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
        let mut out = Vec::new();
        parts.revoke(tps, wait, |points| {
            out = points
                .iter()
                .map(|p| (p.partition.clone(), p.offset))
                .collect()
        });
        out
    }

    /// Finishes an offset; returns the stored point and the next job.
    fn finish(
        parts: &Partitions<u32>,
        e: u64,
        o: i64,
        key: Option<&str>,
    ) -> (Option<i64>, Option<u32>) {
        let mut stored = None;
        let key = key.map(String::from);
        let next = parts.finish(&tp(0), e, o, key.as_ref(), |p| stored = Some(p.offset));
        (stored, next)
    }

    #[test]
    fn late_completions_of_a_previous_owner_are_ignored() {
        let parts: Partitions<u32> = Partitions::default();
        parts.assign([tp(0)]);
        let e1 = parts.accept(&tp(0), 5).unwrap();
        assert_eq!(revoke(&parts, &[tp(0)], Duration::ZERO), vec![(tp(0), 5)]);
        parts.assign([tp(0)]);
        let e2 = parts.accept(&tp(0), 5).unwrap();
        assert_ne!(e1, e2);
        assert_eq!(finish(&parts, e1, 5, None), (None, None));
        assert_eq!(finish(&parts, e2, 5, None), (Some(6), None));
    }

    #[test]
    fn an_offset_seen_again_is_refused() {
        let parts: Partitions<u32> = Partitions::default();
        assert!(parts.accept(&tp(0), 7).is_some());
        assert!(parts.accept(&tp(0), 7).is_none());
        assert!(parts.accept(&tp(0), 3).is_none());
        assert!(parts.accept(&tp(0), 8).is_some());
    }

    #[test]
    fn revoke_waits_for_pending_deliveries() {
        let parts: std::sync::Arc<Partitions<u32>> = std::sync::Arc::default();
        parts.assign([tp(1)]);
        let e = parts.accept(&tp(1), 0).unwrap();
        let p2 = parts.clone();
        let t = std::thread::spawn(move || revoke(&p2, &[tp(1)], Duration::from_secs(10)));
        // The revoke returns only once offset 0 is finished.
        parts.finish(&tp(1), e, 0, None, |_| {});
        assert_eq!(t.join().unwrap(), vec![(tp(1), 1)]);
    }

    #[test]
    fn same_key_jobs_wait_in_order() {
        let parts: Partitions<u32> = Partitions::default();
        let e = parts.accept(&tp(0), 1).unwrap();
        parts.accept(&tp(0), 2);
        parts.accept(&tp(0), 3);
        assert_eq!(parts.submit(&tp(0), e, "a".into(), 1, |_| {}), Some(1));
        let mut second_waiting = false;
        assert_eq!(
            parts.submit(&tp(0), e, "a".into(), 2, |_| second_waiting = true),
            None
        );
        assert!(!second_waiting, "the first to wait keeps its slot");
        let mut third_waiting = false;
        assert_eq!(
            parts.submit(&tp(0), e, "a".into(), 3, |_| third_waiting = true),
            None
        );
        assert!(third_waiting);
        assert_eq!(finish(&parts, e, 1, Some("a")), (Some(2), Some(2)));
        assert_eq!(finish(&parts, e, 2, Some("a")), (Some(3), Some(3)));
        assert_eq!(finish(&parts, e, 3, Some("a")), (Some(4), None));
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
                let mut last_stored: Option<i64> = None;
                for op in ops {
                    match op {
                        Op::Assign => {
                            parts.assign([tp.clone()]);
                            epoch = None;
                            pending.clear();
                            next = committed.unwrap_or(0);
                            last_stored = None;
                        }
                        Op::Accept(gap) => {
                            let o = next + i64::from(gap);
                            let e = parts.accept(&tp, o);
                            prop_assert!(e.is_some());
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
                            let mut stored = None;
                            parts.finish(&tp, e, o, None, |p| stored = Some(p.offset));
                            if Some(e) == epoch {
                                pending.remove(&o);
                                if let Some(p) = stored {
                                    prop_assert!(pending.iter().all(|x| *x >= p), "stored {} past pending {:?}", p, pending);
                                    prop_assert!(p <= next);
                                    prop_assert!(last_stored.is_none_or(|l| p > l));
                                    last_stored = Some(p);
                                }
                            } else {
                                prop_assert_eq!(stored, None, "a late finish of an earlier ownership stored a point");
                            }
                        }
                        Op::Revoke => {
                            let mut points = Vec::new();
                            parts.revoke(std::slice::from_ref(&tp), Duration::ZERO, |p| {
                                points = p.iter().map(|p| p.offset).collect()
                            });
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
