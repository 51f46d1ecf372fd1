//! Stage 2, validate: a decoded JSON object → a typed Guance event, a
//! deliberate skip, or every reason it is invalid.
//!
//! The seed's `check_fields` used Python truthiness (`not data.get(f)`), so a
//! `date` of 0 and a missing field looked alike, and it logged `df_event_id`
//! before checking it existed. Here each field is checked for its type and
//! the reason names the field and what was found.

use serde_json::{Map, Value};

use super::decode::json_type;

/// The only `df_source` the guance-easyops preset relays; other sources
/// (`user`, `audit`, …) are not alerts.
pub(crate) const ALERT_SOURCE: &str = "monitor";

/// A Guance event that passed validation, borrowing from the decoded object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GuanceEvent<'a> {
    pub event_id: &'a str,
    /// `None` when absent or not a non-empty string.
    pub fault_id: Option<&'a str>,
    pub title: &'a str,
    pub message: &'a str,
    pub status: &'a str,
    pub workspace_name: &'a str,
    /// Epoch seconds or milliseconds, as sent.
    pub date: f64,
    pub dimension_tags: Option<&'a Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Validated<'a> {
    Event(GuanceEvent<'a>),
    /// Not an alert (`df_source` other than `monitor`): counted, not an error.
    Skip(String),
    /// One reason per bad field, e.g. `date: expected a number, got string`.
    Invalid(Vec<String>),
}

pub(crate) fn validate(obj: &Map<String, Value>) -> Validated<'_> {
    let mut errors = Vec::new();
    let source = required_str(obj, "df_source", &mut errors);
    if let Some(s) = source
        && s != ALERT_SOURCE
    {
        return Validated::Skip(format!("df_source is '{s}', not '{ALERT_SOURCE}'"));
    }
    let event_id = required_str(obj, "df_event_id", &mut errors);
    let title = required_str(obj, "df_title", &mut errors);
    let message = required_str(obj, "df_message", &mut errors);
    let status = required_str(obj, "df_status", &mut errors);
    let workspace_name = required_str(obj, "df_workspace_name", &mut errors);
    let date = match obj.get("date") {
        None => {
            errors.push("date: missing".to_string());
            None
        }
        Some(Value::Number(n)) => match n.as_f64() {
            Some(d) if d > 0.0 && d.is_finite() => Some(d),
            _ => {
                errors.push(format!("date: expected a positive number, got {n}"));
                None
            }
        },
        Some(other) => {
            errors.push(format!("date: expected a number, got {}", json_type(other)));
            None
        }
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
            fault_id: obj
                .get("df_fault_id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty()),
            title,
            message,
            status,
            workspace_name,
            date,
            dimension_tags: obj.get("df_dimension_tags"),
        }),
        _ => Validated::Invalid(errors),
    }
}

/// A field that must be a non-empty string; records why not otherwise.
fn required_str<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
    errors: &mut Vec<String>,
) -> Option<&'a str> {
    match obj.get(field) {
        None => errors.push(format!("{field}: missing")),
        Some(Value::String(s)) if s.trim().is_empty() => errors.push(format!(
            "{field}: expected a non-empty string, got an empty one"
        )),
        Some(Value::String(s)) => return Some(s),
        Some(other) => errors.push(format!(
            "{field}: expected a string, got {}",
            json_type(other)
        )),
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

    fn check(v: &Value) -> Validated<'_> {
        validate(v.as_object().unwrap())
    }

    #[test]
    fn a_complete_event_validates() {
        let v = event();
        let Validated::Event(e) = check(&v) else {
            panic!("not valid")
        };
        assert_eq!(e.event_id, "event-1");
        assert_eq!(e.fault_id, Some("event-1"));
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
