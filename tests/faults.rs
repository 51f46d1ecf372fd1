//! Fault injection with librdkafka's mock cluster (in this test process,
//! serving real TCP on 127.0.0.1): the relay keeps every alert through a
//! broker outage and through failing fetch and offset-commit requests, and
//! its final commits cover everything it handled.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use support::broker::unique;
use support::events::event;
use support::http_target::{Script, Target};
use support::records::{Rec, produce_records_with};
use support::relay_cmd::RelayCmd;
use support::relay_process::Relay;
use support::wait::{WAIT, wait_until};

/// A one-broker mock cluster with a two-partition topic, a group name and
/// a target.
struct Setup {
    mock: MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    brokers: String,
    topic: String,
    group: String,
    target: Target,
}

impl Setup {
    fn new(name: &str) -> Self {
        let mock = MockCluster::new(1).expect("mock cluster");
        let topic = unique(name);
        mock.create_topic(&topic, 2, 1).expect("create topic");
        Self {
            brokers: mock.bootstrap_servers(),
            group: unique(&format!("{name}-group")),
            mock,
            topic,
            target: Target::start(Script::default()),
        }
    }

    /// Produces events `range` to the mock cluster, keyed by fault id.
    fn produce(&self, range: std::ops::Range<usize>) {
        let recs: Vec<Rec> = range.map(|i| Rec::event(&event(i))).collect();
        produce_records_with(
            &self.topic,
            &recs,
            &[
                ("bootstrap.servers", &self.brokers),
                ("message.timeout.ms", "60000"),
            ],
        );
    }

    /// The relay on the mock cluster, from the earliest offset.
    fn relay(&self) -> RelayCmd {
        RelayCmd::new(&self.topic, &self.group, &self.target.url())
            .brokers(&self.brokers)
            .env("KBRIDGE_LOG", "info,librdkafka=warn")
    }
}

#[test]
fn relay_keeps_every_alert_through_broker_outage_and_request_errors() {
    let f = Setup::new("faults");

    f.produce(0..20);
    // The first commits and fetches fail; the relay must neither stall
    // nor lose their events.
    f.mock.request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT; 3],
    );
    f.mock.request_errors(
        RDKafkaApiKey::Fetch,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION; 2],
    );
    let mut relay = f.relay().start();
    assert!(
        wait_until(WAIT, || f.target.distinct() == 20),
        "first batch not delivered ({} of 20)\n{}",
        f.target.distinct(),
        relay.stderr()
    );

    // The broker goes away, and comes back while events wait.
    f.mock.broker_down(1).expect("broker down");
    assert!(
        wait_until(WAIT, || relay.has_log("brokers are down")
            || relay.has_log("Disconnected")
            || relay.has_log("Connection refused")),
        "the relay did not notice the outage\n{}",
        relay.stderr()
    );
    f.mock.broker_up(1).expect("broker up");
    f.produce(20..40);
    assert!(
        wait_until(WAIT, || f.target.distinct() == 40),
        "after the outage, {} of 40 delivered\n{}",
        f.target.distinct(),
        relay.stderr()
    );

    // A clean stop commits everything handled.
    relay.stop();

    assert_fully_committed(&f.brokers, &f.topic, &f.group, 40, &relay);
}

/// The shutdown commit is the only one (commit_interval 1 h) and its first
/// requests time out: it must be made again, not given up, or a restart
/// would send every alert again.
#[test]
fn shutdown_commit_is_retried_after_request_timeouts() {
    let f = Setup::new("faults-commit");

    f.produce(0..20);
    let mut relay = f.relay().config("commit_interval = \"1h\"\n").start();
    assert!(
        wait_until(WAIT, || f.target.distinct() == 20),
        "not delivered ({} of 20)\n{}",
        f.target.distinct(),
        relay.stderr()
    );
    f.mock.request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT; 6],
    );
    relay.stop();
    assert_fully_committed(&f.brokers, &f.topic, &f.group, 20, &relay);
}

/// Every partition's committed offset is its log end, and the log ends sum
/// to `expected`.
fn assert_fully_committed(brokers: &str, topic: &str, group: &str, expected: i64, relay: &Relay) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    tpl.add_partition(topic, 1);
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    let mut total = 0;
    for e in committed.elements() {
        let (_, high) = consumer
            .fetch_watermarks(topic, e.partition(), Duration::from_secs(10))
            .expect("watermarks");
        assert_eq!(
            e.offset(),
            Offset::Offset(high),
            "partition {} not fully committed\n{}",
            e.partition(),
            relay.stderr()
        );
        total += high;
    }
    drop(committed);
    assert_eq!(total, expected);
}
