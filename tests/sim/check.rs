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
    let out = check_output(dir, args);
    (out.status.code(), text(&out))
}

/// `rmmsim check` of `dir/scenarios` with these arguments too.
fn check_output(dir: &Path, args: &[&str]) -> std::process::Output {
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
    rmmsim(dir, &[&common[..], args].concat())
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
    let (code, text) = check(d, &["--junit", "junit.xml"]);
    assert_eq!(code, Some(2), "{text}");
    let error = format!("bad.toml:{line}:13: `agent.heartbeat`: invalid duration `sixty`");
    assert!(text.contains(&error), "{text}");
    assert!(!d.join("out").exists(), "nothing ran");
    // CI's JUnit step still shows it: an error test case for the file.
    let xml = std::fs::read_to_string(d.join("junit.xml")).unwrap();
    assert!(
        xml.contains(r#"<testsuite name="scenarios""#) && xml.contains(r#"errors="1""#),
        "{xml}"
    );
    assert!(
        xml.contains(r#"<testcase classname="rmmsim.scenarios" name="bad""#),
        "{xml}"
    );
    assert!(
        xml.contains(r#"<error type="file" message="scenario file: observed "#)
            && xml.contains("invalid duration `sixty`"),
        "{xml}"
    );
    // And its JSON line.
    let out = check_output(d, &["--json"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).expect(&stderr);
    assert_eq!(
        (&line["scenario"], &line["seed"], &line["verdict"]),
        (&"bad".into(), &serde_json::Value::Null, &"error".into())
    );
    assert_eq!(line["failures"][0]["kind"], "file", "{line}");
    assert!(stderr.contains(&error), "{stderr}");
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
    assert!(svg.starts_with("<svg") && svg.contains("solid: A (r/fast/report.json)") && svg.contains("1.0.1"));
    let bad = rmmsim(d, &["compare", "nothing.json", "slow.toml"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// `compare` of `a.toml` and `b.toml` (with these arguments too): compare.md
/// and compare.svg.
fn compare_files(d: &Path, a: &PlanBuilder, b: &PlanBuilder, args: &[&str]) -> (String, String) {
    write(d, "a", &a.to_toml());
    write(d, "b", &b.to_toml());
    let out = rmmsim(
        d,
        &[&["compare", "a.toml", "b.toml", "--out", "cmp"][..], args].concat(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let read = |f: &str| std::fs::read_to_string(d.join("cmp").join(f)).unwrap();
    (read("compare.md"), read("compare.svg"))
}

#[test]
fn compare_lists_the_inputs_that_differ_as_key_paths() {
    let dir = tempfile::tempdir().unwrap();
    let a = scenario("a", secs(60));
    let b = scenario("a", secs(120))
        .health_gate(3, 1.0)
        .build(Build::new(Version::new(1, 0, 2)))
        .fleet(Fleet::new(2, "c/s", OLD).name("extra"));
    let (md, _) = compare_files(dir.path(), &a, &b, &[]);
    let inputs: Vec<&str> = md
        .split("## Inputs that differ\n\n")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .expect(&md)
        .lines()
        .collect();
    assert_eq!(
        inputs,
        [
            "- `agent.heartbeat` 1m → 2m",
            "- `builds[1.0.2]` added in B: {version = 1.0.2}",
            "- `fleet[extra]` added in B: {count = 2, name = extra, site = c/s, version = 1.0.0}",
            "- `server.health_gate.min_successes` 0 → 3",
        ],
        "{md}"
    );
    // The same scenario twice: nothing differs.
    let (md, _) = compare_files(dir.path(), &a, &a, &[]);
    assert!(
        md.contains("None: both runs had the same scenario and transport."),
        "{md}"
    );
}

#[test]
fn compare_hides_figures_equal_on_both_sides_unless_all() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (scenario("a", secs(60)), scenario("a", secs(120)));
    let (md, _) = compare_files(dir.path(), &a, &b, &[]);
    assert!(!md.contains("| orphan rows |") && !md.contains(" | = |"), "{md}");
    let hidden = md
        .lines()
        .find(|l| l.ends_with("equal on both sides not shown (`--all` shows them)."))
        .expect(&md);
    assert!(md.contains("| heartbeats |"), "rows that differ stay: {md}");
    let (all, _) = compare_files(dir.path(), &a, &b, &["--all"]);
    assert!(all.contains("| orphan rows | 0 | 0 | = |"), "{all}");
    let equal = all.lines().filter(|l| l.ends_with(" | = |")).count();
    assert_eq!(
        hidden,
        format!("{equal} rows equal on both sides not shown (`--all` shows them).")
    );
    assert!(!all.contains("not shown"), "{all}");
}

#[test]
fn compare_chart_names_each_runs_line_style_and_marks_both_runs_events() {
    let dir = tempfile::tempdir().unwrap();
    let a = scenario("a", secs(60));
    // B promotes half an hour later than A.
    let b = one_update("a", 11, "2026-01-05T00:00:00Z", hours(2), mins(10))
        .health_gate(0, 1.0)
        .client(Client::new("c").site("s").site(Site::new("lab").channel(Channel::Beta)))
        .fleet(Fleet::new(30, "c/s", OLD))
        .fleet(Fleet::new(5, "c/lab", OLD))
        .event(mins(90), Event::promote(NEW));
    let (md, svg) = compare_files(dir.path(), &a, &b, &[]);
    assert!(md.contains("- `events[promote 1.0.1].at` 1h → 1h 30m"), "{md}");
    for label in [
        "share of the fleet on each version; solid: A (a.toml), dashed: B (b.toml)",
        "A: solid",
        "B: dashed",
        "A: promote 1.0.1",
        "B: promote 1.0.1",
        "A+B: publish 1.0.1",
    ] {
        assert!(svg.contains(label), "{label} not in the chart");
    }
    assert!(!svg.contains("A+B: promote"), "the promotes differ in time");
    // The promotes' lines, in the promote colour.
    assert!(svg.contains("stroke=\"#008C00\""), "no promote marked");
}

#[test]
fn compare_of_a_report_without_inputs_says_they_are_not_compared() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_scenario(d, "fast", secs(60));
    assert!(
        rmmsim(d, &["run", "fast.toml", "--out", "r", "--quiet"])
            .status
            .success()
    );
    let path = d.join("r/fast/report.json");
    let mut report: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert!(
        report["scenario"]["inputs"]["agent"]["heartbeat"].is_string(),
        "{}",
        report["scenario"]
    );
    report["scenario"].as_object_mut().unwrap().remove("inputs");
    std::fs::write(d.join("old.json"), report.to_string()).unwrap();
    let out = rmmsim(d, &["compare", "old.json", "r/fast", "--out", "cmp"]);
    assert!(out.status.success(), "{}", text(&out));
    let md = std::fs::read_to_string(d.join("cmp/compare.md")).unwrap();
    assert!(
        md.contains("Not compared: A's report.json does not record its scenario's inputs"),
        "{md}"
    );
}

/// The JSON lines of a run: every line of stdout parses, sorted by scenario.
fn json_lines(stdout: &[u8]) -> Vec<serde_json::Value> {
    let text = String::from_utf8_lossy(stdout);
    let mut lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}\n{text}")))
        .collect();
    lines.sort_by_key(|l| l["scenario"].as_str().unwrap_or_default().to_owned());
    lines
}

/// A folder of two scenarios with baselines: `quick` passes, `hurried`
/// fails an expectation (t90 at most a second).
fn quick_and_hurried() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("scenarios")).unwrap();
    write_scenario(&d.join("scenarios"), "quick", secs(60));
    let t90 = Expect::new("t90").version(NEW).channel(Channel::Stable).max(secs(1));
    write(
        &d.join("scenarios"),
        "hurried",
        &scenario("hurried", secs(60)).expect(t90).to_toml(),
    );
    let (code, text) = check(d, &["--update-baselines"]);
    assert_eq!(code, Some(1), "{text}");
    dir
}

/// `--json`: one object per scenario and nothing else on stdout (verdict,
/// failures with observed and allowed, key figures, report paths); the
/// lines for people on stderr.
#[test]
fn check_json_is_one_line_per_scenario_and_nothing_else_on_stdout() {
    let dir = quick_and_hurried();
    let d = dir.path();
    let out = check_output(d, &["--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let lines = json_lines(&out.stdout);
    let [hurried, quick] = &lines[..] else {
        panic!("{lines:?}")
    };
    assert_eq!(
        (&quick["schema"], &quick["scenario"], &quick["verdict"], &quick["seed"]),
        (&1.into(), &"quick".into(), &"passed".into(), &11.into())
    );
    assert_eq!(quick["failures"], serde_json::json!([]));
    assert!(quick["reproduce"].is_null(), "{quick}");
    let promoted = quick["figures"]["convergence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["version"] == "1.0.1" && c["channel"] == "stable" && c["reference"] == "promote")
        .expect("1.0.1 on stable from its promote");
    assert_eq!(promoted["population"], 30);
    for t in ["t50_s", "t90_s", "t99_s", "t100_s"] {
        assert!(promoted[t].as_f64().unwrap() > 0.0, "{t}: {promoted}");
    }
    assert!(promoted["rolled_back_s"].is_null(), "{promoted}");
    assert_eq!(quick["figures"]["stranded"], 0);
    assert_eq!(quick["figures"]["orphan_rows"], 0);
    for (key, file) in [
        ("json", "report.json"),
        ("md", "report.md"),
        ("html", "report.html"),
        ("chart", "convergence.svg"),
    ] {
        assert_eq!(quick["reports"][key], format!("out/quick/{file}"));
        assert!(d.join("out/quick").join(file).is_file(), "{file}");
    }
    assert_eq!(hurried["verdict"], "failed");
    assert_eq!(hurried["failures"].as_array().unwrap().len(), 1, "{hurried}");
    let failure = &hurried["failures"][0];
    assert_eq!(
        (&failure["kind"], &failure["figure"], &failure["allowed"]),
        (&"expectation".into(), &"t90 1.0.1 (stable)".into(), &"≤ 1s".into())
    );
    assert!(!failure["observed"].as_str().unwrap().is_empty(), "{failure}");
    assert!(
        hurried["reproduce"].as_str().unwrap().contains("--only hurried"),
        "{hurried}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("quick: passed") && stderr.contains("hurried: FAILED"),
        "{stderr}"
    );
    assert!(stderr.contains("check: 1 passed, 1 failed"), "{stderr}");
}

/// For people: each verdict printed once (not again on stderr); a summary
/// given as a bare file name links relatively, never with an absolute
/// path; an `--only` naming no scenario lists those there are.
#[test]
fn each_verdict_is_printed_once_and_summary_links_are_relative() {
    let dir = quick_and_hurried();
    let d = dir.path();
    let (code, text) = check(d, &["--summary", "summary.md"]);
    assert_eq!(code, Some(1), "{text}");
    assert_eq!(text.matches("quick: passed").count(), 1, "{text}");
    assert_eq!(text.matches("hurried: FAILED").count(), 1, "{text}");
    let summary = std::fs::read_to_string(d.join("summary.md")).unwrap();
    assert!(summary.contains("[chart](out/quick/convergence.svg)"), "{summary}");
    assert!(!summary.contains(d.to_str().unwrap()), "no absolute path: {summary}");

    let (code, text) = check(d, &["--only", "quick", "--only", "quik"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("error: no scenario named quik in scenarios; it holds: hurried, quick"),
        "{text}"
    );
}

/// A scenario that rolls its build back is about that build: the summary's
/// headline is the rolled-out build from its promote, not the starting
/// build's zeros.
#[test]
fn the_headline_of_a_rollback_is_the_build_rolled_out() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("scenarios")).unwrap();
    let rollback = one_update("rollback", 5, "2026-01-05T00:00:00Z", hours(3), mins(10))
        .health_gate(0, 1.0)
        .agent(|a| a.heartbeat(mins(5)))
        .client(Client::new("c").site("s"))
        .fleet(Fleet::new(20, "c/s", OLD))
        .event(hours(1), Event::promote(NEW))
        .event(hours(1) + mins(10), Event::rollback(NEW))
        .expect(Expect::new("fraction_on").version(OLD).min(1.0));
    write(&d.join("scenarios"), "rollback", &rollback.to_toml());
    let (code, text) = check(d, &["--update-baselines", "--summary", "out/summary.md"]);
    assert_eq!(code, Some(0), "{text}");
    let summary = std::fs::read_to_string(d.join("out/summary.md")).unwrap();
    let row = summary
        .lines()
        .find(|l| l.starts_with("| ✅ | rollback |"))
        .expect(&summary);
    assert!(
        row.contains("| 1.0.1 stable (from promote; rolled back 10m later, ") && row.contains(" of 20 reached it) |"),
        "{row}"
    );
    assert!(!row.contains("1.0.0"), "{row}");
    // The JSON line says when each build was rolled back.
    let out = rmmsim(d, &["run", "scenarios/rollback.toml", "--out", "out", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).expect(&stderr);
    let rolled_back: Vec<_> = line["figures"]["convergence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["version"].as_str().unwrap(), c["rolled_back_s"].as_f64()))
        .collect();
    assert!(
        rolled_back.contains(&("1.0.1", Some(4200.0))) && rolled_back.contains(&("1.0.0", None)),
        "{line}"
    );
}
