//! Refusals before anything runs: `rmmsim validate` (exit 0 when every file
//! is valid, 2 otherwise, every error of each file named), `rmmsim run` of
//! a folder, two scenarios with one name in one `run` or `check`, and a
//! version missing its patch number.

use std::path::Path;

use crate::common::*;

/// `name`: four machines, 1.0.1 promoted at 10m, one expectation.
fn scenario(name: &str) -> PlanBuilder {
    one_update(name, 3, "2026-01-05T00:00:00Z", mins(30), mins(5))
        .client(Client::new("c").site("s"))
        .fleet(Fleet::new(4, "c/s", OLD))
        .event(mins(10), Event::promote(NEW))
        .expect(Expect::new("fraction_on").version(NEW).min(0.0))
}

/// Writes `dir/file` with `text`.
fn write(dir: &Path, file: &str, text: &str) {
    std::fs::write(dir.join(file), text).unwrap();
}

/// A folder holding `scenarios/` with these files.
fn with_scenarios(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("scenarios")).unwrap();
    for (file, text) in files {
        write(&dir.path().join("scenarios"), file, text);
    }
    dir
}

/// `scenario(name)` with three mistakes; the lines they are at.
fn with_three_mistakes(name: &str) -> (String, [usize; 3]) {
    let good = scenario(name).to_toml();
    let bad = good
        .replacen("\ncount = 4\n", "\ncount = \"4\"\n", 1)
        .replacen("\nsite = \"c/s\"\n", "\nsite = \"c/t\"\n", 1)
        .replacen("\nmetric = \"fraction_on\"\n", "\nmetric = \"fraction\"\n", 1);
    let line = |start: &str| bad.lines().position(|l| l.starts_with(start)).unwrap() + 1;
    let lines = [line("count = "), line("site = "), line("metric = ")];
    (bad, lines)
}

#[test]
fn validate_exits_0_when_all_are_valid_and_2_naming_every_error_otherwise() {
    let dir = with_scenarios(&[("good.toml", &scenario("good").to_toml())]);
    let d = dir.path();
    let out = rmmsim(d, &["validate", "scenarios/good.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "scenarios/good.toml: ok (`good`, 4 machines, 2 builds, 1 event, 1 expectation)\n"
    );

    let (bad, [count, site, metric]) = with_three_mistakes("bad");
    write(&d.join("scenarios"), "bad.toml", &bad);
    // A folder stands for its *.toml files.
    let out = rmmsim(d, &["validate", "scenarios"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let errors = String::from_utf8_lossy(&out.stderr);
    let wanted = [
        format!("error: scenarios/bad.toml:{count}:9: `fleet[0].count`: expected a whole number, found a string"),
        format!("error: scenarios/bad.toml:{site}:8: `fleet[0].site`: no site `c/t` (defined: c/s)"),
        format!("error: scenarios/bad.toml:{metric}:10: `expect[0].metric`: unknown metric `fraction`"),
    ];
    let lines: Vec<&str> = errors.lines().collect();
    assert_eq!(lines.len(), 3, "{errors}");
    for (line, wanted) in lines.iter().zip(&wanted) {
        assert!(line.starts_with(wanted.as_str()), "{line}\nwanted {wanted}");
    }
    assert!(String::from_utf8_lossy(&out.stdout).contains("scenarios/good.toml: ok ("));

    for (args, says) in [
        (&["validate", "missing.toml"][..], "error: missing.toml: cannot read"),
        (&["validate"][..], "Usage"),
    ] {
        let out = rmmsim(d, args);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(text(&out).contains(says), "{}", text(&out));
    }
}

#[test]
fn run_of_a_folder_suggests_check() {
    let dir = with_scenarios(&[("good.toml", &scenario("good").to_toml())]);
    let d = dir.path();
    let out = rmmsim(d, &["run", "scenarios", "--out", "r"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(
            "error: scenarios is a folder, not a scenario file: to run every scenario in it, use `rmmsim check scenarios`"
        ),
        "{}",
        text(&out)
    );
    assert!(!d.join("r").exists(), "nothing ran");
}

#[test]
fn two_scenarios_with_one_name_are_refused_before_anything_runs() {
    let same = scenario("same").to_toml();
    let dir = with_scenarios(&[("a.toml", &same), ("b.toml", &same)]);
    let d = dir.path();
    let said = "scenarios/b.toml: scenario name `same` is also the name of scenarios/a.toml: \
                their reports would overwrite each other (rename one)";
    let out = rmmsim(
        d,
        &["run", "scenarios/a.toml", "scenarios/b.toml", "--out", "r", "--quiet"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains(&format!("error: {said}")), "{}", text(&out));
    assert!(!d.join("r").exists(), "nothing ran");

    let check = ["check", "scenarios", "--baselines", "b", "--out", "r"];
    let out = rmmsim(d, &check);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains(&format!("error: {said}")), "{}", text(&out));
    assert!(!d.join("r").exists() && !d.join("b").exists(), "nothing ran");

    let out = rmmsim(d, &["validate", "scenarios"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains(&format!("error: {said}")), "{}", text(&out));
}

#[test]
fn a_version_without_its_patch_number_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "publish",
        "--downloads",
        "dl",
        "--version",
        "1.0",
        "--platform",
        "windows-amd64",
    ];
    let out = rmmsim(dir.path(), &args);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("invalid version `1.0`: the patch number is missing"),
        "{}",
        text(&out)
    );
    assert!(!dir.path().join("dl").exists());
}

#[test]
fn compare_names_every_error_of_both_sides_before_running_either() {
    let (bad, [count, site, metric]) = with_three_mistakes("bad");
    let dir = with_scenarios(&[("a.toml", &bad), ("b.toml", &bad)]);
    let out = rmmsim(
        dir.path(),
        &["compare", "scenarios/a.toml", "scenarios/b.toml", "--out", "c"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let errors = String::from_utf8_lossy(&out.stderr);
    for file in ["a", "b"] {
        for line in [count, site, metric] {
            let at = format!("error: scenarios/{file}.toml:{line}:");
            assert!(errors.contains(&at), "{at}\n{errors}");
        }
    }
    assert!(!errors.contains("running"), "{errors}");
    assert!(!dir.path().join("c").exists(), "nothing written");
}
