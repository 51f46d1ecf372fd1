//! Integration tests of `kbridge run`, the alert relay, against a real
//! Kafka broker (`scripts/test-kafka.sh`, or `KBRIDGE_TEST_BROKERS`) and a
//! fake ops platform: a real HTTP server on 127.0.0.1 (`support::target`).
//!
//! Each test uses its own topics and consumer group, runs the relay as a
//! child process (`support::relay`) and synchronises by polling (logs,
//! requests, committed offsets), never by bare sleeps.
//!
//! `cargo test --test relay -- --test-threads=4`.

mod answer_rules;
mod audit;
mod bad_input;
mod brownout;
mod dead_letter_trouble;
mod delivery;
mod handover;
mod hostile_jq;
mod https;
mod mapping;
mod memory_bound;
mod offset_reset;
mod panics;
mod proxy;
mod rebalance;
mod routes;
mod secrets;
mod secured;
mod shutdown;
mod signing;
mod startup;
mod storm;
