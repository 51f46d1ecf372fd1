//! Routes, compiled: each `[[route]]` of the configuration (or the one
//! `default` route of a config without them) with its jq programs compiled
//! once, and the pure decision of what the route does with one event.

use anyhow::{Result, anyhow};
use bytes::Bytes;

use crate::relay::config::{Mapping, Preset, RateLimit, RelayConfig, RouteConfig, WebhookConfig};
use crate::relay::jq::{self, Jq};
use crate::relay::preset::{Decision, decide};
use crate::relay::stage::Stage;

/// The name of the one route of a configuration without `[[route]]`.
pub(crate) const DEFAULT_ROUTE: &str = "default";

pub(crate) struct Route {
    pub name: String,
    /// The topics it takes; `None`: all of the relay's.
    pub topics: Option<Vec<String>>,
    filter: Option<Jq>,
    mapping: Compiled,
    key: Option<Jq>,
    pub rate_limit: Option<RateLimit>,
    pub webhook: WebhookConfig,
    /// The answer rules, compiled (used by the delivery).
    pub success: Option<Jq>,
    pub reject: Option<Jq>,
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

/// The configuration's routes, compiled; errors name the route, the
/// program and the position in it.
pub(crate) fn compile(cfg: &RelayConfig) -> Result<Vec<Route>> {
    if cfg.routes.is_empty() {
        return Ok(vec![Route {
            name: DEFAULT_ROUTE.into(),
            topics: None,
            filter: None,
            mapping: Compiled::Preset(cfg.preset),
            key: None,
            rate_limit: None,
            webhook: cfg.webhook.clone(),
            success: program(
                DEFAULT_ROUTE,
                "webhook.success",
                cfg.webhook.success.as_deref(),
            )?,
            reject: program(
                DEFAULT_ROUTE,
                "webhook.reject",
                cfg.webhook.reject.as_deref(),
            )?,
        }]);
    }
    cfg.routes.iter().map(route).collect()
}

fn route(r: &RouteConfig) -> Result<Route> {
    let name = &r.name;
    let mapping = match r.mapping()? {
        Mapping::Preset(p) => Compiled::Preset(p),
        Mapping::Jq { code, origin } => {
            Compiled::Jq(Jq::compile(&code).map_err(|e| anyhow!("{origin}: {e}"))?)
        }
    };
    Ok(Route {
        name: name.clone(),
        topics: r.topics.clone(),
        filter: program(name, "filter", r.filter.as_deref())?,
        mapping,
        key: program(name, "key", r.key.as_deref())?,
        rate_limit: r
            .rate_limit
            .as_deref()
            .map(RateLimit::parse)
            .transpose()
            .map_err(|e| anyhow!("route '{name}': {e}"))?,
        webhook: r.webhook.clone(),
        success: program(name, "webhook.success", r.webhook.success.as_deref())?,
        reject: program(name, "webhook.reject", r.webhook.reject.as_deref())?,
    })
}

fn program(route: &str, what: &str, code: Option<&str>) -> Result<Option<Jq>> {
    code.map(|c| Jq::compile(c).map_err(|e| anyhow!("route '{route}': {what}: {e}")))
        .transpose()
}

impl Route {
    /// One line about the route, for `kbridge check`: topics, mapping,
    /// rate limit, answer rules, target.
    pub(crate) fn describe(&self) -> String {
        let topics = self
            .topics
            .as_ref()
            .map_or("every topic".to_string(), |t| t.join(", "));
        let mapping = match &self.mapping {
            Compiled::Preset(p) => format!("preset {}", p.as_str()),
            Compiled::Jq(_) => "jq map".to_string(),
        };
        let mut extras = Vec::new();
        if self.filter.is_some() {
            extras.push("filter".to_string());
        }
        if self.key.is_some() {
            extras.push("key".to_string());
        }
        if let Some(r) = &self.rate_limit {
            extras.push(format!("{} requests per {:?}", r.requests, r.per));
        }
        if self.success.is_some() {
            extras.push("success rule".to_string());
        }
        if self.reject.is_some() {
            extras.push("reject rule".to_string());
        }
        let extras = if extras.is_empty() {
            String::new()
        } else {
            format!(" ({})", extras.join(", "))
        };
        format!(
            "{}: {topics} → {mapping}{extras} → {}",
            self.name,
            crate::redact::url(&self.webhook.url)
        )
    }

    /// Whether the route takes events of `topic`.
    pub(crate) fn takes(&self, topic: &str) -> bool {
        self.topics
            .as_ref()
            .is_none_or(|ts| ts.iter().any(|t| t == topic))
    }

    /// What this route does with an event's value.
    pub(crate) fn decide(&self, value: Option<&[u8]>, max_bytes: usize) -> RouteDecision {
        let parsed = match (&self.filter, &self.mapping) {
            (None, Compiled::Preset(_)) => None,
            _ => match value.map(jq::parse) {
                Some(Ok(v)) => Some(v),
                Some(Err(reason)) => {
                    return RouteDecision::Invalid {
                        stage: Stage::Decode,
                        reason,
                    };
                }
                None => {
                    return RouteDecision::Invalid {
                        stage: Stage::Decode,
                        reason: "no value (a tombstone)".into(),
                    };
                }
            },
        };
        if let (Some(filter), Some(v)) = (&self.filter, &parsed) {
            match filter.holds(v) {
                Ok(true) => {}
                Ok(false) => return RouteDecision::Skip("the route's filter is false".into()),
                Err(reason) => {
                    return RouteDecision::Invalid {
                        stage: Stage::Map,
                        reason: format!("filter: {reason}"),
                    };
                }
            }
        }
        match (&self.mapping, parsed) {
            (Compiled::Preset(p), _) => match decide(*p, value, max_bytes) {
                Decision::Skip(reason) => RouteDecision::Skip(reason),
                Decision::Reject { stage, reason } => RouteDecision::Invalid { stage, reason },
                Decision::Deliver {
                    alert_id,
                    body,
                    warning,
                } => RouteDecision::Deliver {
                    key: Some(alert_id),
                    bodies: vec![body],
                    warning,
                },
            },
            (Compiled::Jq(map), Some(v)) => {
                let outputs = match map.run(&v) {
                    Ok(o) => o,
                    Err(reason) => {
                        return RouteDecision::Invalid {
                            stage: Stage::Map,
                            reason,
                        };
                    }
                };
                if outputs.is_empty() {
                    return RouteDecision::Skip("the route's map produced nothing".into());
                }
                let key = match self.key.as_ref().map(|k| k.run(&v)) {
                    None => None,
                    Some(Ok(keys)) => keys.first().and_then(key_text),
                    Some(Err(reason)) => {
                        return RouteDecision::Invalid {
                            stage: Stage::Map,
                            reason: format!("key: {reason}"),
                        };
                    }
                };
                RouteDecision::Deliver {
                    key,
                    bodies: outputs
                        .iter()
                        .map(|o| Bytes::from(jq::to_json(o)))
                        .collect(),
                    warning: None,
                }
            }
            (Compiled::Jq(_), None) => RouteDecision::Invalid {
                stage: Stage::Decode,
                reason: "no value".into(),
            },
        }
    }
}

/// A key value as text: a string as is, `null` as no key, anything else
/// as its JSON.
fn key_text(v: &jaq_json::Val) -> Option<String> {
    match v {
        jaq_json::Val::Null => None,
        jaq_json::Val::TStr(s) => Some(String::from_utf8_lossy(s).into_owned()),
        other => Some(jq::to_json(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> RelayConfig {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        RelayConfig::load(Some(f.path()), &Default::default()).unwrap()
    }

    const TWO_ROUTES: &str = r#"
topics = ["event", "am"]
[[route]]
name = "easyops"
topics = "event"
preset = "guance-easyops"
[route.webhook]
url = "http://ops/"

[[route]]
name = "feishu"
filter = '.df_status != "ok"'
map = '{msg_type: "text", content: {text: .df_title}}, {msg_type: "text", content: {text: "again"}}'
key = '.df_fault_id'
rate_limit = "100/min"
[route.webhook]
url = "https://open.feishu.cn/open-apis/bot/v2/hook/x"
success = '.code == 0'
"#;

    #[test]
    fn routes_decide_each_on_their_own() {
        let cfg = config(TWO_ROUTES);
        let routes = compile(&cfg).unwrap();
        assert_eq!(routes.len(), 2);
        assert!(routes[0].takes("event") && !routes[0].takes("am"));
        assert!(routes[1].takes("am"));
        let event = br#"{"df_source":"monitor","df_event_id":"e1","df_fault_id":"f1","df_title":"cpu","df_message":"m","df_status":"critical","df_workspace_name":"w","date":1731900000}"#;
        match routes[0].decide(Some(event), 1 << 20) {
            RouteDecision::Deliver { key, bodies, .. } => {
                assert_eq!(key.as_deref(), Some("f1"));
                assert_eq!(bodies.len(), 1);
            }
            other => panic!("{other:?}"),
        }
        match routes[1].decide(Some(event), 1 << 20) {
            RouteDecision::Deliver { key, bodies, .. } => {
                assert_eq!(key.as_deref(), Some("f1"));
                let texts: Vec<serde_json::Value> = bodies
                    .iter()
                    .map(|b| serde_json::from_slice(b).unwrap())
                    .collect();
                assert_eq!(texts[0]["content"]["text"], "cpu");
                assert_eq!(texts.len(), 2, "one request per output");
            }
            other => panic!("{other:?}"),
        }
        let ok = br#"{"df_status":"ok"}"#;
        assert!(matches!(
            routes[1].decide(Some(ok), 1 << 20),
            RouteDecision::Skip(_)
        ));
        assert!(matches!(
            routes[1].decide(Some(b"nope"), 1 << 20),
            RouteDecision::Invalid {
                stage: Stage::Decode,
                ..
            }
        ));
    }

    #[test]
    fn a_jq_error_is_an_invalid_event_with_its_message() {
        let cfg = config(
            "topics = \"t\"\n[[route]]\nname = \"r\"\nmap = 'if .a then {a} else error(\"no a in \\(.)\") end'\n[route.webhook]\nurl = \"http://x/\"\n",
        );
        let routes = compile(&cfg).unwrap();
        assert_eq!(
            routes[0].decide(Some(br#"{"b":1}"#), 1 << 20),
            RouteDecision::Invalid {
                stage: Stage::Map,
                reason: r#"no a in {"b":1}"#.into()
            }
        );
    }

    #[test]
    fn compile_errors_name_the_route_and_program() {
        let cfg = config(
            "topics = \"t\"\n[[route]]\nname = \"chat\"\nmap = '{a: .b'\n[route.webhook]\nurl = \"http://x/\"\n",
        );
        let e = compile(&cfg).err().unwrap().to_string();
        assert!(e.starts_with("route 'chat': map: line 1, column"), "{e}");
    }
}
