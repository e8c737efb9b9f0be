//! A running service with the compliance portal, for the portal's HTTP-level and browser tests:
//! one tenant with an administrator, a self-signed TLS certificate, mail in an outbox folder,
//! and optionally a clock the test moves.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use auditex::http::{HttpConfig, TlsMode};
use auditex::portal::PortalConfig;
use auditex::portal::mail::Mailer;
use auditex::portal::security::{KeyRing, hash_password};
use auditex::server::Application;
use auditex::store::Store;
use auditex::store::users::PortalRole;
use ledger::types::TenantId;

use crate::support::{Backend, ManualClock, TestDb, decision_payload, new_event_id, tenant_id};

/// The erasable fields [`PortalServer::append_personal_decision`] stores, with their values
/// (which no page of the list may show).
pub const PERSONAL_FIELDS: [(&str, &str); 2] = [
    ("email", "alice@example.test"),
    ("full_name", "Alice Example"),
];

/// A password that passes the policy, used for every test account.
pub const PASSWORD: &str = "correct horse battery staple";

/// The administrator of the test tenant.
pub const ADMIN_EMAIL: &str = "admin@acme.test";

/// A running service with the portal.
pub struct PortalServer {
    /// `https://localhost:<port>`.
    pub base: String,
    /// The store behind it.
    pub store: Store,
    /// The tenant.
    pub tenant: TenantId,
    /// Where mail lands.
    pub outbox: PathBuf,
    /// The TLS certificate (PEM), to trust in clients.
    pub pem: String,
    /// The portal settings it runs with.
    pub config: PortalConfig,
    /// The clock, when the test controls time.
    pub clock: Option<Arc<ManualClock>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _db: TestDb,
    _dir: tempfile::TempDir,
}

impl PortalServer {
    /// Starts a server; with `manual_clock`, time stands still until the test moves it.
    pub async fn start(backend: &Backend, manual_clock: bool) -> PortalServer {
        PortalServer::start_with(backend, manual_clock, KeyRing::random()).await
    }

    /// Starts a server with the given session keys.
    pub async fn start_with(backend: &Backend, manual_clock: bool, keys: KeyRing) -> PortalServer {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let db = TestDb::new(backend).await;
        let mut store_config = db.config();
        let clock = manual_clock.then(ManualClock::new);
        if let Some(c) = &clock {
            store_config.clock = c.clone();
        }
        store_config.projections_in_background = true;
        store_config.projection_poll_interval = Duration::from_millis(200);
        let store = Store::open_with_workers(store_config)
            .await
            .expect("store opens");
        let tenant = tenant_id("acme-bank");
        store.create_tenant(&tenant).await.expect("tenant");
        let dir = tempfile::tempdir().expect("tempdir");
        let outbox = dir.path().join("outbox");
        let http = HttpConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            tls: TlsMode::SelfSigned(dir.path().join("tls")),
            rate_per_second: 1000,
            rate_burst: 1000,
            ingest_rate_per_second: 1000,
            request_bodies_bytes_max: auditex::app::bodies::REQUEST_BODIES_BYTES_MAX,
        };
        // The public URL must name the port, which is known only once bound: build twice (the
        // first listener is dropped at once). Between the two, an outgoing connection may take
        // the port (it is in the kernel's ephemeral range), so a refused second bind starts over.
        let mut attempt = 0;
        let (app, config, port) = loop {
            attempt += 1;
            let probe = Application::build(store.clone(), &http)
                .await
                .expect("server builds");
            let port = probe.port();
            drop(probe);
            let http = HttpConfig {
                listen: format!("127.0.0.1:{port}").parse().expect("addr"),
                ..http.clone()
            };
            let config = PortalConfig {
                keys: keys.clone(),
                public_url: format!("https://localhost:{port}"),
                idle: Duration::from_secs(30 * 60),
                absolute: Duration::from_secs(12 * 3600),
                reset_ttl: Duration::from_secs(2 * 3600),
                mailer: Mailer::Outbox(outbox.clone()),
            };
            match Application::build_with_portal(store.clone(), &http, Some(config.clone())).await {
                Ok(app) => break (app, config, port),
                Err(e) if attempt < 5 => eprintln!("port {port} was taken again ({e}); retrying"),
                Err(e) => panic!("server builds: {e}"),
            }
        };
        let pem = app.tls_certificate_pem().expect("tls").to_owned();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        let server = PortalServer {
            base: format!("https://localhost:{port}"),
            store,
            tenant,
            outbox,
            pem,
            config,
            clock,
            stop: Some(stop),
            task: Some(task),
            _db: db,
            _dir: dir,
        };
        server
            .create_user(ADMIN_EMAIL, PortalRole::Admin, None)
            .await;
        server
    }

    /// Creates an account of the test tenant with [`PASSWORD`].
    pub async fn create_user(&self, email: &str, role: PortalRole, expires_at_us: Option<i64>) {
        let hash = hash_password(PASSWORD.to_owned()).await.expect("hash");
        self.store
            .create_user(
                &self.tenant,
                email,
                role,
                &hash,
                expires_at_us,
                self.store.now_us(),
            )
            .await
            .expect("user");
    }

    /// Appends a decision about `subject` to `tenant` with the erasable [`PERSONAL_FIELDS`],
    /// waits until the subject index lists it, and returns its sequence number.
    pub async fn append_personal_decision(&self, tenant: &TenantId, subject: &str) -> u64 {
        let mut payload = decision_payload("approve");
        payload["subject_ref"] = serde_json::json!(subject);
        let erasable = PERSONAL_FIELDS
            .iter()
            .map(|(f, v)| ((*f).to_owned(), serde_json::json!(v)))
            .collect();
        let draft = ledger::draft::prepare_client_draft(
            &new_event_id(),
            "decision",
            &payload,
            &erasable,
            rand::random,
        )
        .expect("a valid decision");
        let seq = self
            .store
            .append(tenant, vec![draft])
            .await
            .expect("append")
            .pop()
            .expect("a receipt")
            .seq;
        for _ in 0..600 {
            if let Ok(page) = self.store.subject_records(tenant, subject, None, 500).await
                && page.items.iter().any(|r| r.seq == seq)
            {
                return seq;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the subject index did not list record {seq}");
    }

    /// The names of the erasable fields of record `seq` that are still stored.
    pub async fn stored_fields(&self, tenant: &TenantId, seq: u64) -> Vec<String> {
        self.store
            .erasable_values(tenant, ledger::types::Sequence::new(seq).expect("seq"))
            .await
            .expect("read erasable values")
            .into_keys()
            .map(|f| f.as_str().to_owned())
            .collect()
    }

    /// The database behind the store (for tests that change it as its owner).
    pub fn db(&self) -> &TestDb {
        &self._db
    }

    /// A URL on the server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The newest mail in the outbox, as text.
    pub fn latest_mail(&self) -> Option<String> {
        let mut files: Vec<_> = std::fs::read_dir(&self.outbox)
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        files.sort();
        files.last().and_then(|p| std::fs::read_to_string(p).ok())
    }

    /// Moves the manual clock forward.
    pub fn advance(&self, by: Duration) {
        let clock = self.clock.as_ref().expect("started with a manual clock");
        let now = auditex::store::Clock::now_unix_micros(clock.as_ref());
        clock.set(now + u64::try_from(by.as_micros()).expect("fits"));
    }

    /// Stops the server.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}
