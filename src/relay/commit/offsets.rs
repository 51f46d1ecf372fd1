//! Which offset of a partition may be committed.
//!
//! Deliveries finish out of order (they run concurrently, and retries take
//! time), but a Kafka commit means "everything before this offset is done".
//! This tracker keeps the offsets accepted and not yet finished, and answers
//! with the contiguous prefix: the lowest unfinished offset, or one past the
//! highest accepted when nothing is pending.
//!
//! One event may be several pieces of work — one per route it fans out to
//! — so an offset counts its unfinished parts and is done with the last.

use std::collections::BTreeMap;

use super::handed_over::{Handled, Ranges};

/// Routes by id (`LiveRoute::id`), one bit each: the routes an offset went
/// to, or still has work on.
pub(crate) type RouteSet = u128;

/// The most routes a relay may have (the bits of a [`RouteSet`]).
pub(crate) const MAX_ROUTES: usize = RouteSet::BITS as usize;

/// The bit of route `id`.
pub(crate) fn route_bit(id: usize) -> RouteSet {
    1u128.checked_shl(id as u32).unwrap_or(0)
}

/// The route ids in a set, ascending.
pub(crate) fn route_ids(mut set: RouteSet) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        let id = (set != 0).then(|| set.trailing_zeros() as usize)?;
        set &= set - 1;
        Some(id)
    })
}

/// An offset with work left.
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// The routes that took the event.
    took: RouteSet,
    /// Those still working on it.
    left: RouteSet,
}

#[derive(Debug, Default)]
pub(crate) struct OffsetTracker {
    /// Unfinished offsets.
    pending: BTreeMap<i64, Pending>,
    /// One past the highest offset accepted so far.
    next: Option<i64>,
    /// The routes that took any offset accepted (a partition is one
    /// topic: the same routes take all of them).
    took: RouteSet,
}

impl OffsetTracker {
    /// Records a message as taken into processing: the routes that `took`
    /// it, of which `work` have a job to do (each finishes its own part).
    /// Returns false for an offset below one already taken: a message seen
    /// again (librdkafka rewinding a partition behind our back), which must
    /// not be handled twice within one ownership.
    pub(crate) fn accept(&mut self, offset: i64, took: RouteSet, work: RouteSet) -> bool {
        if self.next.is_some_and(|n| offset < n) {
            return false;
        }
        self.took |= took;
        if work != 0 {
            self.pending.insert(
                offset,
                Pending {
                    took,
                    left: work & took,
                },
            );
        }
        self.next = Some(offset + 1);
        true
    }

    /// Records route `route`'s part of a message as handled (delivered,
    /// dead-lettered or skipped); the offset is done with its last part.
    pub(crate) fn finish(&mut self, offset: i64, route: RouteSet) {
        if let Some(p) = self.pending.get_mut(&offset) {
            p.left &= !route;
            if p.left == 0 {
                self.pending.remove(&offset);
            }
        }
    }

    /// The offset to commit (the next one to read), if any.
    pub(crate) fn committable(&self) -> Option<i64> {
        self.pending
            .first_key_value()
            .map(|(o, _)| *o)
            .or(self.next)
    }

    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Whether no offset was accepted yet.
    pub(crate) fn is_fresh(&self) -> bool {
        self.next.is_none()
    }

    /// What was handled beyond the commit point: every offset between it
    /// and the next one to read that is not pending (handled, or a gap the
    /// log has no record for), and the pending offsets some of whose
    /// routes are done — named by `name(route id)`.
    pub(crate) fn handled_beyond(&self, name: impl Fn(usize) -> Option<String>) -> Handled {
        let (Some(base), Some(next)) = (self.committable(), self.next) else {
            return Handled::default();
        };
        let mut all = Ranges::new();
        let mut routes: BTreeMap<String, Ranges> = BTreeMap::new();
        let mut from = base;
        for (offset, p) in &self.pending {
            if *offset > from {
                all.push((from, *offset));
            }
            from = offset + 1;
            for id in route_ids(p.took & !p.left) {
                if let Some(n) = name(id) {
                    let r = routes.entry(n).or_default();
                    match r.last_mut() {
                        Some((_, end)) if *end == *offset => *end = offset + 1,
                        _ => r.push((*offset, offset + 1)),
                    }
                }
            }
        }
        if next > from {
            all.push((from, next));
        }
        let took = route_ids(self.took).filter_map(&name).collect();
        Handled {
            base,
            took,
            all,
            routes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_only_the_contiguous_prefix() {
        let mut t = OffsetTracker::default();
        assert_eq!(t.committable(), None);
        for o in 10..15 {
            assert!(t.accept(o, 1, 1));
        }
        assert!(!t.accept(12, 1, 1), "seen again");
        assert_eq!(
            t.committable(),
            Some(10),
            "nothing finished: commit point stays at 10"
        );
        t.finish(12, 1);
        t.finish(11, 1);
        assert_eq!(t.committable(), Some(10));
        assert_eq!(t.committable(), Some(10), "unchanged");
        t.finish(10, 1);
        assert_eq!(t.committable(), Some(13));
        t.finish(14, 1);
        assert_eq!(t.committable(), Some(13), "13 still pending");
        t.finish(13, 1);
        assert_eq!(t.committable(), Some(15));
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn gaps_in_offsets_are_fine() {
        // Compacted topics and transactions leave holes in offsets.
        let mut t = OffsetTracker::default();
        t.accept(3, 1, 1);
        t.accept(7, 1, 1);
        t.finish(7, 1);
        assert_eq!(t.committable(), Some(3));
        t.finish(3, 1);
        assert_eq!(t.committable(), Some(8));
    }

    #[test]
    fn an_offset_of_several_routes_is_done_with_the_last() {
        // One event fanned out to three routes.
        let mut t = OffsetTracker::default();
        t.accept(5, 0b111, 0b111);
        t.accept(6, 1, 1);
        t.finish(6, 1);
        t.finish(5, 0b001);
        t.finish(5, 0b100);
        assert_eq!(
            t.committable(),
            Some(5),
            "one route still delivers offset 5"
        );
        t.finish(5, 0b010);
        assert_eq!(t.committable(), Some(7));
    }

    #[test]
    fn an_offset_without_work_is_done_at_once() {
        let mut t = OffsetTracker::default();
        t.accept(5, 1, 1);
        assert!(
            t.accept(6, 0b11, 0),
            "skipped by every route, or handled before"
        );
        assert_eq!(t.committable(), Some(5));
        t.finish(5, 1);
        assert_eq!(t.committable(), Some(7));
    }

    #[test]
    fn what_was_handled_beyond_the_commit_point_names_offsets_and_routes() {
        let names = |id: usize| Some(["easyops", "chat"][id].to_string());
        let mut t = OffsetTracker::default();
        for o in 100..110 {
            t.accept(o, 0b11, 0b11);
        }
        // 100 pending on both routes; 101–103 done; 104 done on chat only;
        // 105 pending; 106–109 done.
        for o in [101, 102, 103, 106, 107, 108, 109] {
            t.finish(o, 0b01);
            t.finish(o, 0b10);
        }
        t.finish(104, 0b10);
        let h = t.handled_beyond(names);
        assert_eq!(h.base, 100);
        assert_eq!(h.took, vec!["easyops", "chat"]);
        assert_eq!(h.all, vec![(101, 104), (106, 110)]);
        assert_eq!(h.routes["chat"], vec![(104, 105)]);
        assert_eq!(h.routes.len(), 1);
        // Nothing pending: nothing beyond.
        let mut t = OffsetTracker::default();
        t.accept(1, 1, 1);
        t.finish(1, 1);
        assert!(t.handled_beyond(names).is_empty());
    }

    mod properties {
        use std::collections::BTreeMap;

        use proptest::prelude::*;

        use super::super::{OffsetTracker, RouteSet};

        #[derive(Debug, Clone)]
        enum Op {
            /// Accept the next offset after a gap (compaction,
            /// transactions), taken by so many routes, of which a mask
            /// have work (the others skipped it, or handled it before).
            Accept(u8, u32, u8),
            /// Finish one route's part of the n-th pending offset (modulo
            /// how many are pending).
            Finish(usize),
            /// An offset seen again (a rewind behind kbridge's back).
            Again(usize),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                3 => (any::<u8>(), 1u32..4, any::<u8>()).prop_map(|(g, routes, work)| Op::Accept(g % 4, routes, work)),
                5 => any::<usize>().prop_map(Op::Finish),
                1 => any::<usize>().prop_map(Op::Again),
            ]
        }

        proptest! {
            /// Against a model (the routes left per offset and the next
            /// offset): the commit point is the lowest offset with work
            /// left, never past it, never moving back; an offset seen again
            /// is refused; and what is handled beyond the commit point is
            /// exactly the offsets after it with no work left.
            #[test]
            fn the_commit_point_never_passes_an_unfinished_offset(
                start in 0i64..1_000_000,
                ops in proptest::collection::vec(op(), 1..300),
            ) {
                let mut t = OffsetTracker::default();
                let mut pending: BTreeMap<i64, RouteSet> = BTreeMap::new();
                let mut seen: Vec<i64> = Vec::new();
                let mut next = start;
                let mut last_point: Option<i64> = None;
                for op in ops {
                    match op {
                        Op::Accept(gap, routes, work) => {
                            let o = next + i64::from(gap);
                            let took: RouteSet = (1 << routes) - 1;
                            let work = RouteSet::from(work) & took;
                            prop_assert!(t.accept(o, took, work));
                            if work != 0 {
                                pending.insert(o, work);
                            }
                            seen.push(o);
                            next = o + 1;
                        }
                        Op::Finish(n) => {
                            let nth = pending.keys().nth(n % pending.len().max(1)).copied();
                            if let Some(o) = nth {
                                let left = pending[&o];
                                let bit = left & left.wrapping_neg();
                                t.finish(o, bit);
                                if left & !bit == 0 {
                                    pending.remove(&o);
                                } else {
                                    pending.insert(o, left & !bit);
                                }
                            }
                        }
                        Op::Again(n) => {
                            if !seen.is_empty() {
                                prop_assert!(!t.accept(seen[n % seen.len()], 1, 1));
                            }
                        }
                    }
                    let expected = pending.keys().next().copied().or((!seen.is_empty()).then_some(next));
                    prop_assert_eq!(t.committable(), expected);
                    prop_assert_eq!(t.pending(), pending.len());
                    if let Some(p) = t.committable() {
                        prop_assert!(last_point.is_none_or(|l| p >= l), "moved back: {:?} -> {}", last_point, p);
                        prop_assert!(pending.keys().all(|o| *o >= p));
                        last_point = Some(p);
                    }
                    let h = t.handled_beyond(|id| Some(id.to_string()));
                    if let Some(base) = expected {
                        for o in base..next {
                            prop_assert_eq!(super::super::super::handed_over::holds(&h.all, o), !pending.contains_key(&o), "offset {}", o);
                        }
                    }
                }
            }
        }
    }
}
