//! The durable event store (`auditex::store`), tested through its public API and, where the
//! database itself must refuse something, through raw SQL on the application's own connection.

mod append;
mod append_only;
mod cells;
mod charts;
mod disk_full;
mod erasure;
mod file_modes;
mod holds;
mod isolation;
mod keys;
mod postgres;
mod proofs;
mod sealing;
mod subjects;
mod users;
