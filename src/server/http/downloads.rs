//! `GET /downloads/{file}`: only builds the scan knows, and their `.sha256`.
//! The name is looked up in the scan, never joined onto a path unchecked, so
//! there is no way out of the folder.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use crate::server::CoreError;
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
    let mut core = state.core();
    match core.catalog().servable(name) {
        Some((build, false)) => {
            let file = build.file.clone();
            match core.download(&file) {
                Ok(bytes) => Ok(bytes),
                Err(CoreError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Err(gone()),
                Err(e) => Err(e.into()),
            }
        }
        Some((build, true)) => {
            let path = core.config().downloads.join(companion(&build.file, DIGEST_SUFFIX));
            Ok(Bytes::from(std::fs::read(path).map_err(|_| gone())?))
        }
        None => {
            let shown: String = name.chars().take(120).collect();
            Err(ApiError::not_found(format!("no build named `{shown}`")))
        }
    }
}
