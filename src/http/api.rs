//! The `/v1` ledger endpoints (records, proofs, checkpoints, keys, export) and the operational
//! ones `/healthz` and `/metrics`.
//!
//! Handlers are thin: authenticate (the [`Caller`] extractor), check the role, parse and validate
//! input at the edge (`ledger::draft`), call the store, shape the answer. The tenant always comes
//! from the caller's key; a record of another tenant is simply not found.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ledger::draft::{ClientDraft, prepare_client_draft};
use ledger::merkle::leaf_hash;
use ledger::note::VerifierKey;
use ledger::payload::FieldError;
use ledger::record::{EventType, Record};
use ledger::types::{EventId, LeafIndex, Sequence, TreeSize};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Caller;
use super::error::{ApiError, Problem};
use super::extract::{ApiPath, ApiQuery, QueryParams, SEQUENCE_NUMBER, TREE_SIZE, page_size};
use super::params::{self, decode_cursor, encode_cursor, parse_event_id};
use crate::app::AppState;
use crate::auth::Role;
use crate::store::api_keys::Principal;
use crate::store::{BATCH_RECORDS_MAX, Receipt};

/// Largest page of a record listing.
pub const PAGE_RECORDS_MAX: u64 = 1000;

/// Default page size of a record listing.
pub const PAGE_RECORDS_DEFAULT: u64 = 100;

const READERS: &[Role] = &[Role::Read];
const PROVERS: &[Role] = &[Role::Read, Role::Verify];
const INGESTERS: &[Role] = &[Role::Ingest];

/// The `/v1` routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/records", post(append_one).get(list_records))
        .route("/v1/records/batch", post(append_batch))
        .route("/v1/records/{seq}", get(get_record))
        .route("/v1/events/{event_id}", get(get_record_by_event))
        .route("/v1/receipts/{event_id}", get(get_receipt))
        .route("/v1/proofs/inclusion", get(inclusion_proof))
        .route("/v1/proofs/inclusion/{seq}/tlog-proof", get(tlog_proof))
        .route("/v1/proofs/consistency", get(consistency_proof))
        .route("/v1/checkpoints/latest", get(latest_checkpoint))
        .route("/v1/checkpoints", get(list_checkpoints))
        .route("/v1/keys", get(key_history))
        .route("/v1/decisions/{event_id}/bundle", get(custody_bundle))
        .route("/v1/export", get(export))
        // Only the GETs of these routes: appends pass through untouched.
        .route_layer(axum::middleware::from_fn(super::replica_reads::on_replica))
}

/// Health and metrics.
pub fn ops_routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
}

/// One event to append.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppendRequest {
    /// A UUIDv7 chosen by the client; retrying with the same id returns the original receipt.
    #[schema(example = "01936f5e-7a2b-7c3d-8e4f-a1b2c3d4e5f6")]
    pub event_id: String,
    /// `decision`, `human_review`, `override`, `contest`, `explanation_request`, `submission` or
    /// `model_change` (`erasure` and `legal_hold` go through the subject endpoints: 403 here).
    #[schema(example = "decision")]
    pub event_type: String,
    /// The event's content; see FORMAT.md section 7 for each type's fields.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// Personal data that may later be erased: name → any JSON value. Only salted commitments
    /// enter the hashed record.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub erasable: BTreeMap<String, serde_json::Value>,
}

/// A batch of events, appended all or nothing.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// At most 1000 events.
    pub records: Vec<AppendRequest>,
}

/// What a caller gets for each appended event.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReceiptBody {
    /// Sequence number in the tenant's chain.
    pub seq: u64,
    /// The event id.
    pub event_id: String,
    /// Record hash (hex).
    pub hash: String,
    /// Ed25519 signature over the hash (hex).
    pub sig: String,
    /// Signing key id.
    pub key_id: String,
    /// Capture time, µs since the Unix epoch.
    pub captured_at_us: u64,
    /// Capture time, RFC 3339.
    pub captured_at: String,
    /// True when the event id existed already and nothing was written.
    pub duplicate: bool,
}

impl From<Receipt> for ReceiptBody {
    fn from(r: Receipt) -> Self {
        ReceiptBody {
            seq: r.seq,
            event_id: r.event_id.to_string(),
            hash: r.hash.to_hex(),
            sig: r.sig.to_hex(),
            key_id: r.key_id.to_hex(),
            captured_at_us: r.captured_at_us,
            captured_at: r.captured_at,
            duplicate: r.duplicate,
        }
    }
}

/// Receipts of a batch, in request order.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchReceipts {
    /// One receipt per event.
    pub receipts: Vec<ReceiptBody>,
}

/// A sealed record (FORMAT.md section 3).
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordBody {
    /// Format version (1).
    pub v: u32,
    /// Tenant id.
    pub tenant: String,
    /// Sequence number.
    pub seq: u64,
    /// Previous record's hash (hex).
    pub prev: String,
    /// Capture time, µs since the Unix epoch.
    pub captured_at_us: u64,
    /// Event id.
    pub event_id: String,
    /// Event type.
    pub event_type: String,
    /// Canonical payload.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// Erasable-field commitments.
    #[schema(value_type = Object)]
    pub erasable: serde_json::Value,
    /// Signing key id.
    pub key_id: String,
    /// Record hash (hex).
    pub hash: String,
    /// Signature (hex).
    pub sig: String,
}

/// A page of records.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordPage {
    /// Records in sequence order.
    #[schema(value_type = Vec<RecordBody>)]
    pub records: Vec<Record>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Listing parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Opaque cursor from a previous page.
    pub cursor: Option<String>,
    /// First sequence number (ignored when `cursor` is given).
    pub from_seq: Option<u64>,
    /// Page size, 1–1000 (default 100).
    pub limit: Option<u64>,
}

impl QueryParams for ListParams {
    fn expected(name: &str) -> Option<String> {
        match name {
            "from_seq" => Some(SEQUENCE_NUMBER.into()),
            "limit" => Some(page_size(PAGE_RECORDS_MAX)),
            _ => None,
        }
    }
}

/// Inclusion-proof parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InclusionParams {
    /// The record's sequence number.
    pub seq: u64,
    /// Tree size of a published checkpoint (default: the latest checkpoint).
    pub tree_size: Option<u64>,
    /// Read-your-writes: the latest checkpoint must have at least this tree size (say, the
    /// size of one seen before); answered 409 while none has. Only without `tree_size`.
    pub min_tree_size: Option<u64>,
}

impl QueryParams for InclusionParams {
    fn expected(name: &str) -> Option<String> {
        match name {
            "seq" => Some(SEQUENCE_NUMBER.into()),
            "tree_size" | "min_tree_size" => Some(TREE_SIZE.into()),
            _ => None,
        }
    }
}

/// tlog-proof parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TreeSizeParam {
    /// Tree size of a published checkpoint (default: the latest checkpoint).
    pub tree_size: Option<u64>,
    /// Read-your-writes: the latest checkpoint must have at least this tree size (say, the
    /// size of one seen before); answered 409 while none has. Only without `tree_size`.
    pub min_tree_size: Option<u64>,
}

impl QueryParams for TreeSizeParam {
    fn expected(name: &str) -> Option<String> {
        matches!(name, "tree_size" | "min_tree_size").then(|| TREE_SIZE.into())
    }
}

/// Parameters of the latest checkpoint.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LatestParams {
    /// Read-your-writes: the checkpoint must have at least this tree size (say, the size of one
    /// seen before); answered 409 while none has.
    pub min_tree_size: Option<u64>,
}

impl QueryParams for LatestParams {
    fn expected(name: &str) -> Option<String> {
        (name == "min_tree_size").then(|| TREE_SIZE.into())
    }
}

/// An RFC 9162 inclusion proof with the checkpoint it proves against.
#[derive(Debug, Serialize, ToSchema)]
pub struct InclusionProofBody {
    /// Leaf index (= sequence number).
    pub leaf_index: u64,
    /// Tree size of the checkpoint.
    pub tree_size: u64,
    /// The record hash (hex).
    pub record_hash: String,
    /// `SHA-256(0x00 || record hash)` (hex).
    pub leaf_hash: String,
    /// Proof hashes (hex), the leaf's sibling first.
    pub proof: Vec<String>,
    /// The signed checkpoint (C2SP) whose root the proof reaches.
    pub checkpoint: String,
}

/// Consistency-proof parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyParams {
    /// The older tree size: that of a published checkpoint (≥ 1).
    pub from: u64,
    /// The newer tree size: that of a published checkpoint (default: the latest checkpoint).
    pub to: Option<u64>,
    /// Read-your-writes: the latest checkpoint must have at least this tree size (say, the
    /// size of one seen before); answered 409 while none has. Only without `to`.
    pub min_tree_size: Option<u64>,
}

impl QueryParams for ConsistencyParams {
    fn expected(name: &str) -> Option<String> {
        matches!(name, "from" | "to" | "min_tree_size").then(|| TREE_SIZE.into())
    }
}

/// An RFC 9162 consistency proof between two published checkpoints: the consistency-proof file
/// of FORMAT.md, which `auditex verify consistency --proof` reads as it is.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsistencyProofBody {
    /// Always `auditex-consistency-proof/v1`.
    pub format: String,
    /// Older size: that of a published checkpoint.
    pub from: u64,
    /// Newer size: that of a published checkpoint.
    pub to: u64,
    /// Proof hashes (lower-case hex); empty when `from` equals `to`.
    pub proof: Vec<String>,
    /// The signed checkpoint published at `from`.
    pub from_checkpoint: String,
    /// The signed checkpoint published at `to`.
    pub to_checkpoint: String,
}

impl From<ledger::consistency_file::ConsistencyProofFile> for ConsistencyProofBody {
    fn from(f: ledger::consistency_file::ConsistencyProofFile) -> Self {
        ConsistencyProofBody {
            format: ledger::consistency_file::CONSISTENCY_PROOF_FORMAT.to_owned(),
            from: f.from,
            to: f.to,
            proof: f.proof.iter().map(|h| h.to_hex()).collect(),
            from_checkpoint: f.from_checkpoint,
            to_checkpoint: f.to_checkpoint,
        }
    }
}

/// Checkpoint-listing parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CheckpointParams {
    /// Only checkpoints with a larger tree size.
    pub after: Option<u64>,
    /// Page size, 1–1000 (default 100).
    pub limit: Option<u64>,
}

impl QueryParams for CheckpointParams {
    fn expected(name: &str) -> Option<String> {
        match name {
            "after" => Some(TREE_SIZE.into()),
            "limit" => Some(page_size(PAGE_RECORDS_MAX)),
            _ => None,
        }
    }
}

/// One published checkpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckpointBody {
    /// Tree size.
    pub tree_size: u64,
    /// Root (hex).
    pub root: String,
    /// The signed note (C2SP tlog-checkpoint).
    pub signed_note: String,
    /// Publication time, µs since the Unix epoch.
    pub published_at_us: u64,
    /// `current` for a checkpoint of the tenant's current tree; `abandoned` for one published
    /// for a branch that an acknowledged rollback abandoned (it does not extend the current tree).
    pub branch: CheckpointBranch,
    /// For an abandoned checkpoint: the sequence number of the `rollback_acknowledged` record
    /// that abandoned it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abandoned_by_seq: Option<u64>,
}

/// Which branch of the tree a listed checkpoint belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointBranch {
    /// The tenant's current tree.
    Current,
    /// A branch abandoned by an acknowledged rollback.
    Abandoned,
}

/// A page of checkpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckpointPage {
    /// Checkpoints, smallest first.
    pub checkpoints: Vec<CheckpointBody>,
}

/// One key of the tenant's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyBody {
    /// Record key id.
    pub key_id: String,
    /// Ed25519 public key (hex).
    pub public_key: String,
    /// First sequence number it signs.
    pub from_seq: u64,
    /// First sequence number it no longer signs (null while current).
    pub until_seq: Option<u64>,
    /// The C2SP verifier key for its checkpoint signatures.
    pub verifier_key: String,
}

/// The tenant's public-key history.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyHistory {
    /// The checkpoint origin.
    pub origin: String,
    /// Keys, oldest first.
    pub keys: Vec<KeyBody>,
}

/// Parses a JSON body, mapping every failure to a precise 400/413.
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    if body.len() > super::REQUEST_BODY_BYTES_MAX {
        return Err(ApiError::BodyTooLarge(super::REQUEST_BODY_BYTES_MAX));
    }
    if std::str::from_utf8(body).is_err() {
        return Err(ApiError::MalformedBody(
            "the body is not valid UTF-8".into(),
        ));
    }
    // Strict first (duplicate member names, out-of-range numbers: I-JSON), so that the problem
    // names the pointer of the member at fault and the typed parse below sees one reading only.
    let text = String::from_utf8_lossy(body);
    if let Err(e) = ledger::json::check(&text) {
        return Err(if e.pointer.is_empty() {
            ApiError::MalformedBody(format!("the body is not a valid request: {}", e.problem))
        } else {
            ApiError::Validation(vec![FieldError {
                path: e.pointer,
                problem: e.problem,
            }])
        });
    }
    // Every request body is a JSON object: serde would also fill a struct from an array, by
    // position, which no client means.
    if !text.trim_start().starts_with('{') {
        return Err(ApiError::MalformedBody(
            "the body is not a valid request: it must be a JSON object".into(),
        ));
    }
    // From the text, which is known to be UTF-8: serde_json then does not check it again.
    serde_json::from_str(&text)
        .map_err(|e| ApiError::MalformedBody(format!("the body is not a valid request: {e}")))
}

pub(crate) fn require_json(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
    if ok {
        Ok(())
    } else {
        Err(ApiError::MalformedBody(
            "Content-Type must be application/json".into(),
        ))
    }
}

/// What the records endpoints answer an `erasure` or `legal_hold` record with.
const SUBJECT_ENDPOINTS_ONLY: &str = "append erasure or legal_hold records: a privacy key asks \
     through POST /v1/subjects/{subject_ref}/erasure and /v1/subjects/{subject_ref}/holds";

/// Erasures and legal holds are the privacy role's, through the subject endpoints, which check
/// the subject and the holds before anything is appended. A pipeline's ingest key that could
/// append them here would erase, or lift a hold, without that role.
fn refuse_privacy_records<'a>(
    principal: &Principal,
    event_types: impl IntoIterator<Item = &'a str>,
) -> Result<(), ApiError> {
    let privacy = [EventType::Erasure.as_str(), EventType::LegalHold.as_str()];
    if event_types.into_iter().any(|t| privacy.contains(&t)) {
        return Err(ApiError::Forbidden {
            role: principal.role,
            action: SUBJECT_ENDPOINTS_ONLY,
        });
    }
    Ok(())
}

/// Refuses what only the portal's four-eyes flow writes (FORMAT.md §7, "Four eyes"): a
/// proposal or its resolution (`human_review` actions `override_proposed`, `override_withdrawn`,
/// `override_rejected`; an `override` naming `proposal_id`, `approved_by` or
/// `approval_reason`), whose people the service checks only there; and, while the tenant
/// requires four eyes, any `override`: it must be proposed and approved by two reviewers.
async fn refuse_four_eyes_records(
    state: &AppState,
    principal: &Principal,
    records: &[AppendRequest],
    batch: bool,
) -> Result<(), ApiError> {
    use crate::store::oversight::{
        ACTION_OVERRIDE_PROPOSED, ACTION_OVERRIDE_REJECTED, ACTION_OVERRIDE_WITHDRAWN,
    };
    let mut errors = Vec::new();
    let mut overrides = Vec::new();
    // The pointer prefix of record `i`, made only for a record that is refused.
    let prefix = |i: usize| {
        if batch {
            format!("/records/{i}")
        } else {
            String::new()
        }
    };
    for (i, r) in records.iter().enumerate() {
        let member = |name: &str| r.payload.get(name);
        if r.event_type == EventType::HumanReview.as_str()
            && member("action").and_then(|a| a.as_str()).is_some_and(|a| {
                [
                    ACTION_OVERRIDE_PROPOSED,
                    ACTION_OVERRIDE_WITHDRAWN,
                    ACTION_OVERRIDE_REJECTED,
                ]
                .contains(&a)
            })
        {
            errors.push(FieldError {
                path: format!("{}/payload/action", prefix(i)),
                problem: "is a step of the portal's four-eyes flow: overrides are proposed, approved and withdrawn on the portal's oversight pages".into(),
            });
        }
        if r.event_type == EventType::Override.as_str() {
            for name in ["proposal_id", "approved_by", "approval_reason"] {
                if member(name).is_some() {
                    errors.push(FieldError {
                        path: format!("{}/payload/{name}", prefix(i)),
                        problem: "is set by the portal when a second reviewer approves a proposed override".into(),
                    });
                }
            }
            overrides.push(i);
        }
    }
    if errors.is_empty()
        && !overrides.is_empty()
        && state
            .store
            .oversight_settings(&principal.tenant)
            .await?
            .four_eyes
    {
        errors.extend(overrides.into_iter().map(|i| FieldError {
            path: format!("{}/event_type", prefix(i)),
            problem: "this tenant requires four eyes for overrides: propose it on the portal's decision page, where a second reviewer approves it".into(),
        }));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// Validates one event as a client's: the store takes nothing else, so a type only the service
/// writes is refused here with the rest of the request's field errors.
fn prepare(request: &AppendRequest, prefix: &str) -> Result<ClientDraft, Vec<FieldError>> {
    prepare_client_draft(
        &request.event_id,
        &request.event_type,
        &request.payload,
        &request.erasable,
        rand::random,
    )
    .map_err(|errors| {
        errors
            .into_iter()
            .map(|e| FieldError {
                path: format!("{prefix}{}", e.path),
                problem: e.problem,
            })
            .collect()
    })
}

/// Append one event.
#[utoipa::path(post, path = "/v1/records", tag = "ingest", request_body = AppendRequest,
    responses(
        (status = 201, description = "Appended and durable", body = ReceiptBody),
        (status = 200, description = "Already appended earlier: the original receipt", body = ReceiptBody),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role may not append, or an `erasure` or `legal_hold` record (those go through the subject endpoints)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Event id exists with other content", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Overloaded (queue full, or waited past the deadline), storage full (`urn:auditex:problem:storage-full`), clock behind (`urn:auditex:problem:clock-behind`), or database unavailable; nothing was written; retry after `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn append_one(
    State(state): State<AppState>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let principal = caller.require(INGESTERS, "append records")?;
    require_json(&headers)?;
    let request: AppendRequest = parse_body(&body)?;
    refuse_privacy_records(principal, [request.event_type.as_str()])?;
    let draft = prepare(&request, "").map_err(ApiError::Validation)?;
    refuse_four_eyes_records(&state, principal, std::slice::from_ref(&request), false).await?;
    let started = Instant::now();
    let result = state.store.append(&principal.tenant, vec![draft]).await;
    let mut receipts = match result {
        Ok(r) => r,
        Err(e) => {
            state.metrics.append_failed();
            return Err(e.into());
        }
    };
    let receipt = receipts
        .pop()
        .ok_or_else(|| ApiError::Internal("no receipt".into()))?;
    state
        .metrics
        .append_ok(1, usize::from(!receipt.duplicate), started.elapsed());
    let status = if receipt.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(ReceiptBody::from(receipt))).into_response())
}

/// Append a batch of events, all or nothing.
#[utoipa::path(post, path = "/v1/records/batch", tag = "ingest", request_body = BatchRequest,
    responses(
        (status = 200, description = "All appended and durable (duplicates marked)", body = BatchReceipts),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role may not append, or an `erasure` or `legal_hold` record (those go through the subject endpoints)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "An event id exists with other content; nothing was written", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields or too many records; nothing was written", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Overloaded (queue full, or waited past the deadline), storage full (`urn:auditex:problem:storage-full`), clock behind (`urn:auditex:problem:clock-behind`), or database unavailable; nothing was written; retry after `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn append_batch(
    State(state): State<AppState>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Json<BatchReceipts>, ApiError> {
    let principal = caller.require(INGESTERS, "append records")?;
    require_json(&headers)?;
    let who = principal.clone();
    // Up to a thousand records to parse, check and canonicalize: milliseconds of CPU, run off
    // the async workers so that proofs and reads are not queued behind them.
    let (request, drafts) = off_the_workers(move || parse_batch(&who, &body)).await??;
    refuse_four_eyes_records(&state, principal, &request.records, true).await?;
    // The parsed batch is not needed while the drafts wait for the appender.
    drop(request);
    // Checked last, where the appender refused such a batch before: one that also breaks the
    // rules above is answered as it was.
    refuse_conflicting_repeats(&drafts)?;
    let started = Instant::now();
    match state.store.append(&principal.tenant, drafts).await {
        Ok(receipts) => {
            let new = receipts.iter().filter(|r| !r.duplicate).count();
            state
                .metrics
                .append_ok(receipts.len(), new, started.elapsed());
            Ok(Json(BatchReceipts {
                receipts: receipts.into_iter().map(ReceiptBody::from).collect(),
            }))
        }
        Err(e) => {
            state.metrics.append_failed();
            Err(e.into())
        }
    }
}

/// Parses and validates a batch: the request and its records' drafts, or every problem found.
fn parse_batch(
    principal: &Principal,
    body: &Bytes,
) -> Result<(BatchRequest, Vec<ClientDraft>), ApiError> {
    let request: BatchRequest = parse_body(body).map_err(|e| match e {
        ApiError::MalformedBody(_) => misshapen_records(body).unwrap_or(e),
        other => other,
    })?;
    if request.records.len() > BATCH_RECORDS_MAX {
        return Err(ApiError::BatchTooLarge {
            got: request.records.len(),
            max: BATCH_RECORDS_MAX,
        });
    }
    if request.records.is_empty() {
        return Err(ApiError::Validation(vec![FieldError {
            path: "/records".into(),
            problem: "must hold at least one event".into(),
        }]));
    }
    refuse_privacy_records(
        principal,
        request.records.iter().map(|r| r.event_type.as_str()),
    )?;
    let mut errors = Vec::new();
    let mut drafts = Vec::with_capacity(request.records.len());
    for (i, r) in request.records.iter().enumerate() {
        let prefix = format!("/records/{i}");
        match prepare(r, &prefix) {
            Ok(d) => drafts.push(d),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok((request, drafts))
}

/// The problem with a batch body that is JSON but not a batch because of its records, naming the
/// record at fault by its pointer: serde's words for a record that is not an object ("invalid
/// type: null, expected struct AppendRequest at line 1 column 1099") give neither. Looked for
/// only once the typed parse has failed; `None` when no record is at fault.
///
/// The body is walked, not built: 8 MiB of `0,` is about four million values, 32 bytes each as
/// an untyped tree (128 MiB and more) for a request the body budget counts as 8 MiB. Each
/// record object is parsed as a record and dropped.
fn misshapen_records(body: &Bytes) -> Option<ApiError> {
    use serde::de::DeserializeSeed;
    // A body that is not JSON at all keeps serde's own words, with their line and column
    // (skipping strings does not check their UTF-8, so that is checked first).
    std::str::from_utf8(body).ok()?;
    serde_json::from_slice::<serde::de::IgnoredAny>(body).ok()?;
    let mut found = None;
    // The walk stops at the first record at fault with an error; `found` says which.
    let _ = Walk {
        place: Place::Batch,
        found: &mut found,
    }
    .deserialize(&mut serde_json::Deserializer::from_slice(body));
    found
        .map(|detail| ApiError::MalformedBody(format!("the body is not a valid request: {detail}")))
}

/// Where [`Walk`] is in a batch body.
#[derive(Clone, Copy)]
enum Place {
    /// The body: an object whose `records` member is walked, the others skipped.
    Batch,
    /// `records`: an array of record objects.
    Records,
    /// One item of `records`, by its index.
    Item(usize),
}

/// Walks a batch body (see [`misshapen_records`]): at the first value at fault it notes what
/// is wrong, by its pointer, in `found`, and stops with an error.
struct Walk<'a> {
    place: Place,
    found: &'a mut Option<String>,
}

impl Walk<'_> {
    /// A value of kind `kind` where `place` expects something else.
    fn refuse<E: serde::de::Error>(self, kind: &str) -> Result<(), E> {
        *self.found = match self.place {
            // A body that is not an object has no records to name.
            Place::Batch => None,
            Place::Records => Some("/records: expected an array of record objects".into()),
            Place::Item(i) => Some(format!(
                "/records/{i}: expected a record object, found {kind}"
            )),
        };
        Err(E::custom("stop"))
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a batch of record objects")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        match self.place {
            Place::Batch => {
                while let Some(key) = map.next_key::<String>()? {
                    if key == "records" {
                        map.next_value_seed(Walk {
                            place: Place::Records,
                            found: &mut *self.found,
                        })?;
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(())
            }
            Place::Item(i) => {
                match AppendRequest::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                {
                    Ok(_) => Ok(()),
                    Err(e) => {
                        *self.found = Some(format!("/records/{i}: {e}"));
                        Err(e)
                    }
                }
            }
            Place::Records => self.refuse("an object"),
        }
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        if !matches!(self.place, Place::Records) {
            return self.refuse("an array");
        }
        let mut index = 0usize;
        while items
            .next_element_seed(Walk {
                place: Place::Item(index),
                found: &mut *self.found,
            })?
            .is_some()
        {
            index += 1;
        }
        Ok(())
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.refuse("null")
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        self.refuse("a boolean")
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        self.refuse("a number")
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        self.refuse("a number")
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        self.refuse("a number")
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
        self.refuse("a string")
    }
}

/// Refuses a batch that gives one event id to two records with different content, naming both.
/// The appender refuses such a batch too (409, nothing written), but knows the event id only,
/// not where the records are in the request. A record repeated exactly is no conflict: it is
/// appended once and the repeat's receipt is marked duplicate.
///
/// Content is compared by the appender's own rule (`store::content_difference`), so that no
/// batch it would take is refused here.
fn refuse_conflicting_repeats(drafts: &[ClientDraft]) -> Result<(), ApiError> {
    let mut first = HashMap::with_capacity(drafts.len());
    for (i, draft) in drafts.iter().enumerate() {
        let id = draft.draft().event_id;
        let j = *first.entry(id).or_insert(i);
        if j != i
            && let Some(what) = crate::store::content_difference(
                (drafts[j].draft(), drafts[j].erasable_values()),
                (draft.draft(), draft.erasable_values()),
            )
        {
            return Err(ApiError::Conflict(format!(
                "/records/{j} and /records/{i} both have event id {id} but different content \
                 ({what}); nothing was written"
            )));
        }
    }
    Ok(())
}

/// Runs CPU-bound request work on the blocking pool. The async workers (two on a two-core
/// machine) serve every connection: a batch parsed on one of them holds back every request
/// queued behind it for as long as the parse takes.
///
/// At most one such job per core runs at a time, about as many as ran at once on the workers
/// (one per core unless `TOKIO_WORKER_THREADS` says otherwise): a parsed batch takes several
/// times its body's memory, and the body budget (`app::bodies`) admits many bodies at once. A
/// job whose request is dropped runs to its end outside that budget, one per slot at most.
async fn off_the_workers<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    let slots = SLOTS.get_or_init(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    });
    let slot = slots
        .acquire()
        .await
        .map_err(|e| ApiError::Internal(format!("request work failed: {e}")))?;
    // The slot is held by the job itself: it runs on even if its request is dropped.
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        work()
    })
    .await
    .map_err(|e| ApiError::Internal(format!("request work failed: {e}")))
}

fn parse_seq(seq: u64) -> Result<Sequence, ApiError> {
    Sequence::new(seq).map_err(|e| ApiError::BadParameter(e.to_string()))
}

fn not_found() -> ApiError {
    ApiError::NotFound("no such record".into())
}

/// A response with `content_type`, offered as a download named `filename` when given.
fn typed(
    body: impl IntoResponse,
    content_type: &'static str,
    filename: Option<String>,
) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(v) =
        filename.and_then(|f| HeaderValue::from_str(&format!("attachment; filename=\"{f}\"")).ok())
    {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

/// Get a record by sequence number.
#[utoipa::path(get, path = "/v1/records/{seq}", tag = "read",
    params(("seq" = u64, Path, description = "Sequence number")),
    responses(
        (status = 200, body = RecordBody),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn get_record(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(seq): ApiPath<u64>,
) -> Result<Json<Record>, ApiError> {
    let p = caller.require(READERS, "read records")?;
    let record = state
        .store
        .record(&p.tenant, parse_seq(seq)?)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(record))
}

/// Get a record by event id.
#[utoipa::path(get, path = "/v1/events/{event_id}", tag = "read",
    params(("event_id" = String, Path, description = "The event id (UUIDv7)")),
    responses(
        (status = 200, body = RecordBody),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn get_record_by_event(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(event_id): ApiPath<String>,
) -> Result<Json<Record>, ApiError> {
    let p = caller.require(READERS, "read records")?;
    let record = state
        .store
        .record_by_event_id(&p.tenant, parse_event_id(&event_id)?)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(record))
}

/// Get the receipt of an appended event (what a pipeline checks after a timeout).
#[utoipa::path(get, path = "/v1/receipts/{event_id}", tag = "ingest",
    params(("event_id" = String, Path, description = "The event id (UUIDv7)")),
    responses(
        (status = 200, body = ReceiptBody),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "No record has this event id and an acknowledged rollback abandoned sequence numbers after it was made: a receipt for it was rolled back", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn get_receipt(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(event_id): ApiPath<String>,
) -> Result<Json<ReceiptBody>, ApiError> {
    let p = caller.require(&[Role::Ingest, Role::Read], "read receipts")?;
    let id = parse_event_id(&event_id)?;
    let Some(r) = state.store.record_by_event_id(&p.tenant, id).await? else {
        return Err(rolled_back_or_not_found(&state, &p.tenant, id).await?);
    };
    Ok(Json(ReceiptBody {
        seq: r.seq.get(),
        event_id: r.event_id.to_string(),
        hash: r.hash.to_hex(),
        sig: r.sig.to_hex(),
        key_id: r.key_id.to_hex(),
        captured_at_us: r.captured_at_us.unix_micros(),
        captured_at: r.captured_at_us.to_rfc3339(),
        duplicate: true,
    }))
}

/// Why an event id has no record: 410 naming the rollback when a `rollback_acknowledged` record
/// abandoned sequence numbers and the event id (a UUIDv7, which carries its creation time) was
/// made before that acknowledgement, so a receipt for it may name an abandoned number; 404
/// otherwise.
async fn rolled_back_or_not_found(
    state: &AppState,
    tenant: &ledger::types::TenantId,
    id: EventId,
) -> Result<ApiError, ApiError> {
    let created_ms = uuid::Uuid::parse_str(&id.to_string())
        .ok()
        .and_then(|u| u.get_timestamp())
        .map(|t| {
            let (secs, nanos) = t.to_unix();
            u128::from(secs) * 1000 + u128::from(nanos / 1_000_000)
        });
    let acks = state
        .store
        .records_of_type(tenant, EventType::RollbackAcknowledged, None, 100)
        .await?;
    for ack in acks {
        let payload: serde_json::Value =
            serde_json::from_str(ack.payload.as_str()).unwrap_or_default();
        let until = payload.get("abandoned_until_seq").and_then(|v| v.as_u64());
        let from = payload
            .get("abandoned_from_seq")
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        let ack_ms = u128::from(ack.captured_at_us.unix_micros()) / 1000;
        let Some(until) = until.filter(|u| *u > from) else {
            continue;
        };
        if created_ms.is_some_and(|c| c <= ack_ms) {
            return Ok(ApiError::RolledBack(format!(
                "no record has event id {id}; the rollback acknowledged in record {} (event id {}) \
                 abandoned sequence numbers {from} to {}: a receipt for this event id naming one \
                 of them was rolled back, and the event must be appended again",
                ack.seq,
                ack.event_id,
                until - 1
            )));
        }
    }
    Ok(not_found())
}

fn page_limit(limit: Option<u64>) -> Result<u64, ApiError> {
    params::page_limit(limit, PAGE_RECORDS_DEFAULT, PAGE_RECORDS_MAX)
}

/// List records in sequence order, with cursor pagination.
#[utoipa::path(get, path = "/v1/records", tag = "read", params(ListParams),
    responses(
        (status = 200, body = RecordPage),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn list_records(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<ApiQuery<ListParams>, ApiError>,
) -> Result<Json<RecordPage>, ApiError> {
    let p = caller.require(READERS, "read records")?;
    let ApiQuery(params) = params?;
    let from = match &params.cursor {
        Some(c) => decode_cursor(c)?,
        None => params.from_seq.unwrap_or(0),
    };
    let limit = page_limit(params.limit)?;
    let records = state
        .store
        .records(&p.tenant, parse_seq(from)?, limit)
        .await?;
    let next_cursor = (records.len() as u64 == limit)
        .then(|| records.last().map(|r| encode_cursor(r.seq.get() + 1)))
        .flatten();
    Ok(Json(RecordPage {
        records,
        next_cursor,
    }))
}

/// The checkpoint to prove against: the one at `size`, or the latest, which must have at least
/// `min` as its size when given (read-your-writes: 409 while it has not, which on a read
/// replica sends the request to the primary, see `replica_reads`). A proof of record `proving`
/// takes the latest as kept for proofs (at most `LATEST_CHECKPOINT_KEPT_MS` old, and read again
/// when it does not cover the record); every other caller reads it.
async fn checkpoint_for(
    state: &AppState,
    tenant: &ledger::types::TenantId,
    size: Option<u64>,
    min: Option<u64>,
    parameter: &str,
    proving: Option<Sequence>,
) -> Result<crate::store::StoredCheckpoint, ApiError> {
    match (size, min) {
        (Some(_), Some(_)) => Err(ApiError::BadParameter(format!(
            "give {parameter} or min_tree_size, not both: min_tree_size bounds the latest checkpoint"
        ))),
        (Some(s), None) => {
            let checkpoint = state
                .store
                .checkpoint_at(tenant, TreeSize::new(s))
                .await?
                .ok_or_else(|| unpublished_size(parameter, s))?;
            // With the witnesses' cosignatures collected so far.
            Ok(state.store.with_cosignatures(tenant, checkpoint).await?)
        }
        (None, min) => {
            // While the tenant is held its stored latest checkpoint is older than one already
            // published: presenting it as current would show a rolled-back tree.
            state.store.refuse_if_rolled_back(tenant)?;
            let latest = match proving {
                // A proof: the latest checkpoint as kept for proofs (with its cosignatures), read
                // again when it does not cover the record or `min_tree_size`.
                Some(seq) => {
                    let covering = seq.get().saturating_add(1).max(min.unwrap_or(0));
                    state
                        .store
                        .latest_checkpoint_for_proofs(tenant, covering)
                        .await?
                }
                None => state.store.latest_checkpoint(tenant).await?,
            }
            .ok_or_else(|| ApiError::NotFound("no checkpoint has been published yet".into()))?;
            if let Some(min) = min.filter(|m| *m > latest.size.get()) {
                return Err(ApiError::Conflict(format!(
                    "min_tree_size: no checkpoint of tree size {min} or more has been published yet (the latest has {}); retry after the next checkpoint",
                    latest.size
                )));
            }
            match proving {
                Some(_) => Ok(latest),
                // With the witnesses' cosignatures collected so far.
                None => Ok(state.store.with_cosignatures(tenant, latest).await?),
            }
        }
    }
}

/// Inclusion proof of a record in a published checkpoint.
#[utoipa::path(get, path = "/v1/proofs/inclusion", tag = "proofs", params(InclusionParams),
    responses(
        (status = 200, body = InclusionProofBody),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such record, or no checkpoint covers it yet", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`min_tree_size` is larger than the latest published checkpoint: retry after the next checkpoint", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn inclusion_proof(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<ApiQuery<InclusionParams>, ApiError>,
) -> Result<Json<InclusionProofBody>, ApiError> {
    let p = caller.require(PROVERS, "fetch proofs")?;
    let ApiQuery(params) = params?;
    let seq = parse_seq(params.seq)?;
    // The answer needs the record's hash only: an index-only read, not the whole record.
    let (hash, checkpoint, proof) = prove(
        &state,
        &p.tenant,
        seq,
        params.tree_size,
        params.min_tree_size,
        state.store.record_hash(&p.tenant, seq),
    )
    .await?;
    Ok(Json(InclusionProofBody {
        leaf_index: seq.get(),
        tree_size: checkpoint.size.get(),
        record_hash: hash.to_hex(),
        leaf_hash: leaf_hash(hash.as_bytes()).to_hex(),
        proof: proof.iter().map(|h| h.to_hex()).collect(),
        checkpoint: checkpoint.signed_note,
    }))
}

/// The inclusion proof of record `seq` against the checkpoint asked for, with what `read` reads
/// of the record (404 when it finds none).
async fn prove<T>(
    state: &AppState,
    tenant: &ledger::types::TenantId,
    seq: Sequence,
    tree_size: Option<u64>,
    min_tree_size: Option<u64>,
    read: impl std::future::Future<Output = Result<Option<T>, crate::store::StoreError>>,
) -> Result<(T, crate::store::StoredCheckpoint, Vec<ledger::types::Hash>), ApiError> {
    let record = read.await?.ok_or_else(not_found)?;
    let checkpoint = checkpoint_for(
        state,
        tenant,
        tree_size,
        min_tree_size,
        "tree_size",
        Some(seq),
    )
    .await?;
    let seq = seq.get();
    if seq >= checkpoint.size.get() {
        return Err(ApiError::NotFound(format!(
            "record {seq} is not covered by the checkpoint of size {}; retry after the next checkpoint",
            checkpoint.size
        )));
    }
    // The size is that of a published checkpoint, so it is within the tree.
    let proof = state
        .store
        .inclusion_proof_within(tenant, LeafIndex::new(seq), checkpoint.size)
        .await?;
    Ok((record, checkpoint, proof))
}

/// A C2SP tlog-proof file for one record: what a regulator downloads and verifies offline.
#[utoipa::path(get, path = "/v1/proofs/inclusion/{seq}/tlog-proof", tag = "proofs",
    params(("seq" = u64, Path, description = "Sequence number"), TreeSizeParam),
    responses(
        (status = 200, description = "The proof file (c2sp.org/tlog-proof@v1)", body = String, content_type = "text/plain"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`min_tree_size` is larger than the latest published checkpoint: retry after the next checkpoint", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn tlog_proof(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(seq): ApiPath<u64>,
    params: Result<ApiQuery<TreeSizeParam>, ApiError>,
) -> Result<Response, ApiError> {
    let p = caller.require(PROVERS, "fetch proofs")?;
    let ApiQuery(params) = params?;
    let at = parse_seq(seq)?;
    let (record, checkpoint, proof) = prove(
        &state,
        &p.tenant,
        at,
        params.tree_size,
        params.min_tree_size,
        state.store.record(&p.tenant, at),
    )
    .await?;
    let file = ledger::verify::tlog_proof_for(&record, proof, checkpoint.signed_note)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(typed(
        file.format(),
        "text/plain; charset=utf-8",
        Some(format!("record-{seq}.tlog-proof")),
    ))
}

/// Consistency proof between two tree sizes.
#[utoipa::path(get, path = "/v1/proofs/consistency", tag = "proofs", params(ConsistencyParams),
    responses(
        (status = 200, body = ConsistencyProofBody),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No checkpoint was published at `from` or `to`: a proof about a tree size that no signed checkpoint vouches for cannot be verified, so none is served (`GET /v1/checkpoints` lists the published sizes)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`min_tree_size` is larger than the latest published checkpoint: retry after the next checkpoint", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn consistency_proof(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<ApiQuery<ConsistencyParams>, ApiError>,
) -> Result<Json<ConsistencyProofBody>, ApiError> {
    let p = caller.require(PROVERS, "fetch proofs")?;
    let ApiQuery(params) = params?;
    let to = checkpoint_for(
        &state,
        &p.tenant,
        params.to,
        params.min_tree_size,
        "to",
        None,
    )
    .await?;
    if params.from == 0 || params.from > to.size.get() {
        return Err(ApiError::BadParameter(format!(
            "from must be between 1 and the newer size {} (got {})",
            to.size, params.from
        )));
    }
    // Only between published checkpoints: a proof from a size no signed checkpoint vouches for
    // links a root nobody can check to anything.
    let from = state
        .store
        .checkpoint_at(&p.tenant, TreeSize::new(params.from))
        .await?
        .ok_or_else(|| unpublished_size("from", params.from))?;
    let from = state.store.with_cosignatures(&p.tenant, from).await?;
    let proof = state
        .store
        .consistency_proof(&p.tenant, from.size, to.size)
        .await?;
    Ok(Json(
        ledger::consistency_file::ConsistencyProofFile::new(
            from.size.get(),
            to.size.get(),
            proof,
            from.signed_note,
            to.signed_note,
        )
        .into(),
    ))
}

/// The 404 for a proof asked at a tree size at which no checkpoint was published.
fn unpublished_size(parameter: &str, size: u64) -> ApiError {
    ApiError::NotFound(format!(
        "{parameter}: no checkpoint was published at tree size {size}, so no proof at that size can be verified; GET /v1/checkpoints lists the published sizes"
    ))
}

/// The latest signed checkpoint (C2SP tlog-checkpoint text).
#[utoipa::path(get, path = "/v1/checkpoints/latest", tag = "proofs", params(LatestParams),
    responses(
        (status = 200, body = String, content_type = "text/plain"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`min_tree_size` is larger than the latest published checkpoint: retry after the next checkpoint", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The tenant is held after a detected database rollback (problem type urn:auditex:problem:rollback-held): no checkpoint is presented as current until an operator acknowledges it", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn latest_checkpoint(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<ApiQuery<LatestParams>, ApiError>,
) -> Result<Response, ApiError> {
    let p = caller.require(PROVERS, "fetch checkpoints")?;
    let ApiQuery(params) = params?;
    let c = checkpoint_for(&state, &p.tenant, None, params.min_tree_size, "", None).await?;
    Ok(typed(c.signed_note, "text/plain; charset=utf-8", None))
}

/// Published checkpoints, smallest first.
#[utoipa::path(get, path = "/v1/checkpoints", tag = "proofs", params(CheckpointParams),
    responses(
        (status = 200, body = CheckpointPage),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn list_checkpoints(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<ApiQuery<CheckpointParams>, ApiError>,
) -> Result<Json<CheckpointPage>, ApiError> {
    let p = caller.require(PROVERS, "fetch checkpoints")?;
    let ApiQuery(params) = params?;
    let limit = page_limit(params.limit)?;
    let after = params.after.map(TreeSize::new);
    let body = |c: crate::store::StoredCheckpoint, by: Option<u64>| CheckpointBody {
        tree_size: c.size.get(),
        root: c.root.to_hex(),
        signed_note: c.signed_note,
        published_at_us: c.published_at_us,
        branch: if by.is_some() {
            CheckpointBranch::Abandoned
        } else {
            CheckpointBranch::Current
        },
        abandoned_by_seq: by,
    };
    let mut list: Vec<CheckpointBody> = state
        .store
        .checkpoints(&p.tenant, after, limit)
        .await?
        .into_iter()
        .map(|c| body(c, None))
        .collect();
    list.extend(
        state
            .store
            .abandoned_checkpoints(&p.tenant, after, limit)
            .await?
            .into_iter()
            .map(|(by, c)| body(c, Some(by))),
    );
    list.sort_by_key(|c| (c.tree_size, c.branch, c.abandoned_by_seq));
    // `after` pages by tree size, so a page never ends between two checkpoints of one size
    // (a current and an abandoned one): it may hold a few more than `limit`.
    if let Some(last) = list.get(
        usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .saturating_sub(1),
    ) {
        let last_size = last.tree_size;
        list.retain(|c| c.tree_size <= last_size);
    }
    Ok(Json(CheckpointPage { checkpoints: list }))
}

/// The tenant's public-key history with validity intervals and C2SP verifier keys.
#[utoipa::path(get, path = "/v1/keys", tag = "proofs",
    responses(
        (status = 200, body = KeyHistory),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn key_history(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<KeyHistory>, ApiError> {
    let p = caller.require(&[Role::Ingest, Role::Read, Role::Verify], "read keys")?;
    let ring = state.store.key_history(&p.tenant).await?;
    let origin = state.store.origin(&p.tenant).await?;
    let keys = ring
        .intervals()
        .iter()
        .map(|k| {
            Ok(KeyBody {
                key_id: k.key_id.to_hex(),
                public_key: hex::encode(k.public_key.as_bytes()),
                from_seq: k.from_seq,
                until_seq: k.until_seq,
                verifier_key: VerifierKey::new(&origin, k.public_key)
                    .map_err(|e| ApiError::Internal(e.to_string()))?
                    .to_string(),
            })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(Json(KeyHistory { origin, keys }))
}

/// Export parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportParams {
    /// First sequence number (default 0: the whole ledger).
    pub from_seq: Option<u64>,
    /// Read-your-writes: the export must end at a checkpoint of at least this tree size;
    /// answered 409 while none has.
    pub min_tree_size: Option<u64>,
}

impl QueryParams for ExportParams {
    fn expected(name: &str) -> Option<String> {
        match name {
            "from_seq" => Some(SEQUENCE_NUMBER.into()),
            "min_tree_size" => Some(TREE_SIZE.into()),
            _ => None,
        }
    }
}

/// The chain-of-custody bundle of a decision: the decision, every linked follow-up, inclusion
/// proofs, the checkpoint and the keys — one file that `auditex verify` accepts.
#[utoipa::path(get, path = "/v1/decisions/{event_id}/bundle", tag = "proofs",
    params(("event_id" = String, Path, description = "The decision's event id")),
    responses(
        (status = 200, description = "The bundle (auditex-custody-bundle/v1, FORMAT.md section 11)", body = Object),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn custody_bundle(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(event_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let p = caller.require(PROVERS, "download evidence")?;
    let bundle = state
        .store
        .custody_bundle(&p.tenant, parse_event_id(&event_id)?)
        .await?;
    Ok(typed(
        bundle.to_json(),
        "application/json",
        Some(format!("custody-{event_id}.json")),
    ))
}

/// The whole ledger (or from `from_seq`) up to the latest checkpoint, as JSON Lines, streamed in
/// constant memory (FORMAT.md section 12).
#[utoipa::path(get, path = "/v1/export", tag = "proofs", params(ExportParams),
    responses(
        (status = 200, description = "auditex-export/v1 JSON Lines", body = String, content_type = "application/x-ndjson"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`min_tree_size` is larger than the latest published checkpoint: retry after the next checkpoint", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<ApiQuery<ExportParams>, ApiError>,
) -> Result<Response, ApiError> {
    let p = caller.require(PROVERS, "export the ledger")?;
    let ApiQuery(params) = params?;
    let from = params.from_seq.unwrap_or(0);
    // Answer what can be known before streaming with a proper status; once bytes flow, a failure
    // can only cut the stream short, which a verifier detects (no trailer line).
    let checkpoint =
        checkpoint_for(&state, &p.tenant, None, params.min_tree_size, "", None).await?;
    if from > checkpoint.size.get() {
        return Err(ApiError::BadParameter(format!(
            "from_seq {from} is beyond the latest checkpoint's tree size {}",
            checkpoint.size
        )));
    }
    let (mut writer, reader) = tokio::io::duplex(EXPORT_PIPE_BYTES);
    let store = state.store.clone();
    let tenant = p.tenant.clone();
    // The writer reads where the checkpoint was read (a read replica, or the primary), so that
    // the records it streams cover that checkpoint.
    let route = crate::store::read_route();
    tokio::spawn(crate::store::read_scope(route, async move {
        if let Err(e) = store.export(&tenant, from, &mut writer).await {
            tracing::warn!(tenant = %tenant, error = %e, "export stopped early");
        }
    }));
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(reader));
    Ok(typed(
        body,
        "application/x-ndjson",
        Some(format!("{}-export.jsonl", p.tenant)),
    ))
}

/// Bytes buffered between the export writer and the response body: the export streams in
/// constant memory however large the ledger.
const EXPORT_PIPE_BYTES: usize = 256 * 1024;

/// Liveness: the process is up.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Prometheus metrics.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let depth = state.store.append_queue_depth() as f64;
    let mut gauges = vec![(
        "auditex_append_queue_requests",
        "Append requests waiting in tenant queues.",
        depth,
    )];
    let age = state
        .store
        .oldest_checkpoint_lag_seconds()
        .await
        .unwrap_or(0.0);
    gauges.push((
        "auditex_checkpoint_age_seconds",
        "Seconds since the latest checkpoint of the tenant whose checkpoint is oldest while its tree is ahead (0 when all are current).",
        age,
    ));
    let faults = state.store.fault_status();
    let (queued_records, queued_bytes) = state.store.append_queue_load();
    gauges.extend([
        ("auditex_append_queue_records", "Records waiting in all tenants' append queues.", queued_records as f64),
        ("auditex_append_queue_bytes", "Estimated bytes of the records waiting in all tenants' append queues.", queued_bytes as f64),
        ("auditex_storage_full", "1 while writes fail because the storage is full.", f64::from(u8::from(faults.storage_full))),
        ("auditex_clock_behind_seconds", "How far the clock was behind the latest capture time at the latest append (0 when it was not).", faults.clock_behind_seconds),
        ("auditex_request_body_bytes_reserved", "Bytes of request bodies reserved by requests being read or handled, all connections together.", state.bodies.reserved_bytes() as f64),
    ]);
    let mut text = state.metrics.render(&gauges);
    for (name, help, value) in [
        (
            "auditex_append_shed_total",
            "Append requests refused at once because the append queues were full.",
            faults.shed_requests,
        ),
        (
            "auditex_append_deadline_expired_total",
            "Append requests answered 503 because they waited in the queue past the deadline.",
            faults.deadline_expired_requests,
        ),
        (
            "auditex_request_body_budget_refused_total",
            "Requests answered 503 at once because the request-body budget was full.",
            state.bodies.refused(),
        ),
        (
            "auditex_storage_full_errors_total",
            "Writes that failed because the storage was full.",
            faults.storage_full_errors,
        ),
        (
            "auditex_clock_refused_appends_total",
            "Append groups refused because the clock was too far behind.",
            faults.clock_refusals,
        ),
    ] {
        use std::fmt::Write as _;
        let _ = writeln!(
            text,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
    if let Some(primary) = state.store.database_primary() {
        use std::fmt::Write as _;
        let _ = writeln!(
            text,
            "# HELP auditex_database_primary_changes_total Times the service moved to another PostgreSQL node as its primary (failovers it followed).\n# TYPE auditex_database_primary_changes_total counter\nauditex_database_primary_changes_total {}\n# HELP auditex_database_without_primary_seconds Seconds the service has been without a reachable PostgreSQL primary (0 while it has one).\n# TYPE auditex_database_without_primary_seconds gauge\nauditex_database_without_primary_seconds {}",
            primary.changes, primary.without_primary_seconds
        );
    }
    text.push_str(&projection_metrics(&state));
    text.push_str(&witness_metrics(&state));
    text.push_str(&replica_metrics(&state));
    typed(text, "text/plain; version=0.0.4", None)
}

/// Each read replica: in reads or not, its replay lag and the reads it served, labelled by
/// `host:port`.
fn replica_metrics(state: &AppState) -> String {
    use std::fmt::Write as _;
    let replicas = state.store.read_replicas();
    if replicas.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    let mut family = |name: &str,
                      kind: &str,
                      help: &str,
                      value: &dyn Fn(&crate::store::ReplicaInfo) -> String| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for r in &replicas {
            let _ = writeln!(
                out,
                "{name}{{replica=\"{}\"}} {}",
                label(&r.label),
                value(r)
            );
        }
    };
    family(
        "auditex_replica_in_reads",
        "gauge",
        "1 while read-only requests read this replica, 0 while it is unreachable, not a standby, or lagging beyond AUDITEX_REPLICA_LAG_MAX_MS.",
        &|r| u8::from(r.in_reads).to_string(),
    );
    family(
        "auditex_replica_lag_seconds",
        "gauge",
        "How far the replica's replay is behind the primary (NaN while it cannot be measured).",
        &|r| {
            r.lag_seconds
                .map_or_else(|| "NaN".to_owned(), |l| l.to_string())
        },
    );
    family(
        "auditex_replica_reads_total",
        "counter",
        "Read transactions begun on the replica.",
        &|r| r.reads.to_string(),
    );
    out
}

/// Each witness's lag and failure, labelled by witness (the largest over the tenants it
/// witnesses, so that no tenant is named).
fn witness_metrics(state: &AppState) -> String {
    use std::collections::BTreeMap;
    use std::fmt::Write as _;
    let mut by_witness: BTreeMap<String, (u64, bool)> = BTreeMap::new();
    for s in state.store.witness_statuses() {
        let entry = by_witness.entry(s.witness.clone()).or_default();
        entry.0 = entry.0.max(s.lag_records());
        entry.1 |= s.last_error.is_some();
    }
    if by_witness.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "# HELP auditex_witness_lag_records Records in the latest checkpoint that the witness has not cosigned yet (the largest over the tenants it witnesses).\n# TYPE auditex_witness_lag_records gauge\n",
    );
    for (name, (lag, _)) in &by_witness {
        let _ = writeln!(
            out,
            "auditex_witness_lag_records{{witness=\"{}\"}} {lag}",
            label(name)
        );
    }
    out.push_str("# HELP auditex_witness_failing 1 while the last request to the witness failed for some tenant.\n# TYPE auditex_witness_failing gauge\n");
    for (name, (_, failing)) in &by_witness {
        let _ = writeln!(
            out,
            "auditex_witness_failing{{witness=\"{}\"}} {}",
            label(name),
            u8::from(*failing)
        );
    }
    out
}

/// A Prometheus label value: backslash, quote and newline escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Lag per projection, as labelled gauges.
fn projection_metrics(state: &AppState) -> String {
    use std::fmt::Write as _;
    let status = state.store.views_runner().status();
    let mut out = String::new();
    type Gauge = (
        &'static str,
        &'static str,
        fn(&projections::runner::Status) -> f64,
    );
    let gauges: [Gauge; 2] = [
        (
            "auditex_projection_lag_records",
            "Records appended but not yet applied to the projection, over all tenants.",
            |s| s.lag.records as f64,
        ),
        (
            "auditex_projection_lag_seconds",
            "Age of the oldest record not yet applied to the projection (0 when caught up).",
            |s| s.lag.seconds,
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for s in &status {
            let _ = writeln!(out, "{name}{{projection=\"{}\"}} {}", s.name, value(s));
        }
    }
    // One series per stuck tenant and projection generation: its lag keeps growing until an
    // operator retries it (`auditex projections retry`). Tenant ids are opaque identifiers.
    type StuckGauge = (
        &'static str,
        &'static str,
        fn(&projections::runner::StuckLag) -> f64,
    );
    let stuck_gauges: [StuckGauge; 3] = [
        (
            "auditex_projection_stuck_seq",
            "Sequence number of the record a projection is stuck at, per tenant.",
            |l| l.stuck.seq as f64,
        ),
        (
            "auditex_projection_stuck_lag_records",
            "Records of the tenant's chain a stuck projection has not applied.",
            |l| l.records as f64,
        ),
        (
            "auditex_projection_stuck_lag_seconds",
            "Age of the record a projection is stuck at, per tenant.",
            |l| l.seconds,
        ),
    ];
    for (name, help, value) in stuck_gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for s in &status {
            for l in &s.stuck {
                let _ = writeln!(
                    out,
                    "{name}{{projection=\"{}\",generation=\"{}\",tenant=\"{}\"}} {}",
                    s.name,
                    l.stuck.generation,
                    l.stuck.tenant,
                    value(l)
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use axum::body::Bytes;
    use ledger::draft::prepare_client_draft;
    use ledger::record::Payload;

    use super::{AppendRequest, parse_body};

    /// Doubles in their shortest form, as RFC 8785 writes them: 4,096 of them spread over
    /// (0, 1) and a few of other magnitudes.
    fn shortest_doubles() -> Vec<String> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut doubles: Vec<String> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let d = (x >> 11) as f64 / (1u64 << 53) as f64;
                ryu_js::Buffer::new().format_finite(d).to_owned()
            })
            .collect();
        doubles.extend(
            ["0.24251596613361615", "0.87", "1e-7", "123456.789", "4.35"].map(String::from),
        );
        doubles
    }

    /// A number a client sends is the number signed, and a stored payload read back (as `auditex
    /// verify` reads it) gives the same bytes. This needs serde_json's exact float parsing (its
    /// `float_roundtrip` feature, which the workspace names): without it some doubles came back
    /// one unit in the last place off (0.9856906946328695 signed as 0.9856906946328696), so
    /// that a record would commit to a number its client did not send and a ledger written by
    /// one build would not verify with another. Here in the service's crate because the ledger
    /// crate's tests get the feature from a dev-dependency whatever the workspace says.
    #[test]
    fn a_number_is_signed_as_sent_and_reads_back_to_the_same_bytes() {
        for d in shortest_doubles() {
            let body = format!(
                r#"{{"event_id":"01936f5e-7a2b-7c3d-8e4f-a1b2c3d4e5f6","event_type":"decision","payload":{{"model_id":"m","model_version":"1","input_commitment":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","outcome":"approved","score":{d},"subject_ref":"s","decided_at":"2026-11-29T08:49:27.123Z","oversight_mode":"human_on_the_loop"}}}}"#
            );
            let request: AppendRequest =
                parse_body(&Bytes::from(body)).expect("a valid append body");
            let draft = prepare_client_draft(
                &request.event_id,
                &request.event_type,
                &request.payload,
                &request.erasable,
                || [7; 32],
            )
            .expect("a valid decision");
            let canonical = draft.draft().payload.as_str().to_owned();
            assert!(
                canonical.contains(&format!("\"score\":{d},")),
                "{d} was signed as {canonical}"
            );
            let read_back = Payload::from_json(&canonical).expect("canonical JSON");
            assert_eq!(read_back.as_str(), canonical, "{d} read back");
        }
    }
}
