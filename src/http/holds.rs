//! Legal holds over HTTP (GDPR Art. 17(3)(b)/(e); docs/OPERATIONS.md "Retention and legal
//! hold"): `GET`/`POST /v1/subjects/{subject_ref}/holds` lists and places holds on a subject (or
//! one of its decisions), `DELETE /v1/subjects/{subject_ref}/holds/{hold_seq}` lifts one. Placing
//! and lifting append signed `legal_hold` records and answer with their receipts; while a hold is
//! active, erasures of what it holds are refused with 409 `urn:auditex:problem:legal-hold`.
//!
//! The subject is the caller's tenant's: another tenant's subject is not found, like one that
//! never existed.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use ledger::payload::FieldError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Caller;
use super::api::{ReceiptBody, parse_body, require_json};
use super::error::{ApiError, Problem};
use super::extract::ApiPath;
use super::params::parse_event_id;
use crate::app::AppState;
use crate::auth::Role;
use crate::store::holds::{HoldError, LegalHold, PlaceHold};

const READERS: &[Role] = &[Role::Read, Role::Privacy];

/// Roles that may place and lift holds: the data-protection office's keys, which also erase.
pub const PRIVACY_ROLES: &[Role] = &[Role::Privacy];

/// Longest subject reference, in bytes (the payload limit of a string).
const SUBJECT_REF_BYTES_MAX: usize = 1024;

/// The hold routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/subjects/{subject_ref}/holds",
            get(list_holds).post(place_hold),
        )
        .route(
            "/v1/subjects/{subject_ref}/holds/{hold_seq}",
            delete(lift_hold),
        )
}

/// A hold to place.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceHoldRequest {
    /// Why (recorded in the ledger), 1 to 1024 bytes.
    #[schema(example = "Litigation hold: claim filed by the customer")]
    pub reason: String,
    /// Hold only this decision of the subject (the whole subject when absent).
    #[schema(example = "01936f5e-7a2b-7c3d-8e4f-a1b2c3d4e5f6")]
    pub decision_id: Option<String>,
    /// A case number or similar (recorded in the ledger).
    #[schema(example = "case 2026-0117")]
    pub reference: Option<String>,
}

/// A hold to lift.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LiftHoldRequest {
    /// Why (recorded in the ledger), 1 to 1024 bytes.
    #[schema(example = "Claim settled")]
    pub reason: String,
}

/// A legal hold, active or lifted.
#[derive(Debug, Serialize, ToSchema)]
pub struct HoldBody {
    /// The hold's number: the seq of the `legal_hold` record that placed it.
    pub hold_seq: u64,
    /// Whether it is in force.
    pub active: bool,
    /// The one decision held; absent for a hold on the whole subject.
    pub decision_id: Option<String>,
    /// Why it was placed.
    pub reason: String,
    /// Case number or similar.
    pub reference: Option<String>,
    /// When it was placed (RFC 3339).
    pub placed_at: String,
    /// The seq of the `legal_hold` record that lifted it.
    pub lifted_seq: Option<u64>,
    /// Why it was lifted.
    pub lifted_reason: Option<String>,
    /// When it was lifted (RFC 3339).
    pub lifted_at: Option<String>,
}

fn rfc3339(us: u64) -> String {
    ledger::types::CaptureTime::from_unix_micros(us)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default()
}

impl From<LegalHold> for HoldBody {
    fn from(h: LegalHold) -> Self {
        HoldBody {
            hold_seq: h.hold_seq,
            active: h.is_active(),
            decision_id: h.decision_id,
            reason: h.reason,
            reference: h.reference,
            placed_at: rfc3339(h.placed_at_us),
            lifted_seq: h.lifted_seq,
            lifted_reason: h.lifted_reason,
            lifted_at: h.lifted_at_us.map(rfc3339),
        }
    }
}

/// A subject's legal holds.
#[derive(Debug, Serialize, ToSchema)]
pub struct HoldList {
    /// The subject reference.
    pub subject_ref: String,
    /// Every hold, active and lifted, oldest first.
    pub holds: Vec<HoldBody>,
}

/// What a refused hold request answers.
fn refused(e: HoldError) -> ApiError {
    match e {
        HoldError::UnknownSubject => ApiError::NotFound("unknown subject".into()),
        HoldError::UnknownHold(_) => ApiError::NotFound(e.to_string()),
        // A member of the body names what cannot be done, as the erasure endpoint answers it.
        HoldError::UnknownDecision(_) => ApiError::BadMembers(vec![FieldError {
            path: "/decision_id".into(),
            problem: e.to_string(),
        }]),
        // The members are checked below before the store sees them; what is left is the record
        // the store could not make of them.
        HoldError::BadText(_) => ApiError::MalformedBody(e.to_string()),
        HoldError::Append(a) => a.into(),
        HoldError::Store(s) => s.into(),
    }
}

/// Every text member's refusal at once (`reason`, `reference`), as the erasure endpoint does.
fn check_members(members: &[(&str, Option<&str>)]) -> Vec<FieldError> {
    members
        .iter()
        .filter_map(|(name, text)| {
            let text = (*text)?;
            crate::store::subjects::check_text(name, text)
                .err()
                .map(|problem| FieldError {
                    path: format!("/{name}"),
                    problem,
                })
        })
        .collect()
}

fn subject(subject_ref: String) -> Result<String, ApiError> {
    if subject_ref.trim().is_empty() || subject_ref.len() > SUBJECT_REF_BYTES_MAX {
        return Err(ApiError::BadParameter(format!(
            "subject_ref must be 1 to {SUBJECT_REF_BYTES_MAX} bytes"
        )));
    }
    Ok(subject_ref)
}

/// A subject's legal holds, active and lifted.
#[utoipa::path(get, path = "/v1/subjects/{subject_ref}/holds", tag = "holds",
    params(("subject_ref" = String, Path, description = "The subject reference")),
    responses(
        (status = 200, body = HoldList),
        (status = 400, description = "Bad subject reference", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The tenant holds nothing about this subject", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn list_holds(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(subject_ref): ApiPath<String>,
) -> Result<Json<HoldList>, ApiError> {
    let p = caller.require(READERS, "read legal holds")?;
    let subject_ref = subject(subject_ref)?;
    let holds = state
        .store
        .legal_holds(&p.tenant, &subject_ref)
        .await
        .map_err(refused)?;
    Ok(Json(HoldList {
        subject_ref,
        holds: holds.into_iter().map(HoldBody::from).collect(),
    }))
}

/// Place a legal hold on a subject, or on one of its decisions: appends a `legal_hold` record.
/// While it is active, erasure requests, the operator's local `erasure` records and retention
/// that would erase what it holds are refused (409 `urn:auditex:problem:legal-hold`).
#[utoipa::path(post, path = "/v1/subjects/{subject_ref}/holds", tag = "holds",
    params(("subject_ref" = String, Path, description = "The subject reference")),
    request_body = PlaceHoldRequest,
    responses(
        (status = 201, description = "Placed: the receipt of the `legal_hold` record (its seq is the hold's number)", body = ReceiptBody),
        (status = 400, description = "Malformed body, bad reason or reference, or `decision_id` not a decision of this subject; nothing was appended", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The tenant holds nothing about this subject", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A member at fault, named by its pointer: the JSON broken or cut off inside it, its name repeated, or a number out of range (I-JSON); nothing was appended", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn place_hold(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(subject_ref): ApiPath<String>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = caller.require(PRIVACY_ROLES, "place legal holds")?;
    let subject_ref = subject(subject_ref)?;
    require_json(&headers)?;
    let request: PlaceHoldRequest = parse_body(&body)?;
    let mut errors = check_members(&[
        ("reason", Some(&request.reason)),
        ("reference", request.reference.as_deref()),
    ]);
    let decision_id = match request.decision_id.as_deref().map(parse_event_id) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(e)) => {
            errors.push(FieldError {
                path: "/decision_id".into(),
                problem: e.to_string(),
            });
            None
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::BadMembers(errors));
    }
    let receipt = state
        .store
        .place_hold(
            &p.tenant,
            PlaceHold {
                subject_ref,
                decision_id,
                reason: request.reason,
                reference: request.reference,
            },
        )
        .await
        .map_err(refused)?;
    tracing::info!(tenant = %p.tenant, hold = receipt.seq, key = %p.key_id, "legal hold placed");
    Ok((StatusCode::CREATED, Json(ReceiptBody::from(receipt))).into_response())
}

/// Lift a legal hold: appends a `legal_hold` record (`lifted`). Lifting a hold lifted already
/// answers the receipt of the record that lifted it (`duplicate` true) and appends nothing.
#[utoipa::path(delete, path = "/v1/subjects/{subject_ref}/holds/{hold_seq}", tag = "holds",
    params(
        ("subject_ref" = String, Path, description = "The subject reference"),
        ("hold_seq" = u64, Path, description = "The hold's number (the seq of the record that placed it)"),
    ),
    request_body = LiftHoldRequest,
    responses(
        (status = 200, description = "Lifted: the receipt of the `legal_hold` record that lifted it", body = ReceiptBody),
        (status = 400, description = "Malformed body or bad reason; nothing was appended", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key's role may not do this", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such hold of this subject", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A member at fault, named by its pointer: the JSON broken or cut off inside it, its name repeated, or a number out of range (I-JSON); nothing was appended", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Overloaded or database unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn lift_hold(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((subject_ref, hold_seq)): ApiPath<(String, u64)>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = caller.require(PRIVACY_ROLES, "lift legal holds")?;
    let subject_ref = subject(subject_ref)?;
    require_json(&headers)?;
    let request: LiftHoldRequest = parse_body(&body)?;
    let errors = check_members(&[("reason", Some(&request.reason))]);
    if !errors.is_empty() {
        return Err(ApiError::BadMembers(errors));
    }
    let receipt = state
        .store
        .lift_hold(&p.tenant, &subject_ref, hold_seq, &request.reason)
        .await
        .map_err(refused)?;
    tracing::info!(tenant = %p.tenant, hold = hold_seq, key = %p.key_id, "legal hold lifted");
    Ok((StatusCode::OK, Json(ReceiptBody::from(receipt))).into_response())
}
