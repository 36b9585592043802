//! `GET /downloads/{file}`: only builds the scan knows, and their `.sha256`.
//! The name is looked up in the scan, never joined onto a path unchecked, so
//! there is no way out of the folder.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use crate::server::catalog::Servable;
use crate::server::scanner::{DIGEST_SUFFIX, companion};

/// Serves a build (or its digest file) from the downloads folder. Builds come
/// from the core's cache: a fleet downloads the same few builds many times.
pub async fn download(State(state): State<AppState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let bytes = download_bytes(&state, &name)?;
    Ok(([(CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

/// The bytes `GET /downloads/{name}` answers with: the handler above and the
/// simulator's in-process transport both come through here.
pub fn download_bytes(state: &AppState, name: &str) -> Result<Bytes, ApiError> {
    let gone = || ApiError::not_found("the build was removed since the last scan");
    // Under the lock only the lookup; the disk is read outside it.
    let (path, build_file, generation) = {
        let mut core = state.core();
        let generation = core.scan_generation();
        match core.catalog().servable(name) {
            Some(Servable::Build(build)) => {
                let file = build.file.clone();
                if let Some(bytes) = core.cached_download(&file) {
                    return Ok(bytes);
                }
                (core.config().downloads.join(&file), Some(file), generation)
            }
            Some(Servable::Digest(build)) => (
                core.config().downloads.join(companion(&build.file, DIGEST_SUFFIX)),
                None,
                generation,
            ),
            None => {
                let shown: String = name.chars().take(120).collect();
                return Err(ApiError::not_found(format!("no build named `{shown}`")));
            }
        }
    };
    let bytes = Bytes::from(std::fs::read(path).map_err(|_| gone())?);
    if let Some(file) = build_file {
        state.core().remember_download(&file, bytes.clone(), generation);
    }
    Ok(bytes)
}
