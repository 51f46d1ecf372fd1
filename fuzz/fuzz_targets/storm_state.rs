//! A storm state record as any client with write access may have written
//! it, through `changelog::Key::decode` and `read_value`: never a panic.
//! What reads back as a group is then driven through fold, digest and
//! sent with the bytes left over as the events: never a panic, and a group
//! keeps its books (every member it told resolved leaves it).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/time_spec.rs"]
mod time_spec;

// At the top, as in `relay::storm`: `group` names `super::memory`.
#[allow(dead_code)]
#[path = "../../src/relay/storm/changelog.rs"]
mod changelog;
#[allow(dead_code)]
#[path = "../../src/relay/storm/group.rs"]
mod group;
#[allow(dead_code)]
#[path = "../../src/relay/storm/memory.rs"]
mod memory;

use std::time::Duration;

use changelog::{Key, read_value};
use group::{Group, Member, Meta, Timing};
use memory::Memory;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == 0);
    let key = parts.next().unwrap_or_default();
    let value = parts.next().unwrap_or_default();
    let events = parts.next().unwrap_or_default();
    if let Some(k) = Key::decode(key) {
        assert_eq!(Key::decode(&k.encode()), Some(k));
    }
    let _ = read_value::<Memory>(value).map(|m| m.size("k"));
    let mut group = Group::default();
    if let Ok(meta) = read_value::<Meta>(value) {
        group.meta = meta;
    }
    if let Ok(member) = read_value::<Member>(value) {
        group.members.insert("m".into(), member);
    }
    let timing = Timing {
        group_wait: Duration::from_secs(30),
        group_interval: Duration::from_secs(300),
        repeat_interval: Duration::from_secs(3600),
    };
    let mut now = group.meta.started;
    for chunk in events.chunks(3) {
        let id = format!("a{}", chunk[0] % 8);
        let state = match chunk.get(1).copied().unwrap_or(0) % 4 {
            0 => "resolved",
            1 => "ok",
            2 => "critical",
            _ => "warning",
        };
        now = now.saturating_add(i64::from(chunk.get(2).copied().unwrap_or(0)) * 1000);
        group.fold(&id, state, "{}", &timing, now);
        if group.is_due(now) || chunk[0] % 5 == 0 {
            let told = group.states();
            let digest = group.digest("r", "g");
            assert!(digest["alerts"].is_array());
            group.sent(&told, &timing, now);
            for (id, state) in &told {
                if memory::is_resolved(state) {
                    assert!(!group.meta.told.contains_key(id));
                }
            }
        }
        let _ = group.size("g");
    }
});
