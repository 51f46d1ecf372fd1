//! The state topic's records: the latest per key is the one that counts
//! (the topic is compacted), a tombstone forgets. Partition N of the state
//! belongs to partition N of the route's repartition topic, so that
//! whoever owns one reads the other.
//!
//! Keys are JSON arrays: `["alert", <route>, <alert id>]` (an alert's
//! `Memory`), `["group", <route>, <group>]` (a group's `Meta`) and
//! `["member", <route>, <group>, <alert id>]` (one alert of a group);
//! values are JSON with `"v": 1`. Both readable with `kbridge consume`.
//! A reader skips a record of a version it does not know (a newer
//! kbridge's, during a rolling upgrade), with a warning.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The version of the value's format this kbridge writes.
pub(crate) const VERSION: u32 = 1;

/// What a state record is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    Alert {
        route: String,
        alert: String,
    },
    Group {
        route: String,
        group: String,
    },
    Member {
        route: String,
        group: String,
        alert: String,
    },
}

impl Key {
    pub(crate) fn encode(&self) -> Vec<u8> {
        match self {
            Key::Alert { route, alert } => serde_json::to_vec(&("alert", route, alert)),
            Key::Group { route, group } => serde_json::to_vec(&("group", route, group)),
            Key::Member {
                route,
                group,
                alert,
            } => serde_json::to_vec(&("member", route, group, alert)),
        }
        .unwrap_or_default()
    }

    /// The key a record names; `None` for any other record (a kind a
    /// newer kbridge writes, or not kbridge's at all).
    pub(crate) fn decode(bytes: &[u8]) -> Option<Key> {
        let parts: Vec<String> = serde_json::from_slice(bytes).ok()?;
        let mut parts = parts.into_iter();
        let kind = parts.next()?;
        let route = parts.next()?;
        let key = match (kind.as_str(), parts.next(), parts.next()) {
            ("alert", Some(alert), None) => Key::Alert { route, alert },
            ("group", Some(group), None) => Key::Group { route, group },
            ("member", Some(group), Some(alert)) => Key::Member {
                route,
                group,
                alert,
            },
            _ => return None,
        };
        parts.next().is_none().then_some(key)
    }

    pub(crate) fn route(&self) -> &str {
        match self {
            Key::Alert { route, .. } | Key::Group { route, .. } | Key::Member { route, .. } => {
                route
            }
        }
    }
}

#[derive(Serialize)]
struct Written<'a, T> {
    v: u32,
    #[serde(flatten)]
    value: &'a T,
}

#[derive(Deserialize)]
struct Read<T> {
    v: u32,
    #[serde(flatten)]
    value: T,
}

/// A record's value.
pub(crate) fn value<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(&Written { v: VERSION, value }).unwrap_or_default()
}

/// A record's value read back, or why not.
pub(crate) fn read_value<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let read: Read<T> =
        serde_json::from_slice(bytes).map_err(|e| format!("not kbridge's storm state: {e}"))?;
    if read.v != VERSION {
        return Err(format!(
            "format version {} (this kbridge reads {VERSION}): written by another kbridge version",
            read.v
        ));
    }
    Ok(read.value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::storm::memory::{Delivered, Memory};

    #[test]
    fn records_round_trip_and_name_their_route_and_alert() {
        let k = Key::Alert {
            route: "robot".into(),
            alert: "fault-1 \"x\"".into(),
        };
        assert_eq!(Key::decode(&k.encode()), Some(k));
        let m = Key::Member {
            route: "r".into(),
            group: "pay-api".into(),
            alert: "f".into(),
        };
        assert_eq!(Key::decode(&m.encode()), Some(m));
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
        assert_eq!(read_value::<Memory>(&v), Ok(m));
    }

    #[test]
    fn other_records_and_versions_are_refused() {
        assert_eq!(Key::decode(b"[\"silence\",\"r\",\"g\"]"), None);
        assert_eq!(Key::decode(b"[\"alert\",\"r\",\"g\",\"x\"]"), None);
        assert_eq!(Key::decode(b"\xff"), None);
        assert!(
            read_value::<Memory>(br#"{"v":2}"#)
                .unwrap_err()
                .contains("version 2")
        );
        assert!(read_value::<Memory>(b"[]").is_err());
    }
}
