//! Stage 0, Kafka in: the group consumer (`consumer`), what a rebalance
//! does (`rebalance`), the loop that reads messages and starts their
//! processing (`consume_loop`), and pausing when too many events are in
//! processing (`backpressure`).

mod backpressure;
pub(crate) mod consume_loop;
pub(crate) mod consumer;
mod rebalance;
