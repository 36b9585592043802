//! Simulation tests: shipped scenarios, determinism, transports, the
//! chart and the report page read back from their text, the
//! convergence arithmetic, office-hours mornings, the periodic rescan,
//! random fleets against the model's promises, agents' logs, bad scenario
//! files (every error of one at once), scenarios built in code, and the
//! `rmmsim run`, `check` and `validate` command lines. Tests build their
//! scenarios with `scenario::PlanBuilder` (and write the files the command
//! line reads with its `to_toml`); only the tests of the file format write
//! TOML.

mod all_errors;
mod builder;
mod charts;
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
mod report_sentences;
mod rescan;
mod scenarios;
mod stable_lag;
mod timeline;
mod transports;
mod validate;
