//! Signed chat robots: the security setting most teams turn on.
//!
//! - DingTalk's "加签": every request's URL carries `timestamp` (epoch
//!   milliseconds) and `sign`, the Base64 of HMAC-SHA256 keyed with the
//!   secret over `"{timestamp}\n{secret}"`, URL-encoded. The robot refuses a
//!   timestamp more than an hour off.
//! - Feishu's signed bots: the JSON body carries `timestamp` (epoch
//!   seconds, as a string) and `sign`, the Base64 of HMAC-SHA256 keyed with
//!   `"{timestamp}\n{secret}"` over nothing.
//!
//! Each attempt is signed afresh (a retry an hour later must not carry a
//! stale timestamp). HMAC comes from OpenSSL, which kbridge links already.

use anyhow::{Context, Result};
use base64::Engine;
use bytes::Bytes;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;

use crate::relay::config::{SignScheme, SigningConfig};

pub(crate) struct Signing {
    scheme: SignScheme,
    secret: String,
}

impl Signing {
    /// The route's signing, its secret read now; `what` names the key.
    pub(crate) fn new(cfg: &SigningConfig, what: &str) -> Result<Self> {
        let secret = cfg.secret.resolve(&format!("{what}.signing.secret"))?;
        anyhow::ensure!(!secret.is_empty(), "{what}.signing.secret is empty");
        // Fail now, not at the first alert, if HMAC is unavailable.
        hmac_sha256(secret.as_bytes(), b"").context("HMAC-SHA256 is not available")?;
        Ok(Self {
            scheme: cfg.scheme,
            secret,
        })
    }

    /// The request's query (DingTalk: with the signature appended) and
    /// body (Feishu: with the signature inserted), signed at `now_ms`.
    pub(crate) fn sign(
        &self,
        query: Option<&str>,
        body: Bytes,
        now_ms: i64,
    ) -> (Option<String>, Bytes) {
        match self.scheme {
            SignScheme::Dingtalk => {
                let timestamp = now_ms.to_string();
                let sign = self.mac(
                    self.secret.as_bytes(),
                    &format!("{timestamp}\n{}", self.secret),
                );
                let sign: String = url::form_urlencoded::byte_serialize(sign.as_bytes()).collect();
                let signed = format!("timestamp={timestamp}&sign={sign}");
                let query = match query {
                    Some(q) if !q.is_empty() => format!("{q}&{signed}"),
                    _ => signed,
                };
                (Some(query), body)
            }
            SignScheme::Feishu => {
                let timestamp = (now_ms / 1000).to_string();
                let key = format!("{timestamp}\n{}", self.secret);
                let sign = self.mac(key.as_bytes(), "");
                (
                    query.map(str::to_string),
                    feishu_body(&body, &timestamp, &sign).unwrap_or(body),
                )
            }
        }
    }

    fn mac(&self, key: &[u8], data: &str) -> String {
        let mac = hmac_sha256(key, data.as_bytes()).unwrap_or_default();
        base64::engine::general_purpose::STANDARD.encode(mac)
    }
}

/// The body with `timestamp` and `sign` set; `None` when it is not a JSON
/// object (a map's output always is, for Feishu's message format).
fn feishu_body(body: &[u8], timestamp: &str, sign: &str) -> Option<Bytes> {
    let mut v: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body).ok()?;
    v.insert("timestamp".into(), timestamp.into());
    v.insert("sign".into(), sign.into());
    serde_json::to_vec(&v).ok().map(Bytes::from)
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Result<Vec<u8>, openssl::error::ErrorStack> {
    let key = PKey::hmac(key)?;
    let mut signer = Signer::new(MessageDigest::sha256(), &key)?;
    signer.update(data)?;
    signer.sign_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::config::Secret;

    fn signing(scheme: SignScheme) -> Signing {
        Signing::new(
            &SigningConfig {
                scheme,
                secret: Secret::Value("SEC1234567890abcdef".into()),
            },
            "webhook",
        )
        .unwrap()
    }

    /// The vectors come from the platforms' own Python samples.
    #[test]
    fn dingtalk_signs_the_url() {
        let (query, body) = signing(SignScheme::Dingtalk).sign(
            Some("access_token=abc"),
            Bytes::from_static(b"{}"),
            1_717_000_000_000,
        );
        assert_eq!(
            query.as_deref(),
            Some(
                "access_token=abc&timestamp=1717000000000&sign=rQqxMRfSKSVYq902YvCTFpZEFY6ggeOCDvD16wT6lTs%3D"
            )
        );
        assert_eq!(body, Bytes::from_static(b"{}"));
    }

    #[test]
    fn feishu_signs_the_body() {
        let (query, body) = signing(SignScheme::Feishu).sign(
            None,
            Bytes::from_static(br#"{"msg_type":"text","content":{"text":"hi"}}"#),
            1_717_000_000_123,
        );
        assert_eq!(query, None);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["timestamp"], "1717000000");
        assert_eq!(v["sign"], "rTXef62IQWFOYzzwOfEwEA8Dh+wEuEKgGpgNYtf0D/w=");
        assert_eq!(v["content"]["text"], "hi");
    }
}
