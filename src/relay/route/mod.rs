//! Route — decode → validate → map, per route: what each route does with
//! one event. The second stage of an event's trip, after `source` and
//! before `deliver`.
//!
//! What it offers:
//! - [`Route`], compiled once from a `[[route]]` (or the `default` route of
//!   a config without them), and its pure decision on one [`Event`]:
//!   [`Route::intake`] in the consume loop, [`Route::later`] in the delivery
//!   task for a jq route, [`Route::decide`] for both at once (`kbridge
//!   check`). The native mapping is `preset` (decode → validate → map in
//!   Rust); jq programs are `jq`; `strict_json` is the JSON check both use.
//! - [`take`] (`intake.rs`), the stage's I/O edge: a consumed message asked
//!   of every route that takes its topic, its offset accepted as that many
//!   jobs, each job queued behind its alert's earlier events.
//!
//! Nothing here knows where requests go: a route's target (webhook, rate
//! limit, answer rules) is `deliver`'s, and `LiveRoute` holds the two
//! together.

mod event;
mod intake;
pub(crate) mod jq;
mod jq_bounds;
pub(crate) mod jq_budget;
mod nesting;
pub(crate) mod preset;
mod strict_json;

use std::sync::Arc;

use anyhow::{Result, anyhow};
use bytes::Bytes;

use crate::relay::config::{Mapping, Preset, RouteConfig};
use crate::relay::stage::Stage;
use preset::{Decision, decide};

pub(crate) use event::Event;
pub(crate) use intake::take;
use jq::Jq;

/// One route, compiled: which events it takes and how each becomes
/// request bodies.
pub(crate) struct Route {
    pub name: Arc<str>,
    /// The topics it takes; `None`: all of the relay's.
    pub topics: Option<Vec<String>>,
    filter: Option<Jq>,
    mapping: Compiled,
    key: Option<Jq>,
}

enum Compiled {
    Preset(Preset),
    Jq(Jq),
}

/// What one route does with one event.
#[derive(Debug, PartialEq)]
pub(crate) enum RouteDecision {
    Skip(String),
    Invalid {
        stage: Stage,
        reason: String,
    },
    Deliver {
        /// The ordering key: events with one key go out in order.
        key: Option<String>,
        bodies: Vec<Bytes>,
        warning: Option<String>,
    },
}

/// What a route knows about an event in the consume loop.
pub(crate) enum Intake {
    Decided(RouteDecision),
    /// Filter and map in the delivery task ([`Route::later`]); the key is
    /// known now.
    Later(EventKey),
}

/// What a jq route's `key` program said about an event, at intake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EventKey {
    /// No `key` program, or it gave `null`: the event is not ordered.
    Unkeyed,
    Key(String),
    /// The program failed: the event is invalid at map, unless the
    /// route's filter skips it.
    Failed(String),
}

impl EventKey {
    /// The key to order by, and why the `key` program failed: what a job
    /// keeps of it (the key moves into the job's `OrderKey`, not copied).
    pub(crate) fn split(self) -> (Option<String>, Option<String>) {
        match self {
            EventKey::Unkeyed => (None, None),
            EventKey::Key(k) => (Some(k), None),
            EventKey::Failed(reason) => (None, Some(reason)),
        }
    }
}

impl Route {
    /// One `[[route]]`, its jq programs compiled (and `map_file` read).
    pub(crate) fn compile(r: &RouteConfig) -> Result<Self> {
        let name = &r.name;
        let mapping = match r.mapping()? {
            Mapping::Preset(p) => Compiled::Preset(p),
            Mapping::Jq { code, origin } => {
                Compiled::Jq(Jq::compile(&code).map_err(|e| anyhow!("{origin}: {e}"))?)
            }
        };
        Ok(Route {
            name: Arc::from(name.as_str()),
            topics: r.topics.clone(),
            filter: program(name, "filter", r.filter.as_deref())?,
            mapping,
            key: program(name, "key", r.key.as_deref())?,
        })
    }

    /// What the route does, for `kbridge check`: its topics, mapping and
    /// programs (`topics → mapping (filter, key)`).
    pub(crate) fn describe(&self) -> String {
        let topics = self
            .topics
            .as_ref()
            .map_or("every topic".to_string(), |t| t.join(", "));
        let mapping = match &self.mapping {
            Compiled::Preset(p) => format!("preset {}", p.as_str()),
            Compiled::Jq(_) => "jq map".to_string(),
        };
        let programs: Vec<&str> = [("filter", &self.filter), ("key", &self.key)]
            .into_iter()
            .filter(|(_, p)| p.is_some())
            .map(|(name, _)| name)
            .collect();
        if programs.is_empty() {
            format!("{topics} → {mapping}")
        } else {
            format!("{topics} → {mapping} ({})", programs.join(", "))
        }
    }

    /// Whether the route takes events of `topic`.
    pub(crate) fn takes(&self, topic: &str) -> bool {
        self.topics
            .as_ref()
            .is_none_or(|ts| ts.iter().any(|t| t == topic))
    }

    /// What this route knows about an event in offset order, in the
    /// consume loop: enough to queue it behind its key's earlier events.
    /// A preset route decides everything here (the native mapping is
    /// cheap); a jq route only computes its key, and filters and maps later
    /// ([`Route::later`]) in the delivery task, on any runtime worker — jq
    /// is the expensive part, and the consume loop is one task.
    pub(crate) fn intake(&self, event: &Event) -> Intake {
        match &self.mapping {
            Compiled::Preset(p) => Intake::Decided(self.preset(*p, event)),
            // Not JSON: the map says so, later.
            Compiled::Jq(_) => {
                Intake::Later(event.json().map_or(EventKey::Unkeyed, |v| self.key_of(v)))
            }
        }
    }

    /// What this route does with an event: both stages at once (`kbridge
    /// check`).
    pub(crate) fn decide(&self, event: &Event) -> RouteDecision {
        match self.intake(event) {
            Intake::Decided(d) => d,
            Intake::Later(key) => {
                let (order, key_failure) = key.split();
                let mut decision = self.later(event, key_failure.as_deref());
                if let RouteDecision::Deliver { key, .. } = &mut decision {
                    *key = order;
                }
                decision
            }
        }
    }

    /// A jq route's filter and map, after [`Route::intake`]; `key_failure`:
    /// why its `key` program failed then. The key itself is the job's
    /// (`OrderKey`), so a delivery here carries none.
    pub(crate) fn later(&self, event: &Event, key_failure: Option<&str>) -> RouteDecision {
        let map = match &self.mapping {
            Compiled::Jq(map) => map,
            Compiled::Preset(p) => return self.preset(*p, event),
        };
        if let Some(d) = self.filtered(event) {
            return d;
        }
        let v = match event.json() {
            Ok(v) => v,
            Err(invalid) => return invalid,
        };
        if let Some(reason) = key_failure {
            // Mapped first all the same: a map that produces nothing
            // skips the event, whatever its key.
            return match Self::mapped(map, v) {
                RouteDecision::Deliver { .. } => invalid_at_map(format!("key: {reason}")),
                other => other,
            };
        }
        Self::mapped(map, v)
    }

    /// A digest route's decision on an event: its filter and its key —
    /// its map is for groups (`map_group`). Delivered means "into its
    /// group", with no body of its own.
    pub(crate) fn grouped(&self, event: &Event) -> RouteDecision {
        if let Some(d) = self.filtered(event) {
            return d;
        }
        let v = match event.json() {
            Ok(v) => v,
            Err(invalid) => return invalid,
        };
        match self.key_of(v) {
            EventKey::Failed(reason) => invalid_at_map(format!("key: {reason}")),
            key => RouteDecision::Deliver {
                key: key.split().0,
                bodies: Vec::new(),
                warning: None,
            },
        }
    }

    /// A digest route's map on a group (`storm::digest`): the map alone —
    /// the route's filter is for events.
    pub(crate) fn map_group(&self, group: &Event) -> RouteDecision {
        let Compiled::Jq(map) = &self.mapping else {
            return invalid_at_map("a digest needs a jq map".into());
        };
        match group.json() {
            Ok(v) => Self::mapped(map, v),
            Err(invalid) => invalid,
        }
    }

    /// The map's bodies for a value, or why there are none.
    fn mapped(map: &Jq, v: &jaq_json::Val) -> RouteDecision {
        let bodies = match map.bodies(v) {
            Ok(b) => b,
            Err(reason) => return invalid_at_map(reason),
        };
        if bodies.is_empty() {
            return RouteDecision::Skip("the route's map produced nothing".into());
        }
        match bodies.into_iter().collect::<Result<Vec<_>, _>>() {
            Ok(bodies) => RouteDecision::Deliver {
                key: None,
                bodies: bodies.into_iter().map(Bytes::from).collect(),
                warning: None,
            },
            Err(reason) => invalid_at_map(reason),
        }
    }

    /// A preset route's whole decision: filter, the native mapping, the
    /// key (the route's own, or the preset's alert id).
    fn preset(&self, preset: Preset, event: &Event) -> RouteDecision {
        if let Some(d) = self.filtered(event) {
            return d;
        }
        match decide(preset, event.value(), event.max_bytes) {
            Decision::Skip(reason) => RouteDecision::Skip(reason),
            Decision::Reject { stage, reason } => RouteDecision::Invalid { stage, reason },
            Decision::Deliver {
                alert_id,
                body,
                warning,
            } => {
                let key = match &self.key {
                    None => Some(alert_id),
                    Some(_) => match event.json().map(|v| self.key_of(v)) {
                        Ok(EventKey::Unkeyed) => None,
                        Ok(EventKey::Key(k)) => Some(k),
                        Ok(EventKey::Failed(reason)) => {
                            return invalid_at_map(format!("key: {reason}"));
                        }
                        Err(invalid) => return invalid,
                    },
                };
                RouteDecision::Deliver {
                    key,
                    bodies: vec![body],
                    warning,
                }
            }
        }
    }

    /// The filter's verdict when it does not take the event.
    fn filtered(&self, event: &Event) -> Option<RouteDecision> {
        let filter = self.filter.as_ref()?;
        let v = match event.json() {
            Ok(v) => v,
            Err(invalid) => return Some(invalid),
        };
        match filter.holds(v) {
            Ok(true) => None,
            Ok(false) => Some(RouteDecision::Skip("the route's filter is false".into())),
            Err(reason) => Some(invalid_at_map(format!("filter: {reason}"))),
        }
    }

    /// The route's `key` program on the event: its first output as text.
    fn key_of(&self, v: &jaq_json::Val) -> EventKey {
        let Some(p) = &self.key else {
            return EventKey::Unkeyed;
        };
        match p.key(v) {
            Ok(Some(k)) => EventKey::Key(k),
            Ok(None) => EventKey::Unkeyed,
            Err(reason) => EventKey::Failed(reason),
        }
    }
}

fn program(route: &str, what: &str, code: Option<&str>) -> Result<Option<Jq>> {
    code.map(|c| Jq::compile(c).map_err(|e| anyhow!("route '{route}': {what}: {e}")))
        .transpose()
}

fn invalid_at_map(reason: String) -> RouteDecision {
    RouteDecision::Invalid {
        stage: Stage::Map,
        reason,
    }
}

#[cfg(test)]
mod tests;
