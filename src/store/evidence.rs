//! Evidence for regulators, built from stored data: the chain-of-custody bundle of one decision
//! (FORMAT.md section 11) and the C2SP tlog-proof file of one record (section 10). The export, the
//! third kind, is in `export.rs`; the subject access package, whose entries are built here like a
//! bundle's, in `package.rs`.
//!
//! Both are pinned to the latest published checkpoint: every inclusion proof is against it, and a
//! record it does not cover yet (appended less than a checkpoint interval ago) is refused with
//! [`EvidenceError::NotYetCheckpointed`] rather than proven against an unsigned tree. Records are
//! read with the store's read-back hash check, so a damaged record is refused, never proven.

use ledger::bundle::{Bundle, BundleEntry, BundleFormat, ENTRIES_MAX, ErasedField};
use ledger::keys::KeyRing;
use ledger::note::VerifierKey;
use ledger::payload::linked_decisions;
use ledger::proof_file::TlogProof;
use ledger::record::{EventType, FieldName, Record};
use ledger::types::{EventId, Sequence, TenantId, TreeSize};
use ledger::verify::tlog_proof_for;

use super::{RANGE_RECORDS_MAX, Store, StoreError, StoredCheckpoint};

/// Why evidence could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// No decision of the tenant has this event id.
    #[error("no record with event id {0}")]
    EventNotFound(EventId),
    /// The event id names a record that is not a decision.
    #[error("event {event_id} is a {event_type} event, not a decision")]
    NotADecision {
        /// The event id.
        event_id: EventId,
        /// Its type.
        event_type: EventType,
    },
    /// The tenant holds no record concerning this subject (also what another tenant's subject
    /// gets).
    #[error("unknown subject")]
    UnknownSubject,
    /// No record has this sequence number.
    #[error("no record {0}")]
    RecordNotFound(u64),
    /// The tenant has no published checkpoint yet (it has no records).
    #[error("no checkpoint has been published yet: the tenant has no records to prove")]
    NoCheckpoint,
    /// The record is newer than the latest checkpoint; it becomes provable within a second.
    #[error(
        "record {seq} is not covered by the latest checkpoint (tree size {size}) yet; retry in a second"
    )]
    NotYetCheckpointed {
        /// The record.
        seq: u64,
        /// The latest checkpoint's size.
        size: u64,
    },
    /// The decision has more follow-ups than a bundle may hold.
    #[error("the decision has more than {max} linked records; a bundle holds at most {max}")]
    TooManyEntries {
        /// [`ENTRIES_MAX`].
        max: usize,
    },
    /// A requested position lies outside the ledger.
    #[error("{0}")]
    OutOfRange(String),
    /// The proof file could not be built (record too large for a tlog-proof's extra data).
    #[error("cannot build the proof file: {0}")]
    ProofFile(String),
    /// Writing the evidence failed.
    #[error("writing the evidence failed: {0}")]
    Write(#[source] std::io::Error),
    /// The store failed, or holds damaged data.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    /// The chain-of-custody bundle of the decision `decision`: the decision, every record that
    /// links to it (by `decision_id` or `decision_ids`), each with its inclusion proof in the
    /// latest checkpoint and its erasable values (those not erased), the key history and the
    /// checkpoint verifier keys.
    ///
    /// Finding the follow-ups reads the records after the decision up to the checkpoint, a page
    /// at a time (constant memory; time linear in the records after the decision).
    ///
    /// # Errors
    /// [`EvidenceError`] when the decision is unknown or not yet checkpointed, has too many
    /// follow-ups, or the store fails or holds damaged data.
    pub async fn custody_bundle(
        &self,
        tenant: &TenantId,
        decision: EventId,
    ) -> Result<Bundle, EvidenceError> {
        let ring = self.key_history(tenant).await?;
        let checkpoint = self.pinned_checkpoint(tenant).await?;
        let size = checkpoint.size.get();
        let first = self
            .record_by_event_id(tenant, decision)
            .await?
            .ok_or(EvidenceError::EventNotFound(decision))?;
        if first.event_type != EventType::Decision {
            return Err(EvidenceError::NotADecision {
                event_id: decision,
                event_type: first.event_type,
            });
        }
        let decision_seq = first.seq.get();
        if decision_seq >= size {
            return Err(EvidenceError::NotYetCheckpointed {
                seq: decision_seq,
                size,
            });
        }
        let mut records = vec![first];
        let mut next = decision_seq + 1;
        while next < size {
            let from = Sequence::new(next).map_err(|e| EvidenceError::OutOfRange(e.to_string()))?;
            let page = self
                .records(tenant, from, RANGE_RECORDS_MAX.min(size - next))
                .await?;
            let Some(last) = page.last() else { break };
            next = last.seq.get() + 1;
            for record in page {
                if record.seq.get() < size && links_to(&record, decision) {
                    if records.len() == ENTRIES_MAX {
                        return Err(EvidenceError::TooManyEntries { max: ENTRIES_MAX });
                    }
                    records.push(record);
                }
            }
        }
        // The erasures that erased any of these records' values are entries too (after the
        // records they erase from), so each erased mark is proven by a signed record rather than
        // stated by the service.
        let mut erased_by = Vec::with_capacity(records.len());
        let mut erasures = std::collections::BTreeSet::new();
        for record in &records {
            let erased = self.erased_fields(tenant, record.seq).await?;
            erasures.extend(erased.values().copied().filter(|s| *s < size));
            erased_by.push(erased);
        }
        let mut held: std::collections::BTreeSet<u64> =
            records.iter().map(|r| r.seq.get()).collect();
        for seq in erasures {
            if held.insert(seq) {
                if records.len() == ENTRIES_MAX {
                    return Err(EvidenceError::TooManyEntries { max: ENTRIES_MAX });
                }
                let at =
                    Sequence::new(seq).map_err(|e| EvidenceError::OutOfRange(e.to_string()))?;
                let record = self.record(tenant, at).await?.ok_or_else(|| {
                    StoreError::Corrupt(format!("erasure record {seq} is missing"))
                })?;
                records.push(record);
                erased_by.push(std::collections::BTreeMap::new());
            }
        }
        let mut order: Vec<usize> = (0..records.len()).collect();
        order.sort_by_key(|i| records[*i].seq);
        let mut slots: Vec<Option<(Record, std::collections::BTreeMap<_, u64>)>> =
            records.into_iter().zip(erased_by).map(Some).collect();
        let mut entries = Vec::with_capacity(slots.len());
        for i in order {
            let Some((record, erased)) = slots[i].take() else {
                continue;
            };
            entries.push(
                self.evidence_entry(tenant, record, erased, checkpoint.size)
                    .await?,
            );
        }
        let origin = self.origin(tenant).await?;
        let verifier_keys = verifier_keys(&origin, &ring)?;
        Ok(Bundle {
            format: BundleFormat,
            tenant: tenant.clone(),
            origin,
            decision_event_id: decision,
            checkpoint: checkpoint.signed_note,
            keys: ring.intervals().to_vec(),
            verifier_keys,
            entries,
        })
    }

    /// A record as an entry of a bundle or package: with its inclusion proof in the tree of
    /// `size`, its erasable values still held, and the fields of `erased` (field → seq of the
    /// erasure that erased it) that have no value marked erased.
    pub(crate) async fn evidence_entry(
        &self,
        tenant: &TenantId,
        record: Record,
        erased: std::collections::BTreeMap<FieldName, u64>,
        size: TreeSize,
    ) -> Result<BundleEntry, EvidenceError> {
        let seq = record.seq;
        let inclusion_proof = self.inclusion_proof(tenant, seq.leaf_index(), size).await?;
        let values = self.erasable_values(tenant, seq).await?;
        let erased: std::collections::BTreeMap<_, _> = erased
            .into_iter()
            .filter(|(field, _)| !values.contains_key(field))
            .map(|(field, by)| {
                Sequence::new(by)
                    .map(|erasure_seq| (field, ErasedField { erasure_seq }))
                    .map_err(|e| EvidenceError::OutOfRange(e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        Ok(BundleEntry {
            record,
            inclusion_proof,
            erasable_values: (!values.is_empty()).then_some(values),
            erased: (!erased.is_empty()).then_some(erased),
        })
    }

    /// The C2SP tlog-proof file of record `seq`: the record in its `extra` data, its inclusion
    /// proof and the latest checkpoint.
    ///
    /// # Errors
    /// [`EvidenceError`] when the record does not exist or is not yet checkpointed, or the store
    /// fails or holds damaged data.
    pub async fn tlog_proof(
        &self,
        tenant: &TenantId,
        seq: Sequence,
    ) -> Result<TlogProof, EvidenceError> {
        let checkpoint = self.pinned_checkpoint(tenant).await?;
        let record: Record = self
            .record(tenant, seq)
            .await?
            .ok_or(EvidenceError::RecordNotFound(seq.get()))?;
        let size = checkpoint.size.get();
        if seq.get() >= size {
            return Err(EvidenceError::NotYetCheckpointed {
                seq: seq.get(),
                size,
            });
        }
        let proof = self
            .inclusion_proof(tenant, seq.leaf_index(), TreeSize::new(size))
            .await?;
        tlog_proof_for(&record, proof, checkpoint.signed_note)
            .map_err(|e| EvidenceError::ProofFile(e.to_string()))
    }

    /// The latest checkpoint, which evidence is proven against.
    pub(super) async fn pinned_checkpoint(
        &self,
        tenant: &TenantId,
    ) -> Result<StoredCheckpoint, EvidenceError> {
        if !self.tenant_exists(tenant).await? {
            return Err(StoreError::UnknownTenant.into());
        }
        let latest = self
            .latest_checkpoint(tenant)
            .await?
            .ok_or(EvidenceError::NoCheckpoint)?;
        // With the witnesses' cosignatures collected so far (see `witnesses.rs`).
        Ok(self.with_cosignatures(tenant, latest).await?)
    }
}

/// The C2SP verifier keys of every checkpoint-signing key of the history, named `origin`, as the
/// `verifier_keys` of a bundle, export or package list them.
pub(super) fn verifier_keys(origin: &str, ring: &KeyRing) -> Result<Vec<String>, StoreError> {
    ring.intervals()
        .iter()
        .map(|k| VerifierKey::new(origin, k.public_key).map(|v| v.to_string()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StoreError::Corrupt(format!("checkpoint key of {origin}: {e}")))
}

/// Whether `record` is a follow-up of the decision `decision` (FORMAT.md section 7).
fn links_to(record: &Record, decision: EventId) -> bool {
    match record.payload.to_value() {
        Ok(serde_json::Value::Object(map)) => {
            linked_decisions(record.event_type, &map).contains(&decision)
        }
        _ => false,
    }
}
