//! Query endpoints over the read-side projections (role `read`; the subject index also
//! `privacy`): decision search, the model inventory, the human-oversight queue and actions, the
//! subject index and daily volumes, plus the projections' own status.
//!
//! Every parameter is checked at the edge — unknown parameters, malformed times, out-of-range
//! limits and oversize strings are a 400 problem before anything is queried — and the tenant
//! always comes from the caller's key, so another tenant's rows are simply not there.

use std::collections::BTreeMap;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use ledger::types::CaptureTime;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Caller;
use super::error::{ApiError, Problem};
use super::extract::{ApiPath, ApiQuery, NUMBER, QueryParams, page_size};
use super::params::{self, decode_cursor, encode_cursor, parse_event_id, text};
use crate::app::AppState;
use crate::auth::Role;
use crate::store::Store;
use crate::store::views::{DecisionQuery, OversightQuery, PAGE_ROWS_DEFAULT, PAGE_ROWS_MAX, Page};

const READERS: &[Role] = &[Role::Read];

/// Longest range of days one volumes query covers.
pub const VOLUME_DAYS_MAX: i64 = 366;

/// Decision statuses, as the decisions view sets them.
pub const STATUSES: &[&str] = &[
    "decided",
    "awaiting_review",
    "reviewed",
    "overridden",
    "contested",
    "submitted",
];

/// Oversight action kinds.
pub const OVERSIGHT_TYPES: &[&str] =
    &["human_review", "override", "contest", "explanation_request"];

/// The projection routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/decisions", get(search_decisions))
        .route("/v1/decisions/{event_id}", get(get_decision))
        .route("/v1/models", get(model_inventory))
        .route("/v1/oversight/queue", get(oversight_queue))
        .route("/v1/oversight/actions", get(oversight_actions))
        .route("/v1/subjects/{subject_ref}/records", get(subject_records))
        .route("/v1/volumes/daily", get(daily_volumes))
        .route("/v1/projections", get(projection_status))
}

type QueryResult<T> = Result<ApiQuery<T>, ApiError>;

fn time(us: i64) -> String {
    u64::try_from(us)
        .ok()
        .and_then(|u| CaptureTime::from_unix_micros(u).ok())
        .map(CaptureTime::to_rfc3339)
        // A payload's own times (`decided_at`) may lie outside the capture times' range, before
        // 1970 or at the end of year 9999 (a leap second): still a time, in the same form.
        .or_else(|| {
            chrono::DateTime::from_timestamp_micros(us)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        })
        .unwrap_or_else(|| us.to_string())
}

fn parse_time(name: &str, text: &Option<String>) -> Result<Option<i64>, ApiError> {
    text.as_deref()
        .map(|t| {
            projections::rfc3339_micros(t).ok_or_else(|| {
                ApiError::BadParameter(format!(
                    "{name} must be an RFC 3339 time such as 2026-11-29T08:00:00Z"
                ))
            })
        })
        .transpose()
}

fn one_of(name: &str, value: &Option<String>, allowed: &[&str]) -> Result<(), ApiError> {
    match value {
        Some(v) if !allowed.contains(&v.as_str()) => Err(ApiError::BadParameter(format!(
            "{name} must be one of: {}",
            allowed.join(", ")
        ))),
        _ => Ok(()),
    }
}

fn limit(value: Option<u32>) -> Result<u32, ApiError> {
    params::page_limit(value, PAGE_ROWS_DEFAULT, PAGE_ROWS_MAX)
}

fn cursor(value: &Option<String>) -> Result<Option<u64>, ApiError> {
    value.as_deref().map(decode_cursor).transpose()
}

fn next<T>(page: &Page<T>) -> Option<String> {
    page.next_cursor
        .as_deref()
        .and_then(|c| c.parse().ok())
        .map(encode_cursor)
}

/// Decision search parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DecisionParams {
    /// Model id.
    pub model_id: Option<String>,
    /// Model version.
    pub model_version: Option<String>,
    /// Outcome in force (after overrides).
    pub outcome: Option<String>,
    /// The model's own outcome.
    pub model_outcome: Option<String>,
    /// Status: decided, awaiting_review, reviewed, overridden, contested or submitted.
    pub status: Option<String>,
    /// Subject reference.
    pub subject_ref: Option<String>,
    /// Decided at or after (RFC 3339).
    pub decided_from: Option<String>,
    /// Decided before (RFC 3339).
    pub decided_until: Option<String>,
    /// Captured at or after (RFC 3339).
    pub captured_from: Option<String>,
    /// Captured before (RFC 3339).
    pub captured_until: Option<String>,
    /// Score at least.
    pub score_min: Option<f64>,
    /// Score at most.
    pub score_max: Option<f64>,
    /// `desc` (newest first, the default) or `asc`.
    pub order: Option<String>,
    /// Opaque cursor from a previous page.
    pub cursor: Option<String>,
    /// Page size, 1–500 (default 50).
    pub limit: Option<u32>,
}

impl QueryParams for DecisionParams {
    fn expected(name: &str) -> Option<String> {
        match name {
            "score_min" | "score_max" => Some(NUMBER.into()),
            "limit" => Some(page_size(PAGE_ROWS_MAX)),
            _ => None,
        }
    }
}

/// One decision with its status after follow-ups.
#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionBody {
    /// Event id.
    pub event_id: String,
    /// Sequence number.
    pub seq: u64,
    /// Model id.
    pub model_id: String,
    /// Model version.
    pub model_version: String,
    /// The model's outcome.
    pub outcome: String,
    /// The outcome in force (the last override's, or the model's).
    pub current_outcome: String,
    /// Score.
    pub score: Option<f64>,
    /// Subject reference.
    pub subject_ref: String,
    /// When the model decided.
    pub decided_at: Option<String>,
    /// When the ledger captured it.
    pub captured_at: String,
    /// Declared oversight mode.
    pub oversight_mode: String,
    /// decided, awaiting_review, reviewed, overridden, contested or submitted.
    pub status: String,
    /// Human reviews.
    pub reviews: i64,
    /// Overrides.
    pub overrides: i64,
    /// Contests.
    pub contests: i64,
    /// Explanation requests.
    pub explanation_requests: i64,
    /// Submissions that included it.
    pub submissions: i64,
    /// Reviewer of the last review or override.
    pub last_reviewer: Option<String>,
}

impl From<projections::DecisionRow> for DecisionBody {
    fn from(r: projections::DecisionRow) -> Self {
        DecisionBody {
            event_id: r.event_id.to_string(),
            seq: r.seq,
            model_id: r.model_id,
            model_version: r.model_version,
            outcome: r.outcome,
            current_outcome: r.current_outcome,
            score: r.score,
            subject_ref: r.subject_ref,
            decided_at: r.decided_at_us.map(time),
            captured_at: time(r.captured_at_us),
            oversight_mode: r.oversight_mode,
            status: r.status,
            reviews: r.reviews,
            overrides: r.overrides,
            contests: r.contests,
            explanation_requests: r.explanation_requests,
            submissions: r.submissions,
            last_reviewer: r.last_reviewer,
        }
    }
}

/// A page of decisions.
#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionPage {
    /// Decisions.
    pub decisions: Vec<DecisionBody>,
    /// Cursor of the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

fn decision_page(page: Page<projections::DecisionRow>) -> DecisionPage {
    let next_cursor = next(&page);
    DecisionPage {
        decisions: page.items.into_iter().map(Into::into).collect(),
        next_cursor,
    }
}

/// Search decisions by model, version, outcome, status, subject, time ranges and score, in
/// sequence order with cursor pagination.
#[utoipa::path(get, path = "/v1/decisions", tag = "views", params(DecisionParams),
    responses(
        (status = 200, body = DecisionPage),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn search_decisions(
    State(state): State<AppState>,
    caller: Caller,
    params: QueryResult<DecisionParams>,
) -> Result<Json<DecisionPage>, ApiError> {
    let p = caller.require(READERS, "search decisions")?;
    let ApiQuery(q) = params?;
    one_of("status", &q.status, STATUSES)?;
    one_of("order", &q.order, &["asc", "desc"])?;
    for (name, v) in [("score_min", q.score_min), ("score_max", q.score_max)] {
        if v.is_some_and(|v| !v.is_finite()) {
            return Err(ApiError::BadParameter(format!("{name} must be a number")));
        }
    }
    let query = DecisionQuery {
        model_id: text("model_id", &q.model_id)?,
        model_version: text("model_version", &q.model_version)?,
        outcome: text("outcome", &q.outcome)?,
        model_outcome: text("model_outcome", &q.model_outcome)?,
        status: q.status.clone(),
        subject_ref: text("subject_ref", &q.subject_ref)?,
        decided_from: parse_time("decided_from", &q.decided_from)?,
        decided_until: parse_time("decided_until", &q.decided_until)?,
        captured_from: parse_time("captured_from", &q.captured_from)?,
        captured_until: parse_time("captured_until", &q.captured_until)?,
        score_min: q.score_min,
        score_max: q.score_max,
        ascending: q.order.as_deref() == Some("asc"),
        after: cursor(&q.cursor)?,
        limit: limit(q.limit)?,
    };
    let page = state.store.search_decisions(&p.tenant, &query).await?;
    Ok(Json(decision_page(page)))
}

/// One human-oversight action.
#[derive(Debug, Serialize, ToSchema)]
pub struct OversightBody {
    /// Sequence number of the action's record.
    pub seq: u64,
    /// Its event id.
    pub event_id: String,
    /// human_review, override, contest or explanation_request.
    pub event_type: String,
    /// The decision it concerns.
    pub decision_id: String,
    /// Whether that decision is in this tenant's ledger before the action.
    pub decision_known: bool,
    /// Who acted.
    pub actor: Option<String>,
    /// The review's action, or the override's new outcome.
    pub action: Option<String>,
    /// The stated reason (a contest's statement).
    pub reason: Option<String>,
    /// When it was captured.
    pub captured_at: String,
}

impl From<projections::OversightRow> for OversightBody {
    fn from(r: projections::OversightRow) -> Self {
        OversightBody {
            seq: r.seq,
            event_id: r.event_id.to_string(),
            event_type: r.event_type,
            decision_id: r.decision_id.to_string(),
            decision_known: r.decision_known,
            actor: r.actor,
            action: r.action,
            reason: r.reason,
            captured_at: time(r.captured_at_us),
        }
    }
}

/// A decision with its oversight history (the override chain, oldest first).
#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionDetail {
    /// The decision.
    pub decision: DecisionBody,
    /// Reviews, overrides, contests and explanation requests, oldest first.
    pub oversight: Vec<OversightBody>,
}

/// Get one decision from the decisions view, with its oversight history.
#[utoipa::path(get, path = "/v1/decisions/{event_id}", tag = "views",
    params(("event_id" = String, Path, description = "The decision's event id (UUIDv7)")),
    responses(
        (status = 200, body = DecisionDetail),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn get_decision(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(event_id): ApiPath<String>,
) -> Result<Json<DecisionDetail>, ApiError> {
    let p = caller.require(READERS, "read decisions")?;
    let id = parse_event_id(&event_id)?;
    let (decision, oversight) = state
        .store
        .decision_view(&p.tenant, id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such decision".into()))?;
    Ok(Json(DecisionDetail {
        decision: decision.into(),
        oversight: oversight.into_iter().map(Into::into).collect(),
    }))
}

/// Model inventory parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ModelParams {
    /// Only this model id.
    pub model_id: Option<String>,
}

impl QueryParams for ModelParams {}

/// One model version in the inventory (SR 11-7).
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelBody {
    /// Model id.
    pub model_id: String,
    /// Model version.
    pub model_version: String,
    /// First decision's capture time.
    pub first_seen: Option<String>,
    /// Last decision's capture time.
    pub last_seen: Option<String>,
    /// Decisions made.
    pub decisions: i64,
    /// Decisions per model outcome.
    pub outcomes: BTreeMap<String, i64>,
    /// Human reviews of its decisions.
    pub reviews: i64,
    /// Overrides of its decisions.
    pub overrides: i64,
    /// Overrides per decision (absent without decisions).
    pub override_rate: Option<f64>,
    /// Contests of its decisions.
    pub contests: i64,
    /// Latest lifecycle change (registered, validated, approved, deployed, retired), or
    /// unregistered.
    pub status: String,
    /// Reference of the latest validation.
    pub validation_ref: Option<String>,
    /// When the latest validation was recorded.
    pub validated_at: Option<String>,
    /// Reference of the latest approval.
    pub approval_ref: Option<String>,
    /// When the latest approval was recorded.
    pub approved_at: Option<String>,
    /// Monitoring findings recorded.
    pub findings: i64,
}

/// The model inventory.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelInventory {
    /// Model versions, by model id and version.
    pub models: Vec<ModelBody>,
}

/// The SR 11-7 model inventory: per model and version, first and last seen, decisions, outcome
/// distribution, override rate, latest validation and approval, status.
#[utoipa::path(get, path = "/v1/models", tag = "views", params(ModelParams),
    responses(
        (status = 200, body = ModelInventory),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn model_inventory(
    State(state): State<AppState>,
    caller: Caller,
    params: QueryResult<ModelParams>,
) -> Result<Json<ModelInventory>, ApiError> {
    let p = caller.require(READERS, "read the model inventory")?;
    let ApiQuery(q) = params?;
    let model_id = text("model_id", &q.model_id)?;
    let rows = state
        .store
        .model_inventory(&p.tenant, model_id.as_deref())
        .await?;
    let models = rows
        .into_iter()
        .map(|r| ModelBody {
            override_rate: (r.decisions > 0).then(|| r.overrides as f64 / r.decisions as f64),
            model_id: r.model_id,
            model_version: r.model_version,
            first_seen: r.first_seen_us.map(time),
            last_seen: r.last_seen_us.map(time),
            decisions: r.decisions,
            outcomes: r.outcomes,
            reviews: r.reviews,
            overrides: r.overrides,
            contests: r.contests,
            status: r.status,
            validation_ref: r.validation_ref,
            validated_at: r.validated_at_us.map(time),
            approval_ref: r.approval_ref,
            approved_at: r.approved_at_us.map(time),
            findings: r.findings,
        })
        .collect();
    Ok(Json(ModelInventory { models }))
}

/// Oversight queue parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct QueueParams {
    /// `awaiting_review` (the default: human-in-the-loop decisions nobody has reviewed) or
    /// `contested` (contested since their last review).
    pub status: Option<String>,
    /// Opaque cursor from a previous page.
    pub cursor: Option<String>,
    /// Page size, 1–500 (default 50).
    pub limit: Option<u32>,
}

impl QueryParams for QueueParams {
    fn expected(name: &str) -> Option<String> {
        (name == "limit").then(|| page_size(PAGE_ROWS_MAX))
    }
}

/// Decisions waiting for a person (EU AI Act Art. 14), oldest first.
#[utoipa::path(get, path = "/v1/oversight/queue", tag = "views", params(QueueParams),
    responses(
        (status = 200, body = DecisionPage),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn oversight_queue(
    State(state): State<AppState>,
    caller: Caller,
    params: QueryResult<QueueParams>,
) -> Result<Json<DecisionPage>, ApiError> {
    let p = caller.require(READERS, "read the oversight queue")?;
    let ApiQuery(q) = params?;
    one_of("status", &q.status, &["awaiting_review", "contested"])?;
    let query = DecisionQuery {
        status: Some(q.status.unwrap_or_else(|| "awaiting_review".to_owned())),
        ascending: true,
        after: cursor(&q.cursor)?,
        limit: limit(q.limit)?,
        ..DecisionQuery::default()
    };
    let page = state.store.search_decisions(&p.tenant, &query).await?;
    Ok(Json(decision_page(page)))
}

/// Oversight action filter.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ActionParams {
    /// Only actions on this decision.
    pub decision_id: Option<String>,
    /// Only actions by this person.
    pub actor: Option<String>,
    /// human_review, override, contest or explanation_request.
    pub event_type: Option<String>,
    /// Opaque cursor from a previous page.
    pub cursor: Option<String>,
    /// Page size, 1–500 (default 50).
    pub limit: Option<u32>,
}

impl QueryParams for ActionParams {
    fn expected(name: &str) -> Option<String> {
        (name == "limit").then(|| page_size(PAGE_ROWS_MAX))
    }
}

/// A page of oversight actions.
#[derive(Debug, Serialize, ToSchema)]
pub struct OversightPage {
    /// Actions, newest first.
    pub actions: Vec<OversightBody>,
    /// Cursor of the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Who reviewed, overrode, contested or asked for an explanation of which decision, and why;
/// newest first.
#[utoipa::path(get, path = "/v1/oversight/actions", tag = "views", params(ActionParams),
    responses(
        (status = 200, body = OversightPage),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn oversight_actions(
    State(state): State<AppState>,
    caller: Caller,
    params: QueryResult<ActionParams>,
) -> Result<Json<OversightPage>, ApiError> {
    let p = caller.require(READERS, "read oversight actions")?;
    let ApiQuery(q) = params?;
    one_of("event_type", &q.event_type, OVERSIGHT_TYPES)?;
    let query = OversightQuery {
        decision_id: q.decision_id.as_deref().map(parse_event_id).transpose()?,
        actor: text("actor", &q.actor)?,
        event_type: q.event_type.clone(),
        action: None,
        after: cursor(&q.cursor)?,
        limit: limit(q.limit)?,
    };
    let page = state.store.oversight_actions(&p.tenant, &query).await?;
    let next_cursor = next(&page);
    Ok(Json(OversightPage {
        actions: page.items.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// Paging parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    /// Opaque cursor from a previous page.
    pub cursor: Option<String>,
    /// Page size, 1–500 (default 50).
    pub limit: Option<u32>,
}

impl QueryParams for PageParams {
    fn expected(name: &str) -> Option<String> {
        (name == "limit").then(|| page_size(PAGE_ROWS_MAX))
    }
}

/// One record concerning a subject.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubjectEntry {
    /// The record's sequence number (fetch it from `/v1/records/{seq}`).
    pub seq: u64,
    /// Its event id.
    pub event_id: String,
    /// Its event type.
    pub event_type: String,
    /// For a follow-up, the subject's decision it concerns.
    pub decision_id: Option<String>,
    /// When it was captured.
    pub captured_at: String,
}

/// Every record concerning a subject.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubjectPage {
    /// The subject reference.
    pub subject_ref: String,
    /// Records, oldest first.
    pub records: Vec<SubjectEntry>,
    /// Cursor of the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Every record that concerns a subject — its decisions, every follow-up to them, erasures —
/// to answer an access request (GDPR Art. 15, PIPEDA) completely.
#[utoipa::path(get, path = "/v1/subjects/{subject_ref}/records", tag = "views",
    params(("subject_ref" = String, Path, description = "The subject reference"), PageParams),
    responses(
        (status = 200, body = SubjectPage),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn subject_records(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(subject_ref): ApiPath<String>,
    params: QueryResult<PageParams>,
) -> Result<Json<SubjectPage>, ApiError> {
    // The data-protection office reads whom a request concerns before erasing.
    let p = caller.require(&[Role::Read, Role::Privacy], "read the subject index")?;
    let ApiQuery(q) = params?;
    let subject_ref = text("subject_ref", &Some(subject_ref))?.unwrap_or_default();
    let page = state
        .store
        .subject_records(&p.tenant, &subject_ref, cursor(&q.cursor)?, limit(q.limit)?)
        .await?;
    let next_cursor = next(&page);
    Ok(Json(SubjectPage {
        subject_ref,
        records: page
            .items
            .into_iter()
            .map(|r| SubjectEntry {
                seq: r.seq,
                event_id: r.event_id.to_string(),
                event_type: r.event_type,
                decision_id: r.decision_id.map(|d| d.to_string()),
                captured_at: time(r.captured_at_us),
            })
            .collect(),
        next_cursor,
    }))
}

/// Daily volume parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct VolumeParams {
    /// First day (`YYYY-MM-DD`, UTC; default 29 days before `until`).
    pub from: Option<String>,
    /// Last day (`YYYY-MM-DD`, UTC; default today).
    pub until: Option<String>,
    /// Only this model id.
    pub model_id: Option<String>,
}

impl QueryParams for VolumeParams {}

/// Decisions of one day, model version and outcome.
#[derive(Debug, Serialize, ToSchema)]
pub struct DailyBody {
    /// The day (UTC, by capture time).
    pub day: String,
    /// Model id.
    pub model_id: String,
    /// Model version.
    pub model_version: String,
    /// Outcome.
    pub outcome: String,
    /// Decisions.
    pub decisions: i64,
}

/// Daily volumes.
#[derive(Debug, Serialize, ToSchema)]
pub struct DailyVolumes {
    /// First day.
    pub from: String,
    /// Last day.
    pub until: String,
    /// One row per day, model version and outcome with decisions; days without are absent.
    pub volumes: Vec<DailyBody>,
}

fn day(name: &str, text: &str) -> Result<chrono::NaiveDate, ApiError> {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| ApiError::BadParameter(format!("{name} must be a day such as 2026-11-29")))
}

/// Decisions per day, model version and outcome, for dashboards (at most 366 days at once).
#[utoipa::path(get, path = "/v1/volumes/daily", tag = "views", params(VolumeParams),
    responses(
        (status = 200, body = DailyVolumes),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn daily_volumes(
    State(state): State<AppState>,
    caller: Caller,
    params: QueryResult<VolumeParams>,
) -> Result<Json<DailyVolumes>, ApiError> {
    let p = caller.require(READERS, "read volumes")?;
    let ApiQuery(q) = params?;
    let until = match &q.until {
        Some(t) => day("until", t)?,
        None => chrono::Utc::now().date_naive(),
    };
    let from = match &q.from {
        Some(t) => day("from", t)?,
        None => until - chrono::Duration::days(29),
    };
    let span = (until - from).num_days();
    if !(0..VOLUME_DAYS_MAX).contains(&span) {
        return Err(ApiError::BadParameter(format!(
            "from must not be after until, and the range at most {VOLUME_DAYS_MAX} days"
        )));
    }
    let model_id = text("model_id", &q.model_id)?;
    let (from, until) = (
        from.format("%Y-%m-%d").to_string(),
        until.format("%Y-%m-%d").to_string(),
    );
    let rows = state
        .store
        .daily_volumes(&p.tenant, &from, &until, model_id.as_deref())
        .await?;
    Ok(Json(DailyVolumes {
        from,
        until,
        volumes: rows
            .into_iter()
            .map(|r| DailyBody {
                day: r.day,
                model_id: r.model_id,
                model_version: r.model_version,
                outcome: r.outcome,
                decisions: r.decisions,
            })
            .collect(),
    }))
}

/// One projection's state.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectionBody {
    /// Name.
    pub name: String,
    /// The version this build maintains.
    pub version: u32,
    /// The generation queries read.
    pub active_generation: i64,
    /// The version that built it.
    pub active_version: u32,
    /// Records not yet applied, over all tenants.
    pub lag_records: u64,
    /// Age of the oldest record not yet applied, in seconds.
    pub lag_seconds: f64,
    /// A rebuild in progress: records applied of records to apply.
    pub rebuilding: Option<String>,
    /// Tenants for which this projection is stuck at a record it cannot apply (its lag keeps
    /// growing until an operator runs `auditex projections retry`). In `/readyz` a count only,
    /// which names no tenant; for one tenant 0 or 1.
    pub stuck_tenants: u64,
    /// For one tenant: the sequence number of the record the projection is stuck at.
    pub stuck_at_seq: Option<u64>,
}

/// The projections' status.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectionsBody {
    /// Every projection (empty until the service has run them once).
    pub projections: Vec<ProjectionBody>,
}

/// The projections' status over all tenants as the background runner last saw it (for the
/// operator's `/readyz`; tenants see their own through `/v1/projections`).
pub fn projection_bodies(store: &Store) -> Vec<ProjectionBody> {
    store
        .views_runner()
        .status()
        .into_iter()
        .map(|s| ProjectionBody {
            name: s.name,
            version: s.version,
            active_generation: s.active_generation,
            active_version: s.active_version,
            lag_records: s.lag.records,
            lag_seconds: s.lag.seconds,
            rebuilding: s.rebuilding.map(|r| {
                format!(
                    "generation {}: {} of {} records",
                    r.generation, r.applied, r.total
                )
            }),
            stuck_tenants: {
                let mut tenants: Vec<&str> =
                    s.stuck.iter().map(|l| l.stuck.tenant.as_str()).collect();
                tenants.sort_unstable();
                tenants.dedup();
                tenants.len() as u64
            },
            stuck_at_seq: None,
        })
        .collect()
}

/// Status of the read-side projections for the caller's tenant: how far behind its ledger each
/// one is, and any rebuild in progress.
#[utoipa::path(get, path = "/v1/projections", tag = "views",
    responses(
        (status = 200, body = ProjectionsBody),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn projection_status(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ProjectionsBody>, ApiError> {
    let p = caller.require(READERS, "read projection status")?;
    Ok(Json(ProjectionsBody {
        projections: state
            .store
            .projection_status(&p.tenant)
            .await?
            .into_iter()
            .map(ProjectionBody::from)
            .collect(),
    }))
}

impl From<crate::store::views::ProjectionStatus> for ProjectionBody {
    fn from(s: crate::store::views::ProjectionStatus) -> Self {
        ProjectionBody {
            name: s.name,
            version: s.version,
            active_generation: s.active_generation,
            active_version: s.active_version,
            lag_records: s.lag_records,
            lag_seconds: s.lag_seconds,
            rebuilding: s.rebuilding,
            stuck_tenants: s.stuck_tenants,
            stuck_at_seq: s.stuck_at_seq,
        }
    }
}

#[cfg(test)]
mod time_tests {
    use super::time;

    #[test]
    fn every_stored_time_is_shown_in_rfc_3339_form() {
        assert_eq!(time(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(time(1_796_000_000_123_456), "2026-11-30T00:53:20.123456Z");
        // Before the capture times' range: year 0, as a payload's `decided_at` may say.
        let year_zero = projections::rfc3339_micros("0000-01-01T00:00:00Z").expect("parses");
        assert_eq!(time(year_zero), "0000-01-01T00:00:00.000000Z");
        // A leap second at the end of 9999 is the first instant of year 10000, which RFC 3339
        // cannot write: the year is signed, as ISO 8601 extends it, not a bare number.
        let leap = projections::rfc3339_micros("9999-12-31T23:59:60Z").expect("parses");
        assert_eq!(time(leap), "+10000-01-01T00:00:00.000000Z");
    }
}
