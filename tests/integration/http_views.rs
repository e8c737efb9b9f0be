//! The projection query endpoints over HTTPS: what a compliance analyst asks of them, every bad
//! input answered with a 400 problem, roles, and tenant isolation for every endpoint.

use auditex::auth::Role;
use ledger::types::TenantId;
use projections::runner;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::http::{Server, decision, event_id};
use crate::support::{Backend, backend_tests};

/// Every query endpoint, with a parameter set that is valid.
fn endpoints(decision_id: &str) -> Vec<String> {
    vec![
        "/v1/decisions".to_owned(),
        format!("/v1/decisions/{decision_id}"),
        "/v1/models".to_owned(),
        "/v1/oversight/queue".to_owned(),
        "/v1/oversight/actions".to_owned(),
        "/v1/subjects/subj-5d41402a/records".to_owned(),
        "/v1/volumes/daily".to_owned(),
        "/v1/projections".to_owned(),
    ]
}

async fn json_ok(s: &Server, key: &str, path: &str) -> Value {
    let resp = s.get(key, path).await;
    let status = resp.status();
    let text = resp.text().await.expect("body");
    assert_eq!(status, StatusCode::OK, "GET {path}: {text}");
    serde_json::from_str(&text).expect("JSON")
}

async fn problem(s: &Server, key: &str, path: &str, status: StatusCode) {
    let resp = s.get(key, path).await;
    assert_eq!(resp.status(), status, "GET {path}");
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "GET {path} is not a problem document"
    );
}

fn follow_up(event_type: &str, payload: Value) -> Value {
    json!({"event_id": event_id(), "event_type": event_type, "payload": payload})
}

/// Appends a small, varied ledger over HTTPS and lets the projections catch up. Returns the
/// decision ids: [human-on-the-loop approved, overridden one, awaiting review].
async fn populate(s: &Server) -> Vec<String> {
    let ids: Vec<String> = (0..3).map(|_| event_id()).collect();
    let mut first = decision(&ids[0]);
    first["payload"]["score"] = json!(0.91);
    let mut second = decision(&ids[1]);
    second["payload"]["model_version"] = json!("4.3.0");
    second["payload"]["outcome"] = json!("declined");
    second["payload"]["score"] = json!(0.12);
    second["payload"]["decided_at"] = json!("2026-01-15T10:00:00Z");
    let mut third = decision(&ids[2]);
    third["payload"]["oversight_mode"] = json!("human_in_the_loop");
    third["payload"]["subject_ref"] = json!("subj-other");
    let records = vec![
        first,
        second,
        third,
        follow_up(
            "human_review",
            json!({"decision_id": ids[1], "reviewer": "analyst-17", "action": "escalated"}),
        ),
        follow_up(
            "override",
            json!({"decision_id": ids[1], "reviewer": "officer-3", "new_outcome": "approved", "reason": "income verified"}),
        ),
        follow_up(
            "contest",
            json!({"decision_id": ids[0], "statement": "my income is higher"}),
        ),
        follow_up(
            "model_change",
            json!({"model_id": "credit-limit", "model_version": "4.2.0", "change": "validated", "reference": "MRM-2026-117"}),
        ),
    ];
    let resp = s
        .post(&s.ingest, "/v1/records/batch", &json!({"records": records}))
        .await;
    assert!(
        resp.status().is_success(),
        "{}",
        resp.text().await.unwrap_or_default()
    );
    s.store
        .views_runner()
        .catch_up(&s.store)
        .await
        .expect("catch up");
    ids
}

async fn views_answer_an_analysts_questions(backend: Backend) {
    let s = Server::start(&backend).await;
    // Before the views exist the endpoints say so, retryably.
    problem(
        &s,
        &s.read,
        "/v1/decisions",
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    let ids = populate(&s).await;

    // Everything, newest first, two at a time: the cursor walks every decision once.
    let mut seen = Vec::new();
    let mut path = "/v1/decisions?limit=2".to_owned();
    loop {
        let page = json_ok(&s, &s.read, &path).await;
        for d in page["decisions"].as_array().expect("decisions") {
            seen.push(d["event_id"].as_str().expect("id").to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/decisions?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, vec![ids[2].clone(), ids[1].clone(), ids[0].clone()]);

    let one = |q: &str| format!("/v1/decisions?{q}");
    let count = |v: &Value| v["decisions"].as_array().map_or(0, Vec::len);
    // The override put "approved" in force; the model said "declined".
    let page = json_ok(&s, &s.read, &one("outcome=declined")).await;
    assert_eq!(count(&page), 0);
    let page = json_ok(&s, &s.read, &one("model_outcome=declined")).await;
    assert_eq!(count(&page), 1);
    assert_eq!(page["decisions"][0]["current_outcome"], "approved");
    assert_eq!(page["decisions"][0]["status"], "overridden");
    assert_eq!(page["decisions"][0]["last_reviewer"], "officer-3");
    let page = json_ok(
        &s,
        &s.read,
        &one("model_id=credit-limit&model_version=4.3.0"),
    )
    .await;
    assert_eq!(count(&page), 1);
    let page = json_ok(&s, &s.read, &one("status=contested")).await;
    assert_eq!(page["decisions"][0]["event_id"], ids[0].as_str());
    let page = json_ok(&s, &s.read, &one("subject_ref=subj-other")).await;
    assert_eq!(count(&page), 1);
    let page = json_ok(
        &s,
        &s.read,
        &one("decided_from=2026-01-01T00:00:00Z&decided_until=2026-02-01T00:00:00Z"),
    )
    .await;
    assert_eq!(count(&page), 1);
    let page = json_ok(&s, &s.read, &one("score_min=0.5&order=asc")).await;
    assert_eq!(count(&page), 2);
    let page = json_ok(&s, &s.read, &one("captured_from=2000-01-01T00:00:00Z")).await;
    assert_eq!(count(&page), 3);
    let page = json_ok(&s, &s.read, &one("captured_until=2000-01-01T00:00:00Z")).await;
    assert_eq!(count(&page), 0);

    // One decision with its oversight history, oldest first.
    let detail = json_ok(&s, &s.read, &format!("/v1/decisions/{}", ids[1])).await;
    let kinds: Vec<&str> = detail["oversight"]
        .as_array()
        .expect("oversight")
        .iter()
        .filter_map(|a| a["event_type"].as_str())
        .collect();
    assert_eq!(kinds, ["human_review", "override"]);

    // The model inventory.
    let inventory = json_ok(&s, &s.read, "/v1/models").await;
    let models = inventory["models"].as_array().expect("models");
    assert_eq!(models.len(), 2);
    let v42 = &models[0];
    assert_eq!(v42["model_version"], "4.2.0");
    assert_eq!(v42["decisions"], 2);
    assert_eq!(v42["status"], "validated");
    assert_eq!(v42["validation_ref"], "MRM-2026-117");
    assert_eq!(v42["contests"], 1);
    let v43 = &models[1];
    assert_eq!(v43["overrides"], 1);
    assert_eq!(v43["override_rate"], 1.0);
    assert_eq!(v43["outcomes"]["declined"], 1);
    assert_eq!(v43["status"], "unregistered");

    // Oversight: the human-in-the-loop decision waits; actions by one person.
    let queue = json_ok(&s, &s.read, "/v1/oversight/queue").await;
    assert_eq!(queue["decisions"][0]["event_id"], ids[2].as_str());
    let queue = json_ok(&s, &s.read, "/v1/oversight/queue?status=contested").await;
    assert_eq!(queue["decisions"][0]["event_id"], ids[0].as_str());
    let actions = json_ok(&s, &s.read, "/v1/oversight/actions?actor=officer-3").await;
    assert_eq!(actions["actions"].as_array().map(Vec::len), Some(1));
    assert_eq!(actions["actions"][0]["action"], "approved");

    // The subject index holds the subject's decisions and every follow-up to them.
    let subject = json_ok(&s, &s.read, "/v1/subjects/subj-5d41402a/records").await;
    let types: Vec<&str> = subject["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter_map(|r| r["event_type"].as_str())
        .collect();
    assert_eq!(
        types,
        [
            "decision",
            "decision",
            "human_review",
            "override",
            "contest"
        ]
    );

    // Daily volumes: today, three decisions over two versions.
    let volumes = json_ok(&s, &s.read, "/v1/volumes/daily").await;
    let total: i64 = volumes["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .filter_map(|v| v["decisions"].as_i64())
        .sum();
    assert_eq!(total, 3);

    // Status and lag.
    let status = json_ok(&s, &s.read, "/v1/projections").await;
    assert_eq!(status["projections"].as_array().map(Vec::len), Some(5));
    assert!(
        status["projections"]
            .as_array()
            .expect("projections")
            .iter()
            .all(|p| p["lag_records"] == 0)
    );
    let metrics = s
        .client
        .get(s.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("auditex_projection_lag_records{projection=\"decisions\"} 0"));
    let ready: Value = s
        .client
        .get(s.url("/readyz"))
        .send()
        .await
        .expect("readyz")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["projections"].as_array().map(Vec::len), Some(5));
    s.stop().await;
}

async fn bad_view_queries_get_a_400_problem(backend: Backend) {
    let s = Server::start(&backend).await;
    let ids = populate(&s).await;
    let long = "x".repeat(2000);
    let bad = [
        "/v1/decisions?colour=red".to_owned(),
        "/v1/decisions?limit=0".to_owned(),
        "/v1/decisions?limit=501".to_owned(),
        "/v1/decisions?limit=-1".to_owned(),
        "/v1/decisions?cursor=not-a-cursor".to_owned(),
        "/v1/decisions?status=approved".to_owned(),
        "/v1/decisions?order=sideways".to_owned(),
        "/v1/decisions?decided_from=yesterday".to_owned(),
        "/v1/decisions?captured_until=2026-13-01T00:00:00Z".to_owned(),
        "/v1/decisions?score_min=NaN".to_owned(),
        "/v1/decisions?score_max=abc".to_owned(),
        format!("/v1/decisions?subject_ref={long}"),
        "/v1/decisions?model_id=".to_owned(),
        "/v1/decisions/not-an-id".to_owned(),
        "/v1/decisions/00000000-0000-4000-8000-000000000000".to_owned(),
        "/v1/models?model_id=".to_owned(),
        "/v1/models?x=1".to_owned(),
        "/v1/oversight/queue?status=decided".to_owned(),
        "/v1/oversight/actions?event_type=decision".to_owned(),
        "/v1/oversight/actions?decision_id=nope".to_owned(),
        format!("/v1/subjects/{long}/records"),
        "/v1/subjects/s/records?limit=100000".to_owned(),
        "/v1/volumes/daily?from=2026-02-30".to_owned(),
        "/v1/volumes/daily?from=2026-12-01&until=2026-11-01".to_owned(),
        "/v1/volumes/daily?from=2020-01-01&until=2026-01-01".to_owned(),
    ];
    for path in &bad {
        problem(&s, &s.read, path, StatusCode::BAD_REQUEST).await;
    }
    // A well-formed id that is not a decision of this tenant.
    problem(
        &s,
        &s.read,
        &format!("/v1/decisions/{}", event_id()),
        StatusCode::NOT_FOUND,
    )
    .await;
    // Roles: the views are for `read` keys; no key at all is 401.
    for path in endpoints(&ids[0]) {
        problem(&s, &s.ingest, &path, StatusCode::FORBIDDEN).await;
        problem(&s, &s.verify, &path, StatusCode::FORBIDDEN).await;
        let resp = s.client.get(s.url(&path)).send().await.expect("request");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    // Nothing above changed the views.
    let page = json_ok(&s, &s.read, "/v1/decisions").await;
    assert_eq!(page["decisions"].as_array().map(Vec::len), Some(3));
    s.stop().await;
}

async fn another_tenant_sees_none_of_the_views(backend: Backend) {
    let s = Server::start(&backend).await;
    let ids = populate(&s).await;
    let other = TenantId::parse("other-bank").expect("tenant");
    s.store.create_tenant(&other).await.expect("tenant");
    let outsider = s
        .store
        .create_api_key(&other, Role::Read, "outsider", None)
        .await
        .expect("key")
        .reveal();
    crate::secret_scan::register_api_keys(&[&outsider]);
    runner::catch_up(&s.store).await.expect("catch up");
    for path in endpoints(&ids[0]) {
        let resp = s.get(&outsider, &path).await;
        let status = resp.status();
        let body = resp.text().await.expect("body");
        assert!(
            status == StatusCode::OK || status == StatusCode::NOT_FOUND,
            "{path}: {status}"
        );
        for id in &ids {
            assert!(!body.contains(id.as_str()), "{path} leaks {id}: {body}");
        }
        assert!(!body.contains("subj-5d41402a\",\"seq"), "{path}: {body}");
        assert!(
            !body.contains("credit-limit"),
            "{path} leaks a model: {body}"
        );
    }
    problem(
        &s,
        &outsider,
        &format!("/v1/decisions/{}", ids[0]),
        StatusCode::NOT_FOUND,
    )
    .await;
    let subject = json_ok(&s, &outsider, "/v1/subjects/subj-5d41402a/records").await;
    assert_eq!(subject["records"].as_array().map(Vec::len), Some(0));
    s.stop().await;
}

backend_tests!(
    views_answer_an_analysts_questions,
    bad_view_queries_get_a_400_problem,
    another_tenant_sees_none_of_the_views,
);
