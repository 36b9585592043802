//! `GET /downloads/{file}`: only builds the scan knows, and their `.sha256`.
//! The name is looked up in the scan, never joined onto a path unchecked, so
//! there is no way out of the folder. The file is opened without following
//! symlinks and served only while it is the file the scan saw
//! ([`files::open_scanned`]); otherwise 409 `build_changed` until the next
//! scan.

use std::path::PathBuf;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use super::stream::verified_chunks;
use crate::protocol::ErrorCode;
use crate::server::catalog::Servable;
use crate::server::files::{self, FileError};
use crate::server::scanner::{DIGEST_SUFFIX, FileStamp, companion, parse_digest};
use crate::server::self_log::SelfLevel;

/// How `GET /downloads/{file}` sends a build's bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DownloadServing {
    /// Streamed from disk in chunks read (and hashed) on the blocking pool,
    /// never whole in memory, with the scanned length as `Content-Length`;
    /// the body is cut short if the bytes do not hash to the scanned digest.
    /// What `rmmsim serve` does.
    #[default]
    Stream,
    /// Read whole on the runtime's thread at the first download after a
    /// scan and kept in memory until the next scan. A simulation serves this
    /// way: nothing it does may wait on another thread (the paused clock
    /// would move), and its builds are a few MiB. Its digests are not
    /// checked: a scenario may publish a wrong `.sha256` on purpose, for the
    /// agents to refuse.
    Memory,
}

/// A file the scan found, and the digest its build had.
struct Target {
    /// Its name in the downloads folder.
    file: String,
    path: PathBuf,
    /// The build's digest, as the scan read it from the `.sha256`.
    sha256: String,
}

/// What a download name is, looked up under the core's lock.
enum Found {
    /// A build whose bytes are in the memory cache.
    Cached(Bytes),
    /// A build to read from disk, as the scan stamped it; the last field is
    /// the scan generation it belongs to.
    Build(Target, FileStamp, u64),
    /// A build's `.sha256`.
    Digest(Target),
}

/// Serves a build (or its digest file) from the downloads folder.
pub async fn download(State(state): State<AppState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let octets = (CONTENT_TYPE, "application/octet-stream");
    if state.download_serving() == DownloadServing::Memory {
        return Ok(([octets], download_bytes(&state, &name)?).into_response());
    }
    match lookup(&state, &name, false)? {
        Found::Cached(bytes) => Ok(([octets], bytes).into_response()),
        Found::Digest(target) => {
            let bytes = off_runtime(move || read_digest(&target)).await?;
            Ok(([octets], bytes).into_response())
        }
        Found::Build(Target { file, path, sha256 }, stamp, _) => {
            let name = file.clone();
            let opened = off_runtime(move || files::open_scanned(&path, &stamp).map_err(|e| refused(&name, e))).await?;
            let log = state.self_log().clone();
            let body = Body::from_stream(verified_chunks(opened, stamp.len, sha256, file, log));
            Ok(([octets, (CONTENT_LENGTH, &stamp.len.to_string())], body).into_response())
        }
    }
}

/// The bytes `GET /downloads/{name}` answers with when downloads are served
/// from memory ([`DownloadServing::Memory`]): the handler above and the
/// simulator's in-process transport both come through here.
pub fn download_bytes(state: &AppState, name: &str) -> Result<Bytes, ApiError> {
    read_from_memory(state, name).map_err(|mut e| {
        e.report_to(state.self_log());
        e
    })
}

fn read_from_memory(state: &AppState, name: &str) -> Result<Bytes, ApiError> {
    match lookup(state, name, true)? {
        Found::Cached(bytes) => Ok(bytes),
        Found::Digest(target) => read_digest(&target),
        Found::Build(target, stamp, generation) => {
            let bytes = Bytes::from(files::read_scanned(&target.path, &stamp).map_err(|e| refused(&target.file, e))?);
            state.core().remember_download(&target.file, bytes.clone(), generation);
            Ok(bytes)
        }
    }
}

/// Looks `name` up in the scan; counts a build download. With `cache`, a
/// build read since the last scan comes from memory.
fn lookup(state: &AppState, name: &str, cache: bool) -> Result<Found, ApiError> {
    // Under the lock only the lookup; the disk is read outside it.
    let mut core = state.core();
    let generation = core.scan_generation();
    let dir = core.config().downloads.clone();
    let target = |file: String, sha256: &str| Target {
        path: dir.join(&file),
        file,
        sha256: sha256.to_owned(),
    };
    match core.catalog().servable(name) {
        Some(Servable::Build(build)) => {
            let found = target(build.file.clone(), &build.sha256);
            // Every scanned build has its stamp; a catalog made by hand may not.
            let unstamped = || refused(&build.file, FileError::Changed("not stamped by the scan".into()));
            let stamp = core.catalog().stamp(&build.file).copied().ok_or_else(unstamped)?;
            if !cache {
                core.count_download();
            } else if let Some(bytes) = core.cached_download(&found.file) {
                return Ok(Found::Cached(bytes));
            }
            Ok(Found::Build(found, stamp, generation))
        }
        Some(Servable::Digest(build)) => Ok(Found::Digest(target(
            companion(&build.file, DIGEST_SUFFIX),
            &build.sha256,
        ))),
        None => {
            let shown: String = name.chars().take(120).collect();
            Err(ApiError::not_found(format!("no build named `{shown}`")))
        }
    }
}

/// A build's `.sha256`, served only while it still holds the scanned digest.
fn read_digest(target: &Target) -> Result<Bytes, ApiError> {
    let bytes = files::read_companion(&target.path).map_err(|e| refused(&target.file, e))?;
    let now = std::str::from_utf8(&bytes)
        .ok()
        .and_then(|text| parse_digest(text).ok());
    if now.as_deref() != Some(target.sha256.as_str()) {
        return Err(refused(&target.file, FileError::Changed("another digest".into())));
    }
    Ok(Bytes::from(bytes))
}

/// The answer to a file that cannot be served.
fn refused(file: &str, e: FileError) -> ApiError {
    match e {
        FileError::Missing => ApiError::not_found("the build was removed since the last scan"),
        FileError::Changed(_) | FileError::TooLarge => {
            let message = format!("`{file}` changed since the last scan ({e}); it is served again after the next scan");
            let event = format!("download refused: {message}");
            tracing::warn!("{event}");
            ApiError::new(ErrorCode::BuildChanged, message).reported(SelfLevel::Warn, event)
        }
        FileError::Io(e) => ApiError::internal(&format_args!("reading `{file}`: {e}")),
    }
}

/// Runs file work on the blocking pool, so a slow disk (or a FIFO) never
/// holds the runtime's threads.
async fn off_runtime<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(ApiError::internal(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::core::testing::Fixture;

    /// The simulator's path: from memory, but only the scanned file.
    #[tokio::test(start_paused = true)]
    async fn from_memory_only_the_scanned_file_is_served_and_kept() {
        let f = Fixture::new();
        let file = "gururmm-agent-windows-amd64-1.1.0.exe";
        let path = f.dir.path().join("downloads").join(file);
        let state = AppState::with_downloads(f.core, "t", DownloadServing::Memory);
        let served = download_bytes(&state, file).unwrap();
        assert_eq!(served.len(), 64);
        // Once read it comes from memory until the next scan, even if the
        // file changes meanwhile.
        std::fs::write(&path, "rewritten").unwrap();
        assert_eq!(download_bytes(&state, file).unwrap(), served);
        state.core().rescan().unwrap();
        std::fs::write(&path, "rewritten again").unwrap();
        let refused = download_bytes(&state, file).unwrap_err();
        assert_eq!(refused.code(), ErrorCode::BuildChanged, "{refused}");
        std::fs::remove_file(&path).unwrap();
        assert_eq!(download_bytes(&state, file).unwrap_err().code(), ErrorCode::NotFound);
    }
}
