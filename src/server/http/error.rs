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

use crate::protocol::ErrorCode;
use crate::server::core::CoreError;
use crate::server::self_log::{SelfLevel, SelfLog};

/// An error answer of the HTTP API.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
    details: Option<serde_json::Value>,
    /// The server's own failure behind it, to count for its pseudo-agent
    /// (U13); already written to the log.
    report: Option<SelfReport>,
}

/// A server event an error answer carries to [`record_reports`] (as a
/// response extension), which counts it in the [`SelfLog`].
#[derive(Debug, Clone)]
pub(crate) struct SelfReport(SelfLevel, String);

impl ApiError {
    /// An error with a code and a message; the code decides the status.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        debug_assert!(code.http_status().is_some(), "{code:?} is not an HTTP error code");
        Self {
            code,
            message: message.into(),
            details: None,
            report: None,
        }
    }

    /// The same answer, carrying a server event to count for the
    /// pseudo-agent (the caller writes the log line).
    pub(crate) fn reported(self, level: SelfLevel, event: String) -> Self {
        Self {
            report: Some(SelfReport(level, event)),
            ..self
        }
    }

    /// Counts the event this answer carries in `log` now (for a caller that
    /// is not served through the router, the simulator's direct transport).
    pub(crate) fn report_to(&mut self, log: &SelfLog) {
        if let Some(SelfReport(level, event)) = self.report.take() {
            log.record(level, &event);
        }
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// 500, the cause logged rather than returned.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        let event = format!("request failed: {cause}");
        error!("{event}");
        Self::new(ErrorCode::Internal, "internal error; logged on the server").reported(SelfLevel::Error, event)
    }

    /// The code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The HTTP status, from the code.
    pub fn status(&self) -> StatusCode {
        self.code
            .http_status()
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let code = serde_json::to_value(self.code).unwrap_or_default();
        let code = code.as_str().unwrap_or_default();
        write!(f, "{} {code}: {}", self.status().as_u16(), self.message)
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::NotFound { .. } => Self::not_found(e.to_string()),
            CoreError::Conflict { code, message, details } => Self {
                code,
                message,
                details,
                report: None,
            },
            CoreError::Invalid { code, message } => Self::new(code, message),
            // Agents' errors: no API route can cause them.
            CoreError::UnknownSiteKey
            | CoreError::UnknownUpdate(_)
            | CoreError::IdentityConflict { .. }
            | CoreError::EnrolmentRateLimited { .. } => Self::internal(&e),
            CoreError::Store(_) | CoreError::Io(_) | CoreError::Publish(_) => Self::internal(&e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut body = json!({ "error": { "code": self.code, "message": self.message } });
        if let Some(details) = self.details {
            body["error"]["details"] = details;
        }
        let mut response = (status, Json(body)).into_response();
        if let Some(report) = self.report {
            response.extensions_mut().insert(report);
        }
        response
    }
}

/// Middleware over every route: counts the server event an error answer
/// carries ([`ApiError::reported`]) for the server's pseudo-agent (U13).
pub(crate) async fn record_reports(
    axum::extract::State(state): axum::extract::State<super::AppState>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    if let Some(SelfReport(level, event)) = response.extensions().get::<SelfReport>() {
        state.self_log().record(*level, event);
    }
    response
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
            .map_err(|e| ApiError::new(ErrorCode::BadBody, e.body_text()))?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(bytes).map(JsonBody).map_err(|e| {
            let code = if e.is_data() {
                ErrorCode::InvalidBody
            } else {
                ErrorCode::BadJson
            };
            ApiError::new(code, format!("request body: {e}"))
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
        ApiError::new(ErrorCode::InvalidPath, message)
    })
}
