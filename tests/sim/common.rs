//! Building, loading, shrinking and running scenarios.

use std::path::PathBuf;
use std::time::Duration;

use rmmsim::clock::Timestamp;
use rmmsim::metrics::Report;
pub use rmmsim::protocol::{Channel, Platform, Version};
pub use rmmsim::scenario::builder::{
    AgentDefaults, AvailabilitySpec, Build, Client, Event, Expect, Fleet, PlanBuilder, Site,
};
use rmmsim::scenario::{self, Plan, ScenarioError, ScenarioErrors};
use rmmsim::sim::{self, SimOptions, TransportKind};

/// The build most tests' fleets start on, stable from the start.
pub const OLD: Version = Version::new(1, 0, 0);
/// The build most tests roll out.
pub const NEW: Version = Version::new(1, 0, 1);

/// Seconds.
pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Minutes.
pub fn mins(n: u64) -> Duration {
    Duration::from_secs(60 * n)
}

/// Hours.
pub fn hours(n: u64) -> Duration {
    Duration::from_secs(3600 * n)
}

/// The platform of most machines.
pub fn windows() -> Platform {
    "windows-amd64".parse().unwrap()
}

/// The other platform of mixed fleets.
pub fn linux() -> Platform {
    "linux-amd64".parse().unwrap()
}

/// An RFC 3339 date.
pub fn date(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// The story most tests tell: `name`, with `seed`, from `start` for
/// `duration`; [`OLD`] lands as stable at the start and [`NEW`] as beta at
/// `lands`. Clients, fleet, events and expectations are the test's.
pub fn one_update(name: &str, seed: u64, start: &str, duration: Duration, lands: Duration) -> PlanBuilder {
    PlanBuilder::new(name, date(start), duration)
        .seed(seed)
        .build(Build::new(OLD).channel(Channel::Stable).published(Duration::ZERO))
        .build(Build::new(NEW).published(lands))
}

/// Agents without jitter whose downloads, installs and restarts take no
/// time: a machine runs a build at the heartbeat it is offered it.
pub fn instant(agent: AgentDefaults) -> AgentDefaults {
    agent
        .jitter(0.0)
        .download(Duration::ZERO)
        .install(Duration::ZERO)
        .restart(Duration::ZERO)
}

/// Checks a built scenario, failing the test with the error.
pub fn checked(builder: &PlanBuilder) -> Plan {
    builder.check().unwrap_or_else(|e| panic!("{e}"))
}

/// A shipped scenario file.
pub fn shipped(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"))
}

/// Loads a shipped scenario.
pub fn load(name: &str) -> Plan {
    scenario::load(&shipped(name)).unwrap_or_else(|e| panic!("{e}"))
}

/// Caps every fleet entry at `max` machines, keeping the story (a test may
/// run a smaller fleet than the file).
pub fn cap(plan: &mut Plan, max: usize) {
    for g in &mut plan.groups {
        g.count = g.count.min(max);
    }
}

/// Scales every fleet entry by `factor` except those named in `keep` (the
/// ones a scenario's story needs whole, such as the beta testers the health
/// gate counts).
pub fn shrink(plan: &mut Plan, factor: f64, keep: &[&str]) {
    for g in &mut plan.groups {
        if !keep.contains(&g.name.as_str()) {
            g.count = ((g.count as f64 * factor).round() as usize).max(1);
        }
    }
}

/// Runs a plan on a transport and returns its report.
pub fn run_on(plan: &Plan, transport: TransportKind) -> Report {
    sim::execute(
        plan,
        &SimOptions {
            transport,
            progress: None,
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}"))
}

/// Runs a plan in memory.
pub fn run(plan: &Plan) -> Report {
    run_on(plan, TransportKind::WsMem)
}

/// Fails with every broken expectation and invariant, if any.
pub fn assert_passed(r: &Report) {
    let failed: Vec<String> = r
        .expectations
        .iter()
        .filter(|e| !e.passed)
        .map(|e| {
            format!(
                "{} (line {}): observed {}, allowed {}",
                e.label, e.line, e.observed_text, e.allowed
            )
        })
        .collect();
    assert!(
        r.passed,
        "{}: expectations failed: {failed:#?}, violations: {:#?}",
        r.scenario.name, r.violations
    );
}

/// The one error of a scenario refused for one thing.
pub fn only_error(errors: ScenarioErrors) -> ScenarioError {
    assert_eq!((errors.errors.len(), errors.more), (1, 0), "{errors}");
    errors.errors.into_iter().next().unwrap_or_else(|| unreachable!())
}

/// Runs the `rmmsim` binary in `dir`.
pub fn rmmsim(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_rmmsim"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

/// What a run printed, stdout then stderr.
pub fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
