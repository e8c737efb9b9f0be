//! Subject rights on the store: erasing a subject's personal data on request (GDPR Art. 17), with
//! the checks a request deserves before anything is appended. The erasure itself is an `erasure`
//! record, carried out by the appender in the record's own transaction (see `erasure.rs`).

use std::collections::BTreeSet;

use ledger::record::FieldName;
use ledger::types::{EventId, Sequence, TenantId};

use super::{AppendError, Receipt, Store, StoreError};

/// Longest reason or legal basis accepted, in bytes (the payload limit of a string).
pub const ERASURE_TEXT_MAX_BYTES: usize = 1024;

/// Checks that `text` (a reason, a legal basis, a reference) is 1 to
/// [`ERASURE_TEXT_MAX_BYTES`] bytes of non-blank text; the message names it.
pub(crate) fn check_text(name: &str, text: &str) -> Result<(), String> {
    if text.trim().is_empty() || text.len() > ERASURE_TEXT_MAX_BYTES {
        return Err(format!(
            "{name} must be 1 to {ERASURE_TEXT_MAX_BYTES} bytes of text"
        ));
    }
    // The ledger refuses U+0000 in any payload string; said here, the error names the member
    // the caller sent rather than the record's payload.
    if text.contains('\0') {
        return Err(format!("{name} must not contain U+0000"));
    }
    Ok(())
}

/// The first item `items` yields a second time, with its position.
fn first_repeat(items: impl Iterator<Item = String>) -> Option<(usize, String)> {
    let mut seen = BTreeSet::new();
    items.enumerate().find(|(_, i)| !seen.insert(i.clone()))
}

/// An erasure request for one subject.
#[derive(Debug, Clone)]
pub struct SubjectErasure {
    /// The subject.
    pub subject_ref: String,
    /// Only these records' values (all of the subject's when `None`).
    pub event_ids: Option<Vec<EventId>>,
    /// Only these fields (every field when `None`).
    pub fields: Option<Vec<FieldName>>,
    /// Why (free text, recorded in the ledger).
    pub reason: String,
    /// The legal basis, e.g. `GDPR Art. 17(1)(a)` or `retention`.
    pub legal_basis: String,
}

/// What an erasure request did.
#[derive(Debug, Clone)]
pub struct ErasureOutcome {
    /// The receipt of the `erasure` record that erased the values (an earlier one when
    /// everything asked for was erased already; then `receipt.duplicate` is true).
    pub receipt: Receipt,
    /// Values erased by this request (0 when they were erased already).
    pub erased: u64,
}

/// Why an erasure request was refused; nothing was appended or erased.
#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    /// The tenant holds nothing about this subject (also what another tenant's subject gets).
    #[error("unknown subject")]
    UnknownSubject,
    /// Fields the subject's records never had.
    #[error("the subject's records have no erasable field named {}", .0.join(", "))]
    UnknownFields(Vec<String>),
    /// Event ids that are not records with erasable values of this subject.
    #[error("no record of this subject with erasable values has event id {}", .0.join(", "))]
    UnknownEvents(Vec<String>),
    /// The reason or legal basis is empty or too long.
    #[error("{0}")]
    BadText(String),
    /// The request names a field or an event id twice (`member` is `fields` or `event_ids`):
    /// the ledger's record of the request would carry the repetition.
    #[error("{member} names {item} more than once")]
    Repeated {
        /// The request's member.
        member: &'static str,
        /// Where in it the repetition is (0-based).
        index: usize,
        /// What it names twice.
        item: String,
    },
    /// The subject, or a decision the request would erase, is under an active legal hold
    /// (GDPR Art. 17(3)(b)/(e); see `holds.rs`). Over HTTP: 409.
    #[error("what the request would erase is under legal hold {hold_seq} ({reason})")]
    Held {
        /// The hold: the seq of the `legal_hold` record that placed it.
        hold_seq: u64,
        /// The hold's reason.
        reason: String,
    },
    /// The append failed.
    #[error(transparent)]
    Append(#[from] AppendError),
    /// A database error.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    /// Erases a subject's erasable values (all, or those of some records or fields): appends an
    /// `erasure` record whose transaction deletes them and destroys their keys. Asking again for
    /// what is erased already appends nothing and answers the receipt of the erasure that did it.
    /// Requests for one tenant are taken one at a time, so two identical concurrent requests
    /// produce one erasure record.
    ///
    /// # Errors
    /// [`ErasureError`]; nothing is appended or erased then.
    pub async fn erase_subject(
        &self,
        tenant: &TenantId,
        request: SubjectErasure,
    ) -> Result<ErasureOutcome, ErasureError> {
        check_text("reason", &request.reason).map_err(ErasureError::BadText)?;
        check_text("legal_basis", &request.legal_basis).map_err(ErasureError::BadText)?;
        let fields = request
            .fields
            .iter()
            .flatten()
            .map(|f| f.as_str().to_owned());
        let ids = request.event_ids.iter().flatten().map(ToString::to_string);
        for (member, repeat) in [
            ("fields", first_repeat(fields)),
            ("event_ids", first_repeat(ids)),
        ] {
            if let Some((index, item)) = repeat {
                return Err(ErasureError::Repeated {
                    member,
                    index,
                    item,
                });
            }
        }
        let _one_at_a_time = self.erasure_lock(tenant).await;
        self.erasure_journal().refuse_if_blocked(tenant)?;
        let values = self
            .backend()
            .subject_values(tenant, &request.subject_ref)
            .await?;
        if values.is_empty()
            && !self
                .subject_known_to_views(tenant, &request.subject_ref)
                .await?
        {
            return Err(ErasureError::UnknownSubject);
        }
        if let Some(fields) = &request.fields {
            let known: BTreeSet<&str> = values.iter().map(|v| v.field.as_str()).collect();
            let unknown: Vec<String> = fields
                .iter()
                .filter(|f| !known.contains(f.as_str()))
                .map(|f| f.as_str().to_owned())
                .collect();
            if !unknown.is_empty() {
                return Err(ErasureError::UnknownFields(unknown));
            }
        }
        if let Some(ids) = &request.event_ids {
            let known: BTreeSet<&str> = values.iter().map(|v| v.event_id.as_str()).collect();
            let unknown: Vec<String> = ids
                .iter()
                .map(ToString::to_string)
                .filter(|id| !known.contains(id.as_str()))
                .collect();
            if !unknown.is_empty() {
                return Err(ErasureError::UnknownEvents(unknown));
            }
        }
        let wanted = |event_id: &str, field: &str| {
            request
                .event_ids
                .as_ref()
                .is_none_or(|ids| ids.iter().any(|i| i.to_string() == event_id))
                && request
                    .fields
                    .as_ref()
                    .is_none_or(|fs| fs.iter().any(|f| f.as_str() == field))
        };
        let covered: Vec<_> = values
            .iter()
            .filter(|v| wanted(&v.event_id, &v.field))
            .collect();
        let stored = covered.iter().filter(|v| v.erasure_seq.is_none()).count();
        // A subject that never had an erasable value: a whole-subject erasure of it erases
        // nothing, and once one is recorded a repeat is answered with its receipt.
        let earlier_whole = if values.is_empty() {
            self.latest_whole_subject_erasure(tenant, &request.subject_ref)
                .await?
        } else {
            None
        };
        if stored == 0
            && let Some(by) = covered
                .iter()
                .filter_map(|v| v.erasure_seq)
                .max()
                .or(earlier_whole)
        {
            // Everything asked for is gone already: the erasure that did it answers.
            let seq = Sequence::new(u64::try_from(by).unwrap_or(0))
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let record = self
                .record(tenant, seq)
                .await?
                .ok_or_else(|| StoreError::Corrupt(format!("erasure record {by} is missing")))?;
            return Ok(ErasureOutcome {
                receipt: Receipt::of(&record, true),
                erased: 0,
            });
        }
        let mut payload = serde_json::json!({
            "subject_ref": request.subject_ref,
            "reason": request.reason,
            "legal_basis": request.legal_basis,
        });
        if let Some(ids) = &request.event_ids {
            payload["event_ids"] = ids.iter().map(ToString::to_string).collect();
        }
        if let Some(fields) = &request.fields {
            payload["fields"] = fields.iter().map(|f| f.as_str().to_owned()).collect();
        }
        let draft = super::erasure::erasure_draft(&payload).map_err(ErasureError::BadText)?;
        let receipt = self
            .append(tenant, vec![draft])
            .await
            .map_err(|e| match e {
                // The appender screens erasures against holds in chain order (`holds.rs`).
                AppendError::LegalHold {
                    hold_seq, reason, ..
                } => ErasureError::Held { hold_seq, reason },
                other => ErasureError::Append(other),
            })?
            .pop()
            .ok_or_else(|| StoreError::Corrupt("an append returned no receipt".into()))?;
        Ok(ErasureOutcome {
            receipt,
            erased: u64::try_from(stored).unwrap_or(u64::MAX),
        })
    }

    /// Whether the tenant holds anything about `subject`: an erasable value (stored or erased)
    /// or an entry of the subject index.
    pub(crate) async fn subject_known(
        &self,
        tenant: &TenantId,
        subject: &str,
    ) -> Result<bool, StoreError> {
        Ok(!self
            .backend()
            .subject_values(tenant, subject)
            .await?
            .is_empty()
            || self.subject_known_to_views(tenant, subject).await?)
    }

    /// The subject's latest erasure record when it erased the whole subject.
    async fn latest_whole_subject_erasure(
        &self,
        tenant: &TenantId,
        subject: &str,
    ) -> Result<Option<i64>, StoreError> {
        let Some(seq) = self
            .backend()
            .latest_subject_erasure(tenant, subject)
            .await?
        else {
            return Ok(None);
        };
        let at = Sequence::new(u64::try_from(seq).unwrap_or(0))
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let record = self
            .record(tenant, at)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("erasure record {seq} is missing")))?;
        let whole = super::erasure::ErasureScope::from_payload(at.get(), record.payload.as_str())
            .is_some_and(|scope| scope.whole_subject());
        Ok(whole.then_some(seq))
    }

    /// Whether the read-side subject index knows `subject` (a subject whose records hold no
    /// erasable value is known only there).
    async fn subject_known_to_views(
        &self,
        tenant: &TenantId,
        subject: &str,
    ) -> Result<bool, StoreError> {
        match self.subject_records(tenant, subject, None, 1).await {
            Ok(page) => Ok(!page.items.is_empty()),
            // Views still being built know nothing yet: the ledger's own answer stands.
            Err(StoreError::ViewNotReady(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
