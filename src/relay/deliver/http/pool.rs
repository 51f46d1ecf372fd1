//! The webhook's connections: idle ones reused most-recent-first, new ones
//! opened on a ramp.
//!
//! At most `concurrency` requests are in flight (`Webhook::slot`), so at
//! most that many connections exist; under load each is taken and given
//! back once per request, so the seed's connection per alert becomes a few
//! connections for a whole run.
//!
//! **The ramp.** Opening `concurrency` connections at once — 64 requests
//! find the pool empty right after a start — overflows a small target's
//! listen backlog (a single-process server has 5): the kernel drops the
//! handshakes it cannot queue and the client, which already believes
//! itself connected, writes its request into a connection the server
//! accepts seconds later. The request times out here, is retried on
//! another connection, and the server then answers the first one too: a
//! duplicate, and an alert seconds late. So the pool grows the way TCP's
//! congestion window does. A connection is *proven* once an answer came
//! back on it; at most `allowance` connections may be unproven at a time
//! (being opened, or waiting for their first answer). The allowance starts
//! at [`UNPROVEN`], grows by one with every connection proven (slow start:
//! it doubles per round trip while the target keeps up) up to
//! `concurrency`, and halves when a request times out unanswered or a
//! connection cannot be opened — the sign of a target that cannot take
//! more (a request cancelled by a revoke or the shutdown is no such sign). A request that finds no idle connection
//! and may not open one waits for one to be given back. A keep-alive
//! target's connections stay proven, so the pool stops growing once it has
//! what the load needs; a target that closes every connection after one
//! answer gets a new one per request, at full concurrency once proven.
//!
//! The lock is held only to push, pop and count.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use super::connection::Connection;
use super::connector::Connector;

/// How long a connection may rest before it is closed rather than reused:
/// shorter than common servers' keep-alive timeouts (nginx 75 s), so a
/// connection the server is about to close is rarely picked.
const IDLE_TIMEOUT: Duration = Duration::from_secs(50);

/// Connections that may be open without having carried an answer yet, at
/// first and at least.
const UNPROVEN: usize = 2;

pub(crate) struct Pool {
    connector: Connector,
    census: Arc<Census>,
}

impl Census {
    fn new(most: usize) -> Self {
        Self {
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
                proven: 0,
                allowance: UNPROVEN,
                most: most.max(UNPROVEN),
            }),
            changed: Notify::new(),
        }
    }
}

/// What the pool holds and how many connections exist: shared with every
/// connection's [`Member`], which counts it out when it closes.
struct Census {
    state: Mutex<State>,
    /// A connection was given back, proven or closed: a waiting request
    /// may go on.
    changed: Notify,
}

struct State {
    idle: Vec<Connection>,
    /// Connections open, being opened or in use.
    open: usize,
    /// Of those, the ones an answer came back on.
    proven: usize,
    /// How many may be unproven at a time (see the ramp).
    allowance: usize,
    /// The allowance's ceiling: `concurrency`.
    most: usize,
}

/// A connection's place in the census: counted in while it exists, out
/// when it is dropped (closed, failed, or its attempt timed out).
pub(crate) struct Member {
    census: Arc<Census>,
    proven: bool,
}

impl Member {
    /// An answer came back on this connection: the target takes it.
    pub(crate) fn prove(&mut self) {
        if !self.proven {
            self.proven = true;
            {
                let mut s = self.census.lock();
                s.proven += 1;
                s.allowance = (s.allowance + 1).min(s.most);
            }
            self.census.changed.notify_waiters();
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        {
            let mut s = self.census.lock();
            s.open = s.open.saturating_sub(1);
            if self.proven {
                s.proven = s.proven.saturating_sub(1);
            }
        }
        self.census.changed.notify_waiters();
    }
}

impl Census {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Counts and a stack: nothing a panic elsewhere leaves half-done.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What a request may do now.
enum Next {
    Reuse(Connection),
    Open(Member),
}

impl Pool {
    /// A pool of at most `concurrency` connections (`Webhook::slot`
    /// bounds them; the ramp's ceiling is the same).
    pub(crate) fn new(connector: Connector, concurrency: usize) -> Self {
        Self {
            connector,
            census: Arc::new(Census::new(concurrency)),
        }
    }

    /// A connection to use: the most recently rested one that is still
    /// open, or a new one when the ramp allows it; otherwise waits for one
    /// of those.
    pub(crate) async fn take(&self) -> Result<Connection, String> {
        loop {
            match self.next(true).await {
                Next::Reuse(mut conn) => {
                    // Checked outside the lock: it polls the connection.
                    if conn.idle_since.elapsed() < IDLE_TIMEOUT && !conn.closed() {
                        return Ok(conn);
                    }
                }
                Next::Open(member) => return self.open(member).await,
            }
        }
    }

    /// A new connection, for when a reused one failed (within the ramp).
    pub(crate) async fn connect(&self) -> Result<Connection, String> {
        match self.next(false).await {
            Next::Open(member) => self.open(member).await,
            // next(false) does not reuse; were it to, the connection works.
            Next::Reuse(conn) => Ok(conn),
        }
    }

    /// Waits until a connection may be reused (`reuse`) or opened.
    async fn next(&self, reuse: bool) -> Next {
        loop {
            let changed = self.census.changed.notified();
            let mut changed = std::pin::pin!(changed);
            // Registered before looking, so a change made between the look
            // and the wait still wakes this request.
            changed.as_mut().enable();
            {
                let mut s = self.census.lock();
                if reuse && let Some(conn) = s.idle.pop() {
                    return Next::Reuse(conn);
                }
                if s.open - s.proven.min(s.open) < s.allowance {
                    s.open += 1;
                    return Next::Open(Member {
                        census: self.census.clone(),
                        proven: false,
                    });
                }
            }
            changed.await;
        }
    }

    /// Opens the connection `member` holds a place for; a failure gives the
    /// place back (the member is dropped).
    async fn open(&self, member: Member) -> Result<Connection, String> {
        let opened = match self.connector.connect().await {
            Ok(stream) => Connection::new(stream, member).await,
            Err(e) => Err(e.0),
        };
        if opened.is_err() {
            self.stalled();
        }
        opened
    }

    /// The target did not take a connection, or left a request unanswered
    /// past its timeout: it may take fewer new connections (the allowance
    /// halves). A request cancelled by a revoke or the shutdown says
    /// nothing about the target, and does not come here.
    pub(crate) fn stalled(&self) {
        let mut s = self.census.lock();
        s.allowance = (s.allowance / 2).max(UNPROVEN);
    }

    /// Gives a connection that finished an exchange cleanly back, and
    /// closes the one that rested longest if it rested too long: after a
    /// burst, the connections it needed are not kept open (and, once the
    /// server closed its side, half-closed) until the next burst.
    pub(crate) fn give_back(&self, mut conn: Connection) {
        conn.idle_since = std::time::Instant::now();
        let expired = {
            let mut s = self.census.lock();
            s.idle.push(conn);
            // A stack: the bottom rested longest.
            match s.idle.first() {
                Some(c) if c.idle_since.elapsed() >= IDLE_TIMEOUT => Some(s.idle.remove(0)),
                _ => None,
            }
        };
        self.census.changed.notify_waiters();
        // Closed outside the lock (its member counts it out).
        drop(expired);
    }

    /// Connections open and proven, and the allowance, for tests.
    #[cfg(test)]
    fn counts(&self) -> (usize, usize, usize) {
        let s = self.census.lock();
        (s.open, s.proven, s.allowance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pool (concurrency 64) toward a listener that accepts connections
    /// but never answers: every connection it opens stays unproven until
    /// the test proves it. Keep the listener.
    fn silent_pool() -> (Arc<Pool>, std::net::TcpListener) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let url = url::Url::parse(&format!("http://127.0.0.1:{port}/a")).unwrap();
        let connector =
            Connector::new(&url, &Default::default(), None, Duration::from_secs(5)).unwrap();
        (Arc::new(Pool::new(connector, 64)), listener)
    }

    #[tokio::test]
    async fn no_more_than_two_connections_are_opened_before_one_answers() {
        let (pool, _listener) = silent_pool();
        let a = pool.take().await.unwrap();
        let mut b = pool.take().await.unwrap();
        assert_eq!(pool.counts(), (2, 0, 2));
        // A third request waits: two connections are unproven.
        let third = tokio::spawn({
            let pool = pool.clone();
            async move { pool.take().await }
        });
        // One turn of this current-thread runtime: the spawned request runs
        // until it waits.
        tokio::task::yield_now().await;
        assert_eq!(pool.counts().0, 2, "began a third unproven connection");
        // One answers: the pool may grow (slow start: the allowance too).
        b.member.prove();
        assert_eq!(pool.counts(), (2, 1, 3));
        let _third = tokio::time::timeout(Duration::from_secs(5), third)
            .await
            .expect("the third request went on once a connection was proven")
            .unwrap()
            .unwrap();
        assert_eq!(pool.counts(), (3, 1, 3));
        // A stalled request halves the allowance; a connection merely
        // dropped (a cancelled request) does not.
        drop(a);
        assert_eq!(pool.counts(), (2, 1, 3));
        pool.stalled();
        assert_eq!(pool.counts(), (2, 1, 2));
    }

    #[tokio::test]
    async fn a_given_back_connection_is_reused_by_a_waiting_request() {
        let (pool, _listener) = silent_pool();
        let a = pool.take().await.unwrap();
        let _b = pool.take().await.unwrap();
        let waiting = tokio::spawn({
            let pool = pool.clone();
            async move { pool.take().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "the request waits");
        pool.give_back(a);
        let _reused = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken by the connection given back")
            .unwrap()
            .unwrap();
        assert_eq!(pool.counts().0, 2, "reused, not a third one");
    }
}
