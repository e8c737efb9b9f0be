//! Integration tests of the Auditex service: one test binary, one module per area.
//!
//! The store suite is written once and runs against embedded SQLite always and against
//! PostgreSQL when `AUDITEX_TEST_POSTGRES_ADMIN_URL` is set (see `support.rs` and `.ci/run`).

mod crash;
mod http;
mod ops;
mod store;
mod support;
mod tamper;
mod verify;
