//! A group of alerts on a digest route (`group_by`), Alertmanager's model
//! made durable: its alerts with their latest state and event, what the
//! target was last told of each, and when the next digest is due. Pure:
//! `fold` takes an event in, `digest` says what the next message holds,
//! `sent` records that it went.
//!
//! Timing, as Alertmanager's `group_wait`, `group_interval` and
//! `repeat_interval`: a new group's first digest waits `group_wait` (more
//! alerts join it meanwhile); after a digest, a change waits until
//! `group_interval` after it; a group that still fires and has not
//! changed is told again after `repeat_interval`. A recovery and a
//! re-trigger between two digests cancel out: the digest says what
//! changed since the last one, and the target never sees the flap.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::memory::is_resolved;

/// A route's grouping times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Timing {
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
}

/// One alert of a group: its latest state and event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Member {
    pub state: String,
    /// When it joined the group (epoch ms).
    pub since: i64,
    /// When its state last changed.
    pub changed_at: i64,
    /// Its latest event, as JSON text.
    pub event: String,
    /// Events of it absorbed since it joined (repeats of its state).
    #[serde(default)]
    pub repeats: u64,
}

/// What a group knows beyond its members: what the target was told, and
/// when to tell it next.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Meta {
    /// When the group (re)started, with its first alert.
    pub started: i64,
    /// When the next digest is due; `None`: nothing to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<i64>,
    /// When the last digest went, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sent: Option<i64>,
    /// Digests sent so far.
    #[serde(default)]
    pub digests: u64,
    /// The state of each alert the target was last told.
    #[serde(default)]
    pub told: BTreeMap<String, String>,
}

/// A whole group: the unit a digest speaks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Group {
    pub meta: Meta,
    pub members: BTreeMap<String, Member>,
}

/// What a fold changed, for the state topic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Folded {
    /// The member's record must be written.
    pub member: bool,
    /// The group's record must be written.
    pub meta: bool,
    /// The event only repeated its alert's state.
    pub repeat: bool,
}

fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

impl Group {
    /// Takes an event of alert `id` in, at `now`.
    pub(crate) fn fold(
        &mut self,
        id: &str,
        state: &str,
        event: &str,
        timing: &Timing,
        now: i64,
    ) -> Folded {
        let mut folded = Folded::default();
        // A recovery of an alert the group does not know (it was told and
        // forgotten, or never seen): worth saying only if the target was
        // told it fires.
        if is_resolved(state) && !self.members.contains_key(id) && !self.meta.told.contains_key(id)
        {
            folded.repeat = true;
            return folded;
        }
        if self.is_empty() {
            self.meta.started = now;
            folded.meta = true;
        }
        match self.members.get_mut(id) {
            Some(m) if m.state == state => {
                m.repeats = m.repeats.saturating_add(1);
                m.event = event.to_string();
                folded.member = true;
                folded.repeat = true;
            }
            Some(m) => {
                m.state = state.to_string();
                m.changed_at = now;
                m.event = event.to_string();
                folded.member = true;
            }
            None => {
                self.members.insert(
                    id.to_string(),
                    Member {
                        state: state.to_string(),
                        since: now,
                        changed_at: now,
                        event: event.to_string(),
                        repeats: 0,
                    },
                );
                folded.member = true;
            }
        }
        let due = self.next_due(timing);
        if due != self.meta.due {
            self.meta.due = due;
            folded.meta = true;
        }
        folded
    }

    /// Whether a member's state differs from what the target was told.
    fn is_news(&self, id: &str, m: &Member) -> bool {
        match self.meta.told.get(id) {
            Some(told) => *told != m.state,
            // Fired and recovered before a digest told it: still news
            // (every alert appears in some digest), then it leaves.
            None => true,
        }
    }

    fn has_news(&self) -> bool {
        self.members.iter().any(|(id, m)| self.is_news(id, m))
    }

    fn firing(&self) -> usize {
        self.members
            .values()
            .filter(|m| !is_resolved(&m.state))
            .count()
    }

    /// When the next digest is due: news waits for `group_wait` (first) or
    /// `group_interval` (after one); a group still firing is repeated
    /// after `repeat_interval`.
    fn next_due(&self, timing: &Timing) -> Option<i64> {
        if self.has_news() {
            return Some(match self.meta.last_sent {
                None => self.meta.started.saturating_add(ms(timing.group_wait)),
                Some(last) => last.saturating_add(ms(timing.group_interval)),
            });
        }
        match self.meta.last_sent {
            Some(last) if self.firing() > 0 => {
                Some(last.saturating_add(ms(timing.repeat_interval)))
            }
            _ => None,
        }
    }

    /// Whether a digest is due at `now`.
    pub(crate) fn is_due(&self, now: i64) -> bool {
        self.meta.due.is_some_and(|d| d <= now)
    }

    /// The group as the route's `map` receives it (see README, "Digests").
    pub(crate) fn digest(&self, route: &str, key: &str) -> Value {
        let mut new = 0;
        let mut recovered = 0;
        let mut refired = 0;
        let alerts: Vec<Value> = self
            .members
            .iter()
            .map(|(id, m)| {
                let news = self.is_news(id, m);
                let told = self.meta.told.get(id);
                if news {
                    match (told, is_resolved(&m.state)) {
                        (None, _) => new += 1,
                        (Some(_), true) => recovered += 1,
                        (Some(_), false) => refired += 1,
                    }
                }
                json!({
                    "id": id,
                    "state": m.state,
                    "changed": news,
                    "since": m.since,
                    "changed_at": m.changed_at,
                    "repeats": m.repeats,
                    "event": serde_json::from_str::<Value>(&m.event).unwrap_or(Value::Null),
                })
            })
            .collect();
        let firing = self.firing();
        json!({
            "route": route,
            "group": key,
            "status": if firing > 0 { "firing" } else { "resolved" },
            "firing": firing,
            "resolved": self.members.len().saturating_sub(firing),
            "new": new,
            "recovered": recovered,
            "refired": refired,
            "repeat": new + recovered + refired == 0,
            "digest": self.meta.digests.saturating_add(1),
            "started": self.meta.started,
            "alerts": alerts,
        })
    }

    /// Records that the digest built from `told` (each member's state
    /// then) went at `now`: what the target knows, the resolved members
    /// told of forgotten. Returns the members forgotten.
    pub(crate) fn sent(
        &mut self,
        told: &BTreeMap<String, String>,
        timing: &Timing,
        now: i64,
    ) -> Vec<String> {
        self.meta.last_sent = Some(now);
        self.meta.digests = self.meta.digests.saturating_add(1);
        let mut forgotten = Vec::new();
        for (id, state) in told {
            if is_resolved(state) {
                self.meta.told.remove(id);
                if self.members.get(id).is_some_and(|m| m.state == *state) {
                    self.members.remove(id);
                    forgotten.push(id.clone());
                }
            } else {
                self.meta.told.insert(id.clone(), state.clone());
            }
        }
        self.meta.due = self.next_due(timing);
        forgotten
    }

    /// Each member's state now: what a digest built now tells.
    pub(crate) fn states(&self) -> BTreeMap<String, String> {
        self.members
            .iter()
            .map(|(id, m)| (id.clone(), m.state.clone()))
            .collect()
    }

    /// Whether nothing is left of it.
    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty() && self.meta.told.is_empty()
    }

    /// What it counts against `max_state_bytes` with its key.
    pub(crate) fn size(&self, key: &str) -> usize {
        128 + key.len()
            + self
                .meta
                .told
                .iter()
                .map(|(k, v)| 16 + k.len() + v.len())
                .sum::<usize>()
            + self
                .members
                .iter()
                .map(|(k, m)| 64 + k.len() + m.state.len() + m.event.len())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1000;

    fn timing() -> Timing {
        Timing {
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(3600),
        }
    }

    fn send(g: &mut Group, now: i64) -> (Value, Vec<String>) {
        let d = g.digest("robot", "pay-api");
        let told = g.states();
        let forgotten = g.sent(&told, &timing(), now);
        (d, forgotten)
    }

    #[test]
    fn a_new_group_waits_group_wait_and_gathers_what_comes_meanwhile() {
        let mut g = Group::default();
        let f = g.fold("a", "critical", "{}", &timing(), 0);
        assert!(f.member && f.meta);
        assert_eq!(g.meta.due, Some(30 * S));
        g.fold("b", "critical", "{}", &timing(), 10 * S);
        assert_eq!(
            g.meta.due,
            Some(30 * S),
            "the first digest is not pushed back"
        );
        assert!(!g.is_due(29 * S) && g.is_due(30 * S));
        let (d, _) = send(&mut g, 30 * S);
        assert_eq!(d["firing"], 2);
        assert_eq!(d["new"], 2);
        assert_eq!(d["digest"], 1);
        assert_eq!(d["status"], "firing");
        // Nothing new: repeated after repeat_interval.
        assert_eq!(g.meta.due, Some(30 * S + 3600 * S));
    }

    #[test]
    fn changes_after_a_digest_wait_group_interval_and_repeats_are_no_news() {
        let mut g = Group::default();
        g.fold("a", "critical", "{}", &timing(), 0);
        send(&mut g, 30 * S);
        let f = g.fold("a", "critical", r#"{"n":2}"#, &timing(), 40 * S);
        assert!(f.repeat);
        assert_eq!(g.meta.due, Some(30 * S + 3600 * S), "a repeat is no news");
        g.fold("b", "critical", "{}", &timing(), 50 * S);
        assert_eq!(g.meta.due, Some(330 * S));
        g.fold("a", "ok", "{}", &timing(), 60 * S);
        let (d, forgotten) = send(&mut g, 330 * S);
        assert_eq!(
            (d["new"].clone(), d["recovered"].clone()),
            (json!(1), json!(1))
        );
        assert_eq!(d["firing"], 1);
        assert_eq!(
            forgotten,
            vec!["a".to_string()],
            "told of its recovery, it leaves"
        );
        assert!(!g.members.contains_key("a"));
    }

    #[test]
    fn a_flap_between_two_digests_is_no_news() {
        let mut g = Group::default();
        g.fold("a", "critical", "{}", &timing(), 0);
        send(&mut g, 30 * S);
        g.fold("a", "ok", "{}", &timing(), 40 * S);
        assert_eq!(g.meta.due, Some(330 * S));
        g.fold("a", "critical", "{}", &timing(), 50 * S);
        assert_eq!(
            g.meta.due,
            Some(30 * S + 3600 * S),
            "back to what the target knows: only the repeat remains"
        );
    }

    #[test]
    fn a_group_all_told_resolved_is_empty() {
        let mut g = Group::default();
        g.fold("a", "critical", "{}", &timing(), 0);
        send(&mut g, 30 * S);
        g.fold("a", "ok", "{}", &timing(), 40 * S);
        let (d, _) = send(&mut g, 330 * S);
        assert_eq!(d["status"], "resolved");
        assert!(g.is_empty());
        assert_eq!(g.meta.due, None);
        // A recovery of an alert nobody was told of is nothing.
        let f = g.fold("z", "ok", "{}", &timing(), 400 * S);
        assert!(f.repeat && !f.member);
        assert!(g.members.is_empty());
    }

    #[test]
    fn an_alert_that_fires_and_recovers_before_a_digest_is_told_once_then_leaves() {
        let mut g = Group::default();
        g.fold("a", "critical", "{}", &timing(), 0);
        g.fold("a", "ok", "{}", &timing(), 10 * S);
        assert_eq!(g.meta.due, Some(30 * S));
        let (d, forgotten) = send(&mut g, 30 * S);
        assert_eq!(d["alerts"][0]["state"], "ok");
        assert_eq!(forgotten, vec!["a".to_string()]);
        assert!(g.is_empty());
    }

    #[test]
    fn a_change_during_a_digest_stays_news() {
        let mut g = Group::default();
        g.fold("a", "critical", "{}", &timing(), 0);
        let told = g.states();
        // Recovered while the digest was on its way.
        g.fold("a", "ok", "{}", &timing(), 31 * S);
        g.sent(&told, &timing(), 32 * S);
        assert_eq!(g.meta.told.get("a").map(String::as_str), Some("critical"));
        assert_eq!(g.meta.due, Some(332 * S));
        assert!(g.members.contains_key("a"));
    }
}
