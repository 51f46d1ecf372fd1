//! `kbridge check` on a storm route: the sample events replayed in event
//! time (their `date`, in seconds or milliseconds; an event without one
//! keeps the time of the one before), through the same pure decisions the
//! relay makes — dedupe, holds, groups — so that an operator sees what the
//! target would get, held recoveries and digests included, before a storm
//! does. Silences live in Kafka and `max_age` measures the wall clock:
//! neither applies here.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use serde_json::{Value, json};

use super::StormRoute;
use super::group::Group;
use super::memory::{self, Delivered, Memory, Policy, Seen, Verdict};
use crate::relay::live_route::LiveRoute;
use crate::relay::route::{Event, RouteDecision};
use crate::time_spec::show_ms;

/// One route's replay: its memory, in event time.
#[derive(Default)]
pub(crate) struct Replay {
    alerts: HashMap<String, Memory>,
    /// Held recoveries: their line and bodies, by alert.
    held: HashMap<String, (usize, Vec<Bytes>)>,
    groups: BTreeMap<String, Group>,
    /// The lines each group's members came from, since its last digest.
    lines: BTreeMap<String, Vec<usize>>,
}

/// An event's time in epoch ms: its `date`, seconds or milliseconds as
/// the preset reads it.
pub(crate) fn event_time(v: &Value) -> Option<i64> {
    Some(crate::relay::route::preset::epoch_millis(
        v.get("date")?.as_f64()?,
    ))
}

fn bodies_json(bodies: &[Bytes]) -> Vec<Value> {
    bodies
        .iter()
        .map(|b| serde_json::from_slice(b).unwrap_or(Value::Null))
        .collect()
}

impl Replay {
    /// How far past the last event the replay looks: the longest a route
    /// holds or gathers before it sends.
    pub(crate) fn horizon(route: &LiveRoute) -> i64 {
        let Some(storm) = &route.storm else {
            return 0;
        };
        let mut longest = storm.policy.hold_resolved.unwrap_or_default();
        if let Some(g) = &storm.grouping {
            longest = longest
                .max(g.timing.group_wait)
                .max(g.timing.group_interval);
        }
        longest.as_millis().min(i64::MAX as u128) as i64
    }

    /// What comes due up to `now`: held recoveries sent, digests sent, in
    /// time order.
    pub(crate) fn advance(&mut self, route: &LiveRoute, now: i64) -> Vec<Value> {
        let Some(storm) = &route.storm else {
            return Vec::new();
        };
        let mut out = Vec::new();
        loop {
            let next_hold = self
                .alerts
                .iter()
                .filter_map(|(k, m)| Some((m.held.as_ref()?.until, k.clone())))
                .min();
            let next_digest = self
                .groups
                .iter()
                .filter_map(|(k, g)| Some((g.meta.due?, k.clone())))
                .min();
            match (next_hold, next_digest) {
                (Some((t, key)), d) if t <= now && d.as_ref().is_none_or(|(dt, _)| t <= *dt) => {
                    out.push(self.release(route, &key, t));
                }
                (_, Some((t, key))) if t <= now => {
                    out.extend(self.digest(route, storm, &key, t));
                }
                _ => return out,
            }
        }
    }

    fn release(&mut self, route: &LiveRoute, key: &str, now: i64) -> Value {
        let memory = self.alerts.entry(key.to_string()).or_default();
        let state = memory
            .held
            .take()
            .map_or_else(|| "resolved".to_string(), |h| h.state);
        memory.delivered = Some(Delivered { state, at: now });
        let (line, bodies) = self.held.remove(key).unwrap_or_default();
        json!({
            "line": line, "route": &**route.name(), "outcome": "released", "at": show_ms(now),
            "key": key, "bodies": bodies_json(&bodies),
        })
    }

    fn digest(
        &mut self,
        route: &LiveRoute,
        storm: &StormRoute,
        key: &str,
        now: i64,
    ) -> Option<Value> {
        let grouping = storm.grouping.as_ref()?;
        let group = self.groups.get_mut(key)?;
        let told = group.states();
        let object = group.digest(route.name(), key);
        group.sent(&told, &grouping.timing, now);
        if group.is_empty() {
            self.groups.remove(key);
        }
        let lines = self.lines.remove(key).unwrap_or_default();
        let body = serde_json::to_vec(&object).unwrap_or_default();
        let event = Event::of_bytes(&body, body.len());
        let mut v = json!({
            "route": &**route.name(), "outcome": "digest", "at": show_ms(now), "group": key,
            "lines": lines,
        });
        match route.route.map_group(&event) {
            RouteDecision::Deliver { bodies, .. } => v["bodies"] = json!(bodies_json(&bodies)),
            RouteDecision::Skip(reason) => {
                v["outcome"] = json!("skip");
                v["reason"] = json!(reason);
            }
            RouteDecision::Invalid { stage, reason } => {
                v["outcome"] = json!("invalid");
                v["stage"] = json!(stage.as_str());
                v["reason"] = json!(reason);
            }
        }
        Some(v)
    }

    /// One event the route would deliver (`bodies`, ordered by `key`),
    /// through the storm stage at `now`: what the route does with it.
    pub(crate) fn event(
        &mut self,
        route: &LiveRoute,
        line: usize,
        event: &Event,
        key: Option<&str>,
        bodies: &[Bytes],
        now: i64,
    ) -> Value {
        let name = &**route.name();
        let base = json!({"line": line, "route": name, "key": key});
        let with = |mut v: Value, extra: Value| {
            if let (Some(v), Value::Object(extra)) = (v.as_object_mut(), extra) {
                v.extend(extra);
            }
            v
        };
        let Some(storm) = &route.storm else {
            return with(
                base,
                json!({"outcome": "deliver", "bodies": bodies_json(bodies)}),
            );
        };
        let facts = event
            .json()
            .map_err(|_| "not JSON".to_string())
            .and_then(|v| Ok((storm.state_of(v)?, storm.group_of(v).transpose()?)));
        let (state, group) = match facts {
            Ok(f) => f,
            Err(reason) => {
                return with(
                    base,
                    json!({"outcome": "invalid", "stage": "map", "reason": reason}),
                );
            }
        };
        if let (Some(group), Some(grouping)) = (group, &storm.grouping) {
            let alert = key.unwrap_or_default().to_string();
            let text = std::str::from_utf8(event.value().unwrap_or(b"null")).unwrap_or("null");
            let g = self.groups.entry(group.clone()).or_default();
            let folded = g.fold(&alert, &state, text, &grouping.timing, now);
            if folded.repeat {
                return with(
                    base,
                    json!({"outcome": "absorbed", "why": "dedupe", "group": group}),
                );
            }
            self.lines.entry(group.clone()).or_default().push(line);
            let due = g.meta.due.map(show_ms);
            return with(
                base,
                json!({"outcome": "grouped", "group": group, "due": due}),
            );
        }
        let Some(key) = key else {
            return with(
                base,
                json!({"outcome": "deliver", "bodies": bodies_json(bodies)}),
            );
        };
        let memory = self.alerts.entry(key.to_string()).or_default();
        let seen = Seen {
            state: &state,
            timestamp: None,
            redriven: false,
        };
        let policy: &Policy = &storm.policy;
        let decision = memory::decide(memory, seen, policy, now);
        if decision.ends_hold {
            memory.held = None;
            self.held.remove(key);
        }
        match decision.verdict {
            Verdict::Deliver => {
                memory.delivered = Some(Delivered { state, at: now });
                with(
                    base,
                    json!({"outcome": "deliver", "bodies": bodies_json(bodies)}),
                )
            }
            Verdict::Hold { until } => {
                memory.held = Some(memory::Held {
                    until,
                    state,
                    offset: line as i64,
                    timestamp: None,
                    key: Some(key.to_string()),
                    value: String::new(),
                });
                self.held.insert(key.to_string(), (line, bodies.to_vec()));
                with(base, json!({"outcome": "held", "until": show_ms(until)}))
            }
            Verdict::Skip(why) => with(
                base,
                json!({"outcome": "absorbed", "why": why.label(), "reason": why.reason(policy)}),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_time_reads_seconds_and_milliseconds() {
        assert_eq!(
            event_time(&json!({"date": 1_731_900_000})),
            Some(1_731_900_000_000)
        );
        assert_eq!(
            event_time(&json!({"date": 1_731_900_000_123i64})),
            Some(1_731_900_000_123)
        );
        assert_eq!(event_time(&json!({"title": "x"})), None);
    }
}
