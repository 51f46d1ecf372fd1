//! What a dead letter says about itself, whoever wrote it: kbridge's own
//! `kbridge.*` headers, Kafka Connect's `__connect.errors.*` (with
//! `errors.deadletterqueue.context.headers.enable`), or Spring Kafka's
//! `kafka_dlt-*` (its `DeadLetterPublishingRecoverer`). One shape for all
//! three, so `stats`, `show` and `redrive` need not know which wrote it.
//!
//! Pure: headers in, a [`Letter`] out. Any bytes are accepted — a header
//! that cannot be read as what it should be is left unknown, never a
//! panic.

use serde::Serialize;

/// A record of a dead-letter topic, as read: coordinates, key, value and
/// headers as bytes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The dead letter's own timestamp (epoch ms): when it was written.
    pub timestamp_ms: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Record {
    /// The last header named `name` (a re-written record may repeat one).
    pub(crate) fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .rev()
            .find(|(k, _)| k == name.as_bytes())
            .and_then(|(_, v)| v.as_deref())
    }

    fn text(&self, name: &str) -> Option<String> {
        self.header(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    fn number(&self, name: &str) -> Option<i64> {
        self.text(name)?.trim().parse().ok()
    }
}

/// Who wrote the dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Writer {
    Kbridge,
    Connect,
    Spring,
    /// No header any of them writes: a record put there by hand.
    Unknown,
}

impl Writer {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Writer::Kbridge => "kbridge",
            Writer::Connect => "connect",
            Writer::Spring => "spring",
            Writer::Unknown => "unknown",
        }
    }
}

/// Where the dead letter's event was first read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Source {
    pub topic: String,
    pub partition: Option<i32>,
    pub offset: Option<i64>,
}

/// A dead letter, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Letter {
    pub writer: Writer,
    /// kbridge's route; Connect's connector; Spring's consumer group.
    pub route: Option<String>,
    /// kbridge's stage (decode, validate, map, deliver, …); Connect's
    /// (VALUE_CONVERTER, TASK_PUT, …); Spring's exception class.
    pub stage: Option<String>,
    /// What was wrong, in full.
    pub reason: Option<String>,
    /// The target's last HTTP status (kbridge, deliver stage).
    pub status: Option<u16>,
    /// Delivery attempts (kbridge, deliver stage).
    pub attempts: Option<u32>,
    pub source: Option<Source>,
    /// How many times it was re-driven already (`kbridge.redrive.count`).
    pub redriven: u32,
}

/// kbridge's header names, in one place for the writer and the readers.
pub(crate) mod names {
    pub(crate) const ERROR: &str = "kbridge.error";
    pub(crate) const STAGE: &str = "kbridge.stage";
    pub(crate) const ROUTE: &str = "kbridge.route";
    pub(crate) const TOPIC: &str = "kbridge.topic";
    pub(crate) const PARTITION: &str = "kbridge.partition";
    pub(crate) const OFFSET: &str = "kbridge.offset";
    pub(crate) const TIME: &str = "kbridge.time";
    pub(crate) const STATUS: &str = "kbridge.status";
    pub(crate) const ATTEMPTS: &str = "kbridge.attempts";
    pub(crate) const REDRIVE_COUNT: &str = "kbridge.redrive.count";
    /// What a re-drive moves the previous reason headers under.
    pub(crate) const PREVIOUS: &str = "kbridge.previous.";
    /// The headers that say why a record was dead-lettered: a re-drive
    /// moves them aside (under [`PREVIOUS`]) rather than stacking them.
    pub(crate) const REASON: [&str; 9] = [
        ERROR, STAGE, ROUTE, TOPIC, PARTITION, OFFSET, TIME, STATUS, ATTEMPTS,
    ];
}

const CONNECT: &str = "__connect.errors.";
const SPRING: &str = "kafka_dlt-";

impl Letter {
    /// Decodes what the record's headers say. kbridge's headers win over
    /// the others' when a record has several (a Connect dead letter that
    /// kbridge later dead-lettered again).
    pub(crate) fn of(record: &Record) -> Self {
        let redriven = record
            .number(names::REDRIVE_COUNT)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0);
        let has = |prefix: &str| {
            record
                .headers
                .iter()
                .any(|(k, _)| k.starts_with(prefix.as_bytes()))
        };
        let mut letter =
            if record.header(names::STAGE).is_some() || record.header(names::ERROR).is_some() {
                Self::kbridge(record)
            } else if has(CONNECT) {
                Self::connect(record)
            } else if has(SPRING) {
                Self::spring(record)
            } else {
                Self {
                    writer: Writer::Unknown,
                    route: None,
                    stage: None,
                    reason: None,
                    status: None,
                    attempts: None,
                    source: None,
                    redriven: 0,
                }
            };
        letter.redriven = redriven;
        letter
    }

    fn kbridge(r: &Record) -> Self {
        Self {
            writer: Writer::Kbridge,
            route: r.text(names::ROUTE),
            stage: r.text(names::STAGE),
            reason: r.text(names::ERROR),
            status: r.number(names::STATUS).and_then(|s| u16::try_from(s).ok()),
            attempts: r
                .number(names::ATTEMPTS)
                .and_then(|a| u32::try_from(a).ok()),
            source: r.text(names::TOPIC).map(|topic| Source {
                topic,
                partition: r
                    .number(names::PARTITION)
                    .and_then(|p| i32::try_from(p).ok()),
                offset: r.number(names::OFFSET),
            }),
            redriven: 0,
        }
    }

    fn connect(r: &Record) -> Self {
        let h = |name: &str| r.text(&format!("{CONNECT}{name}"));
        let reason = exception(h("exception.class.name").as_deref(), h("exception.message"));
        Self {
            writer: Writer::Connect,
            route: h("connector.name"),
            stage: h("stage"),
            reason,
            status: None,
            attempts: None,
            source: h("topic").map(|topic| Source {
                topic,
                partition: h("partition").and_then(|p| p.trim().parse().ok()),
                offset: h("offset").and_then(|o| o.trim().parse().ok()),
            }),
            redriven: 0,
        }
    }

    fn spring(r: &Record) -> Self {
        let h = |name: &str| r.text(&format!("{SPRING}{name}"));
        // Spring writes the partition as a 4-byte and the offset as an
        // 8-byte big-endian number.
        let int = |name: &str| -> Option<i64> {
            let v = r.header(&format!("{SPRING}{name}"))?;
            match v.len() {
                4 => Some(i64::from(i32::from_be_bytes(v.try_into().ok()?))),
                8 => Some(i64::from_be_bytes(v.try_into().ok()?)),
                _ => None,
            }
        };
        let class = h("exception-fqcn");
        let reason = exception(class.as_deref(), h("exception-message"));
        Self {
            writer: Writer::Spring,
            route: h("original-consumer-group"),
            stage: class.as_deref().map(|c| simple_name(c).to_string()),
            reason,
            status: None,
            attempts: None,
            source: h("original-topic").map(|topic| Source {
                topic,
                partition: int("original-partition").and_then(|p| i32::try_from(p).ok()),
                offset: int("original-offset"),
            }),
            redriven: 0,
        }
    }
}

/// A Java exception as a reason: `DataException: bad JSON`.
fn exception(class: Option<&str>, message: Option<String>) -> Option<String> {
    match (class.map(simple_name), message) {
        (Some(class), Some(msg)) => Some(format!("{class}: {msg}")),
        (Some(class), None) => Some(class.to_string()),
        (None, msg) => msg,
    }
}

/// `org.apache.kafka.connect.errors.DataException` → `DataException`.
fn simple_name(class: &str) -> &str {
    class.rsplit(['.', '$']).next().unwrap_or(class)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(headers: &[(&str, &[u8])]) -> Record {
        Record {
            headers: headers
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), Some(v.to_vec())))
                .collect(),
            ..Record::default()
        }
    }

    #[test]
    fn kbridge_headers() {
        let r = record(&[
            ("kbridge.error", b"gave up after 3 attempts: HTTP 503"),
            ("kbridge.stage", b"deliver"),
            ("kbridge.route", b"easyops"),
            ("kbridge.topic", b"guance"),
            ("kbridge.partition", b"2"),
            ("kbridge.offset", b"41"),
            ("kbridge.status", b"503"),
            ("kbridge.redrive.count", b"2"),
        ]);
        let l = Letter::of(&r);
        assert_eq!(l.writer, Writer::Kbridge);
        assert_eq!(l.route.as_deref(), Some("easyops"));
        assert_eq!(l.stage.as_deref(), Some("deliver"));
        assert_eq!(l.status, Some(503));
        assert_eq!(l.redriven, 2);
        assert_eq!(
            l.source,
            Some(Source {
                topic: "guance".into(),
                partition: Some(2),
                offset: Some(41)
            })
        );
    }

    #[test]
    fn connect_headers() {
        let r = record(&[
            ("__connect.errors.topic", b"orders"),
            ("__connect.errors.partition", b"1"),
            ("__connect.errors.offset", b"9"),
            ("__connect.errors.connector.name", b"http-sink"),
            ("__connect.errors.stage", b"VALUE_CONVERTER"),
            (
                "__connect.errors.exception.class.name",
                b"org.apache.kafka.connect.errors.DataException",
            ),
            ("__connect.errors.exception.message", b"bad JSON"),
        ]);
        let l = Letter::of(&r);
        assert_eq!(l.writer, Writer::Connect);
        assert_eq!(l.route.as_deref(), Some("http-sink"));
        assert_eq!(l.stage.as_deref(), Some("VALUE_CONVERTER"));
        assert_eq!(l.reason.as_deref(), Some("DataException: bad JSON"));
        assert_eq!(l.source.unwrap().offset, Some(9));
    }

    #[test]
    fn spring_headers_are_binary_numbers() {
        let r = record(&[
            ("kafka_dlt-original-topic", b"payments"),
            ("kafka_dlt-original-partition", &3i32.to_be_bytes()),
            ("kafka_dlt-original-offset", &77i64.to_be_bytes()),
            ("kafka_dlt-original-consumer-group", b"pay-listener"),
            (
                "kafka_dlt-exception-fqcn",
                b"org.springframework.kafka.listener.ListenerExecutionFailedException",
            ),
            ("kafka_dlt-exception-message", b"boom"),
        ]);
        let l = Letter::of(&r);
        assert_eq!(l.writer, Writer::Spring);
        assert_eq!(l.route.as_deref(), Some("pay-listener"));
        let s = l.source.unwrap();
        assert_eq!((s.partition, s.offset), (Some(3), Some(77)));
        assert_eq!(
            l.reason.as_deref(),
            Some("ListenerExecutionFailedException: boom")
        );
    }

    #[test]
    fn any_bytes_decode_without_panic() {
        let r = Record {
            headers: vec![
                (b"kbridge.partition".to_vec(), Some(vec![0xff, 0xfe])),
                (b"kbridge.stage".to_vec(), None),
                (b"kafka_dlt-original-offset".to_vec(), Some(vec![1, 2, 3])),
                (vec![0xff], Some(vec![0])),
            ],
            ..Record::default()
        };
        let l = Letter::of(&r);
        assert_eq!(l.writer, Writer::Spring);
        assert_eq!(Letter::of(&Record::default()).writer, Writer::Unknown);
    }
}
