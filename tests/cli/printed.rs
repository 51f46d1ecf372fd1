//! Reading what kbridge printed: table rows and cells, and the parts of
//! JSON output the tests compare.

use serde_json::Value;

/// The `n` field of each consumed JSON record's value.
pub fn ns(records: &[Value]) -> Vec<i64> {
    records
        .iter()
        .map(|r| {
            r["value"]["n"]
                .as_i64()
                .unwrap_or_else(|| panic!("no value.n in {r}"))
        })
        .collect()
}

pub fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// A table row (whitespace-separated cells) of stdout whose first cell is
/// `first` and second is `second` (or any when `None`).
pub fn row(stdout: &str, first: &str, second: Option<&str>) -> Vec<String> {
    stdout
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .find(|cells| {
            cells.first().is_some_and(|c| c == first)
                && second.is_none_or(|s| cells.get(1).is_some_and(|c| c == s))
        })
        .unwrap_or_else(|| panic!("no row starting with {first} {second:?} in:\n{stdout}"))
}

pub fn cells(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

pub fn topic_names(json: &Value) -> Vec<String> {
    json.as_array()
        .expect("array of topics")
        .iter()
        .map(|t| t["name"].as_str().expect("name").to_string())
        .collect()
}
