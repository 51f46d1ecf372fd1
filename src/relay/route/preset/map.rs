//! map: a valid Guance event → the ops platform's alert body.
//!
//! Reproduces the seed's `clean_data`, with two fixes: `alertId` is the
//! fault id (which ties a trigger to its recovery; the seed's per-event id
//! meant a recovery could never close its alert), and `date` is accepted in
//! seconds or milliseconds.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::decode::{JsonText, json_str, kind};
use super::validate::GuanceEvent;
use crate::relay::route::strict_json::strict_json;

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
    /// The workspace name, then the tags (whose keys win), each value
    /// copied through as the JSON it was sent as.
    pub alert_dims: BTreeMap<Key<'a>, &'a RawValue>,
    pub metric_name: &'static str,
    pub value: &'static str,
    pub metric_unit: &'static str,
    pub subject: JsonText<'a>,
    pub content: JsonText<'a>,
    pub time: i64,
    pub is_recover: bool,
    pub ext_info: ExtInfo<'a>,
    pub origin_info: BTreeMap<&'static str, &'static str>,
    pub source: &'static str,
}

#[derive(Debug, Serialize)]
pub(crate) struct ExtInfo<'a> {
    pub df_status: &'a str,
}

/// A key of `alertDims`, borrowed from the tags' text unless escaped.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(transparent)]
pub(crate) struct Key<'a>(#[serde(borrow)] pub Cow<'a, str>);

/// The JSON text of the object in `df_dimension_tags`: Guance sends it as a
/// string holding JSON, some producers inline; anything else is ignored
/// with a warning (the event still goes out).
pub(crate) fn tags_json(tags: Option<&str>) -> (Option<Cow<'_, str>>, Option<String>) {
    let Some(json) = tags else {
        return (None, None);
    };
    match kind(json) {
        "null" => (None, None),
        "object" => (Some(Cow::Borrowed(json)), None),
        "string" => match json_str(json) {
            Some(s) if s.trim().is_empty() => (None, None),
            text => (text, None),
        },
        other => (
            None,
            Some(format!(
                "df_dimension_tags: expected an object or a JSON string, got {other}; tags ignored"
            )),
        ),
    }
}

/// Maps a valid event, with the tags' JSON text from `tags_json`, to the
/// alert; the second value is a warning about unusable tags.
pub(crate) fn map<'e>(
    e: &'e GuanceEvent<'_>,
    tags: Option<&'e str>,
) -> (Alert<'e>, Option<String>) {
    let mut dims = BTreeMap::new();
    dims.insert(
        Key(Cow::Borrowed("df_workspace_name")),
        e.workspace_name.raw(),
    );
    // Tag keys win over df_workspace_name.
    let warning = match tags.map(parse_tags) {
        None => None,
        Some(Ok(tags)) => {
            let mut unreadable = Vec::new();
            for (key, value) in tags {
                if readable(value) {
                    dims.insert(key, value);
                } else {
                    unreadable.push(key.0);
                }
            }
            (!unreadable.is_empty()).then(|| {
                format!(
                    "df_dimension_tags: {}: a number beyond a double's range \
                     (JSON readers refuse it); ignored",
                    unreadable.join(", ")
                )
            })
        }
        Some(Err(w)) => Some(w),
    };
    let status: &str = &e.status;
    let alert = Alert {
        alert_id: e.fault_id.as_deref().unwrap_or(&e.event_id),
        alert_dims: dims,
        metric_name: "",
        value: "",
        metric_unit: "",
        subject: e.title,
        content: e.message,
        time: epoch_seconds(e.date),
        is_recover: RECOVERY_STATUSES.contains(&status),
        ext_info: ExtInfo { df_status: status },
        origin_info: BTreeMap::new(),
        source: "guance",
    };
    (alert, warning)
}

/// `date` in seconds or milliseconds → epoch milliseconds (truncated):
/// the event time `kbridge check` replays storm routes in.
pub(crate) fn epoch_millis(date: f64) -> i64 {
    let ms = if date > MILLIS_THRESHOLD {
        date
    } else {
        date * 1000.0
    };
    ms.trunc() as i64
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

/// Whether a tag's value reads back as JSON in the target's parser. The
/// tags pass through as the text they were sent as, and the syntax check
/// skips numbers without reading them: `1e999` or a 400-digit integer is
/// JSON by its grammar, yet serde_json, Jackson and others refuse it, which
/// would make the target refuse the whole alert. Strings, the usual tag
/// values, are not looked at (`decode` checked their escapes).
fn readable(value: &RawValue) -> bool {
    value.get().starts_with('"') || strict_json(value.get().as_bytes()).is_ok()
}

/// The tags of a JSON object text (the last of duplicate keys wins).
fn parse_tags(text: &str) -> Result<BTreeMap<Key<'_>, &RawValue>, String> {
    let invalid = |e: serde_json::Error| {
        format!("df_dimension_tags: invalid JSON in the string ({e}); tags ignored")
    };
    let text = text.trim_start();
    if !text.starts_with('{') {
        return Err(match serde_json::from_str::<IgnoredAny>(text) {
            Ok(_) => format!(
                "df_dimension_tags: expected a JSON object in the string, got {}; tags ignored",
                kind(text)
            ),
            Err(e) => invalid(e),
        });
    }
    serde_json::from_str(text).map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// A JSON string literal, leaked so that an event can borrow it.
    fn text(s: &str) -> JsonText<'static> {
        let raw: &'static RawValue = Box::leak(serde_json::value::to_raw_value(s).unwrap());
        JsonText::of(raw).unwrap()
    }

    fn event<'a>(status: &'a str, fault: Option<&'a str>) -> GuanceEvent<'a> {
        GuanceEvent {
            event_id: "event-2".into(),
            fault_id: fault.map(Cow::Borrowed),
            title: text("title"),
            message: text("message"),
            status: status.into(),
            workspace_name: text("orders"),
            date: 1718680020000.0,
            dimension_tags: None,
        }
    }

    /// Maps with `tags` as df_dimension_tags; the alert as JSON and the
    /// warning.
    fn mapped(status: &str, fault: Option<&str>, tags: Option<Value>) -> (Value, Option<String>) {
        let raw = tags.map(|t| serde_json::value::to_raw_value(&t).unwrap());
        let mut e = event(status, fault);
        e.dimension_tags = raw.as_deref().map(RawValue::get);
        let (text, w1) = tags_json(e.dimension_tags);
        let (a, w2) = map(&e, text.as_deref());
        let body = serde_json::to_vec(&a).unwrap();
        (serde_json::from_slice(&body).unwrap(), w1.or(w2))
    }

    #[test]
    fn maps_to_exactly_the_target_keys() {
        let tags = json!("{\"host\":\"h1\",\"df_workspace_name\":\"override\"}");
        let (a, w) = mapped("ok", Some("event-1"), Some(tags));
        assert_eq!(w, None);
        assert_eq!(
            a,
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
        let (a, _) = mapped("critical", None, None);
        assert_eq!(a["alertId"], "event-2");
        assert_eq!(a["isRecover"], false);
    }

    #[test]
    fn recovery_statuses() {
        for s in RECOVERY_STATUSES {
            assert_eq!(mapped(s, None, None).0["isRecover"], true, "{s}");
        }
        for s in ["critical", "error", "warning", "nodata", "info"] {
            assert_eq!(mapped(s, None, None).0["isRecover"], false, "{s}");
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
        let (a, w) = mapped(
            "error",
            None,
            Some(json!({"pod": "p1", "n": [1, {"x": null}]})),
        );
        assert_eq!(a["alertDims"]["pod"], "p1");
        assert_eq!(a["alertDims"]["n"], json!([1, {"x": null}]));
        assert_eq!(w, None);
        for empty in [json!(null), json!(""), json!("  ")] {
            let (a, w) = mapped("error", None, Some(empty));
            assert_eq!(a["alertDims"], json!({"df_workspace_name": "orders"}));
            assert_eq!(w, None);
        }
        for bad in [json!("not json"), json!("[1]"), json!(5), json!("{\"a\":")] {
            let (a, w) = mapped("error", None, Some(bad.clone()));
            assert_eq!(
                a["alertDims"],
                json!({"df_workspace_name": "orders"}),
                "{bad}"
            );
            assert!(w.unwrap().starts_with("df_dimension_tags:"), "{bad}");
        }
    }

    /// Found by the `preset` fuzz target: a tag `17319E8900` went out as
    /// sent, and the body no longer parsed ("number out of range").
    #[test]
    fn a_tag_no_json_reader_accepts_is_dropped_with_a_warning() {
        let tags = "{\"pod\":\"p1\",\"big\":17319E8900,\"deep\":[1,{\"x\":-1e999}],\"n\":2.5}";
        let mut e = event("error", None);
        e.dimension_tags = Some(tags);
        let (a, w) = map(&e, Some(tags));
        let body = serde_json::to_vec(&a).unwrap();
        let a: Value = serde_json::from_slice(&body).expect("the body parses");
        assert_eq!(
            a["alertDims"],
            json!({"df_workspace_name": "orders", "pod": "p1", "n": 2.5})
        );
        let w = w.unwrap();
        assert!(
            w.starts_with("df_dimension_tags: big, deep: a number"),
            "{w}"
        );
    }

    #[test]
    fn escaped_text_stays_exact() {
        let tags = json!("{\"h\\\"ost\":\"a\\nb\",\"é\":\"ü\"}");
        let (a, w) = mapped("error", None, Some(tags));
        assert_eq!(w, None);
        assert_eq!(a["alertDims"]["h\"ost"], "a\nb");
        assert_eq!(a["alertDims"]["é"], "ü");
    }
}
