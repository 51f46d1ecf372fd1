//! `kbridge run`: the alert relay.
//!
//! One event's trip, folder by folder (each stage a pure core with its I/O
//! at the edges):
//!
//! - **Kafka in** — `source/`: the group consumer (`source::consumer::create`)
//!   is polled by `source::consume_loop::run`, which takes a processing slot
//!   for each message (or pauses its partition: `source::backpressure`) and
//!   hands it to `intake::take`. Rebalances are `source::rebalance`.
//! - **decode → validate → map** — `intake::take` asks every route that
//!   takes the message's topic (`route::Route::intake`): the native preset
//!   (`preset::decide`) decodes the bytes (`preset/decode.rs`), validates
//!   the fields (`preset/validate.rs`) and maps them to the alert body
//!   (`preset/map.rs`) — or says why not (`stage::Stage`); a jq route
//!   (`jq`) computes the event's ordering key and leaves its filter and map
//!   to the delivery task. The offset is accepted as one part per job
//!   (`commit::partitions::Partitions::accept`); a skip is finished at
//!   once; anything else becomes a `job::Job` per route.
//! - **deliver** — `deliver::run_chain` maps a jq route's event, POSTs the
//!   bodies to the route's target (`deliver/target.rs`, `deliver/webhook.rs`,
//!   at the route's `deliver/pace.rs`), classifies the answer
//!   (`deliver/answer.rs`, `deliver/answer_rules.rs`), waits and tries again
//!   (`deliver/retry.rs`), or writes a dead letter (`deliver/dead_letter.rs`)
//!   carrying the original message (`origin::Origin`).
//! - **commit** — `shared::Shared::finish` marks the offset handled and,
//!   when the partition's contiguous prefix moved, stores the new commit
//!   point (`commit::committer::store`). Stored points are committed every
//!   `commit_interval` by `commit::committer::spawn_periodic`; a revoke
//!   (`source::rebalance`) and the shutdown (`drain::drain`) commit theirs
//!   at once with `commit::committer::commit_now`, bounded by a deadline.
//!   One commit runs at a time; `commit/mod.rs` walks this half of the trip
//!   step by step. Every event is taken under its partition's ownership
//!   (`commit::ownership`), which a revoke ends: the delivery stops, and the
//!   partition's next owner sends it.
//!
//! Around them: `config` (layered configuration), `route` (the routes,
//! compiled), `check` (`kbridge check`), `service::serve` (the wiring), `shared` (what every task shares), `shutdown` (the stop request,
//! the drain's abort, the stop's clock), `blocking` (waits that do not hold
//! up a runtime worker), `systemd` (sd-notify, watchdog), `telemetry`
//! (metrics, health, the summary line), `report` (what the demo prints).

mod blocking;
pub(crate) mod check;
mod commit;
pub(crate) mod config;
mod consume_loop;
mod deliver;
mod drain;
mod job;
mod live_route;
pub(crate) mod report;
mod route;
pub(crate) mod service;
mod shared;
pub(crate) mod shutdown;
mod source;
mod stage;
mod systemd;
mod telemetry;

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
