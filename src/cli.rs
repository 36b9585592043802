//! The command line: clap definitions, and one library call per subcommand.

#![allow(clippy::print_stdout, clippy::print_stderr)] // the edge: talking to the user is its job

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::clock::Clock;
use crate::protocol::{Channel, Platform, Version};
use crate::server::publish::{self, Content, DigestMode, Publication};
use crate::server::store::SqliteStore;
use crate::server::{self, AppState, Core, CoreConfig, HealthGate, RunOptions};
use crate::sim::{SimOptions, TransportKind};
use crate::{metrics, scenario, sim};

/// rmmsim: know what an agent-update rollout will do to a fleet before it ships.
#[derive(Debug, Parser)]
#[command(name = "rmmsim", version, about, propagate_version = false)]
pub struct Cli {
    /// Log level on stderr: error, warn, info, debug or trace (default:
    /// info for serve, warn otherwise, so a simulation's progress is not
    /// buried under the server's log).
    #[arg(long, global = true, env = "RMMSIM_LOG")]
    pub log_level: Option<tracing::Level>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the update server for real (wall clock, SQLite file).
    Serve(ServeArgs),
    /// Put a build into a downloads folder as a release pipeline does (U8).
    Publish(PublishArgs),
    /// Simulate scenarios in virtual time and write their reports.
    Run(RunArgs),
}

/// `rmmsim run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario files (TOML).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Override every scenario's seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where reports go: <out>/<scenario name>/.
    #[arg(long, default_value = "reports")]
    pub out: PathBuf,
    /// Multiply every fleet count (at least one machine per entry).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// How agents reach the server.
    #[arg(long, value_enum, default_value_t = TransportKind::WsMem)]
    pub transport: TransportKind,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// `rmmsim serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (IP literal and port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The downloads folder to scan for builds (created if missing).
    #[arg(long, default_value = "downloads")]
    pub downloads: PathBuf,
    /// SQLite database file (created and migrated if missing).
    #[arg(long, default_value = "rmmsim.sqlite3")]
    pub db: PathBuf,
    /// Bearer token for /api; a random one is generated and printed when unset.
    #[arg(long, env = "RMMSIM_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Prefix of the download URLs sent to agents (default: http://<listen>).
    #[arg(long)]
    pub public_url: Option<String>,
    /// Health gate: successful beta updates needed before a promote (U9).
    #[arg(long, default_value_t = HealthGate::default().min_successes)]
    pub min_successes: u64,
    /// Health gate: highest failure rate a promote accepts (U9).
    #[arg(long, default_value_t = HealthGate::default().max_failure_rate)]
    pub max_failure_rate: f64,
    /// Rescan the downloads folder this often ("0s": only on POST /api/updates/rescan).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub rescan_every: Duration,
}

/// What the `.sha256` of a published build holds.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DigestArg {
    /// The true digest.
    Correct,
    /// A wrong one: agents refuse the download.
    Corrupt,
    /// None: the scanner skips the build.
    Missing,
}

/// `rmmsim publish`.
#[derive(Debug, Args)]
#[command(disable_version_flag = true)]
pub struct PublishArgs {
    /// The downloads folder (created if missing).
    #[arg(long)]
    pub downloads: PathBuf,
    /// The build version, MAJOR.MINOR.PATCH.
    #[arg(long)]
    pub version: Version,
    /// The platform, e.g. windows-amd64.
    #[arg(long)]
    pub platform: Platform,
    /// Size of the generated build (e.g. 512KiB, 8MiB), when no --file is given.
    #[arg(long, default_value = "1MiB", conflicts_with = "file")]
    pub size: bytesize::ByteSize,
    /// Publish this file's bytes instead of generated ones.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// What the .channel sidecar says. Builds land as beta (U8).
    #[arg(long, default_value = "beta", value_parser = parse_channel)]
    pub channel: Channel,
    /// What the .sha256 holds.
    #[arg(long, value_enum, default_value = "correct")]
    pub digest: DigestArg,
    /// Replace the build if it is already there.
    #[arg(long)]
    pub force: bool,
}

fn parse_channel(s: &str) -> Result<Channel, String> {
    s.parse().map_err(|e: crate::protocol::ChannelError| e.to_string())
}

impl Cli {
    /// The log level to use.
    pub fn log_level(&self) -> tracing::Level {
        match (self.log_level, &self.command) {
            (Some(level), _) => level,
            (None, Command::Serve(_)) => tracing::Level::INFO,
            (None, _) => tracing::Level::WARN,
        }
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Publish(args) => publish_cmd(args),
        Command::Run(args) => run_cmd(args),
    }
}

/// The command that reruns one scenario exactly.
fn repro(file: &std::path::Path, seed: u64, args: &RunArgs) -> String {
    let mut cmd = format!("rmmsim run {} --seed {seed}", file.display());
    if args.scale != 1.0 {
        cmd += &format!(" --scale {}", args.scale);
    }
    if args.transport != TransportKind::WsMem {
        cmd += &format!(" --transport {}", args.transport);
    }
    cmd
}

fn run_cmd(args: RunArgs) -> anyhow::Result<ExitCode> {
    if !(args.scale > 0.0 && args.scale.is_finite()) {
        eprintln!("error: --scale must be a positive number");
        return Ok(ExitCode::from(2));
    }
    // Every file is checked before anything runs.
    let mut plans = Vec::new();
    let mut bad = false;
    for file in &args.files {
        match scenario::load(file) {
            Ok(mut plan) => {
                if let Some(seed) = args.seed {
                    plan.seed = seed;
                }
                plan.scale(args.scale);
                plans.push((file, plan));
            }
            Err(e) => {
                eprintln!("error: {e}");
                bad = true;
            }
        }
    }
    if bad {
        return Ok(ExitCode::from(2));
    }
    let options = SimOptions {
        transport: args.transport,
        progress: !args.quiet,
    };
    let mut failed = 0;
    for (file, plan) in &plans {
        let report = sim::execute(plan, &options).with_context(|| format!("running {}", file.display()))?;
        let dir = sim::report_dir(&args.out, plan);
        metrics::write_reports(&dir, &report)?;
        let verdict = if report.passed { "passed" } else { "FAILED" };
        println!(
            "{}: {verdict}, {} machines over {} in {:.1} s ({:.0} heartbeats/s) -> {}",
            plan.name,
            report.scenario.fleet,
            crate::clock::short(plan.duration),
            report.wall.wall_s,
            report.wall.heartbeats_per_wall_s,
            dir.join("report.md").display()
        );
        for e in report.expectations.iter().filter(|e| !e.passed) {
            println!(
                "  FAIL {}: observed {}, allowed {} ({}:{})",
                e.label,
                e.observed_text,
                e.allowed,
                file.display(),
                e.line
            );
        }
        for v in &report.violations {
            println!("  INVARIANT BROKEN: {v}");
        }
        if !report.passed {
            failed += 1;
            println!("  reproduce: {}", repro(file, plan.seed, &args));
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.downloads)
        .with_context(|| format!("creating downloads folder {}", args.downloads.display()))?;
    let (token, generated) = match args.admin_token {
        Some(t) if !t.trim().is_empty() => (t.trim().to_owned(), false),
        _ => (random_hex(), true),
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let addr = listener.local_addr()?;
        let store = SqliteStore::open(&args.db).with_context(|| format!("opening database {}", args.db.display()))?;
        let config = CoreConfig {
            downloads: args.downloads.clone(),
            public_url: args.public_url.unwrap_or_else(|| format!("http://{addr}")),
            gate: HealthGate {
                min_successes: args.min_successes,
                max_failure_rate: args.max_failure_rate,
            },
            seed: os_random(),
        };
        let core = Core::open(Box::new(store), Clock::Wall, config).context("loading the server state")?;
        let builds = core.catalog().scan().builds.len();
        let state = AppState::new(core, token.clone());
        println!("rmmsim serve: listening on http://{addr} (WebSocket at ws://{addr}/ws)");
        println!("  downloads: {} ({builds} builds)", args.downloads.display());
        println!("  database:  {}", args.db.display());
        if generated {
            println!("  admin token (generated; set --admin-token or RMMSIM_ADMIN_TOKEN to choose one):");
            println!("  {token}");
        }
        let rescan_every = (!args.rescan_every.is_zero()).then_some(args.rescan_every);
        server::run(
            listener,
            state,
            RunOptions {
                rescan_every,
                flush_every: Some(Duration::from_secs(5)),
            },
            shutdown_signal(),
        )
        .await?;
        println!("rmmsim serve: stopped");
        Ok(ExitCode::SUCCESS)
    })
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

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

fn publish_cmd(args: PublishArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.downloads)
        .with_context(|| format!("creating downloads folder {}", args.downloads.display()))?;
    let publication = Publication {
        version: args.version,
        platform: args.platform,
        content: match args.file {
            Some(path) => Content::File(path),
            None => Content::Synthetic(args.size.as_u64()),
        },
        channel: args.channel,
        digest: match args.digest {
            DigestArg::Correct => DigestMode::Correct,
            DigestArg::Corrupt => DigestMode::Corrupt,
            DigestArg::Missing => DigestMode::Missing,
        },
        overwrite: args.force,
    };
    let out = publish::publish(&args.downloads, &publication)?;
    println!(
        "published {} ({}, {}) into {}",
        out.file,
        bytesize::ByteSize(out.size).display().iec(),
        args.channel,
        args.downloads.display()
    );
    match &out.sha256 {
        Some(d) => println!("  sha256 {d}"),
        None => println!("  no .sha256 written: the scanner will skip this build"),
    }
    Ok(ExitCode::SUCCESS)
}
