//! Legal holds over HTTPS: placing, listing and lifting holds, a pipeline's erasure of a held
//! subject answered 409 naming the hold, and every malformed, hostile or cross-tenant request
//! refused with a problem document that names what is wrong, appending nothing.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::http::{Server, decision, event_id};
use crate::support::{Backend, backend_tests};

backend_tests!(
    a_hold_placed_over_http_blocks_erasures_with_409_until_it_is_lifted,
    hold_endpoints_refuse_bad_input_other_tenants_subjects_and_wrong_roles_appending_nothing,
);

const SUBJECT: &str = "subj-5d41402a";

async fn delete(s: &Server, key: &str, path: &str, body: &Value) -> reqwest::Response {
    s.client
        .delete(s.url(path))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .expect("request")
}

/// Asserts a problem document of `status` and returns it.
async fn problem(resp: reqwest::Response, status: StatusCode) -> Value {
    let url = resp.url().to_string();
    let got = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = resp.json().await.expect("problem json");
    assert_eq!(got, status, "unexpected status for {url}: {body}");
    assert_eq!(
        content_type.as_deref(),
        Some("application/problem+json"),
        "{url}"
    );
    body
}

fn detail(p: &Value) -> &str {
    p["detail"].as_str().unwrap_or_default()
}

fn erasure_of(subject: &str) -> Value {
    json!({
        "event_id": event_id(),
        "event_type": "erasure",
        "payload": {"subject_ref": subject, "reason": "the person asked", "legal_basis": "GDPR Art. 17(1)(a)"},
    })
}

/// Appends `event` through the store, as the operator's `auditex append` does.
async fn append_locally(
    s: &Server,
    event: &Value,
) -> Result<Vec<auditex::store::Receipt>, auditex::store::AppendError> {
    let draft = ledger::draft::prepare_client_draft(
        event["event_id"].as_str().unwrap_or_default(),
        event["event_type"].as_str().unwrap_or_default(),
        &event["payload"],
        &std::collections::BTreeMap::new(),
        rand::random,
    )
    .expect("draft");
    s.store.append(&s.tenant, vec![draft]).await
}

async fn size(s: &Server) -> u64 {
    s.store.tree_size(&s.tenant).await.expect("size").get()
}

async fn a_hold_placed_over_http_blocks_erasures_with_409_until_it_is_lifted(backend: Backend) {
    let s = Server::start(&backend).await;
    let r = s
        .post(&s.ingest, "/v1/records", &decision(&event_id()))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let holds = format!("/v1/subjects/{SUBJECT}/holds");

    let r = s
        .post(
            &s.privacy,
            &holds,
            &json!({"reason": "claim filed by the customer", "reference": "case 17"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let placed: Value = r.json().await.expect("receipt");
    let hold_seq = placed["seq"].as_u64().expect("seq");
    assert_eq!(placed["duplicate"], false);

    let list: Value = s.get(&s.read, &holds).await.json().await.expect("list");
    assert_eq!(list["subject_ref"], SUBJECT);
    assert_eq!(list["holds"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["holds"][0]["hold_seq"], hold_seq);
    assert_eq!(list["holds"][0]["active"], true);
    assert_eq!(list["holds"][0]["reference"], "case 17");

    let before = size(&s).await;
    // The operator's local append of an erasure record is screened against the hold too.
    match append_locally(&s, &erasure_of(SUBJECT)).await {
        Err(auditex::store::AppendError::LegalHold {
            hold_seq: held,
            reason,
            ..
        }) => assert_eq!(
            (held, reason.as_str()),
            (hold_seq, "claim filed by the customer")
        ),
        other => panic!("a held subject's erasure must be refused, got {other:?}"),
    }
    assert_eq!(size(&s).await, before, "nothing appended");
    // The data-protection office's erasure request is refused the same way, naming the hold.
    let p = problem(
        s.post(
            &s.privacy,
            &format!("/v1/subjects/{SUBJECT}/erasure"),
            &json!({"reason": "the person asked", "legal_basis": "GDPR Art. 17(1)(a)"}),
        )
        .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(p["type"], "urn:auditex:problem:legal-hold");
    assert!(
        detail(&p).contains(&format!("legal hold {hold_seq}")),
        "{p}"
    );
    assert_eq!(size(&s).await, before, "nothing appended");
    // A local lift of a hold that does not exist is refused the same way.
    let bogus = json!({
        "event_id": event_id(),
        "event_type": "legal_hold",
        "payload": {"action": "lifted", "subject_ref": SUBJECT, "reason": "r", "hold_seq": hold_seq + 1},
    });
    let refused = append_locally(&s, &bogus).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("is not an active hold")),
        "{refused:?}"
    );
    assert_eq!(size(&s).await, before, "nothing appended");

    let lift = format!("{holds}/{hold_seq}");
    let r = delete(&s, &s.privacy, &lift, &json!({"reason": "settled"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let lifted: Value = r.json().await.expect("receipt");
    assert_eq!(lifted["duplicate"], false);
    let r = delete(&s, &s.privacy, &lift, &json!({"reason": "settled"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let again: Value = r.json().await.expect("receipt");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["seq"], lifted["seq"]);

    let list: Value = s.get(&s.read, &holds).await.json().await.expect("list");
    assert_eq!(list["holds"][0]["active"], false);
    assert_eq!(list["holds"][0]["lifted_seq"], lifted["seq"]);
    let r = s
        .post(
            &s.privacy,
            &format!("/v1/subjects/{SUBJECT}/erasure"),
            &json!({"reason": "the person asked", "legal_basis": "GDPR Art. 17(1)(a)"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED, "erasure once lifted");
    s.stop().await;
}

async fn hold_endpoints_refuse_bad_input_other_tenants_subjects_and_wrong_roles_appending_nothing(
    backend: Backend,
) {
    let s = Server::start(&backend).await;
    let r = s
        .post(&s.ingest, "/v1/records", &decision(&event_id()))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    // Another tenant's subject, with values of its own.
    let other = ledger::types::TenantId::parse("other-bank").expect("tenant");
    s.store.create_tenant(&other).await.expect("tenant");
    let mut payload = decision(&event_id());
    payload["payload"]["subject_ref"] = json!("their-subject");
    let draft = ledger::draft::prepare_client_draft(
        payload["event_id"].as_str().unwrap_or_default(),
        "decision",
        &payload["payload"],
        &std::collections::BTreeMap::from([("name".to_owned(), json!("X"))]),
        rand::random,
    )
    .expect("draft");
    s.store.append(&other, vec![draft]).await.expect("append");
    let before = size(&s).await;
    let holds = format!("/v1/subjects/{SUBJECT}/holds");
    let reason = json!({"reason": "litigation"});

    // Unknown here: another tenant's subject answers exactly like one that never existed.
    for subject in ["their-subject", "never-seen"] {
        let path = format!("/v1/subjects/{subject}/holds");
        let a = problem(
            s.post(&s.privacy, &path, &reason).await,
            StatusCode::NOT_FOUND,
        )
        .await;
        let b = problem(s.get(&s.read, &path).await, StatusCode::NOT_FOUND).await;
        let c = problem(
            delete(&s, &s.privacy, &format!("{path}/1"), &reason).await,
            StatusCode::NOT_FOUND,
        )
        .await;
        assert_eq!(detail(&a), "unknown subject");
        assert_eq!(detail(&b), "unknown subject");
        assert!(detail(&c).contains("no legal hold 1"), "{c}");
    }

    // Bodies: each refusal names what is wrong.
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "reason"),
        (json!({"reason": "   "}), "reason must be 1 to"),
        (json!({"reason": "x".repeat(2000)}), "reason must be 1 to"),
        (
            json!({"reason": "r", "reference": ""}),
            "reference must be 1 to",
        ),
        (
            json!({"reason": "r", "decision_id": "not-an-id"}),
            "decision_id",
        ),
        (
            json!({"reason": "r", "decision_id": "01932c07-0000-7000-8000-000000000001"}),
            "decision_id: no decision of this subject",
        ),
        (json!({"reason": "r", "colour": "red"}), "colour"),
        (json!(["reason"]), "not a valid request"),
        // An array of the right length would fill the request by position: refused all the same.
        (json!(["litigation", null, null]), "must be a JSON object"),
    ];
    for (body, expected) in cases {
        let p = problem(
            s.post(&s.privacy, &holds, &body).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert!(detail(&p).contains(expected), "{body}: {p}");
    }
    // A bad member is answered as the erasure endpoint answers it: bad-request, pointing at it,
    // every bad member at once.
    for (body, pointers) in [
        (json!({"reason": "   "}), vec!["/reason"]),
        (
            json!({"reason": "", "reference": ""}),
            vec!["/reason", "/reference"],
        ),
        (
            json!({"reason": "r", "decision_id": "not-a-uuid"}),
            vec!["/decision_id"],
        ),
        (
            json!({"reason": "r", "decision_id": "01932c07-0000-7000-8000-000000000001"}),
            vec!["/decision_id"],
        ),
    ] {
        let p = problem(
            s.post(&s.privacy, &holds, &body).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(p["type"], "urn:auditex:problem:bad-request", "{body}: {p}");
        let found: Vec<&str> = p["errors"]
            .as_array()
            .map(|e| e.iter().filter_map(|x| x["pointer"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(found, pointers, "{body}: {p}");
    }
    let p = problem(
        delete(
            &s,
            &s.privacy,
            &format!("{holds}/0"),
            &json!({"reason": " "}),
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(p["type"], "urn:auditex:problem:bad-request", "{p}");
    assert_eq!(p["errors"][0]["pointer"], "/reason", "{p}");
    // The erasure endpoint, for comparison: the same answer for a blank reason.
    let p = problem(
        s.post(
            &s.privacy,
            &format!("/v1/subjects/{SUBJECT}/erasure"),
            &json!({"reason": " ", "legal_basis": "GDPR Art. 17(1)(a)"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(p["type"], "urn:auditex:problem:bad-request", "{p}");
    assert_eq!(p["errors"][0]["pointer"], "/reason", "{p}");
    let raw = s
        .client
        .post(s.url(&holds))
        .bearer_auth(&s.privacy)
        .header("content-type", "application/json")
        .body("{\"reason\": ")
        .send()
        .await
        .expect("request");
    // Cut-off JSON is refused by the strict reader, naming where it broke (as for appends).
    let p = problem(raw, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(p["errors"][0]["pointer"], "/reason", "{p}");
    let plain = s
        .client
        .post(s.url(&holds))
        .bearer_auth(&s.privacy)
        .body("{\"reason\": \"r\"}")
        .send()
        .await
        .expect("request");
    let p = problem(plain, StatusCode::BAD_REQUEST).await;
    assert!(detail(&p).contains("Content-Type"), "{p}");
    // A subject reference longer than any payload string.
    let long = format!("/v1/subjects/{}/holds", "s".repeat(1100));
    let p = problem(s.get(&s.read, &long).await, StatusCode::BAD_REQUEST).await;
    assert!(detail(&p).contains("subject_ref"), "{p}");
    // Hold numbers: not a number, or no hold of this subject.
    problem(
        delete(&s, &s.privacy, &format!("{holds}/abc"), &reason).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    problem(
        delete(&s, &s.privacy, &format!("{holds}/0"), &reason).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    // Roles: only privacy keys place and lift holds (pipelines and readers may not);
    // verifiers may not list them.
    for key in [&s.ingest, &s.read] {
        let p = problem(s.post(key, &holds, &reason).await, StatusCode::FORBIDDEN).await;
        assert!(detail(&p).contains("place legal holds"), "{p}");
    }
    problem(s.get(&s.verify, &holds).await, StatusCode::FORBIDDEN).await;
    problem(
        delete(&s, &s.ingest, &format!("{holds}/0"), &reason).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    problem(
        s.get("atx_not_a_key", &holds).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;

    assert_eq!(size(&s).await, before, "nothing was appended");
    let list: Value = s.get(&s.read, &holds).await.json().await.expect("list");
    assert_eq!(list["holds"], json!([]));
    s.stop().await;
}
