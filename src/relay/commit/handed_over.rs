//! What a partition's owner handled beyond its commit point, written as the
//! offset commit's metadata so that the next owner does not send it again.
//!
//! A commit point stops at the oldest unfinished event: an alert retried
//! for a minute holds it while hundreds of later events are delivered.
//! Without more, the next owner — after a rebalance, a clean stop, a
//! restart — starts at the commit point and sends all of those again.
//! Kafka keeps a string with every committed offset (`offset.metadata.max.bytes`,
//! 4 KiB by default), atomically with it; Confluent's Parallel Consumer
//! keeps its completed offsets there, and so does kbridge:
//!
//! ```text
//! kb1;1200;ops,billing;r1.5.2.30;billing=r0.1
//! ```
//!
//! `kb1` is the format's version, `1200` the commit point it was written
//! with (a reader ignores metadata whose base is not the committed offset:
//! another tool moved the offset and kept the string), then the routes that
//! took the partition's events (names percent-encoded), the offsets every
//! one of those routes handled, then per route the offsets only some
//! routes handled — an event fanned out to two routes, delivered on one.
//! A route the writer did not have (a route added since, or one that takes
//! the topic now) finds nothing handled for it: it gets every event. A set is relative to the base,
//! either as runs (`r`: alternately not handled and handled, starting with
//! not handled: `r1.5.2.30` is 1–5 and 8–37) or, when that is less than half
//! as long, as a bitset (`b`, base64url, bit i of byte i/8 for offset
//! base+i): scattered offsets cost a bit each.
//!
//! Missing or unreadable metadata (an older kbridge, another tool, a future
//! version) means nothing is known: the events are sent again, never lost.
//! So a group of old and new instances — a rolling upgrade — loses nothing,
//! and at worst sends what it sent before. When the record would pass the
//! budget, its farthest offsets are left out: sent again, not lost.

use std::collections::BTreeMap;

use base64::Engine;
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

/// The format's version tag.
const VERSION: &str = "kb1";

/// What a commit's metadata may take: below the broker's default
/// `offset.metadata.max.bytes` (4096), with room to spare.
pub(crate) const BUDGET: usize = 3800;

/// Route names are percent-encoded where the format uses the character.
const IN_NAME: &AsciiSet = &CONTROLS
    .add(b'%')
    .add(b';')
    .add(b'=')
    .add(b' ')
    .add(b'.')
    .add(b',');

/// Offsets as ascending, disjoint, non-empty half-open ranges
/// `[start, end)`: a compacted topic's gaps and a long run cost one entry.
pub(crate) type Ranges = Vec<(i64, i64)>;

/// Offsets handled beyond a commit point.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Handled {
    /// The commit point the record goes with.
    pub base: i64,
    /// The routes that took the partition's events, by name: what `all`
    /// speaks for.
    pub took: Vec<String>,
    /// Offsets (each ≥ `base`) that every route of `took` handled.
    pub all: Ranges,
    /// Offsets handled on some routes only, by route name.
    pub routes: BTreeMap<String, Ranges>,
}

/// Whether `ranges` hold `offset`.
pub(crate) fn holds(ranges: &[(i64, i64)], offset: i64) -> bool {
    let i = ranges.partition_point(|(_, end)| *end <= offset);
    ranges.get(i).is_some_and(|(start, _)| *start <= offset)
}

impl Handled {
    pub(crate) fn is_empty(&self) -> bool {
        self.all.is_empty() && self.routes.values().all(Vec::is_empty)
    }

    /// Whether every route handled `offset`.
    #[cfg(test)]
    pub(crate) fn all_handled(&self, offset: i64) -> bool {
        holds(&self.all, offset)
    }

    /// The routes (by name) that handled `offset` when not all did.
    #[cfg(test)]
    pub(crate) fn routes_handled(&self, offset: i64) -> impl Iterator<Item = &str> {
        self.routes
            .iter()
            .filter(move |(_, ranges)| holds(ranges, offset))
            .map(|(name, _)| name.as_str())
    }

    /// The metadata string, within `budget` bytes; empty when nothing was
    /// handled beyond the base. What does not fit is left out, farthest
    /// offsets first (per-route sets before the common one).
    pub(crate) fn encode(&self, budget: usize) -> String {
        let mut h = self.clone();
        h.routes.retain(|_, r| !r.is_empty());
        loop {
            if h.is_empty() {
                return String::new();
            }
            let text = h.text();
            if text.len() <= budget {
                return text;
            }
            // Per-route sets go first (they matter for fan-out only), the
            // longest first; then the farther half of the common set.
            if let Some(longest) = h
                .routes
                .iter()
                .max_by_key(|(_, r)| r.len())
                .map(|(n, _)| n.clone())
            {
                h.routes.remove(&longest);
            } else {
                let keep = h.all.len() / 2;
                h.all.truncate(keep);
            }
        }
    }

    fn text(&self) -> String {
        let took: Vec<String> = self
            .took
            .iter()
            .map(|n| utf8_percent_encode(n, IN_NAME).to_string())
            .collect();
        let mut s = format!(
            "{VERSION};{};{};{}",
            self.base,
            took.join(","),
            set(self.base, &self.all)
        );
        for (name, ranges) in &self.routes {
            s.push(';');
            s.extend(utf8_percent_encode(name, IN_NAME));
            s.push('=');
            s.push_str(&set(self.base, ranges));
        }
        s
    }

    /// Reads a commit's metadata. `Ok(None)`: nothing kbridge wrote (empty,
    /// another tool's) or written with another base than `committed` (the
    /// offset was moved since); `Err`: kbridge's tag, but unreadable.
    pub(crate) fn decode(text: &str, committed: i64) -> Result<Option<Self>, String> {
        let mut fields = text.split(';');
        if fields.next() != Some(VERSION) {
            return Ok(None);
        }
        let base: i64 = fields
            .next()
            .and_then(|b| b.parse().ok())
            .filter(|b| *b >= 0)
            .ok_or("no base offset")?;
        if base != committed {
            return Ok(None);
        }
        let took = fields
            .next()
            .ok_or("no routes")?
            .split(',')
            .filter(|n| !n.is_empty())
            .map(name)
            .collect::<Result<Vec<_>, _>>()?;
        let all = read_set(base, fields.next().ok_or("no offset set")?)?;
        let mut routes = BTreeMap::new();
        for field in fields {
            let (route, ranges) = field.split_once('=').ok_or("a route entry without '='")?;
            routes.insert(name(route)?, read_set(base, ranges)?);
        }
        Ok(Some(Self {
            base,
            took,
            all,
            routes,
        }))
    }
}

/// A percent-encoded route name.
fn name(encoded: &str) -> Result<String, String> {
    percent_decode_str(encoded)
        .decode_utf8()
        .map(|n| n.into_owned())
        .map_err(|_| "a route name that is not UTF-8".to_string())
}

/// Ranges of offsets ≥ `base`, relative to it, as runs or — when that is
/// shorter — a bitset.
fn set(base: i64, ranges: &[(i64, i64)]) -> String {
    let runs = runs(base, ranges);
    let span = ranges.last().map_or(0, |(_, end)| end - base);
    // A bitset takes span/6 characters: only worth building when that can
    // beat the runs.
    if (span / 6 + 1) * 2 < runs.len() as i64 {
        let bits = bitset(base, ranges, span);
        // Runs read better in a log: a bitset only when it is much shorter.
        if bits.len() * 2 < runs.len() {
            return bits;
        }
    }
    runs
}

fn runs(base: i64, ranges: &[(i64, i64)]) -> String {
    let mut out = String::from("r");
    let mut at = base;
    for (i, (start, end)) in ranges.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        out.push_str(&format!("{}.{}", start - at, end - start));
        at = *end;
    }
    out
}

fn bitset(base: i64, ranges: &[(i64, i64)], span: i64) -> String {
    let mut bytes = vec![0u8; usize::try_from(span).unwrap_or(0).div_ceil(8)];
    for (start, end) in ranges {
        for o in *start..*end {
            if let Ok(r) = usize::try_from(o - base)
                && let Some(b) = bytes.get_mut(r / 8)
            {
                *b |= 1 << (r % 8);
            }
        }
    }
    format!(
        "b{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Adds `[start, end)` after the ranges so far (merging a touching one).
fn push(ranges: &mut Ranges, start: i64, end: i64) {
    match ranges.last_mut() {
        Some((_, last)) if *last == start => *last = end,
        _ => ranges.push((start, end)),
    }
}

fn read_set(base: i64, text: &str) -> Result<Ranges, String> {
    let (kind, body) = text.split_at_checked(1).ok_or("an empty offset set")?;
    let mut ranges = Ranges::new();
    match kind {
        "r" => {
            let mut at = base;
            let mut numbers = body.split('.').filter(|n| !n.is_empty());
            while let Some(gap) = numbers.next() {
                let len = numbers.next().ok_or("a run without its length")?;
                let gap: i64 = gap.parse().map_err(|_| "a run that is not a number")?;
                let len: i64 = len.parse().map_err(|_| "a run that is not a number")?;
                if gap < 0 || len < 1 {
                    return Err("a run that is negative or empty".into());
                }
                let start = at.checked_add(gap).ok_or("runs past the offsets")?;
                let end = start.checked_add(len).ok_or("runs past the offsets")?;
                push(&mut ranges, start, end);
                at = end;
            }
        }
        "b" => {
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(body)
                .map_err(|_| "a bitset that is not base64url")?;
            for (i, b) in bytes.iter().enumerate() {
                for bit in 0..8 {
                    if b & (1 << bit) != 0 {
                        let o = base
                            .checked_add((i * 8 + bit) as i64)
                            .ok_or("a bitset past the offsets")?;
                        let end = o.checked_add(1).ok_or("a bitset past the offsets")?;
                        push(&mut ranges, o, end);
                    }
                }
            }
        }
        _ => return Err(format!("an offset set of unknown kind '{kind}'")),
    }
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handled(base: i64, all: &[(i64, i64)], routes: &[(&str, &[(i64, i64)])]) -> Handled {
        Handled {
            base,
            took: vec!["ops".to_string(), "billing".to_string()],
            all: all.to_vec(),
            routes: routes
                .iter()
                .map(|(n, r)| (n.to_string(), r.to_vec()))
                .collect(),
        }
    }

    #[test]
    fn the_format_reads_as_documented() {
        let h = handled(
            1200,
            &[(1201, 1206), (1208, 1238)],
            &[("billing", &[(1200, 1201)])],
        );
        let text = h.encode(BUDGET);
        assert_eq!(text, "kb1;1200;ops,billing;r1.5.2.30;billing=r0.1");
        let back = Handled::decode(&text, 1200).unwrap().unwrap();
        assert_eq!(back, h);
        assert!(back.all_handled(1201) && back.all_handled(1237));
        assert!(!back.all_handled(1200) && !back.all_handled(1206) && !back.all_handled(1238));
        assert_eq!(
            back.routes_handled(1200).collect::<Vec<_>>(),
            vec!["billing"]
        );
    }

    #[test]
    fn nothing_handled_is_no_metadata_and_foreign_metadata_is_nothing_known() {
        assert_eq!(handled(5, &[], &[("r", &[])]).encode(BUDGET), "");
        assert_eq!(Handled::decode("", 5), Ok(None));
        assert_eq!(Handled::decode("some tool's note", 5), Ok(None));
        assert_eq!(
            Handled::decode("kb2;5;r1.1", 5),
            Ok(None),
            "a future version"
        );
        // The offset was moved (a reset) and the string kept.
        assert_eq!(Handled::decode("kb1;5;r1.1", 9), Ok(None));
        for broken in [
            "kb1",
            "kb1;x;r1.1",
            "kb1;5",
            "kb1;5;r1",
            "kb1;5;q1",
            "kb1;5;b***",
            "kb1;5;r-1.2",
            "kb1;5;r0.0",
            "kb1;5;r1.1;noequals",
            "kb1;5;r99999999999999999999.1",
            "kb1;5;r9223372036854775807.1",
            "kb1;9223372036854775807;b__",
        ] {
            assert!(
                Handled::decode(
                    broken,
                    broken
                        .split(';')
                        .nth(1)
                        .and_then(|b| b.parse().ok())
                        .unwrap_or(5)
                )
                .is_err(),
                "{broken}"
            );
        }
    }

    #[test]
    fn a_huge_run_costs_nothing_to_read() {
        let h = Handled::decode("kb1;0;a;r1.9000000000000000", 0)
            .unwrap()
            .unwrap();
        assert_eq!(h.all, vec![(1, 9_000_000_000_000_001)]);
    }

    #[test]
    fn route_names_survive_any_character() {
        let name = "chat; ops=1.%, 飞书";
        let mut h = handled(0, &[(3, 4)], &[(name, &[(1, 3)])]);
        h.took.push(name.to_string());
        let back = Handled::decode(&h.encode(BUDGET), 0).unwrap().unwrap();
        assert_eq!(back, h);
        assert_eq!(back.routes_handled(2).collect::<Vec<_>>(), vec![name]);
        assert!(back.all_handled(3) && !back.all_handled(1));
    }

    #[test]
    fn a_scattered_set_is_a_bitset_and_an_oversized_one_keeps_its_nearest_offsets() {
        let scattered: Ranges = (1..2000).step_by(2).map(|o| (o, o + 1)).collect();
        let text = handled(0, &scattered, &[]).encode(BUDGET);
        assert!(text.starts_with("kb1;0;ops,billing;b"), "{text}");
        assert!(text.len() < 400, "{}", text.len());
        assert_eq!(Handled::decode(&text, 0).unwrap().unwrap().all, scattered);
        // Too many runs for the budget: the far half goes, repeatedly.
        let sparse: Ranges = (1..2_000_000).step_by(700).map(|o| (o, o + 1)).collect();
        let text = handled(0, &sparse, &[("r", &[(0, 1)])]).encode(BUDGET);
        assert!(text.len() <= BUDGET);
        let back = Handled::decode(&text, 0).unwrap().unwrap();
        assert!(back.routes.is_empty(), "per-route sets go first");
        assert!(!back.all.is_empty());
        assert_eq!(back.all[..], sparse[..back.all.len()], "a prefix is kept");
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        fn ranges(base: i64, steps: &[(i64, i64)]) -> Ranges {
            let mut at = base;
            let mut out = Ranges::new();
            for (gap, len) in steps {
                let start = at + gap;
                out.push((start, start + len));
                at = start + len;
            }
            out
        }

        proptest! {
            /// Whatever is encoded reads back as a subset of it (all of it
            /// when it fits), never claiming an offset that was not handled.
            #[test]
            fn what_is_read_back_was_handled(
                base in 0i64..1_000_000_000,
                steps in proptest::collection::vec((1i64..40, 1i64..5), 0..600),
                route_steps in proptest::collection::vec((0i64..40, 1i64..3), 0..50),
                budget in 64usize..BUDGET,
            ) {
                let h = Handled {
                    base,
                    took: vec!["x".to_string(), "a;b".to_string()],
                    all: ranges(base, &steps),
                    routes: [("a;b".to_string(), ranges(base, &route_steps))].into_iter().collect(),
                };
                let text = h.encode(budget);
                prop_assert!(text.len() <= budget);
                let back = Handled::decode(&text, base).unwrap().unwrap_or_default();
                let offsets = |r: &Ranges| r.iter().flat_map(|(s, e)| *s..*e).collect::<Vec<_>>();
                for o in offsets(&back.all) {
                    prop_assert!(h.all_handled(o), "{} was not handled", o);
                }
                for (name, r) in &back.routes {
                    for o in offsets(r) {
                        prop_assert!(holds(&h.routes[name], o));
                    }
                }
                if h.text().len() <= budget {
                    prop_assert_eq!(offsets(&back.all), offsets(&h.all));
                }
            }

            /// Any string at all: read without a panic.
            #[test]
            fn any_metadata_is_read_without_panic(text in ".{0,200}", committed in any::<i64>()) {
                let _ = Handled::decode(&text, committed);
                let _ = Handled::decode(&format!("kb1;{committed};{text}"), committed);
                let _ = Handled::decode(&format!("kb1;{committed};a;{text}"), committed);
            }
        }
    }
}
