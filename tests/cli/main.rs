//! Integration tests of the kbridge CLI against a real Kafka broker: every
//! command and option of `src/cli/`, error paths included, and `demo`
//! (the relay's `run` is tested in `tests/relay/`).
//!
//! Each test uses its own topics and groups (`unique`), so tests run in
//! parallel against one broker. Conditions on the broker are awaited by
//! polling (`wait_until`), never by sleeping.
//!
//! One module per command family, as in `src/commands/`, and `global` for
//! what every command shares. `cargo test --test cli topics::` runs one
//! family.

mod offsets;
mod printed;

mod check;
mod cluster;
mod consume;
mod demo;
mod dlq;
mod global;
mod groups;
mod produce;
mod secured;
mod topics;
mod trace;
