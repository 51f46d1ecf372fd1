//! Reaching the webhook: a TCP connection, wrapped in TLS for `https`;
//! through an egress proxy when one is set (`proxy`).
//!
//! The TLS settings (`[webhook.tls]`) are turned into one connector at
//! start, so a bad CA file or client key is a start-up error, and each new
//! connection only does the handshake.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::proxy::{self, Proxy};
use crate::relay::config::WebhookTls;

/// One connection's byte stream: plain TCP, or TLS over it.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_native_tls::TlsStream<TcpStream>>),
}

/// Why no connection could be made; always the target's fault (an outage
/// or its configuration), never an alert's.
#[derive(Debug)]
pub(crate) struct ConnectError(pub String);

pub(crate) struct Connector {
    /// The host as written in the URL: what DNS resolves and what the
    /// certificate must name.
    host: String,
    port: u16,
    tls: Option<tokio_native_tls::TlsConnector>,
    /// The proxy every connection goes through, if any.
    proxy: Option<Proxy>,
    /// `host:port` as a CONNECT to the proxy names the webhook.
    authority: String,
    timeout: Duration,
}

impl Connector {
    pub(crate) fn new(
        url: &url::Url,
        tls: &WebhookTls,
        proxy: Option<Proxy>,
        timeout: Duration,
    ) -> Result<Self> {
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_string(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            None => bail!("the webhook URL has no host"),
        };
        let port = url
            .port_or_known_default()
            .context("the webhook URL has no port")?;
        let tls = match url.scheme() {
            "https" => Some(tls_connector(tls)?),
            _ => None,
        };
        Ok(Self {
            host,
            port,
            tls,
            proxy,
            authority: proxy::authority(url),
            timeout,
        })
    }

    /// A new connection, handshake done, within the connect timeout.
    pub(crate) async fn connect(&self) -> Result<Stream, ConnectError> {
        match tokio::time::timeout(self.timeout, self.open()).await {
            Ok(r) => r,
            Err(_) => Err(ConnectError(format!(
                "cannot connect: no connection to {}:{} within {:?}",
                self.host, self.port, self.timeout
            ))),
        }
    }

    async fn open(&self) -> Result<Stream, ConnectError> {
        let tcp = match &self.proxy {
            None => TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|e| ConnectError(format!("cannot connect: {e}")))?,
            Some(proxy) => TcpStream::connect((proxy.host.as_str(), proxy.port))
                .await
                .map_err(|e| ConnectError(format!("cannot connect to the proxy {proxy:?}: {e}")))?,
        };
        // One alert is one small request: send it now, not after the
        // previous segment's ACK.
        let _ = tcp.set_nodelay(true);
        let Some(tls) = &self.tls else {
            // Plain HTTP through a proxy: the request itself names the
            // webhook (absolute form, `Webhook::request`).
            return Ok(Stream::Plain(tcp));
        };
        let tcp = match &self.proxy {
            None => tcp,
            Some(proxy) => proxy::tunnel(tcp, proxy, &self.authority).await?,
        };
        let stream = tls.connect(&self.host, tcp).await.map_err(|e| {
            ConnectError(format!(
                "cannot connect: the TLS handshake with {} failed: {}",
                self.host,
                innermost(&e)
            ))
        })?;
        Ok(Stream::Tls(Box::new(stream)))
    }
}

/// The webhook's TLS settings: a private CA (trusted alone), a client
/// certificate for mutual TLS, or — for a test target — no verification,
/// which is logged at every start.
fn tls_connector(tls: &WebhookTls) -> Result<tokio_native_tls::TlsConnector> {
    let read = |what: &str, path: &std::path::Path| {
        std::fs::read(path)
            .with_context(|| format!("webhook.tls.{what}: cannot read {}", path.display()))
    };
    let mut builder = native_tls::TlsConnector::builder();
    if let Some(path) = &tls.ca_file {
        let pem = read("ca_file", path)?;
        let certs = pem_certificates(&pem).with_context(|| {
            format!(
                "webhook.tls.ca_file: {} is not a PEM certificate",
                path.display()
            )
        })?;
        if certs.is_empty() {
            bail!(
                "webhook.tls.ca_file: {} holds no PEM certificate",
                path.display()
            );
        }
        builder.disable_built_in_roots(true);
        for cert in certs {
            builder.add_root_certificate(cert);
        }
    }
    if let (Some(cert), Some(key)) = (&tls.client_cert_file, &tls.client_key_file) {
        let identity = native_tls::Identity::from_pkcs8(
            &read("client_cert_file", cert)?,
            &read("client_key_file", key)?,
        )
        .with_context(|| {
            format!(
                "webhook.tls: {} and {} are not a PEM certificate and its PKCS#8 key (convert the key with `openssl pkcs8 -topk8 -nocrypt`)",
                cert.display(),
                key.display()
            )
        })?;
        builder.identity(identity);
    }
    if tls.insecure_skip_verify {
        tracing::warn!(
            "webhook.tls.insecure_skip_verify is on: the webhook's certificate is not checked, so anyone on the path can read and answer the alerts; use ca_file instead"
        );
        builder.danger_accept_invalid_certs(true);
    }
    let connector = builder.build().context("webhook.tls: cannot set up TLS")?;
    Ok(tokio_native_tls::TlsConnector::from(connector))
}

/// Every certificate of a PEM bundle.
fn pem_certificates(pem: &[u8]) -> Result<Vec<native_tls::Certificate>> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let text = std::str::from_utf8(pem).context("not text")?;
    let mut certs = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let Some(len) = rest[start..].find(END) else {
            bail!("a certificate has no END line");
        };
        let block = &rest[start..start + len + END.len()];
        certs.push(native_tls::Certificate::from_pem(block.as_bytes())?);
        rest = &rest[start + len + END.len()..];
    }
    Ok(certs)
}

/// The innermost cause of an error: TLS libraries nest the useful part
/// ("certificate verify failed") under generic ones.
pub(crate) fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    last
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pem_bundle_yields_each_certificate_and_rejects_broken_ones() {
        assert!(pem_certificates(b"no certificate here").unwrap().is_empty());
        assert!(pem_certificates(b"-----BEGIN CERTIFICATE-----\nAAAA").is_err());
        assert!(
            pem_certificates(b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n")
                .is_err()
        );
    }
}
