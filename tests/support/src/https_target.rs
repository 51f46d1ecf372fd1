//! An HTTPS target on 127.0.0.1 for the webhook's TLS tests: openssl's
//! server side with the test certificates (`scripts/test-certs.sh`: the
//! server certificate is for IP 127.0.0.1, signed by the test CA), and
//! optionally mutual TLS, requiring a client certificate the test CA
//! signed. It answers every request 200 `{"code":0}` and records it; a
//! handshake that fails is counted.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod, SslStream, SslVerifyMode};

#[derive(Debug, Clone)]
pub struct HttpsRequest {
    pub path: String,
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// The client certificate's subject CN, with mutual TLS.
    pub client_cn: Option<String>,
}

pub struct HttpsTarget {
    port: u16,
    log: Arc<Mutex<Vec<HttpsRequest>>>,
    failed_handshakes: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl HttpsTarget {
    /// Serves with `certs/server.pem`; with `mutual_tls`, requires a client
    /// certificate signed by `certs/ca.pem`.
    pub fn start(certs: &Path, mutual_tls: bool) -> Self {
        let mut acceptor =
            SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).expect("openssl acceptor");
        acceptor
            .set_private_key_file(certs.join("server.key"), SslFiletype::PEM)
            .expect("server key");
        acceptor
            .set_certificate_chain_file(certs.join("server.pem"))
            .expect("server certificate");
        if mutual_tls {
            acceptor.set_ca_file(certs.join("ca.pem")).expect("CA");
            acceptor.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
        }
        let acceptor = Arc::new(acceptor.build());
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let target = Self {
            port,
            log: Arc::default(),
            failed_handshakes: Arc::default(),
            stop: Arc::default(),
        };
        let (log, failed, stop) = (
            target.log.clone(),
            target.failed_handshakes.clone(),
            target.stop.clone(),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let (acceptor, log, failed) = (acceptor.clone(), log.clone(), failed.clone());
                std::thread::spawn(move || match acceptor.accept(stream) {
                    Ok(tls) => serve(tls, &log),
                    Err(_) => {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        target
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/alerts", self.port)
    }

    pub fn requests(&self) -> Vec<HttpsRequest> {
        self.log.lock().unwrap().clone()
    }

    pub fn failed_handshakes(&self) -> usize {
        self.failed_handshakes.load(Ordering::SeqCst)
    }
}

impl Drop for HttpsTarget {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Answers the requests of one connection (keep-alive) until it closes.
fn serve(tls: SslStream<TcpStream>, log: &Mutex<Vec<HttpsRequest>>) {
    let client_cn = tls.ssl().peer_certificate().and_then(|c| {
        c.subject_name()
            .entries_by_nid(openssl::nid::Nid::COMMONNAME)
            .next()
            .and_then(|e| e.data().to_string().ok())
    });
    let mut reader = BufReader::new(tls);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        log.lock().unwrap().push(HttpsRequest {
            path,
            headers,
            body,
            client_cn: client_cn.clone(),
        });
        let answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{\"code\":0}";
        if reader.get_mut().write_all(answer).is_err() {
            return;
        }
    }
}
