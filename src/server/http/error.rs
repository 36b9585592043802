//! API errors: `{error: {code, message}}` with a 4xx for what the caller got
//! wrong; internals are logged, never returned.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::error;

use crate::server::core::CoreError;

/// An error answer of the HTTP API.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Option<serde_json::Value>,
}

impl ApiError {
    /// An error with a status, a code and a message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::NotFound { .. } => Self::not_found(e.to_string()),
            CoreError::Conflict { code, message, details } => Self {
                status: StatusCode::CONFLICT,
                code,
                message,
                details,
            },
            CoreError::Invalid { code, message } => Self::bad_request(code, message),
            CoreError::UnknownSiteKey | CoreError::UnknownUpdate(_) => Self::bad_request("invalid", e.to_string()),
            CoreError::Store(_) | CoreError::Io(_) | CoreError::Publish(_) => {
                error!("request failed: {e}");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; logged on the server",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": { "code": self.code, "message": self.message } });
        if let Some(details) = self.details {
            body["error"]["details"] = details;
        }
        (self.status, Json(body)).into_response()
    }
}

/// A JSON request body. An empty body reads as `{}`, so requests whose
/// fields are all optional need no body at all; the content type is not
/// checked. Errors use the API's error shape.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad_request("bad_body", e.body_text()))?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(bytes).map(JsonBody).map_err(|e| {
            let code = if e.is_data() { "invalid_body" } else { "bad_json" };
            ApiError::bad_request(code, format!("request body: {e}"))
        })
    }
}

/// Parses a path segment, answering 400 with what was expected.
pub fn path_param<T: std::str::FromStr>(what: &'static str, raw: &str) -> Result<T, ApiError>
where
    T::Err: std::fmt::Display,
{
    raw.parse().map_err(|e: T::Err| {
        let raw: String = raw.chars().take(64).collect();
        let why = e.to_string();
        // Some parse errors name the input themselves (a version's does).
        let message = if why.starts_with(&format!("invalid {what} `")) {
            why
        } else {
            format!("invalid {what} `{raw}`: {why}")
        };
        ApiError::bad_request("invalid_path", message)
    })
}
