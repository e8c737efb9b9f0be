//! Names of the nodes of a Merkle tree, independent of any tree size.
//!
//! A node at level `L` with index `i` is the root of the perfect subtree over leaves
//! `[i * 2^L, (i + 1) * 2^L)`; leaves are level 0. Because a perfect subtree never changes once
//! its last leaf is appended, its hash can be stored under this name for ever.

use std::fmt;

use crate::types::LeafIndex;

/// The highest level a stored node can have: a tree holds at most `u64::MAX` leaves, so its
/// largest perfect subtree has `2^63` leaves.
pub const NODE_LEVEL_MAX: u8 = 63;

/// A node that cannot exist in a tree of at most `u64::MAX` leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "no node at level {level}, index {index}: the level must be at most {NODE_LEVEL_MAX} and the \
     first leaf (index * 2^level) must fit in 64 bits"
)]
pub struct NodeIdError {
    /// The rejected level.
    pub level: u8,
    /// The rejected index.
    pub index: u64,
}

/// The position of a perfect subtree: level `L`, index `i`, covering leaves
/// `[i * 2^L, (i + 1) * 2^L)`.
///
/// Invariant: `level <= NODE_LEVEL_MAX` and the first leaf `index << level` fits in a `u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    level: u8,
    index: u64,
}

impl NodeId {
    /// Names the node at `level`, `index`, for example when reading one back from a store.
    ///
    /// # Errors
    /// [`NodeIdError`] when the level is above [`NODE_LEVEL_MAX`] or the node's first leaf would
    /// not fit in 64 bits.
    pub const fn new(level: u8, index: u64) -> Result<Self, NodeIdError> {
        if level > NODE_LEVEL_MAX || index > (u64::MAX >> level) {
            return Err(NodeIdError { level, index });
        }
        Ok(NodeId { level, index })
    }

    /// The leaf at `index` (level 0).
    pub const fn leaf(index: LeafIndex) -> Self {
        NodeId {
            level: 0,
            index: index.get(),
        }
    }

    /// Builds a node the caller has derived from a valid tree position.
    ///
    /// # Panics
    /// In debug builds, when the invariant does not hold: that is a bug in this module.
    pub(super) const fn new_unchecked(level: u8, index: u64) -> Self {
        debug_assert!(level <= NODE_LEVEL_MAX && index <= (u64::MAX >> level));
        NodeId { level, index }
    }

    /// The level: 0 for a leaf, `L` for the root of a subtree of `2^L` leaves.
    pub const fn level(self) -> u8 {
        self.level
    }

    /// The index of the node among the nodes of its level, counted from the left.
    pub const fn index(self) -> u64 {
        self.index
    }

    /// The index of the first leaf the node covers.
    pub const fn first_leaf(self) -> u64 {
        self.index << self.level
    }

    /// The number of leaves the node covers, `2^level`.
    ///
    /// The node's leaves end at `first_leaf() + leaf_count()`, which is `2^64` (not representable)
    /// for the right-most level-63 node; that node can never be complete in a `u64`-sized tree.
    pub const fn leaf_count(self) -> u64 {
        1 << self.level
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node (level {}, index {})", self.level, self.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_covers_a_power_of_two_of_leaves_from_its_aligned_start() {
        let node = NodeId::new(3, 5).expect("valid node");
        assert_eq!(node.first_leaf(), 40);
        assert_eq!(node.leaf_count(), 8);
    }

    #[test]
    fn nodes_beyond_a_u64_tree_are_rejected() {
        assert!(NodeId::new(64, 0).is_err());
        assert!(NodeId::new(63, 1).is_ok());
        assert!(NodeId::new(63, 2).is_err());
        assert!(NodeId::new(0, u64::MAX).is_ok());
        assert!(NodeId::new(1, u64::MAX >> 1).is_ok());
        assert!(NodeId::new(1, (u64::MAX >> 1) + 1).is_err());
    }
}
