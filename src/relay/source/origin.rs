//! The original message of an event in processing: its coordinates, and
//! the bytes its dead letter must carry unchanged — key, value and headers,
//! whatever they are.

use std::sync::Arc;

use rdkafka::message::{BorrowedHeaders, BorrowedMessage, Message, OwnedHeaders};

/// The original message, kept for its dead letter.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    /// The message's timestamp (epoch ms), for the delivery latency.
    pub timestamp_ms: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Option<OwnedHeaders>,
    /// Key, value and headers, in bytes: what the message counts against
    /// `max_pending_bytes`.
    pub size: usize,
    /// It carries [`REDRIVE_HEADER`]: re-driven from the dead letters on
    /// purpose, so the storm stage's dedupe lets it through.
    pub redriven: bool,
    /// That header's value (its count of re-drives), which its next dead
    /// letter keeps however much else it leaves out.
    pub redrive_count: Option<Vec<u8>>,
}

/// The header a re-driven dead letter carries (its count of re-drives).
pub(crate) const REDRIVE_HEADER: &[u8] = b"kbridge.redrive.count";

impl Origin {
    /// Copies what the event needs out of the consumer's buffer. Headers
    /// are copied natively, never decoded: a key that is not UTF-8 must not
    /// crash the relay (see `crate::headers`).
    pub(crate) fn of(m: &BorrowedMessage<'_>, topic: Arc<str>) -> Self {
        let redrive_count = crate::headers::last(m, REDRIVE_HEADER);
        Self {
            // Headers read as bytes: rdkafka's header iterator panics on a
            // key that is not UTF-8 (see `crate::headers`).
            size: m.key().map_or(0, <[u8]>::len)
                + m.payload().map_or(0, <[u8]>::len)
                + crate::headers::size(m),
            topic,
            partition: m.partition(),
            offset: m.offset(),
            timestamp_ms: m.timestamp().to_millis(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec),
            headers: m.headers().map(BorrowedHeaders::detach),
            redriven: redrive_count.is_some(),
            redrive_count: redrive_count.map(|v| v.unwrap_or_default().to_vec()),
        }
    }

    /// `topic-partition-offset`: unique per event, stable across retries
    /// and restarts.
    pub(crate) fn coordinates(&self) -> String {
        format!("{}-{}-{}", self.topic, self.partition, self.offset)
    }
}
