//! `kbridge dlq show TOPIC`: dead letters one by one, with what their
//! headers say decoded (where the event came from, on which route and
//! stage it failed, and why) and their values pretty-printed.

use serde_json::{Value, json};

use super::letter::{Letter, Record, Writer, names};
use super::select::{text_or_base64, value_of, view};
use crate::time_spec::show_ms_to_second;

/// One dead letter as `--json` prints it: the record as `--where` sees it,
/// with `letter`, what its headers say.
pub(crate) fn as_json(record: &Record, letter: &Letter) -> Value {
    let mut v = view(record);
    v["timestamp"] = json!(record.timestamp_ms);
    v["letter"] = json!(letter);
    v
}

/// One dead letter for a person.
pub(crate) fn as_text(record: &Record, letter: &Letter) -> String {
    let mut out = format!(
        "{}/{}@{}  {}  key {}\n",
        record.topic,
        record.partition,
        record.offset,
        record
            .timestamp_ms
            .map_or_else(|| "-".into(), show_ms_to_second),
        record
            .key
            .as_deref()
            .map_or_else(|| "(none)".into(), |k| shown(&text_or_base64(k))),
    );
    let from = letter.source.as_ref().map_or_else(
        || "-".into(),
        |s| {
            format!(
                "{}/{}@{}",
                s.topic,
                s.partition.map_or_else(|| "?".into(), |p| p.to_string()),
                s.offset.map_or_else(|| "?".into(), |o| o.to_string())
            )
        },
    );
    let or_dash = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".into());
    out.push_str(&format!(
        "  from {from} · route {} · stage {} · status {} · attempts {} · re-driven {}{}\n",
        or_dash(&letter.route),
        or_dash(&letter.stage),
        letter.status.map_or_else(|| "-".into(), |s| s.to_string()),
        letter
            .attempts
            .map_or_else(|| "-".into(), |a| a.to_string()),
        letter.redriven,
        match letter.writer {
            Writer::Kbridge => String::new(),
            w => format!(" · written by {}", w.as_str()),
        }
    ));
    if let Some(reason) = &letter.reason {
        out.push_str(&format!("  error: {reason}\n"));
    }
    // The headers the line above did not already say.
    for (k, v) in &record.headers {
        let name = String::from_utf8_lossy(k);
        let said = names::REASON.contains(&&*name)
            || name == names::REDRIVE_COUNT
            || (letter.writer != Writer::Kbridge
                && (name.starts_with("__connect.errors.") || name.starts_with("kafka_dlt-")));
        if said {
            continue;
        }
        let value = v
            .as_deref()
            .map_or_else(|| "(null)".into(), |v| shown(&text_or_base64(v)));
        out.push_str(&format!("  header {name}: {value}\n"));
    }
    match record.value.as_deref() {
        None => out.push_str("  (no value)\n"),
        Some(v) => {
            let pretty = match value_of(v) {
                Value::String(s) => s,
                other => serde_json::to_string_pretty(&other).unwrap_or_default(),
            };
            for line in pretty.lines() {
                out.push_str("  ");
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// A header's or key's text as shown: as it is, or its base64 marked so.
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => format!("base64:{}", other["base64"].as_str().unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_says_where_from_why_and_the_value() {
        let r = Record {
            topic: "dlq".into(),
            partition: 0,
            offset: 3,
            timestamp_ms: Some(0),
            key: Some(b"f-1".to_vec()),
            value: Some(br#"{"a":1}"#.to_vec()),
            headers: vec![
                (b"kbridge.topic".to_vec(), Some(b"guance".to_vec())),
                (b"kbridge.partition".to_vec(), Some(b"2".to_vec())),
                (b"kbridge.offset".to_vec(), Some(b"9".to_vec())),
                (b"kbridge.stage".to_vec(), Some(b"validate".to_vec())),
                (
                    b"kbridge.error".to_vec(),
                    Some(b"df_title: missing".to_vec()),
                ),
                (b"trace".to_vec(), Some(b"t-1".to_vec())),
            ],
        };
        let text = as_text(&r, &Letter::of(&r));
        assert!(
            text.starts_with("dlq/0@3  1970-01-01T00:00:00Z  key f-1\n"),
            "{text}"
        );
        assert!(
            text.contains("from guance/2@9 · route - · stage validate"),
            "{text}"
        );
        assert!(text.contains("  error: df_title: missing\n"), "{text}");
        assert!(text.contains("  header trace: t-1\n"), "{text}");
        assert!(!text.contains("header kbridge.stage"), "{text}");
        assert!(text.contains("  {\n    \"a\": 1\n  }\n"), "{text}");
        let j = as_json(&r, &Letter::of(&r));
        assert_eq!(j["letter"]["source"]["offset"], 9);
        assert_eq!(j["value"]["a"], 1);
    }
}
