//! Which Kafka the tests talk to: `KBRIDGE_TEST_BROKERS` when set, else the
//! single broker that `scripts/test-kafka.sh start` runs on 127.0.0.1:19092
//! (started at most once per test process; the script is idempotent and
//! locked, so parallel test binaries share one broker); and names no other
//! test uses, since tests share the broker and never clean it up.

use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The test broker's bootstrap address, starting it once if needed.
pub fn brokers() -> String {
    static BROKERS: OnceLock<String> = OnceLock::new();
    BROKERS
        .get_or_init(|| {
            if let Ok(b) = std::env::var("KBRIDGE_TEST_BROKERS")
                && !b.trim().is_empty()
            {
                return b;
            }
            test_kafka(&["start"]);
            "127.0.0.1:19092".to_string()
        })
        .clone()
}

/// The 3-node test cluster's bootstrap addresses (`scripts/test-kafka.sh
/// start --cluster`: brokers on 19192-19194), starting it, or the nodes of
/// it that are down, once per test process; `KBRIDGE_TEST_CLUSTER_BROKERS`
/// when set.
pub fn cluster_brokers() -> String {
    static BROKERS: OnceLock<String> = OnceLock::new();
    BROKERS
        .get_or_init(|| {
            if let Ok(b) = std::env::var("KBRIDGE_TEST_CLUSTER_BROKERS")
                && !b.trim().is_empty()
            {
                return b;
            }
            test_kafka(&["start", "--cluster"]);
            "127.0.0.1:19192,127.0.0.1:19193,127.0.0.1:19194".to_string()
        })
        .clone()
}

/// Runs `scripts/test-kafka.sh` with `args`; panics with its output if it
/// fails.
pub fn test_kafka(args: &[&str]) {
    let script = crate::repo_root().join("scripts/test-kafka.sh");
    let out = Command::new(&script)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{}`: {e}", script.display()));
    assert!(
        out.status.success(),
        "`{} {}` failed ({}):\n{}{}",
        script.display(),
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A name no other test (or earlier run) uses: prefix, pid, counter, nanos.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock before 1970")
        .subsec_nanos();
    format!("{prefix}-{}-{n}-{nanos}", std::process::id())
}
