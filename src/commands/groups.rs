//! `kbridge groups …`: what kafka-consumer-groups.sh does.
//!
//! Committed offsets are read and written through a consumer that carries the
//! group's id but never subscribes, so it never joins (or disturbs) the group.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result, anyhow, bail};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::groups::GroupInfo;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use super::assignment::parse_assignment;
use crate::client::{KafkaContext, KafkaOpts, partitions_of};
use crate::error::Reported;
use crate::output::{align_right, opt, outln, print_json, print_table, table};
use crate::topic_partition::TopicPartition;

/// A reset of a group's committed offsets.
#[derive(Debug)]
pub(crate) struct Reset {
    pub group: String,
    /// Every partition of these topics is reset.
    pub topics: Vec<String>,
    pub to: ResetTo,
    /// Apply the change; otherwise only print the plan.
    pub execute: bool,
    pub json: bool,
}

/// Where a reset moves each partition's offset (clamped to the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResetTo {
    Earliest,
    Latest,
    Offset(i64),
    /// The first offset at or after this time (epoch ms).
    Time(i64),
    /// The current offset (or the log start) moved by N.
    ShiftBy(i64),
}

/// A consumer bound to `group` that never joins it.
fn group_client(opts: &KafkaOpts, group: &str) -> Result<BaseConsumer<KafkaContext>> {
    opts.client()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .build(KafkaContext::default(), "the Kafka client")
}

#[derive(Serialize)]
struct GroupSummary {
    group: String,
    state: String,
    protocol_type: String,
    members: usize,
}

pub(crate) fn list(opts: &KafkaOpts, json: bool) -> Result<()> {
    let client: BaseConsumer<KafkaContext> = opts
        .client()
        .build(KafkaContext::default(), "the Kafka client")?;
    opts.metadata(client.client(), None)?;
    let groups = client
        .fetch_group_list(None, opts.timeout)
        .context("cannot list groups")?;
    let mut rows: Vec<GroupSummary> = groups
        .groups()
        .iter()
        .map(|g| GroupSummary {
            group: g.name().to_string(),
            state: g.state().to_string(),
            protocol_type: g.protocol_type().to_string(),
            members: g.members().len(),
        })
        .collect();
    rows.sort_by(|a, b| a.group.cmp(&b.group));
    if json {
        return print_json(&rows);
    }
    let mut t = table(["GROUP", "STATE", "MEMBERS"]);
    for r in &rows {
        t.add_row(vec![
            r.group.clone(),
            r.state.clone(),
            r.members.to_string(),
        ]);
    }
    align_right(&mut t, &[2]);
    print_table(&t)
}

#[derive(Serialize)]
struct Member {
    consumer_id: String,
    host: String,
    client_id: String,
    assignment: Vec<TopicPartition>,
}

#[derive(Serialize)]
struct PartitionLag {
    topic: String,
    partition: i32,
    current_offset: Option<i64>,
    log_end_offset: i64,
    lag: Option<i64>,
    consumer_id: Option<String>,
    host: Option<String>,
    client_id: Option<String>,
}

#[derive(Serialize)]
struct GroupDescription {
    group: String,
    state: String,
    members: Vec<Member>,
    partitions: Vec<PartitionLag>,
    total_lag: i64,
}

fn members_of(info: &GroupInfo) -> Vec<Member> {
    info.members()
        .iter()
        .map(|m| Member {
            consumer_id: m.id().to_string(),
            host: m.client_host().trim_start_matches('/').to_string(),
            client_id: m.client_id().to_string(),
            assignment: m.assignment().map(parse_assignment).unwrap_or_default(),
        })
        .collect()
}

/// Fetches a group's state and members; `None` when the broker has never
/// heard of it.
fn group_info(
    client: &BaseConsumer<KafkaContext>,
    opts: &KafkaOpts,
    group: &str,
) -> Result<(String, Vec<Member>)> {
    let list = client
        .fetch_group_list(Some(group), opts.timeout)
        .with_context(|| format!("cannot describe group '{group}'"))?;
    Ok(list
        .groups()
        .iter()
        .find(|g| g.name() == group)
        .map(|g| (g.state().to_string(), members_of(g)))
        .unwrap_or_else(|| ("Dead".to_string(), Vec::new())))
}

/// Every partition, of every non-internal topic, for which `group` has a
/// committed offset: OffsetFetch for all of them in one request.
fn committed_offsets(
    client: &BaseConsumer<KafkaContext>,
    opts: &KafkaOpts,
    topics: &[String],
) -> Result<BTreeMap<TopicPartition, i64>> {
    let md = opts.metadata(client.client(), None)?;
    let mut tpl = TopicPartitionList::new();
    for t in md.topics().iter().filter(|t| {
        topics.is_empty() && !t.name().starts_with("__") || topics.iter().any(|n| n == t.name())
    }) {
        for p in t.partitions() {
            tpl.add_partition(t.name(), p.id());
        }
    }
    if tpl.count() == 0 {
        return Ok(BTreeMap::new());
    }
    let committed = client
        .committed_offsets(tpl, opts.timeout)
        .context("cannot read committed offsets")?;
    let out = committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((TopicPartition::new(e.topic(), e.partition()), o)),
            _ => None,
        })
        .collect();
    drop(committed);
    Ok(out)
}

pub(crate) fn describe(opts: &KafkaOpts, group: &str, json: bool) -> Result<()> {
    let client = group_client(opts, group)?;
    opts.metadata(client.client(), None)?;
    let (state, members) = group_info(&client, opts, group)?;
    let committed = committed_offsets(&client, opts, &[])?;
    if members.is_empty() && committed.is_empty() && (state == "Dead" || state.is_empty()) {
        bail!(
            "consumer group '{group}' does not exist (no members, no committed offsets); see `kbridge groups list`"
        );
    }

    let mut owner: HashMap<TopicPartition, &Member> = HashMap::new();
    for m in &members {
        for tp in &m.assignment {
            owner.insert(tp.clone(), m);
        }
    }
    let mut keys: Vec<TopicPartition> = committed.keys().cloned().collect();
    keys.extend(
        owner
            .keys()
            .filter(|k| !committed.contains_key(*k))
            .cloned(),
    );
    keys.sort();

    let mut partitions = Vec::new();
    let mut total_lag = 0;
    for tp in keys {
        let (_, high) = client
            .fetch_watermarks(&tp.topic, tp.partition, opts.timeout)
            .with_context(|| format!("cannot read the log end of {tp}"))?;
        let current = committed.get(&tp).copied();
        let lag = current.map(|c| (high - c).max(0));
        total_lag += lag.unwrap_or(0);
        let m = owner.get(&tp);
        partitions.push(PartitionLag {
            topic: tp.topic.to_string(),
            partition: tp.partition,
            current_offset: current,
            log_end_offset: high,
            lag,
            consumer_id: m.map(|m| m.consumer_id.clone()),
            host: m.map(|m| m.host.clone()),
            client_id: m.map(|m| m.client_id.clone()),
        });
    }
    let desc = GroupDescription {
        group: group.to_string(),
        state,
        members,
        partitions,
        total_lag,
    };
    if json {
        return print_json(&desc);
    }
    outln!(
        "Group: {}\tState: {}\tMembers: {}",
        desc.group,
        desc.state,
        desc.members.len()
    )?;
    outln!()?;
    let mut t = table([
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    ]);
    for p in &desc.partitions {
        t.add_row(vec![
            p.topic.clone(),
            p.partition.to_string(),
            opt(p.current_offset),
            p.log_end_offset.to_string(),
            opt(p.lag),
            opt(p.consumer_id.clone()),
            opt(p.host.clone()),
            opt(p.client_id.clone()),
        ]);
    }
    align_right(&mut t, &[1, 2, 3, 4]);
    print_table(&t)?;
    outln!()?;
    outln!("TOTAL LAG: {}", desc.total_lag)?;
    Ok(())
}

#[derive(Serialize)]
struct OffsetChange {
    topic: String,
    partition: i32,
    current_offset: Option<i64>,
    new_offset: i64,
}

pub(crate) fn reset_offsets(opts: &KafkaOpts, args: &Reset) -> Result<()> {
    let group = args.group.as_str();
    let client = group_client(opts, group)?;
    let md = opts.metadata(client.client(), None)?;
    opts.require_topics(&md, &args.topics)?;
    let (state, members) = group_info(&client, opts, group)?;
    if !members.is_empty() {
        bail!(
            "group '{group}' has {} active member(s) (state {state}); stop its consumers first, then reset its offsets",
            members.len()
        );
    }
    let committed = committed_offsets(&client, opts, &args.topics)?;

    let mut all = Vec::new();
    for t in &args.topics {
        all.extend(partitions_of(&md, t)?);
    }
    let by_time = match args.to {
        ResetTo::Time(ms) => Some(opts.offsets_for_time(&client, &all, ms)?),
        _ => None,
    };
    let mut changes = Vec::new();
    for (i, tp) in all.into_iter().enumerate() {
        let (low, high) = client
            .fetch_watermarks(&tp.topic, tp.partition, opts.timeout)
            .with_context(|| format!("cannot read the watermarks of {tp}"))?;
        let current = committed.get(&tp).copied();
        let (topic, partition) = (tp.topic.to_string(), tp.partition);
        let target = match args.to {
            ResetTo::Earliest => low,
            ResetTo::Latest => high,
            ResetTo::Offset(n) => n,
            ResetTo::Time(_) => match by_time.as_ref().and_then(|found| found.get(i)) {
                Some(Offset::Offset(o)) => *o,
                _ => high,
            },
            ResetTo::ShiftBy(n) => current.unwrap_or(low).saturating_add(n),
        };
        changes.push(OffsetChange {
            topic,
            partition,
            current_offset: current,
            new_offset: target.clamp(low, high),
        });
    }

    if args.execute {
        let mut tpl = TopicPartitionList::new();
        for c in &changes {
            tpl.add_partition_offset(&c.topic, c.partition, Offset::Offset(c.new_offset))?;
        }
        client
            .commit(&tpl, CommitMode::Sync)
            .map_err(|e| match e.rdkafka_error_code() {
                Some(RDKafkaErrorCode::UnknownMemberId | RDKafkaErrorCode::RebalanceInProgress) => {
                    anyhow!("group '{group}' became active while resetting; stop its consumers and try again")
                }
                _ => anyhow!("cannot commit the new offsets: {e}"),
            })?;
    }
    if args.json {
        return print_json(&changes);
    }
    let mut t = table(["TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"]);
    for c in &changes {
        t.add_row(vec![
            c.topic.clone(),
            c.partition.to_string(),
            opt(c.current_offset),
            c.new_offset.to_string(),
        ]);
    }
    align_right(&mut t, &[1, 2, 3]);
    print_table(&t)?;
    if args.execute {
        eprintln!("kbridge: offsets of group '{group}' reset.");
    } else {
        eprintln!("kbridge: dry run, nothing changed; add --execute to apply.");
    }
    Ok(())
}

pub(crate) async fn delete(opts: &KafkaOpts, groups: &[String]) -> Result<()> {
    let admin = opts.admin()?;
    opts.metadata(admin.inner(), None)?;
    let names: Vec<&str> = groups.iter().map(String::as_str).collect();
    let results = admin
        .delete_groups(&names, &opts.admin_options())
        .await
        .context("the delete request failed")?;
    let mut failed = 0;
    for r in results {
        match r {
            Ok(name) => outln!("Deleted group {name}.")?,
            Err((name, RDKafkaErrorCode::GroupIdNotFound)) => {
                eprintln!("kbridge: consumer group '{name}' does not exist");
                failed += 1;
            }
            Err((name, RDKafkaErrorCode::NonEmptyGroup)) => {
                eprintln!(
                    "kbridge: consumer group '{name}' has active members; stop its consumers first"
                );
                failed += 1;
            }
            Err((name, code)) => {
                eprintln!("kbridge: cannot delete group '{name}': {code}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        return Err(Reported(format!("{failed} group(s) not deleted")).into());
    }
    Ok(())
}
