//! The Subjects page: a data subject's records and what of their personal data is still stored
//! (GDPR Art. 15, 17), and the erasure form.
//!
//! Compliance officers, auditors and regulators find a subject by its `subject_ref` and see every
//! record that concerns it (the subject index, paged like the decision list) with, per record,
//! the names of its erasable fields: stored, or erased and by which `erasure` record. Values are
//! never shown here: the list says *what* is kept, not what it says.
//!
//! Compliance officers alone may erase (the whole subject or chosen fields), with a reason, a
//! legal basis and the subject reference typed again as confirmation. The form passes the
//! portal's one preamble (`admit`: CSRF token, then role), its checks refuse bad input before
//! anything is recorded, and the `administration` record of the request is appended before the
//! erasure itself — the ledger's `erasure` record, appended by `Store::erase_subject`, whose
//! transaction destroys the values and their keys. Auditors and regulators get the page without
//! the form, and a POST of theirs is refused (403) whatever the HTML said.
//!
//! Every reader may download the subject access package (the JSON Lines package and its
//! printable rendering, served by the same code as `GET /v1/subjects/{ref}/package`; each
//! download an `access` record), and sees the subject's active legal holds and the retention
//! schedule of the records listed (the rule the retention scheduler would apply, and when).
//! Compliance officers place and lift holds through forms admitted like the erase form: the
//! `administration` record of the request first, then the `legal_hold` record.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ledger::record::FieldName;
use ledger::types::Sequence;
use maud::{Markup, html};
use serde::Deserialize;

use super::{admit, require};
use crate::app::AppState;
use crate::portal::input::{FormFields, PortalQuery, number};
use crate::portal::pages::{csrf_field, error, layout, notice, when};
use crate::portal::{Portal, PortalError, Viewer};
use crate::store::holds::{HoldError, LegalHold, PlaceHold};
use crate::store::retention::{RetentionPolicy, RetentionRule, applicable};
use crate::store::subjects::{
    ERASURE_TEXT_MAX_BYTES, ErasureError, ErasureOutcome, SubjectErasure,
};
use crate::store::users::PortalRole;
use crate::store::views::PAGE_ROWS_DEFAULT;
use crate::store::{AppendError, EvidenceError, StoreError};

/// Roles that see the page.
const READERS: &[PortalRole] = &[
    PortalRole::Compliance,
    PortalRole::Auditor,
    PortalRole::Regulator,
];

/// Roles that may erase.
const ERASERS: &[PortalRole] = &[PortalRole::Compliance];

/// Roles that may place and lift legal holds.
const HOLDERS: &[PortalRole] = &[PortalRole::Compliance];

/// The `legal_basis` select's value that asks for the text field instead.
const OTHER_BASIS: &str = "other";

/// The legal bases offered, as recorded in the `erasure` record's `legal_basis`.
pub const LEGAL_BASES: &[&str] = &[
    "GDPR Art. 17(1)(a): no longer necessary for the purposes collected",
    "GDPR Art. 17(1)(b): consent withdrawn",
    "GDPR Art. 17(1)(c): objection to the processing",
    "GDPR Art. 17(1)(d): unlawfully processed",
    "GDPR Art. 17(1)(e): erasure required by a legal obligation",
    "PIPEDA Principle 4.5.3: no longer required for the identified purposes",
];

/// What the confirmation field must hold, said when it does not.
pub const CONFIRMATION_MISMATCH: &str = "The confirmation does not match the subject reference: \
type it exactly as shown. Nothing was erased.";

/// The package download's query: the subject, and `format=html` for the printable rendering.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PackageQuery {
    subject_ref: String,
    format: Option<String>,
}

/// The subject access package (FORMAT.md section 12b) as the HTTP endpoint serves it: the JSON
/// Lines attachment, or with `format=html` the printable rendering. Refused before anything is
/// recorded when it cannot be complete; the download is recorded (`access`) before it leaves.
pub(super) async fn package(
    State(state): State<AppState>,
    viewer: Viewer,
    PortalQuery(q): PortalQuery<PackageQuery>,
) -> Result<Response, PortalError> {
    require(&viewer, READERS)?;
    let html = match q.format.as_deref() {
        None | Some("jsonl") => false,
        Some("html") => true,
        Some(_) => {
            return Err(PortalError::BadRequest(
                "format must be jsonl or html.".into(),
            ));
        }
    };
    let subject = q.subject_ref.trim();
    if subject.is_empty() || subject.len() > ledger::payload::STRING_BYTES_MAX {
        return Err(PortalError::NotFound);
    }
    let store = &state.store;
    let plan = store
        .package_plan(viewer.tenant(), subject)
        .await
        .map_err(package_error)?;
    let action = if html {
        "download_subject_package_html"
    } else {
        "download_subject_package"
    };
    // The package leaves only once the ledger has acknowledged the record of its download.
    let audited = viewer.audit(store, "access", action, Some(subject)).await?;
    if html {
        let rendered = crate::app::package::render(&state, &plan)
            .await
            .map_err(package_error);
        return audited
            .settle(store, rendered, "the package could not be read")
            .await;
    }
    Ok(crate::app::package::jsonl_response(&state, plan))
}

/// Why a package cannot be downloaded now, as the person sees it: a subject index that lags
/// the checkpoint asks them to try again (503, a package is never incomplete), a held tenant
/// says so, and the rest as for other evidence.
fn package_error(e: EvidenceError) -> PortalError {
    match e {
        EvidenceError::UnknownSubject => PortalError::NotFound,
        EvidenceError::Store(StoreError::ViewNotReady(detail)) => {
            tracing::info!(detail = %detail, "subject package refused: the index lags");
            PortalError::Refused {
                status: StatusCode::SERVICE_UNAVAILABLE,
                title: "Not ready yet",
                message: "The latest records are still being indexed, and an access package \
                          must be complete. Try again in a few seconds."
                    .to_owned(),
                retry_after: Some(1),
            }
        }
        EvidenceError::Store(e) => held_or_internal(e),
        other => super::evidence_error(other),
    }
}

/// The page's subject and its next page (`after`); no other parameter is taken.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SubjectQuery {
    subject_ref: Option<String>,
    after: Option<String>,
}

/// The page: the search form, and the subject's records when one is asked for.
pub(super) async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    PortalQuery(q): PortalQuery<SubjectQuery>,
) -> Result<Response, PortalError> {
    require(&viewer, READERS)?;
    let after: Option<u64> = number("after", q.after.as_deref())?;
    let subject = q.subject_ref.as_deref().map(str::trim).unwrap_or_default();
    if subject.is_empty() {
        return Ok(layout(
            "Subjects",
            &viewer.chrome(),
            html! {
                h1 { "Subjects" }
                p { "Find the records that concern a data subject, and what of their personal data is still stored." }
                (search_form(""))
            },
        )
        .into_response());
    }
    let shown = subject_view(&state, &viewer, subject, after, &Filled::default(), None).await?;
    Ok(shown.into_response())
}

fn search_form(subject: &str) -> Markup {
    html! {
        form.grid method="get" action="/subjects" role="search" {
            label { "Subject reference" input type="text" name="subject_ref" required maxlength=(ledger::payload::STRING_BYTES_MAX) value=(subject); }
            button type="submit" { "Find" }
        }
    }
}

/// What the erase form held, shown again with its problem.
#[derive(Default)]
struct Filled {
    only_fields: bool,
    fields: BTreeSet<String>,
    legal_basis: String,
    legal_basis_other: String,
    reason: String,
}

/// What the page says above the records after an erase form was sent.
enum Outcome {
    /// The form was refused; nothing was erased.
    Refused(String),
    /// What was done.
    Done(String),
}

/// One record of the subject with its erasable fields: `None` stored, `Some(seq)` erased by
/// that erasure record.
struct Shown {
    row: projections::SubjectRow,
    fields: BTreeMap<String, Option<u64>>,
}

/// The subject's page (one page of its records); not found when the tenant has no record of
/// the subject (another tenant's subject is not found the same way).
async fn subject_view(
    state: &AppState,
    viewer: &Viewer,
    subject: &str,
    after: Option<u64>,
    filled: &Filled,
    outcome: Option<&Outcome>,
) -> Result<Markup, PortalError> {
    let store = &state.store;
    let tenant = viewer.tenant();
    if subject.len() > ledger::payload::STRING_BYTES_MAX {
        return Err(PortalError::NotFound);
    }
    let page = store
        .subject_records(tenant, subject, after, PAGE_ROWS_DEFAULT)
        .await?;
    if page.items.is_empty() && after.is_none() {
        return Err(PortalError::NotFound);
    }
    let mut shown = Vec::with_capacity(page.items.len());
    for row in page.items {
        let seq = Sequence::new(row.seq).map_err(|e| PortalError::Internal(e.to_string()))?;
        // Only the names are kept: the values are decrypted by the store and dropped here.
        let mut fields: BTreeMap<String, Option<u64>> = store
            .erasable_values(tenant, seq)
            .await
            .map_err(held_or_internal)?
            .into_keys()
            .map(|f| (f.as_str().to_owned(), None))
            .collect();
        for (field, by) in store.erased_fields(tenant, seq).await? {
            fields.insert(field.as_str().to_owned(), Some(by));
        }
        shown.push(Shown { row, fields });
    }
    let stored: BTreeSet<&str> = shown
        .iter()
        .flat_map(|s| s.fields.iter())
        .filter(|(_, by)| by.is_none())
        .map(|(f, _)| f.as_str())
        .collect();
    let next = page.next_cursor.map(|c| {
        let mut params = url::form_urlencoded::Serializer::new(String::new());
        params.append_pair("subject_ref", subject);
        params.append_pair("after", &c);
        format!("/subjects?{}", params.finish())
    });
    let may_erase = ERASERS.contains(&viewer.role());
    let holds: Vec<LegalHold> = store
        .legal_holds(tenant, subject)
        .await
        .map_err(|e| match hold_refusal(e) {
            Ok((_, message)) => PortalError::Internal(message),
            Err(e) => e,
        })?
        .into_iter()
        .filter(LegalHold::is_active)
        .collect();
    let policy = store.retention_policy(tenant).await?;
    let schedule = retention_schedule(state, viewer, &policy, &shown).await?;
    Ok(layout(
        "Subject",
        &viewer.chrome(),
        html! {
            h1 { "Subject " (subject) }
            (search_form(subject))
            @match outcome {
                Some(Outcome::Refused(problem)) => (error(problem)),
                Some(Outcome::Done(done)) => (notice(done)),
                None => {}
            }
            @if shown.is_empty() {
                p { "No further records." }
            } @else {
                table {
                    caption.muted { "Every record concerning the subject, oldest first. Erasable fields are named, never shown." }
                    thead { tr { th { "#" } th { "Recorded" } th { "Type" } th { "Event id" } th { "Erasable fields" } } }
                    tbody {
                        @for s in &shown {
                            tr {
                                td { (s.row.seq) }
                                td { (when(s.row.captured_at_us)) }
                                td { (s.row.event_type.replace('_', " ")) }
                                td {
                                    @if s.row.event_type == "decision" {
                                        a href={ "/decisions/" (s.row.event_id) } { code { (s.row.event_id.to_string()) } }
                                    } @else if let Some(d) = &s.row.decision_id {
                                        code { (s.row.event_id.to_string()) } br;
                                        span.muted { "on " a href={ "/decisions/" (d) } { "decision " (d.to_string()) } }
                                    } @else {
                                        code { (s.row.event_id.to_string()) }
                                    }
                                }
                                td {
                                    @if s.fields.is_empty() {
                                        span.muted { "none" }
                                    } @else {
                                        ul.fields {
                                            @for (name, by) in &s.fields {
                                                li {
                                                    code { (name) } " — "
                                                    @match by {
                                                        None => span.stored { "stored" },
                                                        Some(n) => span.erased { "erased by #" (n) },
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(n) = next { p { a href=(n) { "Next page" } } }
            (package_links(subject))
            // The erase form comes before the hold forms: its fields are the page's first of
            // their names.
            @if may_erase {
                (erase_form(viewer, subject, &stored, &holds, filled))
            }
            (holds_section(viewer, subject, &holds))
            (retention_section(&policy, &schedule, !holds.is_empty()))
        },
    ))
}

/// The access package's two downloads.
fn package_links(subject: &str) -> Markup {
    let link = |format: Option<&str>| {
        let mut params = url::form_urlencoded::Serializer::new(String::new());
        params.append_pair("subject_ref", subject);
        if let Some(f) = format {
            params.append_pair("format", f);
        }
        format!("/subjects/package?{}", params.finish())
    };
    html! {
        h2 { "Access package" }
        p { "Everything the ledger holds about the subject (GDPR Art. 15): every record with its proof, the personal data still stored and what was erased. Each download is recorded." }
        ul {
            li { a href=(link(None)) download { "Download the verifiable package (JSON Lines)" } }
            li { a href=(link(Some("html"))) { "Printable page for the subject" } }
        }
    }
}

fn done_message(done: &ErasureOutcome) -> String {
    let seq = done.receipt.seq;
    if done.receipt.duplicate {
        format!("Nothing was left to erase: already erased by #{seq}.")
    } else if done.erased == 0 {
        format!("Erasure record #{seq} appended; no stored value was left to erase.")
    } else {
        let values = if done.erased == 1 { "value" } else { "values" };
        format!(
            "Erased {} stored {values}: erasure record #{seq}.",
            done.erased
        )
    }
}

fn erase_form(
    viewer: &Viewer,
    subject: &str,
    stored: &BTreeSet<&str>,
    holds: &[LegalHold],
    filled: &Filled,
) -> Markup {
    let basis_other = filled.legal_basis == OTHER_BASIS;
    html! {
        h2 { "Erase" }
        @for h in holds {
            p.error role="note" {
                "Under legal hold #" (h.hold_seq) " (" (h.reason) "): an erasure of what it holds is refused until the hold is lifted."
            }
        }
        p { "Erasing destroys the stored values and their keys for good. The records stay, with the fields marked erased and every proof still valid; the erasure itself is recorded in the ledger with the reason and the legal basis." }
        form.stack method="post" action="/subjects/erase" {
            (csrf_field(&viewer.csrf))
            input type="hidden" name="subject_ref" value=(subject);
            fieldset {
                legend { "What to erase" }
                label.choice { input type="radio" name="scope" value="subject" checked[!filled.only_fields]; "Every stored field of this subject" }
                label.choice { input type="radio" name="scope" value="fields" checked[filled.only_fields]; "Only the fields chosen here, in every record of the subject:" }
                @for f in stored {
                    label.choice { input type="checkbox" name="field" value=(f) checked[filled.fields.contains(*f)]; code { (f) } }
                }
            }
            label { "Legal basis"
                select name="legal_basis" required {
                    option value="" { "Choose…" }
                    @for b in LEGAL_BASES {
                        option value=(b) selected[filled.legal_basis == *b] { (b) }
                    }
                    option value=(OTHER_BASIS) selected[basis_other] { "Other (say which below)" }
                }
            }
            label { "Other legal basis (when “Other” is chosen)" input type="text" name="legal_basis_other" maxlength=(ERASURE_TEXT_MAX_BYTES) value=(filled.legal_basis_other); }
            label { "Reason (recorded in the ledger)" textarea name="reason" rows="3" maxlength=(ERASURE_TEXT_MAX_BYTES) required { (filled.reason) } }
            label { "To confirm, type the subject reference: " code { (subject) }
                input type="text" name="confirm" autocomplete="off" required;
            }
            button type="submit" { "Erase" }
        }
    }
}

/// The erase form, as sent (its checkboxes repeat, so it is read field by field; any other
/// field given twice was refused when the form was read).
struct EraseForm {
    csrf: String,
    subject_ref: String,
    scope: String,
    fields: Vec<String>,
    legal_basis: String,
    legal_basis_other: String,
    reason: String,
    confirm: String,
}

impl EraseForm {
    fn from_fields(form: &FormFields) -> EraseForm {
        let text = |name: &str| form.get(name).to_owned();
        EraseForm {
            csrf: text("csrf"),
            subject_ref: text("subject_ref"),
            scope: text("scope"),
            fields: form.all("field").into_iter().map(str::to_owned).collect(),
            legal_basis: text("legal_basis"),
            legal_basis_other: text("legal_basis_other"),
            reason: text("reason"),
            confirm: text("confirm"),
        }
    }

    fn filled(&self) -> Filled {
        Filled {
            only_fields: self.scope == "fields",
            fields: self.fields.iter().cloned().collect(),
            legal_basis: self.legal_basis.clone(),
            legal_basis_other: self.legal_basis_other.clone(),
            reason: self.reason.clone(),
        }
    }

    /// The request the form asks for, or what is wrong with it (in words for the person).
    fn request(&self) -> Result<SubjectErasure, String> {
        if self.confirm != self.subject_ref {
            return Err(CONFIRMATION_MISMATCH.to_owned());
        }
        let reason = self.reason.trim();
        if reason.is_empty() {
            return Err("Give the reason for the erasure: it is recorded in the ledger.".into());
        }
        let legal_basis = match self.legal_basis.as_str() {
            OTHER_BASIS => self.legal_basis_other.trim(),
            chosen if LEGAL_BASES.contains(&chosen) => chosen,
            "" => return Err("Choose the legal basis of the erasure.".into()),
            _ => return Err("Choose one of the legal bases offered, or “Other”.".into()),
        };
        if legal_basis.is_empty() {
            return Err("Say which legal basis applies when you choose “Other”.".into());
        }
        for (what, text) in [("reason", reason), ("legal basis", legal_basis)] {
            // The ledger refuses a NUL; refused here, it costs no record of a failed request.
            if text.contains(ledger::payload::FORBIDDEN_CHAR) {
                return Err(format!("The {what} must not contain U+0000."));
            }
            if text.len() > ERASURE_TEXT_MAX_BYTES {
                return Err(format!(
                    "The {what} is too long: at most {ERASURE_TEXT_MAX_BYTES} bytes."
                ));
            }
        }
        let fields = match self.scope.as_str() {
            "subject" => None,
            "fields" => {
                let chosen: BTreeSet<&str> = self.fields.iter().map(String::as_str).collect();
                if chosen.is_empty() {
                    return Err("Choose at least one field, or erase every field.".into());
                }
                let parsed = chosen
                    .into_iter()
                    .map(|f| FieldName::parse(f).map_err(|e| e.to_string()))
                    .collect::<Result<Vec<_>, _>>()?;
                Some(parsed)
            }
            _ => return Err("Choose what to erase.".into()),
        };
        Ok(SubjectErasure {
            subject_ref: self.subject_ref.clone(),
            event_ids: None,
            fields,
            reason: reason.to_owned(),
            legal_basis: legal_basis.to_owned(),
        })
    }

    /// The action named in the `administration` record.
    fn action(request: &SubjectErasure) -> String {
        match &request.fields {
            None => "subject_erasure".to_owned(),
            Some(fields) => format!(
                "subject_erasure:fields={}",
                fields
                    .iter()
                    .map(FieldName::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }
}

/// How a refused erasure is answered: a page of its own for what is not found or failed inside,
/// the form again with the refusal's own words for the rest.
fn refusal(e: ErasureError) -> Result<(StatusCode, String), PortalError> {
    match e {
        ErasureError::UnknownSubject => Err(PortalError::NotFound),
        ErasureError::Store(e) | ErasureError::Append(AppendError::Store(e)) => {
            Err(held_or_internal(e))
        }
        ErasureError::Append(e) if e.is_retryable() => {
            Ok((StatusCode::SERVICE_UNAVAILABLE, format!("Not erased: {e}.")))
        }
        e @ (ErasureError::UnknownFields(_)
        | ErasureError::UnknownEvents(_)
        | ErasureError::Repeated { .. }
        | ErasureError::BadText(_)) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Not erased: {e}."),
        )),
        // A hold, or anything else that refuses the request as it stands.
        e => Ok((StatusCode::CONFLICT, format!("Not erased: {e}."))),
    }
}

/// A tenant held for an erasure journal that could not be carried out says so (in words that
/// name no internals): its personal data is neither shown nor erased until an operator repairs
/// the journal. Any other store failure is logged.
fn held_or_internal(e: StoreError) -> PortalError {
    match e {
        StoreError::ErasureJournal { .. } => {
            tracing::error!(error = %e, "subject page refused: the tenant is held");
            PortalError::Refused {
                status: StatusCode::SERVICE_UNAVAILABLE,
                title: "The ledger is held",
                message: "Erasures recorded outside the database could not be carried out, so \
                          personal data is neither shown nor erased until an operator repairs \
                          them. Nothing was changed."
                    .to_owned(),
                retry_after: None,
            }
        }
        other => PortalError::Internal(other.to_string()),
    }
}

/// The erase form: checked, recorded, then carried out by `Store::erase_subject`.
pub(super) async fn erase(
    State(state): State<AppState>,
    axum::Extension(portal): axum::Extension<Portal>,
    viewer: Viewer,
    fields: FormFields,
) -> Result<Response, PortalError> {
    let form = EraseForm::from_fields(&fields);
    let officer = admit(&state, &portal, &viewer, &form.csrf, ERASERS)?;
    let store = &state.store;
    let subject = form.subject_ref.as_str();
    known_subject(&state, &viewer, subject).await?;
    let filled = form.filled();
    let request = match form.request() {
        Ok(r) => r,
        Err(problem) => {
            let page = subject_view(
                &state,
                &viewer,
                subject,
                None,
                &filled,
                Some(&Outcome::Refused(problem)),
            )
            .await?;
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    let audited = officer
        .record(&EraseForm::action(&request), Some(subject))
        .await?;
    let (status, outcome) = match store.erase_subject(viewer.tenant(), request).await {
        Ok(done) => (StatusCode::OK, Outcome::Done(done_message(&done))),
        Err(e) => {
            audited.failed(store, "the erasure was refused").await;
            let (status, message) = refusal(e)?;
            (status, Outcome::Refused(message))
        }
    };
    // After an erasure the form starts afresh; after a refusal it keeps what was typed.
    let filled = match outcome {
        Outcome::Done(_) => Filled::default(),
        Outcome::Refused(_) => filled,
    };
    let page = subject_view(&state, &viewer, subject, None, &filled, Some(&outcome)).await?;
    Ok((status, page).into_response())
}

/// Only a subject of this tenant is acted on, and only its action is recorded: any other is not
/// found, like one nobody has.
async fn known_subject(
    state: &AppState,
    viewer: &Viewer,
    subject: &str,
) -> Result<(), PortalError> {
    // No subject reference holds a NUL (the ledger refuses it), and PostgreSQL cannot even
    // look one up: it is not found, like any other subject nobody has.
    if subject.is_empty()
        || subject.len() > ledger::payload::STRING_BYTES_MAX
        || subject.contains(ledger::payload::FORBIDDEN_CHAR)
        || state
            .store
            .subject_records(viewer.tenant(), subject, None, 1)
            .await?
            .items
            .is_empty()
    {
        return Err(PortalError::NotFound);
    }
    Ok(())
}

// ---------------------------------------------------------------- legal holds

/// The subject's active holds, and for compliance officers the forms that place and lift them.
fn holds_section(viewer: &Viewer, subject: &str, holds: &[LegalHold]) -> Markup {
    let may_hold = HOLDERS.contains(&viewer.role());
    html! {
        h2 { "Legal holds" }
        @if holds.is_empty() {
            p { "No legal hold is in force for this subject." }
        } @else {
            ul.holds {
                @for h in holds {
                    li {
                        strong { "Hold #" (h.hold_seq) } ", placed " (when(i64::try_from(h.placed_at_us).unwrap_or(i64::MAX)))
                        " by record #" (h.hold_seq) ". Reason: " (h.reason)
                        @if let Some(r) = &h.reference { ". Reference: " (r) }
                        @if let Some(d) = &h.decision_id {
                            ". Only " a href={ "/decisions/" (d) } { "decision " (d) }
                        } @else {
                            ". The whole subject"
                        }
                        "."
                        @if may_hold {
                            form.stack method="post" action="/subjects/hold/lift" {
                                (csrf_field(&viewer.csrf))
                                input type="hidden" name="subject_ref" value=(subject);
                                input type="hidden" name="hold_seq" value=(h.hold_seq);
                                label { "Reason for lifting (recorded in the ledger)" input type="text" name="reason" required maxlength=(ERASURE_TEXT_MAX_BYTES); }
                                button type="submit" { "Lift hold #" (h.hold_seq) }
                            }
                        }
                    }
                }
            }
        }
        @if may_hold {
            h3 { "Place a hold" }
            p { "While a hold is in force, nothing it holds is erased: neither by an erasure request nor by retention." }
            form.stack method="post" action="/subjects/hold" {
                (csrf_field(&viewer.csrf))
                input type="hidden" name="subject_ref" value=(subject);
                label { "Reason (recorded in the ledger)" textarea name="reason" rows="2" required maxlength=(ERASURE_TEXT_MAX_BYTES) {} }
                label { "Reference (case number, optional)" input type="text" name="reference" maxlength=(ERASURE_TEXT_MAX_BYTES); }
                label { "Only this decision (event id, optional)" input type="text" name="decision_id" autocomplete="off"; }
                button type="submit" { "Place hold" }
            }
        }
    }
}

/// Checks one text of a hold form: `Ok(None)` when empty and optional.
fn hold_text(what: &str, text: &str, required: bool) -> Result<Option<String>, String> {
    let text = text.trim();
    if text.is_empty() {
        return if required {
            Err(format!("Give the {what}: it is recorded in the ledger."))
        } else {
            Ok(None)
        };
    }
    // The ledger refuses a NUL; refused here, it costs no record of a failed request.
    if text.contains(ledger::payload::FORBIDDEN_CHAR) {
        return Err(format!("The {what} must not contain U+0000."));
    }
    if text.len() > ERASURE_TEXT_MAX_BYTES {
        return Err(format!(
            "The {what} is too long: at most {ERASURE_TEXT_MAX_BYTES} bytes."
        ));
    }
    Ok(Some(text.to_owned()))
}

/// How a refused hold request is answered, like a refused erasure.
fn hold_refusal(e: HoldError) -> Result<(StatusCode, String), PortalError> {
    match e {
        HoldError::UnknownSubject => Err(PortalError::NotFound),
        HoldError::Store(e) | HoldError::Append(AppendError::Store(e)) => Err(held_or_internal(e)),
        HoldError::Append(e) if e.is_retryable() => {
            Ok((StatusCode::SERVICE_UNAVAILABLE, format!("Not done: {e}.")))
        }
        e @ (HoldError::UnknownDecision(_) | HoldError::UnknownHold(_) | HoldError::BadText(_)) => {
            Ok((StatusCode::UNPROCESSABLE_ENTITY, format!("Not done: {e}.")))
        }
        e => Ok((StatusCode::CONFLICT, format!("Not done: {e}."))),
    }
}

/// The page again after a hold form, with what happened.
async fn after_hold_form(
    state: &AppState,
    viewer: &Viewer,
    subject: &str,
    status: StatusCode,
    outcome: Outcome,
) -> Result<Response, PortalError> {
    let page = subject_view(
        state,
        viewer,
        subject,
        None,
        &Filled::default(),
        Some(&outcome),
    )
    .await?;
    Ok((status, page).into_response())
}

/// The place-hold form: checked, recorded (`administration`), then the `legal_hold` record
/// appended by `Store::place_hold`.
pub(super) async fn place_hold(
    State(state): State<AppState>,
    axum::Extension(portal): axum::Extension<Portal>,
    viewer: Viewer,
    form: FormFields,
) -> Result<Response, PortalError> {
    let value = |name: &str| form.get(name);
    let officer = admit(&state, &portal, &viewer, value("csrf"), HOLDERS)?;
    let subject = value("subject_ref");
    known_subject(&state, &viewer, subject).await?;
    let request = (|| {
        let reason = hold_text("reason", value("reason"), true)?.unwrap_or_default();
        let reference = hold_text("reference", value("reference"), false)?;
        let decision_id = match value("decision_id").trim() {
            "" => None,
            id => Some(
                ledger::types::EventId::parse(id)
                    .map_err(|_| format!("The decision id {id:?} is not an event id (a UUID)."))?,
            ),
        };
        Ok::<_, String>(PlaceHold {
            subject_ref: subject.to_owned(),
            decision_id,
            reason,
            reference,
        })
    })();
    let request = match request {
        Ok(r) => r,
        Err(problem) => {
            let refused = Outcome::Refused(format!("{problem} No hold was placed."));
            return after_hold_form(
                &state,
                &viewer,
                subject,
                StatusCode::UNPROCESSABLE_ENTITY,
                refused,
            )
            .await;
        }
    };
    let audited = officer.record("legal_hold_place", Some(subject)).await?;
    let (status, outcome) = match state.store.place_hold(viewer.tenant(), request).await {
        Ok(receipt) => (
            StatusCode::OK,
            Outcome::Done(format!("Legal hold #{} placed.", receipt.seq)),
        ),
        Err(e) => {
            audited.failed(&state.store, "the hold was refused").await;
            let (status, message) = hold_refusal(e)?;
            (status, Outcome::Refused(message))
        }
    };
    after_hold_form(&state, &viewer, subject, status, outcome).await
}

/// The lift-hold form: checked, recorded (`administration`), then the `legal_hold` record
/// appended by `Store::lift_hold`.
pub(super) async fn lift_hold(
    State(state): State<AppState>,
    axum::Extension(portal): axum::Extension<Portal>,
    viewer: Viewer,
    form: FormFields,
) -> Result<Response, PortalError> {
    let value = |name: &str| form.get(name);
    let officer = admit(&state, &portal, &viewer, value("csrf"), HOLDERS)?;
    let subject = value("subject_ref");
    known_subject(&state, &viewer, subject).await?;
    let Ok(hold_seq) = value("hold_seq").trim().parse::<u64>() else {
        return Err(PortalError::BadRequest(
            "hold_seq must be a record number.".into(),
        ));
    };
    let reason = match hold_text("reason for lifting", value("reason"), true) {
        Ok(r) => r.unwrap_or_default(),
        Err(problem) => {
            let refused = Outcome::Refused(format!("{problem} The hold was not lifted."));
            return after_hold_form(
                &state,
                &viewer,
                subject,
                StatusCode::UNPROCESSABLE_ENTITY,
                refused,
            )
            .await;
        }
    };
    let audited = officer
        .record(
            &format!("legal_hold_lift:hold_seq={hold_seq}"),
            Some(subject),
        )
        .await?;
    let lifted = state
        .store
        .lift_hold(viewer.tenant(), subject, hold_seq, &reason)
        .await;
    let (status, outcome) = match lifted {
        Ok(receipt) if receipt.duplicate => (
            StatusCode::OK,
            Outcome::Done(format!(
                "Legal hold #{hold_seq} was lifted already, by record #{}.",
                receipt.seq
            )),
        ),
        Ok(receipt) => (
            StatusCode::OK,
            Outcome::Done(format!(
                "Legal hold #{hold_seq} lifted: record #{}.",
                receipt.seq
            )),
        ),
        Err(e) => {
            audited.failed(&state.store, "the lift was refused").await;
            let (status, message) = hold_refusal(e)?;
            (status, Outcome::Refused(message))
        }
    };
    after_hold_form(&state, &viewer, subject, status, outcome).await
}

// ---------------------------------------------------------------- retention schedule

/// µs in a day.
const DAY_US: i64 = 86_400_000_000;

/// When the stored values of one listed record are due to be erased by retention.
struct Expiry {
    seq: u64,
    fields: Vec<String>,
    /// The rule that applies (its index in the policy) and the capture time plus its days;
    /// `None` when no rule applies.
    due: Option<(usize, i64)>,
}

/// The retention schedule of the listed records that still store values, by the rule that
/// applies to each (the same choice the retention scheduler makes: event type and the
/// payload's `model_id`).
async fn retention_schedule(
    state: &AppState,
    viewer: &Viewer,
    policy: &RetentionPolicy,
    shown: &[Shown],
) -> Result<Vec<Expiry>, PortalError> {
    let mut schedule = Vec::new();
    for s in shown {
        let fields: Vec<String> = s
            .fields
            .iter()
            .filter(|(_, by)| by.is_none())
            .map(|(f, _)| f.clone())
            .collect();
        if fields.is_empty() {
            continue;
        }
        let mut due = None;
        if !policy.rules.is_empty() {
            let seq = Sequence::new(s.row.seq).map_err(|e| PortalError::Internal(e.to_string()))?;
            let model = state
                .store
                .record(viewer.tenant(), seq)
                .await?
                .and_then(|r| serde_json::from_str::<serde_json::Value>(r.payload.as_str()).ok())
                .and_then(|p| {
                    p.get("model_id")
                        .and_then(|m| m.as_str())
                        .map(str::to_owned)
                });
            due = applicable(&policy.rules, &s.row.event_type, model.as_deref()).map(|i| {
                let days = i64::try_from(policy.rules[i].erase_after_days).unwrap_or(i64::MAX);
                (
                    i,
                    s.row
                        .captured_at_us
                        .saturating_add(days.saturating_mul(DAY_US)),
                )
            });
        }
        schedule.push(Expiry {
            seq: s.row.seq,
            fields,
            due,
        });
    }
    Ok(schedule)
}

fn rule_in_words(rule: &RetentionRule) -> String {
    let records = match (&rule.event_type, &rule.model_id) {
        (None, None) => "Every record".to_owned(),
        (Some(t), None) => format!("{} records", t.replace('_', " ")),
        (None, Some(m)) => format!("Records of model {m}"),
        (Some(t), Some(m)) => format!("{} records of model {m}", t.replace('_', " ")),
    };
    format!(
        "{records}: stored values erased {} days after capture",
        rule.erase_after_days
    )
}

/// The tenant's retention rules and, for the records listed, when their stored values are due.
fn retention_section(policy: &RetentionPolicy, schedule: &[Expiry], held: bool) -> Markup {
    html! {
        h2 { "Retention schedule" }
        @if policy.rules.is_empty() {
            p { "The tenant has no retention rule: stored values are kept until they are erased." }
        } @else {
            p {
                "The tenant's retention rules"
                @if let Some(seq) = policy.set_by_seq { " (set by record #" (seq) ")" }
                ":"
            }
            ol.rules {
                @for rule in &policy.rules { li { (rule_in_words(rule)) } }
            }
        }
        @if schedule.is_empty() {
            p { "No value of the records listed is stored." }
        } @else {
            ul.schedule {
                @for e in schedule {
                    li {
                        "#" (e.seq) " "
                        @for (i, f) in e.fields.iter().enumerate() {
                            @if i > 0 { ", " }
                            code { (f) }
                        }
                        " — "
                        @match e.due {
                            Some((rule, at)) => { "erased after " (when(at)) " (rule " (rule + 1) ")" },
                            None => "no rule applies",
                        }
                    }
                }
            }
        }
        @if held {
            p.muted { "While a legal hold is in force, retention erases nothing it holds." }
        }
    }
}
