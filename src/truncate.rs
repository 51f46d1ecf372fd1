//! Text that goes into a log line or a header, cut to a size: a jq error
//! message can carry a whole event (`error(.)`), a list of failures can be
//! any length.

/// `text`, at most `max` bytes, cut at a character boundary and marked
/// (`… (10000 bytes in all)`) when it was longer.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub(40);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &text[..end], text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_at_a_character_boundary_and_says_so() {
        assert_eq!(truncate("short", 100), "short");
        let long = "é".repeat(5000);
        let cut = truncate(&long, 4096);
        assert!(cut.len() <= 4096, "{}", cut.len());
        assert!(
            cut.ends_with("… (10000 bytes in all)"),
            "{}",
            &cut[cut.len() - 40..]
        );
    }
}
