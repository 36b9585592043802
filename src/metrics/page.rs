//! What the report says to people, section by section: the verdict, one
//! paragraph on the run, in short, expectations, the chart, what happened,
//! convergence, log signatures, stranded, off channel and orphaned rows. Built once as a
//! [`Document`]; `report.md` and `report.html` are its two renderings.

use std::time::Duration;

use super::document::{Block, Document, Mark, Text};
use super::hover::hover_html;
use super::logs::Logs;
use super::report::Report;
use super::sentences::OFF_CHANNEL_MEANS;
use super::svg::chart;
use crate::clock::Timestamp;

/// Rows of long lists shown before "and N more".
const LIST_LIMIT: usize = 25;

fn dur(s: f64) -> String {
    crate::clock::short(Duration::from_secs_f64(s.max(0.0)))
}

fn opt_dur(s: Option<f64>) -> String {
    s.map_or_else(|| "—".to_owned(), dur)
}

fn date(start: Timestamp, s: f64) -> String {
    let t = start.plus(Duration::from_secs_f64(s)).to_string();
    // 2026-05-28T00:00:00Z → 2026-05-28 00:00
    t.get(..16).map_or(t.clone(), |d| d.replace('T', " "))
}

/// A table of at most [`LIST_LIMIT`] rows.
fn table<const N: usize>(head: [&str; N], rows: impl ExactSizeIterator<Item = [Text; N]>) -> Block {
    let total = rows.len();
    Block::Table {
        head: head.iter().map(|h| (*h).to_owned()).collect(),
        rows: rows.take(LIST_LIMIT).map(Vec::from).collect(),
        more: total.saturating_sub(LIST_LIMIT),
    }
}

fn t(s: impl ToString) -> Text {
    Text::plain(s.to_string())
}

/// The report as a document.
pub fn document(r: &Report) -> Document {
    let s = &r.scenario;
    let mut blocks = Vec::new();
    if !s.description.is_empty() {
        blocks.push(Block::Para(s.description.clone()));
    }
    blocks.push(Block::Para(format!(
        "{} machines over {} from {}; seed {}, transport {}. Simulated in {:.1} s of wall time ({:.0} heartbeats per second).",
        s.fleet,
        dur(s.duration_s),
        s.start,
        s.seed,
        s.transport,
        r.wall.wall_s,
        r.wall.heartbeats_per_wall_s
    )));
    blocks.push(Block::Heading("In short".into()));
    blocks.push(Block::List(summary(r)));
    expectations(&mut blocks, r);
    blocks.push(Block::Heading("Share of machines on each version".into()));
    blocks.push(Block::Chart);
    blocks.push(Block::Heading("What happened".into()));
    blocks.push(table(
        ["after", "date (UTC)", "event", "outcome"],
        r.timeline
            .iter()
            .map(|e| [t(dur(e.at_s)), t(date(s.start, e.at_s)), t(&e.action), t(&e.outcome)]),
    ));
    convergence(&mut blocks, r);
    logs(&mut blocks, r);
    end_state(&mut blocks, r);
    Document {
        title: s.name.clone(),
        verdict: if r.passed {
            Text::marked("passed", Mark::Ok)
        } else {
            Text::marked("FAILED", Mark::Fail)
        },
        blocks,
    }
}

/// `report.md`.
pub fn markdown(r: &Report) -> String {
    document(r).markdown("convergence.svg")
}

/// `report.html`: one self-contained page, the chart inline with its hover
/// values (an inline script), nothing fetched.
pub fn html(r: &Report) -> String {
    let figure = chart(r).map_or_else(|_| String::new(), |d| d.svg + &hover_html(r, &d.panels));
    document(r).html(&figure)
}

fn summary(r: &Report) -> Vec<(Text, Vec<String>)> {
    let item = |s: String| (Text::plain(s), Vec::new());
    let stranded = if r.stranded.is_empty() {
        "Nobody is stranded.".to_owned()
    } else {
        let by: Vec<String> = r.stranded_by_reason.iter().map(|(k, n)| format!("{n} {k}")).collect();
        format!("{} machines stranded ({}).", r.stranded.len(), by.join(", "))
    };
    let rows = &r.rows;
    let a = &r.agents;
    let mut items = vec![
        item(format!("At the end: {}.", r.final_versions_line())),
        item(stranded),
        item(r.stable_lag_line()),
        item(r.off_channel_line()),
        item(format!(
            "Agent rows: {} in the server's store, {} orphaned (the simulator counts {} and {}{}).",
            rows.server.total,
            rows.server.orphaned,
            rows.simulator.total,
            rows.simulator.orphaned,
            if rows.agree { "" } else { ": THE VIEWS DIFFER" }
        )),
        {
            let (line, meanings) = r.server_counters();
            (Text::plain(line), meanings)
        },
        item(r.downloads_line()),
    ];
    if let Some(logs) = &r.logs {
        items.push(item(logs.line()));
    }
    items.extend([
        item(format!(
            "Agents: {} installs, {} failed installs, {} digest mismatches; {} sessions, {} lost by the server, {} failed connects.",
            a.installs, a.install_failures, a.digest_mismatches, a.connects, a.connections_lost, a.connect_failures
        )),
    ]);
    if r.violations.is_empty() {
        items.push(item(
            "Invariants held: no stable agent was offered a beta build, no blocked version was offered, no row was lost."
                .into(),
        ));
    } else {
        items.push((
            Text::marked(format!("Invariants broken ({}):", r.violations.len()), Mark::Fail),
            r.violations.iter().take(LIST_LIMIT).cloned().collect(),
        ));
    }
    items
}

fn expectations(blocks: &mut Vec<Block>, r: &Report) {
    if r.expectations.is_empty() {
        return;
    }
    blocks.push(Block::Heading("Expectations".into()));
    blocks.push(table(
        ["", "expectation", "observed", "allowed", "line"],
        r.expectations.iter().map(|e| {
            let mark = if e.passed {
                Text::marked("ok", Mark::Ok)
            } else {
                Text::marked("FAIL", Mark::Fail)
            };
            [mark, t(&e.label), t(&e.observed_text), t(&e.allowed), t(e.line)]
        }),
    ));
}

fn convergence(blocks: &mut Vec<Block>, r: &Report) {
    blocks.push(Block::Heading("Convergence".into()));
    blocks.push(Block::Para(
        "Time from each build's publish (beta) or promote (stable) until 50/90/99/100 % of that channel's machines ran it or newer."
            .into(),
    ));
    let rows: Vec<[Text; 9]> = r
        .builds
        .iter()
        .flat_map(|b| {
            b.convergence.iter().map(move |c| {
                let f = &c.figures;
                [
                    t(b.version),
                    t(c.channel),
                    t(format!("{} at {}", c.reference, dur(c.reference_s))),
                    t(f.population),
                    t(opt_dur(f.t50_s)),
                    t(opt_dur(f.t90_s)),
                    t(opt_dur(f.t99_s)),
                    t(opt_dur(f.t100_s)),
                    t(format!("{}/{}", f.reached, f.population)),
                ]
            })
        })
        .collect();
    // Every build and channel: this table is never cut.
    blocks.push(Block::Table {
        head: [
            "build", "channel", "from", "machines", "t50", "t90", "t99", "t100", "reached",
        ]
        .map(str::to_owned)
        .to_vec(),
        rows: rows.into_iter().map(Vec::from).collect(),
        more: 0,
    });
    blocks.extend(r.never_promoted_lines().into_iter().map(Block::Para));
}

/// Per version, the signatures the server saw (U13); then its own events.
fn logs(blocks: &mut Vec<Block>, r: &Report) {
    let Some(logs) = &r.logs else { return };
    blocks.push(Block::Heading("Log signatures".into()));
    if logs.versions.iter().all(|v| v.signatures.is_empty()) {
        blocks.push(Block::Para(match logs.lines {
            0 => "The server received no log line from an agent.".into(),
            n => format!("The server received {n} log lines and holds no signature for them."),
        }));
    } else {
        agent_logs(blocks, logs);
    }
    if !logs.server.is_empty() {
        blocks.push(Block::Para(
            "The server's own warnings and errors, under its pseudo-agent GuruRMM Server:".into(),
        ));
        blocks.push(table(
            ["level", "signature", "times", "first message"],
            logs.server
                .iter()
                .map(|s| [t(&s.level), t(&s.signature), t(s.lines), t(&s.sample)]),
        ));
    }
}

/// The agents' signatures, version by version.
fn agent_logs(blocks: &mut Vec<Block>, logs: &Logs) {
    blocks.push(Block::Para(
        "Per version, what agents logged on it, grouped by signature: lines per machine-hour the server saw agents \
         connected on the version; *new*: first seen on that version."
            .into(),
    ));
    let rate = |r: Option<f64>| r.map_or_else(|| "—".to_owned(), |r| format!("{r:.3}"));
    let rows: Vec<[Text; 8]> = logs
        .versions
        .iter()
        .flat_map(|v| {
            v.signatures.iter().map(move |s| {
                [
                    t(v.version),
                    t(format!("{:.1}", v.machine_hours)),
                    match (s.new, s.level.as_str()) {
                        (true, "error") => Text::marked("new", Mark::Fail),
                        (true, _) => t("new"),
                        (false, _) => t(""),
                    },
                    t(&s.level),
                    t(&s.signature),
                    t(s.lines),
                    t(s.machines),
                    t(rate(s.per_machine_hour)),
                ]
            })
        })
        .collect();
    blocks.push(table(
        [
            "version",
            "machine-hours",
            "",
            "level",
            "signature",
            "lines",
            "machines",
            "per machine-hour",
        ],
        rows.into_iter(),
    ));
}

fn end_state(blocks: &mut Vec<Block>, r: &Report) {
    if !r.stranded.is_empty() {
        blocks.push(Block::Heading("Stranded at the end".into()));
        blocks.extend(r.refused_promote_lines().into_iter().map(Block::Para));
        blocks.push(table(
            ["machine", "site", "runs", "channel", "reason", "detail"],
            r.stranded.iter().map(|s| {
                [
                    t(&s.hostname),
                    t(&s.site),
                    t(s.version),
                    t(s.channel),
                    t(s.reason.as_str()),
                    t(r.stranded_detail(s)),
                ]
            }),
        ));
    }
    if !r.off_channel.is_empty() {
        blocks.push(Block::Heading("Off channel at the end".into()));
        blocks.push(Block::Para(OFF_CHANNEL_MEANS.into()));
        blocks.push(table(
            ["machine", "group", "runs", "channel", "why", "since"],
            r.off_channel.iter().map(|m| {
                [
                    t(&m.hostname),
                    t(&m.group),
                    t(m.build),
                    t(m.channel),
                    t(m.reason.as_str()),
                    t(format!("{} ({})", dur(m.since_s), date(r.scenario.start, m.since_s))),
                ]
            }),
        ));
    }
    if !r.rows.orphans.is_empty() {
        blocks.push(Block::Heading("Orphaned rows".into()));
        blocks.push(Block::Para(
            "Rows left behind when a machine came back under a new device id (U12): someone has to delete them.".into(),
        ));
        blocks.push(table(
            ["machine", "old row's device id", "shows", "now registered as"],
            r.rows.orphans.iter().map(|o| {
                let shows = o.version.map_or_else(|| "—".to_owned(), |v| v.to_string());
                [t(&o.hostname), t(&o.device_id), t(shows), t(&o.now_as)]
            }),
        ));
    }
}

/// A line of `index.html`: one scenario's report and its verdict.
#[derive(Debug, Clone)]
pub struct IndexEntry {
    /// The scenario's name.
    pub name: String,
    /// Its folder, relative to the index.
    pub folder: String,
    /// Its one-line description.
    pub description: String,
    /// Every expectation held and no invariant was broken.
    pub passed: bool,
    /// Machines.
    pub fleet: usize,
    /// Simulated time, seconds.
    pub duration_s: f64,
    /// What failed: expectations (label, observed, allowed) and broken invariants.
    pub failed: Vec<String>,
}

impl IndexEntry {
    /// The entry of a report written to `folder` (relative to the index).
    pub fn new(r: &Report, folder: impl Into<String>) -> Self {
        let mut failed: Vec<String> = r
            .expectations
            .iter()
            .filter(|e| !e.passed)
            .map(|e| format!("{}: observed {}, allowed {}", e.label, e.observed_text, e.allowed))
            .collect();
        if !r.violations.is_empty() {
            failed.push(format!("{} invariants broken", r.violations.len()));
        }
        Self {
            name: r.scenario.name.clone(),
            folder: folder.into(),
            description: r.scenario.description.clone(),
            passed: r.passed,
            fleet: r.scenario.fleet,
            duration_s: r.scenario.duration_s,
            failed,
        }
    }
}

/// `index.html`: one page linking every report of a run of several
/// scenarios, each with its verdict and what failed; self-contained like
/// the reports.
pub fn index_html(entries: &[IndexEntry]) -> String {
    use std::fmt::Write;
    let e = |s: &str| quick_xml::escape::escape(s).into_owned();
    let failed = entries.iter().filter(|x| !x.passed).count();
    let verdict = if failed == 0 {
        "<span class=\"ok\">all passed</span>".to_owned()
    } else {
        format!("<span class=\"fail\">{failed} FAILED</span>")
    };
    let mut h = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} scenarios — rmmsim</title><style>{}</style></head><body><h1>{} scenarios: {verdict}</h1>\n",
        entries.len(),
        super::document::STYLE,
        entries.len()
    );
    h.push_str("<table><tr><th>scenario</th><th>verdict</th><th>machines</th><th>simulated</th><th>what failed</th><th>story</th></tr>\n");
    for x in entries {
        let folder = e(&x.folder);
        let mark = if x.passed {
            "<span class=\"ok\">passed</span>"
        } else {
            "<span class=\"fail\">FAILED</span>"
        };
        let what: Vec<String> = x.failed.iter().map(|f| e(f)).collect();
        let _ = writeln!(
            h,
            "<tr><td><a href=\"{folder}/report.html\">{}</a> (<a href=\"{folder}/convergence.svg\">chart</a>, <a href=\"{folder}/report.json\">json</a>)</td><td>{mark}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            e(&x.name),
            x.fleet,
            dur(x.duration_s),
            what.join("<br>"),
            e(&x.description)
        );
    }
    h.push_str("</table></body></html>\n");
    h
}
