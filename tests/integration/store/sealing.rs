//! Sealing at rest: values sealed before sealed values were versioned, and values sealed under
//! the master key before data keys existed, still open; `auditex master-key rotate` re-wraps
//! every data key and re-seals every signing key and such older value under a new master key,
//! online and crash-safe (killed with SIGKILL mid-way, every value still opens and a second run
//! completes), on both backends.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use auditex::store::crypto::{MasterKey, SealContext};
use auditex::store::reseal::ResealOptions;
use auditex::store::{Store, StoreConfig};
use ledger::types::TenantId;
use serde_json::{Value, json};
use sqlx::Connection;

use crate::crash::ProcessEnv;
use crate::support::{Backend, TestDb, backend_tests, new_event_id, seq, tenant_id};

backend_tests!(
    values_sealed_before_versioning_still_open_and_a_rotation_reseals_them_under_the_new_key,
    a_rotation_killed_midway_leaves_every_value_openable_and_a_second_run_completes,
);

/// Appends `count` decisions, each about a subject of its own (so each has a data key of its
/// own) with one erasable `name` field; returns the names and the salts by seq.
async fn append_with_names(
    store: &Store,
    tenant: &TenantId,
    count: usize,
) -> (BTreeMap<u64, Value>, BTreeMap<u64, [u8; 32]>) {
    let mut drafts = Vec::new();
    for n in 0..count {
        let fields = BTreeMap::from([("name".to_owned(), json!(format!("person {n}")))]);
        let mut payload = crate::support::decision_payload("approved");
        payload["subject_ref"] = json!(format!("person-{n}"));
        drafts.push(
            ledger::draft::prepare_client_draft(
                &new_event_id(),
                "decision",
                &payload,
                &fields,
                rand::random,
            )
            .expect("draft"),
        );
    }
    let (mut names, mut salts) = (BTreeMap::new(), BTreeMap::new());
    for chunk in drafts.chunks(500) {
        let receipts = store.append(tenant, chunk.to_vec()).await.expect("append");
        for r in receipts {
            let values = store
                .erasable_values(tenant, seq(r.seq))
                .await
                .expect("open");
            names.insert(r.seq, values[&name_field()].value.clone());
            salts.insert(r.seq, values[&name_field()].salt);
        }
    }
    (names, salts)
}

/// Turns the `name` value of each record in `names` for which `legacy` holds into a row as
/// written before data keys existed: `seal` (under the master key) gives its sealed bytes, the
/// salt is stored beside it, it names no data key, and its record's data key is gone.
async fn make_legacy_rows(
    db: &TestDb,
    tenant: &str,
    names: &BTreeMap<u64, Value>,
    salts: &BTreeMap<u64, [u8; 32]>,
    legacy: impl Fn(u64) -> bool,
    seal: impl Fn(u64, &[u8]) -> Vec<u8>,
) -> usize {
    let mut raw = Raw::connect(db, tenant).await;
    let mut n = 0;
    for (s, name) in names.iter().filter(|(s, _)| legacy(**s)) {
        let plain = serde_json::to_vec(name).expect("json");
        let seq = i64::try_from(*s).expect("seq");
        raw.set_legacy(seq, "name", &salts[s], seal(*s, &plain))
            .await;
        // Each record's subject is its own: its data key was its record's.
        raw.delete_data_key(seq).await;
        n += 1;
    }
    n
}

/// Turns one stored value into a row as written before data keys existed (see
/// [`make_legacy_rows`]); its data key is left alone.
pub(crate) async fn make_legacy_row(
    db: &TestDb,
    tenant: &str,
    seq: u64,
    field: &str,
    salt: &[u8; 32],
    sealed: Vec<u8>,
) {
    let mut raw = Raw::connect(db, tenant).await;
    raw.set_legacy(i64::try_from(seq).expect("seq"), field, salt, sealed)
        .await;
}

fn name_field() -> ledger::record::FieldName {
    ledger::record::FieldName::parse("name").expect("field name")
}

/// Checks that every erasable value opens with `store`'s keys and holds what was appended.
async fn assert_names_open(store: &Store, tenant: &TenantId, names: &BTreeMap<u64, Value>) {
    for (s, name) in names {
        let values = store
            .erasable_values(tenant, seq(*s))
            .await
            .unwrap_or_else(|e| panic!("record {s}'s erasable value does not open: {e}"));
        assert_eq!(&values[&name_field()].value, name, "record {s}");
    }
}

fn config_with(db: &TestDb, current: &MasterKey, previous: &[&MasterKey]) -> StoreConfig {
    let mut config = db.config();
    config.master_key = current.clone();
    config.previous_master_keys = previous.iter().map(|k| (*k).clone()).collect();
    config
}

/// A value in the format written before versioning: nonce, then AES-256-GCM under the raw key.
fn seal_unversioned(key_hex: &str, context: &str, plaintext: &[u8]) -> Vec<u8> {
    let mut key = [0u8; 32];
    hex::decode_to_slice(key_hex, &mut key).expect("hex");
    let nonce: [u8; 12] = rand::random();
    let ct = Aes256Gcm::new((&key).into())
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: context.as_bytes(),
            },
        )
        .expect("encrypt");
    [nonce.as_slice(), &ct].concat()
}

/// A connection to the test database as the schema owner (PostgreSQL, tenant set) or to the
/// SQLite file, for reading and rewriting sealed columns behind the store's back.
enum Raw {
    Pg(sqlx::PgConnection),
    Lite(sqlx::SqliteConnection),
}

impl Raw {
    async fn connect(db: &TestDb, tenant: &str) -> Raw {
        if db.is_postgres() {
            let mut c = sqlx::PgConnection::connect(db.postgres_owner_url())
                .await
                .expect("owner");
            sqlx::query("SELECT set_config('app.tenant_id', $1, false)")
                .bind(tenant)
                .execute(&mut c)
                .await
                .expect("tenant");
            Raw::Pg(c)
        } else {
            let url = format!("sqlite:{}", db.sqlite_path().display());
            Raw::Lite(sqlx::SqliteConnection::connect(&url).await.expect("sqlite"))
        }
    }

    async fn signing_keys(&mut self) -> Vec<(String, Vec<u8>)> {
        let sql = "SELECT key_id, sealed_secret FROM signing_keys ORDER BY from_seq";
        match self {
            Raw::Pg(c) => sqlx::query_as(sql).fetch_all(c).await,
            Raw::Lite(c) => sqlx::query_as(sql).fetch_all(c).await,
        }
        .expect("read keys")
    }

    async fn set_signing_key(&mut self, key_id: &str, blob: Vec<u8>) {
        let n = match self {
            Raw::Pg(c) => {
                sqlx::query("UPDATE signing_keys SET sealed_secret = $1 WHERE key_id = $2")
                    .bind(blob)
                    .bind(key_id)
                    .execute(c)
                    .await
                    .map(|r| r.rows_affected())
            }
            Raw::Lite(c) => {
                sqlx::query("UPDATE signing_keys SET sealed_secret = ? WHERE key_id = ?")
                    .bind(blob)
                    .bind(key_id)
                    .execute(c)
                    .await
                    .map(|r| r.rows_affected())
            }
        };
        assert_eq!(n.expect("rewrite key"), 1);
    }

    async fn set_legacy(&mut self, seq: i64, field: &str, salt: &[u8; 32], blob: Vec<u8>) {
        let sql = "UPDATE erasable_values SET sealed = $1, salt = $2, key_seq = NULL \
                   WHERE seq = $3 AND field = $4";
        let n = match self {
            Raw::Pg(c) => sqlx::query(sql)
                .bind(blob)
                .bind(salt.to_vec())
                .bind(seq)
                .bind(field)
                .execute(c)
                .await
                .map(|r| r.rows_affected()),
            Raw::Lite(c) => sqlx::query(sql)
                .bind(blob)
                .bind(salt.to_vec())
                .bind(seq)
                .bind(field)
                .execute(c)
                .await
                .map(|r| r.rows_affected()),
        };
        assert_eq!(n.expect("rewrite value"), 1);
    }

    async fn delete_data_key(&mut self, key_seq: i64) {
        let sql = "DELETE FROM data_keys WHERE key_seq = $1";
        let n = match self {
            Raw::Pg(c) => sqlx::query(sql)
                .bind(key_seq)
                .execute(c)
                .await
                .map(|r| r.rows_affected()),
            Raw::Lite(c) => sqlx::query(sql)
                .bind(key_seq)
                .execute(c)
                .await
                .map(|r| r.rows_affected()),
        };
        assert_eq!(n.expect("delete key"), 1);
    }
}

async fn values_sealed_before_versioning_still_open_and_a_rotation_reseals_them_under_the_new_key(
    backend: Backend,
) {
    let db = TestDb::new(&backend).await;
    let old = db.master_key.clone();
    let (store, tenant) = db.open_with_tenant("sealing").await;
    let (names, salts) = append_with_names(&store, &tenant, 20).await;
    store.shutdown().await;
    drop(store);

    // Rewrite the signing key, and the values of even records, in the unversioned format of
    // earlier releases (values then sealed under the master key, salt beside, no data key); odd
    // records keep their data keys, wrapped under the old master key.
    let mut raw = Raw::connect(&db, "sealing").await;
    let keys = raw.signing_keys().await;
    assert_eq!(keys.len(), 1);
    for (key_id, blob) in keys {
        let context = SealContext::signing_key(
            &tenant,
            ledger::keys::KeyId::parse(&key_id).expect("key id"),
        );
        let secret = auditex::store::crypto::MasterKeys::from(old.clone())
            .open(&context, &blob)
            .expect("opens");
        let text = format!("auditex/signing-key/sealing/{key_id}");
        raw.set_signing_key(&key_id, seal_unversioned(&old.to_hex(), &text, &secret))
            .await;
    }
    let legacy = make_legacy_rows(
        &db,
        "sealing",
        &names,
        &salts,
        |s| s % 2 == 0,
        |s, plain| {
            let text = format!("auditex/erasable/sealing/{s}/name");
            seal_unversioned(&old.to_hex(), &text, plain)
        },
    )
    .await;
    assert_eq!(legacy, 10);

    // They still open, with their salts, and the tenant still signs.
    let store = Store::open_with_workers(config_with(&db, &old, &[]))
        .await
        .expect("open");
    assert_names_open(&store, &tenant, &names).await;
    for (s, salt) in &salts {
        let values = store.erasable_values(&tenant, seq(*s)).await.expect("open");
        assert_eq!(&values[&name_field()].salt, salt, "record {s}'s salt");
    }
    store
        .append(&tenant, crate::support::decisions(1))
        .await
        .expect("the unversioned signing key signs");
    let census = store.seal_census().await.expect("census");
    assert_eq!(
        census,
        BTreeMap::from([("unversioned".to_owned(), 11), (old.id().to_string(), 10)]),
        "the signing key and 10 values unversioned, 10 data keys under the old key"
    );
    store.shutdown().await;
    drop(store);

    // A new key alone opens none of them, and says which setting is missing.
    let new = MasterKey::generate();
    let store = Store::open_with_workers(config_with(&db, &new, &[]))
        .await
        .expect("open");
    assert!(store.erasable_values(&tenant, seq(0)).await.is_err());
    assert!(store.erasable_values(&tenant, seq(1)).await.is_err());
    store.shutdown().await;
    drop(store);

    // Rotation under the new key, with the old one as previous.
    let store = Store::open_with_workers(config_with(&db, &new, &[&old]))
        .await
        .expect("open");
    let mut calls = 0;
    let report = store
        .reseal_all(
            ResealOptions {
                batch_size: 7,
                rows_per_second: None,
            },
            &mut |_| calls += 1,
        )
        .await
        .expect("rotation");
    assert_eq!(report.signing_keys_resealed, 1);
    assert_eq!(
        report.erasable_values_resealed, 10,
        "the values without data key"
    );
    assert_eq!(
        report.data_keys_rewrapped, 10,
        "one data key per odd record"
    );
    assert_eq!(report.already_current, 0);
    assert_eq!(report.changed_meanwhile, 0);
    assert_eq!(report.master_key_id, new.id().to_string());
    assert!(calls >= 5, "progress after each batch of 7: {calls} calls");
    let census = store.seal_census().await.expect("census");
    assert_eq!(
        census,
        BTreeMap::from([(new.id().to_string(), 21)]),
        "everything under the new key"
    );
    // A second run has nothing to do.
    let again = store
        .reseal_all(ResealOptions::default(), &mut |_| {})
        .await
        .expect("second run");
    assert_eq!(again.already_current, 21);
    assert_eq!(
        again.signing_keys_resealed + again.erasable_values_resealed + again.data_keys_rewrapped,
        0
    );
    store.shutdown().await;
    drop(store);

    // The new key alone opens everything and signs; the old key alone names the key it lacks,
    // for a value without data key and for one under a re-wrapped data key.
    let store = Store::open_with_workers(config_with(&db, &new, &[]))
        .await
        .expect("open");
    assert_names_open(&store, &tenant, &names).await;
    store
        .append(&tenant, crate::support::decisions(1))
        .await
        .expect("the re-sealed signing key signs");
    store.shutdown().await;
    drop(store);
    let store = Store::open_with_workers(config_with(&db, &old, &[]))
        .await
        .expect("open");
    for s in [0, 1] {
        let err = store
            .erasable_values(&tenant, seq(s))
            .await
            .expect_err("the old key alone cannot open");
        assert!(
            err.to_string().contains(&new.id().to_string()),
            "{s}: {err}"
        );
    }
    store.shutdown().await;
}

fn write_private(path: &std::path::Path, text: &str) {
    std::fs::write(path, text).expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
}

async fn a_rotation_killed_midway_leaves_every_value_openable_and_a_second_run_completes(
    backend: Backend,
) {
    let db = TestDb::new(&backend).await;
    let env = ProcessEnv::new(&db);
    let old = MasterKey::from_hex(env.key_hex(), "test").expect("key");
    let tenant = tenant_id("rotating");
    let store = Store::open_with_workers(env.store_config(&db))
        .await
        .expect("open");
    store.create_tenant(&tenant).await.expect("tenant");
    let (names, salts) = append_with_names(&store, &tenant, 600).await;
    store.shutdown().await;
    drop(store);
    // One record in six as written before data keys existed (sealed under the master key): 500
    // data keys, 100 such values and the signing key to re-seal.
    let master = auditex::store::crypto::MasterKeys::from(old.clone());
    let legacy = make_legacy_rows(
        &db,
        "rotating",
        &names,
        &salts,
        |s| s % 6 == 0,
        |s, plain| {
            master
                .seal(&SealContext::erasable(&tenant, s, "name"), plain)
                .expect("seal")
        },
    )
    .await;
    assert_eq!(legacy, 100);

    let new_file = env.dir().join("new.key");
    let out = env
        .command(&["master-key", "generate", "--out"])
        .arg(&new_file)
        .output()
        .expect("generate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new = MasterKey::load_file(&new_file).expect("new key");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        new.id().to_string()
    );
    let previous_file = env.dir().join("previous.keys");
    write_private(&previous_file, &format!("{}\n", env.key_hex()));

    let rotate = |extra: &[&str]| {
        let mut args = vec!["master-key", "rotate"];
        args.extend_from_slice(extra);
        let mut cmd = env.command(&args);
        cmd.env("AUDITEX_MASTER_KEY_FILE", &new_file)
            .env("AUDITEX_PREVIOUS_MASTER_KEYS_FILE", &previous_file);
        cmd
    };
    // Throttled so that it is surely mid-way when killed: 601 values at 200 per second.
    let mut child = rotate(&["--batch-size", "10", "--rows-per-second", "200"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rotate");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = 0u64;
    while seen < 50 && Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(rest) = line.strip_prefix("re-sealed ") {
            seen = rest
                .split(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        }
    }
    assert!(seen >= 50, "the rotation reported no progress");
    child.kill().expect("SIGKILL");
    let _ = child.wait();

    // Mid-way: some values under each key, and with both keys configured every one opens.
    let store = Store::open_with_workers(config_with(&db, &new, &[&old]))
        .await
        .expect("open");
    let census = store.seal_census().await.expect("census");
    let under_new = census.get(&new.id().to_string()).copied().unwrap_or(0);
    let under_old = census.get(&old.id().to_string()).copied().unwrap_or(0);
    assert_eq!(under_new + under_old, 601, "{census:?}");
    assert!(
        under_new >= 50 && under_old > 0,
        "killed mid-way: {census:?}"
    );
    assert_names_open(&store, &tenant, &names).await;
    store.shutdown().await;
    drop(store);

    // A second run completes, and the new key alone opens everything.
    let out = rotate(&[]).output().expect("rotate again");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let resealed = report["erasable_values_resealed"].as_u64().expect("count")
        + report["data_keys_rewrapped"].as_u64().expect("count");
    assert_eq!(resealed, under_old, "{report}");
    assert_eq!(report["already_current"], json!(under_new));
    let status = env
        .command(&["master-key", "status"])
        .env("AUDITEX_MASTER_KEY_FILE", &new_file)
        .output()
        .expect("status");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let store = Store::open_with_workers(config_with(&db, &new, &[]))
        .await
        .expect("open");
    assert_names_open(&store, &tenant, &names).await;
    store
        .append(&tenant, crate::support::decisions(1))
        .await
        .expect("signs under the new key");
    store.shutdown().await;
}
