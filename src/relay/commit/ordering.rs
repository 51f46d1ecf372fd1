//! Per-alert ordering inside a partition.
//!
//! Deliveries run concurrently, but a recovery must never overtake its
//! trigger: events of one partition with the same `alertId` reach the webhook
//! in offset order, retries included. Each key has at most one active job;
//! later jobs for it wait in a FIFO until it finishes.
//!
//! Order is kept per route: an event fanned out to two routes is one job
//! on each, and a slow chat robot does not hold up the ops platform's
//! deliveries of the same alert.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// What orders jobs: a route (by its index) and the key its `key` program
/// (or the preset's alert id) gave the event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct OrderKey {
    pub route: usize,
    pub key: String,
}

impl OrderKey {
    pub(crate) fn new(route: usize, key: String) -> Self {
        Self { route, key }
    }
}

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
    /// active job of its key, calling `on_queue` on it when it is not the
    /// first to wait there (a key with several events waiting is likely
    /// stuck in retries; an alert's trigger and recovery in a row is not).
    pub(crate) fn submit(
        &mut self,
        key: K,
        mut job: J,
        on_queue: impl FnOnce(&mut J),
    ) -> Option<J> {
        match self.active.get_mut(&key) {
            Some(waiting) => {
                if !waiting.is_empty() {
                    on_queue(&mut job);
                }
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
        assert_eq!(q.submit("a", 1, |_| {}), Some(1));
        assert_eq!(q.submit("a", 2, |_| {}), None);
        assert_eq!(q.submit("b", 3, |_| {}), Some(3));
        assert_eq!(q.submit("a", 4, |_| {}), None);
        assert_eq!(q.finish(&"a"), Some(2));
        assert_eq!(q.finish(&"a"), Some(4));
        assert_eq!(q.finish(&"a"), None);
        assert_eq!(q.submit("a", 5, |_| {}), Some(5), "key is free again");
        assert_eq!(q.finish(&"b"), None);
    }

    mod properties {
        use std::collections::{HashMap, VecDeque};

        use proptest::prelude::*;

        use super::super::KeyedQueue;

        proptest! {
            /// Against a model (a FIFO per key and the running job of each
            /// key): a job starts at once only when its key is idle, and the
            /// waiting jobs of a key start in submission order, one at a time.
            #[test]
            fn jobs_of_one_key_run_one_at_a_time_in_order(
                ops in proptest::collection::vec((any::<bool>(), 0u8..4), 1..300),
            ) {
                let mut q: KeyedQueue<u8, u32> = KeyedQueue::default();
                let mut running: HashMap<u8, u32> = HashMap::new();
                let mut waiting: HashMap<u8, VecDeque<u32>> = HashMap::new();
                let mut next_job = 0u32;
                for (submit, key) in ops {
                    if submit {
                        let job = next_job;
                        next_job += 1;
                        let started = q.submit(key, job, |_| {});
                        if let std::collections::hash_map::Entry::Vacant(e) = running.entry(key) {
                            prop_assert_eq!(started, Some(job));
                            e.insert(job);
                        } else {
                            prop_assert_eq!(started, None);
                            waiting.entry(key).or_default().push_back(job);
                        }
                    } else if let Some(job) = running.get_mut(&key) {
                        let next = q.finish(&key);
                        let expected = waiting.get_mut(&key).and_then(VecDeque::pop_front);
                        prop_assert_eq!(next, expected);
                        match expected {
                            Some(j) => *job = j,
                            None => {
                                running.remove(&key);
                            }
                        }
                    }
                }
            }
        }
    }
}
