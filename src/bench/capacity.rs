//! Server capacity in real time: `rmmsim serve` and swarms in separate
//! processes on loopback, ramping connected agents at a fixed heartbeat rate,
//! with the server's CPU and memory sampled from /proc meanwhile.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use hyper::Method;
use serde::Serialize;
use serde_json::{Value, json};

use super::BenchConfig;
use crate::clock::Clock;
use crate::http_client::Call;
use crate::swarm::StepReport;

/// One step of the ramp, over every swarm.
#[derive(Debug, Clone, Serialize)]
pub struct CapacityStep {
    /// Agents started.
    pub agents: usize,
    /// Agents connected at the end of the window.
    pub connected: usize,
    /// Heartbeats acknowledged per second in the window.
    pub heartbeats_per_s: f64,
    /// Median round trip, ms, over every swarm's heartbeats.
    pub rtt_p50_ms: f64,
    /// 99th percentile round trip, ms, over every swarm's heartbeats.
    pub rtt_p99_ms: f64,
    /// Worst round trip, ms.
    pub rtt_max_ms: f64,
    /// Server CPU over the window, in cores (1.0 = one core busy).
    pub server_cpu_cores: f64,
    /// Server resident memory at the end of the window, bytes.
    pub server_rss_bytes: u64,
}

/// The whole ramp.
#[derive(Debug, Clone, Serialize)]
pub struct CapacityResult {
    /// Heartbeat interval, seconds.
    pub heartbeat_s: f64,
    /// Swarm processes.
    pub swarms: usize,
    /// The server's open-files limit, from its `GET /api/stats`.
    pub server_open_files: Option<u64>,
    /// Each step.
    pub steps: Vec<CapacityStep>,
    /// The largest step with every agent connected and p99 under 100 ms.
    pub largest_held: Option<usize>,
}

/// A free loopback port (there is a small race until the server binds it).
fn free_port() -> anyhow::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

/// One request to the admin API; the answer's JSON (`null` when it has none).
async fn call(addr: SocketAddr, token: &str, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let mut call = Call::new(method, path).bearer(token);
    if let Some(body) = body {
        call = call.json(body.to_string());
    }
    let bytes = call.send_ok(stream, &addr.to_string()).await?;
    Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// How often the server's CPU and memory are sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(500);
/// How often the bench asks a starting server whether it answers.
const READY_POLL: Duration = Duration::from_millis(100);
/// How many times before it gives up (10 s in all).
const READY_TRIES: usize = 100;

/// A started `rmmsim serve` and what the bench needs from it.
struct Server {
    child: Child,
    /// The key of the site the swarms join.
    site_key: String,
    /// Its open-files limit, from `GET /api/stats`.
    open_files: Option<u64>,
}

/// Starts `rmmsim serve` in `dir` and waits until it answers; makes a site for the swarms.
fn start_server(dir: &Path, addr: SocketAddr, token: &str) -> anyhow::Result<Server> {
    let exe = std::env::current_exe()?;
    let log = std::fs::File::create(dir.join("serve.log"))?;
    let child = Command::new(exe)
        .args([
            "serve",
            "--listen",
            &addr.to_string(),
            "--admin-token",
            token,
            "--rescan-every",
            "0s",
            // Every swarm agent enrols under one site key, thousands a second.
            "--max-enrolments-per-minute",
            "0",
        ])
        .args(["--log-level", "warn", "--db"])
        .arg(dir.join("bench.sqlite3"))
        .arg("--downloads")
        .arg(dir.join("downloads"))
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting rmmsim serve")?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (site_key, open_files) = runtime.block_on(async {
        for _ in 0..READY_TRIES {
            if let Ok(stats) = call(addr, token, Method::GET, "/api/stats", None).await {
                let key = make_site(addr, token).await?;
                return Ok((key, stats["open_files"].as_u64()));
            }
            tokio::time::sleep(READY_POLL).await;
        }
        bail!(
            "rmmsim serve did not answer on {addr}; see {}",
            dir.join("serve.log").display()
        )
    })?;
    Ok(Server {
        child,
        site_key,
        open_files,
    })
}

/// A client and a site on the server; the site's key.
async fn make_site(addr: SocketAddr, token: &str) -> anyhow::Result<String> {
    let client = call(
        addr,
        token,
        Method::POST,
        "/api/clients",
        Some(json!({ "name": "bench" })),
    )
    .await?;
    let id = client["id"].as_u64().unwrap_or(1);
    let site = call(
        addr,
        token,
        Method::POST,
        &format!("/api/clients/{id}/sites"),
        Some(json!({ "name": "swarm" })),
    )
    .await?;
    Ok(site["site_key"].as_str().unwrap_or_default().to_owned())
}

/// (unix ms, CPU ticks, RSS KiB) of a process, sampled.
type Samples = Arc<Mutex<Vec<(i64, u64, u64)>>>;

/// A thread sampling a process's CPU and memory every [`SAMPLE_EVERY`].
struct Sampler {
    stop: Arc<AtomicBool>,
    samples: Samples,
    thread: std::thread::JoinHandle<()>,
}

impl Sampler {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let samples: Samples = Arc::default();
        let thread = {
            let (stop, samples) = (stop.clone(), samples.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some((ticks, rss)) = sample(pid) {
                        samples.lock().unwrap_or_else(|p| p.into_inner()).push((
                            Clock::Wall.now().millis(),
                            ticks,
                            rss,
                        ));
                    }
                    std::thread::sleep(SAMPLE_EVERY);
                }
            })
        };
        Self { stop, samples, thread }
    }

    /// CPU cores and RSS bytes over a window (see [`server_use`]).
    fn use_between(&self, start_ms: i64, end_ms: i64) -> (f64, u64) {
        server_use(
            &self.samples.lock().unwrap_or_else(|p| p.into_inner()),
            start_ms,
            end_ms,
        )
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

fn sample(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): utime is 14th, stime 15th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let rss = super::proc_kib(&format!("/proc/{pid}/status"), "VmRSS:")?;
    Some((ticks, rss))
}

/// Clock ticks per second of /proc/<pid>/stat (USER_HZ, 100 on Linux).
const TICKS_PER_S: f64 = 100.0;

fn server_use(samples: &[(i64, u64, u64)], start_ms: i64, end_ms: i64) -> (f64, u64) {
    let inside: Vec<&(i64, u64, u64)> = samples.iter().filter(|s| s.0 >= start_ms && s.0 <= end_ms).collect();
    match (inside.first(), inside.last()) {
        (Some(a), Some(b)) if b.0 > a.0 => {
            let cores = (b.1 - a.1) as f64 / TICKS_PER_S / ((b.0 - a.0) as f64 / 1000.0);
            (cores, b.2 * 1024)
        }
        (_, Some(b)) => (0.0, b.2 * 1024),
        _ => (0.0, 0),
    }
}

/// Splits each step across `n` swarms.
fn shares(steps: &[usize], n: usize, i: usize) -> Vec<usize> {
    steps.iter().map(|s| s / n + usize::from(i < s % n)).collect()
}

/// Runs the ramp; `progress` hears each finished step.
pub fn run(config: &BenchConfig, progress: impl FnMut(&CapacityStep)) -> anyhow::Result<CapacityResult> {
    let dir = tempfile::tempdir()?;
    let addr = free_port()?;
    let token = "bench-admin-token";
    let server = start_server(dir.path(), addr, token)?;
    let sampler = Sampler::start(server.child.id());
    let most = config.capacity_steps.iter().copied().max().unwrap_or(0);
    let n = most.div_ceil(config.agents_per_swarm.max(1)).max(1);
    // A failure from here on still stops the swarms and the server.
    let steps = start_swarms(config, addr, &server.site_key, n).and_then(|mut swarms| {
        let steps = read_steps(config, &mut swarms, &sampler, progress);
        stop_all(swarms);
        steps
    });
    sampler.stop();
    stop_all([server.child]);
    let steps = steps?;
    let largest_held = steps
        .iter()
        .filter(|s| s.connected == s.agents && s.rtt_p99_ms < 100.0)
        .map(|s| s.agents)
        .max();
    Ok(CapacityResult {
        heartbeat_s: config.capacity_heartbeat.as_secs_f64(),
        swarms: n,
        server_open_files: server.open_files,
        steps,
        largest_held,
    })
}

/// `n` `rmmsim swarm` processes, each with its share of every step.
fn start_swarms(config: &BenchConfig, addr: SocketAddr, key: &str, n: usize) -> anyhow::Result<Vec<Child>> {
    let exe = std::env::current_exe()?;
    let mut swarms = Vec::new();
    for i in 0..n {
        let steps: Vec<String> = shares(&config.capacity_steps, n, i)
            .iter()
            .map(ToString::to_string)
            .collect();
        let child = Command::new(&exe)
            .args([
                "swarm",
                "--server",
                &format!("ws://{addr}"),
                "--site-key",
                key,
                "--steps",
                &steps.join(","),
            ])
            .args([
                "--heartbeat",
                &humantime::format_duration(config.capacity_heartbeat).to_string(),
            ])
            .args([
                "--window",
                &humantime::format_duration(config.capacity_window).to_string(),
            ])
            .args(["--seed", &(i + 1).to_string(), "--sources", "4", "--log-level", "error"])
            .arg("--histogram")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(child) => swarms.push(child),
            Err(e) => {
                stop_all(swarms);
                return Err(anyhow::Error::new(e).context("starting rmmsim swarm"));
            }
        }
    }
    Ok(swarms)
}

/// Kills child processes and reaps them.
fn stop_all(children: impl IntoIterator<Item = Child>) {
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Each swarm prints one JSON line per step: reads them in step order and
/// combines every step's lines, until the ramp ends or a swarm stops.
fn read_steps(
    config: &BenchConfig,
    swarms: &mut [Child],
    sampler: &Sampler,
    mut progress: impl FnMut(&CapacityStep),
) -> anyhow::Result<Vec<CapacityStep>> {
    let mut readers: Vec<_> = swarms
        .iter_mut()
        .filter_map(|c| c.stdout.take())
        .map(|o| BufReader::new(o).lines())
        .collect();
    let mut steps = Vec::new();
    for &agents in &config.capacity_steps {
        let mut parts: Vec<StepReport> = Vec::new();
        for lines in &mut readers {
            if let Some(Ok(line)) = lines.next() {
                parts.extend(serde_json::from_str::<StepReport>(&line).ok());
            }
        }
        if parts.is_empty() {
            break;
        }
        let step = combine(agents, &parts, sampler)?;
        progress(&step);
        steps.push(step);
    }
    Ok(steps)
}

/// One step over every swarm, with the server's use in its window.
fn combine(agents: usize, parts: &[StepReport], sampler: &Sampler) -> anyhow::Result<CapacityStep> {
    let start = parts.iter().map(|p| p.start_unix_ms).min().unwrap_or(0);
    let end = parts.iter().map(|p| p.end_unix_ms).max().unwrap_or(0);
    let (cpu, rss) = sampler.use_between(start, end);
    let beats: u64 = parts.iter().map(|p| p.heartbeats).sum();
    let window = parts.iter().map(|p| p.window_s).fold(0.0, f64::max);
    let rtt = crate::swarm::merged_rtt(parts).context("a swarm's report has no round-trip histogram")?;
    Ok(CapacityStep {
        agents,
        connected: parts.iter().map(|p| p.connected).sum(),
        heartbeats_per_s: beats as f64 / window.max(1e-9),
        rtt_p50_ms: rtt.p50,
        rtt_p99_ms: rtt.p99,
        rtt_max_ms: rtt.max,
        server_cpu_cores: cpu,
        server_rss_bytes: rss,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_split_evenly_across_swarms() {
        let steps = [1000, 5001, 20_000];
        let all: Vec<Vec<usize>> = (0..3).map(|i| shares(&steps, 3, i)).collect();
        for (k, s) in steps.iter().enumerate() {
            assert_eq!(all.iter().map(|v| v[k]).sum::<usize>(), *s);
        }
        assert_eq!(all[0], [334, 1667, 6667]);
    }

    #[test]
    fn server_use_is_cpu_over_the_window() {
        let samples = [(0, 100, 10), (1000, 150, 20), (2000, 250, 30), (3000, 260, 40)];
        let (cores, rss) = server_use(&samples, 1000, 2000);
        assert!((cores - 1.0).abs() < 1e-9);
        assert_eq!(rss, 30 * 1024);
    }
}
