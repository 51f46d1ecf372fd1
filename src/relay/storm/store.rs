//! The memory of one storm route on one partition — an alert's (`Memory`)
//! or a group's (`Group`) per key: held by the instance that owns the
//! partition, read back from the state topic when it is assigned, dropped
//! when it is revoked.
//!
//! Each key's memory has a lock of its own, held while one of its events
//! is decided, delivered and recorded: the partition's per-key order
//! already makes its events wait for each other, and the lock also keeps
//! the partition's clock (`release`: a held recovery, a digest) from
//! crossing an event of the same key. The map's own lock is only held to
//! look a key up.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::memory::Memory;

/// What a store keeps per key.
pub(crate) trait Remembered: Default + Clone + PartialEq + Send + 'static {
    /// What it counts against `max_state_bytes`, with its key.
    fn size(&self, key: &str) -> usize;
    /// When the partition's clock must act on it (a hold ends, a digest
    /// is due).
    fn due(&self) -> Option<i64>;
}

impl Remembered for Memory {
    fn size(&self, key: &str) -> usize {
        Memory::size(self, key)
    }
    fn due(&self) -> Option<i64> {
        self.held.as_ref().map(|h| h.until)
    }
}

impl Remembered for super::group::Group {
    fn size(&self, key: &str) -> usize {
        super::group::Group::size(self, key)
    }
    fn due(&self) -> Option<i64> {
        self.meta.due
    }
}

pub(crate) type Entry<M> = Arc<tokio::sync::Mutex<M>>;

pub(crate) struct Store<M: Remembered> {
    alerts: Mutex<HashMap<String, Entry<M>>>,
    /// When each key is due, by key: what `release` waits for.
    holds: Mutex<BTreeMap<String, i64>>,
    /// A key came due earlier: `release` looks again.
    pub(crate) changed: Notify,
    /// The bytes of this store's memories (`Memory::size`), also counted
    /// in the route's total.
    bytes: AtomicUsize,
    route_bytes: Arc<AtomicUsize>,
}

impl<M: Remembered> Store<M> {
    /// A store with the memories read back from the state topic.
    pub(crate) fn new(restored: HashMap<String, M>, route_bytes: Arc<AtomicUsize>) -> Self {
        let mut bytes = 0;
        let mut holds = BTreeMap::new();
        let alerts = restored
            .into_iter()
            .map(|(key, m)| {
                bytes += m.size(&key);
                if let Some(due) = m.due() {
                    holds.insert(key.clone(), due);
                }
                (key, Arc::new(tokio::sync::Mutex::new(m)))
            })
            .collect();
        route_bytes.fetch_add(bytes, Ordering::Relaxed);
        Self {
            alerts: Mutex::new(alerts),
            holds: Mutex::new(holds),
            changed: Notify::new(),
            bytes: AtomicUsize::new(bytes),
            route_bytes,
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Entry<M>>> {
        self.alerts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn hold_index(&self) -> MutexGuard<'_, BTreeMap<String, i64>> {
        self.holds.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The alert's memory (a new, empty one if it has none).
    pub(crate) fn entry(&self, key: &str) -> Entry<M> {
        let mut map = self.map();
        if let Some(e) = map.get(key) {
            return e.clone();
        }
        let e: Entry<M> = Arc::default();
        map.insert(key.to_string(), e.clone());
        let size = M::default().size(key);
        self.bytes.fetch_add(size, Ordering::Relaxed);
        self.route_bytes.fetch_add(size, Ordering::Relaxed);
        e
    }

    /// The alert's memory, locked: the one the store holds now (an entry
    /// forgotten by `forget` while this waited for its lock is looked up
    /// again).
    pub(crate) async fn lock(&self, key: &str) -> (Entry<M>, tokio::sync::OwnedMutexGuard<M>) {
        loop {
            let entry = self.entry(key);
            let guard = entry.clone().lock_owned().await;
            if self.map().get(key).is_some_and(|e| Arc::ptr_eq(e, &entry)) {
                return (entry, guard);
            }
        }
    }

    /// The key's memory, locked, if nobody holds it now (the sweep does
    /// not wait behind a delivery).
    pub(crate) fn try_lock(
        &self,
        key: &str,
    ) -> Option<(Entry<M>, tokio::sync::OwnedMutexGuard<M>)> {
        let entry = self.map().get(key)?.clone();
        let guard = entry.clone().try_lock_owned().ok()?;
        Some((entry, guard))
    }

    /// Accounts for a memory changed from `before` bytes to what it is
    /// now, and indexes its hold.
    pub(crate) fn changed(&self, key: &str, before: usize, memory: &M) {
        let after = memory.size(key);
        if after >= before {
            self.bytes.fetch_add(after - before, Ordering::Relaxed);
            self.route_bytes
                .fetch_add(after - before, Ordering::Relaxed);
        } else {
            self.bytes.fetch_sub(before - after, Ordering::Relaxed);
            self.route_bytes
                .fetch_sub(before - after, Ordering::Relaxed);
        }
        let mut holds = self.hold_index();
        match memory.due() {
            Some(due) => {
                let earlier = holds
                    .insert(key.to_string(), due)
                    .is_none_or(|was| due < was);
                drop(holds);
                if earlier {
                    self.changed.notify_one();
                }
            }
            None => {
                holds.remove(key);
            }
        }
    }

    /// Forgets an alert whose memory is `entry` (still locked by the
    /// caller, who wrote its tombstone first).
    pub(crate) fn forget(&self, key: &str, entry: &Entry<M>, memory: &M) {
        let mut map = self.map();
        if map.get(key).is_some_and(|e| Arc::ptr_eq(e, entry)) {
            map.remove(key);
            drop(map);
            self.changed(key, memory.size(key), &M::default());
            let size = M::default().size(key);
            self.bytes.fetch_sub(size, Ordering::Relaxed);
            self.route_bytes.fetch_sub(size, Ordering::Relaxed);
        }
    }

    /// The earliest hold's due time.
    pub(crate) fn next_due(&self) -> Option<i64> {
        self.hold_index().values().min().copied()
    }

    /// The alerts whose hold is due at `now`.
    pub(crate) fn due(&self, now: i64) -> Vec<String> {
        self.hold_index()
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Every alert it remembers (for the sweep).
    pub(crate) fn keys(&self) -> Vec<String> {
        self.map().keys().cloned().collect()
    }
}

impl<M: Remembered> Drop for Store<M> {
    fn drop(&mut self) {
        self.route_bytes
            .fetch_sub(self.bytes.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::storm::memory::{Delivered, Held};

    fn held(until: i64) -> Memory {
        Memory {
            delivered: Some(Delivered {
                state: "firing".into(),
                at: 0,
            }),
            held: Some(Held {
                until,
                state: "ok".into(),
                offset: 1,
                timestamp: None,
                key: None,
                value: "{}".into(),
            }),
        }
    }

    #[tokio::test]
    async fn holds_are_indexed_and_bytes_counted_for_the_route() {
        let route = Arc::new(AtomicUsize::new(0));
        let store = Store::new(HashMap::from([("a".into(), held(50))]), route.clone());
        let restored = route.load(Ordering::Relaxed);
        assert_eq!(restored, held(50).size("a"));
        assert_eq!(store.next_due(), Some(50));
        let (entry, mut m) = store.lock("b").await;
        let before = m.size("b");
        *m = held(20);
        store.changed("b", before, &m);
        assert_eq!(store.due(30), vec!["b".to_string()]);
        let before = m.size("b");
        m.held = None;
        store.changed("b", before, &m);
        assert_eq!(store.due(100), vec!["a".to_string()]);
        store.forget("b", &entry, &m);
        drop(m);
        assert_eq!(route.load(Ordering::Relaxed), restored);
        drop(store);
        assert_eq!(route.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_forgotten_entry_is_looked_up_again() {
        let store: Arc<Store<Memory>> = Arc::new(Store::new(HashMap::new(), Arc::default()));
        let (entry, m) = store.lock("k").await;
        let waiting = tokio::spawn({
            let store = store.clone();
            async move {
                let (e, _) = store.lock("k").await;
                e
            }
        });
        tokio::task::yield_now().await;
        store.forget("k", &entry, &m);
        drop(m);
        let fresh = waiting.await.unwrap();
        assert!(!Arc::ptr_eq(&fresh, &entry));
    }
}
