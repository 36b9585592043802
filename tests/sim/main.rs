//! Simulation tests: shipped scenarios, determinism, transports, the
//! convergence arithmetic, random fleets against the model's promises, bad
//! scenario files and the `rmmsim run` command line.

mod check;
mod cli;
mod common;
mod convergence;
mod determinism;
mod files;
mod off_channel;
mod properties;
mod scenarios;
mod stable_lag;
mod timeline;
mod transports;
