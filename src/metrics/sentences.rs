//! Sentences of the report for people, built once from its figures so that
//! `report.md` and `report.html` say the same thing.

use std::collections::BTreeMap;
use std::time::Duration;

use super::report::{BuildReport, Report, Stranded};
use crate::protocol::{Channel, Version};
use crate::scenario::StrandReason;

/// What "off channel" means, for the heading of the list.
pub(crate) const OFF_CHANNEL_MEANS: &str = "Machines running a build their channel does not offer them: a beta build \
                                     never promoted on a machine on stable, or a rolled-back build.";

/// What each of the server's update counters counts, as (name, meaning):
/// the one account `report.md`, `report.html` and `compare` give.
pub(crate) const COUNTERS: [(&str, &str); 5] = [
    (
        "sent",
        "updates the server decided to send a machine, each counted once: in answer to a heartbeat (U3), or by a \
         manual update or a rollback (U5), pushed at once to a machine connected then",
    ),
    (
        "re-sent",
        "each later send of a pending update, because the machine heartbeated still on the version it was to leave (U4)",
    ),
    (
        "succeeded",
        "updates that ended with the machine on their version, seen in its heartbeat, its hello or its report; a \
         downgrade after a rollback is an update too, and counts as a success",
    ),
    (
        "failed",
        "updates the machine reported as failed, or as a success on another version",
    ),
    ("downloads", "build files served"),
];

/// The counters' meanings in one paragraph (for `compare`).
pub(crate) fn counters_meaning() -> String {
    let each: Vec<String> = COUNTERS.iter().map(|(n, m)| format!("*{n}*: {m}")).collect();
    format!("What the update counters count: {}.", each.join("; "))
}

/// A promote the server refused, of a build never promoted after.
struct Refusal<'a> {
    version: Version,
    at_s: f64,
    /// The server's words: `health gate refused 1.0.1: 0 successes …`.
    why: &'a str,
}

/// `1 build`, `3 builds`.
pub(super) fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Sentences of the report for people, built once for every form of it.
impl Report {
    /// How far stable trailed beta, and on which platform when there are several.
    pub(crate) fn stable_lag_line(&self) -> String {
        let lag = &self.stable_lag;
        let mut line = format!(
            "Stable trailed beta by up to {}, for up to {}; at the end by {}",
            plural(lag.max_builds, "build"),
            crate::clock::short(Duration::from_secs_f64(lag.max_s.max(0.0))),
            plural(lag.at_end_builds, "build")
        );
        if lag.platforms.len() > 1 {
            let each: Vec<String> = lag
                .platforms
                .iter()
                .map(|p| format!("{} up to {}, {} at the end", p.platform, p.max_builds, p.at_end_builds))
                .collect();
            line += &format!(" ({})", each.join("; "));
        }
        line + "."
    }

    /// The download storm in one sentence, for people.
    pub(crate) fn downloads_line(&self) -> String {
        let d = &self.downloads;
        let mbit = |bps: f64| format!("{:.1} Mbit/s", bps * 8.0 / 1e6);
        let served = bytesize::ByteSize::b(d.bytes_served).display().iec().to_string();
        let rate = if d.peak_egress_bps == 0.0 {
            "no bandwidth limit, so bytes moved in no time".to_owned()
        } else {
            match d.egress_limit_bps {
                Some(limit) => format!(
                    "egress peaked at {} (limit {}), saturated for {}",
                    mbit(d.peak_egress_bps),
                    mbit(limit),
                    crate::clock::short(Duration::from_secs_f64(d.saturated_s))
                ),
                None => format!("egress peaked at {} (no server limit)", mbit(d.peak_egress_bps)),
            }
        };
        format!(
            "Downloads: {served} served, at most {} in progress at once; {rate}.",
            d.peak_concurrent
        )
    }

    /// Who runs a build their channel does not offer them at the end.
    pub(crate) fn off_channel_line(&self) -> String {
        if self.off_channel.is_empty() {
            return "No machine runs a build its channel does not offer.".into();
        }
        let mut by: BTreeMap<&str, usize> = BTreeMap::new();
        for m in &self.off_channel {
            *by.entry(m.reason.as_str()).or_default() += 1;
        }
        let by: Vec<String> = by.iter().map(|(k, n)| format!("{n} {k}")).collect();
        format!(
            "Off channel at the end: {} ({}) running a build their channel does not offer.",
            plural(self.off_channel.len(), "machine"),
            by.join(", ")
        )
    }

    /// What the server did with the beta builds never promoted, and who
    /// runs one on stable all the same.
    pub fn never_promoted_lines(&self) -> Vec<String> {
        let never: Vec<&BuildReport> = self
            .builds
            .iter()
            .filter(|b| b.published_s.is_some() && b.promoted_s.is_none() && b.published_as == Channel::Beta)
            .collect();
        if never.is_empty() {
            return Vec::new();
        }
        let versions: Vec<String> = never.iter().map(|b| b.version.to_string()).collect();
        let mut lines = vec![format!(
            "Never promoted, so no heartbeat offered them to a machine while it was on stable: {}.",
            versions.join(", ")
        )];
        for b in never {
            let n = self
                .off_channel
                .iter()
                .filter(|m| m.build == b.version && m.channel == Channel::Stable)
                .count();
            if n > 0 {
                lines.push(format!(
                    "Yet {} on stable at the end {} {} (listed under Off channel): each took it by an offer made \
                     while it was on beta, or by a manual update, and nothing moves a machine back down to its channel.",
                    plural(n, "machine"),
                    if n == 1 { "runs" } else { "run" },
                    b.version
                ));
            }
        }
        lines
    }
}

/// What the counters and the stranded machines mean, for the sections
/// that show them.
impl Report {
    /// The server's counters in one line, and what each means beneath it
    /// (naming the builds this run rolled back, whose downgrades count
    /// among the successes).
    pub(crate) fn server_counters(&self) -> (String, Vec<String>) {
        let c = &self.server;
        let line = format!(
            "Server: {} heartbeats, {} updates sent, {} re-sent, {} downloads, {} succeeded, {} failed.",
            c.heartbeats, c.dispatches, c.redispatches, c.downloads, c.successes, c.failures
        );
        let rolled: Vec<String> = self
            .builds
            .iter()
            .filter(|b| b.rolled_back_s.is_some())
            .map(|b| b.version.to_string())
            .collect();
        let meanings = COUNTERS
            .iter()
            .map(|(name, means)| match *name {
                "succeeded" if !rolled.is_empty() => format!(
                    "{name}: {means} (this run rolled back {}: the machines moved back off it are among these successes)",
                    rolled.join(", ")
                ),
                _ => format!("{name}: {means}"),
            })
            .collect();
        (line, meanings)
    }

    /// Promotes the server refused, the last refusal of each build never
    /// promoted after it nor rolled back, oldest build first.
    fn refusals(&self) -> Vec<Refusal<'_>> {
        let mut last: BTreeMap<Version, Refusal<'_>> = BTreeMap::new();
        for e in &self.timeline {
            let (Some(what), Some(why)) = (e.action.strip_prefix("promote "), e.outcome.strip_prefix("refused: "))
            else {
                continue;
            };
            let Some(version) = what.split_whitespace().next().and_then(|v| v.parse::<Version>().ok()) else {
                continue;
            };
            let build = self.builds.iter().find(|b| b.version == version);
            if build.is_some_and(|b| b.promoted_s.is_none() && b.rolled_back_s.is_none()) {
                last.insert(
                    version,
                    Refusal {
                        version,
                        at_s: e.at_s,
                        why,
                    },
                );
            }
        }
        last.into_values().collect()
    }

    /// The refused promote that keeps a machine on stable behind: the
    /// newest refused build past what it runs.
    fn refusal_behind<'a>(&self, refusals: &'a [Refusal<'a>], s: &Stranded) -> Option<&'a Refusal<'a>> {
        let frozen = s.reason == StrandReason::ChannelFrozen && s.channel == Channel::Stable;
        refusals.iter().rev().find(|r| frozen && r.version > s.version)
    }

    /// A stranded machine's particulars, saying so when it is stranded
    /// because a promote was refused.
    pub(crate) fn stranded_detail(&self, s: &Stranded) -> String {
        let refusals = self.refusals();
        match self.refusal_behind(&refusals, s) {
            Some(r) => format!(
                "{}; stranded because the promote of {} was refused at {}",
                s.detail,
                r.version,
                crate::clock::short(Duration::from_secs_f64(r.at_s.max(0.0)))
            ),
            None => s.detail.clone(),
        }
    }

    /// One sentence per refused promote that strands machines: how many,
    /// when and why the server refused.
    pub(crate) fn refused_promote_lines(&self) -> Vec<String> {
        let refusals = self.refusals();
        let mut lines = Vec::new();
        for r in &refusals {
            let n = self
                .stranded
                .iter()
                .filter(|s| {
                    self.refusal_behind(&refusals, s)
                        .is_some_and(|x| x.version == r.version)
                })
                .count();
            if n == 0 {
                continue;
            }
            lines.push(format!(
                "{} on stable {} stranded because the promote of {} was refused at {} ({}): stable keeps its newest \
                 build until a promote goes through.",
                plural(n, "machine"),
                if n == 1 { "is" } else { "are" },
                r.version,
                crate::clock::short(Duration::from_secs_f64(r.at_s.max(0.0))),
                r.why
            ));
        }
        lines
    }
}
