//! Loading, shrinking and running scenarios.

use std::path::PathBuf;

use rmmsim::metrics::Report;
use rmmsim::scenario::{self, Plan};
use rmmsim::sim::{self, SimOptions, TransportKind};

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
            progress: false,
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

/// A scenario from text.
pub fn parse(text: &str) -> Plan {
    scenario::parse("test.toml", text).unwrap_or_else(|e| panic!("{e}"))
}
