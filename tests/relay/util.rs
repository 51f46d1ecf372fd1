//! Small helpers shared by the relay tests: polling, unique names, the
//! sample events, a shared async runtime.

use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::Value;

/// One multi-threaded runtime for the fake target and the rdkafka futures.
pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("relay-test-rt")
            .build()
            .expect("cannot build the test runtime")
    })
}

pub use crate::support::{unique, wait_until};

/// The repository root (where `examples/` and `scripts/` are).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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
