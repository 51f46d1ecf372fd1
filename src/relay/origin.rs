//! The original message of an event in processing: its coordinates, and
//! the bytes its dead letter must carry unchanged.

use std::sync::Arc;

use rdkafka::message::{Header, Headers, Message, OwnedHeaders};

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
}

impl Origin {
    pub(crate) fn of(m: &impl Message, topic: Arc<str>) -> Self {
        Self {
            topic,
            partition: m.partition(),
            offset: m.offset(),
            timestamp_ms: m.timestamp().to_millis(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec),
            headers: m.headers().map(|hs| {
                hs.iter().fold(OwnedHeaders::new(), |acc, h| {
                    acc.insert(Header {
                        key: h.key,
                        value: h.value,
                    })
                })
            }),
        }
    }

    /// `topic-partition-offset`: unique per event, stable across retries
    /// and restarts.
    pub(crate) fn coordinates(&self) -> String {
        format!("{}-{}-{}", self.topic, self.partition, self.offset)
    }
}
