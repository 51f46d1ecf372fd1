//! What a storm partition does on its own clock, for as long as it is
//! owned here: sends each held recovery when its hold ends (through the
//! route's own mapping, retries and dead letters, as if just read), and
//! sweeps the memory — forgetting what no longer matters, and, past
//! `max_state_bytes`, the oldest delivered states (a repeat may then be
//! sent again: nothing is lost).

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc};

use super::Taken;
use super::memory::{Delivered, Memory};
use super::now_ms;
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
            _ = taken.store.changed.notified() => continue,
            _ = tokio::time::sleep(wait) => {}
        }
        for key in taken.store.due(now_ms()) {
            if release_one(&shared, &taken, &key).await.is_err() {
                return;
            }
        }
        if Instant::now() >= next_sweep {
            if sweep(&shared, &taken).await.is_err() {
                return;
            }
            next_sweep = Instant::now() + SWEEP_EVERY;
        }
    }
}

/// Sends one alert's held recovery, if it is still held and due.
async fn release_one(shared: &Shared, taken: &Taken, key: &str) -> Result<(), Interrupted> {
    let Taken {
        route,
        partition,
        store,
        ownership,
    } = taken;
    let _running = ownership.run();
    if ownership.is_ending() {
        return Err(Interrupted);
    }
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
    });
    let event = Arc::new(Event::of_message(
        origin.clone(),
        shared.max_message_bytes(),
    ));
    let slot = |n: u32| {
        Arc::new(Semaphore::new(n as usize))
            .try_acquire_many_owned(n)
            .map(Arc::new)
    };
    let (Ok(permit), Ok(bytes)) = (slot(1), slot(1)) else {
        return Ok(());
    };
    let job = Job {
        partition: partition.clone(),
        ownership: ownership.clone(),
        origin,
        route: route.clone(),
        order: held.key.clone().map(|k| OrderKey::new(route.id, k)),
        work: Work::Map {
            event,
            key_failure: None,
        },
        permit,
        bytes,
        storm: None,
    };
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
        .record(
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
async fn sweep(shared: &Shared, taken: &Taken) -> Result<(), Interrupted> {
    let (Some(storm), Some(route_storm)) = (shared.storm(), taken.route.storm.as_ref()) else {
        return Ok(());
    };
    let route = taken.route.name();
    let policy = route_storm.policy;
    let now = now_ms();
    let mut evictable: Vec<(i64, String)> = Vec::new();
    for key in taken.store.keys() {
        let Some((entry, memory)) = taken.store.try_lock(&key) else {
            continue;
        };
        if memory.is_expired(&policy, now) {
            forget(shared, taken, &key, &entry, &memory).await?;
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
            if let Some((entry, memory)) = taken.store.try_lock(&key)
                && memory.held.is_none()
            {
                forget(shared, taken, &key, &entry, &memory).await?;
            }
        }
    }
    shared.totals().storm_state(
        route,
        route_storm.bytes.load(std::sync::atomic::Ordering::Relaxed),
    );
    let _ = storm;
    Ok(())
}

/// Writes an alert's tombstone, then forgets it.
async fn forget(
    shared: &Shared,
    taken: &Taken,
    key: &str,
    entry: &super::store::Entry,
    memory: &Memory,
) -> Result<(), Interrupted> {
    let storm = shared.storm().ok_or(Interrupted)?;
    storm
        .record(
            taken.route.name(),
            taken.partition.partition,
            key,
            None,
            &taken.ownership,
        )
        .await?;
    taken.store.forget(key, entry, memory);
    Ok(())
}
