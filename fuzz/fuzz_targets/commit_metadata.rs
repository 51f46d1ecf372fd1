//! A commit's metadata as any client may have written it, through
//! `handed_over::Handled::decode`: never a panic, never a claim kbridge
//! would not write back the same way. What decodes is encoded again and
//! must read back as a subset of itself (all of it when it fits).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/relay/commit/handed_over.rs"]
mod handed_over;

use handed_over::{BUDGET, Handled, holds};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The base the text names, so that decoding gets past that check.
    let base = text
        .split(';')
        .nth(1)
        .and_then(|b| b.parse::<i64>().ok())
        .unwrap_or(0);
    let Ok(Some(h)) = Handled::decode(text, base) else {
        return;
    };
    // Only what kbridge writes: ascending ranges from the base on.
    let ascending = |r: &handed_over::Ranges| {
        r.iter().all(|(s, e)| s < e && *s >= base) && r.windows(2).all(|w| w[0].1 <= w[1].0)
    };
    assert!(ascending(&h.all));
    assert!(h.routes.values().all(ascending));
    let again = h.encode(BUDGET);
    assert!(again.len() <= BUDGET);
    let back = Handled::decode(&again, base).expect("kbridge reads what it writes").unwrap_or_default();
    for (s, e) in &back.all {
        // Spot checks: both ends of each range read back.
        assert!(holds(&h.all, *s) && holds(&h.all, *e - 1));
    }
});
