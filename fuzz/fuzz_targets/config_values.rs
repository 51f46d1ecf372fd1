//! The values people type into the config and on the command line:
//! durations, timeouts, times, start offsets, HTTP statuses — an error
//! that says what was wrong, never a panic ("1e30" once crashed `kbridge
//! check`); and a duration shown is read back as itself.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/time_spec.rs"]
mod time_spec;

#[allow(dead_code)]
#[path = "../../src/relay/config/status_policy.rs"]
mod status_policy;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = time_spec::parse_duration(text) {
        // Whole milliseconds, as the config's ranges are written.
        let d = std::time::Duration::from_millis(d.as_millis().min(u64::MAX as u128) as u64);
        let shown = time_spec::show_duration(d);
        let back = time_spec::parse_duration(&shown).expect("a shown duration parses");
        assert_eq!(back, d, "{text:?} shown as {shown:?}");
    }
    let _ = time_spec::parse_timeout(text);
    let _ = time_spec::parse_time(text);
    let _ = time_spec::parse_start(text);
    let _ = time_spec::parse_key_value(text);
    let _ = text.parse::<status_policy::StatusSpec>();
});
