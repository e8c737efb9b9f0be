//! The subject access package as the API and the portal serve it: the JSON Lines download,
//! streamed from the store's package writer, and the printable HTML rendering in plain language
//! a bank can send to the person (GDPR Art. 15 and 22, EU AI Act Art. 86; FORMAT.md section
//! 12b). Both `GET /v1/subjects/{subject_ref}/package` and the portal's Subjects page answer
//! with these, so the two never differ.

use std::collections::{BTreeMap, HashMap};

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use ledger::bundle::BundleEntry;
use ledger::record::EventType;
use maud::{DOCTYPE, Markup, html};
use serde_json::{Map, Value};
use sha2::Digest as _;

use super::AppState;
use crate::store::package::PackagePlan;

/// Most records the HTML rendering shows: it groups follow-ups under their decisions, so it holds
/// the subject's entries in memory, unlike the JSON Lines package, which is always complete.
pub const HTML_RECORDS_MAX: usize = 10_000;

/// Bytes buffered between the package writer and the response body.
const PACKAGE_PIPE_BYTES: usize = 256 * 1024;

/// The rendering's style sheet, inline so the page is one printable file; the page's
/// Content-Security-Policy allows exactly this sheet and nothing else (no script at all).
const STYLE: &str = "body{font:15px/1.5 system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#111}\
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #999}h3{font-size:1.05rem;margin-bottom:.25rem}\
table{border-collapse:collapse;width:100%;margin:.5rem 0}th,td{border:1px solid #bbb;padding:.25rem .5rem;text-align:left;vertical-align:top}\
code,.value{font-family:ui-monospace,monospace;word-break:break-all}.notice{border:1px solid #c60;padding:.5rem}\
section.decision{border:1px solid #ccc;padding:.5rem 1rem;margin:1rem 0;break-inside:avoid}\
@media print{body{margin:0;max-width:none;font-size:11pt}a{color:inherit;text-decoration:none}section.decision{border-color:#000}h2{break-after:avoid}}";

/// The package as a JSON Lines attachment, written by a task into the response body as it is
/// read (the portal's download serves the same response).
pub(crate) fn jsonl_response(state: &AppState, plan: PackagePlan) -> Response {
    let (mut writer, reader) = tokio::io::duplex(PACKAGE_PIPE_BYTES);
    let store = state.store.clone();
    let tenant = plan.header.tenant.clone();
    let filename = format!("attachment; filename=\"{tenant}-subject-package.jsonl\"");
    tokio::spawn(async move {
        if let Err(e) = store.write_package(&plan, &mut writer).await {
            tracing::warn!(tenant = %tenant, error = %e, "subject package stopped early");
        }
    });
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(reader));
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    if let Ok(v) = HeaderValue::from_str(&filename) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

/// Reads the package's entries (up to [`HTML_RECORDS_MAX`]) and renders them (also the portal's
/// printable download), with the page's own Content-Security-Policy.
pub(crate) async fn render(
    state: &AppState,
    plan: &PackagePlan,
) -> Result<Response, crate::store::EvidenceError> {
    let mut entries = Vec::new();
    let mut truncated = false;
    let mut pages = state.store.package_entries(plan);
    while let Some(page) = pages.next_page().await? {
        for entry in page {
            if entries.len() == HTML_RECORDS_MAX {
                truncated = true;
                break;
            }
            entries.push(entry);
        }
        if truncated {
            break;
        }
    }
    let page = render_page(plan, &entries, truncated);
    let mut response = page.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&content_security_policy()) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

/// Nothing may load or run but the page's own style sheet.
fn content_security_policy() -> String {
    let digest = sha2::Sha256::digest(STYLE.as_bytes());
    let hash = base64::engine::general_purpose::STANDARD.encode(digest);
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

/// One record's payload as an object (a verified record's payload always is one).
fn payload(entry: &BundleEntry) -> Map<String, Value> {
    match entry.record.payload.to_value() {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

fn member<'a>(payload: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    payload.get(name).and_then(Value::as_str)
}

/// A JSON value as a person reads it: strings without quotes, everything else as JSON.
fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An oversight mode (FORMAT.md section 7) in words.
fn oversight_in_words(mode: &str) -> &'static str {
    match mode {
        "automated" => {
            "the decision was made automatically; no person reviewed it before it took effect"
        }
        "human_in_the_loop" => "a person reviewed the decision before it took effect",
        "human_on_the_loop" => {
            "the decision took effect automatically while a person monitored it and could intervene"
        }
        "human_in_command" => {
            "a person oversaw the system and decided whether and how its output was used"
        }
        _ => "the oversight mode is not one this page knows",
    }
}

/// A follow-up of a decision in plain language.
fn follow_up_in_words(entry: &BundleEntry) -> Markup {
    let p = payload(entry);
    let get = |name: &str| member(&p, name);
    match entry.record.event_type {
        EventType::HumanReview => html! {
            "Reviewed by " (get("reviewer").unwrap_or("a reviewer"))
            ": " (get("action").unwrap_or("reviewed"))
            @if let Some(reason) = get("reason") { ". Reason: " (reason) }
        },
        EventType::Override => html! {
            "The outcome was changed to " strong { (get("new_outcome").unwrap_or("another outcome")) }
            @if let Some(score) = p.get("new_score") { " (new score " (shown(score)) ")" }
            " by " (get("reviewer").unwrap_or("a reviewer"))
            @if let Some(reason) = get("reason") { ". Reason: " (reason) }
        },
        EventType::Contest => html! {
            "The decision was contested"
            @if let Some(channel) = get("channel") { " (via " (channel) ")" }
            @if let Some(statement) = get("statement") { ". Statement: " (statement) }
        },
        EventType::ExplanationRequest => html! {
            "An explanation of the decision was requested"
            @if let Some(by) = get("requested_by") { " by " (by) }
            @if let Some(channel) = get("channel") { " (via " (channel) ")" }
        },
        EventType::Submission => html! {
            "The decision was reported to " (get("regulator").unwrap_or("a regulator"))
            @if let Some(reference) = get("reference") { " (reference " (reference) ")" }
        },
        other => html! { "A " (other.as_str()) " record" },
    }
}

/// What an erasure record erased, its basis and reason.
struct ErasureFacts {
    captured: String,
    legal_basis: Option<String>,
    reason: Option<String>,
}

/// The printable page.
fn render_page(plan: &PackagePlan, entries: &[BundleEntry], truncated: bool) -> Markup {
    let header = &plan.header;
    let decisions: Vec<&BundleEntry> = entries
        .iter()
        .filter(|e| {
            e.record.event_type == EventType::Decision
                && member(&payload(e), "subject_ref") == Some(header.subject_ref.as_str())
        })
        .collect();
    let index: HashMap<String, usize> = decisions
        .iter()
        .enumerate()
        .map(|(i, d)| (d.record.event_id.to_string(), i))
        .collect();
    // Follow-ups under each decision they link to.
    let mut follow_ups: Vec<Vec<&BundleEntry>> = vec![Vec::new(); decisions.len()];
    let mut erasures: BTreeMap<u64, (&BundleEntry, ErasureFacts)> = BTreeMap::new();
    let mut others: Vec<&BundleEntry> = Vec::new();
    for entry in entries {
        let p = payload(entry);
        match entry.record.event_type {
            EventType::Decision => {}
            EventType::Erasure => {
                erasures.insert(
                    entry.record.seq.get(),
                    (
                        entry,
                        ErasureFacts {
                            captured: entry.record.captured_at_us.to_rfc3339(),
                            legal_basis: member(&p, "legal_basis").map(str::to_owned),
                            reason: member(&p, "reason").map(str::to_owned),
                        },
                    ),
                );
            }
            event_type => {
                let linked = ledger::payload::linked_decisions(event_type, &p);
                let mut placed = false;
                for id in linked {
                    if let Some(i) = index.get(&id.to_string()) {
                        follow_ups[*i].push(entry);
                        placed = true;
                    }
                }
                if !placed {
                    others.push(entry);
                }
            }
        }
    }
    let held: Vec<(
        &BundleEntry,
        &ledger::record::FieldName,
        &ledger::record::ErasableValue,
    )> = entries
        .iter()
        .flat_map(|e| {
            e.erasable_values
                .iter()
                .flatten()
                .map(move |(field, value)| (e, field, value))
        })
        .collect();
    let erased: Vec<(&BundleEntry, &ledger::record::FieldName, u64)> = entries
        .iter()
        .flat_map(|e| {
            e.erased
                .iter()
                .flatten()
                .map(move |(field, by)| (e, field, by.erasure_seq.get()))
        })
        .collect();
    let generated = ledger::types::CaptureTime::from_unix_micros(plan.checkpoint_at_us)
        .map_or_else(|_| String::new(), ledger::types::CaptureTime::to_rfc3339);
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Your data and the automated decisions about you — " (header.tenant.as_str()) }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                header {
                    h1 { "Your data and the automated decisions about you" }
                    p {
                        "This document answers an access request (GDPR Art. 15, PIPEDA). It lists every record that "
                        strong { (header.tenant.as_str()) }
                        " holds in its decision ledger about the person it knows as "
                        strong { code { (header.subject_ref) } }
                        ", as of the ledger's signed checkpoint of "
                        (plan.checkpoint_size) " records"
                        @if !generated.is_empty() { " (published " (generated) ")" }
                        "."
                    }
                    @if truncated {
                        p.notice role="status" {
                            "This page shows the first " (HTML_RECORDS_MAX)
                            " records only. The complete package, with every record, is the JSON Lines download of the same address without format=html."
                        }
                    }
                }
                main {
                    section aria-labelledby="decisions" {
                        h2 id="decisions" { "Decisions (" (decisions.len()) ")" }
                        @if decisions.is_empty() {
                            p { "No decision about you is recorded." }
                        }
                        @for (i, d) in decisions.iter().enumerate() {
                            (decision_section(d, &follow_ups[i]))
                        }
                        @if !others.is_empty() {
                            h3 { "Other records" }
                            ul {
                                @for e in &others {
                                    li { (e.record.captured_at_us.to_rfc3339()) ": " (follow_up_in_words(e)) }
                                }
                            }
                        }
                    }
                    section aria-labelledby="data" {
                        h2 id="data" { "Personal data held (" (held.len()) ")" }
                        @if held.is_empty() {
                            p { "No personal data is held beside these records." }
                        } @else {
                            table {
                                thead { tr { th scope="col" { "Record" } th scope="col" { "Recorded" } th scope="col" { "Field" } th scope="col" { "Value" } } }
                                tbody {
                                    @for (e, field, value) in &held {
                                        tr {
                                            td { (e.record.event_type.as_str()) " #" (e.record.seq.get()) }
                                            td { (e.record.captured_at_us.to_rfc3339()) }
                                            td { (field.as_str()) }
                                            td.value { (shown(&value.value)) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    section aria-labelledby="erased" {
                        h2 id="erased" { "Personal data erased (" (erased.len()) ")" }
                        @if erased.is_empty() {
                            p { "Nothing has been erased." }
                        } @else {
                            table {
                                thead { tr { th scope="col" { "Record" } th scope="col" { "Field" } th scope="col" { "Erased on" } th scope="col" { "Legal basis" } th scope="col" { "Reason" } } }
                                tbody {
                                    @for (e, field, by) in &erased {
                                        @let facts = erasures.get(by).map(|(_, f)| f);
                                        tr {
                                            td { (e.record.event_type.as_str()) " #" (e.record.seq.get()) }
                                            td { (field.as_str()) }
                                            td { (facts.map_or("(erasure record #", |f| f.captured.as_str())) @if facts.is_none() { (by) ")" } }
                                            td { (facts.and_then(|f| f.legal_basis.as_deref()).unwrap_or("—")) }
                                            td { (facts.and_then(|f| f.reason.as_deref()).unwrap_or("—")) }
                                        }
                                    }
                                }
                            }
                        }
                        @if !erasures.is_empty() {
                            h3 { "Erasure records" }
                            ul {
                                @for (seq, (_, f)) in &erasures {
                                    li {
                                        "Record #" (seq) ", " (f.captured)
                                        @if let Some(basis) = &f.legal_basis { ", legal basis: " (basis) }
                                        @if let Some(reason) = &f.reason { ", reason: " (reason) }
                                    }
                                }
                            }
                        }
                    }
                    section aria-labelledby="verify" {
                        h2 id="verify" { "How to verify this document" }
                        p {
                            "Each record above is signed by the ledger and proven to be part of its checkpoint of "
                            (plan.checkpoint_size) " records, root "
                            code { (plan.checkpoint_root.to_string()) }
                            ", itself signed by the ledger's key. The machine-readable version of this document (format "
                            code { (ledger::package::PACKAGE_FORMAT) }
                            ") holds those proofs: anyone can check it offline with "
                            code { "auditex verify package FILE --key-history KEYS" }
                            " or the independent Python verifier, using the tenant's published key history. Personal data is proven against the salted commitments in the signed records; erased data can no longer be recovered by anyone, but its erasure is itself a signed record."
                        }
                    }
                }
            }
        }
    }
}

/// One decision with its oversight actions.
fn decision_section(decision: &BundleEntry, follow_ups: &[&BundleEntry]) -> Markup {
    let p = payload(decision);
    let get = |name: &str| member(&p, name);
    let reasons: Vec<String> = p
        .get("reason_codes")
        .and_then(Value::as_array)
        .map(|codes| codes.iter().map(shown).collect())
        .unwrap_or_default();
    let current = follow_ups
        .iter()
        .rev()
        .find(|f| f.record.event_type == EventType::Override)
        .and_then(|f| member(&payload(f), "new_outcome").map(str::to_owned));
    html! {
        section.decision aria-labelledby=(format!("d{}", decision.record.seq.get())) {
            h3 id=(format!("d{}", decision.record.seq.get())) {
                "Decision of " (get("decided_at").unwrap_or("an unknown date")) ": " (get("outcome").unwrap_or("no outcome"))
            }
            dl {
                dt { "Outcome" }
                dd {
                    (get("outcome").unwrap_or("—"))
                    @if let Some(now) = &current { " — changed to " strong { (now) } " after review (see below)" }
                }
                @if let Some(score) = p.get("score") { dt { "Score" } dd { (shown(score)) } }
                dt { "Model" }
                dd { (get("model_id").unwrap_or("—")) ", version " (get("model_version").unwrap_or("—")) }
                dt { "Main reasons" }
                dd {
                    @if reasons.is_empty() { "No reason codes were recorded." } @else {
                        ul { @for r in &reasons { li { (r) } } }
                    }
                }
                @if let Some(explanation) = get("explanation") { dt { "Explanation" } dd { (explanation) } }
                dt { "Human oversight" }
                dd { (oversight_in_words(get("oversight_mode").unwrap_or(""))) }
                dt { "Recorded" }
                dd { (decision.record.captured_at_us.to_rfc3339()) " (record #" (decision.record.seq.get()) ")" }
            }
            @if !follow_ups.is_empty() {
                h4 { "What happened afterwards" }
                ol {
                    @for f in follow_ups {
                        li { (f.record.captured_at_us.to_rfc3339()) ": " (follow_up_in_words(f)) }
                    }
                }
            }
        }
    }
}
