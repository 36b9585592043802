//! The command line as clap sees it: every subcommand's flags, their
//! defaults, and the `value_parser`s that refuse a bad value before anything
//! runs (clap then prints its usage error and exits 2).
//!
//! The doc comments here are also `--help`'s text, where `<out>/<name>/`
//! reads as a placeholder; rustdoc would take it for an HTML tag.
#![allow(rustdoc::invalid_html_tags)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::protocol::{Channel, Platform, Version};
use crate::repro::{BASELINES, REPORTS};
use crate::server::http::limits;
use crate::server::{self, HealthGate};
use crate::sim::TransportKind;

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
    /// Check scenario files without running them: every error of each, or what it holds.
    Validate(ValidateArgs),
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
    #[arg(long, default_value = BASELINES)]
    pub baselines: PathBuf,
    /// Where each scenario's reports go: <out>/<name>/.
    #[arg(long, default_value = REPORTS)]
    pub out: PathBuf,
    /// Only this scenario (by name); repeatable.
    #[arg(long)]
    pub only: Vec<String>,
    /// How agents reach the server.
    #[arg(long, default_value_t, value_parser = transport_kind())]
    pub transport: TransportKind,
    /// Scenarios run at once (default: one per core).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Prefix of the chart links in the summary (default: the report folder,
    /// relative to the summary's folder); e.g. the URL the reports are published at.
    #[arg(long)]
    pub link_base: Option<String>,
    /// One JSON object per scenario on stdout (docs/ci.md); everything for
    /// people goes to stderr.
    #[arg(long)]
    pub json: bool,
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
    #[arg(long, default_value_t, value_parser = transport_kind())]
    pub transport: TransportKind,
    /// Show every figure, those equal on both sides too.
    #[arg(long)]
    pub all: bool,
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
    #[arg(long, value_delimiter = ',', value_parser = transport_kind(), default_value = "direct,ws-mem,ws-tcp")]
    pub transports: Vec<TransportKind>,
    /// Heartbeats per throughput run (the simulated horizon follows from it).
    #[arg(long, default_value_t = 1_000_000)]
    pub sim_heartbeats: u64,
    /// Throughput runs' agents log an error line per this many heartbeats, on average (none by default).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub log_every: Option<u64>,
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
    #[arg(long, value_parser = transport_kind())]
    pub transport: TransportKind,
    /// Heartbeats to simulate.
    #[arg(long, default_value_t = 1_000_000)]
    pub heartbeats: u64,
    /// Agents log an error line per this many heartbeats, on average (none by default).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub log_every: Option<u64>,
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
    /// Agents to connect (at least 1); the swarm then reports every --window until stopped.
    #[arg(long, conflicts_with = "steps", required_unless_present = "steps", value_parser = at_least_one)]
    pub agents: Option<usize>,
    /// Ramp through these fleet sizes (e.g. 1000,5000,10000: above 0, each
    /// larger than the one before), measuring each, then exit.
    #[arg(long, value_parser = parse_steps)]
    pub steps: Option<Steps>,
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

/// The fleet sizes of a swarm's ramp: every one above 0, each larger than
/// the one before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Steps(pub Vec<usize>);

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
    #[arg(long, default_value = REPORTS)]
    pub out: PathBuf,
    /// Multiply every fleet count by this positive number (at least one machine per entry).
    #[arg(long, default_value_t = 1.0, value_parser = positive_scale)]
    pub scale: f64,
    /// How agents reach the server.
    #[arg(long, default_value_t, value_parser = transport_kind())]
    pub transport: TransportKind,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// One JSON object per scenario on stdout (docs/ci.md); everything for
    /// people goes to stderr.
    #[arg(long)]
    pub json: bool,
}

/// `rmmsim validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Scenario files, or folders (every *.toml in each).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
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
    /// Health gate (this project's addition, off unless given): refuse a
    /// promote when an `error` log signature first seen on the version is
    /// logged more than this many times per machine-hour on it (U13).
    #[arg(long, value_parser = non_negative_rate)]
    pub max_new_error_rate: Option<f64>,
    /// Rescan the downloads folder this often ("0s": only on POST /api/updates/rescan).
    #[arg(long, default_value_t = server::DEFAULT_RESCAN_EVERY.into())]
    pub rescan_every: humantime::Duration,
    /// New agent rows one site key may enrol per minute; past it a `hello`
    /// with a new device id is refused (`enrolment_rate_limited`). 0: no cap.
    #[arg(long, default_value_t = server::DEFAULT_MAX_ENROLMENTS_PER_MINUTE)]
    pub max_enrolments_per_minute: u32,
    /// Close a connection whose request headers take longer than this ("0s": never).
    #[arg(long, default_value_t = limits::DEFAULT_HEADER_TIMEOUT.into())]
    pub header_timeout: humantime::Duration,
    /// Close a WebSocket that has not said `hello` this long after connecting ("0s": never).
    #[arg(long, default_value_t = limits::DEFAULT_HELLO_TIMEOUT.into())]
    pub hello_timeout: humantime::Duration,
    /// Close an agent's session after this long without a frame from it ("0s": never);
    /// keep it above the agents' heartbeat interval.
    #[arg(long, default_value_t = limits::DEFAULT_IDLE_TIMEOUT.into())]
    pub idle_timeout: humantime::Duration,
    /// Most agent WebSocket connections at once; more are answered 503 server_busy
    /// (default: the open-files limit minus 320 kept for the admin API, downloads and files).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..).map(|n| usize::try_from(n).unwrap_or(usize::MAX)))]
    pub max_connections: Option<usize>,
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

/// `--transport`'s values: the simulator's transports by name (the simulator
/// itself knows nothing of clap).
fn transport_kind() -> impl clap::builder::TypedValueParser<Value = TransportKind> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(TransportKind::ALL.map(TransportKind::name))
        .map(|name: String| TransportKind::from_name(&name).expect("clap admits only the possible values"))
}

fn parse_channel(s: &str) -> Result<Channel, String> {
    s.parse().map_err(|e: crate::protocol::ChannelError| e.to_string())
}

/// `--scale`: a positive, finite factor.
fn positive_scale(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x > 0.0 && x.is_finite() => Ok(x),
        _ => Err("must be a positive number (above 0, finite; e.g. 0.5 or 10)".into()),
    }
}

/// `--max-new-error-rate`: a rate of 0 or more, finite.
fn non_negative_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x >= 0.0 && x.is_finite() => Ok(x),
        _ => Err("must be a number of events per machine-hour, 0 or more (e.g. 0.5)".into()),
    }
}

/// `--agents`: a count of at least one.
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("must be a whole number, at least 1".into()),
    }
}

/// `--steps`: comma-separated fleet sizes above 0, increasing.
fn parse_steps(s: &str) -> Result<Steps, String> {
    let wrong = || "must be increasing fleet sizes above 0, separated by commas (e.g. 1000,5000,10000)".to_owned();
    let steps: Vec<usize> = s
        .split(',')
        .map(|n| n.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| wrong())?;
    if steps.contains(&0) || steps.windows(2).any(|w| w[0] >= w[1]) {
        return Err(wrong());
    }
    Ok(Steps(steps))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_are_parsed_by_name() {
        let parser = transport_kind();
        let cmd = clap::Command::new("t");
        for t in TransportKind::ALL {
            let got = clap::builder::TypedValueParser::parse_ref(&parser, &cmd, None, std::ffi::OsStr::new(t.name()));
            assert_eq!(got.unwrap(), t);
        }
        assert!(clap::builder::TypedValueParser::parse_ref(&parser, &cmd, None, std::ffi::OsStr::new("udp")).is_err());
    }

    #[test]
    fn scale_must_be_positive_and_finite() {
        assert_eq!(positive_scale("0.5"), Ok(0.5));
        assert_eq!(positive_scale("10"), Ok(10.0));
        for bad in ["0", "-1", "inf", "NaN", "x", ""] {
            assert!(positive_scale(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn steps_are_increasing_sizes_above_zero() {
        assert_eq!(parse_steps("1000,5000,10000"), Ok(Steps(vec![1000, 5000, 10000])));
        assert_eq!(parse_steps("7"), Ok(Steps(vec![7])));
        for bad in ["0", "5,3", "5,5", "0,5", "5,,6", "", "a"] {
            assert!(parse_steps(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn agents_are_at_least_one() {
        assert_eq!(at_least_one("1"), Ok(1));
        assert!(at_least_one("0").is_err());
        assert!(at_least_one("-3").is_err());
    }

    #[test]
    fn bad_values_are_usage_errors_that_name_the_flag_and_the_range() {
        let parse = |line: &str| Cli::try_parse_from(line.split_whitespace());
        for (line, flag, range) in [
            ("rmmsim run a.toml --scale 0", "--scale", "positive"),
            (
                "rmmsim swarm --server ws://127.0.0.1:1 --site-key k --steps 5,3",
                "--steps",
                "increasing",
            ),
            (
                "rmmsim swarm --server ws://127.0.0.1:1 --site-key k --agents 0",
                "--agents",
                "at least 1",
            ),
        ] {
            let err = parse(line).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{line}");
            let text = err.to_string();
            assert!(text.contains(flag) && text.contains(range), "{line}: {text}");
        }
    }
}
