//! The state topic's records: one per route and alert, the latest the one
//! that counts (the topic is compacted), a tombstone when the alert is
//! forgotten. Partition N of the state belongs to partition N of the
//! route's repartition topic, so that whoever owns one reads the other.
//!
//! Key: `["alert", <route>, <alert id>]` as JSON; value: the alert's
//! `Memory` as JSON with `"v": 1`. Both readable with `kbridge consume`.
//! A reader skips a record of a version it does not know (a newer
//! kbridge's, during a rolling upgrade), with a warning.

use serde::{Deserialize, Serialize};

use super::memory::Memory;

/// The version of the value's format this kbridge writes.
pub(crate) const VERSION: u32 = 1;

/// The record key of an alert's memory on a route.
pub(crate) fn key(route: &str, alert: &str) -> Vec<u8> {
    serde_json::to_vec(&("alert", route, alert)).unwrap_or_default()
}

/// The route and alert a record key names; `None` for any other record
/// (a kind a newer kbridge writes, or not kbridge's at all).
pub(crate) fn read_key(bytes: &[u8]) -> Option<(String, String)> {
    let (kind, route, alert): (String, String, String) = serde_json::from_slice(bytes).ok()?;
    (kind == "alert").then_some((route, alert))
}

#[derive(Serialize)]
struct Written<'a> {
    v: u32,
    #[serde(flatten)]
    memory: &'a Memory,
}

#[derive(Deserialize)]
struct Read {
    v: u32,
    #[serde(flatten)]
    memory: Memory,
}

/// An alert's memory as the record's value.
pub(crate) fn value(memory: &Memory) -> Vec<u8> {
    serde_json::to_vec(&Written { v: VERSION, memory }).unwrap_or_default()
}

/// A record's value read back: the memory, or why not.
pub(crate) fn read_value(bytes: &[u8]) -> Result<Memory, String> {
    let read: Read =
        serde_json::from_slice(bytes).map_err(|e| format!("not kbridge's storm state: {e}"))?;
    if read.v != VERSION {
        return Err(format!(
            "format version {} (this kbridge reads {VERSION}): written by another kbridge version",
            read.v
        ));
    }
    Ok(read.memory)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::storm::memory::Delivered;

    #[test]
    fn records_round_trip_and_name_their_route_and_alert() {
        let k = key("robot", "fault-1 \"x\"");
        assert_eq!(
            read_key(&k),
            Some(("robot".to_string(), "fault-1 \"x\"".to_string()))
        );
        let m = Memory {
            delivered: Some(Delivered {
                state: "firing".into(),
                at: 42,
            }),
            held: None,
        };
        let v = value(&m);
        assert_eq!(
            std::str::from_utf8(&v).unwrap(),
            r#"{"v":1,"delivered":{"state":"firing","at":42}}"#
        );
        assert_eq!(read_value(&v), Ok(m));
    }

    #[test]
    fn other_records_and_versions_are_refused() {
        assert_eq!(read_key(b"[\"group\",\"r\",\"g\"]"), None);
        assert_eq!(read_key(b"\xff"), None);
        assert!(read_value(br#"{"v":2}"#).unwrap_err().contains("version 2"));
        assert!(read_value(b"[]").is_err());
    }
}
