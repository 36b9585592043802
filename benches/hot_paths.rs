//! The server's hot paths: deciding updates for a large fleet, the wire
//! messages, and one heartbeat through the session.

use std::collections::BTreeSet;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rmmsim::clock::Clock;
use rmmsim::protocol::{
    AgentMessage, Channel, DeviceId, Hello, Platform, ServerMessage, UpdateId, UpdateOffer, UpdateResult, Version,
    decode_agent_message,
};
use rmmsim::server::rules::{latest, needs_update, resolve_channel};
use rmmsim::server::scanner::Build;
use rmmsim::server::session::Session;
use rmmsim::server::store::SqliteStore;
use rmmsim::server::{Core, CoreConfig, HealthGate};

fn builds() -> Vec<Build> {
    let mut out = Vec::new();
    for patch in 40..70 {
        for platform in ["windows-amd64", "linux-amd64"] {
            out.push(Build {
                file: format!("gururmm-agent-{platform}-0.6.{patch}.exe"),
                platform: platform.parse().unwrap(),
                version: Version::new(0, 6, patch),
                channel: if patch % 3 == 0 { Channel::Stable } else { Channel::Beta },
                sha256: "0".repeat(64),
                size: 1 << 20,
            });
        }
    }
    out
}

fn needs_update_for_a_fleet(c: &mut Criterion) {
    let builds = builds();
    let blocked = BTreeSet::from([Version::new(0, 6, 66)]);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let platforms: [Platform; 2] = ["windows-amd64".parse().unwrap(), "linux-amd64".parse().unwrap()];
    let fleet: Vec<(usize, Version, Option<Channel>)> = (0..100_000)
        .map(|_| {
            let channel = match rng.random_range(0..3) {
                0 => Some(Channel::Beta),
                1 => Some(Channel::Stable),
                _ => None,
            };
            (
                rng.random_range(0..2),
                Version::new(0, 6, rng.random_range(30..70)),
                channel,
            )
        })
        .collect();
    c.bench_function("needs_update/100k_agents", |b| {
        b.iter(|| {
            let mut offers = 0usize;
            for (p, version, own) in &fleet {
                let channel = resolve_channel(*own, None, Some(Channel::Stable));
                let target = latest(&builds, &platforms[*p], channel, &blocked).map(|b| b.version);
                offers += usize::from(needs_update(*version, target, &blocked).is_some());
            }
            black_box(offers)
        })
    });
}

fn messages(c: &mut Criterion) {
    let device: DeviceId = "win-6f1c2a9e-0b7d-4c1e-9a51-3d2f8e4b7c10".parse().unwrap();
    let agent = [
        AgentMessage::Hello(Hello {
            device_id: device,
            hostname: "acme-hq-0001".into(),
            os: "windows".into(),
            arch: "amd64".into(),
            version: Version::new(0, 6, 47),
            site_key: "5fccba6a34eb8997387d666c3bba6f2a".into(),
        }),
        AgentMessage::Heartbeat {
            version: Version::new(0, 6, 47),
        },
        AgentMessage::UpdateResult(UpdateResult {
            update_id: UpdateId(42),
            success: false,
            version: Version::new(0, 6, 47),
            error: Some("installer exited with an error".into()),
        }),
        AgentMessage::Log {
            level: "error".into(),
            message: "service failed to start after 3 attempts".into(),
        },
    ];
    let server = [
        ServerMessage::Welcome {
            agent_id: rmmsim::protocol::AgentId(7),
        },
        ServerMessage::Ack {},
        ServerMessage::Update(UpdateOffer {
            update_id: UpdateId(42),
            version: Version::new(0, 6, 58),
            url: "http://127.0.0.1:8080/downloads/gururmm-agent-windows-amd64-0.6.58.exe".into(),
            sha256: "5fdf9f33bc287b7026f6a061da70af450978187ef1ebedc76d2ebe262c0d4755".into(),
            size: 8 << 20,
        }),
        ServerMessage::error(
            rmmsim::protocol::ErrorCode::HelloRequired,
            "send hello before anything else",
        ),
    ];
    for msg in &agent {
        let name = msg.to_json().split('"').nth(3).unwrap_or("?").to_owned();
        let text = msg.to_json();
        c.bench_function(&format!("agent_message/{name}/encode"), |b| {
            b.iter(|| black_box(msg.to_json()))
        });
        c.bench_function(&format!("agent_message/{name}/decode"), |b| {
            b.iter(|| black_box(decode_agent_message(&text).unwrap()))
        });
    }
    for msg in &server {
        let text = msg.to_json();
        let name = text.split('"').nth(3).unwrap_or("?").to_owned();
        c.bench_function(&format!("server_message/{name}/encode"), |b| {
            b.iter(|| black_box(msg.to_json()))
        });
        c.bench_function(&format!("server_message/{name}/decode"), |b| {
            b.iter(|| black_box(serde_json::from_str::<ServerMessage>(&text).unwrap()))
        });
    }
}

fn heartbeat_through_the_session(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let config = CoreConfig {
        downloads: dir.path().to_owned(),
        public_url: String::new(),
        gate: HealthGate::default(),
        seed: 1,
        max_enrolments_per_minute: None,
    };
    let mut core = Core::open(Box::new(SqliteStore::in_memory().unwrap()), Clock::Wall, config).unwrap();
    let client = core.create_client("acme", None).unwrap();
    let site = core.create_site(client.id, "hq", None).unwrap();
    let (mut session, _pushed) = Session::open(1);
    let hello = AgentMessage::Hello(Hello {
        device_id: "6f1c2a9e-0b7d-4c1e-9a51-3d2f8e4b7c10".parse().unwrap(),
        hostname: "pc".into(),
        os: "windows".into(),
        arch: "amd64".into(),
        version: Version::new(0, 6, 58),
        site_key: site.site_key,
    });
    assert!(matches!(
        session.on_message(&mut core, hello)[0],
        ServerMessage::Welcome { .. }
    ));
    let beat = AgentMessage::Heartbeat {
        version: Version::new(0, 6, 58),
    };
    c.bench_function("session/heartbeat", |b| {
        b.iter(|| black_box(session.on_message(&mut core, beat.clone())))
    });
    let text = beat.to_json();
    c.bench_function("session/heartbeat_text", |b| {
        b.iter(|| black_box(session.on_text(&mut core, &text)))
    });
}

criterion_group!(
    benches,
    needs_update_for_a_fleet,
    messages,
    heartbeat_through_the_session
);
criterion_main!(benches);
