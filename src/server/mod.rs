//! The update server: every rule of `update-model.md`, served over HTTP and
//! WebSocket. Only this module knows axum.
//!
//! | Rule | Where it lives |
//! |------|----------------|
//! | U1 server push only | [`Core::heartbeat`]; the push itself in [`session`] |
//! | U2 channel resolution | [`rules::resolve_channel`] |
//! | U3 needs_update | [`rules::needs_update`] |
//! | U4 re-dispatch | [`Core::heartbeat`] (re-send), [`Core::update_result`] (end) |
//! | U5 the other senders | [`Core::manual_update`], [`Core::rollback`] |
//! | U6 scanner | [`scanner::scan_dir`], [`scanner::parse_build_name`] |
//! | U7 latest | [`rules::latest`], [`catalog::Catalog::latest`] |
//! | U8 publish | [`publish::publish`] |
//! | U9 promote | [`Core::promote`], [`Core::gate_check`], [`publish::set_sidecar`] |
//! | U10 rollback | [`Core::rollback`], [`publish::remove_sidecar`] |
//! | U11 rollouts are rows | [`store::RolloutRow`], [`Core::rollouts`] |
//! | U12 device id | [`Core::hello`], [`crate::protocol::DeviceId`] |
//! | U13 log feedback | [`logsig::signature_of`], [`Core::log`], [`Core::log_signatures`], [`self_log`] (the pseudo-agent) |
//!
//! - [`scanner`], [`rules`], [`catalog`]: pure decisions over the downloads
//!   folder (U2, U3, U6, U7).
//! - [`core`]: the state and the update manager (U1, U4, U5, U8–U12).
//! - [`session`]: one connection's protocol logic, socket-free.
//! - [`store`]: persistence (SQLite).
//! - [`http`]: the axum app, WebSocket and downloads.
//! - [`publish`]: writing builds and sidecars (U8–U10).
//! - [`failpoint`]: where `serve` may be told to abort mid-promote or
//!   mid-rollback, to test that a restart finishes it.
//! - [`files`]: opening files of the downloads folder without following
//!   symlinks, and only as the scan saw them.
//! - [`logsig`]: a log message normalised into its signature (U13).
//! - [`self_log`]: the server's own warnings and errors, counted for its
//!   pseudo-agent `GuruRMM Server` (U13).

pub mod catalog;
pub mod core;
pub mod failpoint;
pub mod files;
pub mod http;
pub mod logsig;
pub mod publish;
pub mod rules;
pub mod scanner;
pub mod self_log;
pub mod session;
pub mod store;

pub use self::core::{Core, CoreConfig, CoreError, DEFAULT_MAX_ENROLMENTS_PER_MINUTE, HealthGate, SignatureFilter};
pub use self::http::{
    AppState, DEFAULT_RESCAN_EVERY, DownloadServing, RunOptions, app, run, run_in_process, without_nagle,
};
pub use self::self_log::SERVER_HOSTNAME;
