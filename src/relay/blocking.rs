//! Blocking waits in async code: a revoke waiting for its deliveries, a
//! commit or a flush waiting for the brokers.

/// Runs `f`, which blocks, without holding up a runtime worker: on the
/// multi-thread runtime the worker's other tasks (even the one in its LIFO
/// slot) move to another thread first, so they keep running even on a
/// runtime with one worker — a revoke that waits for deliveries must let
/// them finish. Elsewhere (a blocking-pool thread, a consumer closing on
/// drop) it simply runs.
pub(crate) fn off_the_runtime<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}
