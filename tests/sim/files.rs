//! A bad scenario file is refused before anything runs, with an error that
//! names the file, the line and the key.

use rmmsim::scenario::{self, Metric, StrandReason};

const GOOD: &str = r#"[scenario]
name = "ok"
start = "2026-01-05T00:00:00Z"
duration = "1h"

[[clients]]
name = "c"
sites = [{ name = "s" }]

[[builds]]
version = "1.0.0"
channel = "stable"
published = "0s"

[[fleet]]
count = 2
site = "c/s"
version = "1.0.0"
"#;

/// The 1-based line of the first line containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle} not in text"))
        + 1
}

/// Checks `text` is refused for one thing, at the line holding `at`, under
/// `key`, with a message containing `says`.
fn refused(text: &str, at: &str, key: &str, says: &str) {
    let errors = scenario::parse("scenarios/x.toml", text).expect_err("should be refused");
    assert_eq!(errors.errors.len(), 1, "{errors}");
    let e = &errors.errors[0];
    let shown = e.to_string();
    let line = line_of(text, at);
    assert!(
        shown.starts_with(&format!("scenarios/x.toml:{line}:")),
        "expected line {line}: {shown}"
    );
    assert_eq!(e.key, key, "{shown}");
    assert!(e.message.contains(says), "{shown}");
    if !key.is_empty() {
        assert!(shown.contains(&format!("`{key}`")), "{shown}");
    }
}

fn with(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "{from}");
    GOOD.replacen(from, to, 1)
}

#[test]
fn the_good_file_is_good() {
    let plan = scenario::parse("x.toml", GOOD).unwrap();
    assert_eq!(plan.fleet_size(), 2);
}

#[test]
fn type_and_syntax_errors_name_line_and_key() {
    let text = with("version = \"1.0.0\"\nchannel", "version = \"1.0\"\nchannel");
    refused(&text, "version = \"1.0\"", "builds[0].version", "MAJOR.MINOR.PATCH");
    refused(
        &with("duration = \"1h\"", "duration = \"an hour\""),
        "an hour",
        "scenario.duration",
        "invalid duration",
    );
    refused(
        &with("count = 2", "count = \"two\""),
        "count = \"two\"",
        "fleet[0].count",
        "expected a whole number, found a string",
    );
    let text = with("count = 2", "count = 2\ncolour = \"red\"");
    refused(
        &text,
        "colour",
        "fleet[0].colour",
        "unknown field `colour`, expected one of `name`, `count`",
    );
    refused(&with("[[clients]]", "[[clients]\n"), "[[clients]", "", "");
}

#[test]
fn reference_and_range_errors_name_line_and_key() {
    let text = with("site = \"c/s\"", "site = \"c/nope\"");
    refused(&text, "c/nope", "fleet[0].site", "no site `c/nope` (defined: c/s)");
    refused(
        &with("count = 2", "count = 0"),
        "count = 0",
        "fleet[0].count",
        "at least 1",
    );

    let text = format!("{GOOD}\n[[events]]\nat = \"30m\"\npromote = \"1.0.0\"\nrollback = \"1.0.0\"\n");
    refused(&text, "[[events]]", "events[0]", "exactly one of");
    let text = format!("{GOOD}\n[[events]]\nat = \"2h\"\npromote = \"1.0.0\"\n");
    refused(&text, "at = \"2h\"", "events[0].at", "after the end");
    let text = format!("{GOOD}\n[[events]]\nat = \"5m\"\npromote = \"9.9.9\"\n");
    refused(
        &text,
        "9.9.9",
        "events[0].promote",
        "no build 9.9.9 in [[builds]] (defined: 1.0.0)",
    );
    let text = format!("{GOOD}\n[[events]]\nat = \"5m\"\nset_channel = \"beta\"\ngroup = \"nobody\"\n");
    refused(&text, "nobody", "events[0].group", "no fleet entry named `nobody`");
    let text = format!("{GOOD}\n[[expect]]\nmetric = \"speed\"\nmax = 1\n");
    refused(&text, "speed", "expect[0].metric", "unknown metric `speed`");
    let text = format!("{GOOD}\n[[expect]]\nmetric = \"t90\"\nversion = \"1.0.0\"\nmin = \"soon\"\n");
    refused(&text, "soon", "expect[0].min", "invalid duration `soon`");
    let text = format!("{GOOD}\n[[expect]]\nmetric = \"stranded\"\n");
    refused(&text, "stranded", "expect[0]", "needs min, max or both");
}

#[test]
fn expectation_keys_the_metric_does_not_use_are_refused() {
    let expect = |keys: &str| format!("{GOOD}\n[[expect]]\n{keys}\nmax = 1\n");
    let text = expect("metric = \"heartbeats\"\nchannel = \"beta\"");
    refused(
        &text,
        "channel = \"beta\"",
        "expect[0].channel",
        "`heartbeats` does not use `channel`",
    );
    let text = expect("metric = \"t90\"\nversion = \"1.0.0\"\nat = \"30m\"");
    refused(&text, "at = ", "expect[0].at", "`t90` does not use `at`");
    let text = expect("metric = \"stranded\"\nof = \"online\"");
    refused(&text, "of = ", "expect[0].of", "`stranded` does not use `of`");
    let text = expect("metric = \"orphan_rows\"\nversion  = \"1.0.0\"");
    refused(&text, "version  =", "expect[0].version", "does not use `version`");
    let text = expect("metric = \"fraction_on\"\nversion = \"1.0.0\"\nreason = \"offline\"");
    refused(&text, "reason = ", "expect[0].reason", "does not use `reason`");
    // A key the metric does not use is named before a bad value of it, and
    // an unknown metric before its keys.
    let text = expect("metric = \"heartbeats\"\nat = \"9h\"");
    refused(&text, "at = ", "expect[0].at", "`heartbeats` does not use `at`");
    let text = expect("metric = \"speed\"\nof = \"online\"");
    refused(&text, "speed", "expect[0].metric", "unknown metric `speed`");
    // What each metric does use is still fine.
    for keys in [
        "metric = \"fraction_on\"\nversion = \"1.0.0\"\nchannel = \"stable\"\nat = \"30m\"\nof = \"online\"",
        "metric = \"t50\"\nversion = \"1.0.0\"\nchannel = \"stable\"",
        "metric = \"stranded\"\nreason = \"offline\"",
        "metric = \"stable_lag_builds\"\nat = \"30m\"",
    ] {
        scenario::parse("x.toml", &expect(keys)).unwrap_or_else(|e| panic!("{keys}: {e}"));
    }
}

#[test]
fn client_and_site_names_follow_the_servers_rule() {
    // Control characters are refused here as the server's API refuses them.
    let text = GOOD.replace("name = \"c\"", "name = \"c\\t\"");
    refused(&text, "c\\t", "clients[0].name", "no control characters");
    let text = GOOD.replace("{ name = \"s\" }", "{ name = \"s\\u0007\" }");
    refused(&text, "s\\u0007", "clients[0].sites[0].name", "no control characters");
    let text = GOOD.replace("{ name = \"s\" }", "{ name = \"a/b\" }");
    refused(&text, "a/b", "clients[0].sites[0].name", "no '/'");
}

#[test]
fn a_stranded_expectation_names_a_report_reason() {
    let expect = |keys: &str| format!("{GOOD}\n[[expect]]\n{keys}\nmax = 1\n");
    for reason in StrandReason::ALL {
        let plan = scenario::parse(
            "x.toml",
            &expect(&format!("metric = \"stranded\"\nreason = \"{}\"", reason.as_str())),
        )
        .unwrap_or_else(|e| panic!("{reason:?}: {e}"));
        assert_eq!(plan.expects[0].metric, Metric::Stranded { reason: Some(reason) });
    }
    let text = expect("metric = \"stranded\"\nreason = \"asleep\"");
    refused(
        &text,
        "\"asleep\"",
        "expect[0].reason",
        "expected one of channel_frozen, blocked_version",
    );
}

#[test]
fn agent_defaults_are_blamed_on_their_own_keys() {
    let agent = |keys: &str| format!("{GOOD}\n[agent]\n{keys}\n");
    refused(
        &agent("heartbeat = \"0s\""),
        "heartbeat = \"0s\"",
        "agent.heartbeat",
        "longer than 0s",
    );
    let own = with("count = 2", "count = 2\nheartbeat = \"0s\"");
    refused(&own, "heartbeat = \"0s\"", "fleet[0].heartbeat", "longer than 0s");
    refused(
        &agent("reconnect_max = \"0s\""),
        "reconnect_max",
        "agent.reconnect_max",
        "at least reconnect_min (default 1s)",
    );
    refused(
        &agent("reconnect_min = \"10m\""),
        "reconnect_min",
        "agent.reconnect_min",
        "at most reconnect_max (default 5m)",
    );
    refused(
        &agent("reconnect_min = \"0s\"\nreconnect_max = \"1m\""),
        "reconnect_min",
        "agent.reconnect_min",
        "above 0s",
    );
    refused(
        &agent("reconnect_min = \"2m\"\nreconnect_max = \"1m\""),
        "reconnect_max",
        "agent.reconnect_max",
        "at least reconnect_min",
    );
}

#[test]
fn boot_spreads_must_fit_the_office_day_and_be_used() {
    let office = with("count = 2", "count = 2\navailability = \"office-hours\"");
    refused(
        &format!("{office}\n[agent]\nboot_spread = \"10h\"\n"),
        "boot_spread",
        "agent.boot_spread",
        "less than the office day (10h",
    );
    let own = office.replace("count = 2\n", "count = 2\nboot_spread = \"11h\"\n");
    refused(&own, "boot_spread", "fleet[0].boot_spread", "less than the office day");
    let always = with("count = 2", "count = 2\nboot_spread = \"5m\"");
    refused(
        &always,
        "boot_spread",
        "fleet[0].boot_spread",
        "only office-hours machines use it",
    );
    refused(
        &format!("{GOOD}\n[agent]\nboot_spread = \"5m\"\n"),
        "boot_spread",
        "agent.boot_spread",
        "no fleet entry is office-hours",
    );
    // Just under the day, and on an entry that inherits office hours.
    let plan = scenario::parse(
        "x.toml",
        &format!("{GOOD}\n[agent]\navailability = \"office-hours\"\nboot_spread = \"9h 59m\"\n"),
    )
    .unwrap();
    let spread = std::time::Duration::from_secs(9 * 3600 + 59 * 60);
    assert_eq!(
        plan.groups[0].availability,
        rmmsim::agent::Availability::OfficeHours {
            utc_offset_minutes: 0,
            boot_spread: spread
        }
    );
}

#[test]
fn sizes_that_would_exhaust_the_machine_are_refused() {
    refused(
        &with("count = 2", "count = 2000000"),
        "count = 2000000",
        "fleet[0].count",
        "exceed 1000000 machines",
    );
    let text = with("published = \"0s\"", "published = \"0s\"\nsize = \"2GiB\"");
    refused(&text, "2GiB", "builds[0].size", "at most 1 GiB");
    let text = with("duration = \"1h\"", "duration = \"100d\"\nsample_every = \"1s\"");
    refused(&text, "sample_every", "scenario.sample_every", "too fine");
}

#[test]
fn an_unreadable_file_says_so() {
    let e = scenario::load(std::path::Path::new("/nonexistent/s.toml")).unwrap_err();
    assert!(e.to_string().starts_with("/nonexistent/s.toml: cannot read"), "{e}");
}

#[test]
fn log_lines_name_their_level_rate_and_placeholders_right() {
    let agent = |line: &str| format!("{GOOD}\n[agent]\nlogs = [{line}]\n");
    let text = agent(r#"{ message = "x", level = "fatal", per_hour = 1 }"#);
    refused(
        &text,
        "fatal",
        "agent.logs[0].level",
        "unknown level `fatal` (expected debug, info, warn, error)",
    );
    let text = agent(r#"{ message = "x", level = "ERROR", per_hour = 1 }"#);
    refused(&text, "ERROR", "agent.logs[0].level", "unknown level `ERROR`");
    let text = agent(r#"{ message = "crash {id}", level = "error", per_hour = 1 }"#);
    refused(
        &text,
        "crash {id}",
        "agent.logs[0].message",
        "unknown placeholder `{id}` (known: {n}",
    );
    let text = agent(r#"{ message = " ", level = "info", per_hour = 1 }"#);
    refused(&text, "message = \" \"", "agent.logs[0].message", "must not be empty");
    let text = agent(r#"{ message = "x", level = "info", per_hour = 1, colour = "red" }"#);
    refused(&text, "colour", "agent.logs[0].colour", "unknown field `colour`");
    let text = agent(r#"{ message = "x", level = "info" }"#);
    refused(&text, "logs = ", "agent.logs[0]", "missing field `per_hour`");
    for rate in ["0", "-1.5", "nan", "3601"] {
        let build = with(
            "published = \"0s\"",
            &format!("published = \"0s\"\nlogs = [{{ message = \"x\", level = \"warn\", per_hour = {rate} }}]"),
        );
        refused(
            &build,
            &format!("per_hour = {rate}"),
            "builds[0].logs[0].per_hour",
            "must be above 0 and at most 3600",
        );
    }
    let plan = scenario::parse(
        "x.toml",
        &agent(r#"{ message = "ok {n} {{x}}", level = "debug", per_hour = 3600 }"#),
    )
    .unwrap();
    assert_eq!(plan.logs[0].message.as_str(), "ok {n} {{x}}");
    assert!(plan.has_logs());
}

#[test]
fn log_expectations_need_what_they_measure_and_nothing_else() {
    let expect = |keys: &str| format!("{GOOD}\n[[expect]]\n{keys}\nmin = 0\n");
    let text = expect("metric = \"log_rate\"\nlevel = \"error\"");
    refused(&text, "log_rate", "expect[0].version", "`log_rate` needs a version");
    let text = expect("metric = \"log_signatures\"\nlevel = \"fatal\"");
    refused(&text, "fatal", "expect[0].level", "expected debug, info, warn, error");
    let text = expect("metric = \"log_signatures\"\nnew_in = \"2.0.0\"");
    refused(&text, "2.0.0", "expect[0].new_in", "no build or fleet entry runs 2.0.0");
    let text = expect("metric = \"log_rate\"\nversion = \"1.0.0\"\nchannel = \"beta\"");
    refused(
        &text,
        "channel = \"beta\"",
        "expect[0].channel",
        "`log_rate` does not use `channel`",
    );
    let text = expect("metric = \"fraction_on\"\nversion = \"1.0.0\"\nlevel = \"error\"");
    refused(
        &text,
        "level = ",
        "expect[0].level",
        "`fraction_on` does not use `level`",
    );
    let text = expect("metric = \"heartbeats\"\nnew_in = \"1.0.0\"");
    refused(
        &text,
        "new_in = ",
        "expect[0].new_in",
        "`heartbeats` does not use `new_in`",
    );
    let text = expect("metric = \"log_rate\"\nversion = \"1.0.0\"\nmin = \"5m\"").replace("\nmin = 0\n", "\n");
    refused(&text, "5m", "expect[0].min", "expected a number");
    // A fleet's starting version need not be a build to have logs.
    let keys = "metric = \"log_rate\"\nversion = \"0.9.0\"\nlevel = \"warn\"\nnew_in = \"0.9.0\"";
    let text = expect(keys).replace(
        "site = \"c/s\"\nversion = \"1.0.0\"",
        "site = \"c/s\"\nversion = \"0.9.0\"",
    );
    let plan = scenario::parse("x.toml", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(
        matches!(plan.expects[0].metric, Metric::LogRate { .. }),
        "{:?}",
        plan.expects[0]
    );
    assert_eq!(plan.expects[0].label, "log_rate 0.9.0 level=warn new_in=0.9.0");
}

#[test]
fn the_field_health_gate_takes_a_rate_of_at_least_0() {
    let gate = |rate: &str| {
        GOOD.replace(
            "[[clients]]",
            &format!(
                "[server]\nhealth_gate = {{ min_successes = 2, max_failure_rate = 0.1, max_new_error_rate = {rate} }}\n\n[[clients]]"
            ),
        )
    };
    refused(
        &gate("-0.5"),
        "max_new_error_rate",
        "server.health_gate.max_new_error_rate",
        "must be at least 0",
    );
    let plan = scenario::parse("x.toml", &gate("0.25")).unwrap();
    assert_eq!(plan.gate.max_new_error_rate, Some(0.25));
    assert_eq!(scenario::parse("x.toml", GOOD).unwrap().gate.max_new_error_rate, None);
}
