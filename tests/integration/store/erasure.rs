//! Erasure that erases, attacked from outside (issue 20): after `Store::erase_subject` the
//! subject's plaintext, salts, sealed values and data keys are nowhere in the SQLite file or its
//! WAL, nor in a `pg_dump`; the plaintext never reaches either database unencrypted even before;
//! a backup restored (SQLite, `auditex restore`) or an older PostgreSQL state brought back (a
//! point-in-time recovery, simulated with a dump) does not bring the values back; an unreadable
//! journal holds only its tenant; concurrent erasures and erasures racing appends leave exactly
//! what came before the erasure erased; a value sealed before data keys existed is erased too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use auditex::store::crypto::{MasterKeys, SealContext};
use auditex::store::subjects::{ErasureError, SubjectErasure};
use auditex::store::{AppendError, Store, StoreConfig, StoreError};
use ledger::draft::{ClientDraft, prepare_client_draft};
use ledger::record::{EventType, FieldName};
use ledger::types::TenantId;
use serde_json::{Value, json};
use sqlx::Connection;

use crate::support::{
    Backend, TestDb, backend_tests, decision_payload, new_event_id, postgres_tests, seq,
};

backend_tests!(
    an_unreadable_erasure_journal_holds_its_tenant_and_no_other,
    two_concurrent_erasures_of_one_subject_append_one_erasure_record_and_both_succeed,
    an_erasure_racing_appends_erases_exactly_the_values_before_it,
    a_value_sealed_before_data_keys_existed_is_erased_with_its_subject,
    a_service_killed_during_erasures_keeps_each_one_whole_or_not_at_all,
    an_erasure_committed_but_not_journaled_holds_the_tenant_until_a_restart_journals_it,
    a_subjects_data_key_lives_until_its_last_value_is_erased_field_by_field,
    a_subjects_values_in_every_bucket_of_the_subject_index_are_found_and_erased,
    an_erasure_naming_another_subjects_record_erases_nothing_of_it,
    a_value_appended_after_its_subjects_key_went_field_by_field_gets_a_new_key,
    a_key_made_for_a_group_that_rolled_back_is_never_used,
    a_group_waiting_behind_a_write_that_fails_lands_on_the_stored_head_under_a_stored_key,
    a_follow_up_of_a_decision_being_written_is_sealed_under_its_subjects_key,
);

postgres_tests!(
    the_plaintext_never_reaches_postgresql_and_after_erasure_a_dump_holds_neither_key_nor_ciphertext,
    a_postgresql_state_from_before_an_erasure_brought_back_is_erased_again_on_open,
    an_erasure_whose_commit_fails_erases_nothing_then_or_after_a_restart,
    a_key_another_instance_destroyed_is_not_used_from_this_instances_cache,
);

/// Plaintext of the subject that is erased; every value carries it, so one search finds any.
const ERASED_TEXT: &str = "Zyxw-Plaintext-4711";
/// Plaintext of a subject that stays.
const KEPT_TEXT: &str = "Keep-Plaintext-0815";
const ERASED_SUBJECT: &str = "subj-erased-4711";
const KEPT_SUBJECT: &str = "subj-kept-0815";

/// A decision about `subject` with the given erasable fields.
fn subject_draft(subject: &str, erasable: &[(&str, Value)]) -> ClientDraft {
    let mut payload = decision_payload("approved");
    payload["subject_ref"] = json!(subject);
    let fields: BTreeMap<String, Value> = erasable
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    prepare_client_draft(&new_event_id(), "decision", &payload, &fields, rand::random)
        .unwrap_or_else(|errors| panic!("the test draft is valid: {errors:?}"))
}

/// Two erasable fields of record `n` of a subject whose values all start with `text`.
fn person(text: &str, n: usize) -> Vec<(&'static str, Value)> {
    vec![
        ("name", json!(format!("{text}-name-{n}"))),
        ("iban", json!(format!("{text}-iban-{n}"))),
    ]
}

fn field(name: &str) -> FieldName {
    FieldName::parse(name).expect("field name")
}

/// The names of the fields of record `s` whose values are stored, in order.
async fn stored_fields(store: &Store, tenant: &TenantId, s: u64) -> Vec<String> {
    store
        .erasable_values(tenant, seq(s))
        .await
        .expect("read")
        .keys()
        .map(|f| f.as_str().to_owned())
        .collect()
}

/// The erased fields of record `s`, each with the sequence number of the erasure that erased it.
async fn erased_fields(store: &Store, tenant: &TenantId, s: u64) -> BTreeMap<FieldName, u64> {
    store.erased_fields(tenant, seq(s)).await.expect("erased")
}

fn whole_subject(subject: &str) -> SubjectErasure {
    SubjectErasure {
        subject_ref: subject.to_owned(),
        event_ids: None,
        fields: None,
        reason: "the person asked".to_owned(),
        legal_basis: "GDPR Art. 17(1)(a)".to_owned(),
    }
}

/// Appends one record of the erased subject (its values numbered `n`); its seq.
async fn append_erased_subject(store: &Store, tenant: &TenantId, n: usize) -> u64 {
    store
        .append(
            tenant,
            vec![subject_draft(ERASED_SUBJECT, &person(ERASED_TEXT, n))],
        )
        .await
        .expect("append")[0]
        .seq
}

/// A store configuration with an erasure journal (a checkpoint folder), as `auditex serve` has.
fn journaled_config(db: &TestDb, dir: &Path) -> StoreConfig {
    std::fs::create_dir_all(dir).expect("checkpoint folder");
    let mut config = db.config();
    config.checkpoint_dir = Some(dir.to_path_buf());
    config
}

/// Appends `rounds` groups, each with one record of the erased and one of the kept subject, and
/// returns their seqs: (erased subject's, kept subject's).
async fn append_both_subjects(
    store: &Store,
    tenant: &TenantId,
    rounds: usize,
) -> (Vec<u64>, Vec<u64>) {
    let (mut erased, mut kept) = (Vec::new(), Vec::new());
    for n in 0..rounds {
        let receipts = store
            .append(
                tenant,
                vec![
                    subject_draft(ERASED_SUBJECT, &person(ERASED_TEXT, n)),
                    subject_draft(KEPT_SUBJECT, &person(KEPT_TEXT, n)),
                ],
            )
            .await
            .expect("append");
        erased.push(receipts[0].seq);
        kept.push(receipts[1].seq);
    }
    (erased, kept)
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The rows behind a subject's values, read behind the store's back: salts (through the store,
/// which opens them), sealed bytes, wrapped data keys and the raw keys unwrapped.
#[derive(Default)]
struct Secrets {
    salts: Vec<[u8; 32]>,
    sealed: Vec<Vec<u8>>,
    wrapped: Vec<Vec<u8>>,
    raw_keys: Vec<[u8; 32]>,
}

/// The raw database rows of one subject: `(sealed values, (key_seq, wrapped) of its keys)`.
async fn subject_rows(
    db: &TestDb,
    tenant: &str,
    subject: &str,
) -> (Vec<Vec<u8>>, Vec<(i64, Vec<u8>)>) {
    let values = "SELECT sealed FROM erasable_values WHERE subject_ref = $1 ORDER BY seq, field";
    let keys = "SELECT key_seq, wrapped FROM data_keys WHERE subject_ref = $1 ORDER BY key_seq";
    if db.is_postgres() {
        let mut c = owner_connection(db, tenant).await;
        let sealed: Vec<(Vec<u8>,)> = sqlx::query_as(values)
            .bind(subject)
            .fetch_all(&mut c)
            .await
            .expect("values");
        let wrapped = sqlx::query_as(keys)
            .bind(subject)
            .fetch_all(&mut c)
            .await
            .expect("keys");
        (sealed.into_iter().map(|r| r.0).collect(), wrapped)
    } else {
        let mut c =
            sqlx::SqliteConnection::connect(&format!("sqlite:{}", db.sqlite_path().display()))
                .await
                .expect("sqlite");
        let sealed: Vec<(Vec<u8>,)> = sqlx::query_as(values)
            .bind(subject)
            .fetch_all(&mut c)
            .await
            .expect("values");
        let wrapped = sqlx::query_as(keys)
            .bind(subject)
            .fetch_all(&mut c)
            .await
            .expect("keys");
        c.close().await.expect("close");
        (sealed.into_iter().map(|r| r.0).collect(), wrapped)
    }
}

/// Everything secret about `subject` while its values are stored.
async fn secrets_of(
    store: &Store,
    db: &TestDb,
    tenant: &TenantId,
    seqs: &[u64],
    subject: &str,
) -> Secrets {
    let mut secrets = Secrets::default();
    for s in seqs {
        for value in store
            .erasable_values(tenant, seq(*s))
            .await
            .expect("open")
            .values()
        {
            secrets.salts.push(value.salt);
        }
    }
    let (sealed, keys) = subject_rows(db, tenant.as_str(), subject).await;
    secrets.sealed = sealed;
    let master = MasterKeys::from(db.master_key.clone());
    for (key_seq, wrapped) in keys {
        let raw = auditex::store::unwrap_data_key_for_tools(
            &master,
            tenant,
            u64::try_from(key_seq).expect("key seq"),
            &wrapped,
        )
        .expect("the data key unwraps");
        secrets.raw_keys.push(*raw);
        secrets.wrapped.push(wrapped);
    }
    assert_eq!(secrets.salts.len(), seqs.len() * 2, "two values per record");
    assert_eq!(secrets.sealed.len(), seqs.len() * 2);
    assert_eq!(secrets.wrapped.len(), 1, "one data key per subject");
    secrets
}

/// The SQLite file and its WAL, and the views' file beside it and its WAL, each after a
/// `wal_checkpoint(TRUNCATE)` on a connection of its own (the store is closed): every byte on
/// disk that belongs to the database.
async fn sqlite_bytes(path: &Path) -> Vec<u8> {
    let views = PathBuf::from(format!("{}-views", path.display()));
    let mut bytes = Vec::new();
    for file in [path, views.as_path()] {
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite:{}", file.display()))
            .await
            .expect("sqlite");
        let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&mut c)
            .await
            .expect("checkpoint");
        assert_eq!(busy, 0, "the checkpoint ran to completion");
        bytes.extend(std::fs::read(file).expect("read the database file"));
        let wal = PathBuf::from(format!("{}-wal", file.display()));
        if let Ok(more) = std::fs::read(&wal) {
            bytes.extend(more);
        }
        c.close().await.expect("close");
    }
    bytes
}

/// The ledger's SQLite file and its WAL as they are on disk now, with no checkpoint of the
/// test's own (the store may be running).
fn raw_sqlite_bytes(path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).expect("read the database file");
    if let Ok(more) = std::fs::read(format!("{}-wal", path.display())) {
        bytes.extend(more);
    }
    bytes
}

/// SQLite: once an erasure is acknowledged, and with the store still running, neither the
/// database file nor its WAL holds the erased subject's ciphertext or wrapped data key: the
/// store truncates the log itself, with no checkpoint of anyone else's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_erasure_leaves_no_old_page_of_the_subject_in_the_sqlite_wal() {
    let db = TestDb::new(&Backend::Sqlite).await;
    let work = tempfile::tempdir().expect("tempdir");
    let config = journaled_config(&db, &work.path().join("checkpoints"));
    let store = Store::open_with_workers(config).await.expect("open");
    let tenant = crate::support::tenant_id("wal-shred");
    store.create_tenant(&tenant).await.expect("tenant");
    let (erased, _) = append_both_subjects(&store, &tenant, 40).await;
    let gone = secrets_of(&store, &db, &tenant, &erased, ERASED_SUBJECT).await;
    let before = raw_sqlite_bytes(db.sqlite_path());
    assert!(
        gone.sealed.iter().all(|v| contains(&before, v)),
        "the sealed values are on disk before the erasure (the search works)"
    );
    assert!(gone.wrapped.iter().all(|w| contains(&before, w)));

    let outcome = store
        .erase_subject(&tenant, whole_subject(ERASED_SUBJECT))
        .await
        .expect("erase");
    assert_eq!(outcome.erased, 80);
    let after = raw_sqlite_bytes(db.sqlite_path());
    assert!(
        gone.sealed.iter().all(|v| !contains(&after, v)),
        "an erased value's ciphertext is still in the file or its WAL"
    );
    assert!(
        gone.wrapped.iter().all(|w| !contains(&after, w)),
        "the destroyed data key is still in the file or its WAL"
    );

    // Appends after the erasure fill the log again, with pages that no longer hold the values.
    let more = (0..5)
        .map(|n| subject_draft(KEPT_SUBJECT, &person(KEPT_TEXT, 100 + n)))
        .collect();
    store.append(&tenant, more).await.expect("append");
    store.shutdown().await;
    let stopped = raw_sqlite_bytes(db.sqlite_path());
    assert!(
        gone.sealed
            .iter()
            .chain(&gone.wrapped)
            .all(|v| !contains(&stopped, v)),
        "the erased subject's ciphertext or key is on disk after the shutdown"
    );
}

/// A connection of another process's kind to the SQLite database in a read transaction: it reads
/// its snapshot from the log until [`release`], which keeps the log from being truncated.
async fn hold_a_snapshot(db: &TestDb) -> sqlx::SqliteConnection {
    let mut reader =
        sqlx::SqliteConnection::connect(&format!("sqlite:{}", db.sqlite_path().display()))
            .await
            .expect("reader");
    sqlx::query("BEGIN")
        .execute(&mut reader)
        .await
        .expect("begin");
    let _: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM records")
        .fetch_one(&mut reader)
        .await
        .expect("read");
    reader
}

/// Ends the read transaction of [`hold_a_snapshot`] and closes its connection.
async fn release(mut reader: sqlx::SqliteConnection) {
    sqlx::query("ROLLBACK")
        .execute(&mut reader)
        .await
        .expect("end");
    reader.close().await.expect("close");
}

/// SQLite: when a reader of an older snapshot keeps the log from being truncated right after an
/// erasure, the log is marked as still holding erased pages, and a shutdown soon after the
/// reader has gone truncates it: the erased subject's ciphertext and key are not left on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_a_reader_kept_from_truncation_is_truncated_at_shutdown() {
    let db = TestDb::new(&Backend::Sqlite).await;
    let work = tempfile::tempdir().expect("tempdir");
    let config = journaled_config(&db, &work.path().join("checkpoints"));
    let store = Store::open_with_workers(config).await.expect("open");
    let tenant = crate::support::tenant_id("wal-busy");
    store.create_tenant(&tenant).await.expect("tenant");
    let (erased, _) = append_both_subjects(&store, &tenant, 10).await;
    let gone = secrets_of(&store, &db, &tenant, &erased, ERASED_SUBJECT).await;

    // A read transaction begun now reads its snapshot from the log until it ends.
    let reader = hold_a_snapshot(&db).await;
    let outcome = store
        .erase_subject(&tenant, whole_subject(ERASED_SUBJECT))
        .await
        .expect("erase");
    assert_eq!(outcome.erased, 20);
    release(reader).await;
    store.shutdown().await;
    let stopped = raw_sqlite_bytes(db.sqlite_path());
    assert!(
        gone.sealed
            .iter()
            .chain(&gone.wrapped)
            .all(|v| !contains(&stopped, v)),
        "the erased subject's ciphertext or key is on disk after the shutdown"
    );
}

/// SQLite: a process killed after an erasure committed, while a reader kept the log from being
/// truncated, leaves the erased values' old pages in the `-wal` file. The files as the kill left
/// them (copied while the store still runs, the reader still holding the log) hold them; the
/// next store to open them truncates the log before it serves anything, because the erasure
/// marked the log (`<database>.erased-log`) before it committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_left_holding_erased_pages_by_a_killed_process_is_truncated_at_the_next_open() {
    let db = TestDb::new(&Backend::Sqlite).await;
    let work = tempfile::tempdir().expect("tempdir");
    let config = journaled_config(&db, &work.path().join("checkpoints"));
    let store = Store::open_with_workers(config.clone())
        .await
        .expect("open");
    let tenant = crate::support::tenant_id("wal-killed");
    store.create_tenant(&tenant).await.expect("tenant");
    let (erased, _) = append_both_subjects(&store, &tenant, 10).await;
    let gone = secrets_of(&store, &db, &tenant, &erased, ERASED_SUBJECT).await;
    let reader = hold_a_snapshot(&db).await;
    store
        .erase_subject(&tenant, whole_subject(ERASED_SUBJECT))
        .await
        .expect("erase");

    // What a SIGKILL now would leave: the database file, its log and the mark.
    let crashed = work.path().join("crashed");
    std::fs::create_dir(&crashed).expect("mkdir");
    let copy = crashed.join("ledger.db");
    let mark = |db: &Path| PathBuf::from(format!("{}.erased-log", db.display()));
    for (from, to) in [
        (db.sqlite_path().to_path_buf(), copy.clone()),
        (
            PathBuf::from(format!("{}-wal", db.sqlite_path().display())),
            PathBuf::from(format!("{}-wal", copy.display())),
        ),
        (mark(db.sqlite_path()), mark(&copy)),
    ] {
        if from.exists() {
            std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
        }
    }
    assert!(mark(&copy).exists(), "the erasure marked the log");
    let left = raw_sqlite_bytes(&copy);
    assert!(
        gone.sealed.iter().any(|v| contains(&left, v)),
        "the killed process's log holds erased ciphertext (the test sees what it looks for)"
    );
    release(reader).await;
    store.shutdown().await;
    drop(store);
    assert!(
        !mark(db.sqlite_path()).exists(),
        "a clean shutdown clears the mark"
    );

    let mut config = config;
    config.database = auditex::store::DatabaseUrl::Sqlite(copy.clone());
    let store = Store::open(config)
        .await
        .expect("open the files the kill left");
    let opened = raw_sqlite_bytes(&copy);
    assert!(
        gone.sealed
            .iter()
            .chain(&gone.wrapped)
            .all(|v| !contains(&opened, v)),
        "the erased subject's ciphertext or key is on disk after the next open"
    );
    store.shutdown().await;
    assert!(
        !mark(&copy).exists(),
        "the mark is cleared once the log is truncated"
    );
}

/// SQLite, with the real binary: a backup older than an erasure is restored and the rollback
/// acknowledged. The values erased again wait, withheld, until the acknowledgement; then an
/// erasure record of the restored chain restates the lost one, the values are marked as erased
/// by it, and every erased decision's bundle verifies, the restatement proving each mark.
/// Before, the marks named the lost erasure's number, which the restored chain gave to the
/// acknowledgement and later records, and the bundles failed verification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restore_and_its_acknowledgement_bundles_of_erased_decisions_verify() {
    let (_db, env, config, tenant, store) = journaled_sqlite("restated").await;
    let (erased, kept) = append_both_subjects(&store, &tenant, 3).await;
    store.publish_checkpoints().await.expect("checkpoint");
    let backup = env.dir().join("before-erasure.db");
    store.backup(&backup).await.expect("backup");
    append_both_subjects(&store, &tenant, 3).await;
    let lost =
        erase_then_restore(store, &env, &tenant, &backup, whole_subject(ERASED_SUBJECT)).await;

    let store = Store::open_with_workers(config.clone())
        .await
        .expect("open");
    assert!(
        store.rollback_status().held().contains_key(&tenant),
        "the restore is held as a rollback"
    );
    for s in &erased {
        assert!(stored_fields(&store, &tenant, *s).await.is_empty());
        assert!(
            erased_fields(&store, &tenant, *s).await.is_empty(),
            "record {s}: no mark before the chain holds an erasure"
        );
    }
    let ack = store
        .acknowledge_rollback(&tenant, "operator", "restored a backup")
        .await
        .expect("acknowledge");
    let restated = restatement_of(&store, &tenant, lost, ERASED_SUBJECT).await;
    assert_eq!(
        restated,
        ack.seq + 1,
        "restated right after the acknowledgement"
    );
    assert!(
        restated < lost,
        "{restated} is a number of the restored chain"
    );
    assert_erased_again(&store, &tenant, &erased, &kept, restated).await;

    store.publish_checkpoints().await.expect("checkpoint");
    let origin = store.origin(&tenant).await.expect("origin");
    let keys: Vec<ledger::note::VerifierKey> = store
        .key_history(&tenant)
        .await
        .expect("keys")
        .intervals()
        .iter()
        .map(|k| ledger::note::VerifierKey::new(&origin, k.public_key).expect("key"))
        .collect();
    for s in &erased {
        let record = store
            .record(&tenant, seq(*s))
            .await
            .expect("read")
            .expect("record");
        let bundle = store
            .custody_bundle(&tenant, record.event_id)
            .await
            .expect("bundle");
        assert!(
            bundle
                .entries
                .iter()
                .any(|e| e.record.seq.get() == restated),
            "the bundle holds the restatement"
        );
        ledger::bundle::verify_bundle(&bundle, &keys)
            .unwrap_or_else(|e| panic!("record {s}'s bundle: {e}"));
    }
    let size = store.tree_size(&tenant).await.expect("size");
    store.shutdown().await;
    drop(store);
    let store = Store::open_with_workers(config).await.expect("reopen");
    store.restate_reerased_all().await;
    assert_eq!(
        store.tree_size(&tenant).await.expect("size"),
        size,
        "nothing is restated twice"
    );
    store.shutdown().await;
}

/// Every file in `dir` (the checkpoint folder: journal, checkpoints), concatenated.
fn folder_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("list") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            out.extend(std::fs::read(&path).expect("read"));
        }
    }
    out
}

/// SQLite: before erasure the plaintext and salts are nowhere on disk (while the sealed values and
/// wrapped key are: the search finds what is there); after `erase_subject` and a checkpoint, the
/// file and the WAL hold neither the plaintext, the salts, the sealed values, the wrapped data
/// key nor the raw data key; the other subject's values still open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_subjects_plaintext_salts_ciphertext_and_keys_are_nowhere_in_the_sqlite_file_or_wal()
 {
    let db = TestDb::new(&Backend::Sqlite).await;
    let work = tempfile::tempdir().expect("tempdir");
    let journal_dir = work.path().join("checkpoints");
    let config = journaled_config(&db, &journal_dir);
    let store = Store::open_with_workers(config.clone())
        .await
        .expect("open");
    let tenant = crate::support::tenant_id("shred");
    store.create_tenant(&tenant).await.expect("tenant");
    let (erased, kept) = append_both_subjects(&store, &tenant, 40).await;
    let gone = secrets_of(&store, &db, &tenant, &erased, ERASED_SUBJECT).await;
    let stays = secrets_of(&store, &db, &tenant, &kept, KEPT_SUBJECT).await;
    store.shutdown().await;
    drop(store);

    // Before erasure: no plaintext, no salt, no raw key on disk; the sealed bytes and the
    // wrapped keys are (so the search itself works).
    let disk = sqlite_bytes(db.sqlite_path()).await;
    for text in [ERASED_TEXT, KEPT_TEXT] {
        assert!(
            !contains(&disk, text.as_bytes()),
            "{text} is on disk unencrypted"
        );
    }
    for s in [&gone, &stays] {
        assert!(
            s.salts.iter().all(|salt| !contains(&disk, salt)),
            "a salt is on disk"
        );
        assert!(
            s.raw_keys.iter().all(|k| !contains(&disk, k)),
            "a raw data key is on disk"
        );
        assert!(
            s.wrapped.iter().all(|w| contains(&disk, w)),
            "the wrapped key is stored"
        );
        assert!(
            s.sealed.iter().all(|v| contains(&disk, v)),
            "the sealed values are stored"
        );
    }

    let store = Store::open_with_workers(config.clone())
        .await
        .expect("reopen");
    let outcome = store
        .erase_subject(&tenant, whole_subject(ERASED_SUBJECT))
        .await
        .expect("erase");
    assert_eq!(outcome.erased, 80, "two values in each of 40 records");
    assert!(!outcome.receipt.duplicate);
    let erasure_seq = outcome.receipt.seq;
    for s in &erased {
        assert!(
            store
                .erasable_values(&tenant, seq(*s))
                .await
                .expect("read")
                .is_empty()
        );
        assert_eq!(
            store.erased_fields(&tenant, seq(*s)).await.expect("erased"),
            BTreeMap::from([(field("iban"), erasure_seq), (field("name"), erasure_seq)])
        );
    }
    store.shutdown().await;
    drop(store);

    let disk = sqlite_bytes(db.sqlite_path()).await;
    let files = folder_bytes(&journal_dir);
    assert!(!contains(&disk, ERASED_TEXT.as_bytes()) && !contains(&files, ERASED_TEXT.as_bytes()));
    for (what, list) in [
        (
            "salt",
            gone.salts.iter().map(|s| s.to_vec()).collect::<Vec<_>>(),
        ),
        ("sealed value", gone.sealed.clone()),
        ("wrapped data key", gone.wrapped.clone()),
        (
            "raw data key",
            gone.raw_keys.iter().map(|k| k.to_vec()).collect(),
        ),
    ] {
        for bytes in &list {
            assert!(
                !contains(&disk, bytes),
                "an erased {what} is still in the database file or WAL"
            );
            assert!(
                !contains(&files, bytes),
                "an erased {what} is in the checkpoint folder"
            );
        }
    }
    // The other subject is untouched: stored and readable.
    assert!(stays.wrapped.iter().all(|w| contains(&disk, w)));
    assert!(stays.sealed.iter().all(|v| contains(&disk, v)));
    let store = Store::open_with_workers(config).await.expect("reopen");
    for (n, s) in kept.iter().enumerate() {
        let values = store.erasable_values(&tenant, seq(*s)).await.expect("read");
        assert_eq!(
            values[&field("name")].value,
            json!(format!("{KEPT_TEXT}-name-{n}"))
        );
        assert_eq!(
            values[&field("iban")].value,
            json!(format!("{KEPT_TEXT}-iban-{n}"))
        );
    }
    store.shutdown().await;
}

/// The test database's owner, with the tenant set (the tables force row-level security).
async fn owner_connection(db: &TestDb, tenant: &str) -> sqlx::PgConnection {
    let mut c = sqlx::PgConnection::connect(db.postgres_owner_url())
        .await
        .expect("owner");
    sqlx::query("SELECT set_config('app.tenant_id', $1, false)")
        .bind(tenant)
        .execute(&mut c)
        .await
        .expect("tenant");
    c
}

/// `pg_dump` of the test database as its owner, seeing `tenant`'s rows (plain SQL: `bytea` is
/// written as hex).
fn pg_dump(db: &TestDb, tenant: &str, extra: &[&str]) -> Vec<u8> {
    let out = Command::new("pg_dump")
        .arg("--enable-row-security")
        .args(extra)
        .arg(format!("--dbname={}", db.postgres_owner_url()))
        .env("PGOPTIONS", format!("-c app.tenant_id={tenant}"))
        .output()
        .expect("pg_dump runs (it is installed with the server)");
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// PostgreSQL: after appends a `pg_dump` holds neither the plaintext nor a salt nor a raw data
/// key (it holds the sealed values and wrapped key: the search works); after the erasure it
/// holds neither the erased values' ciphertext nor their wrapped key, and the other subject's
/// are still there and open. (The table files themselves are not scanned: reading them needs
/// the server's file owner, and `CHECKPOINT` a superuser; the test roles are neither.)
async fn the_plaintext_never_reaches_postgresql_and_after_erasure_a_dump_holds_neither_key_nor_ciphertext(
    backend: Backend,
) {
    let db = TestDb::new(&backend).await;
    let work = tempfile::tempdir().expect("tempdir");
    let config = journaled_config(&db, &work.path().join("checkpoints"));
    let store = Store::open_with_workers(config).await.expect("open");
    let tenant = crate::support::tenant_id("shredpg");
    store.create_tenant(&tenant).await.expect("tenant");
    let (erased, kept) = append_both_subjects(&store, &tenant, 40).await;
    let gone = secrets_of(&store, &db, &tenant, &erased, ERASED_SUBJECT).await;
    let stays = secrets_of(&store, &db, &tenant, &kept, KEPT_SUBJECT).await;
    let hex_of = |b: &[u8]| hex::encode(b).into_bytes();

    let dump = pg_dump(&db, tenant.as_str(), &[]);
    for text in [ERASED_TEXT, KEPT_TEXT] {
        assert!(
            !contains(&dump, text.as_bytes()),
            "{text} reached the database unencrypted"
        );
    }
    for s in [&gone, &stays] {
        assert!(
            s.salts.iter().all(|x| !contains(&dump, &hex_of(x))),
            "a salt is stored in the clear"
        );
        assert!(
            s.raw_keys.iter().all(|k| !contains(&dump, &hex_of(k))),
            "a raw data key is stored"
        );
        assert!(
            s.wrapped.iter().all(|w| contains(&dump, &hex_of(w))),
            "the dump holds the wrapped key"
        );
        assert!(
            s.sealed.iter().all(|v| contains(&dump, &hex_of(v))),
            "the dump holds the sealed values"
        );
    }

    let outcome = store
        .erase_subject(&tenant, whole_subject(ERASED_SUBJECT))
        .await
        .expect("erase");
    assert_eq!(outcome.erased, 80);
    let dump = pg_dump(&db, tenant.as_str(), &[]);
    assert!(!contains(&dump, ERASED_TEXT.as_bytes()));
    for (what, list) in [
        (
            "salt",
            gone.salts.iter().map(|s| s.to_vec()).collect::<Vec<_>>(),
        ),
        ("sealed value", gone.sealed.clone()),
        ("wrapped data key", gone.wrapped.clone()),
        (
            "raw data key",
            gone.raw_keys.iter().map(|k| k.to_vec()).collect(),
        ),
    ] {
        for bytes in &list {
            assert!(
                !contains(&dump, &hex_of(bytes)),
                "an erased {what} is still in the dump"
            );
        }
    }
    assert!(stays.wrapped.iter().all(|w| contains(&dump, &hex_of(w))));
    assert!(stays.sealed.iter().all(|v| contains(&dump, &hex_of(v))));
    for (n, s) in kept.iter().enumerate() {
        let values = store.erasable_values(&tenant, seq(*s)).await.expect("read");
        assert_eq!(
            values[&field("name")].value,
            json!(format!("{KEPT_TEXT}-name-{n}"))
        );
    }
    store.shutdown().await;
}

/// Whether the in-process log has a line naming `tenant` that contains `text`.
fn logged(tenant: &TenantId, text: &str) -> bool {
    let log = std::fs::read_to_string(crate::secret_scan::in_process_log()).unwrap_or_default();
    log.lines()
        .any(|l| l.contains(text) && l.contains(&format!("tenant={tenant}")))
}

/// Checks that the erased subject's values are gone, each naming `erasure_seq`, and the kept
/// subject's still open.
async fn assert_erased_again(
    store: &Store,
    tenant: &TenantId,
    erased: &[u64],
    kept: &[u64],
    erasure_seq: u64,
) {
    for s in erased {
        assert!(
            store
                .erasable_values(tenant, seq(*s))
                .await
                .expect("read")
                .is_empty(),
            "record {s}'s values came back"
        );
        assert_eq!(
            store.erased_fields(tenant, seq(*s)).await.expect("erased"),
            BTreeMap::from([(field("iban"), erasure_seq), (field("name"), erasure_seq)]),
            "record {s}"
        );
    }
    for (n, s) in kept.iter().enumerate() {
        let values = store.erasable_values(tenant, seq(*s)).await.expect("read");
        assert_eq!(
            values[&field("name")].value,
            json!(format!("{KEPT_TEXT}-name-{n}"))
        );
    }
}

/// The configuration of a store in `env` with its erasure journal in the data folder's
/// checkpoint folder, as `auditex serve` keeps it by default.
fn env_journaled_config(env: &crate::crash::ProcessEnv, db: &TestDb) -> StoreConfig {
    let journal_dir = env.dir().join("data").join("checkpoints");
    std::fs::create_dir_all(&journal_dir).expect("mkdir");
    let mut config = env.store_config(db);
    config.checkpoint_dir = Some(journal_dir);
    config
}

/// A store on a new SQLite database in a process environment of its own (so that the real
/// binary can restore it), its erasure journal where the service keeps it, and a new tenant
/// `name`.
async fn journaled_sqlite(
    name: &str,
) -> (
    TestDb,
    crate::crash::ProcessEnv,
    StoreConfig,
    TenantId,
    Store,
) {
    let db = TestDb::new(&Backend::Sqlite).await;
    let env = crate::crash::ProcessEnv::new(&db);
    let config = env_journaled_config(&env, &db);
    let tenant = crate::support::tenant_id(name);
    let store = Store::open_with_workers(config.clone())
        .await
        .expect("open");
    store.create_tenant(&tenant).await.expect("tenant");
    (db, env, config, tenant, store)
}

/// Opens a store on `config`, makes `tenant`, appends a round of both subjects and backs it up
/// to `backup`, appends `rounds` more and erases the erased subject whole; shuts the store down
/// and returns the erasure record's seq.
async fn erase_after_a_backup(
    config: &StoreConfig,
    tenant: &TenantId,
    backup: &Path,
    rounds: usize,
) -> u64 {
    let store = Store::open_with_workers(config.clone())
        .await
        .expect("open");
    store.create_tenant(tenant).await.expect("tenant");
    append_both_subjects(&store, tenant, 1).await;
    store.backup(backup).await.expect("backup");
    append_both_subjects(&store, tenant, rounds).await;
    let seq = store
        .erase_subject(tenant, whole_subject(ERASED_SUBJECT))
        .await
        .expect("erase")
        .receipt
        .seq;
    store.shutdown().await;
    seq
}

/// SQLite, with the real binary: a backup taken before an erasure, restored with
/// `auditex restore` (the checkpoint folder, and so the journal, stays), does not bring the
/// values back: the store erases them again when it opens, and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_a_backup_taken_before_an_erasure_does_not_bring_the_values_back() {
    let db = TestDb::new(&Backend::Sqlite).await;
    let env = crate::crash::ProcessEnv::new(&db);
    let config = env_journaled_config(&env, &db);
    let store = Store::open_with_workers(config.clone())
        .await
        .expect("open");
    let tenant = crate::support::tenant_id("restored");
    store.create_tenant(&tenant).await.expect("tenant");
    let (erased, kept) = append_both_subjects(&store, &tenant, 10).await;
    let backup = env.dir().join("before-erasure.db");
    store.backup(&backup).await.expect("backup");
    let outcome = store
        .erase_subject(&tenant, whole_subject(ERASED_SUBJECT))
        .await
        .expect("erase");
    let erasure_seq = outcome.receipt.seq;
    store.shutdown().await;
    drop(store);

    restore(&env, &backup);
    // The restored file holds the values again (nothing has opened it since).
    let (sealed, keys) = subject_rows(&db, tenant.as_str(), ERASED_SUBJECT).await;
    assert_eq!(
        (sealed.len(), keys.len()),
        (20, 1),
        "the backup holds the values"
    );

    let (store, restated) = open_and_restate(&config, &tenant, erasure_seq, ERASED_SUBJECT).await;
    assert_erased_again(&store, &tenant, &erased, &kept, restated).await;
    assert!(
        logged(&tenant, "erased values again"),
        "the log says the restored values were erased again"
    );
    store.shutdown().await;
    drop(store);
    let (sealed, keys) = subject_rows(&db, tenant.as_str(), ERASED_SUBJECT).await;
    assert_eq!(
        (sealed.len(), keys.len()),
        (0, 0),
        "values and key gone from the file"
    );
}

/// SQLite, with the real binary: after a backup older than an erasure is restored, the evidence
/// commands, run before any service has started on the restored file, do not show the erased
/// values either: they carry out the erasure journal when they open the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_commands_on_a_restored_backup_do_not_show_erased_values() {
    let db = TestDb::new(&Backend::Sqlite).await;
    let env = crate::crash::ProcessEnv::new(&db);
    let config = env_journaled_config(&env, &db);
    let store = Store::open_with_workers(config.clone())
        .await
        .expect("open");
    let tenant = crate::support::tenant_id("restored-cli");
    store.create_tenant(&tenant).await.expect("tenant");
    append_both_subjects(&store, &tenant, 3).await;
    store.publish_checkpoints().await.expect("checkpoint");
    let backup = env.dir().join("before-erasure.db");
    store.backup(&backup).await.expect("backup");
    store
        .erase_subject(&tenant, whole_subject(ERASED_SUBJECT))
        .await
        .expect("erase");
    store.shutdown().await;
    drop(store);
    restore(&env, &backup);

    for subject in [ERASED_SUBJECT, KEPT_SUBJECT] {
        let out = env
            .command(&["package", "--tenant", tenant.as_str(), "--subject", subject])
            .output()
            .expect("auditex package");
        assert!(
            out.status.success(),
            "package: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        if subject == ERASED_SUBJECT {
            assert!(
                !text.contains(ERASED_TEXT),
                "an erased value in the package"
            );
            // Erased again, and withheld until the service restates the lost erasure in this
            // chain: no value, and no mark naming a number the chain may give another record.
            assert!(
                !text.contains("\"erasable_values\"") && !text.contains("\"erased\""),
                "the package withholds the values: {text}"
            );
        } else {
            assert!(
                text.contains(KEPT_TEXT),
                "the other subject's values are there"
            );
        }
    }
    let out = env
        .command(&["export", "--tenant", tenant.as_str()])
        .output()
        .expect("auditex export");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains(ERASED_TEXT));
    let (sealed, keys) = subject_rows(&db, tenant.as_str(), ERASED_SUBJECT).await;
    assert_eq!(
        (sealed.len(), keys.len()),
        (0, 0),
        "erased again in the file"
    );
}

/// SQLite: after a backup older than an erasure is restored, the chain goes on from the backup's
/// head, so a value of the erased subject appended then may take a sequence number below the
/// journaled erasure's. The journal's erasure was carried out once, when the restored database
/// first opened; later starts must not repeat it over that newer value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_appended_after_a_restore_below_a_journaled_erasure_is_not_erased_at_the_next_start()
 {
    let db = TestDb::new(&Backend::Sqlite).await;
    let env = crate::crash::ProcessEnv::new(&db);
    let config = env_journaled_config(&env, &db);
    let tenant = crate::support::tenant_id("afterrestore");
    let backup = env.dir().join("early.db");
    // The erasure lands well past the backup's head.
    let erasure_seq = erase_after_a_backup(&config, &tenant, &backup, 5).await;
    restore(&env, &backup);

    let store = Store::open_with_workers(config.clone())
        .await
        .expect("open");
    if store.rollback_status().held().contains_key(&tenant) {
        store
            .acknowledge_rollback(&tenant, "operator", "restored the early backup")
            .await
            .expect("acknowledge");
    }
    let newer = append_erased_subject(&store, &tenant, 99).await;
    assert!(
        newer < erasure_seq,
        "{newer} takes a number below {erasure_seq}"
    );
    assert_eq!(
        store
            .erasable_values(&tenant, seq(newer))
            .await
            .expect("read")
            .len(),
        2
    );
    store.shutdown().await;
    drop(store);

    let store = Store::open_with_workers(config).await.expect("reopen");
    assert_eq!(
        store
            .erasable_values(&tenant, seq(newer))
            .await
            .expect("read")
            .len(),
        2,
        "the value appended after the restore survives the next start"
    );
    store.shutdown().await;
}

/// SQLite, with the real binary, two restores: an erasure of a whole subject, lost in the first
/// restore and restated, is still not in the chain after the second, which brings back a later
/// erasure of one field of the subject's newer record. Only that later erasure's restatement
/// may take that field: the earlier one's scope (the whole subject) covers the record too, and
/// restating it would also erase the record's other field, which nobody erased.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_two_restores_each_lost_erasure_restates_only_the_values_it_erased_again() {
    let (_db, env, config, tenant, store) = journaled_sqlite("tworestores").await;
    append_both_subjects(&store, &tenant, 2).await;
    store.publish_checkpoints().await.expect("checkpoint");
    let first = env.dir().join("first.db");
    store.backup(&first).await.expect("backup");
    append_both_subjects(&store, &tenant, 2).await;
    let whole =
        erase_then_restore(store, &env, &tenant, &first, whole_subject(ERASED_SUBJECT)).await;

    let store = open_after_restore(&config, &tenant).await;
    restatement_of(&store, &tenant, whole, ERASED_SUBJECT).await;
    let newer = append_erased_subject(&store, &tenant, 55).await;
    store.publish_checkpoints().await.expect("checkpoint");
    let second = env.dir().join("second.db");
    store.backup(&second).await.expect("backup");
    let name_only = erase_then_restore(
        store,
        &env,
        &tenant,
        &second,
        SubjectErasure {
            fields: Some(vec![field("name")]),
            ..whole_subject(ERASED_SUBJECT)
        },
    )
    .await;

    let (store, restated) = open_and_restate(&config, &tenant, name_only, ERASED_SUBJECT).await;
    assert_eq!(
        erased_fields(&store, &tenant, newer).await,
        BTreeMap::from([(field("name"), restated)]),
        "the name is erased by the restatement of the erasure that erased it"
    );
    assert_eq!(
        stored_fields(&store, &tenant, newer).await,
        ["iban"],
        "the field nobody erased is still there"
    );
    let size = store.tree_size(&tenant).await.expect("size").get();
    assert_eq!(size, restated + 1, "nothing else was restated");
    store.shutdown().await;
}

/// Carries out `erasure`, publishes a checkpoint, shuts `store` down and restores `backup` with
/// the real binary; returns the erasure record's seq, which the restore removed.
async fn erase_then_restore(
    store: Store,
    env: &crate::crash::ProcessEnv,
    tenant: &TenantId,
    backup: &Path,
    erasure: SubjectErasure,
) -> u64 {
    let lost = store
        .erase_subject(tenant, erasure)
        .await
        .expect("erase")
        .receipt
        .seq;
    store.publish_checkpoints().await.expect("checkpoint");
    store.shutdown().await;
    drop(store);
    restore(env, backup);
    lost
}

/// Restores `backup` with the real `auditex restore`.
fn restore(env: &crate::crash::ProcessEnv, backup: &Path) {
    let out = env
        .command(&["restore", "--force", backup.to_str().expect("utf-8")])
        .output()
        .expect("auditex restore");
    assert!(
        out.status.success(),
        "restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Opens the store as the service does after a restore: when the restore left the tenant held
/// as rolled back, acknowledges it; then restates what waits, as the service's start does.
async fn open_after_restore(config: &StoreConfig, tenant: &TenantId) -> Store {
    let store = Store::open_with_workers(config.clone())
        .await
        .expect("open");
    if store.rollback_status().held().contains_key(tenant) {
        store
            .acknowledge_rollback(tenant, "operator", "restored a backup")
            .await
            .expect("acknowledge");
    }
    store.restate_reerased_all().await;
    store
}

/// SQLite, with the real binary: a restatement that has to wait (a legal hold of the restored
/// chain refuses it) and comes only after the subject has new values names, and erases, only
/// the values that waited for it. The lost erasure's own scope (the whole subject) would, at
/// that later place in the chain, also have erased the values appended since the restore. A
/// one-shot command run meanwhile appends nothing, and restating again appends nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restatement_that_waited_for_a_hold_erases_only_the_values_that_waited() {
    let (db, env, config, tenant, store) = journaled_sqlite("heldrestate").await;
    let (erased, _) = append_both_subjects(&store, &tenant, 3).await;
    let hold = store
        .place_hold(
            &tenant,
            auditex::store::holds::PlaceHold {
                subject_ref: ERASED_SUBJECT.into(),
                decision_id: None,
                reason: "litigation".into(),
                reference: None,
            },
        )
        .await
        .expect("hold")
        .seq;
    store.publish_checkpoints().await.expect("checkpoint");
    let backup = env.dir().join("held.db");
    store.backup(&backup).await.expect("backup");
    store
        .lift_hold(&tenant, ERASED_SUBJECT, hold, "settled")
        .await
        .expect("lift");
    let lost =
        erase_then_restore(store, &env, &tenant, &backup, whole_subject(ERASED_SUBJECT)).await;

    // The restored chain holds the hold again: the values are erased and wait, unrestated.
    let store = open_after_restore(&config, &tenant).await;
    for s in &erased {
        assert!(stored_fields(&store, &tenant, *s).await.is_empty());
        assert!(
            erased_fields(&store, &tenant, *s).await.is_empty(),
            "record {s} waits"
        );
    }
    let newer = append_erased_subject(&store, &tenant, 77).await;
    store
        .lift_hold(&tenant, ERASED_SUBJECT, hold, "settled again")
        .await
        .expect("lift");
    let size = store.tree_size(&tenant).await.expect("size");
    store.shutdown().await;
    drop(store);

    let out = env
        .command(&["rollback", "status"])
        .output()
        .expect("auditex rollback status");
    assert!(
        out.status.success(),
        "rollback status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = Store::open_with_workers(config.clone())
        .await
        .expect("open");
    assert_eq!(
        store.tree_size(&tenant).await.expect("size"),
        size,
        "neither a one-shot command nor opening the store restates"
    );
    store.restate_reerased_all().await;
    let restated = restatement_of(&store, &tenant, lost, ERASED_SUBJECT).await;
    assert!(newer < restated, "{newer} was appended before {restated}");
    assert_eq!(
        stored_fields(&store, &tenant, newer).await.len(),
        2,
        "the value appended after the restore is not erased"
    );
    let mut named = Vec::new();
    for s in &erased {
        assert_eq!(
            erased_fields(&store, &tenant, *s).await,
            BTreeMap::from([(field("iban"), restated), (field("name"), restated)]),
            "record {s}"
        );
        named.push(Value::from(
            store
                .record(&tenant, seq(*s))
                .await
                .expect("read")
                .expect("record")
                .event_id
                .to_string(),
        ));
    }
    let restatement = store
        .record(&tenant, seq(restated))
        .await
        .expect("read")
        .expect("record");
    let payload: Value = serde_json::from_str(restatement.payload.as_str()).expect("payload");
    assert_eq!(
        payload["event_ids"],
        Value::Array(named),
        "the restatement names exactly the records that waited"
    );
    store.restate_reerased_all().await;
    assert_eq!(
        store.tree_size(&tenant).await.expect("size").get(),
        restated + 1,
        "nothing is restated twice"
    );
    store.shutdown().await;
    drop(store);

    // Another process that saw the same values waiting (two nodes starting together) writes
    // the same record, under the same event id: a duplicate, not a second erasure. The rows it
    // saw are as the re-application wrote them, with the lost erasure's hash, which the
    // restatement's reason names.
    let lost_hash = payload["reason"]
        .as_str()
        .and_then(|r| r.split("(record ").nth(1))
        .and_then(|r| r.split(')').next())
        .and_then(|h| hex::decode(h).ok())
        .expect("the reason names the lost record's hash");
    let mut other =
        sqlx::SqliteConnection::connect(&format!("sqlite:{}", db.sqlite_path().display()))
            .await
            .expect("connect");
    for s in &erased {
        for name in ["iban", "name"] {
            sqlx::query(
                "INSERT INTO reerased_values (tenant_id, seq, field, subject_ref, erasure_hash) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(tenant.as_str())
            .bind(i64::try_from(*s).expect("seq"))
            .bind(name)
            .bind(ERASED_SUBJECT)
            .bind(&lost_hash)
            .execute(&mut other)
            .await
            .expect("insert");
        }
    }
    other.close().await.expect("close");
    let store = Store::open_with_workers(config).await.expect("reopen");
    store.restate_reerased_all().await;
    assert_eq!(
        store.tree_size(&tenant).await.expect("size").get(),
        restated + 1,
        "the same restatement is a duplicate"
    );
    assert!(
        logged(&tenant, "is in the chain already"),
        "the second attempt found the waiting rows and was answered as a duplicate"
    );
    store.shutdown().await;
}

/// The sequence number of the `erasure` record restating the journaled erasure `lost` of
/// `subject`, which a restore removed from the chain: an erasure of the subject whose reason
/// names it.
async fn restatement_of(store: &Store, tenant: &TenantId, lost: u64, subject: &str) -> u64 {
    let size = store.tree_size(tenant).await.expect("size").get();
    let mut found = Vec::new();
    for s in 0..size {
        let record = store
            .record(tenant, seq(s))
            .await
            .expect("read")
            .expect("record");
        if record.event_type != EventType::Erasure {
            continue;
        }
        let payload: Value = serde_json::from_str(record.payload.as_str()).expect("payload");
        let reason = payload["reason"].as_str().expect("reason");
        if payload["subject_ref"] == subject
            && reason.starts_with(&format!("Restates erasure seq {lost} "))
        {
            found.push(s);
        }
    }
    assert_eq!(
        found.len(),
        1,
        "one restatement of erasure {lost}: {found:?}"
    );
    found[0]
}

/// Opens the store after a restore of a state older than the erasure of `subject` at `lost`,
/// acknowledging the rollback when the restore left the tenant held, and returns it with the
/// sequence number of the erasure record restating `lost`.
async fn open_and_restate(
    config: &StoreConfig,
    tenant: &TenantId,
    lost: u64,
    subject: &str,
) -> (Store, u64) {
    let store = open_after_restore(config, tenant).await;
    let restated = restatement_of(&store, tenant, lost, subject).await;
    assert_ne!(
        restated, lost,
        "the restatement is a record of the restored chain"
    );
    (store, restated)
}

/// SQLite, with the real binary, two restores: an erasure re-applied from the journal leaves a
/// mark at its sequence number; the chain, going on from the restored head, later appends a
/// *different* erasure at that same number. A backup taken between the two, restored, holds the
/// second erasure's values and the first one's mark at that number. The second erasure must be
/// carried out again all the same: a number alone does not say which erasure ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_at_a_number_a_re_applied_erasure_also_took_is_carried_out_after_a_restore() {
    const OTHER_SUBJECT: &str = "subj-second-1234";
    const OTHER_TEXT: &str = "Second-Plaintext-1234";
    let db = TestDb::new(&Backend::Sqlite).await;
    let env = crate::crash::ProcessEnv::new(&db);
    let config = env_journaled_config(&env, &db);
    let tenant = crate::support::tenant_id("samenumber");

    // History A: an early backup, then an erasure of the first subject well past it.
    let early = env.dir().join("early.db");
    let first = erase_after_a_backup(&config, &tenant, &early, 6).await;

    // History B: the early backup restored (the first erasure is carried out again at its
    // number), values of a second subject appended and backed up, then filler up to that
    // number, where the second subject is erased.
    restore(&env, &early);
    let store = open_after_restore(&config, &tenant).await;
    let second_values = store
        .append(
            &tenant,
            (0..3)
                .map(|n| subject_draft(OTHER_SUBJECT, &person(OTHER_TEXT, n)))
                .collect(),
        )
        .await
        .expect("append");
    let between = env.dir().join("between.db");
    store.backup(&between).await.expect("backup");
    while store.tree_size(&tenant).await.expect("size").get() < first {
        store
            .append(
                &tenant,
                vec![subject_draft(KEPT_SUBJECT, &person(KEPT_TEXT, 100))],
            )
            .await
            .expect("filler");
    }
    let second = store
        .erase_subject(&tenant, whole_subject(OTHER_SUBJECT))
        .await
        .expect("erase")
        .receipt
        .seq;
    assert_eq!(
        second, first,
        "the second erasure takes the first one's number"
    );
    store.shutdown().await;
    drop(store);

    // The backup from between: it holds the second subject's values and the mark of the first
    // erasure's re-application at the shared number.
    restore(&env, &between);
    let (store, restated) = open_and_restate(&config, &tenant, second, OTHER_SUBJECT).await;
    for r in &second_values {
        assert!(
            store
                .erasable_values(&tenant, seq(r.seq))
                .await
                .expect("read")
                .is_empty(),
            "record {}'s values came back",
            r.seq
        );
        assert_eq!(
            store
                .erased_fields(&tenant, seq(r.seq))
                .await
                .expect("erased"),
            BTreeMap::from([(field("iban"), restated), (field("name"), restated)]),
            "record {}",
            r.seq
        );
    }
    store.shutdown().await;
    drop(store);
    let (sealed, keys) = subject_rows(&db, tenant.as_str(), OTHER_SUBJECT).await;
    assert_eq!((sealed.len(), keys.len()), (0, 0), "values and key gone");
}

/// PostgreSQL point-in-time recovery, simulated: a dump taken before an erasure is loaded into
/// a recreated database after it; the store, opening with its journal, erases the values again.
async fn a_postgresql_state_from_before_an_erasure_brought_back_is_erased_again_on_open(
    backend: Backend,
) {
    let db = TestDb::new(&backend).await;
    let work = tempfile::tempdir().expect("tempdir");
    let config = journaled_config(&db, &work.path().join("checkpoints"));
    let store = Store::open_with_workers(config.clone())
        .await
        .expect("open");
    let tenant = crate::support::tenant_id("pitr");
    store.create_tenant(&tenant).await.expect("tenant");
    let (erased, kept) = append_both_subjects(&store, &tenant, 10).await;
    store.shutdown().await;
    drop(store);
    let dump = work.path().join("before-erasure.dump");
    let bytes = pg_dump(&db, tenant.as_str(), &["--format=custom"]);
    std::fs::write(&dump, bytes).expect("write dump");

    let store = Store::open_with_workers(config.clone())
        .await
        .expect("open");
    let outcome = store
        .erase_subject(&tenant, whole_subject(ERASED_SUBJECT))
        .await
        .expect("erase");
    let erasure_seq = outcome.receipt.seq;
    store.shutdown().await;
    drop(store);

    // Back to the state before the erasure: the database dropped, recreated and reloaded.
    let owner = url::Url::parse(db.postgres_owner_url()).expect("url");
    let name = owner.path().trim_start_matches('/').to_owned();
    let mut maintenance = owner.clone();
    maintenance.set_path("postgres");
    let mut admin = sqlx::PgConnection::connect(maintenance.as_str())
        .await
        .expect("connect");
    for sql in [
        format!("DROP DATABASE {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await
            .expect("recreate the database");
    }
    admin.close().await.ok();
    let out = Command::new("pg_restore")
        .args(["--enable-row-security", "--exit-on-error", "--no-owner"])
        .arg(format!("--dbname={}", db.postgres_owner_url()))
        .arg(&dump)
        .env("PGOPTIONS", format!("-c app.tenant_id={tenant}"))
        .output()
        .expect("pg_restore");
    assert!(
        out.status.success(),
        "pg_restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (sealed, keys) = subject_rows(&db, tenant.as_str(), ERASED_SUBJECT).await;
    assert_eq!(
        (sealed.len(), keys.len()),
        (20, 1),
        "the old state holds the values"
    );

    let (store, restated) = open_and_restate(&config, &tenant, erasure_seq, ERASED_SUBJECT).await;
    assert_erased_again(&store, &tenant, &erased, &kept, restated).await;
    assert!(logged(&tenant, "erased values again"), "the log says so");
    store.shutdown().await;
    let (sealed, keys) = subject_rows(&db, tenant.as_str(), ERASED_SUBJECT).await;
    assert_eq!(
        (sealed.len(), keys.len()),
        (0, 0),
        "values and key gone again"
    );
}

/// Whether `e` is the erasure journal's hold of `tenant`.
fn is_journal_hold(e: &StoreError, tenant: &TenantId) -> bool {
    matches!(e, StoreError::ErasureJournal { tenant: t, .. } if t == tenant.as_str())
}

/// A journal that cannot be read (garbled, or not a file) holds its tenant: no erasable value is
/// served and nothing is appended; another tenant of the same store is served as usual.
async fn an_unreadable_erasure_journal_holds_its_tenant_and_no_other(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let work = tempfile::tempdir().expect("tempdir");
    let journal_dir = work.path().join("checkpoints");
    let config = journaled_config(&db, &journal_dir);
    let store = Store::open_with_workers(config.clone())
        .await
        .expect("open");
    let held = crate::support::tenant_id("held");
    let other = crate::support::tenant_id("other");
    store.create_tenant(&held).await.expect("tenant");
    store.create_tenant(&other).await.expect("tenant");
    let (_, kept) = append_both_subjects(&store, &held, 3).await;
    let (_, other_kept) = append_both_subjects(&store, &other, 3).await;
    store
        .erase_subject(&held, whole_subject(ERASED_SUBJECT))
        .await
        .expect("erase");
    store.shutdown().await;
    drop(store);
    let journal = auditex::store::erasure::journal_file(&journal_dir, &held);
    let good = std::fs::read(&journal).expect("the erasure was journaled");
    assert_eq!(
        good.iter().filter(|b| **b == b'\n').count(),
        1,
        "one erasure, one line"
    );

    let garbled = [good.as_slice(), b"{\"seq\": 12, not json\n"].concat();
    for damage in ["garbled", "not a file"] {
        std::fs::remove_file(&journal).ok();
        std::fs::remove_dir(&journal).ok();
        if damage == "garbled" {
            std::fs::write(&journal, &garbled).expect("garble");
        } else {
            std::fs::create_dir(&journal).expect("a folder in its place");
        }
        let store = Store::open_with_workers(config.clone())
            .await
            .expect("open");
        let e = store
            .erasable_values(&held, seq(kept[0]))
            .await
            .expect_err("a held tenant's values are not served");
        assert!(is_journal_hold(&e, &held), "{damage}: {e}");
        let e = store
            .append(
                &held,
                vec![subject_draft(KEPT_SUBJECT, &person(KEPT_TEXT, 99))],
            )
            .await
            .expect_err("a held tenant does not grow");
        assert!(
            matches!(&e, AppendError::Store(s) if is_journal_hold(s, &held)),
            "{damage}: {e}"
        );
        let e = store
            .erase_subject(&held, whole_subject(KEPT_SUBJECT))
            .await
            .expect_err("nor erases");
        assert!(
            matches!(&e, ErasureError::Store(s) if is_journal_hold(s, &held)),
            "{damage}: {e}"
        );
        // The other tenant is served and appends.
        let values = store
            .erasable_values(&other, seq(other_kept[0]))
            .await
            .expect("another tenant is not held");
        assert_eq!(
            values[&field("name")].value,
            json!(format!("{KEPT_TEXT}-name-0"))
        );
        store
            .append(
                &other,
                vec![subject_draft(KEPT_SUBJECT, &person(KEPT_TEXT, 9))],
            )
            .await
            .expect("another tenant appends");
        store.shutdown().await;
    }

    // Repaired, the tenant is served again.
    std::fs::remove_dir(&journal).expect("remove the folder");
    std::fs::write(&journal, &good).expect("repair");
    let store = Store::open_with_workers(config).await.expect("open");
    let values = store
        .erasable_values(&held, seq(kept[0]))
        .await
        .expect("served again");
    assert_eq!(
        values[&field("name")].value,
        json!(format!("{KEPT_TEXT}-name-0"))
    );
    store.shutdown().await;
}

/// The tenant's `erasure` records, read from the chain.
async fn erasure_records(store: &Store, tenant: &TenantId) -> Vec<u64> {
    crate::support::read_chain(store, tenant)
        .await
        .iter()
        .filter(|r| r.event_type == EventType::Erasure)
        .map(|r| r.seq.get())
        .collect()
}

/// Two identical erasure requests at once: both succeed, one erasure record is appended, and the
/// second answers with its receipt marked as a duplicate.
async fn two_concurrent_erasures_of_one_subject_append_one_erasure_record_and_both_succeed(
    backend: Backend,
) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("twice").await;
    let store = std::sync::Arc::new(store);
    let (erased, _) = append_both_subjects(&store, &tenant, 5).await;
    let run = |store: std::sync::Arc<Store>, tenant: TenantId| {
        tokio::spawn(async move {
            store
                .erase_subject(&tenant, whole_subject(ERASED_SUBJECT))
                .await
        })
    };
    let a = run(store.clone(), tenant.clone());
    let b = run(store.clone(), tenant.clone());
    let a = a.await.expect("task").expect("first erasure");
    let b = b.await.expect("task").expect("second erasure");
    assert_eq!(
        a.receipt.seq, b.receipt.seq,
        "both name the same erasure record"
    );
    assert_eq!(
        [a.receipt.duplicate, b.receipt.duplicate]
            .iter()
            .filter(|d| **d)
            .count(),
        1,
        "exactly one is the duplicate"
    );
    assert_eq!(a.erased + b.erased, 10, "the values were erased once");
    assert_eq!(erasure_records(&store, &tenant).await, vec![a.receipt.seq]);
    for s in &erased {
        assert!(
            store
                .erasable_values(&tenant, seq(*s))
                .await
                .expect("read")
                .is_empty()
        );
    }
    store.shutdown().await;
}

/// An erasure of a subject while appends for the same subject run: every value before the
/// erasure record is erased (naming it), every value after it is stored and opens (under a new
/// key), none is left readable before it.
async fn an_erasure_racing_appends_erases_exactly_the_values_before_it(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("race").await;
    let store = std::sync::Arc::new(store);
    append_both_subjects(&store, &tenant, 5).await;
    // The erasure starts once 10 appends are in, and the appends go on until 10 of them came
    // after the erasure record (by sequence number, not by when the test heard of them): some
    // values surely come before it and some after.
    let appended_count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let erased_at = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX));
    let appender = {
        let (store, tenant) = (store.clone(), tenant.clone());
        let (count, erased_at) = (appended_count.clone(), erased_at.clone());
        tokio::spawn(async move {
            let mut seqs = BTreeMap::new();
            let (mut n, mut after) = (0, 0);
            while after < 10 {
                let receipts = store
                    .append(
                        &tenant,
                        vec![
                            subject_draft(ERASED_SUBJECT, &person(ERASED_TEXT, n)),
                            subject_draft(ERASED_SUBJECT, &person(ERASED_TEXT, 1000 + n)),
                        ],
                    )
                    .await
                    .expect("append");
                seqs.insert(receipts[0].seq, n);
                seqs.insert(receipts[1].seq, 1000 + n);
                if receipts[0].seq > erased_at.load(std::sync::atomic::Ordering::SeqCst) {
                    after += 1;
                }
                n += 1;
                count.store(n, std::sync::atomic::Ordering::SeqCst);
            }
            seqs
        })
    };
    while appended_count.load(std::sync::atomic::Ordering::SeqCst) < 10 {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let outcome = store
        .erase_subject(&tenant, whole_subject(ERASED_SUBJECT))
        .await
        .expect("erase");
    let e = outcome.receipt.seq;
    erased_at.store(e, std::sync::atomic::Ordering::SeqCst);
    let appended = appender.await.expect("task");
    let (before, after): (Vec<_>, Vec<_>) = appended.iter().partition(|(s, _)| **s < e);
    assert!(
        before.len() >= 20 && after.len() >= 20,
        "{} before, {} after",
        before.len(),
        after.len()
    );
    for (s, _) in &before {
        assert!(
            store
                .erasable_values(&tenant, seq(**s))
                .await
                .expect("read")
                .is_empty(),
            "record {s}, before erasure {e}, is still readable"
        );
        assert_eq!(
            store
                .erased_fields(&tenant, seq(**s))
                .await
                .expect("erased")
                .values()
                .copied()
                .collect::<Vec<_>>(),
            vec![e, e]
        );
    }
    for (s, n) in &after {
        let values = store
            .erasable_values(&tenant, seq(**s))
            .await
            .expect("read");
        assert_eq!(
            values[&field("name")].value,
            json!(format!("{ERASED_TEXT}-name-{n}"))
        );
        assert!(
            store
                .erased_fields(&tenant, seq(**s))
                .await
                .expect("erased")
                .is_empty()
        );
    }
    store.shutdown().await;
}

/// The subject index finds values by buckets of 4096 sequence numbers (one probe per bucket):
/// a subject's values in three buckets, on both sides of each boundary, are all found (for the
/// erasure's count and field check) and all erased, field by field and then whole, and nothing
/// of the other subjects is.
async fn a_subjects_values_in_every_bucket_of_the_subject_index_are_found_and_erased(
    backend: Backend,
) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("buckets").await;
    let mine: std::collections::BTreeSet<usize> = [
        1, 4094, 4095, 4096, 4097, 6000, 8190, 8191, 8192, 8193, 8999,
    ]
    .into();
    let (mut seqs, mut others) = (Vec::new(), Vec::new());
    for start in (0..9000).step_by(1000) {
        let drafts = (start..start + 1000)
            .map(|n| {
                if mine.contains(&n) {
                    subject_draft(ERASED_SUBJECT, &person(ERASED_TEXT, n))
                } else {
                    subject_draft(&format!("other-{n}"), &person(KEPT_TEXT, n))
                }
            })
            .collect();
        let receipts = store.append(&tenant, drafts).await.expect("append");
        for (i, r) in receipts.iter().enumerate() {
            if mine.contains(&(start + i)) {
                seqs.push(r.seq);
            } else if i % 997 == 0 {
                others.push(r.seq);
            }
        }
    }
    let buckets: std::collections::BTreeSet<u64> = seqs.iter().map(|s| s >> 12).collect();
    assert_eq!(
        buckets.len(),
        3,
        "the subject's values span three buckets: {seqs:?}"
    );
    assert!(
        seqs.windows(2)
            .any(|w| w[0] % 4096 == 4095 && w[1] == w[0] + 1),
        "two values straddle a bucket boundary: {seqs:?}"
    );
    let by_fields = SubjectErasure {
        fields: Some(vec![field("iban")]),
        ..whole_subject(ERASED_SUBJECT)
    };
    let ibans = store
        .erase_subject(&tenant, by_fields)
        .await
        .expect("erase the iban");
    assert_eq!(ibans.erased, 11, "one iban per record");
    for s in &seqs {
        assert_eq!(
            stored_fields(&store, &tenant, *s).await,
            vec!["name"],
            "record {s} keeps its name only"
        );
    }
    let names = store
        .erase_subject(&tenant, whole_subject(ERASED_SUBJECT))
        .await
        .expect("erase the rest");
    assert_eq!(names.erased, 11, "one name per record");
    for s in &seqs {
        assert!(
            stored_fields(&store, &tenant, *s).await.is_empty(),
            "record {s} holds nothing"
        );
        assert_eq!(
            erased_fields(&store, &tenant, *s).await,
            BTreeMap::from([
                (field("iban"), ibans.receipt.seq),
                (field("name"), names.receipt.seq)
            ]),
            "record {s} lists both fields as erased, each by its erasure"
        );
    }
    for s in &others {
        assert_eq!(
            stored_fields(&store, &tenant, *s).await,
            vec!["iban", "name"],
            "another subject's record {s} keeps its values"
        );
    }
    store.shutdown().await;
}

/// A value written before data keys existed (sealed under the master key, salt beside it, no
/// key) is erased with its subject like any other.
async fn a_value_sealed_before_data_keys_existed_is_erased_with_its_subject(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("legacy").await;
    let (erased, kept) = append_both_subjects(&store, &tenant, 3).await;
    let target = erased[1];
    let values = store
        .erasable_values(&tenant, seq(target))
        .await
        .expect("read");
    let name = &values[&field("name")];
    let master = MasterKeys::from(db.master_key.clone());
    let legacy = master
        .seal(
            &SealContext::erasable(&tenant, target, "name"),
            &serde_json::to_vec(&name.value).expect("json"),
        )
        .expect("seal");
    crate::store::sealing::make_legacy_row(
        &db,
        tenant.as_str(),
        target,
        "name",
        &name.salt,
        legacy,
    )
    .await;
    assert_eq!(
        store
            .erasable_values(&tenant, seq(target))
            .await
            .expect("read")[&field("name")]
            .value,
        name.value,
        "the legacy row opens"
    );
    let outcome = store
        .erase_subject(&tenant, whole_subject(ERASED_SUBJECT))
        .await
        .expect("erase");
    assert_eq!(outcome.erased, 6);
    for s in &erased {
        assert!(
            store
                .erasable_values(&tenant, seq(*s))
                .await
                .expect("read")
                .is_empty()
        );
    }
    assert_eq!(
        store
            .erased_fields(&tenant, seq(target))
            .await
            .expect("erased")[&field("name")],
        outcome.receipt.seq
    );
    assert_eq!(
        store
            .erasable_values(&tenant, seq(kept[1]))
            .await
            .expect("read")
            .len(),
        2
    );
    store.shutdown().await;
}

/// Subjects of the crash test.
const CRASH_SUBJECTS: u64 = 8;

/// A running `auditex serve` of the crash test, killed with SIGKILL when dropped.
struct Serving {
    child: std::process::Child,
    url: String,
}

impl Serving {
    fn start(env: &crate::crash::ProcessEnv) -> Serving {
        use std::io::BufRead;
        let mut child = env
            .command(&["serve", "--listen", "127.0.0.1:0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn auditex serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = std::io::BufReader::new(stdout).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("serve printed where it listens")
                .expect("a line");
            if let Some(rest) = line.split(" listening on ").nth(1) {
                let url = rest.split_whitespace().next().expect("an address");
                break url.replace("127.0.0.1", "localhost");
            }
        };
        // Keep reading so the service never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        Serving { child, url }
    }

    /// SIGKILL: no shutdown, no drain.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a pipeline sent, and what was acknowledged.
#[derive(Default)]
struct Sent {
    /// Appended decisions acknowledged: seq → (hash, subject).
    decisions: BTreeMap<u64, (String, String)>,
    /// Erasures acknowledged: seq → (hash, subject).
    erasures: BTreeMap<u64, (String, String)>,
}

async fn post(client: &reqwest::Client, url: &str, key: &str, body: &Value) -> Option<Vec<Value>> {
    let resp = client
        .post(format!("{url}/v1/records/batch"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .ok()?;
    if resp.status() != reqwest::StatusCode::OK {
        return None;
    }
    let answer: Value = resp.json().await.ok()?;
    answer["receipts"].as_array().cloned()
}

/// Asks for the erasure of `subject` with a privacy key; its receipt, when one came.
async fn erase(client: &reqwest::Client, url: &str, key: &str, subject: &str) -> Option<Value> {
    let resp = client
        .post(format!("{url}/v1/subjects/{subject}/erasure"))
        .bearer_auth(key)
        .json(&json!({"reason": "the person asked", "legal_basis": "GDPR Art. 17(1)(a)"}))
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().await.ok()
}

/// SIGKILLs `auditex serve` while a pipeline appends decisions with erasable values and the
/// data-protection office asks for the erasure of the same subjects; after each restart: every acknowledged record
/// is there; every erasure record in the chain has erased every value of its subject before it
/// (and no data key older than it is left); every erased value names an erasure record of its
/// subject that is in the chain, so an erasure that got no receipt either is in the chain with
/// its values gone, or erased nothing.
async fn a_service_killed_during_erasures_keeps_each_one_whole_or_not_at_all(backend: Backend) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let db = TestDb::new(&backend).await;
    let env = crate::crash::ProcessEnv::new(&db);
    let tenant = crate::support::tenant_id("killed");
    let ok = |cmd: &mut Command| {
        let out = cmd.output().expect("auditex");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    ok(&mut env.command(&["tenant", "create", "killed"]));
    let key = ok(&mut env.command(&["apikey", "create", "--tenant", "killed", "--role", "ingest"]));
    crate::secret_scan::register_api_key(&key);
    let privacy = ok(&mut env.command(&[
        "apikey", "create", "--tenant", "killed", "--role", "privacy",
    ]));
    crate::secret_scan::register_api_key(&privacy);
    let mut config = env.store_config(&db);
    config.checkpoint_dir = Some(env.dir().join("data").join("checkpoints"));
    let mut all = Sent::default();
    for round in 0..3u64 {
        let service = Serving::start(&env);
        let pem = std::fs::read(env.dir().join("data/tls/tls-cert.pem")).expect("certificate");
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("pem")])
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .expect("client");
        let sent = std::sync::Arc::new(std::sync::Mutex::new(Sent::default()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let decisions = {
            let (client, url, key) = (client.clone(), service.url.clone(), key.clone());
            let (sent, stop) = (sent.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let subjects: Vec<String> =
                        (0..CRASH_SUBJECTS).map(|k| format!("crash-{k}")).collect();
                    let records: Vec<Value> = subjects
                        .iter()
                        .map(|subject| {
                            let mut payload = decision_payload("approved");
                            payload["subject_ref"] = json!(subject);
                            json!({
                                "event_id": uuid::Uuid::now_v7().to_string(),
                                "event_type": "decision",
                                "payload": payload,
                                "erasable": {"name": format!("Crash-Plaintext-{round}-{n}")},
                            })
                        })
                        .collect();
                    n += 1;
                    if let Some(receipts) =
                        post(&client, &url, &key, &json!({"records": records})).await
                    {
                        let mut sent = sent.lock().expect("lock");
                        for (r, subject) in receipts.iter().zip(subjects) {
                            let seq = r["seq"].as_u64().expect("seq");
                            let hash = r["hash"].as_str().expect("hash").to_owned();
                            sent.decisions.insert(seq, (hash, subject));
                        }
                    }
                }
            })
        };
        let erasures = {
            let (client, url, key) = (client.clone(), service.url.clone(), privacy.clone());
            let (sent, stop) = (sent.clone(), stop.clone());
            tokio::spawn(async move {
                let mut k = 0u64;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let subject = format!("crash-{}", k % CRASH_SUBJECTS);
                    k += 1;
                    if let Some(receipt) = erase(&client, &url, &key, &subject).await {
                        let seq = receipt["seq"].as_u64().expect("seq");
                        let hash = receipt["hash"].as_str().expect("hash").to_owned();
                        sent.lock()
                            .expect("lock")
                            .erasures
                            .insert(seq, (hash, subject));
                    }
                }
            })
        };
        // Let both run, then kill the service with requests in flight.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let enough = {
                let sent = sent.lock().expect("lock");
                sent.erasures.len() >= 10 && sent.decisions.len() >= 200
            };
            if enough || std::time::Instant::now() > deadline {
                break;
            }
        }
        service.kill();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        decisions.await.expect("decisions task");
        erasures.await.expect("erasures task");
        let sent = std::mem::take(&mut *sent.lock().expect("lock"));
        assert!(
            !sent.erasures.is_empty(),
            "round {round}: no erasure was acknowledged"
        );
        all.decisions.extend(sent.decisions);
        all.erasures.extend(sent.erasures);

        let store = Store::open_with_workers(config.clone())
            .await
            .expect("reopen");
        assert_erasures_whole(&store, &db, &tenant, &all).await;
        store.shutdown().await;
    }
}

/// The checks of [`a_service_killed_during_erasures_keeps_each_one_whole_or_not_at_all`] after a
/// restart.
async fn assert_erasures_whole(store: &Store, db: &TestDb, tenant: &TenantId, sent: &Sent) {
    let chain = crate::support::read_chain(store, tenant).await;
    let by_seq: BTreeMap<u64, &ledger::record::Record> =
        chain.iter().map(|r| (r.seq.get(), r)).collect();
    for (what, acked) in [("decision", &sent.decisions), ("erasure", &sent.erasures)] {
        for (s, (hash, _)) in acked {
            let r = by_seq
                .get(s)
                .unwrap_or_else(|| panic!("acknowledged {what} {s} is missing"));
            assert_eq!(&r.hash.to_hex(), hash, "acknowledged {what} {s} changed");
        }
    }
    // Every erasure in the chain, by subject.
    let mut erasures: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in &chain {
        if let Some(scope) = auditex::store::erasure::ErasureScope::of_record(r) {
            erasures
                .entry(scope.subject_ref)
                .or_default()
                .push(r.seq.get());
        }
    }
    for r in &chain {
        if r.event_type != EventType::Decision || r.erasable.is_empty() {
            continue;
        }
        let payload: Value = serde_json::from_str(r.payload.as_str()).expect("payload");
        let subject = payload["subject_ref"].as_str().expect("subject").to_owned();
        let s = r.seq.get();
        let first_after = erasures
            .get(&subject)
            .and_then(|list| list.iter().copied().find(|e| *e > s));
        let values = store.erasable_values(tenant, r.seq).await.expect("read");
        let erased = store.erased_fields(tenant, r.seq).await.expect("erased");
        match first_after {
            Some(e) => {
                assert!(
                    values.is_empty(),
                    "record {s} is still readable after erasure {e}"
                );
                assert_eq!(
                    erased.get(&field("name")),
                    Some(&e),
                    "record {s} names the first erasure of {subject} after it"
                );
            }
            None => {
                assert_eq!(
                    values.len(),
                    1,
                    "record {s} of {subject} was erased by no erasure in the chain"
                );
                assert!(
                    erased.is_empty(),
                    "record {s}: {erased:?} names an erasure not in the chain"
                );
            }
        }
    }
    // No data key of a subject is older than the subject's last erasure.
    for (subject, list) in &erasures {
        let (_, keys) = subject_rows(db, tenant.as_str(), subject).await;
        let last = *list.last().expect("one");
        for (key_seq, _) in keys {
            assert!(
                u64::try_from(key_seq).expect("seq") > last,
                "{subject}: key {key_seq} survives erasure {last}"
            );
        }
    }
}

/// An erasure whose transaction fails at commit (here a deferred constraint refuses it, as a
/// lost connection or a SIGKILL between the journal and the commit would) was never
/// acknowledged: it erases nothing, then or when the store opens again, even after the next
/// record took its sequence number; a later erasure of the subject works. (The erasure journal
/// used to be written before the commit, so the store erased the values at the next start and
/// named as their erasure a record that is not one.)
async fn an_erasure_whose_commit_fails_erases_nothing_then_or_after_a_restart(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let work = tempfile::tempdir().expect("tempdir");
    let journal_dir = work.path().join("checkpoints");
    let config = journaled_config(&db, &journal_dir);
    let store = Store::open_with_workers(config.clone())
        .await
        .expect("open");
    let tenant = crate::support::tenant_id("refused");
    store.create_tenant(&tenant).await.expect("tenant");
    let (erased, kept) = append_both_subjects(&store, &tenant, 3).await;

    let mut owner = owner_connection(&db, tenant.as_str()).await;
    for sql in [
        "CREATE FUNCTION refuse_erasure() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'refused at commit'; END $$",
        "CREATE CONSTRAINT TRIGGER refuse_erasure AFTER INSERT ON erasures \
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_erasure()",
    ] {
        sqlx::query(sql)
            .execute(&mut owner)
            .await
            .expect("install the refusal");
    }
    let err = store
        .erase_subject(&tenant, whole_subject(ERASED_SUBJECT))
        .await
        .expect_err("the commit is refused");
    assert!(err.to_string().contains("refused at commit"), "{err}");
    sqlx::query("DROP TRIGGER refuse_erasure ON erasures")
        .execute(&mut owner)
        .await
        .expect("drop the refusal");
    let failed_seq = erased.iter().chain(&kept).max().expect("records") + 1;
    assert!(
        !auditex::store::erasure::journal_file(&journal_dir, &tenant).exists(),
        "an erasure that did not commit is not journaled"
    );
    // The next record takes the sequence number the failed erasure had.
    let next = store
        .append(
            &tenant,
            vec![subject_draft(KEPT_SUBJECT, &person(KEPT_TEXT, 3))],
        )
        .await
        .expect("append");
    assert_eq!(next[0].seq, failed_seq);
    store.shutdown().await;
    drop(store);

    let store = Store::open_with_workers(config).await.expect("reopen");
    for s in &erased {
        assert_eq!(
            stored_fields(&store, &tenant, *s).await.len(),
            2,
            "record {s} was erased by an erasure that never committed"
        );
        assert!(erased_fields(&store, &tenant, *s).await.is_empty());
    }
    let outcome = store
        .erase_subject(&tenant, whole_subject(ERASED_SUBJECT))
        .await
        .expect("a later erasure works");
    assert_eq!(outcome.erased, 6);
    assert_erased_again(&store, &tenant, &erased, &kept, outcome.receipt.seq).await;
    store.shutdown().await;
}

/// The journal cannot be written when an erasure commits (here a folder stands where the file
/// goes): the erasure is in the database and its values are gone, but it is not acknowledged and
/// the tenant is held; once the journal can be written again, the next start journals it from
/// the database and serves the tenant, and asking again answers with that erasure's receipt.
async fn an_erasure_committed_but_not_journaled_holds_the_tenant_until_a_restart_journals_it(
    backend: Backend,
) {
    let db = TestDb::new(&backend).await;
    let work = tempfile::tempdir().expect("tempdir");
    let journal_dir = work.path().join("checkpoints");
    let config = journaled_config(&db, &journal_dir);
    let store = Store::open_with_workers(config.clone())
        .await
        .expect("open");
    let tenant = crate::support::tenant_id("unjournaled");
    store.create_tenant(&tenant).await.expect("tenant");
    let (erased, kept) = append_both_subjects(&store, &tenant, 3).await;
    let journal = auditex::store::erasure::journal_file(&journal_dir, &tenant);
    std::fs::create_dir(&journal).expect("a folder where the journal goes");
    let err = store
        .erase_subject(&tenant, whole_subject(ERASED_SUBJECT))
        .await
        .expect_err("not acknowledged without the journal");
    assert!(
        matches!(&err, ErasureError::Append(AppendError::Store(e)) if is_journal_hold(e, &tenant)),
        "{err}"
    );
    let e = store
        .erasable_values(&tenant, seq(kept[0]))
        .await
        .expect_err("the tenant is held");
    assert!(is_journal_hold(&e, &tenant), "{e}");
    store.shutdown().await;
    drop(store);
    let (sealed, keys) = subject_rows(&db, tenant.as_str(), ERASED_SUBJECT).await;
    assert_eq!((sealed.len(), keys.len()), (0, 0), "the erasure committed");

    std::fs::remove_dir(&journal).expect("the folder removed");
    let store = Store::open_with_workers(config).await.expect("reopen");
    let journaled = std::fs::read_to_string(&journal).expect("journaled at the start");
    assert_eq!(journaled.lines().count(), 1);
    let again = store
        .erase_subject(&tenant, whole_subject(ERASED_SUBJECT))
        .await
        .expect("asking again");
    assert!(again.receipt.duplicate);
    assert_eq!(again.erased, 0);
    assert!(
        journaled.contains(&format!("\"seq\":{}", again.receipt.seq)),
        "{journaled}"
    );
    assert_erased_again(&store, &tenant, &erased, &kept, again.receipt.seq).await;
    store.shutdown().await;
}

/// Erasing some fields keeps the subject's data key while other values use it; erasing the
/// last field destroys it.
async fn a_subjects_data_key_lives_until_its_last_value_is_erased_field_by_field(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("fields").await;
    let (erased, kept) = append_both_subjects(&store, &tenant, 3).await;
    let by_fields = |names: &[&str]| SubjectErasure {
        fields: Some(names.iter().map(|n| field(n)).collect()),
        ..whole_subject(ERASED_SUBJECT)
    };
    let first = store
        .erase_subject(&tenant, by_fields(&["iban"]))
        .await
        .expect("erase iban");
    assert_eq!(first.erased, 3);
    for (n, s) in erased.iter().enumerate() {
        let values = store.erasable_values(&tenant, seq(*s)).await.expect("read");
        assert_eq!(values.keys().collect::<Vec<_>>(), vec![&field("name")]);
        assert_eq!(
            values[&field("name")].value,
            json!(format!("{ERASED_TEXT}-name-{n}"))
        );
        assert_eq!(
            store.erased_fields(&tenant, seq(*s)).await.expect("erased"),
            BTreeMap::from([(field("iban"), first.receipt.seq)])
        );
    }
    let (sealed, keys) = subject_rows(&db, tenant.as_str(), ERASED_SUBJECT).await;
    assert_eq!(
        (sealed.len(), keys.len()),
        (3, 1),
        "the key stays while names use it"
    );

    let unknown = store
        .erase_subject(&tenant, by_fields(&["iban", "shoe_size"]))
        .await
        .expect_err("an unknown field");
    assert!(
        matches!(&unknown, ErasureError::UnknownFields(f) if f == &vec!["shoe_size".to_owned()]),
        "{unknown}"
    );
    let second = store
        .erase_subject(&tenant, by_fields(&["name"]))
        .await
        .expect("erase name");
    assert_eq!(second.erased, 3);
    let (sealed, keys) = subject_rows(&db, tenant.as_str(), ERASED_SUBJECT).await;
    assert_eq!(
        (sealed.len(), keys.len()),
        (0, 0),
        "the last value took the key with it"
    );
    for s in &erased {
        assert_eq!(
            store.erased_fields(&tenant, seq(*s)).await.expect("erased"),
            BTreeMap::from([
                (field("iban"), first.receipt.seq),
                (field("name"), second.receipt.seq)
            ])
        );
    }
    let (_, kept_keys) = subject_rows(&db, tenant.as_str(), KEPT_SUBJECT).await;
    assert_eq!(kept_keys.len(), 1);
    assert_eq!(
        store
            .erasable_values(&tenant, seq(kept[0]))
            .await
            .expect("read")
            .len(),
        2
    );
    store.shutdown().await;
}

/// An `erasure` record appended by a pipeline that names a record of another subject among its
/// `event_ids` erases nothing of that record: an erasure reaches only its own subject's values.
async fn an_erasure_naming_another_subjects_record_erases_nothing_of_it(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("foreign").await;
    let (erased, kept) = append_both_subjects(&store, &tenant, 2).await;
    let chain = crate::support::read_chain(&store, &tenant).await;
    let id_of = |s: u64| {
        chain[usize::try_from(s).expect("index")]
            .event_id
            .to_string()
    };
    let erasure = prepare_client_draft(
        &new_event_id(),
        "erasure",
        &json!({
            "subject_ref": ERASED_SUBJECT,
            "reason": "the person asked",
            "event_ids": [id_of(erased[0]), id_of(kept[0])],
        }),
        &BTreeMap::new(),
        rand::random,
    )
    .expect("erasure draft");
    let receipt = store.append(&tenant, vec![erasure]).await.expect("append")[0].clone();
    assert!(
        store
            .erasable_values(&tenant, seq(erased[0]))
            .await
            .expect("read")
            .is_empty()
    );
    assert_eq!(
        store
            .erased_fields(&tenant, seq(erased[0]))
            .await
            .expect("erased")
            .len(),
        2
    );
    assert_eq!(
        store
            .erased_fields(&tenant, seq(erased[0]))
            .await
            .expect("erased")[&field("name")],
        receipt.seq
    );
    for s in [erased[1], kept[0], kept[1]] {
        assert_eq!(
            stored_fields(&store, &tenant, s).await.len(),
            2,
            "record {s}"
        );
        assert!(erased_fields(&store, &tenant, s).await.is_empty());
    }
    store.shutdown().await;
}

/// Whether record `at` has every one of its `fields` readable.
async fn all_readable(store: &Store, tenant: &TenantId, at: u64, fields: usize) -> bool {
    store
        .erasable_values(tenant, seq(at))
        .await
        .expect("read")
        .len()
        == fields
}

/// The appender keeps the subject's unwrapped key between groups; an erasure that destroys the
/// key without naming the whole subject (its last fields, one request at a time) must drop it
/// from that cache too, or the next value would be sealed under a key that no longer exists.
async fn a_value_appended_after_its_subjects_key_went_field_by_field_gets_a_new_key(
    backend: Backend,
) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("cache").await;
    let (_, _) = append_both_subjects(&store, &tenant, 2).await;
    for name in ["iban", "name"] {
        store
            .erase_subject(
                &tenant,
                SubjectErasure {
                    fields: Some(vec![field(name)]),
                    ..whole_subject(ERASED_SUBJECT)
                },
            )
            .await
            .expect("erase a field");
    }
    let (_, keys) = subject_rows(&db, tenant.as_str(), ERASED_SUBJECT).await;
    assert!(keys.is_empty(), "the last value took the key with it");
    let later = store
        .append(
            &tenant,
            vec![subject_draft(ERASED_SUBJECT, &person(ERASED_TEXT, 9))],
        )
        .await
        .expect("append");
    assert!(
        all_readable(&store, &tenant, later[0].seq, 2).await,
        "the later value is sealed under a key that exists"
    );
    let (_, keys) = subject_rows(&db, tenant.as_str(), ERASED_SUBJECT).await;
    assert_eq!(keys.len(), 1, "a new key");
    store.shutdown().await;
}

/// A group that makes a subject's key and then fails to commit leaves no key; the next group for
/// that subject must not take the key from the appender's cache (its values would be sealed
/// under a key the database never held). The failure is a trigger refusing one field's row.
/// Installs (or drops) a trigger on `erasable_values` that refuses a value of the field
/// `poison`: a group carrying one fails at its insert, after its records were sealed.
async fn poison_trigger(db: &TestDb, tenant: &TenantId, install: bool) {
    let (add, drop_it): (Vec<&'static str>, &'static str) = if db.is_postgres() {
        (
            vec![
                "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN IF NEW.field = 'poison' THEN RAISE EXCEPTION 'poison refused'; END IF; \
                 RETURN NEW; END $$",
                "CREATE TRIGGER refuse_poison BEFORE INSERT ON erasable_values \
                 FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
            ],
            "DROP TRIGGER refuse_poison ON erasable_values",
        )
    } else {
        (
            vec![
                "CREATE TRIGGER refuse_poison BEFORE INSERT ON erasable_values \
                 WHEN NEW.field = 'poison' BEGIN SELECT RAISE(ABORT, 'poison refused'); END",
            ],
            "DROP TRIGGER refuse_poison",
        )
    };
    let statements = if install { add } else { vec![drop_it] };
    if db.is_postgres() {
        let mut c = owner_connection(db, tenant.as_str()).await;
        for sql in statements {
            sqlx::query(sql).execute(&mut c).await.expect("ddl");
        }
    } else {
        let mut c =
            sqlx::SqliteConnection::connect(&format!("sqlite:{}", db.sqlite_path().display()))
                .await
                .expect("sqlite");
        for sql in statements {
            sqlx::query(sql).execute(&mut c).await.expect("ddl");
        }
        c.close().await.expect("close");
    }
}

async fn a_key_made_for_a_group_that_rolled_back_is_never_used(backend: Backend) {
    const NEW_SUBJECT: &str = "subj-new-1234";
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("rollback").await;
    poison_trigger(&db, &tenant, true).await;
    let refused = store
        .append(
            &tenant,
            vec![subject_draft(
                NEW_SUBJECT,
                &[("poison", json!("x")), ("name", json!("y"))],
            )],
        )
        .await
        .expect_err("the trigger refuses the group");
    assert!(refused.to_string().contains("poison refused"), "{refused}");
    poison_trigger(&db, &tenant, false).await;
    let (_, keys) = subject_rows(&db, tenant.as_str(), NEW_SUBJECT).await;
    assert!(keys.is_empty(), "the rolled-back key is not stored");
    let next = store
        .append(
            &tenant,
            vec![subject_draft(NEW_SUBJECT, &person(KEPT_TEXT, 1))],
        )
        .await
        .expect("append");
    assert!(
        all_readable(&store, &tenant, next[0].seq, 2).await,
        "the value is sealed under a stored key"
    );
    store.shutdown().await;
}

/// A store with no group-commit window, and tenant `name` holding one record of the kept
/// subject; returns the store, the tenant and that record's seq.
async fn store_with_a_record(db: &TestDb, name: &str) -> (Store, TenantId, u64) {
    let mut config = db.config();
    config.group_commit_window = std::time::Duration::ZERO;
    let store = Store::open_with_workers(config).await.expect("open");
    let tenant = TenantId::parse(name).expect("tenant");
    store.create_tenant(&tenant).await.expect("tenant");
    let head = store
        .append(
            &tenant,
            vec![subject_draft(KEPT_SUBJECT, &person(KEPT_TEXT, 0))],
        )
        .await
        .expect("append")[0]
        .seq;
    (store, tenant, head)
}

type Appended = Result<Vec<auditex::store::Receipt>, AppendError>;

/// Appends `first`, then `second`, while the tenant's append lock is held from outside, each
/// given time to reach the appender (the first waits for the lock, the second behind it), then
/// releases the lock; their answers.
async fn appended_behind_a_held_lock(
    db: &TestDb,
    store: &Store,
    tenant: &TenantId,
    first: Vec<ClientDraft>,
    second: Vec<ClientDraft>,
) -> (Appended, Appended) {
    let lock = super::append::HeldLock::take(db, tenant.as_str()).await;
    let mut tasks = Vec::new();
    for drafts in [first, second] {
        let (store, tenant) = (store.clone(), tenant.clone());
        tasks.push(tokio::spawn(
            async move { store.append(&tenant, drafts).await },
        ));
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    lock.release().await;
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("task"));
    }
    let second = answers.pop().expect("two answers");
    let first = answers.pop().expect("two answers");
    (first, second)
}

/// A group that fails at its insert, after its records were sealed and a data key made for its
/// subject, while the next group already waits behind it: the next group is written right after
/// the last committed record, under a key of its own group (an appender that sealed groups ahead
/// of the write before them, on the head that write would leave, must seal again here).
async fn a_group_waiting_behind_a_write_that_fails_lands_on_the_stored_head_under_a_stored_key(
    backend: Backend,
) {
    const SUBJECT: &str = "subj-pipe-5150";
    let db = TestDb::new(&backend).await;
    let (store, tenant, head) = store_with_a_record(&db, "pipeline").await;
    poison_trigger(&db, &tenant, true).await;
    // The first group makes the subject's key and waits for the lock; the second waits
    // behind it.
    let (doomed, behind) = appended_behind_a_held_lock(
        &db,
        &store,
        &tenant,
        vec![subject_draft(
            SUBJECT,
            &[("poison", json!("x")), ("name", json!("y"))],
        )],
        vec![subject_draft(SUBJECT, &person(ERASED_TEXT, 1))],
    )
    .await;
    let refused = doomed.expect_err("the trigger refuses the first group");
    assert!(refused.to_string().contains("poison refused"), "{refused}");
    let written = behind.expect("the group behind is written");
    assert_eq!(
        written[0].seq,
        head + 1,
        "right after the last committed record"
    );
    assert!(!written[0].duplicate);
    poison_trigger(&db, &tenant, false).await;

    let chain = crate::support::read_chain(&store, &tenant).await;
    assert_eq!(chain.len() as u64, head + 2);
    let keys = store.key_history(&tenant).await.expect("keys");
    crate::support::assert_valid_chain(&chain, &tenant, &keys);
    let last = &chain[usize::try_from(head + 1).expect("fits")];
    assert_eq!(
        (last.event_id, last.hash),
        (written[0].event_id, written[0].hash)
    );
    assert!(
        all_readable(&store, &tenant, written[0].seq, 2).await,
        "its values are sealed under a stored key"
    );
    let (values, data_keys) = subject_rows(&db, tenant.as_str(), SUBJECT).await;
    assert_eq!((values.len(), data_keys.len()), (2, 1));
    assert_eq!(
        data_keys[0].0,
        i64::try_from(written[0].seq).expect("fits"),
        "the key is named by the record it was made for, not the refused one"
    );
    // Erasing the subject erases them: they are the subject's values.
    store
        .erase_subject(&tenant, whole_subject(SUBJECT))
        .await
        .expect("erase");
    assert!(all_readable(&store, &tenant, written[0].seq, 0).await);
    store.shutdown().await;
}

/// A follow-up's erasable values are sealed under the key of the subject of the decision it
/// names, found through the stored decision. A follow-up arriving while that decision's group is
/// still being written must wait for it (an appender sealing it ahead would not find the
/// decision stored): otherwise its values would belong to no subject and outlive the subject's
/// erasure.
async fn a_follow_up_of_a_decision_being_written_is_sealed_under_its_subjects_key(
    backend: Backend,
) {
    const SUBJECT: &str = "subj-follow-6060";
    let db = TestDb::new(&backend).await;
    let (store, tenant, _) = store_with_a_record(&db, "follow").await;
    let decision = subject_draft(SUBJECT, &person(ERASED_TEXT, 1));
    let decision_id = decision.draft().event_id.to_string();
    let contest = prepare_client_draft(
        &new_event_id(),
        "contest",
        &json!({"decision_id": decision_id, "statement": "I disagree"}),
        &BTreeMap::from([("name".to_owned(), json!(format!("{ERASED_TEXT}-contest")))]),
        rand::random,
    )
    .unwrap_or_else(|e| panic!("valid contest: {e:?}"));
    let (first, second) =
        appended_behind_a_held_lock(&db, &store, &tenant, vec![decision], vec![contest]).await;
    let decided = first.expect("decision");
    let contested = second.expect("contest");
    assert_eq!(contested[0].seq, decided[0].seq + 1);
    let (values, keys) = subject_rows(&db, tenant.as_str(), SUBJECT).await;
    assert_eq!(
        (values.len(), keys.len()),
        (3, 1),
        "the contest's value is the subject's, under the subject's one key"
    );
    store
        .erase_subject(&tenant, whole_subject(SUBJECT))
        .await
        .expect("erase");
    assert!(all_readable(&store, &tenant, contested[0].seq, 0).await);
    store.shutdown().await;
}

/// Two instances on one database: the first caches the subject's key, the second erases the
/// subject (destroying the key); the first's next value for the subject gets a new key, because
/// a chain head moved by someone else empties the cache.
async fn a_key_another_instance_destroyed_is_not_used_from_this_instances_cache(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let (first, tenant) = db.open_with_tenant("nodes").await;
    let second = db.open().await;
    let (erased, _) = append_both_subjects(&first, &tenant, 2).await;
    second
        .erase_subject(&tenant, whole_subject(ERASED_SUBJECT))
        .await
        .expect("erased by the second instance");
    let later = first
        .append(
            &tenant,
            vec![subject_draft(ERASED_SUBJECT, &person(ERASED_TEXT, 7))],
        )
        .await
        .expect("append");
    assert!(!all_readable(&first, &tenant, erased[0], 2).await);
    assert!(
        all_readable(&first, &tenant, later[0].seq, 2).await,
        "the later value is sealed under a key that exists"
    );
    first.shutdown().await;
    second.shutdown().await;
}
