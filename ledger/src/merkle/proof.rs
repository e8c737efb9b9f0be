//! Which node hashes an inclusion or consistency proof needs, and how to assemble the proof from
//! them.
//!
//! RFC 9162 defines `PATH` (§2.1.3.1) and `SUBPROOF` (§2.1.4.1) recursively over the leaves, and
//! every element they emit is the Merkle tree hash of a range of leaves. The functions here run
//! the same recursion over leaf *ranges* only, so they name the needed nodes without touching any
//! hash, and the caller's store fetches them.
//!
//! Every range a proof needs is a perfect subtree — one stored node — except at most one: the
//! range that runs into the right edge of a tree whose size is not a power of two. Its root (the
//! *ephemeral* node) is not stored anywhere, because it changes as the tree grows. It is named
//! instead as the perfect subtrees it is made of, which the caller fetches like any other node and
//! [`ProofNodes::rehash`] folds into the single proof element. This mirrors the `Nodes` type of
//! transparency-dev/merkle, so a store only ever persists immutable perfect-subtree hashes.

use std::ops::Range;

use super::hash::fold_right_edge;
use super::node::NodeId;
use crate::types::{Hash, LeafIndex, TreeSize};

/// Why the nodes of a proof cannot be named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofNodesError {
    /// The leaf is not in the tree.
    #[error("leaf index {index} is out of range for tree size {size}")]
    IndexOutOfRange {
        /// The requested leaf.
        index: LeafIndex,
        /// The size of the tree it was requested in.
        size: TreeSize,
    },
    /// The first tree is larger than the second, so it cannot be a prefix of it.
    #[error("tree size {size1} is larger than tree size {size2}")]
    SizeOrder {
        /// The size of the older tree.
        size1: TreeSize,
        /// The size of the newer tree.
        size2: TreeSize,
    },
    /// Every tree extends the empty tree; RFC 9162 defines no proof for that, and the published
    /// test vectors reject one, so a client must treat the empty tree itself.
    #[error("a consistency proof from the empty tree proves nothing and is not defined")]
    FirstTreeEmpty,
}

/// The caller supplied a different number of hashes than [`ProofNodes::ids`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected} node hashes, got {got}")]
pub struct HashCountError {
    /// The number of node ids.
    pub expected: usize,
    /// The number of hashes supplied.
    pub got: usize,
}

/// Why a proof could not be assembled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProveError {
    /// The proof is not defined for these sizes or this index.
    #[error(transparent)]
    Nodes(#[from] ProofNodesError),
    /// The hashes do not match the node ids one for one.
    #[error(transparent)]
    HashCount(#[from] HashCountError),
}

/// The element of a proof that covers an imperfect right edge, and the stored nodes it is
/// computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ephemeral {
    /// The node the element stands for. Its leaf range extends past the tree size, so its hash in
    /// this tree is not the hash of a complete subtree and must not be stored under this id.
    pub id: NodeId,
    /// Positions in [`ProofNodes::ids`] of its perfect parts, left to right (at least two).
    pub parts: Range<usize>,
}

/// The perfect-subtree nodes a proof is computed from, in proof order.
///
/// Each id is one proof element, except the ids in [`ProofNodes::ephemeral`]'s `parts`, which
/// together make a single element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofNodes {
    ids: Vec<NodeId>,
    ephemeral: Option<Ephemeral>,
}

impl ProofNodes {
    /// The nodes whose hashes the caller must fetch, in the order [`ProofNodes::rehash`] expects.
    pub fn ids(&self) -> &[NodeId] {
        &self.ids
    }

    /// The proof element over the imperfect right edge, if the proof has one.
    pub fn ephemeral(&self) -> Option<&Ephemeral> {
        self.ephemeral.as_ref()
    }

    /// The number of elements of the assembled proof.
    pub fn proof_len(&self) -> usize {
        let merged = self.ephemeral.as_ref().map_or(0, |e| e.parts.len() - 1);
        self.ids.len() - merged
    }

    /// Assembles the proof from `hashes`, the hash of each of [`ProofNodes::ids`] in order.
    ///
    /// # Errors
    /// [`HashCountError`] when `hashes` does not have one hash per id.
    pub fn rehash(&self, hashes: &[Hash]) -> Result<Vec<Hash>, HashCountError> {
        if hashes.len() != self.ids.len() {
            return Err(HashCountError {
                expected: self.ids.len(),
                got: hashes.len(),
            });
        }
        let Some(ephemeral) = &self.ephemeral else {
            return Ok(hashes.to_vec());
        };
        // The parts range was built with at least two entries inside `ids`, and `hashes` has the
        // same length, so these slices are in bounds.
        let Range { start, end } = ephemeral.parts;
        let mut proof = Vec::with_capacity(self.proof_len());
        proof.extend_from_slice(&hashes[..start]);
        proof.push(fold_right_edge(&hashes[start..end - 1], hashes[end - 1]));
        proof.extend_from_slice(&hashes[end..]);
        Ok(proof)
    }

    /// Names the nodes for proof elements that are the Merkle tree hashes of `ranges`.
    fn from_ranges(ranges: &[Range<u64>]) -> Self {
        let mut ids = Vec::with_capacity(ranges.len());
        let mut ephemeral = None;
        for range in ranges {
            let start = ids.len();
            push_range_node_ids(range.start, range.end, &mut ids);
            if ids.len() - start > 1 {
                // Only a range that reaches the right edge of the tree can be imperfect, and the
                // recursion visits the right edge at most once with a left turn.
                debug_assert!(ephemeral.is_none(), "two ephemeral nodes in one proof");
                ephemeral = Some(Ephemeral {
                    id: covering_node(range.start, range.end),
                    parts: start..ids.len(),
                });
            }
        }
        ProofNodes { ids, ephemeral }
    }
}

/// Names the nodes of the inclusion proof of leaf `index` in the tree of `size` leaves: RFC 9162
/// `PATH(index, D[0:size])`, deepest sibling first.
///
/// # Errors
/// [`ProofNodesError::IndexOutOfRange`] when `index >= size`.
pub fn inclusion_proof_node_ids(
    index: LeafIndex,
    size: TreeSize,
) -> Result<ProofNodes, ProofNodesError> {
    let leaf = index.get();
    if leaf >= size.get() {
        return Err(ProofNodesError::IndexOutOfRange { index, size });
    }
    // `PATH(m, D[lo:hi])` unrolled from the root down: split at the largest power of two below
    // the range size, record the sibling range, descend into the half holding the leaf.
    let mut ranges = Vec::new();
    let (mut lo, mut hi) = (0, size.get());
    while hi - lo > 1 {
        let split = lo + largest_power_of_two_below(hi - lo);
        if leaf < split {
            ranges.push(split..hi);
            hi = split;
        } else {
            ranges.push(lo..split);
            lo = split;
        }
    }
    // The recursion appends each sibling after the deeper ones, so the proof lists them bottom up.
    ranges.reverse();
    Ok(ProofNodes::from_ranges(&ranges))
}

/// Names the nodes of the consistency proof between the trees of `size1` and `size2` leaves:
/// RFC 9162 `PROOF(size1, D[0:size2])`. Equal sizes give an empty proof.
///
/// # Errors
/// [`ProofNodesError::SizeOrder`] when `size1 > size2`; [`ProofNodesError::FirstTreeEmpty`] when
/// `size1` is 0.
pub fn consistency_proof_node_ids(
    size1: TreeSize,
    size2: TreeSize,
) -> Result<ProofNodes, ProofNodesError> {
    let (m, n) = (size1.get(), size2.get());
    if m > n {
        return Err(ProofNodesError::SizeOrder { size1, size2 });
    }
    if m == 0 {
        return Err(ProofNodesError::FirstTreeEmpty);
    }
    // `SUBPROOF(m, D[lo:hi], known)` unrolled. `known` is RFC 9162's flag `b`: whether the range
    // is still a prefix of the old tree, whose hash the verifier already holds as its root.
    // Invariant: lo < m <= hi, so every split range has at least two leaves.
    let mut ranges = Vec::new();
    let (mut lo, mut hi, mut known) = (0, n, true);
    while m != hi {
        let split = lo + largest_power_of_two_below(hi - lo);
        if m <= split {
            ranges.push(split..hi);
            hi = split;
        } else {
            ranges.push(lo..split);
            lo = split;
            known = false;
        }
    }
    if !known {
        ranges.push(lo..hi);
    }
    ranges.reverse();
    Ok(ProofNodes::from_ranges(&ranges))
}

/// Assembles the inclusion proof of leaf `index` in the tree of `size` leaves from `hashes`, the
/// hashes of [`inclusion_proof_node_ids`] in order.
///
/// # Errors
/// [`ProveError::Nodes`] as for [`inclusion_proof_node_ids`]; [`ProveError::HashCount`] when
/// `hashes` has the wrong length.
pub fn prove_inclusion(
    index: LeafIndex,
    size: TreeSize,
    hashes: &[Hash],
) -> Result<Vec<Hash>, ProveError> {
    Ok(inclusion_proof_node_ids(index, size)?.rehash(hashes)?)
}

/// Assembles the consistency proof between the trees of `size1` and `size2` leaves from
/// `hashes`, the hashes of [`consistency_proof_node_ids`] in order.
///
/// # Errors
/// [`ProveError::Nodes`] as for [`consistency_proof_node_ids`]; [`ProveError::HashCount`] when
/// `hashes` has the wrong length.
pub fn prove_consistency(
    size1: TreeSize,
    size2: TreeSize,
    hashes: &[Hash],
) -> Result<Vec<Hash>, ProveError> {
    Ok(consistency_proof_node_ids(size1, size2)?.rehash(hashes)?)
}

/// Appends the perfect subtrees that exactly cover leaves `[begin, end)`, left to right.
///
/// Each step takes the largest node that starts at `begin` (limited by `begin`'s alignment) and
/// fits before `end`. For the ranges of a proof and for a tree prefix `[0, size)`, `begin` is
/// aligned to the whole range, so the nodes come out in decreasing size, which is the order
/// [`fold_right_edge`] expects.
pub(super) fn push_range_node_ids(mut begin: u64, end: u64, out: &mut Vec<NodeId>) {
    while begin < end {
        // trailing_zeros(0) is 64, so the first node of a prefix is limited by the length only.
        let alignment = begin.trailing_zeros();
        let fit = u64::BITS - 1 - (end - begin).leading_zeros();
        let level = alignment.min(fit);
        // `level <= 63` because `fit` is the floor of log2 of a non-zero u64.
        out.push(NodeId::new_unchecked(level as u8, begin >> level));
        begin += 1 << level;
    }
}

/// The smallest node whose leaf range contains `[begin, end)`, for an aligned range of at least
/// two leaves.
fn covering_node(begin: u64, end: u64) -> NodeId {
    // ceil(log2(len)) for len >= 2. A proof range that is split off has at most 2^63 leaves, so
    // the level is at most 63.
    let level = u64::BITS - (end - begin - 1).leading_zeros();
    debug_assert!(begin.trailing_zeros() >= level, "unaligned proof range");
    NodeId::new_unchecked(level as u8, begin >> level)
}

/// The largest power of two strictly below `n`, RFC 9162's `k`, for `n >= 2`.
fn largest_power_of_two_below(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (u64::BITS - 1 - (n - 1).leading_zeros())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(level: u8, index: u64) -> NodeId {
        NodeId::new(level, index).expect("valid node")
    }

    #[test]
    fn the_split_point_is_the_largest_power_of_two_strictly_below() {
        let cases = [
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 4),
            (8, 4),
            (9, 8),
            (u64::MAX, 1 << 63),
        ];
        for (n, k) in cases {
            assert_eq!(largest_power_of_two_below(n), k, "n = {n}");
        }
    }

    #[test]
    fn the_inclusion_proof_of_a_leaf_in_seven_names_an_ephemeral_right_edge() {
        // Tree of 7: leaf 0 needs leaf 1, node [2,4), and MTH([4,7)) = node(4,6) over leaf 6.
        let nodes = inclusion_proof_node_ids(LeafIndex::new(0), TreeSize::new(7)).expect("valid");
        assert_eq!(
            nodes.ids(),
            [node(0, 1), node(1, 1), node(1, 2), node(0, 6)]
        );
        let ephemeral = nodes.ephemeral().expect("an imperfect right edge");
        assert_eq!(ephemeral.id, node(2, 1));
        assert_eq!(ephemeral.parts, 2..4);
        assert_eq!(nodes.proof_len(), 3);
    }

    #[test]
    fn a_consistency_proof_from_a_power_of_two_omits_the_old_root() {
        let nodes = consistency_proof_node_ids(TreeSize::new(4), TreeSize::new(8)).expect("valid");
        assert_eq!(nodes.ids(), [node(2, 1)]);
        assert!(nodes.ephemeral().is_none());
    }

    #[test]
    fn a_consistency_proof_between_equal_sizes_is_empty() {
        let nodes = consistency_proof_node_ids(TreeSize::new(5), TreeSize::new(5)).expect("valid");
        assert!(nodes.ids().is_empty());
        assert_eq!(nodes.proof_len(), 0);
    }

    #[test]
    fn proofs_that_are_not_defined_are_refused() {
        assert_eq!(
            inclusion_proof_node_ids(LeafIndex::new(3), TreeSize::new(3)),
            Err(ProofNodesError::IndexOutOfRange {
                index: LeafIndex::new(3),
                size: TreeSize::new(3)
            })
        );
        assert_eq!(
            consistency_proof_node_ids(TreeSize::new(4), TreeSize::new(3)),
            Err(ProofNodesError::SizeOrder {
                size1: TreeSize::new(4),
                size2: TreeSize::new(3)
            })
        );
        assert_eq!(
            consistency_proof_node_ids(TreeSize::ZERO, TreeSize::new(3)),
            Err(ProofNodesError::FirstTreeEmpty)
        );
    }

    #[test]
    fn rehash_refuses_a_wrong_number_of_hashes() {
        let nodes = inclusion_proof_node_ids(LeafIndex::new(0), TreeSize::new(7)).expect("valid");
        assert_eq!(
            nodes.rehash(&[Hash::ZERO; 3]),
            Err(HashCountError {
                expected: 4,
                got: 3
            })
        );
    }

    #[test]
    fn proofs_in_the_largest_tree_name_valid_nodes() {
        // The right edge of a u64::MAX tree has a node at every level; nothing may overflow.
        let size = TreeSize::new(u64::MAX);
        let nodes = inclusion_proof_node_ids(LeafIndex::new(u64::MAX - 1), size).expect("valid");
        assert_eq!(nodes.proof_len(), 63);
        let nodes = inclusion_proof_node_ids(LeafIndex::new(0), size).expect("valid");
        let ephemeral = nodes.ephemeral().expect("imperfect right edge");
        assert_eq!(ephemeral.id, node(63, 1));
        assert_eq!(ephemeral.parts.len(), 63);
        let nodes = consistency_proof_node_ids(TreeSize::new(3), size).expect("valid");
        assert!(nodes.proof_len() > 0);
    }
}
