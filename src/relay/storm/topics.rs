//! The storm stage's topics, made at start when they are missing: the
//! compacted state topic and each storm route's repartition topic, all
//! with `[storm] partitions` (partition N of each belongs together). A
//! cluster that does not let kbridge create them gets told exactly which
//! to create, and with what.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Result, bail};

use crate::relay::config::RelayConfig;
use crate::relay::topics::NeededTopic;

/// How long the repartition topics keep an event: long enough for any
/// outage the relay survives (its committed offset must stay in them).
const REPARTITION_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// One storm topic: name and its configuration.
pub(crate) struct StormTopic {
    pub name: String,
    pub configs: Vec<(&'static str, String)>,
}

/// The topics a configuration's storm routes need (none without them).
pub(crate) fn needed(cfg: &RelayConfig) -> Vec<StormTopic> {
    let routes = cfg.route_configs();
    let storm: Vec<&str> = routes
        .iter()
        .filter(|r| r.storm.is_active())
        .map(|r| r.name.as_str())
        .collect();
    if !cfg.has_storm() {
        return Vec::new();
    }
    // A held recovery keeps its event as a JSON string (escaped, up to
    // twice its bytes), a digest member its latest event.
    let max_bytes = cfg
        .max_message_bytes
        .saturating_mul(2)
        .saturating_add(1 << 20)
        .min(i32::MAX as usize)
        .to_string();
    let mut topics = vec![StormTopic {
        name: cfg.storm_state_topic(),
        configs: vec![
            ("cleanup.policy", "compact".into()),
            ("max.message.bytes", max_bytes.clone()),
            // Tombstones of forgotten alerts leave the log after a day.
            ("delete.retention.ms", "86400000".into()),
            ("min.compaction.lag.ms", "0".into()),
        ],
    }];
    for r in storm {
        topics.push(StormTopic {
            name: cfg.repartition_topic(r),
            configs: vec![
                ("cleanup.policy", "delete".into()),
                ("max.message.bytes", max_bytes.clone()),
                (
                    "retention.ms",
                    REPARTITION_RETENTION.as_millis().to_string(),
                ),
            ],
        });
    }
    topics
}

/// Creates the storm topics that do not exist yet.
pub(crate) async fn ensure(cfg: &RelayConfig) -> Result<()> {
    let topics: Vec<NeededTopic> = needed(cfg)
        .into_iter()
        .map(|t| NeededTopic {
            name: t.name,
            partitions: cfg.storm.partitions(),
            replication_factor: cfg.storm.replication_factor(),
            configs: t.configs,
        })
        .collect();
    crate::relay::topics::ensure(&cfg.kafka_opts(), &topics, "storm topic").await
}

/// Checks that the storm topics have one partition count (partition N of
/// the state belongs to partition N of each repartition topic).
pub(crate) fn check_partitions(cfg: &RelayConfig, counts: &BTreeMap<String, usize>) -> Result<()> {
    let topics = needed(cfg);
    let Some(state) = topics.first() else {
        return Ok(());
    };
    let want = counts.get(&state.name).copied().unwrap_or_default();
    for t in &topics[1..] {
        let have = counts.get(&t.name).copied().unwrap_or_default();
        if have != want {
            bail!(
                "the storm topics must have one partition count: {} has {want}, {} has {have}; give {} {want} partitions (`kbridge topics` cannot shrink a topic: delete and recreate it while no kbridge runs, which forgets the storm memory of that route)",
                state.name,
                t.name,
                t.name
            );
        }
    }
    Ok(())
}
