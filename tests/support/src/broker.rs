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

/// The test broker's secured listeners (`scripts/test-kafka.sh`, single
/// mode): SASL_SSL with a SCRAM-SHA-512 and a PLAIN user, and SSL with
/// mutual TLS, certificates from `scripts/test-certs.sh`.
pub struct Secured {
    pub sasl_ssl: String,
    pub ssl: String,
    /// The directory of `ca.pem`, `client.pem`, `client.key`, `rogue-*`.
    pub certs: std::path::PathBuf,
}

pub const SCRAM_USER: &str = "kbridge";
pub const SCRAM_PASSWORD: &str = "kbridge-scram-secret";
pub const PLAIN_USER: &str = "kbridge-plain";
pub const PLAIN_PASSWORD: &str = "kbridge-plain-secret";

impl Secured {
    pub fn cert(&self, name: &str) -> String {
        self.certs.join(name).display().to_string()
    }

    /// `-X` settings for SASL_SSL with this mechanism, user and password,
    /// trusting the test CA.
    pub fn sasl(&self, mechanism: &str, user: &str, password: &str) -> Vec<String> {
        vec![
            "security.protocol=SASL_SSL".into(),
            format!("sasl.mechanisms={mechanism}"),
            format!("sasl.username={user}"),
            format!("sasl.password={password}"),
            format!("ssl.ca.location={}", self.cert("ca.pem")),
        ]
    }

    /// `-X` settings for SSL with the test client certificate.
    pub fn mtls(&self) -> Vec<String> {
        vec![
            "security.protocol=SSL".into(),
            format!("ssl.ca.location={}", self.cert("ca.pem")),
            format!("ssl.certificate.location={}", self.cert("client.pem")),
            format!("ssl.key.location={}", self.cert("client.key")),
        ]
    }
}

/// The secured listeners, starting the test broker once if needed;
/// `KBRIDGE_TEST_SASL_SSL_BROKERS`, `KBRIDGE_TEST_SSL_BROKERS` and
/// `KBRIDGE_TEST_CERTS` when set (`scripts/test-kafka.sh env` prints them).
pub fn secured() -> &'static Secured {
    static SECURED: OnceLock<Secured> = OnceLock::new();
    SECURED.get_or_init(|| {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        if var("KBRIDGE_TEST_BROKERS").is_none() {
            brokers();
        }
        let home = var("KBRIDGE_KAFKA_HOME")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default())
                    .join(".cache/kbridge-kafka")
            });
        Secured {
            sasl_ssl: var("KBRIDGE_TEST_SASL_SSL_BROKERS")
                .unwrap_or_else(|| "127.0.0.1:19094".into()),
            ssl: var("KBRIDGE_TEST_SSL_BROKERS").unwrap_or_else(|| "127.0.0.1:19095".into()),
            certs: var("KBRIDGE_TEST_CERTS")
                .map(Into::into)
                .unwrap_or_else(|| home.join("certs")),
        }
    })
}
