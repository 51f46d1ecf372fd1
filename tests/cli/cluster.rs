//! `cluster describe` and `cluster api-versions`, as tables and as JSON.

use serde_json::Value;

use support::broker::brokers;
use support::kbridge::run;
use support::output::OutputExt;

use crate::printed::{cells, row, sorted};

#[test]
fn cluster_describe() {
    let expected_brokers = brokers().split(',').count();
    let d = run(&["cluster", "describe", "--json"], "").ok().json();
    let id = d["cluster_id"].as_str().expect("cluster_id").to_string();
    assert!(!id.is_empty());
    let controller = d["controller_id"].as_i64().expect("controller_id");
    let list = d["brokers"].as_array().expect("brokers");
    assert_eq!(list.len(), expected_brokers, "{d}");
    let addresses: Vec<String> = list
        .iter()
        .map(|b| format!("{}:{}", b["host"].as_str().unwrap(), b["port"]))
        .collect();
    for bootstrap in brokers().split(',') {
        assert!(
            addresses.iter().any(|a| a == bootstrap),
            "{bootstrap} not in {addresses:?}"
        );
    }
    let controllers: Vec<i64> = list
        .iter()
        .filter(|b| b["controller"] == true)
        .map(|b| b["id"].as_i64().unwrap())
        .collect();
    assert_eq!(controllers, [controller], "{d}");

    let table = run(&["cluster", "describe"], "").ok().stdout_str();
    assert_eq!(
        table.lines().next(),
        Some(
            format!("Cluster: {id}\tController: {controller}\tBrokers: {expected_brokers}")
                .as_str()
        ),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| cells(l) == ["ID", "HOST", "PORT", "CONTROLLER"]),
        "{table}"
    );
    let r = row(&table, &controller.to_string(), None);
    assert_eq!(r.last().map(String::as_str), Some("yes"), "{table}");
}

#[test]
fn cluster_api_versions() {
    let d = run(&["cluster", "api-versions", "--json"], "").ok().json();
    let list = d.as_array().expect("array");
    assert_eq!(list.len(), brokers().split(',').count(), "{d}");
    let apis = list[0]["apis"].as_array().expect("apis");
    let find = |name: &str| {
        apis.iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in {d}"))
    };
    for (name, key) in [("Produce", 0), ("Fetch", 1)] {
        let a = find(name);
        assert_eq!(a["key"], key, "{a}");
        let (min, max) = (a["min"].as_i64().unwrap(), a["max"].as_i64().unwrap());
        assert!(0 <= min && min <= max, "{a}");
    }
    // ApiVersions (key 18), whatever its name (see the ignored test below).
    let a = apis
        .iter()
        .find(|a| a["key"] == 18)
        .unwrap_or_else(|| panic!("no ApiVersions (18) in {d}"));
    assert!(
        a["min"].as_i64().unwrap() <= a["max"].as_i64().unwrap() && a["max"].as_i64().unwrap() >= 3,
        "{a}"
    );
    let keys: Vec<i64> = apis.iter().map(|a| a["key"].as_i64().unwrap()).collect();
    assert_eq!(keys, sorted(keys.clone()), "sorted by key");

    let table = run(&["cluster", "api-versions"], "").ok().stdout_str();
    let address = list[0]["address"].as_str().unwrap();
    assert!(
        table.starts_with(&format!("{address} (id: {}) -> (\n", list[0]["id"])),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| cells(l) == ["API", "KEY", "MIN", "MAX"]),
        "{table}"
    );
    for name in ["Produce", "Fetch"] {
        let a = find(name);
        assert_eq!(
            row(&table, name, None),
            [
                name.to_string(),
                a["key"].to_string(),
                a["min"].to_string(),
                a["max"].to_string()
            ]
        );
    }
    assert_eq!(table.lines().last(), Some(")"), "{table}");
}

#[test]
fn cluster_api_versions_uses_kafka_api_names() {
    let d = run(&["cluster", "api-versions", "--json"], "").ok().json();
    let apis = d[0]["apis"].as_array().expect("apis");
    let name = |key: i64| {
        apis.iter()
            .find(|a| a["key"] == key)
            .map(|a| a["name"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("no API {key} in {d}"))
    };
    assert_eq!(name(18), "ApiVersions");
    assert_eq!(name(43), "ElectLeaders");
    let unknown: Vec<&Value> = apis
        .iter()
        .filter(|a| a["name"].as_str().unwrap().starts_with("Unknown"))
        .collect();
    assert!(unknown.is_empty(), "unnamed APIs: {unknown:?}");
    let table = run(&["cluster", "api-versions"], "").ok().stdout_str();
    assert_eq!(row(&table, "ApiVersions", None)[1], "18", "{table}");
}
