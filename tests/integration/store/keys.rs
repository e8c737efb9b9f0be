//! Signing keys: rotation records, validity intervals in the public key history, and which key
//! signs which record and checkpoint.

use ledger::checkpoint::open_checkpoint;
use ledger::keys::KeyId;
use ledger::note::VerifierKey;
use ledger::record::EventType;
use ledger::types::TreeSize;

use crate::support::{
    Backend, TestDb, append_many, assert_valid_chain, backend_tests, decisions, read_chain, seq,
};

backend_tests!(
    records_before_a_rotation_are_signed_by_the_old_key_and_after_it_by_the_new_one,
    a_key_rotated_before_any_record_covers_only_the_rotation_record,
);

async fn records_before_a_rotation_are_signed_by_the_old_key_and_after_it_by_the_new_one(
    backend: Backend,
) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("acme").await;
    let old = store.key_history(&tenant).await.expect("keys").intervals()[0].clone();
    assert_eq!((old.from_seq, old.until_seq), (0, None));
    append_many(&store, &tenant, 3, 3).await;
    store.publish_checkpoints().await.expect("publish");

    let new = store.rotate_key(&tenant).await.expect("rotate");
    let after = store
        .append(&tenant, decisions(3))
        .await
        .expect("append with the new key");

    // seq 3 is the rotation record, signed by the old key; the new key signs from seq 4.
    let history = store.key_history(&tenant).await.expect("keys");
    let intervals = history.intervals();
    assert_eq!(intervals.len(), 2);
    assert_eq!(intervals[0].key_id, old.key_id);
    assert_eq!(intervals[0].public_key, old.public_key);
    assert_eq!(
        (intervals[0].from_seq, intervals[0].until_seq),
        (0, Some(4))
    );
    assert_eq!(
        intervals[1], new,
        "rotate_key returns the new key's interval"
    );
    assert_eq!((new.from_seq, new.until_seq), (4, None));
    assert_ne!(new.key_id, old.key_id);
    assert_eq!(new.key_id, KeyId::of(&new.public_key));
    assert!(after.iter().all(|r| r.key_id == new.key_id));
    assert_eq!(after[0].seq, 4);

    let chain = read_chain(&store, &tenant).await;
    assert_eq!(chain.len(), 7);
    assert_valid_chain(&chain, &tenant, &history);
    for record in &chain {
        let expected = if record.seq.get() < 4 {
            old.key_id
        } else {
            new.key_id
        };
        assert_eq!(record.key_id, expected, "record {} signer", record.seq);
    }
    let rotation = &chain[3];
    assert_eq!(rotation.event_type, EventType::KeyRotation);
    let announced = rotation.payload.to_value().expect("json");
    assert_eq!(announced["new_key_id"], new.key_id.to_hex());
    assert_eq!(
        announced["new_public_key"],
        hex::encode(new.public_key.as_bytes())
    );
    assert_eq!(announced["effective_from_seq"], 4);
    // Negative space: the ring refuses a key outside its interval.
    assert!(history.key_for(new.key_id, seq(3)).is_err());
    assert!(history.key_for(old.key_id, seq(4)).is_err());

    // Checkpoints after the rotation are signed by the new key, which may sign them.
    store.publish_checkpoints().await.expect("publish");
    let latest = store
        .latest_checkpoint(&tenant)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(latest.size, TreeSize::new(7));
    let origin = store.origin(&tenant).await.expect("origin");
    let new_vkey = VerifierKey::new(&origin, new.public_key).expect("vkey");
    let old_vkey = VerifierKey::new(&origin, old.public_key).expect("vkey");
    open_checkpoint(latest.signed_note.as_bytes(), &[new_vkey], Some(&origin))
        .expect("the new key signs checkpoints after the rotation");
    assert!(
        open_checkpoint(
            latest.signed_note.as_bytes(),
            std::slice::from_ref(&old_vkey),
            Some(&origin)
        )
        .is_err()
    );
    assert!(history.may_sign_checkpoint(new.key_id, latest.size.get()));
    let first = store
        .checkpoint_at(&tenant, TreeSize::new(3))
        .await
        .expect("read")
        .expect("published before the rotation");
    open_checkpoint(first.signed_note.as_bytes(), &[old_vkey], Some(&origin))
        .expect("the old key signed the checkpoint before the rotation");

    // The history and the new key survive a restart.
    store.shutdown().await;
    drop(store);
    let store = db.open().await;
    assert_eq!(store.key_history(&tenant).await.expect("keys"), history);
    let resumed = store.append(&tenant, decisions(1)).await.expect("append");
    assert_eq!((resumed[0].seq, resumed[0].key_id), (7, new.key_id));
}

async fn a_key_rotated_before_any_record_covers_only_the_rotation_record(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("acme").await;

    let first = store.rotate_key(&tenant).await.expect("rotate");
    let second = store.rotate_key(&tenant).await.expect("rotate again");
    append_many(&store, &tenant, 2, 2).await;

    assert_eq!((first.from_seq, second.from_seq), (1, 2));
    let history = store.key_history(&tenant).await.expect("keys");
    let spans: Vec<(u64, Option<u64>)> = history
        .intervals()
        .iter()
        .map(|k| (k.from_seq, k.until_seq))
        .collect();
    assert_eq!(spans, vec![(0, Some(1)), (1, Some(2)), (2, None)]);
    let chain = read_chain(&store, &tenant).await;
    assert_eq!(chain.len(), 4);
    assert_eq!(chain[0].event_type, EventType::KeyRotation);
    assert_eq!(chain[1].event_type, EventType::KeyRotation);
    assert_eq!(chain[1].key_id, first.key_id);
    assert_eq!(chain[2].key_id, second.key_id);
    assert_valid_chain(&chain, &tenant, &history);
}
