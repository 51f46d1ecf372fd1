//! Which HTTP statuses are about *this alert* and which about the *target*.
//!
//! Only an answer about the alert may dead-letter it (`retry.reject_on`:
//! 400 — the CMDB miss included —, 413, 415, 422). An answer that says the
//! target or kbridge's credentials are wrong — 401, 403, 404, 405, 407, a
//! redirect — is retried like an outage, with the busy and failing answers
//! (408, 429, 5xx) (`retry.retry_on`): a rotated token or a moved URL must
//! not throw every alert away until someone notices (vector#24543). A
//! status in neither list is retried too, as the target's fault: losing an
//! alert is worse than waiting for someone to say what that status means.
//! 2xx answers are not configurable (see `deliver::answer`, which asks
//! [`StatusPolicy::treat`] about every other status).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// One entry of `retry_on` / `reject_on`: a status (`404`) or a class
/// (`"5xx"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusSpec {
    Code(u16),
    /// The hundreds digit: `Class(5)` is 500–599.
    Class(u16),
}

impl StatusSpec {
    fn matches(self, status: u16) -> bool {
        match self {
            StatusSpec::Code(c) => c == status,
            StatusSpec::Class(h) => status / 100 == h,
        }
    }

    fn overlaps(self, other: StatusSpec) -> bool {
        (300..600).any(|s| self.matches(s) && other.matches(s))
    }
}

impl fmt::Display for StatusSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatusSpec::Code(c) => write!(f, "{c}"),
            StatusSpec::Class(h) => write!(f, "{h}xx"),
        }
    }
}

impl std::str::FromStr for StatusSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bad =
            || format!("'{s}' is not an HTTP status from 300 to 599 nor a class like \"5xx\"");
        if let Some(h) = s.strip_suffix("xx").or_else(|| s.strip_suffix("XX")) {
            return match h.parse::<u16>() {
                Ok(h @ 3..=5) => Ok(StatusSpec::Class(h)),
                _ => Err(bad()),
            };
        }
        match s.parse::<u16>() {
            Ok(c @ 300..=599) => Ok(StatusSpec::Code(c)),
            _ => Err(bad()),
        }
    }
}

impl<'de> Deserialize<'de> for StatusSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Spec;
        impl Visitor<'_> for Spec {
            type Value = StatusSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an HTTP status (404) or a class (\"5xx\")")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StatusSpec, E> {
                v.to_string().parse().map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StatusSpec, E> {
                v.to_string().parse().map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StatusSpec, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(Spec)
    }
}

/// The defaults of `retry.retry_on`.
pub(crate) fn default_retry_on() -> Vec<StatusSpec> {
    use StatusSpec::{Class, Code};
    vec![
        Class(3),
        Code(401),
        Code(403),
        Code(404),
        Code(405),
        Code(407),
        Code(408),
        Code(429),
        Class(5),
    ]
}

/// The defaults of `retry.reject_on`.
pub(crate) fn default_reject_on() -> Vec<StatusSpec> {
    use StatusSpec::Code;
    vec![Code(400), Code(413), Code(415), Code(422)]
}

/// What a non-2xx status asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Treatment {
    /// This alert is wrong: dead-letter it.
    Reject,
    /// The target is wrong, busy or down: keep the alert, try again.
    Retry,
    /// In neither list: retried as the target's fault, and said so.
    Unlisted,
}

/// `retry_on` and `reject_on`, checked once at start.
#[derive(Debug, Clone)]
pub(crate) struct StatusPolicy {
    retry_on: Vec<StatusSpec>,
    reject_on: Vec<StatusSpec>,
}

impl Default for StatusPolicy {
    fn default() -> Self {
        Self {
            retry_on: default_retry_on(),
            reject_on: default_reject_on(),
        }
    }
}

impl StatusPolicy {
    /// Refuses a status that is in both lists.
    pub(crate) fn new(retry_on: &[StatusSpec], reject_on: &[StatusSpec]) -> Result<Self, String> {
        for r in retry_on {
            if let Some(j) = reject_on.iter().find(|j| r.overlaps(**j)) {
                return Err(format!(
                    "retry.retry_on has {r} and retry.reject_on has {j}: a status must be in one list only"
                ));
            }
        }
        Ok(Self {
            retry_on: retry_on.to_vec(),
            reject_on: reject_on.to_vec(),
        })
    }

    /// The treatment of a non-2xx status.
    pub(crate) fn treat(&self, status: u16) -> Treatment {
        let listed = |list: &[StatusSpec]| list.iter().any(|s| s.matches(status));
        if listed(&self.reject_on) {
            Treatment::Reject
        } else if listed(&self.retry_on) {
            Treatment::Retry
        } else {
            Treatment::Unlisted
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_keep_alerts_unless_the_answer_is_about_the_alert() {
        let p = StatusPolicy::default();
        for s in [400, 413, 415, 422] {
            assert_eq!(p.treat(s), Treatment::Reject, "{s}");
        }
        for s in [301, 302, 307, 401, 403, 404, 405, 407, 408, 429, 500, 503] {
            assert_eq!(p.treat(s), Treatment::Retry, "{s}");
        }
        for s in [409, 410, 418, 451] {
            assert_eq!(p.treat(s), Treatment::Unlisted, "{s}");
        }
    }

    #[test]
    fn specs_parse_and_overlaps_are_refused() {
        assert_eq!("5xx".parse(), Ok(StatusSpec::Class(5)));
        assert_eq!("404".parse(), Ok(StatusSpec::Code(404)));
        assert!("200".parse::<StatusSpec>().is_err());
        assert!("2xx".parse::<StatusSpec>().is_err());
        assert!("abc".parse::<StatusSpec>().is_err());
        let e = StatusPolicy::new(&[StatusSpec::Class(4)], &[StatusSpec::Code(400)]).unwrap_err();
        assert!(e.contains("4xx") && e.contains("400"), "{e}");
        let p = StatusPolicy::new(&[StatusSpec::Code(409)], &[StatusSpec::Code(404)]).unwrap();
        assert_eq!(p.treat(404), Treatment::Reject);
        assert_eq!(p.treat(409), Treatment::Retry);
    }
}
