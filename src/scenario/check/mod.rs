//! From `spec` (as written) to `Plan` (checked): every reference resolved,
//! every default filled in. Each problem carries the byte offset of what is
//! wrong, so the error names its line; the checks go on past a problem, so
//! one reading of a file finds them all.

mod built;
mod events;
mod expects;
mod fleet;
mod logs;

use std::collections::BTreeSet;
use std::time::Duration;

use toml::Spanned;

use super::plan::{BuildPlan, Plan, RegressionGate};
use super::spec::{BuildSpec, Dur, ScenarioSection, Spec};
use crate::clock::Timestamp;
use crate::protocol::{Channel, Platform};
use crate::server::publish::DigestMode;
use crate::server::{self, HealthGate};

/// Most samples a curve may have: past that, reports grow without telling more.
const MAX_SAMPLES: usize = 1_000_000;
/// Largest build a scenario may declare.
const MAX_BUILD_BYTES: u64 = 1 << 30;
/// Spacing of the report's curves when `sample_every` is not given.
const DEFAULT_SAMPLE_EVERY: Duration = Duration::from_secs(60);

/// A check that failed, with where.
pub(crate) struct Problem {
    pub offset: usize,
    pub key: String,
    pub message: String,
    /// The keys a reference was resolved against (`builds[].version`), when
    /// this is a reference that was not found: if one of them could not be
    /// read, the reference may be to it, and the problem is not shown.
    pub refers: &'static [&'static str],
}

impl Problem {
    /// This problem, a reference resolved against `keys`.
    pub(super) fn refers(mut self, keys: &'static [&'static str]) -> Self {
        self.refers = keys;
        self
    }
}

pub(super) type Check<T> = Result<T, Problem>;

/// Every problem found so far: a check records one and goes on.
#[derive(Default)]
pub(super) struct Problems(Vec<Problem>);

impl Problems {
    pub(super) fn add(&mut self, p: Problem) {
        self.0.push(p);
    }

    /// The value, or `None` with its problem recorded.
    pub(super) fn ok<T>(&mut self, check: Check<T>) -> Option<T> {
        check.map_err(|p| self.add(p)).ok()
    }
}

pub(super) fn at<T>(s: &Spanned<T>, key: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        offset: s.span().start,
        key: key.into(),
        message: message.into(),
        refers: &[],
    }
}

pub(super) fn fmt_dur(d: Duration) -> String {
    crate::clock::short(d)
}

/// When the scenario ends, for the problems of times after it.
#[derive(Debug, Clone, Copy)]
pub(super) struct End {
    pub start: Timestamp,
    pub duration: Duration,
}

impl End {
    /// A problem when `when` (the value of `key`, named `what` in the
    /// message: `at`, `published`) is after the end, saying when that is.
    pub(super) fn after(&self, when: &Spanned<Dur>, key: String, what: &str) -> Option<Problem> {
        let w = when.get_ref().0;
        (w > self.duration).then(|| {
            let message = format!(
                "{what} {} is after the end of the scenario (duration {}, ends {})",
                fmt_dur(w),
                fmt_dur(self.duration),
                self.start.plus(self.duration)
            );
            at(when, key, message)
        })
    }
}

/// Checks a parsed file, or a spec built in code (`text` is `None`: there is
/// no file, and expectations have no line); every problem, in the order
/// found.
pub(crate) fn check(spec: &Spec, text: Option<&str>) -> Result<Plan, Vec<Problem>> {
    let mut p = Problems::default();
    let s = &spec.scenario;
    let end = End {
        start: s.start,
        duration: s.duration.get_ref().0,
    };
    let name = p.ok(check_name(&s.name)).cloned().unwrap_or_default();
    if end.duration.is_zero() {
        p.add(at(&s.duration, "scenario.duration", "must be longer than 0s"));
    }
    let sample_every = p.ok(check_sampling(s, end.duration)).unwrap_or(DEFAULT_SAMPLE_EVERY);
    let gate = p.ok(check_health_gate(spec)).unwrap_or_default();
    let max_enrolments_per_minute = p.ok(check_enrolment_cap(spec)).flatten();
    let regression = p.ok(check_regression(spec)).unwrap_or_default();
    built::check_rates(spec, &mut p);
    let clients = fleet::check_clients(spec, &mut p);
    let builds = check_builds(spec, end, &mut p);
    let groups = fleet::check_fleet(spec, &clients, &mut p);
    let events = events::check_events(spec, end, &clients, &builds, &groups, &mut p);
    let expects = expects::check_expects(spec, end, &builds, text, &mut p);
    let agent_logs = logs::check_logs(&spec.agent.logs, "agent.logs", &mut p);
    if !p.0.is_empty() {
        return Err(unconfused(p.0));
    }
    Ok(Plan {
        name,
        description: s.description.clone(),
        seed: s.seed.unwrap_or(1),
        start: s.start,
        duration: end.duration,
        sample_every,
        gate,
        egress: spec.server.bandwidth.map(|r| r.0),
        rescan_every: spec.server.rescan_every.map_or(server::DEFAULT_RESCAN_EVERY, |d| d.0),
        max_enrolments_per_minute,
        logs: agent_logs,
        clients,
        builds,
        groups,
        events,
        expects,
        regression,
        inputs: super::plan::inputs_of(spec),
    })
}

/// `problems` without the references that were not found among keys that
/// are in error themselves: `no site c/s` says nothing more when the
/// client's name `c` was refused.
fn unconfused(problems: Vec<Problem>) -> Vec<Problem> {
    let bad: Vec<String> = problems
        .iter()
        .filter(|p| p.refers.is_empty())
        .map(|p| unindexed(&p.key))
        .collect();
    problems
        .into_iter()
        .filter(|p| !p.refers.iter().any(|r| bad.iter().any(|b| under(b, r))))
        .collect()
}

/// `fleet[2].count` as `fleet[].count`.
pub(super) fn unindexed(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut in_index = false;
    for c in key.chars() {
        match c {
            '[' => in_index = true,
            ']' => in_index = false,
            _ if in_index => continue,
            _ => {}
        }
        out.push(c);
    }
    out
}

/// Whether `key` is `of` or inside it (`fleet[2].count` is inside `fleet`
/// and `fleet[2]`).
pub(super) fn under(key: &str, of: &str) -> bool {
    key.strip_prefix(of)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
}

/// The scenario's name, which names its report folder.
fn check_name(name: &Spanned<String>) -> Check<&String> {
    let text = name.get_ref();
    let valid = !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !valid {
        return Err(at(
            name,
            "scenario.name",
            "1 to 64 of a-z, 0-9, - and _ (it names the report folder)",
        ));
    }
    Ok(text)
}

/// `scenario.sample_every`, or a minute: above zero, at most the duration,
/// and not so fine that the curves outgrow [`MAX_SAMPLES`].
fn check_sampling(s: &ScenarioSection, duration: Duration) -> Check<Duration> {
    let sample_every = s.sample_every.as_ref().map_or(DEFAULT_SAMPLE_EVERY, |d| d.get_ref().0);
    let samples = duration.as_millis() / sample_every.as_millis().max(1);
    if let Some(d) = s.sample_every.as_ref().filter(|_| samples > MAX_SAMPLES as u128) {
        return Err(at(
            d,
            "scenario.sample_every",
            format!("too fine: more than {MAX_SAMPLES} samples over the duration"),
        ));
    }
    if let Some(d) = s
        .sample_every
        .as_ref()
        .filter(|_| sample_every.is_zero() || sample_every > duration)
    {
        return Err(at(
            d,
            "scenario.sample_every",
            "must be above 0s and at most the duration",
        ));
    }
    Ok(sample_every)
}

/// `[server.health_gate]`, or the server's default gate.
fn check_health_gate(spec: &Spec) -> Check<HealthGate> {
    let Some(g) = &spec.server.health_gate else {
        return Ok(HealthGate::default());
    };
    let rate = *g.max_failure_rate.get_ref();
    if !(0.0..=1.0).contains(&rate) {
        return Err(at(
            &g.max_failure_rate,
            "server.health_gate.max_failure_rate",
            "must be between 0 and 1",
        ));
    }
    let new_errors = g.max_new_error_rate.as_ref();
    if let Some(r) = new_errors.filter(|r| !(r.get_ref().is_finite() && *r.get_ref() >= 0.0)) {
        let why = "must be at least 0 (error lines of new signatures per machine-hour)";
        return Err(at(r, "server.health_gate.max_new_error_rate", why));
    }
    Ok(HealthGate {
        min_successes: g.min_successes,
        max_failure_rate: rate,
        max_new_error_rate: new_errors.map(|r| *r.get_ref()),
    })
}

/// `[server] max_enrolments_per_minute`: at least 1 when given; none is no cap.
fn check_enrolment_cap(spec: &Spec) -> Check<Option<u32>> {
    match &spec.server.max_enrolments_per_minute {
        Some(cap) if *cap.get_ref() == 0 => Err(at(
            cap,
            "server.max_enrolments_per_minute",
            "must be at least 1 (leave it out for no cap)",
        )),
        cap => Ok(cap.as_ref().map(|c| *c.get_ref())),
    }
}

/// `[gate]`: what `rmmsim check` tolerates against the baseline.
fn check_regression(spec: &Spec) -> Check<RegressionGate> {
    let mut regression = RegressionGate::default();
    if let Some(g) = &spec.gate {
        if let Some(t) = &g.tolerance {
            if !(0.0..=10.0).contains(t.get_ref()) {
                return Err(at(t, "gate.tolerance", "must be between 0 and 10 (0.1 is 10 %)"));
            }
            regression.tolerance = *t.get_ref();
        }
        if let Some(s) = g.slack {
            regression.slack = s.0;
        }
    }
    Ok(regression)
}

fn check_builds(spec: &Spec, end: End, p: &mut Problems) -> Vec<BuildPlan> {
    let mut builds: Vec<BuildPlan> = Vec::new();
    for (i, b) in spec.builds.iter().enumerate() {
        let b = b.get_ref();
        let version = *b.version.get_ref();
        if builds.iter().any(|o| o.version == version) {
            p.add(at(
                &b.version,
                format!("builds[{i}].version"),
                format!("{version} is defined twice"),
            ));
        }
        builds.push(check_build(b, i, end, p));
    }
    builds
}

/// Build `i`: platforms, dates, size, failure rate, digest.
fn check_build(b: &BuildSpec, i: usize, end: End, p: &mut Problems) -> BuildPlan {
    let key = |k: &str| format!("builds[{i}].{k}");
    let platforms = b
        .platforms
        .clone()
        .unwrap_or_else(|| vec!["windows-amd64".parse().unwrap_or_else(|_| unreachable!())]);
    let unique: BTreeSet<&Platform> = platforms.iter().collect();
    if platforms.is_empty() || unique.len() != platforms.len() {
        p.add(at(&b.version, key("platforms"), "needs one or more distinct platforms"));
    }
    if let Some(late) = b
        .published
        .as_ref()
        .and_then(|d| end.after(d, key("published"), "published"))
    {
        p.add(late);
    }
    if let Some(size) = b.size.as_ref().filter(|s| s.get_ref().0 > MAX_BUILD_BYTES) {
        let why = "at most 1 GiB (the bytes are generated and kept in memory)";
        p.add(at(size, key("size"), why));
    }
    let logs = logs::check_logs(&b.logs, &key("logs"), p);
    let failure_rate = b.install_failure_rate.as_ref().map_or(0.0, |r| *r.get_ref());
    if let Some(r) = b
        .install_failure_rate
        .as_ref()
        .filter(|_| !(0.0..=1.0).contains(&failure_rate))
    {
        p.add(at(r, key("install_failure_rate"), "must be between 0 and 1"));
    }
    let digest = match (b.corrupt_digest, b.missing_digest) {
        (true, true) => {
            let why = "corrupt_digest and missing_digest exclude each other";
            p.add(at(&b.version, format!("builds[{i}]"), why));
            DigestMode::Correct
        }
        (true, false) => DigestMode::Corrupt,
        (false, true) => DigestMode::Missing,
        (false, false) => DigestMode::Correct,
    };
    BuildPlan {
        version: *b.version.get_ref(),
        platforms,
        channel: b.channel.unwrap_or(Channel::Beta),
        published: b.published.as_ref().map(|p| p.get_ref().0),
        size: b.size.as_ref().map_or(256 * 1024, |s| s.get_ref().0),
        failure_rate,
        digest,
        logs,
    }
}
