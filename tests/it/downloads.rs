//! Downloads under `rmmsim serve`: streamed off the runtime, and only the
//! bytes the last scan saw (409 `build_changed` otherwise, a body cut short
//! when the bytes do not hash to the scanned digest, never a symlink).
//! Every server here runs on the test's current-thread runtime, so a
//! blocking file call in the download path would stall everything else.

use std::fs;
use std::os::unix::fs::{OpenOptionsExt, symlink};
use std::path::Path;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rmmsim::protocol::{Channel, DeviceId, sha256_hex};
use rmmsim::server::publish::{self, Content, DigestMode, Publication};
use serde_json::Value;
use tokio::net::TcpStream;

use crate::common::*;

/// A few MiB: big enough to take many chunks, small enough to be quick.
const BIG: u64 = 4 * 1024 * 1024;

/// Publishes a build of `size` bytes and rescans.
async fn publish_sized(server: &TestServer, version: &str, size: u64) -> publish::Published {
    let out = publish::publish(
        &server.downloads(),
        &Publication {
            version: v(version),
            platform: win(),
            content: Content::Synthetic(size),
            channel: Channel::Beta,
            digest: DigestMode::Correct,
            overwrite: true,
        },
    )
    .unwrap();
    server.rescan().await;
    out
}

/// A GET whose response head has arrived; the body is still to read.
struct Pending {
    status: StatusCode,
    content_length: Option<u64>,
    body: hyper::body::Incoming,
}

impl Pending {
    /// Reads the body to its end: the bytes, or the error that cut it short.
    async fn bytes(self) -> Result<Bytes, hyper::Error> {
        let collected = tokio::time::timeout(PATIENCE, self.body.collect())
            .await
            .expect("the body ends within PATIENCE");
        collected.map(|c| c.to_bytes())
    }

    /// The `code` of a JSON error body.
    async fn error_code(self) -> String {
        let body = self.bytes().await.unwrap();
        let value: Value = serde_json::from_slice(&body).unwrap();
        value["error"]["code"].as_str().unwrap().to_owned()
    }
}

/// Sends `GET path` on a fresh connection and waits for the response head only.
async fn get(server: &TestServer, path: &str) -> Pending {
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header("host", server.addr.to_string())
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = tokio::time::timeout(PATIENCE, sender.send_request(req))
        .await
        .expect("a response head within PATIENCE")
        .unwrap();
    let content_length = resp
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .map(|v| v.to_str().unwrap().parse().unwrap());
    Pending {
        status: resp.status(),
        content_length,
        body: resp.into_body(),
    }
}

fn build_path(server: &TestServer, out: &publish::Published) -> std::path::PathBuf {
    server.downloads().join(&out.file)
}

#[tokio::test]
async fn heartbeats_are_answered_while_big_downloads_stream() {
    let server = TestServer::start().await;
    let key = server.site("acme", "lab", Some(Channel::Beta)).await;
    let out = publish_sized(&server, "0.6.48", BIG).await;
    let mut agent = server.agent(&key, "0.6.48").await;
    let url = format!("/downloads/{}", out.file);
    // Two downloads whose clients read nothing yet: the server can only send
    // as much as the sockets take.
    let first = get(&server, &url).await;
    let second = get(&server, &url).await;
    assert_eq!((first.status, first.content_length), (StatusCode::OK, Some(BIG)));
    assert_eq!((second.status, second.content_length), (StatusCode::OK, Some(BIG)));
    assert_eq!(
        agent.heartbeat("0.6.48").await,
        None,
        "answered while both downloads are open"
    );
    for pending in [first, second] {
        let bytes = pending.bytes().await.unwrap();
        assert_eq!(bytes.len() as u64, BIG);
        assert_eq!(Some(sha256_hex(&bytes)), out.sha256);
    }
    let (_, stats) = server.api().get("/api/stats").await;
    assert_eq!(stats["counters"]["downloads"], 2);
}

/// Opens the FIFO for writing if something waits to read it, so an open
/// blocked on it (the bug this file guards against) returns and the test
/// ends; nothing happens when nobody reads it.
fn release_reader(fifo: &Path) {
    for _ in 0..20 {
        let writer = fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(fifo);
        if writer.is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn a_download_stuck_on_its_file_never_stalls_heartbeats() {
    let server = TestServer::start().await;
    let key = server.site("acme", "lab", Some(Channel::Beta)).await;
    let out = publish_sized(&server, "0.6.48", 4096).await;
    // A FIFO in the build's place: opening it for reading blocks until a
    // writer comes, which here is never (until the test lets it go).
    let path = build_path(&server, &out);
    fs::remove_file(&path).unwrap();
    let made = std::process::Command::new("mkfifo").arg(&path).status().unwrap();
    assert!(made.success());

    // The agent and the download run on their own thread and runtime: if
    // the server's runtime (this test's) blocks, they still time out.
    let (addr, api, site_key) = (server.addr, server.api(), key.key.clone());
    let url = format!("/downloads/{}", out.file);
    let fifo = path.clone();
    let client = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let mut agent = WsAgent::connect(addr).await;
            agent.hello_as(DeviceId::Bare(machine()), "0.6.48", &site_key).await;
            let download = tokio::spawn(async move { api.raw(Method::GET, &url, None).await });
            // Let the server take the download first.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let answered = tokio::time::timeout(Duration::from_secs(3), agent.heartbeat("0.6.48"))
                .await
                .is_ok();
            release_reader(&fifo);
            let (status, body) = download.await.unwrap();
            (answered, status, body)
        })
    });
    let (answered, status, body) = tokio::task::spawn_blocking(move || client.join().unwrap())
        .await
        .unwrap();
    assert!(answered, "the heartbeat waited on the download's file");
    assert_eq!(status, StatusCode::CONFLICT, "{}", String::from_utf8_lossy(&body));
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "build_changed");
}

#[tokio::test]
async fn a_build_rewritten_after_the_scan_answers_409_until_the_next_scan() {
    let server = TestServer::start().await;
    let out = publish_sized(&server, "0.6.48", 64 * 1024).await;
    let url = format!("/downloads/{}", out.file);
    let path = build_path(&server, &out);
    // Rewritten in place, shorter: the scan's size and digest are stale.
    let rewritten = b"a newer agent, half written".to_vec();
    fs::write(&path, &rewritten).unwrap();
    let refused = get(&server, &url).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.error_code().await, "build_changed");
    // Longer, as a copy still in progress would not be, but a rewrite can.
    fs::write(&path, vec![7u8; 128 * 1024]).unwrap();
    assert_eq!(get(&server, &url).await.status, StatusCode::CONFLICT);
    // The rewrite finished, with its digest: the next scan serves it.
    fs::write(&path, &rewritten).unwrap();
    fs::write(
        server.downloads().join(format!("{}.sha256", out.file)),
        sha256_hex(&rewritten),
    )
    .unwrap();
    server.rescan().await;
    let served = get(&server, &url).await;
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(served.bytes().await.unwrap(), rewritten);
}

#[tokio::test]
async fn bytes_that_do_not_hash_to_the_scanned_digest_are_cut_short() {
    let server = TestServer::start().await;
    let out = publish_sized(&server, "0.6.48", BIG).await;
    let path = build_path(&server, &out);
    // Rewritten in place with other bytes of the same size, and the
    // scanned mtime put back: only the digest can tell.
    let mtime = fs::metadata(&path).unwrap().modified().unwrap();
    let mut other = fs::read(&path).unwrap();
    other[(BIG / 2) as usize] ^= 0xff;
    fs::write(&path, &other).unwrap();
    fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let pending = get(&server, &format!("/downloads/{}", out.file)).await;
    assert_eq!((pending.status, pending.content_length), (StatusCode::OK, Some(BIG)));
    let cut = pending.bytes().await;
    assert!(cut.is_err(), "the whole body of a build that fails its digest was sent");
}

#[tokio::test]
async fn a_symlink_swapped_in_after_the_scan_is_not_followed() {
    let server = TestServer::start().await;
    let out = publish_sized(&server, "0.6.48", 4096).await;
    let secret = server.dir.path().join("secret.txt");
    fs::write(&secret, "TOP-SECRET").unwrap();
    let build = build_path(&server, &out);
    let digest_name = format!("{}.sha256", out.file);
    for swapped in [out.file.clone(), digest_name] {
        let path = server.downloads().join(&swapped);
        let kept = server.dir.path().join("kept");
        fs::rename(&path, &kept).unwrap();
        symlink(&secret, &path).unwrap();
        let refused = get(&server, &format!("/downloads/{swapped}")).await;
        assert_eq!(refused.status, StatusCode::CONFLICT, "{swapped}");
        let body = refused.bytes().await.unwrap();
        assert!(
            !String::from_utf8_lossy(&body).contains("TOP-SECRET"),
            "{swapped} was followed"
        );
        fs::remove_file(&path).unwrap();
        fs::rename(&kept, &path).unwrap();
    }
    // The next scan does not take a symlinked build either.
    fs::remove_file(&build).unwrap();
    symlink(&secret, &build).unwrap();
    server.rescan().await;
    let gone = get(&server, &format!("/downloads/{}", out.file)).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}
