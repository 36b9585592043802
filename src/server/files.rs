//! Opening files of the downloads folder safely: never through a symlink,
//! never blocking on a FIFO, only regular files, and (for builds) only the
//! very file the last scan saw. Whatever replaced a file since the scan (a
//! rewrite in place, a rename over it, a symlink) is refused until the next
//! scan looks at it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::scanner::FileStamp;

/// The most a `.sha256` or `.channel` companion may hold. Both are a line
/// (a digest and a file name, or `beta`); the scanner refuses a bigger one
/// rather than reading it into memory.
pub const MAX_COMPANION_BYTES: u64 = 4096;

/// Why a file of the downloads folder could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// It is gone.
    #[error("the file is gone")]
    Missing,
    /// It is not what the scan saw, or not what it may be: a symlink, not
    /// a regular file, another file, or rewritten (what differs is said).
    #[error("{0}")]
    Changed(String),
    /// A companion over [`MAX_COMPANION_BYTES`].
    #[error("larger than {MAX_COMPANION_BYTES} bytes")]
    TooLarge,
    /// Reading failed.
    #[error(transparent)]
    Io(io::Error),
}

impl From<io::Error> for FileError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::NotFound => Self::Missing,
            // O_NOFOLLOW on a symlink.
            _ if e.raw_os_error() == Some(libc::ELOOP) => Self::Changed("it is a symlink".into()),
            _ => Self::Io(e),
        }
    }
}

/// Opens a regular file for reading: `O_NOFOLLOW` (a symlink fails rather
/// than being followed) and `O_NONBLOCK` (a FIFO put in its place does not
/// block the open until a writer comes); then checks, on the opened file,
/// that it is a regular file.
pub fn open_regular(path: &Path) -> Result<File, FileError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(FileError::Changed("it is not a regular file".into()));
    }
    Ok(file)
}

/// Opens a build file, only if it is the file the scan stamped.
pub fn open_scanned(path: &Path, scanned: &FileStamp) -> Result<File, FileError> {
    let file = open_regular(path)?;
    let now = FileStamp::of(&file.metadata()?);
    if (now.dev, now.ino) != (scanned.dev, scanned.ino) {
        return Err(FileError::Changed("another file took its name".into()));
    }
    if now.len != scanned.len {
        return Err(FileError::Changed(format!(
            "{} bytes, the scan saw {}",
            now.len, scanned.len
        )));
    }
    if now.mtime_ns != scanned.mtime_ns {
        return Err(FileError::Changed("modified".into()));
    }
    Ok(file)
}

/// Reads a small companion file whole ([`open_regular`], at most
/// [`MAX_COMPANION_BYTES`]).
pub fn read_companion(path: &Path) -> Result<Vec<u8>, FileError> {
    let file = open_regular(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_COMPANION_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_COMPANION_BYTES {
        return Err(FileError::TooLarge);
    }
    Ok(bytes)
}

/// Reads a scanned build whole: [`open_scanned`], and exactly the scanned
/// length (a file that shrank or grew while it was read is refused).
pub fn read_scanned(path: &Path, scanned: &FileStamp) -> Result<Vec<u8>, FileError> {
    let file = open_scanned(path, scanned)?;
    let mut bytes = Vec::with_capacity(usize::try_from(scanned.len).unwrap_or(0));
    file.take(scanned.len + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 != scanned.len {
        return Err(FileError::Changed(format!(
            "{} bytes read, the scan saw {}",
            bytes.len(),
            scanned.len
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;

    use super::*;

    fn stamp(path: &Path) -> FileStamp {
        FileStamp::of(&fs::symlink_metadata(path).unwrap())
    }

    #[test]
    fn a_symlink_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        fs::write(&secret, "TOP-SECRET").unwrap();
        let link = dir.path().join("link");
        symlink(&secret, &link).unwrap();
        assert!(matches!(open_regular(&link), Err(FileError::Changed(_))));
        assert!(matches!(read_companion(&link), Err(FileError::Changed(_))));
        assert!(matches!(
            open_scanned(&link, &stamp(&secret)),
            Err(FileError::Changed(_))
        ));
    }

    #[test]
    fn only_the_scanned_file_opens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("build");
        fs::write(&path, "one").unwrap();
        let scanned = stamp(&path);
        assert_eq!(read_scanned(&path, &scanned).unwrap(), b"one");
        // Same inode, other length.
        fs::write(&path, "three").unwrap();
        assert!(matches!(read_scanned(&path, &scanned), Err(FileError::Changed(_))));
        // Another file renamed over it.
        let other = dir.path().join("other");
        fs::write(&other, "one").unwrap();
        fs::rename(&other, &path).unwrap();
        let err = open_scanned(&path, &scanned).unwrap_err();
        assert!(
            matches!(err, FileError::Changed(ref why) if why.contains("another file")),
            "{err}"
        );
        fs::remove_file(&path).unwrap();
        assert!(matches!(open_scanned(&path, &scanned), Err(FileError::Missing)));
        assert!(matches!(open_regular(dir.path()), Err(FileError::Changed(_))));
    }

    #[test]
    fn a_companion_over_the_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.sha256");
        fs::write(&path, vec![b'a'; MAX_COMPANION_BYTES as usize]).unwrap();
        assert_eq!(read_companion(&path).unwrap().len() as u64, MAX_COMPANION_BYTES);
        fs::write(&path, vec![b'a'; MAX_COMPANION_BYTES as usize + 1]).unwrap();
        assert!(matches!(read_companion(&path), Err(FileError::TooLarge)));
    }
}
