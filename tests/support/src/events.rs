//! What tests put on topics: numbered JSON lines for the CLI tests, Guance
//! alert events for the relay, and the sample events of `examples/events/`.

use serde_json::Value;

use crate::repo_root;

/// JSON lines `{"n":0}` … for `range`.
pub fn numbered(range: std::ops::Range<i64>) -> Vec<String> {
    range.map(|n| format!(r#"{{"n":{n}}}"#)).collect()
}

/// A valid alert event of the guance-easyops preset; `n` makes the ids
/// unique, `fault` ties events to one alert.
pub fn alert_event(n: usize, fault: &str, status: &str) -> Value {
    serde_json::json!({
        "df_source": "monitor",
        "df_workspace_name": "test-ws",
        "date": 1_731_900_000_000u64 + n as u64 * 1000,
        "df_status": status,
        "df_event_id": format!("event-{n:04}-{fault}"),
        "df_fault_id": fault,
        "df_title": format!("alert {n}"),
        "df_message": format!("message {n}"),
        "df_dimension_tags": format!("{{\"host\":\"host-{n}\"}}"),
    })
}

/// Critical alert number `i` of an alert of its own (`fault-{i}`), for
/// tests that count deliveries.
pub fn event(i: usize) -> Value {
    alert_event(i, &format!("fault-{i}"), "critical")
}

/// A sample event of `examples/events/`, parsed.
pub fn sample(name: &str) -> Value {
    let path = repo_root().join("examples/events").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Every sample event file name, sorted.
pub fn sample_names() -> Vec<String> {
    let dir = repo_root().join("examples/events");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    names
}
