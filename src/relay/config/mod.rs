//! The relay's configuration, layered: built-in defaults (the seed's: group
//! `omp`, offset reset `latest`) < TOML file < `KBRIDGE_*` environment
//! variables < command-line flags.
//!
//! Secrets never need to sit in the file: any string value may say
//! `${VAR}` and is filled from the environment after parsing (so a
//! commented-out line never demands a variable). The `Debug` output of the
//! config redacts secrets, and nothing here is ever logged in full.

mod audit;
mod checks;
mod de;
mod layers;
mod overrides;
mod preset;
mod route;
mod schema;
mod secret;
mod status_policy;
mod storm;
mod webhook;

pub(crate) use overrides::{LogOverrides, MetricsOverrides, Overrides, WebhookOverrides};
pub(crate) use preset::Preset;
pub(crate) use route::{Mapping, RateLimit, RetryOverride, RouteConfig};
pub(crate) use schema::{OffsetReset, PoisonAfter, RelayConfig, RetryConfig};
#[cfg(test)]
pub(crate) use secret::Secret;
#[cfg(test)]
pub(crate) use status_policy::StatusSpec;
pub(crate) use status_policy::{StatusPolicy, Treatment};
pub(crate) use storm::topic_name_ok;
pub(crate) use webhook::{SignScheme, SigningConfig, WebhookConfig, WebhookTls};
