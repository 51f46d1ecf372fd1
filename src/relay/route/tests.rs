use super::*;
use crate::relay::config::RelayConfig;

/// The configuration's routes, compiled in order, as the relay compiles
/// them (`LiveRoute::build_all`), without their clients.
fn compile(cfg: &RelayConfig) -> Result<Vec<Route>> {
    cfg.route_configs().iter().map(Route::compile).collect()
}

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

    use super::super::{Event, RouteDecision};
    use super::{compile, config};

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
