//! The fault suite of a fleet: several `kbridge run` processes in one
//! consumer group, against the real test broker (and, for a stuck group
//! coordinator, librdkafka's mock cluster) and a real HTTP target, under a
//! steady stream of alerts. Each scenario asserts exact outcomes — nothing
//! lost, the group's offsets committed to the log end, no alert's events
//! out of order among their first arrivals, duplicates within a stated
//! bound, the worst alert delay within its target — and prints one row of
//! the README's Reliability table (`cargo test --test chaos -- --nocapture`).
//!
//! The scenarios run one at a time (`fleet::exclusive`): their delays are
//! the figures, and two fleets on two cores would measure each other.

mod fleet;
mod membership;
mod orphans;
mod rate_limit;
mod small_target;
mod stop;
mod throttle;
mod verdict;
