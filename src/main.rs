//! The `rmmsim` binary: parse, set up logging, run, map the outcome to an
//! exit code (0 ok, 1 a check failed or the run broke, 2 bad usage or input:
//! clap's own usage errors, and a command's [`cli::UsageError`]).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use rmmsim::cli::{self, Cli, UsageError};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_max_level(cli.log_level())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    #[allow(clippy::print_stderr)]
    match cli::run(cli) {
        Ok(code) => code,
        Err(e) => match e.downcast::<UsageError>() {
            Ok(usage) => {
                for message in &usage.messages {
                    eprintln!("error: {message}");
                }
                ExitCode::from(2)
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        },
    }
}
