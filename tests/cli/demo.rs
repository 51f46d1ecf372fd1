//! `kbridge demo`, README's first command: the relay end to end with
//! nothing installed (an embedded mock cluster, a built-in receiver), two
//! routes, and a report of what happened to every sample event.

use support::kbridge::{kbridge_without_brokers, run_cmd};
use support::output::OutputExt;

#[test]
fn the_demo_relays_every_sample_and_says_what_happened() {
    let mut cmd = kbridge_without_brokers();
    cmd.arg("demo");
    let out = run_cmd(cmd, b"");
    let text = out.ok().stdout_str();
    // One line per route, spaces aside: the demo's verdicts.
    let squeezed: Vec<String> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    for expected in [
        "done: 10 events; offsets committed.",
        "easyops 5 dead-lettered, 4 delivered, 1 skipped",
        "feishu 4 dead-lettered, 5 delivered, 1 skipped",
    ] {
        assert!(
            squeezed.iter().any(|l| l == expected),
            "no line {expected:?} in:\n{text}"
        );
    }
    // The cases the demo is there to show, as a person reads them.
    for shown in [
        "easyops: delivered after 2 attempts",
        "easyops: skipped: df_source is 'user', not 'monitor'",
        "no CMDB instance matched",
        "easyops: dead-lettered to guance-events-dlq (stage decode): message value is not UTF-8",
        "feishu: dead-lettered to guance-events-dlq (stage decode): message value is not UTF-8",
        "\"isRecover\":true",
    ] {
        assert!(text.contains(shown), "{shown:?} missing from:\n{text}");
    }
}
