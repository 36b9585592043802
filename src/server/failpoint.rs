//! Failpoints: stop the process dead at one step of a promote or rollback,
//! so a test can restart the server after it and see the files and the rows
//! agree (design.md, Crash consistency).
//!
//! Only `rmmsim serve` reads them, from [`ENV`]
//! (`RMMSIM_FAILPOINT=promote:after_sidecar:2`), and hands the one it read to
//! [`Core::set_failpoint`](super::Core::set_failpoint); a core without one
//! (every simulation) pays one `None` check per step of a promote or
//! rollback. Written by hand rather than with the `fail` crate: there are six
//! points, all in one file, and that crate's global registry would let a
//! failpoint configured for one server fire in another of the same process.

use std::fmt;
use std::str::FromStr;

/// The environment variable `serve` reads its failpoint from.
pub const ENV: &str = "RMMSIM_FAILPOINT";

/// Which change a failpoint sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// U9.
    Promote,
    /// U10.
    Rollback,
}

/// Where in the change. Sidecar steps count from 1 in file name order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The intent is committed (for a rollback, with the block); no file touched yet.
    AfterIntent,
    /// The `n`th `.channel` sidecar was rewritten (promote) or removed (rollback).
    AfterSidecar(u32),
    /// The transaction that ends the change (rows, intent deleted) is committed;
    /// the rescan has not run.
    AfterCommit,
}

/// A point the process aborts at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failpoint {
    /// The change.
    pub op: Op,
    /// The step.
    pub step: Step,
}

impl Failpoint {
    /// Aborts the process when this is the failpoint of `op` at `step`:
    /// no destructor runs and nothing is flushed, as after `kill -9`.
    pub fn check(&self, op: Op, step: Step) {
        if self.op == op && self.step == step {
            tracing::error!("failpoint {self}: aborting");
            std::process::abort();
        }
    }
}

impl fmt::Display for Failpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            Op::Promote => "promote",
            Op::Rollback => "rollback",
        };
        match self.step {
            Step::AfterIntent => write!(f, "{op}:after_intent"),
            Step::AfterSidecar(n) => write!(f, "{op}:after_sidecar:{n}"),
            Step::AfterCommit => write!(f, "{op}:after_commit"),
        }
    }
}

/// A failpoint name that is not one of [`Failpoint`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown failpoint `{0}`: expected promote or rollback, then after_intent, after_sidecar:N (N from 1) or after_commit, e.g. promote:after_sidecar:2"
)]
pub struct BadFailpoint(String);

impl FromStr for Failpoint {
    type Err = BadFailpoint;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadFailpoint(s.to_owned());
        let mut parts = s.split(':');
        let op = match parts.next() {
            Some("promote") => Op::Promote,
            Some("rollback") => Op::Rollback,
            _ => return Err(bad()),
        };
        let step = match (parts.next(), parts.next(), parts.next()) {
            (Some("after_intent"), None, None) => Step::AfterIntent,
            (Some("after_commit"), None, None) => Step::AfterCommit,
            (Some("after_sidecar"), Some(n), None) => match n.parse() {
                Ok(n) if n >= 1 => Step::AfterSidecar(n),
                _ => return Err(bad()),
            },
            _ => return Err(bad()),
        };
        Ok(Self { op, step })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_and_bad_ones_are_refused() {
        for name in [
            "promote:after_intent",
            "promote:after_sidecar:2",
            "promote:after_commit",
            "rollback:after_intent",
            "rollback:after_sidecar:1",
            "rollback:after_commit",
        ] {
            assert_eq!(name.parse::<Failpoint>().unwrap().to_string(), name);
        }
        for bad in [
            "",
            "promote",
            "promote:after_sidecar",
            "promote:after_sidecar:0",
            "promote:after_sidecar:x",
            "promote:after_intent:1",
            "publish:after_intent",
        ] {
            assert!(bad.parse::<Failpoint>().is_err(), "{bad}");
        }
    }
}
