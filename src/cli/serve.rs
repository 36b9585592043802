//! `rmmsim serve`: the update server for real, on the wall clock.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use super::{ServeArgs, UsageError, shutdown_signal};
use crate::clock::Clock;
use crate::server::failpoint::{self, Failpoint};
use crate::server::http::limits;
use crate::server::store::{DbLock, LockError, SqliteStore};
use crate::server::{self, AppState, Core, CoreConfig, HealthGate, RunOptions};

/// How often `serve` writes agents' `last_seen` stamps to the database.
const FLUSH_EVERY: Duration = Duration::from_secs(5);

/// Locks and opens the database, scans the downloads folder, prints where
/// everything is (and the admin token if it made one), and serves until
/// Ctrl-C or SIGTERM. A database another `serve` holds is a usage error
/// (exit 2), found before anything else is touched.
pub fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let failpoint = read_failpoint()?;
    let lock = DbLock::acquire(&args.db).map_err(|e| match e {
        held @ LockError::Held { .. } => anyhow::Error::new(UsageError::new(held.to_string())),
        other => anyhow::Error::new(other),
    })?;
    // Every agent holds a socket: take as many open files as the system allows.
    let open_files = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0);
    std::fs::create_dir_all(&args.downloads)
        .with_context(|| format!("creating downloads folder {}", args.downloads.display()))?;
    let (token, generated) = match &args.admin_token {
        Some(t) if !t.trim().is_empty() => (t.trim().to_owned(), false),
        _ => (random_hex(), true),
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let addr = listener.local_addr()?;
        let mut core = open_core(&args, addr)?;
        core.set_failpoint(failpoint);
        let builds = core.catalog().scan().builds.len();
        let state = AppState::new(core, token.clone());
        println!("rmmsim serve: listening on http://{addr} (WebSocket at ws://{addr}/ws)");
        println!("  downloads: {} ({builds} builds)", args.downloads.display());
        println!("  database:  {} (locked: {})", args.db.display(), lock.path().display());
        println!("  open files limit: {open_files} (about that many agents at most)");
        match args.max_enrolments_per_minute {
            0 => println!("  enrolments: no cap per site key"),
            cap => println!("  enrolments: at most {cap} new agents per site key per minute"),
        }
        if generated {
            println!("  admin token (generated; set --admin-token or RMMSIM_ADMIN_TOKEN to choose one):");
            println!("  {token}");
        }
        // Without a known open-files limit (0), no default budget.
        let max_connections = args
            .max_connections
            .or_else(|| (open_files > 0).then(|| limits::default_max_connections(open_files)));
        match max_connections {
            Some(n) => println!("  agent connections: at most {n} (--max-connections)"),
            None => println!("  agent connections: unbounded (open-files limit unknown; set --max-connections)"),
        }
        let options = RunOptions {
            rescan_every: nonzero(args.rescan_every),
            flush_every: Some(FLUSH_EVERY),
            header_timeout: nonzero(args.header_timeout),
            hello_timeout: nonzero(args.hello_timeout),
            idle_timeout: nonzero(args.idle_timeout),
            max_connections,
        };
        server::run(server::without_nagle(listener), state, options, shutdown_signal()).await?;
        println!("rmmsim serve: stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// The failpoint [`failpoint::ENV`] names, if set (tests of crash
/// consistency only).
fn read_failpoint() -> anyhow::Result<Option<Failpoint>> {
    match std::env::var(failpoint::ENV) {
        Ok(name) if !name.is_empty() => {
            let fp = name
                .parse()
                .map_err(|e| UsageError::new(format!("{}: {e}", failpoint::ENV)))?;
            tracing::warn!("failpoint {fp} armed: the process aborts there");
            Ok(Some(fp))
        }
        _ => Ok(None),
    }
}

/// A duration flag, where "0s" means "never".
fn nonzero(d: humantime::Duration) -> Option<Duration> {
    Some(*d).filter(|d| !d.is_zero())
}

/// The core over the SQLite file, on the wall clock, seeded by the OS.
fn open_core(args: &ServeArgs, addr: std::net::SocketAddr) -> anyhow::Result<Core> {
    let store = SqliteStore::open(&args.db).with_context(|| format!("opening database {}", args.db.display()))?;
    let config = CoreConfig {
        downloads: args.downloads.clone(),
        public_url: args.public_url.clone().unwrap_or_else(|| format!("http://{addr}")),
        gate: HealthGate {
            min_successes: args.min_successes,
            max_failure_rate: args.max_failure_rate,
            max_new_error_rate: args.max_new_error_rate,
        },
        seed: os_random(),
        max_enrolments_per_minute: Some(args.max_enrolments_per_minute).filter(|&cap| cap > 0),
    };
    Core::open(Box::new(store), Clock::Wall, config).context("loading the server state")
}

/// A random 128-bit hex string from the OS (tokens are secrets, never seeded).
fn random_hex() -> String {
    hex::encode(os_random::<[u8; 16]>())
}

/// OS randomness, for what must differ between real servers (tokens, site
/// keys); simulations seed everything from the scenario instead.
#[allow(clippy::disallowed_methods)]
fn os_random<T>() -> T
where
    rand::distr::StandardUniform: rand::distr::Distribution<T>,
{
    rand::random()
}
