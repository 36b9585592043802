//! The real `rmmsim serve` process, killed at every step of a promote and a
//! rollback (`RMMSIM_FAILPOINT`) and started again: the files, the rows and
//! what agents are offered agree (design.md, Crash consistency). And one
//! server per database: a second `serve` on the same file exits at once.

use std::io::Read;
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;

use hyper::StatusCode;
use rmmsim::protocol::{Channel, Platform};
use rmmsim::server::publish::DigestMode;
use rmmsim::server::scanner;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{Api, PATIENCE, SiteKey, TOKEN, WsAgent, publish_into, update_version, v};
use crate::process::{Served, wait_exit};

/// The three platforms every case publishes 0.6.48 for: three sidecars.
fn platforms() -> [Platform; 3] {
    ["darwin-arm64", "linux-amd64", "windows-amd64"].map(|p| p.parse().unwrap())
}

/// A POST whose server may die before it answers: the raw answer, empty
/// when the connection closed first.
async fn post_raw(addr: SocketAddr, path: &str, body: Value) -> String {
    let body = body.to_string();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {TOKEN}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer))
        .await
        .expect("the connection ends");
    String::from_utf8_lossy(&answer).into_owned()
}

/// A folder with 0.6.47 stable and 0.6.48 beta on three platforms.
fn folder() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let downloads = dir.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    for p in platforms() {
        publish_into(&downloads, "0.6.47", &p, Channel::Stable, DigestMode::Correct);
        publish_into(&downloads, "0.6.48", &p, Channel::Beta, DigestMode::Correct);
    }
    dir
}

/// What the `.channel` sidecars of 0.6.48 say, in file name order.
fn sidecars(dir: &Path) -> Vec<Channel> {
    let found = scanner::sidecars_of(&dir.join("downloads"), v("0.6.48")).unwrap();
    found.into_iter().map(|s| s.channel).collect()
}

/// A client with a stable and a beta site.
async fn sites(api: &Api) -> (SiteKey, SiteKey) {
    let (s, client) = api.post("/api/clients", json!({ "name": "acme" })).await;
    assert_eq!(s, StatusCode::CREATED, "{client}");
    let id = client["id"].as_u64().unwrap();
    let mut keys = Vec::new();
    for (name, channel) in [("hq", None), ("lab", Some(Channel::Beta))] {
        let (s, site) = api
            .post(
                &format!("/api/clients/{id}/sites"),
                json!({ "name": name, "channel": channel }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{site}");
        keys.push(SiteKey {
            key: site["site_key"].as_str().unwrap().to_owned(),
            site_id: site["id"].as_u64().unwrap(),
            client_id: id,
        });
    }
    let beta = keys.pop().unwrap();
    (keys.pop().unwrap(), beta)
}

/// The site with `name`'s key, from the API.
async fn key_of(api: &Api, name: &str) -> SiteKey {
    let (_, clients) = api.get("/api/clients").await;
    let site = clients[0]["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap()
        .clone();
    SiteKey {
        key: site["site_key"].as_str().unwrap().to_owned(),
        site_id: site["id"].as_u64().unwrap(),
        client_id: site["client_id"].as_u64().unwrap(),
    }
}

/// The statuses of 0.6.48's rollout rows.
async fn rollout_statuses(api: &Api) -> Vec<String> {
    let rollouts = api.rollouts().await;
    let rows = rollouts["rollouts"].as_array().unwrap();
    let of = rows.iter().filter(|r| r["version"] == "0.6.48");
    of.map(|r| r["status"].as_str().unwrap().to_owned()).collect()
}

/// How many intents the database holds, read beside the server.
fn intents_in_db(dir: &Path) -> i64 {
    let conn = rusqlite::Connection::open(dir.join("rmmsim.sqlite3")).unwrap();
    conn.query_row("SELECT COUNT(*) FROM intents", [], |r| r.get(0))
        .unwrap()
}

/// The failpoint's step, and how many sidecars it has changed when it fires.
fn steps(op: &str) -> Vec<(String, usize)> {
    let mut steps = vec![(format!("{op}:after_intent"), 0)];
    steps.extend((1..=3).map(|n| (format!("{op}:after_sidecar:{n}"), n)));
    steps.push((format!("{op}:after_commit"), 3));
    steps
}

/// Kills the server with `failpoint` armed at the request `path` makes.
async fn crash_at(dir: &Path, failpoint: &str, path: &str) {
    let mut cmd = Served::command(dir);
    cmd.env("RMMSIM_FAILPOINT", failpoint);
    let mut served = Served::spawn(cmd);
    let (s, body) = served.api().post("/api/updates/rescan", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let answer = post_raw(served.addr, path, json!({ "force": true })).await;
    assert!(answer.is_empty(), "{failpoint}: the server answered {answer}");
    let status = served.exit();
    assert_eq!(status.signal(), Some(6), "{failpoint}: aborted, got {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promote_killed_at_any_step_is_finished_by_the_restart() {
    for (failpoint, changed) in steps("promote") {
        let dir = folder();
        let served = Served::start(dir.path());
        sites(&served.api()).await;
        served.kill();
        crash_at(dir.path(), &failpoint, "/api/updates/rollouts/0.6.48/promote").await;
        let stable = sidecars(dir.path()).iter().filter(|&&c| c == Channel::Stable).count();
        assert_eq!(stable, changed, "{failpoint}: sidecars flipped at the crash");

        let served = Served::start(dir.path());
        let api = served.api();
        assert_eq!(sidecars(dir.path()), [Channel::Stable; 3], "{failpoint}");
        assert_eq!(rollout_statuses(&api).await, ["promoted"; 3], "{failpoint}");
        let (_, versions) = api.get("/api/updates/versions").await;
        let builds = versions["builds"].as_array().unwrap();
        let channels: Vec<&Value> = builds
            .iter()
            .filter(|b| b["version"] == "0.6.48")
            .map(|b| &b["channel"])
            .collect();
        assert_eq!(channels, [&json!("stable"); 3], "{failpoint}");
        let mut agent = WsAgent::connect(served.addr).await;
        agent
            .hello_as(
                rmmsim::protocol::DeviceId::Bare(crate::common::machine()),
                "0.6.47",
                &key_of(&api, "hq").await.key,
            )
            .await;
        assert_eq!(
            update_version(&agent.heartbeat("0.6.47").await).as_deref(),
            Some("0.6.48"),
            "{failpoint}: a stable agent is offered the promoted build"
        );
        let (s, _) = api.post("/api/updates/rollouts/0.6.48/promote", json!({})).await;
        assert_eq!(s, StatusCode::CONFLICT, "{failpoint}: already promoted");
        served.kill();
        assert_eq!(intents_in_db(dir.path()), 0, "{failpoint}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_killed_at_any_step_is_finished_by_the_restart() {
    for (failpoint, changed) in steps("rollback") {
        let dir = folder();
        let served = Served::start(dir.path());
        sites(&served.api()).await;
        served.kill();
        crash_at(dir.path(), &failpoint, "/api/updates/rollouts/0.6.48/rollback").await;
        assert_eq!(
            sidecars(dir.path()).len(),
            3 - changed,
            "{failpoint}: sidecars left at the crash"
        );

        let served = Served::start(dir.path());
        let api = served.api();
        assert_eq!(sidecars(dir.path()), [], "{failpoint}: every sidecar of 0.6.48 is gone");
        assert_eq!(rollout_statuses(&api).await, ["rolled_back"; 3], "{failpoint}");
        let rollouts = api.rollouts().await;
        assert_eq!(rollouts["blocked"][0]["version"], "0.6.48", "{failpoint}");
        let beta = key_of(&api, "lab").await;
        let mut on_it = WsAgent::connect(served.addr).await;
        on_it
            .hello_as(
                rmmsim::protocol::DeviceId::Bare(crate::common::machine()),
                "0.6.48",
                &beta.key,
            )
            .await;
        assert_eq!(
            update_version(&on_it.heartbeat("0.6.48").await).as_deref(),
            Some("0.6.47"),
            "{failpoint}: an agent on the blocked build is moved back"
        );
        let mut behind = WsAgent::connect(served.addr).await;
        behind
            .hello_as(
                rmmsim::protocol::DeviceId::Bare(crate::common::machine()),
                "0.6.47",
                &beta.key,
            )
            .await;
        assert_eq!(update_version(&behind.heartbeat("0.6.47").await), None, "{failpoint}");
        let (s, body) = api.post("/api/updates/rollouts/0.6.48/rollback", json!({})).await;
        assert_eq!(s, StatusCode::CONFLICT, "{failpoint}: {body}");
        assert_eq!(body["error"]["code"], "already_rolled_back", "{failpoint}");
        served.kill();
        assert_eq!(intents_in_db(dir.path()), 0, "{failpoint}");
    }
}

#[tokio::test]
async fn a_second_server_on_one_database_exits_at_once_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let first = Served::start(dir.path());
    let mut second = Served::command(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_exit(&mut second).expect("the second server exits by itself");
    let mut stderr = String::new();
    second.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    let pid = first.pid();
    assert!(stderr.contains(&format!("process {pid}")), "{stderr}");
    assert!(stderr.contains("rmmsim.sqlite3"), "{stderr}");
    // The first still serves; once it is killed (no clean exit), the lock
    // is free again.
    let (s, _) = first.api().get("/healthz").await;
    assert_eq!(s, StatusCode::OK);
    first.kill();
    Served::start(dir.path()).kill();
}
