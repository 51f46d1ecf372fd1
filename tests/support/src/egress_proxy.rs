//! A real HTTP proxy on 127.0.0.1 for the egress proxy tests: Debian's
//! tinyproxy (`scripts/setup.sh` installs it), with Basic credentials. It
//! forwards plain HTTP requests (adding `Via: 1.1 tinyproxy …`) and opens
//! CONNECT tunnels; its log records each request line, so a test can tell
//! that a request went through it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::wait::wait_until;

pub const USER: &str = "relay";
pub const PASSWORD: &str = "pr0xy-s3cret";

pub struct EgressProxy {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl EgressProxy {
    /// Starts tinyproxy on a free port of 127.0.0.1, wanting `USER` and
    /// `PASSWORD`, and waits until it listens.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        // A port that was free a moment ago: tinyproxy cannot be told to
        // pick one and say which.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = dir.path().join("tinyproxy.log");
        let config = dir.path().join("tinyproxy.conf");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 60\nLogFile \"{}\"\nLogLevel Connect\nMaxClients 200\nAllow 127.0.0.1\nBasicAuth {USER} {PASSWORD}\n",
                log.display()
            ),
        )
        .expect("write tinyproxy.conf");
        let child = Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start tinyproxy ({e}): run scripts/setup.sh, which installs it")
            });
        let mut proxy = Self { port, dir, child };
        let listening = wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        if !listening {
            let exited = proxy.child.try_wait().ok().flatten();
            panic!(
                "tinyproxy does not listen on {port} (exit: {exited:?}); its log:\n{}",
                proxy.log()
            );
        }
        proxy
    }

    /// `http://relay:<password>@127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.url_with(USER, PASSWORD)
    }

    pub fn url_with(&self, user: &str, password: &str) -> String {
        format!("http://{user}:{password}@127.0.0.1:{}", self.port)
    }

    /// What tinyproxy logged so far (request lines among them).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// How many logged request lines contain `needle` (`CONNECT
    /// 127.0.0.1:8443`, `POST http://…`).
    pub fn requests(&self, needle: &str) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("Request (") && l.contains(needle))
            .count()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("tinyproxy.log")
    }
}

impl Drop for EgressProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
