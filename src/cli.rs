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
    /// Real-time simulated agents against a running server; measures heartbeat round trips.
    Swarm(SwarmArgs),
    /// Run every scenario of a folder against its expectations and baseline (for CI).
    Check(CheckArgs),
    /// Two reports (or two scenario files, run first) side by side.
    Compare(CompareArgs),
    /// Measure the simulator's speed and a server's capacity; writes reports/bench/.
    Bench(BenchArgs),
    /// One simulator throughput run, printed as JSON (what `bench` runs in a child process).
    #[command(hide = true)]
    BenchSim(BenchSimArgs),
}

/// `rmmsim check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The scenario folder.
    #[arg(default_value = "scenarios")]
    pub dir: PathBuf,
    /// Write JUnit XML here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Write a Markdown summary (for a pull-request comment) here.
    #[arg(long)]
    pub summary: Option<PathBuf>,
    /// Accept this run's figures as the new baselines (and say what changed).
    #[arg(long)]
    pub update_baselines: bool,
    /// The baseline folder.
    #[arg(long, default_value = "reports/baselines")]
    pub baselines: PathBuf,
    /// Where each scenario's reports go: <out>/<name>/.
    #[arg(long, default_value = "reports")]
    pub out: PathBuf,
    /// Only this scenario (by name); repeatable.
    #[arg(long)]
    pub only: Vec<String>,
    /// How agents reach the server.
    #[arg(long, value_enum, default_value_t = TransportKind::WsMem)]
    pub transport: TransportKind,
    /// Scenarios run at once (default: one per core).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Prefix of the chart links in the summary (default: the report folder,
    /// relative to the summary's folder); e.g. the URL the reports are published at.
    #[arg(long)]
    pub link_base: Option<String>,
}

/// `rmmsim compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// A: a report.json, a report folder, or a scenario file (run first).
    pub a: PathBuf,
    /// B: the same kinds.
    pub b: PathBuf,
    /// Where compare.md and compare.svg go.
    #[arg(long, default_value = "reports/compare")]
    pub out: PathBuf,
    /// Seed for scenario files (default: each file's own).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Transport for scenario files.
    #[arg(long, value_enum, default_value_t = TransportKind::WsMem)]
    pub transport: TransportKind,
}

/// `rmmsim bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Where bench.json and bench.md go.
    #[arg(long, default_value = "reports/bench")]
    pub out: PathBuf,
    /// Fleet sizes of the simulator throughput runs.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
    pub sim_agents: Vec<usize>,
    /// Transports of the throughput runs.
    #[arg(long, value_delimiter = ',', value_enum, default_value = "direct,ws-mem,ws-tcp")]
    pub transports: Vec<TransportKind>,
    /// Heartbeats per throughput run (the simulated horizon follows from it).
    #[arg(long, default_value_t = 1_000_000)]
    pub sim_heartbeats: u64,
    /// Connected fleet sizes of the real-time capacity ramp (0 skips it).
    #[arg(long, value_delimiter = ',', default_value = "1000,5000,10000,15000,19900,25000")]
    pub capacity_steps: Vec<usize>,
    /// Heartbeat interval of the capacity ramp.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub capacity_heartbeat: Duration,
    /// Measurement window of each capacity step.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub capacity_window: Duration,
    /// Most agents per swarm process (each process needs one open file per agent).
    #[arg(long, default_value_t = 9000)]
    pub agents_per_swarm: usize,
}

/// `rmmsim bench-sim`.
#[derive(Debug, Args)]
pub struct BenchSimArgs {
    /// Agents.
    #[arg(long)]
    pub agents: usize,
    /// Transport.
    #[arg(long, value_enum)]
    pub transport: TransportKind,
    /// Heartbeats to simulate.
    #[arg(long, default_value_t = 1_000_000)]
    pub heartbeats: u64,
}

/// `rmmsim swarm`.
#[derive(Debug, Args)]
#[command(disable_version_flag = true)]
pub struct SwarmArgs {
    /// The server: ws://IP:PORT (an IP address, not a host name).
    #[arg(long)]
    pub server: String,
    /// The key of the site the agents join (POST /api/clients/:id/sites gives one).
    #[arg(long, env = "RMMSIM_SITE_KEY", hide_env_values = true)]
    pub site_key: String,
    /// Agents to connect; the swarm then reports every --window until stopped.
    #[arg(long, conflicts_with = "steps", required_unless_present = "steps")]
    pub agents: Option<usize>,
    /// Ramp through these fleet sizes (e.g. 1000,5000,10000), measuring each, then exit.
    #[arg(long, value_delimiter = ',')]
    pub steps: Vec<usize>,
    /// Heartbeat interval.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub heartbeat: Duration,
    /// Measurement window.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub window: Duration,
    /// The version the agents report.
    #[arg(long, default_value = "0.6.58")]
    pub version: Version,
    /// The agents' platform.
    #[arg(long, default_value = "windows-amd64")]
    pub platform: Platform,
    /// Local loopback addresses to connect from (127.0.0.1..N), for more than
    /// ~28,000 connections to one loopback server.
    #[arg(long, default_value_t = 1)]
    pub sources: usize,
    /// Seeds machine ids and jitter (give each swarm against one server its own).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Put each step's round-trip histogram in its JSON line (for merging
    /// several swarms' figures, as `rmmsim bench` does).
    #[arg(long, hide = true)]
    pub histogram: bool,
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
    #[arg(long, default_value_t = server::DEFAULT_RESCAN_EVERY.into())]
    pub rescan_every: humantime::Duration,
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
        Command::Swarm(args) => swarm_cmd(args),
        Command::Check(args) => check_cmd(args),
        Command::Compare(args) => compare_cmd(args),
        Command::Bench(args) => bench_cmd(args),
        Command::BenchSim(args) => {
            let result = crate::bench::sim_once(args.agents, args.transport, args.heartbeats)?;
            println!("{}", serde_json::to_string(&result)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `to` as seen from the folder `from` (both relative to the working folder).
fn relative(from: &std::path::Path, to: &std::path::Path) -> PathBuf {
    let abs = |p: &std::path::Path| std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
    let (from, to) = (abs(from), abs(to));
    let common = from
        .components()
        .zip(to.components())
        .take_while(|(a, b)| a == b)
        .count();
    let mut out = PathBuf::new();
    for _ in from.components().skip(common) {
        out.push("..");
    }
    for c in to.components().skip(common) {
        out.push(c);
    }
    if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    }
}

fn check_cmd(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let options = crate::check::CheckOptions {
        dir: args.dir.clone(),
        baselines: args.baselines.clone(),
        out: args.out.clone(),
        update_baselines: args.update_baselines,
        only: args.only.clone(),
        transport: args.transport,
        jobs: args
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
    };
    let run = match crate::check::run(&options, |r| {
        let verdict = if r.passed() { "passed" } else { "FAILED" };
        let wall = r.report.as_ref().map_or(0.0, |rep| rep.wall.wall_s);
        eprintln!("  {}: {verdict} ({wall:.1} s)", r.name);
    }) {
        Ok(run) => run,
        Err(crate::check::CheckError::Files(errors)) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            return Ok(ExitCode::from(2));
        }
        Err(crate::check::CheckError::Io(e)) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    for r in &run.results {
        let expectations = r.report.as_ref().map_or(0, |rep| rep.expectations.len());
        if r.passed() {
            let baseline = if run.updated_baselines {
                "baseline written"
            } else {
                "baseline held"
            };
            let s = if expectations == 1 { "" } else { "s" };
            println!("{}: passed ({expectations} expectation{s}, {baseline})", r.name);
        } else {
            println!("{}: FAILED", r.name);
            for f in &r.failures {
                println!("  {}", f.line());
            }
            println!("  reproduce: {}", crate::check::repro(&options, r));
        }
        if run.updated_baselines {
            let what = if r.changes.is_empty() {
                "unchanged".to_owned()
            } else {
                r.changes.join("\n    ")
            };
            println!(
                "  baseline {}: {what}",
                crate::check::baseline_path(&options.baselines, &r.name).display()
            );
        }
    }
    if let Some(path) = &args.junit {
        write_file(path, &crate::check::junit(&run))?;
    }
    if let Some(path) = &args.summary {
        let base = match &args.link_base {
            Some(url) => PathBuf::from(url),
            None => relative(path.parent().unwrap_or(std::path::Path::new(".")), &args.out),
        };
        write_file(path, &crate::check::summary(&run, &base))?;
    }
    let failed = run.results.iter().filter(|r| !r.passed()).count();
    println!(
        "check: {} passed, {failed} failed in {:.0} s; reports in {}",
        run.results.len() - failed,
        run.wall_s,
        args.out.display()
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn write_file(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// A report from a report.json, a report folder, or a scenario file (run now).
fn report_from(path: &std::path::Path, args: &CompareArgs) -> anyhow::Result<(String, metrics::Report)> {
    if path.extension().is_some_and(|e| e == "toml") {
        let mut plan = scenario::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Some(seed) = args.seed {
            plan.seed = seed;
        }
        eprintln!("running {} ...", path.display());
        let report = sim::execute(
            &plan,
            &SimOptions {
                transport: args.transport,
                progress: true,
            },
        )?;
        return Ok((path.display().to_string(), report));
    }
    let file = if path.is_dir() {
        path.join("report.json")
    } else {
        path.to_owned()
    };
    let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let report =
        serde_json::from_slice(&bytes).with_context(|| format!("{}: not an rmmsim report.json", file.display()))?;
    Ok((file.display().to_string(), report))
}

fn compare_cmd(args: CompareArgs) -> anyhow::Result<ExitCode> {
    let (a, b) = match (report_from(&args.a, &args), report_from(&args.b, &args)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let names = (a.0.as_str(), b.0.as_str());
    let md = metrics::compare_markdown(&a.1, &b.1, names);
    let svg = metrics::compare_svg(&a.1, &b.1, names).map_err(|e| anyhow::anyhow!("drawing compare.svg: {e}"))?;
    write_file(&args.out.join("compare.md"), &md)?;
    write_file(&args.out.join("compare.svg"), &svg)?;
    println!("{md}");
    eprintln!("written to {}", args.out.join("compare.md").display());
    Ok(ExitCode::SUCCESS)
}

fn bench_cmd(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let config = crate::bench::BenchConfig {
        out: args.out,
        sim_agents: args.sim_agents,
        transports: args.transports,
        sim_heartbeats: args.sim_heartbeats,
        capacity_steps: args.capacity_steps.into_iter().filter(|&n| n > 0).collect(),
        capacity_heartbeat: args.capacity_heartbeat,
        capacity_window: args.capacity_window,
        agents_per_swarm: args.agents_per_swarm.max(1),
    };
    let report = crate::bench::run(&config)?;
    let md = crate::bench::write_report(&config.out, &report)?;
    println!("{md}");
    eprintln!("written to {}", config.out.join("bench.md").display());
    Ok(ExitCode::SUCCESS)
}

fn swarm_cmd(args: SwarmArgs) -> anyhow::Result<ExitCode> {
    let server = crate::swarm::parse_server(&args.server)?;
    let hold = args.agents.is_some();
    let steps = match args.agents {
        Some(n) => vec![n],
        None => args.steps.clone(),
    };
    if steps.is_empty() || steps.contains(&0) || steps.windows(2).any(|w| w[0] >= w[1]) {
        eprintln!("error: --steps must be increasing fleet sizes above 0");
        return Ok(ExitCode::from(2));
    }
    let most = steps.iter().copied().max().unwrap_or(0) as u64;
    let limit = sim::ensure_open_files(most + 64)?;
    eprintln!("rmmsim swarm: up to {most} agents against {server} (open files limit {limit})");
    let config = crate::swarm::SwarmConfig {
        server,
        site_key: args.site_key,
        steps,
        heartbeat: args.heartbeat,
        window: args.window,
        hold,
        version: args.version,
        platform: args.platform,
        sources: args.sources,
        seed: args.seed,
        download: Duration::from_secs(20),
        install: Duration::from_secs(30),
        restart: Duration::from_secs(15),
        histogram: args.histogram,
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    runtime.block_on(async move {
        let run = crate::swarm::run(config, |step| {
            eprintln!(
                "{} agents, {} connected: {:.0} heartbeats/s, round trip p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                step.agents,
                step.connected,
                step.heartbeats as f64 / step.window_s.max(1e-9),
                step.rtt_ms.p50,
                step.rtt_ms.p99,
                step.rtt_ms.max
            );
            println!("{}", serde_json::to_string(step).unwrap_or_default());
        });
        tokio::select! {
            result = run => result,
            () = shutdown_signal() => Ok(()),
        }
    })?;
    Ok(ExitCode::SUCCESS)
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
                if plan.fleet_size() > scenario::MAX_FLEET {
                    eprintln!(
                        "error: {}: --scale {} makes the fleet larger than {} machines",
                        file.display(),
                        args.scale,
                        scenario::MAX_FLEET
                    );
                    bad = true;
                    continue;
                }
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
    // Every agent holds a socket: take as many open files as the system allows.
    let open_files = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0);
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
        println!("  open files limit: {open_files} (about that many agents at most)");
        if generated {
            println!("  admin token (generated; set --admin-token or RMMSIM_ADMIN_TOKEN to choose one):");
            println!("  {token}");
        }
        let rescan_every = Some(*args.rescan_every).filter(|every| !every.is_zero());
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
