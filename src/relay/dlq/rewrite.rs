//! What a re-driven record carries back to its original topic: its key and
//! its own headers as they were, the reason headers of its last dead
//! letter moved aside under `kbridge.previous.*` (replacing those of an
//! earlier re-drive, so nothing stacks however often it comes back), and
//! a re-drive count — which is how a record that keeps failing is refused
//! after `--max-redrives`, and how the relay knows it was sent on purpose
//! (its storm stage lets it through dedupe). Pure.

use super::letter::names;

/// Headers as bytes, in order.
pub(crate) type Headers = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// Whether a header says why the record was dead-lettered (kbridge's,
/// Kafka Connect's or Spring's), or what kbridge left out of it.
fn is_reason(name: &[u8]) -> bool {
    const TRIM: [&str; 4] = [
        "kbridge.value_omitted",
        "kbridge.value_size",
        "kbridge.headers_omitted",
        "kbridge.key_size",
    ];
    names::REASON.iter().any(|n| n.as_bytes() == name)
        || TRIM.iter().any(|n| n.as_bytes() == name)
        || name.starts_with(b"__connect.errors.")
        || name.starts_with(b"kafka_dlt-")
}

/// The headers of the re-driven record: `count` is the re-drive this is
/// (1 for the first), `from` the dead letter's coordinates.
pub(crate) fn redriven(headers: &Headers, count: u32, from: &str) -> Headers {
    let mut out: Headers = Vec::with_capacity(headers.len() + 2);
    let mut moved: Headers = Vec::new();
    for (k, v) in headers {
        if k.starts_with(names::PREVIOUS.as_bytes())
            || k == names::REDRIVE_COUNT.as_bytes()
            || k == b"kbridge.redrive.from"
        {
            continue;
        }
        if is_reason(k) {
            let bare = k.strip_prefix(b"kbridge.").unwrap_or(k);
            let mut name = names::PREVIOUS.as_bytes().to_vec();
            name.extend_from_slice(bare);
            moved.push((name, v.clone()));
        } else {
            out.push((k.clone(), v.clone()));
        }
    }
    out.extend(moved);
    out.push((
        names::REDRIVE_COUNT.as_bytes().to_vec(),
        Some(count.to_string().into_bytes()),
    ));
    out.push((
        b"kbridge.redrive.from".to_vec(),
        Some(from.as_bytes().to_vec()),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), Some(v.as_bytes().to_vec())))
            .collect()
    }

    fn names_of(headers: &Headers) -> Vec<String> {
        headers
            .iter()
            .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
            .collect()
    }

    #[test]
    fn reasons_move_aside_and_never_stack() {
        let first = h(&[
            ("trace", "t-1"),
            ("kbridge.error", "HTTP 503"),
            ("kbridge.stage", "deliver"),
        ]);
        let once = redriven(&first, 1, "dlq/0@1");
        assert_eq!(
            names_of(&once),
            [
                "trace",
                "kbridge.previous.error",
                "kbridge.previous.stage",
                "kbridge.redrive.count",
                "kbridge.redrive.from"
            ]
        );
        // Dead-lettered again by the relay: its new reason beside the
        // previous one; the second re-drive keeps only the newest.
        let mut again = once.clone();
        again.extend(h(&[
            ("kbridge.error", "HTTP 400"),
            ("kbridge.stage", "deliver"),
        ]));
        let twice = redriven(&again, 2, "dlq/0@9");
        let n = names_of(&twice);
        assert_eq!(
            n.iter().filter(|n| *n == "kbridge.previous.error").count(),
            1
        );
        assert_eq!(
            n.iter().filter(|n| *n == "kbridge.redrive.count").count(),
            1
        );
        let error = twice
            .iter()
            .find(|(k, _)| k == b"kbridge.previous.error")
            .unwrap();
        assert_eq!(error.1.as_deref(), Some(&b"HTTP 400"[..]));
        let count = twice
            .iter()
            .find(|(k, _)| k == b"kbridge.redrive.count")
            .unwrap();
        assert_eq!(count.1.as_deref(), Some(&b"2"[..]));
    }

    #[test]
    fn other_writers_reasons_move_aside_too() {
        let r = redriven(
            &h(&[
                ("__connect.errors.topic", "orders"),
                ("kafka_dlt-original-topic", "pay"),
                ("x", "y"),
            ]),
            1,
            "d/0@0",
        );
        assert_eq!(
            names_of(&r)[..3],
            [
                "x",
                "kbridge.previous.__connect.errors.topic",
                "kbridge.previous.kafka_dlt-original-topic"
            ]
        );
    }
}
