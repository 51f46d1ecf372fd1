//! `kbridge silence add | list | expire`: silences in the relay's state
//! topic (`storm::silences`), which every instance of the group follows.
//! The topic is the one the relay's config names (`-c`), or `--state-topic`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;

use crate::client::{KafkaContext, KafkaOpts};
use crate::error::UsageError;
use crate::relay::config::{Overrides, RelayConfig};
use crate::relay::route::jq::Jq;
use crate::relay::storm::{Silence, now_ms, silences};
use crate::time_spec::show_ms_to_second;

/// Where the silences are: brokers and the state topic.
pub(crate) struct Place {
    kafka: KafkaOpts,
    topic: String,
}

impl Place {
    /// The state topic named, or the one of the relay's config.
    pub(crate) fn resolve(
        config: Option<&Path>,
        state_topic: Option<String>,
        kafka: KafkaOpts,
        brokers_given: bool,
    ) -> Result<Self> {
        if let Some(topic) = state_topic {
            return Ok(Self { kafka, topic });
        }
        let Some(config) = config else {
            bail!(UsageError(
                "name the relay's config (-c FILE or KBRIDGE_CONFIG), whose state topic holds the silences, or the topic itself (--state-topic)".into()
            ));
        };
        let overrides = Overrides {
            brokers: brokers_given.then(|| kafka.brokers.clone()),
            kafka: kafka.properties.iter().cloned().collect(),
            ..Default::default()
        };
        let cfg = RelayConfig::load(Some(config), &overrides)
            .map_err(|e| UsageError(format!("{e:#}")))?;
        if !cfg.has_storm() {
            bail!(UsageError(format!(
                "{} has no storm stage, so its relay honours no silences: give a route [route.storm] keys, or set [storm] silences = true",
                config.display()
            )));
        }
        Ok(Self {
            topic: cfg.storm_state_topic(),
            kafka: KafkaOpts {
                timeout: kafka.timeout,
                ..cfg.kafka_opts()
            },
        })
    }

    /// Every silence, as the relay's reader would find them now.
    fn read(&self) -> Result<BTreeMap<String, Silence>> {
        let consumer: BaseConsumer<KafkaContext> = self
            .kafka
            .client()
            .set("group.id", "kbridge-silences")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .build(KafkaContext::default(), "the Kafka client")?;
        let md = self.kafka.metadata(consumer.client(), Some(&self.topic))?;
        self.kafka.require_topics(&md, std::slice::from_ref(&self.topic)).map_err(|_| {
            anyhow!(
                "the state topic '{}' does not exist: start `kbridge run` with this config once (it creates it), or name the right one",
                self.topic
            )
        })?;
        let (_, end) = consumer
            .fetch_watermarks(&self.topic, silences::PARTITION, self.kafka.timeout)
            .with_context(|| format!("cannot read the end of {}", self.topic))?;
        let mut all = BTreeMap::new();
        if end == 0 {
            return Ok(all);
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, silences::PARTITION, Offset::Beginning)?;
        consumer.assign(&tpl)?;
        let deadline = std::time::Instant::now() + self.kafka.timeout;
        let mut at = 0;
        while at < end {
            if std::time::Instant::now() > deadline {
                bail!(
                    "the silences of {} were not all read within {:?} (--timeout)",
                    self.topic,
                    self.kafka.timeout
                );
            }
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    at = m.offset() + 1;
                    let Some(id) = m.key().and_then(silences::id_of) else {
                        continue;
                    };
                    match m.payload().map(silences::read) {
                        None => {
                            all.remove(&id);
                        }
                        Some(Ok(s)) => {
                            all.insert(id, s);
                        }
                        Some(Err(e)) => eprintln!("kbridge: silence {id} not read: {e}"),
                    }
                }
                Some(Err(e)) => bail!("cannot read {}: {e}", self.topic),
                None => {
                    if let Ok(pos) = consumer.position()
                        && let Some(Offset::Offset(o)) = pos.elements().first().map(|e| e.offset())
                    {
                        at = at.max(o);
                    }
                }
            }
        }
        Ok(all)
    }

    /// Writes a silence and waits for the brokers to have it.
    async fn write(&self, s: &Silence) -> Result<()> {
        let producer: FutureProducer<KafkaContext> = self
            .kafka
            .client()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .build(KafkaContext::default(), "the Kafka client")?;
        let key = silences::key(&s.id);
        let value = crate::relay::storm::changelog_value(s);
        producer
            .send(
                FutureRecord::to(&self.topic)
                    .partition(silences::PARTITION)
                    .key(&key)
                    .payload(&value),
                self.kafka.timeout,
            )
            .await
            .map_err(|(e, _)| anyhow!("cannot write the silence to {}: {e}", self.topic))?;
        Ok(())
    }
}

/// What `silence add` is given.
pub(crate) struct NewSilence {
    pub matcher: String,
    pub route: Option<String>,
    pub starts: i64,
    pub ends: i64,
    pub comment: String,
    pub created_by: String,
}

pub(crate) async fn add(place: &Place, new: NewSilence) -> Result<ExitCode> {
    Jq::compile(&new.matcher).map_err(|e| UsageError(format!("--match: {e}")))?;
    if new.ends <= new.starts {
        bail!(UsageError("the silence ends before it starts".into()));
    }
    if new.ends <= now_ms() {
        bail!(UsageError(
            "the silence is over already (--ends is in the past)".into()
        ));
    }
    let now = now_ms();
    let s = Silence {
        id: format!(
            "s-{:x}",
            jiff::Timestamp::now().as_nanosecond() as u64 & 0xffff_ffff_ffff
        ),
        matcher: new.matcher,
        route: new.route,
        starts: new.starts,
        ends: new.ends,
        comment: new.comment,
        created_by: new.created_by,
        created_at: now,
    };
    place.write(&s).await?;
    println!("{}", s.id);
    eprintln!(
        "silence {} in force from {} until {} on {}: every relay of the group honours it within a second",
        s.id,
        show_ms_to_second(s.starts),
        show_ms_to_second(s.ends),
        s.route
            .as_deref()
            .map_or("every route".into(), |r| format!("route {r}"))
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn list(place: &Place, all: bool, as_json: bool) -> Result<ExitCode> {
    let now = now_ms();
    let silences: Vec<Silence> = place
        .read()?
        .into_values()
        .filter(|s| all || s.ends > now)
        .collect();
    let state = |s: &Silence| {
        if s.ends <= now {
            "expired"
        } else if s.starts > now {
            "pending"
        } else {
            "active"
        }
    };
    if as_json {
        for s in &silences {
            let mut v = serde_json::to_value(s)?;
            v["state"] = json!(state(s));
            println!("{v}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if silences.is_empty() {
        eprintln!(
            "no silences{}",
            if all {
                ""
            } else {
                " in force or pending (--all shows expired ones)"
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<16} {:<8} {:<20} {:<20} {:<10} {:<30} COMMENT",
        "ID", "STATE", "STARTS", "ENDS", "ROUTE", "MATCH"
    );
    for s in &silences {
        println!(
            "{:<16} {:<8} {:<20} {:<20} {:<10} {:<30} {}{}",
            s.id,
            state(s),
            show_ms_to_second(s.starts),
            show_ms_to_second(s.ends),
            s.route.as_deref().unwrap_or("*"),
            s.matcher,
            s.comment,
            if s.created_by.is_empty() {
                String::new()
            } else {
                format!(" ({})", s.created_by)
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn expire(place: &Place, id: &str) -> Result<ExitCode> {
    let Some(mut s) = place.read()?.remove(id) else {
        eprintln!(
            "kbridge: no silence '{id}' in {} (see `kbridge silence list --all`)",
            place.topic
        );
        return Ok(ExitCode::FAILURE);
    };
    let now = now_ms();
    if s.ends <= now {
        eprintln!(
            "silence {id} is over already (it ended {})",
            show_ms_to_second(s.ends)
        );
        return Ok(ExitCode::SUCCESS);
    }
    s.ends = now;
    s.starts = s.starts.min(now);
    place.write(&s).await?;
    eprintln!("silence {id} expired: its events flow again");
    Ok(ExitCode::SUCCESS)
}
