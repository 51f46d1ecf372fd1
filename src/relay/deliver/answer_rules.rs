//! A target's own answer rules (`webhook.success`, `webhook.reject`): jq
//! on the answer's JSON body, refining `answer::classify`. A chat robot
//! says "no" with HTTP 200 and `{"errcode": 310000}`; an intake may say
//! "this alert is wrong" with a 500. The rules let a route say so:
//!
//! - `reject` (any status): true → the alert is refused, dead-lettered,
//!   never retried.
//! - `success` (2xx only): true → delivered; false → refused. It replaces
//!   the default `code` check.
//!
//! A body that is not JSON, or a rule that fails on it, leaves the default
//! verdict standing.

use anyhow::{Result, anyhow};

use super::answer::{Rejection, Verdict, snippet};
use crate::relay::route::jq::{self, Jq};

#[derive(Debug, Default)]
pub(crate) struct AnswerRules {
    success: Option<Jq>,
    reject: Option<Jq>,
}

impl AnswerRules {
    /// Compiles the rules; an error names the key.
    pub(crate) fn new(success: Option<&str>, reject: Option<&str>) -> Result<Self> {
        let compile = |what: &str, code: Option<&str>| {
            code.map(|c| Jq::compile(c).map_err(|e| anyhow!("webhook.{what}: {e}")))
                .transpose()
        };
        Ok(Self {
            success: compile("success", success)?,
            reject: compile("reject", reject)?,
        })
    }

    /// The verdict once the rules had their say.
    pub(crate) fn refine(&self, status: u16, body: &[u8], verdict: Verdict) -> Verdict {
        if self.success.is_none() && self.reject.is_none() {
            return verdict;
        }
        let Ok(answer) = jq::parse(body) else {
            return verdict;
        };
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

    #[test]
    fn rules_refine_the_default_verdict() {
        let robot = AnswerRules::new(Some(".errcode == 0"), None).unwrap();
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
            trouble: super::super::answer::Trouble::Unavailable,
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

        let intake = AnswerRules::new(None, Some(r#"(.error // "") | test("bad alert")"#)).unwrap();
        assert!(rejected(&intake.refine(
            500,
            br#"{"error":"bad alert: no host"}"#,
            retry.clone()
        )));
        assert_eq!(
            intake.refine(500, br#"{"error":"overloaded"}"#, retry.clone()),
            retry
        );
        let e = AnswerRules::new(Some(".a |"), None)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("webhook.success: line 1"), "{e}");
    }
}
