//! Routes, compiled: each `[[route]]` of the configuration (or the one
//! `default` route of a config without them) with its jq programs compiled
//! once, and the pure decision of what the route does with one event.

use std::sync::{Arc, OnceLock};

use anyhow::{Result, anyhow};
use bytes::Bytes;

use crate::relay::config::{Mapping, Preset, RateLimit, RelayConfig, RouteConfig, WebhookConfig};
use crate::relay::deliver::answer_rules::AnswerRules;
use crate::relay::deliver::status_policy::StatusPolicy;
use crate::relay::deliver::webhook::Webhook;
use crate::relay::jq::{self, Jq};
use crate::relay::origin::Origin;
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
    /// The target, and its answer rules compiled (`deliver::answer_rules`).
    pub webhook: WebhookConfig,
    rules: Arc<AnswerRules>,
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
            rules: rules(DEFAULT_ROUTE, &cfg.webhook)?,
            webhook: cfg.webhook.clone(),
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
        rules: rules(name, &r.webhook)?,
        webhook: r.webhook.clone(),
    })
}

/// The webhook's answer rules, compiled; an error names the route.
fn rules(route: &str, webhook: &WebhookConfig) -> Result<Arc<AnswerRules>> {
    AnswerRules::new(webhook.success.as_deref(), webhook.reject.as_deref())
        .map(Arc::new)
        .map_err(|e| anyhow!("route '{route}': {e}"))
}

fn program(route: &str, what: &str, code: Option<&str>) -> Result<Option<Jq>> {
    code.map(|c| Jq::compile(c).map_err(|e| anyhow!("route '{route}': {what}: {e}")))
        .transpose()
}

impl Route {
    /// The route's HTTP client: its headers, secrets, TLS files and answer
    /// rules, read and built now (`run`, and `check` to validate them).
    pub(crate) fn client(&self, concurrency: usize, policy: StatusPolicy) -> Result<Webhook> {
        Webhook::new(&self.webhook, concurrency, policy, self.rules.clone())
            .map_err(|e| e.context(format!("route '{}'", self.name)))
    }

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
        if self.webhook.success.is_some() {
            extras.push("success rule".to_string());
        }
        if self.webhook.reject.is_some() {
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
            Compiled::Jq(_) => Intake::Later(event.json().map_or(Ok(None), |v| self.key_of(v))),
        }
    }

    /// What this route does with an event: both stages at once (`kbridge
    /// check`).
    pub(crate) fn decide(&self, event: &Event) -> RouteDecision {
        match self.intake(event) {
            Intake::Decided(d) => d,
            Intake::Later(key) => self.later(event, key),
        }
    }

    /// A jq route's filter and map, after [`Route::intake`] gave `key`.
    pub(crate) fn later(
        &self,
        event: &Event,
        key: Result<Option<String>, String>,
    ) -> RouteDecision {
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
        let outputs = match map.run(v) {
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
        let key = match key {
            Ok(k) => k,
            Err(reason) => {
                return RouteDecision::Invalid {
                    stage: Stage::Map,
                    reason: format!("key: {reason}"),
                };
            }
        };
        let bodies = match outputs.iter().map(jq::body).collect::<Result<Vec<_>, _>>() {
            Ok(bodies) => bodies.into_iter().map(Bytes::from).collect(),
            Err(reason) => {
                return RouteDecision::Invalid {
                    stage: Stage::Map,
                    reason,
                };
            }
        };
        RouteDecision::Deliver {
            key,
            bodies,
            warning: None,
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
                        Ok(Ok(k)) => k,
                        Ok(Err(reason)) => {
                            return RouteDecision::Invalid {
                                stage: Stage::Map,
                                reason: format!("key: {reason}"),
                            };
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
            Err(reason) => Some(RouteDecision::Invalid {
                stage: Stage::Map,
                reason: format!("filter: {reason}"),
            }),
        }
    }

    /// The route's `key` program on the event: its first output as text.
    fn key_of(&self, v: &jaq_json::Val) -> Result<Option<String>, String> {
        match &self.key {
            None => Ok(None),
            Some(p) => p.run(v).map(|keys| keys.first().and_then(key_text)),
        }
    }
}

/// What a route knows about an event in the consume loop.
pub(crate) enum Intake {
    Decided(RouteDecision),
    /// Filter and map in the delivery task ([`Route::later`]); the key
    /// (or why the `key` program failed) is known now.
    Later(Result<Option<String>, String>),
}

/// One event's value as the routes see it: its bytes, and its JSON for
/// the jq programs — parsed once, when the first program needs it, however
/// many routes (and delivery tasks) read it.
pub(crate) struct Event {
    source: Source,
    /// `max_message_bytes`: a larger value is invalid, never parsed.
    max_bytes: usize,
    parsed: OnceLock<Result<jaq_json::Val, String>>,
}

/// Where the value's bytes are: the message itself (the relay: nothing is
/// copied), or a line of `kbridge check`'s input.
enum Source {
    Message(Arc<Origin>),
    Line(Vec<u8>),
}

impl Event {
    /// A message's value, as the relay consumed it.
    pub(crate) fn of_message(origin: Arc<Origin>, max_bytes: usize) -> Self {
        Self::new(Source::Message(origin), max_bytes)
    }

    /// A value given as bytes (`kbridge check`, tests).
    pub(crate) fn of_bytes(value: &[u8], max_bytes: usize) -> Self {
        Self::new(Source::Line(value.to_vec()), max_bytes)
    }

    fn new(source: Source, max_bytes: usize) -> Self {
        Self {
            source,
            max_bytes,
            parsed: OnceLock::new(),
        }
    }

    fn value(&self) -> Option<&[u8]> {
        match &self.source {
            Source::Message(origin) => origin.payload.as_deref(),
            Source::Line(line) => Some(line),
        }
    }

    /// The value as JSON, or why it is not (an invalid event, at decode).
    fn json(&self) -> Result<&jaq_json::Val, RouteDecision> {
        let parsed = self.parsed.get_or_init(|| match self.value() {
            Some(bytes) if bytes.len() > self.max_bytes => Err(format!(
                "message value is {} bytes, over the {}-byte limit (max_message_bytes)",
                bytes.len(),
                self.max_bytes
            )),
            Some(bytes) => jq::parse(bytes),
            None => Err("no value (a tombstone)".into()),
        });
        parsed.as_ref().map_err(|reason| RouteDecision::Invalid {
            stage: Stage::Decode,
            reason: reason.clone(),
        })
    }
}

/// A key value as text: a string as is, `null` as no key, anything else
/// as its JSON.
fn key_text(v: &jaq_json::Val) -> Option<String> {
    match v {
        jaq_json::Val::Null => None,
        jaq_json::Val::TStr(s) => Some(String::from_utf8_lossy(s).into_owned()),
        other => Some(String::from_utf8_lossy(&jq::to_json(other)).into_owned()),
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
        match routes[0].decide(&Event::of_bytes(event, 1 << 20)) {
            RouteDecision::Deliver { key, bodies, .. } => {
                assert_eq!(key.as_deref(), Some("f1"));
                assert_eq!(bodies.len(), 1);
            }
            other => panic!("{other:?}"),
        }
        match routes[1].decide(&Event::of_bytes(event, 1 << 20)) {
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
            routes[1].decide(&Event::of_bytes(ok, 1 << 20)),
            RouteDecision::Skip(_)
        ));
        assert!(matches!(
            routes[1].decide(&Event::of_bytes(b"nope", 1 << 20)),
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
            routes[0].decide(&Event::of_bytes(br#"{"b":1}"#, 1 << 20)),
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

    mod equivalence {
        use proptest::prelude::*;
        use serde_json::{Map, Value, json};

        use super::super::{Event, RouteDecision, compile};
        use super::config;

        /// A field: mostly a good value, sometimes missing, empty or of
        /// another type.
        fn text(good: &'static [&'static str]) -> impl Strategy<Value = Option<Value>> {
            prop_oneof![
                6 => proptest::sample::select(good).prop_map(|s| Some(json!(s))),
                2 => "\\PC{1,8}".prop_map(|s| Some(json!(s))),
                1 => Just(None),
                1 => prop_oneof![Just(json!("")), Just(json!("  ")), Just(json!(3)), Just(json!(null)), Just(json!(["x"]))].prop_map(Some),
            ]
        }

        fn date() -> impl Strategy<Value = Option<Value>> {
            prop_oneof![
                3 => (1_600_000_000i64..1_900_000_000).prop_map(|s| Some(json!(s))),
                3 => (1_600_000_000_000i64..1_900_000_000_000).prop_map(|ms| Some(json!(ms))),
                1 => (1.0f64..2e12).prop_map(|f| Some(json!(f))),
                1 => prop_oneof![Just(json!(0)), Just(json!(-5)), Just(json!("1731900000")), Just(json!(null))].prop_map(Some),
                1 => Just(None),
            ]
        }

        fn tag_value() -> impl Strategy<Value = Value> {
            prop_oneof![
                "\\PC{0,8}".prop_map(Value::String),
                any::<i32>().prop_map(|n| json!(n)),
                Just(json!(1.5)),
                Just(json!(true)),
                Just(json!(null)),
                Just(json!({"nested": [1, "x"]})),
            ]
        }

        fn tag_object() -> impl Strategy<Value = Value> {
            proptest::collection::btree_map(
                prop_oneof![
                    Just("host".to_string()),
                    Just("df_workspace_name".to_string()),
                    "[a-z_]{1,6}"
                ],
                tag_value(),
                0..4,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>()))
        }

        fn tags() -> impl Strategy<Value = Option<Value>> {
            prop_oneof![
                3 => tag_object().prop_map(Some),
                3 => tag_object().prop_map(|o| Some(Value::String(format!(" {o}")))),
                1 => prop_oneof![
                    Just(json!("{not json")),
                    Just(json!("[1,2]")),
                    Just(json!("")),
                    Just(json!(7)),
                    Just(json!(null))
                ]
                .prop_map(Some),
                1 => Just(None),
            ]
        }

        fn event() -> impl Strategy<Value = Value> {
            (
                prop_oneof![8 => Just(Some(json!("monitor"))), 1 => Just(Some(json!("user"))), 1 => text(&["monitor"])],
                text(&["event-1", "e-2"]),
                prop_oneof![Just(None), Just(Some(json!(""))), Just(Some(json!("fault-1"))), Just(Some(json!(9)))],
                text(&["CPU high", "磁盘满"]),
                text(&["message"]),
                text(&["critical", "ok", "nodata_ok", "warning", "manual_ok"]),
                text(&["orders"]),
                date(),
                tags(),
            )
                .prop_map(|(source, id, fault, title, message, status, ws, date, tags)| {
                    let mut m = Map::new();
                    for (k, v) in [
                        ("df_source", source),
                        ("df_event_id", id),
                        ("df_fault_id", fault),
                        ("df_title", title),
                        ("df_message", message),
                        ("df_status", status),
                        ("df_workspace_name", ws),
                        ("date", date),
                        ("df_dimension_tags", tags),
                    ] {
                        if let Some(v) = v {
                            m.insert(k.to_string(), v);
                        }
                    }
                    Value::Object(m)
                })
        }

        fn outcome(d: RouteDecision) -> Result<Option<Vec<Value>>, &'static str> {
            match d {
                RouteDecision::Skip(_) => Err("skip"),
                RouteDecision::Invalid { .. } => Err("invalid"),
                RouteDecision::Deliver { bodies, .. } => Ok(Some(
                    bodies
                        .iter()
                        .map(|b| serde_json::from_slice(b).unwrap_or(Value::Null))
                        .collect(),
                )),
            }
        }

        proptest! {
            /// examples/pipelines/guance-easyops.jq is the native preset:
            /// the same body (as a JSON value) for every event it
            /// delivers, and the same verdict (skipped, invalid) for the
            /// others.
            #[test]
            fn the_shipped_jq_pipeline_is_the_native_preset(event in event()) {
                let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/pipelines/guance-easyops.jq");
                let cfg = config(&format!(
                    "topics = \"t\"\n[[route]]\nname = \"native\"\npreset = \"guance-easyops\"\n[route.webhook]\nurl = \"http://x/\"\n[[route]]\nname = \"jq\"\nmap_file = \"{path}\"\n[route.webhook]\nurl = \"http://x/\"\n"
                ));
                let routes = compile(&cfg).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let bytes = serde_json::to_vec(&event).unwrap_or_default();
                let native = outcome(routes[0].decide(&Event::of_bytes(&bytes, 1 << 20)));
                let jq = outcome(routes[1].decide(&Event::of_bytes(&bytes, 1 << 20)));
                prop_assert_eq!(native, jq, "event {}", event);
            }
        }
    }
}
