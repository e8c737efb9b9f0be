//! Subject erasure over HTTPS (`POST /v1/subjects/{subject_ref}/erasure`, role `privacy`): the
//! real server, both backends. After an erasure no bundle carries the erased value or its salt,
//! every proof still verifies, a repeated request appends nothing, refusals change nothing, and
//! an erasure racing appends for the same subject leaves no earlier value readable. Also the
//! migration that admits the role (0018) on a database holding keys already.

use std::collections::BTreeMap;

use auditex::auth::Role;
use ledger::bundle::{Bundle, verify_bundle};
use ledger::note::VerifierKey;
use ledger::types::Sequence;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::http::{Server, event_id, problem};
use crate::support::{Backend, backend_tests};

const SUBJECT: &str = "subj-erase-7";

/// A key of role `privacy` for the server's tenant.
async fn privacy_key(s: &Server) -> String {
    let key = s
        .store
        .create_api_key(&s.tenant, Role::Privacy, "data-protection office", None)
        .await
        .expect("key")
        .reveal();
    crate::secret_scan::register_api_keys(&[&key]);
    key
}

/// A decision about `subject` with the given erasable values.
fn decision_about(id: &str, subject: &str, erasable: Value) -> Value {
    let mut d = crate::http::decision(id);
    d["payload"]["subject_ref"] = json!(subject);
    d["erasable"] = erasable;
    d
}

/// A human review of `decision_id` with the given erasable values (its subject is the
/// decision's).
fn review_of(id: &str, decision_id: &str, erasable: Value) -> Value {
    json!({
        "event_id": id,
        "event_type": "human_review",
        "payload": {"decision_id": decision_id, "reviewer": "analyst-12", "action": "confirmed"},
        "erasable": erasable,
    })
}

/// Appends one event with the ingest key; returns its seq.
async fn append(s: &Server, event: &Value) -> u64 {
    let resp = s.post(&s.ingest, "/v1/records", event).await;
    assert_eq!(resp.status(), StatusCode::CREATED, "append {event}");
    let receipt: Value = resp.json().await.expect("receipt");
    receipt["seq"].as_u64().expect("seq")
}

/// Appends a decision about [`SUBJECT`] with the given erasable values; returns its event id.
async fn decided(s: &Server, erasable: Value) -> String {
    let id = event_id();
    append(s, &decision_about(&id, SUBJECT, erasable)).await;
    id
}

/// A decision about [`SUBJECT`] holding a name and an email address; returns its event id.
async fn jane_with_email(s: &Server) -> String {
    decided(
        s,
        json!({"applicant_name": "Jane Q. Doe", "email": "jane.doe@example.org"}),
    )
    .await
}

fn erasure_path(subject: &str) -> String {
    format!("/v1/subjects/{subject}/erasure")
}

fn whole_subject() -> Value {
    json!({"reason": "data subject request 2026-118", "legal_basis": "GDPR Art. 17(1)(a)"})
}

/// Posts an erasure request; returns status and body.
async fn erase(s: &Server, key: &str, subject: &str, body: &Value) -> (StatusCode, Value) {
    let resp = s.post(key, &erasure_path(subject), body).await;
    let status = resp.status();
    (status, resp.json().await.expect("json body"))
}

async fn chain_size(s: &Server) -> u64 {
    s.store.tree_size(&s.tenant).await.expect("size").get()
}

/// The bundle of `decision_id` as served, after publishing a checkpoint that covers the chain.
async fn bundle_text(s: &Server, decision_id: &str) -> String {
    s.store.publish_checkpoints().await.expect("checkpoint");
    let resp = s
        .get(&s.read, &format!("/v1/decisions/{decision_id}/bundle"))
        .await;
    assert_eq!(resp.status(), StatusCode::OK, "bundle of {decision_id}");
    resp.text().await.expect("bundle")
}

/// Every erasable value the bundle discloses: (seq, field) → (value, salt hex).
fn disclosed(bundle: &str) -> BTreeMap<(u64, String), (Value, String)> {
    let json: Value = serde_json::from_str(bundle).expect("bundle JSON");
    let mut out = BTreeMap::new();
    for entry in json["entries"].as_array().expect("entries") {
        let seq = entry["record"]["seq"].as_u64().expect("seq");
        if let Some(values) = entry.get("erasable_values").and_then(Value::as_object) {
            for (field, v) in values {
                out.insert(
                    (seq, field.clone()),
                    (
                        v["value"].clone(),
                        v["salt"].as_str().expect("salt").to_owned(),
                    ),
                );
            }
        }
    }
    out
}

/// Checks every proof and disclosed value of a served bundle with the tenant's own keys.
async fn assert_bundle_verifies(s: &Server, bundle: &str) {
    let keys: Value = s
        .get(&s.verify, "/v1/keys")
        .await
        .json()
        .await
        .expect("keys");
    let trusted: Vec<VerifierKey> = keys["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| VerifierKey::parse(k["verifier_key"].as_str().expect("vkey")).expect("vkey"))
        .collect();
    let parsed = Bundle::from_json(bundle.as_bytes()).expect("a bundle");
    verify_bundle(&parsed, &trusted).expect("the bundle verifies");
}

fn seq_of(n: u64) -> Sequence {
    Sequence::new(n).expect("seq")
}

async fn an_erasure_request_erases_the_subjects_values_and_a_repeat_appends_nothing(
    backend: Backend,
) {
    let s = Server::start(&backend).await;
    let privacy = privacy_key(&s).await;
    let decision = jane_with_email(&s).await;
    append(
        &s,
        &review_of(
            &event_id(),
            &decision,
            json!({"review_note": "called back on +44 20 7946 0958"}),
        ),
    )
    .await;
    let bystander = event_id();
    append(
        &s,
        &decision_about(
            &bystander,
            "subj-bystander",
            json!({"applicant_name": "John Roe"}),
        ),
    )
    .await;
    let before = bundle_text(&s, &decision).await;
    let values = disclosed(&before);
    assert_eq!(
        values.len(),
        3,
        "three values are served before: {values:?}"
    );

    let (status, receipt) = erase(&s, &privacy, SUBJECT, &whole_subject()).await;
    assert_eq!(status, StatusCode::CREATED, "{receipt}");
    assert_eq!(receipt["seq"], 3);
    assert_eq!(receipt["duplicate"], false);
    assert_eq!(receipt["erased"], 3);
    for member in ["event_id", "hash", "sig", "key_id", "captured_at"] {
        assert!(receipt[member].is_string(), "{member} in {receipt}");
    }
    let record: Value = s
        .get(&s.read, "/v1/records/3")
        .await
        .json()
        .await
        .expect("record");
    assert_eq!(record["event_type"], "erasure");
    assert_eq!(record["hash"], receipt["hash"]);
    assert_eq!(record["payload"]["subject_ref"], SUBJECT);
    assert_eq!(record["payload"]["legal_basis"], "GDPR Art. 17(1)(a)");

    let after = bundle_text(&s, &decision).await;
    for (value, salt) in values.values() {
        let text = value.as_str().expect("text values");
        assert!(!after.contains(text), "{text} is still served");
        assert!(
            !after.contains(salt.as_str()),
            "the salt of {text} is still served"
        );
    }
    assert!(disclosed(&after).is_empty());
    assert_bundle_verifies(&s, &after).await;
    for (seq, fields) in [
        (0, vec!["applicant_name", "email"]),
        (1, vec!["review_note"]),
    ] {
        let erased = s
            .store
            .erased_fields(&s.tenant, seq_of(seq))
            .await
            .expect("erased");
        let erased: Vec<(&str, u64)> = erased.iter().map(|(f, by)| (f.as_str(), *by)).collect();
        let expected: Vec<(&str, u64)> = fields.iter().map(|f| (*f, 3)).collect();
        assert_eq!(erased, expected, "record {seq}");
    }
    // Another subject's values are untouched.
    let other = bundle_text(&s, &bystander).await;
    assert!(other.contains("John Roe"));

    // Asked again: the same erasure answers, and nothing is appended.
    let size = chain_size(&s).await;
    let (status, again) = erase(&s, &privacy, SUBJECT, &whole_subject()).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(
        (
            &again["seq"],
            &again["hash"],
            &again["duplicate"],
            &again["erased"]
        ),
        (&receipt["seq"], &receipt["hash"], &json!(true), &json!(0))
    );
    assert_eq!(chain_size(&s).await, size);
    s.stop().await;
}

async fn erasing_named_fields_or_records_leaves_the_subjects_other_values_readable(
    backend: Backend,
) {
    let s = Server::start(&backend).await;
    let privacy = privacy_key(&s).await;
    let decision = jane_with_email(&s).await;
    let review = event_id();
    append(
        &s,
        &review_of(
            &review,
            &decision,
            json!({"email": "jane.private@example.net", "review_note": "spoke to Jane"}),
        ),
    )
    .await;
    let before = disclosed(&bundle_text(&s, &decision).await);

    // Only `email`, in every record of the subject.
    let mut by_field = whole_subject();
    by_field["fields"] = json!(["email"]);
    let (status, receipt) = erase(&s, &privacy, SUBJECT, &by_field).await;
    assert_eq!(status, StatusCode::CREATED, "{receipt}");
    assert_eq!(receipt["erased"], 2);
    let served = bundle_text(&s, &decision).await;
    let after = disclosed(&served);
    assert_eq!(
        after.keys().cloned().collect::<Vec<_>>(),
        [
            (0, "applicant_name".to_owned()),
            (1, "review_note".to_owned())
        ]
    );
    for key in [(0, "email".to_owned()), (1, "email".to_owned())] {
        let (value, salt) = &before[&key];
        assert!(!served.contains(value.as_str().expect("text")));
        assert!(!served.contains(salt.as_str()));
    }
    assert_eq!(after[&(0, "applicant_name".to_owned())].0, "Jane Q. Doe");
    assert_bundle_verifies(&s, &served).await;
    let (status, again) = erase(&s, &privacy, SUBJECT, &by_field).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(
        (&again["seq"], &again["erased"]),
        (&receipt["seq"], &json!(0))
    );

    // Only the review's values.
    let mut by_record = whole_subject();
    by_record["event_ids"] = json!([review]);
    let (status, receipt) = erase(&s, &privacy, SUBJECT, &by_record).await;
    assert_eq!(status, StatusCode::CREATED, "{receipt}");
    assert_eq!(receipt["erased"], 1);
    let served = bundle_text(&s, &decision).await;
    assert_eq!(
        disclosed(&served).keys().cloned().collect::<Vec<_>>(),
        [(0, "applicant_name".to_owned())]
    );
    assert!(!served.contains("spoke to Jane"));
    assert!(served.contains("Jane Q. Doe"));
    s.stop().await;
}

async fn an_unknown_subject_and_another_tenants_subject_get_the_same_404(backend: Backend) {
    let s = Server::start(&backend).await;
    let privacy = privacy_key(&s).await;
    decided(&s, json!({"applicant_name": "Jane Q. Doe"})).await;
    let other = ledger::types::TenantId::parse("other-bank").expect("tenant");
    s.store.create_tenant(&other).await.expect("tenant");
    let their_ingest = s
        .store
        .create_api_key(&other, Role::Ingest, "theirs", None)
        .await
        .expect("key")
        .reveal();
    let their_privacy = s
        .store
        .create_api_key(&other, Role::Privacy, "theirs", None)
        .await
        .expect("key")
        .reveal();
    crate::secret_scan::register_api_keys(&[&their_ingest, &their_privacy]);
    let resp = s
        .post(
            &their_ingest,
            "/v1/records",
            &decision_about(
                &event_id(),
                "subj-elsewhere",
                json!({"applicant_name": "Eve"}),
            ),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let size = chain_size(&s).await;

    let theirs = problem(
        s.post(&privacy, &erasure_path("subj-elsewhere"), &whole_subject())
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let nobodys = problem(
        s.post(&privacy, &erasure_path("subj-nobody"), &whole_subject())
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let ours_for_them = problem(
        s.post(&their_privacy, &erasure_path(SUBJECT), &whole_subject())
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(
        theirs, nobodys,
        "another tenant's subject looks like no subject"
    );
    assert_eq!(ours_for_them, nobodys);
    assert_eq!(nobodys["type"], "urn:auditex:problem:not-found");
    assert_eq!(chain_size(&s).await, size, "nothing was appended");
    assert_eq!(
        s.store.tree_size(&other).await.expect("size").get(),
        1,
        "nothing was appended to the other tenant"
    );
    let ours = s
        .store
        .erasable_values(&s.tenant, seq_of(0))
        .await
        .expect("values");
    assert_eq!(ours.len(), 1, "our subject's value is untouched");
    let theirs = s
        .store
        .erasable_values(&other, seq_of(0))
        .await
        .expect("values");
    assert_eq!(theirs.len(), 1, "their subject's value is untouched");
    s.stop().await;
}

async fn erasure_requests_that_cannot_be_carried_out_are_refused_naming_the_member(
    backend: Backend,
) {
    let s = Server::start(&backend).await;
    let privacy = privacy_key(&s).await;
    let decision = decided(&s, json!({"applicant_name": "Jane Q. Doe"})).await;
    let size = chain_size(&s).await;
    let path = erasure_path(SUBJECT);

    // Members the ledger does not have, each named with its pointer.
    let mut unknown_field = whole_subject();
    unknown_field["fields"] = json!(["applicant_name", "shoe_size"]);
    let p = problem(
        s.post(&privacy, &path, &unknown_field).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(p["errors"][0]["pointer"], "/fields");
    assert!(
        p["detail"]
            .as_str()
            .is_some_and(|d| d.contains("shoe_size")),
        "{p}"
    );
    assert!(
        !p["detail"]
            .as_str()
            .is_some_and(|d| d.contains("applicant_name")),
        "{p}"
    );
    let missing = event_id();
    let mut unknown_event = whole_subject();
    unknown_event["event_ids"] = json!([decision, missing]);
    let p = problem(
        s.post(&privacy, &path, &unknown_event).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(p["errors"][0]["pointer"], "/event_ids");
    assert!(
        p["detail"].as_str().is_some_and(|d| d.contains(&missing)),
        "{p}"
    );

    // Members that break the request's own rules.
    for (body, pointer) in [
        (
            json!({"reason": "", "legal_basis": "GDPR Art. 17"}),
            "/reason",
        ),
        (
            json!({"reason": "r", "legal_basis": "x".repeat(1025)}),
            "/legal_basis",
        ),
        (
            json!({"reason": "r", "legal_basis": "b", "fields": []}),
            "/fields",
        ),
        (
            json!({"reason": "r", "legal_basis": "b", "fields": ["Not A Field"]}),
            "/fields/0",
        ),
        (
            json!({"reason": "r", "legal_basis": "b", "event_ids": ["42"]}),
            "/event_ids/0",
        ),
        (json!({"reason": "r\u{0}", "legal_basis": "b"}), "/reason"),
        (
            json!({"reason": "r", "legal_basis": "b",
                   "fields": ["applicant_name", "applicant_name"]}),
            "/fields/1",
        ),
        (
            json!({"reason": "r", "legal_basis": "b", "event_ids": [decision, decision]}),
            "/event_ids/1",
        ),
    ] {
        let p = problem(
            s.post(&privacy, &path, &body).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(p["errors"][0]["pointer"], pointer, "{body}: {p}");
    }

    // Bodies that are not a request at all.
    for body in [
        json!({"reason": "r"}),
        json!({"reason": "r", "legal_basis": "b", "subject": "x"}),
        json!(["r", "b"]),
        json!(["r", "b", null, null]),
        json!("erase"),
        // `null` is not "leave it out": on an erasure it would mean every record or field.
        json!({"reason": "r", "legal_basis": "b", "event_ids": null}),
        json!({"reason": "r", "legal_basis": "b", "fields": null}),
    ] {
        let p = problem(
            s.post(&privacy, &path, &body).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(
            p["type"], "urn:auditex:problem:malformed-body",
            "{body}: {p}"
        );
    }
    let raw = |body: &'static str, content_type: &'static str| {
        s.client
            .post(s.url(&path))
            .bearer_auth(&privacy)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let p = problem(
        raw("{\"reason\": \"r\",", "application/json")
            .await
            .expect("sent"),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(p["type"], "urn:auditex:problem:malformed-body");
    let p = problem(
        raw(
            "reason=r&legal_basis=b",
            "application/x-www-form-urlencoded",
        )
        .await
        .expect("sent"),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        p["detail"]
            .as_str()
            .is_some_and(|d| d.contains("Content-Type")),
        "{p}"
    );
    let oversize = s
        .client
        .post(s.url(&path))
        .bearer_auth(&privacy)
        .header("content-type", "application/json")
        .body(vec![b' '; auditex::http::REQUEST_BODY_BYTES_MAX + 1])
        .send()
        .await
        .expect("sent");
    problem(oversize, StatusCode::PAYLOAD_TOO_LARGE).await;

    // A subject reference the ledger could not hold.
    let long = "s".repeat(1025);
    let p = problem(
        s.post(&privacy, &erasure_path(&long), &whole_subject())
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(p["type"], "urn:auditex:problem:bad-parameter");
    assert!(
        p["detail"]
            .as_str()
            .is_some_and(|d| d.contains("subject_ref")),
        "{p}"
    );

    assert_eq!(chain_size(&s).await, size, "no refusal appended anything");
    let stored = s
        .store
        .erasable_values(&s.tenant, seq_of(0))
        .await
        .expect("values");
    assert_eq!(stored.len(), 1, "no refusal erased anything");
    s.stop().await;
}

async fn only_keys_of_the_privacy_role_may_erase_and_they_may_do_little_else(backend: Backend) {
    let s = Server::start(&backend).await;
    let privacy = privacy_key(&s).await;
    let decision = decided(&s, json!({"applicant_name": "Jane Q. Doe"})).await;
    s.store.publish_checkpoints().await.expect("checkpoint");
    let size = chain_size(&s).await;
    for (role, key) in [
        ("ingest", &s.ingest),
        ("read", &s.read),
        ("verify", &s.verify),
    ] {
        let p = problem(
            s.post(key, &erasure_path(SUBJECT), &whole_subject()).await,
            StatusCode::FORBIDDEN,
        )
        .await;
        let detail = p["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(role) && detail.contains("privacy"),
            "names the caller's and the needed role: {detail}"
        );
    }
    assert_eq!(chain_size(&s).await, size);

    // The privacy role appends nothing and reads no records, proofs or evidence.
    let append = s
        .post(
            &privacy,
            "/v1/records",
            &decision_about(&event_id(), SUBJECT, json!({})),
        )
        .await;
    problem(append, StatusCode::FORBIDDEN).await;
    for path in [
        "/v1/records".to_owned(),
        "/v1/records/0".to_owned(),
        format!("/v1/events/{decision}"),
        format!("/v1/receipts/{decision}"),
        format!("/v1/decisions/{decision}/bundle"),
        format!("/v1/decisions/{decision}"),
        "/v1/proofs/inclusion?seq=0".to_owned(),
        "/v1/export".to_owned(),
        "/v1/decisions".to_owned(),
        "/v1/keys".to_owned(),
    ] {
        problem(s.get(&privacy, &path).await, StatusCode::FORBIDDEN).await;
    }
    // It reads the subject index, to see what a request concerns.
    s.store
        .views_runner()
        .catch_up(&s.store)
        .await
        .expect("catch up");
    let resp = s
        .get(&privacy, &format!("/v1/subjects/{SUBJECT}/records"))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let listed: Value = resp.json().await.expect("page");
    assert_eq!(listed["records"][0]["event_id"], json!(decision));
    assert_eq!(chain_size(&s).await, size);
    s.stop().await;
}

async fn two_concurrent_identical_erasure_requests_append_one_erasure_record(backend: Backend) {
    let s = Server::start(&backend).await;
    let privacy = privacy_key(&s).await;
    for _ in 0..3 {
        decided(&s, json!({"applicant_name": "Jane Q. Doe"})).await;
    }
    let size = chain_size(&s).await;
    let body = whole_subject();
    let (a, b) = tokio::join!(
        erase(&s, &privacy, SUBJECT, &body),
        erase(&s, &privacy, SUBJECT, &body)
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::CREATED],
        "{} {}",
        a.1,
        b.1
    );
    assert_eq!(a.1["seq"], b.1["seq"]);
    assert_eq!(a.1["hash"], b.1["hash"]);
    let erased: Vec<&Value> = [&a.1, &b.1].iter().map(|r| &r["erased"]).collect();
    assert!(
        erased.contains(&&json!(3)) && erased.contains(&&json!(0)),
        "{erased:?}"
    );
    assert_eq!(chain_size(&s).await, size + 1, "exactly one erasure record");
    s.stop().await;
}

async fn an_erasure_racing_appends_for_the_subject_leaves_no_earlier_value_readable(
    backend: Backend,
) {
    const RACERS: usize = 24;
    let s = Server::start(&backend).await;
    let privacy = privacy_key(&s).await;
    let value = |i: usize| format!("racer-{i:02}-personal");
    // The subject exists before the race (else the request may find no subject).
    let first = decided(&s, json!({"applicant_name": value(99)})).await;
    let ids: Vec<String> = (0..RACERS).map(|_| event_id()).collect();
    let appends = futures_util::future::join_all(ids.iter().enumerate().map(|(i, id)| {
        let event = decision_about(id, SUBJECT, json!({"applicant_name": value(i)}));
        let s = &s;
        async move {
            // Spread the appends around the erasure.
            tokio::time::sleep(std::time::Duration::from_millis((i % 12) as u64 * 4)).await;
            append(s, &event).await
        }
    }));
    let body = whole_subject();
    let erasure = erase(&s, &privacy, SUBJECT, &body);
    let (seqs, (status, receipt)) = tokio::join!(appends, erasure);
    assert_eq!(status, StatusCode::CREATED, "{receipt}");
    let erasure_seq = receipt["seq"].as_u64().expect("seq");

    let mut records: Vec<(u64, String, String)> = vec![(0, first, value(99))];
    records.extend(
        seqs.into_iter()
            .zip(ids)
            .enumerate()
            .map(|(i, (seq, id))| (seq, id, value(i))),
    );
    // However the race fell, one value certainly comes after the erasure.
    let last = event_id();
    let last_seq = append(
        &s,
        &decision_about(&last, SUBJECT, json!({"applicant_name": value(98)})),
    )
    .await;
    records.push((last_seq, last, value(98)));
    let before = records.iter().filter(|r| r.0 < erasure_seq).count();
    eprintln!(
        "{before} of {} values came before the erasure at seq {erasure_seq}",
        records.len()
    );
    let erased = receipt["erased"].as_u64().expect("erased");
    // `erased` counts the values the request found stored when it was checked; records appended
    // between that and the erasure's commit are erased too (checked one by one below) but not
    // counted, so the count is at least one and at most every earlier value.
    assert!(
        (1..=before as u64).contains(&erased),
        "erased {erased} of {before} earlier values"
    );
    for (seq, id, text) in &records {
        let stored = s
            .store
            .erasable_values(&s.tenant, seq_of(*seq))
            .await
            .expect("values");
        let gone = s
            .store
            .erased_fields(&s.tenant, seq_of(*seq))
            .await
            .expect("erased");
        let bundle = bundle_text(&s, id).await;
        let quoted = format!("\"{text}\"");
        if *seq < erasure_seq {
            assert!(
                stored.is_empty(),
                "record {seq} before the erasure still holds a value"
            );
            assert_eq!(
                gone.values().copied().collect::<Vec<_>>(),
                [erasure_seq],
                "record {seq} is erased by the erasure"
            );
            assert!(disclosed(&bundle).is_empty(), "record {seq}'s bundle");
            assert!(
                !bundle.contains(&quoted),
                "record {seq}'s bundle shows {text}"
            );
        } else {
            assert_eq!(
                stored.len(),
                1,
                "record {seq} after the erasure keeps its value"
            );
            assert!(gone.is_empty(), "record {seq} is not erased");
            assert!(
                bundle.contains(&quoted),
                "record {seq}'s bundle shows its value"
            );
        }
    }
    assert_bundle_verifies(&s, &bundle_text(&s, &records[0].1).await).await;
    s.stop().await;
}

/// Appends `event` through the store, as the operator's `auditex append` does; returns its seq.
async fn append_locally(s: &Server, event: &Value) -> u64 {
    let draft = ledger::draft::prepare_client_draft(
        event["event_id"].as_str().unwrap_or_default(),
        event["event_type"].as_str().unwrap_or_default(),
        &event["payload"],
        &BTreeMap::new(),
        rand::random,
    )
    .expect("draft");
    let receipts = s
        .store
        .append(&s.tenant, vec![draft])
        .await
        .expect("append");
    receipts[0].seq
}

/// Erasures and legal holds go through the subject endpoints only: an ingest key that posts one
/// to the records endpoints (alone, or inside a batch) is refused with 403 naming them, and
/// nothing of the request is appended; the value stays where it was.
async fn erasure_and_hold_records_are_refused_on_the_records_endpoints_appending_nothing(
    backend: Backend,
) {
    let s = Server::start(&backend).await;
    let privacy = privacy_key(&s).await;
    let decision = decided(&s, json!({"applicant_name": "Jane Q. Doe"})).await;
    let size = chain_size(&s).await;
    let erasure = json!({
        "event_id": event_id(),
        "event_type": "erasure",
        "payload": {"subject_ref": SUBJECT, "reason": "customer closed the account", "legal_basis": "GDPR Art. 17(1)(a)"},
    });
    let hold = json!({
        "event_id": event_id(),
        "event_type": "legal_hold",
        "payload": {"action": "placed", "subject_ref": SUBJECT, "reason": "litigation"},
    });
    let lift = json!({
        "event_id": event_id(),
        "event_type": "legal_hold",
        "payload": {"action": "lifted", "subject_ref": SUBJECT, "reason": "settled", "hold_seq": 0},
    });
    for (key, role) in [(&s.ingest, "ingest"), (&privacy, "privacy")] {
        for event in [&erasure, &hold, &lift] {
            let p = problem(
                s.post(key, "/v1/records", event).await,
                StatusCode::FORBIDDEN,
            )
            .await;
            let detail = p["detail"].as_str().unwrap_or_default();
            assert!(detail.contains(role), "names the caller's role: {detail}");
            if role == "ingest" {
                assert!(
                    detail.contains("/v1/subjects/{subject_ref}/erasure"),
                    "names the way: {detail}"
                );
            }
        }
        // Inside a batch of otherwise good records: the whole batch is refused.
        let batch = json!({"records": [
            decision_about(&event_id(), SUBJECT, json!({"applicant_name": "Jane Q. Doe"})),
            erasure,
        ]});
        problem(
            s.post(key, "/v1/records/batch", &batch).await,
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    assert_eq!(chain_size(&s).await, size, "nothing appended");
    assert!(
        bundle_text(&s, &decision).await.contains("Jane Q. Doe"),
        "the value is still stored"
    );
    s.stop().await;
}

/// The operator's local append (`auditex append`) may still append an erasure record, and the
/// store carries it out as it does a request's; the subject endpoint then finds it done.
async fn an_erasure_record_appended_locally_erases_too(backend: Backend) {
    let s = Server::start(&backend).await;
    let privacy = privacy_key(&s).await;
    let decision = decided(&s, json!({"applicant_name": "Jane Q. Doe"})).await;
    let salt = disclosed(&bundle_text(&s, &decision).await)[&(0, "applicant_name".to_owned())]
        .1
        .clone();
    let operator_erasure = json!({
        "event_id": event_id(),
        "event_type": "erasure",
        "payload": {"subject_ref": SUBJECT, "reason": "customer closed the account", "legal_basis": "GDPR Art. 17(1)(a)"},
    });
    let seq = append_locally(&s, &operator_erasure).await;
    let served = bundle_text(&s, &decision).await;
    assert!(!served.contains("Jane Q. Doe"));
    assert!(!served.contains(&salt));
    assert_bundle_verifies(&s, &served).await;
    let erased = s
        .store
        .erased_fields(&s.tenant, seq_of(0))
        .await
        .expect("erased");
    assert_eq!(erased.values().copied().collect::<Vec<_>>(), [seq]);
    // The erasure request finds it erased already: the operator's erasure answers.
    let (status, receipt) = erase(&s, &privacy, SUBJECT, &whole_subject()).await;
    assert_eq!(status, StatusCode::OK, "{receipt}");
    assert_eq!(
        (receipt["seq"].as_u64(), &receipt["erased"]),
        (Some(seq), &json!(0))
    );
    assert_eq!(chain_size(&s).await, seq + 1);
    s.stop().await;
}

/// With the erasure journal kept (as `auditex serve` always does), an erasure request is written
/// to it; a tenant whose journal cannot be carried out is held: its erasure requests answer 503
/// and append nothing.
async fn an_erasure_request_is_journaled_and_a_held_tenant_answers_503(backend: Backend) {
    let checkpoints = tempfile::tempdir().expect("tempdir");
    let tenant = crate::support::tenant_id("acme-bank");
    let with_dir = |db: &crate::support::TestDb| {
        let mut config = db.config();
        config.checkpoint_dir = Some(checkpoints.path().to_owned());
        config
    };
    let subject = crate::support::decision_payload("approved")["subject_ref"]
        .as_str()
        .expect("subject")
        .to_owned();
    let values = BTreeMap::from([("applicant_name".to_owned(), json!("Jane Q. Doe"))]);
    let db = crate::support::TestDb::new(&backend).await;
    let store = auditex::store::Store::open_with_workers(with_dir(&db))
        .await
        .expect("open");
    store.create_tenant(&tenant).await.expect("tenant");
    for _ in 0..2 {
        store
            .append(
                &tenant,
                vec![crate::support::draft(&event_id(), "approved", &values)],
            )
            .await
            .expect("append");
    }
    let s = Server::start_on(db, store, tenant.clone(), 1000, 1000).await;
    let privacy = privacy_key(&s).await;
    let mut first_only = whole_subject();
    first_only["event_ids"] = json!([s
        .store
        .record(&tenant, seq_of(0))
        .await
        .expect("read")
        .expect("record")
        .event_id
        .to_string()]);
    let (status, receipt) = erase(&s, &privacy, &subject, &first_only).await;
    assert_eq!(status, StatusCode::CREATED, "{receipt}");
    let journal = checkpoints.path().join("acme-bank.erasures");
    let journaled = std::fs::read_to_string(&journal).expect("the journal");
    assert_eq!(journaled.lines().count(), 1);
    assert!(journaled.contains(receipt["hash"].as_str().expect("hash")));

    let store = s.store.clone();
    let db = s.stop().await;
    store.shutdown().await;
    std::fs::write(&journal, format!("{journaled}not a record\n")).expect("spoil the journal");
    let store = auditex::store::Store::open_with_workers(with_dir(&db))
        .await
        .expect("reopen");
    let s = Server::start_on(db, store, tenant.clone(), 1000, 1000).await;
    let privacy = privacy_key(&s).await;
    let size = chain_size(&s).await;
    let resp = s
        .post(&privacy, &erasure_path(&subject), &whole_subject())
        .await;
    assert!(resp.headers().contains_key("retry-after"));
    let p = problem(resp, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(
        p["detail"]
            .as_str()
            .is_some_and(|d| d.contains("erasure journal")),
        "{p}"
    );
    assert_eq!(chain_size(&s).await, size, "nothing was appended");
    s.stop().await;
}

/// A subject whose records never carried an erasable value: its first whole-subject erasure is
/// recorded (erasing nothing), and every repeat, one after another or at once, answers with that
/// record's receipt and appends nothing.
async fn repeated_erasures_of_a_subject_without_values_append_one_record(backend: Backend) {
    let s = Server::start(&backend).await;
    let privacy = privacy_key(&s).await;
    let mut plain = decision_about(&event_id(), "subj-no-values", json!({}));
    plain.as_object_mut().expect("object").remove("erasable");
    append(&s, &plain).await;
    s.store
        .views_runner()
        .catch_up(&s.store)
        .await
        .expect("catch up");
    let (status, first) = erase(&s, &privacy, "subj-no-values", &whole_subject()).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["erased"], 0);
    let size = chain_size(&s).await;
    for _ in 0..2 {
        let (status, again) = erase(&s, &privacy, "subj-no-values", &whole_subject()).await;
        assert_eq!(status, StatusCode::OK, "{again}");
        assert_eq!(again["seq"], first["seq"]);
        assert_eq!(again["duplicate"], true);
    }
    let body = whole_subject();
    let (a, b, c) = tokio::join!(
        erase(&s, &privacy, "subj-no-values", &body),
        erase(&s, &privacy, "subj-no-values", &body),
        erase(&s, &privacy, "subj-no-values", &body)
    );
    for (status, receipt) in [a, b, c] {
        assert_eq!(status, StatusCode::OK, "{receipt}");
        assert_eq!(receipt["seq"], first["seq"]);
    }
    assert_eq!(chain_size(&s).await, size, "no repeat appended anything");
    s.stop().await;
}

backend_tests!(
    repeated_erasures_of_a_subject_without_values_append_one_record,
    an_erasure_request_is_journaled_and_a_held_tenant_answers_503,
    an_erasure_request_erases_the_subjects_values_and_a_repeat_appends_nothing,
    erasing_named_fields_or_records_leaves_the_subjects_other_values_readable,
    an_unknown_subject_and_another_tenants_subject_get_the_same_404,
    erasure_requests_that_cannot_be_carried_out_are_refused_naming_the_member,
    only_keys_of_the_privacy_role_may_erase_and_they_may_do_little_else,
    two_concurrent_identical_erasure_requests_append_one_erasure_record,
    an_erasure_racing_appends_for_the_subject_leaves_no_earlier_value_readable,
    erasure_and_hold_records_are_refused_on_the_records_endpoints_appending_nothing,
    an_erasure_record_appended_locally_erases_too,
);

/// Migration 0018 builds SQLite's `api_keys` again to widen its role check: every key of an
/// upgraded database survives it unchanged, `privacy` is admitted only from it on, and names
/// outside the list are still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_0018_keeps_every_api_key_and_admits_the_privacy_role_on_sqlite() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("upgraded.db").display()
    );
    let mut conn = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("connect");
    let mut migrator = sqlx::migrate::Migrator::new(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/migrations/sqlite"
    )))
    .await
    .expect("migrations");
    let all = migrator.migrations.clone();
    assert!(all.iter().any(|m| m.version == 18));
    migrator.migrations = all
        .iter()
        .filter(|m| m.version < 18)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    migrator.run(&mut conn).await.expect("migrate to 0017");
    sqlx::query("INSERT INTO tenants (tenant_id, created_at_us) VALUES ('acme-bank', 1)")
        .execute(&mut conn)
        .await
        .expect("tenant");
    let insert = |id: &'static str, role: &'static str| {
        sqlx::query(
            "INSERT INTO api_keys (key_id, tenant_id, role, secret_hash, label, created_at_us, expires_at_us, revoked_at_us, last_used_at_us)
             VALUES (?, 'acme-bank', ?, zeroblob(32), 'label ' || ?, 7, 8, NULL, 9)",
        )
        .bind(id)
        .bind(role)
        .bind(id)
    };
    for (id, role) in [
        ("00000000000000a1", "ingest"),
        ("00000000000000a2", "verify"),
    ] {
        insert(id, role)
            .execute(&mut conn)
            .await
            .expect("an old key");
    }
    assert!(
        insert("00000000000000a3", "privacy")
            .execute(&mut conn)
            .await
            .is_err(),
        "not before 0018"
    );
    type Row = (
        String,
        String,
        String,
        Vec<u8>,
        String,
        i64,
        Option<i64>,
        Option<i64>,
        Option<i64>,
    );
    let select = "SELECT key_id, tenant_id, role, secret_hash, label, created_at_us, expires_at_us, revoked_at_us, last_used_at_us FROM api_keys ORDER BY key_id";
    let before: Vec<Row> = sqlx::query_as(select)
        .fetch_all(&mut conn)
        .await
        .expect("keys");
    migrator.migrations = all;
    migrator.run(&mut conn).await.expect("migrate to 0018");
    let after: Vec<Row> = sqlx::query_as(select)
        .fetch_all(&mut conn)
        .await
        .expect("keys");
    assert_eq!(after, before, "every key survives unchanged");
    assert_eq!(after.len(), 2);
    insert("00000000000000a3", "privacy")
        .execute(&mut conn)
        .await
        .expect("a privacy key");
    assert!(
        insert("00000000000000a4", "admin")
            .execute(&mut conn)
            .await
            .is_err(),
        "other names stay refused"
    );
    let indexed: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'api_keys_by_tenant'",
    )
    .fetch_one(&mut conn)
    .await
    .expect("index");
    assert_eq!(indexed, 1, "the tenant index is built again");
}
