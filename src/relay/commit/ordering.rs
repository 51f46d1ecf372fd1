//! Per-alert ordering inside a partition.
//!
//! Deliveries run concurrently, but a recovery must never overtake its
//! trigger: events of one partition with the same `alertId` reach the webhook
//! in offset order, retries included. Each key has at most one active job;
//! later jobs for it wait in a FIFO until it finishes.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

#[derive(Debug)]
pub(crate) struct KeyedQueue<K, J> {
    /// A key is present while a job for it is active; the deque holds the
    /// jobs waiting behind it.
    active: HashMap<K, VecDeque<J>>,
}

impl<K: Hash + Eq, J> Default for KeyedQueue<K, J> {
    fn default() -> Self {
        Self {
            active: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq, J> KeyedQueue<K, J> {
    /// Returns the job when it may start now; otherwise queues it behind the
    /// active job of its key.
    pub(crate) fn submit(&mut self, key: K, job: J) -> Option<J> {
        match self.active.get_mut(&key) {
            Some(waiting) => {
                waiting.push_back(job);
                None
            }
            None => {
                self.active.insert(key, VecDeque::new());
                Some(job)
            }
        }
    }

    /// The active job of `key` finished: returns the next one to start.
    pub(crate) fn finish(&mut self, key: &K) -> Option<J> {
        let waiting = self.active.get_mut(key)?;
        match waiting.pop_front() {
            Some(next) => Some(next),
            None => {
                self.active.remove(key);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_key_runs_in_order_other_keys_run_at_once() {
        let mut q = KeyedQueue::default();
        assert_eq!(q.submit("a", 1), Some(1));
        assert_eq!(q.submit("a", 2), None);
        assert_eq!(q.submit("b", 3), Some(3));
        assert_eq!(q.submit("a", 4), None);
        assert_eq!(q.finish(&"a"), Some(2));
        assert_eq!(q.finish(&"a"), Some(4));
        assert_eq!(q.finish(&"a"), None);
        assert_eq!(q.submit("a", 5), Some(5), "key is free again");
        assert_eq!(q.finish(&"b"), None);
    }
}
