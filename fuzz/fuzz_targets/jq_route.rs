//! The jq path of a route: any event or answer bytes through the shipped
//! pipelines' programs and answer rules (and programs that build deep
//! values or loop) — a verdict or an error, never a panic, a stack
//! overflow or an exit. The first byte picks the program.
#![no_main]

use std::sync::LazyLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/time_spec.rs"]
mod time_spec;

#[path = "../../src/truncate.rs"]
mod truncate;

#[allow(dead_code)]
#[path = "../../src/relay/route/strict_json.rs"]
mod strict_json;

#[allow(dead_code)]
#[path = "../../src/relay/route/nesting.rs"]
mod nesting;

#[allow(dead_code)]
#[path = "../../src/relay/route/jq_budget.rs"]
mod jq_budget;

#[allow(dead_code)]
#[path = "../../src/relay/route/jq_bounds.rs"]
mod jq_bounds;

#[allow(dead_code)]
#[path = "../../src/relay/route/jq.rs"]
mod jq;

static PROGRAMS: LazyLock<Vec<jq::Jq>> = LazyLock::new(|| {
    jq_budget::configure(jq_budget::Budget {
        timeout: Duration::from_millis(200),
        max_outputs: 100,
        threads: 2,
    });
    [
        include_str!("../../examples/pipelines/guance-easyops.jq"),
        include_str!("../../examples/pipelines/guance-feishu.jq"),
        include_str!("../../examples/pipelines/guance-dingtalk.jq"),
        include_str!("../../examples/pipelines/guance-wecom.jq"),
        include_str!("../../examples/pipelines/alertmanager-easyops.jq"),
        ".df_fault_id // .df_event_id",
        "(.code // .StatusCode) == 0",
        "(.code // .StatusCode) as $c | $c == 9499 or $c == 11232 or $c == 230020",
        ".errcode == 130101 or .errcode == 410100",
        r#"(.error // "") | test("not match any cmdb instance")"#,
        "reduce range(200) as $i (.; [.])",
        "[paths] | length",
        "tojson | fromjson",
        ".[]?",
        "if type == \"object\" then halt_error else . end",
        "error(.)",
    ]
    .iter()
    .map(|p| jq::Jq::compile(p).expect("the programs compile"))
    .collect()
});

fuzz_target!(|data: &[u8]| {
    let Some((pick, input)) = data.split_first() else {
        return;
    };
    let Ok(value) = jq::parse(input) else {
        return;
    };
    let program = &PROGRAMS[usize::from(*pick) % PROGRAMS.len()];
    if let Ok(bodies) = program.bodies(&value) {
        for body in bodies.into_iter().flatten() {
            // A body is JSON a strict reader takes.
            assert!(strict_json::strict_json(&body).is_ok());
        }
    }
    let _ = program.holds(&value);
    let _ = program.key(&value);
    jq::dispose(value);
});
