//! An egress proxy between kbridge and the webhook: public chat robots are
//! often reachable from a data centre only through one.
//!
//! Which proxy, if any, is decided once per webhook at start ([`choose`]):
//! the webhook's own `proxy` setting, else the environment as curl reads
//! it (`https_proxy`/`HTTPS_PROXY` for an `https` webhook, `http_proxy` —
//! lowercase only, as in curl — for an `http` one, then
//! `all_proxy`/`ALL_PROXY`; `no_proxy`/`NO_PROXY` lists the hosts reached
//! directly, matched by hyper-util's curl-compatible matcher). How it is
//! used is `connector`'s: an `https` webhook through an HTTP CONNECT tunnel
//! ([`tunnel`]), with TLS end to end inside it; an `http` one by sending
//! the request to the proxy in absolute form.
//!
//! The proxy's credentials (user info in its URL) become a
//! `Proxy-Authorization` header marked sensitive; what is logged or shown
//! is the proxy's URL with them replaced by `***`.

use anyhow::{Result, bail};
use http::HeaderValue;
use hyper_util::client::proxy::matcher::Matcher;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::connector::ConnectError;

/// `webhook.proxy = "direct"`: never a proxy, whatever the environment says.
pub(crate) const DIRECT: &str = "direct";

/// The port of a proxy URL that names none, as in curl.
const DEFAULT_PORT: u16 = 1080;

/// The most a proxy's answer to CONNECT may take before its blank line.
const MAX_ANSWER_HEAD: usize = 16 * 1024;

/// A proxy to reach one webhook through.
#[derive(Clone)]
pub(crate) struct Proxy {
    pub(crate) host: String,
    pub(crate) port: u16,
    /// `Proxy-Authorization: Basic …` from the URL's user info (sensitive).
    pub(crate) authorization: Option<HeaderValue>,
    /// The proxy for a person: its URL without credentials…
    pub(crate) shown: String,
    /// …and where it was set (`webhook.proxy`, `HTTPS_PROXY`, …).
    pub(crate) source: &'static str,
}

/// `http://***@proxy.corp:3128 (from HTTPS_PROXY)`: never the credentials.
impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (from {})", self.shown, self.source)
    }
}

/// The proxy for the webhook at `target`: `configured` (the webhook's
/// `proxy`) when set, else the environment's (read through `env`), unless
/// `no_proxy` names the target's host. An unusable value is an error that
/// names where it was set.
pub(crate) fn choose(
    configured: Option<&str>,
    target: &url::Url,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<Proxy>> {
    if let Some(value) = configured {
        if value == DIRECT {
            return Ok(None);
        }
        return parse(value, "webhook.proxy").map(Some);
    }
    let https = target.scheme() == "https";
    // curl's order: the scheme's own variable, lowercase first (and for
    // http lowercase only: HTTP_PROXY can be set by a CGI request's
    // `Proxy:` header), then all_proxy.
    let names: &[&'static str] = if https {
        &["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]
    } else {
        &["http_proxy", "all_proxy", "ALL_PROXY"]
    };
    let Some((name, value)) = names
        .iter()
        .find_map(|n| env(n).filter(|v| !v.is_empty()).map(|v| (*n, v)))
    else {
        return Ok(None);
    };
    let no_proxy = ["no_proxy", "NO_PROXY"]
        .iter()
        .find_map(|n| env(n))
        .unwrap_or_default();
    // hyper-util's matcher knows no_proxy's rules (domains and their
    // subdomains, IP addresses, CIDR ranges, `*`); the proxy it is given
    // only makes it answer whether this host goes through one. Asked
    // first: a proxy variable set for other tools (`socks5://…`) does not
    // stop kbridge when no_proxy names the webhook.
    let matcher = Matcher::builder()
        .all("http://proxy.invalid:1")
        .no(no_proxy)
        .build();
    let bypassed = format!("{}://{}/", target.scheme(), authority(target))
        .parse::<http::Uri>()
        .is_ok_and(|uri| matcher.intercept(&uri).is_none());
    if bypassed {
        return Ok(None);
    }
    parse(&value, name).map(Some)
}

/// `host:port` of a URL, IPv6 addresses in brackets.
pub(crate) fn authority(url: &url::Url) -> String {
    let host = match url.host() {
        Some(url::Host::Ipv6(a)) => format!("[{a}]"),
        Some(h) => h.to_string(),
        None => String::new(),
    };
    match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    }
}

/// A proxy URL, `http://[user:password@]host[:port]` (no scheme means
/// http, no port 1080, as in curl). `what` names where it was set.
pub(crate) fn parse(value: &str, what: &'static str) -> Result<Proxy> {
    let with_scheme = if value.contains("://") {
        value.to_string()
    } else {
        format!("http://{value}")
    };
    let parsed = url::Url::parse(&with_scheme);
    // Never the user info: scheme, host and port only.
    let shown_value = match &parsed {
        Ok(u) => format!("{}://{}", u.scheme(), authority(u)),
        Err(_) => "(not a URL)".to_string(),
    };
    let Ok(url) = parsed else {
        bail!(
            "{what} '{shown_value}' is not a proxy URL: write http://host:port (with user:password@ before the host if the proxy wants credentials), or set webhook.proxy = \"direct\""
        );
    };
    if url.scheme() != "http" {
        bail!(
            "{what} '{shown_value}': kbridge talks to a proxy in plain HTTP (an https webhook goes through its CONNECT tunnel, TLS end to end), not {}: write http://{}, or set webhook.proxy = \"direct\"",
            url.scheme(),
            authority(&url).trim_end_matches(":443")
        );
    }
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_string(),
        Some(url::Host::Ipv4(a)) => a.to_string(),
        Some(url::Host::Ipv6(a)) => a.to_string(),
        None => bail!("{what} '{shown_value}' has no host"),
    };
    if url.path() != "/" || url.query().is_some() {
        bail!("{what} '{shown_value}': a proxy URL has no path or query: write http://host:port");
    }
    // User info becomes Basic credentials as for the webhook's own URL.
    let authorization = super::webhook::url_credentials(&url).map_err(|_| {
        anyhow::anyhow!("{what}: the proxy's user or password is not valid in a header")
    })?;
    let port = url.port().unwrap_or(DEFAULT_PORT);
    let mut shown = url.clone();
    let _ = shown.set_port(Some(port));
    Ok(Proxy {
        host,
        port,
        authorization,
        shown: crate::redact::url(shown.as_str())
            .trim_end_matches('/')
            .to_string(),
        source: what,
    })
}

/// Asks the proxy on `tcp` for a tunnel to `authority` (`host:port`) and
/// reads its answer: the stream is then a byte pipe to the webhook.
///
/// hyper-util has a CONNECT connector too (`legacy::connect::proxy::Tunnel`),
/// but it reports every refusal as "tunnel unsuccessful": the proxy's own
/// status and reason are what tell an operator whether it is the
/// credentials (407), the proxy's rules (403) or the webhook (502).
pub(crate) async fn tunnel(
    mut tcp: TcpStream,
    proxy: &Proxy,
    authority: &str,
) -> Result<TcpStream, ConnectError> {
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n").into_bytes();
    if let Some(auth) = &proxy.authorization {
        request.extend_from_slice(b"Proxy-Authorization: ");
        request.extend_from_slice(auth.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    let failed = |what: String| {
        ConnectError(format!(
            "cannot connect through the proxy {proxy:?}: {what}"
        ))
    };
    tcp.write_all(&request)
        .await
        .map_err(|e| failed(format!("{e}")))?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let n = tcp
            .read(&mut buf)
            .await
            .map_err(|e| failed(format!("{e}")))?;
        if n == 0 {
            return Err(failed(format!(
                "it closed the connection without answering CONNECT {authority}"
            )));
        }
        head.extend_from_slice(&buf[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut answer = httparse::Response::new(&mut headers);
        match answer.parse(&head) {
            Ok(httparse::Status::Complete(len)) => {
                let code = answer.code.unwrap_or(0);
                let reason = answer.reason.unwrap_or("").to_string();
                if (200..300).contains(&code) {
                    if len != head.len() {
                        // The webhook cannot have spoken yet: TLS starts
                        // with the client's hello.
                        return Err(failed(format!(
                            "it sent {} bytes after its answer to CONNECT {authority}",
                            head.len() - len
                        )));
                    }
                    return Ok(tcp);
                }
                return Err(failed(refusal(code, &reason, authority, proxy)));
            }
            Ok(httparse::Status::Partial) if head.len() <= MAX_ANSWER_HEAD => {}
            Ok(httparse::Status::Partial) => {
                return Err(failed(format!(
                    "its answer to CONNECT {authority} is longer than {MAX_ANSWER_HEAD} bytes"
                )));
            }
            Err(e) => {
                return Err(failed(format!(
                    "its answer to CONNECT {authority} is not HTTP ({e}): is it an HTTP proxy?"
                )));
            }
        }
    }
}

/// What a refusal of CONNECT means, and what to do.
fn refusal(code: u16, reason: &str, authority: &str, proxy: &Proxy) -> String {
    let said = format!("it answered {code} {reason} to CONNECT {authority}");
    match code {
        // 407 is the standard's; some proxies (tinyproxy) answer 401.
        401 | 407 if proxy.authorization.is_some() => {
            format!("{said}: it refused the credentials in the proxy URL; check them")
        }
        401 | 407 => format!(
            "{said}: it wants credentials; put them in the proxy URL (http://user:password@host:port)"
        ),
        403 => format!(
            "{said}: its rules do not let kbridge reach the webhook; ask its operator to allow this host and port, or set webhook.proxy = \"direct\" or NO_PROXY if the webhook is reachable without it"
        ),
        _ => said,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    fn chosen(configured: Option<&str>, target: &str, vars: &[(&str, &str)]) -> Option<String> {
        choose(configured, &url(target), env(vars))
            .unwrap()
            .map(|p| format!("{}:{} {p:?}", p.host, p.port))
    }

    #[test]
    fn the_environment_is_read_as_curl_reads_it() {
        let https = "https://oapi.dingtalk.com/robot/send?access_token=t";
        let http = "http://ops.corp:8080/alerts";
        assert_eq!(chosen(None, https, &[]), None);
        assert_eq!(
            chosen(None, https, &[("HTTPS_PROXY", "proxy:3128")]).as_deref(),
            Some("proxy:3128 http://proxy:3128 (from HTTPS_PROXY)")
        );
        // Lowercase first.
        assert_eq!(
            chosen(
                None,
                https,
                &[("HTTPS_PROXY", "http://a:1"), ("https_proxy", "http://b:2")]
            )
            .as_deref(),
            Some("b:2 http://b:2 (from https_proxy)")
        );
        // http_proxy in lowercase only; all_proxy for what has no own.
        assert_eq!(chosen(None, http, &[("HTTP_PROXY", "http://a:1")]), None);
        assert_eq!(
            chosen(None, http, &[("http_proxy", "http://a:1")]).as_deref(),
            Some("a:1 http://a:1 (from http_proxy)")
        );
        assert_eq!(
            chosen(None, http, &[("ALL_PROXY", "http://c")]).as_deref(),
            Some("c:1080 http://c:1080 (from ALL_PROXY)")
        );
        // An https proxy is not one for http.
        assert_eq!(chosen(None, http, &[("https_proxy", "http://a:1")]), None);
    }

    #[test]
    fn no_proxy_names_hosts_reached_directly() {
        let vars = |no: &'static str| [("https_proxy", "http://p:3128"), ("no_proxy", no)];
        let target = "https://oapi.dingtalk.com/robot/send";
        for bypass in [
            "*",
            "dingtalk.com",
            ".dingtalk.com",
            "x.org, oapi.dingtalk.com",
        ] {
            assert_eq!(chosen(None, target, &vars(bypass)), None, "{bypass}");
        }
        for through in ["talk.com", "x.org", ""] {
            assert!(chosen(None, target, &vars(through)).is_some(), "{through}");
        }
        let ip = "https://10.1.2.3:8443/alerts";
        assert_eq!(chosen(None, ip, &vars("10.0.0.0/8")), None);
        assert!(chosen(None, ip, &vars("192.168.0.0/16")).is_some());
    }

    #[test]
    fn the_webhook_s_own_proxy_wins_and_direct_ignores_the_environment() {
        let vars = [("https_proxy", "http://env:1"), ("no_proxy", "*")];
        let target = "https://robot.example/send";
        assert_eq!(
            chosen(Some("http://own:3128"), target, &vars).as_deref(),
            Some("own:3128 http://own:3128 (from webhook.proxy)")
        );
        assert_eq!(chosen(Some(DIRECT), target, &vars), None);
    }

    #[test]
    fn credentials_become_a_sensitive_header_and_are_never_shown() {
        let p = parse("http://relay%40corp:s3cr%3At@proxy:3128", "webhook.proxy").unwrap();
        let auth = p.authorization.clone().unwrap();
        assert!(auth.is_sensitive());
        use base64::Engine;
        let token = base64::engine::general_purpose::STANDARD.encode("relay@corp:s3cr:t");
        assert_eq!(auth, format!("Basic {token}").as_str());
        assert_eq!(
            format!("{p:?}"),
            "http://***@proxy:3128 (from webhook.proxy)"
        );
    }

    #[test]
    fn unusable_proxies_are_refused_with_what_to_write() {
        for (value, says) in [
            ("socks5://proxy:1080", "not socks5"),
            ("https://proxy:3128", "not https"),
            ("http://proxy:3128/path", "no path"),
            ("http://:3128", "not a proxy URL"),
        ] {
            let e = parse(value, "HTTPS_PROXY").unwrap_err().to_string();
            assert!(
                e.contains(says) && e.contains("HTTPS_PROXY"),
                "{value}: {e}"
            );
        }
        let e = parse("socks5://user:pw@proxy:1080", "ALL_PROXY")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("pw"), "{e}");
        assert!(
            choose(
                None,
                &url("https://x/"),
                env(&[("ALL_PROXY", "socks5h://p:1")])
            )
            .is_err()
        );
        // Unless no_proxy names the webhook.
        let bypassed = [("ALL_PROXY", "socks5h://p:1"), ("no_proxy", "x")];
        assert!(matches!(
            choose(None, &url("https://x/"), env(&bypassed)),
            Ok(None)
        ));
    }
}
