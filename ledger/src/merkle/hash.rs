//! The RFC 9162 §2.1.1 hash functions.
//!
//! Leaves and interior nodes are hashed with different one-byte prefixes so that no leaf can be
//! presented as an interior node (or the reverse) to forge a proof for data that was never logged.

use sha2::{Digest, Sha256};

use crate::types::Hash;

/// Prefix of a leaf hash input (RFC 9162 §2.1.1).
const LEAF_PREFIX: u8 = 0x00;

/// Prefix of an interior node hash input (RFC 9162 §2.1.1).
const NODE_PREFIX: u8 = 0x01;

/// The root of the empty tree: SHA-256 of the empty string, `MTH({})` in RFC 9162.
pub fn empty_root() -> Hash {
    Hash::from_bytes(Sha256::digest(b"").into())
}

/// The hash of a leaf: SHA-256(0x00 || `data`).
///
/// In Auditex `data` is the 32-byte record hash; any byte string is accepted.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let digest = Sha256::new()
        .chain_update([LEAF_PREFIX])
        .chain_update(data)
        .finalize();
    Hash::from_bytes(digest.into())
}

/// The hash of an interior node: SHA-256(0x01 || `left` || `right`).
pub fn node_hash(left: Hash, right: Hash) -> Hash {
    let digest = Sha256::new()
        .chain_update([NODE_PREFIX])
        .chain_update(left.as_bytes())
        .chain_update(right.as_bytes())
        .finalize();
    Hash::from_bytes(digest.into())
}

/// The Merkle tree hash of a range whose perfect subtrees, left to right (so in decreasing size),
/// are `rest` followed by `last`.
///
/// RFC 9162 splits a range at the largest power of two below its size, so the left part is always
/// perfect and only the right part recurses: the hash is
/// `node_hash(rest[0], node_hash(rest[1], … node_hash(rest[k-1], last)))`. Taking `last`
/// separately makes the non-empty precondition part of the signature.
pub(super) fn fold_right_edge(rest: &[Hash], last: Hash) -> Hash {
    rest.iter()
        .rev()
        .fold(last, |right, &left| node_hash(left, right))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_empty_root_is_the_sha256_of_nothing() {
        assert_eq!(
            empty_root().to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn the_hash_of_an_empty_leaf_matches_rfc_6962() {
        // The well-known leaf hash of the empty string, as in the RFC 6962 test data.
        assert_eq!(
            leaf_hash(b"").to_hex(),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }

    #[test]
    fn leaf_and_node_hashes_are_domain_separated() {
        let a = leaf_hash(b"a");
        let b = leaf_hash(b"b");
        let mut concatenated = Vec::new();
        concatenated.extend_from_slice(a.as_bytes());
        concatenated.extend_from_slice(b.as_bytes());
        assert_ne!(node_hash(a, b), leaf_hash(&concatenated));
        assert_ne!(node_hash(a, b), node_hash(b, a));
    }
}
