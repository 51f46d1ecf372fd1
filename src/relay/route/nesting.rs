//! How deep JSON may nest before a reader that recurses sees it. jaq's
//! JSON reader and writer recurse once per level, so a 200 KB record of
//! 100,000 `[` overflows the stack and aborts the process — every instance
//! that takes its partition, one after the other. The preset's decode
//! (serde_json) stops at 128 levels; the jq path stops at the same depth,
//! for events, for targets' answers, and for what a map builds.

use jaq_json::Val;

/// serde_json's recursion limit, and so the preset's: the deepest nesting
/// a value may have on any route.
pub(crate) const MAX_DEPTH: usize = 128;

/// Whether the JSON text `bytes` nests at most [`MAX_DEPTH`] levels; the
/// error says where the limit was passed. Strings are skipped (a `[`
/// inside one is text); the syntax is the reader's business, after this.
pub(crate) fn check_text(bytes: &[u8]) -> Result<(), String> {
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                // To the closing quote, escapes skipped; an unclosed string
                // is the reader's error to report.
                i += 1;
                while i < bytes.len() {
                    match memchr::memchr2(b'"', b'\\', &bytes[i..]) {
                        Some(at) if bytes[i + at] == b'\\' => i += at + 2,
                        Some(at) => {
                            i += at;
                            break;
                        }
                        None => i = bytes.len(),
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(too_deep(&format!("at byte {i}")));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Whether a value a program built nests at most [`MAX_DEPTH`] levels,
/// measured without recursion (`reduce range(1e5) as $i (.; [.])` builds
/// 100,000).
pub(crate) fn check_value(v: &Val) -> Result<(), String> {
    let container = |v: &Val| matches!(v, Val::Arr(_) | Val::Obj(_));
    // Containers only: scalars need no visit (most of an alert's values).
    let mut stack: Vec<(&Val, usize)> = Vec::new();
    if container(v) {
        stack.push((v, 1));
    }
    while let Some((v, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(too_deep("in the output"));
        }
        match v {
            Val::Arr(a) => stack.extend(a.iter().filter(|c| container(c)).map(|c| (c, depth + 1))),
            Val::Obj(o) => {
                stack.extend(o.values().filter(|c| container(c)).map(|c| (c, depth + 1)))
            }
            _ => {}
        }
    }
    Ok(())
}

fn too_deep(at: &str) -> String {
    format!("nested deeper than {MAX_DEPTH} levels ({at})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_deeper_than_the_limit_is_refused_where_it_passes_it() {
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert_eq!(check_text(ok.as_bytes()), Ok(()));
        let deep = "[".repeat(100_000);
        assert_eq!(
            check_text(deep.as_bytes()),
            Err("nested deeper than 128 levels (at byte 128)".into())
        );
        let in_strings = format!(r#"{{"a":"{}","b\"[":"\\"}}"#, "[".repeat(1000));
        assert_eq!(check_text(in_strings.as_bytes()), Ok(()));
        assert_eq!(check_text(br#"{"a":"unclosed [[[["#), Ok(()));
        assert_eq!(check_text(br#""\"#), Ok(()));
    }

    #[test]
    fn values_deeper_than_the_limit_are_refused_without_recursion() {
        let mut v = Val::Null;
        for _ in 0..MAX_DEPTH {
            v = Val::Arr(vec![v].into());
        }
        assert_eq!(check_value(&v), Ok(()));
        let mut deep = v.clone();
        for _ in 0..100_000 {
            deep = Val::Arr(vec![deep].into());
        }
        assert!(check_value(&deep).unwrap_err().contains("deeper than 128"));
        // Dropped without recursing (see `jq::dispose`).
        super::super::jq::dispose(deep);
    }
}
