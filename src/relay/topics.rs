//! The relay's own topics (the storm stage's state and repartition
//! topics, the audit topic), made at start when they are missing. A
//! cluster that does not let kbridge create them gets told exactly which
//! to create, with what, and which rights kbridge needs on them.

use anyhow::{Result, bail};
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::types::RDKafkaErrorCode;

use crate::client::KafkaOpts;

/// A topic the relay needs: its name, and how to make it.
pub(crate) struct NeededTopic {
    pub name: String,
    pub partitions: i32,
    /// -1: the brokers' `default.replication.factor`.
    pub replication_factor: i32,
    pub configs: Vec<(&'static str, String)>,
}

/// What an operator runs to make them by hand.
fn by_hand(topics: &[NeededTopic]) -> String {
    topics
        .iter()
        .map(|t| {
            let rf = match t.replication_factor {
                -1 => "3".to_string(),
                n => n.to_string(),
            };
            let configs: String = t
                .configs
                .iter()
                .map(|(k, v)| format!(" -c {k}={v}"))
                .collect();
            format!(
                "kbridge topics create {} --partitions {} --replication-factor {rf}{configs}",
                t.name, t.partitions
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Creates those of `topics` that do not exist yet; `what` names them in
/// messages ("storm topic", "audit topic").
pub(crate) async fn ensure(kafka: &KafkaOpts, topics: &[NeededTopic], what: &str) -> Result<()> {
    if topics.is_empty() {
        return Ok(());
    }
    let admin = kafka.admin()?;
    // Only the missing ones: a cluster that gives kbridge no Create right
    // refuses even a topic that exists.
    let existing: Vec<String> = kafka
        .metadata(admin.inner(), None)?
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| t.name().to_string())
        .collect();
    let missing: Vec<&NeededTopic> = topics
        .iter()
        .filter(|t| !existing.contains(&t.name))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let new: Vec<NewTopic<'_>> = missing
        .iter()
        .map(|t| {
            t.configs.iter().fold(
                NewTopic::new(
                    &t.name,
                    t.partitions,
                    TopicReplication::Fixed(t.replication_factor),
                ),
                |n, (k, v)| n.set(k, v),
            )
        })
        .collect();
    let results = match admin
        .create_topics(new.iter(), &kafka.admin_options())
        .await
    {
        Ok(r) => r,
        Err(e) => bail!(
            "cannot create the {what}s ({e}); create them yourself: {}",
            by_hand(topics)
        ),
    };
    for r in results {
        match r {
            Ok(name) => {
                let partitions = missing
                    .iter()
                    .find(|t| t.name == name)
                    .map_or(0, |t| t.partitions);
                tracing::info!(topic = %name, partitions, "created the {what}")
            }
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => bail!(
                "cannot create the {what} '{name}': {code}; create the {what}s yourself ({}) and let kbridge read and write them (ACLs: Read, Write and Describe on each; the group's Read)",
                by_hand(topics)
            ),
        }
    }
    Ok(())
}
