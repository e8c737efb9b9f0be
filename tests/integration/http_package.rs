//! The subject access package (GDPR Art. 15): `GET /v1/subjects/{subject_ref}/package` over
//! HTTPS, `auditex verify package` on what it serves and on tampered copies, the printable HTML
//! rendering, roles, tenant isolation, and the refusal while the subject index lags.

use std::path::{Path, PathBuf};

use auditex::store::subjects::SubjectErasure;
use ledger::package::{PackageVerifier, verify_package};
use ledger::record::FieldName;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::http::{Server, decision, event_id};
use crate::support::{Backend, TestDb, backend_tests, tenant_id};

const SUBJECT: &str = "subj-5d41402a";
const OTHER: &str = "subj-other";
const HOSTILE: &str = "<script>alert(1)</script>";

fn follow_up(event_type: &str, payload: Value) -> Value {
    json!({"event_id": event_id(), "event_type": event_type, "payload": payload})
}

/// What `populate` appended.
struct Ledger {
    first: String,
    other: String,
    erasure_seq: u64,
}

/// Two decisions of the subject (the first with a name and an email, the second reviewed by a
/// person before it took effect, overridden, with a hostile note), one of another subject with
/// its own follow-up, and an erasure of the subject's email; then a checkpoint, views caught up.
async fn populate(s: &Server) -> Ledger {
    let (first, second, other) = (event_id(), event_id(), event_id());
    let mut a = decision(&first);
    a["erasable"] = json!({"applicant_name": "Jane Q. Doe", "email": "jane@example.org"});
    a["payload"]["reason_codes"] = json!(["income_verified", "low_utilisation"]);
    let mut b = decision(&second);
    b["payload"]["outcome"] = json!("declined");
    b["payload"]["score"] = json!(0.12);
    b["payload"]["oversight_mode"] = json!("human_in_the_loop");
    b["payload"]["explanation"] = json!("The requested limit exceeds the affordability estimate.");
    b["erasable"] = json!({"applicant_note": HOSTILE});
    let mut c = decision(&other);
    c["payload"]["subject_ref"] = json!(OTHER);
    c["erasable"] = json!({"applicant_name": "Someone Else"});
    let records = vec![
        a,
        b,
        c,
        follow_up(
            "human_review",
            json!({"decision_id": first, "reviewer": "analyst-17", "action": "confirmed"}),
        ),
        follow_up(
            "override",
            json!({"decision_id": second, "reviewer": "officer-3", "new_outcome": "approved", "reason": "income verified by payslips"}),
        ),
        follow_up(
            "override",
            json!({"decision_id": other, "reviewer": "officer-3", "new_outcome": "declined", "reason": "not this subject"}),
        ),
        follow_up(
            "contest",
            json!({"decision_id": first, "statement": "my income is higher"}),
        ),
        follow_up(
            "explanation_request",
            json!({"decision_id": second, "requested_by": "the applicant", "channel": "branch"}),
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
    let outcome = s
        .store
        .erase_subject(
            &s.tenant,
            SubjectErasure {
                subject_ref: SUBJECT.to_owned(),
                event_ids: None,
                fields: Some(vec![FieldName::parse("email").expect("name")]),
                reason: "the applicant asked us to delete their email address".to_owned(),
                legal_basis: "GDPR Art. 17(1)(a)".to_owned(),
            },
        )
        .await
        .expect("erasure");
    s.store.publish_checkpoints().await.expect("checkpoint");
    s.store
        .views_runner()
        .catch_up(&s.store)
        .await
        .expect("catch up");
    Ledger {
        first,
        other,
        erasure_seq: outcome.receipt.seq,
    }
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

/// `auditex verify package FILE --key-history H --json`: exit code and output.
fn verify_file(file: &Path, history: &Path) -> (i32, Value) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_auditex"))
        .args(["verify", "package"])
        .arg(file)
        .arg("--key-history")
        .arg(history)
        .arg("--json")
        .output()
        .expect("run auditex verify");
    let value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().expect("exit code"), value)
}

/// The package `text` and the key history the service publishes, written into `dir` for
/// `auditex verify`: `(package file, key history file)`.
async fn offline_copy(s: &Server, text: &str, dir: &Path) -> (PathBuf, PathBuf) {
    let history = dir.join("history.json");
    let keys = s.get(&s.read, "/v1/keys").await.text().await.expect("keys");
    std::fs::write(&history, keys).expect("write");
    let file = dir.join("package.jsonl");
    std::fs::write(&file, text).expect("write");
    (file, history)
}

async fn package_text(s: &Server, subject: &str) -> String {
    let resp = s
        .get(&s.read, &format!("/v1/subjects/{subject}/package"))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    resp.text().await.expect("body")
}

async fn a_subjects_package_holds_their_records_values_and_erasures_and_verifies_offline(
    backend: Backend,
) {
    let s = Server::start(&backend).await;
    let l = populate(&s).await;
    let resp = s
        .get(&s.read, &format!("/v1/subjects/{SUBJECT}/package"))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"].to_str().ok(),
        Some("application/x-ndjson")
    );
    assert_eq!(
        resp.headers()["content-disposition"].to_str().ok(),
        Some("attachment; filename=\"acme-bank-subject-package.jsonl\"")
    );
    let text = resp.text().await.expect("body");
    let all = lines(&text);
    let header = all[0].as_object().expect("header");
    let mut members: Vec<&str> = header.keys().map(String::as_str).collect();
    members.sort_unstable();
    assert_eq!(
        members,
        [
            "checkpoint",
            "format",
            "keys",
            "origin",
            "subject_ref",
            "tenant",
            "verifier_keys"
        ]
    );
    assert_eq!(header["format"], "auditex-subject-package/v1");
    assert_eq!(header["subject_ref"], SUBJECT);
    let entries = &all[1..all.len() - 1];
    let types: Vec<&str> = entries
        .iter()
        .map(|e| e["record"]["event_type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        types,
        [
            "decision",
            "decision",
            "human_review",
            "override",
            "contest",
            "explanation_request",
            "erasure"
        ],
        "the subject's decisions, their follow-ups and the erasure; nothing of {OTHER}"
    );
    assert_eq!(all[all.len() - 1], json!({"end": {"records": 7}}));
    assert!(
        !text.contains(&l.other),
        "another subject's decision leaked"
    );
    assert!(!text.contains("Someone Else"));
    assert!(!text.contains("jane@example.org"), "an erased value");
    let first = &entries[0];
    assert_eq!(first["record"]["event_id"], l.first.as_str());
    assert_eq!(
        first["erasable_values"]["applicant_name"]["value"],
        "Jane Q. Doe"
    );
    assert_eq!(
        first["erased"],
        json!({"email": {"erasure_seq": l.erasure_seq}})
    );
    assert_eq!(entries[6]["record"]["seq"], l.erasure_seq);
    assert_eq!(
        entries[1]["erasable_values"]["applicant_note"]["value"],
        HOSTILE
    );
    let seqs: Vec<u64> = entries
        .iter()
        .map(|e| e["record"]["seq"].as_u64().expect("seq"))
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");

    // Offline, with the key history the service publishes.
    let dir = tempfile::tempdir().expect("tempdir");
    let (file, history) = offline_copy(&s, &text, dir.path()).await;
    let (code, out) = verify_file(&file, &history);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["evidence"], "package");
    assert_eq!(out["records"], 7);
    assert!(
        out["proven"]
            .to_string()
            .contains("erasable values: 2 matched their commitments, 0 withheld, 1 erased"),
        "{out}"
    );
    // The kind is recognized without naming it.
    let sniffed = std::process::Command::new(env!("CARGO_BIN_EXE_auditex"))
        .arg("verify")
        .arg(&file)
        .arg("--key-history")
        .arg(&history)
        .output()
        .expect("run");
    assert!(sniffed.status.success());

    // Tampered copies fail, naming the line and what is wrong.
    let raw: Vec<&str> = text.lines().collect();
    let rewrite = |name: &str, new: Vec<String>| {
        let path = dir.path().join(name);
        std::fs::write(&path, new.join("\n") + "\n").expect("write");
        verify_file(&path, &history)
    };
    let owned = |v: &[&str]| v.iter().map(|l| (*l).to_owned()).collect::<Vec<_>>();

    let mut changed = owned(&raw);
    changed[1] = changed[1].replace("Jane Q. Doe", "Jane Q. Roe");
    let (code, out) = rewrite("changed.jsonl", changed);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out["failure"]["kind"], "erasable_value", "{out}");
    assert_eq!(out["failure"]["line"], 2, "{out}");

    let mut dropped = owned(&raw);
    dropped.remove(3);
    let (code, out) = rewrite("dropped.jsonl", dropped);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out["failure"]["kind"], "count_mismatch", "{out}");
    assert_eq!(out["failure"]["line"], 8, "{out}");

    let mut cut = owned(&raw);
    cut.pop();
    let (code, out) = rewrite("cut.jsonl", cut);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out["failure"]["kind"], "missing_trailer", "{out}");

    let mut reordered = owned(&raw);
    reordered.swap(3, 4);
    let (code, out) = rewrite("reordered.jsonl", reordered);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out["failure"]["kind"], "out_of_order", "{out}");
    assert_eq!(out["failure"]["line"], 5, "{out}");

    let mut appended = owned(&raw);
    appended.push(raw[raw.len() - 1].to_owned());
    let (code, out) = rewrite("appended.jsonl", appended);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out["failure"]["kind"], "after_trailer", "{out}");
    assert_eq!(out["failure"]["line"], 10, "{out}");

    let mut widened = owned(&raw);
    widened[0] = widened[0].replacen('{', "{\"from_seq\":0,", 1);
    let (code, out) = rewrite("widened.jsonl", widened);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out["failure"]["kind"], "malformed_header", "{out}");
    assert_eq!(out["failure"]["line"], 1, "{out}");

    let crlf = dir.path().join("crlf.jsonl");
    std::fs::write(&crlf, text.replace('\n', "\r\n")).expect("write");
    let (code, out) = verify_file(&crlf, &history);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out["failure"]["kind"], "control_character", "{out}");
    assert_eq!(out["failure"]["line"], 1, "{out}");
    let unended = dir.path().join("unended.jsonl");
    std::fs::write(&unended, text.trim_end_matches('\n')).expect("write");
    let (code, out) = verify_file(&unended, &history);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out["failure"]["kind"], "missing_final_newline", "{out}");
    assert_eq!(out["failure"]["line"], 9, "{out}");

    // Another subject's decision, proven in the same checkpoint, slipped in at its place.
    let others = package_text(&s, OTHER).await;
    let foreign = others
        .lines()
        .nth(1)
        .expect("the other decision")
        .to_owned();
    let foreign_seq = lines(&foreign)[0]["record"]["seq"].as_u64().expect("seq");
    let mut inserted = owned(&raw);
    let at = 1 + seqs.iter().filter(|seq| **seq < foreign_seq).count();
    inserted.insert(at, foreign);
    let (code, out) = rewrite("inserted.jsonl", inserted);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out["failure"]["kind"], "not_concerning_subject", "{out}");
    assert_eq!(out["failure"]["line"], at as u64 + 1, "{out}");
    assert_eq!(out["failure"]["seq"], foreign_seq, "{out}");
    assert_eq!(out["failure"]["event_id"], l.other.as_str(), "{out}");

    // The other subject's follow-up too, even with its own decision left out.
    let foreign_override = others.lines().nth(2).expect("the override").to_owned();
    let override_seq = lines(&foreign_override)[0]["record"]["seq"]
        .as_u64()
        .expect("seq");
    let mut inserted = owned(&raw);
    let at = 1 + seqs.iter().filter(|seq| **seq < override_seq).count();
    inserted.insert(at, foreign_override);
    let (code, out) = rewrite("inserted-follow-up.jsonl", inserted);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out["failure"]["kind"], "not_concerning_subject", "{out}");
    assert_eq!(out["failure"]["seq"], override_seq, "{out}");

    // The same checks in the library, in memory.
    let trusted: Vec<ledger::note::VerifierKey> = header["verifier_keys"]
        .as_array()
        .expect("vkeys")
        .iter()
        .map(|v| ledger::note::VerifierKey::parse(v.as_str().expect("text")).expect("vkey"))
        .collect();
    let report = verify_package(&text, &trusted).expect("verifies");
    assert_eq!(
        (report.records, report.decisions, report.erasures),
        (7, 2, 1)
    );

    // Another subject's erasure, named by a forged mark on one of this subject's fields, is not
    // this subject's record: the mark cannot smuggle it in.
    let other_erasure = s
        .store
        .erase_subject(
            &s.tenant,
            SubjectErasure {
                subject_ref: OTHER.to_owned(),
                event_ids: None,
                fields: None,
                reason: "the other person asked".to_owned(),
                legal_basis: "GDPR Art. 17(1)(a)".to_owned(),
            },
        )
        .await
        .expect("erasure of the other subject")
        .receipt
        .seq;
    s.store.publish_checkpoints().await.expect("checkpoint");
    s.store
        .views_runner()
        .catch_up(&s.store)
        .await
        .expect("catch up");
    let now = package_text(&s, SUBJECT).await;
    let foreign_erasure = package_text(&s, OTHER)
        .await
        .lines()
        .find(|line| lines(line)[0]["record"]["seq"].as_u64() == Some(other_erasure))
        .expect("the other subject's erasure")
        .to_owned();
    let mut forged: Vec<String> = now.lines().map(str::to_owned).collect();
    let mut first: Value = serde_json::from_str(&forged[1]).expect("entry");
    let values = first["erasable_values"]
        .as_object_mut()
        .expect("the first decision keeps a value");
    let field = values.keys().next().expect("a stored field").clone();
    values.remove(&field);
    first["erased"] = json!({ field: {"erasure_seq": other_erasure} });
    forged[1] = first.to_string();
    let trailer = forged.len() - 1;
    forged.insert(trailer, foreign_erasure);
    forged[trailer + 1] = json!({"end": {"records": trailer}}).to_string();
    let (code, out) = rewrite("foreign-erasure.jsonl", forged.clone());
    assert_eq!(code, 1, "{out}");
    assert_eq!(out["failure"]["kind"], "not_concerning_subject", "{out}");
    assert_eq!(out["failure"]["seq"], other_erasure, "{out}");
    let forged_text = forged.join("\n") + "\n";
    assert!(verify_package(&forged_text, &trusted).is_err());
    // The in-memory check reads lines as the streaming readers do.
    assert!(verify_package(&now.replace('\n', "\r\n"), &trusted).is_err());
    assert!(verify_package(now.trim_end_matches('\n'), &trusted).is_err());
    assert!(verify_package(&now, &trusted).is_ok());
    s.stop().await;
}

async fn the_html_rendering_speaks_plainly_and_escapes_what_it_shows(backend: Backend) {
    let s = Server::start(&backend).await;
    let l = populate(&s).await;
    let resp = s
        .get(
            &s.read,
            &format!("/v1/subjects/{SUBJECT}/package?format=html"),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"].to_str().ok(),
        Some("text/html; charset=utf-8")
    );
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(
        csp.starts_with("default-src 'none'; style-src 'sha256-"),
        "{csp}"
    );
    let page = resp.text().await.expect("page");
    for expected in [
        "a person reviewed the decision before it took effect",
        "the decision took effect automatically while a person monitored it and could intervene",
        "The outcome was changed to <strong>approved</strong>",
        "income verified by payslips",
        "Reviewed by analyst-17: confirmed",
        "The decision was contested. Statement: my income is higher",
        "An explanation of the decision was requested by the applicant (via branch)",
        "The requested limit exceeds the affordability estimate.",
        "income_verified",
        "credit-limit",
        "Jane Q. Doe",
        "GDPR Art. 17(1)(a)",
        "the applicant asked us to delete their email address",
        "How to verify this document",
        "auditex verify package",
        "@media print",
        "&lt;script&gt;alert(1)&lt;/script&gt;",
    ] {
        assert!(page.contains(expected), "missing {expected:?} in\n{page}");
    }
    assert!(!page.contains(HOSTILE), "a stored value was not escaped");
    assert!(!page.contains("<script"), "the page runs no script");
    assert!(!page.contains("jane@example.org"), "an erased value");
    assert!(!page.contains("Someone Else"), "another subject's value");
    // The other subject's override names its reason; the page must not show it.
    assert!(
        !page.contains("not this subject"),
        "another subject's follow-up"
    );
    assert!(page.contains(&format!("#{}", l.erasure_seq)));

    // A browser asking for HTML gets the page too.
    let resp = s
        .client
        .get(s.url(&format!("/v1/subjects/{SUBJECT}/package")))
        .bearer_auth(&s.read)
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .expect("request");
    assert_eq!(
        resp.headers()["content-type"].to_str().ok(),
        Some("text/html; charset=utf-8")
    );
    s.stop().await;
}

async fn unknown_foreign_and_malformed_subjects_and_wrong_roles_are_refused(backend: Backend) {
    let s = Server::start(&backend).await;
    populate(&s).await;
    // Another tenant's subject looks exactly like one that does not exist.
    let other_tenant = tenant_id("other-bank");
    s.store.create_tenant(&other_tenant).await.expect("tenant");
    let mut theirs = decision(&event_id());
    theirs["payload"]["subject_ref"] = json!("subj-theirs");
    let draft = ledger::draft::prepare_client_draft(
        theirs["event_id"].as_str().expect("id"),
        "decision",
        &theirs["payload"],
        &std::collections::BTreeMap::new(),
        rand::random,
    )
    .expect("draft");
    s.store
        .append(&other_tenant, vec![draft])
        .await
        .expect("append");
    s.store.publish_checkpoints().await.expect("checkpoint");
    s.store
        .views_runner()
        .catch_up(&s.store)
        .await
        .expect("catch up");
    let mut bodies = Vec::new();
    for subject in ["subj-theirs", "subj-nobody"] {
        let resp = s
            .get(&s.read, &format!("/v1/subjects/{subject}/package"))
            .await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{subject}");
        let mut body: Value = resp.json().await.expect("problem");
        body.as_object_mut().map(|o| o.remove("instance"));
        bodies.push(body);
    }
    assert_eq!(bodies[0], bodies[1]);
    assert_eq!(bodies[0]["detail"], "unknown subject");

    let long = "s".repeat(1025);
    for path in [
        format!("/v1/subjects/{long}/package"),
        format!("/v1/subjects/{SUBJECT}/package?format=pdf"),
        format!("/v1/subjects/{SUBJECT}/package?from=0"),
    ] {
        let resp = s.get(&s.read, &path).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{path}");
    }
    for key in [&s.ingest, &s.verify] {
        let resp = s.get(key, &format!("/v1/subjects/{SUBJECT}/package")).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    }
    s.stop().await;
}

/// While the subject index has not applied every record of the latest checkpoint, a package
/// would miss records: it is refused with 503 and Retry-After, and served once the views caught
/// up.
async fn a_package_is_refused_while_the_subject_index_lags_the_checkpoint(backend: Backend) {
    let s = Server::start(&backend).await;
    populate(&s).await;
    s.store.views_runner().stop();
    // Let the runner see the stop before anything new arrives.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut late = decision(&event_id());
    late["payload"]["subject_ref"] = json!(SUBJECT);
    let resp = s.post(&s.ingest, "/v1/records", &late).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    s.store.publish_checkpoints().await.expect("checkpoint");
    let resp = s
        .get(&s.read, &format!("/v1/subjects/{SUBJECT}/package"))
        .await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let body: Value = resp.json().await.expect("problem");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d
                .contains("records of the latest checkpoint; an access package must be complete")),
        "{body}"
    );
    s.store
        .views_runner()
        .catch_up(&s.store)
        .await
        .expect("catch up");
    let text = package_text(&s, SUBJECT).await;
    assert_eq!(
        lines(&text).last().cloned(),
        Some(json!({"end": {"records": 8}}))
    );
    s.stop().await;
}

/// A subject with thousands of records: the package is written a page of the subject index at a
/// time (the writer never holds more than one page of entries) and verifies line by line.
async fn a_subject_with_thousands_of_records_streams_a_complete_package(backend: Backend) {
    const RECORDS: usize = 2_500;
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("acme-bank").await;
    let mut drafts = Vec::new();
    for i in 0..RECORDS {
        let id = event_id();
        let mut d = decision(&id);
        // Every tenth decision is another subject's.
        if i % 10 == 9 {
            d["payload"]["subject_ref"] = json!(OTHER);
        }
        let erasable: std::collections::BTreeMap<String, Value> =
            serde_json::from_value(d["erasable"].clone()).expect("map");
        drafts.push(
            ledger::draft::prepare_client_draft(
                &id,
                "decision",
                &d["payload"],
                &erasable,
                rand::random,
            )
            .expect("draft"),
        );
    }
    for chunk in drafts.chunks(500) {
        store.append(&tenant, chunk.to_vec()).await.expect("append");
    }
    store.publish_checkpoints().await.expect("checkpoint");
    store
        .views_runner()
        .catch_up(&store)
        .await
        .expect("catch up");
    let plan = store.package_plan(&tenant, SUBJECT).await.expect("plan");
    let mut out = Vec::new();
    let summary = store.write_package(&plan, &mut out).await.expect("write");
    let expected = (RECORDS - RECORDS / 10) as u64;
    assert_eq!(summary.records, expected);
    assert_eq!(summary.bytes, out.len() as u64);
    let text = String::from_utf8(out).expect("utf-8");
    let trusted: Vec<ledger::note::VerifierKey> = plan
        .header
        .verifier_keys
        .iter()
        .map(|v| ledger::note::VerifierKey::parse(v).expect("vkey"))
        .collect();
    let mut verifier = PackageVerifier::new(&trusted);
    for line in text.lines() {
        verifier.push_line(line).expect("each line verifies");
    }
    let report = verifier.finish().expect("complete");
    assert_eq!(report.records, expected);
    assert_eq!(report.values_verified, expected);
    store.shutdown().await;
}

/// One record as large as the largest request the service accepts (its erasable value nearly
/// fills the body) gives a package line longer than that body, and the package still verifies
/// offline: the verifier's line limit leaves room for any record the service accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_as_large_as_the_largest_request_gives_a_package_that_verifies() {
    let s = Server::start(&Backend::Sqlite).await;
    let mut body = decision(&event_id());
    body["payload"]["subject_ref"] = json!("subj-large");
    body["erasable"] = json!({ "applicant_name": "" });
    let room =
        auditex::http::REQUEST_BODY_BYTES_MAX - serde_json::to_vec(&body).expect("json").len();
    body["erasable"]["applicant_name"] = json!("x".repeat(room));
    assert_eq!(
        serde_json::to_vec(&body).expect("json").len(),
        auditex::http::REQUEST_BODY_BYTES_MAX
    );
    let resp = s.post(&s.ingest, "/v1/records", &body).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    s.store.publish_checkpoints().await.expect("checkpoint");
    s.store
        .views_runner()
        .catch_up(&s.store)
        .await
        .expect("catch up");
    let text = package_text(&s, "subj-large").await;
    assert!(
        text.lines()
            .any(|l| l.len() > auditex::http::REQUEST_BODY_BYTES_MAX),
        "the record's line is longer than the request was"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let (file, history) = offline_copy(&s, &text, dir.path()).await;
    let (code, out) = verify_file(&file, &history);
    assert_eq!(code, 0, "{out}");
    s.stop().await;
}

backend_tests!(
    a_subjects_package_holds_their_records_values_and_erasures_and_verifies_offline,
    the_html_rendering_speaks_plainly_and_escapes_what_it_shows,
    unknown_foreign_and_malformed_subjects_and_wrong_roles_are_refused,
    a_package_is_refused_while_the_subject_index_lags_the_checkpoint,
    a_subject_with_thousands_of_records_streams_a_complete_package,
);
