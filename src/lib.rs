//! Auditex: a multi-tenant, event-sourced ledger of AI decisions in finance.
//!
//! Every decision is appended as a signed record whose hash links to its predecessor in a
//! per-tenant chain and is a leaf of the tenant's Merkle tree; signed checkpoints make every record
//! provable to anyone holding the public keys. The pure record format and proof code live in the
//! `ledger` crate; this crate is the service around it: configuration, the durable store, the
//! application state (`app`) shared by the API (`http`) and the compliance portal (`portal`), the
//! `server` that starts and stops them, and the command line.

// The crate's documentation is for the people working on it (`cargo doc --document-private-items`):
// public items may point at the internal modules that do the work.
#![allow(rustdoc::private_intra_doc_links)]

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod fetch;
pub mod file_modes;
pub mod http;
pub mod portal;
pub mod server;
pub mod store;
pub mod verify_cli;
pub mod witness;
