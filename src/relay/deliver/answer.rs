//! The answer: what the webhook's answer means — delivered,
//! rejected for good, or worth another try (and whose fault it is). Pure, so
//! every rule of the target's contract is unit-tested. Which statuses are
//! about the alert and which about the target is `config::StatusPolicy`'s.

use std::time::Duration;

use crate::relay::config::{StatusPolicy, Treatment};

/// The verdict on one HTTP exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Delivered,
    /// The target will never accept this alert: dead-letter it, no retry.
    Rejected {
        kind: Rejection,
        reason: String,
    },
    /// Keep the alert and try again, not before `after` when the target
    /// said so.
    Retry {
        reason: String,
        after: Option<Duration>,
        trouble: Trouble,
    },
}

/// Why an alert is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trouble {
    /// 408, 5xx, a timeout or a connection error: the target is busy,
    /// failing or down; it recovers by itself.
    Unavailable,
    /// 429, or the route's `webhook.throttled` rule (a chat robot's "send
    /// too fast" in an HTTP 200): the target refuses *every* request for a
    /// while. The whole route pauses (`after`, or the backoff) instead of
    /// each alert spending its attempts; never the alert's fault.
    Throttled,
    /// 401, 403, 404, 405, 407, a redirect, or a status in neither list:
    /// the target's address or kbridge's credentials are wrong, and a
    /// person must fix the configuration.
    Misconfigured,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// HTTP 400 "not match any cmdb instance": the alert names no known host.
    NoCmdbMatch,
    /// Another status of `retry.reject_on`.
    ClientError,
    /// 2xx whose body carries a non-zero `code`.
    ErrorCode,
    /// 3xx, when `retry.reject_on` lists it (by default it is retried).
    /// Never followed: a 301/302/303 would turn the POST into a body-less
    /// GET, whose 200 would look like a delivery.
    Redirect,
    /// The target's own `webhook.success` / `webhook.reject` rule.
    Rule,
}

impl Rejection {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Rejection::NoCmdbMatch => "no_cmdb_match",
            Rejection::ClientError => "client_error",
            Rejection::ErrorCode => "error_code",
            Rejection::Redirect => "redirect",
            Rejection::Rule => "rule",
        }
    }
}

/// The marker the EasyOps intake puts in its 400 answer when no CMDB
/// instance matches the alert's dimensions.
pub(crate) const NO_CMDB_MATCH: &str = "not match any cmdb instance";

/// Classifies an HTTP answer. `retry_after` is the raw header, if any.
pub(crate) fn classify(
    status: u16,
    body: &[u8],
    retry_after: Option<&str>,
    policy: &StatusPolicy,
) -> Verdict {
    if (200..300).contains(&status) {
        let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        return match json.as_ref().and_then(|j| j.get("code")) {
            None => Verdict::Delivered,
            Some(c) if c.as_i64() == Some(0) || c.as_str() == Some("0") => Verdict::Delivered,
            Some(c) => Verdict::Rejected {
                kind: Rejection::ErrorCode,
                reason: format!("HTTP {status} with code {c}: {}", snippet(body)),
            },
        };
    }
    let after = retry_after.and_then(parse_retry_after);
    match policy.treat(status) {
        Treatment::Reject => {
            let kind = rejection(status, body);
            let reason = match kind {
                Rejection::Redirect => format!("HTTP {status}: {REDIRECT}"),
                Rejection::NoCmdbMatch => {
                    format!("HTTP 400, no CMDB instance matched: {}", snippet(body))
                }
                _ => format!("HTTP {status}: {}", snippet(body)),
            };
            Verdict::Rejected { kind, reason }
        }
        Treatment::Retry => match status {
            429 => Verdict::Retry {
                reason: format!("HTTP 429, the target is throttling: {}", snippet(body)),
                after,
                trouble: Trouble::Throttled,
            },
            408 | 500..=599 => Verdict::Retry {
                reason: format!("HTTP {status}: {}", snippet(body)),
                after,
                trouble: Trouble::Unavailable,
            },
            _ => Verdict::Retry {
                reason: format!(
                    "HTTP {status}: {} ({}); the alert is kept and retried until this is fixed",
                    what_to_fix(status),
                    snippet(body)
                ),
                after,
                trouble: Trouble::Misconfigured,
            },
        },
        Treatment::Unlisted => Verdict::Retry {
            reason: format!(
                "HTTP {status}: {}; this status is in neither retry.retry_on nor retry.reject_on, so the alert is kept and retried: add it to retry.reject_on if it means this alert is wrong",
                snippet(body)
            ),
            after,
            trouble: Trouble::Misconfigured,
        },
    }
}

const REDIRECT: &str = "the webhook redirects, and kbridge does not follow redirects (a POST would become a GET); set webhook.url to the final address";

/// What an answer about the target says to fix.
fn what_to_fix(status: u16) -> &'static str {
    match status {
        300..=399 => REDIRECT,
        401 | 403 => {
            "the webhook refused kbridge's credentials; check webhook.headers (an Authorization token that expired or was rotated)"
        }
        407 => {
            "a proxy between kbridge and the webhook wants credentials; check the user and password in webhook.proxy (or https_proxy / http_proxy)"
        }
        404 | 405 => "there is no alert intake at webhook.url (or not for POST); check webhook.url",
        _ => "the webhook answers that it cannot take alerts; check the target and webhook.url",
    }
}

fn rejection(status: u16, body: &[u8]) -> Rejection {
    match status {
        300..=399 => Rejection::Redirect,
        400 if is_cmdb_miss(body) => Rejection::NoCmdbMatch,
        _ => Rejection::ClientError,
    }
}

/// The EasyOps intake's 400 when no CMDB instance matches the alert.
fn is_cmdb_miss(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .as_ref()
        .and_then(|j| j.get("error"))
        .and_then(|e| e.as_str())
        .is_some_and(|e| e.contains(NO_CMDB_MATCH))
}

/// `Retry-After` as delay-seconds or an HTTP date.
pub(crate) fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = jiff::fmt::rfc2822::parse(v).ok()?.timestamp();
    let delta = when.duration_since(jiff::Timestamp::now());
    Some(Duration::try_from(delta).unwrap_or(Duration::ZERO))
}

/// The start of a body for logs and dead-letter headers: bounded, one line.
pub(super) fn snippet(body: &[u8]) -> String {
    const MAX: usize = 300;
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX)]);
    let mut s: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if body.len() > MAX {
        s.push('…');
    }
    if s.is_empty() {
        "(empty body)".into()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::config::StatusSpec;

    fn classify(status: u16, body: &[u8], retry_after: Option<&str>) -> Verdict {
        super::classify(status, body, retry_after, &StatusPolicy::default())
    }

    fn trouble(v: &Verdict) -> Option<Trouble> {
        match v {
            Verdict::Retry { trouble, .. } => Some(*trouble),
            _ => None,
        }
    }

    #[test]
    fn success_needs_code_zero_or_absent() {
        assert_eq!(
            classify(200, br#"{"code":0,"data":{}}"#, None),
            Verdict::Delivered
        );
        assert_eq!(classify(200, b"", None), Verdict::Delivered);
        assert_eq!(classify(201, br#"{"ok":true}"#, None), Verdict::Delivered);
        assert!(matches!(
            classify(200, br#"{"code":1001,"error":"bad"}"#, None),
            Verdict::Rejected {
                kind: Rejection::ErrorCode,
                ..
            }
        ));
    }

    #[test]
    fn answers_about_the_alert_reject_it() {
        let body = br#"{"code":400,"error":"alert dims not match any cmdb instance"}"#;
        assert!(matches!(
            classify(400, body, None),
            Verdict::Rejected {
                kind: Rejection::NoCmdbMatch,
                ..
            }
        ));
        for s in [400, 413, 415, 422] {
            assert!(
                matches!(
                    classify(s, br#"{"error":"bad field"}"#, None),
                    Verdict::Rejected {
                        kind: Rejection::ClientError,
                        ..
                    }
                ),
                "{s}"
            );
        }
    }

    #[test]
    fn answers_about_the_target_keep_the_alert_and_say_what_to_fix() {
        for (s, fix) in [
            (401, "webhook.headers"),
            (403, "webhook.headers"),
            (404, "webhook.url"),
            (405, "webhook.url"),
            (407, "proxy"),
            (302, "does not follow redirects"),
            (308, "does not follow redirects"),
            (409, "retry.reject_on"),
        ] {
            let v = classify(s, b"", None);
            assert_eq!(trouble(&v), Some(Trouble::Misconfigured), "{s}: {v:?}");
            let Verdict::Retry { reason, .. } = v else {
                unreachable!()
            };
            assert!(reason.contains(fix), "{s}: {reason}");
        }
    }

    #[test]
    fn redirects_can_be_rejected_but_are_never_followed() {
        let policy = StatusPolicy::new(&[StatusSpec::Class(5)], &[StatusSpec::Class(3)]).unwrap();
        for s in [301, 302, 303, 307, 308] {
            let v = super::classify(s, b"", None, &policy);
            assert!(
                matches!(
                    &v,
                    Verdict::Rejected {
                        kind: Rejection::Redirect,
                        reason,
                    } if reason.contains("does not follow redirects")
                ),
                "{s}: {v:?}"
            );
        }
    }

    #[test]
    fn transient_answers_are_retried() {
        for s in [408, 500, 502, 503, 504] {
            assert_eq!(
                trouble(&classify(s, b"", None)),
                Some(Trouble::Unavailable),
                "{s}"
            );
        }
        assert_eq!(
            classify(429, b"slow down", Some("3")),
            Verdict::Retry {
                reason: "HTTP 429, the target is throttling: slow down".into(),
                after: Some(Duration::from_secs(3)),
                trouble: Trouble::Throttled,
            }
        );
        assert_eq!(
            classify(503, b"busy", Some("7")),
            Verdict::Retry {
                reason: "HTTP 503: busy".into(),
                after: Some(Duration::from_secs(7)),
                trouble: Trouble::Unavailable,
            }
        );
    }

    #[test]
    fn retry_after_dates() {
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
