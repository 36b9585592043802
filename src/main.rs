//! The `rmmsim` binary: parse, set up logging, run, map the outcome to an
//! exit code (0 ok, 1 a check failed or the run broke, 2 bad usage or input).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use rmmsim::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_max_level(cli.log_level())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: {e:#}");
            }
            ExitCode::from(1)
        }
    }
}
