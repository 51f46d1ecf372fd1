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

#[derive(Debug, Default)]
pub(crate) struct OffsetTracker {
    /// Unfinished offsets, each with its parts still to finish (≥ 1).
    pending: BTreeMap<i64, u32>,
    /// One past the highest offset accepted so far.
    next: Option<i64>,
    /// The last value `committable` returned, to report only advances.
    last: Option<i64>,
}

impl OffsetTracker {
    /// Records a message as taken into processing, as `parts` pieces of
    /// work (at least one). Returns false for an offset below one already
    /// taken: a message seen again (librdkafka rewinding a partition behind
    /// our back), which must not be handled twice within one ownership.
    pub(crate) fn accept(&mut self, offset: i64, parts: u32) -> bool {
        if self.next.is_some_and(|n| offset < n) {
            return false;
        }
        self.pending.insert(offset, parts.max(1));
        self.next = Some(offset + 1);
        true
    }

    /// Records one part of a message as handled (delivered, dead-lettered
    /// or skipped); the offset is done with its last part.
    pub(crate) fn finish(&mut self, offset: i64) {
        if let Some(parts) = self.pending.get_mut(&offset) {
            *parts -= 1;
            if *parts == 0 {
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

    /// Returns the committable offset only when it moved since last asked.
    pub(crate) fn advance(&mut self) -> Option<i64> {
        let c = self.committable()?;
        if self.last == Some(c) {
            return None;
        }
        self.last = Some(c);
        Some(c)
    }

    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_only_the_contiguous_prefix() {
        let mut t = OffsetTracker::default();
        assert_eq!(t.advance(), None);
        for o in 10..15 {
            assert!(t.accept(o, 1));
        }
        assert!(!t.accept(12, 1), "seen again");
        assert_eq!(
            t.committable(),
            Some(10),
            "nothing finished: commit point stays at 10"
        );
        t.finish(12);
        t.finish(11);
        assert_eq!(t.advance(), Some(10));
        assert_eq!(t.advance(), None, "unchanged");
        t.finish(10);
        assert_eq!(t.advance(), Some(13));
        t.finish(14);
        assert_eq!(t.advance(), None, "13 still pending");
        t.finish(13);
        assert_eq!(t.advance(), Some(15));
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn gaps_in_offsets_are_fine() {
        // Compacted topics and transactions leave holes in offsets.
        let mut t = OffsetTracker::default();
        t.accept(3, 1);
        t.accept(7, 1);
        t.finish(7);
        assert_eq!(t.advance(), Some(3));
        t.finish(3);
        assert_eq!(t.advance(), Some(8));
    }

    #[test]
    fn an_offset_of_several_parts_is_done_with_the_last() {
        // One event fanned out to three routes.
        let mut t = OffsetTracker::default();
        t.accept(5, 3);
        t.accept(6, 1);
        t.finish(6);
        t.finish(5);
        t.finish(5);
        assert_eq!(t.advance(), Some(5), "one route still delivers offset 5");
        t.finish(5);
        assert_eq!(t.advance(), Some(7));
    }

    mod properties {
        use std::collections::BTreeMap;

        use proptest::prelude::*;

        use super::super::OffsetTracker;

        #[derive(Debug, Clone)]
        enum Op {
            /// Accept the next offset after a gap (compaction,
            /// transactions), as so many parts (routes it fans out to).
            Accept(u8, u32),
            /// Finish one part of the n-th pending offset (modulo how many
            /// are pending).
            Finish(usize),
            /// An offset seen again (a rewind behind kbridge's back).
            Again(usize),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                3 => (any::<u8>(), 1u32..4).prop_map(|(g, parts)| Op::Accept(g % 4, parts)),
                5 => any::<usize>().prop_map(Op::Finish),
                1 => any::<usize>().prop_map(Op::Again),
            ]
        }

        proptest! {
            /// Against a model (the unfinished parts per offset and the
            /// next offset): the commit point is the lowest offset with an
            /// unfinished part, never past it, never moving back, and an
            /// offset seen again is refused.
            #[test]
            fn the_commit_point_never_passes_an_unfinished_offset(
                start in 0i64..1_000_000,
                ops in proptest::collection::vec(op(), 1..300),
            ) {
                let mut t = OffsetTracker::default();
                let mut pending: BTreeMap<i64, u32> = BTreeMap::new();
                let mut seen: Vec<i64> = Vec::new();
                let mut next = start;
                let mut last_point: Option<i64> = None;
                for op in ops {
                    match op {
                        Op::Accept(gap, parts) => {
                            let o = next + i64::from(gap);
                            prop_assert!(t.accept(o, parts));
                            pending.insert(o, parts);
                            seen.push(o);
                            next = o + 1;
                        }
                        Op::Finish(n) => {
                            let nth = pending.keys().nth(n % pending.len().max(1)).copied();
                            if let Some(o) = nth {
                                t.finish(o);
                                let left = pending.get_mut(&o).map(|p| { *p -= 1; *p });
                                if left == Some(0) {
                                    pending.remove(&o);
                                }
                            }
                        }
                        Op::Again(n) => {
                            if !seen.is_empty() {
                                prop_assert!(!t.accept(seen[n % seen.len()], 1));
                            }
                        }
                    }
                    let expected = pending.keys().next().copied().or((!seen.is_empty()).then_some(next));
                    prop_assert_eq!(t.committable(), expected);
                    prop_assert_eq!(t.pending(), pending.len());
                    if let Some(p) = t.advance() {
                        prop_assert!(last_point.is_none_or(|l| p > l), "moved back: {:?} -> {}", last_point, p);
                        prop_assert!(pending.keys().all(|o| *o >= p));
                        last_point = Some(p);
                    }
                }
            }
        }
    }
}
