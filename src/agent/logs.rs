//! What machines log in the field (U13): the lines each build logs and the
//! baseline every build logs, each at a mean rate per hour. A machine logs
//! each line as a Poisson process while it has a session; a line that falls
//! while it has none is dropped, not queued (this project's choice: an
//! agent's log shipping is best-effort, and a backlog sent on reconnect
//! would bunch the lines up at the reconnect).
//!
//! A message is a template: `{n}`, `{hex}` and `{uuid}` are filled with
//! seeded values as each line is logged, so messages differ but normalise
//! to one signature on the server; `{{` and `}}` are literal braces.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::protocol::{AgentMessage, Version};

/// The severity of a log line; the four an agent sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// `debug`
    Debug,
    /// `info`
    Info,
    /// `warn`
    Warn,
    /// `error`
    Error,
}

impl LogLevel {
    /// Every level, least severe first.
    pub const ALL: [Self; 4] = [Self::Debug, Self::Info, Self::Warn, Self::Error];

    /// Its name on the wire and in scenarios: `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }

    /// The level of this name, if any (lower case, as sent).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == name)
    }

    /// Every name, for errors: `debug, info, warn, error`.
    pub fn names() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

/// The placeholders a message may hold, for errors and docs.
pub const PLACEHOLDERS: &str = "{n} (a number), {hex} (0x and 8 hex digits), {uuid}";

/// A piece of a message template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// A number from 1 to 99,999.
    Number,
    /// `0x` and eight hex digits.
    Hex,
    /// A random uuid, hyphenated.
    Uuid,
}

/// A message with its placeholders found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTemplate {
    text: String,
    pieces: Vec<Piece>,
}

impl LogTemplate {
    /// Reads `text`; an unknown placeholder or a lone brace is an error that
    /// says what was found.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(i) = rest.find(['{', '}']) {
            lit.push_str(&rest[..i]);
            let tail = &rest[i..];
            let (piece, len) = if tail.starts_with("{{") || tail.starts_with("}}") {
                lit.push(tail.as_bytes()[0] as char);
                (None, 2)
            } else if let Some(p) = [("{n}", Piece::Number), ("{hex}", Piece::Hex), ("{uuid}", Piece::Uuid)]
                .into_iter()
                .find(|(name, _)| tail.starts_with(name))
            {
                (Some(p.1), p.0.len())
            } else {
                let shown = tail.find('}').map_or(tail, |end| &tail[..=end]);
                return Err(format!(
                    "unknown placeholder `{shown}` (known: {PLACEHOLDERS}; write {{{{ and }}}} for braces)"
                ));
            };
            if let Some(piece) = piece {
                if !lit.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut lit)));
                }
                pieces.push(piece);
            }
            rest = &tail[len..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            pieces.push(Piece::Text(lit));
        }
        Ok(Self {
            text: text.to_owned(),
            pieces,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// A message: the placeholders filled from `rng`.
    pub fn render(&self, rng: &mut impl Rng) -> String {
        let mut out = String::with_capacity(self.text.len() + 32);
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Number => {
                    let _ = write!(out, "{}", rng.random_range(1..100_000u32));
                }
                Piece::Hex => {
                    let _ = write!(out, "0x{:08x}", rng.random::<u32>());
                }
                Piece::Uuid => {
                    let uuid = uuid::Builder::from_random_bytes(rng.random()).into_uuid();
                    let _ = write!(out, "{uuid}");
                }
            }
        }
        out
    }
}

/// One line machines log at random, `per_hour` times an hour on average.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// Its severity.
    pub level: LogLevel,
    /// What it says.
    pub message: LogTemplate,
    /// Mean lines an hour per machine; above 0.
    pub per_hour: f64,
}

/// The lines a machine on one version logs, together.
#[derive(Debug, Clone, Default, PartialEq)]
struct Mix {
    /// The sum of the lines' rates.
    per_hour: f64,
    lines: Vec<LogLine>,
}

impl Mix {
    fn of<'a>(lines: impl IntoIterator<Item = &'a LogLine>) -> Self {
        let lines: Vec<LogLine> = lines.into_iter().cloned().collect();
        Self {
            per_hour: lines.iter().map(|l| l.per_hour).sum(),
            lines,
        }
    }

    /// The line logged next: each with the share of the rate it has.
    fn pick(&self, rng: &mut impl Rng) -> Option<&LogLine> {
        let mut x = rng.random::<f64>() * self.per_hour;
        for line in &self.lines {
            if x < line.per_hour {
                return Some(line);
            }
            x -= line.per_hour;
        }
        self.lines.last()
    }
}

/// What machines log, per version: the baseline of every build, plus the
/// lines of the build a machine runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct FieldLogs {
    /// A version no build declares lines for logs the baseline alone.
    baseline: Mix,
    builds: BTreeMap<Version, Mix>,
}

impl FieldLogs {
    /// The baseline and each build's own lines.
    pub fn new<'a>(baseline: &[LogLine], builds: impl IntoIterator<Item = (Version, &'a [LogLine])>) -> Self {
        let builds = builds
            .into_iter()
            .filter(|(_, lines)| !lines.is_empty())
            .map(|(v, lines)| (v, Mix::of(baseline.iter().chain(lines))))
            .collect();
        Self {
            baseline: Mix::of(baseline),
            builds,
        }
    }

    fn mix(&self, version: Version) -> &Mix {
        self.builds.get(&version).unwrap_or(&self.baseline)
    }

    /// Whether a machine on `version` logs anything.
    pub fn logs_on(&self, version: Version) -> bool {
        self.mix(version).per_hour > 0.0
    }

    /// How long until a machine on `version` logs its next line, drawn from
    /// `rng` (exponential: the process is memoryless, so drawing afresh at
    /// each session start changes nothing); `None` if it logs nothing.
    pub fn next_after(&self, version: Version, rng: &mut ChaCha8Rng) -> Option<Duration> {
        let rate = self.mix(version).per_hour;
        if rate <= 0.0 {
            return None;
        }
        let u: f64 = rng.random_range(f64::EPSILON..1.0);
        Some(Duration::from_secs_f64((-u.ln() * 3600.0 / rate).min(1e9)))
    }

    /// The `log` frame a machine on `version` sends now.
    pub fn line(&self, version: Version, rng: &mut ChaCha8Rng) -> Option<AgentMessage> {
        let line = self.mix(version).pick(rng)?;
        Some(AgentMessage::Log {
            level: line.level.as_str().to_owned(),
            message: line.message.render(rng),
        })
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn line(level: LogLevel, text: &str, per_hour: f64) -> LogLine {
        LogLine {
            level,
            message: LogTemplate::parse(text).unwrap(),
            per_hour,
        }
    }

    #[test]
    fn placeholders_are_filled_and_braces_escaped() {
        let t = LogTemplate::parse("crash {n} at {hex} in {uuid} {{ok}}").unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let a = t.render(&mut rng);
        let b = t.render(&mut rng);
        assert_ne!(a, b, "seeded values differ from line to line");
        let words: Vec<&str> = a.split(' ').collect();
        assert_eq!(words[0], "crash");
        assert!(words[1].parse::<u32>().is_ok_and(|n| (1..100_000).contains(&n)), "{a}");
        assert!(words[3].starts_with("0x") && words[3].len() == 10, "{a}");
        assert!(uuid::Uuid::parse_str(words[5]).is_ok(), "{a}");
        assert_eq!(words[6], "{ok}");
        // The same seed gives the same messages.
        let mut again = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(t.render(&mut again), a);
    }

    #[test]
    fn an_unknown_placeholder_or_a_lone_brace_is_refused() {
        for (text, shown) in [("x {id} y", "`{id}`"), ("x { y", "`{ y`"), ("a } b", "`}`")] {
            let e = LogTemplate::parse(text).unwrap_err();
            assert!(e.contains(shown) && e.contains("{n}"), "{text}: {e}");
        }
        assert_eq!(
            LogTemplate::parse("plain")
                .unwrap()
                .render(&mut ChaCha8Rng::seed_from_u64(0)),
            "plain"
        );
    }

    #[test]
    fn a_build_logs_its_lines_and_the_baseline_others_the_baseline_alone() {
        let base = [line(LogLevel::Info, "tick", 1.0)];
        let crashy = [line(LogLevel::Error, "crash", 3.0)];
        let (good, bad) = (Version::new(1, 0, 0), Version::new(1, 0, 1));
        let logs = FieldLogs::new(&base, [(good, &[][..]), (bad, &crashy[..])]);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut count = |v: Version, level: &str| {
            (0..4000)
                .filter(|_| matches!(logs.line(v, &mut rng), Some(AgentMessage::Log { level: l, .. }) if l == level))
                .count()
        };
        assert_eq!(count(good, "info"), 4000);
        // 3 of every 4 lines on the crashy build are the crash.
        let crashes = count(bad, "error");
        assert!((2800..3200).contains(&crashes), "{crashes}");
        assert!(!FieldLogs::default().logs_on(good));
        assert_eq!(FieldLogs::default().next_after(good, &mut rng), None);
    }

    #[test]
    fn the_mean_gap_between_lines_is_an_hour_over_the_rate() {
        let logs = FieldLogs::new(&[line(LogLevel::Warn, "w", 4.0)], []);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let n = 20_000;
        let total: f64 = (0..n)
            .map(|_| logs.next_after(Version::new(1, 0, 0), &mut rng).unwrap().as_secs_f64())
            .sum();
        let mean = total / f64::from(n);
        assert!((mean - 900.0).abs() < 30.0, "mean gap {mean} s, expected 900 s");
    }
}
