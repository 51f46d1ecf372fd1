//! Signed robots: DingTalk's signature in the URL and Feishu's in the body,
//! checked the way the platforms check them (HMAC-SHA256 with the secret,
//! recomputed here from what the target received).

use std::time::Duration;

use base64::Engine;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use serde_json::Value;
use support::broker::unique;
use support::events::event;
use support::http_target::{Request, Script, Target};
use support::kafka::{new_topic, wait_fully_committed};
use support::records::{Rec, produce_records};
use support::relay_cmd::RelayCmd;

const SECRET: &str = "SECtest0123456789";

fn hmac(key: &[u8], data: &[u8]) -> String {
    let key = PKey::hmac(key).unwrap();
    let mut s = Signer::new(MessageDigest::sha256(), &key).unwrap();
    s.update(data).unwrap();
    base64::engine::general_purpose::STANDARD.encode(s.sign_to_vec().unwrap())
}

fn query_param(r: &Request, name: &str) -> Option<String> {
    url::form_urlencoded::parse(r.query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn dingtalk_and_feishu_robots_get_valid_signatures() {
    let topic = new_topic("signed", 1);
    let group = unique("signed-g");
    let dingtalk = Target::start(Script::default());
    let feishu = Target::start(Script::default());
    produce_records(&topic, &[Rec::event(&event(1)), Rec::event(&event(2))]);
    let route = |scheme: &str, map: &str, url: &str| {
        format!(
            "\n[[route]]\nname = \"{scheme}\"\nmap = '{map}'\n[route.webhook]\nurl = \"{url}\"\nsigning = {{ scheme = \"{scheme}\", secret = \"${{ROBOT_SECRET}}\" }}\n"
        )
    };
    let config = route(
        "dingtalk",
        r#"{msgtype: "text", text: {content: .df_title}}"#,
        &format!("{}?access_token=tok", dingtalk.url()),
    ) + &route(
        "feishu",
        r#"{msg_type: "text", content: {text: .df_title}}"#,
        &feishu.url(),
    );
    let mut relay = RelayCmd::new(&topic, &group, &dingtalk.url())
        .config(&config)
        .env("ROBOT_SECRET", SECRET)
        .start();
    wait_fully_committed(&group, &topic, Duration::from_secs(30));
    let requests = dingtalk.requests();
    assert_eq!(requests.len(), 2, "{}", dingtalk.dump());
    for r in &requests {
        assert_eq!(query_param(r, "access_token").as_deref(), Some("tok"));
        let ts = query_param(r, "timestamp").expect("timestamp");
        let sign = query_param(r, "sign").expect("sign");
        assert_eq!(
            sign,
            hmac(SECRET.as_bytes(), format!("{ts}\n{SECRET}").as_bytes())
        );
        let age = now_ms() - ts.parse::<i64>().unwrap();
        assert!((0..60_000).contains(&age), "timestamp {ts} is {age} ms old");
    }
    let requests = feishu.requests();
    assert_eq!(requests.len(), 2, "{}", feishu.dump());
    for r in &requests {
        let ts = r.body["timestamp"].as_str().expect("timestamp, a string");
        let sign = r.body["sign"].as_str().expect("sign");
        assert_eq!(sign, hmac(format!("{ts}\n{SECRET}").as_bytes(), b""));
        assert!(matches!(r.body["content"]["text"], Value::String(_)));
    }
    assert!(
        !relay.stderr().contains(SECRET),
        "the secret is never logged"
    );
    relay.stop();
}
