//! U8: how builds land in the downloads folder, as a release pipeline puts
//! them there, and the sidecar edits of promote and rollback (U9, U10).
//!
//! Every file is written to a hidden temporary name and renamed into place,
//! and a build's files land in an order that never shows a half-published
//! build as something it is not: the `.channel` first, then the binary, and
//! the `.sha256` last (until it exists, the scan skips the build).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use crate::protocol::{Channel, Platform, Version, sha256_hex};

use super::scanner::{BUILD_PREFIX, BUILD_SUFFIX, CHANNEL_SUFFIX, DIGEST_SUFFIX, companion};

/// The bytes of a build.
#[derive(Debug, Clone)]
pub enum Content {
    /// Deterministic filler of this many bytes, the same for the same
    /// platform and version on every machine.
    Synthetic(u64),
    /// A real file, copied.
    File(PathBuf),
}

/// What to write beside the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DigestMode {
    /// The true SHA-256 of the bytes.
    #[default]
    Correct,
    /// A well-formed digest of other bytes: agents that check it fail (a
    /// corrupted upload).
    Corrupt,
    /// No `.sha256` at all: the scanner skips the build (U6).
    Missing,
}

/// A build to publish.
#[derive(Debug, Clone)]
pub struct Publication {
    /// Version in the file name.
    pub version: Version,
    /// Platform in the file name.
    pub platform: Platform,
    /// The bytes.
    pub content: Content,
    /// What the `.channel` sidecar says; builds land as beta (U8).
    pub channel: Channel,
    /// What the `.sha256` holds.
    pub digest: DigestMode,
    /// Replace a build that is already there.
    pub overwrite: bool,
}

/// What [`publish`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The build's file name.
    pub file: String,
    /// Its SHA-256 as written to the `.sha256` (the corrupt one when asked).
    pub sha256: Option<String>,
    /// Its size in bytes.
    pub size: u64,
}

/// Why a publish failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The build is already in the folder.
    #[error("{0} already exists in the downloads folder (pass --force to replace it)")]
    Exists(String),
    /// Filesystem trouble, with the path.
    #[error("{path}: {source}")]
    Io {
        /// Which file.
        path: PathBuf,
        /// What happened.
        source: io::Error,
    },
}

/// The file name of a build (U6 grammar).
pub fn build_file_name(platform: &Platform, version: Version) -> String {
    format!("{BUILD_PREFIX}{platform}-{version}{BUILD_SUFFIX}")
}

/// Deterministic build bytes: a ChaCha stream keyed by the file name, so two
/// publishes of the same build are byte-identical and different builds differ.
pub fn synthetic_bytes(platform: &Platform, version: Version, size: u64) -> Vec<u8> {
    let seed: [u8; 32] = Sha256::digest(build_file_name(platform, version).as_bytes()).into();
    let mut bytes = vec![0; usize::try_from(size).unwrap_or(usize::MAX)];
    ChaCha8Rng::from_seed(seed).fill_bytes(&mut bytes);
    bytes
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PublishError + '_ {
    move |source| PublishError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes `bytes` to `dir/name` atomically: a hidden temporary file, then a rename.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), PublishError> {
    let tmp = dir.join(format!(".{name}.tmp"));
    fs::write(&tmp, bytes).map_err(io_err(&tmp))?;
    let dest = dir.join(name);
    fs::rename(&tmp, &dest).map_err(io_err(&dest))
}

/// Publishes a build into `dir` (U8).
pub fn publish(dir: &Path, p: &Publication) -> Result<Published, PublishError> {
    let file = build_file_name(&p.platform, p.version);
    if !p.overwrite && dir.join(&file).exists() {
        return Err(PublishError::Exists(file));
    }
    let bytes = match &p.content {
        Content::Synthetic(size) => synthetic_bytes(&p.platform, p.version, *size),
        Content::File(path) => fs::read(path).map_err(io_err(path))?,
    };
    let sha256 = match p.digest {
        DigestMode::Correct => Some(sha256_hex(&bytes)),
        DigestMode::Corrupt => Some(sha256_hex(format!("corrupt {file}").as_bytes())),
        DigestMode::Missing => None,
    };
    write_atomic(
        dir,
        &companion(&file, CHANNEL_SUFFIX),
        format!("{}\n", p.channel).as_bytes(),
    )?;
    write_atomic(dir, &file, &bytes)?;
    let digest_name = companion(&file, DIGEST_SUFFIX);
    match &sha256 {
        Some(d) => write_atomic(dir, &digest_name, format!("{d}  {file}\n").as_bytes())?,
        None => match fs::remove_file(dir.join(&digest_name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(io_err(&dir.join(&digest_name))(e));
            }
            _ => {}
        },
    }
    Ok(Published {
        file,
        sha256,
        size: bytes.len() as u64,
    })
}

/// Rewrites a build's `.channel` sidecar (promote, U9).
pub fn set_sidecar(dir: &Path, file: &str, channel: Channel) -> Result<(), PublishError> {
    write_atomic(dir, &companion(file, CHANNEL_SUFFIX), format!("{channel}\n").as_bytes())
}

/// Removes a build's `.channel` sidecar if it has one (rollback, U10).
/// Returns whether there was one.
pub fn remove_sidecar(dir: &Path, file: &str) -> Result<bool, PublishError> {
    let path = dir.join(companion(file, CHANNEL_SUFFIX));
    match fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err(&path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::scanner::scan_dir;

    fn publication(version: &str, channel: Channel, digest: DigestMode) -> Publication {
        Publication {
            version: version.parse().unwrap(),
            platform: "windows-amd64".parse().unwrap(),
            content: Content::Synthetic(4096),
            channel,
            digest,
            overwrite: false,
        }
    }

    #[test]
    fn a_published_build_scans_as_beta_with_its_true_digest() {
        let dir = tempfile::tempdir().unwrap();
        let out = publish(dir.path(), &publication("0.6.58", Channel::Beta, DigestMode::Correct)).unwrap();
        let bytes = fs::read(dir.path().join(&out.file)).unwrap();
        assert_eq!(out.sha256.as_deref(), Some(sha256_hex(&bytes).as_str()));
        let scan = scan_dir(dir.path()).unwrap();
        assert_eq!(scan.builds.len(), 1, "{scan:?}");
        assert_eq!(scan.builds[0].channel, Channel::Beta);
        assert_eq!(scan.builds[0].sha256, sha256_hex(&bytes));
        assert!(scan.skipped.is_empty(), "{scan:?}");
    }

    #[test]
    fn content_is_deterministic_and_differs_per_build() {
        let p: Platform = "windows-amd64".parse().unwrap();
        let a = synthetic_bytes(&p, Version::new(0, 6, 58), 1000);
        assert_eq!(a, synthetic_bytes(&p, Version::new(0, 6, 58), 1000));
        assert_ne!(a, synthetic_bytes(&p, Version::new(0, 6, 57), 1000));
    }

    #[test]
    fn refuses_to_overwrite_and_honours_digest_modes() {
        let dir = tempfile::tempdir().unwrap();
        publish(dir.path(), &publication("0.6.58", Channel::Beta, DigestMode::Correct)).unwrap();
        let again = publish(dir.path(), &publication("0.6.58", Channel::Beta, DigestMode::Correct));
        assert!(matches!(again, Err(PublishError::Exists(_))));
        publish(dir.path(), &publication("0.6.59", Channel::Beta, DigestMode::Missing)).unwrap();
        let bad = publish(dir.path(), &publication("0.6.60", Channel::Stable, DigestMode::Corrupt)).unwrap();
        let scan = scan_dir(dir.path()).unwrap();
        let versions: Vec<_> = scan.builds.iter().map(|b| b.version.to_string()).collect();
        assert_eq!(versions, ["0.6.58", "0.6.60"]);
        let bytes = fs::read(dir.path().join(&bad.file)).unwrap();
        assert_ne!(scan.builds[1].sha256, sha256_hex(&bytes));
    }

    #[test]
    fn sidecars_flip_and_disappear() {
        let dir = tempfile::tempdir().unwrap();
        let out = publish(dir.path(), &publication("0.6.58", Channel::Beta, DigestMode::Correct)).unwrap();
        set_sidecar(dir.path(), &out.file, Channel::Stable).unwrap();
        assert_eq!(scan_dir(dir.path()).unwrap().builds[0].channel, Channel::Stable);
        assert!(remove_sidecar(dir.path(), &out.file).unwrap());
        assert!(!remove_sidecar(dir.path(), &out.file).unwrap());
    }
}
