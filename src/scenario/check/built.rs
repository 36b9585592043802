//! Values a spec built in code can hold and a file cannot: reading a file
//! refuses them already (a rate must parse as above 0, a time zone as
//! `±HH:MM` within 14:59), so these checks only ever stop a spec built with
//! `PlanBuilder`, and such a spec has no lines to point at.

use super::{Check, Problem, Problems};
use crate::scenario::spec::{MAX_UTC_OFFSET, Spec, UtcOffset};

/// A problem with no span of its own: a file's values are checked as they
/// are read, so only a spec built in code gets here, and it has no lines.
fn unplaced(key: String, message: &str) -> Problem {
    Problem {
        offset: 0,
        key,
        message: message.to_owned(),
        refers: &[],
    }
}

/// Rates above 0. Reading a file refuses any other (`parse_rate`); a spec
/// built in code holds bytes per second as given.
pub(super) fn check_rates(spec: &Spec, p: &mut Problems) {
    let fleet = spec
        .fleet
        .iter()
        .enumerate()
        .map(|(i, f)| (format!("fleet[{i}].bandwidth"), f.get_ref().bandwidth));
    let rates = [
        ("server.bandwidth".to_owned(), spec.server.bandwidth),
        ("agent.bandwidth".to_owned(), spec.agent.bandwidth),
    ];
    for (key, _) in rates
        .into_iter()
        .chain(fleet)
        .filter(|(_, r)| r.is_some_and(|r| !(r.0.is_finite() && r.0 > 0.0)))
    {
        p.add(unplaced(key, "must be above 0 bytes per second"));
    }
}

/// A time zone within `±14:59`, as a file's `+HH:MM` can only be.
pub(super) fn check_timezone(tz: Option<UtcOffset>, key: impl FnOnce() -> String) -> Check<()> {
    match tz {
        Some(o) if o.0.abs() > MAX_UTC_OFFSET => Err(unplaced(key(), "must be within ±14:59 of UTC")),
        _ => Ok(()),
    }
}
