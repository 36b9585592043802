//! `rmmsim check` as CI runs it: baselines written and held, a slower
//! rollout failing with the figure and the tolerance named, JUnit and the
//! summary, bad files refused; and `rmmsim compare`.

use std::path::Path;
use std::time::Duration;

use crate::common::*;

/// `name`: 30 stable machines and 5 beta ones heartbeating every
/// `heartbeat`; 1.0.1 lands at 10m and is promoted at 1h; every machine
/// must end on it.
fn scenario(name: &str, heartbeat: Duration) -> PlanBuilder {
    one_update(name, 11, "2026-01-05T00:00:00Z", hours(2), mins(10))
        .health_gate(0, 1.0)
        .agent(|a| a.heartbeat(heartbeat))
        .client(Client::new("c").site("s").site(Site::new("lab").channel(Channel::Beta)))
        .fleet(Fleet::new(30, "c/s", OLD))
        .fleet(Fleet::new(5, "c/lab", OLD))
        .event(hours(1), Event::promote(NEW))
        .expect(Expect::new("fraction_on").version(NEW).min(1.0))
}

/// Writes `dir/<name>.toml`.
fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(format!("{name}.toml")), text).unwrap();
}

/// Writes the scenario `name` with this heartbeat.
fn write_scenario(dir: &Path, name: &str, heartbeat: Duration) {
    write(dir, name, &scenario(name, heartbeat).to_toml());
}

fn check(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let common = [
        "check",
        "scenarios",
        "--baselines",
        "baselines",
        "--out",
        "out",
        "--jobs",
        "2",
    ];
    let out = rmmsim(dir, &[&common[..], args].concat());
    (out.status.code(), text(&out))
}

/// (tests, failures) of a JUnit file, and the failure messages.
fn junit(path: &Path) -> (usize, usize, Vec<String>) {
    use quick_xml::events::Event;
    let xml = std::fs::read_to_string(path).unwrap();
    let mut reader = quick_xml::Reader::from_str(&xml);
    let (mut cases, mut failures, mut messages) = (0, 0, Vec::new());
    loop {
        match reader.read_event().unwrap() {
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == b"testcase" => cases += 1,
            Event::Start(e) if e.name().as_ref() == b"failure" => {
                failures += 1;
                let message = e.try_get_attribute("message").unwrap().unwrap();
                messages.push(
                    message
                        .normalized_value(quick_xml::XmlVersion::Explicit1_0)
                        .unwrap()
                        .into_owned(),
                );
            }
            Event::Eof => break,
            _ => {}
        }
    }
    (cases, failures, messages)
}

#[test]
fn baselines_are_written_held_and_a_slower_rollout_fails_naming_the_figure() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("scenarios")).unwrap();
    write_scenario(&d.join("scenarios"), "quick", secs(60));
    write_scenario(&d.join("scenarios"), "steady", secs(60));

    // No baselines yet: the gate cannot be checked, and says how to fix it.
    let (code, text) = check(d, &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("gate baseline: observed none")
            && text
                .contains("run rmmsim check scenarios --only quick --baselines baselines --out out --update-baselines"),
        "{text}"
    );

    let (code, text) = check(d, &["--update-baselines"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("baselines/quick.json: new baseline"), "{text}");
    assert!(
        text.contains("quick: passed (1 expectation, baseline written)"),
        "{text}"
    );
    let baseline: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("baselines/quick.json")).unwrap()).unwrap();
    assert_eq!(baseline["seed"], 11);
    assert_eq!(baseline["rmmsim_version"], env!("CARGO_PKG_VERSION"));

    let (code, text) = check(d, &["--junit", "out/junit.xml", "--summary", "out/summary.md"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(junit(&d.join("out/junit.xml")), (2, 0, vec![]));
    let summary = std::fs::read_to_string(d.join("out/summary.md")).unwrap();
    assert!(summary.contains("## rmmsim check: all passed"), "{summary}");
    assert!(
        summary.contains("| ✅ | quick | 1.0.1 stable (from promote) |"),
        "{summary}"
    );
    assert!(summary.contains("[chart](./quick/convergence.svg)"), "{summary}");
    for f in ["report.json", "report.md", "report.html", "convergence.svg"] {
        assert!(d.join("out/quick").join(f).is_file(), "{f}");
    }

    // Twice the heartbeat: everything converges about twice as slowly.
    write_scenario(&d.join("scenarios"), "quick", secs(120));
    let (code, text) = check(d, &["--junit", "out/junit.xml", "--summary", "out/summary.md"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("quick: FAILED") && text.contains("steady: passed"),
        "{text}"
    );
    let line = text
        .lines()
        .find(|l| l.contains("gate t50 1.0.1 (stable, from promote)"))
        .expect(&text);
    assert!(line.contains("10% tolerance") && line.contains("slower"), "{line}");
    assert!(
        text.contains(
            "reproduce: rmmsim check scenarios --only quick --baselines baselines --out out   \
             (the run alone: rmmsim run scenarios/quick.toml --seed 11 --out out)"
        ),
        "{text}"
    );
    let (cases, failures, messages) = junit(&d.join("out/junit.xml"));
    assert_eq!(cases, 2);
    assert!(failures >= 3, "{messages:?}");
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("t90 1.0.1 (stable, from promote): observed")),
        "{messages:?}"
    );
    let summary = std::fs::read_to_string(d.join("out/summary.md")).unwrap();
    assert!(
        summary.contains("| ❌ | quick |") && summary.contains("↑ +"),
        "{summary}"
    );

    // A scenario may allow itself more.
    let lenient = scenario("quick", secs(120)).gate_tolerance(1.5);
    write(&d.join("scenarios"), "quick", &lenient.to_toml());
    let (code, text) = check(d, &["--only", "quick"]);
    assert_eq!(code, Some(0), "{text}");

    // Accepting the slower figures says what changed.
    let (code, text) = check(d, &["--update-baselines", "--only", "quick"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("t50 1.0.1 (stable, from promote): "), "{text}");
}

#[test]
fn a_bad_scenario_stops_the_check_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("scenarios")).unwrap();
    write_scenario(&d.join("scenarios"), "good", secs(60));
    // A file-format error: a heartbeat that is not a duration.
    let good = scenario("bad", secs(60)).to_toml();
    assert!(good.contains("\nheartbeat = \"1m\"\n"), "{good}");
    let bad = good.replace("\nheartbeat = \"1m\"\n", "\nheartbeat = \"sixty\"\n");
    write(&d.join("scenarios"), "bad", &bad);
    let line = bad.lines().position(|l| l.starts_with("heartbeat = ")).unwrap() + 1;
    let (code, text) = check(d, &[]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains(&format!(
            "bad.toml:{line}:13: `agent.heartbeat`: invalid duration `sixty`"
        )),
        "{text}"
    );
    assert!(!d.join("out").exists(), "nothing ran");
}

#[test]
fn compare_puts_two_runs_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_scenario(d, "fast", secs(60));
    write_scenario(d, "slow", secs(120));
    assert!(
        rmmsim(d, &["run", "fast.toml", "--out", "r", "--quiet"])
            .status
            .success()
    );
    // A report folder against a scenario file run on the spot.
    let out = rmmsim(d, &["compare", "r/fast", "slow.toml", "--out", "cmp"]);
    assert!(out.status.success(), "{}", text(&out));
    let md = std::fs::read_to_string(d.join("cmp/compare.md")).unwrap();
    let row = md
        .lines()
        .find(|l| l.starts_with("| t50 1.0.1 stable (from promote) |"))
        .expect(&md);
    assert!(row.contains("| +"), "B is slower: {row}");
    assert!(md.contains("| heartbeats |"), "{md}");
    let svg = std::fs::read_to_string(d.join("cmp/compare.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("(solid) vs") && svg.contains("1.0.1"));
    let bad = rmmsim(d, &["compare", "nothing.json", "slow.toml"]);
    assert_eq!(bad.status.code(), Some(2));
}
