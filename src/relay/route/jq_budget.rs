//! A jq program's budget: time and outputs per evaluation, and a stack of
//! its own. jaq has no fuel and no interrupt — `range(1e9)`, `def f: f;
//! f`, `range(0; 10; 0)` or `reduce range(1e5) as $i (.; [.])` would pin
//! whichever thread runs them, and a deep value recurses on that thread's
//! stack — so programs do not run on the relay's threads at all.
//!
//! Every evaluation is handed to a small pool of evaluator threads with
//! large stacks ([`STACK_BYTES`]), and its caller waits at most
//! `jq.timeout`. Past it, the event is invalid on its route ("ran past
//! jq.timeout"), the thread is abandoned to finish on its own, and a new
//! one takes its place, so the pool keeps its size. An abandoned
//! evaluation that ends frees its thread; one that does not is a program
//! that may never end (and may grow without bound): when one is still
//! running [`ABANDONED_GRACE`] past its deadline, or [`MAX_ABANDONED`] are
//! at once, the relay stops cleanly — drain, commit (the events that
//! caused them were finished as invalid, so the restart does not meet them
//! again) — and exits non-zero for systemd to restart it. Until then
//! `/readyz` says how many are stuck.
//!
//! An evaluation also stops at `jq.max_outputs` outputs (an error, not a
//! truncation: `range(1e9)` as a map would be a billion requests).

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Each evaluator thread's stack: jaq recurses per level of the values a
/// program builds (reserved address space; pages are used as touched).
pub(crate) const STACK_BYTES: usize = 256 << 20;

/// How long an abandoned evaluation may go on before the relay restarts.
pub(crate) const ABANDONED_GRACE: Duration = Duration::from_secs(5);

/// How many abandoned evaluations at once make the relay restart.
pub(crate) const MAX_ABANDONED: usize = 4;

/// The budget of every evaluation (`[jq]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Budget {
    pub timeout: Duration,
    pub max_outputs: usize,
    pub threads: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(1),
            max_outputs: 1000,
            threads: std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .clamp(2, 8),
        }
    }
}

/// An evaluation; false when its thread leaves the pool afterwards.
type Task = Box<dyn FnOnce() -> bool + Send>;

/// The pool of evaluator threads.
pub(crate) struct Evaluators {
    budget: Budget,
    tx: SyncSender<Task>,
    rx: Arc<Mutex<Receiver<Task>>>,
    /// Evaluations past their deadline and still running, with when their
    /// deadline passed.
    abandoned: Arc<Mutex<Vec<(u64, Instant)>>>,
    next_id: AtomicUsize,
}

static EVALUATORS: OnceLock<Evaluators> = OnceLock::new();
static BUDGET: OnceLock<Budget> = OnceLock::new();

/// Sets the budget (`run` and `check` do, from `[jq]`, before any program
/// runs); without it, the defaults.
pub(crate) fn configure(budget: Budget) {
    let _ = BUDGET.set(budget);
}

/// The budget every evaluation has.
pub(crate) fn budget() -> Budget {
    BUDGET.get().copied().unwrap_or_default()
}

/// Evaluations abandoned and still running (0 before any ran).
pub(crate) fn abandoned() -> usize {
    EVALUATORS.get().map_or(0, Evaluators::abandoned)
}

/// Why the relay must restart, if it must (see the module's doc).
pub(crate) fn must_restart() -> Option<String> {
    EVALUATORS.get().and_then(Evaluators::must_restart)
}

/// The evaluator threads, started when the first program that is not
/// bounded runs (a relay of bounded programs never starts them).
pub(crate) fn evaluators() -> &'static Evaluators {
    EVALUATORS.get_or_init(|| Evaluators::start(budget()))
}

impl Evaluators {
    fn start(budget: Budget) -> Self {
        // A queue as deep as a few evaluations per thread: a caller waits
        // for room rather than piling up work no thread will reach in time.
        let (tx, rx) = sync_channel::<Task>(budget.threads * 4);
        let pool = Self {
            budget,
            tx,
            rx: Arc::new(Mutex::new(rx)),
            abandoned: Arc::default(),
            next_id: AtomicUsize::new(1),
        };
        for _ in 0..budget.threads {
            pool.spawn_thread();
        }
        pool
    }

    fn spawn_thread(&self) {
        let rx = self.rx.clone();
        let spawned = std::thread::Builder::new()
            .name("kbridge-jq".into())
            .stack_size(STACK_BYTES)
            .spawn(move || {
                loop {
                    let task = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    // Abandoned (a replacement took its place), or the
                    // pool is gone: the thread ends.
                    if !task.is_ok_and(|task| task()) {
                        return;
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start a jq evaluator thread: {e}");
        }
    }

    /// Runs `f` on an evaluator thread within the budget's time; the
    /// error says the time ran out.
    pub(crate) fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, String> {
        const RUNNING: u8 = 0;
        const DONE: u8 = 1;
        const ABANDONED: u8 = 2;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) as u64;
        let state = Arc::new(AtomicU8::new(RUNNING));
        let (done_tx, done_rx) = sync_channel::<R>(1);
        let abandoned = self.abandoned.clone();
        let task: Task = Box::new({
            let state = state.clone();
            move || {
                // Given up while it waited in the queue: not run at all.
                let out = (state.load(Ordering::Acquire) == RUNNING).then(f);
                let finished =
                    state.compare_exchange(RUNNING, DONE, Ordering::AcqRel, Ordering::Acquire);
                if let (Ok(_), Some(out)) = (finished, out) {
                    let _ = done_tx.send(out);
                    return true;
                }
                // The caller gave up and a replacement took this thread's
                // place: it leaves the pool.
                let mut a = abandoned.lock().unwrap_or_else(|p| p.into_inner());
                a.retain(|(i, _)| *i != id);
                false
            }
        });
        if self.tx.send(task).is_err() {
            return Err("the jq evaluators are gone".into());
        }
        if let Ok(out) = done_rx.recv_timeout(self.budget.timeout) {
            return Ok(out);
        }
        {
            // Given up, unless it finished just now. Marked under the
            // list's lock, so the evaluation finds itself listed when it
            // ends.
            let mut a = self.abandoned.lock().unwrap_or_else(|p| p.into_inner());
            let gave_up =
                state.compare_exchange(RUNNING, ABANDONED, Ordering::AcqRel, Ordering::Acquire);
            if gave_up.is_err() {
                drop(a);
                return done_rx
                    .recv()
                    .map_err(|_| "the jq evaluator stopped".to_string());
            }
            a.push((id, Instant::now()));
        }
        self.spawn_thread();
        Err(format!(
            "the program ran past jq.timeout ({}) and was abandoned",
            crate::time_spec::show_duration(self.budget.timeout)
        ))
    }

    /// Evaluations abandoned and still running.
    pub(crate) fn abandoned(&self) -> usize {
        self.abandoned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Why the relay must restart, if it must: an abandoned evaluation
    /// still running past the grace, or too many of them.
    pub(crate) fn must_restart(&self) -> Option<String> {
        let a = self.abandoned.lock().unwrap_or_else(|p| p.into_inner());
        let oldest = a.iter().map(|(_, at)| at.elapsed()).max()?;
        if oldest >= ABANDONED_GRACE || a.len() >= MAX_ABANDONED {
            return Some(format!(
                "{} jq evaluation(s) ran past jq.timeout and are still running (the longest {:.0?} over): a program that may never end; restarting to free their threads and memory (their events were finished as invalid)",
                a.len(),
                oldest + self.budget.timeout
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_evaluation_past_its_time_is_abandoned_and_the_pool_keeps_working() {
        let pool = Evaluators::start(Budget {
            timeout: Duration::from_millis(100),
            max_outputs: 10,
            threads: 2,
        });
        assert_eq!(pool.run(|| 1 + 1), Ok(2));
        let e = pool
            .run(|| std::thread::sleep(Duration::from_millis(800)))
            .unwrap_err();
        assert!(e.contains("ran past jq.timeout (100ms)"), "{e}");
        assert_eq!(pool.abandoned(), 1);
        for _ in 0..5 {
            assert_eq!(pool.run(|| 3), Ok(3), "a replacement took its place");
        }
        // It ends by itself: no longer counted.
        let start = Instant::now();
        while pool.abandoned() > 0 && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(pool.abandoned(), 0);
        assert_eq!(pool.must_restart(), None);
    }
}
