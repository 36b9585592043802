//! A build's bytes as a body stream: read in chunks on the blocking pool,
//! hashed as they go, and checked against what the scan saw before the last
//! chunk leaves. A client therefore receives either every byte of the
//! scanned build (whose SHA-256 is the scanned digest), or a body cut short:
//! the connection closes before `Content-Length` bytes arrived.

use std::fs::File;
use std::io::{self, Read};

use axum::body::Bytes;
use futures_util::Stream;
use sha2::{Digest, Sha256};

use crate::server::self_log::SelfLog;

/// How much of a build one read takes (and one body chunk holds).
pub const CHUNK_BYTES: u64 = 256 * 1024;

/// What is left to send of one build.
struct Reading {
    file: File,
    hasher: Sha256,
    /// Bytes still to send.
    left: u64,
    /// The scanned digest, lowercase hex.
    sha256: String,
}

impl Reading {
    /// Reads the next chunk; the last one only after the whole file proved
    /// to be the scanned length and digest.
    fn next_chunk(mut self) -> io::Result<(Bytes, Option<Self>)> {
        let n = self.left.min(CHUNK_BYTES);
        let mut chunk = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
        (&mut self.file).take(n).read_to_end(&mut chunk)?;
        if (chunk.len() as u64) < n {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while it was served",
            ));
        }
        self.hasher.update(&chunk);
        self.left -= n;
        if self.left > 0 {
            return Ok((Bytes::from(chunk), Some(self)));
        }
        if self.file.read(&mut [0])? > 0 {
            return Err(io::Error::other("the file grew while it was served"));
        }
        let digest = hex::encode(self.hasher.finalize());
        if digest != self.sha256 {
            return Err(io::Error::other(format!(
                "its bytes hash to {digest}, the scan's digest is {}",
                self.sha256
            )));
        }
        Ok((Bytes::from(chunk), None))
    }
}

/// The chunks of an opened build file of `size` bytes that must hash to
/// `sha256`. A mismatch (or a file that shrank or grew) ends the stream
/// with an error instead of its last chunk, and the server drops the
/// connection; it is logged with `file`, and counted in `log` for the
/// server's pseudo-agent (U13).
pub fn verified_chunks(
    file: File,
    size: u64,
    sha256: String,
    name: String,
    log: SelfLog,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    let first = Reading {
        file,
        hasher: Sha256::new(),
        left: size,
        sha256,
    };
    futures_util::stream::try_unfold(Some(first), move |reading| {
        let name = name.clone();
        let log = log.clone();
        async move {
            let Some(reading) = reading else {
                return Ok(None);
            };
            let next = tokio::task::spawn_blocking(move || reading.next_chunk())
                .await
                .map_err(io::Error::other)
                .and_then(|r| r);
            match next {
                Ok((chunk, rest)) => Ok(Some((chunk, rest))),
                Err(e) => {
                    log.warn(&format!("download of `{name}` cut short: {e}"));
                    Err(e)
                }
            }
        }
    })
}
