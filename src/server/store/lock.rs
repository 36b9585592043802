//! One server per database: `serve` holds an exclusive OS lock on a file
//! beside the database for as long as it runs, with its process id inside,
//! so a second `serve` on the same file stops at once and says which
//! process has it. Two servers on one file would each keep their own memory
//! and overwrite each other's rows (design.md, One server per database).
//!
//! The lock is `flock(2)` (through rustix; std's `File::try_lock` is newer
//! than this crate's rust-version): the OS drops it when the process ends,
//! however it ends, so a server killed with `kill -9` leaves no stale lock
//! behind. The file itself stays; only the lock on it counts. On systems
//! other than Unix the file is written but not locked.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "database {db} is in use by another rmmsim serve ({holder}; lock file {lock}): one server per database",
        db = .db.display(),
        lock = .lock.display(),
        holder = holder(.pid),
    )]
    Held {
        /// The database.
        db: PathBuf,
        /// The lock file.
        lock: PathBuf,
        /// The holder's process id, as it wrote it.
        pid: Option<u32>,
    },
    /// The lock file could not be opened, locked or written.
    #[error("lock file {}: {source}", .lock.display())]
    Io {
        /// The lock file.
        lock: PathBuf,
        /// What happened.
        source: io::Error,
    },
}

/// Takes an exclusive lock on `file` without waiting; `false` when another
/// open file (this process's or another's) holds one.
#[cfg(unix)]
fn try_lock(file: &File) -> io::Result<bool> {
    use rustix::fs::{FlockOperation, flock};
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Not locked off Unix (see the module docs).
#[cfg(not(unix))]
fn try_lock(_file: &File) -> io::Result<bool> {
    Ok(true)
}

/// Who holds a lock, for its message.
fn holder(pid: &Option<u32>) -> String {
    match pid {
        Some(pid) => format!("process {pid}"),
        None => "process id unknown".to_owned(),
    }
}

/// The lock on a database, held until dropped.
#[derive(Debug)]
pub struct DbLock {
    _file: File,
    path: PathBuf,
}

impl DbLock {
    /// The lock file of a database: `<db>.lock` beside it.
    pub fn path_for(db: &Path) -> PathBuf {
        let mut name = db.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    }

    /// Takes the lock of `db` without waiting, and writes this process's id
    /// into the lock file.
    pub fn acquire(db: &Path) -> Result<Self, LockError> {
        let path = Self::path_for(db);
        let io_err = |source| LockError::Io {
            lock: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err)?;
        match try_lock(&file) {
            Ok(true) => {}
            Ok(false) => {
                let mut text = String::new();
                let pid = file
                    .read_to_string(&mut text)
                    .ok()
                    .and_then(|_| text.trim().parse().ok());
                return Err(LockError::Held {
                    db: db.to_owned(),
                    lock: path,
                    pid,
                });
            }
            Err(e) => return Err(io_err(e)),
        }
        let write_pid = |file: &mut File| -> io::Result<()> {
            file.set_len(0)?;
            file.rewind()?;
            writeln!(file, "{}", std::process::id())?;
            file.sync_all()
        };
        write_pid(&mut file).map_err(io_err)?;
        Ok(Self { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_database_is_refused_with_the_holders_pid() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("rmmsim.sqlite3");
        let held = DbLock::acquire(&db).unwrap();
        assert_eq!(held.path(), dir.path().join("rmmsim.sqlite3.lock"));
        match DbLock::acquire(&db) {
            Err(LockError::Held { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected Held, got {other:?}"),
        }
        drop(held);
        DbLock::acquire(&db).unwrap();
    }
}
