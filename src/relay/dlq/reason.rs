//! Reasons grouped sensibly: `gave up after 10 attempts: HTTP 503` and
//! `gave up after 3 attempts: HTTP 502` are one problem, and a thousand
//! `df_title: 'x…' is too long` differ only in the quoted value. A reason's
//! class keeps its words and drops what varies: numbers become `N`, quoted
//! text `'…'`, a JSON object or array (a target's answer) `{…}` or `[…]`,
//! and only its first line, cut to a readable length, is kept.

/// The longest class shown (characters; a class may end 3 past it, and
/// `…`).
const MAX_CHARS: usize = 100;

/// The class a reason is counted under.
pub(crate) fn class(reason: &str) -> String {
    let line = reason.lines().next().unwrap_or_default();
    let mut out = String::with_capacity(line.len().min(MAX_CHARS + 4));
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        // Each step adds at most 3 characters.
        if out.chars().count() >= MAX_CHARS {
            out.push('…');
            break;
        }
        match c {
            '0'..='9' => {
                while chars
                    .peek()
                    .is_some_and(|c| c.is_ascii_digit() || *c == '.')
                {
                    chars.next();
                }
                out.push('N');
            }
            '\'' | '"' | '`' => {
                // To the closing quote; an unclosed one takes the rest.
                for d in chars.by_ref() {
                    if d == c {
                        break;
                    }
                }
                out.push(c);
                out.push('…');
                out.push(c);
            }
            '{' | '[' => {
                // To the bracket that closes it; strings inside may hold
                // brackets of their own.
                let close = if c == '{' { '}' } else { ']' };
                let (mut depth, mut quoted, mut escaped) = (1, false, false);
                for d in chars.by_ref() {
                    match d {
                        _ if escaped => escaped = false,
                        '\\' if quoted => escaped = true,
                        '"' => quoted = !quoted,
                        '{' | '[' if !quoted => depth += 1,
                        '}' | ']' if !quoted => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                out.push(c);
                out.push('…');
                out.push(close);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::class;

    #[test]
    fn numbers_and_quoted_text_vary_within_a_class() {
        assert_eq!(
            class("gave up after 10 attempts: HTTP 503"),
            class("gave up after 3 attempts: HTTP 502")
        );
        assert_eq!(
            class("df_source is 'logging', not 'monitor'"),
            "df_source is '…', not '…'"
        );
        assert_eq!(class("df_title: missing"), "df_title: missing");
        assert_eq!(class("line one\nline two"), "line one");
        assert_eq!(class("unclosed 'quote"), "unclosed '…'");
        assert!(class(&"x".repeat(500)).chars().count() <= 101);
        assert!(class(&"'a' ".repeat(500)).chars().count() <= 104);
        assert_eq!(class(""), "");
        assert_eq!(
            class(r#"HTTP 400, no CMDB instance matched: {"code":1,"error":"x } y"}"#),
            "HTTP N, no CMDB instance matched: {…}"
        );
        assert_eq!(class("outputs [1, [2], 3] left"), "outputs […] left");
    }
}
