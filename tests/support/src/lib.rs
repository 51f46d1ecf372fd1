//! Shared support for kbridge's integration tests: one library that every
//! test binary (`cli`, `relay`, `faults`, `failover`, `interop`) links as
//! `support`, so no helper exists twice and none is dead code in a binary
//! that leaves it unused.
//!
//! Every test runs the real `kbridge` binary (`kbridge`) against a real
//! Kafka broker (`broker`). Tests isolate themselves by using `unique`
//! topic and group names, never by cleaning up the broker.
//!
//! Every child process runs under a deadline (`child`), so a hanging
//! command fails its test with its output instead of hanging the whole run,
//! and every kbridge output is checked for panic traces.

use std::path::{Path, PathBuf};

pub mod broker;
pub mod child;
pub mod egress_proxy;
pub mod events;
pub mod http_get;
pub mod http_target;
pub mod https_target;
pub mod kafka;
pub mod kbridge;
pub mod output;
pub mod records;
pub mod relay_cmd;
pub mod relay_process;
pub mod reports;
pub mod runtime;
pub mod small_target;
pub mod stream;
pub mod table;
pub mod time;
pub mod tools;
pub mod wait;

/// The repository root (where `examples/` and `scripts/` are).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .expect("tests/support lies two levels below the repository root")
        .to_path_buf()
}
