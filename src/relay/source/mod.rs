//! Source — Kafka in, the first stage of an event's trip: the group
//! consumer (`consumer`), what a rebalance does (`rebalance`), pausing
//! partitions when too many events are in processing (`backpressure`), and
//! the consumed message as every later stage sees it (`origin`). The loop
//! that reads from it and starts each message's processing is the relay's
//! orchestrator, `consume_loop`.
//!
//! What it offers: [`create_consumer`] and the [`RelayConsumer`] it
//! builds, [`Backpressure`], and [`Origin`].

mod backpressure;
mod consumer;
mod offset_reset;
mod origin;
mod rebalance;

pub(crate) use backpressure::Backpressure;
pub(crate) use consumer::{
    CommittedOffsets, Membership, OnAssignment, RelayConsumer, create as create_consumer,
};
pub(crate) use origin::Origin;
pub(crate) use rebalance::REVOKE_MARGIN;
