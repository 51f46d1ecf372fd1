//! Offset commits, one at a time.
//!
//! librdkafka retries a failed OffsetCommit request by itself. With two
//! commits in flight — an auto-commit being retried and the commit made on
//! shutdown or revoke — the retry of the older one can reach the broker
//! after the newer one and move the group's offset back (seen with the mock
//! cluster: a retried `0@10` landed after the shutdown's `0@20`, so a
//! restart would have sent ten alerts again). So kbridge does not use
//! librdkafka's auto-commit: [`spawn_periodic`] commits the stored offsets
//! every `commit_interval`, and [`commit_now`] commits a revoke's or the
//! shutdown's points; both are synchronous commits that pass through one
//! [`CommitGate`]. A synchronous commit returns only when its request,
//! retries included, is finished, so commits reach the broker in the order
//! they were made.

use std::sync::{Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use backon::{BlockingRetryable, ExponentialBuilder};
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use tokio::task::JoinHandle;

use super::point::{CommitPoint, shown};

/// How long a revoke or the shutdown may spend committing: waiting for an
/// earlier commit to finish, then trying again after passing errors. With
/// the 20 s drain timeout and 2 s for aborted deliveries it keeps a stop
/// under systemd's 30 s.
pub(crate) const COMMIT_WAIT: Duration = Duration::from_secs(5);

/// A consumer context that carries the [`CommitGate`] of its consumer.
pub(crate) trait CommitsInTurn {
    fn commit_gate(&self) -> &CommitGate;
}

/// Lets one commit run at a time.
#[derive(Default)]
pub(crate) struct CommitGate {
    busy: Mutex<bool>,
    idle: Condvar,
}

impl CommitGate {
    /// Runs `commit` once no other commit is in flight, waiting at most
    /// `wait`. Returns `None` when it gave up: an earlier commit is still
    /// waiting (for a group coordinator, typically), and committing beside
    /// it could be overtaken by it.
    pub(crate) fn exclusive<T>(&self, wait: Duration, commit: impl FnOnce() -> T) -> Option<T> {
        let deadline = Instant::now() + wait;
        {
            let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
            while *busy {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return None;
                }
                busy = self
                    .idle
                    .wait_timeout(busy, left)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            *busy = true;
        }
        // Released even if `commit` panics.
        let _release = Release(self);
        Some(commit())
    }
}

struct Release<'a>(&'a CommitGate);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        *self.0.busy.lock().unwrap_or_else(|p| p.into_inner()) = false;
        self.0.idle.notify_one();
    }
}

/// Stores one partition's commit point for the next periodic commit.
pub(crate) fn store<C: ConsumerContext>(consumer: &impl Consumer<C>, point: &CommitPoint) {
    if let Err(e) = consumer.store_offsets(&CommitPoint::list(std::slice::from_ref(point))) {
        // The partition was revoked meanwhile; its new owner reads on.
        tracing::debug!("cannot store offset {point}: {e}");
    }
}

/// Stores and synchronously commits the given commit points, after any
/// commit still in flight. Returns whether they were committed; a failure
/// is logged, and its events are read again after a restart or by the
/// partitions' next owner. Blocking.
pub(crate) fn commit_now<C: ConsumerContext + CommitsInTurn>(
    consumer: &impl Consumer<C>,
    points: &[CommitPoint],
) -> bool {
    if points.is_empty() {
        return true;
    }
    let tpl = CommitPoint::list(points);
    // Stored too, so that a periodic commit never sends an older offset.
    if let Err(e) = consumer.store_offsets(&tpl) {
        tracing::debug!("cannot store the commit points: {e}");
    }
    let gate = consumer.context().commit_gate();
    // A commit that failed on a passing condition (request timeout,
    // coordinator moving) is tried again within COMMIT_WAIT: the alternative
    // is sending every event since the last commit again.
    let attempt = || consumer.commit(&tpl, CommitMode::Sync);
    let deadline = Instant::now() + COMMIT_WAIT;
    let committed = gate.exclusive(COMMIT_WAIT, || {
        attempt
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(100))
                    .with_max_delay(Duration::from_secs(1))
                    .with_total_delay(Some(deadline.saturating_duration_since(Instant::now())))
                    .without_max_times()
                    .with_jitter(),
            )
            .sleep(std::thread::sleep)
            .when(worth_retrying)
            .notify(|e, after| {
                tracing::debug!("offset commit failed: {e}; trying again in {after:?}")
            })
            .call()
    });
    match committed {
        Some(Ok(())) => {
            tracing::debug!(offsets = ?shown(points), "committed");
            true
        }
        Some(Err(e)) if nothing_to_commit(&e) => true,
        Some(Err(e)) => {
            tracing::warn!(offsets = ?shown(points), "offset commit failed: {e}; these events will be read again");
            false
        }
        None => {
            tracing::warn!(
                offsets = ?shown(points),
                "not committed: an earlier offset commit is still waiting for the group coordinator after {COMMIT_WAIT:?}; these events will be read again"
            );
            false
        }
    }
}

/// Commits the stored offsets of the current assignment every `every`,
/// until the returned task is aborted. It holds the consumer only while
/// committing: the consumer must be dropped when the relay stops, since
/// dropping it is what sends the LeaveGroup.
pub(crate) fn spawn_periodic<C>(
    consumer: Weak<StreamConsumer<C>>,
    every: Duration,
) -> JoinHandle<()>
where
    C: ConsumerContext + CommitsInTurn + 'static,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let consumer = consumer.clone();
            let done = tokio::task::spawn_blocking(move || {
                let consumer = consumer.upgrade()?;
                consumer
                    .context()
                    .commit_gate()
                    .exclusive(every, || consumer.commit_consumer_state(CommitMode::Sync))
            })
            .await;
            match done {
                Ok(Some(Err(e))) if !nothing_to_commit(&e) => {
                    tracing::warn!("offset commit failed: {e}; it is retried with the next commit")
                }
                _ => {}
            }
        }
    })
}

/// librdkafka's answer when no stored offset moved since the last commit.
fn nothing_to_commit(e: &KafkaError) -> bool {
    matches!(e, KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset))
}

/// Whether a failed commit may succeed if made again soon: the request
/// timed out or the group coordinator is moving. A commit refused because
/// the group moved on (rebalance, unknown member) would fail again.
fn worth_retrying(e: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::RequestTimedOut
                | C::NetworkException
                | C::CoordinatorLoadInProgress
                | C::CoordinatorNotAvailable
                | C::NotCoordinator
                | C::WaitingForCoordinator
                | C::BrokerTransportFailure
                | C::AllBrokersDown
                | C::OperationTimedOut
                | C::TimedOutQueue
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn commits_never_overlap() {
        let gate = Arc::new(CommitGate::default());
        let running = Arc::new(AtomicUsize::new(0));
        let overlapped = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (gate, running, overlapped) =
                    (gate.clone(), running.clone(), overlapped.clone());
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        gate.exclusive(Duration::from_secs(10), || {
                            if running.fetch_add(1, Ordering::SeqCst) > 0 {
                                overlapped.fetch_add(1, Ordering::SeqCst);
                            }
                            std::thread::yield_now();
                            running.fetch_sub(1, Ordering::SeqCst);
                        })
                        .expect("gate free within 10 s");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        assert_eq!(overlapped.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn gives_up_while_an_earlier_commit_is_stuck() {
        let gate = Arc::new(CommitGate::default());
        let (entered_tx, entered_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let stuck = {
            let gate = gate.clone();
            std::thread::spawn(move || {
                gate.exclusive(Duration::ZERO, || {
                    entered_tx.send(()).expect("send");
                    let _ = release_rx.recv();
                })
            })
        };
        entered_rx.recv().expect("first commit started");
        assert!(
            gate.exclusive(Duration::from_millis(50), || ()).is_none(),
            "a second commit must not run beside a stuck one"
        );
        release_tx.send(()).expect("release");
        assert!(stuck.join().expect("thread").is_some());
        assert!(gate.exclusive(Duration::ZERO, || ()).is_some());
    }
}
