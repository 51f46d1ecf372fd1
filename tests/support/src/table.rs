//! One row of README's table of misbehaving targets and hostile input:
//! what a scenario came to, printed by its test (`-- --nocapture`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::http_target::Request;

/// Prints `| scenario | events | lost | duplicated | dead-lettered | worst
/// delay |`: `events` were produced at `since`; `delivered` are the
/// requests the target took (a 2xx — or, for a robot, the 2xx whose body
/// said yes); lost are the events none of them carried (by
/// Idempotency-Key), duplicates the deliveries beyond the first, the worst
/// delay from `since` to an event's first delivery.
pub fn row(
    scenario: &str,
    events: usize,
    delivered: &[Request],
    dead_lettered: usize,
    since: Instant,
) {
    let mut first: BTreeMap<String, Duration> = BTreeMap::new();
    let mut duplicated = 0;
    for r in delivered {
        let delay = r.at.saturating_duration_since(since);
        if first.insert(r.key().to_string(), delay).is_some() {
            duplicated += 1;
        }
    }
    let delivered = first.len();
    let lost = events.saturating_sub(delivered + dead_lettered);
    let worst = first.values().max().copied().unwrap_or_default();
    println!(
        "| {scenario} | {events} | {lost} | {duplicated} | {dead_lettered} | {:.1} s |",
        worst.as_secs_f64()
    );
}
