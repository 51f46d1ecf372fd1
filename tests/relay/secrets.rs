//! No secret leaks: the relay runs at full verbosity (every log target at
//! trace, librdkafka's `debug=all`) over SASL_SSL, with a webhook token in
//! a header, another in the URL's query and a basic-auth password from a
//! file, through a refused attempt (401), a delivery and a dead letter —
//! and none of them appears
//! in its output, its metrics or the dead letter. And `/metrics` on a bare
//! port listens on loopback only.

use std::time::Duration;

use support::broker::{SCRAM_PASSWORD, SCRAM_USER, secured, unique};
use support::events::alert_event;
use support::http_get::{free_port, get};
use support::http_target::{Script, Target};
use support::kafka::new_topic;
use support::records::{Rec, produce_records, read_all};
use support::relay_cmd::RelayCmd;
use support::wait::wait_until;

const HEADER_TOKEN: &str = "hdr-tok-8c1f2e3d4b5a6978";
const URL_TOKEN: &str = "urltok0123456789abcdef";
const BASIC_PASSWORD: &str = "basic-pw-5a5a5a5a";

#[test]
fn no_secret_appears_in_logs_metrics_or_dead_letters() {
    let s = secured();
    let topic = new_topic("secrets", 1);
    let dlq = new_topic("secrets-dlq", 1);
    // The first answer is a 401 (a failure path: the target refuses the
    // credentials), then the target takes the alert.
    let target = Target::start(Script {
        fail_first: 1,
        fail_status: Some(401),
        ..Default::default()
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, format!("{BASIC_PASSWORD}\n")).expect("write");
    let config = format!(
        "[kafka]\n\"security.protocol\" = \"SASL_SSL\"\n\"sasl.mechanisms\" = \"SCRAM-SHA-512\"\n\"sasl.username\" = \"{SCRAM_USER}\"\n\"sasl.password\" = \"${{KBRIDGE_TEST_KAFKA_PASSWORD}}\"\n\"ssl.ca.location\" = \"{}\"\n\"debug\" = \"all\"\n[webhook.headers]\nX-Api-Token = \"${{KBRIDGE_TEST_TOKEN}}\"\n[webhook.basic_auth]\nuser = \"ops\"\npassword = {{ file = \"{}\" }}\n",
        s.cert("ca.pem"),
        password_file.display()
    );
    produce_records(
        &topic,
        &[
            Rec::event(&alert_event(0, "fault-0", "critical")),
            Rec::value("not json"),
        ],
    );
    let port = free_port();
    let url = format!("{}?access_token={URL_TOKEN}", target.url());
    let mut relay = RelayCmd::new(&topic, &unique("secrets-g"), &url)
        .brokers(&s.sasl_ssl)
        .dead_letters(&dlq)
        .config(&config)
        .env("KBRIDGE_TEST_KAFKA_PASSWORD", SCRAM_PASSWORD)
        .env("KBRIDGE_TEST_TOKEN", HEADER_TOKEN)
        .env("KBRIDGE_LOG", "trace")
        .start_with(&["--metrics-addr", &format!("127.0.0.1:{port}")]);
    assert!(
        wait_until(Duration::from_secs(30), || target.distinct() == 1),
        "{}",
        relay.stderr()
    );
    let sent = &target.delivered()[0];
    assert_eq!(
        sent.headers["x-api-token"], HEADER_TOKEN,
        "the target gets it"
    );
    let dead = read_all(&dlq, 1, Duration::from_secs(30));
    let metrics = get(port, "/metrics").expect("metrics answer");
    relay.stop();

    let secrets = [SCRAM_PASSWORD, HEADER_TOKEN, URL_TOKEN, BASIC_PASSWORD];
    let log = relay.stderr();
    assert!(
        log.contains("access_token=***"),
        "the URL is shown redacted"
    );
    let dead_letter_headers: String = dead[0]
        .headers
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}\n",
                String::from_utf8_lossy(v.as_deref().unwrap_or_default())
            )
        })
        .collect();
    for secret in secrets {
        for (place, text) in [
            ("the log", &log),
            ("the metrics", &metrics),
            ("the dead letter's headers", &dead_letter_headers),
        ] {
            assert!(
                !text.contains(secret),
                "{secret} appears in {place}:\n{}",
                text.lines()
                    .filter(|l| l.contains(secret))
                    .take(5)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
}

/// The local addresses of the TCP sockets listening on `port`, from the
/// kernel's tables (`/proc/net/tcp`, `tcp6`): IPv4 as dotted quads, IPv6
/// as the kernel's hex.
fn listening_on(port: u16) -> Vec<String> {
    let mut found = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (cols.get(1), cols.get(3)) else {
                continue;
            };
            let Some((addr, p)) = local.split_once(':') else {
                continue;
            };
            if *state != "0A" || u16::from_str_radix(p, 16) != Ok(port) {
                continue;
            }
            found.push(match u32::from_str_radix(addr, 16) {
                Ok(v) if addr.len() == 8 => std::net::Ipv4Addr::from(v.swap_bytes()).to_string(),
                _ => addr.to_string(),
            });
        }
    }
    found
}

/// `/metrics` given as a bare port listens on 127.0.0.1 only: metrics name
/// topics, groups and routes, and are nobody else's business unless an
/// interface is named.
#[test]
fn metrics_on_a_bare_port_listen_on_loopback_only() {
    let topic = new_topic("metrics-bind", 1);
    let target = Target::start(Script::default());
    let port = free_port();
    let mut relay = RelayCmd::new(&topic, &unique("metrics-bind-g"), &target.url())
        .start_with(&["--metrics-addr", &port.to_string()]);
    assert!(
        wait_until(Duration::from_secs(20), || get(port, "/healthz").is_some()),
        "{}",
        relay.stderr()
    );
    assert_eq!(listening_on(port), ["127.0.0.1"], "{}", relay.stderr());
    relay.stop();
}
