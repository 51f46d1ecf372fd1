//! Deserializers the config's keys share: durations and topic lists.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::time_spec::parse_duration;

/// `"10s"`, `"500ms"`, `"2m"`, or whole seconds.
pub(super) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Secs(u64),
    }
    match Raw::deserialize(d).map_err(|_| {
        serde::de::Error::custom(
            "expected a duration: a string like \"10s\", \"500ms\", \"2m\", or whole seconds",
        )
    })? {
        Raw::Text(s) => parse_duration(&s).map_err(serde::de::Error::custom),
        Raw::Secs(n) => Ok(Duration::from_secs(n)),
    }
}

/// `duration`, for a key that may be left out.
pub(super) fn duration_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// `one_or_many`, for a key that may be left out.
pub(super) fn one_or_many_opt<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<String>>, D::Error> {
    one_or_many(d).map(Some)
}

/// `topics = "a"`, `topics = ["a", "b"]` or `KBRIDGE_TOPICS=a,b`.
pub(super) fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        Raw::Many(v) => v,
    })
}
