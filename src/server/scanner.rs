//! U6: what builds are available is whatever a scan of the downloads folder
//! finds. The grammar is exact; every file that is not offered is kept with
//! the reason (the original skipped them silently).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::Serialize;

use super::files::{FileError, read_companion};
use crate::protocol::{Channel, Platform, Version};

/// Every build file name starts with this.
pub const BUILD_PREFIX: &str = "gururmm-agent-";
/// Every build file name ends with this, whatever the os.
pub const BUILD_SUFFIX: &str = ".exe";
/// The companion holding the build's hex SHA-256.
pub const DIGEST_SUFFIX: &str = ".sha256";
/// The sidecar holding the build's channel.
pub const CHANNEL_SUFFIX: &str = ".channel";

/// A build the scan found valid: it may be offered (unless blocked, U7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Build {
    /// The file name in the downloads folder.
    pub file: String,
    /// Parsed from the name.
    pub platform: Platform,
    /// Parsed from the name.
    pub version: Version,
    /// From the `.channel` sidecar: `beta` only when it says so (U6).
    pub channel: Channel,
    /// Lowercase hex SHA-256 from the `.sha256` companion.
    pub sha256: String,
    /// The file's size in bytes.
    pub size: u64,
}

/// A file the scan did not take as a build, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The file name in the downloads folder.
    pub file: String,
    /// Why it is not offered.
    pub reason: SkipReason,
}

/// Why a file in the downloads folder is not an offered build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "code", content = "detail", rename_all = "snake_case")]
pub enum SkipReason {
    /// The name does not follow `gururmm-agent-{os}-{arch}-{version}.exe`.
    BadName(String),
    /// A per-site build (`…-site-<uuid>-…`): deliberately never offered.
    PerSite,
    /// The name's version part is not MAJOR.MINOR.PATCH.
    BadVersion(String),
    /// No `<file>.sha256` beside the build.
    MissingDigest,
    /// The `.sha256` does not hold a 64-hex-digit digest.
    MalformedDigest(String),
    /// A `.sha256` or `.channel` whose build is not in the folder.
    OrphanCompanion,
    /// Not a regular file (a directory, say).
    NotAFile,
    /// Hidden or temporary (a publish in progress writes these).
    Hidden,
    /// The file or its companion could not be read.
    Unreadable(String),
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadName(d) => write!(f, "bad name: {d}"),
            Self::PerSite => f.write_str("per-site build, never offered"),
            Self::BadVersion(d) => write!(f, "bad version: {d}"),
            Self::MissingDigest => f.write_str("missing .sha256"),
            Self::MalformedDigest(d) => write!(f, "malformed .sha256: {d}"),
            Self::OrphanCompanion => f.write_str("companion without its build"),
            Self::NotAFile => f.write_str("not a regular file"),
            Self::Hidden => f.write_str("hidden or temporary file"),
            Self::Unreadable(d) => write!(f, "unreadable: {d}"),
        }
    }
}

/// The result of one scan: builds sorted by platform then version, skipped
/// files sorted by name. Both orders are deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Scan {
    /// What may be offered.
    pub builds: Vec<Build>,
    /// What may not, with reasons.
    pub skipped: Vec<Skipped>,
    /// Each build file as the scan saw it, by file name: a download serves
    /// the file only while it is still this one.
    #[serde(skip)]
    pub stamps: BTreeMap<String, FileStamp>,
}

/// Which file a build was when it was scanned, and how it looked: a file
/// opened later is the scanned one when its stamp is equal. A file rewritten
/// in place keeps its inode but (nearly always) changes its size or mtime; a
/// file renamed over it, or a symlink swapped in, is another inode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileStamp {
    /// The device holding the file.
    pub dev: u64,
    /// The inode.
    pub ino: u64,
    /// The size in bytes.
    pub len: u64,
    /// The modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i128,
}

impl FileStamp {
    /// The stamp of a file's metadata (of the file itself, never of a
    /// symlink's target: callers pass `symlink_metadata` or an open file's).
    pub fn of(meta: &fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }
}

/// Parses a build file name (U6). Per-site names fail on purpose.
pub fn parse_build_name(name: &str) -> Result<(Platform, Version), SkipReason> {
    let bad = |why: &str| SkipReason::BadName(why.to_owned());
    let middle = name
        .strip_prefix(BUILD_PREFIX)
        .ok_or_else(|| bad("does not start with gururmm-agent-"))?
        .strip_suffix(BUILD_SUFFIX)
        .ok_or_else(|| bad("does not end with .exe"))?;
    let parts: Vec<&str> = middle.split('-').collect();
    if parts.contains(&"site") {
        return Err(SkipReason::PerSite);
    }
    let [os, arch, version] = parts[..] else {
        return Err(bad("expected exactly {os}-{arch}-{version} between prefix and .exe"));
    };
    let platform = Platform::new(os, arch).map_err(|e| bad(&e.to_string()))?;
    let version = version
        .parse()
        .map_err(|e: crate::protocol::VersionError| SkipReason::BadVersion(e.to_string()))?;
    Ok((platform, version))
}

/// The digest in a `.sha256` companion: its first word, 64 hex digits
/// (so both a bare digest and `sha256sum` output are accepted), lowercased.
pub fn parse_digest(content: &str) -> Result<String, SkipReason> {
    let word = content.split_whitespace().next().unwrap_or("");
    if word.len() == 64 && word.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(word.to_ascii_lowercase())
    } else {
        let shown: String = word.chars().take(16).collect();
        Err(SkipReason::MalformedDigest(format!(
            "expected 64 hex digits, found `{shown}`"
        )))
    }
}

/// The channel a sidecar says (U6): `beta`, with surrounding whitespace
/// trimmed, means beta; absent or anything else means stable: `Beta`,
/// `BETA`, a byte-order mark before `beta`, bytes that are not UTF-8 (say,
/// UTF-16). The source says only "absent or non-beta"; this reading of
/// "beta" is this project's choice.
pub fn parse_channel(content: Option<&[u8]>) -> Channel {
    match content.and_then(|c| std::str::from_utf8(c).ok()).map(str::trim) {
        Some("beta") => Channel::Beta,
        _ => Channel::Stable,
    }
}

/// The version a build file name carries, in any name form: the text
/// between the name's last `-` and `.exe`, in a name that starts with
/// `gururmm-agent-`. So the exact form, a per-site build and a name the
/// grammar refuses (`gururmm-agent-windows-amd64-beta-0.6.58.exe`) all carry
/// 0.6.58. Promote and rollback find a version's sidecars by it (U9, U10).
pub fn version_in_name(name: &str) -> Option<Version> {
    let middle = name.strip_prefix(BUILD_PREFIX)?.strip_suffix(BUILD_SUFFIX)?;
    middle.rsplit('-').next()?.parse().ok()
}

/// A `.channel` sidecar in the downloads folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sidecar {
    /// The build file it belongs to (its name without `.channel`); the build
    /// itself may be missing or skipped by the scan.
    pub file: String,
    /// What it says, read as the scan reads it.
    pub channel: Channel,
}

/// Every `.channel` sidecar in `dir` whose build name carries `version`
/// ([`version_in_name`]), whether or not its build is there and whether or
/// not the scan takes that build; sorted by name. Hidden files and anything
/// that is not a regular file are left out, as the scan leaves them out.
pub fn sidecars_of(dir: &Path, version: Version) -> io::Result<Vec<Sidecar>> {
    let mut sidecars = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Some(file) = name.strip_suffix(CHANNEL_SUFFIX) else {
            continue;
        };
        if name.starts_with('.') || version_in_name(file) != Some(version) {
            continue;
        }
        if !entry.file_type()?.is_file() {
            continue;
        }
        let content = read_companion(&entry.path()).map_err(io::Error::other)?;
        let channel = parse_channel(Some(&content));
        sidecars.push(Sidecar {
            file: file.to_owned(),
            channel,
        });
    }
    sidecars.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(sidecars)
}

/// The companion file name of a build, e.g. `<file>.sha256`.
pub fn companion(file: &str, suffix: &str) -> String {
    format!("{file}{suffix}")
}

/// Scans a downloads folder. Only a failure to list the folder is an error;
/// everything wrong with a single file becomes a [`Skipped`] entry.
pub fn scan_dir(dir: &Path) -> io::Result<Scan> {
    let mut names = BTreeSet::new();
    let mut skipped = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            let lossy = entry.file_name().to_string_lossy().into_owned();
            skipped.push(Skipped {
                file: lossy,
                reason: SkipReason::BadName("not UTF-8".into()),
            });
            continue;
        };
        if name.starts_with('.') {
            skipped.push(Skipped {
                file: name,
                reason: SkipReason::Hidden,
            });
        } else if entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
            names.insert(name);
        } else {
            skipped.push(Skipped {
                file: name,
                reason: SkipReason::NotAFile,
            });
        }
    }
    let mut builds = Vec::new();
    let mut stamps = BTreeMap::new();
    for name in &names {
        let base = name
            .strip_suffix(DIGEST_SUFFIX)
            .or_else(|| name.strip_suffix(CHANNEL_SUFFIX));
        if let Some(base) = base {
            if !names.contains(base) {
                skipped.push(Skipped {
                    file: name.clone(),
                    reason: SkipReason::OrphanCompanion,
                });
            }
            continue;
        }
        match read_build(dir, name, &names) {
            Ok((build, stamp)) => {
                stamps.insert(build.file.clone(), stamp);
                builds.push(build);
            }
            Err(reason) => skipped.push(Skipped {
                file: name.clone(),
                reason,
            }),
        }
    }
    builds.sort_by(|a, b| (&a.platform, a.version).cmp(&(&b.platform, b.version)));
    skipped.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(Scan {
        builds,
        skipped,
        stamps,
    })
}

fn read_build(dir: &Path, name: &str, names: &BTreeSet<String>) -> Result<(Build, FileStamp), SkipReason> {
    let (platform, version) = parse_build_name(name)?;
    let unreadable = |e: FileError| SkipReason::Unreadable(e.to_string());
    let digest_name = companion(name, DIGEST_SUFFIX);
    if !names.contains(&digest_name) {
        return Err(SkipReason::MissingDigest);
    }
    let digest = read_companion(&dir.join(&digest_name)).map_err(unreadable)?;
    let digest = String::from_utf8(digest).map_err(|_| SkipReason::Unreadable("not UTF-8".into()))?;
    let sha256 = parse_digest(&digest)?;
    let channel_name = companion(name, CHANNEL_SUFFIX);
    let channel = if names.contains(&channel_name) {
        parse_channel(Some(&read_companion(&dir.join(&channel_name)).map_err(unreadable)?))
    } else {
        parse_channel(None)
    };
    // The file itself: a symlink swapped in since the folder was listed is
    // not a build.
    let meta = fs::symlink_metadata(dir.join(name)).map_err(|e| unreadable(e.into()))?;
    if !meta.is_file() {
        return Err(SkipReason::NotAFile);
    }
    let stamp = FileStamp::of(&meta);
    let build = Build {
        file: name.to_owned(),
        platform,
        version,
        channel,
        sha256,
        size: stamp.len,
    };
    Ok((build, stamp))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn write(dir: &Path, name: &str, content: &str) {
        fs::write(dir.join(name), content).unwrap();
    }

    /// A 5-byte build and the companions given (`None` leaves one out).
    fn write_build(dir: &Path, name: &str, digest: Option<&str>, channel: Option<&str>) {
        write(dir, name, "bytes");
        if let Some(digest) = digest {
            write(dir, &companion(name, DIGEST_SUFFIX), digest);
        }
        if let Some(channel) = channel {
            write(dir, &companion(name, CHANNEL_SUFFIX), channel);
        }
    }

    #[test]
    fn parses_the_exact_grammar() {
        let (p, v) = parse_build_name("gururmm-agent-windows-amd64-0.6.58.exe").unwrap();
        assert_eq!(
            (p.to_string(), v.to_string()),
            ("windows-amd64".into(), "0.6.58".into())
        );
        let (p, _) = parse_build_name("gururmm-agent-linux-arm64-1.0.0.exe").unwrap();
        assert_eq!(p.os(), "linux");
    }

    #[test]
    fn per_site_and_malformed_names_fail() {
        let site = "gururmm-agent-windows-amd64-site-3f1c2a9e-0b7d-4c1e-9a51-3d2f8e4b7c10-0.6.58.exe";
        assert_eq!(parse_build_name(site), Err(SkipReason::PerSite));
        for bad in [
            "gururmm-agent-windows-amd64-0.6.58",
            "gururmm-agent-windows-0.6.58.exe",
            "gururmm-agent-windows-amd64-beta-0.6.58.exe",
            "agent-windows-amd64-0.6.58.exe",
            "gururmm-agent-Windows-amd64-0.6.58.exe",
        ] {
            assert!(matches!(parse_build_name(bad), Err(SkipReason::BadName(_))), "{bad}");
        }
        assert!(matches!(
            parse_build_name("gururmm-agent-windows-amd64-0.6.exe"),
            Err(SkipReason::BadVersion(_))
        ));
        assert!(matches!(
            parse_build_name("gururmm-agent-windows-amd64-0.6.x.exe"),
            Err(SkipReason::BadVersion(_))
        ));
    }

    #[test]
    fn digests_and_channels() {
        assert_eq!(parse_digest(&format!("{}\n", DIGEST.to_uppercase())).unwrap(), DIGEST);
        assert_eq!(
            parse_digest(&format!("{DIGEST}  gururmm-agent-x.exe\n")).unwrap(),
            DIGEST
        );
        assert!(parse_digest("").is_err());
        assert!(parse_digest(&DIGEST[..63]).is_err());
        assert!(parse_digest(&format!("{}g", &DIGEST[..63])).is_err());
    }

    #[test]
    fn a_sidecar_is_beta_only_when_it_says_beta_between_whitespace() {
        let read = |content: &[u8]| parse_channel(Some(content));
        for beta in ["beta", "beta\n", "beta\r\n", "  beta\t\n", "\n\nbeta"] {
            assert_eq!(read(beta.as_bytes()), Channel::Beta, "{beta:?}");
        }
        for stable in [
            "Beta",
            "BETA",
            "\u{feff}beta",
            "stable",
            "",
            "beta beta",
            "betas",
            "# beta",
        ] {
            assert_eq!(read(stable.as_bytes()), Channel::Stable, "{stable:?}");
        }
        // UTF-16 (what some Windows tools write) is not UTF-8, so not `beta`.
        let utf16: Vec<u8> = "\u{feff}beta".encode_utf16().flat_map(u16::to_le_bytes).collect();
        assert_eq!(read(&utf16), Channel::Stable);
        assert_eq!(read(&[b'b', b'e', b't', b'a', 0xff]), Channel::Stable);
        assert_eq!(parse_channel(None), Channel::Stable);
    }

    #[test]
    fn every_name_form_carries_its_version() {
        let v = |s: &str| Some(s.parse::<Version>().unwrap());
        assert_eq!(version_in_name("gururmm-agent-windows-amd64-0.6.58.exe"), v("0.6.58"));
        assert_eq!(
            version_in_name("gururmm-agent-windows-amd64-site-3f1c2a9e-0b7d-4c1e-9a51-3d2f8e4b7c10-0.6.58.exe"),
            v("0.6.58")
        );
        assert_eq!(
            version_in_name("gururmm-agent-Windows-amd64-beta-0.6.58.exe"),
            v("0.6.58")
        );
        assert_eq!(version_in_name("gururmm-agent-0.6.58.exe"), v("0.6.58"));
        for none in [
            "gururmm-agent-windows-amd64-0.6.58.msi",
            "agent-windows-amd64-0.6.58.exe",
            "gururmm-agent-windows-amd64-0.6.exe",
            "gururmm-agent-windows-amd64-0.6.58-rc1.exe",
            "gururmm-agent-windows-amd64-00.6.58.exe",
        ] {
            assert_eq!(version_in_name(none), None, "{none}");
        }
    }

    #[test]
    fn a_versions_sidecars_are_found_by_name_whatever_the_scan_says() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let offered = "gururmm-agent-windows-amd64-0.6.58.exe";
        write_build(d, offered, Some(DIGEST), Some("beta\n"));
        // No digest yet: the scan skips it.
        let undigested = "gururmm-agent-linux-amd64-0.6.58.exe";
        write_build(d, undigested, None, Some("beta\n"));
        let site = "gururmm-agent-windows-amd64-site-3f1c2a9e-0b7d-4c1e-9a51-3d2f8e4b7c10-0.6.58.exe";
        write(d, &companion(site, CHANNEL_SUFFIX), "stable\n");
        // Not of 0.6.58, not a sidecar, hidden, not a file: left out.
        write(d, "gururmm-agent-windows-amd64-0.6.59.exe.channel", "beta");
        write(d, "gururmm-agent-windows-amd64-0.6.580.exe.channel", "beta");
        write(d, ".gururmm-agent-windows-amd64-0.6.58.exe.channel.tmp", "beta");
        write(d, ".gururmm-agent-macos-arm64-0.6.58.exe.channel", "beta");
        fs::create_dir(d.join("gururmm-agent-macos-amd64-0.6.58.exe.channel")).unwrap();

        let found = sidecars_of(d, "0.6.58".parse().unwrap()).unwrap();
        let found: Vec<_> = found.iter().map(|s| (s.file.as_str(), s.channel)).collect();
        assert_eq!(
            found,
            [
                (undigested, Channel::Beta),
                (offered, Channel::Beta),
                (site, Channel::Stable),
            ]
        );
    }

    #[test]
    fn a_sidecar_that_is_not_utf8_reads_as_stable_and_its_build_is_offered() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let file = "gururmm-agent-windows-amd64-0.6.58.exe";
        write_build(d, file, Some(DIGEST), None);
        let utf16: Vec<u8> = "\u{feff}beta\r\n".encode_utf16().flat_map(u16::to_le_bytes).collect();
        fs::write(d.join(companion(file, CHANNEL_SUFFIX)), utf16).unwrap();
        let scan = scan_dir(d).unwrap();
        assert!(scan.skipped.is_empty(), "{scan:?}");
        let builds: Vec<_> = scan.builds.iter().map(|b| (b.file.as_str(), b.channel)).collect();
        assert_eq!(builds, [(file, Channel::Stable)]);
    }

    #[test]
    fn a_scan_keeps_every_skipped_file_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ok = "gururmm-agent-windows-amd64-0.6.58.exe";
        write_build(d, ok, Some(DIGEST), Some("beta"));
        let stable = "gururmm-agent-windows-amd64-0.6.47.exe";
        write_build(d, stable, Some(DIGEST), None);
        let nodigest = "gururmm-agent-windows-amd64-0.6.59.exe";
        write_build(d, nodigest, None, None);
        let baddigest = "gururmm-agent-linux-amd64-0.6.59.exe";
        write_build(d, baddigest, Some("not-a-digest"), None);
        let site = "gururmm-agent-windows-amd64-site-3f1c2a9e-0b7d-4c1e-9a51-3d2f8e4b7c10-0.6.60.exe";
        write_build(d, site, Some(DIGEST), None);
        write(d, "README.txt", "hi");
        write(d, "gururmm-agent-windows-amd64-0.6.10.exe.sha256", DIGEST);
        write(d, ".gururmm-agent-windows-amd64-0.7.0.exe.tmp", "");
        fs::create_dir(d.join("old")).unwrap();

        let scan = scan_dir(d).unwrap();
        let builds: Vec<_> = scan.builds.iter().map(|b| (b.file.as_str(), b.channel)).collect();
        assert_eq!(builds, [(stable, Channel::Stable), (ok, Channel::Beta)]);
        assert_eq!(scan.builds[1].sha256, DIGEST);
        assert_eq!(scan.builds[1].size, 5);
        let reasons: Vec<_> = scan
            .skipped
            .iter()
            .map(|s| (s.file.as_str(), s.reason.clone()))
            .collect();
        assert_eq!(
            reasons,
            [
                (".gururmm-agent-windows-amd64-0.7.0.exe.tmp", SkipReason::Hidden),
                (
                    "README.txt",
                    SkipReason::BadName("does not start with gururmm-agent-".into())
                ),
                (baddigest, parse_digest("not-a-digest").unwrap_err()),
                (
                    "gururmm-agent-windows-amd64-0.6.10.exe.sha256",
                    SkipReason::OrphanCompanion
                ),
                (nodigest, SkipReason::MissingDigest),
                (site, SkipReason::PerSite),
                ("old", SkipReason::NotAFile),
            ]
        );
    }
}
