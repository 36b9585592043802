//! The latest scan, indexed for the questions the server asks on every
//! heartbeat: what is the newest build for this platform and channel, and
//! which file is this download.

use std::collections::BTreeSet;

use super::core::FastMap;

use serde::Serialize;

use crate::clock::Timestamp;
use crate::protocol::{Channel, Platform, Version};

use super::rules;
use super::scanner::{Build, DIGEST_SUFFIX, FileStamp, Scan};

/// What a download name refers to (see [`Catalog::servable`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Servable<'a> {
    /// The build's own file.
    Build(&'a Build),
    /// The build's `.sha256` companion.
    Digest(&'a Build),
}

/// A scan and its indexes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Catalog {
    /// What the scan found, as it found it.
    #[serde(flatten)]
    scan: Scan,
    /// When the scan ran (server clock).
    scanned_at: Timestamp,
    #[serde(skip)]
    by_file: FastMap<String, usize>,
    #[serde(skip)]
    by_platform: FastMap<Platform, Vec<usize>>,
}

impl Catalog {
    /// Indexes a scan.
    pub fn new(scan: Scan, scanned_at: Timestamp) -> Self {
        let mut by_file = FastMap::default();
        let mut by_platform: FastMap<Platform, Vec<usize>> = FastMap::default();
        for (i, b) in scan.builds.iter().enumerate() {
            by_file.insert(b.file.clone(), i);
            by_platform.entry(b.platform.clone()).or_default().push(i);
        }
        Self {
            scan,
            scanned_at,
            by_file,
            by_platform,
        }
    }

    /// The scan behind the catalog.
    pub fn scan(&self) -> &Scan {
        &self.scan
    }

    /// When the scan ran.
    pub fn scanned_at(&self) -> Timestamp {
        self.scanned_at
    }

    /// Every build of one platform.
    pub fn builds_for<'a>(&'a self, platform: &Platform) -> impl Iterator<Item = &'a Build> + 'a {
        let idx = self.by_platform.get(platform).map(Vec::as_slice).unwrap_or(&[]);
        idx.iter().map(|&i| &self.scan.builds[i])
    }

    /// U7 over this scan.
    pub fn latest(&self, platform: &Platform, channel: Channel, blocked: &BTreeSet<Version>) -> Option<&Build> {
        rules::latest(self.builds_for(platform), platform, channel, blocked)
    }

    /// The build of `version` for `platform`, if the scan found one.
    pub fn find(&self, platform: &Platform, version: Version) -> Option<&Build> {
        self.builds_for(platform).find(|b| b.version == version)
    }

    /// Every platform's build of `version`.
    pub fn builds_of(&self, version: Version) -> impl Iterator<Item = &Build> + '_ {
        self.scan.builds.iter().filter(move |b| b.version == version)
    }

    /// How the scan saw a build's file (see [`FileStamp`]).
    pub fn stamp(&self, file: &str) -> Option<&FileStamp> {
        self.scan.stamps.get(file)
    }

    /// The build a download name refers to: the build itself or its
    /// `.sha256`. Nothing else in the folder is ever served.
    pub fn servable(&self, name: &str) -> Option<Servable<'_>> {
        if let Some(&i) = self.by_file.get(name) {
            return Some(Servable::Build(&self.scan.builds[i]));
        }
        let base = name.strip_suffix(DIGEST_SUFFIX)?;
        self.by_file.get(base).map(|&i| Servable::Digest(&self.scan.builds[i]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::scanner::CHANNEL_SUFFIX;

    #[test]
    fn a_build_and_its_digest_are_servable_nothing_else() {
        let build = Build {
            file: "gururmm-agent-windows-amd64-1.0.0.exe".into(),
            platform: "windows-amd64".parse().unwrap(),
            version: "1.0.0".parse().unwrap(),
            channel: Channel::Stable,
            sha256: "0".repeat(64),
            size: 1,
        };
        let scan = Scan {
            builds: vec![build.clone()],
            ..Scan::default()
        };
        let catalog = Catalog::new(scan, Timestamp(0));
        assert_eq!(catalog.servable(&build.file), Some(Servable::Build(&build)));
        let digest = format!("{}{DIGEST_SUFFIX}", build.file);
        assert_eq!(catalog.servable(&digest), Some(Servable::Digest(&build)));
        let channel = format!("{}{CHANNEL_SUFFIX}", build.file);
        assert_eq!(catalog.servable(&channel), None);
        assert_eq!(catalog.servable("gururmm-agent-windows-amd64-1.0.1.exe"), None);
    }
}
