//! report.md and report.html are two renderings of one document: every
//! figure the Markdown shows, the page shows too.

use crate::common::*;

/// The words of a text that carry a figure (a digit), stripped of the
/// punctuation either form wraps them in.
fn figures(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == '|')
        .map(|w| w.trim_matches(|c: char| "*#()[]`,;:".contains(c) || c == '.' && !w.ends_with("..")))
        .filter(|w| w.chars().any(|c| c.is_ascii_digit()))
        .map(str::to_owned)
        .collect()
}

/// The page's text: tags dropped, entities read.
fn page_text(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                text.push(' ');
            }
            '>' => in_tag = false,
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[test]
fn report_html_carries_every_figure_of_report_md() {
    // Scenarios whose reports have every section between them: a rollback
    // (a build never reached by all), stranded machines, orphan rows and
    // log signatures.
    for (name, cap_at) in [
        ("bad-build-rollback", 200),
        ("re-enroll", 20),
        ("beta-first", 10),
        ("crashy-build-field-gate", 20),
    ] {
        let mut plan = load(name);
        cap(&mut plan, cap_at);
        let r = run_on(&plan, rmmsim::sim::TransportKind::Direct);
        let md = rmmsim::metrics::markdown(&r);
        let html = rmmsim::metrics::html(&r);
        // The chart's own labels are not report figures.
        let text = page_text(&html.replace(&rmmsim::metrics::convergence_svg(&r).unwrap(), ""));
        let shown = figures(&text);
        let md = md
            .lines()
            .filter(|l| !l.starts_with("!["))
            .collect::<Vec<_>>()
            .join("\n");
        let missing: Vec<String> = figures(&md).into_iter().filter(|f| !shown.contains(f)).collect();
        assert!(
            missing.is_empty(),
            "{name}: in report.md, not in report.html: {missing:?}"
        );
        assert!(figures(&md).len() > 50, "{name}: the check looked at figures");
    }
}
