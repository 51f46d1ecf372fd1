//! `kbridge dlq stats TOPIC`: what is in a dead-letter topic, counted by
//! route, stage, reason (its class: `reason::class`), HTTP status and
//! original topic, with the oldest and newest record of each group — the
//! first look before deciding what to re-drive.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;

use super::letter::{Letter, Record, Writer};
use super::reason;
use crate::output::{align_right, opt, outln, print_json, print_table, table};
use crate::time_spec::show_ms_to_second;

/// One group of dead letters that share a route, stage, reason class,
/// status and original topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub(crate) struct GroupKey {
    pub route: Option<String>,
    pub stage: Option<String>,
    pub reason: String,
    pub status: Option<u16>,
    pub topic: Option<String>,
    pub writer: Writer,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Group {
    #[serde(flatten)]
    pub key: GroupKey,
    pub count: u64,
    pub oldest: Option<String>,
    pub newest: Option<String>,
    /// One full reason of the group, as an example.
    pub example: Option<String>,
    /// Already re-driven at least once.
    pub redriven: u64,
}

/// The most groups `stats` keeps (memory is bounded by it): the reasons
/// of any further group are counted under [`OTHER_REASONS`].
const MAX_GROUPS: usize = 10_000;

/// The reason class of the groups beyond [`MAX_GROUPS`].
const OTHER_REASONS: &str =
    "(reasons beyond the 10,000 groups stats keeps: narrow with --route, --stage or --since)";

/// One group while counting.
#[derive(Debug, Default)]
struct Tally {
    count: u64,
    oldest: Option<i64>,
    newest: Option<i64>,
    example: Option<String>,
    redriven: u64,
}

/// What `stats` counted.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Stats {
    pub topic: String,
    pub records: u64,
    pub oldest: Option<String>,
    pub newest: Option<String>,
    pub groups: Vec<Group>,
    #[serde(skip)]
    counting: BTreeMap<GroupKey, Tally>,
    #[serde(skip)]
    span: (Option<i64>, Option<i64>),
}

impl Stats {
    pub(crate) fn new(topic: &str) -> Self {
        Self {
            topic: topic.to_string(),
            ..Self::default()
        }
    }

    /// Counts one dead letter.
    pub(crate) fn add(&mut self, record: &Record, letter: &Letter) {
        self.records += 1;
        let mut key = GroupKey {
            route: letter.route.clone(),
            stage: letter.stage.clone(),
            reason: reason::class(letter.reason.as_deref().unwrap_or("")),
            status: letter.status,
            topic: letter.source.as_ref().map(|s| s.topic.clone()),
            writer: letter.writer,
        };
        if self.counting.len() >= MAX_GROUPS && !self.counting.contains_key(&key) {
            key = GroupKey {
                route: None,
                stage: None,
                reason: OTHER_REASONS.into(),
                status: None,
                topic: None,
                writer: letter.writer,
            };
        }
        let ts = record.timestamp_ms;
        let t = self.counting.entry(key).or_default();
        t.count += 1;
        t.oldest = min(t.oldest, ts);
        t.newest = max(t.newest, ts);
        if t.example.is_none() {
            t.example = letter.reason.clone();
        }
        if letter.redriven > 0 {
            t.redriven += 1;
        }
        self.span = (min(self.span.0, ts), max(self.span.1, ts));
    }

    /// The groups, most frequent first.
    pub(crate) fn finish(mut self) -> Self {
        let mut groups: Vec<Group> = std::mem::take(&mut self.counting)
            .into_iter()
            .map(|(key, t)| Group {
                key,
                count: t.count,
                oldest: t.oldest.map(show_ms_to_second),
                newest: t.newest.map(show_ms_to_second),
                example: t.example,
                redriven: t.redriven,
            })
            .collect();
        groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        self.groups = groups;
        self.oldest = self.span.0.map(show_ms_to_second);
        self.newest = self.span.1.map(show_ms_to_second);
        self
    }

    pub(crate) fn print(&self, json: bool) -> Result<()> {
        if json {
            return print_json(self);
        }
        if self.records == 0 {
            outln!("{}: no dead letters in this window", self.topic)?;
            return Ok(());
        }
        outln!(
            "{}: {} dead letter{}, oldest {}, newest {}",
            self.topic,
            self.records,
            if self.records == 1 { "" } else { "s" },
            opt(self.oldest.as_ref()),
            opt(self.newest.as_ref())
        )?;
        let mut t = table([
            "COUNT", "ROUTE", "STAGE", "STATUS", "TOPIC", "REASON", "OLDEST", "NEWEST",
        ]);
        for g in &self.groups {
            let writer = match g.key.writer {
                Writer::Kbridge => String::new(),
                w => format!(" ({})", w.as_str()),
            };
            t.add_row([
                g.count.to_string(),
                format!("{}{writer}", opt(g.key.route.as_ref())),
                opt(g.key.stage.as_ref()),
                opt(g.key.status),
                opt(g.key.topic.as_ref()),
                if g.key.reason.is_empty() {
                    "-".into()
                } else {
                    g.key.reason.clone()
                },
                opt(g.oldest.as_ref()),
                opt(g.newest.as_ref()),
            ]);
        }
        align_right(&mut t, &[0]);
        print_table(&t)
    }
}

fn min(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn max(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(route: &str, reason: &str, ts: i64) -> (Record, Letter) {
        let r = Record {
            timestamp_ms: Some(ts),
            headers: vec![
                (b"kbridge.route".to_vec(), Some(route.as_bytes().to_vec())),
                (b"kbridge.stage".to_vec(), Some(b"deliver".to_vec())),
                (b"kbridge.error".to_vec(), Some(reason.as_bytes().to_vec())),
            ],
            ..Record::default()
        };
        let l = Letter::of(&r);
        (r, l)
    }

    #[test]
    fn groups_by_class_most_frequent_first() {
        let mut s = Stats::new("dlq");
        for (route, reason, ts) in [
            ("a", "gave up after 3 attempts", 2_000),
            ("a", "gave up after 10 attempts", 1_000),
            ("b", "df_title: missing", 3_000),
        ] {
            let (r, l) = letter(route, reason, ts);
            s.add(&r, &l);
        }
        let s = s.finish();
        assert_eq!(s.records, 3);
        assert_eq!(s.groups.len(), 2);
        assert_eq!(s.groups[0].count, 2);
        assert_eq!(s.groups[0].key.reason, "gave up after N attempts");
        assert_eq!(s.groups[0].oldest.as_deref(), Some("1970-01-01T00:00:01Z"));
        assert_eq!(s.newest.as_deref(), Some("1970-01-01T00:00:03Z"));
    }
}
