//! Promotes and rollbacks up close. A rollout that takes two minutes is a
//! sliver on a two-week axis; each promote and rollback gets its own finely
//! sampled curve, from just before it until twice the time most of the
//! machines it moves took to move, for the chart's zoomed panels.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Outcome;
use super::analysis;
use super::convergence::converge;
use super::recorder::MachineTrack;
use super::report::{Curve, reach_delays};
use crate::protocol::{Channel, Version};
use crate::scenario::Plan;

/// Samples in a zoomed window (intervals; one more sample than this).
const SAMPLES: u32 = 300;
/// The shortest window after the event.
const MIN_SPAN: Duration = Duration::from_secs(5 * 60);
/// How much of the window shows before the event, so the state it changed is seen.
const LEAD_FRACTION: u32 = 10;

/// A promote or rollback up close.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Zoom {
    /// `promote` or `rollback`.
    pub action: String,
    /// The build promoted or rolled back.
    pub version: Version,
    /// When, seconds from the start.
    pub at_s: f64,
    /// Seconds after it until 90 % of the machines it moves had moved
    /// (`null`: fewer ever did). A promote moves the stable machines of the
    /// build's platforms onto it, a rollback the machines running it off it.
    pub t90_s: Option<f64>,
    /// Seconds after it until the last of them that moved did (`null`: none did).
    pub last_s: Option<f64>,
    /// Machines it would move.
    pub population: usize,
    /// Of those, how many moved by the end of the run.
    pub moved: usize,
    /// Whose shares the panel shows: `stable` for a promote, `fleet` for a rollback.
    pub shows: String,
    /// The samples, times from the start: from a tenth of the window before
    /// the event to twice `t90_s` (or `last_s`; at least 5 minutes) after
    /// it, within the run.
    pub curve: Curve,
}

/// Every successful promote and every rollback, in time order.
pub fn zooms(plan: &Plan, o: &Outcome) -> Vec<Zoom> {
    let mut events: Vec<(Duration, bool, Version)> = o
        .promoted
        .iter()
        .map(|(v, at)| (*at, false, *v))
        .chain(o.rolled_back.iter().map(|(v, at)| (*at, true, *v)))
        .collect();
    events.sort();
    events
        .into_iter()
        .filter_map(|(at, rollback, version)| zoom(plan, o, at, rollback, version))
        .collect()
}

fn zoom(plan: &Plan, o: &Outcome, at: Duration, rollback: bool, version: Version) -> Option<Zoom> {
    let machines = &o.recorder.machines;
    let delays = if rollback {
        leave_delays(machines, version, at)
    } else {
        let build = plan.builds.iter().find(|b| b.version == version)?;
        reach_delays(machines, build, Channel::Stable, at)
    };
    let t90 = converge(&delays).t90_s.map(Duration::from_secs_f64);
    let last = delays.iter().flatten().max().copied();
    let span = t90.or(last).map_or(MIN_SPAN, |s| (s * 2).max(MIN_SPAN));
    let from = at.saturating_sub(span / LEAD_FRACTION);
    let to = (at + span).min(plan.duration);
    if to <= from {
        return None;
    }
    let window_ms = (to - from).as_millis();
    let every_ms = (window_ms / u128::from(SAMPLES)).max(1);
    let every = Duration::from_millis(every_ms as u64);
    let n = (window_ms / every_ms) as usize + 1;
    Some(Zoom {
        action: if rollback { "rollback" } else { "promote" }.into(),
        version,
        at_s: at.as_secs_f64(),
        t90_s: t90.map(|s| s.as_secs_f64()),
        last_s: last.map(|s| s.as_secs_f64()),
        population: delays.len(),
        moved: delays.iter().flatten().count(),
        shows: if rollback { "fleet" } else { "stable" }.into(),
        curve: analysis::sample(machines, from, every, n),
    })
}

/// For each machine running `version` just before `at`: how long after
/// `at` it ran something else (`None`: never). A machine sent back at the
/// very moment of the rollback counts, with 0.
fn leave_delays(machines: &[MachineTrack], version: Version, at: Duration) -> Vec<Option<Duration>> {
    machines
        .iter()
        .filter(|m| {
            let before = m.versions.iter().take_while(|(t, _)| *t < at).last();
            before.map_or(m.versions[0].1, |(_, v)| *v) == version
        })
        .map(|m| {
            m.versions
                .iter()
                .find(|(t, v)| *t >= at && *v != version)
                .map(|(t, _)| *t - at)
        })
        .collect()
}
