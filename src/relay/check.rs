//! `kbridge check`: load and validate the relay's configuration as `run`
//! does — layers, `${VAR}`s, files it names (header secrets, TLS
//! certificates), the webhook client — and, with sample events, say per
//! event and route what the relay would do: skip it (and why), find it
//! invalid (the stage and the reason), or deliver the exact body shown.
//! This is how an operator tries a mapping before it meets real alerts.
//!
//! A configuration without routes is one route, named `default`: its
//! preset and its webhook. Every route is shown for every event, or with
//! `--topic`, the routes that take that topic.

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::error::UsageError;
use crate::relay::config::{Overrides, RelayConfig};
use crate::relay::live_route::LiveRoute;
use crate::relay::route::{Event, RouteDecision};
use crate::relay::storm::replay::{Replay, event_time};
use crate::relay::telemetry::Totals;

pub(crate) fn run(
    config: Option<&Path>,
    events: Option<&Path>,
    topic: Option<&str>,
    json: bool,
) -> Result<ExitCode> {
    let invalid = |e: anyhow::Error| UsageError(format!("{e:#}"));
    let cfg = RelayConfig::load(config, &Overrides::default()).map_err(invalid)?;
    // What `run` builds before it connects: the routes' jq programs, and
    // their webhook clients, which read the header secrets and TLS files
    // named in the config.
    crate::relay::route::jq_budget::configure(cfg.jq.budget());
    let routes = LiveRoute::build_all(&cfg, &Arc::new(Totals::default())).map_err(invalid)?;
    for notice in &cfg.notices {
        eprintln!("kbridge: warning: {notice}");
    }
    let Some(events) = events else {
        eprintln!("configuration OK: topics {}", cfg.topics.join(", "));
        for r in &routes {
            eprintln!("  route {}", r.describe());
        }
        eprintln!("  {}", cfg.dead_letter_policy());
        return Ok(ExitCode::SUCCESS);
    };
    let input: Box<dyn BufRead> = if events == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(events).map_err(|e| {
            UsageError(format!(
                "cannot read the events file {}: {e}",
                events.display()
            ))
        })?;
        Box::new(std::io::BufReader::new(file))
    };
    let mut out = std::io::stdout().lock();
    let shown: Vec<&Arc<LiveRoute>> = routes
        .iter()
        .filter(|r| topic.is_none_or(|t| r.route.takes(t)))
        .collect();
    // Storm routes replay the events in event time (`storm::replay`).
    let mut replays: Vec<Replay> = shown.iter().map(|_| Replay::default()).collect();
    let mut now = 0;
    let mut emit = |v: &Value| -> Result<()> {
        if json {
            writeln!(out, "{v}")?;
        } else {
            writeln!(out, "{}", as_text(v))?;
        }
        Ok(())
    };
    for (i, line) in input.split(b'\n').enumerate() {
        let line = line.with_context(|| format!("reading line {} of the events", i + 1))?;
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let event = Event::of_bytes(line, cfg.max_message_bytes);
        if let Some(t) = serde_json::from_slice::<Value>(line)
            .ok()
            .as_ref()
            .and_then(event_time)
        {
            now = now.max(t);
        }
        for (r, replay) in shown.iter().zip(replays.iter_mut()) {
            for due in replay.advance(r, now) {
                emit(&due)?;
            }
            let decision = match &r.storm {
                Some(s) if s.grouping.is_some() => r.route.grouped(&event),
                _ => r.route.decide(&event),
            };
            match &decision {
                RouteDecision::Deliver { key, bodies, .. } if r.storm.is_some() => {
                    emit(&replay.event(r, i + 1, &event, key.as_deref(), bodies, now))?;
                }
                _ => emit(&verdict(i + 1, r.name(), &decision))?,
            }
        }
    }
    // What is still held or grouped goes when it is due (repeats of a
    // group still firing are not shown: they would go on for ever).
    for (r, replay) in shown.iter().zip(replays.iter_mut()) {
        for due in replay.advance(r, now.saturating_add(Replay::horizon(r))) {
            emit(&due)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One event's fate on one route, as the `--json` contract says: `line`
/// (1-based), `route`, `outcome` (`deliver`, `skip`, `invalid`) and
/// `bodies` or `reason` (with `stage` for an invalid event).
pub(crate) fn verdict(line: usize, route: &str, decision: &RouteDecision) -> Value {
    match decision {
        RouteDecision::Skip(reason) => {
            json!({"line": line, "route": route, "outcome": "skip", "reason": reason})
        }
        RouteDecision::Invalid { stage, reason } => json!({
            "line": line, "route": route, "outcome": "invalid",
            "stage": stage.as_str(), "reason": reason,
        }),
        RouteDecision::Deliver {
            key,
            bodies,
            warning,
        } => {
            let bodies: Vec<Value> = bodies
                .iter()
                .map(|b| serde_json::from_slice(b).unwrap_or(Value::Null))
                .collect();
            let mut v =
                json!({"line": line, "route": route, "outcome": "deliver", "bodies": bodies});
            if let Some(k) = key {
                v["key"] = Value::from(k.as_str());
            }
            if let Some(w) = warning {
                v["warning"] = Value::from(w.as_str());
            }
            v
        }
    }
}

fn as_text(v: &Value) -> String {
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    let head = match v["line"].as_u64() {
        Some(line) => format!("line {line} · {} · {}", s("route"), s("outcome")),
        None => format!("{} · {} · {}", s("at"), s("route"), s("outcome")),
    };
    match v["outcome"].as_str() {
        Some("held") => format!(
            "{head} until {} (sent then unless the alert fires again)",
            s("until")
        ),
        Some("grouped") => format!(
            "{head} into '{}' (its digest is due at {})",
            s("group"),
            s("due")
        ),
        Some("absorbed") if v["reason"].is_string() => {
            format!("{head} ({}): {}", s("why"), s("reason"))
        }
        Some("absorbed") => format!(
            "{head} ({}): repeats its state in group '{}'",
            s("why"),
            s("group")
        ),
        Some("deliver" | "digest" | "released") => {
            let what = match v["outcome"].as_str() {
                Some("digest") => format!(" of group '{}' (lines {})", s("group"), v["lines"]),
                Some("released") => format!(" at {}", s("at")),
                _ => String::new(),
            };
            let bodies: Vec<String> = v["bodies"]
                .as_array()
                .map(|b| {
                    b.iter()
                        .map(|b| serde_json::to_string_pretty(b).unwrap_or_default())
                        .collect()
                })
                .unwrap_or_default();
            let warning = v["warning"]
                .as_str()
                .map(|w| format!(" (warning: {w})"))
                .unwrap_or_default();
            format!("{head}{what}{warning}\n{}", bodies.join("\n"))
        }
        Some("invalid") => format!(
            "{head} at {}: {}",
            v["stage"].as_str().unwrap_or_default(),
            v["reason"].as_str().unwrap_or_default()
        ),
        _ => format!("{head}: {}", v["reason"].as_str().unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::stage::Stage;

    #[test]
    fn verdicts_follow_the_json_contract() {
        let d = RouteDecision::Deliver {
            key: Some("f".into()),
            bodies: vec![bytes::Bytes::from_static(br#"{"alertId":"f"}"#)],
            warning: None,
        };
        assert_eq!(
            verdict(3, "default", &d),
            json!({"line": 3, "route": "default", "outcome": "deliver", "bodies": [{"alertId": "f"}], "key": "f"})
        );
        let r = RouteDecision::Invalid {
            stage: Stage::Validate,
            reason: "df_title: missing".into(),
        };
        let v = verdict(1, "default", &r);
        assert_eq!(v["outcome"], "invalid");
        assert_eq!(v["stage"], "validate");
        assert_eq!(
            as_text(&v),
            "line 1 · default · invalid at validate: df_title: missing"
        );
        let s = verdict(
            2,
            "default",
            &RouteDecision::Skip("df_source is 'x'".into()),
        );
        assert_eq!(as_text(&s), "line 2 · default · skip: df_source is 'x'");
    }
}
