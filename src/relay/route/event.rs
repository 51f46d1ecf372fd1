//! One event's value as the routes see it: its bytes (the message's own,
//! nothing copied), and its JSON for the jq programs, parsed once however
//! many routes and delivery tasks read it.

use std::sync::{Arc, OnceLock};

use super::RouteDecision;
use super::jq;
use crate::relay::source::Origin;
use crate::relay::stage::Stage;

/// One event's value as the routes see it: its bytes, and its JSON for
/// the jq programs — parsed once, when the first program needs it, however
/// many routes (and delivery tasks) read it.
pub(crate) struct Event {
    source: Source,
    /// `max_message_bytes`: a larger value is invalid, never parsed.
    pub(super) max_bytes: usize,
    parsed: OnceLock<Result<jaq_json::Val, String>>,
}

/// Where the value's bytes are: the message itself (the relay: nothing is
/// copied), or a line of `kbridge check`'s input.
enum Source {
    Message(Arc<Origin>),
    Line(Vec<u8>),
}

impl Event {
    /// A message's value, as the relay consumed it.
    pub(crate) fn of_message(origin: Arc<Origin>, max_bytes: usize) -> Self {
        Self::new(Source::Message(origin), max_bytes)
    }

    /// A value given as bytes (`kbridge check`, tests).
    pub(crate) fn of_bytes(value: &[u8], max_bytes: usize) -> Self {
        Self::new(Source::Line(value.to_vec()), max_bytes)
    }

    fn new(source: Source, max_bytes: usize) -> Self {
        Self {
            source,
            max_bytes,
            parsed: OnceLock::new(),
        }
    }

    pub(crate) fn value(&self) -> Option<&[u8]> {
        match &self.source {
            Source::Message(origin) => origin.payload.as_deref(),
            Source::Line(line) => Some(line),
        }
    }

    /// The value as JSON, or why it is not (an invalid event, at decode).
    pub(crate) fn json(&self) -> Result<&jaq_json::Val, RouteDecision> {
        let parsed = self.parsed.get_or_init(|| match self.value() {
            Some(bytes) if bytes.len() > self.max_bytes => Err(format!(
                "message value is {} bytes, over the {}-byte limit (max_message_bytes)",
                bytes.len(),
                self.max_bytes
            )),
            Some(bytes) => jq::parse(bytes),
            None => Err("no value (a tombstone)".into()),
        });
        parsed.as_ref().map_err(|reason| RouteDecision::Invalid {
            stage: Stage::Decode,
            reason: reason.clone(),
        })
    }
}
