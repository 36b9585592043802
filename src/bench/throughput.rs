//! Simulator throughput: heartbeats per wall second and peak memory for a
//! fleet of always-on agents, one child process per run.

use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::peak_rss_bytes;
use crate::clock::Timestamp;
use crate::protocol::{Channel, Version};
use crate::scenario::builder::{Build, Client, Fleet, Log, LogLevel, PlanBuilder};
use crate::sim::{self, SimOptions, TransportKind};

/// One throughput run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimResult {
    pub transport: String,
    pub agents: usize,
    /// Simulated time, seconds.
    pub simulated_s: f64,
    /// Heartbeats the server handled.
    pub heartbeats: u64,
    /// One log line per agent per this many heartbeats, on average
    /// (`None`: agents logged nothing).
    #[serde(default)]
    pub log_every: Option<u64>,
    /// Log lines the server received.
    #[serde(default)]
    pub logs: u64,
    /// Wall time of the simulation, seconds.
    pub wall_s: f64,
    /// Heartbeats per wall second.
    pub heartbeats_per_wall_s: f64,
    /// Peak resident memory of the process, bytes.
    pub peak_rss_bytes: u64,
    /// Why the run did not happen or failed (e.g. not enough open files).
    pub error: Option<String>,
}

/// The fleet of a throughput run: `agents` always-on agents, 60 s heartbeats,
/// for as long as it takes to reach about `heartbeats` heartbeats; with
/// `log_every`, each agent logs an error line per that many heartbeats on
/// average (a Poisson process, as in any scenario).
fn plan(agents: usize, heartbeats: u64, log_every: Option<u64>) -> anyhow::Result<crate::scenario::Plan> {
    let minutes = heartbeats.div_ceil(agents.max(1) as u64).max(2);
    let span = Duration::from_secs(60 * minutes);
    let start: Timestamp = "2026-01-05T00:00:00Z".parse()?;
    let version = Version::new(1, 0, 0);
    let mut builder = PlanBuilder::new(&format!("bench-{agents}"), start, span);
    if let Some(n) = log_every {
        // 60 heartbeats an hour.
        let per_hour = 60.0 / n.max(1) as f64;
        builder = builder.agent(|a| a.log(Log::new(LogLevel::Error, "service crashed: {n}", per_hour)));
    }
    let plan = builder
        .seed(1)
        .sample_every(span)
        .client(Client::new("bench").site("site"))
        .build(Build::new(version).channel(Channel::Stable).published(Duration::ZERO))
        .fleet(Fleet::new(agents as u64, "bench/site", version))
        .check()?;
    Ok(plan)
}

/// Runs one throughput measurement in this process (`rmmsim bench-sim`).
pub fn sim_once(
    agents: usize,
    transport: TransportKind,
    heartbeats: u64,
    log_every: Option<u64>,
) -> anyhow::Result<SimResult> {
    let plan = plan(agents, heartbeats, log_every)?;
    let outcome = sim::run(
        &plan,
        &SimOptions {
            transport,
            progress: None,
        },
    )?;
    let wall_s = outcome.wall.as_secs_f64();
    Ok(SimResult {
        transport: transport.to_string(),
        agents,
        simulated_s: plan.duration.as_secs_f64(),
        heartbeats: outcome.counters.heartbeats,
        log_every,
        logs: outcome.counters.logs,
        wall_s,
        heartbeats_per_wall_s: outcome.counters.heartbeats as f64 / wall_s.max(1e-9),
        peak_rss_bytes: peak_rss_bytes(),
        error: None,
    })
}

/// Runs one throughput measurement in a child process, so its peak memory is its own.
pub fn sim_in_child(
    agents: usize,
    transport: TransportKind,
    heartbeats: u64,
    log_every: Option<u64>,
) -> anyhow::Result<SimResult> {
    let exe = std::env::current_exe().context("finding the rmmsim executable")?;
    let out = Command::new(exe)
        .args([
            "bench-sim",
            "--agents",
            &agents.to_string(),
            "--transport",
            &transport.to_string(),
        ])
        .args(["--heartbeats", &heartbeats.to_string()])
        .args(log_every.map(|n| format!("--log-every={n}")))
        .output()
        .context("running rmmsim bench-sim")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    match stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<SimResult>(l).ok())
    {
        Some(result) => Ok(result),
        None => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let why = stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no output")
                .trim();
            Ok(SimResult {
                transport: transport.to_string(),
                agents,
                simulated_s: 0.0,
                heartbeats: 0,
                log_every,
                logs: 0,
                wall_s: 0.0,
                heartbeats_per_wall_s: 0.0,
                peak_rss_bytes: 0,
                error: Some(why.trim_start_matches("error: ").to_owned()),
            })
        }
    }
}

/// Sleeps a little between child runs so one run's teardown (sockets in
/// TIME_WAIT, freed memory) does not weigh on the next.
pub fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}
