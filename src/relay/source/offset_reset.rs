//! Where `offset_reset` skips messages, said out loud. With `latest`, a
//! partition whose committed offset fell out of retention, or that has none
//! (a partition added to the topic, a group's first start), starts at the
//! log end: the messages before it are never relayed. librdkafka logs the
//! first case as a warning without the range, and the second only at debug
//! level. kbridge warns for both with the range skipped and what to do, and
//! counts them (`kbridge_offset_resets_total`, `kbridge_offsets_skipped_total`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Resets seen in librdkafka's log whose range is not known yet: the first
/// message read after one says where consumption resumed.
#[derive(Default)]
pub(crate) struct Resets {
    pending: Mutex<HashMap<(String, i32), Reset>>,
    any: AtomicBool,
}

/// One reset, as librdkafka's log line says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reset {
    pub topic: String,
    pub partition: i32,
    /// The offset that could not be used (the committed one, out of range).
    pub at: Option<i64>,
    /// `END` or `BEGINNING`.
    pub to: String,
    pub why: String,
}

impl Resets {
    /// librdkafka's log line, if it is an offset reset.
    pub(crate) fn on_log(&self, fac: &str, msg: &str) {
        if fac != "OFFSET" {
            return;
        }
        let Some(reset) = parse(msg) else {
            return;
        };
        metrics::counter!("kbridge_offset_resets_total", "topic" => reset.topic.clone())
            .increment(1);
        tracing::warn!(
            topic = %reset.topic,
            partition = reset.partition,
            "the committed offset {} is no longer on the broker ({}); offset_reset moves to the {}: {}",
            reset.at.map_or("?".into(), |o| o.to_string()),
            reset.why,
            if reset.to.contains("END") { "log end, skipping what is between (the next message read says how many)" } else { "log start" },
            ADVICE
        );
        if reset.to.contains("END") {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.insert((reset.topic.clone(), reset.partition), reset);
            self.any.store(true, Ordering::Release);
        }
    }

    /// A message was read: after a reset to the end, the range skipped.
    pub(crate) fn read(&self, topic: &str, partition: i32, offset: i64) {
        if !self.any.load(Ordering::Acquire) {
            return;
        }
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let Some(reset) = pending.remove(&(topic.to_string(), partition)) else {
            return;
        };
        self.any.store(!pending.is_empty(), Ordering::Release);
        if let Some(at) = reset.at.filter(|at| *at < offset) {
            skipped(
                topic,
                partition,
                at,
                offset,
                "the committed offset fell out of retention, and offset_reset moved to the log end",
            );
        }
    }
}

/// Says (and counts) that offsets `from..to` of a partition are never
/// relayed.
pub(crate) fn skipped(topic: &str, partition: i32, from: i64, to: i64, why: &str) {
    let n = (to - from).max(0) as u64;
    metrics::counter!("kbridge_offsets_skipped_total", "topic" => topic.to_string()).increment(n);
    tracing::warn!(
        topic,
        partition,
        "{why}: offsets {from} to {} ({n} offsets) are never relayed. {ADVICE}",
        to - 1
    );
}

/// After an assignment under `offset_reset = "latest"`: the partitions
/// without a committed offset (a group's first start, a partition added)
/// start at the log end; says what that skips. Runs on a thread of its own:
/// it asks the brokers, and an assignment callback must not wait.
pub(crate) fn check_uncommitted<C: rdkafka::consumer::ConsumerContext + 'static>(
    consumer: std::sync::Arc<rdkafka::consumer::StreamConsumer<C>>,
    tps: Vec<crate::topic_partition::TopicPartition>,
) {
    use rdkafka::consumer::Consumer;
    let spawned = std::thread::Builder::new()
        .name("kbridge-offsets".into())
        .spawn(move || {
            let timeout = std::time::Duration::from_secs(10);
            let tpl = crate::topic_partition::TopicPartition::list(tps.iter());
            let Ok(committed) = consumer.committed_offsets(tpl, timeout) else {
                return;
            };
            for e in committed.elements() {
                if e.offset() != rdkafka::Offset::Invalid {
                    continue;
                }
                if let Ok((low, high)) =
                    consumer.fetch_watermarks(e.topic(), e.partition(), timeout)
                    && high > low
                {
                    skipped(
                        e.topic(),
                        e.partition(),
                        low,
                        high,
                        "no committed offset for this partition in the group (its first start, or a partition added), and offset_reset = latest starts at the log end",
                    );
                }
            }
        });
    if let Err(e) = spawned {
        tracing::debug!("cannot check the committed offsets: {e}");
    }
}

/// What to do about it.
pub(crate) const ADVICE: &str = "A relay that must not skip alerts sets offset_reset = \"earliest\" (a new group or partition then starts at the oldest message kept), and keeps the topic's retention longer than any outage; to replay a range: `kbridge groups reset-offsets GROUP --topic T --to-offset N --execute` while the group is stopped";

/// `topic [p]: offset reset (at offset 12 (leader epoch 0), broker 1) to
/// offset END (leader epoch -1): fetch failed due to requested offset not
/// available on the broker: Broker: Offset out of range`.
pub(crate) fn parse(msg: &str) -> Option<Reset> {
    let (head, rest) = msg.split_once(": offset reset (")?;
    // After librdkafka's thread name (`[thrd:main]: `); a topic name has
    // no brackets.
    let head = head.rsplit_once("]: ").map_or(head, |(_, h)| h);
    let (topic, partition) = head.rsplit_once(" [")?;
    let partition = partition.strip_suffix(']')?.parse().ok()?;
    let at = rest
        .strip_prefix("at offset ")
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit() && c != '-').next())
        .and_then(|n| n.parse().ok());
    let (_, after) = rest.split_once(") to ")?;
    let (to, why) = after.split_once(": ").unwrap_or((after, ""));
    Some(Reset {
        topic: topic.to_string(),
        partition,
        at,
        to: to.to_string(),
        why: why.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn librdkafka_s_reset_line_is_read() {
        let line = "[thrd:main]: alerts [3]: offset reset (at offset 12 (leader epoch 0), broker 1) to offset END (leader epoch -1): fetch failed due to requested offset not available on the broker: Broker: Offset out of range";
        let r = parse(line).unwrap();
        assert_eq!(
            (r.topic.as_str(), r.partition, r.at),
            ("alerts", 3, Some(12))
        );
        assert!(r.to.starts_with("offset END"), "{}", r.to);
        assert!(r.why.contains("Offset out of range"), "{}", r.why);
        assert_eq!(parse("alerts [3]: fetch backoff"), None);
        let resets = Resets::default();
        resets.on_log("OFFSET", line);
        resets.read("alerts", 3, 40);
        assert!(!resets.any.load(Ordering::Acquire), "said once");
    }
}
