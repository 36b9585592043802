//! Integration tests: the real server on 127.0.0.1:0, driven over HTTP and
//! WebSocket. Test names carry the rule they check (U1–U12 of
//! `update-model.md`).

mod arbitrary_input;
mod bad_input;
mod common;
mod delivery;
mod downloads;
mod identity;
mod persistence;
mod rollouts;
mod scan;
mod swarm;
