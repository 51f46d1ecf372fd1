//! `kbridge produce`'s delivery reports, one a line on stdout: `line N:
//! delivered to T [P] at offset O`. Tests read them back to know where each
//! input line went.

use std::process::Output;

use crate::output::OutputExt;

/// One parsed delivery report: `line N: delivered to T [P] at offset O`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub line: usize,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

fn parse_report(l: &str) -> Report {
    let parsed = (|| {
        let rest = l.strip_prefix("line ")?;
        let (line, rest) = rest.split_once(": delivered to ")?;
        let (tp, offset) = rest.rsplit_once(" at offset ")?;
        let (topic, partition) = tp.rsplit_once(" [")?;
        Some(Report {
            line: line.parse().ok()?,
            topic: topic.to_string(),
            partition: partition.strip_suffix(']')?.parse().ok()?,
            offset: offset.parse().ok()?,
        })
    })();
    parsed.unwrap_or_else(|| panic!("not a delivery report: {l:?}"))
}

/// Every delivery report of a `kbridge produce` run.
pub fn reports(out: &Output) -> Vec<Report> {
    out.lines().iter().map(|l| parse_report(l)).collect()
}
