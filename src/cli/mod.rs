//! The command line: the clap types in `args`, one module per subcommand,
//! each one library call and what it tells the user.
//!
//! A command returns its exit code (0, or 1 when a scenario failed), an
//! [`UsageError`] for bad usage or input found before anything ran (`main`
//! exits 2), or any other error when the run itself broke (exit 1).

#![allow(clippy::print_stdout, clippy::print_stderr)] // the edge: talking to the user is its job

mod args;
mod bench;
mod check;
mod compare;
mod progress;
mod publish;
mod run;
mod serve;
mod swarm;
mod validate;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

pub use args::{
    BenchArgs, BenchSimArgs, CheckArgs, Cli, Command, CompareArgs, DigestArg, PublishArgs, RunArgs, ServeArgs, Steps,
    SwarmArgs, ValidateArgs,
};

/// Bad usage or input, found before anything ran: `main` prints each
/// message as an `error:` line and exits 2.
#[derive(Debug, thiserror::Error)]
#[error("{}", .messages.join("\n"))]
pub struct UsageError {
    /// What was wrong, one message a line.
    pub messages: Vec<String>,
}

impl UsageError {
    /// One thing wrong.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            messages: vec![message.into()],
        }
    }

    /// Several things wrong (every bad scenario file at once).
    pub fn many(messages: impl IntoIterator<Item = impl ToString>) -> Self {
        Self {
            messages: messages.into_iter().map(|m| m.to_string()).collect(),
        }
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve::serve(args),
        Command::Publish(args) => publish::publish(args),
        Command::Run(args) => run::run(args),
        Command::Swarm(args) => swarm::swarm(args),
        Command::Check(args) => check::check(args),
        Command::Compare(args) => compare::compare(args),
        Command::Validate(args) => validate::validate(args),
        Command::Bench(args) => bench::bench(args),
        Command::BenchSim(args) => bench::bench_sim(args),
    }
}

/// Where a command's words go: with `--json` its JSON lines on stdout and
/// every line for people on stderr, so stdout holds nothing else; without,
/// the lines for people on stdout.
#[derive(Debug, Clone, Copy)]
struct Voice {
    json: bool,
}

impl Voice {
    fn new(json: bool) -> Self {
        Self { json }
    }

    /// A line for people.
    fn say(self, line: std::fmt::Arguments<'_>) {
        if self.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }

    /// A JSON line, made only when `--json` asks for it.
    fn json(self, line: impl FnOnce() -> String) {
        if self.json {
            println!("{}", line());
        }
    }
}

/// Writes a file, creating its folder.
fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Resolves on Ctrl-C or SIGTERM: how `serve` and `swarm` are stopped.
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
