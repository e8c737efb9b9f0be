//! Legal holds (GDPR Art. 17(3)(b) and (e); docs/OPERATIONS.md "Retention and legal hold").
//!
//! A hold is a `legal_hold` record: `action` `placed` names a subject (and optionally one of its
//! decisions, `decision_id`), a reason and optionally a case `reference`; `lifted` names the
//! `hold_seq` (the sequence number of the placing record) it ends. Pipelines may append them
//! through `/v1/records` (a legal department's case system), and the service appends them for
//! `POST`/`DELETE /v1/subjects/{subject_ref}/holds`.
//!
//! The appender keeps the table `legal_holds` in step, in the transaction that appends each
//! hold record, and **screens** every request that carries an `erasure` or a `legal_hold` record
//! against the active holds, in chain order, before anything is written:
//!
//! - an erasure of a subject under a whole-subject hold is refused;
//! - an erasure that names no records (the whole subject, or some fields of every record) of a
//!   subject with a hold on one decision is refused too — it would erase the held decision's
//!   values — naming that hold;
//! - an erasure naming records (`event_ids`) is refused when one of them is the held decision or
//!   a record that names it (`decision_id` / `decision_ids`);
//! - a lift of a hold that is not active for that subject is refused.
//!
//! The refused request is answered [`AppendError::LegalHold`] / [`AppendError::HoldNotActive`]
//! and writes nothing; other requests of the same group are unaffected. Since the appender is
//! the tenant's one writer and hold records go through it too, a hold and an erasure cannot
//! cross: whichever comes first in the chain decides. The check is repeated inside the group's
//! transaction, under the tenant's lock, so that a hold placed by another service instance
//! sharing the database between the screening and the commit fails the group (retryably)
//! instead of letting the erasure through.

use std::collections::{BTreeMap, BTreeSet};

use ledger::draft::PreparedDraft;
use ledger::record::{EventType, Record};
use ledger::types::{EventId, Sequence, TenantId};
use serde_json::Value;

use super::erasure::ErasureScope;
use super::{AppendError, Receipt, Store, StoreError};

/// A hold as stored (`legal_holds`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HoldRow {
    pub hold_seq: i64,
    pub subject_ref: String,
    pub decision_id: Option<String>,
    pub reason: String,
    pub reference: Option<String>,
    pub placed_at_us: i64,
    pub lifted_seq: Option<i64>,
    pub lifted_reason: Option<String>,
    pub lifted_at_us: Option<i64>,
}

/// What one `legal_hold` record changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HoldChange {
    /// A hold placed by the record at `seq`.
    Placed {
        seq: u64,
        subject_ref: String,
        decision_id: Option<String>,
        reason: String,
        reference: Option<String>,
        at_us: u64,
    },
    /// The hold placed at `hold_seq`, lifted by the record at `seq`.
    Lifted {
        seq: u64,
        hold_seq: u64,
        subject_ref: String,
        reason: String,
        at_us: u64,
    },
}

impl HoldChange {
    /// The change a validated `legal_hold` payload at `seq` makes; `None` for anything else.
    pub(crate) fn from_payload(seq: u64, at_us: u64, payload: &str) -> Option<Self> {
        let value: Value = serde_json::from_str(payload).ok()?;
        let text = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
        let subject_ref = text("subject_ref")?;
        let reason = text("reason")?;
        match value.get("action")?.as_str()? {
            "placed" => Some(HoldChange::Placed {
                seq,
                subject_ref,
                decision_id: text("decision_id"),
                reason,
                reference: text("reference"),
                at_us,
            }),
            "lifted" => Some(HoldChange::Lifted {
                seq,
                hold_seq: value.get("hold_seq")?.as_u64()?,
                subject_ref,
                reason,
                at_us,
            }),
            _ => None,
        }
    }

    /// The changes the `legal_hold` records among `records` make, in chain order.
    pub(crate) fn of_records(records: &[Record]) -> Vec<HoldChange> {
        records
            .iter()
            .filter(|r| r.event_type == EventType::LegalHold)
            .filter_map(|r| {
                Self::from_payload(
                    r.seq.get(),
                    r.captured_at_us.unix_micros(),
                    r.payload.as_str(),
                )
            })
            .collect()
    }
}

/// An active hold, as the screening sees it.
#[derive(Debug, Clone)]
struct ActiveHold {
    hold_seq: u64,
    subject_ref: String,
    decision_id: Option<String>,
    reason: String,
}

/// The active holds of the subjects a group's erasures and hold records name, updated draft by
/// draft as the screening walks the group in chain order.
#[derive(Debug, Clone, Default)]
pub(crate) struct HoldBook {
    active: Vec<ActiveHold>,
}

/// The subjects named by the `erasure` and `legal_hold` drafts among `drafts`: the only ones
/// whose holds matter to a group (empty for ordinary ingestion, which then reads nothing).
pub(crate) fn screened_subjects<'a>(
    drafts: impl IntoIterator<Item = &'a PreparedDraft>,
) -> Vec<String> {
    let mut subjects = BTreeSet::new();
    for d in drafts {
        if matches!(
            d.draft.event_type,
            EventType::Erasure | EventType::LegalHold
        ) && let Ok(Value::Object(map)) = serde_json::from_str::<Value>(d.draft.payload.as_str())
            && let Some(s) = map.get("subject_ref").and_then(Value::as_str)
        {
            subjects.insert(s.to_owned());
        }
    }
    subjects.into_iter().collect()
}

impl HoldBook {
    /// A book of the stored active holds `rows`.
    pub(crate) fn new(rows: Vec<HoldRow>) -> Self {
        HoldBook {
            active: rows
                .into_iter()
                .filter(|r| r.lifted_seq.is_none())
                .map(|r| ActiveHold {
                    hold_seq: u64::try_from(r.hold_seq).unwrap_or(0),
                    subject_ref: r.subject_ref,
                    decision_id: r.decision_id,
                    reason: r.reason,
                })
                .collect(),
        }
    }

    /// Screens `drafts`, which would be appended at `first_seq` onwards, after `earlier` (drafts
    /// of the same group before them): refuses the first erasure a hold blocks and the first lift
    /// of a hold that is not active. On success the book includes the drafts' own hold changes;
    /// on refusal it is unchanged.
    ///
    /// # Errors
    /// [`AppendError::LegalHold`], [`AppendError::HoldNotActive`], or a database error.
    pub(crate) async fn screen(
        &mut self,
        store: &Store,
        tenant: &TenantId,
        earlier: &[PreparedDraft],
        drafts: &[PreparedDraft],
        first_seq: u64,
    ) -> Result<(), AppendError> {
        let mut book = self.clone();
        for (i, d) in drafts.iter().enumerate() {
            let seq = first_seq + u64::try_from(i).unwrap_or(u64::MAX);
            match d.draft.event_type {
                EventType::LegalHold => {
                    match HoldChange::from_payload(seq, 0, d.draft.payload.as_str()) {
                        Some(HoldChange::Placed {
                            subject_ref,
                            decision_id,
                            reason,
                            ..
                        }) => book.active.push(ActiveHold {
                            hold_seq: seq,
                            subject_ref,
                            decision_id,
                            reason,
                        }),
                        Some(HoldChange::Lifted {
                            hold_seq,
                            subject_ref,
                            ..
                        }) => {
                            let at = book.active.iter().position(|h| {
                                h.hold_seq == hold_seq && h.subject_ref == subject_ref
                            });
                            match at {
                                Some(at) => {
                                    book.active.remove(at);
                                }
                                None => {
                                    return Err(AppendError::HoldNotActive {
                                        event_id: d.draft.event_id,
                                        hold_seq,
                                    });
                                }
                            }
                        }
                        None => {}
                    }
                }
                EventType::Erasure => {
                    let Some(scope) = ErasureScope::from_payload(seq, d.draft.payload.as_str())
                    else {
                        continue;
                    };
                    let held: Vec<&ActiveHold> = book
                        .active
                        .iter()
                        .filter(|h| h.subject_ref == scope.subject_ref)
                        .collect();
                    if held.is_empty() {
                        continue;
                    }
                    let named = match &scope.event_ids {
                        Some(ids) if held.iter().all(|h| h.decision_id.is_some()) => {
                            named_decisions(store, tenant, ids, earlier, &drafts[..i]).await?
                        }
                        _ => BTreeSet::new(),
                    };
                    let blocking = held.into_iter().find(|h| match &h.decision_id {
                        None => true,
                        Some(decision) => {
                            scope.event_ids.is_none() || named.contains(decision.as_str())
                        }
                    });
                    if let Some(h) = blocking {
                        return Err(AppendError::LegalHold {
                            event_id: d.draft.event_id,
                            hold_seq: h.hold_seq,
                            reason: h.reason.clone(),
                        });
                    }
                }
                _ => {}
            }
        }
        *self = book;
        Ok(())
    }
}

/// The decisions the records `ids` are or name: each id itself (it may be the decision), and the
/// `decision_id`/`decision_ids` of each named record, stored or earlier in the group.
async fn named_decisions(
    store: &Store,
    tenant: &TenantId,
    ids: &[String],
    earlier: &[PreparedDraft],
    before: &[PreparedDraft],
) -> Result<BTreeSet<String>, StoreError> {
    let mut out: BTreeSet<String> = ids.iter().cloned().collect();
    let mut payloads: Vec<(EventType, String)> = earlier
        .iter()
        .chain(before)
        .filter(|d| ids.contains(&d.draft.event_id.to_string()))
        .map(|d| (d.draft.event_type, d.draft.payload.as_str().to_owned()))
        .collect();
    for chunk in ids.chunks(500) {
        for row in store.backend().records_by_event_ids(tenant, chunk).await? {
            if let Ok(t) = EventType::parse(&row.event_type) {
                payloads.push((t, row.payload));
            }
        }
    }
    for (event_type, payload) in payloads {
        if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&payload) {
            out.extend(
                ledger::payload::linked_decisions(event_type, &map)
                    .iter()
                    .map(ToString::to_string),
            );
        }
    }
    Ok(out)
}

/// A legal hold, active or lifted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LegalHold {
    /// The sequence number of the `legal_hold` record that placed it: the hold's name.
    pub hold_seq: u64,
    /// The subject held.
    pub subject_ref: String,
    /// The one decision held, when the hold is not on the whole subject.
    pub decision_id: Option<String>,
    /// Why it was placed.
    pub reason: String,
    /// A case number or similar.
    pub reference: Option<String>,
    /// When it was placed (capture time of its record), µs since the Unix epoch.
    pub placed_at_us: u64,
    /// The `legal_hold` record that lifted it; `None` while active.
    pub lifted_seq: Option<u64>,
    /// Why it was lifted.
    pub lifted_reason: Option<String>,
    /// When it was lifted, µs since the Unix epoch.
    pub lifted_at_us: Option<u64>,
}

impl LegalHold {
    /// Whether the hold is in force.
    pub fn is_active(&self) -> bool {
        self.lifted_seq.is_none()
    }
}

impl From<HoldRow> for LegalHold {
    fn from(r: HoldRow) -> Self {
        let u = |v: i64| u64::try_from(v).unwrap_or(0);
        LegalHold {
            hold_seq: u(r.hold_seq),
            subject_ref: r.subject_ref,
            decision_id: r.decision_id,
            reason: r.reason,
            reference: r.reference,
            placed_at_us: u(r.placed_at_us),
            lifted_seq: r.lifted_seq.map(u),
            lifted_reason: r.lifted_reason,
            lifted_at_us: r.lifted_at_us.map(u),
        }
    }
}

/// A request to place a hold.
#[derive(Debug, Clone)]
pub struct PlaceHold {
    /// The subject.
    pub subject_ref: String,
    /// Only this decision of the subject (the whole subject when `None`).
    pub decision_id: Option<EventId>,
    /// Why (recorded in the ledger).
    pub reason: String,
    /// A case number or similar (recorded in the ledger).
    pub reference: Option<String>,
}

/// Why a hold request was refused; nothing was appended.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    /// The tenant holds nothing about this subject (also what another tenant's subject gets).
    #[error("unknown subject")]
    UnknownSubject,
    /// `decision_id` is not a decision of this subject.
    #[error("decision_id: no decision of this subject has event id {0}")]
    UnknownDecision(String),
    /// No hold of this subject was placed at this sequence number.
    #[error("no legal hold {0} of this subject")]
    UnknownHold(u64),
    /// A text member is empty or too long (names it).
    #[error("{0}")]
    BadText(String),
    /// The append failed.
    #[error(transparent)]
    Append(#[from] AppendError),
    /// A database error.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks a text member (see [`super::subjects::check_text`]).
fn check_text(name: &str, text: &str) -> Result<(), HoldError> {
    super::subjects::check_text(name, text).map_err(HoldError::BadText)
}

impl Store {
    /// Every legal hold of `subject`, active and lifted, oldest first.
    ///
    /// # Errors
    /// [`HoldError::UnknownSubject`] when the tenant holds nothing about the subject (and has no
    /// hold on it), or a database error.
    pub async fn legal_holds(
        &self,
        tenant: &TenantId,
        subject: &str,
    ) -> Result<Vec<LegalHold>, HoldError> {
        let rows = self.backend().subject_holds(tenant, subject).await?;
        if rows.is_empty() && !self.subject_known(tenant, subject).await? {
            return Err(HoldError::UnknownSubject);
        }
        Ok(rows.into_iter().map(LegalHold::from).collect())
    }

    /// Places a legal hold: appends a `legal_hold` record (`placed`). From its commit on, no
    /// erasure of what it holds is appended (see the module documentation).
    ///
    /// # Errors
    /// [`HoldError`]; nothing is appended then.
    pub async fn place_hold(
        &self,
        tenant: &TenantId,
        request: PlaceHold,
    ) -> Result<Receipt, HoldError> {
        check_text("reason", &request.reason)?;
        if let Some(r) = &request.reference {
            check_text("reference", r)?;
        }
        if !self.subject_known(tenant, &request.subject_ref).await? {
            return Err(HoldError::UnknownSubject);
        }
        if let Some(decision) = request.decision_id {
            let of_subject = self
                .record_by_event_id(tenant, decision)
                .await?
                .filter(|r| r.event_type == EventType::Decision)
                .and_then(|r| {
                    serde_json::from_str::<Value>(r.payload.as_str())
                        .ok()
                        .and_then(|p| {
                            p.get("subject_ref")
                                .and_then(Value::as_str)
                                .map(str::to_owned)
                        })
                })
                .is_some_and(|s| s == request.subject_ref);
            if !of_subject {
                return Err(HoldError::UnknownDecision(decision.to_string()));
            }
        }
        let mut payload = serde_json::json!({
            "action": "placed",
            "subject_ref": request.subject_ref,
            "reason": request.reason,
        });
        if let Some(d) = request.decision_id {
            payload["decision_id"] = d.to_string().into();
        }
        if let Some(r) = &request.reference {
            payload["reference"] = r.clone().into();
        }
        self.append_hold_record(tenant, &payload).await
    }

    /// Lifts the hold placed at `hold_seq` on `subject`: appends a `legal_hold` record
    /// (`lifted`). Lifting a hold lifted already appends nothing and answers the receipt of
    /// the record that lifted it (`duplicate` true).
    ///
    /// # Errors
    /// [`HoldError::UnknownHold`] when the subject has no hold placed at `hold_seq`, and the
    /// other [`HoldError`]s; nothing is appended then.
    pub async fn lift_hold(
        &self,
        tenant: &TenantId,
        subject: &str,
        hold_seq: u64,
        reason: &str,
    ) -> Result<Receipt, HoldError> {
        check_text("reason", reason)?;
        let payload = serde_json::json!({
            "action": "lifted",
            "subject_ref": subject,
            "reason": reason,
            "hold_seq": hold_seq,
        });
        for _ in 0..2 {
            let hold = self
                .backend()
                .subject_holds(tenant, subject)
                .await?
                .into_iter()
                .find(|h| u64::try_from(h.hold_seq).ok() == Some(hold_seq))
                .ok_or(HoldError::UnknownHold(hold_seq))?;
            if let Some(lifted) = hold.lifted_seq {
                let seq = Sequence::new(u64::try_from(lifted).unwrap_or(0))
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let record = self.record(tenant, seq).await?.ok_or_else(|| {
                    StoreError::Corrupt(format!("legal_hold record {lifted} is missing"))
                })?;
                return Ok(Receipt::of(&record, true));
            }
            match self.append_hold_record(tenant, &payload).await {
                // Lifted by someone else meanwhile: answer with their lift.
                Err(HoldError::Append(AppendError::HoldNotActive { .. })) => continue,
                other => return other,
            }
        }
        Err(HoldError::UnknownHold(hold_seq))
    }

    async fn append_hold_record(
        &self,
        tenant: &TenantId,
        payload: &Value,
    ) -> Result<Receipt, HoldError> {
        let draft = ledger::draft::prepare_client_draft(
            &uuid::Uuid::now_v7().to_string(),
            EventType::LegalHold.as_str(),
            payload,
            &BTreeMap::new(),
            rand::random,
        )
        .map_err(|errors| {
            HoldError::BadText(
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        Ok(self
            .append(tenant, vec![draft])
            .await?
            .pop()
            .ok_or_else(|| StoreError::Corrupt("an append returned no receipt".into()))?)
    }
}
