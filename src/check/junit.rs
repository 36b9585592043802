//! JUnit XML: one test case per scenario, one `<failure>` per broken
//! expectation, gate figure or invariant, with the observed and allowed
//! values; a run that broke is an `<error>`. The shape CI systems render
//! (Jenkins' junit-10 schema).

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

use super::CheckRun;
use crate::clock::Clock;

fn element<'a>(name: &'a str, attrs: &[(&str, &str)]) -> BytesStart<'a> {
    let mut e = BytesStart::new(name);
    for (k, v) in attrs {
        e.push_attribute((*k, *v));
    }
    e
}

/// The JUnit XML of a check.
pub fn junit(run: &CheckRun) -> String {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    let tests = run.results.len().to_string();
    let errors = run.results.iter().filter(|r| r.report.is_none()).count();
    let failures = (run.results.iter().filter(|r| !r.passed()).count() - errors).to_string();
    let errors = errors.to_string();
    let time = format!("{:.3}", run.wall_s);
    let stamp = Clock::Wall.now().to_string();
    // Writing to a Vec cannot fail.
    let mut put = |e: Event<'_>| {
        let _ = w.write_event(e);
    };
    put(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
    let counts = [
        ("tests", tests.as_str()),
        ("failures", failures.as_str()),
        ("errors", errors.as_str()),
    ];
    let mut suites = vec![("name", "rmmsim check"), ("time", time.as_str())];
    suites.extend(counts);
    put(Event::Start(element("testsuites", &suites)));
    let mut suite = vec![
        ("name", "scenarios"),
        ("time", time.as_str()),
        ("timestamp", stamp.as_str()),
    ];
    suite.extend(counts);
    put(Event::Start(element("testsuite", &suite)));
    for r in &run.results {
        let wall = r.report.as_ref().map_or(0.0, |rep| rep.wall.wall_s);
        let case_time = format!("{wall:.3}");
        put(Event::Start(element(
            "testcase",
            &[
                ("classname", "rmmsim.scenarios"),
                ("name", r.name.as_str()),
                ("time", case_time.as_str()),
            ],
        )));
        for f in &r.failures {
            let tag = f.kind.junit_element();
            let message = format!("{}: observed {}, allowed {}", f.figure, f.observed, f.allowed);
            put(Event::Start(element(
                tag,
                &[("type", f.kind.as_str()), ("message", message.as_str())],
            )));
            put(Event::Text(BytesText::new(&f.line())));
            put(Event::End(BytesEnd::new(tag)));
        }
        let out = if r.is_bad_file() {
            r.file.display().to_string()
        } else {
            format!(
                "{}\nreports: {}\nseed: {}",
                r.file.display(),
                r.report_dir.join("report.md").display(),
                r.seed
            )
        };
        put(Event::Start(BytesStart::new("system-out")));
        put(Event::Text(BytesText::new(&out)));
        put(Event::End(BytesEnd::new("system-out")));
        put(Event::End(BytesEnd::new("testcase")));
    }
    put(Event::End(BytesEnd::new("testsuite")));
    put(Event::End(BytesEnd::new("testsuites")));
    String::from_utf8(w.into_inner()).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::check::{Failure, FailureKind, ScenarioResult};

    fn failure(kind: FailureKind, figure: &str) -> Failure {
        Failure {
            kind,
            figure: figure.into(),
            observed: "1".into(),
            allowed: "0".into(),
            detail: String::new(),
        }
    }

    /// A run that broke is an `<error>`; what a run measured is a
    /// `<failure>`; either way `type` names the kind.
    #[test]
    fn each_kind_is_reported_as_its_element_and_type() {
        let result = ScenarioResult {
            name: "s".into(),
            file: PathBuf::from("scenarios/s.toml"),
            seed: 1,
            report: None,
            baseline: None,
            failures: vec![
                failure(FailureKind::Error, "run"),
                failure(FailureKind::Gate, "t90"),
                failure(FailureKind::Expectation, "fraction_on"),
                failure(FailureKind::Invariant, "update model"),
            ],
            changes: Vec::new(),
            report_dir: PathBuf::from("reports/s"),
        };
        let xml = junit(&CheckRun {
            results: vec![result],
            wall_s: 1.0,
            updated_baselines: false,
        });
        let opening = |tag: &str, kind: &str, figure: &str| {
            format!(r#"<{tag} type="{kind}" message="{figure}: observed 1, allowed 0">"#)
        };
        for (tag, kind, figure) in [
            ("error", "error", "run"),
            ("failure", "gate", "t90"),
            ("failure", "expectation", "fraction_on"),
            ("failure", "invariant", "update model"),
        ] {
            assert!(xml.contains(&opening(tag, kind, figure)), "{tag} {kind}:\n{xml}");
        }
    }
}
