//! Durability under faults, with real processes: the `auditex` binary killed with SIGKILL in the
//! middle of sustained appends, two processes appending to one tenant on PostgreSQL, and a
//! PostgreSQL server stopped and restarted under load. Every receipt a process printed was
//! acknowledged, so every one of them must be in the ledger afterwards, and the chain must verify.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use auditex::store::crypto::MasterKey;
use auditex::store::{DatabaseUrl, Receipt, Store, StoreConfig};
use ledger::draft::prepare_client_draft;
use ledger::types::{Sequence, TenantId};
use ledger::verify::ChainVerifier;
use serde::Deserialize;

use crate::support::{Backend, TestDb, backend_tests, postgres_tests};

/// A receipt as `auditex append` prints it.
#[derive(Debug, Deserialize)]
struct PrintedReceipt {
    seq: u64,
    event_id: String,
    hash: String,
}

/// Where a spawned `auditex` process finds its database and master key.
pub(crate) struct ProcessEnv {
    _dir: tempfile::TempDir,
    database_url: String,
    key_file: PathBuf,
    key_hex: String,
}

impl ProcessEnv {
    pub(crate) fn new(db: &TestDb) -> ProcessEnv {
        let dir = tempfile::tempdir().expect("temporary folder");
        let key_hex = hex::encode(rand::random::<[u8; 32]>());
        let key_file = dir.path().join("master.key");
        std::fs::write(&key_file, &key_hex).expect("write key file");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600))
                .expect("chmod key file");
        }
        let database_url = match &db.database {
            DatabaseUrl::Sqlite(path) => format!("sqlite:{}", path.display()),
            DatabaseUrl::Postgres(url) => url.clone(),
        };
        ProcessEnv {
            _dir: dir,
            database_url,
            key_file,
            key_hex,
        }
    }

    /// The master key, as 64 hex digits.
    pub(crate) fn key_hex(&self) -> &str {
        &self.key_hex
    }

    /// A folder for further files of the test (removed with it).
    pub(crate) fn dir(&self) -> &Path {
        self._dir.path()
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_auditex"));
        cmd.args(args)
            .env("AUDITEX_DATABASE_URL", &self.database_url)
            .env("AUDITEX_MASTER_KEY_FILE", &self.key_file)
            .env("AUDITEX_DATA_DIR", self._dir.path().join("data"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null());
        cmd
    }

    pub(crate) fn store_config(&self, db: &TestDb) -> StoreConfig {
        StoreConfig::new(
            db.database.clone(),
            MasterKey::from_hex(&self.key_hex, "test").expect("key"),
        )
    }
}

/// Runs `auditex append --generate` and kills it with SIGKILL once it has printed `kill_after`
/// receipts; returns every receipt it printed (including those still in the pipe).
fn append_then_kill(env: &ProcessEnv, tenant: &str, kill_after: usize) -> Vec<PrintedReceipt> {
    let mut child = env
        .command(&[
            "append",
            "--tenant",
            tenant,
            "--generate",
            "100000000",
            "--batch",
            "20",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn auditex append");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut receipts = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while receipts.len() < kill_after && Instant::now() < deadline {
        match lines.next() {
            Some(Ok(line)) => receipts.push(serde_json::from_str(&line).expect("a receipt line")),
            _ => break,
        }
    }
    // SIGKILL: no destructors, no shutdown, no flush beyond what was already acknowledged.
    child.kill().expect("SIGKILL");
    for line in lines.map_while(Result::ok) {
        // A line cut off by the kill was never fully printed, so it was never acknowledged.
        if let Ok(r) = serde_json::from_str(&line) {
            receipts.push(r);
        }
    }
    let _ = child.wait();
    assert!(
        receipts.len() >= kill_after,
        "the process printed only {} receipts",
        receipts.len()
    );
    receipts
}

/// Checks that every printed receipt is in the ledger with the same hash, and that the whole
/// chain verifies from genesis, gap-free.
async fn assert_all_acknowledged_present(
    store: &Store,
    tenant: &TenantId,
    receipts: &[PrintedReceipt],
) -> u64 {
    let size = store.tree_size(tenant).await.expect("size").get();
    for r in receipts {
        let record = store
            .record(tenant, Sequence::new(r.seq).expect("seq"))
            .await
            .expect("read")
            .unwrap_or_else(|| panic!("acknowledged record {} is missing after the crash", r.seq));
        assert_eq!(record.hash.to_hex(), r.hash, "record {} changed", r.seq);
        assert_eq!(record.event_id.to_string(), r.event_id);
    }
    let ring = store.key_history(tenant).await.expect("keys");
    let mut verifier = ChainVerifier::new(tenant.clone(), ring);
    let mut next = 0u64;
    while next < size {
        let batch = store
            .records(tenant, Sequence::new(next).expect("seq"), 5000)
            .await
            .expect("records");
        assert!(!batch.is_empty(), "records stop at {next} of {size}");
        for record in &batch {
            verifier.push(record).expect("the chain verifies");
        }
        next += batch.len() as u64;
    }
    let summary = verifier.finish().expect("the chain verifies");
    assert_eq!(summary.size().get(), size);
    let root = store.root_at(tenant, summary.size()).await.expect("root");
    assert_eq!(
        summary.root(),
        Some(root),
        "the stored tree disagrees with the records"
    );
    size
}

async fn acknowledged_records_survive_sigkill(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let env = ProcessEnv::new(&db);
    let status = env
        .command(&["tenant", "create", "crash"])
        .status()
        .expect("tenant create");
    assert!(status.success());
    let mut receipts = Vec::new();
    for _round in 0..3 {
        receipts.extend(append_then_kill(&env, "crash", 400));
    }
    let seqs: HashSet<u64> = receipts.iter().map(|r| r.seq).collect();
    assert_eq!(
        seqs.len(),
        receipts.len(),
        "a sequence number was acknowledged twice"
    );
    let store = Store::open_with_workers(env.store_config(&db))
        .await
        .expect("reopen");
    let tenant = TenantId::parse("crash").expect("tenant");
    let size = assert_all_acknowledged_present(&store, &tenant, &receipts).await;
    assert!(size >= receipts.len() as u64);
    // The chain continues after the crashes.
    let d = prepare_client_draft(
        &uuid::Uuid::now_v7().to_string(),
        "decision",
        &auditex::cli::synthetic_decision(1),
        &BTreeMap::new(),
        rand::random,
    )
    .expect("draft");
    let r = store
        .append(&tenant, vec![d])
        .await
        .expect("append after crash");
    assert_eq!(r[0].seq, size);
    store.shutdown().await;
}

async fn two_processes_append_one_gap_free_chain(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let env = ProcessEnv::new(&db);
    assert!(
        env.command(&["tenant", "create", "shared"])
            .status()
            .expect("create")
            .success()
    );
    let spawn = || {
        env.command(&[
            "append",
            "--tenant",
            "shared",
            "--generate",
            "1500",
            "--batch",
            "10",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn")
    };
    let (a, b) = (spawn(), spawn());
    let mut receipts = Vec::new();
    for child in [a, b] {
        let out = child.wait_with_output().expect("wait");
        assert!(out.status.success(), "an appending process failed");
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            receipts.push(serde_json::from_str::<PrintedReceipt>(line).expect("receipt"));
        }
    }
    assert_eq!(receipts.len(), 3000);
    let store = Store::open_with_workers(env.store_config(&db))
        .await
        .expect("open");
    let tenant = TenantId::parse("shared").expect("tenant");
    let size = assert_all_acknowledged_present(&store, &tenant, &receipts).await;
    assert_eq!(
        size, 3000,
        "two writers must produce exactly one chain of 3000 records"
    );
    store.shutdown().await;
}

backend_tests!(acknowledged_records_survive_sigkill);
postgres_tests!(two_processes_append_one_gap_free_chain);

/// A throwaway PostgreSQL server of this test's own, so stopping it disturbs no other test.
struct OwnPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl OwnPostgres {
    /// Starts a fresh cluster, or returns `None` when no PostgreSQL binaries are installed
    /// (a failure under CI, where they must be).
    fn start() -> Option<OwnPostgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql").ok().and_then(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path().join("bin"))
                .find(|b| b.join("initdb").exists())
        });
        let Some(bin) = bin else {
            crate::skip::POSTGRES_BINARIES.skip("no initdb under /usr/lib/postgresql/*/bin");
            return None;
        };
        let dir = tempfile::tempdir().expect("temporary folder");
        let port = 20000 + (rand::random::<u16>() % 20000);
        let pg = OwnPostgres { dir, bin, port };
        // PostgreSQL refuses to run as root: the cluster belongs to the `postgres` user.
        run(Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(pg.dir.path()));
        pg.as_postgres(
            &pg.bin.join("initdb"),
            &["-D", &pg.data(), "-A", "trust", "-U", "owner"],
        );
        pg.pg_ctl("start");
        pg.psql("CREATE ROLE auditex_app LOGIN PASSWORD 'app'");
        Some(pg)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn as_postgres<S: AsRef<std::ffi::OsStr>>(&self, program: &Path, args: &[S]) {
        run(Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(program)
            .args(args));
    }

    fn pg_ctl(&self, action: &str) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        let mut args = vec![
            "-D".to_owned(),
            self.data(),
            "-w".into(),
            "-o".into(),
            opts,
            "-l".into(),
            log,
        ];
        if action == "stop" {
            args.extend(["-m".to_owned(), "immediate".to_owned()]);
        }
        args.push(action.to_owned());
        self.as_postgres(&self.bin.join("pg_ctl"), &args);
    }

    fn psql(&self, sql: &str) {
        run(Command::new(self.bin.join("psql")).args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "owner",
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ]));
    }

    fn url(&self, user: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run a PostgreSQL command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_under_load_loses_and_duplicates_nothing() {
    // The test starts a cluster of its own and needs no URL; a machine that has not opted in to
    // the PostgreSQL tests is not made to start one (CI always runs it).
    if !crate::skip::in_ci() && std::env::var_os(crate::support::POSTGRES_ADMIN_URL_VAR).is_none() {
        crate::skip::POSTGRES.skip("AUDITEX_TEST_POSTGRES_ADMIN_URL is not set");
        return;
    }
    let Some(pg) = OwnPostgres::start() else {
        return;
    };
    let mut config = StoreConfig::new(
        DatabaseUrl::Postgres(format!(
            "postgres://auditex_app:app@127.0.0.1:{}/postgres",
            pg.port
        )),
        MasterKey::generate(),
    );
    config.admin_database = Some(pg.url("owner"));
    let store = Store::open_with_workers(config).await.expect("open");
    let tenant = TenantId::parse("restart").expect("tenant");
    store.create_tenant(&tenant).await.expect("tenant");

    // A client that appends batches and retries each one, with the same event ids, until it is
    // acknowledged: what a well-behaved pipeline does.
    let client = {
        let (store, tenant) = (store.clone(), tenant.clone());
        tokio::spawn(async move {
            let mut acknowledged: Vec<Receipt> = Vec::new();
            let mut failures = 0u32;
            let started = Instant::now();
            let mut n = 0u64;
            while started.elapsed() < Duration::from_secs(14) {
                let batch: Vec<_> = (0..20)
                    .map(|_| {
                        n += 1;
                        prepare_client_draft(
                            &uuid::Uuid::now_v7().to_string(),
                            "decision",
                            &auditex::cli::synthetic_decision(n),
                            &BTreeMap::new(),
                            rand::random,
                        )
                        .expect("draft")
                    })
                    .collect();
                loop {
                    match store.append(&tenant, batch.clone()).await {
                        Ok(r) => {
                            acknowledged.extend(r);
                            break;
                        }
                        Err(e) => {
                            assert!(
                                e.is_retryable(),
                                "a database outage must give a retryable error, got {e}"
                            );
                            failures += 1;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            }
            (acknowledged, failures)
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pg = tokio::task::spawn_blocking(move || {
        pg.pg_ctl("stop");
        std::thread::sleep(Duration::from_secs(4));
        pg.pg_ctl("start");
        pg
    })
    .await
    .expect("restart");
    let (acknowledged, failures) = client.await.expect("client");
    assert!(
        failures > 0,
        "appends must fail (retryably) while PostgreSQL is down"
    );
    let unique: HashSet<u64> = acknowledged
        .iter()
        .filter(|r| !r.duplicate)
        .map(|r| r.seq)
        .collect();
    let events: HashSet<String> = acknowledged
        .iter()
        .map(|r| r.event_id.to_string())
        .collect();
    assert_eq!(
        events.len(),
        acknowledged.len(),
        "an event was acknowledged twice"
    );
    let size = store.tree_size(&tenant).await.expect("size").get();
    assert_eq!(
        size,
        events.len() as u64,
        "the ledger holds exactly the acknowledged events, no duplicates"
    );
    let printed: Vec<PrintedReceipt> = acknowledged
        .iter()
        .map(|r| PrintedReceipt {
            seq: r.seq,
            event_id: r.event_id.to_string(),
            hash: r.hash.to_hex(),
        })
        .collect();
    assert_all_acknowledged_present(&store, &tenant, &printed).await;
    assert!(unique.len() as u64 <= size);
    store.shutdown().await;
    drop(pg);
}
