//! Integration tests of the Auditex service: one test binary, one module per area.
//!
//! The store suite is written once and runs against embedded SQLite always and against
//! PostgreSQL when `AUDITEX_TEST_POSTGRES_ADMIN_URL` is set (see `support.rs` and `.ci/run`). A test
//! that cannot run here says so with a `SKIPPED:` line, and fails under CI (`skip.rs`).

mod browser;
mod cli_append;
mod cli_retention;
mod crash;
mod early_answers;
mod http;
mod http_bodies;
mod http_erasure;
mod http_holds;
mod http_idle;
mod http_integrity;
mod http_package;
mod http_tiles;
mod http_views;
mod ops;
mod portal;
mod portal_support;
mod projections;
mod secret_scan;
mod skip;
mod store;
mod support;
mod tamper;
mod verify;
mod verify_page;
mod witness;
