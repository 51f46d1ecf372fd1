//! A group member's assignment bytes, as the broker hands them over: what
//! can be read, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../src/commands/assignment.rs"]
mod assignment;

#[allow(dead_code)]
#[path = "../../src/topic_partition.rs"]
mod topic_partition;

fuzz_target!(|data: &[u8]| {
    let _ = assignment::parse_assignment(data);
});
