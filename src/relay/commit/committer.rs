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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use backon::{BlockingRetryable, ExponentialBuilder};
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use tokio::task::JoinHandle;

use super::point::{CommitPoint, shown};

/// How long a revoke or the stop may spend committing: waiting for an
/// earlier commit to finish, then the commit itself, passing errors
/// retried. The rebalance of the revoked partitions waits that long at
/// most.
pub(crate) const COMMIT_WAIT: Duration = Duration::from_secs(5);

/// A consumer context that carries the [`CommitGate`] of its consumer, and
/// a handle on that consumer for commits made on a helper thread.
pub(crate) trait CommitsInTurn: ConsumerContext + Sized + 'static {
    fn commit_gate(&self) -> &CommitGate;
    /// The consumer this context belongs to (`None` once it is dropped).
    fn consumer(&self) -> Option<Arc<StreamConsumer<Self>>>;
    /// The commit points that moved since they were last committed.
    fn to_commit(&self) -> Vec<CommitPoint>;
    /// These points were committed.
    fn committed(&self, points: &[CommitPoint]);
    /// Whether what the handled events fed is durable (the audit
    /// records), waiting at most until `deadline`; asked after a commit's
    /// points were taken, before they are committed.
    fn durable(&self, _deadline: Instant) -> bool {
        true
    }
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

/// Set once the brokers refused a commit's metadata as too large (their
/// `offset.metadata.max.bytes` is below kbridge's budget): from then on
/// commits carry none, and a hand-over sends again what was handled beyond
/// the commit point, as before.
static BARE: AtomicBool = AtomicBool::new(false);

/// Commits `points` (a synchronous commit: blocking), with their metadata
/// unless the brokers refused it before; refused now, once more without.
fn commit_points<C: ConsumerContext>(
    consumer: &StreamConsumer<C>,
    points: &[CommitPoint],
) -> Result<(), KafkaError> {
    let bare = BARE.load(Ordering::Relaxed);
    match consumer.commit(&CommitPoint::list(points, bare), CommitMode::Sync) {
        Err(e)
            if !bare
                && e.rdkafka_error_code() == Some(RDKafkaErrorCode::OffsetMetadataTooLarge) =>
        {
            BARE.store(true, Ordering::Relaxed);
            tracing::warn!(
                "the brokers refuse kbridge's {} bytes of offset commit metadata (their offset.metadata.max.bytes is lower; 4096 is Kafka's default): commits go without it, so the next owner of a partition sends again what was handled beyond its commit point",
                super::handed_over::BUDGET
            );
            consumer.commit(&CommitPoint::list(points, true), CommitMode::Sync)
        }
        other => other,
    }
}

/// Commits the given commit points, after any commit still in
/// flight, waiting at most until `deadline`. Returns whether they were
/// committed; a failure is logged, and its events are read again after a
/// restart or by the partitions' next owner. Blocking, up to `deadline`.
///
/// librdkafka's synchronous commit has no timeout of its own: with a stuck
/// group coordinator it waits for `socket.timeout.ms` (60 s) per attempt.
/// So the commit runs on a helper thread and the caller stops waiting at
/// the deadline; the helper makes no new attempt after it, and holds the
/// [`CommitGate`] until its attempt is over, so no later commit overtakes
/// it.
pub(crate) fn commit_now<C: CommitsInTurn>(
    consumer: &Arc<StreamConsumer<C>>,
    points: &[CommitPoint],
    deadline: Instant,
) -> bool {
    if points.is_empty() {
        return true;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let helper = consumer.clone();
    let owned = points.to_vec();
    let spawned = std::thread::Builder::new()
        .name("kbridge-commit".into())
        .spawn(move || {
            let _ = tx.send(commit_in_turn(&helper, &owned, deadline));
        });
    if let Err(e) = spawned {
        tracing::warn!(offsets = ?shown(points), "cannot start a thread to commit: {e}; these events will be read again");
        return false;
    }
    match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(Some(Ok(()))) => {
            tracing::debug!(offsets = ?shown(points), "committed");
            true
        }
        Ok(Some(Err(e))) if nothing_to_commit(&e) => true,
        Ok(Some(Err(KafkaError::Canceled))) => {
            tracing::warn!(offsets = ?shown(points), "not committed: the audit records of these events are not written yet (the audit's warning says why); these events will be read again");
            false
        }
        Ok(Some(Err(e))) => {
            tracing::warn!(offsets = ?shown(points), "offset commit failed: {e}; these events will be read again");
            false
        }
        Ok(None) => {
            tracing::warn!(
                offsets = ?shown(points),
                "not committed: an earlier offset commit is still waiting for the group coordinator; these events will be read again"
            );
            false
        }
        Err(_) => {
            tracing::warn!(
                offsets = ?shown(points),
                "not committed in time: the group coordinator did not answer; these events will be read again"
            );
            false
        }
    }
}

/// The helper thread's part of [`commit_now`]: once no other commit is in
/// flight, a synchronous commit, tried again after passing errors (request
/// timeout, coordinator moving) until `deadline` — the alternative is
/// sending every event since the last commit again. `None` if the gate did
/// not open before `deadline`.
fn commit_in_turn<C: CommitsInTurn>(
    consumer: &StreamConsumer<C>,
    points: &[CommitPoint],
    deadline: Instant,
) -> Option<Result<(), KafkaError>> {
    let gate = consumer.context().commit_gate();
    let left = deadline.saturating_duration_since(Instant::now());
    gate.exclusive(left, || {
        if !consumer.context().durable(deadline) {
            return Err(KafkaError::Canceled);
        }
        (|| commit_points(consumer, points))
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(100))
                    .with_max_delay(Duration::from_secs(1))
                    .without_max_times()
                    .with_jitter(),
            )
            .sleep(std::thread::sleep)
            .when(|e| worth_retrying(e) && Instant::now() < deadline)
            .notify(|e, after| {
                tracing::debug!("offset commit failed: {e}; trying again in {after:?}")
            })
            .call()
    })
}

/// How often the periodic committer looks whether the relay has settled.
const SETTLE_CHECK: Duration = Duration::from_millis(100);

/// Commits the points of the current assignment that moved (with what was
/// handled beyond them) every `every`, and
/// once more as soon as the relay settles — so that after a burst the
/// group's lag reads 0 within a tenth of a second instead of up to `every`
/// later, while a steady stream still commits once per `every`. `settled`
/// says how many messages were taken into processing so far when none is
/// in processing (`None` while some are). Runs until the returned task is
/// aborted.
///
/// It holds the consumer only while committing: the consumer must be
/// dropped when the relay stops, since dropping it is what sends the
/// LeaveGroup.
pub(crate) fn spawn_periodic<C>(
    consumer: Weak<StreamConsumer<C>>,
    every: Duration,
    settled: impl Fn() -> Option<u64> + Send + 'static,
) -> JoinHandle<()>
where
    C: CommitsInTurn,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every.min(SETTLE_CHECK));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut last = tokio::time::Instant::now();
        // The messages taken when the relay was last seen settled and
        // committed.
        let mut committed_at = 0;
        loop {
            tick.tick().await;
            let fresh = settled().filter(|n| *n != committed_at);
            if last.elapsed() < every && fresh.is_none() {
                continue;
            }
            if let Some(n) = fresh {
                committed_at = n;
            }
            last = tokio::time::Instant::now();
            let consumer = consumer.clone();
            let done = tokio::task::spawn_blocking(move || {
                let consumer = consumer.upgrade()?;
                let context = consumer.context();
                // The points are taken inside the gate: a revoke's commit
                // either went before (its partitions are gone from them)
                // or goes after this one.
                context.commit_gate().exclusive(every, || {
                    let points = context.to_commit();
                    if points.is_empty() {
                        return Ok(());
                    }
                    // Taken before the wait: every event they cover
                    // handed its audit record over already. Not durable
                    // in time: committed with a later round.
                    if !context.durable(Instant::now() + every) {
                        return Ok(());
                    }
                    let done = commit_points(&consumer, &points);
                    if done.is_ok() {
                        context.committed(&points);
                    }
                    done
                })
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
    use std::sync::atomic::AtomicUsize;

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
