//! Integration tests: the real server (the app and `server::run` of `rmmsim
//! serve`), driven over HTTP and WebSocket; in memory on the paused clock,
//! but for a few smoke tests on 127.0.0.1:0 (`common.rs` says how). Test
//! names carry the rule they check (U1–U13 of `update-model.md`).

mod arbitrary_input;
mod bad_input;
mod common;
mod crash;
mod delivery;
mod downloads;
mod harness;
mod identity;
mod limits;
mod logs;
mod persistence;
mod process;
mod rollouts;
mod scan;
mod scan_race;
mod swarm;
mod tcp;
mod tenancy;
