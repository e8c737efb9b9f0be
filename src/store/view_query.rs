//! The questions the views answer and the shape of their answers: what the store's callers pass
//! to a view query and get back, and what crosses the storage seam (`backend::ViewBackend`)
//! unchanged. A leaf: it imports nothing of the store.

use ledger::types::EventId;
use serde::Serialize;

/// Rows one page returns when the caller does not say.
pub const PAGE_ROWS_DEFAULT: u32 = 50;

/// Most rows one search page returns.
pub const PAGE_ROWS_MAX: u32 = 500;

/// A search over the decisions view. Every filter is optional; results come in sequence order
/// (newest first unless `ascending`), and `after` is the cursor: the last sequence number of the
/// previous page.
#[derive(Debug, Clone, Default)]
pub struct DecisionQuery {
    /// Model id.
    pub model_id: Option<String>,
    /// Model version.
    pub model_version: Option<String>,
    /// Outcome in force (after overrides).
    pub outcome: Option<String>,
    /// The model's own outcome.
    pub model_outcome: Option<String>,
    /// Status.
    pub status: Option<String>,
    /// Subject reference.
    pub subject_ref: Option<String>,
    /// Decided at or after (µs).
    pub decided_from: Option<i64>,
    /// Decided before (µs).
    pub decided_until: Option<i64>,
    /// Captured at or after (µs).
    pub captured_from: Option<i64>,
    /// Captured before (µs).
    pub captured_until: Option<i64>,
    /// Score at least.
    pub score_min: Option<f64>,
    /// Score at most.
    pub score_max: Option<f64>,
    /// Oldest first.
    pub ascending: bool,
    /// Cursor.
    pub after: Option<u64>,
    /// Page size (1..=[`PAGE_ROWS_MAX`]).
    pub limit: u32,
}

/// A filter over the oversight actions.
#[derive(Debug, Clone, Default)]
pub struct OversightQuery {
    /// Only actions on this decision.
    pub decision_id: Option<EventId>,
    /// Only actions by this person.
    pub actor: Option<String>,
    /// Only this kind (`human_review`, `override`, `contest`, `explanation_request`).
    pub event_type: Option<String>,
    /// Only this action: a review's `action`, an override's new outcome.
    pub action: Option<String>,
    /// Cursor: last sequence number of the previous page (newest first).
    pub after: Option<u64>,
    /// Page size.
    pub limit: u32,
}

/// One page of rows and the cursor of the next page, if there is one.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    /// The rows.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}
