//! Commit, the last stage of an event's trip: when its offset may be
//! committed, and how.
//!
//! An offset is committed only when its event and every earlier one of its
//! partition was delivered, dead-lettered or skipped. The commit half of
//! one event's trip, in order:
//!
//! 1. `intake` calls [`Partitions::accept`](partitions::Partitions::accept):
//!    the offset enters the partition's [`OffsetTracker`](offsets::OffsetTracker)
//!    as pending, under the partition's current
//!    [`Ownership`](ownership::Ownership), which the job carries.
//! 2. An event with an alert id waits in the partition's per-alert FIFO
//!    ([`KeyedQueue`](ordering::KeyedQueue), via `Partitions::submit`) until
//!    the alert's earlier events are done: a recovery never overtakes its
//!    trigger.
//! 3. When the event is handled, `deliver` calls
//!    [`Partitions::finish`](partitions::Partitions::finish): the offset
//!    leaves the pending set; if the contiguous prefix moved, the new
//!    [`CommitPoint`](point::CommitPoint) is *stored* in librdkafka
//!    ([`committer::store`], a local call), under the partitions' lock.
//! 4. Stored offsets are *committed* by [`committer::spawn_periodic`] every
//!    `commit_interval`. On a revoke (`source::rebalance`) and at shutdown
//!    (`drain`), [`Partitions::revoke`](partitions::Partitions::revoke) ends
//!    the ownerships (their deliveries stop), forgets the partitions and
//!    returns their points, which [`committer::commit_now`] commits — after
//!    the lock is released, within a deadline. Every commit passes through
//!    one [`CommitGate`](committer::CommitGate), one at a time.

//!
//! What it offers: [`Partitions`] (the per-partition state: accept, submit,
//! finish, revoke), the [`Ownership`] a job carries and its [`OrderKey`],
//! and `committer` (store, commit now, commit periodically, one at a time).

pub(crate) mod committer;
mod offsets;
mod ordering;
mod ownership;
mod partitions;
mod point;

pub(crate) use ordering::OrderKey;
pub(crate) use ownership::Ownership;
pub(crate) use partitions::{Partitions, Refused};
pub(crate) use point::shown;
