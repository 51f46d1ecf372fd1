//! What a storm partition does on its own clock, for as long as it is
//! owned here: sends each held recovery when its hold ends (through the
//! route's own mapping, retries and dead letters, as if just read), each
//! group's digest when it is due (`digest`), and sweeps the memory —
//! forgetting what no longer matters, and, past `max_state_bytes`, the
//! oldest delivered states (a repeat may then be sent again: nothing is
//! lost).

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc};

use super::memory::{Delivered, Memory};
use super::now_ms;
use super::store::Store;
use super::{Stores, Taken};
use crate::relay::commit::OrderKey;
use crate::relay::deliver::{Interrupted, release};
use crate::relay::job::{Job, Work};
use crate::relay::route::Event;
use crate::relay::shared::Shared;
use crate::relay::source::Origin;

/// How often a partition's memory is swept.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Starts a release task for every storm partition taken here.
pub(crate) fn spawn_releases(shared: Weak<Shared>, mut taken: mpsc::UnboundedReceiver<Taken>) {
    tokio::spawn(async move {
        while let Some(t) = taken.recv().await {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            tokio::spawn(run(shared, t));
        }
    });
}

/// One partition's clock, until its ownership ends.
async fn run(shared: Arc<Shared>, taken: Taken) {
    let mut next_sweep = Instant::now() + SWEEP_EVERY;
    loop {
        let now = now_ms();
        let until_due = taken
            .store
            .next_due()
            .map(|due| Duration::from_millis(due.saturating_sub(now).max(0) as u64));
        let until_sweep = next_sweep.saturating_duration_since(Instant::now());
        let wait = until_due.map_or(until_sweep, |d| d.min(until_sweep));
        tokio::select! {
            biased;
            _ = taken.ownership.ending() => return,
            _ = taken.store.changed() => continue,
            _ = tokio::time::sleep(wait) => {}
        }
        for key in taken.store.due(now_ms()) {
            let done = contained(&shared, &taken, async {
                match &taken.store {
                    Stores::Alerts(store) => release_one(&shared, &taken, store, &key).await,
                    Stores::Groups(store) => {
                        super::digest::send(&shared, &taken, store, &key).await
                    }
                }
            })
            .await;
            if done.is_err() {
                return;
            }
        }
        if Instant::now() >= next_sweep {
            let swept = contained(&shared, &taken, async {
                match &taken.store {
                    Stores::Alerts(store) => sweep(&shared, &taken, store).await,
                    Stores::Groups(store) => super::digest::sweep(&shared, &taken, store).await,
                }
            })
            .await;
            if swept.is_err() {
                return;
            }
            next_sweep = Instant::now() + SWEEP_EVERY;
        }
    }
}

impl Taken {
    /// A job of this partition's clock (a held recovery, a digest): it
    /// runs outside the consume loop's window, so its slots are its own.
    pub(super) fn job(&self, origin: Arc<Origin>, work: Work, order: Option<OrderKey>) -> Job {
        let slot = || {
            Arc::new(Semaphore::new(1))
                .try_acquire_owned()
                .map(Arc::new)
                .expect("a new semaphore of one has its permit")
        };
        Job {
            partition: self.partition.clone(),
            ownership: self.ownership.clone(),
            origin,
            route: self.route.clone(),
            order,
            work,
            permit: slot(),
            bytes: slot(),
            storm: None,
        }
    }
}

/// One step of the clock, under the partition's ownership, a panic in it
/// contained: logged and counted as a defect, the clock goes on (the item
/// stays due and is tried again at the next step).
async fn contained(
    shared: &Shared,
    taken: &Taken,
    step: impl std::future::Future<Output = Result<(), Interrupted>>,
) -> Result<(), Interrupted> {
    use futures_util::FutureExt;
    // A revoke waits for the step (a delivery on the wire, its record, a
    // tombstone) before the next owner reads the memory.
    let _running = taken.ownership.run();
    if taken.ownership.is_ending() {
        return Err(Interrupted);
    }
    match std::panic::AssertUnwindSafe(step).catch_unwind().await {
        Ok(done) => done,
        Err(_) => {
            let route = taken.route.name();
            shared.totals().panicked(route);
            tracing::error!(
                %route, partition = %taken.partition,
                "kbridge failed on the storm partition's clock (a defect; please report it); it goes on"
            );
            // Not at once again: the next step comes with the next due
            // item or sweep.
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok(())
        }
    }
}

/// Sends one alert's held recovery, if it is still held and due.
async fn release_one(
    shared: &Shared,
    taken: &Taken,
    store: &Store<Memory>,
    key: &str,
) -> Result<(), Interrupted> {
    let Taken {
        route,
        partition,
        ownership,
        ..
    } = taken;
    let (_entry, mut memory) = store.lock(key).await;
    let size_before = memory.size(key);
    let Some(held) = memory.held.clone() else {
        store.changed(key, size_before, &memory);
        return Ok(());
    };
    if held.until > now_ms() {
        return Ok(());
    }
    let payload = held.value.clone().into_bytes();
    let origin = Arc::new(Origin {
        topic: partition.topic.clone(),
        partition: partition.partition,
        offset: held.offset,
        timestamp_ms: held.timestamp,
        key: held.key.as_ref().map(|k| k.clone().into_bytes()),
        size: payload.len(),
        payload: Some(payload),
        headers: None,
        redriven: false,
        redrive_count: None,
    });
    let event = Arc::new(Event::of_message(
        origin.clone(),
        shared.max_message_bytes(),
    ));
    let job = taken.job(
        origin,
        Work::Map {
            event,
            key_failure: None,
        },
        held.key.clone().map(|k| OrderKey::new(route.id, k)),
    );
    let delivered = release(shared, &job).await?;
    memory.held = None;
    if delivered {
        memory.delivered = Some(Delivered {
            state: held.state,
            at: now_ms(),
        });
    }
    let storm = shared.storm().ok_or(Interrupted)?;
    storm
        .record_alert(
            route.name(),
            partition.partition,
            key,
            Some(&memory),
            ownership,
        )
        .await?;
    store.changed(key, size_before, &memory);
    shared.totals().storm_released(route.name());
    tracing::debug!(event = %job.origin.coordinates(), route = %route.name(), key, delivered, "the held recovery's hold ended");
    Ok(())
}

/// Forgets what no longer matters, and past `max_state_bytes` the oldest
/// delivered states; reports the route's memory.
async fn sweep(shared: &Shared, taken: &Taken, store: &Store<Memory>) -> Result<(), Interrupted> {
    let Some(route_storm) = taken.route.storm.as_ref() else {
        return Ok(());
    };
    let route = taken.route.name();
    let policy = route_storm.policy;
    let now = now_ms();
    let mut evictable: Vec<(i64, String)> = Vec::new();
    for key in store.keys() {
        let Some((entry, memory)) = store.try_lock(&key) else {
            continue;
        };
        if memory.is_expired(&policy, now) {
            forget(shared, taken, store, &key, &entry, &memory).await?;
        } else if memory.held.is_none()
            && let Some(d) = &memory.delivered
        {
            evictable.push((d.at, key));
        }
    }
    if route_storm.is_full(
        route,
        shared.totals(),
        "the oldest delivered states are forgotten",
    ) {
        evictable.sort_unstable();
        let target = route_storm.max_state_bytes / 10 * 9;
        for (_, key) in evictable {
            if route_storm.bytes.load(std::sync::atomic::Ordering::Relaxed) < target {
                break;
            }
            if let Some((entry, memory)) = store.try_lock(&key)
                && memory.held.is_none()
            {
                forget(shared, taken, store, &key, &entry, &memory).await?;
            }
        }
    }
    shared.totals().storm_state(
        route,
        route_storm.bytes.load(std::sync::atomic::Ordering::Relaxed),
    );
    Ok(())
}

/// Writes an alert's tombstone, then forgets it.
async fn forget(
    shared: &Shared,
    taken: &Taken,
    store: &Store<Memory>,
    key: &str,
    entry: &super::store::Entry<Memory>,
    memory: &Memory,
) -> Result<(), Interrupted> {
    let storm = shared.storm().ok_or(Interrupted)?;
    storm
        .record_alert(
            taken.route.name(),
            taken.partition.partition,
            key,
            None,
            &taken.ownership,
        )
        .await?;
    store.forget(key, entry, memory);
    Ok(())
}
