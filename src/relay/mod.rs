//! `kbridge run`: the alert relay.
//!
//! One event's trip, folder by folder, in the order the folders are named
//! here (each stage a pure core with its I/O at the edges; ARCHITECTURE.md
//! has the same walk for a newcomer):
//!
//! - **Kafka in** — `source/`: the group consumer
//!   (`source::create_consumer`) is polled by `consume_loop::run`, the
//!   relay's orchestrator, which takes a processing slot for each message
//!   (or pauses its partition: `source::Backpressure`) and hands it, as an
//!   `Origin`, to `route::take`. Rebalances are `source/rebalance.rs`.
//! - **route: decode → validate → map** — `route::take` asks every
//!   `LiveRoute` that takes the message's topic (`Route::intake`): a preset
//!   route decodes the bytes, validates the fields and maps them to the
//!   alert body (`route/preset/`) — or says why not (`stage::Stage`); a jq
//!   route computes the event's ordering key (`EventKey`) and leaves its
//!   filter and map to the delivery task. The offset is accepted as one
//!   part per job (`commit::Partitions::accept`); a skip is finished at
//!   once; anything else becomes a `job::Job`, which holds its route.
//! - **deliver** — `deliver::run_chain` maps a jq route's event
//!   (`Route::later`), POSTs the bodies to the route's `Target`
//!   (`deliver/http/`, at the route's `deliver/pace.rs`), classifies the
//!   answer (`deliver/answer.rs`, `deliver/answer_rules.rs`), waits and
//!   tries again (`deliver/retry.rs`), or writes a dead letter
//!   (`deliver/dead_letter.rs`) carrying the original record.
//! - **commit** — `Shared::finish` marks the route's part of the offset
//!   handled. Each partition's contiguous handled prefix, with what was
//!   handled beyond it as the commit's metadata (`commit/handed_over.rs`:
//!   the next owner skips it), is committed every `commit_interval` by
//!   `commit::committer::spawn_periodic`; a revoke
//!   (`source/rebalance.rs`) and the shutdown (`drain::drain`) commit theirs
//!   at once with `commit::committer::commit_now`, bounded by a deadline.
//!   One commit runs at a time; `commit/mod.rs` walks this half of the trip
//!   step by step. Every event is taken under its partition's
//!   `commit::Ownership`, which a revoke ends: the delivery stops
//!   (`deliver::Interrupted`), and the partition's next owner sends it.
//!
//! - **audit** — `audit/`, with `[audit] topic`: each outcome
//!   (`Shared::report`) is also an audit record, and a commit waits until
//!   the records of the events it covers are acknowledged.
//!
//! Around them: `config` (layered configuration), `live_route` (a route as
//! it runs: `route::Route` beside `deliver::Target`), `check` (`kbridge
//! check`), `dlq` (`kbridge dlq stats | show | redrive`), `trace` (`kbridge
//! trace`), `silence` (`kbridge silence`), `topics` (the relay's own topics,
//! created when missing), `service::serve` (the wiring), `shared` (what
//! every task shares), `shutdown` (the stop request, the drain's abort, the
//! stop's clock), `blocking` (waits that do not hold up a runtime worker),
//! `systemd` (sd-notify, watchdog), `telemetry` (metrics, health, the
//! summary line), `report` (an event's outcome on a route, for the demo and
//! the audit).
//!
//! "The seed", in comments: the Python `kafka_event_server` kbridge
//! replaces, from the article it grew from; ARCHITECTURE.md says more.

pub(crate) mod audit;
mod blocking;
pub(crate) mod check;
mod commit;
pub(crate) mod config;
mod consume_loop;
mod deliver;
pub(crate) mod dlq;
mod drain;
mod fleet_share;
mod job;
mod live_route;
pub(crate) mod report;
mod route;
pub(crate) mod service;
mod shared;
pub(crate) mod shutdown;
pub(crate) mod silence;
mod source;
mod stage;
pub(crate) mod storm;
mod systemd;
mod telemetry;
mod topics;
pub(crate) mod trace;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use crate::error::UsageError;
use config::{Overrides, RelayConfig};
use live_route::LiveRoute;

/// Entry point of `kbridge run`: load the configuration (file, environment,
/// flags), set up logging, run until a signal.
pub(crate) async fn run(config_file: Option<&Path>, overrides: &Overrides) -> Result<ExitCode> {
    // A configuration mistake exits 2, which the systemd unit does not
    // restart on (RestartPreventExitStatus=2).
    let cfg =
        RelayConfig::load(config_file, overrides).map_err(|e| UsageError(format!("{e:#}")))?;
    // The jq programs (answer rules) compile now: a mistake is a
    // configuration error, exit 2.
    LiveRoute::check_programs(&cfg).map_err(|e| UsageError(format!("{e:#}")))?;
    let _guard =
        crate::logging::init_service(cfg.log.format, &cfg.log.level, cfg.log.file.as_ref())?;
    for notice in &cfg.notices {
        tracing::warn!("{notice}");
    }
    let (_stop, shutdown) = shutdown::on_signals(cfg.drain_timeout);
    match service::serve(cfg, shutdown, None).await {
        Ok(()) => {
            tracing::info!("stopped cleanly");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            tracing::error!("{e:#}");
            Err(e)
        }
    }
}
