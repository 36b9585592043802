//! `report.html`: one self-contained page (inline style and chart, no
//! scripts, nothing fetched) with everything `report.md` says.

use std::fmt::Write;
use std::time::Duration;

use quick_xml::escape::escape;

use super::report::Report;
use super::sentences::OFF_CHANNEL_MEANS;
use super::svg::convergence_svg;
use crate::clock::short;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1320px;color:#222;line-height:1.4}\
h1 .ok{color:#087f23}h1 .fail{color:#b00020}table{border-collapse:collapse;margin:.5em 0 1.5em}\
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}th{background:#f3f3f3}\
td.num{text-align:right}.fail{color:#b00020;font-weight:600}.ok{color:#087f23}ul{margin-top:.2em}\
figure{margin:0}svg{max-width:100%;height:auto}";

fn e(s: &str) -> String {
    escape(s).into_owned()
}

fn dur(s: Option<f64>) -> String {
    s.map_or_else(|| "—".to_owned(), |s| short(Duration::from_secs_f64(s.max(0.0))))
}

fn table(html: &mut String, head: &[&str], rows: impl IntoIterator<Item = Vec<String>>) {
    html.push_str("<table><tr>");
    for h in head {
        let _ = write!(html, "<th>{}</th>", e(h));
    }
    html.push_str("</tr>");
    for row in rows {
        html.push_str("<tr>");
        for cell in row {
            // Cells are escaped by the callers that build them from text.
            let _ = write!(html, "<td>{cell}</td>");
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>\n");
}

/// The page.
pub fn html(r: &Report) -> String {
    let mut h = String::new();
    let s = &r.scenario;
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} — rmmsim</title><style>{STYLE}</style></head><body>",
        e(&s.name)
    );
    let verdict = if r.passed {
        "<span class=\"ok\">passed</span>"
    } else {
        "<span class=\"fail\">FAILED</span>"
    };
    let _ = write!(h, "<h1>{}: {verdict}</h1><p>{}</p>", e(&s.name), e(&s.description));
    let _ = write!(
        h,
        "<p>{} machines over {} from {}; seed {}, transport {}. Simulated in {:.1} s of wall time.</p>",
        s.fleet,
        short(Duration::from_secs_f64(s.duration_s)),
        s.start,
        s.seed,
        e(&s.transport),
        r.wall.wall_s
    );
    h.push_str("<h2>In short</h2><ul>");
    let _ = write!(h, "<li>At the end: {}.</li>", e(&r.final_versions_line()));
    let _ = write!(h, "<li>Stranded machines: {}.</li>", r.stranded.len());
    let _ = write!(h, "<li>{}</li>", e(&r.stable_lag_line()));
    let _ = write!(h, "<li>{}</li>", e(&r.off_channel_line()));
    let _ = write!(
        h,
        "<li>Agent rows: {} in the server's store, {} orphaned (the simulator counts {} and {}).</li>",
        r.rows.server.total, r.rows.server.orphaned, r.rows.simulator.total, r.rows.simulator.orphaned
    );
    let c = &r.server;
    let _ = write!(
        h,
        "<li>Server: {} heartbeats, {} updates sent, {} re-sent, {} downloads, {} succeeded, {} failed.</li>",
        c.heartbeats, c.dispatches, c.redispatches, c.downloads, c.successes, c.failures
    );
    let _ = write!(h, "<li>{}.</li>", e(&r.downloads_line()));
    for v in &r.violations {
        let _ = write!(h, "<li class=\"fail\">Invariant broken: {}</li>", e(v));
    }
    h.push_str("</ul>");
    if !r.expectations.is_empty() {
        h.push_str("<h2>Expectations</h2>");
        let rows = r.expectations.iter().map(|x| {
            let mark = if x.passed {
                "<span class=\"ok\">ok</span>"
            } else {
                "<span class=\"fail\">FAIL</span>"
            };
            vec![
                mark.to_owned(),
                e(&x.label),
                e(&x.observed_text),
                e(&x.allowed),
                x.line.to_string(),
            ]
        });
        table(&mut h, &["", "expectation", "observed", "allowed", "line"], rows);
    }
    let _ = write!(
        h,
        "<h2>Share of machines on each version</h2><figure>{}</figure>",
        convergence_svg(r).unwrap_or_default()
    );
    h.push_str("<h2>What happened</h2>");
    let rows = r
        .timeline
        .iter()
        .map(|t| vec![dur(Some(t.at_s)), e(&t.action), e(&t.outcome)]);
    table(&mut h, &["after", "event", "outcome"], rows);
    h.push_str("<h2>Convergence</h2>");
    let rows = r.builds.iter().flat_map(|b| {
        b.convergence.iter().map(move |c| {
            let f = &c.figures;
            vec![
                b.version.to_string(),
                c.channel.to_string(),
                format!("{} at {}", c.reference, dur(Some(c.reference_s))),
                f.population.to_string(),
                dur(f.t50_s),
                dur(f.t90_s),
                dur(f.t99_s),
                dur(f.t100_s),
            ]
        })
    });
    table(
        &mut h,
        &["build", "channel", "from", "machines", "t50", "t90", "t99", "t100"],
        rows,
    );
    for line in r.never_promoted_lines() {
        let _ = write!(h, "<p>{}</p>", e(&line));
    }
    if !r.stranded.is_empty() {
        h.push_str("<h2>Stranded at the end</h2>");
        let rows = r.stranded.iter().map(|s| {
            vec![
                e(&s.hostname),
                e(&s.site),
                s.version.to_string(),
                s.channel.to_string(),
                s.reason.as_str().to_owned(),
                e(&s.detail),
            ]
        });
        table(
            &mut h,
            &["machine", "site", "runs", "channel", "reason", "detail"],
            rows,
        );
    }
    if !r.off_channel.is_empty() {
        let _ = write!(h, "<h2>Off channel at the end</h2><p>{}</p>", e(OFF_CHANNEL_MEANS));
        let rows = r.off_channel.iter().map(|m| {
            vec![
                e(&m.hostname),
                e(&m.group),
                m.build.to_string(),
                m.channel.to_string(),
                m.reason.as_str().to_owned(),
                format!(
                    "{} ({})",
                    dur(Some(m.since_s)),
                    r.scenario.start.plus(Duration::from_secs_f64(m.since_s))
                ),
            ]
        });
        table(&mut h, &["machine", "group", "runs", "channel", "why", "since"], rows);
    }
    if !r.rows.orphans.is_empty() {
        h.push_str("<h2>Orphaned rows</h2>");
        let rows = r.rows.orphans.iter().map(|o| {
            vec![
                e(&o.hostname),
                e(&o.device_id),
                o.version.map_or_else(|| "—".into(), |v| v.to_string()),
                e(&o.now_as),
            ]
        });
        table(
            &mut h,
            &["machine", "old row's device id", "shows", "now registered as"],
            rows,
        );
    }
    h.push_str("</body></html>\n");
    h
}
