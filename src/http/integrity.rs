//! Integrity checks over HTTP: an auditor (role `read` or `verify`) starts a full check of the
//! ledger of the tenant their key belongs to, follows its progress, may cancel it, and lists past
//! results. The jobs themselves (registry, running, filing) are `app::integrity`; this module
//! holds the routes, handlers and request/page bodies.
//!
//! A check runs in the background ([`crate::store::Store::check_integrity`]); its result is
//! filed in the ledger as an `integrity_check` record whose **event id is the check's id**, so
//! that a check is found by its id after a restart, and a retried append files it once. Past results are therefore read
//! from the ledger (through the `records_by_type` index), never only from memory; the running
//! check and unfiled results come from the registry ([`crate::app::integrity::IntegrityChecks`]).
//!
//! As everywhere, the tenant comes from the caller's key: another tenant's check is a 404,
//! exactly like a check that does not exist.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ledger::checkpoint::open_checkpoint;
use ledger::note::VerifierKey;
use ledger::record::{EventType, Record};
use ledger::types::{EventId, Sequence, TenantId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Caller;
use super::error::{ApiError, Problem};
use super::extract::{ApiPath, ApiQuery, QueryParams, page_size};
use super::params::{decode_prefixed_cursor, encode_prefixed_cursor, page_limit};
use crate::app::AppState;
use crate::app::integrity::{
    Cancelled, CheckOutcome, CheckState, FiledRecordBody, IntegrityCheckBody, ProgressBody,
    ReportBody, StartRefused,
};
use crate::auth::Role;
use crate::store::SEEN_CHECKPOINTS_MAX;

/// Largest page of the check listing.
pub const PAGE_CHECKS_MAX: u64 = 100;

/// Default page size of the check listing.
pub const PAGE_CHECKS_DEFAULT: u64 = 20;

/// Auditors and regulators check the ledger; pipelines (`ingest`) only write to it.
const AUDITORS: &[Role] = &[Role::Read, Role::Verify];

const CURSOR_PREFIX: &str = "before:";

/// The integrity-check routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/integrity-checks", post(start_check).get(list_checks))
        .route("/v1/integrity-checks/{id}", get(get_check))
        .route("/v1/integrity-checks/{id}/cancel", post(cancel_check))
}

/// What to start a check with. The body is optional: no body checks against the published
/// checkpoints only.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartCheckRequest {
    /// Signed checkpoints (C2SP notes) seen before — from an earlier check, a download or a
    /// witness — each signed by one of this ledger's keys (at most 1000). A smaller tree now is
    /// reported as a rollback, another root at the same size as a fork.
    #[serde(default)]
    pub seen_checkpoints: Vec<String>,
}

/// A page of integrity checks.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckPage {
    /// Newest first. The first page starts with the checks that are not in the ledger: the
    /// running one, and any that ended without a filed result. Then come the results filed in
    /// the ledger.
    pub checks: Vec<IntegrityCheckBody>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Listing parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CheckListParams {
    /// Opaque cursor from a previous page.
    pub cursor: Option<String>,
    /// Filed results per page, 1–100 (default 20).
    pub limit: Option<u64>,
}

impl QueryParams for CheckListParams {
    fn expected(name: &str) -> Option<String> {
        (name == "limit").then(|| page_size(PAGE_CHECKS_MAX))
    }
}

fn parse_check_id(text: &str) -> Result<EventId, ApiError> {
    EventId::parse(text).map_err(|_| {
        ApiError::BadParameter(format!(
            "{:?} is not an integrity check id (a lowercase UUIDv7)",
            text.chars().take(80).collect::<String>()
        ))
    })
}

fn start_refused(e: StartRefused) -> ApiError {
    match e {
        StartRefused::Running(_) => ApiError::Conflict(e.to_string()),
        StartRefused::QuotaExceeded {
            detail,
            retry_after,
        } => ApiError::QuotaExceeded {
            detail,
            retry_after,
        },
        StartRefused::Store(e) => ApiError::from(e),
        StartRefused::Internal(detail) => ApiError::Internal(detail),
    }
}

fn not_found() -> ApiError {
    ApiError::NotFound("no such integrity check".into())
}

/// The check as read back from its `integrity_check` record.
fn body_of_record(record: &Record) -> Result<IntegrityCheckBody, ApiError> {
    let report: ReportBody = serde_json::from_str(record.payload.as_str()).map_err(|e| {
        ApiError::Internal(format!(
            "integrity_check record {} has a payload this service cannot read: {e}",
            record.seq
        ))
    })?;
    let seconds = report.finished_at_us.saturating_sub(report.started_at_us) as f64 / 1_000_000.0;
    let state = match report.outcome {
        CheckOutcome::Passed => CheckState::Passed,
        CheckOutcome::Failed => CheckState::Failed,
        CheckOutcome::Cancelled => CheckState::Cancelled,
    };
    Ok(IntegrityCheckBody {
        id: record.event_id.to_string(),
        state,
        started_at_us: report.started_at_us,
        finished_at_us: Some(report.finished_at_us),
        cancel_requested: state == CheckState::Cancelled,
        progress: ProgressBody {
            checked: report.records_checked,
            total: report.records_total,
            checkpoints_checked: report.checkpoints_checked,
            records_per_second: if seconds > 0.0 {
                report.records_checked as f64 / seconds
            } else {
                0.0
            },
            eta_seconds: None,
        },
        record: Some(FiledRecordBody {
            seq: record.seq.get(),
            event_id: record.event_id.to_string(),
            hash: record.hash.to_hex(),
            captured_at_us: record.captured_at_us.unix_micros(),
        }),
        report: Some(report),
        problem: None,
    })
}

/// The filed check `id` of the tenant, from the ledger.
async fn filed_check(
    state: &AppState,
    tenant: &TenantId,
    id: EventId,
) -> Result<Option<IntegrityCheckBody>, ApiError> {
    match state.store.record_by_event_id(tenant, id).await? {
        Some(record) if record.event_type == EventType::IntegrityCheck => {
            body_of_record(&record).map(Some)
        }
        // Another event's id is no more an integrity check than an unknown id.
        _ => Ok(None),
    }
}

/// Parses the optional start request: an empty body (or `null`) means no seen checkpoints.
fn parse_start(headers: &HeaderMap, body: &Bytes) -> Result<StartCheckRequest, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(StartCheckRequest::default());
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError::MalformedBody(
            "Content-Type must be application/json".into(),
        ));
    }
    let malformed = |e: serde_json::Error| {
        ApiError::MalformedBody(format!("the body is not a valid request: {e}"))
    };
    // Through a `Value` first: serde would also read a struct from a JSON array, by position.
    let request: StartCheckRequest = match serde_json::from_slice(body).map_err(malformed)? {
        serde_json::Value::Null => StartCheckRequest::default(),
        object @ serde_json::Value::Object(_) => {
            serde_json::from_value(object).map_err(malformed)?
        }
        _ => {
            return Err(ApiError::MalformedBody(
                "the body must be a JSON object (or empty)".into(),
            ));
        }
    };
    if request.seen_checkpoints.len() > SEEN_CHECKPOINTS_MAX {
        return Err(ApiError::MalformedBody(format!(
            "seen_checkpoints holds {} checkpoints; at most {SEEN_CHECKPOINTS_MAX} are accepted",
            request.seen_checkpoints.len()
        )));
    }
    Ok(request)
}

/// Refuses, before anything starts, a seen checkpoint that is not a checkpoint of this ledger
/// signed by one of its keys (the check would refuse it too, but only after answering 202).
async fn check_seen(state: &AppState, tenant: &TenantId, notes: &[String]) -> Result<(), ApiError> {
    if notes.is_empty() {
        return Ok(());
    }
    let ring = state.store.key_history(tenant).await?;
    let origin = state.store.origin(tenant).await?;
    let vkeys = ring
        .intervals()
        .iter()
        .map(|k| VerifierKey::new(&origin, k.public_key))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::Internal(format!("checkpoint key of {origin}: {e}")))?;
    for (i, note) in notes.iter().enumerate() {
        open_checkpoint(note.as_bytes(), &vkeys, Some(&origin)).map_err(|e| {
            ApiError::MalformedBody(format!(
                "/seen_checkpoints/{i} is not a checkpoint of this ledger signed by one of its keys: {e}"
            ))
        })?;
    }
    Ok(())
}

fn location(id: &str) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(&format!("/v1/integrity-checks/{id}"))
        .map_err(|e| ApiError::Internal(format!("check id {id} in a header: {e}")))
}

/// Start a full integrity check of the caller's ledger in the background.
#[utoipa::path(post, path = "/v1/integrity-checks", tag = "integrity",
    request_body(content = Option<StartCheckRequest>, content_type = "application/json",
        description = "Optional: checkpoints seen before. No body checks against the published checkpoints only."),
    responses(
        (status = 202, description = "Started; follow it at the Location", body = IntegrityCheckBody,
            headers(("Location" = String, description = "The check's URL"))),
        (status = 400, description = "Malformed body, too many seen checkpoints, or a seen checkpoint not signed by this ledger's keys; nothing was started", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role may not run integrity checks", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A check of this ledger is running already; the problem names it", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "This ledger's integrity checks per hour are used up, or the key is rate limited; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn start_check(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = caller.require(AUDITORS, "run integrity checks")?;
    let request = parse_start(&headers, &body)?;
    check_seen(&state, &p.tenant, &request.seen_checkpoints).await?;
    let check = state
        .integrity
        .start(&state.store, &p.tenant, request.seen_checkpoints)
        .await
        .map_err(start_refused)?;
    tracing::info!(tenant = %p.tenant, check = %check.id, key = %p.key_id, "integrity check started");
    let location = location(&check.id)?;
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(check),
    )
        .into_response())
}

/// An integrity check: state, progress and, once ended, its report and ledger record.
#[utoipa::path(get, path = "/v1/integrity-checks/{id}", tag = "integrity",
    params(("id" = String, Path, description = "The check's id (UUIDv7)")),
    responses(
        (status = 200, body = IntegrityCheckBody),
        (status = 400, description = "Not a check id", body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such check in this ledger", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn get_check(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<IntegrityCheckBody>, ApiError> {
    let p = caller.require(AUDITORS, "read integrity checks")?;
    let id = parse_check_id(&id)?;
    if let Some(check) = state.integrity.view(&state.store, &p.tenant, id).await {
        return Ok(Json(check));
    }
    filed_check(&state, &p.tenant, id)
        .await?
        .map(Json)
        .ok_or_else(not_found)
}

/// Cancel a running integrity check. It stops at its next page of records and files a
/// `cancelled` result in the ledger.
#[utoipa::path(post, path = "/v1/integrity-checks/{id}/cancel", tag = "integrity",
    params(("id" = String, Path, description = "The check's id (UUIDv7)")),
    responses(
        (status = 202, description = "Cancellation requested; the check stops at its next page", body = IntegrityCheckBody),
        (status = 400, description = "Not a check id", body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such check in this ledger", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The check has already ended", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn cancel_check(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let p = caller.require(AUDITORS, "cancel integrity checks")?;
    let id = parse_check_id(&id)?;
    let ended = |how: CheckState| {
        ApiError::Conflict(format!(
            "integrity check {id} has already ended ({}); there is nothing to cancel",
            serde_json::to_value(how)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        ))
    };
    match state.integrity.cancel(&state.store, &p.tenant, id).await {
        Cancelled::Requested(check) => {
            tracing::info!(tenant = %p.tenant, check = %id, key = %p.key_id, "integrity check cancellation requested");
            Ok((StatusCode::ACCEPTED, Json(*check)).into_response())
        }
        Cancelled::AlreadyEnded(s) => Err(ended(s)),
        Cancelled::Unknown => match filed_check(&state, &p.tenant, id).await? {
            Some(check) => Err(ended(check.state)),
            None => Err(not_found()),
        },
    }
}

/// The ledger's integrity checks, newest first: the running one, then past results from the
/// ledger, with cursor pagination.
#[utoipa::path(get, path = "/v1/integrity-checks", tag = "integrity", params(CheckListParams),
    responses(
        (status = 200, body = CheckPage),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn list_checks(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<ApiQuery<CheckListParams>, ApiError>,
) -> Result<Json<CheckPage>, ApiError> {
    let p = caller.require(AUDITORS, "read integrity checks")?;
    let ApiQuery(params) = params?;
    let limit = page_limit(params.limit, PAGE_CHECKS_DEFAULT, PAGE_CHECKS_MAX)?;
    let before = params.cursor.as_deref().map(decode_cursor).transpose()?;
    // Memory first, then the ledger: a check filed in between shows up in both, and the
    // ledger's copy wins below; read the other way round it could show up in neither.
    let unfiled = if before.is_none() {
        state.integrity.unfiled(&state.store, &p.tenant).await
    } else {
        Vec::new()
    };
    let records = state
        .store
        .records_of_type(&p.tenant, EventType::IntegrityCheck, before, limit)
        .await?;
    let next_cursor = (records.len() as u64 == limit)
        .then(|| records.last().map(|r| encode_cursor(r.seq.get())))
        .flatten();
    let filed = records
        .iter()
        .map(body_of_record)
        .collect::<Result<Vec<_>, _>>()?;
    let mut checks: Vec<IntegrityCheckBody> = unfiled
        .into_iter()
        .filter(|c| !filed.iter().any(|f| f.id == c.id))
        .collect();
    checks.extend(filed);
    Ok(Json(CheckPage {
        checks,
        next_cursor,
    }))
}

fn encode_cursor(before: u64) -> String {
    encode_prefixed_cursor(CURSOR_PREFIX, before)
}

fn decode_cursor(cursor: &str) -> Result<Sequence, ApiError> {
    let before = decode_prefixed_cursor(CURSOR_PREFIX, cursor)?;
    Sequence::new(before)
        .map_err(|_| ApiError::BadParameter("cursor is not one this service issued".into()))
}
