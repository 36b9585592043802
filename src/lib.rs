//! rmmsim: a simulation and testing harness for an RMM agent-update rollout.
//!
//! Code map, lowest layer first; a module imports only modules above it in
//! this list (ARCHITECTURE.md gives the rules and their reasons):
//!
//! - [`protocol`]: wire messages, `Version`, `Platform`, `DeviceId`, digests. Pure.
//! - [`clock`]: the one clock (wall, or tokio's paused clock anchored at a date).
//! - [`http_client`]: one HTTP/1.1 request over any byte stream (downloads, admin calls).
//! - [`server`]: the update server (rules U1–U13), axum HTTP + WebSocket, SQLite.
//! - [`agent`]: one simulated machine: power, sessions, downloads, installs.
//! - [`scenario`]: scenarios from a TOML file or built in code, checked into a plan.
//! - [`metrics`]: what a run recorded, its figures and the reports.
//! - [`sim`]: runs a plan in virtual time: the server, the agents, the timeline.
//! - [`swarm`]: real-time agents against a running server over TCP.
//! - `repro`: the lines that rerun a failed scenario, and the defaults they leave out.
//! - `check`: `rmmsim check`: a folder's scenarios on every transport, baselines.
//! - `bench`: `rmmsim bench`: simulator throughput and the server's capacity.
//! - [`cli`]: the command line: clap types in `cli::args`, a module per subcommand.
//!
//! `repro`, `check` and `bench` serve the command line only and are not
//! part of the library's surface; the other modules are, for the tests, the
//! benches and anyone driving a server or a simulation from Rust.

pub mod agent;
pub(crate) mod bench;
pub(crate) mod check;
pub mod cli;
pub mod clock;
pub mod http_client;
pub mod metrics;
pub mod protocol;
pub(crate) mod repro;
pub mod scenario;
pub mod server;
pub mod sim;
pub mod swarm;
