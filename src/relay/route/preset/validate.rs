//! validate: a decoded JSON object → a typed Guance event, a
//! deliberate skip, or every reason it is invalid.
//!
//! The seed's `check_fields` used Python truthiness (`not data.get(f)`), so a
//! `date` of 0 and a missing field looked alike, and it logged `df_event_id`
//! before checking it existed. Here each field is checked for its type and
//! the reason names the field and what was found.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::decode::{JsonText, json_f64, json_str, kind, present};

/// The only `df_source` the guance-easyops preset relays; other sources
/// (`user`, `audit`, …) are not alerts.
pub(crate) const ALERT_SOURCE: &str = "monitor";

/// The fields of a Guance event the preset reads, as raw JSON borrowed from
/// the message (decode skips the others). A field sent as `null` is
/// `Some("null")`, so that it is reported as the wrong type, not missing.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct GuanceFields<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    date: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    df_source: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    df_event_id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    df_fault_id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    df_title: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    df_message: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    df_status: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    df_workspace_name: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    df_dimension_tags: Option<&'a RawValue>,
}

/// A Guance event that passed validation, borrowing from the message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GuanceEvent<'a> {
    pub event_id: Cow<'a, str>,
    /// `None` when absent or not a non-empty string.
    pub fault_id: Option<Cow<'a, str>>,
    pub title: JsonText<'a>,
    pub message: JsonText<'a>,
    pub status: Cow<'a, str>,
    pub workspace_name: JsonText<'a>,
    /// Epoch seconds or milliseconds, as sent.
    pub date: f64,
    /// `df_dimension_tags` as the JSON text it was sent as.
    pub dimension_tags: Option<&'a str>,
}

/// The outcome of validation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Validated<'a> {
    Event(GuanceEvent<'a>),
    /// Not an alert (another `df_source`): skipped on purpose.
    Skip(String),
    /// Every reason found, each naming its field.
    Invalid(Vec<String>),
}

/// Checks a decoded event against the guance-easyops rules.
pub(crate) fn validate<'a>(f: &GuanceFields<'a>) -> Validated<'a> {
    let mut errors = Vec::new();
    let source = required_str(f.df_source, "df_source", &mut errors);
    if let Some(s) = &source
        && s != ALERT_SOURCE
    {
        return Validated::Skip(format!("df_source is '{s}', not '{ALERT_SOURCE}'"));
    }
    let event_id = required_str(f.df_event_id, "df_event_id", &mut errors);
    let title = required_text(f.df_title, "df_title", &mut errors);
    let message = required_text(f.df_message, "df_message", &mut errors);
    let status = required_str(f.df_status, "df_status", &mut errors);
    let workspace_name = required_text(f.df_workspace_name, "df_workspace_name", &mut errors);
    let date = match f.date {
        None => {
            errors.push("date: missing".to_string());
            None
        }
        Some(raw) => match json_f64(raw.get()) {
            Some(d) if d > 0.0 && d.is_finite() => Some(d),
            Some(_) => {
                errors.push(format!(
                    "date: expected a positive number, got {}",
                    raw.get()
                ));
                None
            }
            None => {
                errors.push(format!("date: expected a number, got {}", kind(raw.get())));
                None
            }
        },
    };
    match (event_id, title, message, status, workspace_name, date) {
        (
            Some(event_id),
            Some(title),
            Some(message),
            Some(status),
            Some(workspace_name),
            Some(date),
        ) if errors.is_empty() => Validated::Event(GuanceEvent {
            event_id,
            fault_id: f
                .df_fault_id
                .and_then(|raw| json_str(raw.get()))
                .filter(|s| !s.is_empty()),
            title,
            message,
            status,
            workspace_name,
            date,
            dimension_tags: f.df_dimension_tags.map(RawValue::get),
        }),
        _ => Validated::Invalid(errors),
    }
}

/// A required string, decoded.
fn required_str<'a>(
    raw: Option<&'a RawValue>,
    field: &str,
    errors: &mut Vec<String>,
) -> Option<Cow<'a, str>> {
    required_text(raw, field, errors).map(|t| t.text())
}

/// A required string that goes into the alert as it came (`JsonText`).
fn required_text<'a>(
    raw: Option<&'a RawValue>,
    field: &str,
    errors: &mut Vec<String>,
) -> Option<JsonText<'a>> {
    let Some(raw) = raw else {
        errors.push(format!("{field}: missing"));
        return None;
    };
    match JsonText::of(raw) {
        Some(t) if t.is_blank() => errors.push(format!(
            "{field}: expected a non-empty string, got an empty one"
        )),
        Some(t) => return Some(t),
        None => errors.push(format!(
            "{field}: expected a string, got {}",
            kind(raw.get())
        )),
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::route::preset::decode::decode;
    use serde_json::{Value, json};

    fn event() -> Value {
        json!({
            "date": 1718678520000u64,
            "df_source": "monitor",
            "df_status": "critical",
            "df_event_id": "event-1",
            "df_fault_id": "event-1",
            "df_title": "CPU high",
            "df_message": "details",
            "df_workspace_name": "orders",
            "df_dimension_tags": "{\"host\":\"h1\"}"
        })
    }

    /// Decodes and validates; the text is leaked so that the result can
    /// borrow from it.
    fn check(v: &Value) -> Validated<'static> {
        let text: &'static str = Box::leak(v.to_string().into_boxed_str());
        validate(&decode::<GuanceFields>(Some(text.as_bytes()), 1 << 20).unwrap())
    }

    #[test]
    fn a_complete_event_validates() {
        let v = event();
        let Validated::Event(e) = check(&v) else {
            panic!("not valid")
        };
        assert_eq!(e.event_id, "event-1");
        assert_eq!(e.fault_id.as_deref(), Some("event-1"));
        assert_eq!(e.date, 1718678520000.0);
    }

    #[test]
    fn other_sources_are_skipped_not_invalid() {
        let mut v = event();
        v["df_source"] = json!("user");
        v.as_object_mut().unwrap().remove("df_message");
        assert_eq!(
            check(&v),
            Validated::Skip("df_source is 'user', not 'monitor'".into())
        );
    }

    #[test]
    fn missing_or_empty_source_is_invalid() {
        let mut v = event();
        v["df_source"] = json!("");
        assert_eq!(
            check(&v),
            Validated::Invalid(vec![
                "df_source: expected a non-empty string, got an empty one".into()
            ])
        );
        v.as_object_mut().unwrap().remove("df_source");
        assert_eq!(
            check(&v),
            Validated::Invalid(vec!["df_source: missing".into()])
        );
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut v = event();
        v["date"] = json!("1718678520000");
        v["df_title"] = json!(42);
        v.as_object_mut().unwrap().remove("df_event_id");
        assert_eq!(
            check(&v),
            Validated::Invalid(vec![
                "df_event_id: missing".into(),
                "df_title: expected a string, got number".into(),
                "date: expected a number, got string".into(),
            ])
        );
    }

    #[test]
    fn null_is_the_wrong_type_not_missing_and_escapes_are_read() {
        let mut v = event();
        v["df_message"] = Value::Null;
        v["date"] = Value::Null;
        assert_eq!(
            check(&v),
            Validated::Invalid(vec![
                "df_message: expected a string, got null".into(),
                "date: expected a number, got null".into(),
            ])
        );
        let mut v = event();
        v["df_title"] = json!("CPU \"high\"\n on é");
        let Validated::Event(e) = check(&v) else {
            panic!("not valid")
        };
        assert_eq!(e.title, "CPU \"high\"\n on é");
    }

    #[test]
    fn date_must_be_positive() {
        let mut v = event();
        v["date"] = json!(0);
        assert_eq!(
            check(&v),
            Validated::Invalid(vec!["date: expected a positive number, got 0".into()])
        );
        v["date"] = json!(1718678520.5);
        assert!(matches!(check(&v), Validated::Event(_)));
    }

    #[test]
    fn empty_fault_id_is_absent() {
        let mut v = event();
        v["df_fault_id"] = json!("");
        let Validated::Event(e) = check(&v) else {
            panic!("not valid")
        };
        assert_eq!(e.fault_id, None);
    }
}
