//! Sentences of the report for people, built once from its figures so that
//! `report.md` and `report.html` say the same thing.

use std::collections::BTreeMap;
use std::time::Duration;

use super::report::{BuildReport, Report};
use crate::protocol::Channel;

/// What "off channel" means, for the heading of the list.
pub(crate) const OFF_CHANNEL_MEANS: &str = "Machines running a build their channel does not offer them: a beta build \
                                     never promoted on a machine on stable, or a rolled-back build.";

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
