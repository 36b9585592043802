//! `logs = [...]` on `[agent]` and `[[builds]]`: what machines log (U13).

use toml::Spanned;

use super::{Check, Problems, at};
use crate::agent::{LogLevel, LogLine, LogTemplate};
use crate::protocol::Version;
use crate::scenario::plan::BuildPlan;
use crate::scenario::spec::{LogSpec, Spec};

/// Longest message a log line may have, in bytes (before its placeholders
/// are filled).
const MAX_MESSAGE_BYTES: usize = 4096;
/// Most lines an hour one line may be logged by one machine: one a second.
const MAX_PER_HOUR: f64 = 3600.0;

/// The lines of one `logs` key; `key` names it (`agent.logs`, `builds[2].logs`).
/// Each bad line is recorded in `p` and left out.
pub(super) fn check_logs(specs: &[LogSpec], key: &str, p: &mut Problems) -> Vec<LogLine> {
    (specs.iter().enumerate())
        .filter_map(|(i, l)| p.ok(check_line(l, &format!("{key}[{i}]"))))
        .collect()
}

fn check_line(l: &LogSpec, key: &str) -> Check<LogLine> {
    let text = l.message.get_ref();
    let message_key = format!("{key}.message");
    if text.trim().is_empty() {
        return Err(at(&l.message, message_key, "must not be empty"));
    }
    if text.len() > MAX_MESSAGE_BYTES {
        let why = format!("at most {MAX_MESSAGE_BYTES} bytes");
        return Err(at(&l.message, message_key, why));
    }
    let message = LogTemplate::parse(text).map_err(|e| at(&l.message, message_key, e))?;
    let level = level(&l.level, format!("{key}.level"))?;
    let per_hour = *l.per_hour.get_ref();
    if per_hour.is_nan() || per_hour <= 0.0 || per_hour > MAX_PER_HOUR {
        let why = format!("must be above 0 and at most {MAX_PER_HOUR} (one a second)");
        return Err(at(&l.per_hour, format!("{key}.per_hour"), why));
    }
    Ok(LogLine {
        level,
        message,
        per_hour,
    })
}

/// A level by name: `debug`, `info`, `warn` or `error`.
pub(super) fn level(name: &Spanned<String>, key: String) -> Check<LogLevel> {
    LogLevel::from_name(name.get_ref()).ok_or_else(|| {
        let why = format!("unknown level `{}` (expected {})", name.get_ref(), LogLevel::names());
        at(name, key, why)
    })
}

/// A version log lines can be about: a build's, or what a fleet entry runs
/// at the start (which need not be a build).
pub(super) fn log_version(spec: &Spec, builds: &[BuildPlan], v: &Spanned<Version>, key: String) -> Check<Version> {
    let version = *v.get_ref();
    let known =
        builds.iter().any(|b| b.version == version) || spec.fleet.iter().any(|f| f.get_ref().version == version);
    if known {
        Ok(version)
    } else {
        Err(at(v, key, format!("no build or fleet entry runs {version}")))
    }
}
