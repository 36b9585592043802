//! `rmmsim run`: exit 0 when every expectation holds, 1 when one fails
//! (printing which, the observed value and how to reproduce it), 2 for a bad
//! file, with nothing run.

use std::time::Duration;

use crate::common::*;

/// `name`: five stable machines, 1.0.1 promoted at 10m, whose t90 must be
/// at most `max`.
pub(crate) fn scenario(name: &str, max: Duration) -> PlanBuilder {
    one_update(name, 9, "2026-01-05T00:00:00Z", mins(30), mins(5))
        .health_gate(0, 1.0)
        .client(Client::new("c").site("s"))
        .fleet(Fleet::new(5, "c/s", OLD))
        .event(mins(10), Event::promote(NEW))
        .expect(Expect::new("t90").version(NEW).channel(Channel::Stable).max(max))
}

#[test]
fn exit_codes_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pass = scenario("tiny", mins(10)).to_toml();
    std::fs::write(d.join("pass.toml"), &pass).unwrap();
    std::fs::write(d.join("fail.toml"), scenario("tiny-fail", secs(1)).to_toml()).unwrap();
    // A file-format error: a count that is not a number.
    assert!(pass.contains("\ncount = 5\n"), "{pass}");
    let bad = pass.replace("\ncount = 5\n", "\ncount = \"five\"\n");
    std::fs::write(d.join("bad.toml"), &bad).unwrap();
    let count_line = bad.lines().position(|l| l.starts_with("count = ")).unwrap() + 1;

    let out = rmmsim(d, &["run", "pass.toml", "--out", "r", "--quiet"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for f in ["report.json", "report.md", "report.html", "convergence.svg"] {
        assert!(d.join("r/tiny").join(f).is_file(), "{f} written");
    }
    // report.html stands alone: the chart inline, its script inline, nothing fetched.
    let html = std::fs::read_to_string(d.join("r/tiny/report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<svg") && html.contains("<h2>Expectations</h2>"));
    for outside in ["<script src", "src=", "<link", "@import", "url("] {
        assert!(!html.contains(outside), "report.html refers outside itself: {outside}");
    }
    let json = std::fs::read_to_string(d.join("r/tiny/report.json")).unwrap();
    let report: rmmsim::metrics::Report = serde_json::from_str(&json).unwrap();
    assert_eq!(
        serde_json::to_string_pretty(&report).unwrap() + "\n",
        json,
        "report.json reads back as it was"
    );
    let svg = std::fs::read_to_string(d.join("r/tiny/convergence.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("1.0.1") && svg.contains("promote 1.0.1"));

    let out = rmmsim(d, &["run", "fail.toml", "--out", "r", "--quiet", "--seed", "44"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("FAIL t90 1.0.1 (stable): observed"), "{t}");
    assert!(t.contains("allowed ≤ 1s (fail.toml:"), "{t}");
    assert!(t.contains("reproduce: rmmsim run fail.toml --seed 44"), "{t}");

    // A bad file stops everything before anything runs, even the good ones.
    let out = rmmsim(d, &["run", "pass.toml", "bad.toml", "--out", "r2", "--quiet"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains(&format!(
            "bad.toml:{count_line}:9: `fleet[0].count`: expected a whole number, found a string"
        )),
        "{t}"
    );
    assert!(!d.join("r2").exists(), "nothing ran");

    let out = rmmsim(d, &["run", "--scale", "0", "pass.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let out = rmmsim(d, &["run"]);
    assert_eq!(out.status.code(), Some(2), "usage error");

    // A scale the flag allows but the simulator does not (each entry stops
    // at a million machines, two entries are more): bad input, nothing run.
    let two = scenario("two", mins(10)).fleet(Fleet::new(5, "c/s", OLD)).to_toml();
    std::fs::write(d.join("two.toml"), two).unwrap();
    let out = rmmsim(d, &["run", "--scale", "1e9", "two.toml", "--out", "r3"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("error: two.toml: --scale 1000000000 makes the fleet larger than 1000000 machines"),
        "{}",
        text(&out)
    );
    assert!(!d.join("r3").exists(), "nothing ran");
}

/// `run --json`: one JSON object per scenario is all of stdout (verdict,
/// what failed with its observed and allowed values, the key figures, the
/// report paths); the lines for people go to stderr, and no progress bar
/// is drawn there when it is not a terminal.
#[test]
fn run_json_is_one_line_per_scenario_and_nothing_else_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("pass.toml"), scenario("tiny", mins(10)).to_toml()).unwrap();
    std::fs::write(d.join("fail.toml"), scenario("tiny-fail", secs(1)).to_toml()).unwrap();
    let out = rmmsim(d, &["run", "pass.toml", "fail.toml", "--out", "r", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).expect(l)).collect();
    let [pass, fail] = &lines[..] else { panic!("{stdout}") };
    assert_eq!(
        (&pass["schema"], &pass["scenario"], &pass["verdict"]),
        (&1.into(), &"tiny".into(), &"passed".into())
    );
    assert_eq!((&pass["file"], &pass["seed"]), (&"pass.toml".into(), &9.into()));
    assert_eq!(pass["reports"]["json"], "r/tiny/report.json");
    let convergence = pass["figures"]["convergence"].as_array().unwrap();
    let promoted = convergence
        .iter()
        .find(|c| c["version"] == "1.0.1" && c["channel"] == "stable")
        .expect("1.0.1 on stable");
    assert_eq!(
        (&promoted["reference"], &promoted["population"]),
        (&"promote".into(), &5.into())
    );
    assert!(promoted["t100_s"].as_f64().unwrap() >= promoted["t50_s"].as_f64().unwrap());
    assert_eq!(pass["figures"]["stranded"], 0);
    assert_eq!(pass["figures"]["orphan_rows"], 0);
    assert_eq!(fail["verdict"], "failed");
    assert_eq!(fail["failures"].as_array().unwrap().len(), 1, "{fail}");
    let failure = &fail["failures"][0];
    assert_eq!(
        (&failure["kind"], &failure["figure"]),
        (&"expectation".into(), &"t90 1.0.1 (stable)".into())
    );
    assert_eq!(failure["allowed"], "≤ 1s");
    assert!(!failure["observed"].as_str().unwrap().is_empty(), "{failure}");
    assert_eq!(fail["reproduce"], "rmmsim run fail.toml --seed 9");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tiny: passed") && stderr.contains("FAIL t90 1.0.1 (stable)"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("day ") && !stderr.contains('\r'),
        "no progress bar: {stderr}"
    );
}

/// Values a flag refuses are usage errors (exit 2) naming the flag and what
/// it takes, found before anything connects or runs.
#[test]
fn bad_flag_values_name_the_flag_and_its_range() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let swarm = ["swarm", "--server", "ws://127.0.0.1:1", "--site-key", "k"];
    for (args, flag, range) in [
        (
            &["run", "--scale=-2", "a.toml"][..],
            "'--scale <SCALE>'",
            "positive number",
        ),
        (
            &[&swarm[..], &["--agents", "0"]].concat(),
            "'--agents <AGENTS>'",
            "at least 1",
        ),
        (
            &[&swarm[..], &["--steps", "10,5"]].concat(),
            "'--steps <STEPS>'",
            "increasing",
        ),
        (
            &[&swarm[..], &["--steps", "0,5"]].concat(),
            "'--steps <STEPS>'",
            "above 0",
        ),
    ] {
        let out = rmmsim(d, args);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {t}");
        assert!(t.contains(flag) && t.contains(range), "{args:?}: {t}");
    }
}

#[test]
fn bench_writes_its_tables() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = rmmsim(
        d,
        &[
            "bench",
            "--out",
            "b",
            "--sim-agents",
            "5,20",
            "--transports",
            "direct,ws-mem",
            "--sim-heartbeats",
            "2000",
            "--capacity-steps",
            "5,10",
            "--capacity-heartbeat",
            "300ms",
            "--capacity-window",
            "900ms",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("b/bench.json")).unwrap()).unwrap();
    let sims = json["simulator"].as_array().unwrap();
    assert_eq!(sims.len(), 4);
    for s in sims {
        assert!(s["error"].is_null(), "{s}");
        assert!(s["heartbeats"].as_u64().unwrap() >= 2000, "{s}");
        assert!(s["peak_rss_bytes"].as_u64().unwrap() > 0, "{s}");
    }
    let steps = json["capacity"]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(
        (steps[1]["agents"].as_u64(), steps[1]["connected"].as_u64()),
        (Some(10), Some(10))
    );
    assert_eq!(json["capacity"]["largest_held"], 10);
    assert!(
        json["capacity"]["server_open_files"].as_u64().unwrap() > 0,
        "the server's limit, from its /api/stats"
    );
    let rtt = |k: &str| steps[1][k].as_f64().unwrap();
    assert!(
        0.0 < rtt("rtt_p50_ms") && rtt("rtt_p50_ms") <= rtt("rtt_p99_ms") && rtt("rtt_p99_ms") <= rtt("rtt_max_ms"),
        "round trips from the swarms' merged histograms: {}",
        steps[1]
    );
    let md = std::fs::read_to_string(d.join("b/bench.md")).unwrap();
    assert!(md.contains("## Simulator throughput") && md.contains("## Server capacity, real time"));
    assert!(
        text(&out).contains("[4/4] simulator ws-mem, 20 agents"),
        "progress shown"
    );
}

#[test]
fn bench_log_every_makes_the_agents_log_and_counts_the_lines() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let args = [
        "bench",
        "--out",
        "b",
        "--sim-agents",
        "20",
        "--transports",
        "direct",
        "--sim-heartbeats",
        "4000",
        "--capacity-steps",
        "0",
        "--log-every",
        "10",
    ];
    let out = rmmsim(d, &args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("b/bench.json")).unwrap()).unwrap();
    let run = &json["simulator"][0];
    assert_eq!(run["log_every"], 10, "{run}");
    // About one line per 10 heartbeats (a Poisson process: not exactly).
    let (beats, lines) = (run["heartbeats"].as_u64().unwrap(), run["logs"].as_u64().unwrap());
    assert!(
        (beats / 20..beats / 5).contains(&lines),
        "{lines} lines for {beats} heartbeats"
    );
    let md = std::fs::read_to_string(d.join("b/bench.md")).unwrap();
    assert!(
        md.contains("| log lines |") && md.contains("an error line per 10 heartbeats"),
        "{md}"
    );
    let out = rmmsim(
        d,
        &[
            "bench-sim",
            "--agents",
            "2",
            "--transport",
            "direct",
            "--log-every",
            "0",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "--log-every is at least 1: {}", text(&out));
}
