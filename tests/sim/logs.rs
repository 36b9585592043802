//! U13 on the simulator's side: machines log what their build and the
//! baseline say, at their rates, only while they have a session, from a
//! random stream of their own; the report and the log expectations read the
//! server's signature tables.

use std::time::Duration;

use rmmsim::metrics::Report;
use rmmsim::scenario::builder::{Log, LogLevel};

use crate::common::*;

/// Every placeholder at once: each line differs, all normalise to one signature.
const CRASH: &str = "service crashed: exit code {n} at {hex} in {uuid}";

/// 20 always-on beta machines on [`OLD`], logging an info line twice an hour
/// whatever they run, for 13 hours; [`NEW`] lands at 1h and logs `CRASH`
/// `crash_per_hour` times an hour on top.
fn crashy(name: &str, crash_per_hour: Option<f64>) -> PlanBuilder {
    let mut new = Build::new(NEW).published(hours(1));
    if let Some(rate) = crash_per_hour {
        new = new.log(Log::new(LogLevel::Error, CRASH, rate));
    }
    PlanBuilder::new(name, date("2026-06-01T00:00:00Z"), hours(13))
        .seed(5)
        .agent(|a| {
            instant(a)
                .heartbeat(mins(5))
                .log(Log::new(LogLevel::Info, "heartbeat took {n} ms", 2.0))
        })
        .client(Client::new("acme").site(Site::new("lab").channel(Channel::Beta)))
        .build(Build::new(OLD).channel(Channel::Stable).published(Duration::ZERO))
        .build(new)
        .fleet(Fleet::new(20, "acme/lab", OLD))
}

/// The report's lines of a signature on a version, by level.
fn lines(r: &Report, version: Version, level: &str) -> u64 {
    let logs = r.logs.as_ref().expect("a log section");
    logs.versions
        .iter()
        .filter(|v| v.version == version)
        .flat_map(|v| &v.signatures)
        .filter(|s| s.level == level)
        .map(|s| s.lines)
        .sum()
}

#[test]
fn u13_every_machine_running_a_build_logs_its_lines_at_their_rate_as_one_signature() {
    let builder = crashy("crashy", Some(3.0))
        .expect(
            Expect::new("log_rate")
                .version(NEW)
                .level(LogLevel::Error)
                .new_in(NEW)
                .min(2.6)
                .max(3.4),
        )
        .expect(
            Expect::new("log_rate")
                .version(NEW)
                .level(LogLevel::Info)
                .min(1.7)
                .max(2.3),
        )
        .expect(Expect::new("log_rate").version(OLD).level(LogLevel::Error).max(0.0))
        .expect(Expect::new("log_signatures").version(NEW).new_in(NEW).min(1.0).max(1.0))
        .expect(Expect::new("log_signatures").min(2.0).max(2.0));
    let r = run(&checked(&builder));
    assert_passed(&r);
    let logs = r.logs.as_ref().unwrap();
    let new = logs.versions.iter().find(|v| v.version == NEW).unwrap();
    // The crash comes first (new), then the baseline line, first seen on OLD.
    let (crash, tick) = (&new.signatures[0], &new.signatures[1]);
    assert_eq!(new.signatures.len(), 2, "{:#?}", new.signatures);
    assert!(
        crash.new && crash.level == "error" && crash.first_version == NEW,
        "{crash:?}"
    );
    assert!(
        !tick.new && tick.level == "info" && tick.first_version == OLD,
        "{tick:?}"
    );
    // Every machine logged it, each line different, all one signature.
    assert_eq!(crash.machines, 20);
    assert!(crash.lines > 500, "{crash:?}");
    assert!(crash.sample.starts_with("service crashed: exit code "), "{crash:?}");
    assert!(!crash.signature.contains(|c: char| c.is_ascii_digit()), "{crash:?}");
    // The server counted every line the agents sent, and nothing else.
    assert_eq!(logs.lines, r.server.logs);
    let sum: u64 = logs.versions.iter().flat_map(|v| &v.signatures).map(|s| s.lines).sum();
    assert_eq!(sum, logs.lines);
    let md = rmmsim::metrics::markdown(&r);
    assert!(
        md.contains("## Log signatures") && md.contains(&crash.signature),
        "{md}"
    );
}

#[test]
fn logging_changes_no_other_random_choice_of_a_machine() {
    // beta-first draws everything at random: jitter, power patterns,
    // install failures, an outage and a restart.
    let mut quiet = load("beta-first");
    cap(&mut quiet, 8);
    quiet.gate.min_successes = 3;
    let mut noisy = quiet.clone();
    let line = |level, text: &str, per_hour| rmmsim::agent::LogLine {
        level,
        message: rmmsim::agent::LogTemplate::parse(text).unwrap(),
        per_hour,
    };
    noisy.logs = vec![line(LogLevel::Warn, "disk {n} MB free", 4.0)];
    noisy.builds[1].logs = vec![line(LogLevel::Error, "crash {n}", 6.0)];
    let (a, b) = (run(&quiet), run(&noisy));
    assert!(a.logs.is_none() && b.logs.is_some());
    assert!(b.server.logs > 1000, "{:?}", b.server);
    let strip = |r: &Report| {
        let mut v = serde_json::to_value(r).unwrap();
        let o = v.as_object_mut().unwrap();
        o.remove("wall");
        o.remove("logs");
        o["server"].as_object_mut().unwrap().remove("logs");
        v
    };
    assert_eq!(strip(&a), strip(&b));
}

#[test]
fn u13_a_machine_without_a_session_drops_its_lines() {
    let always = checked(&crashy("always", Some(6.0)));
    // Every machine offline for 6 of the 12 hours on NEW.
    let away = checked(&crashy("away", Some(6.0)).event(hours(4), Event::disconnect(1.0, hours(6))));
    let (a, b) = (run(&always), run(&away));
    let (full, half) = (lines(&a, NEW, "error"), lines(&b, NEW, "error"));
    // About 6/12 of the lines: none were logged offline, none were sent later.
    let share = half as f64 / full as f64;
    assert!((0.4..0.6).contains(&share), "{half} of {full} lines");
    // The rate per connected machine-hour stays the build's.
    for r in [&a, &b] {
        let v = r
            .logs
            .as_ref()
            .unwrap()
            .versions
            .iter()
            .find(|v| v.version == NEW)
            .unwrap();
        let rate = v.signatures[0].per_machine_hour.unwrap();
        assert!(
            (5.4..6.6).contains(&rate),
            "{}: {rate} per machine-hour",
            r.scenario.name
        );
    }
}

#[test]
fn the_log_section_shows_only_when_the_scenario_logs_or_the_server_heard_any() {
    // `crashy` gives every machine a baseline line, and no build lines.
    let baseline = run(&checked(&crashy("baseline", None)));
    let mut none = checked(&crashy("none", None));
    none.logs.clear();
    let none = run(&none);
    assert!(none.logs.is_none());
    let json = serde_json::to_value(&none).unwrap();
    assert!(json.get("logs").is_none(), "no `logs` key in report.json");
    assert!(!rmmsim::metrics::markdown(&none).contains("Log signatures"));
    assert!(!rmmsim::metrics::html(&none).contains("Log signatures"));
    // With logs, both forms show it.
    assert!(baseline.logs.is_some());
    assert!(rmmsim::metrics::html(&baseline).contains("<h2>Log signatures</h2>"));
    // Logs declared but too rare to happen: the section says so.
    let mut rare = checked(&crashy("rare", None));
    rare.logs[0].per_hour = 1e-9;
    let rare = run(&rare);
    assert_eq!(rare.server.logs, 0);
    assert!(rmmsim::metrics::markdown(&rare).contains("The server received no log line from an agent."));
    // An expectation on a version with no lines: a rate of 0 over its hours.
    let logs = rare.logs.unwrap();
    assert!(
        logs.versions.iter().all(|v| v.machine_hours > 0.0 && v.lines == 0),
        "{logs:?}"
    );
}

#[test]
fn log_lines_reach_the_server_alike_on_every_transport() {
    // Restarts, outages and a crashy build: the same lines at the same
    // moments, so the same signatures, counts and machine-hours. (Without
    // jitter the machines back from the outage heartbeat in step; the
    // restart falls between their heartbeats, not on one.)
    let plan = checked(
        &crashy("transports", Some(2.0))
            .event(hours(3), Event::disconnect(0.5, hours(2)))
            .event(hours(6) + secs(150), Event::server_restart(mins(10))),
    );
    let mem = run_on(&plan, rmmsim::sim::TransportKind::WsMem);
    assert!(mem.server.logs > 200, "{:?}", mem.server);
    for other in [rmmsim::sim::TransportKind::WsTcp, rmmsim::sim::TransportKind::Direct] {
        let r = run_on(&plan, other);
        assert_eq!(
            serde_json::to_value(&mem.logs).unwrap(),
            serde_json::to_value(&r.logs).unwrap(),
            "{other}"
        );
        assert_eq!(mem.server, r.server, "{other}");
    }
}
