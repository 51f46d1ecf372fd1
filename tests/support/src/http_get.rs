//! A plain HTTP GET, for the relay's health and metrics endpoints.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// A port free on 127.0.0.1 right now (for `--metrics-addr`).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

/// The status of `GET path` on 127.0.0.1:port, or `None` when nothing
/// answers (not listening yet, say).
pub fn get_status(port: u16, path: &str) -> Option<u16> {
    get(port, path)?.split_whitespace().nth(1)?.parse().ok()
}

/// The whole answer (status line, headers, body) of `GET path` on
/// 127.0.0.1:port, or `None` when nothing answers.
pub fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    Some(answer)
}
