//! `rmmsim serve` as a child process on 127.0.0.1:0 over a folder: for the
//! tests that need the real process (kill -9, failpoints, a second server,
//! flags read only by `serve`). Killed when dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::common::{Api, PATIENCE, TOKEN};

/// A running `rmmsim serve`.
pub struct Served {
    child: Child,
    pub addr: SocketAddr,
}

impl Served {
    /// The command line over `dir` (its `downloads/` and `rmmsim.sqlite3`),
    /// with no periodic rescan and the tests' admin token.
    pub fn command(dir: &Path) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rmmsim"));
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--rescan-every",
            "0s",
            "--admin-token",
            TOKEN,
            "--log-level",
            "warn",
        ])
        .arg("--downloads")
        .arg(dir.join("downloads"))
        .arg("--db")
        .arg(dir.join("rmmsim.sqlite3"))
        .env_remove("RMMSIM_FAILPOINT")
        .env_remove("RMMSIM_ADMIN_TOKEN");
        cmd
    }

    /// Starts it over `dir` and waits for the line saying where it listens.
    pub fn start(dir: &Path) -> Self {
        Self::spawn(Self::command(dir))
    }

    /// Starts `cmd` (from [`Served::command`], with more flags or a
    /// failpoint) and waits for the line saying where it listens.
    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads every line until the process ends, so its pipe never fills.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or_default().to_owned();
                    let _ = tx.send(addr);
                }
            }
        });
        let addr = rx.recv_timeout(PATIENCE).expect("serve says where it listens");
        Self {
            child,
            addr: addr.parse().unwrap(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn api(&self) -> Api {
        Api::tcp(self.addr, TOKEN)
    }

    /// Its exit, waited for at most [`PATIENCE`].
    pub fn exit(&mut self) -> ExitStatus {
        wait_exit(&mut self.child).expect("the process ends")
    }

    /// kill -9, and waits for it.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child's exit, waited for at most [`PATIENCE`]; `None` (and killed) if
/// it did not end by then.
pub fn wait_exit(child: &mut Child) -> Option<ExitStatus> {
    for _ in 0..PATIENCE.as_millis() / 20 {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    None
}
