//! `rmmsim bench`: how fast the simulator runs and how many agents a server
//! holds, measured here and written to `reports/bench/` as JSON and Markdown.
//!
//! Each measurement that needs its own peak memory figure runs in a child
//! process (`rmmsim bench-sim`, `rmmsim serve`, `rmmsim swarm`), because a
//! process's peak RSS only ever grows.

mod capacity;
mod report;
mod throughput;

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

pub use capacity::CapacityResult;
pub use report::write as write_report;
pub use throughput::{SimResult, sim_once};

use crate::sim::TransportKind;

/// What `rmmsim bench` runs.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Where bench.json and bench.md go.
    pub out: PathBuf,
    /// Fleet sizes for the simulator throughput runs.
    pub sim_agents: Vec<usize>,
    /// Transports for the simulator throughput runs.
    pub transports: Vec<TransportKind>,
    /// Heartbeats each throughput run simulates (its horizon follows).
    pub sim_heartbeats: u64,
    /// Agents of the throughput runs log a line per this many heartbeats
    /// on average (`None`: they log nothing).
    pub log_every: Option<u64>,
    /// Connected fleet sizes for the real-time capacity ramp (empty: skip it).
    pub capacity_steps: Vec<usize>,
    /// Heartbeat interval of the capacity ramp.
    pub capacity_heartbeat: Duration,
    /// Measurement window per capacity step.
    pub capacity_window: Duration,
    /// Most agents one swarm process runs (its open-files limit bounds it).
    pub agents_per_swarm: usize,
}

/// Everything measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// When (UTC).
    pub date: String,
    /// The machine: CPUs and memory, as the OS reports them.
    pub machine: Machine,
    /// The open-files limit (soft, hard) of this process.
    pub open_files: (u64, u64),
    /// Simulator throughput per transport and fleet size.
    pub simulator: Vec<SimResult>,
    /// The real-time capacity ramp.
    pub capacity: Option<CapacityResult>,
}

/// What the bench ran on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Logical CPUs.
    pub cpus: usize,
    /// Total memory, bytes.
    pub memory_bytes: u64,
}

impl Machine {
    /// Reads the machine's figures.
    pub fn here() -> Self {
        let memory_bytes = proc_kib("/proc/meminfo", "MemTotal:").unwrap_or(0) * 1024;
        Self {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes,
        }
    }
}

/// A `Name:   1234 kB` field of a /proc file, in KiB.
pub fn proc_kib(path: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// This process's peak resident memory, bytes (Linux; 0 elsewhere).
pub fn peak_rss_bytes() -> u64 {
    proc_kib("/proc/self/status", "VmHWM:").unwrap_or(0) * 1024
}

/// Runs the whole benchmark, reporting progress on stderr as it goes.
pub fn run(config: &BenchConfig) -> anyhow::Result<BenchReport> {
    let open_files = rlimit::Resource::NOFILE.get().unwrap_or((0, 0));
    let total = config.transports.len() * config.sim_agents.len();
    let mut simulator = Vec::new();
    for transport in &config.transports {
        for &agents in &config.sim_agents {
            let r = throughput::sim_in_child(agents, *transport, config.sim_heartbeats, config.log_every)?;
            progress_line(&format!(
                "[{}/{total}] simulator {transport}, {agents} agents: {}",
                simulator.len() + 1,
                match &r.error {
                    Some(e) => format!("not run: {e}"),
                    None => format!(
                        "{:.0} heartbeats/s, peak RSS {:.0} MiB",
                        r.heartbeats_per_wall_s,
                        r.peak_rss_bytes as f64 / 1048576.0
                    ),
                }
            ));
            simulator.push(r);
            throughput::settle();
        }
    }
    let capacity = if config.capacity_steps.is_empty() {
        None
    } else {
        progress_line(&format!(
            "capacity: serve + swarms, ramping {:?} agents at one heartbeat per {}",
            config.capacity_steps,
            crate::clock::short(config.capacity_heartbeat)
        ));
        Some(capacity::run(config, |s| {
            progress_line(&format!(
                "  {} agents: {} connected, {:.0} heartbeats/s, p50 {:.2} ms, p99 {:.2} ms, server {:.0}% CPU, {:.0} MiB",
                s.agents,
                s.connected,
                s.heartbeats_per_s,
                s.rtt_p50_ms,
                s.rtt_p99_ms,
                s.server_cpu_cores * 100.0,
                s.server_rss_bytes as f64 / 1048576.0
            ))
        })?)
    };
    let date = crate::clock::Clock::Wall.now().to_string();
    Ok(BenchReport {
        date,
        machine: Machine::here(),
        open_files,
        simulator,
        capacity,
    })
}

/// Progress for people, on stderr.
#[allow(clippy::print_stderr)]
fn progress_line(line: &str) {
    eprintln!("{line}");
}
