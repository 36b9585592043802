//! Baselines: the figures a scenario produced when someone last accepted
//! them, committed under `reports/baselines/`, and the regression gate that
//! compares a new run with them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Failure, FailureKind};
use crate::clock::short;
use crate::metrics::Report;
use crate::protocol::{Channel, Version};
use crate::scenario::RegressionGate;

/// The figures a scenario is held to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub scenario: String,
    /// The seed the figures came from.
    pub seed: u64,
    /// The rmmsim that made them.
    pub rmmsim_version: String,
    /// The transport they were measured on.
    pub transport: String,
    /// Machines in the fleet.
    pub fleet: usize,
    /// Every build's convergence per channel and reference event.
    pub convergence: Vec<BaselineConvergence>,
    /// Machines stranded at the end.
    pub stranded: usize,
    /// Orphaned rows in the server's store at the end.
    pub orphan_rows: usize,
    /// Share of the fleet on each version at the end.
    pub final_shares: BTreeMap<Version, f64>,
}

/// One convergence, as the gate sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineConvergence {
    /// The build.
    pub version: Version,
    /// Whose machines.
    pub channel: Channel,
    /// `publish` or `promote`.
    pub reference: String,
    /// Seconds to 50 % (`null`: never).
    pub t50_s: Option<f64>,
    /// Seconds to 90 %.
    pub t90_s: Option<f64>,
    /// Seconds to 99 %.
    pub t99_s: Option<f64>,
}

impl BaselineConvergence {
    fn label(&self) -> String {
        format!("{} ({}, from {})", self.version, self.channel, self.reference)
    }

    fn figures(&self) -> [(&'static str, Option<f64>); 3] {
        [("t50", self.t50_s), ("t90", self.t90_s), ("t99", self.t99_s)]
    }

    /// The same build, channel and reference event among `others`.
    fn find_in<'a>(&self, others: &'a [BaselineConvergence]) -> Option<&'a BaselineConvergence> {
        others
            .iter()
            .find(|c| (c.version, c.channel, &c.reference) == (self.version, self.channel, &self.reference))
    }

    /// The figures `now` reaches later than this baseline and `gate` allow.
    fn slower(&self, now: &BaselineConvergence, gate: RegressionGate) -> Vec<Failure> {
        let (tol, slack) = (gate.tolerance, gate.slack.as_secs_f64());
        let mut out = Vec::new();
        for ((name, was), (_, is)) in self.figures().into_iter().zip(now.figures()) {
            let Some(was) = was else { continue };
            let allowed = (was * (1.0 + tol)).max(was + slack);
            if is.is_none_or(|is| is > allowed) {
                let worse = is.map_or_else(
                    || "never reached".to_owned(),
                    |is| format!("{:.0}% slower", (is / was.max(1e-9) - 1.0) * 100.0),
                );
                out.push(gate_failure(
                    format!("{name} {}", self.label()),
                    time(is),
                    format!(
                        "≤ {} (baseline {} + {:.0}% tolerance, at least {} slack)",
                        time(Some(allowed)),
                        time(Some(was)),
                        tol * 100.0,
                        short(gate.slack)
                    ),
                    worse,
                ));
            }
        }
        out
    }
}

/// A figure the regression gate refuses.
fn gate_failure(figure: String, observed: String, allowed: String, detail: String) -> Failure {
    Failure {
        kind: FailureKind::Gate,
        figure,
        observed,
        allowed,
        detail,
    }
}

fn time(s: Option<f64>) -> String {
    s.map_or_else(|| "never".to_owned(), |s| short(Duration::from_secs_f64(s.max(0.0))))
}

impl Baseline {
    /// The figures of a report.
    pub fn of(report: &Report) -> Self {
        let fleet = report.scenario.fleet.max(1) as f64;
        Self {
            scenario: report.scenario.name.clone(),
            seed: report.scenario.seed,
            rmmsim_version: report.rmmsim_version.clone(),
            transport: report.scenario.transport.clone(),
            fleet: report.scenario.fleet,
            convergence: report
                .builds
                .iter()
                .flat_map(|b| {
                    b.convergence.iter().map(|c| BaselineConvergence {
                        version: b.version,
                        channel: c.channel,
                        reference: c.reference.clone(),
                        t50_s: c.figures.t50_s,
                        t90_s: c.figures.t90_s,
                        t99_s: c.figures.t99_s,
                    })
                })
                .collect(),
            stranded: report.stranded.len(),
            orphan_rows: report.rows.server.orphaned,
            final_shares: report
                .final_versions
                .iter()
                .map(|(v, n)| (*v, (*n as f64 / fleet * 1e4).round() / 1e4))
                .collect(),
        }
    }

    /// Where a new run is worse than this baseline by more than `gate` allows.
    pub fn compare(&self, new: &Baseline, gate: RegressionGate) -> Vec<Failure> {
        if (self.seed, self.fleet) != (new.seed, new.fleet) {
            return vec![gate_failure(
                "baseline".into(),
                format!("seed {}, {} machines", new.seed, new.fleet),
                format!("seed {}, {} machines", self.seed, self.fleet),
                "the baseline was made from another seed or fleet; if the scenario changed on purpose, \
                 accept the new figures with --update-baselines"
                    .into(),
            )];
        }
        let mut out = Vec::new();
        for b in &self.convergence {
            match b.find_in(&new.convergence) {
                Some(now) => out.extend(b.slower(now, gate)),
                None => out.push(gate_failure(
                    format!("convergence of {}", b.label()),
                    "does not happen".into(),
                    "happens".into(),
                    format!("{} was never published or promoted in this run", b.version),
                )),
            }
        }
        for (figure, was, is) in [
            ("stranded machines", self.stranded, new.stranded),
            ("orphan rows", self.orphan_rows, new.orphan_rows),
        ] {
            if is > was {
                out.push(gate_failure(
                    figure.into(),
                    is.to_string(),
                    format!("≤ {was} (baseline; may not grow)"),
                    format!("{} more", is - was),
                ));
            }
        }
        out.extend(self.shares_moved(new, gate.tolerance));
        out
    }

    /// Final shares that moved by more than `tol` either way.
    fn shares_moved(&self, new: &Baseline, tol: f64) -> Vec<Failure> {
        let versions: BTreeSet<Version> = self
            .final_shares
            .keys()
            .chain(new.final_shares.keys())
            .copied()
            .collect();
        let mut out = Vec::new();
        for v in versions {
            let was = self.final_shares.get(&v).copied().unwrap_or(0.0);
            let is = new.final_shares.get(&v).copied().unwrap_or(0.0);
            if (is - was).abs() > tol + 1e-9 {
                out.push(gate_failure(
                    format!("final share on {v}"),
                    format!("{is:.4}"),
                    format!("{was:.4} ± {tol:.2} (baseline ± tolerance)"),
                    format!("{:+.1} points", (is - was) * 100.0),
                ));
            }
        }
        out
    }

    /// What changed from this baseline to `new`, one line per figure.
    pub fn changes(&self, new: &Baseline) -> Vec<String> {
        let mut out = Vec::new();
        if (self.seed, self.fleet, &self.transport) != (new.seed, new.fleet, &new.transport) {
            out.push(format!(
                "seed {} → {}, {} → {} machines, {} → {}",
                self.seed, new.seed, self.fleet, new.fleet, self.transport, new.transport
            ));
        }
        for n in &new.convergence {
            match n.find_in(&self.convergence) {
                None => out.push(format!("new: {}", n.label())),
                Some(o) => {
                    for ((name, a), (_, b)) in o.figures().into_iter().zip(n.figures()) {
                        if a != b {
                            out.push(format!("{name} {}: {} → {}", n.label(), time(a), time(b)));
                        }
                    }
                }
            }
        }
        for o in &self.convergence {
            if o.find_in(&new.convergence).is_none() {
                out.push(format!("gone: {}", o.label()));
            }
        }
        if self.stranded != new.stranded {
            out.push(format!("stranded machines: {} → {}", self.stranded, new.stranded));
        }
        if self.orphan_rows != new.orphan_rows {
            out.push(format!("orphan rows: {} → {}", self.orphan_rows, new.orphan_rows));
        }
        if self.final_shares != new.final_shares {
            let show = |m: &BTreeMap<Version, f64>| {
                m.iter()
                    .map(|(v, s)| format!("{v} {s:.4}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            out.push(format!(
                "final shares: {} → {}",
                show(&self.final_shares),
                show(&new.final_shares)
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Baseline {
        Baseline {
            scenario: "s".into(),
            seed: 1,
            rmmsim_version: "0".into(),
            transport: "ws-mem".into(),
            fleet: 100,
            convergence: vec![BaselineConvergence {
                version: Version::new(1, 0, 1),
                channel: Channel::Stable,
                reference: "promote".into(),
                t50_s: Some(100.0),
                t90_s: Some(200.0),
                t99_s: None,
            }],
            stranded: 1,
            orphan_rows: 0,
            final_shares: BTreeMap::from([(Version::new(1, 0, 1), 0.99), (Version::new(1, 0, 0), 0.01)]),
        }
    }

    #[test]
    fn within_tolerance_passes_and_beyond_fails_naming_the_figure() {
        let gate = RegressionGate {
            tolerance: 0.1,
            slack: Duration::from_secs(5),
        };
        let mut new = base();
        new.convergence[0].t50_s = Some(110.0); // exactly +10 %
        new.convergence[0].t99_s = Some(5000.0); // the baseline never reached it: anything goes
        new.stranded = 0;
        assert!(base().compare(&new, gate).is_empty());
        new.convergence[0].t90_s = Some(250.0);
        new.orphan_rows = 2;
        new.final_shares = BTreeMap::from([(Version::new(1, 0, 1), 0.80), (Version::new(1, 0, 0), 0.20)]);
        let failures = base().compare(&new, gate);
        let figures: Vec<&str> = failures.iter().map(|f| f.figure.as_str()).collect();
        assert_eq!(
            figures,
            [
                "t90 1.0.1 (stable, from promote)",
                "orphan rows",
                "final share on 1.0.0",
                "final share on 1.0.1"
            ]
        );
        assert!(failures[0].allowed.contains("10% tolerance"), "{:?}", failures[0]);
        assert_eq!(failures[0].detail, "25% slower");
    }

    #[test]
    fn slack_protects_tiny_baselines_and_never_fails_a_reached_time() {
        let gate = RegressionGate {
            tolerance: 0.1,
            slack: Duration::from_secs(5),
        };
        let mut b = base();
        b.convergence[0].t50_s = Some(0.0);
        let mut new = b.clone();
        new.convergence[0].t50_s = Some(4.0);
        assert!(b.compare(&new, gate).is_empty());
        new.convergence[0].t50_s = None;
        let failures = b.compare(&new, gate);
        assert_eq!(failures[0].observed, "never");
        assert_eq!(failures[0].detail, "never reached");
    }

    #[test]
    fn another_seed_is_not_compared_and_changes_are_listed() {
        let gate = RegressionGate::default();
        let mut new = base();
        new.seed = 2;
        assert_eq!(base().compare(&new, gate)[0].figure, "baseline");
        let mut new = base();
        new.convergence[0].t90_s = Some(180.0);
        assert_eq!(base().changes(&new), ["t90 1.0.1 (stable, from promote): 3m 20s → 3m"]);
        assert!(base().changes(&base()).is_empty());
    }
}
