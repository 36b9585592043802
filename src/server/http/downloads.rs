//! `GET /downloads/{file}`: only builds the scan knows, and their `.sha256`.
//! The name is looked up in the scan, never joined onto a path unchecked, so
//! there is no way out of the folder.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use tokio_util::io::ReaderStream;

use super::AppState;
use super::error::ApiError;
use crate::server::scanner::{DIGEST_SUFFIX, companion};

/// Streams a build (or its digest file) from the downloads folder.
pub async fn download(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let path = {
        let mut core = state.core();
        let file = match core.catalog().servable(&name) {
            Some((build, false)) => build.file.clone(),
            Some((build, true)) => companion(&build.file, DIGEST_SUFFIX),
            None => {
                return Err(ApiError::not_found(format!(
                    "no build named `{}`",
                    name.chars().take(120).collect::<String>()
                )));
            }
        };
        if file == name && !name.ends_with(DIGEST_SUFFIX) {
            core.count_download();
        }
        core.config().downloads.join(file)
    };
    let gone = || ApiError::not_found("the build was removed since the last scan");
    let file = tokio::fs::File::open(&path).await.map_err(|_| gone())?;
    let len = file.metadata().await.map_err(|_| gone())?.len();
    let body = Body::from_stream(ReaderStream::with_capacity(file, 64 * 1024));
    Ok((
        [
            (CONTENT_TYPE, "application/octet-stream".to_owned()),
            (CONTENT_LENGTH, len.to_string()),
        ],
        body,
    )
        .into_response())
}
