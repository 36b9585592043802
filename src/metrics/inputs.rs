//! The inputs two runs differ in: their scenarios' keys as run
//! ([`Plan::inputs_as_run`](crate::scenario::Plan::inputs_as_run), kept in
//! `report.json` as `scenario.inputs`), compared key by key. A change reads
//! `agent.heartbeat 1m → 2m`; an entry of `[[builds]]`, `[[fleet]]`,
//! `[[clients]]`, `[[events]]` or `[[expect]]` is matched by what names it
//! (a build's version, a fleet entry's or a client's name, an event's
//! action, an expectation's metric), so one added or removed reads as such
//! instead of shifting every entry after it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value};

use crate::scenario::key_path;

/// One key set differently, or an entry only one side has.
#[derive(Debug, Clone, PartialEq)]
pub struct InputChange {
    /// The key as a path: `server.health_gate.min_successes`,
    /// `fleet[office].count`, `builds[0.6.49]`.
    pub key: String,
    /// A's value; `None`: not set (the default applies), or no such entry.
    pub a: Option<Value>,
    /// B's value, the same way.
    pub b: Option<Value>,
    /// Whether `key` names an entry of a list of tables (added or removed
    /// as a whole) rather than a key.
    pub entry: bool,
}

impl InputChange {
    /// A key set differently on the two sides (a transport, a seed).
    pub fn new(key: impl Into<String>, a: impl Into<Value>, b: impl Into<Value>) -> Self {
        Self {
            key: key.into(),
            a: Some(a.into()),
            b: Some(b.into()),
            entry: false,
        }
    }

    /// What changed, after the key: `1m → 2m`, `default → 5`, `added: {…}`.
    pub fn change(&self) -> String {
        match (&self.a, &self.b, self.entry) {
            (None, Some(b), true) => format!("added in B: {}", show(b)),
            (Some(a), None, true) => format!("removed in B: {}", show(a)),
            (a, b, _) => {
                let side = |v: &Option<Value>| v.as_ref().map_or_else(|| "default".to_owned(), show);
                format!("{} → {}", side(a), side(b))
            }
        }
    }
}

impl fmt::Display for InputChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.key, self.change())
    }
}

/// A value as a scenario file shows it, near enough: strings bare, lists
/// in brackets, tables as `{key = value, …}`.
pub fn show(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => format!("[{}]", items.iter().map(show).collect::<Vec<_>>().join(", ")),
        Value::Object(map) => {
            let pairs: Vec<String> = map.iter().map(|(k, v)| format!("{k} = {}", show(v))).collect();
            format!("{{{}}}", pairs.join(", "))
        }
        other => other.to_string(),
    }
}

/// Every key and entry `a` and `b` differ in, in the order of the file's
/// keys (entries in A's order, then those only B has).
pub fn diff(a: &Value, b: &Value) -> Vec<InputChange> {
    let mut out = Vec::new();
    walk("", Some(a), Some(b), &mut out);
    out
}

/// A list of tables: `[[fleet]]`, a client's `sites`.
fn is_entries(v: Option<&Value>) -> bool {
    v.and_then(Value::as_array)
        .is_some_and(|items| !items.is_empty() && items.iter().all(Value::is_object))
}

fn walk(path: &str, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<InputChange>) {
    let empty_map = Value::Object(Map::new());
    let empty_list = Value::Array(Vec::new());
    if a.is_some_and(Value::is_object) || b.is_some_and(Value::is_object) {
        // A table one side leaves out is a table with nothing set.
        let (Some(Value::Object(x)), Some(Value::Object(y))) = (a.or(Some(&empty_map)), b.or(Some(&empty_map))) else {
            return out.push(leaf(path, a, b));
        };
        let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
        for k in keys {
            walk(&key_path(path, k), x.get(k.as_str()), y.get(k.as_str()), out);
        }
    } else if is_entries(a) || is_entries(b) {
        let (Some(Value::Array(x)), Some(Value::Array(y))) = (a.or(Some(&empty_list)), b.or(Some(&empty_list))) else {
            return out.push(leaf(path, a, b));
        };
        entries(path, x, y, out);
    } else if a != b {
        out.push(leaf(path, a, b));
    }
}

fn leaf(path: &str, a: Option<&Value>, b: Option<&Value>) -> InputChange {
    InputChange {
        key: path.to_owned(),
        a: a.cloned(),
        b: b.cloned(),
        entry: false,
    }
}

/// Two lists of tables, entries matched by what names them.
fn entries(path: &str, x: &[Value], y: &[Value], out: &mut Vec<InputChange>) {
    let (ka, kb) = (named(path, x), named(path, y));
    let in_b: BTreeMap<&str, &Value> = kb.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let in_a: BTreeSet<&str> = ka.iter().map(|(k, _)| k.as_str()).collect();
    for (id, u) in &ka {
        let key = format!("{path}[{id}]");
        match in_b.get(id.as_str()) {
            Some(v) => walk(&key, Some(u), Some(v), out),
            None => out.push(entry(key, Some(u), None)),
        }
    }
    for (id, v) in kb.iter().filter(|(id, _)| !in_a.contains(id.as_str())) {
        out.push(entry(format!("{path}[{id}]"), None, Some(v)));
    }
}

fn entry(key: String, a: Option<&Value>, b: Option<&Value>) -> InputChange {
    InputChange {
        key,
        a: a.cloned(),
        b: b.cloned(),
        entry: true,
    }
}

/// Each entry with its name; a name two entries share gets `#2`, `#3`.
fn named<'a>(path: &str, items: &'a [Value]) -> Vec<(String, &'a Value)> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let id = entry_name(path, i, v);
            let n = seen.entry(id.clone()).or_default();
            *n += 1;
            let id = if *n == 1 { id } else { format!("{id} #{n}") };
            (id, v)
        })
        .collect()
}

/// The actions of an `[[events]]` entry, one of which it has.
const ACTIONS: [&str; 7] = [
    "publish",
    "promote",
    "rollback",
    "update",
    "set_channel",
    "disconnect",
    "server_restart",
];

/// What names an entry: a fleet entry's name (`fleet-<n>` by default), a
/// client's or site's name, a build's version, an event's action with its
/// version or target, an expectation's metric and what narrows it.
fn entry_name(path: &str, index: usize, v: &Value) -> String {
    let text = |k: &str| v.get(k).map(show);
    let words = |keys: &[&str]| -> String { keys.iter().filter_map(|k| text(k)).collect::<Vec<_>>().join(" ") };
    match path {
        "fleet" => text("name").unwrap_or_else(|| format!("fleet-{}", index + 1)),
        "builds" => text("version").unwrap_or_else(|| index.to_string()),
        "events" => {
            let action = ACTIONS
                .iter()
                .find(|a| v.get(**a).is_some())
                .copied()
                .unwrap_or("event");
            // A version names what it acts on; an amount or a length does not.
            let what = match action {
                "disconnect" | "server_restart" => None,
                _ => text(action),
            };
            let target = words(&["group", "site", "client", "os", "arch"]);
            [Some(action.to_owned()), what, Some(target)]
                .into_iter()
                .flatten()
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        }
        "expect" => words(&["metric", "version", "channel", "reason", "of", "at"]),
        _ => text("name").unwrap_or_else(|| index.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn lines(a: Value, b: Value) -> Vec<String> {
        diff(&a, &b).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_key_changed_set_or_unset_reads_old_to_new() {
        let a = json!({"agent": {"heartbeat": "1m"}, "server": {}});
        let b = json!({"agent": {"heartbeat": "2m"}, "server": {"health_gate": {"min_successes": 5, "max_failure_rate": 0.2}}});
        assert_eq!(
            lines(a, b),
            [
                "agent.heartbeat 1m → 2m",
                "server.health_gate.max_failure_rate default → 0.2",
                "server.health_gate.min_successes default → 5",
            ]
        );
    }

    #[test]
    fn entries_are_matched_by_name_not_position() {
        let a = json!({
            "builds": [{"version": "1.0.0"}, {"version": "1.0.1", "published": "1h"}],
            "fleet": [{"count": 5, "site": "c/s"}, {"name": "lab", "count": 2, "site": "c/lab"}],
        });
        let b = json!({
            "builds": [{"version": "1.0.0"}, {"version": "1.0.2"}, {"version": "1.0.1", "published": "2h"}],
            "fleet": [{"count": 5, "site": "c/s"}],
        });
        assert_eq!(
            lines(a, b),
            [
                "builds[1.0.1].published 1h → 2h",
                "builds[1.0.2] added in B: {version = 1.0.2}",
                "fleet[lab] removed in B: {count = 2, name = lab, site = c/lab}",
            ]
        );
    }

    #[test]
    fn events_are_named_by_action_and_repeats_numbered() {
        let a = json!({"events": [
            {"at": "1h", "promote": "1.0.1"},
            {"at": "2h", "disconnect": 0.5, "site": "c/s", "for": "1h"},
            {"at": "3h", "disconnect": 0.5, "site": "c/s", "for": "1h"},
        ]});
        let b = json!({"events": [
            {"at": "90m", "promote": "1.0.1"},
            {"at": "2h", "disconnect": 0.5, "site": "c/s", "for": "1h"},
        ]});
        assert_eq!(
            lines(a, b),
            [
                "events[promote 1.0.1].at 1h → 90m",
                "events[disconnect c/s #2] removed in B: {at = 3h, disconnect = 0.5, for = 1h, site = c/s}",
            ]
        );
    }

    #[test]
    fn equal_inputs_have_no_difference() {
        let a = json!({"scenario": {"name": "x", "seed": 1}, "fleet": [{"count": 3}], "builds": [{"version": "1.0.0", "platforms": ["windows-amd64"]}]});
        assert!(diff(&a, &a.clone()).is_empty());
    }
}
