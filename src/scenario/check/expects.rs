//! `[[expect]]`: a known metric, what it needs, and numeric bounds.

use std::time::Duration;

use toml::Spanned;

use super::events::build_ref;
use super::{Check, End, Problem, Problems, at, fmt_dur, logs};
use crate::protocol::{Channel, Version};
use crate::scenario::plan::{BuildPlan, Counter, Expectation, LogFilter, Metric, StrandReason};
use crate::scenario::spec::{BoundSpec, ExpectSpec, Spec};

fn bound(b: &Spanned<BoundSpec>, key: String, duration_ok: bool) -> Check<f64> {
    match b.get_ref() {
        BoundSpec::Number(n) if n.is_finite() => Ok(*n),
        BoundSpec::Text(t) if duration_ok => humantime::parse_duration(t)
            .map(|d| d.as_secs_f64())
            .map_err(|e| at(b, key, format!("invalid duration `{t}`: {e}"))),
        _ => Err(at(
            b,
            key,
            if duration_ok {
                "expected a duration like \"30m\" or seconds"
            } else {
                "expected a number"
            },
        )),
    }
}

pub(super) fn check_expects(
    spec: &Spec,
    end: End,
    builds: &[BuildPlan],
    text: Option<&str>,
    p: &mut Problems,
) -> Vec<Expectation> {
    let mut out = Vec::new();
    for (i, e) in spec.expect.iter().enumerate() {
        if let Some(mut x) = check_expect(spec, e.get_ref(), i, end, builds, p) {
            x.line = text.map_or(0, |text| crate::scenario::line_col(text, e.span().start).0);
            out.push(x);
        }
    }
    out
}

/// Expectation `i` (with line 0); `None` with its problems recorded. An
/// unknown metric's keys are not judged, nor the value of a key the metric
/// does not use.
fn check_expect(
    spec: &Spec,
    x: &ExpectSpec,
    i: usize,
    end: End,
    builds: &[BuildPlan],
    p: &mut Problems,
) -> Option<Expectation> {
    let key = |k: &str| format!("expect[{i}].{k}");
    let when = x.at.as_ref().map(|a| a.get_ref().0);
    let metric = p.ok(match x.metric.get_ref().as_str() {
        "log_rate" | "log_signatures" => log_metric(spec, x, i, builds),
        _ => metric(x, i, when.unwrap_or(end.duration), builds),
    })?;
    let unused = unused_keys(x, i, &metric);
    let at_unused = unused.iter().any(|u| u.key == key("at"));
    unused.into_iter().for_each(|u| p.add(u));
    if let Some(late) =
        x.at.as_ref()
            .filter(|_| !at_unused)
            .and_then(|a| end.after(a, key("at"), "at"))
    {
        p.add(late);
    }
    let is_time = matches!(metric, Metric::Convergence { .. });
    let min = x.min.as_ref().and_then(|b| p.ok(bound(b, key("min"), is_time)));
    let max = x.max.as_ref().and_then(|b| p.ok(bound(b, key("max"), is_time)));
    if x.min.is_none() && x.max.is_none() {
        p.add(at(&x.metric, format!("expect[{i}]"), "needs min, max or both"));
    }
    Some(Expectation {
        label: label(x, when),
        metric,
        min,
        max,
        line: 0,
    })
}

/// Every metric name, for the error that lists them.
const METRICS: &str = "fraction_on, t50, t90, t99, t100, stranded, orphan_rows, agent_rows, heartbeats, dispatches, \
                       redispatches, downloads, update_failures, update_successes, stable_lag_builds, off_channel, \
                       log_rate, log_signatures";

/// The metric an `[[expect]]` names, with what it needs checked.
fn metric(x: &ExpectSpec, i: usize, at_or_end: Duration, builds: &[BuildPlan]) -> Check<Metric> {
    let key = |k: &str| format!("expect[{i}].{k}");
    let name = x.metric.get_ref().as_str();
    let version = || -> Check<Version> {
        match &x.version {
            Some(v) => build_ref(builds, v, key("version")),
            None => Err(at(&x.metric, key("version"), format!("`{name}` needs a version"))),
        }
    };
    Ok(match name {
        "fraction_on" => Metric::FractionOn {
            version: version()?,
            channel: channel(x),
            at: at_or_end,
            online_only: match &x.of {
                None => false,
                Some(o) if o.get_ref() == "fleet" => false,
                Some(o) if o.get_ref() == "online" => true,
                Some(o) => return Err(at(o, key("of"), "expected fleet or online")),
            },
        },
        "t50" | "t90" | "t99" | "t100" => Metric::Convergence {
            pct: name[1..].parse().unwrap_or(100),
            version: version()?,
            channel: channel(x).unwrap_or(Channel::Stable),
        },
        "stranded" => Metric::Stranded {
            reason: match &x.reason {
                Some(r) => match StrandReason::from_name(r.get_ref()) {
                    Some(reason) => Some(reason),
                    None => {
                        let names: Vec<&str> = StrandReason::ALL.iter().map(|r| r.as_str()).collect();
                        return Err(at(r, key("reason"), format!("expected one of {}", names.join(", "))));
                    }
                },
                None => None,
            },
        },
        "orphan_rows" => Metric::OrphanRows,
        "agent_rows" => Metric::AgentRows,
        "heartbeats" => Metric::Counter(Counter::Heartbeats),
        "dispatches" => Metric::Counter(Counter::Dispatches),
        "redispatches" => Metric::Counter(Counter::Redispatches),
        "downloads" => Metric::Counter(Counter::Downloads),
        "update_failures" => Metric::Counter(Counter::UpdateFailures),
        "update_successes" => Metric::Counter(Counter::UpdateSuccesses),
        "stable_lag_builds" => Metric::StableLagBuilds {
            at: x.at.as_ref().map(|a| a.get_ref().0),
        },
        "off_channel" => Metric::OffChannel {
            version: x
                .version
                .as_ref()
                .map(|v| build_ref(builds, v, key("version")))
                .transpose()?,
            channel: channel(x),
        },
        other => {
            return Err(at(
                &x.metric,
                key("metric"),
                format!("unknown metric `{other}` ({METRICS})"),
            ));
        }
    })
}

/// `log_rate` (a version is required: its machine-hours are the
/// denominator) or `log_signatures`, with their filters.
fn log_metric(spec: &Spec, x: &ExpectSpec, i: usize, builds: &[BuildPlan]) -> Check<Metric> {
    let key = |k: &str| format!("expect[{i}].{k}");
    let version = |v: &Spanned<Version>, k: &str| logs::log_version(spec, builds, v, key(k));
    let filter = LogFilter {
        level: x.level.as_ref().map(|l| logs::level(l, key("level"))).transpose()?,
        new_in: x.new_in.as_ref().map(|v| version(v, "new_in")).transpose()?,
    };
    let on = x.version.as_ref().map(|v| version(v, "version")).transpose()?;
    Ok(match (x.metric.get_ref().as_str(), on) {
        ("log_rate", Some(version)) => Metric::LogRate { version, filter },
        ("log_rate", None) => {
            let why = "`log_rate` needs a version (its machine-hours are the denominator)";
            return Err(at(&x.metric, key("version"), why));
        }
        (_, version) => Metric::LogSignatures { version, filter },
    })
}

fn channel(x: &ExpectSpec) -> Option<Channel> {
    x.channel.as_ref().map(|c| *c.get_ref())
}

/// Each key the metric does not use: an error, not a silent no-op (a
/// `channel` on a counter would otherwise read as if it narrowed it).
fn unused_keys(x: &ExpectSpec, i: usize, metric: &Metric) -> Vec<Problem> {
    let versioned = matches!(
        metric,
        Metric::FractionOn { .. } | Metric::Convergence { .. } | Metric::OffChannel { .. }
    );
    let logs = matches!(metric, Metric::LogRate { .. } | Metric::LogSignatures { .. });
    let fraction = matches!(metric, Metric::FractionOn { .. });
    let given = [
        ("version", x.version.as_ref().map(|s| s.span()), versioned || logs),
        ("channel", x.channel.as_ref().map(|s| s.span()), versioned),
        ("level", x.level.as_ref().map(|s| s.span()), logs),
        ("new_in", x.new_in.as_ref().map(|s| s.span()), logs),
        (
            "at",
            x.at.as_ref().map(|s| s.span()),
            fraction || matches!(metric, Metric::StableLagBuilds { .. }),
        ),
        ("of", x.of.as_ref().map(|s| s.span()), fraction),
        (
            "reason",
            x.reason.as_ref().map(|s| s.span()),
            matches!(metric, Metric::Stranded { .. }),
        ),
    ];
    let name = x.metric.get_ref();
    given
        .into_iter()
        .filter(|(_, _, used)| !used)
        .filter_map(|(key, span, _)| {
            span.map(|span| Problem {
                offset: span.start,
                key: format!("expect[{i}].{key}"),
                message: format!("`{name}` does not use `{key}`"),
                refers: &[],
            })
        })
        .collect()
}

fn label(x: &ExpectSpec, when: Option<Duration>) -> String {
    let mut s = x.metric.get_ref().clone();
    if let Some(v) = &x.version {
        s += &format!(" {}", v.get_ref());
    }
    if let Some(c) = channel(x) {
        s += &format!(" ({c})");
    }
    if let Some(r) = &x.reason {
        s += &format!(" reason={}", r.get_ref());
    }
    if let Some(l) = &x.level {
        s += &format!(" level={}", l.get_ref());
    }
    if let Some(v) = &x.new_in {
        s += &format!(" new_in={}", v.get_ref());
    }
    if x.of.as_ref().is_some_and(|o| o.get_ref() == "online") {
        s += " of online";
    }
    if let Some(w) = when {
        s += &format!(" at {}", fmt_dur(w));
    }
    s
}
