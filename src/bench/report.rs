//! `reports/bench/bench.json` and `bench.md`.

use std::fmt::Write;
use std::path::Path;

use anyhow::Context;

use super::{BenchReport, CapacityResult, SimResult};

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Writes both files; returns the Markdown.
pub fn write(dir: &Path, report: &BenchReport) -> anyhow::Result<String> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("bench.json"), serde_json::to_string_pretty(report)? + "\n")?;
    let md = markdown(report);
    std::fs::write(dir.join("bench.md"), &md)?;
    Ok(md)
}

/// The Markdown tables.
pub fn markdown(r: &BenchReport) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# rmmsim bench, {}\n\n{} CPUs, {:.1} GiB; open files limit {} (hard {}).\n",
        r.date,
        r.machine.cpus,
        r.machine.memory_bytes as f64 / (1u64 << 30) as f64,
        r.open_files.0,
        r.open_files.1
    );
    simulator_section(&mut md, r);
    if let Some(c) = &r.capacity {
        capacity_section(&mut md, c);
    }
    md
}

/// The simulator's throughput, one row per run.
fn simulator_section(md: &mut String, r: &BenchReport) {
    let _ = writeln!(
        md,
        "## Simulator throughput\n\nAlways-on agents, 60 s heartbeats, in virtual time; each run in its own process. \
         *Per agent*: the growth of peak RSS over the transport's smallest run, per added agent.{}\n",
        r.simulator
            .iter()
            .find_map(|s| s.log_every)
            .map_or_else(String::new, |n| format!(
                " Every agent logs an error line per {n} heartbeats on average (*log lines*: what the server received)."
            ))
    );
    let rows = r
        .simulator
        .iter()
        .map(|s| simulator_row(s, &r.simulator))
        .collect::<Vec<_>>();
    *md += &crate::metrics::md_table_aligned(
        &[
            "transport",
            "agents",
            "simulated",
            "heartbeats",
            "log lines",
            "wall",
            "heartbeats / wall s",
            "peak RSS",
            "per agent",
        ],
        1,
        rows,
    );
}

/// One run's row; its memory per agent is measured against the smallest
/// run of its transport.
fn simulator_row(s: &SimResult, all: &[SimResult]) -> Vec<String> {
    if let Some(e) = &s.error {
        let mut row = vec![s.transport.to_string(), s.agents.to_string(), format!("not run: {e}")];
        row.resize(9, String::new());
        return row;
    }
    let base = all
        .iter()
        .filter(|b| b.transport == s.transport && b.error.is_none() && b.agents < s.agents)
        .min_by_key(|b| b.agents);
    let per_agent = base.map_or_else(
        || "—".to_owned(),
        |b| {
            let grown = s.peak_rss_bytes.saturating_sub(b.peak_rss_bytes) as f64;
            format!("{:.1} KiB", grown / 1024.0 / (s.agents - b.agents) as f64)
        },
    );
    vec![
        s.transport.to_string(),
        s.agents.to_string(),
        crate::clock::short(std::time::Duration::from_secs_f64(s.simulated_s)),
        s.heartbeats.to_string(),
        s.logs.to_string(),
        format!("{:.1} s", s.wall_s),
        format!("{:.0}", s.heartbeats_per_wall_s),
        format!("{:.0} MiB", mib(s.peak_rss_bytes)),
        per_agent,
    ]
}

/// The server's capacity in real time, one row per step of the ramp.
fn capacity_section(md: &mut String, c: &CapacityResult) {
    let _ = writeln!(
        md,
        "\n## Server capacity, real time\n\n`rmmsim serve` and {} `rmmsim swarm` processes on loopback, one heartbeat per {} s per agent. \
         Round trip: heartbeat sent to `ack` received, \
         percentiles over every swarm's heartbeats (their histograms merged).\n",
        c.swarms, c.heartbeat_s
    );
    let rows = c.steps.iter().map(|s| {
        vec![
            s.agents.to_string(),
            s.connected.to_string(),
            format!("{:.0}", s.heartbeats_per_s),
            format!("{:.2} ms", s.rtt_p50_ms),
            format!("{:.2} ms", s.rtt_p99_ms),
            format!("{:.1} ms", s.rtt_max_ms),
            format!("{:.0}% of a core", s.server_cpu_cores * 100.0),
            format!("{:.0} MiB", mib(s.server_rss_bytes)),
        ]
    });
    *md += &crate::metrics::md_table_aligned(
        &[
            "agents",
            "connected",
            "heartbeats/s",
            "p50",
            "p99",
            "max",
            "server CPU",
            "server RSS",
        ],
        0,
        rows,
    );
    let held = c.largest_held.map_or_else(|| "none".to_owned(), |n| n.to_string());
    let _ = writeln!(
        md,
        "\nLargest fleet held with every agent connected and p99 under 100 ms: **{held}**."
    );
    if let Some(limit) = c.server_open_files {
        let _ = writeln!(
            md,
            "The server's open-files limit was {limit}: one descriptor per connected agent."
        );
    }
}
