//! `rmmsim bench`, and `rmmsim bench-sim`, the one throughput run it starts
//! in a child process.

use std::process::ExitCode;

use super::{BenchArgs, BenchSimArgs};
use crate::bench::{self, BenchConfig};

/// `rmmsim bench`: measures, writes reports/bench/, prints the tables.
pub fn bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let config = BenchConfig {
        out: args.out,
        sim_agents: args.sim_agents,
        transports: args.transports,
        sim_heartbeats: args.sim_heartbeats,
        log_every: args.log_every,
        capacity_steps: args.capacity_steps.into_iter().filter(|&n| n > 0).collect(),
        capacity_heartbeat: args.capacity_heartbeat,
        capacity_window: args.capacity_window,
        agents_per_swarm: args.agents_per_swarm.max(1),
    };
    let report = bench::run(&config)?;
    let md = bench::write_report(&config.out, &report)?;
    println!("{md}");
    eprintln!("written to {}", config.out.join("bench.md").display());
    Ok(ExitCode::SUCCESS)
}

/// `rmmsim bench-sim`: one throughput run, as a JSON line.
pub fn bench_sim(args: BenchSimArgs) -> anyhow::Result<ExitCode> {
    let result = bench::sim_once(args.agents, args.transport, args.heartbeats, args.log_every)?;
    println!("{}", serde_json::to_string(&result)?);
    Ok(ExitCode::SUCCESS)
}
