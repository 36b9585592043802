//! One HTTP/1.1 request over a byte stream the caller opened: an agent's
//! download (over an in-memory pipe or a loopback socket), `rmmsim bench`'s
//! calls to a server's admin API, and the integration tests' API client.
//!
//! Written on hyper's client connection rather than a full client (reqwest,
//! hyper-util's pooled `Client`): every caller dials its own stream and sends
//! one request on it, so there is no pool, name resolution or TLS to carry,
//! and the stream can be one a full client could not open (a simulator's
//! in-memory pipe).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::debug;

/// A request to make: a method and a path, optionally with the admin API's
/// bearer token and a JSON body.
#[derive(Debug, Clone)]
pub struct Call {
    method: Method,
    path: String,
    bearer: Option<String>,
    json: Option<Bytes>,
}

/// A status and the whole body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The body, read to its end.
    pub body: Bytes,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The request could not be built (a path that is not a URI).
    #[error("{method} {path}: {source}")]
    Build {
        /// The call's method.
        method: Method,
        /// The call's path.
        path: String,
        /// What `http` said.
        source: hyper::http::Error,
    },
    /// The connection failed: handshake, sending, or reading the answer.
    #[error("{method} {path}: {source}")]
    Connection {
        /// The call's method.
        method: Method,
        /// The call's path.
        path: String,
        /// What hyper said.
        source: hyper::Error,
    },
    /// The server answered with a status that is not a success.
    #[error("{method} {path}: {status} {body}")]
    Status {
        /// The call's method.
        method: Method,
        /// The call's path.
        path: String,
        /// The status.
        status: StatusCode,
        /// The body, as text (lossy).
        body: String,
    },
}

impl Call {
    /// A call without token or body.
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            bearer: None,
            json: None,
        }
    }

    /// `GET path`.
    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }

    /// Sends `Authorization: Bearer <token>`.
    pub fn bearer(mut self, token: impl Into<String>) -> Self {
        self.bearer = Some(token.into());
        self
    }

    /// Sends `body` as `application/json` (as given: it need not be valid JSON).
    pub fn json(mut self, body: impl Into<Bytes>) -> Self {
        self.json = Some(body.into());
        self
    }

    /// The request, with `host` as its `Host` header: what [`send`](Self::send)
    /// sends, and what a test hands to the app in-process.
    pub fn request(&self, host: &str) -> Result<Request<Full<Bytes>>, HttpError> {
        let mut request = Request::builder()
            .method(self.method.clone())
            .uri(self.path.as_str())
            .header(HOST, host);
        if let Some(token) = &self.bearer {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        if self.json.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        request
            .body(Full::new(self.json.clone().unwrap_or_default()))
            .map_err(|source| HttpError::Build {
                method: self.method.clone(),
                path: self.path.clone(),
                source,
            })
    }

    /// Sends the request on `io` (a fresh connection, used for this request
    /// only) and reads the whole answer, whatever its status.
    pub async fn send<Io>(&self, io: Io, host: &str) -> Result<Answer, HttpError>
    where
        Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let failed = |source| HttpError::Connection {
            method: self.method.clone(),
            path: self.path.clone(),
            source,
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(failed)?;
        // The connection task ends when the answer is read and the sender dropped.
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!("HTTP connection: {e}");
            }
        });
        let response = sender.send_request(self.request(host)?).await.map_err(failed)?;
        let status = response.status();
        let body = response.into_body().collect().await.map_err(failed)?.to_bytes();
        Ok(Answer { status, body })
    }

    /// Like [`send`](Self::send), but only a success (2xx) is an answer: any
    /// other status is an error naming the call, the status and the body.
    pub async fn send_ok<Io>(&self, io: Io, host: &str) -> Result<Bytes, HttpError>
    where
        Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let answer = self.send(io, host).await?;
        if !answer.status.is_success() {
            return Err(HttpError::Status {
                method: self.method.clone(),
                path: self.path.clone(),
                status: answer.status,
                body: String::from_utf8_lossy(&answer.body).into_owned(),
            });
        }
        Ok(answer.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_carries_host_token_and_json_body() {
        let call = Call::new(Method::POST, "/api/clients")
            .bearer("t0k")
            .json(r#"{"name":"acme"}"#);
        let request = call.request("127.0.0.1:8080").unwrap();
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.uri(), "/api/clients");
        let header = |name| request.headers()[name].to_str().unwrap();
        assert_eq!(
            (header(HOST), header(AUTHORIZATION), header(CONTENT_TYPE)),
            ("127.0.0.1:8080", "Bearer t0k", "application/json")
        );
    }

    #[test]
    fn a_bare_get_has_neither_token_nor_content_type() {
        let request = Call::get("/healthz").request("h").unwrap();
        assert!(!request.headers().contains_key(AUTHORIZATION));
        assert!(!request.headers().contains_key(CONTENT_TYPE));
    }

    #[tokio::test]
    async fn a_call_over_a_pipe_reads_the_answer_and_send_ok_refuses_an_error_status() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // A one-request server on the other end of the pipe.
        let serve = |answer: &'static str| {
            let (client, mut server) = tokio::io::duplex(4096);
            tokio::spawn(async move {
                let mut buf = vec![0; 1024];
                let n = server.read(&mut buf).await.unwrap();
                assert!(buf[..n].starts_with(b"GET /x HTTP/1.1\r\n"));
                server.write_all(answer.as_bytes()).await.unwrap();
            });
            client
        };
        let ok = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi";
        let answer = Call::get("/x").send(serve(ok), "h").await.unwrap();
        assert_eq!((answer.status, &answer.body[..]), (StatusCode::OK, &b"hi"[..]));
        let missing = "HTTP/1.1 404 Not Found\r\ncontent-length: 4\r\n\r\ngone";
        let err = Call::get("/x").send_ok(serve(missing), "h").await.unwrap_err();
        assert_eq!(err.to_string(), "GET /x: 404 Not Found gone");
    }
}
