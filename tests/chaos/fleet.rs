//! A fleet: one topic, one group, one target, several relay instances, each
//! posting to its own path of the target so that a request says who sent
//! it.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use support::broker::unique;
use support::http_target::{Script, Target};
use support::kafka::{new_topic, wait_fully_committed};
use support::relay_cmd::RelayCmd;
use support::relay_process::Relay;
use support::small_target::SmallTarget;
use support::stream::{Sent, Stream};

/// Alerts per second in every scenario's stream.
pub const RATE: u32 = 40;
/// Distinct alerts (fault ids) the stream cycles over.
pub const ALERTS: usize = 24;

/// Runs the scenarios one at a time.
pub fn exclusive() -> MutexGuard<'static, ()> {
    static ONE: Mutex<()> = Mutex::new(());
    ONE.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct Fleet {
    pub topic: String,
    pub group: String,
    pub target: Target,
    /// When set, the instances post here instead of to `target`.
    pub small: Option<SmallTarget>,
    pub instances: BTreeMap<String, Relay>,
    /// Static membership: each instance's name is its group.instance.id.
    static_members: bool,
    /// A config file for every instance; `{URL}` becomes its own URL.
    config: Option<String>,
    stream: Option<Stream>,
}

impl Fleet {
    pub fn new(name: &str, partitions: i32, script: Script) -> Self {
        Self {
            topic: new_topic(name, partitions),
            group: unique(&format!("{name}-g")),
            target: Target::start(script),
            small: None,
            instances: BTreeMap::new(),
            static_members: false,
            config: None,
            stream: None,
        }
    }

    /// Gives every instance this config (`{URL}`: the instance's URL).
    pub fn config(mut self, toml: &str) -> Self {
        self.config = Some(toml.to_string());
        self
    }

    /// Posts to a small in-house target (`SmallTarget`) instead.
    pub fn small_target(mut self) -> Self {
        self.small = Some(SmallTarget::start());
        self
    }

    fn url_for(&self, name: &str) -> String {
        match &self.small {
            Some(small) => small.url_for(name),
            None => self.target.url_for(name),
        }
    }

    pub fn static_members(mut self) -> Self {
        self.static_members = true;
        self
    }

    /// How instance `name` is started (again, after a restart).
    pub fn cmd(&self, name: &str) -> RelayCmd {
        let mut cmd = RelayCmd::new(&self.topic, &self.group, &self.url_for(name))
            .env("KBRIDGE_LOG", "info,librdkafka=warn");
        if self.static_members {
            cmd = cmd.env("KBRIDGE_GROUP_INSTANCE_ID", name);
        }
        if let Some(toml) = &self.config {
            cmd = cmd.config(&toml.replace("{URL}", &self.url_for(name)));
        }
        cmd
    }

    /// Starts instance `name` and waits until it owns partitions.
    pub fn join(&mut self, name: &str) {
        let mut relay = self.cmd(name).start();
        relay.wait_assigned();
        self.instances.insert(name.to_string(), relay);
    }

    /// Starts instance `name` without waiting for an assignment.
    pub fn launch(&mut self, name: &str) {
        let relay = self.cmd(name).start();
        self.instances.insert(name.to_string(), relay);
    }

    pub fn instance(&mut self, name: &str) -> &mut Relay {
        self.instances
            .get_mut(name)
            .unwrap_or_else(|| panic!("no instance {name}"))
    }

    pub fn start_stream(&mut self) {
        self.start_stream_at(RATE, ALERTS);
    }

    /// A stream of `per_second` events over `alerts` alert ids.
    pub fn start_stream_at(&mut self, per_second: u32, alerts: usize) {
        self.stream = Some(Stream::start(&self.topic, per_second, alerts));
    }

    /// Stops the stream; returns what it sent.
    pub fn stop_stream(&mut self) -> Vec<Sent> {
        self.stream.take().expect("the stream runs").stop()
    }

    /// Waits until the group committed the whole topic.
    pub fn wait_committed(&self) {
        wait_fully_committed(&self.group, &self.topic, Duration::from_secs(60));
    }

    /// Stops instance `name` with SIGTERM; it must exit 0 within 30 s.
    pub fn sigterm(&mut self, name: &str) {
        let relay = self.instance(name);
        relay.signal("TERM");
        let status = relay.expect_exit(Duration::from_secs(30));
        assert!(
            status.success(),
            "{name} exited {status:?}:\n{}",
            relay.stderr()
        );
    }

    /// Stops every instance with SIGTERM; each must exit 0.
    pub fn stop_all(&mut self) {
        let running: Vec<String> = self
            .instances
            .iter_mut()
            .filter_map(|(name, relay)| {
                relay
                    .wait_exit(Duration::ZERO)
                    .is_none()
                    .then(|| name.clone())
            })
            .collect();
        for name in running {
            self.sigterm(&name);
        }
    }
}
