//! Every shipped scenario runs here with its expectations asserted (big
//! fleets capped; `rmmsim run` runs them whole).

use rmmsim::protocol::Version;

use crate::common::*;

#[test]
fn frozen_stable_stays_frozen_for_13_days_then_rolls_within_minutes() {
    let mut plan = load("frozen-stable");
    // A fifth of the stable fleet, every beta tester (the gate counts them).
    shrink(&mut plan, 0.2, &["beta-testers"]);
    let r = run(&plan);
    assert_passed(&r);
    // The story, beyond the file's own expectations: nothing looked broken.
    assert_eq!(r.stable_lag.max_builds, 11);
    // From 0.6.48's publish (day 1) to the promote (day 13), exactly.
    assert_eq!(r.stable_lag.max_s, 12.0 * 86_400.0);
    assert_eq!(r.stable_lag.at_end_builds, 0);
    assert!(r.violations.is_empty());
    // No spurious timeouts or reconnects in two weeks of always-on agents.
    assert_eq!((r.agents.connections_lost, r.agents.connect_failures), (0, 0));
    let promoted = r.builds.iter().find(|b| b.version == Version::new(0, 6, 58)).unwrap();
    assert_eq!(promoted.promoted_s, Some(13.0 * 86_400.0));
}

#[test]
fn re_enroll_orphans_exactly_the_machines_that_crossed_the_boundary() {
    let plan = load("re-enroll");
    let r = run(&plan);
    assert_passed(&r);
    let crossed: Vec<&str> = plan
        .groups
        .iter()
        .filter(|g| g.platform.is_windows() && g.version < g.identity_boundary)
        .map(|g| g.name.as_str())
        .collect();
    assert_eq!(crossed, ["win-0.6.27", "win-0.6.35"]);
    let expected: usize = plan
        .groups
        .iter()
        .filter(|g| crossed.contains(&g.name.as_str()))
        .map(|g| g.count)
        .sum();
    assert_eq!(r.rows.orphans.len(), expected);
    // One orphan per crossing machine, none for anyone else, and each still
    // shows the version it had and names the id it came back under.
    let mut hosts: Vec<&str> = r.rows.orphans.iter().map(|o| o.hostname.as_str()).collect();
    hosts.sort();
    hosts.dedup();
    assert_eq!(hosts.len(), expected, "a machine left two orphans");
    for o in &r.rows.orphans {
        assert!(
            crossed.iter().any(|g| o.hostname.starts_with(g)),
            "{} should have updated in place",
            o.hostname
        );
        assert!(o.device_id.starts_with("win-"), "{}", o.device_id);
        assert_eq!(o.device_id.trim_start_matches("win-"), o.now_as);
        let old = if o.hostname.starts_with("win-0.6.27") {
            "0.6.27"
        } else {
            "0.6.35"
        };
        assert_eq!(o.version.map(|v| v.to_string()).as_deref(), Some(old));
    }
    assert!(r.rows.agree, "{:?}", r.rows);
    let md = rmmsim::metrics::markdown(&r);
    assert!(md.contains("## Orphaned rows") && md.contains(&r.rows.orphans[0].device_id));
}

#[test]
fn beta_first_soaks_passes_the_gate_and_rolls_through_a_mixed_fleet() {
    let mut plan = load("beta-first");
    cap(&mut plan, 30);
    let r = run(&plan);
    assert_passed(&r);
    let build = r.builds.iter().find(|b| b.version == Version::new(0, 7, 1)).unwrap();
    assert!(build.promoted_s.is_some(), "the gate passed: {:?}", r.timeline);
    // The restart dropped every session, and every agent came back.
    assert!(
        r.agents.connections_lost >= r.scenario.fleet as u64 / 2,
        "{:?}",
        r.agents
    );
    assert!(
        r.timeline
            .iter()
            .any(|t| t.action.starts_with("disconnect") && t.outcome == "30 machines offline")
    );
}

#[test]
fn bad_build_rollback_blocks_the_build_and_moves_everyone_back() {
    let plan = load("bad-build-rollback");
    let r = run(&plan);
    assert_passed(&r);
    let bad = Version::new(0, 8, 1);
    let build = r.builds.iter().find(|b| b.version == bad).unwrap();
    assert!(build.rolled_back_s.is_some());
    assert_eq!(r.final_versions.get(&bad), None, "nobody runs the rolled-back build");
    assert!(r.server.failures > 0);
}

#[test]
fn download_storm_saturates_the_egress_for_n_s_over_e() {
    // The whole fleet: its expectation is the floor for 1,000 machines.
    let plan = load("download-storm");
    let n = plan.fleet_size() as f64;
    let r = run_on(&plan, rmmsim::sim::TransportKind::Direct);
    assert_passed(&r);
    let build = r.builds.iter().find(|b| b.version == Version::new(2, 4, 1)).unwrap();
    let size = plan.builds.iter().find(|b| b.version == build.version).unwrap().size as f64;
    let egress = plan.egress.unwrap();
    let floor = n * size / egress;
    let t100 = build.convergence[0].figures.t100_s.unwrap();
    assert!(t100 >= floor, "t100 {t100} s below N·S/E = {floor} s");
    // The link ran full for the whole N·S/E, to the millisecond.
    assert!((r.downloads.saturated_s - floor).abs() < 0.01, "{:?}", r.downloads);
    assert_eq!(r.downloads.bytes_served as f64, n * size);
}

/// The crash the two crashy-build files give 0.6.59, on a version of a report.
fn crash_on(r: &rmmsim::metrics::Report, version: Version) -> rmmsim::metrics::SignatureOnVersion {
    let logs = r.logs.as_ref().expect("a log section");
    let v = logs.versions.iter().find(|v| v.version == version).unwrap();
    v.signatures
        .iter()
        .find(|s| s.sample.starts_with("service crashed"))
        .cloned()
        .unwrap_or_else(|| panic!("no crash on {version}: {v:#?}"))
}

#[test]
fn crashy_build_and_its_field_gate_twin_differ_only_in_the_gate() {
    let (mut open, mut gated) = (load("crashy-build"), load("crashy-build-field-gate"));
    assert_eq!(
        (open.gate.max_new_error_rate, gated.gate.max_new_error_rate),
        (None, Some(0.2))
    );
    for p in [&mut open, &mut gated] {
        p.name.clear();
        p.description.clear();
        p.gate.max_new_error_rate = None;
        p.expects.clear();
        // The keys as written, which name the file and hold the gate too.
        p.inputs = serde_json::Value::Null;
    }
    assert_eq!(format!("{open:?}"), format!("{gated:?}"));
}

/// Runs a crashy-build file whole, its expectations asserted: the plan, the
/// report, the promote's outcome and 0.6.59's crash.
fn crashy(
    name: &str,
) -> (
    rmmsim::scenario::Plan,
    rmmsim::metrics::Report,
    String,
    rmmsim::metrics::SignatureOnVersion,
) {
    let plan = load(name);
    let r = run(&plan);
    assert_passed(&r);
    let promote = r.timeline.iter().find(|e| e.action.starts_with("promote")).unwrap();
    let outcome = promote.outcome.clone();
    let crash = crash_on(&r, Version::new(0, 6, 59));
    assert!(crash.new && crash.level == "error", "{crash:?}");
    (plan, r, outcome, crash)
}

#[test]
fn crashy_build_passes_the_install_only_gate_and_crashes_on_the_whole_fleet() {
    let (plan, r, promote, crash) = crashy("crashy-build");
    assert!(
        promote.starts_with("gate passed: 20 successes, 0 failures"),
        "{promote}"
    );
    // Every machine ran it, and every one crashed.
    assert_eq!(crash.machines as usize, plan.fleet_size());
    assert!(crash.per_machine_hour.unwrap() > 1.5, "{crash:?}");
    let md = rmmsim::metrics::markdown(&r);
    assert!(
        md.contains("## Log signatures") && md.contains("new error signatures: 1 on 0.6.59"),
        "{md}"
    );
}

#[test]
fn crashy_build_field_gate_refuses_the_promote_and_stable_stays_on_the_good_build() {
    let (plan, r, promote, crash) = crashy("crashy-build-field-gate");
    // The refusal names the new signature.
    assert!(
        promote.starts_with("refused") && promote.contains("service crashed: exit code"),
        "{promote}"
    );
    assert!(r.builds[1].promoted_s.is_none());
    // Only the 20 beta machines ever ran it, and only they crashed.
    assert_eq!(crash.machines, 20);
    assert!(crash.per_machine_hour.unwrap() > plan.gate.max_new_error_rate.unwrap());
    assert_eq!(r.final_versions.get(&Version::new(0, 6, 58)), Some(&200));
}
