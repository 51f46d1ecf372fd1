//! Small parsers for the values people type: durations, times, start offsets
//! and `KEY=VALUE` pairs. Pure functions, so the CLI can reject bad input
//! with a precise message before any network I/O.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// Epoch milliseconds as RFC 3339 (`2026-12-05T10:03:55.458Z`); the
/// number itself when it is out of range.
pub(crate) fn show_ms(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(|_| ms.to_string(), |t| t.to_string())
}

/// Epoch milliseconds as RFC 3339 to the second (`2026-12-05T10:03:55Z`).
pub(crate) fn show_ms_to_second(ms: i64) -> String {
    show_ms(ms - ms.rem_euclid(1000))
}

/// Parses `10s`, `500ms`, `1m30s`, `2h`, or a bare number of seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            // `from_secs_f64` panics past u64::MAX seconds ("1e30").
            return Duration::try_from_secs_f64(secs)
                .map_err(|_| format!("'{s}' is too long a duration"));
        }
        return Err(format!("'{s}' is not a positive duration"));
    }
    let d: SignedDuration = s
        .parse()
        .map_err(|_| format!("'{s}' is not a duration; write it like 10s, 500ms, 1m30s or 2h"))?;
    Duration::try_from(d).map_err(|_| format!("'{s}' is negative; a duration must be positive"))
}

/// A duration as a person writes it in the config: `0s`, `10ms`, `1m30s`,
/// `7d` is `168h` (what [`parse_duration`] reads back).
pub(crate) fn show_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    let ms = d.subsec_millis();
    if d < Duration::from_secs(1) {
        return format!("{ms}ms");
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    for (n, unit) in [(h, "h"), (m, "m")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    // Milliseconds as a fraction of the seconds (`1.1s`, `1m30.25s`).
    if ms > 0 {
        let fraction = format!("{ms:03}");
        out.push_str(&format!("{s}.{}s", fraction.trim_end_matches('0')));
    } else if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// Parses `KEY=VALUE`; the value may itself contain `=`.
pub(crate) fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("'{s}' is not KEY=VALUE")),
    }
}

/// A timeout: a duration above zero.
pub(crate) fn parse_timeout(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err("the timeout must be above zero".to_string()),
        d => Ok(d),
    }
}

/// Parses a point in time into epoch milliseconds: RFC 3339
/// (`2024-06-18T10:00:00+08:00`), relative to now (`-15m`, `-2h`), `now`,
/// or epoch milliseconds.
pub(crate) fn parse_time(s: &str) -> Result<i64, String> {
    parse_time_at(s, Timestamp::now())
}

fn parse_time_at(s: &str, now: Timestamp) -> Result<i64, String> {
    let s = s.trim();
    if s == "now" {
        return Ok(now.as_millisecond());
    }
    if let Some(rel) = s.strip_prefix('-').or_else(|| s.strip_prefix('+')) {
        let d: SignedDuration = rel
            .parse()
            .map_err(|_| format!("'{s}' is not a relative time; write it like -15m or -2h"))?;
        let d = if s.starts_with('-') { -d } else { d };
        return now
            .checked_add(d)
            .map(|t| t.as_millisecond())
            .map_err(|e| format!("'{s}': {e}"));
    }
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    s.parse::<Timestamp>().map(|t| t.as_millisecond()).map_err(|_| {
        format!(
            "'{s}' is not a time; use RFC 3339 (2024-06-18T10:00:00+08:00), a relative time (-15m) or epoch milliseconds"
        )
    })
}

/// Where `consume` starts reading (`-o`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartOffset {
    Earliest,
    Latest,
    /// Only valid with a group: fail when the group has no committed offset.
    None,
    Absolute(i64),
    /// The last N messages of each partition.
    Tail(i64),
    /// The first message at or after this time (epoch ms).
    Time(i64),
}

pub(crate) fn parse_start(s: &str) -> Result<StartOffset, String> {
    match s {
        "earliest" | "beginning" => Ok(StartOffset::Earliest),
        "latest" | "end" => Ok(StartOffset::Latest),
        "none" => Ok(StartOffset::None),
        _ => {
            if let Some(t) = s.strip_prefix('@') {
                return parse_time(t).map(StartOffset::Time);
            }
            match s.parse::<i64>() {
                Ok(n) if n < 0 => Ok(StartOffset::Tail(-n)),
                Ok(n) => Ok(StartOffset::Absolute(n)),
                Err(_) => Err(format!(
                    "'{s}' is not an offset; use earliest, latest, none, N, -N or @TIME"
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-3").is_err());
        assert!(parse_timeout("0s").is_err());
        assert_eq!(parse_timeout("2s").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("1e30").unwrap_err().contains("too long"));
        for (d, text) in [
            (Duration::ZERO, "0s"),
            (Duration::from_millis(10), "10ms"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(7 * 86400), "168h"),
            (Duration::from_millis(1100), "1.1s"),
            (Duration::from_millis(90_250), "1m30.25s"),
            (Duration::from_millis(3_600_001), "1h0.001s"),
        ] {
            assert_eq!(show_duration(d), text);
            assert_eq!(parse_duration(text).unwrap(), d, "{text}");
        }
    }

    #[test]
    fn key_values() {
        assert_eq!(
            parse_key_value("sasl.password=a=b").unwrap(),
            ("sasl.password".into(), "a=b".into())
        );
        assert!(parse_key_value("novalue").is_err());
        assert!(parse_key_value("=v").is_err());
    }

    #[test]
    fn times() {
        let now: Timestamp = "2024-06-18T02:00:00Z".parse().unwrap();
        assert_eq!(
            parse_time_at("2024-06-18T10:00:00+08:00", now).unwrap(),
            now.as_millisecond()
        );
        assert_eq!(
            parse_time_at("-15m", now).unwrap(),
            now.as_millisecond() - 15 * 60 * 1000
        );
        assert_eq!(parse_time_at("1718676000000", now).unwrap(), 1718676000000);
        assert!(parse_time_at("yesterday", now).is_err());
    }

    #[test]
    fn start_offsets() {
        assert_eq!(parse_start("earliest").unwrap(), StartOffset::Earliest);
        assert_eq!(parse_start("latest").unwrap(), StartOffset::Latest);
        assert_eq!(parse_start("none").unwrap(), StartOffset::None);
        assert_eq!(parse_start("42").unwrap(), StartOffset::Absolute(42));
        assert_eq!(parse_start("-3").unwrap(), StartOffset::Tail(3));
        assert!(matches!(parse_start("@-1h").unwrap(), StartOffset::Time(_)));
        assert!(parse_start("middle").is_err());
    }
}
