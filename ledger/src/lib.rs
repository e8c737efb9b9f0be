//! The verifiable core of Auditex: record format, canonical encoding, hashing, signing, Merkle
//! trees, proofs, checkpoints and verification.
//!
//! This crate is pure: it performs no I/O, reads no clock and draws no randomness. Time, keys,
//! salts and bytes come in as arguments, so the same code runs in the service, in the offline
//! verifier and (compiled to `wasm32-unknown-unknown`) in a browser. FORMAT.md at the repository
//! root specifies every byte that this crate hashes or signs.

#![forbid(unsafe_code)]

pub mod bundle;
pub mod canonical;
pub mod checkpoint;
pub mod consistency_file;
pub mod cosignature;
pub mod draft;
pub mod evidence;
pub mod export;
pub mod failure;
pub mod json;
pub mod keys;
pub mod merkle;
pub mod note;
pub mod package;
pub mod payload;
pub mod policy;
pub mod proof_file;
pub mod record;
pub mod types;
pub mod verify;
