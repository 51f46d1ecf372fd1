//! What this build of kbridge can do, for `kbridge --version`.
//!
//! An operator who connects kbridge to a secured cluster needs to know, before
//! reading any log, whether the binary on the host speaks the mechanism the
//! cluster asks for: librdkafka is compiled into kbridge, and its features
//! (TLS, the SASL mechanisms, the compression codecs) are chosen at build
//! time. `kcat -V` answers with librdkafka's version and its
//! `builtin.features`; kbridge does the same, and says what those names mean.

use std::ffi::{CStr, c_char};
use std::sync::LazyLock;

use rdkafka::bindings as rdsys;

/// `kbridge --version`: the version line, then the libraries and features.
/// clap takes it whenever it builds the command, so it is computed once per
/// process, on every run: a configuration object read and freed, no client
/// (`kbridge -V` took 4.3 ms with it, 4.4 ms without).
pub(crate) fn long_version() -> &'static str {
    static TEXT: LazyLock<String> = LazyLock::new(|| {
        let (_, librdkafka) = rdkafka::util::get_rdkafka_version();
        render(
            &librdkafka,
            &builtin_features(),
            openssl::version::version(),
        )
    });
    TEXT.as_str()
}

/// librdkafka's `builtin.features` property: the features compiled in,
/// comma-separated (`gzip,snappy,ssl,sasl,…`).
fn builtin_features() -> String {
    const NAME: &CStr = c"builtin.features";
    // SAFETY: a configuration object is created, read and destroyed here and
    // never shared. `rd_kafka_conf_get` is called once with no buffer to learn
    // the size (NUL included), then with a buffer of that size.
    unsafe {
        let conf = rdsys::rd_kafka_conf_new();
        if conf.is_null() {
            return String::new();
        }
        let mut size: usize = 0;
        let mut value = String::new();
        if rdsys::rd_kafka_conf_get(conf, NAME.as_ptr(), std::ptr::null_mut(), &mut size)
            == rdsys::rd_kafka_conf_res_t::RD_KAFKA_CONF_OK
            && size > 0
        {
            let mut buf = vec![0u8; size];
            if rdsys::rd_kafka_conf_get(
                conf,
                NAME.as_ptr(),
                buf.as_mut_ptr().cast::<c_char>(),
                &mut size,
            ) == rdsys::rd_kafka_conf_res_t::RD_KAFKA_CONF_OK
                && let Ok(text) = CStr::from_bytes_until_nul(&buf)
            {
                value = text.to_string_lossy().into_owned();
            }
        }
        rdsys::rd_kafka_conf_destroy(conf);
        value
    }
}

/// The memory allocator: jemalloc in what ships (the `jemalloc` feature),
/// the system's in the everyday build.
const ALLOCATOR: &str = if cfg!(all(feature = "jemalloc", not(target_env = "msvc"))) {
    "jemalloc"
} else {
    "system (build with --features jemalloc for what ships)"
};

/// The text of `--version` (clap prints "kbridge " before it).
fn render(librdkafka: &str, features: &str, openssl: &str) -> String {
    let has = |name: &str| features.split(',').any(|f| f == name);
    let mut security = Vec::new();
    if has("ssl") {
        security.push("TLS (mTLS included)");
    }
    if has("sasl_plain") {
        security.push("SASL/PLAIN");
    }
    if has("sasl_scram") {
        security.push("SASL/SCRAM-SHA-256, SCRAM-SHA-512");
    }
    if has("sasl_gssapi") {
        security.push("SASL/GSSAPI (Kerberos)");
    }
    if has("sasl_oauthbearer") {
        security.push(if has("oidc") {
            "SASL/OAUTHBEARER (OIDC token fetch included)"
        } else {
            "SASL/OAUTHBEARER (no OIDC token fetch: built without libcurl)"
        });
    }
    let compression: Vec<&str> = ["gzip", "snappy", "lz4", "zstd"]
        .into_iter()
        .filter(|codec| has(codec))
        .collect();
    let none = |list: &[&str]| {
        if list.is_empty() {
            "none".to_string()
        } else {
            list.join(", ")
        }
    };
    format!(
        "{version} ({arch}-{os})\n\
         librdkafka {librdkafka} (builtin.features={features})\n\
         Kafka security: {security}\n\
         Kafka compression: {compression}\n\
         webhook: HTTP/1.1, TLS by {openssl}\n\
         allocator: {allocator}",
        version = env!("CARGO_PKG_VERSION"),
        allocator = ALLOCATOR,
        arch = std::env::consts::ARCH,
        os = std::env::consts::OS,
        security = none(&security),
        compression = none(&compression),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_build_has_what_the_readme_promises() {
        let features = builtin_features();
        for feature in ["ssl", "sasl_plain", "sasl_scram", "zstd", "gzip"] {
            assert!(
                features.split(',').any(|f| f == feature),
                "{feature} missing from {features}"
            );
        }
    }

    #[test]
    fn features_are_named_for_an_operator() {
        let text = render(
            "2.12.1",
            "gzip,snappy,ssl,sasl,regex,lz4,sasl_plain,sasl_scram,plugins,zstd,sasl_oauthbearer",
            "OpenSSL 3.0.17 1 Jul 2025",
        );
        assert!(text.contains("librdkafka 2.12.1 (builtin.features=gzip,snappy,"));
        assert!(text.contains(
            "Kafka security: TLS (mTLS included), SASL/PLAIN, SASL/SCRAM-SHA-256, SCRAM-SHA-512, \
             SASL/OAUTHBEARER (no OIDC token fetch: built without libcurl)\n"
        ));
        assert!(text.contains("Kafka compression: gzip, snappy, lz4, zstd\n"));
        assert!(text.contains("TLS by OpenSSL 3.0.17"));
    }

    #[test]
    fn a_build_without_tls_says_so() {
        let text = render("2.12.1", "gzip", "OpenSSL 3");
        assert!(text.contains("Kafka security: none\n"), "{text}");
        assert!(text.contains("Kafka compression: gzip\n"), "{text}");
    }
}
