//! `kbridge cluster …`: who is in the cluster and what each broker speaks.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};
use serde::Serialize;

use crate::client::{KafkaContext, KafkaOpts, LastError};
use crate::output::{align_right, outln, print_json, print_table, table};

#[derive(Serialize)]
struct Broker {
    id: i32,
    host: String,
    port: i32,
    controller: bool,
}

#[derive(Serialize)]
struct ClusterDescription {
    cluster_id: Option<String>,
    controller_id: Option<i32>,
    brokers: Vec<Broker>,
}

pub(crate) fn describe(opts: &KafkaOpts, json: bool) -> Result<()> {
    let admin = opts.admin()?;
    let client = admin.inner();
    let md = opts.metadata(client, None)?;
    let cluster_id = client.fetch_cluster_id(opts.timeout);
    let timeout_ms = i32::try_from(opts.timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: the pointer is a live client owned by `admin` for this call;
    // rd_kafka_controllerid only reads cached metadata (waiting up to the
    // timeout for it) and returns -1 when unknown.
    let controller =
        unsafe { rdkafka::bindings::rd_kafka_controllerid(client.native_ptr(), timeout_ms) };
    let controller_id = (controller >= 0).then_some(controller);
    let mut brokers: Vec<Broker> = md
        .brokers()
        .iter()
        .map(|b| Broker {
            id: b.id(),
            host: b.host().to_string(),
            port: b.port(),
            controller: Some(b.id()) == controller_id,
        })
        .collect();
    brokers.sort_by_key(|b| b.id);
    let desc = ClusterDescription {
        cluster_id,
        controller_id,
        brokers,
    };
    if json {
        return print_json(&desc);
    }
    outln!(
        "Cluster: {}\tController: {}\tBrokers: {}",
        desc.cluster_id.as_deref().unwrap_or("-"),
        crate::output::opt(desc.controller_id),
        desc.brokers.len()
    )?;
    outln!()?;
    let mut t = table(["ID", "HOST", "PORT", "CONTROLLER"]);
    for b in &desc.brokers {
        t.add_row(vec![
            b.id.to_string(),
            b.host.clone(),
            b.port.to_string(),
            if b.controller { "yes" } else { "" }.to_string(),
        ]);
    }
    align_right(&mut t, &[0, 2]);
    print_table(&t)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct ApiVersion {
    name: String,
    key: i16,
    min: i16,
    max: i16,
}

/// librdkafka exposes no API for the brokers' ApiVersions answers, but it
/// logs each one (debug context `feature`) as it connects. This context
/// collects those lines per broker address; it works over any security
/// protocol because librdkafka made the connection.
#[derive(Default)]
struct ApiVersionsContext {
    base: KafkaContext,
    seen: Mutex<BTreeMap<String, Vec<ApiVersion>>>,
}

impl ClientContext for ApiVersionsContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        if fac == "APIVERSION"
            && let Some((addr, api)) = parse_api_line(msg)
            && let Ok(mut seen) = self.seen.lock()
        {
            let apis = seen.entry(addr).or_default();
            if !apis.contains(&api) {
                apis.push(api);
            }
            return;
        }
        self.base.log(level, fac, msg);
    }
    fn error(&self, error: KafkaError, reason: &str) {
        self.base.error(error, reason);
    }
}

impl LastError for ApiVersionsContext {
    fn last_error(&self) -> Option<String> {
        self.base.last_error()
    }
}

impl ProducerContext for ApiVersionsContext {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::producer::DeliveryResult<'_>, _: ()) {}
}

/// Kafka's own API names by key, as of Kafka 4.4 (librdkafka's differ: "ApiVersion",
/// "ElectLeadersRequest", "Unknown-74?").
const KAFKA_API_NAMES: [&str; 95] = [
    "Produce",
    "Fetch",
    "ListOffsets",
    "Metadata",
    "LeaderAndIsr",
    "StopReplica",
    "UpdateMetadata",
    "ControlledShutdown",
    "OffsetCommit",
    "OffsetFetch",
    "FindCoordinator",
    "JoinGroup",
    "Heartbeat",
    "LeaveGroup",
    "SyncGroup",
    "DescribeGroups",
    "ListGroups",
    "SaslHandshake",
    "ApiVersions",
    "CreateTopics",
    "DeleteTopics",
    "DeleteRecords",
    "InitProducerId",
    "OffsetForLeaderEpoch",
    "AddPartitionsToTxn",
    "AddOffsetsToTxn",
    "EndTxn",
    "WriteTxnMarkers",
    "TxnOffsetCommit",
    "DescribeAcls",
    "CreateAcls",
    "DeleteAcls",
    "DescribeConfigs",
    "AlterConfigs",
    "AlterReplicaLogDirs",
    "DescribeLogDirs",
    "SaslAuthenticate",
    "CreatePartitions",
    "CreateDelegationToken",
    "RenewDelegationToken",
    "ExpireDelegationToken",
    "DescribeDelegationToken",
    "DeleteGroups",
    "ElectLeaders",
    "IncrementalAlterConfigs",
    "AlterPartitionReassignments",
    "ListPartitionReassignments",
    "OffsetDelete",
    "DescribeClientQuotas",
    "AlterClientQuotas",
    "DescribeUserScramCredentials",
    "AlterUserScramCredentials",
    "Vote",
    "BeginQuorumEpoch",
    "EndQuorumEpoch",
    "DescribeQuorum",
    "AlterPartition",
    "UpdateFeatures",
    "Envelope",
    "FetchSnapshot",
    "DescribeCluster",
    "DescribeProducers",
    "BrokerRegistration",
    "BrokerHeartbeat",
    "UnregisterBroker",
    "DescribeTransactions",
    "ListTransactions",
    "AllocateProducerIds",
    "ConsumerGroupHeartbeat",
    "ConsumerGroupDescribe",
    "ControllerRegistration",
    "GetTelemetrySubscriptions",
    "PushTelemetry",
    "AssignReplicasToDirs",
    "ListConfigResources",
    "DescribeTopicPartitions",
    "ShareGroupHeartbeat",
    "ShareGroupDescribe",
    "ShareFetch",
    "ShareAcknowledge",
    "AddRaftVoter",
    "RemoveRaftVoter",
    "UpdateRaftVoter",
    "InitializeShareGroupState",
    "ReadShareGroupState",
    "WriteShareGroupState",
    "DeleteShareGroupState",
    "ReadShareGroupStateSummary",
    "StreamsGroupHeartbeat",
    "StreamsGroupDescribe",
    "DescribeShareGroupOffsets",
    "AlterShareGroupOffsets",
    "DeleteShareGroupOffsets",
    "StreamsGroupTopologyDescriptionUpdate",
    "UnregisterController",
];

fn api_name(key: i16) -> String {
    usize::try_from(key)
        .ok()
        .and_then(|k| KAFKA_API_NAMES.get(k))
        .map_or_else(|| format!("Unknown({key})"), |n| n.to_string())
}

/// Parses `[thrd:…]: sasl_ssl://host:9092/1:   ApiKey Produce (0) Versions 0..11`
/// into (`host:9092`, api).
fn parse_api_line(msg: &str) -> Option<(String, ApiVersion)> {
    let (head, rest) = msg.split_once("ApiKey ")?;
    let head = head.trim_end().trim_end_matches(':');
    let broker = head.rsplit("]: ").next()?.trim();
    let broker = broker.split_once("://").map_or(broker, |(_, b)| b);
    let addr = broker
        .rsplit_once('/')
        .map_or(broker, |(a, _)| a)
        .to_string();
    let (_librdkafka_name, rest) = rest.split_once(" (")?;
    let (key, rest) = rest.split_once(") Versions ")?;
    let (min, max) = rest.trim().split_once("..")?;
    let key: i16 = key.parse().ok()?;
    Some((
        addr,
        ApiVersion {
            name: api_name(key),
            key,
            min: min.parse().ok()?,
            max: max.parse().ok()?,
        },
    ))
}

#[derive(Serialize)]
struct BrokerApis {
    id: i32,
    address: String,
    apis: Vec<ApiVersion>,
}

pub(crate) fn api_versions(opts: &KafkaOpts, json: bool) -> Result<()> {
    let producer: BaseProducer<ApiVersionsContext> = opts
        .client()
        // Connect to every broker, not just those with work to do, and log
        // the ApiVersions answers.
        .set("debug", "feature")
        .set("enable.sparse.connections", "false")
        .build(ApiVersionsContext::default(), "the client")?;
    let md = opts.metadata(producer.client(), None)?;
    let brokers: Vec<(i32, String)> = md
        .brokers()
        .iter()
        .map(|b| (b.id(), format!("{}:{}", b.host(), b.port())))
        .collect();
    let deadline = Instant::now() + opts.timeout;
    let all_seen = |p: &BaseProducer<ApiVersionsContext>| {
        p.context()
            .seen
            .lock()
            .map(|s| brokers.iter().all(|(_, a)| s.contains_key(a)))
            .unwrap_or(false)
    };
    while !all_seen(&producer) && Instant::now() < deadline {
        producer.poll(Duration::from_millis(50));
    }
    // A last poll collects lines logged just before the check.
    producer.poll(Duration::from_millis(50));
    let seen = producer
        .context()
        .seen
        .lock()
        .map(|s| s.clone())
        .unwrap_or_default();
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for (id, addr) in &brokers {
        match seen.get(addr) {
            Some(apis) => {
                let mut apis = apis.clone();
                apis.sort_by_key(|a| a.key);
                out.push(BrokerApis {
                    id: *id,
                    address: addr.clone(),
                    apis,
                });
            }
            None => missing.push(format!("{addr} (id {id})")),
        }
    }
    out.sort_by_key(|b| b.id);
    if json {
        print_json(&out)?;
    } else {
        for (i, b) in out.iter().enumerate() {
            if i > 0 {
                outln!()?;
            }
            outln!("{} (id: {}) -> (", b.address, b.id)?;
            let mut t = table(["API", "KEY", "MIN", "MAX"]);
            for a in &b.apis {
                t.add_row(vec![
                    a.name.clone(),
                    a.key.to_string(),
                    a.min.to_string(),
                    a.max.to_string(),
                ]);
            }
            align_right(&mut t, &[1, 2, 3]);
            print_table(&t)?;
            outln!(")")?;
        }
    }
    if !missing.is_empty() {
        bail!(
            "no ApiVersions answer within {:?} from {}; check that those brokers are reachable from here (advertised.listeners)",
            opts.timeout,
            missing.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_lines_parse() {
        let (addr, api) = parse_api_line(
            "[thrd:127.0.0.1:19092/bootstrap]: 127.0.0.1:19092/bootstrap:   ApiKey Produce (0) Versions 3..12",
        )
        .unwrap();
        assert_eq!(addr, "127.0.0.1:19092");
        assert_eq!(
            api,
            ApiVersion {
                name: "Produce".into(),
                key: 0,
                min: 3,
                max: 12
            }
        );
        let (addr, _) = parse_api_line(
            "[thrd:sasl_ssl://k1:9093/1]: sasl_ssl://k1:9093/1:   ApiKey Fetch (1) Versions 4..17",
        )
        .unwrap();
        assert_eq!(addr, "k1:9093");
        assert!(parse_api_line("Broker API support:").is_none());
        let (_, api) =
            parse_api_line("[thrd:a:1/1]: a:1/1:   ApiKey ApiVersion (18) Versions 0..4").unwrap();
        assert_eq!(api.name, "ApiVersions");
        let (_, api) =
            parse_api_line("[thrd:a:1/1]: a:1/1:   ApiKey Unknown-200? (200) Versions 0..1")
                .unwrap();
        assert_eq!(api.name, "Unknown(200)");
    }
}
