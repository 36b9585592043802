//! The update server: every rule of `update-model.md`, served over HTTP and
//! WebSocket. Only this module knows axum.
//!
//! - [`scanner`], [`rules`], [`catalog`]: pure decisions over the downloads
//!   folder (U2, U3, U6, U7).
//! - [`core`]: the state and the update manager (U1, U4, U5, U8–U12).
//! - [`session`]: one connection's protocol logic, socket-free.
//! - [`store`]: persistence (SQLite).
//! - [`http`]: the axum app, WebSocket and downloads.
//! - [`publish`]: writing builds and sidecars (U8–U10).

pub mod catalog;
pub mod core;
pub mod http;
pub mod publish;
pub mod rules;
pub mod scanner;
pub mod session;
pub mod store;

pub use self::core::{Core, CoreConfig, CoreError, HealthGate};
pub use self::http::{AppState, DEFAULT_RESCAN_EVERY, RunOptions, app, run, run_in_process};
