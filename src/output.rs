//! How listing commands print: a table for people, JSON for machines.

use std::io::Write;

use anyhow::Result;
use comfy_table::presets::NOTHING;
use comfy_table::{CellAlignment, Table};
use serde::Serialize;

/// `println!` that returns an error instead of panicking when standard
/// output is closed (`kbridge topics list | head -1`); `main` treats a
/// broken pipe as a normal end.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}
pub(crate) use outln;

/// A plain, borderless table like the Kafka scripts print, so it stays
/// readable in a terminal and greppable in a pipe.
pub(crate) fn table<I, S>(header: I) -> Table
where
    I: IntoIterator<Item = S>,
    S: Into<comfy_table::Cell>,
{
    let mut t = Table::new();
    t.load_style(NOTHING);
    t.set_header(header);
    t
}

/// Right-aligns the given (numeric) columns.
pub(crate) fn align_right(t: &mut Table, columns: &[usize]) {
    for &c in columns {
        if let Some(col) = t.column_mut(c) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
}

pub(crate) fn print_table(t: &Table) -> Result<()> {
    // One write for the table, not one per line (stdout is line-buffered).
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    // comfy-table pads the first column with one space; trim it per line so
    // the output starts at column 0 like kafka-topics.sh.
    for line in t.to_string().lines() {
        writeln!(out, "{}", line.strip_prefix(' ').unwrap_or(line).trim_end())?;
    }
    out.flush()?;
    Ok(())
}

pub(crate) fn print_json<T: Serialize>(value: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).map_err(|e| match e.io_error_kind() {
        // Keep the io::Error (a broken pipe is a normal end for `main`).
        Some(kind) => std::io::Error::from(kind),
        None => std::io::Error::other(e),
    })?;
    writeln!(out)?;
    Ok(())
}

/// Renders an optional number as the Kafka scripts do: `-` when unknown.
pub(crate) fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".to_string())
}
