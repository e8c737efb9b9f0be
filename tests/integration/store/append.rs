//! The append pipeline: sequencing, chaining, idempotency, all-or-nothing batches, limits,
//! concurrency, capture time, restart and erasable values.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use auditex::store::crypto::{CryptoError, MasterKey};
use auditex::store::{AppendError, BATCH_RECORDS_MAX, LOOKUPS_AFTER_DUPLICATE, Store, StoreError};
use ed25519_dalek::Verifier;
use ledger::merkle::verify_consistency;
use ledger::record::EventType;
use ledger::types::{EventId, Hash, TreeSize};
use serde_json::json;
use sqlx::Connection;

use ledger::draft::{ClientDraft, ServiceOnlyEventType, prepare_client_draft, prepare_draft};

use crate::support::{
    Backend, ManualClock, TestDb, append_many, assert_valid_chain, backend_tests, decision,
    decision_with_id, decisions, draft, new_event_id, read_chain, reference_root, seq, tenant_id,
};

backend_tests!(
    an_appended_record_reads_back_by_seq_and_by_event_id,
    batches_form_one_gap_free_chain_of_linked_signed_records,
    a_range_read_returns_records_in_order_from_the_given_seq,
    a_retried_append_returns_the_original_receipts_and_writes_nothing,
    a_batch_mixing_retried_and_new_events_appends_only_the_new_ones,
    an_event_id_reused_with_other_content_is_a_conflict_and_nothing_of_its_batch_is_written,
    an_event_id_repeated_inside_one_batch_is_stored_once,
    an_event_id_repeated_inside_one_batch_with_other_content_fails_the_whole_batch,
    appending_for_an_unknown_tenant_is_refused,
    creating_a_tenant_twice_is_refused,
    a_batch_over_the_record_limit_is_refused_and_one_at_the_limit_is_accepted,
    an_empty_batch_appends_nothing,
    sixty_four_concurrent_appenders_build_one_gap_free_chain_with_every_receipt_once,
    capture_time_never_goes_backwards_even_when_the_clock_does,
    a_reopened_store_continues_the_chain_and_the_tree,
    erasable_values_come_back_and_match_their_commitments,
    a_wrong_master_key_cannot_open_the_signing_key_and_nothing_is_written,
    migrations_already_applied_are_not_applied_again,
    a_full_append_queue_refuses_at_once_with_a_retry_after,
    the_same_event_sent_twice_at_once_is_written_once_and_reported_new_once,
    repeats_met_at_the_write_in_one_group_are_answered_per_request_and_the_rest_is_written,
    a_faithful_retry_beside_a_conflicting_one_in_one_group_gets_the_stored_receipt,
    appends_after_shutdown_are_refused_and_queued_ones_are_committed,
    a_clock_further_behind_than_allowed_refuses_appends_until_it_catches_up,
    batches_beyond_the_queued_record_limit_are_shed_at_once_and_ones_waiting_past_the_deadline_are_refused_unwritten,
    no_service_only_event_type_can_be_appended_through_the_public_append_and_nothing_is_written,
);

async fn an_appended_record_reads_back_by_seq_and_by_event_id(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("acme").await;
    let event_id = new_event_id();
    let sent = decision_with_id(&event_id, "approved");

    let receipts = store
        .append(&tenant, vec![sent.clone()])
        .await
        .expect("append");

    assert_eq!(receipts.len(), 1);
    let receipt = &receipts[0];
    assert_eq!(receipt.seq, 0);
    assert!(!receipt.duplicate);
    assert_eq!(receipt.event_id.to_string(), event_id);
    let by_seq = store
        .record(&tenant, seq(0))
        .await
        .expect("read")
        .expect("record 0 exists");
    let by_id = store
        .record_by_event_id(&tenant, receipt.event_id)
        .await
        .expect("read")
        .expect("the event id is found");
    assert_eq!(by_seq, by_id);
    assert_eq!(by_seq.hash, receipt.hash);
    assert_eq!(by_seq.sig, receipt.sig);
    assert_eq!(by_seq.key_id, receipt.key_id);
    assert_eq!(by_seq.captured_at_us.unix_micros(), receipt.captured_at_us);
    assert_eq!(by_seq.captured_at_us.to_rfc3339(), receipt.captured_at);
    assert_eq!(
        by_seq.prev,
        Hash::ZERO,
        "the first record links to the zero hash"
    );
    assert_eq!(by_seq.event_type, EventType::Decision);
    assert_eq!(by_seq.payload, sent.draft().payload);
    assert_eq!(&by_seq.draft(), sent.draft());
    assert!(
        store.record(&tenant, seq(1)).await.expect("read").is_none(),
        "nothing exists beyond the head"
    );
    assert_eq!(
        store.tree_size(&tenant).await.expect("size"),
        TreeSize::new(1)
    );
}

async fn batches_form_one_gap_free_chain_of_linked_signed_records(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("acme").await;

    let mut receipts = Vec::new();
    for batch in [1, 50, 7, 130] {
        receipts.extend(
            store
                .append(&tenant, decisions(batch))
                .await
                .expect("append"),
        );
    }

    let seqs: Vec<u64> = receipts.iter().map(|r| r.seq).collect();
    assert_eq!(
        seqs,
        (0..188).collect::<Vec<_>>(),
        "receipts number 0.. in order"
    );
    let chain = read_chain(&store, &tenant).await;
    assert_eq!(chain.len(), 188);
    let keys = store.key_history(&tenant).await.expect("key history");
    assert_valid_chain(&chain, &tenant, &keys);
    for (receipt, record) in receipts.iter().zip(&chain) {
        assert_eq!(receipt.hash, record.hash);
        assert_eq!(receipt.event_id, record.event_id);
        // The receipt alone lets a client check the signature against the published key.
        let key = &keys.intervals()[0].public_key;
        key.verify(receipt.hash.as_bytes(), receipt.sig.signature())
            .expect("the receipt's signature verifies");
    }
}

async fn a_range_read_returns_records_in_order_from_the_given_seq(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("acme").await;
    append_many(&store, &tenant, 30, 30).await;

    let page = store.records(&tenant, seq(10), 5).await.expect("range");

    let seqs: Vec<u64> = page.iter().map(|r| r.seq.get()).collect();
    assert_eq!(seqs, vec![10, 11, 12, 13, 14]);
    let tail = store.records(&tenant, seq(28), 100).await.expect("range");
    assert_eq!(tail.len(), 2, "a range stops at the head");
    assert!(
        store
            .records(&tenant, seq(30), 10)
            .await
            .expect("range")
            .is_empty()
    );
}

async fn a_retried_append_returns_the_original_receipts_and_writes_nothing(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("acme").await;
    let batch = decisions(5);
    let first = store.append(&tenant, batch.clone()).await.expect("append");

    // A retry carries the same content; erasable salts would be fresh, ids and payloads are not.
    let again = store.append(&tenant, batch.clone()).await.expect("retry");

    assert_eq!(again.len(), first.len());
    for (a, b) in first.iter().zip(&again) {
        assert!(!a.duplicate);
        assert!(b.duplicate, "a retried event is marked duplicate");
        assert_eq!(
            (a.seq, a.hash, a.sig, a.key_id, a.captured_at_us),
            (b.seq, b.hash, b.sig, b.key_id, b.captured_at_us),
            "a retry gets the original receipt"
        );
    }
    assert_eq!(
        store.tree_size(&tenant).await.expect("size"),
        TreeSize::new(5),
        "a retry writes nothing"
    );

    // Also after a restart, when nothing is cached in memory.
    store.shutdown().await;
    drop(store);
    let store = db.open().await;
    let third = store.append(&tenant, batch).await.expect("retry");
    assert!(third.iter().all(|r| r.duplicate));
    assert_eq!(
        third.iter().map(|r| r.hash).collect::<Vec<_>>(),
        first.iter().map(|r| r.hash).collect::<Vec<_>>()
    );
    assert_eq!(
        store.tree_size(&tenant).await.expect("size"),
        TreeSize::new(5)
    );
}

async fn a_batch_mixing_retried_and_new_events_appends_only_the_new_ones(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("acme").await;
    let old = decision("approved");
    store
        .append(&tenant, vec![old.clone()])
        .await
        .expect("append");
    let new = decision("declined");

    let receipts = store
        .append(&tenant, vec![new.clone(), old.clone()])
        .await
        .expect("append");

    assert_eq!((receipts[0].seq, receipts[0].duplicate), (1, false));
    assert_eq!((receipts[1].seq, receipts[1].duplicate), (0, true));
    assert_eq!(
        store.tree_size(&tenant).await.expect("size"),
        TreeSize::new(2)
    );
}

async fn an_event_id_reused_with_other_content_is_a_conflict_and_nothing_of_its_batch_is_written(
    backend: Backend,
) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("acme").await;
    let reused = new_event_id();
    store
        .append(&tenant, vec![decision_with_id(&reused, "approved")])
        .await
        .expect("append");
    let innocent_before = decision("approved");
    let innocent_after = decision("approved");

    let err = store
        .append(
            &tenant,
            vec![
                innocent_before.clone(),
                decision_with_id(&reused, "declined"),
                innocent_after.clone(),
            ],
        )
        .await
        .expect_err("a different payload under an existing event id is refused");

    match err {
        AppendError::Conflict { event_id, reason } => {
            assert_eq!(event_id.to_string(), reused);
            assert!(
                reason.contains("payload"),
                "the reason says what differs: {reason}"
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        store.tree_size(&tenant).await.expect("size"),
        TreeSize::new(1),
        "nothing of the refused batch was written"
    );
    for d in [&innocent_before, &innocent_after] {
        assert!(
            store
                .record_by_event_id(&tenant, d.draft().event_id)
                .await
                .expect("read")
                .is_none()
        );
    }
    let original = store
        .record(&tenant, seq(0))
        .await
        .expect("read")
        .expect("exists");
    assert!(
        original.payload.as_str().contains("\"approved\""),
        "the original record is unchanged"
    );
    // The refused batch claimed no sequence number: the next append gets seq 1.
    let next = store
        .append(&tenant, vec![innocent_after])
        .await
        .expect("append");
    assert_eq!(next[0].seq, 1);
}

async fn an_event_id_repeated_inside_one_batch_is_stored_once(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("acme").await;
    let id = new_event_id();
    let twice = decision_with_id(&id, "approved");

    let receipts = store
        .append(&tenant, vec![twice.clone(), decision("other"), twice])
        .await
        .expect("append");

    assert_eq!(receipts.len(), 3);
    assert_eq!(
        receipts[0].seq, receipts[2].seq,
        "both copies get one record"
    );
    assert_eq!(receipts[0].hash, receipts[2].hash);
    assert!(!receipts[0].duplicate, "the first copy writes the record");
    assert!(receipts[2].duplicate, "the second copy writes nothing");
    assert_eq!(receipts[1].seq, 1);
    assert_eq!(
        store.tree_size(&tenant).await.expect("size"),
        TreeSize::new(2)
    );
}

async fn an_event_id_repeated_inside_one_batch_with_other_content_fails_the_whole_batch(
    backend: Backend,
) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("acme").await;
    let id = new_event_id();

    let err = store
        .append(
            &tenant,
            vec![
                decision("first"),
                decision_with_id(&id, "approved"),
                decision_with_id(&id, "declined"),
            ],
        )
        .await
        .expect_err("conflicting copies are refused");

    assert!(
        matches!(&err, AppendError::Conflict { event_id, .. } if event_id.to_string() == id),
        "{err:?}"
    );
    assert_eq!(
        store.tree_size(&tenant).await.expect("size"),
        TreeSize::ZERO
    );
}

async fn appending_for_an_unknown_tenant_is_refused(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let (store, _acme) = db.open_with_tenant("acme").await;
    let ghost = tenant_id("ghost");

    let err = store
        .append(&ghost, decisions(1))
        .await
        .expect_err("no such tenant");

    assert!(matches!(err, AppendError::UnknownTenant), "{err:?}");
    assert!(!err.is_retryable());
    assert!(!store.tenant_exists(&ghost).await.expect("query"));
    assert!(matches!(
        store.key_history(&ghost).await,
        Err(StoreError::UnknownTenant)
    ));
    assert!(store.record(&ghost, seq(0)).await.expect("read").is_none());
    assert_eq!(
        store.tenants().await.expect("list"),
        vec![tenant_id("acme")]
    );
}

async fn creating_a_tenant_twice_is_refused(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("acme").await;
    let before = store.key_history(&tenant).await.expect("keys");

    let err = store
        .create_tenant(&tenant)
        .await
        .expect_err("exists already");

    assert!(matches!(err, StoreError::TenantExists(_)), "{err:?}");
    assert_eq!(
        store.key_history(&tenant).await.expect("keys"),
        before,
        "the existing key is kept"
    );
}

async fn a_batch_over_the_record_limit_is_refused_and_one_at_the_limit_is_accepted(
    backend: Backend,
) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("acme").await;

    let err = store
        .append(&tenant, decisions(BATCH_RECORDS_MAX + 1))
        .await
        .expect_err("too large");

    match err {
        AppendError::BatchTooLarge { records, max } => {
            assert_eq!((records, max), (BATCH_RECORDS_MAX + 1, BATCH_RECORDS_MAX));
        }
        other => panic!("expected BatchTooLarge, got {other:?}"),
    }
    assert_eq!(
        store.tree_size(&tenant).await.expect("size"),
        TreeSize::ZERO
    );
    let receipts = store
        .append(&tenant, decisions(BATCH_RECORDS_MAX))
        .await
        .expect("a full batch");
    assert_eq!(receipts.len(), BATCH_RECORDS_MAX);
}

async fn an_empty_batch_appends_nothing(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("acme").await;

    let receipts = store.append(&tenant, Vec::new()).await.expect("append");

    assert!(receipts.is_empty());
    assert_eq!(
        store.tree_size(&tenant).await.expect("size"),
        TreeSize::ZERO
    );
}

async fn sixty_four_concurrent_appenders_build_one_gap_free_chain_with_every_receipt_once(
    backend: Backend,
) {
    const APPENDERS: usize = 64;
    const APPENDS_EACH: usize = 8;
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("acme").await;

    let mut tasks = Vec::new();
    for _ in 0..APPENDERS {
        let store = store.clone();
        let tenant = tenant.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for _ in 0..APPENDS_EACH {
                let d = decision("approved");
                let id = d.draft().event_id;
                let receipt = store
                    .append(&tenant, vec![d])
                    .await
                    .expect("append")
                    .remove(0);
                assert_eq!(receipt.event_id, id);
                mine.push(receipt);
            }
            mine
        }));
    }
    let mut receipts = Vec::new();
    for task in tasks {
        receipts.extend(task.await.expect("task"));
    }

    let total = APPENDERS * APPENDS_EACH;
    let mut seqs: Vec<u64> = receipts.iter().map(|r| r.seq).collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (0..u64::try_from(total).expect("fits")).collect::<Vec<_>>(),
        "every sequence number was handed out exactly once"
    );
    let chain = read_chain(&store, &tenant).await;
    assert_eq!(chain.len(), total);
    assert_valid_chain(
        &chain,
        &tenant,
        &store.key_history(&tenant).await.expect("keys"),
    );
    for r in &receipts {
        let record = &chain[usize::try_from(r.seq).expect("fits")];
        assert_eq!((record.event_id, record.hash), (r.event_id, r.hash));
        assert!(!r.duplicate);
    }
    let ids: HashSet<EventId> = chain.iter().map(|r| r.event_id).collect();
    assert_eq!(ids.len(), total, "no event was stored twice");
}

async fn capture_time_never_goes_backwards_even_when_the_clock_does(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let clock = ManualClock::new();
    let mut config = db.config();
    config.clock = clock.clone();
    // Within the allowance, records carry the chain head's time (beyond it they are refused:
    // see the next test).
    config.clock_behind_max = Duration::from_secs(2 * 3600);
    let store = Store::open_with_workers(config).await.expect("open");
    let tenant = tenant_id("acme");
    store.create_tenant(&tenant).await.expect("tenant");
    let t0 = ManualClock::START_US;

    let first = store.append(&tenant, decisions(2)).await.expect("append");
    clock.set(t0 - 3_600_000_000); // an hour back, as after a bad NTP step
    let behind = store.append(&tenant, decisions(2)).await.expect("append");
    clock.set(t0 + 5_000_000);
    let ahead = store.append(&tenant, decisions(1)).await.expect("append");

    assert!(first.iter().all(|r| r.captured_at_us == t0));
    assert!(
        behind.iter().all(|r| r.captured_at_us == t0),
        "a clock that went back does not move capture time back: {behind:?}"
    );
    assert_eq!(
        ahead[0].captured_at_us,
        t0 + 5_000_000,
        "the clock is used again once it is ahead"
    );
    let chain = read_chain(&store, &tenant).await;
    assert_valid_chain(
        &chain,
        &tenant,
        &store.key_history(&tenant).await.expect("keys"),
    );

    // The floor is the stored chain, not memory: after a restart with the clock back again,
    // capture time still does not go backwards.
    store.shutdown().await;
    drop(store);
    clock.set(t0 - 1);
    let mut config = db.config();
    config.clock = clock.clone();
    config.clock_behind_max = Duration::from_secs(2 * 3600);
    let store = Store::open_with_workers(config).await.expect("reopen");
    let after_restart = store.append(&tenant, decisions(1)).await.expect("append");
    assert_eq!(after_restart[0].captured_at_us, t0 + 5_000_000);
}

async fn a_reopened_store_continues_the_chain_and_the_tree(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("acme").await;
    // 300 records: one complete level-8 tile and a partial one, so the resumed tree needs both.
    append_many(&store, &tenant, 300, 100).await;
    let root_before = store
        .root_at(&tenant, TreeSize::new(300))
        .await
        .expect("root");
    let head_before = store
        .record(&tenant, seq(299))
        .await
        .expect("read")
        .expect("exists");
    store.shutdown().await;
    drop(store);

    let store = db.open().await;
    let receipts = store
        .append(&tenant, decisions(5))
        .await
        .expect("append after reopening");

    assert_eq!(receipts[0].seq, 300, "sequence numbers continue");
    let next = store
        .record(&tenant, seq(300))
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(next.prev, head_before.hash, "the chain link continues");
    let chain = read_chain(&store, &tenant).await;
    assert_valid_chain(
        &chain,
        &tenant,
        &store.key_history(&tenant).await.expect("keys"),
    );
    let hashes: Vec<Hash> = chain.iter().map(|r| r.hash).collect();
    assert_eq!(root_before, reference_root(&hashes[..300]));
    let root_after = store
        .root_at(&tenant, TreeSize::new(305))
        .await
        .expect("root");
    assert_eq!(
        root_after,
        reference_root(&hashes),
        "the resumed tree is the same tree"
    );
    let proof = store
        .consistency_proof(&tenant, TreeSize::new(300), TreeSize::new(305))
        .await
        .expect("proof");
    verify_consistency(
        TreeSize::new(300),
        TreeSize::new(305),
        &proof,
        root_before,
        root_after,
    )
    .expect("the tree after the restart extends the tree before it");
}

async fn erasable_values_come_back_and_match_their_commitments(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("acme").await;
    let erasable = BTreeMap::from([
        ("name".to_owned(), json!("Ada Lovelace")),
        (
            "income".to_owned(),
            json!({"amount": 52000, "currency": "EUR"}),
        ),
    ]);
    let sent = draft(&new_event_id(), "approved", &erasable);
    let receipts = store
        .append(&tenant, vec![decision("plain"), sent.clone()])
        .await
        .expect("append");
    let at = seq(receipts[1].seq);

    let values = store.erasable_values(&tenant, at).await.expect("values");

    assert_eq!(values.len(), 2);
    let record = store
        .record(&tenant, at)
        .await
        .expect("read")
        .expect("exists");
    for (name, value) in &values {
        assert_eq!(
            &value.value,
            &erasable[name.as_str()],
            "the value of {} comes back",
            name.as_str()
        );
        assert_eq!(
            value.salt,
            sent.erasable_values()[name].salt,
            "with its salt"
        );
        assert_eq!(
            value.commitment("").expect("commitment"),
            record.erasable[name],
            "and matches the record's commitment"
        );
    }
    assert!(
        store
            .erasable_values(&tenant, seq(receipts[0].seq))
            .await
            .expect("values")
            .is_empty(),
        "a record without erasable fields has none"
    );
    // A retry carries the same values under fresh salts: still a duplicate, not a conflict.
    let retry = draft(&sent.draft().event_id.to_string(), "approved", &erasable);
    assert_ne!(retry.draft().erasable, sent.draft().erasable, "fresh salts");
    let again = store.append(&tenant, vec![retry]).await.expect("retry");
    assert!(again[0].duplicate);
    assert_eq!(again[0].hash, receipts[1].hash);
    // Other values under the same event id are a conflict.
    let changed = BTreeMap::from([
        ("name".to_owned(), json!("Charles Babbage")),
        (
            "income".to_owned(),
            json!({"amount": 52000, "currency": "EUR"}),
        ),
    ]);
    let err = store
        .append(
            &tenant,
            vec![draft(
                &sent.draft().event_id.to_string(),
                "approved",
                &changed,
            )],
        )
        .await
        .expect_err("other erasable content");
    assert!(matches!(err, AppendError::Conflict { .. }), "{err:?}");
}

async fn a_wrong_master_key_cannot_open_the_signing_key_and_nothing_is_written(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("acme").await;
    store.append(&tenant, decisions(1)).await.expect("append");
    store.shutdown().await;
    drop(store);

    let mut config = db.config();
    config.master_key = MasterKey::generate();
    let store = Store::open_with_workers(config)
        .await
        .expect("open needs no key yet");
    let err = store
        .append(&tenant, decisions(1))
        .await
        .expect_err("the signing key cannot be opened");

    // The sealed key names the master key that sealed it, and the error names that key.
    assert!(
        matches!(
            &err,
            AppendError::Store(StoreError::Crypto(CryptoError::UnknownMasterKey { key_id }))
                if *key_id == db.master_key.id()
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&format!(
            "master key {}, which is not configured",
            db.master_key.id()
        )),
        "the error says what is wrong: {err}"
    );
    assert_eq!(
        store.tree_size(&tenant).await.expect("size"),
        TreeSize::new(1)
    );
    // Records remain readable and verifiable without the private key.
    let chain = read_chain(&store, &tenant).await;
    assert_valid_chain(
        &chain,
        &tenant,
        &store.key_history(&tenant).await.expect("keys"),
    );
}

async fn migrations_already_applied_are_not_applied_again(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let admin = db.is_postgres().then(|| db.postgres_owner_url().to_owned());

    let applied = Store::migrate(&db.database, admin.as_deref())
        .await
        .expect("migrate again");

    assert_eq!(applied, 0);
}

async fn a_clock_further_behind_than_allowed_refuses_appends_until_it_catches_up(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let clock = ManualClock::new();
    let mut config = db.config();
    config.clock = clock.clone();
    assert_eq!(
        config.clock_behind_max,
        Duration::from_secs(300),
        "five minutes by default"
    );
    let store = Store::open_with_workers(config).await.expect("open");
    let tenant = tenant_id("acme");
    store.create_tenant(&tenant).await.expect("tenant");
    let t0 = ManualClock::START_US;
    store.append(&tenant, decisions(1)).await.expect("append");
    assert_eq!(store.fault_status().clock_behind_seconds, 0.0);

    // Ten minutes back: refused, nothing written, and said so.
    clock.set(t0 - 600_000_000);
    let refused = decision("refused");
    let refused_id = refused.draft().event_id;
    match store.append(&tenant, vec![refused]).await {
        Err(ref e @ AppendError::Store(StoreError::ClockBehind { behind, allowed })) => {
            assert_eq!(behind, Duration::from_secs(600));
            assert_eq!(allowed, Duration::from_secs(300));
            assert!(e.is_retryable());
            assert!(e.to_string().contains("600 s behind"), "{e}");
        }
        other => panic!("expected ClockBehind, got {other:?}"),
    }
    let status = store.fault_status();
    assert_eq!(status.clock_behind_seconds, 600.0);
    assert!(status.clock_beyond_allowance);
    assert_eq!(status.clock_refusals, 1);
    assert!(
        store
            .record_by_event_id(&tenant, refused_id)
            .await
            .expect("read")
            .is_none()
    );
    assert_eq!(
        store.tree_size(&tenant).await.expect("size"),
        TreeSize::new(1)
    );

    // One minute back: within the allowance, accepted at the chain head's time, and reported.
    clock.set(t0 - 60_000_000);
    let within = store.append(&tenant, decisions(1)).await.expect("append");
    assert_eq!(within[0].captured_at_us, t0);
    let status = store.fault_status();
    assert_eq!(status.clock_behind_seconds, 60.0);
    assert!(!status.clock_beyond_allowance);

    // Caught up: the clock is used again and nothing is reported.
    clock.set(t0 + 1_000_000);
    let after = store.append(&tenant, decisions(1)).await.expect("append");
    assert_eq!(after[0].captured_at_us, t0 + 1_000_000);
    assert_eq!(store.fault_status().clock_behind_seconds, 0.0);
    assert_eq!(
        store.tree_size(&tenant).await.expect("size"),
        TreeSize::new(3)
    );
}

async fn batches_beyond_the_queued_record_limit_are_shed_at_once_and_ones_waiting_past_the_deadline_are_refused_unwritten(
    backend: Backend,
) {
    let db = TestDb::new(&backend).await;
    let mut config = db.config();
    config.group_commit_window = Duration::ZERO;
    // Room for the blocked single record and two full batches; a small deadline makes the
    // wait structural.
    config.queue_records_max = 2 * BATCH_RECORDS_MAX + 1;
    config.queue_wait_max = Duration::from_millis(200);
    let store = Store::open_with_workers(config).await.expect("open");
    let tenant = tenant_id("acme");
    store.create_tenant(&tenant).await.expect("tenant");
    store
        .append(&tenant, decisions(1))
        .await
        .expect("the appender is running");

    let lock = HeldLock::take(&db, "acme").await;
    // The appender takes the first request and blocks committing it.
    let first = tokio::spawn({
        let (store, tenant) = (store.clone(), tenant.clone());
        async move { store.append(&tenant, decisions(1)).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Ten full batches offered at once, five times the queue's room.
    let offered: Vec<_> = (0..10)
        .map(|_| {
            let (store, tenant) = (store.clone(), tenant.clone());
            let batch = decisions(BATCH_RECORDS_MAX);
            let ids: Vec<EventId> = batch.iter().map(|d| d.draft().event_id).collect();
            (
                ids,
                tokio::spawn(async move { store.append(&tenant, batch).await }),
            )
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        store.append_queue_load().0,
        2 * BATCH_RECORDS_MAX + 1,
        "two batches wait in the queue behind the blocked record"
    );
    let shed = store.fault_status().shed_requests;
    assert_eq!(shed, 8, "the other eight were refused at once");
    // The two queued batches have now waited past the deadline.
    lock.release().await;

    let mut shed_answers = 0;
    let mut deadline_answers = 0;
    for (ids, task) in offered {
        match task.await.expect("task") {
            Err(e @ AppendError::Overloaded { retry_after }) => {
                assert!(retry_after > Duration::ZERO && e.is_retryable());
                shed_answers += 1;
            }
            Err(e @ AppendError::QueueDeadline { .. }) => {
                assert!(e.is_retryable());
                assert!(e.to_string().contains("waited"), "{e}");
                deadline_answers += 1;
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        // A refused batch wrote nothing.
        for id in [ids[0], ids[ids.len() - 1]] {
            assert!(
                store
                    .record_by_event_id(&tenant, id)
                    .await
                    .expect("read")
                    .is_none()
            );
        }
    }
    assert_eq!((shed_answers, deadline_answers), (8, 2));
    let first = first
        .await
        .expect("task")
        .expect("the first request commits");
    assert_eq!(first[0].seq, 1);
    let status = store.fault_status();
    assert_eq!(status.deadline_expired_requests, 2);
    assert_eq!(
        store.append_queue_load(),
        (0, 0),
        "the budgets are given back"
    );
    // With the queue drained, a full batch is accepted again.
    let again = store
        .append(&tenant, decisions(BATCH_RECORDS_MAX))
        .await
        .expect("accepted after the flood");
    assert_eq!(again[0].seq, 2);
    assert_eq!(
        store.tree_size(&tenant).await.expect("size"),
        TreeSize::new(2 + BATCH_RECORDS_MAX as u64)
    );
}

/// Holds the tenant's append lock from outside the store, so its appender blocks mid-commit:
/// SQLite's write lock, or PostgreSQL's per-tenant advisory lock.
pub(super) enum HeldLock {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl HeldLock {
    pub(super) async fn take(db: &TestDb, tenant: &str) -> HeldLock {
        if db.is_postgres() {
            let mut conn = sqlx::PgConnection::connect(db.postgres_app_url())
                .await
                .expect("connect");
            sqlx::query("SELECT pg_advisory_lock(hashtextextended('auditex:append:' || $1, 0))")
                .bind(tenant)
                .execute(&mut conn)
                .await
                .expect("advisory lock");
            HeldLock::Postgres(conn)
        } else {
            let options = sqlx::sqlite::SqliteConnectOptions::new().filename(db.sqlite_path());
            let mut conn = sqlx::SqliteConnection::connect_with(&options)
                .await
                .expect("open");
            sqlx::query("BEGIN IMMEDIATE")
                .execute(&mut conn)
                .await
                .expect("write lock");
            HeldLock::Sqlite(conn)
        }
    }

    pub(super) async fn release(self) {
        match self {
            HeldLock::Sqlite(mut conn) => {
                sqlx::query("ROLLBACK")
                    .execute(&mut conn)
                    .await
                    .expect("release");
                conn.close().await.ok();
            }
            HeldLock::Postgres(conn) => {
                conn.close().await.ok();
            }
        }
    }
}

async fn a_full_append_queue_refuses_at_once_with_a_retry_after(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let mut config = db.config();
    config.queue_requests_max = 1;
    config.group_commit_window = Duration::ZERO;
    let store = Store::open_with_workers(config).await.expect("open");
    let tenant = tenant_id("acme");
    store.create_tenant(&tenant).await.expect("tenant");
    store
        .append(&tenant, decisions(1))
        .await
        .expect("the appender is running");

    let lock = HeldLock::take(&db, "acme").await;
    // The appender takes the first request and blocks committing it; the second fills the queue.
    let first = tokio::spawn({
        let (store, tenant) = (store.clone(), tenant.clone());
        async move { store.append(&tenant, decisions(1)).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = tokio::spawn({
        let (store, tenant) = (store.clone(), tenant.clone());
        async move { store.append(&tenant, decisions(1)).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused_draft = decision("refused");
    let refused_id = refused_draft.draft().event_id;
    let third = tokio::time::timeout(
        Duration::from_secs(2),
        store.append(&tenant, vec![refused_draft]),
    )
    .await
    .expect("a full queue answers at once instead of waiting");
    lock.release().await;

    match third {
        Err(ref e @ AppendError::Overloaded { retry_after }) => {
            assert!(retry_after > Duration::ZERO);
            assert!(e.is_retryable());
            assert!(e.to_string().contains("retry after"), "{e}");
        }
        other => panic!("expected Overloaded, got {other:?}"),
    }
    let first = first
        .await
        .expect("task")
        .expect("the first request commits");
    let second = second
        .await
        .expect("task")
        .expect("the queued request commits");
    assert_eq!((first[0].seq, second[0].seq), (1, 2));
    assert!(
        store
            .record_by_event_id(&tenant, refused_id)
            .await
            .expect("read")
            .is_none(),
        "the refused request wrote nothing"
    );
    assert_eq!(
        store.tree_size(&tenant).await.expect("size"),
        TreeSize::new(3)
    );
}

async fn the_same_event_sent_twice_at_once_is_written_once_and_reported_new_once(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = open_with_wide_window(&db).await;
    let same = decision("approved");

    let (a, b) = tokio::join!(
        store.append(&tenant, vec![same.clone()]),
        store.append(&tenant, vec![same.clone()]),
    );

    let (a, b) = (a.expect("append").remove(0), b.expect("append").remove(0));
    assert_eq!(
        (a.seq, a.hash),
        (b.seq, b.hash),
        "one record for both requests"
    );
    assert_eq!(
        store.tree_size(&tenant).await.expect("size"),
        TreeSize::new(1)
    );
    assert!(
        a.duplicate != b.duplicate,
        "exactly one request wrote the record, the other is told it is a duplicate: {a:?} {b:?}"
    );
}

/// A store whose group-commit window is wide (200 ms), so that requests sent together land in
/// one group commit, and its tenant "acme".
async fn open_with_wide_window(db: &TestDb) -> (Store, ledger::types::TenantId) {
    let mut config = db.config();
    config.group_commit_window = Duration::from_millis(200);
    let store = Store::open_with_workers(config).await.expect("open");
    let tenant = tenant_id("acme");
    store.create_tenant(&tenant).await.expect("tenant");
    (store, tenant)
}

/// A group is written before its event ids are looked up, unless a repeat was met shortly
/// before; the unique index on event ids refuses a group with a repeat, which is then decided
/// again. Both ways must answer every request as the look-up would: a repeat with its stored
/// receipt, other content under a stored id as a conflict of its request alone, new events
/// written once, erasable values intact.
async fn repeats_met_at_the_write_in_one_group_are_answered_per_request_and_the_rest_is_written(
    backend: Backend,
) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = open_with_wide_window(&db).await;
    let erasable = BTreeMap::from([("name".to_owned(), json!("Ada Lovelace"))]);
    let a = draft(&new_event_id(), "approved", &erasable);
    let b = decision("declined");
    let stored = store
        .append(&tenant, vec![a.clone(), b.clone()])
        .await
        .expect("append");

    // The first repeat is met at the write; the groups after it look up first, until enough
    // have passed without a repeat that writing first resumes.
    let again = store.append(&tenant, vec![a.clone()]).await.expect("retry");
    assert!(again[0].duplicate);
    assert_eq!(again[0].hash, stored[0].hash);
    for _ in 0..LOOKUPS_AFTER_DUPLICATE + 6 {
        store
            .append(&tenant, vec![decision("filler")])
            .await
            .expect("append");
    }

    let changed = draft(
        &a.draft().event_id.to_string(),
        "approved",
        &BTreeMap::from([("name".to_owned(), json!("Charles Babbage"))]),
    );
    let (c, d, e) = (decision("c"), decision("d"), decision("e"));
    let (conflicting, repeating, fresh) = tokio::join!(
        store.append(&tenant, vec![c.clone(), changed]),
        store.append(&tenant, vec![b.clone(), d.clone()]),
        store.append(&tenant, vec![e.clone()]),
    );

    let err = conflicting.expect_err("other values under a stored event id");
    assert!(matches!(err, AppendError::Conflict { .. }), "{err:?}");
    let repeating = repeating.expect("a repeat beside a new event");
    assert!(repeating[0].duplicate);
    assert_eq!(
        (repeating[0].seq, repeating[0].hash),
        (stored[1].seq, stored[1].hash),
        "the stored receipt"
    );
    assert!(!repeating[1].duplicate);
    let fresh = fresh.expect("a request without repeats");
    assert!(!fresh[0].duplicate);
    assert_eq!(
        store.tree_size(&tenant).await.expect("size"),
        TreeSize::new(2 + u64::from(LOOKUPS_AFTER_DUPLICATE) + 6 + 2),
        "d and e written once each, nothing of the conflicting request"
    );
    assert!(
        store
            .record_by_event_id(&tenant, c.draft().event_id)
            .await
            .expect("read")
            .is_none(),
        "the conflicting request's new event is not written"
    );
    let chain = read_chain(&store, &tenant).await;
    let keys = store.key_history(&tenant).await.expect("key history");
    assert_valid_chain(&chain, &tenant, &keys);
    let values = store
        .erasable_values(&tenant, seq(stored[0].seq))
        .await
        .expect("values");
    assert_eq!(values.len(), 1);
    assert!(
        values.values().all(|v| v.value == json!("Ada Lovelace")),
        "the stored value is untouched"
    );
}

/// Two requests of one group name a stored event id: one with other content, one a faithful
/// retry. The retry is judged against the stored record, not against the other request's
/// draft: it gets the stored receipt, the other its conflict. Likewise a new event id sent by
/// two requests with different content, beside a conflict, is written for the request that
/// is not refused.
async fn a_faithful_retry_beside_a_conflicting_one_in_one_group_gets_the_stored_receipt(
    backend: Backend,
) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = open_with_wide_window(&db).await;
    let x = decision("approved");
    let stored = store
        .append(&tenant, vec![x.clone()])
        .await
        .expect("append");
    let x_id = x.draft().event_id.to_string();
    let n_id = new_event_id();

    let (conflicting, retry) = tokio::join!(
        store.append(&tenant, vec![decision_with_id(&x_id, "declined")]),
        store.append(&tenant, vec![x.clone()]),
    );
    let err = conflicting.expect_err("other content under a stored event id");
    assert!(matches!(err, AppendError::Conflict { .. }), "{err:?}");
    let retry = retry.expect("a faithful retry is answered");
    assert!(retry[0].duplicate);
    assert_eq!(
        (retry[0].seq, retry[0].hash),
        (stored[0].seq, stored[0].hash)
    );

    let (refused, written) = tokio::join!(
        store.append(
            &tenant,
            vec![
                decision_with_id(&n_id, "approved"),
                decision_with_id(&x_id, "declined"),
            ]
        ),
        store.append(&tenant, vec![decision_with_id(&n_id, "referred")]),
    );
    let err = refused.expect_err("other content under a stored event id");
    assert!(matches!(err, AppendError::Conflict { .. }), "{err:?}");
    let written = written.expect("nothing is stored under the new id");
    assert!(!written[0].duplicate);
    let record = store
        .record_by_event_id(&tenant, written[0].event_id)
        .await
        .expect("read")
        .expect("written");
    assert!(record.payload.as_str().contains("\"referred\""));
    assert_eq!(
        store.tree_size(&tenant).await.expect("size"),
        TreeSize::new(2)
    );
}

async fn appends_after_shutdown_are_refused_and_queued_ones_are_committed(backend: Backend) {
    const QUEUED: usize = 8;
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("acme").await;
    store
        .append(&tenant, decisions(1))
        .await
        .expect("the appender is running");
    // Keep the appender busy so that appends are still queued when shutdown begins.
    let lock = HeldLock::take(&db, "acme").await;
    let mut queued = Vec::new();
    for _ in 0..QUEUED {
        let (store, tenant) = (store.clone(), tenant.clone());
        queued.push(tokio::spawn(async move {
            store.append(&tenant, decisions(1)).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let shutdown = tokio::spawn({
        let store = store.clone();
        async move { store.shutdown().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Bounded waits: a store that wrongly accepted these would block on the held lock.
    let refused_at_once = Duration::from_secs(2);
    let late = tokio::time::timeout(refused_at_once, store.append(&tenant, decisions(1))).await;
    let rotation = tokio::time::timeout(refused_at_once, store.rotate_key(&tenant)).await;
    lock.release().await;
    shutdown.await.expect("shutdown completes");
    let late = late.expect("an append after shutdown is answered at once");
    let rotation = rotation.expect("a rotation after shutdown is answered at once");

    assert!(
        matches!(late, Err(AppendError::ShuttingDown)),
        "an append after shutdown began is refused: {late:?}"
    );
    assert!(
        matches!(rotation, Err(AppendError::ShuttingDown)),
        "{rotation:?}"
    );
    for task in queued {
        task.await
            .expect("task")
            .expect("an append queued before shutdown is committed");
    }
    assert_eq!(
        store.tree_size(&tenant).await.expect("size"),
        TreeSize::new(1 + QUEUED as u64),
        "every queued append is stored, and nothing else"
    );
    let latest = store
        .latest_checkpoint(&tenant)
        .await
        .expect("read")
        .expect("shutdown publishes a final checkpoint");
    assert_eq!(latest.size, TreeSize::new(1 + QUEUED as u64));
}

/// Resident memory of this process, KiB (Linux).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// A measurement, not a check (memory figures depend on the allocator and the machine): 256
/// submitters offer 1000-record batches for ten seconds at the default queue limits, and the
/// resident memory is printed before, at the peak, and after. Run with
/// `cargo test --release --test integration -- --ignored --nocapture a_flood_of_large_batches`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run by hand"]
async fn a_flood_of_large_batches_is_shed_and_resident_memory_is_measured() {
    let db = TestDb::new(&Backend::Sqlite).await;
    let (store, tenant) = db.open_with_tenant("acme").await;
    let before = rss_kib();
    let until = std::time::Instant::now() + Duration::from_secs(10);
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let tasks: Vec<_> = (0..256)
        .map(|_| {
            let (store, tenant, peak) = (store.clone(), tenant.clone(), peak.clone());
            tokio::spawn(async move {
                let (mut ok, mut shed) = (0u64, 0u64);
                while std::time::Instant::now() < until {
                    match store.append(&tenant, decisions(BATCH_RECORDS_MAX)).await {
                        Ok(r) => ok += r.len() as u64,
                        Err(e) if e.is_retryable() => {
                            shed += 1;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(e) => panic!("{e}"),
                    }
                    peak.fetch_max(rss_kib(), std::sync::atomic::Ordering::Relaxed);
                }
                (ok, shed)
            })
        })
        .collect();
    let (mut ok, mut shed) = (0, 0);
    for t in tasks {
        let (o, s) = t.await.expect("task");
        ok += o;
        shed += s;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib();
    println!(
        "flood: {ok} records appended, {shed} requests shed; RSS before {before} KiB, peak {} KiB, after {after} KiB",
        peak.load(std::sync::atomic::Ordering::Relaxed)
    );
    assert_eq!(
        store.tree_size(&tenant).await.expect("size").get(),
        ok,
        "every acknowledged record is stored"
    );
}

/// A payload that is valid for `event_type`, so that only the type can be the reason for a refusal.
fn service_payload(event_type: EventType) -> serde_json::Value {
    match event_type {
        EventType::KeyRotation => json!({
            "new_key_id": "0123456789abcdef",
            "new_public_key": "ab".repeat(32),
            "effective_from_seq": 3,
        }),
        EventType::IntegrityCheck => json!({"outcome": "passed"}),
        EventType::Access | EventType::Administration => {
            json!({"actor": "admin@bank.example", "action": "sign_in"})
        }
        EventType::RollbackAcknowledged => json!({"operator": "ops", "reason": "restored"}),
        other => panic!("{other} is not a service-only type"),
    }
}

async fn no_service_only_event_type_can_be_appended_through_the_public_append_and_nothing_is_written(
    backend: Backend,
) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("acme").await;
    store
        .append(&tenant, decisions(2))
        .await
        .expect("decisions append");
    let service_only = [
        EventType::KeyRotation,
        EventType::IntegrityCheck,
        EventType::Access,
        EventType::Administration,
        EventType::RollbackAcknowledged,
    ];
    for t in service_only {
        let event_id = new_event_id();
        let payload = service_payload(t);
        let prepared = prepare_draft(
            &event_id,
            t.as_str(),
            &payload,
            &BTreeMap::new(),
            rand::random,
        )
        .unwrap_or_else(|e| panic!("a well-formed {t} draft: {e:?}"));
        // `Store::append` takes only client drafts, and a service-only type never becomes one.
        assert_eq!(
            ClientDraft::try_from(prepared).map(|_| ()),
            Err(ServiceOnlyEventType(t))
        );
        let errors = prepare_client_draft(
            &event_id,
            t.as_str(),
            &payload,
            &BTreeMap::new(),
            rand::random,
        )
        .expect_err("refused");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "/event_type");
        assert_eq!(
            errors[0].problem,
            format!("{t} events are written by the service itself and cannot be appended")
        );
        assert!(
            store
                .record_by_event_id(&tenant, EventId::parse(&event_id).expect("id"))
                .await
                .expect("read")
                .is_none(),
            "no {t} record exists"
        );
        assert!(
            store
                .records_of_type(&tenant, t, None, 10)
                .await
                .expect("read")
                .is_empty(),
            "no {t} record exists"
        );
    }
    assert_eq!(
        store.tree_size(&tenant).await.expect("size"),
        TreeSize::new(2),
        "only the two decisions are in the chain"
    );
    let keys = store.key_history(&tenant).await.expect("key history");
    assert_eq!(keys.intervals().len(), 1, "the key history is untouched");
    assert_valid_chain(&read_chain(&store, &tenant).await, &tenant, &keys);
    // The service's own key rotation still goes through its own door.
    store
        .rotate_key(&tenant)
        .await
        .expect("the service rotates the key");
    assert_eq!(
        store
            .records_of_type(&tenant, EventType::KeyRotation, None, 10)
            .await
            .expect("read")
            .len(),
        1
    );
    store.shutdown().await;
}
