//! The input of `kbridge produce`: lines read and checked on a thread of
//! their own and handed over in batches, so that parsing each line as JSON
//! overlaps sending the previous ones (bench/results.md has the figures).

use std::io::{BufRead, BufReader, Read};
use std::ops::Range;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};

/// Lines per batch at most, and bytes of line data after which a batch is
/// handed over: small enough to start sending at once, large enough that
/// the handover costs nothing per line.
const BATCH_LINES: usize = 4096;
const BATCH_BYTES: usize = 256 * 1024;
/// Batches waiting for the sender: with the batches being sent and being
/// filled, about 7 × 256 KB of line data at most (more only while one line
/// is longer than a batch).
const QUEUED_BATCHES: usize = 4;

/// Checked lines, their bodies and keys in one buffer.
#[derive(Default)]
pub(crate) struct Batch {
    data: Vec<u8>,
    pub lines: Vec<Line>,
    /// Input bytes and lines this batch covers (skipped lines included),
    /// for the progress bar.
    pub bytes: u64,
    pub read: u64,
    /// Invalid lines skipped (`--skip-invalid`).
    pub skipped: u64,
}

pub(crate) struct Line {
    /// 1-based line number in the input.
    pub no: usize,
    body: Range<usize>,
    key: Option<Range<usize>>,
}

impl Batch {
    pub(crate) fn body(&self, line: &Line) -> &[u8] {
        &self.data[line.body.clone()]
    }

    pub(crate) fn key(&self, line: &Line) -> Option<&[u8]> {
        line.key.clone().map(|k| &self.data[k])
    }

    /// Records the line whose body was read into `data` at `body` (and
    /// nothing after it), with its key.
    fn add(&mut self, no: usize, body: Range<usize>, key: Option<Vec<u8>>) {
        let key = key.map(|k| {
            let start = self.data.len();
            self.data.extend_from_slice(&k);
            start..self.data.len()
        });
        self.lines.push(Line { no, body, key });
    }

    /// Full by lines read (skipped and empty ones too, so that a run of
    /// invalid lines is handed over and counted like any other) or by
    /// bytes kept.
    fn is_full(&self) -> bool {
        self.read >= BATCH_LINES as u64 || self.data.len() >= BATCH_BYTES
    }

    /// The batch emptied, its buffers kept (unless a very long line grew
    /// them far beyond a batch's size: that memory goes back).
    fn cleared(mut self) -> Self {
        if self.data.capacity() > 4 * BATCH_BYTES {
            self.data = Vec::new();
        }
        self.data.clear();
        self.lines.clear();
        self.bytes = 0;
        self.read = 0;
        self.skipped = 0;
        self
    }
}

/// The checked input, batch by batch. Sent batches come back through
/// [`Input::recycle`], so that their buffers (a quarter of a megabyte of
/// line data each) are reused rather than allocated, page-faulted in and
/// freed again for every batch.
pub(crate) struct Input {
    chunks: Receiver<Chunk>,
    spent: Sender<Batch>,
}

impl Input {
    /// The next chunk; `None` once the input ended (or the reader stopped).
    pub(crate) fn next_chunk(&self) -> Option<Chunk> {
        self.chunks.recv().ok()
    }

    /// Hands a batch back once its lines were sent.
    pub(crate) fn recycle(&self, batch: Batch) {
        let _ = self.spent.send(batch);
    }
}

/// What the reading thread hands over.
pub(crate) enum Chunk {
    Lines(Batch),
    /// A line is invalid (and not skipped): the lines before it came first.
    Invalid(String),
    /// The input could not be read.
    ReadError(std::io::Error),
}

/// How a line is checked: `Ok(key)` or the reason it is invalid.
pub(crate) type Check = dyn Fn(&[u8]) -> Result<Option<Vec<u8>>, String> + Send;

/// Reads `input` on a new thread. Lines are trimmed of their line ending;
/// empty lines are left out. With `skip_invalid`, an invalid line is
/// reported through `on_skip` and left out; otherwise reading stops there.
/// Dropping the [`Input`] stops the thread at its next handover.
pub(crate) fn spawn(
    input: Box<dyn Read + Send>,
    check: Box<Check>,
    skip_invalid: bool,
    on_skip: Box<dyn Fn(&str) + Send>,
) -> Input {
    let (tx, chunks) = sync_channel(QUEUED_BATCHES);
    let (spent, recycled) = channel();
    std::thread::spawn(move || read(input, &*check, skip_invalid, &*on_skip, &tx, &recycled));
    Input { chunks, spent }
}

fn read(
    input: Box<dyn Read + Send>,
    check: &Check,
    skip_invalid: bool,
    on_skip: &(dyn Fn(&str) + Send),
    tx: &SyncSender<Chunk>,
    recycled: &Receiver<Batch>,
) {
    let fresh = || {
        recycled
            .try_recv()
            .map_or_else(|_| Batch::default(), Batch::cleared)
    };
    let mut input = BufReader::with_capacity(256 * 1024, input);
    let mut batch = fresh();
    let mut no = 0usize;
    loop {
        // Each line is read straight into the batch, and taken back out if
        // it is empty or invalid: one copy of the input, not two.
        let start = batch.data.len();
        let n = match input.read_until(b'\n', &mut batch.data) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                batch.data.truncate(start);
                let _ = tx.send(Chunk::Lines(batch));
                let _ = tx.send(Chunk::ReadError(e));
                return;
            }
        };
        no += 1;
        batch.bytes += n as u64;
        batch.read += 1;
        let end = start + trim_line(&batch.data[start..]).len();
        batch.data.truncate(end);
        if end == start {
            continue;
        }
        match check(&batch.data[start..end]) {
            Ok(key) => batch.add(no, start..end, key),
            Err(reason) => {
                batch.data.truncate(start);
                let msg = format!("line {no}: {reason}");
                if !skip_invalid {
                    let _ = tx.send(Chunk::Lines(batch));
                    let _ = tx.send(Chunk::Invalid(msg));
                    return;
                }
                on_skip(&msg);
                batch.skipped += 1;
            }
        }
        if batch.is_full()
            && tx
                .send(Chunk::Lines(std::mem::replace(&mut batch, fresh())))
                .is_err()
        {
            return;
        }
    }
    let _ = tx.send(Chunk::Lines(batch));
}

/// Strips the line ending (LF or CRLF).
pub(crate) fn trim_line(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(input: &'static [u8], skip_invalid: bool) -> (Vec<(usize, String)>, Option<String>) {
        let check: Box<Check> = Box::new(|b: &[u8]| {
            if b.starts_with(b"bad") {
                Err("bad line".to_string())
            } else {
                Ok(b.first().map(|c| vec![*c]))
            }
        });
        let input = spawn(Box::new(input), check, skip_invalid, Box::new(|_| {}));
        let mut lines = Vec::new();
        let mut stop = None;
        while let Some(chunk) = input.next_chunk() {
            match chunk {
                Chunk::Lines(b) => {
                    for l in &b.lines {
                        assert_eq!(b.key(l), Some(&b.body(l)[..1]));
                        lines.push((l.no, String::from_utf8_lossy(b.body(l)).into_owned()));
                    }
                    input.recycle(b);
                }
                Chunk::Invalid(m) => stop = Some(m),
                Chunk::ReadError(e) => stop = Some(e.to_string()),
            }
        }
        (lines, stop)
    }

    #[test]
    fn lines_keep_their_numbers_and_stop_at_an_invalid_one() {
        let (lines, stop) = collect(b"a1\r\n\nb2\nbad\nc3\n", false);
        assert_eq!(lines, vec![(1, "a1".into()), (3, "b2".into())]);
        assert_eq!(stop.as_deref(), Some("line 4: bad line"));
        let (lines, stop) = collect(b"a1\nbad\nc3", true);
        assert_eq!(lines, vec![(1, "a1".into()), (3, "c3".into())]);
        assert_eq!(stop, None);
    }

    #[test]
    fn large_inputs_arrive_whole_and_in_order() {
        let text: String = (0..20_000).map(|i| format!("x{i}\n")).collect();
        let input: &'static [u8] = Box::leak(text.into_bytes().into_boxed_slice());
        let (lines, stop) = collect(input, false);
        assert_eq!(stop, None);
        assert_eq!(lines.len(), 20_000);
        assert!(
            lines
                .iter()
                .enumerate()
                .all(|(i, (no, s))| *no == i + 1 && *s == format!("x{i}"))
        );
    }

    #[test]
    fn line_endings_are_trimmed() {
        assert_eq!(trim_line(b"{}\r\n"), b"{}");
        assert_eq!(trim_line(b"{}"), b"{}");
    }
}
