//! Which dead letters a command works on: `--route`, `--stage`, `--reason
//! REGEX`, `--status` on what the dead letter says about itself, and
//! `--where JQ` on the record. The time window and the offset range are
//! the reader's (`read::Span`): they decide where reading starts and ends.
//!
//! `--where` and `--fix` see the record as one JSON object, [`view`]:
//! `{key, value, headers, topic, partition, offset}`.

use base64::Engine;
use serde_json::{Map, Value, json};

use super::letter::{Letter, Record};
use crate::relay::route::jq::{self, Jq};

/// The filters on what a dead letter says and holds.
#[derive(Default)]
pub(crate) struct Select {
    pub route: Option<String>,
    pub stage: Option<String>,
    /// A jq `test` on the reason: the regex dialect `--where` has too.
    pub reason: Option<Jq>,
    pub status: Option<u16>,
    pub where_: Option<Jq>,
}

impl Select {
    /// `--reason REGEX` as a program: compiled once, a usage error when the
    /// regex is not one.
    pub(crate) fn reason_matcher(regex: &str) -> Result<Jq, String> {
        let literal = serde_json::to_string(regex).map_err(|e| e.to_string())?;
        Jq::compile(&format!("test({literal})")).map_err(|e| format!("--reason: {e}"))
    }

    /// Whether the record is selected; an error says why a program failed
    /// on it (the command reports it, and goes on).
    pub(crate) fn takes(&self, record: &Record, letter: &Letter) -> Result<bool, String> {
        if self
            .route
            .as_ref()
            .is_some_and(|r| letter.route.as_ref() != Some(r))
        {
            return Ok(false);
        }
        if self
            .stage
            .as_ref()
            .is_some_and(|s| letter.stage.as_ref() != Some(s))
        {
            return Ok(false);
        }
        if self.status.is_some_and(|s| letter.status != Some(s)) {
            return Ok(false);
        }
        if let Some(re) = &self.reason {
            let reason = letter.reason.clone().unwrap_or_default();
            let input = jq::parse(&serde_json::to_vec(&reason).map_err(|e| e.to_string())?)?;
            let holds = re.holds(&input);
            jq::dispose(input);
            if !holds.map_err(|e| format!("--reason: {e}"))? {
                return Ok(false);
            }
        }
        if let Some(w) = &self.where_ {
            let input = jq_input(record)?;
            let holds = w.holds(&input);
            jq::dispose(input);
            if !holds.map_err(|e| format!("--where: {e}"))? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// The record as `--where` and `--fix` see it.
pub(crate) fn jq_input(record: &Record) -> Result<jq::Val, String> {
    let bytes = serde_json::to_vec(&view(record)).map_err(|e| e.to_string())?;
    jq::parse(&bytes)
}

/// The record as one JSON object: the value parsed when it is JSON (else
/// its text, or base64 marked so), headers by name (the last of a name
/// wins; a value that is not UTF-8 as base64).
pub(crate) fn view(record: &Record) -> Value {
    let mut headers = Map::new();
    for (k, v) in &record.headers {
        let value = match v {
            None => Value::Null,
            Some(v) => text_or_base64(v),
        };
        headers.insert(String::from_utf8_lossy(k).into_owned(), value);
    }
    json!({
        "key": record.key.as_deref().map(text_or_base64),
        "value": record.value.as_deref().map(value_of),
        "headers": headers,
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
    })
}

/// A value: parsed when it is JSON, else as [`text_or_base64`].
pub(crate) fn value_of(bytes: &[u8]) -> Value {
    // serde_json's reader is bounded (128 levels), so any bytes are safe.
    serde_json::from_slice(bytes).unwrap_or_else(|_| text_or_base64(bytes))
}

/// Bytes as a string when they are UTF-8, else `{"base64": "…"}`.
pub(crate) fn text_or_base64(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(s) => Value::from(s),
        Err(_) => json!({"base64": base64::engine::general_purpose::STANDARD.encode(bytes)}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            topic: "dlq".into(),
            partition: 1,
            offset: 7,
            key: Some(b"f-1".to_vec()),
            value: Some(br#"{"df_title":"x"}"#.to_vec()),
            headers: vec![
                (b"kbridge.stage".to_vec(), Some(b"deliver".to_vec())),
                (b"kbridge.route".to_vec(), Some(b"ops".to_vec())),
                (b"kbridge.error".to_vec(), Some(b"HTTP 503 twice".to_vec())),
                (b"kbridge.status".to_vec(), Some(b"503".to_vec())),
                (b"raw".to_vec(), Some(vec![0xff])),
            ],
            ..Record::default()
        }
    }

    #[test]
    fn filters_on_what_the_letter_says_and_holds() {
        let r = record();
        let l = Letter::of(&r);
        let takes = |s: Select| s.takes(&r, &l).unwrap();
        assert!(takes(Select::default()));
        assert!(takes(Select {
            route: Some("ops".into()),
            stage: Some("deliver".into()),
            status: Some(503),
            ..Select::default()
        }));
        assert!(!takes(Select {
            route: Some("other".into()),
            ..Select::default()
        }));
        assert!(takes(Select {
            reason: Some(Select::reason_matcher("^HTTP 5\\d\\d").unwrap()),
            ..Select::default()
        }));
        assert!(!takes(Select {
            reason: Some(Select::reason_matcher("timeout").unwrap()),
            ..Select::default()
        }));
        assert!(takes(Select {
            where_: Some(
                Jq::compile(r#".value.df_title == "x" and .headers["kbridge.route"] == "ops" and .partition == 1"#)
                    .unwrap()
            ),
            ..Select::default()
        }));
        assert_eq!(view(&r)["headers"]["raw"], json!({"base64": "/w=="}));
    }
}
