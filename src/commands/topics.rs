//! `kbridge topics …`: what kafka-topics.sh does, through the admin API.

use anyhow::{Context, Result, anyhow, bail};
use rdkafka::admin::{ConfigSource, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::producer::Producer;
use rdkafka::types::RDKafkaErrorCode;
use serde::Serialize;

use crate::client::KafkaOpts;
use crate::error::{Reported, UsageError};
use crate::output::{align_right, outln, print_json, print_table, table};

/// A topic to create.
#[derive(Debug)]
pub(crate) struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i32,
    /// Topic configs, e.g. `retention.ms`.
    pub configs: Vec<(String, String)>,
    /// Succeed without change when the topic already exists.
    pub if_not_exists: bool,
}

#[derive(Serialize)]
struct TopicSummary {
    name: String,
    partitions: usize,
    replication_factor: usize,
}

pub(crate) fn list(opts: &KafkaOpts, json: bool, all: bool) -> Result<()> {
    let client = opts.metadata_client()?;
    let md = opts.metadata(client.client(), None)?;
    let mut topics: Vec<TopicSummary> = md
        .topics()
        .iter()
        .filter(|t| all || !t.name().starts_with("__"))
        .map(|t| TopicSummary {
            name: t.name().to_string(),
            partitions: t.partitions().len(),
            replication_factor: t.partitions().first().map_or(0, |p| p.replicas().len()),
        })
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    if json {
        return print_json(&topics);
    }
    let mut t = table(["TOPIC", "PARTITIONS", "REPLICATION-FACTOR"]);
    for s in &topics {
        t.add_row(vec![
            s.name.clone(),
            s.partitions.to_string(),
            s.replication_factor.to_string(),
        ]);
    }
    align_right(&mut t, &[1, 2]);
    print_table(&t)
}

#[derive(Serialize)]
struct PartitionInfo {
    partition: i32,
    leader: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    low_watermark: i64,
    high_watermark: i64,
}

#[derive(Serialize)]
struct TopicDescription {
    name: String,
    partitions: Vec<PartitionInfo>,
    /// The topic's own config overrides.
    configs: std::collections::BTreeMap<String, String>,
}

pub(crate) async fn describe(opts: &KafkaOpts, topic: &str, json: bool) -> Result<()> {
    let admin = opts.admin()?;
    let md = opts.metadata(admin.inner(), Some(topic))?;
    opts.require_topics(&md, &[topic.to_string()])?;
    let mut partitions = Vec::new();
    for t in md.topics().iter().filter(|t| t.name() == topic) {
        for p in t.partitions() {
            let (low, high) = admin
                .inner()
                .fetch_watermarks(topic, p.id(), opts.timeout)
                .with_context(|| format!("cannot read the watermarks of {topic}/{}", p.id()))?;
            partitions.push(PartitionInfo {
                partition: p.id(),
                leader: p.leader(),
                replicas: p.replicas().to_vec(),
                isr: p.isr().to_vec(),
                low_watermark: low,
                high_watermark: high,
            });
        }
    }
    partitions.sort_by_key(|p| p.partition);

    let results = admin
        .describe_configs([&ResourceSpecifier::Topic(topic)], &opts.admin_options())
        .await
        .context("cannot describe the topic's configs")?;
    let mut configs = std::collections::BTreeMap::new();
    for r in results {
        let r = r.map_err(|e| anyhow!("cannot describe the configs of '{topic}': {e}"))?;
        // Like kafka-topics.sh: the topic's own overrides, not broker settings.
        for e in r
            .entries
            .into_iter()
            .filter(|e| e.source == ConfigSource::DynamicTopic)
        {
            let v = if e.is_sensitive {
                "<hidden>".to_string()
            } else {
                e.value.unwrap_or_default()
            };
            configs.insert(e.name, v);
        }
    }
    let desc = TopicDescription {
        name: topic.to_string(),
        partitions,
        configs,
    };
    if json {
        return print_json(&desc);
    }
    let rf = desc.partitions.first().map_or(0, |p| p.replicas.len());
    let configs = desc
        .configs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    outln!(
        "Topic: {}\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}",
        desc.name,
        desc.partitions.len(),
        rf,
        configs
    )?;
    let mut t = table([
        "PARTITION",
        "LEADER",
        "REPLICAS",
        "ISR",
        "LOW-WATERMARK",
        "HIGH-WATERMARK",
        "MESSAGES",
    ]);
    let ids = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
    for p in &desc.partitions {
        t.add_row(vec![
            p.partition.to_string(),
            p.leader.to_string(),
            ids(&p.replicas),
            ids(&p.isr),
            p.low_watermark.to_string(),
            p.high_watermark.to_string(),
            (p.high_watermark - p.low_watermark).to_string(),
        ]);
    }
    align_right(&mut t, &[0, 1, 4, 5, 6]);
    print_table(&t)
}

pub(crate) async fn create(opts: &KafkaOpts, spec: &TopicSpec) -> Result<()> {
    let TopicSpec {
        name: topic,
        partitions,
        replication_factor,
        configs,
        if_not_exists,
    } = spec;
    let (partitions, replication_factor) = (*partitions, *replication_factor);
    if partitions < 1 {
        bail!(UsageError(format!(
            "--partitions must be at least 1, not {partitions}"
        )));
    }
    if replication_factor < 1 {
        bail!(UsageError(format!(
            "--replication-factor must be at least 1, not {replication_factor}"
        )));
    }
    let admin = opts.admin()?;
    // Fail fast and clearly when the cluster is unreachable, instead of
    // waiting for the admin request's own timeout with a vaguer error.
    let md = opts.metadata(admin.inner(), None)?;
    let brokers = md.brokers().len();
    let mut new_topic = NewTopic::new(
        topic,
        partitions,
        TopicReplication::Fixed(replication_factor),
    );
    for (k, v) in configs {
        new_topic = new_topic.set(k, v);
    }
    let results = admin
        .create_topics([&new_topic], &opts.admin_options())
        .await
        .context("the create request failed")?;
    for r in results {
        match r {
            Ok(name) => outln!(
                "Created topic {name} with {partitions} partition(s), replication factor {replication_factor}."
            )?,
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) if *if_not_exists => {
                outln!("Topic {name} already exists.")?
            }
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => bail!(
                "topic '{name}' already exists; use --if-not-exists to accept that, or `kbridge topics describe {name}`"
            ),
            Err((name, RDKafkaErrorCode::InvalidReplicationFactor)) => bail!(
                "cannot create '{name}': replication factor {replication_factor} is larger than the {brokers} broker(s) available"
            ),
            Err((name, RDKafkaErrorCode::InvalidConfig)) => bail!(
                "cannot create '{name}': a -c config is unknown or has an invalid value; see `kbridge topics describe` of an existing topic for valid names"
            ),
            Err((name, code)) => bail!("cannot create '{name}': {code}"),
        }
    }
    Ok(())
}

pub(crate) async fn delete(opts: &KafkaOpts, topics: &[String]) -> Result<()> {
    let admin = opts.admin()?;
    opts.metadata(admin.inner(), None)?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let results = admin
        .delete_topics(&names, &opts.admin_options())
        .await
        .context("the delete request failed")?;
    let mut failed = Vec::new();
    for r in results {
        match r {
            Ok(name) => outln!("Deleted topic {name}.")?,
            Err((name, RDKafkaErrorCode::UnknownTopicOrPartition)) => {
                eprintln!("kbridge: topic '{name}' does not exist");
                failed.push(name);
            }
            Err((name, code)) => {
                eprintln!("kbridge: cannot delete '{name}': {code}");
                failed.push(name);
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Reported(format!("{} topic(s) not deleted", failed.len())).into())
    }
}
