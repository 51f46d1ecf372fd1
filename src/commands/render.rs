//! How `kbridge consume` prints a message: its value as text, or one JSON
//! object per line with every field — bytes that are not UTF-8 as base64,
//! marked so.

use anyhow::Result;
use base64::Engine;
use rdkafka::message::{BorrowedMessage, Message};
use serde::Serialize;

use crate::headers::raw_headers;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// The message value, one per line.
    Text,
    /// One JSON object per message: topic, partition, offset, timestamp,
    /// key, headers, value.
    Json,
}

/// One JSON object per message, as `-f json` prints it.
#[derive(Serialize)]
struct JsonMessage<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    timestamp: Option<i64>,
    key: Option<Text<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_encoding: Option<&'static str>,
    headers: Vec<JsonHeader<'a>>,
    value: Option<Value<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_encoding: Option<&'static str>,
}

#[derive(Serialize)]
struct JsonHeader<'a> {
    key: Text<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_encoding: Option<&'static str>,
    value: Option<Text<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    encoding: Option<&'static str>,
}

/// Bytes as a string when they are UTF-8, else base64.
#[derive(Serialize)]
#[serde(untagged)]
enum Text<'a> {
    Utf8(&'a str),
    Base64(String),
}

#[derive(Serialize)]
#[serde(untagged)]
enum Value<'a> {
    Json(&'a serde_json::value::RawValue),
    Parsed(serde_json::Value),
    Text(Text<'a>),
}

fn text(bytes: &[u8]) -> (Text<'_>, Option<&'static str>) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (Text::Utf8(s), None),
        Err(_) => (
            Text::Base64(base64::engine::general_purpose::STANDARD.encode(bytes)),
            Some("base64"),
        ),
    }
}

/// The value as JSON when it parses, else as text. A value spread over
/// several lines is re-serialized so the output stays one object per line.
fn value(bytes: &[u8]) -> (Value<'_>, Option<&'static str>) {
    if let Ok(raw) = serde_json::from_slice::<&serde_json::value::RawValue>(bytes) {
        if !raw.get().contains('\n') {
            return (Value::Json(raw), None);
        }
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(raw.get()) {
            return (Value::Parsed(v), None);
        }
    }
    let (t, enc) = text(bytes);
    (Value::Text(t), enc)
}

pub(crate) fn render(m: &BorrowedMessage<'_>, format: Format, out: &mut Vec<u8>) -> Result<()> {
    match format {
        Format::Text => {
            out.extend_from_slice(m.payload().unwrap_or_default());
            out.push(b'\n');
        }
        Format::Json => {
            let (key, key_encoding) = match m.key().map(text) {
                Some((k, e)) => (Some(k), e),
                None => (None, None),
            };
            let (value, value_encoding) = match m.payload().map(value) {
                Some((v, e)) => (Some(v), e),
                None => (None, None),
            };
            // Read as bytes: a header key need not be UTF-8.
            let headers = raw_headers(m)
                .into_iter()
                .map(|h| {
                    let (key, key_encoding) = text(h.key);
                    let (value, encoding) = match h.value.map(text) {
                        Some((v, e)) => (Some(v), e),
                        None => (None, None),
                    };
                    JsonHeader {
                        key,
                        key_encoding,
                        value,
                        encoding,
                    }
                })
                .collect();
            let record = JsonMessage {
                topic: m.topic(),
                partition: m.partition(),
                offset: m.offset(),
                timestamp: m.timestamp().to_millis(),
                key,
                key_encoding,
                headers,
                value,
                value_encoding,
            };
            serde_json::to_writer(&mut *out, &record)?;
            out.push(b'\n');
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_of(v: Value<'_>) -> String {
        serde_json::to_string(&v).unwrap()
    }

    #[test]
    fn values_render_as_json_text_or_base64() {
        let (v, e) = value(br#"{"a":1}"#);
        assert_eq!((json_of(v), e), (r#"{"a":1}"#.to_string(), None));
        let (v, e) = value(b"{\n  \"a\": 1\n}");
        assert_eq!((json_of(v), e), (r#"{"a":1}"#.to_string(), None));
        let (v, e) = value(b"plain text");
        assert_eq!((json_of(v), e), (r#""plain text""#.to_string(), None));
        let (v, e) = value(&[0xff, 0xfe]);
        assert_eq!((json_of(v), e), (r#""//4=""#.to_string(), Some("base64")));
    }
}
