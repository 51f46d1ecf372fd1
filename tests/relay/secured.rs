//! `kbridge run` against the test broker's secured listeners, with the
//! settings in `[kafka]` of its config file and the password from the
//! environment: it relays end to end over SASL_SSL (SCRAM-SHA-512 and PLAIN)
//! and over mutual TLS, and a wrong password stops it at once with a line
//! that names the user, not the password.

use std::time::{Duration, Instant};

use support::broker::{PLAIN_PASSWORD, PLAIN_USER, SCRAM_PASSWORD, SCRAM_USER, secured, unique};
use support::events::event;
use support::http_target::{Script, Target};
use support::kafka::{new_topic, wait_fully_committed};
use support::records::{Rec, produce_records};
use support::relay_cmd::RelayCmd;
use support::wait::wait_until;

/// The `[kafka]` block for SASL_SSL with this mechanism and user, the
/// password from `$KBRIDGE_TEST_KAFKA_PASSWORD`.
fn sasl_block(mechanism: &str, user: &str) -> String {
    format!(
        "[kafka]\n\"security.protocol\" = \"SASL_SSL\"\n\"sasl.mechanisms\" = \"{mechanism}\"\n\"sasl.username\" = \"{user}\"\n\"sasl.password\" = \"${{KBRIDGE_TEST_KAFKA_PASSWORD}}\"\n\"ssl.ca.location\" = \"{}\"\n",
        secured().cert("ca.pem")
    )
}

fn kafka_block() -> String {
    sasl_block("SCRAM-SHA-512", SCRAM_USER)
}

/// The `[kafka]` block for SSL with the test client certificate (mTLS).
fn mtls_block() -> String {
    let s = secured();
    format!(
        "[kafka]\n\"security.protocol\" = \"SSL\"\n\"ssl.ca.location\" = \"{}\"\n\"ssl.certificate.location\" = \"{}\"\n\"ssl.key.location\" = \"{}\"\n",
        s.cert("ca.pem"),
        s.cert("client.pem"),
        s.cert("client.key")
    )
}

/// Six alerts relayed and committed through `brokers` with `kafka` as the
/// config's `[kafka]` block; `password` (if any) never shows in the log.
fn relays_end_to_end(name: &str, brokers: &str, kafka: &str, password: Option<&str>) {
    let topic = new_topic(name, 2);
    let group = unique(&format!("{name}-g"));
    let target = Target::start(Script::default());
    let recs: Vec<Rec> = (0..6).map(|i| Rec::event(&event(i))).collect();
    produce_records(&topic, &recs);
    let mut relay = RelayCmd::new(&topic, &group, &target.url())
        .brokers(brokers)
        .config(kafka);
    if let Some(password) = password {
        relay = relay.env("KBRIDGE_TEST_KAFKA_PASSWORD", password);
    }
    let mut relay = relay.start();
    relay.wait_assigned();
    assert!(
        wait_until(Duration::from_secs(30), || target.distinct() == 6),
        "{}\n{}",
        target.dump(),
        relay.stderr()
    );
    wait_fully_committed(&group, &topic, Duration::from_secs(30));
    relay.stop();
    if let Some(password) = password {
        assert!(!relay.stderr().contains(password));
    }
}

#[test]
fn the_relay_runs_over_sasl_ssl_with_its_settings_in_the_config_file() {
    relays_end_to_end(
        "secured",
        &secured().sasl_ssl,
        &kafka_block(),
        Some(SCRAM_PASSWORD),
    );
}

#[test]
fn the_relay_runs_over_sasl_ssl_with_plain() {
    relays_end_to_end(
        "secured-plain",
        &secured().sasl_ssl,
        &sasl_block("PLAIN", PLAIN_USER),
        Some(PLAIN_PASSWORD),
    );
}

#[test]
fn the_relay_runs_over_mutual_tls() {
    relays_end_to_end("secured-mtls", &secured().ssl, &mtls_block(), None);
}

#[test]
fn a_wrong_password_stops_the_relay_at_once() {
    let topic = new_topic("secured-bad", 1);
    let target = Target::start(Script::default());
    let started = Instant::now();
    let mut relay = RelayCmd::new(&topic, &unique("secured-bad-g"), &target.url())
        .brokers(&secured().sasl_ssl)
        .config(&kafka_block())
        .env("KBRIDGE_TEST_KAFKA_PASSWORD", "not-the-password")
        // At full verbosity: the password must not show even there.
        .env("KBRIDGE_LOG", "trace")
        .property("debug=all")
        .start();
    let status = relay.expect_exit(Duration::from_secs(30));
    let took = started.elapsed();
    let stderr = relay.stderr();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(took < Duration::from_secs(15), "took {took:?}: {stderr}");
    assert!(stderr.contains("SASL authentication failed"), "{stderr}");
    assert!(stderr.contains(SCRAM_USER), "{stderr}");
    assert!(!stderr.contains("not-the-password"), "{stderr}");
}
