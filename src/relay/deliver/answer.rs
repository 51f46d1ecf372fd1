//! Stage 4, the answer: what the webhook's answer means — delivered,
//! rejected for good, or worth another try. Pure, so every rule of the
//! target's contract is unit-tested.

use std::time::Duration;

/// The verdict on one HTTP exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Delivered,
    /// The target will never accept this alert: dead-letter it, no retry.
    Rejected {
        kind: Rejection,
        reason: String,
    },
    /// Transient: try again, not before `after` when the target said so.
    Retry {
        reason: String,
        after: Option<Duration>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// HTTP 400 "not match any cmdb instance": the alert names no known host.
    NoCmdbMatch,
    /// Any other 4xx (but 408/429).
    ClientError,
    /// 2xx whose body carries a non-zero `code`.
    ErrorCode,
    /// 3xx: the webhook moved. Not followed: a 301/302/303 would turn the
    /// POST into a body-less GET, whose 200 would look like a delivery.
    Redirect,
}

impl Rejection {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Rejection::NoCmdbMatch => "no_cmdb_match",
            Rejection::ClientError => "client_error",
            Rejection::ErrorCode => "error_code",
            Rejection::Redirect => "redirect",
        }
    }
}

/// The marker the EasyOps intake puts in its 400 answer when no CMDB
/// instance matches the alert's dimensions.
pub(crate) const NO_CMDB_MATCH: &str = "not match any cmdb instance";

/// Classifies an HTTP answer. `retry_after` is the raw header, if any.
pub(crate) fn classify(status: u16, body: &[u8], retry_after: Option<&str>) -> Verdict {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    match status {
        200..=299 => match json.as_ref().and_then(|j| j.get("code")) {
            None => Verdict::Delivered,
            Some(c) if c.as_i64() == Some(0) || c.as_str() == Some("0") => Verdict::Delivered,
            Some(c) => Verdict::Rejected {
                kind: Rejection::ErrorCode,
                reason: format!("HTTP {status} with code {c}: {}", snippet(body)),
            },
        },
        300..=399 => Verdict::Rejected {
            kind: Rejection::Redirect,
            reason: format!(
                "HTTP {status}: the webhook redirects, and kbridge does not follow redirects (a POST would become a GET); set webhook.url to the final address"
            ),
        },
        408 | 429 | 500..=599 => Verdict::Retry {
            reason: format!("HTTP {status}: {}", snippet(body)),
            after: retry_after.and_then(parse_retry_after),
        },
        400 if json
            .as_ref()
            .and_then(|j| j.get("error"))
            .and_then(|e| e.as_str())
            .is_some_and(|e| e.contains(NO_CMDB_MATCH)) =>
        {
            Verdict::Rejected {
                kind: Rejection::NoCmdbMatch,
                reason: format!("HTTP 400, no CMDB instance matched: {}", snippet(body)),
            }
        }
        _ => Verdict::Rejected {
            kind: Rejection::ClientError,
            reason: format!("HTTP {status}: {}", snippet(body)),
        },
    }
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
fn snippet(body: &[u8]) -> String {
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
    fn no_cmdb_match_is_its_own_rejection() {
        let body = br#"{"code":400,"error":"alert dims not match any cmdb instance"}"#;
        assert!(matches!(
            classify(400, body, None),
            Verdict::Rejected {
                kind: Rejection::NoCmdbMatch,
                ..
            }
        ));
        assert!(matches!(
            classify(400, br#"{"error":"bad field"}"#, None),
            Verdict::Rejected {
                kind: Rejection::ClientError,
                ..
            }
        ));
        assert!(matches!(
            classify(404, b"not found", None),
            Verdict::Rejected {
                kind: Rejection::ClientError,
                ..
            }
        ));
    }

    #[test]
    fn redirects_are_rejected_not_followed() {
        for s in [301, 302, 303, 307, 308] {
            assert!(
                matches!(
                    classify(s, b"", None),
                    Verdict::Rejected {
                        kind: Rejection::Redirect,
                        ..
                    }
                ),
                "{s}"
            );
        }
    }

    #[test]
    fn transient_answers_are_retried() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(
                matches!(classify(s, b"", None), Verdict::Retry { .. }),
                "{s}"
            );
        }
        assert_eq!(
            classify(503, b"busy", Some("7")),
            Verdict::Retry {
                reason: "HTTP 503: busy".into(),
                after: Some(Duration::from_secs(7))
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
