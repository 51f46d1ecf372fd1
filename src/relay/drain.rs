//! The stop path: stop fetching, let in-flight deliveries finish within the
//! drain timeout (then abort the rest), flush the dead letters, commit what
//! was handled, leave the group. Every step is bounded, so the whole stop
//! fits in systemd's 30 s.

use std::time::Duration;

use rdkafka::consumer::Consumer;
use tokio::task::JoinSet;

use crate::relay::commit::committer::commit_now;
use crate::relay::commit::point::shown;
use crate::relay::shared::Shared;
use crate::relay::shutdown::Trigger;
use crate::relay::systemd;

/// How long aborted deliveries get to notice the abort.
const ABORT_GRACE: Duration = Duration::from_secs(2);
/// How long queued dead letters get to be acknowledged.
const DEAD_LETTER_FLUSH: Duration = Duration::from_secs(5);

pub(crate) async fn drain(
    shared: &Shared,
    drain_timeout: Duration,
    mut tasks: JoinSet<()>,
    abort: Trigger,
) {
    systemd::stopping();
    let consumer = shared.consumer();
    if let Ok(assignment) = consumer.assignment() {
        let _ = consumer.pause(&assignment);
    }
    let in_flight = tasks.len();
    if in_flight > 0 {
        tracing::info!(in_flight, "waiting for in-flight deliveries");
    }
    let drained = tokio::time::timeout(drain_timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_ok();
    if !drained {
        abort.raise();
        let _ = tokio::time::timeout(ABORT_GRACE, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        tasks.abort_all();
        // Wait for the aborted tasks to drop their handles on the relay, so
        // that the consumer is closed (and leaves the group) when `serve`
        // returns, not never.
        while tasks.join_next().await.is_some() {}
        tracing::warn!(
            unfinished = shared.partitions().pending(),
            "drain timeout ({drain_timeout:?}) reached; unfinished events stay uncommitted and will be read again"
        );
    }
    if let Some(d) = shared.dead_letters()
        && let Err(e) = d.flush(DEAD_LETTER_FLUSH)
    {
        tracing::warn!("dead letters not flushed: {e}");
    }
    // Forget all partitions (so the revoke that unsubscribing triggers does
    // not wait) and commit their handled prefix synchronously, after any
    // periodic commit still in flight.
    let owned = shared.partitions().owned();
    shared
        .partitions()
        .revoke(&owned, Duration::ZERO, |points| {
            if commit_now(&**consumer, points) {
                tracing::info!(committed = ?shown(points), "offsets committed; leaving the group");
            }
        });
    consumer.unsubscribe();
}
