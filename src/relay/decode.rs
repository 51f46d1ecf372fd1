//! Stage 1, decode: Kafka bytes → a JSON object, or a precise reason why not.
//!
//! Everything here is pure and total: any byte string yields `Ok` or a
//! `DecodeError` naming what is wrong, so bad input can never crash or stall
//! the relay. (The seed decoded UTF-8 outside its `try`, so one bad byte
//! killed the service.)

use serde_json::{Map, Value};

/// Why a message could not be decoded. The `Display` text goes into logs and
/// the dead letter's `kbridge.error` header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    #[error("empty message value")]
    Empty,
    #[error("message value is {size} bytes, over the {limit}-byte limit (max_message_bytes)")]
    TooLarge { size: usize, limit: usize },
    #[error("message value is not UTF-8 (invalid byte at position {0})")]
    NotUtf8(usize),
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    #[error("expected a JSON object, got {0}")]
    NotAnObject(&'static str),
}

/// Decodes a message value into a JSON object.
pub(crate) fn decode(
    bytes: Option<&[u8]>,
    limit: usize,
) -> Result<Map<String, Value>, DecodeError> {
    let bytes = bytes.unwrap_or_default();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(DecodeError::Empty);
    }
    if bytes.len() > limit {
        return Err(DecodeError::TooLarge {
            size: bytes.len(),
            limit,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| DecodeError::NotUtf8(e.valid_up_to()))?;
    // serde_json refuses nesting deeper than 128 levels with an error (not a
    // stack overflow), which lands here as InvalidJson.
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(DecodeError::NotAnObject(json_type(&other))),
        Err(e) => Err(DecodeError::InvalidJson(e.to_string())),
    }
}

/// The JSON type name of a value, for error messages.
pub(crate) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 1 << 20;

    #[test]
    fn objects_decode() {
        let m = decode(Some(br#"{"a":1}"#), LIMIT).unwrap();
        assert_eq!(m["a"], 1);
    }

    #[test]
    fn every_kind_of_bad_input_has_a_reason() {
        assert_eq!(decode(None, LIMIT), Err(DecodeError::Empty));
        assert_eq!(decode(Some(b"  \n"), LIMIT), Err(DecodeError::Empty));
        assert_eq!(
            decode(Some(b"{\"a\":\xff}"), LIMIT),
            Err(DecodeError::NotUtf8(5))
        );
        assert!(matches!(
            decode(Some(b"{\"a\":"), LIMIT),
            Err(DecodeError::InvalidJson(_))
        ));
        assert_eq!(
            decode(Some(b"[1,2]"), LIMIT),
            Err(DecodeError::NotAnObject("array"))
        );
        assert_eq!(
            decode(Some(b"\"x\""), LIMIT),
            Err(DecodeError::NotAnObject("string"))
        );
        assert_eq!(
            decode(
                Some(&[b' '; 10].iter().chain(b"{}").copied().collect::<Vec<_>>()),
                5
            ),
            Err(DecodeError::TooLarge { size: 12, limit: 5 })
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        let err = decode(Some(deep.as_bytes()), usize::MAX).unwrap_err();
        assert!(err.to_string().contains("recursion limit"), "{err}");
    }
}
