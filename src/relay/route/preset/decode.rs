//! decode: Kafka bytes → the fields a preset reads, or a precise
//! reason why not.
//!
//! Everything here is pure and total: any byte string yields `Ok` or a
//! `DecodeError` naming what is wrong, so bad input can never crash or stall
//! the relay. (The seed decoded UTF-8 outside its `try`, so one bad byte
//! killed the service.)
//!
//! The hot path never builds a `serde_json::Value`: a preset names the
//! fields it reads (a struct of borrowed `RawValue`s), the rest of the
//! object is checked for syntax and skipped, and strings without escapes
//! are read in place. An event of 2 KB costs a few allocations, not one
//! per key and string.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use crate::relay::route::strict_json::strict_json;

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

/// Decodes a message value that must be one JSON object into `T`, the
/// fields a preset reads, borrowed from `bytes`.
pub(crate) fn decode<'a, T: Deserialize<'a>>(
    bytes: Option<&'a [u8]>,
    limit: usize,
) -> Result<T, DecodeError> {
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
    // simdutf8 checks a 2 KB event of mixed scripts several times faster
    // than the standard library; only a failure asks the latter where.
    let text = match simdutf8::basic::from_utf8(bytes) {
        Ok(text) => text,
        Err(_) => {
            let at = std::str::from_utf8(bytes).map_or_else(|e| e.valid_up_to(), |_| 0);
            return Err(DecodeError::NotUtf8(at));
        }
    };
    // Checked first: serde would also accept a JSON array for a struct.
    if !text.trim_start().starts_with('{') {
        return Err(match serde_json::from_str::<IgnoredAny>(text) {
            Ok(_) => DecodeError::NotAnObject(kind(text.trim_start())),
            Err(e) => DecodeError::InvalidJson(e.to_string()),
        });
    }
    let fields =
        serde_json::from_str::<T>(text).map_err(|e| DecodeError::InvalidJson(e.to_string()))?;
    // serde_json checks the escapes of a skipped or raw string for syntax
    // only: a `\ud800` without its pair passes, and a passed-through field
    // would carry it to the target, whose parser refuses it (or a key would
    // read as missing). Escapes in the surrogate range are rare (an emoji
    // written as `\ud83d\ude00`); only then is the whole text read strictly,
    // to find a lone one and say where.
    if has_surrogate_escape(bytes)
        && let Err(e) = strict_json(bytes)
    {
        return Err(DecodeError::InvalidJson(e.to_string()));
    }
    Ok(fields)
}

/// Whether `bytes` may hold a `\uD800`–`\uDFFF` escape (an escaped
/// backslash followed by such text also counts: a false alarm costs only
/// the strict read).
fn has_surrogate_escape(bytes: &[u8]) -> bool {
    memchr::memchr_iter(b'\\', bytes).any(|at| {
        matches!(
            bytes.get(at + 1..at + 4),
            Some([b'u', b'd' | b'D', b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F'])
        )
    })
}

/// For `#[serde(deserialize_with)]` on an `Option<&RawValue>` field: a JSON
/// `null` is a value that is there (and of the wrong type), not a missing
/// field, which `Option`'s own `Deserialize` would make of it.
pub(crate) fn present<'de, D>(d: D) -> Result<Option<&'de RawValue>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    <&RawValue>::deserialize(d).map(Some)
}

/// The JSON type of a valid JSON text, by its first character. (A preset's
/// fields are `RawValue`s: these helpers read their `get()` text.)
pub(crate) fn kind(json: &str) -> &'static str {
    match json.as_bytes().first() {
        Some(b'{') => "object",
        Some(b'[') => "array",
        Some(b'"') => "string",
        Some(b't' | b'f') => "boolean",
        Some(b'n') => "null",
        _ => "number",
    }
}

/// The text of a JSON string (given as JSON text), borrowed when it has no
/// escapes; `None` when the value is not a string.
pub(crate) fn json_str(json: &str) -> Option<Cow<'_, str>> {
    let inner = json.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        serde_json::from_str::<String>(json).ok().map(Cow::Owned)
    } else {
        // Valid JSON has no raw control characters in strings: without
        // escapes, the text between the quotes is the string.
        Some(Cow::Borrowed(inner))
    }
}

/// A JSON string as it came: its literal (quotes and escapes included) is
/// copied into the alert as is, and decoded only when its text is needed —
/// a 1 KB message with line breaks is neither unescaped nor escaped again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JsonText<'a>(&'a RawValue);

impl<'a> JsonText<'a> {
    /// `raw` if it is a string.
    pub(crate) fn of(raw: &'a RawValue) -> Option<Self> {
        (kind(raw.get()) == "string").then_some(Self(raw))
    }

    /// The JSON literal, to be written into the alert as is.
    pub(crate) fn raw(&self) -> &'a RawValue {
        self.0
    }

    /// The decoded text.
    pub(crate) fn text(&self) -> Cow<'a, str> {
        // `decode` checked the literal, lone surrogates included, so it
        // decodes.
        json_str(self.0.get()).unwrap_or_default()
    }

    /// Empty or only white space, decoding only when an escape comes
    /// before the first other character.
    pub(crate) fn is_blank(&self) -> bool {
        let literal = self.0.get();
        let inner = literal
            .get(1..literal.len().saturating_sub(1))
            .unwrap_or("");
        let rest = inner.trim_start();
        rest.is_empty() || (rest.starts_with('\\') && self.text().trim().is_empty())
    }
}

impl PartialEq for JsonText<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.text() == other.text()
    }
}

impl PartialEq<&str> for JsonText<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.text() == *other
    }
}

impl serde::Serialize for JsonText<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// The number a JSON number (given as JSON text) holds; `None` when it is
/// not a number.
pub(crate) fn json_f64(json: &str) -> Option<f64> {
    match kind(json) {
        "number" => json.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 1 << 20;

    #[derive(Debug, Deserialize)]
    struct Fields<'a> {
        #[serde(borrow, default, deserialize_with = "present")]
        a: Option<&'a RawValue>,
    }

    fn dec(bytes: &[u8], limit: usize) -> Result<Option<String>, DecodeError> {
        decode::<Fields>(Some(bytes), limit).map(|f| f.a.map(|r| r.get().to_string()))
    }

    /// Found by the `preset` fuzz target: a lone surrogate escape in a
    /// skipped or raw string passed the syntax check and made a body that
    /// JSON readers refuse.
    #[test]
    fn a_lone_surrogate_anywhere_is_invalid_and_a_pair_is_not() {
        for lone in [
            br#"{"a":"x\ud800y"}"#.as_slice(),
            br#"{"b":{"c":"\uDE8F"}}"#,
            br#"{"a":1,"b":["\ud83d"]}"#,
        ] {
            let err = dec(lone, LIMIT).unwrap_err().to_string();
            assert!(
                err.starts_with("invalid JSON") && err.contains("column"),
                "{err}"
            );
        }
        assert_eq!(
            dec(br#"{"a":"\ud83d\ude00","b":"\\ud800"}"#, LIMIT),
            Ok(Some(r#""\ud83d\ude00""#.into()))
        );
    }

    #[test]
    fn objects_decode_and_other_fields_are_skipped() {
        assert_eq!(
            dec(br#"{"a":1,"b":[{"c":null}]}"#, LIMIT),
            Ok(Some("1".into()))
        );
        assert_eq!(dec(br#"{"b":2}"#, LIMIT), Ok(None));
        assert_eq!(dec(br#"{"a":null}"#, LIMIT), Ok(Some("null".into())));
    }

    #[test]
    fn every_kind_of_bad_input_has_a_reason() {
        assert_eq!(
            decode::<Fields>(None, LIMIT).unwrap_err(),
            DecodeError::Empty
        );
        assert_eq!(dec(b"  \n", LIMIT), Err(DecodeError::Empty));
        assert_eq!(dec(b"{\"a\":\xff}", LIMIT), Err(DecodeError::NotUtf8(5)));
        assert!(matches!(
            dec(b"{\"a\":", LIMIT),
            Err(DecodeError::InvalidJson(_))
        ));
        assert!(matches!(
            dec(b"{\"b\":1} x", LIMIT),
            Err(DecodeError::InvalidJson(_))
        ));
        assert_eq!(dec(b"[1,2]", LIMIT), Err(DecodeError::NotAnObject("array")));
        assert_eq!(
            dec(b"\"x\"", LIMIT),
            Err(DecodeError::NotAnObject("string"))
        );
        assert_eq!(dec(b" 12", LIMIT), Err(DecodeError::NotAnObject("number")));
        assert!(matches!(
            dec(b"[1,", LIMIT),
            Err(DecodeError::InvalidJson(_))
        ));
        let err = dec(br#"{"a":1,"a":2}"#, LIMIT).unwrap_err();
        assert!(err.to_string().contains("duplicate field `a`"), "{err}");
        assert_eq!(
            dec(
                &[b' '; 10].iter().chain(b"{}").copied().collect::<Vec<_>>(),
                5
            ),
            Err(DecodeError::TooLarge { size: 12, limit: 5 })
        );
    }

    #[test]
    fn deep_nesting_is_an_error_or_skipped_never_a_crash() {
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        assert_eq!(
            dec(deep.as_bytes(), usize::MAX),
            Err(DecodeError::NotAnObject("array"))
        );
        let inside = format!("{{\"b\":{deep},\"a\":1}}");
        assert_eq!(dec(inside.as_bytes(), usize::MAX), Ok(Some("1".into())));
        let unclosed = "{\"b\":".to_string() + &"[".repeat(100_000);
        assert!(matches!(
            dec(unclosed.as_bytes(), usize::MAX),
            Err(DecodeError::InvalidJson(_))
        ));
    }

    #[test]
    fn raw_strings_are_borrowed_unless_escaped() {
        assert!(matches!(
            json_str(r#""CPU high""#),
            Some(Cow::Borrowed("CPU high"))
        ));
        assert_eq!(json_str(r#""a\"b\n\u00e9""#).as_deref(), Some("a\"b\né"));
        assert_eq!(json_str("1.5e3"), None);
        assert_eq!(json_f64("1.5e3"), Some(1500.0));
        assert_eq!(json_f64("\"1\""), None);
        assert_eq!(kind("1.5e3"), "number");
    }
}
