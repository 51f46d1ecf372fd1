//! decode → validate → map on any bytes: a decision, never a panic; a body
//! that is JSON naming the alert id.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/relay/stage.rs"]
mod stage;

#[allow(dead_code)]
#[path = "../../src/relay/route/preset/mod.rs"]
mod preset;

#[allow(dead_code)]
#[path = "../../src/relay/route/strict_json.rs"]
mod strict_json;

/// What the preset names of the rest of the crate.
mod relay {
    pub mod config {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Preset {
            GuanceEasyops,
        }
    }
    pub mod route {
        pub(crate) use crate::strict_json;
    }
    pub(crate) use super::stage;
}

use preset::{Decision, decide};
use relay::config::Preset;

fuzz_target!(|data: &[u8]| {
    if let Decision::Deliver { alert_id, body, .. } =
        decide(Preset::GuanceEasyops, Some(data), 1 << 20)
    {
        let alert: serde_json::Value = serde_json::from_slice(&body).expect("the body is JSON");
        assert_eq!(alert["alertId"].as_str(), Some(alert_id.as_str()));
    }
});
