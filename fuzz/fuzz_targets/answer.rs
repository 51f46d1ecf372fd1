//! The webhook's answer: any status, body and Retry-After get a verdict,
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/relay/config/status_policy.rs"]
mod status_policy;

#[allow(dead_code)]
#[path = "../../src/relay/deliver/answer.rs"]
mod answer;

/// What the answer's classification names of the rest of the crate.
mod relay {
    pub mod config {
        pub(crate) use crate::status_policy::{StatusPolicy, Treatment};
    }
}

use answer::{classify, parse_retry_after};
use status_policy::{StatusPolicy, StatusSpec};

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let status = u16::from_be_bytes([data[0], data[1]]) % 1000;
    let split = usize::from(data[2]).min(data.len() - 3);
    let (header, body) = data[3..].split_at(split);
    let retry_after = std::str::from_utf8(header).ok();
    let _ = classify(status, body, retry_after, &StatusPolicy::default());
    if let Some(h) = retry_after {
        let _ = parse_retry_after(h);
        let _ = h.parse::<StatusSpec>();
    }
});
