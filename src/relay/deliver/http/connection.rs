//! One long-lived HTTP/1.1 connection to the webhook, driven by the task
//! that uses it.
//!
//! A pooled client (reqwest, hyper-util's) runs each connection as a task
//! of its own: every request crosses from the caller's task to the
//! connection's and the answer back, two wake-ups that often land on the
//! other worker thread, besides the pool's bookkeeping. Here the delivery
//! task that holds the connection polls hyper's connection future itself
//! while it waits for its answer, so a request is written and its answer
//! read without leaving the task. Between requests the connection rests in
//! the `pool`, unpolled; a close by the server is noticed when it is taken
//! out again.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Instant;

use bytes::Bytes;
use futures_util::FutureExt;
use http_body_util::{BodyExt, Full};
use hyper::body::Body as _;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

use super::connector::{Stream, innermost};
use super::pool::Member;

type Driver = http1::Connection<TokioIo<Stream>, Full<Bytes>>;

pub(crate) struct Connection {
    sender: http1::SendRequest<Full<Bytes>>,
    driver: Pin<Box<Driver>>,
    /// Since when it rests in the pool.
    pub(crate) idle_since: Instant,
    /// It carried a request before: a failure may be the server's close of
    /// an idle connection, not the target's trouble.
    pub(crate) reused: bool,
    /// Its place in the pool's count; proven by its first answer.
    pub(crate) member: Member,
}

/// The target's answer to one request.
pub(crate) struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    /// At most the cap given to `exchange`.
    pub body: Vec<u8>,
}

/// How one exchange ended, and whether the connection can carry another.
pub(crate) struct Exchange {
    pub result: Result<Answer, String>,
    pub reusable: bool,
}

impl Connection {
    /// Sets up HTTP/1.1 on a connected stream (no I/O yet).
    pub(crate) async fn new(stream: Stream, member: Member) -> Result<Self, String> {
        let (sender, driver) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("cannot connect: {}", innermost(&e)))?;
        Ok(Self {
            sender,
            driver: Box::pin(driver),
            idle_since: Instant::now(),
            reused: false,
            member,
        })
    }

    /// Whether the server has closed it while it rested (polls it once,
    /// which also reads a close notice the server sent).
    pub(crate) fn closed(&mut self) -> bool {
        self.sender.is_closed() || self.driver.as_mut().now_or_never().is_some()
    }

    /// Sends one request and reads its answer, of which at most `cap`
    /// bytes of body are kept (a longer answer ends the connection).
    pub(crate) async fn exchange(
        &mut self,
        request: http::Request<Full<Bytes>>,
        cap: usize,
    ) -> Exchange {
        let mut ended: Option<Result<(), hyper::Error>> = None;
        let outcome = {
            let sender = &mut self.sender;
            let work = async move {
                sender.ready().await.map_err(|e| describe(&e))?;
                let response = sender
                    .send_request(request)
                    .await
                    .map_err(|e| describe(&e))?;
                let (parts, mut body) = response.into_parts();
                let mut kept = Vec::new();
                let mut whole = true;
                while let Some(frame) = body.frame().await {
                    let frame = frame.map_err(|e| {
                        format!(
                            "HTTP {}, reading the answer failed: {}",
                            parts.status.as_u16(),
                            describe(&e)
                        )
                    })?;
                    if let Ok(data) = frame.into_data() {
                        let room = cap.saturating_sub(kept.len());
                        kept.extend_from_slice(&data[..data.len().min(room)]);
                        if data.len() >= room && !body.is_end_stream() {
                            whole = false;
                            break;
                        }
                    }
                }
                Ok::<_, String>((
                    Answer {
                        status: parts.status.as_u16(),
                        headers: parts.headers,
                        body: kept,
                    },
                    whole,
                ))
            };
            let mut work = std::pin::pin!(work);
            let driver = &mut self.driver;
            // The connection is polled first: it writes the request, reads the
            // answer and hands it over; then the request's side takes it. Once
            // the connection has ended, the request's side resolves at once
            // (with what was read, or an error), so it is polled once more.
            std::future::poll_fn(|cx| {
                if ended.is_none()
                    && let Poll::Ready(r) = driver.as_mut().poll(cx)
                {
                    ended = Some(r);
                }
                match work.as_mut().poll(cx) {
                    Poll::Ready(r) => Poll::Ready(r),
                    Poll::Pending if ended.is_some() => Poll::Ready(Err(String::new())),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await
        };
        self.reused = true;
        match outcome {
            Ok((answer, whole)) => {
                self.member.prove();
                Exchange {
                    reusable: whole && ended.is_none() && !self.sender.is_closed(),
                    result: Ok(answer),
                }
            }
            Err(e) => {
                let e = match (e.is_empty(), &ended) {
                    (false, _) => e,
                    (true, Some(Err(c))) => describe(c),
                    (true, _) => "the webhook closed the connection".to_string(),
                };
                Exchange {
                    result: Err(e),
                    reusable: false,
                }
            }
        }
    }
}

/// hyper's errors say what went wrong ("connection closed before message
/// completed"), their sources why ("Connection reset by peer").
fn describe(e: &hyper::Error) -> String {
    let cause = innermost(e);
    let what = e.to_string();
    if cause == what {
        format!("request failed: {what}")
    } else {
        format!("request failed: {what}: {cause}")
    }
}
