//! The right edge of a growing tree, so appending a leaf and computing the root cost O(log n).
//!
//! A tree of `size` leaves splits, left to right, into one perfect subtree per one bit of `size`
//! (largest first). Those hashes — a "compact range" over `[0, size)` — are all the state needed
//! to append further leaves and to compute the root: appending merges equal-sized subtrees at the
//! right end like a binary counter carries. A store persists every perfect subtree hash the
//! append completes, and on restart feeds the current right edge back to
//! [`CompactTree::from_parts`] instead of rereading every leaf.

use super::hash::{empty_root, fold_right_edge, node_hash};
use super::node::NodeId;
use super::proof::push_range_node_ids;
use crate::types::{Hash, LeafIndex, TreeSize};

/// Why a compact tree cannot be built or grown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompactTreeError {
    /// The stored right edge has the wrong number of hashes for the size: a tree of `size`
    /// leaves has one perfect subtree per one bit of `size`.
    #[error("a tree of size {size} has {expected} right-edge hashes, got {got}")]
    WrongHashCount {
        /// The claimed size.
        size: TreeSize,
        /// The number of one bits in `size`.
        expected: usize,
        /// The number of hashes supplied.
        got: usize,
    },
    /// The tree already holds `u64::MAX` leaves, so the next leaf index does not exist.
    #[error("the tree is full at {} leaves", u64::MAX)]
    Full,
}

/// A hash to persist: the completed perfect subtree `id` has hash `hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeHash {
    /// The node.
    pub id: NodeId,
    /// Its hash, which never changes once the node is complete.
    pub hash: Hash,
}

/// The growing tree, reduced to the hashes of the perfect subtrees on its right edge.
///
/// Invariant: `hashes[i]` is the hash of `compact_range_node_ids(size)[i]`, so
/// `hashes.len() == size.count_ones()`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompactTree {
    size: u64,
    hashes: Vec<Hash>,
}

impl CompactTree {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Resumes a tree of `size` leaves from the hashes of its right edge, the nodes
    /// [`compact_range_node_ids`] names for `size`, in that order.
    ///
    /// The hashes are trusted: compare [`CompactTree::root`] with the last signed checkpoint
    /// before appending to a tree read back from storage.
    ///
    /// # Errors
    /// [`CompactTreeError::WrongHashCount`] when there is not exactly one hash per one bit of
    /// `size`.
    pub fn from_parts(size: TreeSize, hashes: Vec<Hash>) -> Result<Self, CompactTreeError> {
        // count_ones() is at most 64, so the conversion is lossless on every target.
        let expected = size.get().count_ones() as usize;
        if hashes.len() != expected {
            return Err(CompactTreeError::WrongHashCount {
                size,
                expected,
                got: hashes.len(),
            });
        }
        Ok(CompactTree {
            size: size.get(),
            hashes,
        })
    }

    /// The number of leaves.
    pub fn size(&self) -> TreeSize {
        TreeSize::new(self.size)
    }

    /// The right-edge hashes, in the order of [`compact_range_node_ids`] for [`CompactTree::size`].
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// The root: RFC 9162 `MTH(D[0:size])`, [`empty_root`] for the empty tree.
    pub fn root(&self) -> Hash {
        match self.hashes.split_last() {
            Some((&last, rest)) => fold_right_edge(rest, last),
            None => empty_root(),
        }
    }

    /// Appends the leaf whose hash is `leaf_hash` (see [`super::leaf_hash`]) and returns every
    /// perfect subtree it completes, lowest first: the leaf itself, then each parent the append
    /// merges. Their hashes never change, so a store can persist them under their ids.
    ///
    /// # Errors
    /// [`CompactTreeError::Full`] when the tree already holds `u64::MAX` leaves.
    pub fn push(&mut self, leaf_hash: Hash) -> Result<Vec<NodeHash>, CompactTreeError> {
        let index = self.size;
        let new_size = index.checked_add(1).ok_or(CompactTreeError::Full)?;
        // Like a binary counter: the new leaf merges with one right-edge subtree per trailing
        // one bit of the old size, and those subtrees are the last entries of `hashes`.
        let merges = index.trailing_ones();
        // At most 63 merges (index < u64::MAX), and the invariant puts at least that many hashes
        // on the edge, so the subtraction cannot underflow.
        let keep = self.hashes.len() - merges as usize;
        let lefts = self.hashes.split_off(keep);

        let mut completed = Vec::with_capacity(lefts.len() + 1);
        completed.push(NodeHash {
            id: NodeId::leaf(LeafIndex::new(index)),
            hash: leaf_hash,
        });
        let mut hash = leaf_hash;
        for (level, &left) in (1u8..).zip(lefts.iter().rev()) {
            hash = node_hash(left, hash);
            completed.push(NodeHash {
                id: NodeId::new_unchecked(level, index >> level),
                hash,
            });
        }
        self.hashes.push(hash);
        self.size = new_size;
        Ok(completed)
    }
}

/// The perfect subtrees on the right edge of the tree of `size` leaves, left to right (largest
/// first): the nodes [`CompactTree::from_parts`] needs to resume a tree of that size.
pub fn compact_range_node_ids(size: TreeSize) -> Vec<NodeId> {
    let mut ids = Vec::with_capacity(size.get().count_ones() as usize);
    push_range_node_ids(0, size.get(), &mut ids);
    ids
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::leaf_hash;

    #[test]
    fn the_empty_tree_has_the_empty_root() {
        let tree = CompactTree::new();
        assert_eq!(tree.size(), TreeSize::ZERO);
        assert_eq!(tree.root(), empty_root());
        assert!(compact_range_node_ids(TreeSize::ZERO).is_empty());
    }

    #[test]
    fn appending_the_fourth_leaf_completes_three_nodes() {
        let mut tree = CompactTree::new();
        for byte in 0..3u8 {
            tree.push(leaf_hash(&[byte])).expect("not full");
        }
        let completed = tree.push(leaf_hash(&[3])).expect("not full");
        let ids: Vec<_> = completed.iter().map(|node| node.id).collect();
        let want = [(0, 3), (1, 1), (2, 0)].map(|(l, i)| NodeId::new(l, i).expect("valid"));
        assert_eq!(ids, want);
        assert_eq!(tree.hashes(), [completed[2].hash]);
        assert_eq!(tree.root(), completed[2].hash);
    }

    #[test]
    fn a_right_edge_with_the_wrong_number_of_hashes_is_refused() {
        assert_eq!(
            CompactTree::from_parts(TreeSize::new(5), vec![Hash::ZERO]),
            Err(CompactTreeError::WrongHashCount {
                size: TreeSize::new(5),
                expected: 2,
                got: 1
            })
        );
    }

    #[test]
    fn a_full_tree_refuses_another_leaf() {
        let mut tree =
            CompactTree::from_parts(TreeSize::new(u64::MAX), vec![Hash::ZERO; 64]).expect("valid");
        assert_eq!(tree.push(Hash::ZERO), Err(CompactTreeError::Full));
        assert_eq!(tree.size(), TreeSize::new(u64::MAX));
    }

    #[test]
    fn the_last_possible_leaf_can_be_appended() {
        let mut tree = CompactTree::from_parts(TreeSize::new(u64::MAX - 1), vec![Hash::ZERO; 63])
            .expect("valid");
        let completed = tree.push(Hash::ZERO).expect("one slot left");
        assert_eq!(completed.len(), 1);
        assert_eq!(tree.hashes().len(), 64);
    }
}
