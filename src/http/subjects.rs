//! Subject rights over HTTP (role `privacy`): `POST /v1/subjects/{subject_ref}/erasure` erases a
//! data subject's personal data — every erasable value of the subject, or those of named records
//! or fields — by appending a signed `erasure` record whose transaction destroys the values and
//! their keys (GDPR Art. 17; the store's `erase_subject` does the work).
//!
//! The request is checked here as far as the body alone allows (shape, text bounds, event ids,
//! field names, each refusal naming its member by JSON Pointer); what only the ledger knows
//! (whether the subject, its fields and records exist) the store checks, and a refusal changes
//! nothing. Asking again for what was erased already is answered with the earlier erasure's
//! receipt, so a client may retry freely.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use ledger::payload::{FieldError, LIST_ITEMS_MAX};
use ledger::record::FieldName;
use ledger::types::EventId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Caller;
use super::api::{ReceiptBody, parse_body, require_json};
use super::error::{ApiError, Problem};
use super::extract::ApiPath;
use super::params::text;
use crate::app::AppState;
use crate::auth::Role;
use crate::store::subjects::{SubjectErasure, check_text};

/// Who may erase: the data-protection office's keys only. Pipelines (`ingest`) and readers
/// (`read`, `verify`) may not destroy evidence of personal data.
const ERASERS: &[Role] = &[Role::Privacy];

/// The subject-rights routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/subjects/{subject_ref}/erasure", post(erase_subject))
}

// The bounds in the schema attributes below are `ERASURE_TEXT_MAX_BYTES` and `LIST_ITEMS_MAX`,
// which attributes can only spell as literals; `erasure` enforces the constants themselves.
/// An erasure request: why, on what legal basis, and optionally which records or fields.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErasureRequest {
    /// Why the data is erased (recorded in the ledger), 1–1024 bytes.
    #[schema(
        example = "data subject request 2026-118 received by letter",
        min_length = 1,
        max_length = 1024
    )]
    pub reason: String,
    /// The legal basis (recorded in the ledger), 1–1024 bytes.
    #[schema(example = "GDPR Art. 17(1)(a)", min_length = 1, max_length = 1024)]
    pub legal_basis: String,
    /// Only the values of these records (event ids of the subject's records with erasable
    /// values); every record of the subject when absent (`null` is refused: on an erasure it
    /// must not silently mean "everything").
    #[serde(default, deserialize_with = "present_list")]
    #[schema(min_items = 1, max_items = 1000)]
    pub event_ids: Option<Vec<String>>,
    /// Only these erasable fields (names of `a-z`, `0-9` and `_`); every field when absent
    /// (`null` is refused).
    #[serde(default, deserialize_with = "present_list")]
    #[schema(min_items = 1, max_items = 1000)]
    pub fields: Option<Vec<String>>,
}

/// A list member that is there: a list. Absent is `None` (through `default`); `null` is an error,
/// where plain `Option` would read it as absent, that is as "every record" or "every field".
fn present_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    Vec::<String>::deserialize(d).map(Some)
}

/// The answer to an erasure request: the receipt of the `erasure` record, and how many values
/// this request erased.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureReceipt {
    /// The `erasure` record's receipt; `duplicate` is true when everything asked for had been
    /// erased already and this is the earlier erasure's.
    #[serde(flatten)]
    pub receipt: ReceiptBody,
    /// Values erased by this request (0 when they were erased already).
    pub erased: u64,
}

/// A refusal of one member of the body.
fn refused(path: String, problem: String) -> FieldError {
    FieldError { path, problem }
}

/// Checks a list member: absent, or 1 to [`LIST_ITEMS_MAX`] items each parsed by `parse`.
fn list<T, E: std::fmt::Display>(
    name: &str,
    items: Option<&[String]>,
    parse: impl Fn(&str) -> Result<T, E>,
    errors: &mut Vec<FieldError>,
) -> Option<Vec<T>> {
    let items = items?;
    if items.is_empty() || items.len() > LIST_ITEMS_MAX {
        errors.push(refused(
            format!("/{name}"),
            format!(
                "{name} must list 1 to {LIST_ITEMS_MAX} items (leave it out to erase them all)"
            ),
        ));
        return None;
    }
    let mut parsed = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match parse(item) {
            Ok(v) => parsed.push(v),
            Err(e) => errors.push(refused(format!("/{name}/{i}"), e.to_string())),
        }
    }
    Some(parsed)
}

/// Turns a parsed body into the store's request, or every member's refusal at once.
fn erasure(subject_ref: String, request: ErasureRequest) -> Result<SubjectErasure, ApiError> {
    let mut errors = Vec::new();
    for (name, value) in [
        ("reason", &request.reason),
        ("legal_basis", &request.legal_basis),
    ] {
        // The store's rule for these texts, said here with the member's pointer.
        if let Err(problem) = check_text(name, value) {
            errors.push(refused(format!("/{name}"), problem));
        }
    }
    let event_ids = list(
        "event_ids",
        request.event_ids.as_deref(),
        EventId::parse,
        &mut errors,
    );
    let fields = list(
        "fields",
        request.fields.as_deref(),
        FieldName::parse,
        &mut errors,
    );
    if !errors.is_empty() {
        return Err(ApiError::BadMembers(errors));
    }
    Ok(SubjectErasure {
        subject_ref,
        event_ids,
        fields,
        reason: request.reason,
        legal_basis: request.legal_basis,
    })
}

/// Erase a data subject's personal data (GDPR Art. 17): every erasable value of the subject, or
/// those of the named records or fields. Appends a signed `erasure` record; the values and their
/// keys are destroyed in the same transaction, and every proof stays valid. Idempotent: asking
/// again for what is erased already answers 200 with the earlier erasure's receipt.
#[utoipa::path(post, path = "/v1/subjects/{subject_ref}/erasure", tag = "subjects",
    params(("subject_ref" = String, Path, description = "The subject reference (1–1024 bytes)")),
    request_body = ErasureRequest,
    responses(
        (status = 201, description = "Erased: the new erasure record's receipt and how many values it erased", body = ErasureReceipt),
        (status = 200, description = "Everything asked for had been erased already: the earlier erasure's receipt (`duplicate` true, `erased` 0); nothing was appended", body = ErasureReceipt),
        (status = 400, description = "Malformed body, unknown member, bad subject reference, empty or oversize text, malformed event ids or field names, or fields or records the subject does not have (`errors` names each member by JSON Pointer); nothing was erased", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only keys of role `privacy` may erase", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such subject in this ledger (what another tenant's subject looks like too)", body = Problem, content_type = "application/problem+json"),
        (status = 408, description = "The body did not arrive in time (20 s plus a second per 64 KiB); nothing was erased", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "What the request would erase is under an active legal hold (`urn:auditex:problem:legal-hold`, the detail names the hold); nothing was erased", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A member at fault, named by its pointer: the JSON broken or cut off inside it, its name repeated, or a number out of range (I-JSON); nothing was erased", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Overloaded, database unavailable, or the tenant is held (rollback, erasure journal); nothing was erased; retry after `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn erase_subject(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(subject_ref): ApiPath<String>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = caller.require(ERASERS, "erase personal data (a key of role privacy may)")?;
    let subject_ref = text("subject_ref", &Some(subject_ref))?.unwrap_or_default();
    require_json(&headers)?;
    let request = erasure(subject_ref, parse_body(&body)?)?;
    let outcome = state.store.erase_subject(&p.tenant, request).await?;
    tracing::info!(tenant = %p.tenant, key = %p.key_id, seq = outcome.receipt.seq,
        erased = outcome.erased, duplicate = outcome.receipt.duplicate, "erasure request");
    let status = if outcome.receipt.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(ErasureReceipt {
            receipt: outcome.receipt.into(),
            erased: outcome.erased,
        }),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::subjects::ERASURE_TEXT_MAX_BYTES;

    fn request(body: serde_json::Value) -> ErasureRequest {
        serde_json::from_value(body).expect("shape")
    }

    fn pointers(e: ApiError) -> Vec<String> {
        match e {
            ApiError::BadMembers(errors) => errors.into_iter().map(|f| f.path).collect(),
            other => panic!("refused by member, not {other:?}"),
        }
    }

    #[test]
    fn every_bad_member_is_named_by_its_pointer_at_once() {
        let e = erasure(
            "subj-1".into(),
            request(serde_json::json!({
                "reason": "  ",
                "legal_basis": "x".repeat(ERASURE_TEXT_MAX_BYTES + 1),
                "event_ids": ["not-a-uuid"],
                "fields": ["applicant_name", "Bad Name"],
            })),
        )
        .expect_err("refused");
        assert_eq!(
            pointers(e),
            ["/reason", "/legal_basis", "/event_ids/0", "/fields/1"]
        );
    }

    #[test]
    fn an_empty_list_is_refused_rather_than_read_as_erasing_nothing() {
        let e = erasure(
            "subj-1".into(),
            request(serde_json::json!({"reason": "r", "legal_basis": "b", "fields": []})),
        )
        .expect_err("refused");
        assert_eq!(pointers(e), ["/fields"]);
    }

    #[test]
    fn a_whole_subject_request_names_no_records_or_fields() {
        let r = erasure(
            "subj-1".into(),
            request(serde_json::json!({"reason": "r", "legal_basis": "GDPR Art. 17(1)(a)"})),
        )
        .expect("accepted");
        assert_eq!(
            (r.subject_ref.as_str(), r.event_ids, r.fields.is_none()),
            ("subj-1", None, true)
        );
    }
}
