//! The command lines a failure prints to reproduce itself, and the defaults
//! of the flags they name. A line names a flag only when its value differs
//! from the default, so the defaults live here once: `cli::args` gives them
//! to clap, and the lines leave them out. The transport's default is
//! `TransportKind::default()`.

use std::fmt;
use std::path::Path;

use crate::sim::TransportKind;

/// Where reports go (`<REPORTS>/<scenario name>/`) unless `--out` says otherwise.
pub const REPORTS: &str = "reports";

/// Where `rmmsim check` reads and writes baselines unless `--baselines` says otherwise.
pub const BASELINES: &str = "reports/baselines";

/// `rmmsim run` of one scenario file with its seed.
#[derive(Debug, Clone, Copy)]
pub struct RunLine<'a> {
    /// The scenario file.
    pub file: &'a Path,
    /// The seed the run used.
    pub seed: u64,
    /// `--scale` (1 is the default).
    pub scale: f64,
    /// `--out`, when the line should put the reports where the failed run
    /// did; `None` leaves it out (`rmmsim run`'s own line names only what
    /// changes the outcome).
    pub out: Option<&'a Path>,
    /// `--transport`.
    pub transport: TransportKind,
}

impl fmt::Display for RunLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rmmsim run {} --seed {}", self.file.display(), self.seed)?;
        if self.scale != 1.0 {
            write!(f, " --scale {}", self.scale)?;
        }
        if let Some(out) = self.out.filter(|out| *out != Path::new(REPORTS)) {
            write!(f, " --out {}", out.display())?;
        }
        transport(f, self.transport)
    }
}

/// `rmmsim check` of one scenario of a folder.
#[derive(Debug, Clone, Copy)]
pub struct CheckLine<'a> {
    /// The scenario folder.
    pub dir: &'a Path,
    /// The scenario's name (`--only`).
    pub only: &'a str,
    /// `--baselines`.
    pub baselines: &'a Path,
    /// `--out`.
    pub out: &'a Path,
    /// `--transport`.
    pub transport: TransportKind,
}

impl fmt::Display for CheckLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rmmsim check {} --only {}", self.dir.display(), self.only)?;
        if self.baselines != Path::new(BASELINES) {
            write!(f, " --baselines {}", self.baselines.display())?;
        }
        if self.out != Path::new(REPORTS) {
            write!(f, " --out {}", self.out.display())?;
        }
        transport(f, self.transport)
    }
}

fn transport(f: &mut fmt::Formatter<'_>, transport: TransportKind) -> fmt::Result {
    if transport != TransportKind::default() {
        write!(f, " --transport {transport}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(line: &str) -> Command {
        Cli::try_parse_from(line.split_whitespace())
            .unwrap_or_else(|e| panic!("{line}: {e}"))
            .command
    }

    #[test]
    fn defaults_are_left_out() {
        let run = RunLine {
            file: Path::new("s/a.toml"),
            seed: 7,
            scale: 1.0,
            out: Some(Path::new(REPORTS)),
            transport: TransportKind::WsMem,
        };
        assert_eq!(run.to_string(), "rmmsim run s/a.toml --seed 7");
        let check = CheckLine {
            dir: Path::new("s"),
            only: "a",
            baselines: Path::new(BASELINES),
            out: Path::new(REPORTS),
            transport: TransportKind::WsMem,
        };
        assert_eq!(check.to_string(), "rmmsim check s --only a");
    }

    /// What a line says, clap reads back: the flags it leaves out are
    /// clap's defaults, the ones it names are the run's values.
    #[test]
    fn a_printed_line_parses_back_to_the_same_run() {
        for (scale, out, transport) in [
            (1.0, "reports", TransportKind::WsMem),
            (2.5, "elsewhere", TransportKind::Direct),
            (0.1, "reports", TransportKind::WsTcp),
        ] {
            let line = RunLine {
                file: Path::new("a.toml"),
                seed: 3,
                scale,
                out: Some(Path::new(out)),
                transport,
            };
            let Command::Run(args) = parse(&line.to_string()) else {
                panic!("{line}")
            };
            assert_eq!(
                (args.files, args.seed, args.scale, args.out, args.transport),
                (vec!["a.toml".into()], Some(3), scale, out.into(), transport),
                "{line}"
            );
        }
        for (baselines, out, transport) in [
            ("reports/baselines", "reports", TransportKind::WsMem),
            ("b", "o", TransportKind::Direct),
        ] {
            let line = CheckLine {
                dir: Path::new("scen"),
                only: "quick",
                baselines: Path::new(baselines),
                out: Path::new(out),
                transport,
            };
            let Command::Check(args) = parse(&line.to_string()) else {
                panic!("{line}")
            };
            assert_eq!(
                (args.dir, args.only, args.baselines, args.out, args.transport),
                (
                    "scen".into(),
                    vec!["quick".to_owned()],
                    baselines.into(),
                    out.into(),
                    transport
                ),
                "{line}"
            );
        }
    }
}
