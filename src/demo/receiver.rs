//! A built-in stand-in for the ops platform's alert intake, answering as the
//! real one does: `{"code":0}` on success, HTTP 400 with
//! `not match any cmdb instance` for a host the CMDB does not know, and —
//! to show retries — one transient 503. Beside it, a stand-in for a Feishu
//! custom bot, answering `{"code":0,"msg":"success"}`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};

/// Behaviour of the receiver.
pub(crate) struct Rules {
    /// `alertDims.host` values the CMDB does not know.
    pub unknown_hosts: Vec<String>,
    /// Alert ids whose first request gets a 503.
    pub flaky_alerts: Vec<String>,
}

#[derive(Default)]
struct Seen {
    failed_once: HashSet<String>,
}

struct Receiver {
    rules: Rules,
    seen: Mutex<Seen>,
}

/// Where the receiver listens.
pub(crate) struct Urls {
    /// The ops platform's alert intake.
    pub ops: String,
    /// The chat robot's hook.
    pub robot: String,
}

/// Serves on an ephemeral port of 127.0.0.1; returns the webhook URLs.
pub(crate) async fn start(rules: Rules) -> Result<Urls> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .context("cannot open a port for the demo receiver")?;
    let addr = listener.local_addr()?;
    let state = Arc::new(Receiver {
        rules,
        seen: Mutex::new(Seen::default()),
    });
    let app = axum::Router::new()
        .route("/api/v1/alerts", post(intake))
        .route("/open-apis/bot/v2/hook/demo", post(robot))
        .with_state(state);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("demo receiver stopped: {e}");
        }
    });
    Ok(Urls {
        ops: format!("http://{addr}/api/v1/alerts"),
        robot: format!("http://{addr}/open-apis/bot/v2/hook/demo"),
    })
}

/// The chat robot takes any message card.
async fn robot(Json(_message): Json<Value>) -> Json<Value> {
    Json(json!({"code": 0, "msg": "success"}))
}

async fn intake(
    State(r): State<Arc<Receiver>>,
    headers: HeaderMap,
    Json(alert): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let id = alert["alertId"].as_str().unwrap_or_default().to_string();
    let host = alert["alertDims"]["host"].as_str().unwrap_or_default();
    if r.rules.unknown_hosts.iter().any(|h| h == host) {
        return (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"code": 400, "error": format!("alert dims {{host: {host}}} not match any cmdb instance")}),
            ),
        );
    }
    if r.rules.flaky_alerts.contains(&id)
        && let Ok(mut seen) = r.seen.lock()
        && seen.failed_once.insert(id)
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"code": 503, "error": "intake busy, try again"})),
        );
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    (
        StatusCode::OK,
        Json(json!({"code": 0, "data": {"accepted": key}})),
    )
}
