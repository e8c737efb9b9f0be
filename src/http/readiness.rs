//! Readiness (`GET /readyz`): a list of named facts about the service, each of which may make it
//! not ready, answered from a short-lived cache.
//!
//! The endpoint is unauthenticated and probed often, so it must be cheap and must not tell an
//! anonymous caller anything about the tenants: facts give counts, never tenant names (those go
//! to the log, where the operator looks next). Facts are gathered at most once per
//! [`READINESS_CACHE_MS`]; concurrent probes wait for the one gathering in progress instead of
//! each opening every tenant's signing key again.
//!
//! To report a new condition, add one [`Fact`] in [`gather`]: its name becomes a member of the
//! body, and when it is not ready its name is listed in `not_ready` and the answer is 503.
//! Ready answers 200 `application/json`; not ready answers 503 `application/problem+json` (type
//! `urn:auditex:problem:not-ready`) carrying the same members, so every error of this service
//! stays a problem document and nothing is cut.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::AppState;
use crate::store::Store;

/// How long a gathered readiness answer is served before the facts are gathered again.
pub const READINESS_CACHE_MS: u64 = 2_000;

/// One named fact about the service.
#[derive(Debug, Clone)]
pub struct Fact {
    /// The member name in the body (snake case, stable: monitoring matches on it).
    pub name: &'static str,
    /// False when this fact makes the service not ready.
    pub ready: bool,
    /// What the body shows for it; never a tenant's name.
    pub value: Value,
}

impl Fact {
    /// A fact that makes the service not ready when `ready` is false.
    pub fn new(name: &'static str, ready: bool, value: impl Into<Value>) -> Fact {
        Fact {
            name,
            ready,
            value: value.into(),
        }
    }

    /// A fact reported for information only: it never makes the service not ready.
    pub fn info(name: &'static str, value: impl Into<Value>) -> Fact {
        Fact::new(name, true, value)
    }
}

/// The facts gathered at one moment.
#[derive(Debug, Clone)]
pub struct Report {
    facts: Vec<Fact>,
}

impl Report {
    /// A report of these facts.
    pub fn new(facts: Vec<Fact>) -> Report {
        Report { facts }
    }

    /// True when every fact is ready.
    pub fn is_ready(&self) -> bool {
        self.facts.iter().all(|f| f.ready)
    }

    /// The names of the facts that make the service not ready, in gathering order.
    pub fn not_ready(&self) -> Vec<&'static str> {
        self.facts
            .iter()
            .filter(|f| !f.ready)
            .map(|f| f.name)
            .collect()
    }

    /// The HTTP answer: 200 with the facts, or 503 as a problem document with the same facts.
    pub fn response(&self) -> Response {
        let mut body = Map::new();
        let not_ready = self.not_ready();
        if not_ready.is_empty() {
            body.insert("status".into(), json!("ready"));
        } else {
            body.insert("type".into(), json!("urn:auditex:problem:not-ready"));
            body.insert("title".into(), json!("Not ready"));
            body.insert("status".into(), json!(503));
            body.insert(
                "detail".into(),
                json!(format!("not ready: {}", not_ready.join(", "))),
            );
        }
        body.insert("not_ready".into(), json!(not_ready));
        for fact in &self.facts {
            body.insert(fact.name.into(), fact.value.clone());
        }
        if not_ready.is_empty() {
            return (StatusCode::OK, Json(Value::Object(body))).into_response();
        }
        let mut response = (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::to_vec(&Value::Object(body)).unwrap_or_default(),
        )
            .into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

/// The cached readiness answer, shared by every request.
#[derive(Clone, Default)]
pub struct Readiness {
    // A tokio mutex: held across the gathering so concurrent probes share one.
    cached: Arc<tokio::sync::Mutex<Option<(Instant, Report)>>>,
}

impl Readiness {
    /// The current report: the cached one while fresh, else freshly gathered.
    pub async fn report(&self, state: &AppState) -> Report {
        let mut cached = self.cached.lock().await;
        if let Some((at, report)) = cached.as_ref()
            && at.elapsed() < Duration::from_millis(READINESS_CACHE_MS)
        {
            return report.clone();
        }
        let report = Report::new(gather(state).await);
        if !report.is_ready() {
            tracing::warn!(not_ready = ?report.not_ready(), "not ready");
        }
        *cached = Some((Instant::now(), report.clone()));
        report
    }
}

/// Gathers every fact. Add a condition here.
async fn gather(state: &AppState) -> Vec<Fact> {
    let store = &state.store;
    let database = store.ping().await;
    let reachable = database.is_ok();
    if let Err(e) = &database {
        tracing::warn!(error = %e, "readiness: database unreachable");
    }
    let held = store.rollback_status().held().len();
    // A full disk or a clock too far behind refuses every append: send writes elsewhere.
    let faults = store.fault_status();
    let clock = if faults.clock_behind_seconds > 0.0 {
        format!(
            "{:.0} s behind the latest capture time{}",
            faults.clock_behind_seconds,
            if faults.clock_beyond_allowance {
                "; appends refused"
            } else {
                ""
            }
        )
    } else {
        "ok".to_owned()
    };
    vec![
        Fact::new(
            "database",
            reachable,
            if reachable { "ok" } else { "unreachable" },
        ),
        // The schema is checked at startup; it cannot change under a running service.
        Fact::new(
            "migrations",
            reachable,
            if reachable { "current" } else { "unknown" },
        ),
        signing_keys(store, reachable).await,
        Fact::new("rollback_held_tenants", held == 0, held),
        Fact::new(
            "storage",
            !faults.storage_full,
            if faults.storage_full { "full" } else { "ok" },
        ),
        Fact::new("clock", !faults.clock_beyond_allowance, clock),
        // Lagging views do not make the service unready (the ledger accepts and proves records
        // regardless); they are reported here and in /metrics.
        Fact::info(
            "projections",
            serde_json::to_value(super::views::projection_bodies(state)).unwrap_or(Value::Null),
        ),
    ]
}

/// Every tenant's signing key opens with the master key: a count of those that do not, with the
/// tenants named only in the log.
async fn signing_keys(store: &Store, reachable: bool) -> Fact {
    const NAME: &str = "signing_keys";
    if !reachable {
        return Fact::new(NAME, false, "unknown: database unreachable");
    }
    let tenants = match store.tenants().await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "readiness: cannot list tenants");
            return Fact::new(NAME, false, "unknown: tenants unreadable");
        }
    };
    let mut unusable = 0usize;
    for tenant in &tenants {
        if let Err(e) = store.current_signer(tenant).await {
            tracing::error!(tenant = %tenant, error = %e, "readiness: signing key not usable");
            unusable += 1;
        }
    }
    if unusable == 0 {
        Fact::new(NAME, true, format!("{} loaded", tenants.len()))
    } else {
        Fact::new(
            NAME,
            false,
            format!("{unusable} of {} not usable", tenants.len()),
        )
    }
}

/// Readiness: the database answers (its schema was checked at startup), every tenant's signing
/// key opens with the master key, and no tenant is held back by a detected rollback.
pub async fn readyz(State(state): State<AppState>) -> Response {
    state.readiness.report(&state).await.response()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: Response) -> (StatusCode, String, Value) {
        let status = response.status();
        let kind = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, kind, serde_json::from_slice(&bytes).expect("json"))
    }

    #[tokio::test]
    async fn a_failing_fact_answers_503_with_every_fact_and_its_name_listed() {
        let long = "x".repeat(2000);
        let report = Report::new(vec![
            Fact::new("database", true, "ok"),
            Fact::new("rollback_held_tenants", false, 2),
            Fact::info(
                "projections",
                json!([{ "name": "decisions", "note": long }]),
            ),
        ]);
        let (status, kind, body) = body(report.response()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(kind, "application/problem+json");
        assert_eq!(body["type"], "urn:auditex:problem:not-ready");
        assert_eq!(body["status"], 503);
        assert_eq!(body["not_ready"], json!(["rollback_held_tenants"]));
        assert_eq!(body["rollback_held_tenants"], 2);
        assert_eq!(body["database"], "ok");
        assert_eq!(body["projections"][0]["note"], json!(long));
    }

    #[tokio::test]
    async fn information_only_facts_keep_the_service_ready() {
        let report = Report::new(vec![
            Fact::new("database", true, "ok"),
            Fact::info("projections", json!([])),
        ]);
        let (status, kind, body) = body(report.response()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(kind, "application/json");
        assert_eq!(body["status"], "ready");
        assert_eq!(body["not_ready"], json!([]));
    }
}
