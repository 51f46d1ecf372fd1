//! One alert's memory on a storm route, and the pure decision for each of
//! its events: deliver it, skip it (and why), or hold it.
//!
//! The memory is what was last *delivered* (a state and when) and a held
//! recovery, if one waits. Times are epoch milliseconds, so that a memory
//! read back by another instance after a restart means the same thing.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What an alert's state must say to be a recovery.
pub(crate) fn is_resolved(state: &str) -> bool {
    matches!(state, "resolved" | "ok")
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Memory {
    /// The last state delivered to the target, and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered: Option<Delivered>,
    /// A recovery waiting out `hold_resolved`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<Held>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Delivered {
    pub state: String,
    pub at: i64,
}

/// A held recovery: the record itself (its repartition coordinates, key
/// and value), so that whoever owns the partition when the hold ends can
/// send it — or dead-letter it — as if it had just been read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Held {
    /// Sent at this time unless the alert fires again first.
    pub until: i64,
    /// The recovery's state, remembered as delivered once it is sent.
    pub state: String,
    pub offset: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The event's value: JSON (only decodable events are held).
    pub value: String,
}

/// A route's storm keys, as durations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Policy {
    pub dedupe: Option<Duration>,
    pub hold_resolved: Option<Duration>,
    pub max_age: Option<Duration>,
}

/// What is known of one event when it reaches the storm stage.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Seen<'a> {
    pub state: &'a str,
    /// Its Kafka timestamp (epoch ms), for `max_age`.
    pub timestamp: Option<i64>,
    /// Re-driven from the dead letters on purpose: never a repeat.
    pub redriven: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Deliver,
    /// Hold the recovery until then.
    Hold {
        until: i64,
    },
    Skip(Absorbed),
}

/// Why an event was not sent: each a reason in the log and a metric.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Absorbed {
    /// Older than `max_age`.
    Stale { age_ms: i64 },
    /// Its state repeats the one delivered this long ago, within `dedupe`.
    Repeat { state: String, ago_ms: i64 },
    /// A recovery repeated while the first one is held.
    RepeatHeld,
    /// Fired again while its recovery was held: the recovery and this
    /// trigger are both absorbed.
    Flap,
}

impl Absorbed {
    /// The metric's `reason` label.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Absorbed::Stale { .. } => "max_age",
            Absorbed::Repeat { .. } | Absorbed::RepeatHeld => "dedupe",
            Absorbed::Flap => "flap",
        }
    }

    /// The reason, in words, for the log and `kbridge check`.
    pub(crate) fn reason(&self, policy: &Policy) -> String {
        let show =
            |ms: i64| crate::time_spec::show_duration(Duration::from_millis(ms.max(0) as u64));
        match self {
            Absorbed::Stale { age_ms } => format!(
                "max_age: the event is {} old, over max_age {}",
                show(*age_ms),
                policy
                    .max_age
                    .map_or("-".into(), crate::time_spec::show_duration)
            ),
            Absorbed::Repeat { state, ago_ms } => format!(
                "dedupe: state '{state}' repeats the one delivered {} ago (dedupe {})",
                show(*ago_ms),
                policy
                    .dedupe
                    .map_or("-".into(), crate::time_spec::show_duration)
            ),
            Absorbed::RepeatHeld => {
                "dedupe: a recovery repeated while the first is held (hold_resolved)".into()
            }
            Absorbed::Flap => format!(
                "flap: fired again within hold_resolved {} of its recovery; the recovery and this trigger are both absorbed",
                policy
                    .hold_resolved
                    .map_or("-".into(), crate::time_spec::show_duration)
            ),
        }
    }
}

/// The decision on one event, and whether it ends a held recovery (a
/// trigger that comes while one is held, delivered or not).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Decision {
    pub verdict: Verdict,
    pub ends_hold: bool,
}

fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

/// What to do with an event of this alert, given its memory, at `now`.
pub(crate) fn decide(memory: &Memory, seen: Seen<'_>, policy: &Policy, now: i64) -> Decision {
    let decided = |verdict| Decision {
        verdict,
        ends_hold: false,
    };
    if let (Some(max), Some(ts)) = (policy.max_age, seen.timestamp) {
        let age_ms = now.saturating_sub(ts);
        if age_ms > ms(max) {
            return decided(Verdict::Skip(Absorbed::Stale { age_ms }));
        }
    }
    let repeat = |state: &str| -> Option<Absorbed> {
        let window = policy.dedupe?;
        let last = memory.delivered.as_ref()?;
        let ago_ms = now.saturating_sub(last.at);
        (!seen.redriven && last.state == state && ago_ms < ms(window)).then(|| Absorbed::Repeat {
            state: state.to_string(),
            ago_ms,
        })
    };
    if is_resolved(seen.state) {
        if memory.held.is_some() {
            return decided(Verdict::Skip(Absorbed::RepeatHeld));
        }
        if let Some(r) = repeat(seen.state) {
            return decided(Verdict::Skip(r));
        }
        return match policy.hold_resolved {
            Some(hold) => decided(Verdict::Hold {
                until: now.saturating_add(ms(hold)),
            }),
            None => decided(Verdict::Deliver),
        };
    }
    if memory.held.is_some() {
        // The target's last word on the alert is still what was delivered
        // before the recovery: if that was this state, nothing changed.
        let unchanged = memory
            .delivered
            .as_ref()
            .is_some_and(|d| d.state == seen.state);
        return Decision {
            verdict: if unchanged {
                Verdict::Skip(Absorbed::Flap)
            } else {
                Verdict::Deliver
            },
            ends_hold: true,
        };
    }
    match repeat(seen.state) {
        Some(r) => decided(Verdict::Skip(r)),
        None => decided(Verdict::Deliver),
    }
}

impl Policy {
    /// How long a delivered state is remembered: the dedupe window, and
    /// with `hold_resolved` a day at least (a flap is judged against the
    /// state delivered before the recovery).
    pub(crate) fn remember(&self) -> Duration {
        let flap = if self.hold_resolved.is_some() {
            Duration::from_secs(24 * 3600)
        } else {
            Duration::ZERO
        };
        self.dedupe.unwrap_or_default().max(flap)
    }
}

impl Memory {
    /// Whether nothing of it matters any more at `now`: no hold, and the
    /// delivered state older than the policy remembers.
    pub(crate) fn is_expired(&self, policy: &Policy, now: i64) -> bool {
        self.held.is_none()
            && self
                .delivered
                .as_ref()
                .is_none_or(|d| now.saturating_sub(d.at) >= ms(policy.remember()))
    }

    /// What it counts against `max_state_bytes` with its key: the text it
    /// holds, and a fixed share for the map's and the lock's overhead.
    pub(crate) fn size(&self, key: &str) -> usize {
        128 + key.len()
            + self.delivered.as_ref().map_or(0, |d| d.state.len())
            + self.held.as_ref().map_or(0, |h| {
                h.value.len() + h.state.len() + h.key.as_ref().map_or(0, String::len)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn policy() -> Policy {
        Policy {
            dedupe: Some(Duration::from_secs(600)),
            hold_resolved: Some(Duration::from_secs(120)),
            max_age: Some(Duration::from_secs(3600)),
        }
    }

    fn seen(state: &str) -> Seen<'_> {
        Seen {
            state,
            timestamp: None,
            redriven: false,
        }
    }

    fn delivered(state: &str, at: i64) -> Memory {
        Memory {
            delivered: Some(Delivered {
                state: state.into(),
                at,
            }),
            held: None,
        }
    }

    fn held(mut m: Memory, until: i64) -> Memory {
        m.held = Some(Held {
            until,
            state: "ok".into(),
            offset: 7,
            timestamp: None,
            key: Some("k".into()),
            value: "{}".into(),
        });
        m
    }

    #[test]
    fn a_repeated_trigger_within_the_window_is_skipped_and_after_it_sent() {
        let m = delivered("firing", 0);
        let d = decide(&m, seen("firing"), &policy(), 5 * MIN);
        assert_eq!(
            d.verdict,
            Verdict::Skip(Absorbed::Repeat {
                state: "firing".into(),
                ago_ms: 5 * MIN
            })
        );
        assert_eq!(
            decide(&m, seen("firing"), &policy(), 10 * MIN).verdict,
            Verdict::Deliver
        );
        // A change of state is never a repeat.
        assert_eq!(
            decide(&m, seen("critical"), &policy(), MIN).verdict,
            Verdict::Deliver
        );
    }

    #[test]
    fn a_redriven_record_is_never_a_repeat() {
        let m = delivered("firing", 0);
        let s = Seen {
            redriven: true,
            ..seen("firing")
        };
        assert_eq!(decide(&m, s, &policy(), MIN).verdict, Verdict::Deliver);
    }

    #[test]
    fn a_recovery_is_held_and_a_trigger_within_the_hold_absorbs_both() {
        let m = delivered("firing", 0);
        let d = decide(&m, seen("ok"), &policy(), MIN);
        assert_eq!(d.verdict, Verdict::Hold { until: 3 * MIN });
        let m = held(m, 3 * MIN);
        let d = decide(&m, seen("firing"), &policy(), 2 * MIN);
        assert_eq!(
            d,
            Decision {
                verdict: Verdict::Skip(Absorbed::Flap),
                ends_hold: true
            }
        );
        // A second recovery while one is held is a repeat of it.
        assert_eq!(
            decide(&m, seen("resolved"), &policy(), 2 * MIN).verdict,
            Verdict::Skip(Absorbed::RepeatHeld)
        );
    }

    #[test]
    fn a_trigger_of_another_state_during_a_hold_is_sent() {
        let m = held(delivered("warning", 0), 3 * MIN);
        let d = decide(&m, seen("critical"), &policy(), 2 * MIN);
        assert_eq!(
            d,
            Decision {
                verdict: Verdict::Deliver,
                ends_hold: true
            }
        );
    }

    #[test]
    fn without_a_hold_a_recovery_goes_at_once() {
        let p = Policy {
            hold_resolved: None,
            ..policy()
        };
        let m = delivered("firing", 0);
        assert_eq!(decide(&m, seen("ok"), &p, MIN).verdict, Verdict::Deliver);
    }

    #[test]
    fn an_old_event_is_stale_whatever_its_state() {
        let s = Seen {
            timestamp: Some(0),
            ..seen("firing")
        };
        let d = decide(&Memory::default(), s, &policy(), 61 * MIN);
        assert_eq!(
            d.verdict,
            Verdict::Skip(Absorbed::Stale { age_ms: 61 * MIN })
        );
        assert!(d.verdict != Verdict::Deliver);
        let fresh = Seen {
            timestamp: Some(59 * MIN),
            ..seen("firing")
        };
        assert_eq!(
            decide(&Memory::default(), fresh, &policy(), 61 * MIN).verdict,
            Verdict::Deliver
        );
    }

    #[test]
    fn memory_expires_after_what_the_policy_remembers_never_while_held() {
        let p = Policy {
            hold_resolved: None,
            ..policy()
        };
        let m = delivered("firing", 0);
        assert!(!m.is_expired(&p, 9 * MIN));
        assert!(m.is_expired(&p, 10 * MIN));
        // With hold_resolved: a day.
        assert!(!m.is_expired(&policy(), 10 * MIN));
        assert!(!held(m, 0).is_expired(&p, 1000 * MIN));
    }

    #[test]
    fn memory_round_trips_through_json() {
        let m = held(delivered("firing", 5), 9);
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<Memory>(&text).unwrap(), m);
    }
}
