//! No secret leaks: the relay runs at full verbosity (every log target at
//! trace, librdkafka's `debug=all`) over SASL_SSL, with a webhook token in
//! a header, another in the URL's query and a basic-auth password from a
//! file, through a refused attempt (401), a delivery and a dead letter —
//! and none of them appears
//! in its output, its metrics or the dead letter.

use std::time::Duration;

use support::broker::{SCRAM_PASSWORD, SCRAM_USER, secured, unique};
use support::events::alert_event;
use support::http::{free_port, get};
use support::kafka::new_topic;
use support::records::{Rec, produce_records, read_all};
use support::relay::RelayCmd;
use support::target::{Script, Target};
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
