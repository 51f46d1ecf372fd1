//! The sample Guance events of examples/events/ become exactly the
//! expected alert bodies.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use support::broker::unique;
use support::events::{sample, sample_names};
use support::http_target::{Script, Target};
use support::kafka::{new_topic, wait_fully_committed};
use support::records::{Rec, produce_records};
use support::relay_cmd::{RelayCmd, event_keys};
use support::wait::wait_until;

/// The alert body each sample must become, written out by hand from the
/// mapping rules (not computed by the code under test).
fn expected() -> BTreeMap<&'static str, Value> {
    let mut m = BTreeMap::new();
    m.insert(
        "host-cpu-critical.json",
        json!({
            "alertId": "event-4f1c2a9e7b3d4c6e8a0b1c2d3e4f5a6b",
            "alertDims": {
                "df_workspace_name": "交易平台",
                "host": "pay-node-03",
                "host_ip": "10.8.1.23",
                "service": "pay-api"
            },
            "metricName": "", "value": "", "metricUnit": "",
            "subject": "【紧急】pay-node-03 CPU 使用率 95.2% 超过阈值 90%",
            "content": "> 等级：critical\n> 主机：pay-node-03 (10.8.1.23)\n> 内容：近 5 分钟 CPU 平均使用率 95.2%",
            "time": 1731900000,
            "isRecover": false,
            "extInfo": {"df_status": "critical"},
            "originInfo": {},
            "source": "guance"
        }),
    );
    m.insert(
        "host-cpu-ok.json",
        json!({
            // The fault id, not this event's own id: the recovery closes
            // the trigger's alert.
            "alertId": "event-4f1c2a9e7b3d4c6e8a0b1c2d3e4f5a6b",
            "alertDims": {
                "df_workspace_name": "交易平台",
                "host": "pay-node-03",
                "host_ip": "10.8.1.23",
                "service": "pay-api"
            },
            "metricName": "", "value": "", "metricUnit": "",
            "subject": "【恢复】pay-node-03 CPU 使用率已恢复正常",
            "content": "> 等级：ok\n> 主机：pay-node-03 (10.8.1.23)\n> 内容：CPU 平均使用率回落至 38.0%",
            "time": 1731901200,
            "isRecover": true,
            "extInfo": {"df_status": "ok"},
            "originInfo": {},
            "source": "guance"
        }),
    );
    m.insert(
        "host-nodata.json",
        json!({
            // No df_fault_id: the event id.
            "alertId": "event-5e6f708192a3b4c5d6e7f8091a2b3c4d",
            "alertDims": {
                "df_workspace_name": "交易平台",
                "host": "db-pg-02",
                "instance_name": "pg-orders-replica"
            },
            "metricName": "", "value": "", "metricUnit": "",
            "subject": "【数据断档】db-pg-02 已 10 分钟未上报指标",
            "content": "> 等级：nodata\n> 主机：db-pg-02\n> 内容：10 分钟内无数据",
            "time": 1731903600,
            "isRecover": false,
            "extInfo": {"df_status": "nodata"},
            "originInfo": {},
            "source": "guance"
        }),
    );
    m.insert(
        "k8s-pod-error.json",
        json!({
            "alertId": "event-1b2c3d4e5f60718293a4b5c6d7e8f901",
            // Tags given inline as an object.
            "alertDims": {
                "df_workspace_name": "电商平台",
                "cluster_name_k8s": "k8s-prod-sh",
                "namespace": "shop",
                "pod_name": "checkout-7f9c-kx2lp",
                "host": "k8s-node-07"
            },
            "metricName": "", "value": "", "metricUnit": "",
            "subject": "【重要】Pod checkout-7f9c-kx2lp 重启 5 次",
            "content": "> 等级：error\n> 集群：k8s-prod-sh\n> 内容：近 10 分钟重启 5 次",
            // `date` was in seconds in this sample.
            "time": 1731902400,
            "isRecover": false,
            "extInfo": {"df_status": "error"},
            "originInfo": {},
            "source": "guance"
        }),
    );
    m.insert(
        "unknown-host.json",
        json!({
            "alertId": "event-77aa88bb99cc4dd0ee11ff2233445566",
            "alertDims": {"df_workspace_name": "交易平台", "host": "lab-box-99"},
            "metricName": "", "value": "", "metricUnit": "",
            "subject": "【警告】lab-box-99 磁盘使用率 85%",
            "content": "> 等级：warning\n> 主机：lab-box-99\n> 内容：/data 使用率 85%",
            "time": 1731904800,
            "isRecover": false,
            "extInfo": {"df_status": "warning"},
            "originInfo": {},
            "source": "guance"
        }),
    );
    m
}

#[test]
fn sample_events_become_exactly_the_expected_alerts() {
    let names = sample_names();
    let expected = expected();
    assert_eq!(
        names.len(),
        expected.len() + 1,
        "examples/events changed: {names:?} (expected the 5 alerts plus user-event.json)"
    );
    let topic = new_topic("mapping", 3);
    let group = unique("mapping-g");
    let target = Target::start(Script::default());

    let recs: Vec<Rec> = names.iter().map(|n| Rec::event(&sample(n))).collect();
    let coords = produce_records(&topic, &recs);
    let keys = event_keys(&topic, &coords);
    let key_of = |i: usize| keys[i].clone();

    let mut relay = RelayCmd::new(&topic, &group, &target.url()).start();
    relay.wait_assigned();
    // Every event handled (the user event skipped, the others delivered).
    wait_fully_committed(&group, &topic, Duration::from_secs(20));
    assert!(
        wait_until(Duration::from_secs(5), || target.delivered().len() >= 5),
        "requests:\n{}",
        target.dump()
    );

    let requests = target.requests();
    assert_eq!(
        requests.len(),
        5,
        "exactly the 5 alerts, once each:\n{}",
        target.dump()
    );
    for (i, name) in names.iter().enumerate() {
        let key = key_of(i);
        let got: Vec<_> = requests.iter().filter(|r| r.key() == key).collect();
        match expected.get(name.as_str()) {
            None => {
                assert_eq!(name, "user-event.json");
                assert!(
                    got.is_empty(),
                    "{name} (df_source user) must be skipped, got {got:?}"
                );
            }
            Some(want) => {
                assert_eq!(
                    got.len(),
                    1,
                    "{name} ({key}) must arrive once:\n{}",
                    target.dump()
                );
                let r = got[0];
                assert_eq!(&r.body, want, "alert body of {name}");
                assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/alerts"));
                assert_eq!(
                    r.headers.get("content-type").map(String::as_str),
                    Some("application/json"),
                    "{name}"
                );
                assert!(r.ok(), "{name} answered {}", r.status);
            }
        }
    }
    // The trigger and its recovery share a key, so a partition: the
    // trigger was delivered first.
    let trigger = names
        .iter()
        .position(|n| n == "host-cpu-critical.json")
        .unwrap();
    let recovery = names.iter().position(|n| n == "host-cpu-ok.json").unwrap();
    assert_eq!(coords[trigger].0, coords[recovery].0);
    let seq = |i: usize| requests.iter().find(|r| r.key() == key_of(i)).unwrap().seq;
    assert!(
        seq(trigger) < seq(recovery),
        "recovery overtook its trigger:\n{}",
        target.dump()
    );
    assert!(
        relay.wait_exit(Duration::ZERO).is_none(),
        "relay exited:\n{}",
        relay.stderr()
    );
}
