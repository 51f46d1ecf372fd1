//! `kbridge run` against the test broker's SASL_SSL listener, with the
//! settings in `[kafka]` of its config file and the password from the
//! environment: it relays end to end, and a wrong password stops it at
//! once with a line that names the user, not the password.

use std::time::{Duration, Instant};

use support::broker::{SCRAM_PASSWORD, SCRAM_USER, secured, unique};
use support::events::alert_event;
use support::kafka::{new_topic, wait_fully_committed};
use support::records::{Rec, produce_records};
use support::relay::RelayCmd;
use support::target::{Script, Target};
use support::wait::wait_until;

/// The `[kafka]` block for SCRAM-SHA-512 over SASL_SSL, the password from
/// `$KBRIDGE_TEST_KAFKA_PASSWORD`.
fn kafka_block() -> String {
    let s = secured();
    format!(
        "[kafka]\n\"security.protocol\" = \"SASL_SSL\"\n\"sasl.mechanisms\" = \"SCRAM-SHA-512\"\n\"sasl.username\" = \"{SCRAM_USER}\"\n\"sasl.password\" = \"${{KBRIDGE_TEST_KAFKA_PASSWORD}}\"\n\"ssl.ca.location\" = \"{}\"\n",
        s.cert("ca.pem")
    )
}

#[test]
fn the_relay_runs_over_sasl_ssl_with_its_settings_in_the_config_file() {
    let topic = new_topic("secured", 2);
    let group = unique("secured-g");
    let target = Target::start(Script::default());
    let recs: Vec<Rec> = (0..6)
        .map(|i| Rec::event(&alert_event(i, &format!("fault-{i}"), "critical")))
        .collect();
    produce_records(&topic, &recs);
    let mut relay = RelayCmd::new(&topic, &group, &target.url())
        .brokers(&secured().sasl_ssl)
        .config(&kafka_block())
        .env("KBRIDGE_TEST_KAFKA_PASSWORD", SCRAM_PASSWORD)
        .start();
    relay.wait_assigned();
    assert!(
        wait_until(Duration::from_secs(30), || target.distinct() == 6),
        "{}\n{}",
        target.dump(),
        relay.stderr()
    );
    wait_fully_committed(&group, &topic, Duration::from_secs(30));
    relay.stop();
    assert!(!relay.stderr().contains(SCRAM_PASSWORD));
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
