//! A core on an in-memory store over a temporary downloads folder, for the
//! unit tests of the core and the session. Runs inside a paused tokio
//! runtime (`#[tokio::test(start_paused = true)]`): the core's clock is the
//! virtual one, so a test decides when time moves.

use std::collections::BTreeMap;

use tempfile::TempDir;
use tokio::sync::mpsc::{Receiver, channel};

use super::{Connection, Core, CoreConfig, Counters, HealthGate};
use crate::clock::{Clock, Timestamp};
use crate::protocol::{AgentId, Channel, DeviceId, Hello, Platform, ServerMessage, Version};
use crate::server::publish::{self, Content, DigestMode, Publication};
use crate::server::store::{
    AgentRow, ClientRow, FailingStore, FaultSwitch, MemStore, RolloutRow, SiteRow, Store, UpdateRow,
};

/// The date the fixture's clock starts at.
pub(crate) const START: Timestamp = Timestamp(1_780_000_000_000);

/// `MAJOR.MINOR.PATCH` to a version.
pub(crate) fn v(s: &str) -> Version {
    s.parse().unwrap()
}

/// The one platform of the fixture's builds.
pub(crate) fn win() -> Platform {
    "windows-amd64".parse().unwrap()
}

/// A bare-uuid device id numbered `n` (a machine past the identity boundary, U12).
pub(crate) fn device(n: u32) -> DeviceId {
    format!("6f1c2a9e-0b7d-4c1e-9a51-{n:012x}").parse().unwrap()
}

/// A core and what surrounds it.
pub(crate) struct Fixture {
    /// The core, on a [`FailingStore`] over [`store`](Self::store).
    pub core: Core,
    /// The committed tables.
    pub store: MemStore,
    /// Makes the core's commits fail.
    pub faults: FaultSwitch,
    /// Holds the downloads folder.
    pub dir: TempDir,
    /// The key of site `acme/hq`, which inherits stable.
    pub stable_key: String,
    /// The key of site `acme/lab`, on beta.
    pub beta_key: String,
}

impl Fixture {
    /// 1.0.0 published stable and 1.1.0 beta for windows-amd64; client
    /// `acme` with a stable and a beta site. The gate wants 1 success.
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let downloads = dir.path().join("downloads");
        std::fs::create_dir_all(&downloads).unwrap();
        let store = MemStore::new();
        let (failing, faults) = FailingStore::new(store.clone());
        let mut fixture = Self {
            core: Self::open_on(Box::new(failing), dir.path()),
            store,
            faults,
            dir,
            stable_key: String::new(),
            beta_key: String::new(),
        };
        fixture.publish("1.0.0", Channel::Stable);
        fixture.publish("1.1.0", Channel::Beta);
        fixture.core.rescan().unwrap();
        let acme = fixture.core.create_client("acme", None).unwrap().id;
        fixture.stable_key = fixture.core.create_site(acme, "hq", None).unwrap().site_key;
        fixture.beta_key = fixture
            .core
            .create_site(acme, "lab", Some(Channel::Beta))
            .unwrap()
            .site_key;
        fixture
    }

    /// A core over `root/downloads` on `store`, as `serve` would open it.
    pub(crate) fn open_on(store: Box<dyn Store>, root: &std::path::Path) -> Core {
        let config = CoreConfig {
            downloads: root.join("downloads"),
            public_url: String::new(),
            gate: HealthGate {
                min_successes: 1,
                max_failure_rate: 0.5,
                max_new_error_rate: None,
            },
            seed: 7,
            max_enrolments_per_minute: None,
        };
        Core::open(store, Clock::virtual_from(START), config).unwrap()
    }

    /// Writes a windows-amd64 build into the downloads folder (not scanned yet).
    pub(crate) fn publish(&self, version: &str, channel: Channel) {
        let publication = Publication {
            version: v(version),
            platform: win(),
            content: Content::Synthetic(64),
            channel,
            digest: DigestMode::Correct,
            overwrite: false,
        };
        publish::publish(&self.dir.path().join("downloads"), &publication).unwrap();
    }

    /// A `hello` from device `n` on `version`, with `key`.
    pub(crate) fn hello_frame(n: u32, key: &str, version: &str) -> Hello {
        Hello {
            device_id: device(n),
            hostname: format!("pc{n}"),
            os: "windows".into(),
            arch: "amd64".into(),
            version: v(version),
            site_key: key.into(),
        }
    }

    /// Admits device `n` on `version` at the beta site.
    pub(crate) fn beta(&mut self, n: u32, version: &str) -> AgentId {
        self.core.hello(&Self::hello_frame(n, &self.beta_key, version)).unwrap()
    }

    /// Admits device `n` on `version` at the stable site.
    pub(crate) fn stable(&mut self, n: u32, version: &str) -> AgentId {
        self.core
            .hello(&Self::hello_frame(n, &self.stable_key, version))
            .unwrap()
    }

    /// Admits device `n` and connects it; the receiver gets pushed frames.
    pub(crate) fn connect(&mut self, n: u32, key: &str, version: &str) -> (AgentId, Receiver<ServerMessage>) {
        let id = self.core.hello(&Self::hello_frame(n, key, version)).unwrap();
        let (outbox, pushed) = channel(crate::server::session::PUSH_QUEUE);
        self.core.connect(
            id,
            Connection {
                id: u64::from(n),
                outbox,
            },
        );
        (id, pushed)
    }
}

/// Everything a caller of the core can see of its state, to compare two
/// moments or two cores.
#[derive(Debug, PartialEq)]
pub(crate) struct Observed {
    clients: Vec<ClientRow>,
    sites: Vec<SiteRow>,
    agents: Vec<AgentRow>,
    online: Vec<AgentId>,
    pending: Vec<UpdateRow>,
    rollouts: Vec<RolloutRow>,
    blocked: BTreeMap<Version, Timestamp>,
    counters: Counters,
    catalog: String,
}

impl Observed {
    /// What `core` shows now.
    pub(crate) fn of(core: &Core) -> Self {
        Self {
            clients: core.clients().cloned().collect(),
            sites: core.sites().cloned().collect(),
            agents: core.agents().cloned().collect(),
            online: core.agents().map(|a| a.id).filter(|&id| core.is_online(id)).collect(),
            pending: core.pending().cloned().collect(),
            rollouts: core.rollouts().cloned().collect(),
            blocked: core.blocked().clone(),
            counters: core.counters(),
            catalog: serde_json::to_string(core.catalog()).unwrap(),
        }
    }

    /// The same, without what only lives as long as the process (counters,
    /// connections) or is read again from the folder (the scan): what a
    /// restart must bring back from the store.
    pub(crate) fn durable(self) -> Self {
        Self {
            online: Vec::new(),
            counters: Counters::default(),
            catalog: String::new(),
            ..self
        }
    }
}
