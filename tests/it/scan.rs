//! U6–U8: the downloads folder is the catalog; latest per channel; publish.

use std::fs;
use std::process::Command;

use hyper::{Method, StatusCode};
use rmmsim::protocol::Channel;
use rmmsim::protocol::sha256_hex;
use rmmsim::server::publish::DigestMode;
use rmmsim::server::publish::build_file_name;
use serde_json::Value;

use crate::common::*;

fn skipped_reason(scan: &Value, file: &str) -> String {
    let entry = scan["skipped"].as_array().unwrap().iter().find(|s| s["file"] == file);
    entry.unwrap_or_else(|| panic!("{file} not in skipped: {scan}"))["reason"]["code"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(start_paused = true)]
async fn u06_only_exact_names_with_a_valid_digest_are_offered_and_the_rest_say_why() {
    let server = TestServer::mem().await;
    let key = server.site("acme", "hq", None).await;
    let dir = server.downloads();
    server.publish_only("0.6.47", &win(), Channel::Stable);
    // Newer, but each broken in its own way.
    publish_into(&dir, "0.6.60", &win(), Channel::Stable, DigestMode::Missing);
    let malformed = server.publish_only("0.6.61", &win(), Channel::Stable);
    fs::write(dir.join(format!("{}.sha256", malformed.file)), "deadbeef\n").unwrap();
    let site = "gururmm-agent-windows-amd64-site-3f1c2a9e-0b7d-4c1e-9a51-3d2f8e4b7c10-0.6.62.exe";
    fs::write(dir.join(site), b"per-site").unwrap();
    fs::write(dir.join(format!("{site}.sha256")), sha256_hex(b"per-site")).unwrap();
    fs::write(dir.join("gururmm-agent-windows-amd64-0.6.63.msi"), b"x").unwrap();
    // A sidecar that says anything but `beta` means stable.
    let odd = server.publish_only("0.6.48", &win(), Channel::Stable);
    fs::write(dir.join(format!("{}.channel", odd.file)), "Beta\n").unwrap();

    let scan = server.rescan().await;
    let builds: Vec<_> = scan["builds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["version"].clone(), b["channel"].clone()))
        .collect();
    assert_eq!(
        builds,
        [
            (Value::from("0.6.47"), Value::from("stable")),
            ("0.6.48".into(), "stable".into())
        ]
    );
    assert_eq!(
        skipped_reason(&scan, "gururmm-agent-windows-amd64-0.6.60.exe"),
        "missing_digest"
    );
    assert_eq!(skipped_reason(&scan, &malformed.file), "malformed_digest");
    assert_eq!(skipped_reason(&scan, site), "per_site");
    assert_eq!(
        skipped_reason(&scan, "gururmm-agent-windows-amd64-0.6.63.msi"),
        "bad_name"
    );
    let (_, listed) = server.api().get("/api/updates/versions").await;
    assert_eq!(listed["skipped"], scan["skipped"], "GET shows the same scan");

    // A stable agent gets the newest *valid* build, never the broken newer ones.
    let mut agent = server.agent(&key, "0.6.47").await;
    assert_eq!(
        update_version(&agent.heartbeat("0.6.47").await).as_deref(),
        Some("0.6.48")
    );
}

#[tokio::test(start_paused = true)]
async fn u07_latest_is_per_channel_per_platform_and_skips_blocked_versions() {
    let server = TestServer::mem().await;
    let stable = server.site("acme", "hq", None).await;
    let beta = server.site("acme", "lab", Some(Channel::Beta)).await;
    server.publish("0.6.47", &win(), Channel::Stable).await;
    server.publish("0.6.49", &linux(), Channel::Stable).await;
    server.publish("0.6.48", &win(), Channel::Beta).await;
    server.publish("0.6.50", &win(), Channel::Beta).await;

    let mut s = server.agent(&stable, "0.6.46").await;
    let mut b = server.agent(&beta, "0.6.46").await;
    assert_eq!(
        update_version(&s.heartbeat("0.6.46").await).as_deref(),
        Some("0.6.47"),
        "stable: newest non-beta, own platform"
    );
    assert_eq!(
        update_version(&b.heartbeat("0.6.46").await).as_deref(),
        Some("0.6.50"),
        "beta: newest of either"
    );

    let (status, body) = server
        .api()
        .post("/api/updates/rollouts/0.6.50/rollback", serde_json::json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut b2 = server.agent(&beta, "0.6.46").await;
    assert_eq!(
        update_version(&b2.heartbeat("0.6.46").await).as_deref(),
        Some("0.6.48"),
        "blocked 0.6.50 is skipped"
    );
}

#[tokio::test(start_paused = true)]
async fn u08_publish_lands_as_beta_with_digest_and_stable_agents_wait() {
    let server = TestServer::mem().await;
    let stable = server.site("acme", "hq", None).await;
    let beta = server.site("acme", "lab", Some(Channel::Beta)).await;
    let dir = server.downloads();
    let d = dir.to_str().unwrap();
    // `rmmsim publish --downloads <dir> <args…>`
    let publish = |args: &str| {
        let mut all = vec!["publish", "--downloads", d];
        all.extend(args.split_whitespace());
        Command::new(env!("CARGO_BIN_EXE_rmmsim")).args(all).output().unwrap()
    };
    let run = |args: &str| {
        let out = publish(args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    run("--version 0.6.47 --platform windows-amd64 --channel stable");
    run("--version 0.6.48 --platform windows-amd64 --size 64KiB");
    let file = build_file_name(&win(), v("0.6.48"));
    let bytes = fs::read(dir.join(&file)).unwrap();
    assert_eq!(bytes.len(), 64 * 1024);
    let sidecar = fs::read_to_string(dir.join(format!("{file}.channel"))).unwrap();
    assert_eq!(sidecar.trim(), "beta");
    let digest = fs::read_to_string(dir.join(format!("{file}.sha256"))).unwrap();
    assert!(digest.starts_with(&sha256_hex(&bytes)), "{digest}");
    // Publishing again is refused unless forced.
    let again = publish("--version 0.6.48 --platform windows-amd64");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    // --file publishes a real binary's bytes.
    let real = server.dir.path().join("agent.exe");
    fs::write(&real, b"a real agent binary").unwrap();
    run(&format!(
        "--version 0.6.49 --platform linux-amd64 --file {}",
        real.display()
    ));

    server.rescan().await;
    let mut s = server.agent(&stable, "0.6.47").await;
    let mut b = server.agent(&beta, "0.6.47").await;
    assert_eq!(s.heartbeat("0.6.47").await, None, "stable only moves on a promote");
    let offer = b.heartbeat("0.6.47").await.expect("beta gets the new build");
    assert_eq!(offer.version, v("0.6.48"));
    let (status, served) = server.api().raw(Method::GET, &format!("/downloads/{file}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256_hex(&served), offer.sha256);
    let linux_file = build_file_name(&linux(), v("0.6.49"));
    let (_, served) = server
        .api()
        .raw(Method::GET, &format!("/downloads/{linux_file}"), None)
        .await;
    assert_eq!(&served[..], b"a real agent binary");
}

#[tokio::test(start_paused = true)]
async fn downloads_serve_only_scanned_builds_and_their_digests() {
    let server = TestServer::mem().await;
    let out = server.publish("0.6.47", &win(), Channel::Stable).await;
    fs::write(server.downloads().join("secret.txt"), "TOP-SECRET").unwrap();
    fs::write(server.dir.path().join("outside.txt"), "TOP-SECRET").unwrap();
    let api = server.api().without_token();
    let (s, digest) = api
        .raw(Method::GET, &format!("/downloads/{}.sha256", out.file), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(String::from_utf8_lossy(&digest).starts_with(out.sha256.as_deref().unwrap()));
    for path in [
        "/downloads/secret.txt".to_owned(),
        format!("/downloads/{}.channel", out.file),
        "/downloads/..%2Foutside.txt".into(),
        "/downloads/%2E%2E%2Frmmsim.sqlite3".into(),
        "/downloads/../rmmsim.sqlite3".into(),
    ] {
        let (s, body) = api.raw(Method::GET, &path, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {}", String::from_utf8_lossy(&body));
        assert!(
            !String::from_utf8_lossy(&body).contains("TOP-SECRET"),
            "{path} leaked a file"
        );
    }
    let (s, body) = api.raw(Method::GET, "/healthz", None).await;
    assert_eq!((s, &body[..]), (StatusCode::OK, &b"ok\n"[..]));
}
