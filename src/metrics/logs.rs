//! The report's log section (U13): per version, the signatures the server
//! saw, their rate per machine-hour on it and which are new in it; the
//! server's own events apart; and the log expectations measured on it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::protocol::Version;
use crate::scenario::LogFilter;
use crate::server::store::{SignatureRow, SignatureVersionRow};

/// What the server's signature tables held at the end of a run.
#[derive(Debug, Clone, Default)]
pub struct LogsSeen {
    /// Every signature, with its rows per version.
    pub signatures: Vec<(SignatureRow, Vec<SignatureVersionRow>)>,
    /// Machine-hours the server saw agents connected on each version.
    pub machine_hours: BTreeMap<Version, f64>,
    /// The version the server's pseudo-agent logs its own events under,
    /// when no machine of the plan runs it (so its rows are the server's).
    pub server_version: Option<Version>,
    /// The versions fleet entries start on.
    pub start_versions: BTreeSet<Version>,
}

/// The log section of `report.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Logs {
    /// Log lines the server received.
    pub lines: u64,
    /// Distinct signatures agents logged.
    pub signatures: usize,
    /// Each version agents were seen on or logged on, oldest first.
    pub versions: Vec<VersionLogs>,
    /// The server's own events (its pseudo-agent, `GuruRMM Server`), most first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server: Vec<SignatureOnVersion>,
}

/// What machines logged on one version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionLogs {
    /// The version.
    pub version: Version,
    /// Machines started the run on it: every signature first logged there
    /// is new in it, for want of an earlier version.
    #[serde(default)]
    pub started_on: bool,
    /// Machine-hours the server saw agents connected on it.
    pub machine_hours: f64,
    /// Lines logged on it.
    pub lines: u64,
    /// Lines per machine-hour (`null`: no machine-hours).
    pub per_machine_hour: Option<f64>,
    /// Its signatures: new ones first, then by lines, most first.
    pub signatures: Vec<SignatureOnVersion>,
}

/// One signature on one version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignatureOnVersion {
    /// The server's id of the signature.
    pub id: i64,
    /// The normalised message.
    pub signature: String,
    /// Its level.
    pub level: String,
    /// The first message seen with it.
    pub sample: String,
    /// The version it was first seen on.
    pub first_version: Version,
    /// First seen on this version.
    pub new: bool,
    /// Lines of it on this version.
    pub lines: u64,
    /// Machines that logged it on this version.
    pub machines: u64,
    /// Lines per machine-hour on this version (`null`: no machine-hours).
    pub per_machine_hour: Option<f64>,
}

/// `lines / hours`, or nothing without hours.
fn rate(lines: u64, hours: f64) -> Option<f64> {
    (hours > 0.0).then(|| lines as f64 / hours)
}

/// The section, from the server's tables.
pub(super) fn section(seen: &LogsSeen, lines: u64) -> Logs {
    let mut by_version = by_version(seen);
    let mut server = seen
        .server_version
        .and_then(|v| by_version.remove(&v))
        .unwrap_or_default();
    server.sort_by(order);
    let versions: BTreeSet<Version> = seen
        .machine_hours
        .iter()
        .filter(|(_, h)| **h > 0.0)
        .map(|(v, _)| *v)
        .chain(by_version.keys().copied())
        .collect();
    let versions: Vec<VersionLogs> = versions
        .into_iter()
        .map(|version| {
            let mut signatures = by_version.remove(&version).unwrap_or_default();
            signatures.sort_by(order);
            let machine_hours = seen.machine_hours.get(&version).copied().unwrap_or(0.0);
            let lines = signatures.iter().map(|s| s.lines).sum();
            VersionLogs {
                version,
                started_on: seen.start_versions.contains(&version),
                machine_hours,
                lines,
                per_machine_hour: rate(lines, machine_hours),
                signatures,
            }
        })
        .collect();
    let ids: BTreeSet<i64> = versions
        .iter()
        .flat_map(|v| v.signatures.iter().map(|s| s.id))
        .collect();
    Logs {
        lines,
        signatures: ids.len(),
        versions,
        server,
    }
}

/// New signatures first, then by lines, most first, then by text.
fn order(a: &SignatureOnVersion, b: &SignatureOnVersion) -> std::cmp::Ordering {
    (b.new, b.lines, &a.signature).cmp(&(a.new, a.lines, &b.signature))
}

/// Every signature's row on each version, as the report shows it.
fn by_version(seen: &LogsSeen) -> BTreeMap<Version, Vec<SignatureOnVersion>> {
    let mut by_version: BTreeMap<Version, Vec<SignatureOnVersion>> = BTreeMap::new();
    for (sig, rows) in &seen.signatures {
        for row in rows {
            let hours = seen.machine_hours.get(&row.version).copied().unwrap_or(0.0);
            by_version.entry(row.version).or_default().push(SignatureOnVersion {
                id: sig.id.0,
                signature: sig.signature.clone(),
                level: sig.level.clone(),
                sample: sig.sample.clone(),
                first_version: sig.first_version,
                new: sig.first_version == row.version,
                lines: row.count,
                machines: row.machines,
                per_machine_hour: rate(row.count, hours),
            });
        }
    }
    by_version
}

fn keeps(filter: &LogFilter, s: &SignatureOnVersion) -> bool {
    filter.level.is_none_or(|l| l.as_str() == s.level) && filter.new_in.is_none_or(|v| v == s.first_version)
}

impl Logs {
    fn version(&self, version: Version) -> Option<&VersionLogs> {
        self.versions.iter().find(|v| v.version == version)
    }

    /// `log_rate`: lines per machine-hour on `version` of the signatures the
    /// filter keeps; `None` without machine-hours on it.
    pub fn rate(&self, version: Version, filter: &LogFilter) -> Option<f64> {
        let v = self.version(version)?;
        let lines = v.signatures.iter().filter(|s| keeps(filter, s)).map(|s| s.lines).sum();
        rate(lines, v.machine_hours)
    }

    /// `log_signatures`: distinct signatures the filter keeps, logged on
    /// `version` (on any when `None`).
    pub fn count(&self, version: Option<Version>, filter: &LogFilter) -> usize {
        let ids: BTreeSet<i64> = self
            .versions
            .iter()
            .filter(|v| version.is_none_or(|x| x == v.version))
            .flat_map(|v| v.signatures.iter())
            .filter(|s| keeps(filter, s))
            .map(|s| s.id)
            .collect();
        ids.len()
    }

    /// The section in one sentence, for people.
    pub(crate) fn line(&self) -> String {
        let new_errors: Vec<String> = self
            .versions
            .iter()
            .filter(|v| !v.started_on)
            .filter_map(|v| {
                let new: Vec<&SignatureOnVersion> =
                    v.signatures.iter().filter(|s| s.new && s.level == "error").collect();
                let lines: u64 = new.iter().map(|s| s.lines).sum();
                (!new.is_empty()).then(|| {
                    let per = rate(lines, v.machine_hours).map_or_else(|| "n/a".to_owned(), |r| format!("{r:.3}"));
                    format!("{} on {} ({per} lines per machine-hour)", new.len(), v.version)
                })
            })
            .collect();
        let new = if new_errors.is_empty() {
            "no version the fleet did not start on brought a new error signature".to_owned()
        } else {
            format!("new error signatures: {}", new_errors.join(", "))
        };
        let own: u64 = self.server.iter().map(|s| s.lines).sum();
        let own = match own {
            0 => String::new(),
            n => format!("; the server logged {n} events of its own"),
        };
        format!(
            "Logs: {} lines, {} signatures; {new}{own}.",
            self.lines, self.signatures
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::LogLevel;
    use crate::clock::Timestamp;
    use crate::server::store::SignatureId;

    const OLD: Version = Version::new(1, 0, 0);
    const NEW: Version = Version::new(1, 0, 1);
    const SERVER: Version = Version::new(0, 1, 0);

    /// Signature `id` at `level`, first seen on the first of `on`, with
    /// `(version, lines, machines)` rows.
    fn sig(id: i64, level: &str, on: &[(Version, u64, u64)]) -> (SignatureRow, Vec<SignatureVersionRow>) {
        let row = SignatureRow {
            id: SignatureId(id),
            signature: format!("sig {id}"),
            level: level.into(),
            sample: format!("sample {id}"),
            first_seen: Timestamp(0),
            last_seen: Timestamp(0),
            count: on.iter().map(|o| o.1).sum(),
            first_version: on[0].0,
        };
        let rows = on
            .iter()
            .map(|&(version, count, machines)| SignatureVersionRow {
                signature: SignatureId(id),
                version,
                count,
                machines,
                first_seen: Timestamp(0),
            })
            .collect();
        (row, rows)
    }

    fn seen() -> LogsSeen {
        LogsSeen {
            signatures: vec![
                sig(1, "info", &[(OLD, 100, 10), (NEW, 40, 10)]),
                sig(2, "error", &[(NEW, 30, 4)]),
                sig(3, "warn", &[(SERVER, 7, 1)]),
                sig(4, "error", &[(OLD, 5, 2), (NEW, 1, 1)]),
            ],
            machine_hours: [(OLD, 100.0), (NEW, 20.0), (SERVER, 0.0)].into(),
            server_version: Some(SERVER),
            start_versions: [OLD].into(),
        }
    }

    #[test]
    fn each_version_lists_its_signatures_new_first_and_the_servers_apart() {
        let logs = section(&seen(), 176);
        let versions: Vec<Version> = logs.versions.iter().map(|v| v.version).collect();
        assert_eq!(versions, [OLD, NEW]);
        assert_eq!(logs.signatures, 3, "the server's own is not an agents' signature");
        assert_eq!(logs.server.len(), 1);
        assert_eq!((logs.server[0].id, logs.server[0].lines), (3, 7));
        let new = &logs.versions[1];
        let order: Vec<(i64, bool)> = new.signatures.iter().map(|s| (s.id, s.new)).collect();
        assert_eq!(order, [(2, true), (1, false), (4, false)]);
        assert_eq!((new.lines, new.per_machine_hour), (71, Some(71.0 / 20.0)));
        assert_eq!(new.signatures[0].per_machine_hour, Some(1.5));
        assert!(logs.versions[0].started_on && !new.started_on);
        // The summary names the new error on 1.0.1, not those of the start.
        assert_eq!(
            logs.line(),
            "Logs: 176 lines, 3 signatures; new error signatures: 1 on 1.0.1 (1.500 lines per machine-hour); \
             the server logged 7 events of its own."
        );
    }

    #[test]
    fn log_metrics_filter_by_level_and_first_version() {
        let logs = section(&seen(), 176);
        let all = LogFilter::default();
        let errors = LogFilter {
            level: Some(LogLevel::Error),
            new_in: None,
        };
        let new_errors = LogFilter {
            new_in: Some(NEW),
            ..errors
        };
        assert_eq!(logs.rate(NEW, &all), Some(71.0 / 20.0));
        assert_eq!(logs.rate(NEW, &errors), Some(31.0 / 20.0));
        assert_eq!(logs.rate(NEW, &new_errors), Some(1.5));
        assert_eq!(logs.rate(OLD, &new_errors), Some(0.0));
        // No machine-hours: no rate, so any bound fails.
        assert_eq!(logs.rate(SERVER, &all), None);
        assert_eq!(logs.count(None, &all), 3);
        assert_eq!(logs.count(Some(NEW), &errors), 2);
        assert_eq!(logs.count(None, &new_errors), 1);
        assert_eq!(logs.count(Some(OLD), &new_errors), 0);
    }
}
