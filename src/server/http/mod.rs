//! The HTTP face of the server: `app(state) -> Router`, and `run` to serve it
//! on any listener (a TCP socket, or the simulator's in-memory pipes).

mod api;
mod auth;
mod downloads;
mod error;
pub mod limits;
mod listen;
mod stream;
mod views;
mod ws;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post, put};
use axum::serve::Listener;
use tokio::sync::watch;
use tracing::{info, warn};

use self::limits::Gauges;

pub use downloads::{DownloadServing, download_bytes};
pub use error::ApiError;
pub use listen::without_nagle;

use super::core::{Core, CoreError};
use super::scanner;
use super::self_log::SelfLog;
use crate::protocol::ErrorCode;

struct Shared {
    core: Mutex<Core>,
    admin_token: String,
    shutdown: watch::Sender<bool>,
    next_conn: AtomicU64,
    gauges: Arc<Gauges>,
    download_serving: DownloadServing,
    self_log: SelfLog,
}

/// What every handler shares: the core behind one lock, the admin token, and
/// the signal that tells WebSocket sessions to close.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// State around a core; builds are streamed from disk
    /// ([`DownloadServing::Stream`]).
    pub fn new(core: Core, admin_token: impl Into<String>) -> Self {
        Self::with_downloads(core, admin_token, DownloadServing::default())
    }

    /// State around a core that serves builds as `download_serving` says.
    pub fn with_downloads(core: Core, admin_token: impl Into<String>, download_serving: DownloadServing) -> Self {
        let (shutdown, _) = watch::channel(false);
        let self_log = core.self_log().clone();
        Self(Arc::new(Shared {
            core: Mutex::new(core),
            admin_token: admin_token.into(),
            shutdown,
            next_conn: AtomicU64::new(1),
            gauges: Arc::new(Gauges::new(self_log.clone())),
            download_serving,
            self_log,
        }))
    }

    /// Where the server counts its own warnings and errors (U13), without
    /// taking the core's lock.
    pub fn self_log(&self) -> &SelfLog {
        &self.0.self_log
    }

    /// How builds are served.
    pub fn download_serving(&self) -> DownloadServing {
        self.0.download_serving
    }

    /// Locks the core. Every use is short and never spans an `.await`. A
    /// panic while locked does not poison the server: the core's state only
    /// changes after a successful commit, so it is consistent.
    pub fn core(&self) -> MutexGuard<'_, Core> {
        self.0.core.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The bearer token admin routes need.
    pub fn admin_token(&self) -> &str {
        &self.0.admin_token
    }

    /// A fresh connection id.
    pub fn next_conn_id(&self) -> u64 {
        self.0.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// What the connection limits counted.
    pub(crate) fn gauges(&self) -> &Arc<Gauges> {
        &self.0.gauges
    }

    /// Becomes true when the server shuts down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.0.shutdown.subscribe()
    }

    /// Tells every WebSocket session to close.
    pub fn begin_shutdown(&self) {
        self.0.shutdown.send_replace(true);
        // Dropping every connection closes every session's push channel.
        self.core().disconnect_all();
    }
}

/// The whole HTTP surface.
pub fn app(state: AppState) -> Router {
    let admin = Router::new()
        .route("/agents", get(api::list_agents))
        .route("/agents/{id}", get(api::get_agent))
        .route("/agents/{id}/update", post(api::update_agent))
        .route("/agents/{id}/channel", put(api::agent_channel))
        .route("/clients", get(api::list_clients).post(api::create_client))
        .route("/clients/{id}/sites", post(api::create_site))
        .route("/clients/{id}/channel", put(api::client_channel))
        .route("/sites/{id}/channel", put(api::site_channel))
        .route("/updates/versions", get(api::versions))
        .route("/updates/rescan", post(api::rescan))
        .route("/updates/rollouts", get(api::rollouts))
        .route("/updates/rollouts/{version}/promote", post(api::promote))
        .route("/updates/rollouts/{version}/rollback", post(api::rollback))
        .route("/stats", get(api::stats))
        .route("/logs/signatures", get(api::log_signatures))
        .route("/logs/signatures/{id}", get(api::log_signature))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_token));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/ws", get(ws::upgrade))
        .route("/downloads/{file}", get(downloads::download))
        .nest("/api", admin)
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|method: axum::http::Method| async move {
            ApiError::new(ErrorCode::MethodNotAllowed, format!("{method} is not served here"))
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            error::record_reports,
        ))
        .with_state(state)
}

/// How often `serve` rescans the downloads folder unless told otherwise (a
/// simulation's `[server] rescan_every` defaults to it too).
pub const DEFAULT_RESCAN_EVERY: Duration = Duration::from_secs(30);

/// Options of [`run`].
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Rescan the downloads folder this often, so a publish is seen without a
    /// `POST /api/updates/rescan`. `None`: only on request. A simulation
    /// passes `None` and scans on its own timeline, on the runtime's thread
    /// (`sim::events`): this task's scan runs on another thread, and what
    /// the agents do meanwhile would depend on how long it takes.
    pub rescan_every: Option<Duration>,
    /// Write batched `last_seen` stamps this often (see `Core::flush`);
    /// `None`: only at shutdown.
    pub flush_every: Option<Duration>,
    /// Close a connection whose request headers take longer than this (from
    /// the accept, or the end of its previous request); `None`: never.
    pub header_timeout: Option<Duration>,
    /// Close a WebSocket that has not said a good `hello` this long after its
    /// upgrade; `None`: never.
    pub hello_timeout: Option<Duration>,
    /// Close an admitted session that has sent no frame for this long, or
    /// whose frames the peer has not taken for this long; `None`: never. The
    /// simulator passes `None`: its agents heartbeat as their scenario says
    /// (up to hours apart), and a simulated machine that goes offline closes
    /// its connection itself.
    pub idle_timeout: Option<Duration>,
    /// The most WebSocket sessions at once; a `/ws` request beyond is
    /// answered 503 `server_busy`. Connections of any kind beyond this plus
    /// [`limits::CONNECTION_RESERVE`] are closed as soon as accepted. `None`:
    /// no bound (the simulator's in-memory pipes hold no descriptors).
    pub max_connections: Option<usize>,
}

impl Default for RunOptions {
    /// No periodic work, no connection budget, and the default timeouts.
    fn default() -> Self {
        Self {
            rescan_every: None,
            flush_every: None,
            header_timeout: Some(limits::DEFAULT_HEADER_TIMEOUT),
            hello_timeout: Some(limits::DEFAULT_HELLO_TIMEOUT),
            idle_timeout: Some(limits::DEFAULT_IDLE_TIMEOUT),
            max_connections: None,
        }
    }
}

/// What a WebSocket session is held to: the part of [`RunOptions`] the `/ws`
/// and `/api/stats` handlers read (an extension of the router `run` serves).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionLimits {
    pub hello_timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub max_sessions: Option<usize>,
}

impl From<&RunOptions> for SessionLimits {
    fn from(options: &RunOptions) -> Self {
        Self {
            hello_timeout: options.hello_timeout,
            idle_timeout: options.idle_timeout,
            max_sessions: options.max_connections,
        }
    }
}

impl SessionLimits {
    /// The limits `run` set on the router, or the defaults for an app served
    /// some other way.
    fn of(extension: Option<axum::Extension<Self>>) -> Self {
        extension.map_or_else(|| Self::from(&RunOptions::default()), |e| e.0)
    }
}

/// Serves `app(state)` on `listener` until `shutdown` resolves; then tells the
/// WebSocket sessions to close and waits for the HTTP connections to finish.
pub async fn run<L>(
    listener: L,
    state: AppState,
    options: RunOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: Listener,
{
    let background = Background::start(&state, &options);
    let router = app(state.clone()).layer(axum::Extension(SessionLimits::from(&options)));
    let accept = listen::AcceptLimits {
        max_open: options
            .max_connections
            .map(|n| n.saturating_add(limits::CONNECTION_RESERVE)),
        header_timeout: options.header_timeout,
        write_stall: options.idle_timeout,
    };
    listen::serve(listener, router, state.gauges().clone(), accept, shutdown, || {
        info!("shutting down: closing agent connections");
        state.begin_shutdown();
    })
    .await;
    background.stop(&state);
    Ok(())
}

/// Runs the server's background work without a listener, until `shutdown`
/// resolves: for in-process sessions (the simulator's `direct` transport),
/// which call [`Session`](crate::server::session::Session) themselves.
pub async fn run_in_process(state: AppState, options: RunOptions, shutdown: impl Future<Output = ()>) {
    let background = Background::start(&state, &options);
    shutdown.await;
    state.begin_shutdown();
    background.stop(&state);
}

/// The periodic rescan and flush tasks of a running server.
struct Background(Vec<tokio::task::JoinHandle<()>>);

impl Background {
    fn start(state: &AppState, options: &RunOptions) -> Self {
        let rescanner = options
            .rescan_every
            .map(|every| tokio::spawn(rescan_loop(state.clone(), every)));
        let flusher = options
            .flush_every
            .map(|every| tokio::spawn(flush_loop(state.clone(), every)));
        Self([rescanner, flusher].into_iter().flatten().collect())
    }

    /// Stops the tasks and writes the last batched stamps.
    fn stop(self, state: &AppState) {
        for task in self.0 {
            task.abort();
        }
        if let Err(e) = state.core().flush() {
            warn!("final flush failed: {e}");
        }
    }
}

/// Writes batched `last_seen` stamps periodically.
async fn flush_loop(state: AppState, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = state.core().flush() {
            warn!("flushing last_seen failed: {e}");
        }
    }
}

/// Rescans periodically.
async fn rescan_loop(state: AppState, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = rescan_off_lock(&state, true).await {
            state.self_log().error(&format!("periodic rescan failed: {e}"));
        }
    }
}

/// Why a rescan off the lock failed.
#[derive(Debug, thiserror::Error)]
pub enum RescanError {
    /// The blocking task that scans panicked or was cancelled.
    #[error("scan task: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The downloads folder could not be read.
    #[error("scanning the downloads folder: {0}")]
    Scan(#[source] std::io::Error),
    /// The scan could not be applied (the store refused its rollout rows).
    #[error(transparent)]
    Apply(#[from] CoreError),
}

/// Scans the downloads folder without holding the core's lock (a big
/// folder takes a while), then applies the scan, unless a promote or
/// rollback began meanwhile: its own rescan is newer, and this one may have
/// read the sidecars before it changed them. With `unless_newer`, the
/// result is also dropped if any other scan landed meanwhile. Returns
/// whether the scan was applied.
pub(crate) async fn rescan_off_lock(state: &AppState, unless_newer: bool) -> Result<bool, RescanError> {
    let (ticket, dir) = {
        let core = state.core();
        (core.scan_ticket(), core.config().downloads.clone())
    };
    let scan = tokio::task::spawn_blocking(move || scanner::scan_dir(&dir))
        .await?
        .map_err(RescanError::Scan)?;
    Ok(state.core().apply_scan_since(scan, ticket, unless_newer)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Channel;
    use crate::server::core::testing::Fixture;

    #[tokio::test(start_paused = true)]
    async fn a_rescan_says_which_step_failed() {
        let f = Fixture::new();
        f.publish("1.2.0", Channel::Beta);
        let (faults, dir) = (f.faults.clone(), f.dir);
        let state = AppState::new(f.core, "t");
        faults.fail_from_now();
        let refused = rescan_off_lock(&state, false).await;
        assert!(
            matches!(refused, Err(RescanError::Apply(CoreError::Store(_)))),
            "{refused:?}"
        );
        faults.heal();
        rescan_off_lock(&state, false).await.unwrap();
        std::fs::remove_dir_all(dir.path().join("downloads")).unwrap();
        let gone = rescan_off_lock(&state, false).await;
        assert!(
            matches!(&gone, Err(RescanError::Scan(e)) if e.kind() == std::io::ErrorKind::NotFound),
            "{gone:?}"
        );
    }
}
