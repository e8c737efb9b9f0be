//! The HTTP layer's one error type, rendered as RFC 9457 `application/problem+json`.
//!
//! Every variant documents its status. Client errors say precisely what is wrong (and, for
//! validation errors, which field, as a JSON Pointer); server errors log the detail and return a
//! generic body so that no internal state leaks.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ledger::payload::FieldError;
use serde::Serialize;

use crate::store::{AppendError, StoreError};

/// A problem document (RFC 9457).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A stable URI naming the kind of problem, e.g. `urn:auditex:problem:validation`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short, stable summary of the kind.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong this time, for a person.
    pub detail: String,
    /// For validation errors: every failing field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ProblemField>,
}

/// One failing field of a validation problem.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProblemField {
    /// JSON Pointer to the field, from the request body's root (e.g. `/records/3/payload/score`).
    pub pointer: String,
    /// What is wrong with it.
    pub detail: String,
}

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not JSON, not UTF-8, or not the expected shape.
    #[error("{0}")]
    MalformedBody(String),
    /// 422: fields failed validation.
    #[error("{} invalid field(s)", .0.len())]
    Validation(Vec<FieldError>),
    /// 413: the body exceeds the named limit.
    #[error("request body larger than {0} bytes")]
    BodyTooLarge(usize),
    /// 408: the request body did not arrive within the seconds named (see `http::bodies`).
    #[error("the request body did not arrive within {0} s; send it faster, or in smaller requests")]
    BodyTimedOut(u64),
    /// 422: a batch with more records than allowed.
    #[error("a batch may hold at most {max} records (got {got})")]
    BatchTooLarge {
        /// Records sent.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// 400: a query parameter is malformed or out of range (cursor, sizes, indices).
    #[error("{0}")]
    BadParameter(String),
    /// 400: members of a well-formed body that cannot be acted on — they name what does not
    /// exist (an erasure's unknown fields or records) or break a rule of the request (empty
    /// text) — each named by its JSON Pointer; nothing was done.
    #[error("{} refused member(s)", .0.len())]
    BadMembers(Vec<FieldError>),
    /// 401: no key, or a key that is unknown, revoked or expired.
    #[error("a valid API key is required (Authorization: Bearer atx_…)")]
    Unauthorized,
    /// 403: the key's role does not allow this.
    #[error("the {role} role may not {action}")]
    Forbidden {
        /// The key's role.
        role: crate::auth::Role,
        /// What was attempted.
        action: &'static str,
    },
    /// 404: nothing here (also what another tenant's record looks like).
    #[error("{0}")]
    NotFound(String),
    /// 409: the event id exists with other content.
    #[error("{0}")]
    Conflict(String),
    /// 409 with the `legal-hold` problem type: what the request would erase is under an active
    /// legal hold (named in the detail), or a lift names a hold that is not active.
    #[error("{0}")]
    LegalHold(String),
    /// 429: rate limited.
    #[error("too many requests; retry after {0} s")]
    RateLimited(u64),
    /// 429: a per-tenant allowance of costly work (integrity checks) is used up.
    #[error("{detail}")]
    QuotaExceeded {
        /// What is used up.
        detail: String,
        /// Seconds until the allowance has room again.
        retry_after: u64,
    },
    /// 503: the append queue is full or the database is unreachable; retry later.
    #[error("{detail}")]
    Unavailable {
        /// What is unavailable.
        detail: String,
        /// Seconds to wait.
        retry_after: u64,
    },
    /// 503 with the `storage-full` problem type: the disk under the database is full; nothing
    /// was written, and the same request succeeds once space is freed.
    #[error("{detail}")]
    StorageFull {
        /// What is full.
        detail: String,
        /// Seconds to wait.
        retry_after: u64,
    },
    /// 503 with the `clock-behind` problem type: the server's clock is behind the ledger's
    /// latest capture time by more than allowed; nothing was written.
    #[error("{detail}")]
    ClockBehind {
        /// How far behind.
        detail: String,
        /// Seconds to wait.
        retry_after: u64,
    },
    /// 503: the tenant is held after a detected rollback: its latest stored checkpoint is older
    /// than one already published, so nothing is presented as current until an operator
    /// acknowledges the rollback.
    #[error("{0}")]
    Held(String),
    /// 410: the record a receipt named was abandoned by an acknowledged rollback.
    #[error("{0}")]
    RolledBack(String),
    /// 500: a bug or corrupt data; details are logged, not returned.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ApiError::MalformedBody(_) => (
                StatusCode::BAD_REQUEST,
                "malformed-body",
                "Malformed request body",
            ),
            ApiError::Validation(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                "Invalid fields",
            ),
            ApiError::BodyTooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                "Request body too large",
            ),
            ApiError::BodyTimedOut(_) => (
                StatusCode::REQUEST_TIMEOUT,
                "body-timed-out",
                "Request body too slow",
            ),
            ApiError::BatchTooLarge { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "batch-too-large",
                "Batch too large",
            ),
            ApiError::BadParameter(_) => {
                (StatusCode::BAD_REQUEST, "bad-parameter", "Bad parameter")
            }
            ApiError::BadMembers(_) => (
                StatusCode::BAD_REQUEST,
                "bad-request",
                "Request cannot be carried out",
            ),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            ApiError::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            ApiError::LegalHold(_) => (StatusCode::CONFLICT, "legal-hold", "Under legal hold"),
            ApiError::RateLimited(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
            ),
            ApiError::QuotaExceeded { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "quota-exceeded",
                "Allowance used up",
            ),
            ApiError::Unavailable { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
            ),
            ApiError::StorageFull { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "storage-full",
                "Storage full",
            ),
            ApiError::ClockBehind { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "clock-behind",
                "Clock behind",
            ),
            ApiError::Held(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "rollback-held",
                "Held after a database rollback",
            ),
            ApiError::RolledBack(_) => (StatusCode::GONE, "rolled-back", "Rolled back"),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
        }
    }

    /// The problem document for this error.
    pub fn problem(&self) -> Problem {
        let (status, kind, title) = self.parts();
        let errors = match self {
            ApiError::Validation(fields) | ApiError::BadMembers(fields) => fields
                .iter()
                .map(|f| ProblemField {
                    pointer: f.path.clone(),
                    detail: f.problem.clone(),
                })
                .collect(),
            _ => Vec::new(),
        };
        let detail = match self {
            ApiError::Validation(fields) | ApiError::BadMembers(fields) => fields
                .iter()
                .map(|f| format!("{}: {}", f.path, f.problem))
                .collect::<Vec<_>>()
                .join("; "),
            other => other.to_string(),
        };
        Problem {
            kind: format!("urn:auditex:problem:{kind}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            errors,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(%detail, "internal error");
        }
        let problem = self.problem();
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match &self {
            ApiError::RateLimited(secs)
            | ApiError::QuotaExceeded {
                retry_after: secs, ..
            }
            | ApiError::Unavailable {
                retry_after: secs, ..
            }
            | ApiError::StorageFull {
                retry_after: secs, ..
            }
            | ApiError::ClockBehind {
                retry_after: secs, ..
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*secs));
            }
            ApiError::Held(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(60u64));
            }
            ApiError::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(err) => {
                tracing::warn!(error = %err, "database unavailable");
                ApiError::Unavailable {
                    detail: "the database is unavailable; retry later".into(),
                    retry_after: 1,
                }
            }
            // Logged at ERROR where the write failed (once per episode, see `store::faults`).
            StoreError::StorageFull(_) => ApiError::StorageFull {
                detail: "the server's storage is full: nothing was written; retry later (an \
                         operator must free space)"
                    .into(),
                retry_after: crate::store::faults::STORAGE_FULL_RETRY_AFTER_S,
            },
            StoreError::ClockBehind { .. } => ApiError::ClockBehind {
                detail: format!("{e}: nothing was written; retry later"),
                retry_after: crate::store::faults::CLOCK_BEHIND_RETRY_AFTER_S,
            },
            StoreError::NotPrimary(detail) => {
                tracing::warn!(error = %detail, "no PostgreSQL primary");
                ApiError::Unavailable {
                    detail: "no database primary is available (a failover may be under way); \
                             retry later"
                        .into(),
                    retry_after: 1,
                }
            }
            StoreError::TenantFenced(detail) => {
                tracing::info!(error = %detail, "write refused by a tenant move's fence");
                ApiError::Unavailable {
                    detail: "this tenant's ledger is being moved to another database; nothing \
                             was written; retry in a moment"
                        .into(),
                    retry_after: 1,
                }
            }
            StoreError::UnknownTenant => ApiError::NotFound("not found".into()),
            StoreError::OutOfRange(detail) => ApiError::BadParameter(detail),
            StoreError::ViewNotReady(detail) => ApiError::Unavailable {
                detail,
                retry_after: 1,
            },
            StoreError::RollbackUnacknowledged { .. } => {
                tracing::error!(error = %e, "tenant held after a detected rollback");
                ApiError::Held(
                    "the ledger is held after a database rollback; an operator must acknowledge it"
                        .into(),
                )
            }
            StoreError::ErasureJournal { .. } => {
                tracing::error!(error = %e, "tenant held: its erasure journal was not carried out");
                ApiError::Held(
                    "the ledger is held: erasures recorded outside the database could not be \
                     carried out; an operator must repair the erasure journal"
                        .into(),
                )
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<AppendError> for ApiError {
    fn from(e: AppendError) -> Self {
        match e {
            AppendError::Overloaded { retry_after } => ApiError::Unavailable {
                detail: "the ledger is overloaded; retry later".into(),
                retry_after: retry_after.as_secs().max(1),
            },
            AppendError::QueueDeadline { retry_after, .. } => ApiError::Unavailable {
                detail: e.to_string(),
                retry_after: retry_after.as_secs().max(1),
            },
            AppendError::ShuttingDown => ApiError::Unavailable {
                detail: "the service is shutting down; retry later".into(),
                retry_after: 1,
            },
            AppendError::Conflict { event_id, reason } => ApiError::Conflict(format!(
                "event id {event_id} was already appended with different content ({reason})"
            )),
            AppendError::BatchTooLarge { records, max } => {
                ApiError::BatchTooLarge { got: records, max }
            }
            AppendError::UnknownTenant => ApiError::NotFound("not found".into()),
            AppendError::LegalHold {
                hold_seq,
                ref reason,
                ..
            } => legal_hold(hold_seq, reason),
            AppendError::HoldNotActive { .. } => ApiError::LegalHold(e.to_string()),
            AppendError::Store(s) => s.into(),
        }
    }
}

/// What a store error says to a client: the `detail` of its problem document, never internal
/// detail (integrity checks word their own failures with it).
pub fn public_detail(e: AppendError) -> String {
    ApiError::from(e).to_string()
}

/// A problem document for an error status produced outside the handlers (an unknown route, a
/// wrong method), keeping the original headers (`Allow`).
pub fn generic_problem(
    status: StatusCode,
    detail: &str,
    headers: axum::http::HeaderMap,
) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let kind = title.to_ascii_lowercase().replace(' ', "-");
    let detail = if detail.trim().is_empty() {
        title.to_owned()
    } else {
        detail.trim().chars().take(500).collect()
    };
    let problem = Problem {
        kind: format!("urn:auditex:problem:{kind}"),
        title: title.to_owned(),
        status: status.as_u16(),
        detail,
        errors: Vec::new(),
    };
    let mut response = (status, serde_json::to_vec(&problem).unwrap_or_default()).into_response();
    for (name, value) in &headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            response.headers_mut().insert(name.clone(), value.clone());
        }
    }
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

/// The answer to an erasure refused because of a legal hold (for the subject-rights endpoints):
/// 409 naming the hold.
pub fn legal_hold(hold_seq: u64, reason: &str) -> ApiError {
    ApiError::LegalHold(format!(
        "what this erasure would erase is under legal hold {hold_seq} ({reason}); nothing was \
         appended; lift the hold first"
    ))
}

impl From<crate::store::EvidenceError> for ApiError {
    fn from(e: crate::store::EvidenceError) -> Self {
        use crate::store::EvidenceError as E;
        match e {
            E::EventNotFound(_) | E::RecordNotFound(_) => {
                ApiError::NotFound("no such record".into())
            }
            E::UnknownSubject => ApiError::NotFound("unknown subject".into()),
            E::NoCheckpoint | E::NotYetCheckpointed { .. } => ApiError::NotFound(e.to_string()),
            E::NotADecision { .. } | E::TooManyEntries { .. } | E::OutOfRange(_) => {
                ApiError::BadParameter(e.to_string())
            }
            E::Store(s) => s.into(),
            E::ProofFile(_) | E::Write(_) => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<crate::store::subjects::ErasureError> for ApiError {
    fn from(e: crate::store::subjects::ErasureError) -> Self {
        use crate::store::subjects::ErasureError as E;
        let member = |path: &str, e: &E| {
            ApiError::BadMembers(vec![FieldError {
                path: path.to_owned(),
                problem: e.to_string(),
            }])
        };
        match e {
            // The same answer as a subject of another tenant: nothing says which it is.
            E::UnknownSubject => ApiError::NotFound("no such subject".into()),
            E::UnknownFields(_) => member("/fields", &e),
            E::UnknownEvents(_) => member("/event_ids", &e),
            E::BadText(_) => ApiError::MalformedBody(e.to_string()),
            E::Repeated {
                member: m, index, ..
            } => member(&format!("/{m}/{index}"), &e),
            E::Held { hold_seq, reason } => legal_hold(hold_seq, &reason),
            E::Append(a) => a.into(),
            E::Store(s) => s.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn parts(e: ApiError) -> (StatusCode, Option<String>, serde_json::Value) {
        let response = e.into_response();
        let status = response.status();
        let retry = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap_or_default();
        let json = serde_json::from_slice(&body).unwrap_or_default();
        (status, retry, json)
    }

    #[tokio::test]
    async fn a_full_disk_is_answered_503_with_the_storage_full_problem_and_a_retry_after() {
        let e = ApiError::from(AppendError::Store(StoreError::StorageFull(
            "(code: 13) database or disk is full".into(),
        )));
        let (status, retry, body) = parts(e).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry.as_deref(), Some("10"));
        assert_eq!(body["type"], "urn:auditex:problem:storage-full");
        assert_eq!(body["title"], "Storage full");
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("storage is full"), "{detail}");
        assert!(
            !detail.contains("code: 13"),
            "internal detail stays in the log"
        );
    }

    #[tokio::test]
    async fn a_clock_behind_is_answered_503_with_the_clock_behind_problem() {
        let e = ApiError::from(StoreError::ClockBehind {
            behind: Duration::from_secs(600),
            allowed: Duration::from_secs(300),
        });
        let (status, retry, body) = parts(e).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry.as_deref(), Some("30"));
        assert_eq!(body["type"], "urn:auditex:problem:clock-behind");
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("600 s behind"), "{detail}");
    }

    #[tokio::test]
    async fn a_request_that_waited_past_the_deadline_is_answered_503_overloaded() {
        let e = ApiError::from(AppendError::QueueDeadline {
            waited: Duration::from_millis(5200),
            deadline: Duration::from_millis(5000),
            retry_after: Duration::from_secs(1),
        });
        let (status, retry, body) = parts(e).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry.as_deref(), Some("1"));
        assert_eq!(body["type"], "urn:auditex:problem:unavailable");
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("waited 5200 ms"), "{detail}");
    }

    #[test]
    fn postgres_disk_full_maps_to_the_same_answer_as_sqlite_disk_full() {
        use crate::store::faults::{Backend, is_storage_full_code};
        assert!(is_storage_full_code(Backend::Postgres, "53100"));
        assert!(is_storage_full_code(Backend::Sqlite, "13"));
    }
}
