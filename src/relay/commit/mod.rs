//! Commit, the last stage of an event's trip: when its offset may be
//! committed, and how.
//!
//! An offset is committed only when its event and every earlier one of its
//! partition was delivered, dead-lettered or skipped. The commit half of
//! one event's trip, in order:
//!
//! 1. `intake` calls [`Partitions::accept`](partitions::Partitions::accept):
//!    the offset enters the partition's [`OffsetTracker`](offsets::OffsetTracker)
//!    as pending on each route that has work for it, under the partition's
//!    current [`Ownership`](ownership::Ownership), which the job carries —
//!    unless the partition's previous owner already handled it there
//!    (`handed_over`): then it is skipped on that route.
//! 2. An event with an alert id waits in the partition's per-alert FIFO
//!    ([`KeyedQueue`](ordering::KeyedQueue), via `Partitions::submit`) until
//!    the alert's earlier events are done: a recovery never overtakes its
//!    trigger.
//! 3. When the event is handled on a route, `deliver` calls
//!    [`Partitions::finish`](partitions::Partitions::finish): the route's
//!    part of the offset is done; with its last part, the offset leaves the
//!    pending set.
//! 4. [`committer::spawn_periodic`] commits every `commit_interval` the
//!    [`CommitPoint`](point::CommitPoint)s that moved — each partition's
//!    contiguous handled prefix, with what was handled beyond it as the
//!    commit's metadata ([`handed_over`]), so that the next owner skips it.
//!    On a revoke (`source::rebalance`) and at shutdown (`drain`),
//!    [`Partitions::revoke`](partitions::Partitions::revoke) ends the
//!    ownerships (their deliveries stop), forgets the partitions and
//!    returns their points, which [`committer::commit_now`] commits — after
//!    the lock is released, within a deadline. Every commit passes through
//!    one [`CommitGate`](committer::CommitGate), one at a time. At an
//!    assignment, [`handover::read`] reads the previous owner's record.
//!
//! What it offers: [`Partitions`] (the per-partition state: accept, submit,
//! finish, revoke), the [`Ownership`] a job carries and its [`OrderKey`],
//! `committer` (commit now, commit periodically, one at a time), and
//! `handover` (the previous owner's record, read at an assignment).

pub(crate) mod committer;
mod handed_over;
pub(crate) mod handover;
mod offsets;
mod ordering;
mod ownership;
mod partitions;
mod point;

pub(crate) use offsets::{MAX_ROUTES, RouteSet, route_bit};
pub(crate) use ordering::OrderKey;
pub(crate) use ownership::Ownership;
pub(crate) use partitions::{Partitions, Refused};
pub(crate) use point::{CommitPoint, shown};
