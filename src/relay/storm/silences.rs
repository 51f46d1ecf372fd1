//! Silences: a jq matcher with a time window (maintenance tonight
//! 22:00–02:00 on `.service == "pay-api"`), kept in the state topic —
//! partition 0, key `["silence", <id>]` — so that every instance of the
//! group honours it: each reads them all at start and follows the
//! partition while it runs (`watch`). A silenced event is counted and
//! skipped with the silence's id and comment as the reason, on every route
//! (or the one the silence names). `kbridge silence add | list | expire`
//! manages them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::changelog;
use crate::client::{KafkaContext, KafkaOpts};
use crate::relay::route::jq::Jq;

/// The state topic's partition that holds the silences.
pub(crate) const PARTITION: i32 = 0;

/// One silence, as the state topic keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Silence {
    pub id: String,
    /// jq on the event: true silences it.
    pub matcher: String,
    /// Only this route's events; all routes' when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Epoch ms: in force from `starts` until `ends`.
    pub starts: i64,
    pub ends: i64,
    #[serde(default)]
    pub comment: String,
    #[serde(default)]
    pub created_by: String,
    pub created_at: i64,
}

impl Silence {
    pub(crate) fn is_active(&self, now: i64) -> bool {
        self.starts <= now && now < self.ends
    }
}

/// The state record key of a silence.
pub(crate) fn key(id: &str) -> Vec<u8> {
    serde_json::to_vec(&("silence", id)).unwrap_or_default()
}

/// A record key's silence id, if it is a silence's.
pub(crate) fn id_of(key: &[u8]) -> Option<String> {
    let (kind, id): (String, String) = serde_json::from_slice(key).ok()?;
    (kind == "silence").then_some(id)
}

/// A silence read back, or why not.
pub(crate) fn read(bytes: &[u8]) -> Result<Silence, String> {
    changelog::read_value(bytes)
}

/// Every silence the relay knows, compiled, replaced whole on a change
/// (rare) and read per event (often).
#[derive(Default)]
pub(crate) struct Silences {
    list: RwLock<Arc<Vec<(Silence, Jq)>>>,
    /// Any silence not yet over: the per-event check costs nothing
    /// without one.
    any: AtomicBool,
}

impl Silences {
    /// Adds, replaces or (`None`) removes a silence.
    fn set(&self, id: &str, silence: Option<Silence>) {
        let mut list = self.list.write().unwrap_or_else(|p| p.into_inner());
        let mut next: Vec<(Silence, Jq)> =
            list.iter().filter(|(s, _)| s.id != id).cloned().collect();
        if let Some(s) = silence {
            match Jq::compile(&s.matcher) {
                Ok(jq) => next.push((s, jq)),
                Err(e) => tracing::warn!(
                    silence = %s.id,
                    "the silence's matcher does not compile ({e}); it is not honoured: expire it and add it again"
                ),
            }
        }
        let now = super::now_ms();
        next.retain(|(s, _)| s.ends > now);
        self.any.store(!next.is_empty(), Ordering::Relaxed);
        *list = Arc::new(next);
    }

    /// Forgets the silences that are over.
    fn prune(&self) {
        let now = super::now_ms();
        if self
            .list
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .all(|(s, _)| s.ends > now)
        {
            return;
        }
        let mut list = self.list.write().unwrap_or_else(|p| p.into_inner());
        let next: Vec<(Silence, Jq)> = list.iter().filter(|(s, _)| s.ends > now).cloned().collect();
        self.any.store(!next.is_empty(), Ordering::Relaxed);
        *list = Arc::new(next);
    }

    /// Whether any silence may be in force (a cheap look first).
    pub(crate) fn any(&self) -> bool {
        self.any.load(Ordering::Relaxed)
    }

    /// The silence in force on `route` that matches the event, if one
    /// does: its id and comment.
    pub(crate) fn matching(&self, route: &str, event: &jaq_json::Val) -> Option<String> {
        let list = self.list.read().unwrap_or_else(|p| p.into_inner()).clone();
        let now = super::now_ms();
        list.iter()
            .filter(|(s, _)| s.is_active(now) && s.route.as_deref().is_none_or(|r| r == route))
            .find(|(_, jq)| jq.holds(event).unwrap_or(false))
            .map(|(s, _)| {
                if s.comment.is_empty() {
                    format!("silenced by {}", s.id)
                } else {
                    format!("silenced by {} ({})", s.id, s.comment)
                }
            })
    }
}

/// Reads every silence of the state topic, then follows it on a thread of
/// its own until `stop`. Returns once the silences written before the
/// start are known (or after `catch_up`, with a warning).
pub(crate) fn watch(
    kafka: &KafkaOpts,
    topic: &str,
    silences: Arc<Silences>,
    stop: Arc<AtomicBool>,
    catch_up: Duration,
) -> Result<()> {
    let consumer: BaseConsumer<KafkaContext> = kafka
        .client()
        .set_default("client.id", "kbridge-silences")
        .set("group.id", "kbridge-silences")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .build(KafkaContext::default(), "the silence reader")?;
    let (_, end) = consumer
        .fetch_watermarks(topic, PARTITION, catch_up)
        .map_err(|e| anyhow!("cannot read the end of {topic}: {e}"))?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, PARTITION, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + catch_up;
    let mut at = 0;
    while at < end && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            at = m.offset() + 1;
            apply(&silences, &m);
        } else if let Ok(pos) = consumer.position()
            && let Some(Offset::Offset(o)) = pos.elements().first().map(|e| e.offset())
        {
            at = at.max(o);
        }
    }
    if at < end {
        tracing::warn!(
            topic,
            "the silences were not all read within {catch_up:?}; those not yet read are honoured once they are"
        );
    }
    let topic = topic.to_string();
    std::thread::Builder::new()
        .name("kbridge-silences".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match consumer.poll(Duration::from_millis(200)) {
                    Some(Ok(m)) => apply(&silences, &m),
                    Some(Err(e)) => {
                        tracing::warn!(%topic, "reading the silences: {e}");
                        std::thread::sleep(Duration::from_secs(1));
                    }
                    None => silences.prune(),
                }
            }
        })?;
    Ok(())
}

/// One state record: a silence added, changed or removed.
fn apply(silences: &Silences, m: &rdkafka::message::BorrowedMessage<'_>) {
    let Some(id) = m.key().and_then(id_of) else {
        return;
    };
    match m.payload().map(read) {
        None => silences.set(&id, None),
        Some(Ok(s)) => {
            tracing::info!(silence = %s.id, matcher = %s.matcher, starts = s.starts, ends = s.ends, "silence known");
            silences.set(&id, Some(s));
        }
        Some(Err(e)) => tracing::warn!(silence = %id, "silence record not used: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn silence(id: &str, matcher: &str, starts: i64, ends: i64) -> Silence {
        Silence {
            id: id.into(),
            matcher: matcher.into(),
            route: None,
            starts,
            ends,
            comment: "maintenance".into(),
            created_by: "ops".into(),
            created_at: 0,
        }
    }

    #[test]
    fn a_silence_matches_in_its_window_on_its_routes() {
        let now = crate::relay::storm::now_ms();
        let s = Silences::default();
        assert!(!s.any());
        s.set(
            "s1",
            Some(silence(
                "s1",
                r#".service == "pay-api""#,
                now - 1000,
                now + 60_000,
            )),
        );
        assert!(s.any());
        let pay = crate::relay::route::jq::parse(br#"{"service":"pay-api"}"#).unwrap();
        let web = crate::relay::route::jq::parse(br#"{"service":"web"}"#).unwrap();
        assert_eq!(
            s.matching("robot", &pay).as_deref(),
            Some("silenced by s1 (maintenance)")
        );
        assert_eq!(s.matching("robot", &web), None);
        let mut later = silence("s2", "true", now + 60_000, now + 120_000);
        later.route = Some("ops".into());
        s.set("s2", Some(later));
        assert_eq!(s.matching("ops", &web), None, "not yet in force");
        s.set("s1", None);
        assert_eq!(s.matching("robot", &pay), None, "expired");
    }

    #[test]
    fn records_round_trip() {
        let s = silence("s1", "true", 1, 2);
        assert_eq!(id_of(&key(&s.id)).as_deref(), Some("s1"));
        assert_eq!(read(&changelog::value(&s)), Ok(s));
        assert_eq!(id_of(br#"["alert","r","k"]"#), None);
    }
}
