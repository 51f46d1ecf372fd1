//! The webhook's idle connections, reused most-recent-first.
//!
//! At most `concurrency` requests are in flight (`Webhook::slot`), so at
//! most that many connections exist; under load each is taken and given
//! back once per request, so the seed's connection per alert becomes a few
//! connections for a whole run. The lock is held only to push or pop.

use std::sync::Mutex;
use std::time::Duration;

use super::connection::Connection;
use super::connector::Connector;

/// How long a connection may rest before it is closed rather than reused:
/// shorter than common servers' keep-alive timeouts (nginx 75 s), so a
/// connection the server is about to close is rarely picked.
const IDLE_TIMEOUT: Duration = Duration::from_secs(50);

pub(crate) struct Pool {
    connector: Connector,
    idle: Mutex<Vec<Connection>>,
}

impl Pool {
    pub(crate) fn new(connector: Connector) -> Self {
        Self {
            connector,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// A connection to use: the most recently rested one that is still
    /// open, or a new one.
    pub(crate) async fn take(&self) -> Result<Connection, String> {
        while let Some(mut conn) = self.pop() {
            if conn.idle_since.elapsed() < IDLE_TIMEOUT && !conn.closed() {
                return Ok(conn);
            }
        }
        self.connect().await
    }

    /// A new connection, for when a reused one failed.
    pub(crate) async fn connect(&self) -> Result<Connection, String> {
        let stream = self.connector.connect().await.map_err(|e| e.0)?;
        Connection::new(stream).await
    }

    /// Gives a connection that finished an exchange cleanly back, and
    /// closes the one that rested longest if it rested too long: after a
    /// burst, the connections it needed are not kept open (and, once the
    /// server closed its side, half-closed) until the next burst.
    pub(crate) fn give_back(&self, mut conn: Connection) {
        conn.idle_since = std::time::Instant::now();
        let expired = match self.idle.lock() {
            Ok(mut idle) => {
                idle.push(conn);
                // A stack: the bottom rested longest.
                match idle.first() {
                    Some(c) if c.idle_since.elapsed() >= IDLE_TIMEOUT => Some(idle.remove(0)),
                    _ => None,
                }
            }
            Err(_) => None,
        };
        // Closed outside the lock.
        drop(expired);
    }

    fn pop(&self) -> Option<Connection> {
        self.idle.lock().ok()?.pop()
    }
}
