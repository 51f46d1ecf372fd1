//! Stage 2 of a storm route: an event read back from the repartition
//! topic meets its alert's memory. Delivered (and remembered), skipped
//! with its reason, or held; what changed is in the state topic before the
//! event counts as handled.

use bytes::Bytes;

use super::memory::{self, Delivered, Held, Memory, Seen, Verdict};
use super::now_ms;
use crate::relay::deliver::{Interrupted, send};
use crate::relay::job::Job;
use crate::relay::shared::Shared;

/// What the storm stage knows of an event, from its intake.
#[derive(Debug, Clone)]
pub(crate) struct Tag {
    /// The alert's state (`[route.storm] state`).
    pub state: String,
    /// Re-driven from the dead letters: never a repeat.
    pub redriven: bool,
    /// On a digest route: the alert id (its `key`), as the job's order is
    /// its group.
    pub alert: Option<String>,
}

/// Decides the event against its alert's memory and does what that says;
/// `Ok(true)` when it was delivered.
pub(crate) async fn through(
    shared: &Shared,
    job: &Job,
    bodies: &[Bytes],
    tag: &Tag,
) -> Result<bool, Interrupted> {
    let (Some(storm), Some(route_storm)) = (shared.storm(), job.route.storm.as_ref()) else {
        return send(shared, job, bodies).await;
    };
    let policy = &route_storm.policy;
    let seen = Seen {
        state: &tag.state,
        timestamp: job.origin.timestamp_ms,
        redriven: tag.redriven,
    };
    let Some(key) = job.order.as_ref().map(|o| o.key.as_str()) else {
        // No alert id: nothing to remember it by; only its age counts.
        let decision = memory::decide(&Memory::default(), seen, policy, now_ms());
        if let Verdict::Skip(why) = decision.verdict {
            super::absorbed(shared, job, &why, policy).await?;
            return Ok(false);
        }
        return send(shared, job, bodies).await;
    };
    let Some(store) = storm.alerts(&job.partition) else {
        // Its memory was not read back (the relay is stopping for that).
        return Err(Interrupted);
    };
    let route = job.route.name();
    let (entry, mut memory) = store.lock(key).await;
    let before = memory.clone();
    let size_before = memory.size(key);
    let decision = memory::decide(&memory, seen, policy, now_ms());
    if decision.ends_hold
        && let Some(h) = memory.held.take()
    {
        shared.totals().storm_absorbed(route, "flap");
        tracing::debug!(event = %job.origin.coordinates(), %route, key, "the held recovery (offset {}) is absorbed: the alert fired again", h.offset);
    }
    let mut delivered = false;
    match decision.verdict {
        Verdict::Skip(why) => super::absorbed(shared, job, &why, policy).await?,
        Verdict::Hold { until } => {
            let value = job
                .origin
                .payload
                .as_deref()
                .and_then(|v| std::str::from_utf8(v).ok());
            match value {
                Some(value)
                    if !route_storm.is_full(
                        route,
                        shared.totals(),
                        "recoveries sent without hold_resolved",
                    ) =>
                {
                    memory.held = Some(Held {
                        until,
                        state: tag.state.clone(),
                        offset: job.origin.offset,
                        timestamp: job.origin.timestamp_ms,
                        key: Some(key.to_string()),
                        value: value.to_string(),
                    });
                    shared.totals().storm_held(route);
                    shared.absorbed(
                        &job.origin,
                        route,
                        Some(key),
                        "held",
                        format!(
                            "hold_resolved: the recovery is held until {} (sent then unless the alert fires again)",
                            crate::time_spec::show_ms(until)
                        ),
                    );
                }
                _ => delivered = send(shared, job, bodies).await?,
            }
        }
        Verdict::Deliver => delivered = send(shared, job, bodies).await?,
    }
    if delivered {
        memory.delivered = Some(Delivered {
            state: tag.state.clone(),
            at: now_ms(),
        });
    }
    if *memory == Memory::default() && before == Memory::default() {
        // Nothing to remember (a delivery that failed, an alert skipped
        // before it was ever sent): no record, no entry.
        store.forget(key, &entry, &memory);
    } else if *memory != before {
        let p = job.partition.partition;
        if *memory == Memory::default() {
            storm
                .record_alert(route, p, key, None, &job.ownership)
                .await?;
            store.changed(key, size_before, &memory);
            store.forget(key, &entry, &memory);
        } else {
            storm
                .record_alert(route, p, key, Some(&memory), &job.ownership)
                .await?;
            store.changed(key, size_before, &memory);
        }
    }
    Ok(delivered)
}
