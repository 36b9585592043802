//! Simulation tests: shipped scenarios, determinism, transports, the
//! convergence arithmetic, office-hours mornings, the periodic rescan,
//! random fleets against the model's promises, agents' logs, bad scenario files, scenarios
//! built in code and the `rmmsim run` command line. Tests build their
//! scenarios with `scenario::PlanBuilder` (and write the files the command
//! line reads with its `to_toml`); only the tests of the file format write
//! TOML.

mod builder;
mod check;
mod cli;
mod common;
mod convergence;
mod determinism;
mod enrolment_cap;
mod fidelity;
mod files;
mod logs;
mod off_channel;
mod office_hours;
mod properties;
mod report_forms;
mod rescan;
mod scenarios;
mod stable_lag;
mod timeline;
mod transports;
