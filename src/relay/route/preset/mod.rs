//! decode → validate → map, natively: the built-in pipelines. A preset
//! turns one message value into a decision: skip it, reject it (with the
//! stage and reason), or deliver this body under this alert id.
//!
//! Pure, and total over any bytes: a preset route's `Route::intake` (in
//! `route/mod.rs`) calls [`decide`]; the I/O around it is `route::take`
//! and `deliver`.

mod decode;
mod map;
mod validate;

use bytes::Bytes;

use crate::relay::config::Preset;
use crate::relay::stage::Stage;
use decode::decode;
pub(crate) use map::{RECOVERY_STATUSES, epoch_millis};
use map::{map, tags_json};
use validate::{GuanceFields, Validated, validate};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decision {
    Skip(String),
    Reject {
        stage: Stage,
        reason: String,
    },
    Deliver {
        alert_id: String,
        body: Bytes,
        /// Input that was ignored without stopping the alert.
        warning: Option<String>,
    },
}

pub(crate) fn decide(preset: Preset, value: Option<&[u8]>, max_bytes: usize) -> Decision {
    match preset {
        Preset::GuanceEasyops => guance_easyops(value, max_bytes),
    }
}

fn guance_easyops(value: Option<&[u8]>, max_bytes: usize) -> Decision {
    let fields: GuanceFields = match decode(value, max_bytes) {
        Ok(fields) => fields,
        Err(e) => {
            return Decision::Reject {
                stage: Stage::Decode,
                reason: e.to_string(),
            };
        }
    };
    let event = match validate(&fields) {
        Validated::Event(e) => e,
        Validated::Skip(reason) => return Decision::Skip(reason),
        Validated::Invalid(reasons) => {
            return Decision::Reject {
                stage: Stage::Validate,
                reason: reasons.join("; "),
            };
        }
    };
    let (tags, tags_warning) = tags_json(event.dimension_tags);
    let (alert, warning) = map(&event, tags.as_deref());
    // The alert is about the size of the event's text fields.
    let mut body = Vec::with_capacity(value.map_or(0, <[u8]>::len) + 256);
    match serde_json::to_writer(&mut body, &alert) {
        Ok(()) => Decision::Deliver {
            alert_id: alert.alert_id.to_string(),
            body: Bytes::from(body),
            warning: tags_warning.or(warning),
        },
        Err(e) => Decision::Reject {
            stage: Stage::Map,
            reason: format!("cannot serialize the alert: {e}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide_json(v: &serde_json::Value) -> Decision {
        decide(
            Preset::GuanceEasyops,
            Some(v.to_string().as_bytes()),
            1 << 20,
        )
    }

    #[test]
    fn shared_samples_map_as_specified() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/events");
        let sample = |name: &str| -> serde_json::Value {
            serde_json::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap()
        };
        let Decision::Deliver {
            alert_id,
            body,
            warning,
        } = decide_json(&sample("host-cpu-critical.json"))
        else {
            panic!("trigger not delivered")
        };
        assert_eq!(warning, None);
        let trigger: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let Decision::Deliver {
            alert_id: rec_id,
            body,
            ..
        } = decide_json(&sample("host-cpu-ok.json"))
        else {
            panic!("recovery not delivered")
        };
        let recovery: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(alert_id, rec_id, "a recovery closes its trigger's alert");
        assert_eq!(trigger["isRecover"], false);
        assert_eq!(recovery["isRecover"], true);
        assert!(matches!(
            decide_json(&sample("user-event.json")),
            Decision::Skip(_)
        ));
    }

    #[test]
    fn stages_of_rejection() {
        assert!(matches!(
            decide(Preset::GuanceEasyops, Some(b"\xff"), 100),
            Decision::Reject {
                stage: Stage::Decode,
                ..
            }
        ));
        assert!(matches!(
            decide_json(&serde_json::json!({"df_source": "monitor"})),
            Decision::Reject {
                stage: Stage::Validate,
                ..
            }
        ));
    }

    mod properties {
        use proptest::prelude::*;
        use serde_json::{Map, Value, json};

        use super::super::{Decision, decide};
        use crate::relay::config::Preset;

        /// Any JSON value, nested a little, with strings that need escapes.
        fn json_value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(|n| json!(n)),
                any::<f64>().prop_map(|f| json!(f)),
                "\\PC{0,12}".prop_map(Value::String),
                Just(json!("monitor")),
                Just(json!("ok")),
                Just(json!("{\"host\":\"h\\u00e9\",\"n\":[1]}")),
            ];
            leaf.prop_recursive(3, 16, 4, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    proptest::collection::btree_map("\\PC{0,6}", inner, 0..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        const FIELDS: [&str; 10] = [
            "date",
            "df_source",
            "df_event_id",
            "df_fault_id",
            "df_title",
            "df_message",
            "df_status",
            "df_workspace_name",
            "df_dimension_tags",
            "other",
        ];

        /// An object with some of the fields the preset reads, each of any
        /// type.
        fn event() -> impl Strategy<Value = Value> {
            proptest::collection::vec((0..FIELDS.len(), json_value()), 0..12).prop_map(|fields| {
                let mut m = Map::new();
                for (i, v) in fields {
                    m.insert(FIELDS[i].to_string(), v);
                }
                Value::Object(m)
            })
        }

        proptest! {
            /// decode → validate → map is total: any bytes give a decision,
            /// never a panic.
            #[test]
            fn any_bytes_get_a_decision(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                let _ = decide(Preset::GuanceEasyops, Some(&bytes), 1 << 20);
            }

            /// Objects with the preset's fields of any type: a decision,
            /// never a panic; an alert's body is JSON with the alert id.
            #[test]
            fn any_fields_get_a_decision(v in event()) {
                let bytes = serde_json::to_vec(&v).unwrap_or_default();
                if let Decision::Deliver { alert_id, body, .. } =
                    decide(Preset::GuanceEasyops, Some(&bytes), 1 << 20)
                {
                    let alert: Value = serde_json::from_slice(&body)
                        .map_err(|e| TestCaseError::fail(format!("body not JSON: {e}")))?;
                    prop_assert_eq!(alert["alertId"].as_str(), Some(alert_id.as_str()));
                }
            }
        }
    }
}
