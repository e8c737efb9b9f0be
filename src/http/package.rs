//! `GET /v1/subjects/{subject_ref}/package`: the subject access package (GDPR Art. 15, PIPEDA;
//! FORMAT.md section 12b) — every record concerning the subject with its inclusion proof in one
//! signed checkpoint, the personal data still held and what was erased — as JSON Lines that
//! `auditex verify package` accepts, streamed in constant memory; or, with `?format=html` (or a
//! request that accepts only HTML), a printable page in plain language a bank can send to the
//! person (GDPR Art. 22, EU AI Act Art. 86: the reasons for each decision).
//!
//! Everything that can be refused is refused before the first byte: an unknown subject (404,
//! identical for another tenant's), a subject index that lags the pinned checkpoint (503 with
//! Retry-After: a package is never silently incomplete). Once the JSON Lines stream, a failure
//! can only cut them short, which every verifier reports (no trailer line). The download and the
//! rendering themselves are `app::package`, which the portal serves too.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use utoipa::IntoParams;

use super::Caller;
use super::error::{ApiError, Problem};
use super::extract::{ApiPath, ApiQuery, QueryParams};
use super::params::text;
use crate::app::AppState;
use crate::app::package::{jsonl_response, render};
use crate::auth::Role;

/// Who may download a subject's package.
pub(crate) const PACKAGE_ROLES: &[Role] = &[Role::Read, Role::Privacy];

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/subjects/{subject_ref}/package", get(subject_package))
}

/// Package parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PackageParams {
    /// `jsonl` (the default: the verifiable package) or `html` (the printable rendering).
    pub format: Option<String>,
}

impl QueryParams for PackageParams {}

/// The subject access package: every record concerning the subject, each proven in one signed
/// checkpoint, the decrypted personal data still held and what was erased (FORMAT.md section
/// 12b). `?format=html` renders it as a printable page in plain language.
#[utoipa::path(get, path = "/v1/subjects/{subject_ref}/package", tag = "views",
    params(("subject_ref" = String, Path, description = "The subject reference"), PackageParams),
    responses(
        (status = 200, description = "auditex-subject-package/v1 JSON Lines (FORMAT.md section 12b), or with format=html a printable HTML page",
            content((String = "application/x-ndjson"), (String = "text/html"))),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown subject (also another tenant's)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The subject index lags the latest checkpoint; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn subject_package(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(subject_ref): ApiPath<String>,
    params: Result<ApiQuery<PackageParams>, ApiError>,
) -> Result<Response, ApiError> {
    let p = caller.require(PACKAGE_ROLES, "download a subject access package")?;
    let ApiQuery(params) = params?;
    let subject_ref = text("subject_ref", &Some(subject_ref))?.unwrap_or_default();
    let html = match params.format.as_deref() {
        Some("html") => true,
        Some("jsonl") => false,
        Some(_) => {
            return Err(ApiError::BadParameter(
                "format must be one of: jsonl, html".into(),
            ));
        }
        None => wants_html(&headers),
    };
    let plan = state.store.package_plan(&p.tenant, &subject_ref).await?;
    if html {
        return Ok(render(&state, &plan).await?);
    }
    Ok(jsonl_response(&state, plan))
}

/// Whether the request prefers HTML: a browser's `Accept` names `text/html` and not the
/// package's own type.
fn wants_html(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    accept.contains("text/html") && !accept.contains("application/x-ndjson")
}
