//! RFC 9162 Merkle trees over the ledger's records: hashing, storage-agnostic inclusion and
//! consistency proofs, the incremental right edge of a growing log, and the C2SP tlog-tiles layout.
//!
//! The module never touches storage. A store uses it in three steps:
//!
//! 1. On append, [`CompactTree::push`] returns every perfect-subtree hash that the new leaf
//!    completes; the store persists them, keyed by [`NodeId`] (or packed into tiles, see
//!    [`TileSpan`]). The tree's own state is only the right edge, so a restarted service rebuilds it
//!    with [`CompactTree::from_parts`] instead of rereading every leaf.
//! 2. To answer a proof request, [`inclusion_proof_node_ids`] or [`consistency_proof_node_ids`] says
//!    *which* stored hashes the proof needs; the store fetches exactly those.
//! 3. [`prove_inclusion`] / [`prove_consistency`] (or [`ProofNodes::rehash`]) assemble the proof
//!    from the fetched hashes. A verifier needs no store at all: [`verify_inclusion`] and
//!    [`verify_consistency`] run the RFC 9162 §2.1.3.2 and §2.1.4.2 algorithms.
//!
//! In Auditex a leaf's data is the 32-byte record hash, but [`leaf_hash`] accepts any bytes, so the
//! same code checks the published RFC 6962 / RFC 9162 test vectors.

mod compact;
mod hash;
mod node;
mod proof;
mod tile;
mod verify;

pub use compact::{CompactTree, CompactTreeError, NodeHash, compact_range_node_ids};
pub use hash::{empty_root, leaf_hash, node_hash};
pub use node::{NODE_LEVEL_MAX, NodeId, NodeIdError};
pub use proof::{
    Ephemeral, HashCountError, ProofNodes, ProofNodesError, ProveError, consistency_proof_node_ids,
    inclusion_proof_node_ids, prove_consistency, prove_inclusion,
};
pub use tile::{
    TILE_HASHES_MAX, TILE_HEIGHT, TILE_LEVEL_MAX, TileError, TileId, TileResource, TileSpan,
    entries_from_bundle, entries_path, entry_bundle, node_hashes_from_tiles,
    tile_hashes_from_bytes, tile_width, tiles_for_nodes,
};
pub use verify::{
    VerifyConsistencyError, VerifyInclusionError, root_from_inclusion_proof, verify_consistency,
    verify_inclusion,
};
