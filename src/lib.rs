//! rmmsim: a simulation and testing harness for an RMM agent-update rollout.
//!
//! Code map (dependencies point one way: `protocol` ← `server`, `agent`;
//! `sim` → everything; `cli` → `sim`):
//!
//! - [`protocol`]: wire messages, `Version`, `Platform`, `DeviceId`. Pure.
//! - [`clock`]: the one clock (wall, or tokio's paused clock anchored at a date).
//! - [`server`]: the update server (rules U1–U12), axum HTTP + WebSocket, SQLite.
//! - [`cli`]: the command line: clap types in `cli::args`, a module per subcommand.
//! - [`repro`]: the lines that rerun a failed scenario, and the defaults they leave out.

pub mod agent;
pub mod bench;
pub mod check;
pub mod cli;
pub mod clock;
pub mod metrics;
pub mod protocol;
pub mod repro;
pub mod scenario;
pub mod server;
pub mod sim;
pub mod swarm;
