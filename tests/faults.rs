//! Fault injection with librdkafka's mock cluster (in this test process,
//! serving real TCP on 127.0.0.1): the relay keeps every alert through a
//! broker outage and through failing fetch and offset-commit requests, and
//! its final commits cover everything it handled.

mod support;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use axum::routing::post;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use support::{WAIT, kbridge_bin, unique, wait_until, wait_within};

/// A real HTTP server on 127.0.0.1 answering like the ops platform and
/// recording the Idempotency-Key of every request it accepted.
struct Receiver {
    url: String,
    keys: Arc<Mutex<Vec<String>>>,
}

fn receiver(rt: &tokio::runtime::Runtime) -> Receiver {
    let keys: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = keys.clone();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(SocketAddr::from((
            [127, 0, 0, 1],
            0,
        ))))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().route(
        "/alerts",
        post(move |headers: HeaderMap| {
            let key = headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_string();
            seen.lock().unwrap().push(key);
            std::future::ready(axum::Json(serde_json::json!({"code": 0})))
        }),
    );
    rt.spawn(async move { axum::serve(listener, app).await });
    Receiver {
        url: format!("http://{addr}/alerts"),
        keys,
    }
}

fn event(i: usize) -> String {
    serde_json::json!({
        "date": 1731900000000u64 + i as u64,
        "df_source": "monitor",
        "df_status": "critical",
        "df_event_id": format!("event-{i}"),
        "df_fault_id": format!("fault-{i}"),
        "df_title": format!("alert {i}"),
        "df_message": "details",
        "df_workspace_name": "faults",
        "df_dimension_tags": "{\"host\":\"h1\"}"
    })
    .to_string()
}

fn produce(
    rt: &tokio::runtime::Runtime,
    brokers: &str,
    topic: &str,
    range: std::ops::Range<usize>,
) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("message.timeout.ms", "60000")
        .create()
        .expect("producer");
    rt.block_on(async {
        for i in range {
            let value = event(i);
            let key = format!("fault-{i}");
            producer
                .send(
                    FutureRecord::to(topic).key(&key).payload(&value),
                    Duration::from_secs(60),
                )
                .await
                .expect("produce to the mock cluster");
        }
    });
}

/// `kbridge run` as a child, its stderr collected line by line.
struct Relay {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Relay {
    fn start(brokers: &str, topic: &str, group: &str, webhook: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(kbridge_bin())
            .args(["-b", brokers, "run", "--topic", topic, "--group", group])
            .args(extra)
            .args(["--webhook", webhook, "--offset-reset", "earliest"])
            .env_remove("KBRIDGE_BROKERS")
            .env("KBRIDGE_LOG", "info,librdkafka=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kbridge run");
        let stderr: Arc<Mutex<Vec<String>>> = Arc::default();
        let lines = stderr.clone();
        let pipe = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        Self { child, stderr }
    }

    fn logged(&self, needle: &str) -> bool {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }

    fn log(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn distinct(keys: &Arc<Mutex<Vec<String>>>) -> usize {
    keys.lock().unwrap().iter().collect::<HashSet<_>>().len()
}

/// A one-broker mock cluster with a two-partition topic, a group name and
/// a receiver.
struct Setup {
    rt: tokio::runtime::Runtime,
    mock: MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    brokers: String,
    topic: String,
    group: String,
    target: Receiver,
}

impl Setup {
    fn new(name: &str) -> Self {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let mock = MockCluster::new(1).expect("mock cluster");
        let topic = unique(name);
        mock.create_topic(&topic, 2, 1).expect("create topic");
        let target = receiver(&rt);
        Self {
            brokers: mock.bootstrap_servers(),
            group: unique(&format!("{name}-group")),
            rt,
            mock,
            topic,
            target,
        }
    }
}

impl Relay {
    /// SIGTERM, and the relay exits 0 within 30 s.
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status =
            wait_within(&mut self.child, Duration::from_secs(30)).expect("kbridge did not stop");
        assert!(status.success(), "exit {status:?}\n{}", self.log());
    }
}

#[test]
fn relay_keeps_every_alert_through_broker_outage_and_request_errors() {
    let f = Setup::new("faults");

    produce(&f.rt, &f.brokers, &f.topic, 0..20);
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
    let mut relay = Relay::start(&f.brokers, &f.topic, &f.group, &f.target.url, &[]);
    assert!(
        wait_until(WAIT, || distinct(&f.target.keys) == 20),
        "first batch not delivered ({} of 20)\n{}",
        distinct(&f.target.keys),
        relay.log()
    );

    // The broker goes away, and comes back while events wait.
    f.mock.broker_down(1).expect("broker down");
    assert!(
        wait_until(WAIT, || relay.logged("brokers are down")
            || relay.logged("Disconnected")
            || relay.logged("Connection refused")),
        "the relay did not notice the outage\n{}",
        relay.log()
    );
    f.mock.broker_up(1).expect("broker up");
    produce(&f.rt, &f.brokers, &f.topic, 20..40);
    assert!(
        wait_until(WAIT, || distinct(&f.target.keys) == 40),
        "after the outage, {} of 40 delivered\n{}",
        distinct(&f.target.keys),
        relay.log()
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
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("kbridge.toml");
    std::fs::write(&config, "commit_interval = \"1h\"\n").expect("write config");

    produce(&f.rt, &f.brokers, &f.topic, 0..20);
    let mut relay = Relay::start(
        &f.brokers,
        &f.topic,
        &f.group,
        &f.target.url,
        &["--config", config.to_str().expect("utf-8 path")],
    );
    assert!(
        wait_until(WAIT, || distinct(&f.target.keys) == 20),
        "not delivered ({} of 20)\n{}",
        distinct(&f.target.keys),
        relay.log()
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
            relay.log()
        );
        total += high;
    }
    drop(committed);
    assert_eq!(total, expected);
}
