//! Digest routes (`group_by`): an event read back from the repartition
//! topic — keyed by its group, so one instance holds each group — is
//! folded into its group (`fold`), recorded in the state topic, and
//! handled; the partition's clock sends each group's digest when it is due
//! (`send`): the route's `map` on the group object (`group::Group::digest`),
//! through the route's retries, rate limit and dead letters.
//!
//! What the fleet guarantees: one digest per group per interval, whatever
//! the instances; a SIGKILL between a digest's delivery and its record
//! costs that digest once more (the next owner finds it still due).

use std::sync::Arc;

use super::changelog::{self, Key};
use super::group::Group;
use super::memory::{Policy, Seen, Verdict, decide};
use super::store::Store;
use super::{Tag, Taken, now_ms};
use crate::relay::deliver::{Interrupted, release};
use crate::relay::job::{Job, Work};
use crate::relay::route::{Event, RouteDecision};
use crate::relay::shared::Shared;
use crate::relay::source::Origin;

/// Takes a digest route's event into its group; handled once the group's
/// record is in the state topic.
pub(crate) async fn fold(shared: &Shared, job: &Job, tag: &Tag) -> Result<bool, Interrupted> {
    let (Some(storm), Some(route_storm)) = (shared.storm(), job.route.storm.as_ref()) else {
        return Err(Interrupted);
    };
    let Some(grouping) = &route_storm.grouping else {
        return Err(Interrupted);
    };
    let route = job.route.name();
    let now = now_ms();
    let seen = Seen {
        state: &tag.state,
        timestamp: job.origin.timestamp_ms,
        redriven: tag.redriven,
    };
    // Only its age can keep it out of its group (`decide` with no memory
    // and no dedupe says nothing else).
    let age_only = Policy {
        max_age: route_storm.policy.max_age,
        ..Policy::default()
    };
    if let Verdict::Skip(why) = decide(&Default::default(), seen, &age_only, now).verdict {
        super::absorbed(shared, job, &why, &route_storm.policy).await?;
        return Ok(false);
    }
    let Some(store) = storm.groups(&job.partition) else {
        return Err(Interrupted);
    };
    let group_key = job.order.as_ref().map_or("", |o| o.key.as_str());
    let alert = tag
        .alert
        .clone()
        .unwrap_or_else(|| job.origin.coordinates());
    let full = route_storm.is_full(
        route,
        shared.totals(),
        "new group members are kept without their event",
    );
    let event = match job.origin.payload.as_deref().map(std::str::from_utf8) {
        Some(Ok(text)) if !full => text,
        _ => "null",
    };
    let (entry, mut group) = store.lock(group_key).await;
    let size_before = group.size(group_key);
    let folded = group.fold(&alert, &tag.state, event, &grouping.timing, now);
    let p = job.partition.partition;
    let route_name = route.to_string();
    if folded.member
        && let Some(member) = group.members.get(&alert)
    {
        let key = Key::Member {
            route: route_name.clone(),
            group: group_key.to_string(),
            alert: alert.clone(),
        };
        storm
            .record(p, key, Some(changelog::value(member)), &job.ownership)
            .await?;
    }
    if folded.meta {
        let key = Key::Group {
            route: route_name,
            group: group_key.to_string(),
        };
        storm
            .record(p, key, Some(changelog::value(&group.meta)), &job.ownership)
            .await?;
    }
    if folded.member || folded.meta {
        store.changed(group_key, size_before, &group);
    } else if group.is_empty() {
        store.forget(group_key, &entry, &group);
    }
    if folded.repeat {
        shared.totals().storm_absorbed(route, "dedupe");
        shared.absorbed(
            &job.origin,
            route,
            Some(alert.as_str()),
            "deduped",
            format!(
                "dedupe: alert {alert} repeats its state '{}' in group '{group_key}', or recovers without the group having told it fires (no news for its digest; group_by must give all events of an alert one group)",
                tag.state
            ),
        );
    } else {
        shared.totals().storm_grouped(route);
        let due = group
            .meta
            .due
            .map_or("-".to_string(), crate::time_spec::show_ms);
        shared.absorbed(
            &job.origin,
            route,
            Some(alert.as_str()),
            "grouped",
            format!(
                "grouped: alert {alert} is in group '{group_key}' (its next digest is due at {due})"
            ),
        );
    }
    Ok(false)
}

/// Sends one group's digest, if it is due; then records what the target
/// was told (a group all told resolved is forgotten).
pub(crate) async fn send(
    shared: &Shared,
    taken: &Taken,
    store: &Store<Group>,
    key: &str,
) -> Result<(), Interrupted> {
    let Taken {
        route,
        partition,
        ownership,
        ..
    } = taken;
    let (Some(storm), Some(grouping)) = (
        shared.storm(),
        route.storm.as_ref().and_then(|s| s.grouping.as_ref()),
    ) else {
        return Ok(());
    };
    // A snapshot: events keep joining the group while its digest goes.
    let (told, object, number, started) = {
        let (_entry, group) = store.lock(key).await;
        if !group.is_due(now_ms()) {
            return Ok(());
        }
        (
            group.states(),
            group.digest(route.name(), key),
            group.meta.digests.saturating_add(1),
            group.meta.started,
        )
    };
    let body = serde_json::to_vec(&object).unwrap_or_default();
    let event = Event::of_bytes(&body, body.len().max(shared.max_message_bytes()));
    let origin = Arc::new(Origin {
        // The digest's coordinates: its Idempotency-Key, its dead
        // letter's headers.
        // (`started` tells a group's storms apart: digest 1 of the next
        // one is another message.)
        topic: Arc::from(format!("{}:digest:{key}:{started}", partition.topic)),
        partition: partition.partition,
        offset: number as i64,
        timestamp_ms: Some(now_ms()),
        key: Some(key.as_bytes().to_vec()),
        size: body.len(),
        payload: Some(body),
        headers: None,
        redriven: false,
        redrive_count: None,
    });
    let work = match route.route.map_group(&event) {
        RouteDecision::Deliver { bodies, .. } => Some(Work::Deliver { bodies }),
        RouteDecision::Skip(reason) => {
            tracing::debug!(route = %route.name(), group = key, "digest not sent: {reason}");
            None
        }
        RouteDecision::Invalid { stage, reason } => {
            shared.invalid(&origin, route.name(), stage, &reason);
            Some(Work::DeadLetter { stage, reason })
        }
    };
    if let Some(work) = work {
        let job = taken.job(origin, work, None);
        let delivered = release(shared, &job).await?;
        if delivered {
            shared.totals().storm_digest(route.name());
            tracing::info!(route = %route.name(), group = key, digest = number, firing = %object["firing"], resolved = %object["resolved"], "digest sent");
        }
    }
    // Told, whatever came of it: delivered, dead-lettered (the dead
    // letter keeps it), or refused without a dead-letter topic (its log
    // line).
    let (entry, mut group) = store.lock(key).await;
    let size_before = group.size(key);
    let forgotten = group.sent(&told, &grouping.timing, now_ms());
    let p = partition.partition;
    for alert in forgotten {
        let member = Key::Member {
            route: route.name().to_string(),
            group: key.to_string(),
            alert,
        };
        storm.record(p, member, None, ownership).await?;
    }
    let meta = Key::Group {
        route: route.name().to_string(),
        group: key.to_string(),
    };
    if group.is_empty() {
        storm.record(p, meta, None, ownership).await?;
        store.changed(key, size_before, &group);
        store.forget(key, &entry, &group);
    } else {
        storm
            .record(p, meta, Some(changelog::value(&group.meta)), ownership)
            .await?;
        store.changed(key, size_before, &group);
    }
    Ok(())
}

/// Forgets the groups with nothing left (none told, none pending), and
/// reports the route's memory.
pub(crate) async fn sweep(
    shared: &Shared,
    taken: &Taken,
    store: &Store<Group>,
) -> Result<(), Interrupted> {
    let Some(storm) = shared.storm() else {
        return Ok(());
    };
    for key in store.keys() {
        let Some((entry, group)) = store.try_lock(&key) else {
            continue;
        };
        if group.is_empty() {
            let meta = Key::Group {
                route: taken.route.name().to_string(),
                group: key.clone(),
            };
            storm
                .record(taken.partition.partition, meta, None, &taken.ownership)
                .await?;
            store.forget(&key, &entry, &group);
        }
    }
    if let Some(s) = &taken.route.storm {
        shared.totals().storm_state(
            taken.route.name(),
            s.bytes.load(std::sync::atomic::Ordering::Relaxed),
        );
    }
    Ok(())
}
