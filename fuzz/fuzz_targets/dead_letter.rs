//! A dead-letter topic's record as anyone may have written it (any header
//! names and values, Connect's and Spring's included), through what `kbridge
//! dlq` does with it: `Letter::of` (what it says), `reason::class` (its
//! group in `stats`) and `rewrite::redriven` (the headers it carries back).
//! Never a panic, and a re-drive's headers never stack: re-driving what a
//! re-drive wrote gives no more headers, and a third time the same ones.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/relay/dlq/letter.rs"]
mod letter;
#[allow(dead_code)]
#[path = "../../src/relay/dlq/reason.rs"]
mod reason;
#[allow(dead_code)]
#[path = "../../src/relay/dlq/rewrite.rs"]
mod rewrite;

use letter::{Letter, Record};

/// The kinds of name a dead letter's headers have, so that the fuzzer
/// reaches each decoder.
const PREFIXES: [&str; 5] = [
    "kbridge.",
    "kbridge.previous.",
    "__connect.errors.",
    "kafka_dlt-",
    "",
];

fuzz_target!(|data: &[u8]| {
    // Headers: [prefix choice][name bytes]\x00[value bytes]\x01 ...
    let mut headers = Vec::new();
    for chunk in data.split(|b| *b == 1) {
        let Some((&choice, rest)) = chunk.split_first() else {
            continue;
        };
        let (name, value) = match rest.iter().position(|b| *b == 0) {
            Some(i) => (&rest[..i], Some(rest[i + 1..].to_vec())),
            None => (rest, None),
        };
        let mut full = PREFIXES[choice as usize % PREFIXES.len()].as_bytes().to_vec();
        full.extend_from_slice(name);
        headers.push((full, value));
    }
    let record = Record {
        headers,
        value: Some(data.to_vec()),
        ..Record::default()
    };
    let l = Letter::of(&record);
    let class = reason::class(l.reason.as_deref().unwrap_or_default());
    assert!(class.chars().count() <= 104);
    let once = rewrite::redriven(&record.headers, l.redriven.saturating_add(1), "d/0@0");
    let twice = rewrite::redriven(&once, 2, "d/0@1");
    let thrice = rewrite::redriven(&twice, 3, "d/0@1");
    assert!(twice.len() <= once.len());
    assert_eq!(twice.len(), thrice.len());
    let counts = |h: &rewrite::Headers| h.iter().filter(|(k, _)| k == b"kbridge.redrive.count").count();
    assert_eq!((counts(&once), counts(&twice)), (1, 1));
});
