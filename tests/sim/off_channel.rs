//! A group set to beta and back to inherit 30 s later, with a 5-minute
//! download: every machine was offered the beta build while on beta, was
//! moved back to stable while downloading, and installed it anyway. The
//! server ends the pending update as superseded, but the install happened:
//! it counts on the build's rollout row, and the report lists the machines
//! as off their channel.

use rmmsim::metrics::{OffReason, Outcome, Report, build_report};
use rmmsim::scenario::Plan;
use rmmsim::sim::{self, SimOptions, TransportKind};

use crate::common::*;

fn scenario() -> PlanBuilder {
    one_update("off-channel", 11, "2026-06-01T00:00:00Z", hours(2), mins(10))
        .agent(|a| a.heartbeat(secs(20)).download(mins(5)))
        .client(Client::new("acme").site("hq"))
        .fleet(Fleet::new(18, "acme/hq", OLD).name("flip"))
        .event(mins(30), Event::set_channel(Some(Channel::Beta)).group("flip"))
        .event(mins(30) + secs(30), Event::set_channel(None).group("flip"))
}

fn outcome(scenario: &PlanBuilder) -> (Plan, Outcome) {
    let plan = checked(scenario);
    let options = SimOptions {
        transport: TransportKind::WsMem,
        progress: None,
    };
    let o = sim::run(&plan, &options).unwrap_or_else(|e| panic!("{e:#}"));
    (plan, o)
}

#[test]
fn installs_of_a_superseded_update_count_on_the_builds_rollout_row() {
    let (plan, o) = outcome(&scenario());
    let beta = Version::new(1, 0, 1);
    let on_beta = o
        .recorder
        .machines
        .iter()
        .filter(|m| m.version_at(plan.duration) == beta)
        .count();
    assert_eq!(on_beta, 18, "every machine installed the beta build");
    let row = o
        .rollouts
        .iter()
        .find(|r| r.version == beta && r.platform.to_string() == "windows-amd64")
        .expect("a rollout row for the beta build");
    assert_eq!((row.successes, row.failures), (18, 0), "{row:?}");
    // The pending updates still ended as superseded, not as succeeded.
    assert_eq!(o.counters.successes, 0);
}

/// The scenario with more at the end (events, expectations).
fn with(scenario: PlanBuilder) -> (Plan, Outcome, Report) {
    let (plan, o) = outcome(&scenario);
    let r = build_report(&plan, &o);
    (plan, o, r)
}

/// When a machine started running `version` for the last time.
fn installed(o: &Outcome, hostname: &str, version: Version) -> f64 {
    let m = o.recorder.machines.iter().find(|m| m.hostname == hostname).unwrap();
    let (t, _) = m.versions.iter().rev().find(|(_, v)| *v == version).unwrap();
    t.as_secs_f64()
}

#[test]
fn machines_left_on_a_beta_build_are_listed_off_channel_since_they_installed_it() {
    let (_, o, r) = with(scenario());
    assert_eq!(r.off_channel.len(), 18, "{:#?}", r.off_channel);
    for m in &r.off_channel {
        assert_eq!(
            (m.build, m.channel, m.reason),
            (Version::new(1, 0, 1), Channel::Stable, OffReason::BetaBuild)
        );
        assert_eq!(m.since_s, installed(&o, &m.hostname, m.build), "{}", m.hostname);
        // Offered while on beta (30m to 30m 30s), installed after the 5-minute download.
        assert!(m.since_s > 35.0 * 60.0, "{}", m.since_s);
    }
    let json = serde_json::to_value(&r).unwrap();
    let first = &json["off_channel"][0];
    for key in [
        "hostname", "machine", "group", "platform", "build", "channel", "reason", "since_s",
    ] {
        assert!(!first[key].is_null(), "off_channel[0].{key} in {first}");
    }
    assert_eq!(first["reason"], "beta_build");
    // Said in every form of the report, and the note on the never-promoted
    // build says what happened rather than "never offered to stable".
    let md = rmmsim::metrics::markdown(&r);
    let html = rmmsim::metrics::html(&r);
    for page in [&md, &html] {
        assert!(page.contains("Off channel at the end"), "{page}");
        assert!(
            page.contains("Off channel at the end: 18 machines (18 beta_build)"),
            "{page}"
        );
        assert!(
            page.contains("Yet 18 machines on stable at the end run 1.0.1"),
            "{page}"
        );
        assert!(!page.contains("never offered to stable machines"));
    }
    assert!(md.contains(&format!(
        "| {} | flip | 1.0.1 | stable | beta_build |",
        r.off_channel[0].hostname
    )));
}

#[test]
fn off_channel_expectations_count_the_listed_machines() {
    let off = || Expect::new("off_channel");
    let (_, _, r) = with(
        scenario()
            .expect(off().max(0.0))
            .expect(off().version(NEW).channel(Channel::Stable).min(18.0).max(18.0))
            .expect(off().channel(Channel::Beta).max(0.0)),
    );
    let seen: Vec<(Option<f64>, bool)> = r.expectations.iter().map(|e| (e.observed, e.passed)).collect();
    assert_eq!(seen, [(Some(18.0), false), (Some(18.0), true), (Some(0.0), true)]);
    assert_eq!(r.expectations[1].label, "off_channel 1.0.1 (stable)");
    assert!(!r.passed);
}

#[test]
fn machines_back_on_their_channel_at_the_end_are_not_listed() {
    // Promoting the build puts the machines back on their channel.
    let (_, o, r) = with(scenario().event(hours(1) + mins(30), Event::promote(NEW)));
    assert!(
        r.timeline
            .iter()
            .any(|t| t.action.starts_with("promote") && t.outcome.starts_with("gate passed"))
    );
    let on_beta_build = o
        .recorder
        .machines
        .iter()
        .filter(|m| m.versions.last().unwrap().1 == Version::new(1, 0, 1))
        .count();
    assert_eq!(on_beta_build, 18);
    assert!(r.off_channel.is_empty(), "{:#?}", r.off_channel);
    assert!(r.never_promoted_lines().is_empty());
}

#[test]
fn a_rollback_keeps_them_off_channel_since_they_installed_the_build() {
    // Rolled back a minute before the end: the downgrades are still downloading.
    let (_, o, r) = with(scenario().event(hours(1) + mins(59), Event::rollback(NEW)));
    assert_eq!(r.off_channel.len(), 18, "{:#?}", r.off_channel);
    for m in &r.off_channel {
        assert_eq!(m.reason, OffReason::BlockedBuild);
        // One stretch: a beta build on stable, then a blocked one.
        assert_eq!(m.since_s, installed(&o, &m.hostname, m.build));
    }
}

#[test]
fn an_off_channel_expectation_takes_a_build_and_a_channel_and_nothing_else() {
    let off = || Expect::new("off_channel");
    let expect = |e: Expect| scenario().expect(e.max(0.0)).check();
    let refused = |e: Expect| expect(e).expect_err("refused").to_string();
    assert!(refused(off().at(hours(1))).contains("`off_channel` does not use `at`"));
    assert!(refused(off().reason("offline")).contains("`off_channel` does not use `reason`"));
    let e = refused(off().version(Version::new(9, 9, 9)));
    assert!(e.contains("expect[0].version") && e.contains("no build 9.9.9"), "{e}");
    for keys in [
        off(),
        off().version(NEW),
        off().channel(Channel::Beta),
        off().version(OLD).channel(Channel::Stable),
    ] {
        let shown = format!("{keys:?}");
        expect(keys).unwrap_or_else(|e| panic!("{shown}: {e}"));
    }
}
