//! `report.md`: what happened, the numbers, who is stranded and why, in a
//! page a person takes in at a glance.

use std::fmt::Write;
use std::time::Duration;

use super::report::Report;
use super::sentences::OFF_CHANNEL_MEANS;
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

/// Says how many rows of a long list were left out.
fn and_more(md: &mut String, total: usize) {
    if total > LIST_LIMIT {
        let _ = writeln!(md, "\n…and {} more (all in report.json).", total - LIST_LIMIT);
    }
}

/// Renders the report as Markdown.
pub fn markdown(r: &Report) -> String {
    let mut md = String::new();
    let s = &r.scenario;
    let verdict = if r.passed { "passed" } else { "FAILED" };
    let _ = writeln!(md, "# {}: {verdict}\n", s.name);
    if !s.description.is_empty() {
        let _ = writeln!(md, "{}\n", s.description);
    }
    let _ = writeln!(
        md,
        "{} machines over {} from {}; seed {}, transport {}. Simulated in {:.1} s of wall time ({:.0} heartbeats per second).\n",
        s.fleet,
        dur(s.duration_s),
        s.start,
        s.seed,
        s.transport,
        r.wall.wall_s,
        r.wall.heartbeats_per_wall_s
    );
    summary(&mut md, r);
    expectations(&mut md, r);
    timeline(&mut md, r);
    convergence(&mut md, r);
    end_state(&mut md, r);
    let _ = writeln!(md, "![share of machines on each version over time](convergence.svg)");
    md
}

fn summary(md: &mut String, r: &Report) {
    let _ = writeln!(md, "## In short\n");
    let _ = writeln!(md, "- At the end: {}.", r.final_versions_line());
    let stranded = if r.stranded.is_empty() {
        "nobody is stranded".to_owned()
    } else {
        let by: Vec<String> = r.stranded_by_reason.iter().map(|(k, n)| format!("{n} {k}")).collect();
        format!("{} machines stranded ({})", r.stranded.len(), by.join(", "))
    };
    let _ = writeln!(md, "- {}.", stranded[..1].to_uppercase() + &stranded[1..]);
    let _ = writeln!(md, "- {}", r.stable_lag_line());
    let _ = writeln!(md, "- {}", r.off_channel_line());
    let rows = &r.rows;
    let _ = writeln!(
        md,
        "- Agent rows: {} in the server's store, {} orphaned (the simulator counts {} and {}{}).",
        rows.server.total,
        rows.server.orphaned,
        rows.simulator.total,
        rows.simulator.orphaned,
        if rows.agree { "" } else { ": THE VIEWS DIFFER" }
    );
    let c = &r.server;
    let _ = writeln!(
        md,
        "- Server: {} heartbeats, {} updates sent, {} re-sent, {} downloads, {} succeeded, {} failed.",
        c.heartbeats, c.dispatches, c.redispatches, c.downloads, c.successes, c.failures
    );
    let _ = writeln!(md, "- {}.", r.downloads_line());
    let a = &r.agents;
    let _ = writeln!(
        md,
        "- Agents: {} installs, {} failed installs, {} digest mismatches; {} sessions, {} lost by the server, {} failed connects.",
        a.installs, a.install_failures, a.digest_mismatches, a.connects, a.connections_lost, a.connect_failures
    );
    if r.violations.is_empty() {
        let _ = writeln!(
            md,
            "- Invariants held: no stable agent was offered a beta build, no blocked version was offered, no row was lost.\n"
        );
    } else {
        let _ = writeln!(md, "- **Invariants broken ({}):**", r.violations.len());
        for v in r.violations.iter().take(LIST_LIMIT) {
            let _ = writeln!(md, "  - {v}");
        }
        let _ = writeln!(md);
    }
}

fn expectations(md: &mut String, r: &Report) {
    if r.expectations.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "## Expectations\n\n| | expectation | observed | allowed | line |\n|---|---|---|---|---|"
    );
    for e in &r.expectations {
        let mark = if e.passed { "ok" } else { "**FAIL**" };
        let _ = writeln!(
            md,
            "| {mark} | {} | {} | {} | {} |",
            e.label, e.observed_text, e.allowed, e.line
        );
    }
    let _ = writeln!(md);
}

fn timeline(md: &mut String, r: &Report) {
    let _ = writeln!(
        md,
        "## What happened\n\n| after | date (UTC) | event | outcome |\n|---|---|---|---|"
    );
    for t in &r.timeline {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            dur(t.at_s),
            date(r.scenario.start, t.at_s),
            t.action,
            t.outcome
        );
    }
    let _ = writeln!(md);
}

fn convergence(md: &mut String, r: &Report) {
    let _ = writeln!(
        md,
        "## Convergence\n\nTime from each build's publish (beta) or promote (stable) until 50/90/99/100 % of that channel's machines ran it or newer.\n\n| build | channel | from | machines | t50 | t90 | t99 | t100 | reached |\n|---|---|---|---|---|---|---|---|---|"
    );
    for b in &r.builds {
        for c in &b.convergence {
            let f = &c.figures;
            let _ = writeln!(
                md,
                "| {} | {} | {} at {} | {} | {} | {} | {} | {} | {}/{} |",
                b.version,
                c.channel,
                c.reference,
                dur(c.reference_s),
                f.population,
                opt_dur(f.t50_s),
                opt_dur(f.t90_s),
                opt_dur(f.t99_s),
                opt_dur(f.t100_s),
                f.reached,
                f.population
            );
        }
    }
    for line in r.never_promoted_lines() {
        let _ = writeln!(md, "\n{line}");
    }
    let _ = writeln!(md);
}

fn end_state(md: &mut String, r: &Report) {
    if !r.stranded.is_empty() {
        let _ = writeln!(
            md,
            "## Stranded at the end\n\n| machine | site | runs | channel | reason | detail |\n|---|---|---|---|---|---|"
        );
        for s in r.stranded.iter().take(LIST_LIMIT) {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} |",
                s.hostname,
                s.site,
                s.version,
                s.channel,
                s.reason.as_str(),
                s.detail
            );
        }
        and_more(md, r.stranded.len());
        let _ = writeln!(md);
    }
    if !r.off_channel.is_empty() {
        let _ = writeln!(
            md,
            "## Off channel at the end\n\n{OFF_CHANNEL_MEANS}\n\n| machine | group | runs | channel | why | since |\n|---|---|---|---|---|---|"
        );
        for m in r.off_channel.iter().take(LIST_LIMIT) {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} ({}) |",
                m.hostname,
                m.group,
                m.build,
                m.channel,
                m.reason.as_str(),
                dur(m.since_s),
                date(r.scenario.start, m.since_s)
            );
        }
        and_more(md, r.off_channel.len());
        let _ = writeln!(md);
    }
    if !r.rows.orphans.is_empty() {
        let _ = writeln!(
            md,
            "## Orphaned rows\n\nRows left behind when a machine came back under a new device id (U12): someone has to delete them.\n\n| machine | old row's device id | shows | now registered as |\n|---|---|---|---|"
        );
        for o in r.rows.orphans.iter().take(LIST_LIMIT) {
            let shows = o.version.map_or_else(|| "—".to_owned(), |v| v.to_string());
            let _ = writeln!(md, "| {} | {} | {shows} | {} |", o.hostname, o.device_id, o.now_as);
        }
        and_more(md, r.rows.orphans.len());
        let _ = writeln!(md);
    }
}
