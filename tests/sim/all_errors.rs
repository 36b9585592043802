//! Every error of a scenario at once: a file with several mistakes gets
//! all of them (up to `MAX_ERRORS`), in file order, each at its line and
//! column, in plain words, and none that only follow from another.

use rmmsim::scenario::{self, MAX_ERRORS, ScenarioErrors};

use crate::common::*;

/// A 65-line scenario with three typos: at lines 7, 26 and 64.
const TYPOS: &str = r#"[scenario]
name = "three-typos"
start = "2026-07-06T06:00:00Z"
duration = "2d"

[agent]
heartbeat = "60"
jitter = 0.05
install = "30s"

[[clients]]
name = "acme"
sites = [{ name = "hq" }, { name = "lab", channel = "beta" }]

[[builds]]
version = "1.0.0"
channel = "stable"
published = "0s"

[[builds]]
version = "1.0.1"
published = "2h"

[[fleet]]
name = "desks"
count = "100"
site = "acme/hq"
version = "1.0.0"

[[fleet]]
name = "lab"
count = 10
site = "acme/lab"
version = "1.0.0"

[[events]]
at = "1d"
promote = "1.0.1"

[[events]]
at = "1d 6h"
disconnect = 0.1
for = "2h"

[[events]]
at = "1d 12h"
update = "latest"
group = "lab"

[[expect]]
metric = "fraction_on"
version = "1.0.1"
at = "1d"
min = 0.9

[[expect]]
metric = "t90"
version = "1.0.1"
channel = "stable"
max = "1h"

[[expect]]
metric = "stranded"
reason = "ofline"
max = 0
"#;

/// The errors of `text`, each as shown.
fn errors(text: &str) -> Vec<String> {
    let e = scenario::parse("s.toml", text).expect_err("should be refused");
    e.errors.iter().map(ToString::to_string).collect()
}

/// `TYPOS` with `from` replaced.
fn typos_with(from: &str, to: &str) -> String {
    assert!(TYPOS.contains(from), "{from}");
    TYPOS.replacen(from, to, 1)
}

/// `TYPOS` with its three typos mended.
fn mended() -> String {
    TYPOS
        .replace("heartbeat = \"60\"", "heartbeat = \"60s\"")
        .replace("count = \"100\"", "count = 100")
        .replace("\"ofline\"", "\"offline\"")
}

#[test]
fn three_typos_are_all_named_at_their_lines_in_file_order() {
    assert_eq!(
        errors(TYPOS),
        [
            "s.toml:7:13: `agent.heartbeat`: invalid duration `60`: time unit needed, for example 60sec or 60ms \
             (e.g. 90s, 15m, 2h, 13d, 1d 2h)",
            "s.toml:26:9: `fleet[0].count`: expected a whole number, found a string",
            "s.toml:64:10: `expect[2].reason`: expected one of channel_frozen, blocked_version, offline, \
             updates_failing, update_in_progress",
        ]
    );
    // Mended, the file is good: the three were all there was.
    let plan = scenario::parse("s.toml", &mended()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plan.fleet_size(), 110);
}

#[test]
fn a_bad_entry_is_still_checked_and_what_names_it_still_finds_it() {
    // The desks' count is bad, yet their site is checked, and the event
    // that names the group finds it.
    let text = typos_with("site = \"acme/hq\"", "site = \"acme/hq2\"");
    let text = text.replace("group = \"lab\"", "group = \"desks\"");
    let shown = errors(&text);
    assert_eq!(shown.len(), 4, "{shown:#?}");
    assert!(shown[1].starts_with("s.toml:26:9: `fleet[0].count`"), "{shown:#?}");
    assert_eq!(
        shown[2],
        "s.toml:27:8: `fleet[0].site`: no site `acme/hq2` (defined: acme/hq, acme/lab)"
    );
    // A build whose version cannot be read: a promote of the version meant
    // is not called unknown, but one of a version nobody declared still is.
    let text = mended().replacen("version = \"1.0.1\"", "version = \"1.0\"", 1);
    let text = text.replace(
        "at = \"1d 12h\"\nupdate = \"latest\"",
        "at = \"1d 12h\"\nupdate = \"1.0.1\"",
    );
    assert_eq!(
        errors(&text),
        [
            "s.toml:21:11: `builds[1].version`: invalid version `1.0`: the patch number is missing \
          (expected MAJOR.MINOR.PATCH, e.g. 0.6.58)"
        ]
    );
    // Its other keys are still checked; one blamed on the version (which
    // could not be read) points at the build's table.
    let empty = text.replacen("version = \"1.0\"", "version = \"1.0\"\nplatforms = []", 1);
    assert_eq!(
        errors(&empty)[0],
        "s.toml:20:1: `builds[1].platforms`: needs one or more distinct platforms"
    );
    let text = text.replace("update = \"1.0.1\"", "update = \"2.0.0\"");
    let shown = errors(&text);
    assert_eq!(shown.len(), 1, "{shown:#?}");
    let text = text.replace("promote = \"1.0.1\"", "promote = \"3.0.0\"");
    let shown = errors(&text);
    assert_eq!(
        shown.len(),
        1,
        "a reference to builds is not judged while one is unreadable: {shown:#?}"
    );
}

#[test]
fn a_reference_to_a_refused_name_is_not_called_unknown() {
    // The client's name is refused; the fleet's `acme/hq` is not reported
    // as a missing site on top.
    let text = mended().replacen("name = \"acme\"", "name = \"ac/me\"", 1);
    let shown = errors(&text);
    assert_eq!(shown.len(), 1, "{shown:#?}");
    assert!(shown[0].contains("`clients[0].name`"), "{shown:#?}");
    // With the client's name right, a wrong reference is named.
    let text = mended().replacen("site = \"acme/lab\"", "site = \"acme/lab2\"", 1);
    let shown = errors(&text);
    assert_eq!(shown.len(), 1, "{shown:#?}");
    assert!(shown[0].contains("no site `acme/lab2`"), "{shown:#?}");
}

#[test]
fn missing_keys_are_named_and_everything_else_is_still_checked() {
    let text = "[scenario]\nname = \"x\"\n\n[[fleet]]\nname = \"a\"\n\n[gate]\ntolerance = 50\n";
    assert_eq!(
        errors(text),
        [
            "s.toml:1:1: `scenario`: missing field `start`",
            "s.toml:1:1: `scenario`: missing field `duration`",
            "s.toml:4:1: `fleet[0]`: missing field `count`",
            "s.toml:4:1: `fleet[0]`: missing field `site`",
            "s.toml:4:1: `fleet[0]`: missing field `version`",
            "s.toml:8:13: `gate.tolerance`: must be between 0 and 10 (0.1 is 10 %)",
        ]
    );
}

#[test]
fn past_the_limit_the_rest_are_counted() {
    let extra = (0..MAX_ERRORS + 5)
        .map(|i| format!("\n[[fleet]]\ncount = 0\nsite = \"acme/hq\"\nversion = \"1.0.0\"\nname = \"f{i}\"\n"))
        .collect::<String>();
    let e: ScenarioErrors = scenario::parse("s.toml", &format!("{}{extra}", mended())).expect_err("refused");
    assert_eq!((e.errors.len(), e.more), (MAX_ERRORS, 5), "{e}");
    let lines: Vec<usize> = e.errors.iter().map(|e| e.line).collect();
    assert!(lines.is_sorted() && lines[0] == 68, "{lines:?}");
    assert_eq!(e.lines().last().map(String::as_str), Some("s.toml: and 5 more errors"));
    assert_eq!(e.lines().len(), MAX_ERRORS + 1);
}

#[test]
fn wrong_kinds_of_value_are_named_in_the_files_terms() {
    let cases = [
        (
            "count = 10\n",
            "count = 1.5\n",
            "`fleet[1].count`: expected a whole number, found 1.5",
        ),
        (
            "count = 10\n",
            "count = -3\n",
            "`fleet[1].count`: expected a whole number from 0 to 18446744073709551615, found -3",
        ),
        (
            "jitter = 0.05",
            "jitter = \"low\"",
            "`agent.jitter`: expected a number, found a string",
        ),
        (
            "version = \"1.0.0\"\nchannel",
            "version = 100\nchannel",
            "`builds[0].version`: expected a string, found 100",
        ),
        (
            "published = \"0s\"",
            "published = \"0s\"\ncorrupt_digest = \"yes\"",
            "expected true or false, found a string",
        ),
        (
            "[[fleet]]\nname = \"lab\"",
            "[[x]]\nname = \"lab\"",
            "`x`: unknown field `x`, expected one of",
        ),
    ];
    for (from, to, says) in cases {
        let text = mended().replacen(from, to, 1);
        let shown = errors(&text);
        assert!(shown.iter().any(|e| e.contains(says)), "{to}: {shown:#?}");
    }
    let table = "[scenario]\nname = \"x\"\nstart = \"2026-01-05T00:00:00Z\"\nduration = \"1h\"\n[fleet]\ncount = 1\n";
    assert_eq!(errors(table), ["s.toml:5:1: `fleet`: expected an array, found a table"]);
}

#[test]
fn a_time_after_the_end_says_when_the_end_is() {
    let end = "is after the end of the scenario (duration 2d, ends 2026-07-08T06:00:00Z)";
    let text = mended()
        .replacen("at = \"1d\"\npromote", "at = \"3d\"\npromote", 1)
        .replacen("published = \"2h\"", "published = \"2d 1h\"", 1)
        .replacen("at = \"1d\"\nmin", "at = \"50h\"\nmin", 1);
    assert_eq!(
        errors(&text),
        [
            format!("s.toml:22:13: `builds[1].published`: published 2d 1h {end}"),
            format!("s.toml:37:6: `events[0].at`: at 3d {end}"),
            format!("s.toml:53:6: `expect[0].at`: at 2d 2h {end}"),
        ]
    );
}

#[test]
fn every_toml_syntax_error_is_named() {
    let text = mended()
        .replacen("[[clients]]", "[[clients]", 1)
        .replacen("jitter = 0.05", "jitter = ", 1);
    let shown = errors(&text);
    assert!(shown.len() >= 2, "{shown:#?}");
    assert!(shown[0].starts_with("s.toml:8:"), "{shown:#?}");
    assert!(shown.iter().any(|e| e.starts_with("s.toml:11:")), "{shown:#?}");
}

#[test]
fn a_built_plan_gets_every_problem_in_the_order_checked() {
    let e = PlanBuilder::new("built", date("2026-01-05T00:00:00Z"), hours(1))
        .client(Client::new("c").site("s"))
        .build(Build::new(OLD).published(hours(2)))
        .fleet(Fleet::new(0, "c/s", OLD))
        .event(mins(5), Event::promote(NEW))
        .check()
        .expect_err("refused");
    let keys: Vec<&str> = e.errors.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        ["builds[0].published", "fleet[0].count", "events[0].promote"],
        "{e}"
    );
    assert!(e.errors.iter().all(|e| e.file == "built" && e.line == 0), "{e}");
}
