//! Cross-checks the Merkle module against a slow, obviously correct transcription of RFC 9162
//! §2.1 (`MTH`, `PATH`, `PROOF`), exhaustively on small trees and with proptest on random trees of
//! up to 3000 leaves.
//!
//! Besides agreement, every proof must verify and every tampered proof must be rejected. One
//! tampering is special: changing a *tree size* by one. An RFC 9162 proof does not commit to the
//! tree size, only to the shape of the path, and some neighbouring sizes give the same shape (the
//! proof for leaf 0 in a tree of 3 also "verifies" root 3 as a tree of 4). That is why a size is
//! only meaningful signed together with its root in a checkpoint. The tests therefore assert the
//! exact rule: a proof verifies under another size if and only if the reference says both sizes
//! give the same proof shape.

use std::collections::HashMap;

use ledger::merkle::{
    CompactTree, NodeHash, NodeId, ProofNodes, TileId, TileSpan, VerifyConsistencyError,
    VerifyInclusionError, compact_range_node_ids, consistency_proof_node_ids, empty_root,
    inclusion_proof_node_ids, leaf_hash, node_hash, node_hashes_from_tiles, prove_consistency,
    prove_inclusion, root_from_inclusion_proof, tile_width, tiles_for_nodes, verify_consistency,
    verify_inclusion,
};
use ledger::types::{Hash, LeafIndex, TreeSize};
use proptest::prelude::*;

/// RFC 9162 §2.1, transcribed as literally as possible: recursion on slices, no bit tricks, its
/// own SHA-256 calls. Slow (every `MTH` rehashes its whole range) and meant to be.
mod reference {
    use ledger::types::Hash;
    use sha2::{Digest, Sha256};

    fn sha256(parts: &[&[u8]]) -> Hash {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update(part);
        }
        Hash::from_bytes(hasher.finalize().into())
    }

    /// `SHA-256(0x00 || d)`.
    pub fn leaf(data: &[u8]) -> Hash {
        sha256(&[&[0x00], data])
    }

    /// `SHA-256(0x01 || left || right)`.
    pub fn node(left: Hash, right: Hash) -> Hash {
        sha256(&[&[0x01], left.as_bytes(), right.as_bytes()])
    }

    /// The largest power of two smaller than `n`, for `n > 1`.
    pub fn split(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    /// `MTH(D[n])`, where `leaves[i]` is already `SHA-256(0x00 || d(i))`.
    pub fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => sha256(&[]),
            1 => leaves[0],
            n => {
                let k = split(n);
                node(mth(&leaves[..k]), mth(&leaves[k..]))
            }
        }
    }

    /// `PATH(m, D[n])`.
    pub fn path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        let n = leaves.len();
        if n == 1 {
            return Vec::new();
        }
        let k = split(n);
        if m < k {
            let mut proof = path(m, &leaves[..k]);
            proof.push(mth(&leaves[k..]));
            proof
        } else {
            let mut proof = path(m - k, &leaves[k..]);
            proof.push(mth(&leaves[..k]));
            proof
        }
    }

    /// `PROOF(m, D[n])`.
    pub fn proof(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        subproof(m, leaves, true)
    }

    /// `SUBPROOF(m, D[n], b)`.
    fn subproof(m: usize, leaves: &[Hash], b: bool) -> Vec<Hash> {
        let n = leaves.len();
        if m == n {
            return if b { Vec::new() } else { vec![mth(leaves)] };
        }
        let k = split(n);
        if m <= k {
            let mut proof = subproof(m, &leaves[..k], b);
            proof.push(mth(&leaves[k..]));
            proof
        } else {
            let mut proof = subproof(m - k, &leaves[k..], false);
            proof.push(mth(&leaves[..k]));
            proof
        }
    }

    /// The shape of `PATH(m, D[n])`: for each element, bottom up, whether it is a left sibling.
    /// A verifier's result depends on the sizes only through this shape. `None` when the proof
    /// is not defined.
    pub fn path_shape(m: u64, n: u64) -> Option<Vec<bool>> {
        if m >= n {
            return None;
        }
        fn sides(m: usize, n: usize) -> Vec<bool> {
            if n == 1 {
                return Vec::new();
            }
            let k = split(n);
            let (mut below, left) = if m < k {
                (sides(m, k), false)
            } else {
                (sides(m - k, n - k), true)
            };
            below.push(left);
            below
        }
        Some(sides(usize::try_from(m).ok()?, usize::try_from(n).ok()?))
    }

    /// The shape of `PROOF(m, D[n])`: whether the old root itself starts the new root's path
    /// (`b` still set when `m == n` is reached), and for each element after the start, bottom
    /// up, whether it is a left sibling (and so also part of the old root). `None` when the
    /// proof is not defined (`m == 0` or `m > n`).
    pub fn proof_shape(m: u64, n: u64) -> Option<(bool, Vec<bool>)> {
        if m == 0 || m > n {
            return None;
        }
        fn sides(m: usize, n: usize, b: bool) -> (bool, Vec<bool>) {
            if m == n {
                return (b, Vec::new());
            }
            let k = split(n);
            let ((start, mut below), left) = if m <= k {
                (sides(m, k, b), false)
            } else {
                (sides(m - k, n - k, false), true)
            };
            below.push(left);
            (start, below)
        }
        Some(sides(
            usize::try_from(m).ok()?,
            usize::try_from(n).ok()?,
            true,
        ))
    }
}

/// Leaf hashes of `count` distinct entries derived from `seed`.
fn leaves(seed: u64, count: u64) -> Vec<Hash> {
    (0..count)
        .map(|i| {
            let mut data = seed.to_be_bytes().to_vec();
            data.extend_from_slice(&i.to_be_bytes());
            reference::leaf(&data)
        })
        .collect()
}

fn usize_of(n: u64) -> usize {
    usize::try_from(n).expect("test sizes fit in usize")
}

/// The reference hash of a stored node: `MTH` of the leaves it covers.
fn subtree(leaves: &[Hash], id: NodeId) -> Hash {
    let first = usize_of(id.first_leaf());
    let count = usize_of(id.leaf_count());
    reference::mth(&leaves[first..first + count])
}

/// `hash` with bit `bit % 256` flipped.
fn flip(hash: Hash, bit: usize) -> Hash {
    let mut bytes = *hash.as_bytes();
    let bit = bit % 256;
    bytes[bit / 8] ^= 1 << (bit % 8);
    Hash::from_bytes(bytes)
}

/// Checks the promise of the node-id functions: every id is a complete subtree of the tree
/// (`size` leaves), and the ephemeral element, if any, is made of consecutive ids ending at the
/// tree's right edge.
fn check_nodes_are_stored_subtrees(nodes: &ProofNodes, size: u64) {
    for id in nodes.ids() {
        assert!(
            id.first_leaf() + id.leaf_count() <= size,
            "{id} is not complete in a tree of {size}"
        );
    }
    if let Some(ephemeral) = nodes.ephemeral() {
        let parts = &nodes.ids()[ephemeral.parts.clone()];
        assert!(
            parts.len() >= 2,
            "an ephemeral node of {} parts",
            parts.len()
        );
        assert_eq!(parts[0].first_leaf(), ephemeral.id.first_leaf());
        let mut next = parts[0].first_leaf();
        for part in parts {
            assert_eq!(part.first_leaf(), next, "parts are not consecutive");
            next += part.leaf_count();
        }
        assert_eq!(
            next, size,
            "the ephemeral node does not end at the right edge"
        );
        assert!(next - ephemeral.id.first_leaf() < ephemeral.id.leaf_count());
    }
}

/// Builds, cross-checks and attacks the inclusion proof of leaf `index` among the first `size`
/// of `leaves`.
fn check_inclusion(leaves: &[Hash], index: u64, size: u64, bit: usize) {
    let tree = &leaves[..usize_of(size)];
    let root = reference::mth(tree);
    let leaf = tree[usize_of(index)];
    let (index_id, size_id) = (LeafIndex::new(index), TreeSize::new(size));

    let nodes = inclusion_proof_node_ids(index_id, size_id).expect("leaf in the tree");
    check_nodes_are_stored_subtrees(&nodes, size);
    let hashes: Vec<Hash> = nodes.ids().iter().map(|&id| subtree(leaves, id)).collect();
    let proof = prove_inclusion(index_id, size_id, &hashes).expect("one hash per id");
    let want = reference::path(usize_of(index), tree);
    assert_eq!(proof, want, "PATH({index}, D[{size}])");
    assert_eq!(nodes.proof_len(), want.len());

    assert_eq!(
        verify_inclusion(leaf, index_id, size_id, &proof, root),
        Ok(())
    );
    assert_eq!(
        root_from_inclusion_proof(leaf, index_id, size_id, &proof),
        Ok(root)
    );

    // Tampered leaf, proof elements and root.
    let verify = |leaf: Hash, index: u64, size: u64, proof: &[Hash], root: Hash| {
        verify_inclusion(
            leaf,
            LeafIndex::new(index),
            TreeSize::new(size),
            proof,
            root,
        )
    };
    assert!(matches!(
        verify(flip(leaf, bit), index, size, &proof, root),
        Err(VerifyInclusionError::RootMismatch { .. })
    ));
    assert!(matches!(
        verify(leaf, index, size, &proof, flip(root, bit)),
        Err(VerifyInclusionError::RootMismatch { .. })
    ));
    for position in 0..proof.len() {
        let mut tampered = proof.clone();
        tampered[position] = flip(tampered[position], bit + position);
        assert!(
            verify(leaf, index, size, &tampered, root).is_err(),
            "flipped element {position} of PATH({index}, D[{size}]) verifies"
        );
    }
    // Truncated and padded proofs.
    if let Some((_, shorter)) = proof.split_last() {
        assert!(matches!(
            verify(leaf, index, size, shorter, root),
            Err(VerifyInclusionError::WrongProofLength { .. })
        ));
    }
    let mut longer = proof.clone();
    longer.push(leaf);
    assert!(matches!(
        verify(leaf, index, size, &longer, root),
        Err(VerifyInclusionError::WrongProofLength { .. })
    ));
    // Another index: the RFC tree has no unary nodes, so each leaf has its own path shape.
    for other in [index.wrapping_sub(1), index + 1] {
        assert!(
            verify(leaf, other, size, &proof, root).is_err(),
            "PATH({index}, D[{size}]) verifies for index {other}"
        );
    }
    // Another size: accepted exactly when the path has the same shape (see the module docs).
    let shape = reference::path_shape(index, size);
    for other in [size - 1, size + 1] {
        let same_shape = reference::path_shape(index, other) == shape;
        assert_eq!(
            verify(leaf, index, other, &proof, root).is_ok(),
            same_shape,
            "PATH({index}, D[{size}]) checked as size {other}"
        );
    }
}

/// Builds, cross-checks and attacks the consistency proof between the first `size1` and the
/// first `size2` of `leaves`.
fn check_consistency(leaves: &[Hash], size1: u64, size2: u64, bit: usize) {
    let root1 = reference::mth(&leaves[..usize_of(size1)]);
    let root2 = reference::mth(&leaves[..usize_of(size2)]);
    let (s1, s2) = (TreeSize::new(size1), TreeSize::new(size2));

    let nodes = consistency_proof_node_ids(s1, s2).expect("size1 <= size2");
    check_nodes_are_stored_subtrees(&nodes, size2);
    let hashes: Vec<Hash> = nodes.ids().iter().map(|&id| subtree(leaves, id)).collect();
    let proof = prove_consistency(s1, s2, &hashes).expect("one hash per id");
    let want = reference::proof(usize_of(size1), &leaves[..usize_of(size2)]);
    assert_eq!(proof, want, "PROOF({size1}, D[{size2}])");
    assert_eq!(nodes.proof_len(), want.len());

    assert_eq!(verify_consistency(s1, s2, &proof, root1, root2), Ok(()));

    let verify = |size1: u64, size2: u64, proof: &[Hash], root1: Hash, root2: Hash| {
        verify_consistency(
            TreeSize::new(size1),
            TreeSize::new(size2),
            proof,
            root1,
            root2,
        )
    };
    assert!(verify(size1, size2, &proof, flip(root1, bit), root2).is_err());
    assert!(verify(size1, size2, &proof, root1, flip(root2, bit)).is_err());
    for position in 0..proof.len() {
        let mut tampered = proof.clone();
        tampered[position] = flip(tampered[position], bit + position);
        assert!(
            verify(size1, size2, &tampered, root1, root2).is_err(),
            "flipped element {position} of PROOF({size1}, D[{size2}]) verifies"
        );
    }
    if let Some((_, shorter)) = proof.split_last() {
        assert!(matches!(
            verify(size1, size2, shorter, root1, root2),
            Err(VerifyConsistencyError::WrongProofLength { .. })
        ));
    }
    let mut longer = proof.clone();
    longer.push(root1);
    assert!(matches!(
        verify(size1, size2, &longer, root1, root2),
        Err(VerifyConsistencyError::WrongProofLength { .. })
    ));
    // Other sizes: accepted exactly when the proof has the same shape (see the module docs).
    let shape = reference::proof_shape(size1, size2);
    for (other1, other2) in [
        (size1 - 1, size2),
        (size1 + 1, size2),
        (size1, size2 - 1),
        (size1, size2 + 1),
    ] {
        let same_shape = reference::proof_shape(other1, other2) == shape;
        assert_eq!(
            verify(other1, other2, &proof, root1, root2).is_ok(),
            same_shape,
            "PROOF({size1}, D[{size2}]) checked as sizes {other1}, {other2}"
        );
    }
}

/// Appends `leaves` one by one, checking the root after every append and every completed node
/// against the reference; returns every completed node.
fn check_compact_tree(leaves: &[Hash]) -> HashMap<NodeId, Hash> {
    let mut tree = CompactTree::new();
    let mut stored = HashMap::new();
    assert_eq!(tree.root(), reference::mth(&[]));
    for (count, &leaf) in (1u64..).zip(leaves) {
        let completed = tree.push(leaf).expect("not full");
        assert_eq!(completed[0].id, NodeId::leaf(LeafIndex::new(count - 1)));
        for NodeHash { id, hash } in completed {
            assert_eq!(hash, subtree(leaves, id), "{id}");
            assert!(stored.insert(id, hash).is_none(), "{id} completed twice");
        }
        let size = TreeSize::new(count);
        assert_eq!(tree.size(), size);
        assert_eq!(tree.root(), reference::mth(&leaves[..usize_of(count)]));
        let edge: Vec<Hash> = compact_range_node_ids(size)
            .into_iter()
            .map(|id| subtree(leaves, id))
            .collect();
        assert_eq!(tree.hashes(), edge, "right edge of {count}");
    }
    // Every perfect subtree of the final tree was completed exactly once: 2n - popcount(n).
    let n = leaves.len() as u64;
    assert_eq!(stored.len() as u64, 2 * n - u64::from(n.count_ones()));
    stored
}

#[test]
fn hashes_match_the_reference_and_the_empty_tree() {
    for data in [&b""[..], b"a", &[0u8; 32], &[0xff; 100]] {
        assert_eq!(leaf_hash(data), reference::leaf(data));
    }
    let (a, b) = (reference::leaf(b"a"), reference::leaf(b"b"));
    assert_eq!(node_hash(a, b), reference::node(a, b));
    assert_eq!(empty_root(), reference::mth(&[]));
}

#[test]
fn every_tree_up_to_64_leaves_agrees_with_the_reference() {
    let all = leaves(0, 64);
    check_compact_tree(&all);
    for size in 1..=64 {
        for index in 0..size {
            check_inclusion(&all, index, size, usize_of(index * 7 + size));
        }
        for size1 in 1..=size {
            check_consistency(&all, size1, size, usize_of(size1 * 5 + size));
        }
    }
}

#[test]
fn a_tree_resumed_from_its_right_edge_continues_identically() {
    let all = leaves(1, 100);
    let mut tree = CompactTree::new();
    for (count, &leaf) in (1u64..).zip(&all) {
        tree.push(leaf).expect("not full");
        let mut resumed = CompactTree::from_parts(tree.size(), tree.hashes().to_vec())
            .expect("the tree's own right edge");
        let mut original = tree.clone();
        for &next in &all[usize_of(count)..] {
            assert_eq!(
                resumed.push(next).expect("not full"),
                original.push(next).expect("not full")
            );
        }
        assert_eq!(resumed.root(), reference::mth(&all));
    }
}

#[test]
fn size_changes_that_keep_the_proof_shape_are_the_only_ones_accepted() {
    // The concrete case from the module docs, so the rule is not only stated in the abstract.
    let all = leaves(2, 4);
    let proof = reference::path(0, &all[..3]);
    let root3 = reference::mth(&all[..3]);
    let four = TreeSize::new(4);
    assert_eq!(
        verify_inclusion(all[0], LeafIndex::new(0), four, &proof, root3),
        Ok(())
    );
    assert_eq!(
        reference::path_shape(0, 3),
        reference::path_shape(0, 4),
        "the reference agrees that both sizes give the same path shape"
    );
}

#[test]
fn node_hashes_computed_from_tiles_match_the_reference() {
    // 70 000 leaves, the tlog-tiles example: full and partial tiles on levels 0 and 1, and a
    // partial tile of width 1 on level 2.
    let size = 70_000u64;
    let all = leaves(3, size);
    let mut tree = CompactTree::new();
    let mut stored = HashMap::new();
    for &leaf in &all {
        for NodeHash { id, hash } in tree.push(leaf).expect("not full") {
            stored.insert(id, hash);
        }
    }
    // A tile is the stored hashes of level 8 * L, positions [N * 256, N * 256 + width).
    let tile_hashes = |tile: TileId| -> Vec<Hash> {
        let width = tile_width(tile, TreeSize::new(size)).expect("tile exists");
        (0..u64::from(width))
            .map(|offset| {
                let id = NodeId::new(tile.node_level(), tile.index() * 256 + offset)
                    .expect("valid node");
                stored[&id]
            })
            .collect()
    };
    // The spec's own definition: hash i of tile n at level l is
    // MTH(D[(n * 256 + i) * 256^l : (n * 256 + i + 1) * 256^l]).
    let tile = |level, index| TileId::new(level, index).expect("valid tile");
    assert_eq!(tile_hashes(tile(0, 3))[5], all[3 * 256 + 5]);
    assert_eq!(
        tile_hashes(tile(1, 1))[2],
        reference::mth(&all[(256 + 2) * 256..(256 + 3) * 256])
    );
    assert_eq!(tile_hashes(tile(2, 0)), [reference::mth(&all[..65_536])]);

    // Every stored node up to level 16, located and recomputed through its tile.
    let mut tiles: HashMap<TileId, Vec<Hash>> = HashMap::new();
    let mut checked = 0;
    for (&id, &hash) in &stored {
        // Every node from level 8 up, and a sample below, keeps the test quick.
        if id.level() < 8 && id.index() % 61 != 0 {
            continue;
        }
        let span = TileSpan::for_node(id);
        let hashes = tiles
            .entry(span.tile())
            .or_insert_with(|| tile_hashes(span.tile()));
        assert_eq!(span.node_hash(hashes), Ok(hash), "{id}");
        checked += 1;
    }
    assert!(checked > 1000, "only {checked} nodes checked");

    // An inclusion proof whose node hashes all come from tiles verifies.
    for index in [0, 12_345, 65_535, 65_536, 69_999] {
        let (index, tree_size) = (LeafIndex::new(index), TreeSize::new(size));
        let nodes = inclusion_proof_node_ids(index, tree_size).expect("leaf in the tree");
        let hashes: Vec<Hash> = nodes
            .ids()
            .iter()
            .map(|&id| {
                let span = TileSpan::for_node(id);
                span.node_hash(&tile_hashes(span.tile()))
                    .expect("tile wide enough")
            })
            .collect();
        let proof = nodes.rehash(&hashes).expect("one hash per id");
        let leaf = all[usize_of(index.get())];
        assert_eq!(
            verify_inclusion(leaf, index, tree_size, &proof, tree.root()),
            Ok(())
        );
    }

    // What a tiles client does: ask which tiles (at which widths) hold the nodes, fetch those,
    // compute the hashes. Consistency proofs and the root of the compact range both verify.
    let fetch = |wanted: std::collections::BTreeMap<TileId, u16>| {
        wanted
            .into_iter()
            .map(|(tile, width)| {
                let hashes = tile_hashes(tile);
                assert_eq!(hashes.len(), usize::from(width), "{tile:?}");
                (tile, hashes)
            })
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let tree_size = TreeSize::new(size);
    for old in [1, 255, 256, 257, 65_536, 69_999] {
        let old_size = TreeSize::new(old);
        let nodes = consistency_proof_node_ids(old_size, tree_size).expect("old <= new");
        let tiles = fetch(tiles_for_nodes(nodes.ids(), tree_size).expect("in the tree"));
        let hashes = node_hashes_from_tiles(nodes.ids(), &tiles).expect("tiles wide enough");
        let proof = nodes.rehash(&hashes).expect("one hash per id");
        let old_root = reference::mth(&all[..usize_of(old)]);
        assert_eq!(
            verify_consistency(old_size, tree_size, &proof, old_root, tree.root()),
            Ok(()),
            "{old}"
        );
    }
    let ids = compact_range_node_ids(tree_size);
    let tiles = fetch(tiles_for_nodes(&ids, tree_size).expect("in the tree"));
    let edge = node_hashes_from_tiles(&ids, &tiles).expect("tiles wide enough");
    let rebuilt = CompactTree::from_parts(tree_size, edge).expect("one hash per subtree");
    assert_eq!(rebuilt.root(), tree.root());
    // A node beyond the tree, or a tile not fetched, is an error rather than a wrong hash.
    let beyond = NodeId::new(0, size).expect("valid node");
    assert!(tiles_for_nodes(&[beyond], tree_size).is_err());
    assert!(node_hashes_from_tiles(&[beyond], &tiles).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_trees_agree_with_the_reference(
        (size, index, size1) in (1u64..=3000).prop_flat_map(|n| (Just(n), 0..n, 1..=n)),
        seed in any::<u64>(),
        bit in 0usize..256,
    ) {
        let all = leaves(seed, size);
        let mut tree = CompactTree::new();
        let mut snapshot = None;
        for (count, &leaf) in (1u64..).zip(&all) {
            tree.push(leaf).expect("not full");
            if count == size1 {
                snapshot = Some(tree.clone());
            }
        }
        prop_assert_eq!(tree.root(), reference::mth(&all));
        let old = snapshot.expect("size1 <= size");
        prop_assert_eq!(old.root(), reference::mth(&all[..usize_of(size1)]));

        // A tree resumed from the old right edge reaches the same root.
        let mut resumed = CompactTree::from_parts(old.size(), old.hashes().to_vec())
            .expect("the tree's own right edge");
        for &leaf in &all[usize_of(size1)..] {
            resumed.push(leaf).expect("not full");
        }
        prop_assert_eq!(resumed.root(), tree.root());

        check_inclusion(&all, index, size, bit);
        check_consistency(&all, size1, size, bit);
    }
}
