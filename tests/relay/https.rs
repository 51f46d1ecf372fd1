//! The webhook over HTTPS (`[webhook.tls]`): a private CA, mutual TLS,
//! `insecure_skip_verify`, and credentials from files. A handshake that
//! fails is the target's trouble, not the alert's: retried, never
//! dead-lettered, nothing committed.

use std::time::Duration;

use base64::Engine;

use support::broker::{secured, unique};
use support::events::{alert_event, event};
use support::https_target::HttpsTarget;
use support::kafka::{committed, message_count, new_topic, wait_fully_committed};
use support::records::{Rec, produce_records};
use support::relay_cmd::RelayCmd;
use support::relay_process::Relay;
use support::wait::wait_until;

const EVENTS: usize = 3;

/// A topic with three alerts, and the relay on it posting to `target`
/// with this extra config.
fn relay(name: &str, target: &HttpsTarget, config: &str) -> (String, String, Relay) {
    let topic = new_topic(name, 1);
    let group = unique(&format!("{name}-g"));
    let recs: Vec<Rec> = (0..EVENTS).map(|i| Rec::event(&event(i))).collect();
    produce_records(&topic, &recs);
    let relay = RelayCmd::new(&topic, &group, &target.url())
        .config(config)
        .start();
    (topic, group, relay)
}

fn tls(lines: &[(&str, String)]) -> String {
    let mut s = String::from("[webhook.tls]\n");
    for (k, v) in lines {
        s.push_str(&format!("{k} = {v}\n"));
    }
    s
}

fn quoted(path: String) -> String {
    format!("\"{path}\"")
}

/// Waits until all events were delivered and committed.
fn delivered(target: &HttpsTarget, group: &str, topic: &str, relay: &mut Relay) {
    assert!(
        wait_until(Duration::from_secs(30), || target.requests().len()
            >= EVENTS),
        "{} requests, {} failed handshakes\n{}",
        target.requests().len(),
        target.failed_handshakes(),
        relay.stderr()
    );
    wait_fully_committed(group, topic, Duration::from_secs(30));
}

/// Runs the relay (with a dead-letter topic) on one alert toward a target
/// it cannot complete a handshake with; once it has failed three times,
/// checks that nothing reached the target, nothing was dead-lettered and
/// nothing committed. Returns the stopped relay.
fn an_outage(name: &str, target: &HttpsTarget, config: &str) -> Relay {
    let dlq = new_topic(&format!("{name}-dlq"), 1);
    let topic = new_topic(name, 1);
    let group = unique(&format!("{name}-g"));
    produce_records(
        &topic,
        &[Rec::event(&alert_event(0, "fault-0", "critical"))],
    );
    let mut relay = RelayCmd::new(&topic, &group, &target.url())
        .dead_letters(&dlq)
        .config(config)
        .start();
    assert!(
        wait_until(Duration::from_secs(30), || relay
            .count_logs("webhook delivery failed")
            >= 3),
        "{}",
        relay.stderr()
    );
    assert!(target.requests().is_empty());
    assert!(target.failed_handshakes() >= 1);
    assert_eq!(message_count(&dlq), 0, "nothing dead-lettered");
    assert!(
        committed(&group, &topic).values().all(|o| *o == 0),
        "nothing committed"
    );
    relay.stop();
    relay
}

#[test]
fn a_private_ca_and_credentials_from_files() {
    let certs = &secured().certs;
    let target = HttpsTarget::start(certs, false);
    let dir = tempfile::tempdir().expect("temp dir");
    let key_file = dir.path().join("api-key");
    std::fs::write(&key_file, "k3y-from-a-file\n").expect("write");
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, "pa55word\n").expect("write");
    let config = format!(
        "{}[webhook.headers]\nX-Api-Key = {{ file = \"{}\" }}\n[webhook.basic_auth]\nuser = \"ops\"\npassword = {{ file = \"{}\" }}\n",
        tls(&[("ca_file", quoted(secured().cert("ca.pem")))]),
        key_file.display(),
        password_file.display()
    );
    let (topic, group, mut relay) = relay("https-ca", &target, &config);
    delivered(&target, &group, &topic, &mut relay);
    let r = &target.requests()[0];
    assert_eq!(r.headers["x-api-key"], "k3y-from-a-file");
    let basic = base64::engine::general_purpose::STANDARD.encode("ops:pa55word");
    assert_eq!(r.headers["authorization"], format!("Basic {basic}"));
    relay.stop();
    let log = relay.stderr();
    assert!(
        !log.contains("k3y-from-a-file") && !log.contains("pa55word"),
        "{log}"
    );
}

#[test]
fn an_untrusted_certificate_is_an_outage_not_the_alert_s_fault() {
    let target = HttpsTarget::start(&secured().certs, false);
    let relay = an_outage("https-untrusted", &target, "");
    assert!(relay.has_log("certificate"), "{}", relay.stderr());
}

#[test]
fn mutual_tls_with_the_client_certificate() {
    let s = secured();
    let target = HttpsTarget::start(&s.certs, true);
    let config = tls(&[
        ("ca_file", quoted(s.cert("ca.pem"))),
        ("client_cert_file", quoted(s.cert("client.pem"))),
        ("client_key_file", quoted(s.cert("client.key"))),
    ]);
    let (topic, group, mut relay) = relay("https-mtls", &target, &config);
    delivered(&target, &group, &topic, &mut relay);
    assert_eq!(
        target.requests()[0].client_cn.as_deref(),
        Some("kbridge-client")
    );
    relay.stop();
}

#[test]
fn mutual_tls_without_a_client_certificate_is_an_outage() {
    let s = secured();
    let target = HttpsTarget::start(&s.certs, true);
    an_outage(
        "https-nocert",
        &target,
        &tls(&[("ca_file", quoted(s.cert("ca.pem")))]),
    );
}

#[test]
fn insecure_skip_verify_works_and_warns_at_start() {
    let target = HttpsTarget::start(&secured().certs, false);
    let config = tls(&[("insecure_skip_verify", "true".into())]);
    let (topic, group, mut relay) = relay("https-insecure", &target, &config);
    delivered(&target, &group, &topic, &mut relay);
    assert!(
        relay.has_log("insecure_skip_verify is on"),
        "{}",
        relay.stderr()
    );
    relay.stop();
}
