//! Shared fixtures: a fresh database per test on either backend, drafts, a clock the test moves by
//! hand, and independent checks of what the store returns (chain links, signatures, a naive Merkle
//! root).
//!
//! SQLite runs always, in a temporary folder. PostgreSQL runs when
//! `AUDITEX_TEST_POSTGRES_ADMIN_URL` names a role that may create databases (the schema owner);
//! each test then gets its own database `auditex_t_<random>`, migrated by that owner, and the store
//! connects as the application role given by `AUDITEX_TEST_POSTGRES_APP_USER` and
//! `AUDITEX_TEST_POSTGRES_APP_PASSWORD`. Without the URL the PostgreSQL tests are reported as
//! skipped (a `SKIPPED:` line, see `skip.rs`); under CI (`CI=true`) they fail instead, so CI
//! cannot pass without exercising both backends.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use auditex::store::crypto::MasterKey;
use auditex::store::{Clock, DatabaseUrl, Store, StoreConfig};
use ed25519_dalek::Verifier;
use ledger::draft::{ClientDraft, prepare_client_draft};
use ledger::keys::KeyRing;
use ledger::merkle::{leaf_hash, node_hash};
use ledger::record::Record;
use ledger::types::{Hash, Sequence, TenantId};
use serde_json::{Value, json};
use sqlx::Connection;

/// Environment variable naming the PostgreSQL owner URL (a role with CREATEDB).
pub const POSTGRES_ADMIN_URL_VAR: &str = "AUDITEX_TEST_POSTGRES_ADMIN_URL";
/// Environment variable naming the PostgreSQL application role.
pub const POSTGRES_APP_USER_VAR: &str = "AUDITEX_TEST_POSTGRES_APP_USER";
/// Environment variable holding the application role's password.
pub const POSTGRES_APP_PASSWORD_VAR: &str = "AUDITEX_TEST_POSTGRES_APP_PASSWORD";

/// The application role the migrations grant privileges to.
const POSTGRES_APP_USER_DEFAULT: &str = "auditex_app";

/// Checkpoint interval for tests: long enough that tests publish checkpoints themselves with
/// `Store::publish_checkpoints` and see exactly what they asked for.
const TEST_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(3600);

/// Which backend a test runs against.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    Postgres(PostgresServer),
}

/// Where the test PostgreSQL server is and which roles to use.
#[derive(Debug, Clone)]
pub struct PostgresServer {
    /// The owner's URL (any database; tests replace the path).
    admin_url: url::Url,
    app_user: String,
    app_password: String,
}

impl Backend {
    /// The PostgreSQL backend when configured. Reports the test as skipped (see [`crate::skip`])
    /// and returns `None` when it is not, except under CI, where that is a failure.
    pub fn postgres() -> Option<Backend> {
        let Ok(admin) = std::env::var(POSTGRES_ADMIN_URL_VAR) else {
            crate::skip::POSTGRES.skip(&format!("{POSTGRES_ADMIN_URL_VAR} is not set"));
            return None;
        };
        let admin_url = url::Url::parse(&admin)
            .unwrap_or_else(|e| panic!("{POSTGRES_ADMIN_URL_VAR} is not a URL: {e}"));
        Some(Backend::Postgres(PostgresServer {
            admin_url,
            app_user: std::env::var(POSTGRES_APP_USER_VAR)
                .unwrap_or_else(|_| POSTGRES_APP_USER_DEFAULT.to_owned()),
            app_password: std::env::var(POSTGRES_APP_PASSWORD_VAR).unwrap_or_default(),
        }))
    }
}

/// Generates, for each named `async fn(Backend)`, a module holding a `sqlite` and a `postgres`
/// test, so the suite is written once and runs on both backends.
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::support::Backend::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(backend) = $crate::support::Backend::postgres() {
                        super::$name(backend).await;
                    }
                }
            }
        )*
    };
}
pub(crate) use backend_tests;

/// Like [`backend_tests`], for tests of what only PostgreSQL has (roles, row-level security,
/// several service instances sharing one database).
macro_rules! postgres_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(backend) = $crate::support::Backend::postgres() {
                        super::$name(backend).await;
                    }
                }
            }
        )*
    };
}
pub(crate) use postgres_tests;

/// A fresh, migrated database that is removed again when dropped.
pub struct TestDb {
    /// What the store connects to (the application role on PostgreSQL).
    pub database: DatabaseUrl,
    /// The master key every store opened by [`TestDb::open`] uses.
    pub master_key: MasterKey,
    place: Place,
}

enum Place {
    Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
    Postgres {
        server: PostgresServer,
        name: String,
        owner_url: String,
        app_url: String,
    },
}

/// A fresh random master key, registered with the secret-log scan (which this also starts, so
/// every in-process test of the service has its logs captured).
fn test_master_key() -> MasterKey {
    let bytes: [u8; 32] = rand::random();
    crate::secret_scan::register_bytes("test master key", &bytes);
    MasterKey::from_hex(&hex::encode(bytes), "test").expect("64 hex digits")
}

impl TestDb {
    /// Creates and migrates a fresh database on `backend`.
    pub async fn new(backend: &Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary folder");
                let path = dir.path().join("ledger.db");
                let database = DatabaseUrl::Sqlite(path.clone());
                Store::migrate(&database, None)
                    .await
                    .expect("SQLite migrations apply");
                TestDb {
                    database,
                    master_key: test_master_key(),
                    place: Place::Sqlite { _dir: dir, path },
                }
            }
            Backend::Postgres(server) => {
                let name = format!("auditex_t_{:016x}", rand::random::<u64>());
                let mut admin = sqlx::PgConnection::connect(server.admin_url.as_str())
                    .await
                    .expect("connect to PostgreSQL as the owner");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut admin)
                    .await
                    .expect("create the test database");
                admin.close().await.ok();
                let owner_url = server.url_for(&name, None);
                let app_url = server.url_for(&name, Some((&server.app_user, &server.app_password)));
                let database = DatabaseUrl::Postgres(app_url.clone());
                Store::migrate(&database, Some(&owner_url))
                    .await
                    .expect("PostgreSQL migrations apply as the owner");
                TestDb {
                    database,
                    master_key: test_master_key(),
                    place: Place::Postgres {
                        server: server.clone(),
                        name,
                        owner_url,
                        app_url,
                    },
                }
            }
        }
    }

    /// Whether this is the PostgreSQL backend.
    pub fn is_postgres(&self) -> bool {
        matches!(self.place, Place::Postgres { .. })
    }

    /// A store configuration for this database: the test master key, checkpoints only on demand.
    pub fn config(&self) -> StoreConfig {
        let mut config = StoreConfig::new(self.database.clone(), self.master_key.clone());
        config.checkpoint_interval = TEST_CHECKPOINT_INTERVAL;
        config
    }

    /// Opens a store with [`TestDb::config`].
    pub async fn open(&self) -> Store {
        Store::open_with_workers(self.config())
            .await
            .expect("the store opens")
    }

    /// Opens a store with a tenant already created, returning both.
    pub async fn open_with_tenant(&self, tenant: &str) -> (Store, TenantId) {
        let store = self.open().await;
        let tenant = tenant_id(tenant);
        store.create_tenant(&tenant).await.expect("tenant created");
        (store, tenant)
    }

    /// The SQLite file.
    ///
    /// # Panics
    /// On PostgreSQL.
    pub fn sqlite_path(&self) -> &std::path::Path {
        match &self.place {
            Place::Sqlite { path, .. } => path,
            Place::Postgres { .. } => panic!("not an SQLite database"),
        }
    }

    /// The URL of this database for the schema owner.
    ///
    /// # Panics
    /// On SQLite.
    pub fn postgres_owner_url(&self) -> &str {
        match &self.place {
            Place::Postgres { owner_url, .. } => owner_url,
            Place::Sqlite { .. } => panic!("not a PostgreSQL database"),
        }
    }

    /// The URL of this database for the application role (what the store uses).
    ///
    /// # Panics
    /// On SQLite.
    pub fn postgres_app_url(&self) -> &str {
        match &self.place {
            Place::Postgres { app_url, .. } => app_url,
            Place::Sqlite { .. } => panic!("not a PostgreSQL database"),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Place::Postgres { server, name, .. } = &self.place else {
            return;
        };
        // Drop runs inside the test's runtime, which cannot be blocked on; a short-lived runtime
        // on its own thread removes the database (even when the test panicked).
        let admin_url = server.admin_url.to_string();
        let name = name.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&admin_url)
                    .await
                    .map_err(|e| e.to_string())?;
                // FORCE ends the store's pooled connections, which may outlive the store handle
                // for a moment (background tasks hold clones until the runtime stops).
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await
                .map_err(|e| e.to_string())?;
                admin.close().await.ok();
                Ok::<(), String>(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: could not drop test database: {e}"),
            Err(_) => eprintln!("warning: dropping the test database panicked"),
        }
    }
}

impl PostgresServer {
    /// The server URL with database `name`, as the owner or as `role` (user, password).
    fn url_for(&self, name: &str, role: Option<(&str, &str)>) -> String {
        let mut url = self.admin_url.clone();
        url.set_path(name);
        if let Some((user, password)) = role {
            url.set_username(user).expect("a URL with a host");
            url.set_password((!password.is_empty()).then_some(password))
                .expect("a URL with a host");
        }
        url.to_string()
    }
}

/// A clock that tests set by hand; it starts at a plausible present.
#[derive(Debug)]
pub struct ManualClock {
    now_us: AtomicU64,
}

impl ManualClock {
    /// 2026-01-01T00:00:00Z.
    pub const START_US: u64 = 1_767_225_600_000_000;

    pub fn new() -> Arc<ManualClock> {
        Arc::new(ManualClock {
            now_us: AtomicU64::new(Self::START_US),
        })
    }

    pub fn set(&self, now_us: u64) {
        self.now_us.store(now_us, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_unix_micros(&self) -> u64 {
        self.now_us.load(Ordering::SeqCst)
    }
}

pub fn tenant_id(text: &str) -> TenantId {
    TenantId::parse(text).expect("a valid tenant id")
}

pub fn new_event_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

pub fn seq(n: u64) -> Sequence {
    Sequence::new(n).expect("a valid sequence number")
}

/// A valid decision payload whose outcome is `outcome`.
pub fn decision_payload(outcome: &str) -> Value {
    json!({
        "model_id": "credit-limit",
        "model_version": "2.3.1",
        "input_commitment": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "outcome": outcome,
        "score": 0.72,
        "reason_codes": ["R01", "R17"],
        "subject_ref": "subj-4711",
        "decided_at": "2026-01-01T08:49:27Z",
        "oversight_mode": "human_in_the_loop",
    })
}

/// A decision draft with the given event id and outcome, and no erasable fields.
pub fn decision_with_id(event_id: &str, outcome: &str) -> ClientDraft {
    draft(event_id, outcome, &BTreeMap::new())
}

/// A decision draft with a fresh event id.
pub fn decision(outcome: &str) -> ClientDraft {
    decision_with_id(&new_event_id(), outcome)
}

/// A decision draft with erasable fields.
pub fn draft(event_id: &str, outcome: &str, erasable: &BTreeMap<String, Value>) -> ClientDraft {
    prepare_client_draft(
        event_id,
        "decision",
        &decision_payload(outcome),
        erasable,
        rand::random,
    )
    .unwrap_or_else(|errors| panic!("the test draft is valid: {errors:?}"))
}

/// `count` decision drafts with fresh event ids.
pub fn decisions(count: usize) -> Vec<ClientDraft> {
    (0..count)
        .map(|i| decision(&format!("outcome-{i}")))
        .collect()
}

/// How many decisions the decisions view serves `tenant` in one page of up to 500.
pub async fn decisions_served(store: &Store, tenant: &TenantId) -> usize {
    let query = auditex::store::views::DecisionQuery {
        limit: 500,
        ..Default::default()
    };
    let page = store
        .search_decisions(tenant, &query)
        .await
        .expect("search decisions");
    page.items.len()
}

/// Appends `total` records in batches of at most `batch`.
pub async fn append_many(store: &Store, tenant: &TenantId, total: usize, batch: usize) {
    let mut left = total;
    while left > 0 {
        let n = left.min(batch);
        store
            .append(tenant, decisions(n))
            .await
            .expect("append succeeds");
        left -= n;
    }
}

/// The record hashes of the tenant's chain, in order (the tree's leaves before leaf hashing).
pub async fn chain_hashes(store: &Store, tenant: &TenantId) -> Vec<Hash> {
    read_chain(store, tenant)
        .await
        .iter()
        .map(|r| r.hash)
        .collect()
}

/// Every record of the tenant's chain, in order.
pub async fn read_chain(store: &Store, tenant: &TenantId) -> Vec<Record> {
    let mut out: Vec<Record> = Vec::new();
    loop {
        let from = seq(u64::try_from(out.len()).expect("fits"));
        let page = store.records(tenant, from, 1000).await.expect("range read");
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// Checks what a verifier would: sequence numbers 0.. without gaps, every record linking to the
/// previous record's hash, hashing to its stored hash, signed by the key the history names for
/// its sequence number, and capture times that never go backwards.
pub fn assert_valid_chain(records: &[Record], tenant: &TenantId, keys: &KeyRing) {
    let mut prev = Hash::ZERO;
    let mut last_time = 0;
    for (i, record) in records.iter().enumerate() {
        let i = u64::try_from(i).expect("fits");
        assert_eq!(record.seq.get(), i, "sequence numbers are gap-free");
        assert_eq!(&record.tenant, tenant, "record {i} belongs to the tenant");
        assert_eq!(
            record.prev, prev,
            "record {i} links to the previous record's hash"
        );
        assert_eq!(
            record.compute_hash(),
            record.hash,
            "record {i} hashes to its stored hash"
        );
        let key = keys
            .key_for(record.key_id, record.seq)
            .unwrap_or_else(|e| panic!("record {i}: {e}"));
        key.verify(record.hash.as_bytes(), record.sig.signature())
            .unwrap_or_else(|e| panic!("record {i}: signature does not verify: {e}"));
        assert!(
            record.captured_at_us.unix_micros() >= last_time,
            "record {i}: capture time went backwards"
        );
        last_time = record.captured_at_us.unix_micros();
        prev = record.hash;
    }
}

/// RFC 9162 `MTH` of the record hashes, computed the slow, obviously-correct way.
pub fn reference_root(record_hashes: &[Hash]) -> Hash {
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => Hash::from_bytes(sha256_empty()),
            1 => leaf_hash(leaves[0].as_bytes()),
            n => {
                let k = largest_power_of_two_below(n);
                node_hash(mth(&leaves[..k]), mth(&leaves[k..]))
            }
        }
    }
    mth(record_hashes)
}

fn largest_power_of_two_below(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

fn sha256_empty() -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(b"").into()
}
