//! Stage 3, map: a valid Guance event → the ops platform's alert body.
//!
//! Reproduces the seed's `clean_data`, with two fixes: `alertId` is the
//! fault id (which ties a trigger to its recovery; the seed's per-event id
//! meant a recovery could never close its alert), and `date` is accepted in
//! seconds or milliseconds.

use serde::Serialize;
use serde_json::{Map, Value};

use super::decode::json_type;
use super::validate::GuanceEvent;

/// `df_status` values that mean "the fault is over".
pub(crate) const RECOVERY_STATUSES: [&str; 4] = ["ok", "nodata_ok", "nodata_as_ok", "manual_ok"];

/// Epoch values above this are milliseconds (1e12 ms is 2001; 1e12 s is
/// far beyond any real date).
const MILLIS_THRESHOLD: f64 = 1e12;

/// The alert exactly as the webhook receives it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Alert<'a> {
    pub alert_id: &'a str,
    pub alert_dims: Map<String, Value>,
    pub metric_name: &'static str,
    pub value: &'static str,
    pub metric_unit: &'static str,
    pub subject: &'a str,
    pub content: &'a str,
    pub time: i64,
    pub is_recover: bool,
    pub ext_info: ExtInfo<'a>,
    pub origin_info: Map<String, Value>,
    pub source: &'static str,
}

#[derive(Debug, Serialize)]
pub(crate) struct ExtInfo<'a> {
    pub df_status: &'a str,
}

/// Maps an event; the second value holds warnings about ignored input
/// (an unusable `df_dimension_tags`) that do not stop the alert.
pub(crate) fn map<'a>(e: &GuanceEvent<'a>) -> (Alert<'a>, Option<String>) {
    let mut dims = Map::new();
    dims.insert(
        "df_workspace_name".to_string(),
        Value::String(e.workspace_name.to_string()),
    );
    let (tags, warning) = dimension_tags(e.dimension_tags);
    // Tag keys win over df_workspace_name, as in the seed's dict.update.
    dims.extend(tags);
    let alert = Alert {
        alert_id: e.fault_id.unwrap_or(e.event_id),
        alert_dims: dims,
        metric_name: "",
        value: "",
        metric_unit: "",
        subject: e.title,
        content: e.message,
        time: epoch_seconds(e.date),
        is_recover: RECOVERY_STATUSES.contains(&e.status),
        ext_info: ExtInfo {
            df_status: e.status,
        },
        origin_info: Map::new(),
        source: "guance",
    };
    (alert, warning)
}

/// `date` in seconds or milliseconds → whole epoch seconds (truncated).
pub(crate) fn epoch_seconds(date: f64) -> i64 {
    let secs = if date > MILLIS_THRESHOLD {
        date / 1000.0
    } else {
        date
    };
    secs.trunc() as i64
}

/// `df_dimension_tags` is a JSON object given as a string (Guance's form) or
/// inline. Anything else is ignored, with a warning.
fn dimension_tags(tags: Option<&Value>) -> (Map<String, Value>, Option<String>) {
    match tags {
        None | Some(Value::Null) => (Map::new(), None),
        Some(Value::Object(m)) => (m.clone(), None),
        Some(Value::String(s)) if s.trim().is_empty() => (Map::new(), None),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => (m, None),
            Ok(other) => (
                Map::new(),
                Some(format!(
                    "df_dimension_tags: expected a JSON object in the string, got {}; tags ignored",
                    json_type(&other)
                )),
            ),
            Err(e) => (
                Map::new(),
                Some(format!(
                    "df_dimension_tags: invalid JSON in the string ({e}); tags ignored"
                )),
            ),
        },
        Some(other) => (
            Map::new(),
            Some(format!(
                "df_dimension_tags: expected an object or a JSON string, got {}; tags ignored",
                json_type(other)
            )),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event<'a>(
        status: &'a str,
        fault: Option<&'a str>,
        tags: Option<&'a Value>,
    ) -> GuanceEvent<'a> {
        GuanceEvent {
            event_id: "event-2",
            fault_id: fault,
            title: "title",
            message: "message",
            status,
            workspace_name: "orders",
            date: 1718680020000.0,
            dimension_tags: tags,
        }
    }

    fn to_json(a: &Alert<'_>) -> Value {
        serde_json::to_value(a).unwrap()
    }

    #[test]
    fn maps_to_exactly_the_target_keys() {
        let tags = json!("{\"host\":\"h1\",\"df_workspace_name\":\"override\"}");
        let (a, w) = map(&event("ok", Some("event-1"), Some(&tags)));
        assert_eq!(w, None);
        assert_eq!(
            to_json(&a),
            json!({
                "alertId": "event-1",
                "alertDims": {"df_workspace_name": "override", "host": "h1"},
                "metricName": "", "value": "", "metricUnit": "",
                "subject": "title", "content": "message",
                "time": 1718680020,
                "isRecover": true,
                "extInfo": {"df_status": "ok"},
                "originInfo": {},
                "source": "guance"
            })
        );
    }

    #[test]
    fn alert_id_falls_back_to_event_id() {
        let (a, _) = map(&event("critical", None, None));
        assert_eq!(a.alert_id, "event-2");
        assert!(!a.is_recover);
    }

    #[test]
    fn recovery_statuses() {
        for s in RECOVERY_STATUSES {
            assert!(map(&event(s, None, None)).0.is_recover, "{s}");
        }
        for s in ["critical", "error", "warning", "nodata", "info"] {
            assert!(!map(&event(s, None, None)).0.is_recover, "{s}");
        }
    }

    #[test]
    fn seconds_and_milliseconds() {
        assert_eq!(epoch_seconds(1718678520000.0), 1718678520);
        assert_eq!(epoch_seconds(1718678520999.0), 1718678520);
        assert_eq!(epoch_seconds(1718678520.0), 1718678520);
        assert_eq!(epoch_seconds(1718678520.9), 1718678520);
    }

    #[test]
    fn inline_tags_and_unusable_tags() {
        let inline = json!({"pod": "p1"});
        let (a, w) = map(&event("error", None, Some(&inline)));
        assert_eq!(a.alert_dims["pod"], "p1");
        assert_eq!(w, None);
        for bad in [json!("not json"), json!("[1]"), json!(5)] {
            let (a, w) = map(&event("error", None, Some(&bad)));
            assert_eq!(a.alert_dims.len(), 1);
            assert!(w.unwrap().starts_with("df_dimension_tags:"));
        }
    }
}
