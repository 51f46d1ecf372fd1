//! Which audit records are not yet acknowledged — so that an offset is
//! committed only once the audit records of the events it covers are
//! durable, without waiting for each record on the hot path.
//!
//! Every record is counted in the current *epoch* when it is handed to
//! the producer; its delivery report settles it, or gives it back to be
//! sent again. A commit takes its offsets first and `mark()` second, which
//! closes the epoch: every event its offsets cover was finished — its
//! record counted — before, so once every epoch up to the mark is settled,
//! the commit may go (`settled`).
//!
//! A count per epoch in atomics, no lock: the delivery tasks count, the
//! producer's report thread settles, and none of them ever waits for
//! another (a lock here, shared by every event and every delivery report,
//! cost the relay a fifth of its throughput on two cores when a holder was
//! descheduled). The committer alone closes epochs and moves `oldest`.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::SeqCst};

/// A record to send again: its epoch, key and value.
pub(crate) struct Unsent {
    pub epoch: u64,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
}

/// The most bytes of records kept to be sent again; beyond it a failed
/// record is given up (counted, said at error level) so that a broken
/// audit topic cannot take the relay's memory.
pub(crate) const MAX_UNSENT_BYTES: usize = 64 << 20;

/// Epochs counted at once: a record unsettled for this many commits
/// shares its count with a newer epoch, which then waits for it too
/// (never the other way round).
const RING: u64 = 1024;

pub(crate) struct Ledger {
    /// The epoch records are counted in now.
    epoch: AtomicU64,
    /// The oldest epoch that may have unsettled records.
    oldest: AtomicU64,
    counts: Box<[AtomicI64]>,
    unsent: Mutex<(VecDeque<Unsent>, usize)>,
}

impl Default for Ledger {
    fn default() -> Self {
        Self {
            epoch: AtomicU64::new(0),
            oldest: AtomicU64::new(0),
            counts: (0..RING).map(|_| AtomicI64::new(0)).collect(),
            unsent: Mutex::new((VecDeque::new(), 0)),
        }
    }
}

impl Ledger {
    fn count(&self, epoch: u64) -> &AtomicI64 {
        &self.counts[(epoch % RING) as usize]
    }

    /// Counts a new record; its epoch, for its delivery report.
    pub(crate) fn begin(&self) -> u64 {
        loop {
            let epoch = self.epoch.load(SeqCst);
            self.count(epoch).fetch_add(1, SeqCst);
            // Counted while its epoch was still open: a `mark` after this
            // sees it. Else count it in the next one.
            if self.epoch.load(SeqCst) == epoch {
                return epoch;
            }
            self.count(epoch).fetch_sub(1, SeqCst);
        }
    }

    /// Counts a record in `epoch`, which the caller keeps from being
    /// settled meanwhile (a hold counted in it: `audit::Hold`).
    pub(crate) fn begin_in(&self, epoch: u64) {
        self.count(epoch).fetch_add(1, SeqCst);
    }

    /// A record of `epoch` was acknowledged (or given up).
    pub(crate) fn settle(&self, epoch: u64) {
        self.count(epoch).fetch_sub(1, SeqCst);
    }

    /// The record failed: kept to be sent again, or — past
    /// [`MAX_UNSENT_BYTES`] — given up (settled); whether it was kept.
    pub(crate) fn failed(&self, unsent: Unsent) -> bool {
        let size = unsent.value.len() + unsent.key.as_ref().map_or(0, Vec::len);
        let mut kept = self.unsent.lock().unwrap_or_else(|p| p.into_inner());
        if kept.1 + size > MAX_UNSENT_BYTES {
            drop(kept);
            self.settle(unsent.epoch);
            return false;
        }
        kept.1 += size;
        kept.0.push_back(unsent);
        true
    }

    /// The records to send again, taken.
    pub(crate) fn take_unsent(&self) -> Vec<Unsent> {
        let mut kept = self.unsent.lock().unwrap_or_else(|p| p.into_inner());
        kept.1 = 0;
        kept.0.drain(..).collect()
    }

    /// Closes the current epoch: a commit waits until it, and every one
    /// before it, is settled.
    pub(crate) fn mark(&self) -> u64 {
        self.epoch.fetch_add(1, SeqCst)
    }

    /// Whether every record of the epochs up to `mark` is settled (the
    /// committer's question: it alone moves `oldest`).
    pub(crate) fn settled(&self, mark: u64) -> bool {
        let mut oldest = self.oldest.load(SeqCst);
        while oldest <= mark {
            if self.count(oldest).load(SeqCst) != 0 {
                return false;
            }
            oldest += 1;
            self.oldest.store(oldest, SeqCst);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_waits_for_what_came_before_it_only() {
        let l = Ledger::default();
        let a = l.begin();
        let b = l.begin();
        let mark = l.mark();
        let c = l.begin();
        l.settle(b);
        assert!(!l.settled(mark));
        l.settle(a);
        assert!(l.settled(mark), "c came after the mark");
        let later = l.mark();
        assert!(!l.settled(later));
        l.settle(c);
        assert!(l.settled(later));
        let empty = l.mark();
        assert!(l.settled(empty));
    }

    #[test]
    fn a_failed_record_holds_the_mark_until_sent_again() {
        let l = Ledger::default();
        let a = l.begin();
        let mark = l.mark();
        assert!(l.failed(Unsent {
            epoch: a,
            key: None,
            value: vec![0; 10],
        }));
        assert!(!l.settled(mark));
        let again = l.take_unsent();
        assert_eq!(again.len(), 1);
        l.settle(again[0].epoch);
        assert!(l.settled(mark));
    }

    #[test]
    fn unsent_bytes_are_bounded() {
        let l = Ledger::default();
        let a = l.begin();
        assert!(!l.failed(Unsent {
            epoch: a,
            key: None,
            value: vec![0; MAX_UNSENT_BYTES + 1],
        }));
        let mark = l.mark();
        assert!(l.settled(mark), "given up, not waited for");
    }

    #[test]
    fn records_counted_under_a_hold_are_waited_for_by_a_mark_taken_meanwhile() {
        let l = Ledger::default();
        let hold = l.begin();
        // The offset became committable; a commit marks before the
        // report is written.
        let mark = l.mark();
        l.begin_in(hold);
        l.settle(hold);
        assert!(!l.settled(mark), "the report's record is not acknowledged");
        l.settle(hold);
        assert!(l.settled(mark));
    }

    #[test]
    fn counting_from_many_threads_never_lets_a_mark_pass_an_unsettled_record() {
        let l = std::sync::Arc::new(Ledger::default());
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let l = l.clone();
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        let e = l.begin();
                        l.settle(e);
                    }
                })
            })
            .collect();
        let held = l.begin();
        for _ in 0..200 {
            let m = l.mark();
            assert!(!l.settled(m), "the held record is not settled");
        }
        for w in workers {
            w.join().unwrap();
        }
        l.settle(held);
        let m = l.mark();
        assert!(l.settled(m));
    }
}
