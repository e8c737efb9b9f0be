//! `GET /readyz`: the service's readiness report (see `app::readiness`) as an HTTP answer.
//!
//! Ready answers 200 `application/json`; not ready answers 503 `application/problem+json` (type
//! `urn:auditex:problem:not-ready`) carrying the same members, so every error of this service
//! stays a problem document and nothing is cut.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use crate::app::AppState;
use crate::app::readiness::{Fact, Report};

/// The route: `/readyz`.
pub fn routes() -> Router<AppState> {
    Router::new().route("/readyz", get(readyz))
}

/// The HTTP answer: 200 with the facts, or 503 as a problem document with the same facts.
pub fn response(report: &Report) -> Response {
    let mut body = Map::new();
    let not_ready = report.not_ready();
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
    for fact in report.facts() {
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

/// Readiness: the database answers (its schema was checked at startup), every tenant's signing
/// key opens with the master key, and no tenant is held back by a detected rollback.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let report = state
        .readiness
        .report(&state.store, || {
            // Lagging views do not make the service unready (the ledger accepts and proves
            // records regardless); they are reported here and in /metrics.
            vec![Fact::info(
                "projections",
                serde_json::to_value(super::views::projection_bodies(&state.store))
                    .unwrap_or(Value::Null),
            )]
        })
        .await;
    response(&report)
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
        let (status, kind, body) = body(response(&report)).await;
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
        let (status, kind, body) = body(response(&report)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(kind, "application/json");
        assert_eq!(body["status"], "ready");
        assert_eq!(body["not_ready"], json!([]));
    }
}
