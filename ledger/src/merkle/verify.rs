//! Verification of inclusion and consistency proofs, as RFC 9162 §2.1.3.2 and §2.1.4.2 specify.
//!
//! The algorithms below follow the RFC step by step (the comments give the step numbers), so a
//! reviewer can compare them line by line. Before running them the proof length is checked
//! against the length the sizes imply, which gives a precise error for truncated or padded proofs;
//! the RFC's own length checks stay in place as a second line of defence.

use super::hash::node_hash;
use crate::types::{Hash, LeafIndex, TreeSize};

/// Why an inclusion proof was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyInclusionError {
    /// The leaf is not in the tree, so no proof can show it is.
    #[error("leaf index {index} is out of range for tree size {size}")]
    IndexOutOfRange {
        /// The claimed leaf index.
        index: LeafIndex,
        /// The claimed tree size.
        size: TreeSize,
    },
    /// The proof has the wrong number of hashes for this index and size.
    #[error("inclusion proof has {got} hashes, expected {expected}")]
    WrongProofLength {
        /// The length the index and size imply.
        expected: usize,
        /// The length of the proof given.
        got: usize,
    },
    /// The proof leads to another root: the leaf, index, size, proof or root is wrong.
    #[error("inclusion proof leads to root {calculated}, expected {expected}")]
    RootMismatch {
        /// The root the caller trusts.
        expected: Hash,
        /// The root the leaf and proof hash to.
        calculated: Hash,
    },
}

/// Why a consistency proof was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyConsistencyError {
    /// The first tree is larger than the second, so it cannot be a prefix of it.
    #[error("tree size {size1} is larger than tree size {size2}")]
    SizeOrder {
        /// The size of the older tree.
        size1: TreeSize,
        /// The size of the newer tree.
        size2: TreeSize,
    },
    /// Every tree extends the empty tree; such a proof proves nothing, RFC 9162 defines none and
    /// the published test vectors reject it, so a client must treat the empty tree itself.
    #[error("a consistency proof from the empty tree proves nothing and is not accepted")]
    FirstTreeEmpty,
    /// The proof has the wrong number of hashes for these sizes (equal sizes need an empty proof).
    #[error("consistency proof has {got} hashes, expected {expected}")]
    WrongProofLength {
        /// The length the sizes imply.
        expected: usize,
        /// The length of the proof given.
        got: usize,
    },
    /// The proof does not lead to the old root.
    #[error("consistency proof leads to old root {calculated}, expected {expected}")]
    Root1Mismatch {
        /// The old root the caller trusts.
        expected: Hash,
        /// The old root the proof hashes to.
        calculated: Hash,
    },
    /// The proof does not lead to the new root. For equal sizes the empty proof "leads to" the
    /// old root, so `calculated` is `root1`.
    #[error("consistency proof leads to new root {calculated}, expected {expected}")]
    Root2Mismatch {
        /// The new root the caller was given.
        expected: Hash,
        /// The new root the proof hashes to.
        calculated: Hash,
    },
}

/// Checks that `leaf_hash` is the leaf at `index` in the tree of `size` leaves whose root is
/// `root`.
///
/// # Errors
/// As for [`root_from_inclusion_proof`], and [`VerifyInclusionError::RootMismatch`] when the
/// proof leads to another root.
pub fn verify_inclusion(
    leaf_hash: Hash,
    index: LeafIndex,
    size: TreeSize,
    proof: &[Hash],
    root: Hash,
) -> Result<(), VerifyInclusionError> {
    let calculated = root_from_inclusion_proof(leaf_hash, index, size, proof)?;
    if calculated != root {
        return Err(VerifyInclusionError::RootMismatch {
            expected: root,
            calculated,
        });
    }
    Ok(())
}

/// The root of the tree of `size` leaves in which `leaf_hash` is the leaf at `index`, if `proof`
/// is its inclusion proof (RFC 9162 §2.1.3.2 without the final comparison).
///
/// The result is only meaningful once compared with a root the caller trusts.
///
/// # Errors
/// [`VerifyInclusionError::IndexOutOfRange`] when `index >= size`;
/// [`VerifyInclusionError::WrongProofLength`] when the proof is too short or too long.
pub fn root_from_inclusion_proof(
    leaf_hash: Hash,
    index: LeafIndex,
    size: TreeSize,
    proof: &[Hash],
) -> Result<Hash, VerifyInclusionError> {
    // Step 1: the leaf must be in the tree.
    if index.get() >= size.get() {
        return Err(VerifyInclusionError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_proof_len(index.get(), size.get());
    let wrong_length = VerifyInclusionError::WrongProofLength {
        expected,
        got: proof.len(),
    };
    if proof.len() != expected {
        return Err(wrong_length);
    }
    // Step 2.
    let mut f_n = index.get();
    let mut s_n = size.get() - 1;
    // Step 3.
    let mut r = leaf_hash;
    // Step 4.
    for &p in proof {
        // 4a: the proof is longer than the path to the root.
        if s_n == 0 {
            return Err(wrong_length);
        }
        // 4b: `p` is a left sibling, or the node is the last on its level and has none on the
        // right, so the path climbs past levels where it has no sibling.
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(r, p);
        }
        // 4c.
        f_n >>= 1;
        s_n >>= 1;
    }
    // Step 5 (first half): the proof must reach the root.
    if s_n != 0 {
        return Err(wrong_length);
    }
    Ok(r)
}

/// Checks that the tree of `size1` leaves with root `root1` is a prefix of the tree of `size2`
/// leaves with root `root2` (RFC 9162 §2.1.4.2). Equal sizes need an empty proof and equal roots.
///
/// # Errors
/// [`VerifyConsistencyError::SizeOrder`] when `size1 > size2`;
/// [`VerifyConsistencyError::FirstTreeEmpty`] when `size1` is 0;
/// [`VerifyConsistencyError::WrongProofLength`] when the proof has the wrong length;
/// [`VerifyConsistencyError::Root1Mismatch`] / [`VerifyConsistencyError::Root2Mismatch`] when the
/// proof leads to other roots.
pub fn verify_consistency(
    size1: TreeSize,
    size2: TreeSize,
    proof: &[Hash],
    root1: Hash,
    root2: Hash,
) -> Result<(), VerifyConsistencyError> {
    let (first, second) = (size1.get(), size2.get());
    if first > second {
        return Err(VerifyConsistencyError::SizeOrder { size1, size2 });
    }
    if first == 0 {
        return Err(VerifyConsistencyError::FirstTreeEmpty);
    }
    let expected = if first == second {
        0
    } else {
        consistency_proof_len(first, second)
    };
    let wrong_length = VerifyConsistencyError::WrongProofLength {
        expected,
        got: proof.len(),
    };
    if proof.len() != expected {
        return Err(wrong_length);
    }
    if first == second {
        // `PROOF(m, D[m])` is empty: the trees are the same, so the roots must be.
        if root1 != root2 {
            return Err(VerifyConsistencyError::Root2Mismatch {
                expected: root2,
                calculated: root1,
            });
        }
        return Ok(());
    }

    // Step 1: an empty path fails. Step 2: when `first` is a power of two the old root is a node
    // of the new tree, which the prover omitted because the verifier knows it.
    let (seed, rest) = if first.is_power_of_two() {
        (root1, proof)
    } else {
        match proof.split_first() {
            Some((&seed, rest)) => (seed, rest),
            None => return Err(wrong_length),
        }
    };
    // Step 3.
    let mut f_n = first - 1;
    let mut s_n = second - 1;
    // Step 4: skip the levels where the old tree's last node is a right child; `seed` is the
    // root of that perfect subtree.
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    // Step 5.
    let mut f_r = seed;
    let mut s_r = seed;
    // Step 6.
    for &c in rest {
        // 6a.
        if s_n == 0 {
            return Err(wrong_length);
        }
        // 6b: `c` is a left sibling, which both trees share; or the old tree ends here and
        // only the new root grows to the right.
        if f_n & 1 == 1 || f_n == s_n {
            f_r = node_hash(c, f_r);
            s_r = node_hash(c, s_r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            s_r = node_hash(s_r, c);
        }
        // 6c.
        f_n >>= 1;
        s_n >>= 1;
    }
    // Step 7.
    if s_n != 0 {
        return Err(wrong_length);
    }
    if f_r != root1 {
        return Err(VerifyConsistencyError::Root1Mismatch {
            expected: root1,
            calculated: f_r,
        });
    }
    if s_r != root2 {
        return Err(VerifyConsistencyError::Root2Mismatch {
            expected: root2,
            calculated: s_r,
        });
    }
    Ok(())
}

/// The number of hashes in the inclusion proof of leaf `index` in a tree of `size` leaves, for
/// `index < size`.
///
/// Below the level where the paths to `index` and to the last leaf part (`inner` levels), every
/// level contributes a sibling. Above it the two paths coincide, and a level contributes a left
/// sibling exactly where the path is a right child, i.e. where `index` has a one bit.
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let last = size - 1;
    let inner = u64::BITS - (index ^ last).leading_zeros();
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    // At most 64 + 64, which fits in a usize on every target.
    (inner + border) as usize
}

/// The number of hashes in the consistency proof between trees of `size1` and `size2` leaves, for
/// `0 < size1 < size2`.
///
/// The proof is the inclusion proof, in the new tree, of the largest perfect subtree that ends
/// the old tree (the `level` where `size1` has its lowest one bit), preceded by that subtree's own
/// hash unless it is the whole old tree (`size1` a power of two).
fn consistency_proof_len(size1: u64, size2: u64) -> usize {
    let level = size1.trailing_zeros();
    let node = (size1 - 1) >> level;
    let last = (size2 - 1) >> level;
    let inner = u64::BITS - (node ^ last).leading_zeros();
    let border = node.checked_shr(inner).unwrap_or(0).count_ones();
    let seed = u32::from(node != 0);
    (inner + border + seed) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proof_lengths_match_the_published_vectors() {
        assert_eq!(inclusion_proof_len(0, 1), 0);
        assert_eq!(inclusion_proof_len(0, 8), 3);
        assert_eq!(inclusion_proof_len(5, 8), 3);
        assert_eq!(inclusion_proof_len(2, 3), 1);
        assert_eq!(inclusion_proof_len(1, 5), 3);
        assert_eq!(consistency_proof_len(1, 8), 3);
        assert_eq!(consistency_proof_len(6, 8), 3);
        assert_eq!(consistency_proof_len(2, 5), 2);
        assert_eq!(consistency_proof_len(6, 7), 3);
    }

    #[test]
    fn proof_lengths_do_not_overflow_in_the_largest_tree() {
        assert_eq!(inclusion_proof_len(u64::MAX - 1, u64::MAX), 63);
        assert_eq!(inclusion_proof_len(0, u64::MAX), 64);
        assert_eq!(consistency_proof_len(1, u64::MAX), 64);
    }
}
