//! A panic on demand, for the test that proves a panic is contained
//! (`tests/relay/panics.rs`): with `KBRIDGE_FAULT_PANIC_ON` set, handling
//! an event whose value contains that text panics. No dependency panics on
//! a record today that a test could count on, and the containment must not
//! wait for one. Read once; unset (always, in production) it costs a
//! branch on a static.

use std::sync::LazyLock;

use crate::relay::job::Job;

static PANIC_ON: LazyLock<Option<Vec<u8>>> = LazyLock::new(|| {
    std::env::var_os("KBRIDGE_FAULT_PANIC_ON")
        .filter(|v| !v.is_empty())
        .map(|v| v.into_encoded_bytes())
});

/// Panics when the event's value contains `KBRIDGE_FAULT_PANIC_ON`.
pub(super) fn panic_if_asked(job: &Job) {
    let Some(needle) = PANIC_ON.as_deref() else {
        return;
    };
    let value = job.origin.payload.as_deref().unwrap_or_default();
    if memchr::memmem::find(value, needle).is_some() {
        panic!("fault injected by KBRIDGE_FAULT_PANIC_ON");
    }
}
