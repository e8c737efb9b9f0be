//! Erasure that erases (FORMAT.md sections 6 and 11, docs/OPERATIONS.md "Erasure").
//!
//! An `erasure` record names a subject and, optionally, some of its records (`event_ids`) and
//! fields (`fields`). In the transaction that appends it, the appender deletes every sealed value
//! it covers that came before it in the chain, records each as erased by it, and destroys every
//! data key no remaining value uses (`erasure_sql.rs`). The record, its hash and every proof stay
//! valid: values are committed to with salted digests and were never in the hashed bytes.
//!
//! **The journal.** A backup taken before an erasure still holds the erased values and their
//! keys. So every erasure is also written to `<checkpoint dir>/<tenant>.erasures` (one erasure
//! record per line, as in an export), outside the database, once its transaction has committed
//! and before anyone is answered.
//! When the store opens, every journaled erasure the database has not carried out is carried
//! out again, before anything is served: on a restored older database (a backup, a PostgreSQL
//! point-in-time recovery) it erases the values again. The database has carried out an erasure
//! when its chain holds that very record (same number, same hash: the erasure ran in the
//! record's own transaction) or when it marked that record, by number and hash, as re-applied
//! (`erasure_reapplications`). The number alone proves nothing: a restored chain may have given
//! it to another record, and another restore may then bring back values of the first. One that
//! was carried out is not repeated: its values went with it, and repeating it could only reach
//! records appended after it, which a rolled-back chain may have given lower sequence numbers.
//! So a start reads the journal, two lists, and one stored hash per journaled erasure the
//! database lists. A journal that cannot be read
//! holds the tenant: no erasable value of it is served and nothing is appended until it is
//! repaired. Erasures the database knows and the journal lacks (written by another node, or a
//! journal restored from an old copy) are added to it at the same time.
//!
//! **Restatement.** An erasure carried out again is not in the restored chain, which goes on
//! from its head: the erasure's number will name another record. So the values it erases again
//! are not marked as erased by that number (a bundle would name a record that is not the
//! erasure, and fail verification); they wait, withheld, in `reerased_values`. As soon as the
//! tenant may append (when the service starts, or when the rollback the restore caused is
//! acknowledged), the service appends an `erasure` record restating each such erasure: the
//! same subject, fields and legal basis, the records whose values wait named one by one (the
//! lost erasure's own scope, at this later place in the chain, could cover values appended
//! since the restore), a reason naming the lost record by number and hash. Like every
//! erasure, it marks the waiting values it covers as erased by itself, in its own transaction
//! ([`Store::restate_reerased`]). Its event id is derived from what it restates, so that two
//! processes restating the same values append one record.
//!
//! Journaling after the commit keeps each erasure whole or absent: one whose transaction fails
//! (or whose process dies before the commit) erases nothing and is never carried out later,
//! when another record may have taken its sequence number. One committed and then not journaled
//! (the process died in between, or the write failed) was never acknowledged; the database
//! still holds it, and the next start adds it to the journal. A journal write that fails holds
//! the tenant until that start.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use ledger::record::{EventType, Record};
use ledger::types::{EventId, Hash, Sequence, TenantId};

use super::{Store, StoreError};

/// File name extension of a tenant's erasure journal.
pub const JOURNAL_FILE_EXTENSION: &str = "erasures";

/// What one `erasure` record erases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureScope {
    /// The erasure record's sequence number: it erases values of records before it.
    pub erasure_seq: u64,
    /// The subject.
    pub subject_ref: String,
    /// Only these records' values (event ids), when given.
    pub event_ids: Option<Vec<String>>,
    /// Only these fields, when given.
    pub fields: Option<Vec<String>>,
    /// Set when the erasure is carried out again from the journal: the erasure record's hash,
    /// marked in `erasure_reapplications` in the same transaction so that later starts know this
    /// database carried out *this* record, whatever record the chain has at its number now.
    pub reapplied: Option<Hash>,
}

impl ErasureScope {
    /// The scope of an `erasure` record at `seq` with `payload` (a validated erasure payload);
    /// `None` for any other payload.
    pub fn from_payload(seq: u64, payload: &str) -> Option<Self> {
        let value: serde_json::Value = serde_json::from_str(payload).ok()?;
        let strings = |name: &str| -> Option<Vec<String>> {
            value.get(name)?.as_array().map(|items| {
                items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_owned))
                    .collect()
            })
        };
        Some(ErasureScope {
            erasure_seq: seq,
            subject_ref: value.get("subject_ref")?.as_str()?.to_owned(),
            event_ids: strings("event_ids"),
            fields: strings("fields"),
            reapplied: None,
        })
    }

    /// The scope of an `erasure` record; `None` for a record of another type.
    pub fn of_record(record: &Record) -> Option<Self> {
        (record.event_type == EventType::Erasure)
            .then(|| Self::from_payload(record.seq.get(), record.payload.as_str()))
            .flatten()
    }

    /// Whether the whole subject is erased (no records or fields named).
    pub fn whole_subject(&self) -> bool {
        self.event_ids.is_none() && self.fields.is_none()
    }
}

/// The journal file of `tenant` in `dir`.
pub fn journal_file(dir: &Path, tenant: &TenantId) -> PathBuf {
    dir.join(format!("{}.{JOURNAL_FILE_EXTENSION}", tenant.as_str()))
}

/// The tenants that have a journal in `dir`, by the files' names.
fn journaled_tenants(dir: &Path) -> std::io::Result<Vec<TenantId>> {
    let suffix = format!(".{JOURNAL_FILE_EXTENSION}");
    Ok(std::fs::read_dir(dir)?
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            TenantId::parse(name.to_str()?.strip_suffix(&suffix)?).ok()
        })
        .collect())
}

/// Reads a journal: its erasure records, in file order. A missing file is an empty journal.
fn read_journal(path: &Path) -> Result<Vec<Record>, String> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.to_string()),
    };
    let mut out = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("line {}: {e}", n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let record: Record =
            serde_json::from_str(&line).map_err(|e| format!("line {}: {e}", n + 1))?;
        if record.event_type != EventType::Erasure {
            return Err(format!("line {}: not an erasure record", n + 1));
        }
        out.push(record);
    }
    Ok(out)
}

/// Appends `records` to the journal at `path` and makes them durable (the file, and the folder
/// when the file is new).
fn append_journal(path: &Path, records: &[&Record]) -> std::io::Result<()> {
    let existed = path.exists();
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    let mut text = String::new();
    for r in records {
        text.push_str(&serde_json::to_string(r).map_err(std::io::Error::other)?);
        text.push('\n');
    }
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    if !existed && let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The event id and payload of an `erasure` record restating `lost`, a journaled erasure the
/// chain does not hold, for `records`: the records of `tenant` whose values it erased again and
/// which wait for it (at most [`ledger::payload::LIST_ITEMS_MAX`], in chain order). It has the
/// lost erasure's subject, fields and legal basis, names exactly those records (so that a
/// restatement appended later, after the subject has new values, erases nothing else), and
/// has a reason that names the lost erasure ([`restatement_reason_prefix`]).
///
/// Its event id is derived from the tenant, the lost record's hash and every record named, so
/// that every process restating the same values writes the same record: a second attempt
/// (another node starting at the same time) is a duplicate of the first, never a second
/// erasure.
fn restatement(
    tenant: &TenantId,
    lost: &Record,
    records: &[(i64, String)],
) -> Result<(String, serde_json::Value), String> {
    use sha2::Digest as _;
    let mut payload: serde_json::Value =
        serde_json::from_str(lost.payload.as_str()).map_err(|e| e.to_string())?;
    let original = payload
        .get("reason")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut reason = format!(
        "{}, which a restore of the database removed from the chain; its values were erased \
         again from the erasure journal. Its reason: ",
        restatement_reason_prefix(lost)
    );
    // Within the reason's limit: the original may have used all of it.
    let room = ledger::payload::TEXT_BYTES_MAX.saturating_sub(reason.len());
    reason.push_str(&original[..original.floor_char_boundary(room)]);
    payload["reason"] = reason.into();
    payload["event_ids"] = records
        .iter()
        .map(|(_, id)| serde_json::Value::from(id.as_str()))
        .collect();
    let mut digest = sha2::Sha256::new()
        .chain_update(b"auditex/restatement\0")
        .chain_update(tenant.as_str().as_bytes())
        .chain_update(b"\0")
        .chain_update(lost.hash.as_bytes());
    for (_, id) in records {
        digest.update(id.as_bytes());
    }
    let digest = digest.finalize();
    let mut random = [0u8; 10];
    random.copy_from_slice(&digest[..10]);
    let event_id = uuid::Builder::from_unix_timestamp_millis(
        lost.captured_at_us.unix_micros() / 1000,
        &random,
    )
    .into_uuid();
    Ok((event_id.to_string(), payload))
}

/// How the reason of every restatement of `lost` begins.
fn restatement_reason_prefix(lost: &Record) -> String {
    format!(
        "Restates erasure seq {} (record {})",
        lost.seq,
        lost.hash.to_hex()
    )
}

/// The draft of a new `erasure` record with `payload`, under a fresh event id; the ledger's
/// objections joined into one message.
pub(crate) fn erasure_draft(
    payload: &serde_json::Value,
) -> Result<ledger::draft::ClientDraft, String> {
    erasure_draft_with_id(&uuid::Uuid::now_v7().to_string(), payload)
}

/// [`erasure_draft`] under `event_id`.
fn erasure_draft_with_id(
    event_id: &str,
    payload: &serde_json::Value,
) -> Result<ledger::draft::ClientDraft, String> {
    ledger::draft::prepare_client_draft(
        event_id,
        "erasure",
        payload,
        &BTreeMap::new(),
        rand::random,
    )
    .map_err(|errors| {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// The journal's state in a running store: its folder, the tenants whose journal could not be
/// carried out, and a lock so journal writes of one process do not interleave.
#[derive(Debug)]
pub(crate) struct ErasureJournal {
    dir: Option<PathBuf>,
    blocked: std::sync::Mutex<BTreeMap<TenantId, String>>,
    write: std::sync::Mutex<()>,
    /// One erasure request at a time per tenant (see [`Store::erase_subject`]).
    requests: std::sync::Mutex<BTreeMap<TenantId, std::sync::Arc<tokio::sync::Mutex<()>>>>,
}

impl ErasureJournal {
    pub(crate) fn new(dir: Option<PathBuf>) -> Self {
        ErasureJournal {
            dir,
            blocked: std::sync::Mutex::new(BTreeMap::new()),
            write: std::sync::Mutex::new(()),
            requests: std::sync::Mutex::new(BTreeMap::new()),
        }
    }

    fn blocked(&self) -> std::sync::MutexGuard<'_, BTreeMap<TenantId, String>> {
        self.blocked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Journals `records` (the erasure records of a group just committed). Without a folder
    /// configured there is no journal (and `auditex serve` warns that rollback protection is off).
    /// A write that fails holds the tenant (see the module documentation).
    pub(crate) fn record(&self, tenant: &TenantId, records: &[&Record]) -> Result<(), StoreError> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        if records.is_empty() {
            return Ok(());
        }
        let path = journal_file(dir, tenant);
        let _one_writer = self
            .write
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        append_journal(&path, records).map_err(|e| {
            // Committed but not journaled: nothing more is served or appended for the tenant
            // until the next start journals it from the database.
            let problem = format!(
                "cannot write the erasure journal {}: {e}; the erasure is committed and is \
                 journaled when the service next starts",
                path.display()
            );
            self.blocked().insert(tenant.clone(), problem.clone());
            StoreError::ErasureJournal {
                tenant: tenant.as_str().to_owned(),
                problem,
            }
        })
    }

    /// Refuses when `tenant`'s journal could not be carried out.
    pub(crate) fn refuse_if_blocked(&self, tenant: &TenantId) -> Result<(), StoreError> {
        match self.blocked().get(tenant) {
            None => Ok(()),
            Some(problem) => Err(StoreError::ErasureJournal {
                tenant: tenant.as_str().to_owned(),
                problem: problem.clone(),
            }),
        }
    }

    /// The tenants held because their journal could not be carried out, with the reason.
    pub(crate) fn blocked_tenants(&self) -> BTreeMap<TenantId, String> {
        self.blocked().clone()
    }
}

impl Store {
    /// Waits for the tenant's turn to run an erasure request.
    pub(crate) async fn erasure_lock(&self, tenant: &TenantId) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self
            .erasure_journal()
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(tenant.clone())
            .or_default()
            .clone();
        lock.lock_owned().await
    }

    /// Carries out every journaled erasure again and adds the database's erasures the journal
    /// lacks; runs when the store opens, before anything is served. A tenant whose journal
    /// cannot be read or carried out is held (see [`StoreError::ErasureJournal`]).
    pub(crate) async fn reapply_erasure_journals(&self) -> Result<(), StoreError> {
        let Some(dir) = self.erasure_journal().dir.clone() else {
            return Ok(());
        };
        let mut tenants: Vec<TenantId> = self.tenants().await?;
        for t in journaled_tenants(&dir)
            .map_err(|e| StoreError::Witness(format!("cannot read {}: {e}", dir.display())))?
        {
            if !tenants.contains(&t) {
                tenants.push(t);
            }
        }
        for tenant in tenants {
            if let Err(problem) = self.reapply_journal(&dir, &tenant).await {
                tracing::error!(tenant = %tenant, problem = %problem,
                    "the erasure journal cannot be carried out: the tenant's erasable values are withheld and appends refused");
                self.erasure_journal()
                    .blocked()
                    .insert(tenant.clone(), problem);
            }
        }
        Ok(())
    }

    async fn reapply_journal(&self, dir: &Path, tenant: &TenantId) -> Result<(), String> {
        let path = journal_file(dir, tenant);
        let journaled = read_journal(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if !journaled.is_empty()
            && !self
                .tenant_exists(tenant)
                .await
                .map_err(|e| e.to_string())?
        {
            return Err(format!(
                "{} lists erasures of a tenant this database does not hold",
                path.display()
            ));
        }
        // The sequence numbers of the erasures this database lists as carried out, each in the
        // transaction that appended it or in a re-application from the journal.
        let mut in_database = std::collections::BTreeSet::new();
        let mut after = None;
        loop {
            let page = self
                .backend()
                .erasures_after(tenant, after, 1000)
                .await
                .map_err(|e| e.to_string())?;
            let Some(last) = page.last() else { break };
            after = Some(*last);
            in_database.extend(page.into_iter().filter_map(|s| u64::try_from(s).ok()));
        }
        // The journaled erasures it carried out again, by number *and hash*.
        let mut marks = std::collections::BTreeSet::new();
        let mut after = None;
        loop {
            let page = self
                .backend()
                .reapplied_erasures(tenant, after.clone(), 1000)
                .await
                .map_err(|e| e.to_string())?;
            let Some(last) = page.last() else { break };
            after = Some(last.clone());
            marks.extend(page);
        }
        // The hash of the chain's record at each listed number that the journal also names.
        let mut chain_hash: BTreeMap<u64, Option<Vec<u8>>> = BTreeMap::new();
        let mut journaled_at: BTreeMap<u64, Vec<Hash>> = BTreeMap::new();
        let mut reapplied = 0u64;
        for record in &journaled {
            if record.tenant != *tenant {
                return Err(format!(
                    "{}: erasure seq {} belongs to tenant {}",
                    path.display(),
                    record.seq,
                    record.tenant
                ));
            }
            let mut scope = ErasureScope::of_record(record).ok_or_else(|| {
                format!(
                    "{}: erasure seq {} has no subject_ref",
                    path.display(),
                    record.seq
                )
            })?;
            let seq = record.seq.get();
            journaled_at.entry(seq).or_default().push(record.hash);
            // Carried out already when the chain holds this very record (it was carried out in
            // the transaction that appended it), or when it was re-applied here before. A number
            // alone proves nothing: after a restore the chain may have given it to another
            // record, and repeating an erasure that was carried out could reach values appended
            // after it; skipping one that was not would bring erased values back.
            if in_database.contains(&seq) {
                if let std::collections::btree_map::Entry::Vacant(slot) = chain_hash.entry(seq) {
                    slot.insert(
                        self.chain_hash_at(tenant, seq)
                            .await
                            .map_err(|e| e.to_string())?,
                    );
                }
                if chain_hash.get(&seq).and_then(Option::as_deref)
                    == Some(record.hash.as_bytes().as_slice())
                {
                    continue;
                }
            }
            let db_seq = i64::try_from(seq).map_err(|e| e.to_string())?;
            if marks.contains(&(db_seq, record.hash.as_bytes().to_vec())) {
                continue;
            }
            scope.reapplied = Some(record.hash);
            reapplied += self
                .apply_erasure(tenant, &scope)
                .await
                .map_err(|e| e.to_string())?;
        }
        if reapplied > 0 {
            tracing::warn!(tenant = %tenant, values = reapplied, journal = %path.display(),
                "erased values again that the database held although the erasure journal had erased them (a restored backup?)");
            // As after any erasure: the log must not keep the values' old page images.
            self.truncate_log_after_erasure().await;
        }
        // Erasures committed by another node, or missing from a journal restored from a copy.
        let mut missing = Vec::new();
        for seq in &in_database {
            // Known from the loop above: the journal holds the chain's record at this number.
            if let (Some(Some(hash)), Some(hashes)) = (chain_hash.get(seq), journaled_at.get(seq))
                && hashes
                    .iter()
                    .any(|h| h.as_bytes().as_slice() == hash.as_slice())
            {
                continue;
            }
            let at = Sequence::new(*seq).map_err(|e| e.to_string())?;
            // Only the chain's own erasure at that number, and only if the journal lacks it: a
            // row left by a re-application at a number the chain has since given to another
            // record must not put that record in the journal.
            if let Some(r) = self.record(tenant, at).await.map_err(|e| e.to_string())?
                && ErasureScope::of_record(&r).is_some()
                && !journaled_at
                    .get(seq)
                    .is_some_and(|hashes| hashes.contains(&r.hash))
            {
                missing.push(r);
            }
        }
        if !missing.is_empty() {
            let refs: Vec<&Record> = missing.iter().collect();
            self.erasure_journal()
                .record(tenant, &refs)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Restates, as new `erasure` records of this chain, the journaled erasures whose values
    /// this database erased again and holds waiting for a record (`reerased_values`; see
    /// [`super::erasure_sql::ErasureSql::erase`]). Each restatement has the lost erasure's
    /// subject, fields and legal basis, names the records whose values wait for it (up to
    /// a list's limit of them per record), and has a reason naming the lost erasure by number
    /// and hash; its transaction marks the waiting values it covers as erased by it, so bundles
    /// and packages name a record that is in the chain and is the erasure. Its event id is
    /// derived from what it restates, so restating twice (two nodes, a retry) appends it once.
    /// Runs when the service starts (for tenants that may append) and after a rollback is
    /// acknowledged; a tenant that may not append yet is left for then, and a store without
    /// the rollback guard (the evidence commands) restates nothing. An erasure an active legal
    /// hold now forbids is not restated: its values stay erased and withheld (logged). One
    /// that fails is logged and the others are restated all the same.
    ///
    /// # Errors
    /// [`super::AppendError`] when the journal cannot be read or an append fails for another
    /// reason than a hold.
    pub(crate) async fn restate_reerased(
        &self,
        tenant: &TenantId,
    ) -> Result<u64, super::AppendError> {
        let Some(dir) = self.erasure_journal().dir.clone() else {
            return Ok(0);
        };
        // Without the rollback guard (the evidence commands, which sign nothing) a rolled-back
        // chain is not held, and a record appended to it would fork it.
        if !self.rollback_guard().is_on()
            || self.refuse_if_rolled_back(tenant).is_err()
            || self.backend().reerased_count(tenant, None).await? == 0
        {
            return Ok(0);
        }
        let path = journal_file(&dir, tenant);
        let journaled = read_journal(&path).map_err(|e| StoreError::ErasureJournal {
            tenant: tenant.as_str().to_owned(),
            problem: format!("{}: {e}", path.display()),
        })?;
        // Every waiting value is below the chain's head; the restatements come after it.
        let head = self.tree_size(tenant).await?.get();
        let mut restated = 0;
        let mut failed = None;
        for lost in &journaled {
            // The other lost erasures are restated all the same.
            match self.restate_one(tenant, lost, head).await {
                Ok(n) => restated += n,
                Err(super::AppendError::LegalHold { hold_seq, .. }) => {
                    tracing::error!(tenant = %tenant, lost_seq = lost.seq.get(), hold_seq,
                        "an erasure a restore removed from the chain is not restated: a legal hold now holds its subject; its values stay erased and are withheld");
                }
                Err(e) => {
                    tracing::error!(tenant = %tenant, lost_seq = lost.seq.get(), error = %e,
                        "cannot restate an erasure a restore removed from the chain; its values stay erased and are withheld");
                    failed.get_or_insert(e);
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(restated),
        }
    }

    /// The hash of the chain's record at `seq`, if it has one.
    async fn chain_hash_at(
        &self,
        tenant: &TenantId,
        seq: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .backend()
            .record_hashes(tenant, seq, seq.saturating_add(1))
            .await?
            .into_iter()
            .next())
    }

    /// Restates `lost` if the chain lacks it and values it erased again wait for it, each
    /// below `head`; how many records were appended.
    async fn restate_one(
        &self,
        tenant: &TenantId,
        lost: &Record,
        head: u64,
    ) -> Result<u64, super::AppendError> {
        let in_chain = self.chain_hash_at(tenant, lost.seq.get()).await?.as_deref()
            == Some(lost.hash.as_bytes().as_slice());
        let Some(mut scope) = ErasureScope::of_record(lost).filter(|_| !in_chain) else {
            return Ok(0);
        };
        scope.erasure_seq = head;
        // Only the values this erasure erased again: after two restores, an erasure restated
        // after the first is not in the chain either, and its scope may cover values a later,
        // narrower erasure erased again.
        scope.reapplied = Some(lost.hash);
        // Named one by one: the scope as the lost erasure wrote it could, at this later place
        // in the chain, also cover values appended since the restore.
        let waiting = self.backend().reerased_records(tenant, &scope).await?;
        let mut restated = 0;
        for records in waiting.chunks(ledger::payload::LIST_ITEMS_MAX) {
            let (event_id, payload) =
                restatement(tenant, lost, records).map_err(StoreError::Corrupt)?;
            let draft = erasure_draft_with_id(&event_id, &payload).map_err(StoreError::Corrupt)?;
            let receipts = match self.append(tenant, vec![draft]).await {
                Ok(receipts) => receipts,
                Err(super::AppendError::Conflict { .. }) => {
                    // The id is taken by another record. If that is this erasure's restatement
                    // (of other records: another process restated from a different set of
                    // waiting values), nothing is left to do; anything else took the id first,
                    // and the restatement goes under a fresh one.
                    let parsed = EventId::parse(&event_id)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    let prefix = restatement_reason_prefix(lost);
                    let restates_it = self
                        .record_by_event_id(tenant, parsed)
                        .await?
                        .filter(|r| r.event_type == EventType::Erasure)
                        .and_then(|r| {
                            serde_json::from_str::<serde_json::Value>(r.payload.as_str()).ok()
                        })
                        .and_then(|p| p.get("reason")?.as_str().map(|r| r.starts_with(&prefix)))
                        .unwrap_or(false);
                    if restates_it {
                        continue;
                    }
                    tracing::warn!(tenant = %tenant, lost_seq = lost.seq.get(), event_id,
                        "the event id derived for a restatement is taken by another record; restating under a fresh one");
                    let draft = erasure_draft(&payload).map_err(StoreError::Corrupt)?;
                    self.append(tenant, vec![draft]).await?
                }
                Err(e) => return Err(e),
            };
            match receipts.first() {
                Some(r) if !r.duplicate => {
                    restated += 1;
                    tracing::warn!(tenant = %tenant, lost_seq = lost.seq.get(), seq = r.seq,
                        records = records.len(),
                        "restated an erasure a restore removed from the chain");
                }
                Some(r) => {
                    tracing::info!(tenant = %tenant, lost_seq = lost.seq.get(), seq = r.seq,
                        "the restatement of an erasure a restore removed is in the chain already");
                }
                None => {}
            }
        }
        Ok(restated)
    }

    /// [`Store::restate_reerased`] for every tenant with an erasure journal; failures are
    /// logged and tried again at the next start. The service calls it when it starts, before
    /// it takes requests.
    pub async fn restate_reerased_all(&self) {
        let Some(dir) = self.erasure_journal().dir.clone() else {
            return;
        };
        let Ok(tenants) = journaled_tenants(&dir) else {
            return;
        };
        for tenant in tenants {
            if let Err(e) = self.restate_reerased(&tenant).await {
                tracing::error!(tenant = %tenant, error = %e,
                    "cannot restate the erasures a restore removed from the chain; their values stay erased and are withheld; tried again at the next start");
            }
        }
    }

    /// Carries out `scope` in a transaction of its own (the journal's re-application).
    async fn apply_erasure(
        &self,
        tenant: &TenantId,
        scope: &ErasureScope,
    ) -> Result<u64, StoreError> {
        self.backend().mark_log()?;
        let mut tx = self.backend().begin_append(tenant).await?;
        let n = tx.erase(tenant, scope).await?;
        tx.commit().await?;
        Ok(n)
    }
}
