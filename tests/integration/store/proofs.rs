//! The Merkle tree over a tenant's records: roots, inclusion and consistency proofs served from
//! stored tiles, and signed checkpoints, all checked with the pure `ledger` verifiers and a naive
//! reference root.

use std::time::{Duration, Instant};

use auditex::store::{Store, StoreError};
use ledger::checkpoint::open_checkpoint;
use ledger::merkle::{VerifyInclusionError, leaf_hash, verify_consistency, verify_inclusion};
use ledger::note::VerifierKey;
use ledger::types::{Hash, LeafIndex, TenantId, TreeSize};

use crate::support::{
    Backend, TestDb, append_many, backend_tests, chain_hashes, decisions, reference_root, tenant_id,
};

backend_tests!(
    published_checkpoints_verify_with_the_tenant_key_and_origin,
    a_checkpoint_is_published_automatically_within_a_second_of_an_append,
    consistency_proofs_between_every_pair_of_published_checkpoints_verify,
    proofs_and_roots_are_right_across_tile_boundaries_in_a_tree_of_thousands_of_records,
    proof_requests_beyond_the_tree_are_out_of_range,
    a_kept_right_edge_tile_serves_proofs_after_the_tree_grows_past_it,
);

/// The verifier key of the tenant's current signing key, named like its checkpoint origin.
async fn verifier_key(store: &Store, tenant: &TenantId) -> VerifierKey {
    let keys = store.key_history(tenant).await.expect("keys");
    let current = keys.intervals().last().expect("a key");
    VerifierKey::new(
        &store.origin(tenant).await.expect("origin"),
        current.public_key,
    )
    .expect("verifier key")
}

async fn published_checkpoints_verify_with_the_tenant_key_and_origin(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("acme").await;
    let vkey = verifier_key(&store, &tenant).await;
    let origin = store.origin(&tenant).await.expect("origin");
    assert!(origin.ends_with("/acme"), "{origin}");
    assert!(
        store
            .latest_checkpoint(&tenant)
            .await
            .expect("read")
            .is_none(),
        "an empty log has no checkpoint"
    );

    let mut sizes = Vec::new();
    for batch in [3, 1, 20] {
        store
            .append(&tenant, decisions(batch))
            .await
            .expect("append");
        store.publish_checkpoints().await.expect("publish");
        sizes.push(store.tree_size(&tenant).await.expect("size"));
    }
    // Nothing new: publishing again adds no checkpoint.
    store.publish_checkpoints().await.expect("publish");

    let all = store
        .checkpoints(&tenant, None, 100)
        .await
        .expect("history");
    assert_eq!(
        all.iter().map(|c| c.size).collect::<Vec<_>>(),
        sizes,
        "one checkpoint per growth, oldest first"
    );
    for stored in &all {
        let verified = open_checkpoint(
            stored.signed_note.as_bytes(),
            std::slice::from_ref(&vkey),
            Some(&origin),
        )
        .expect("the signed note verifies with the tenant key");
        let checkpoint = verified.checkpoint();
        assert_eq!(checkpoint.origin(), origin);
        assert_eq!(checkpoint.size(), stored.size);
        assert_eq!(checkpoint.root(), stored.root);
        assert_eq!(
            checkpoint.root(),
            store.root_at(&tenant, stored.size).await.expect("root"),
            "the signed root is the tree's root at that size"
        );
        assert_eq!(
            store
                .checkpoint_at(&tenant, stored.size)
                .await
                .expect("read")
                .as_ref(),
            Some(stored)
        );
    }
    let latest = store
        .latest_checkpoint(&tenant)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(latest.size, TreeSize::new(24));
    let after = store
        .checkpoints(&tenant, Some(TreeSize::new(3)), 100)
        .await
        .expect("history");
    assert_eq!(after.len(), 2, "`after` excludes the given size");

    // Negative space: another tenant's key, or another origin, does not verify the note.
    let other = tenant_id("other");
    store.create_tenant(&other).await.expect("tenant");
    let other_key = verifier_key(&store, &other).await;
    assert!(open_checkpoint(latest.signed_note.as_bytes(), &[other_key], None).is_err());
    assert!(
        open_checkpoint(
            latest.signed_note.as_bytes(),
            std::slice::from_ref(&vkey),
            Some(&store.origin(&other).await.expect("origin"))
        )
        .is_err()
    );
    let tampered = latest.signed_note.replacen("\n24\n", "\n25\n", 1);
    assert_ne!(tampered, latest.signed_note);
    assert!(open_checkpoint(tampered.as_bytes(), &[vkey], Some(&origin)).is_err());
}

async fn a_checkpoint_is_published_automatically_within_a_second_of_an_append(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let mut config = db.config();
    config.checkpoint_interval = Duration::from_millis(200);
    let store = Store::open_with_workers(config).await.expect("open");
    let tenant = tenant_id("acme");
    store.create_tenant(&tenant).await.expect("tenant");

    store.append(&tenant, decisions(4)).await.expect("append");
    let appended = Instant::now();

    loop {
        let latest = store.latest_checkpoint(&tenant).await.expect("read");
        if latest.is_some_and(|c| c.size == TreeSize::new(4)) {
            break;
        }
        assert!(
            appended.elapsed() < Duration::from_secs(1),
            "no checkpoint covering the append within a second"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn consistency_proofs_between_every_pair_of_published_checkpoints_verify(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("acme").await;
    for batch in [1, 1, 2, 5, 8, 17, 30, 200, 60] {
        store
            .append(&tenant, decisions(batch))
            .await
            .expect("append");
        store.publish_checkpoints().await.expect("publish");
    }
    let checkpoints = store
        .checkpoints(&tenant, None, 100)
        .await
        .expect("history");
    assert_eq!(checkpoints.len(), 9);

    for (i, old) in checkpoints.iter().enumerate() {
        for new in &checkpoints[i..] {
            let proof = store
                .consistency_proof(&tenant, old.size, new.size)
                .await
                .expect("proof");
            verify_consistency(old.size, new.size, &proof, old.root, new.root)
                .unwrap_or_else(|e| panic!("consistency {} -> {}: {e}", old.size, new.size));
            if old.size != new.size {
                // Negative space: the proof does not tie the new tree to another old root.
                let mut wrong = old.root.as_bytes().to_owned();
                wrong[0] ^= 1;
                assert!(
                    verify_consistency(
                        old.size,
                        new.size,
                        &proof,
                        Hash::from_bytes(wrong),
                        new.root
                    )
                    .is_err()
                );
            }
        }
    }
}

async fn proofs_and_roots_are_right_across_tile_boundaries_in_a_tree_of_thousands_of_records(
    backend: Backend,
) {
    // 2,100 records: more than 8 complete level-8 tiles (256 leaves each) and a partial one, so
    // proofs combine stored level-8 hashes with leaf hashes from full and partial tiles.
    const TOTAL: u64 = 2_100;
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("acme").await;
    append_many(&store, &tenant, 2_100, 1_000).await;
    let hashes = chain_hashes(&store, &tenant).await;
    assert_eq!(hashes.len() as u64, TOTAL);

    let sizes: Vec<u64> = vec![
        1, 2, 3, 7, 8, 9, 255, 256, 257, 300, 511, 512, 513, 767, 1024, 1025, 1500, 2047, 2048,
        2049, 2099, TOTAL,
    ];
    let mut roots = Vec::new();
    for &size in &sizes {
        let n = usize::try_from(size).expect("fits");
        let root = store
            .root_at(&tenant, TreeSize::new(size))
            .await
            .expect("root");
        assert_eq!(root, reference_root(&hashes[..n]), "root at size {size}");
        roots.push(root);
    }

    for (&size, &root) in sizes.iter().zip(&roots) {
        let mut indices = vec![
            0,
            1,
            2,
            127,
            128,
            255,
            256,
            257,
            1000,
            size / 2,
            size.saturating_sub(2),
            size - 1,
        ];
        indices.retain(|&i| i < size);
        indices.sort_unstable();
        indices.dedup();
        for index in indices {
            let leaf = leaf_hash(hashes[usize::try_from(index).expect("fits")].as_bytes());
            let proof = store
                .inclusion_proof(&tenant, LeafIndex::new(index), TreeSize::new(size))
                .await
                .expect("proof");
            verify_inclusion(
                leaf,
                LeafIndex::new(index),
                TreeSize::new(size),
                &proof,
                root,
            )
            .unwrap_or_else(|e| panic!("inclusion of {index} in {size}: {e}"));
            if let Some(first) = proof.first() {
                // Negative space: a tampered proof leads to another root.
                let mut tampered = proof.clone();
                let mut bytes = first.as_bytes().to_owned();
                bytes[31] ^= 0x80;
                tampered[0] = Hash::from_bytes(bytes);
                assert!(matches!(
                    verify_inclusion(
                        leaf,
                        LeafIndex::new(index),
                        TreeSize::new(size),
                        &tampered,
                        root
                    ),
                    Err(VerifyInclusionError::RootMismatch { .. })
                ));
            }
        }
    }

    for (i, (&size1, &root1)) in sizes.iter().zip(&roots).enumerate() {
        for (&size2, &root2) in sizes[i..].iter().zip(&roots[i..]) {
            let proof = store
                .consistency_proof(&tenant, TreeSize::new(size1), TreeSize::new(size2))
                .await
                .expect("proof");
            verify_consistency(
                TreeSize::new(size1),
                TreeSize::new(size2),
                &proof,
                root1,
                root2,
            )
            .unwrap_or_else(|e| panic!("consistency {size1} -> {size2}: {e}"));
        }
    }
}

async fn proof_requests_beyond_the_tree_are_out_of_range(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("acme").await;
    append_many(&store, &tenant, 10, 10).await;
    let size = TreeSize::new(10);

    let out_of_range = |r: Result<Vec<Hash>, StoreError>, what: &str| {
        assert!(
            matches!(r, Err(StoreError::OutOfRange(_))),
            "{what}: expected OutOfRange, got {r:?}"
        );
    };
    out_of_range(
        store
            .inclusion_proof(&tenant, LeafIndex::new(10), size)
            .await,
        "index equal to size",
    );
    out_of_range(
        store
            .inclusion_proof(&tenant, LeafIndex::new(3), TreeSize::new(11))
            .await,
        "size beyond the tree",
    );
    out_of_range(
        store
            .inclusion_proof(&tenant, LeafIndex::new(0), TreeSize::ZERO)
            .await,
        "empty tree",
    );
    out_of_range(
        store
            .consistency_proof(&tenant, TreeSize::new(5), TreeSize::new(4))
            .await,
        "size1 > size2",
    );
    out_of_range(
        store
            .consistency_proof(&tenant, TreeSize::new(5), TreeSize::new(11))
            .await,
        "size2 beyond the tree",
    );
    out_of_range(
        store.consistency_proof(&tenant, TreeSize::ZERO, size).await,
        "size1 zero",
    );
    assert!(matches!(
        store.root_at(&tenant, TreeSize::new(11)).await,
        Err(StoreError::OutOfRange(_))
    ));
    // The edges that are in range work.
    assert_eq!(
        store
            .root_at(&tenant, TreeSize::ZERO)
            .await
            .expect("empty root"),
        reference_root(&[])
    );
    assert!(
        store
            .consistency_proof(&tenant, size, size)
            .await
            .expect("equal sizes")
            .is_empty()
    );
    store
        .inclusion_proof(&tenant, LeafIndex::new(9), size)
        .await
        .expect("the last leaf");
}

/// Proofs stay right across a growing right-edge tile, which the tile cache keeps once a proof
/// has read it: after the tree grows, a proof needing more of that tile than was kept must read
/// it again (served the shorter kept copy, it would fail as a tile not stored), and proofs at the
/// older size take only the hashes they need from the longer copy.
async fn a_kept_right_edge_tile_serves_proofs_after_the_tree_grows_past_it(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("acme").await;
    append_many(&store, &tenant, 300, 300).await;
    let check = |hashes: &[Hash], index: u64, size: u64, proof: &[Hash]| {
        let n = usize::try_from(size).expect("fits");
        let leaf = leaf_hash(hashes[usize::try_from(index).expect("fits")].as_bytes());
        verify_inclusion(
            leaf,
            LeafIndex::new(index),
            TreeSize::new(size),
            proof,
            reference_root(&hashes[..n]),
        )
        .unwrap_or_else(|e| panic!("inclusion of {index} in {size}: {e}"));
    };
    let prove = |index: u64, size: u64| {
        let (store, tenant) = (store.clone(), tenant.clone());
        async move {
            store
                .inclusion_proof(&tenant, LeafIndex::new(index), TreeSize::new(size))
                .await
                .expect("proof")
        }
    };
    let before = chain_hashes(&store, &tenant).await;
    // Leaf 0's proof at 300 reads the partial second tile (44 leaves) and keeps it.
    check(&before, 0, 300, &prove(0, 300).await);
    append_many(&store, &tenant, 100, 100).await;
    let after = chain_hashes(&store, &tenant).await;
    // At 400 the proof needs 144 leaves of that tile: more than kept, so read again.
    for index in [0, 255, 256, 299, 300, 399] {
        check(&after, index, 400, &prove(index, 400).await);
    }
    // Back at 300, from the longer copy now kept.
    for index in [0, 256, 299] {
        check(&after, index, 300, &prove(index, 300).await);
    }
}
