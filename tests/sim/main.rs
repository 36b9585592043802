//! Simulation tests: shipped scenarios, determinism, transports, the
//! convergence arithmetic, office-hours mornings, the periodic rescan,
//! random fleets against the model's promises, bad scenario files and the
//! `rmmsim run` command line.

mod builder;
mod check;
mod cli;
mod common;
mod convergence;
mod determinism;
mod fidelity;
mod files;
mod off_channel;
mod office_hours;
mod properties;
mod report_forms;
mod rescan;
mod scenarios;
mod stable_lag;
mod timeline;
mod transports;
