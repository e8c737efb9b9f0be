//! Tenant isolation through the store API: one tenant can neither read nor prove another's
//! records, and the two chains are independent.

use auditex::store::StoreError;
use ledger::types::{LeafIndex, TreeSize};

use crate::support::{
    Backend, TestDb, append_many, assert_valid_chain, backend_tests, decision_with_id,
    new_event_id, read_chain, seq, tenant_id,
};

backend_tests!(
    a_tenant_cannot_read_or_prove_another_tenants_records,
    the_same_event_id_in_two_tenants_makes_two_independent_records,
    one_email_holds_separate_accounts_in_two_tenants_each_found_only_in_its_own,
    a_reset_token_names_its_tenant_and_is_used_once,
);

async fn a_tenant_cannot_read_or_prove_another_tenants_records(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let (store, alpha) = db.open_with_tenant("alpha").await;
    let beta = tenant_id("beta");
    store.create_tenant(&beta).await.expect("tenant");
    append_many(&store, &alpha, 20, 20).await;
    store.publish_checkpoints().await.expect("publish");
    let alpha_record = store
        .record(&alpha, seq(5))
        .await
        .expect("read")
        .expect("exists");

    assert!(
        store.record(&beta, seq(5)).await.expect("read").is_none(),
        "beta has no record 5"
    );
    assert!(
        store
            .record_by_event_id(&beta, alpha_record.event_id)
            .await
            .expect("read")
            .is_none(),
        "alpha's event id is not found for beta"
    );
    assert!(
        store
            .records(&beta, seq(0), 100)
            .await
            .expect("range")
            .is_empty()
    );
    assert_eq!(store.tree_size(&beta).await.expect("size"), TreeSize::ZERO);
    assert!(matches!(
        store
            .inclusion_proof(&beta, LeafIndex::new(5), TreeSize::new(20))
            .await,
        Err(StoreError::OutOfRange(_))
    ));
    assert!(matches!(
        store
            .consistency_proof(&beta, TreeSize::new(1), TreeSize::new(20))
            .await,
        Err(StoreError::OutOfRange(_))
    ));
    assert!(
        store
            .latest_checkpoint(&beta)
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        store
            .checkpoints(&beta, None, 10)
            .await
            .expect("read")
            .is_empty()
    );
    assert!(
        store
            .erasable_values(&beta, seq(5))
            .await
            .expect("read")
            .is_empty()
    );
    assert_ne!(
        store.key_history(&alpha).await.expect("keys"),
        store.key_history(&beta).await.expect("keys"),
        "every tenant has its own key"
    );

    // Once beta has records of its own, its reads and proofs see only those.
    append_many(&store, &beta, 3, 3).await;
    let beta_records = read_chain(&store, &beta).await;
    assert_eq!(beta_records.len(), 3);
    assert!(beta_records.iter().all(|r| r.tenant == beta));
    assert_valid_chain(
        &beta_records,
        &beta,
        &store.key_history(&beta).await.expect("keys"),
    );
    assert_ne!(
        store.root_at(&beta, TreeSize::new(3)).await.expect("root"),
        store.root_at(&alpha, TreeSize::new(3)).await.expect("root")
    );
}

async fn the_same_event_id_in_two_tenants_makes_two_independent_records(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let (store, alpha) = db.open_with_tenant("alpha").await;
    let beta = tenant_id("beta");
    store.create_tenant(&beta).await.expect("tenant");
    let id = new_event_id();
    store
        .append(&alpha, vec![decision_with_id(&id, "approved")])
        .await
        .expect("append");

    // Idempotency is per tenant: the same id under beta is new, even with other content.
    let receipts = store
        .append(&beta, vec![decision_with_id(&id, "declined")])
        .await
        .expect("append");

    assert!(!receipts[0].duplicate);
    assert_eq!(receipts[0].seq, 0);
    let a = store
        .record(&alpha, seq(0))
        .await
        .expect("read")
        .expect("exists");
    let b = store
        .record(&beta, seq(0))
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(a.event_id, b.event_id);
    assert_ne!(a.hash, b.hash);
    assert_ne!(a.key_id, b.key_id);
}

async fn one_email_holds_separate_accounts_in_two_tenants_each_found_only_in_its_own(
    backend: Backend,
) {
    use auditex::store::users::PortalRole;

    let db = TestDb::new(&backend).await;
    let (store, alpha) = db.open_with_tenant("alpha").await;
    let beta = tenant_id("beta");
    store.create_tenant(&beta).await.expect("tenant");
    let now = store.now_us();
    let a = store
        .create_user(
            &alpha,
            "Jo@Bank.test",
            PortalRole::Admin,
            "hash-a",
            None,
            now,
        )
        .await
        .expect("alpha's account");
    // Beta's invitation of the same address is not refused (no squatting across tenants).
    let b = store
        .create_user(
            &beta,
            "jo@bank.test",
            PortalRole::Auditor,
            "hash-b",
            None,
            now,
        )
        .await
        .expect("beta's account");
    assert_ne!(a.user_id, b.user_id);
    // Within one tenant the email stays unique.
    assert!(matches!(
        store
            .create_user(
                &alpha,
                "jo@bank.test",
                PortalRole::Auditor,
                "hash-c",
                None,
                now
            )
            .await,
        Err(StoreError::Duplicate(_))
    ));
    let found_a = store
        .user_by_email(&alpha, "jo@bank.test")
        .await
        .expect("read")
        .expect("alpha's");
    assert_eq!(
        (found_a.user_id, found_a.password_hash),
        (a.user_id.clone(), "hash-a".into())
    );
    let found_b = store
        .user_by_email(&beta, "jo@bank.test")
        .await
        .expect("read")
        .expect("beta's");
    assert_eq!(found_b.role, PortalRole::Auditor);
    // An id of one tenant is nobody in the other; a change aimed at it changes nothing.
    assert_eq!(
        store.user_by_id(&beta, &a.user_id).await.expect("read"),
        None
    );
    store
        .set_password(&beta, &a.user_id, "stolen", now)
        .await
        .expect("no-op");
    store
        .disable_user(&beta, &a.user_id, now)
        .await
        .expect("no-op");
    let a_again = store
        .user_by_id(&alpha, &a.user_id)
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(
        (a_again.password_hash.as_str(), a_again.disabled_at_us),
        ("hash-a", None)
    );
    assert_eq!(store.users(&alpha).await.expect("list").len(), 1);
}

async fn a_reset_token_names_its_tenant_and_is_used_once(backend: Backend) {
    use auditex::store::users::{PortalRole, ResetOwner};

    let db = TestDb::new(&backend).await;
    let (store, alpha) = db.open_with_tenant("alpha").await;
    let beta = tenant_id("beta");
    store.create_tenant(&beta).await.expect("tenant");
    let now = store.now_us();
    let user = store
        .create_user(&beta, "jo@bank.test", PortalRole::Admin, "hash", None, now)
        .await
        .expect("user");
    store
        .create_user(&alpha, "jo@bank.test", PortalRole::Admin, "hash", None, now)
        .await
        .expect("user");
    store
        .create_password_reset(&beta, &user.user_id, &[7u8; 32], now, now + 1_000_000)
        .await
        .expect("reset");
    let owner = ResetOwner {
        tenant: beta.clone(),
        user_id: user.user_id.clone(),
    };
    assert_eq!(
        store
            .password_reset_user(&[7u8; 32], now)
            .await
            .expect("read"),
        Some(owner.clone())
    );
    assert_eq!(
        store
            .password_reset_user(&[8u8; 32], now)
            .await
            .expect("read"),
        None
    );
    assert_eq!(
        store
            .take_password_reset(&[7u8; 32], now)
            .await
            .expect("take"),
        Some(owner)
    );
    assert_eq!(
        store
            .take_password_reset(&[7u8; 32], now)
            .await
            .expect("take"),
        None
    );
}
