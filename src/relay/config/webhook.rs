//! `[webhook]` (and each route's `[route.webhook]`): where alerts go, with
//! which credentials, TLS settings and answer rules.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use serde::Deserialize;

use super::de::duration;
use super::secret::{Secret, redacted};
use crate::error::UsageError;

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookConfig {
    #[serde(default)]
    pub url: String,
    /// Extra request headers, e.g. Authorization: a value (`${VAR}` for
    /// secrets) or `{ file = "…" }`.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// HTTP basic authentication.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    #[serde(default)]
    pub tls: WebhookTls,
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// jq on a 2xx answer's JSON body: whether the target took the alert.
    #[serde(default)]
    pub success: Option<String>,
    /// jq on an answer's JSON body: whether the target refused this alert
    /// (dead-lettered, not retried).
    #[serde(default)]
    pub reject: Option<String>,
    /// jq on any answer's JSON body: whether the target is throttling (a
    /// chat robot's "send too fast" in an HTTP 200): the alert is kept and
    /// the whole route pauses for `throttle_pause`.
    #[serde(default)]
    pub throttled: Option<String>,
    /// How long a route pauses when `throttled` holds (a longer
    /// `Retry-After` wins); chat robots count per minute.
    #[serde(default = "default_throttle_pause", deserialize_with = "duration")]
    pub throttle_pause: Duration,
    /// A signed robot's signature (`deliver::http::signing`).
    #[serde(default)]
    pub signing: Option<SigningConfig>,
    /// The egress proxy (`http://[user:password@]host:port`), or `direct`;
    /// unset, the environment's, as curl reads it (`deliver::http::proxy`).
    #[serde(default)]
    pub proxy: Option<String>,
}

/// `signing = { scheme = "dingtalk", secret = "${DINGTALK_SECRET}" }`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SigningConfig {
    pub scheme: SignScheme,
    /// A value (`${VAR}`) or `{ file = "…" }`.
    pub secret: Secret,
}

/// Whose signature: DingTalk's (in the URL) or Feishu's (in the body).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SignScheme {
    Dingtalk,
    Feishu,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BasicAuth {
    pub user: String,
    /// A value or `{ file = "…" }`.
    pub password: Secret,
}

/// TLS toward an `https://` webhook.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookTls {
    /// A private CA (PEM): the only one trusted for the webhook.
    pub ca_file: Option<PathBuf>,
    /// A client certificate (PEM) for mutual TLS, with its key.
    pub client_cert_file: Option<PathBuf>,
    /// The client certificate's key (PEM, PKCS#8 or PKCS#1 RSA).
    pub client_key_file: Option<PathBuf>,
    /// Accept any certificate: for a test target only; logged as a warning
    /// at every start.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            headers: BTreeMap::new(),
            basic_auth: None,
            tls: WebhookTls::default(),
            timeout: default_timeout(),
            success: None,
            reject: None,
            throttled: None,
            throttle_pause: default_throttle_pause(),
            signing: None,
            proxy: None,
        }
    }
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_throttle_pause() -> Duration {
    Duration::from_secs(60)
}

impl WebhookConfig {
    /// Checks what the types cannot (`what` is its key: `webhook`, or
    /// `route 'x' webhook`).
    pub(super) fn check(&self, what: &str) -> Result<()> {
        if self.url.is_empty() {
            bail!(UsageError(format!(
                "no webhook URL: give --webhook, `{what}.url` in the config file, or KBRIDGE_WEBHOOK__URL"
            )));
        }
        let url = url::Url::parse(&self.url).map_err(|e| {
            UsageError(format!(
                "{what}.url '{}' is invalid: {e}",
                crate::redact::url(&self.url)
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            bail!(UsageError(format!(
                "{what}.url '{}' must be http or https",
                crate::redact::url(&self.url)
            )));
        }
        let tls = &self.tls;
        if tls.client_cert_file.is_some() != tls.client_key_file.is_some() {
            bail!(UsageError(format!(
                "{what}.tls: client_cert_file and client_key_file go together (a client certificate and its key)"
            )));
        }
        let tls_set =
            tls.ca_file.is_some() || tls.client_cert_file.is_some() || tls.insecure_skip_verify;
        if tls_set && url.scheme() != "https" {
            bail!(UsageError(format!(
                "{what}.tls is set but the webhook URL '{}' is not https",
                crate::redact::url(&self.url)
            )));
        }
        Ok(())
    }
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: BTreeMap<_, _> = self
            .headers
            .iter()
            .map(|(k, v)| {
                let shown = match v {
                    Secret::Value(v) => redacted(k, v),
                    file => format!("{file:?}"),
                };
                (k, shown)
            })
            .collect();
        f.debug_struct("WebhookConfig")
            .field("url", &crate::redact::url(&self.url))
            .field("headers", &headers)
            .field("basic_auth", &self.basic_auth)
            .field("tls", &self.tls)
            .field(
                "proxy",
                &self.proxy.as_deref().map(|p| match p.contains("://") {
                    true => crate::redact::url(p),
                    false => crate::redact::url(&format!("http://{p}")),
                }),
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}
