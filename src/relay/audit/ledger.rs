//! Which audit records are not yet acknowledged — so that an offset is
//! committed only once the audit records of the events it covers are
//! durable, without waiting for each record on the hot path.
//!
//! Every record gets a sequence number when it is handed to the producer;
//! its delivery report settles it, or gives it back to be sent again. A
//! commit takes its offsets first and `mark()` second: every event its
//! offsets cover was finished — its record numbered — before, so once
//! every number below the mark is settled, the commit may go (`settled`).
//! Pure and synchronous: the producer and the waiting are `audit/mod.rs`.

use std::collections::{BTreeSet, VecDeque};

/// A record to send again: its number, key and value.
pub(crate) struct Unsent {
    pub seq: u64,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
}

/// The most bytes of records kept to be sent again; beyond it a failed
/// record is given up (counted, said at error level) so that a broken
/// audit topic cannot take the relay's memory.
pub(crate) const MAX_UNSENT_BYTES: usize = 64 << 20;

#[derive(Default)]
pub(crate) struct Ledger {
    next: u64,
    pending: BTreeSet<u64>,
    unsent: VecDeque<Unsent>,
    unsent_bytes: usize,
}

impl Ledger {
    /// Numbers a new record.
    pub(crate) fn begin(&mut self) -> u64 {
        let seq = self.next;
        self.next += 1;
        self.pending.insert(seq);
        seq
    }

    /// The record was acknowledged.
    pub(crate) fn settle(&mut self, seq: u64) {
        self.pending.remove(&seq);
    }

    /// The record failed: kept to be sent again, or — past
    /// [`MAX_UNSENT_BYTES`] — given up (settled); whether it was kept.
    pub(crate) fn failed(&mut self, unsent: Unsent) -> bool {
        let size = unsent.value.len() + unsent.key.as_ref().map_or(0, Vec::len);
        if self.unsent_bytes + size > MAX_UNSENT_BYTES {
            self.pending.remove(&unsent.seq);
            return false;
        }
        self.unsent_bytes += size;
        self.unsent.push_back(unsent);
        true
    }

    /// The records to send again, taken.
    pub(crate) fn take_unsent(&mut self) -> Vec<Unsent> {
        self.unsent_bytes = 0;
        self.unsent.drain(..).collect()
    }

    /// The number every later commit waits for: all below it settled.
    pub(crate) fn mark(&self) -> u64 {
        self.next
    }

    /// Whether every record numbered below `mark` is settled.
    pub(crate) fn settled(&self, mark: u64) -> bool {
        self.pending.first().is_none_or(|&oldest| oldest >= mark)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_waits_for_what_came_before_it_only() {
        let mut l = Ledger::default();
        let a = l.begin();
        let b = l.begin();
        let mark = l.mark();
        let c = l.begin();
        l.settle(b);
        assert!(!l.settled(mark));
        l.settle(a);
        assert!(l.settled(mark), "c came after the mark");
        assert!(!l.settled(l.mark()));
        l.settle(c);
        assert!(l.settled(l.mark()));
    }

    #[test]
    fn a_failed_record_holds_the_mark_until_sent_again() {
        let mut l = Ledger::default();
        let a = l.begin();
        let mark = l.mark();
        assert!(l.failed(Unsent {
            seq: a,
            key: None,
            value: vec![0; 10],
        }));
        assert!(!l.settled(mark));
        let again = l.take_unsent();
        assert_eq!(again.len(), 1);
        l.settle(again[0].seq);
        assert!(l.settled(mark));
    }

    #[test]
    fn unsent_bytes_are_bounded() {
        let mut l = Ledger::default();
        let a = l.begin();
        assert!(!l.failed(Unsent {
            seq: a,
            key: None,
            value: vec![0; MAX_UNSENT_BYTES + 1],
        }));
        assert!(l.settled(l.mark()), "given up, not waited for");
    }
}
