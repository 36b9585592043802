//! `rmmsim swarm`: real-time agents against a running server.

use std::process::ExitCode;

use anyhow::Context;

use super::{SwarmArgs, UsageError, shutdown_signal};
use crate::sim;
use crate::swarm::{self, Refusal, StepReport, SwarmConfig, timing};

/// Connects the agents (raising the open-files limit for them), then prints
/// each measured step: a line for people on stderr, a JSON line on stdout.
/// Runs until the ramp ends, or with `--agents` until Ctrl-C or SIGTERM; a
/// refused hello is told on stderr at once, and when the server refuses
/// every agent it stops with an error (exit 1).
pub fn swarm(args: SwarmArgs) -> anyhow::Result<ExitCode> {
    let server = swarm::parse_server(&args.server)?;
    let hold = args.agents.is_some();
    let steps = match (args.agents, args.steps) {
        (Some(n), _) => vec![n],
        (None, Some(steps)) => steps.0,
        (None, None) => return Err(UsageError::new("give --agents or --steps").into()),
    };
    let most = steps.iter().copied().max().unwrap_or(0) as u64;
    let limit = sim::ensure_open_files(most + 64)?;
    eprintln!("rmmsim swarm: up to {most} agents against {server} (open files limit {limit})");
    let config = SwarmConfig {
        server,
        site_key: args.site_key,
        steps,
        heartbeat: args.heartbeat,
        window: args.window,
        hold,
        version: args.version,
        platform: args.platform,
        sources: args.sources,
        seed: args.seed,
        download: timing::DOWNLOAD,
        install: timing::INSTALL,
        restart: timing::RESTART,
        histogram: args.histogram,
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    runtime.block_on(async move {
        tokio::select! {
            result = swarm::run(config, print_step, print_refusal) => result,
            () = shutdown_signal() => Ok(()),
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

fn print_step(step: &StepReport) {
    let refused = match step.refused_agents {
        0 => String::new(),
        n => format!(", {n} refused ({} hellos refused)", step.hello_refused),
    };
    eprintln!(
        "{} agents, {} connected{refused}: {:.0} heartbeats/s, round trip p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        step.agents,
        step.connected,
        step.heartbeats as f64 / step.window_s.max(1e-9),
        step.rtt_ms.p50,
        step.rtt_ms.p99,
        step.rtt_ms.max
    );
    println!("{}", serde_json::to_string(step).unwrap_or_default());
}

/// The first refused hello of each kind, as it happens; the rest are counted
/// in the JSON lines (`hello_refused`, `refused_agents`).
fn print_refusal(refusal: &Refusal) {
    eprintln!("rmmsim swarm: the server refused a hello: {refusal} (refused agents try again later)");
}
