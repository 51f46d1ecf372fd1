//! A target's own answer rules (`webhook.throttled`, `webhook.reject`,
//! `webhook.success`): jq on the answer's JSON body, refining
//! `answer::classify`. A chat robot says "no" with HTTP 200 and
//! `{"errcode": 310000}`, and "too fast, try later" with HTTP 200 and
//! `{"errcode": 130101}`; an intake may say "this alert is wrong" with a
//! 500. The rules let a route say which is which, in this order:
//!
//! - `throttled` (any status): true → the target is throttling or cannot
//!   take alerts now: the alert is kept, and the whole route pauses for
//!   `throttle_pause` (or the `Retry-After`, when longer). Checked first:
//!   a "too fast" answer must never read as this alert's refusal.
//! - `reject` (any status): true → the alert is refused, dead-lettered,
//!   never retried.
//! - `success` (2xx only): true → delivered; false → refused. It replaces
//!   the default `code` check.
//!
//! A body that is not JSON, or a rule that fails on it, leaves the default
//! verdict standing.

use std::time::Duration;

use anyhow::{Result, anyhow};

use super::answer::{Rejection, Trouble, Verdict, snippet};
use crate::relay::config::WebhookConfig;
use crate::relay::route::jq::{self, Jq};

#[derive(Debug, Default)]
pub(crate) struct AnswerRules {
    throttled: Option<Jq>,
    /// How long the route pauses when `throttled` holds.
    pause: Duration,
    success: Option<Jq>,
    reject: Option<Jq>,
}

impl AnswerRules {
    /// Compiles the webhook's rules; an error names the key.
    pub(crate) fn new(webhook: &WebhookConfig) -> Result<Self> {
        let compile = |what: &str, code: &Option<String>| {
            code.as_deref()
                .map(|c| Jq::compile(c).map_err(|e| anyhow!("webhook.{what}: {e}")))
                .transpose()
        };
        Ok(Self {
            throttled: compile("throttled", &webhook.throttled)?,
            pause: webhook.throttle_pause,
            success: compile("success", &webhook.success)?,
            reject: compile("reject", &webhook.reject)?,
        })
    }

    /// The verdict once the rules had their say.
    pub(crate) fn refine(&self, status: u16, body: &[u8], verdict: Verdict) -> Verdict {
        if self.success.is_none() && self.reject.is_none() && self.throttled.is_none() {
            return verdict;
        }
        let Ok(answer) = jq::parse(body) else {
            return verdict;
        };
        if let Some(throttled) = &self.throttled
            && throttled.holds(&answer) == Ok(true)
        {
            // The target's own Retry-After, when it asks for longer.
            let after = match &verdict {
                Verdict::Retry { after: Some(a), .. } => (*a).max(self.pause),
                _ => self.pause,
            };
            return Verdict::Retry {
                reason: format!(
                    "HTTP {status}, the webhook.throttled rule holds: {}",
                    snippet(body)
                ),
                after: Some(after),
                trouble: Trouble::Throttled,
            };
        }
        if let Some(reject) = &self.reject
            && reject.holds(&answer) == Ok(true)
        {
            return Verdict::Rejected {
                kind: Rejection::Rule,
                reason: format!(
                    "HTTP {status}, the webhook.reject rule holds: {}",
                    snippet(body)
                ),
            };
        }
        if let Some(success) = &self.success
            && (200..300).contains(&status)
        {
            return match success.holds(&answer) {
                Ok(true) => Verdict::Delivered,
                Ok(false) => Verdict::Rejected {
                    kind: Rejection::Rule,
                    reason: format!(
                        "HTTP {status}, but the webhook.success rule does not hold: {}",
                        snippet(body)
                    ),
                },
                Err(_) => verdict,
            };
        }
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(v: &Verdict) -> bool {
        matches!(
            v,
            Verdict::Rejected {
                kind: Rejection::Rule,
                ..
            }
        )
    }

    fn rules(
        success: Option<&str>,
        reject: Option<&str>,
        throttled: Option<&str>,
    ) -> Result<AnswerRules> {
        AnswerRules::new(&WebhookConfig {
            success: success.map(String::from),
            reject: reject.map(String::from),
            throttled: throttled.map(String::from),
            throttle_pause: Duration::from_secs(60),
            ..WebhookConfig::default()
        })
    }

    /// A robot's "too fast" in an HTTP 200 is neither a delivery nor this
    /// alert's refusal: the route pauses, for the longer of the configured
    /// pause and the target's Retry-After.
    #[test]
    fn a_throttled_answer_pauses_the_route_before_any_other_rule() {
        let robot = rules(Some(".errcode == 0"), None, Some(".errcode == 130101")).unwrap();
        let v = robot.refine(
            200,
            br#"{"errcode":130101,"errmsg":"send too fast"}"#,
            Verdict::Delivered,
        );
        assert_eq!(
            v,
            Verdict::Retry {
                reason: r#"HTTP 200, the webhook.throttled rule holds: {"errcode":130101,"errmsg":"send too fast"}"#.into(),
                after: Some(Duration::from_secs(60)),
                trouble: Trouble::Throttled,
            }
        );
        let longer = Verdict::Retry {
            reason: "HTTP 429".into(),
            after: Some(Duration::from_secs(600)),
            trouble: Trouble::Throttled,
        };
        assert!(matches!(
            robot.refine(429, br#"{"errcode":130101}"#, longer),
            Verdict::Retry { after: Some(a), .. } if a == Duration::from_secs(600)
        ));
        assert!(rejected(&robot.refine(
            200,
            br#"{"errcode":310000}"#,
            Verdict::Delivered
        )));
        assert_eq!(
            robot.refine(200, br#"{"errcode":0}"#, Verdict::Delivered),
            Verdict::Delivered
        );
    }

    #[test]
    fn rules_refine_the_default_verdict() {
        let robot = rules(Some(".errcode == 0"), None, None).unwrap();
        assert_eq!(
            robot.refine(200, br#"{"errcode":0}"#, Verdict::Delivered),
            Verdict::Delivered
        );
        assert!(rejected(&robot.refine(
            200,
            br#"{"errcode":310000,"errmsg":"keywords not in content"}"#,
            Verdict::Delivered
        )));
        let retry = Verdict::Retry {
            reason: "HTTP 503".into(),
            after: None,
            trouble: Trouble::Unavailable,
        };
        assert_eq!(
            robot.refine(503, br#"{"errcode":1}"#, retry.clone()),
            retry,
            "success looks at 2xx only"
        );
        assert_eq!(
            robot.refine(200, b"not json", Verdict::Delivered),
            Verdict::Delivered
        );

        let intake = rules(None, Some(r#"(.error // "") | test("bad alert")"#), None).unwrap();
        assert!(rejected(&intake.refine(
            500,
            br#"{"error":"bad alert: no host"}"#,
            retry.clone()
        )));
        assert_eq!(
            intake.refine(500, br#"{"error":"overloaded"}"#, retry.clone()),
            retry
        );
        let e = rules(Some(".a |"), None, None).unwrap_err().to_string();
        assert!(e.starts_with("webhook.success: line 1"), "{e}");
    }
}
