//! One audit record: what happened to one event on one route, small
//! enough to write for every event (a few hundred bytes), keyed by the
//! alert's id so that every record of an alert is in one partition of the
//! audit topic, in order. Versioned (`v`); a reader skips what it cannot
//! read.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// The longest reason an audit record carries: the full one is in the
/// dead letter and the log.
pub(crate) const MAX_REASON_BYTES: usize = 512;

/// Where a record is in Kafka.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Place<'a> {
    pub topic: Cow<'a, str>,
    pub partition: i32,
    pub offset: i64,
}

/// One event's outcome on one route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AuditRecord<'a> {
    pub v: u8,
    /// The alert's id: the route's key, else the event's (see
    /// `audit::alert_id`).
    pub alert: Option<Cow<'a, str>>,
    /// `None`: no route takes the event's topic.
    pub route: Option<Cow<'a, str>>,
    /// `delivered`, `skipped`, `invalid`, `rejected`, `dead_lettered`,
    /// `deduped`, `grouped`, `held`, `silenced`, `absorbed`.
    pub outcome: Cow<'a, str>,
    /// When (epoch ms).
    pub at: i64,
    /// The event's record (a storm route's: its repartition record).
    pub source: Place<'a>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// The target's last HTTP status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// From the event's Kafka timestamp to this outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<i64>,
    /// The instance that handled it (`group_instance_id`, or host and
    /// pid).
    pub instance: Cow<'a, str>,
    /// Where its dead letter is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<Place<'a>>,
    /// It was re-driven from the dead letters.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redriven: bool,
}

impl AuditRecord<'_> {
    pub(crate) const VERSION: u8 = 1;

    /// Reads one; `None` for what this version cannot read.
    pub(crate) fn parse(bytes: &[u8]) -> Option<AuditRecord<'static>> {
        let r: AuditRecord<'_> = serde_json::from_slice(bytes).ok()?;
        (r.v == Self::VERSION).then(|| r.into_owned())
    }

    fn into_owned(self) -> AuditRecord<'static> {
        let own = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
        let place = |p: Place<'_>| Place {
            topic: own(p.topic),
            partition: p.partition,
            offset: p.offset,
        };
        AuditRecord {
            v: self.v,
            alert: self.alert.map(own),
            route: self.route.map(own),
            outcome: own(self.outcome),
            at: self.at,
            source: place(self.source),
            stage: self.stage.map(own),
            reason: self.reason.map(own),
            attempts: self.attempts,
            status: self.status,
            latency_ms: self.latency_ms,
            instance: own(self.instance),
            dead_letter: self.dead_letter.map(place),
            redriven: self.redriven,
        }
    }
}

/// Kafka's murmur2 (the Java client's `Utils.murmur2`, librdkafka's
/// `murmur2_random` partitioner): the audit producer partitions with it,
/// so `kbridge trace` knows which partition holds an alert.
pub(crate) fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of `key` among `partitions`, as the Java client and
/// librdkafka's `murmur2_random` choose it.
pub(crate) fn partition_of(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_is_kafkas() {
        // Kafka's UtilsTest.testMurmur2.
        for (input, want) in [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ] {
            assert_eq!(murmur2(input.as_bytes()), want, "{input}");
        }
    }

    #[test]
    fn records_read_back() {
        let r = AuditRecord {
            v: 1,
            alert: Some("f-1".into()),
            route: Some("default".into()),
            outcome: "delivered".into(),
            at: 5,
            source: Place {
                topic: "guance".into(),
                partition: 0,
                offset: 9,
            },
            stage: None,
            reason: None,
            attempts: Some(1),
            status: Some(200),
            latency_ms: Some(12),
            instance: "host:1".into(),
            dead_letter: None,
            redriven: false,
        };
        let bytes = serde_json::to_vec(&r).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("stage"));
        assert_eq!(AuditRecord::parse(&bytes), Some(r));
        assert_eq!(AuditRecord::parse(br#"{"v":2}"#), None);
        assert_eq!(AuditRecord::parse(b"\xff"), None);
    }
}
