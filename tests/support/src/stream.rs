//! A steady stream of alerts into a topic, produced from a thread while a
//! test starts, kills and stops relays: each record's coordinates and the
//! moment it was sent, to measure how long each alert took to arrive.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::broker::brokers;
use crate::events::alert_event;
use crate::runtime::rt;

/// One record of the stream, as the relay will key it.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The relay's Idempotency-Key: `topic-partition-offset`.
    pub key: String,
    pub partition: i32,
    pub offset: i64,
    /// When the producer was handed the record.
    pub at: Instant,
}

/// Alerts produced at a steady rate until `stop`.
pub struct Stream {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Sent>>>,
}

impl Stream {
    /// Produces `per_second` alert events to `topic` (on the test broker),
    /// cycling over `alerts` fault ids — trigger, then repeats — keyed by
    /// fault id, each acknowledged before the next.
    pub fn start(topic: &str, per_second: u32, alerts: usize) -> Self {
        Self::start_on(&brokers(), topic, per_second, alerts)
    }

    pub fn start_on(brokers: &str, topic: &str, per_second: u32, alerts: usize) -> Self {
        let producer = producer(brokers, "0");
        let stop = Arc::new(AtomicBool::new(false));
        let topic = topic.to_string();
        let flag = stop.clone();
        let every = Duration::from_secs(1) / per_second.max(1);
        let thread = std::thread::spawn(move || {
            let mut sent = Vec::new();
            let mut next = Instant::now();
            let mut i = 0usize;
            while !flag.load(Ordering::SeqCst) {
                let (fault, value) = alert(i, alerts);
                let at = Instant::now();
                let record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic)
                    .key(fault.as_bytes())
                    .payload(value.as_slice());
                let delivered = rt().block_on(producer.send(record, Duration::from_secs(20)));
                match delivered {
                    Ok(d) => sent.push(Sent {
                        key: format!("{topic}-{}-{}", d.partition, d.offset),
                        partition: d.partition,
                        offset: d.offset,
                        at,
                    }),
                    Err((e, _)) => panic!("the stream could not produce record {i}: {e}"),
                }
                i += 1;
                next += every;
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            sent
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// Produces `n` alert events at once (cycling over `alerts` fault ids,
    /// as the stream does, numbered from `first`): the alerts waiting when
    /// a relay starts. Each `Sent::at` is when all were acknowledged.
    pub fn backlog(topic: &str, n: usize, alerts: usize, first: usize) -> Vec<Sent> {
        let producer = producer(&brokers(), "5");
        let futures: Vec<_> = (first..first + n)
            .map(|i| {
                let (fault, value) = alert(i, alerts);
                let record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
                    .key(fault.as_bytes())
                    .payload(value.as_slice());
                producer
                    .send_result(record)
                    .unwrap_or_else(|(e, _)| panic!("cannot queue backlog record {i}: {e}"))
            })
            .collect();
        let delivered: Vec<_> = rt().block_on(async {
            let mut out = Vec::with_capacity(futures.len());
            for f in futures {
                out.push(f.await);
            }
            out
        });
        let at = Instant::now();
        delivered
            .into_iter()
            .enumerate()
            .map(|(i, d)| match d {
                Ok(Ok(d)) => Sent {
                    key: format!("{topic}-{}-{}", d.partition, d.offset),
                    partition: d.partition,
                    offset: d.offset,
                    at,
                },
                other => panic!("backlog record {i} not produced: {other:?}"),
            })
            .collect()
    }

    /// Stops producing; returns every record sent.
    pub fn stop(mut self) -> Vec<Sent> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .expect("stopped once")
            .join()
            .expect("the stream's thread panicked")
    }
}

/// An idempotent producer that waits for every replica.
fn producer(brokers: &str, linger_ms: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", linger_ms)
        .set("message.timeout.ms", "20000")
        .create()
        .expect("cannot create the stream's producer")
}

/// Record `i` of a stream over `alerts` alert ids: its key (the fault id)
/// and its value.
fn alert(i: usize, alerts: usize) -> (String, Vec<u8>) {
    let fault = format!("fault-{}", i % alerts.max(1));
    let value =
        serde_json::to_vec(&alert_event(i, &fault, "critical")).expect("an event serialises");
    (fault, value)
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}
