//! Every Kafka client kbridge creates is built here — the operator
//! commands', the relay's consumer and dead-letter producer, the demo's —
//! so that the brokers, the user's librdkafka properties (`-X` or `[kafka]`)
//! and `--timeout` mean the same thing everywhere, librdkafka's logs reach
//! `tracing` the same way, and an unreachable cluster or a missing topic
//! produces one clear line instead of a wall of connection errors.
//!
//! What it offers: [`KafkaOpts`] (the shared settings, and the builder of
//! every client); [`KafkaContext`] (and `wraps_kafka_context!` for a
//! context with callbacks of its own); the one-line diagnosis of an
//! unreachable cluster (`diagnosis`, `connect_failure`); topics present,
//! waited for, their partitions (`topics`).

mod connect_failure;
mod context;
mod diagnosis;
mod options;
mod topics;

pub(crate) use context::{KafkaContext, LastError, LibrdkafkaLogs, wraps_kafka_context};
pub(crate) use options::{DEFAULT_BROKERS, KafkaOpts, PropertySource};
pub(crate) use topics::partitions_of;
