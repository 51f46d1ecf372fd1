//! Dead letters you can act on: `kbridge dlq stats | show | redrive`.
//!
//! A dead-letter topic is read as it is when the command starts (`read`),
//! each record decoded into what it says about itself whoever wrote it —
//! kbridge, Kafka Connect or Spring (`letter`) — and selected by what it
//! says and holds (`select`). `stats` counts by route, stage, reason class
//! (`reason`), status and original topic; `show` prints records decoded;
//! `redrive` fixes and replays them, to their original topic
//! (`rewrite`: the headers they carry back) or a route's webhook.

mod letter;
mod read;
mod reason;
mod redrive;
mod rewrite;
mod select;
mod show;
mod stats;

use anyhow::Result;

pub(crate) use crate::relay::route::jq::Jq;
pub(crate) use letter::{Letter, Record, names};
pub(crate) use read::{Reader, Span};
pub(crate) use redrive::{Redrive, Target as RedriveTarget};
pub(crate) use select::{Select, view};

use crate::client::KafkaOpts;
use crate::output::outln;

/// What `stats` and `show` read: the topic, the part of it, the filters.
pub(crate) struct Look {
    pub topic: String,
    pub span: Span,
    pub select: Select,
    pub json: bool,
    /// `show`: at most this many records.
    pub limit: Option<u64>,
}

/// Reads the selected dead letters in turn; a filter that fails on a
/// record is said on stderr, and the record left out.
fn each_selected(
    opts: &KafkaOpts,
    look: &Look,
    mut f: impl FnMut(&letter::Record, &Letter) -> Result<bool>,
) -> Result<()> {
    let mut reader = Reader::open(opts, &look.topic, look.span.clone(), None, |_, _| {
        Ok(Default::default())
    })?;
    while let Some(record) = reader.next()? {
        let letter = Letter::of(&record);
        match look.select.takes(&record, &letter) {
            Ok(true) => {
                if !f(&record, &letter)? {
                    break;
                }
            }
            Ok(false) => {}
            Err(e) => eprintln!(
                "kbridge: {}/{}@{}: left out: {e}",
                record.topic, record.partition, record.offset
            ),
        }
    }
    Ok(())
}

/// `kbridge dlq stats`.
pub(crate) fn stats(opts: &KafkaOpts, look: &Look) -> Result<()> {
    let mut stats = stats::Stats::new(&look.topic);
    each_selected(opts, look, |record, letter| {
        stats.add(record, letter);
        Ok(true)
    })?;
    stats.finish().print(look.json)
}

/// `kbridge dlq show`.
pub(crate) fn show(opts: &KafkaOpts, look: &Look) -> Result<()> {
    let mut shown = 0u64;
    each_selected(opts, look, |record, letter| {
        if look.json {
            outln!("{}", show::as_json(record, letter))?;
        } else {
            outln!("{}", show::as_text(record, letter))?;
        }
        shown += 1;
        Ok(look.limit.is_none_or(|l| shown < l))
    })?;
    if shown == 0 && !look.json {
        eprintln!("kbridge: no dead letters in {} match", look.topic);
    }
    Ok(())
}
