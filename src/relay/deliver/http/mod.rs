//! The webhook's HTTP client: one POST of one alert body (`webhook`), over
//! HTTP/1.1 connections driven by the delivery task that holds them
//! (`connection`), opened by `connector` (TCP, TLS by the system's OpenSSL)
//! and kept between requests by `pool`, through an egress `proxy` when one
//! is set. What an answer means is decided by
//! `deliver`'s pure core (`answer`, `answer_rules`), which `webhook` asks.
//! A signed robot's signature is `signing`'s, made per attempt.
//!
//! What it offers: [`Webhook`] (built once per route), the [`Attempt`] one
//! POST comes to, and the [`AttemptObserver`] that sees every attempt.

mod connection;
mod connector;
mod pool;
mod proxy;
mod signing;
mod webhook;

pub(crate) use proxy::Proxy;
pub(crate) use webhook::{Attempt, AttemptObserver, Reach, Webhook};
