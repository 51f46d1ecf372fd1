//! The webhook through an egress proxy (`webhook.proxy`, or the
//! environment's `https_proxy` / `http_proxy` / `no_proxy` as curl reads
//! them), against a real tinyproxy on 127.0.0.1: plain HTTP in absolute
//! form, HTTPS through a CONNECT tunnel, credentials sent to the proxy and
//! never logged, and a proxy that refuses them taken for the target's
//! trouble — retried, never dead-lettered, nothing committed.

use std::time::Duration;

use support::broker::{secured, unique};
use support::egress_proxy::{EgressProxy, PASSWORD};
use support::events::{alert_event, event};
use support::http_target::{Script, Target};
use support::https_target::HttpsTarget;
use support::kafka::{committed, message_count, new_topic, wait_fully_committed};
use support::records::{Rec, produce_records};
use support::relay_cmd::RelayCmd;
use support::wait::wait_until;

const EVENTS: usize = 3;

/// A topic holding three alerts, and a group for it.
fn alerts(name: &str) -> (String, String) {
    let topic = new_topic(name, 1);
    let recs: Vec<Rec> = (0..EVENTS).map(|i| Rec::event(&event(i))).collect();
    produce_records(&topic, &recs);
    (topic, unique(&format!("{name}-g")))
}

fn https_config() -> String {
    format!(
        "[webhook.tls]\nca_file = \"{}\"\n",
        secured().cert("ca.pem")
    )
}

/// `127.0.0.1:<port>` of a target URL.
fn authority(url: &str) -> String {
    let rest = url.split_once("://").expect("a URL").1;
    rest.split('/').next().expect("an authority").to_string()
}

#[test]
fn an_http_webhook_through_the_configured_proxy_with_its_credentials() {
    let proxy = EgressProxy::start();
    let target = Target::start(Script::default());
    let (topic, group) = alerts("proxy-http");
    // The environment's proxy is not the configured one: the webhook's
    // own setting wins.
    let mut relay = RelayCmd::new(&topic, &group, &target.url())
        .config(&format!("[webhook]\nproxy = \"{}\"\n", proxy.url()))
        .env("http_proxy", "http://127.0.0.1:9")
        .start();
    target.wait_delivered(EVENTS, Duration::from_secs(30));
    wait_fully_committed(&group, &topic, Duration::from_secs(30));
    for r in target.requests() {
        let via = r.headers.get("via").map(String::as_str).unwrap_or("");
        assert!(via.contains("tinyproxy"), "not through the proxy: {r:?}");
    }
    assert_eq!(
        proxy.requests(&format!("POST {}", target.url())),
        EVENTS,
        "{}",
        proxy.log()
    );
    relay.stop();
    let log = relay.stderr();
    assert!(
        log.contains(&format!("http://***@127.0.0.1:{}", proxy.port)),
        "the proxy is named at start: {log}"
    );
    assert!(!log.contains(PASSWORD), "{log}");
}

#[test]
fn an_https_webhook_through_a_connect_tunnel_from_the_environment_unless_no_proxy_names_it() {
    let proxy = EgressProxy::start();
    let target = HttpsTarget::start(&secured().certs, false);
    let connect = format!("CONNECT {}", authority(&target.url()));

    // no_proxy names the target: reached directly.
    let (topic, group) = alerts("proxy-https-direct");
    let mut relay = RelayCmd::new(&topic, &group, &target.url())
        .config(&https_config())
        .env("HTTPS_PROXY", &proxy.url())
        .env("NO_PROXY", "localhost,127.0.0.0/8")
        .start();
    assert!(wait_until(Duration::from_secs(30), || target
        .requests()
        .len()
        >= EVENTS));
    wait_fully_committed(&group, &topic, Duration::from_secs(30));
    relay.stop();
    assert_eq!(proxy.requests(&connect), 0, "{}", proxy.log());

    // Without no_proxy: through the tunnel, TLS end to end inside it.
    let (topic, group) = alerts("proxy-https");
    let mut relay = RelayCmd::new(&topic, &group, &target.url())
        .config(&https_config())
        .env("HTTPS_PROXY", &proxy.url())
        .start();
    assert!(
        wait_until(Duration::from_secs(30), || target.requests().len()
            >= 2 * EVENTS),
        "{}\n{}",
        relay.stderr(),
        proxy.log()
    );
    wait_fully_committed(&group, &topic, Duration::from_secs(30));
    relay.stop();
    assert!(proxy.requests(&connect) >= 1, "{}", proxy.log());
    let log = relay.stderr();
    assert!(!log.contains(PASSWORD), "{log}");
}

#[test]
fn a_proxy_that_refuses_the_credentials_keeps_the_alert_until_they_are_fixed() {
    let proxy = EgressProxy::start();
    let target = HttpsTarget::start(&secured().certs, false);
    let dlq = new_topic("proxy-refused-dlq", 1);
    let topic = new_topic("proxy-refused", 1);
    let group = unique("proxy-refused-g");
    produce_records(
        &topic,
        &[Rec::event(&alert_event(0, "fault-0", "critical"))],
    );
    let wrong = "wr0ng-pa55";
    let cmd = RelayCmd::new(&topic, &group, &target.url())
        .dead_letters(&dlq)
        .config(&https_config());
    let mut relay = cmd
        .clone()
        .env("https_proxy", &proxy.url_with("relay", wrong))
        .start();
    assert!(
        wait_until(Duration::from_secs(30), || relay
            .count_logs("refused the credentials in the proxy URL")
            >= 3),
        "{}",
        relay.stderr()
    );
    relay.stop();
    assert!(target.requests().is_empty());
    assert_eq!(message_count(&dlq), 0, "nothing dead-lettered");
    assert!(
        committed(&group, &topic).values().all(|o| *o == 0),
        "nothing committed"
    );
    let log = relay.stderr();
    assert!(!log.contains(wrong), "{log}");

    // The credentials fixed, the same alert goes out.
    let mut relay = cmd.env("https_proxy", &proxy.url()).start();
    assert!(
        wait_until(Duration::from_secs(30), || target.requests().len() == 1),
        "{}",
        relay.stderr()
    );
    wait_fully_committed(&group, &topic, Duration::from_secs(30));
    relay.stop();
}
