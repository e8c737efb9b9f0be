//! The full-chain integrity check that auditors run inside the service.
//!
//! It trusts nothing the write path keeps: it re-reads every record row from the database (no
//! read-back shortcut, no cached tree), recomputes every hash, checks every signature against the
//! stored key history and every link, sequence number and capture time, recomputes the Merkle
//! tree as it goes, and compares the root at the size of **every** published checkpoint with that
//! checkpoint's signed root. Consecutive checkpoints must also be linked by the consistency proof
//! the store serves. Checkpoints an auditor saw before (`seen_checkpoints`, for example the one
//! in a previous report) expose a database that was rolled back or forked.
//!
//! The walk is paged and pipelined: the next page is read while the previous one is verified on a
//! blocking thread, so one core verifies while the other keeps serving appends. The caller gets
//! progress through a `watch` channel and may cancel between pages. The result names the first
//! failure in chain order — sequence number, event id, what was expected and what was found — and
//! [`Store::append_integrity_check`] appends it to the ledger as an `integrity_check` record.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use ledger::checkpoint::{Checkpoint, open_checkpoint};
use ledger::keys::{KeyId, KeyRing};
use ledger::merkle::leaf_hash;
use ledger::note::VerifierKey;
use ledger::record::{EventType, Record};
use ledger::types::{EventId, Hash, Sequence, TenantId, TreeSize};
use ledger::verify::{ChainError, ChainVerifier, LeafRange, verify_checkpoint_consistency};
use serde::Serialize;
use tokio::sync::watch;

use super::{AppendError, Receipt, ServiceDraft, Store, StoreError, StoredCheckpoint};

/// Records read from the database and verified per page.
pub const INTEGRITY_PAGE_RECORDS: u64 = 4096;

/// Checkpoints read from the database per query.
const CHECKPOINT_PAGE_CHECKPOINTS: u64 = 1000;

/// Most checkpoints an auditor may pass as seen before.
pub const SEEN_CHECKPOINTS_MAX: usize = 1000;

/// A cancellation flag shared between the caller and a running check: cheap to clone, checked
/// between pages.
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    /// A flag that is not set.
    pub fn new() -> Self {
        CancelFlag::default()
    }

    /// Asks the check to stop at the next page boundary.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether [`CancelFlag::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// How far a running check has got.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct IntegrityProgress {
    /// Records verified so far.
    pub checked: u64,
    /// Records the check will verify (the chain, or the latest checkpoint if that is longer).
    pub total: u64,
    /// Published checkpoints compared so far.
    pub checkpoints_checked: u64,
    /// Records verified per second so far.
    pub records_per_second: f64,
    /// Estimated seconds left at the current rate.
    pub eta_seconds: Option<u64>,
    /// Whether the check has ended (passed, failed or cancelled).
    pub done: bool,
}

/// What the caller wants besides the tenant.
#[derive(Debug, Clone, Default)]
pub struct IntegrityOptions {
    /// Signed checkpoints (C2SP notes) the auditor saw before, for example in an earlier report
    /// or from a witness. A smaller tree now is a rollback; another root at the same size a fork.
    pub seen_checkpoints: Vec<String>,
    /// Set it to stop the check; the report then says `cancelled`.
    pub cancel: CancelFlag,
    /// Receives progress after every page.
    pub progress: Option<watch::Sender<IntegrityProgress>>,
}

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IntegrityOutcome {
    /// Everything verified.
    Passed,
    /// Something did not verify; see [`IntegrityReport::first_failure`].
    Failed,
    /// Stopped by the caller before the end.
    Cancelled,
}

impl IntegrityOutcome {
    /// The payload value (`passed`, `failed`, `cancelled`).
    pub fn as_str(self) -> &'static str {
        match self {
            IntegrityOutcome::Passed => "passed",
            IntegrityOutcome::Failed => "failed",
            IntegrityOutcome::Cancelled => "cancelled",
        }
    }
}

pub use ledger::failure::{IntegrityFailure, IntegrityFailureKind};

/// The latest checkpoint the check compared against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckedCheckpoint {
    /// Its tree size.
    pub size: u64,
    /// Its root hash.
    pub root: Hash,
}

/// The result of a check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntegrityReport {
    /// The tenant.
    pub tenant: TenantId,
    /// How it ended.
    pub outcome: IntegrityOutcome,
    /// Records in the range checked: from 0 to the chain's head (or the latest checkpoint's size
    /// if that is larger) when the check started.
    pub records_total: u64,
    /// Records verified (from sequence 0).
    pub records_checked: u64,
    /// The latest published checkpoint when the check started.
    pub checkpoint: Option<CheckedCheckpoint>,
    /// Published checkpoints compared with the recomputed tree.
    pub checkpoints_checked: u64,
    /// Checkpoints seen before that were compared.
    pub seen_checkpoints_checked: u64,
    /// The first failure, when the outcome is `failed`.
    pub first_failure: Option<IntegrityFailure>,
    /// When the check started, µs since the Unix epoch.
    pub started_at_us: u64,
    /// When it ended, µs since the Unix epoch.
    pub finished_at_us: u64,
}

impl IntegrityReport {
    /// The payload of the `integrity_check` record that files this report.
    pub fn record_payload(&self) -> serde_json::Value {
        let mut payload = serde_json::json!({
            "outcome": self.outcome.as_str(),
            "from_seq": 0,
            "records_total": self.records_total,
            "records_checked": self.records_checked,
            "checkpoints_checked": self.checkpoints_checked,
            "seen_checkpoints_checked": self.seen_checkpoints_checked,
            "started_at_us": self.started_at_us,
            "finished_at_us": self.finished_at_us,
        });
        if let Some(c) = &self.checkpoint {
            payload["checkpoint"] = serde_json::json!({ "size": c.size, "root": c.root });
        }
        if let Some(f) = &self.first_failure {
            payload["first_failure"] = serde_json::to_value(f).unwrap_or_default();
        }
        payload
    }
}

impl Store {
    /// Checks the tenant's whole ledger from the database alone (see the module documentation).
    ///
    /// The check covers the records and checkpoints that existed when it started; records
    /// appended meanwhile are left for the next check.
    ///
    /// # Errors
    /// [`StoreError`] when the database cannot be read, the tenant is unknown, or a seen
    /// checkpoint is malformed or not signed by one of the tenant's keys. Tampering is never an
    /// error: it is a report whose outcome is `failed`.
    pub async fn check_integrity(
        &self,
        tenant: &TenantId,
        options: IntegrityOptions,
    ) -> Result<IntegrityReport, StoreError> {
        let clock = self.config().clock.clone();
        let started_at_us = clock.now_unix_micros();
        let started = Instant::now();
        let ring = self.key_history(tenant).await?;
        let origin = self.origin(tenant).await?;
        let vkeys = ring
            .intervals()
            .iter()
            .map(|k| VerifierKey::new(&origin, k.public_key))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Corrupt(format!("checkpoint key of {origin}: {e}")))?;
        let seen = open_seen(&options.seen_checkpoints, &vkeys, &origin)?;
        let chain_size = self.tree_size(tenant).await?.get();
        let latest = self.latest_checkpoint(tenant).await?;
        let latest_size = latest.as_ref().map_or(0, |c| c.size.get());
        let end = chain_size.max(latest_size);

        let mut walk = Walk::new(tenant.clone(), ring, vkeys, origin, seen);
        let mut cursor = CheckpointCursor::new(latest_size);
        let progress = Progress::new(options.progress, end, started);
        let mut cancelled = false;
        let mut page = self.fetch_page(tenant, 0, end, &mut cursor).await?;
        while !page.rows.is_empty() {
            if options.cancel.is_cancelled() {
                cancelled = true;
                break;
            }
            let next_from = page.next_from;
            let verify = tokio::task::spawn_blocking(move || {
                walk.verify_page(page);
                walk
            });
            let (verified, next) =
                tokio::join!(verify, self.fetch_page(tenant, next_from, end, &mut cursor));
            walk = verified.map_err(|e| {
                StoreError::Corrupt(format!("the integrity check's verifier thread failed: {e}"))
            })?;
            progress.update(walk.checked, walk.checkpoints_checked, false);
            if walk.failure.is_some() {
                break;
            }
            page = next?;
        }
        if !cancelled && walk.failure.is_none() {
            let rest = cursor.remaining(self, tenant).await?;
            walk.finish(rest, latest_size);
        }
        progress.update(walk.checked, walk.checkpoints_checked, true);
        let outcome = if walk.failure.is_some() {
            IntegrityOutcome::Failed
        } else if cancelled {
            IntegrityOutcome::Cancelled
        } else {
            IntegrityOutcome::Passed
        };
        Ok(IntegrityReport {
            tenant: tenant.clone(),
            outcome,
            records_total: end,
            records_checked: walk.checked,
            checkpoint: latest.map(|c| CheckedCheckpoint {
                size: c.size.get(),
                root: c.root,
            }),
            checkpoints_checked: walk.checkpoints_checked,
            seen_checkpoints_checked: walk.seen_checked,
            first_failure: walk.failure,
            started_at_us,
            finished_at_us: clock.now_unix_micros(),
        })
    }

    /// Appends `report` to the tenant's ledger as an `integrity_check` record (signed and
    /// chained like every other record) and returns its receipt.
    ///
    /// # Errors
    /// [`AppendError`] as for any append.
    pub async fn append_integrity_check(
        &self,
        tenant: &TenantId,
        report: &IntegrityReport,
    ) -> Result<Receipt, AppendError> {
        let event_id = uuid::Uuid::now_v7().to_string();
        let draft = ServiceDraft::prepare(
            &event_id,
            EventType::IntegrityCheck,
            &report.record_payload(),
        )
        .map_err(|e| AppendError::Store(StoreError::Corrupt(e.to_string())))?;
        let mut receipts = self.append_service(tenant, vec![draft]).await?;
        receipts
            .pop()
            .ok_or_else(|| AppendError::Store(StoreError::Corrupt("no receipt returned".into())))
    }

    /// Reads the records `[from, min(from + page, end))` as stored, and the published
    /// checkpoints whose size falls in the page, each with the consistency proof from the
    /// checkpoint before it.
    async fn fetch_page(
        &self,
        tenant: &TenantId,
        from: u64,
        end: u64,
        cursor: &mut CheckpointCursor,
    ) -> Result<Page, StoreError> {
        let limit = INTEGRITY_PAGE_RECORDS.min(end.saturating_sub(from));
        if limit == 0 {
            return Ok(Page::default());
        }
        let from_seq = Sequence::new(from).map_err(|e| StoreError::OutOfRange(e.to_string()))?;
        let rows = self
            .backend()
            .records_range(tenant, from_seq, limit)
            .await?;
        let mut next_from = from;
        let rows: Vec<Row> = rows
            .into_iter()
            .map(|row| {
                let seq = u64::try_from(row.seq).unwrap_or(u64::MAX);
                next_from = seq.saturating_add(1);
                row.into_unchecked_record().map_err(|e| Unreadable {
                    seq,
                    problem: e.to_string(),
                })
            })
            .collect();
        let checkpoints = cursor.take_through(self, tenant, next_from).await?;
        Ok(Page {
            rows,
            next_from,
            checkpoints,
        })
    }
}

/// Opens the seen checkpoints under the tenant's keys, smallest first.
fn open_seen(
    notes: &[String],
    vkeys: &[VerifierKey],
    origin: &str,
) -> Result<Vec<Checkpoint>, StoreError> {
    if notes.len() > SEEN_CHECKPOINTS_MAX {
        return Err(StoreError::OutOfRange(format!(
            "at most {SEEN_CHECKPOINTS_MAX} seen checkpoints may be given"
        )));
    }
    let mut seen = notes
        .iter()
        .enumerate()
        .map(|(i, note)| {
            open_checkpoint(note.as_bytes(), vkeys, Some(origin))
                .map(|c| c.into_checkpoint())
                .map_err(|e| StoreError::OutOfRange(format!("seen checkpoint {}: {e}", i + 1)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    seen.sort_by_key(|c| c.size());
    Ok(seen)
}

/// A stored row that cannot be read as a record.
struct Unreadable {
    seq: u64,
    problem: String,
}

type Row = Result<Record, Unreadable>;

/// A published checkpoint with the consistency proof from the one before it (or why the store
/// could not build that proof).
struct PageCheckpoint {
    stored: StoredCheckpoint,
    proof_from_previous: Option<Result<Vec<Hash>, String>>,
}

#[derive(Default)]
struct Page {
    rows: Vec<Row>,
    /// One past the last row's sequence number.
    next_from: u64,
    checkpoints: Vec<PageCheckpoint>,
}

/// Walks the published checkpoints in size order, a page at a time.
struct CheckpointCursor {
    /// Checkpoints larger than this were published after the check started and are ignored.
    limit: u64,
    buffered: VecDeque<StoredCheckpoint>,
    /// The size of the last checkpoint read from the database.
    read_through: Option<TreeSize>,
    exhausted: bool,
    /// The size of the last checkpoint handed out, for consistency proofs.
    previous: Option<TreeSize>,
}

impl CheckpointCursor {
    fn new(limit: u64) -> Self {
        CheckpointCursor {
            limit,
            buffered: VecDeque::new(),
            read_through: None,
            exhausted: limit == 0,
            previous: None,
        }
    }

    async fn fill(&mut self, store: &Store, tenant: &TenantId) -> Result<(), StoreError> {
        if self.exhausted || !self.buffered.is_empty() {
            return Ok(());
        }
        let page = store
            .checkpoints(tenant, self.read_through, CHECKPOINT_PAGE_CHECKPOINTS)
            .await?;
        if (page.len() as u64) < CHECKPOINT_PAGE_CHECKPOINTS {
            self.exhausted = true;
        }
        for c in page {
            self.read_through = Some(c.size);
            if c.size.get() > self.limit {
                self.exhausted = true;
                break;
            }
            self.buffered.push_back(c);
        }
        Ok(())
    }

    /// The checkpoints of size at most `through`, with their consistency proofs.
    async fn take_through(
        &mut self,
        store: &Store,
        tenant: &TenantId,
        through: u64,
    ) -> Result<Vec<PageCheckpoint>, StoreError> {
        let mut out = Vec::new();
        loop {
            self.fill(store, tenant).await?;
            let Some(front) = self.buffered.front() else {
                return Ok(out);
            };
            if front.size.get() > through {
                return Ok(out);
            }
            let stored = self.buffered.pop_front().expect("front exists");
            let proof_from_previous = match self.previous {
                None => None,
                Some(previous) => Some(
                    store
                        .consistency_proof_from_storage(tenant, previous, stored.size)
                        .await
                        .map_err(|e| e.to_string()),
                ),
            };
            self.previous = Some(stored.size);
            out.push(PageCheckpoint {
                stored,
                proof_from_previous,
            });
        }
    }

    /// The checkpoints not handed out yet (those beyond the records found).
    async fn remaining(
        &mut self,
        store: &Store,
        tenant: &TenantId,
    ) -> Result<Vec<PageCheckpoint>, StoreError> {
        self.take_through(store, tenant, u64::MAX).await
    }
}

/// Progress reporting: rate and ETA from the start of the check.
struct Progress {
    sender: Option<watch::Sender<IntegrityProgress>>,
    total: u64,
    started: Instant,
}

impl Progress {
    fn new(sender: Option<watch::Sender<IntegrityProgress>>, total: u64, started: Instant) -> Self {
        let progress = Progress {
            sender,
            total,
            started,
        };
        progress.update(0, 0, false);
        progress
    }

    fn update(&self, checked: u64, checkpoints_checked: u64, done: bool) {
        let Some(sender) = &self.sender else {
            return;
        };
        let seconds = self.started.elapsed().as_secs_f64();
        let rate = if seconds > 0.0 {
            checked as f64 / seconds
        } else {
            0.0
        };
        let eta_seconds = (rate > 0.0 && !done)
            .then(|| (self.total.saturating_sub(checked) as f64 / rate).ceil() as u64);
        sender.send_replace(IntegrityProgress {
            checked,
            total: self.total,
            checkpoints_checked,
            records_per_second: rate,
            eta_seconds,
            done,
        });
    }
}

/// The state of the walk, moved to a blocking thread for each page.
struct Walk {
    ring: KeyRing,
    vkeys: Vec<VerifierKey>,
    origin: String,
    chain: ChainVerifier,
    /// The Merkle leaves of the records pushed so far, for the root at every checkpoint size.
    leaves: LeafRange,
    /// The event id of the last record pushed.
    last_event: Option<EventId>,
    checked: u64,
    checkpoints_checked: u64,
    /// The previous published checkpoint, verified.
    previous: Option<Checkpoint>,
    /// Seen checkpoints, smallest first, and how many were compared.
    seen: VecDeque<Checkpoint>,
    seen_checked: u64,
    /// The largest seen size whose root matched the recomputed tree.
    seen_agreed_through: u64,
    failure: Option<IntegrityFailure>,
}

impl Walk {
    fn new(
        tenant: TenantId,
        ring: KeyRing,
        vkeys: Vec<VerifierKey>,
        origin: String,
        seen: Vec<Checkpoint>,
    ) -> Self {
        Walk {
            chain: ChainVerifier::new(tenant, ring.clone()),
            ring,
            vkeys,
            origin,
            leaves: LeafRange::new(0),
            last_event: None,
            checked: 0,
            checkpoints_checked: 0,
            previous: None,
            seen: seen.into(),
            seen_checked: 0,
            seen_agreed_through: 0,
            failure: None,
        }
    }

    fn verify_page(&mut self, page: Page) {
        let mut checkpoints: VecDeque<PageCheckpoint> = page.checkpoints.into();
        for row in page.rows {
            if let Err(failure) = self.boundary(&mut checkpoints) {
                self.failure = Some(failure);
                return;
            }
            if let Err(failure) = self.push(row) {
                self.failure = Some(failure);
                return;
            }
        }
        if let Err(failure) = self.boundary(&mut checkpoints) {
            self.failure = Some(failure);
            return;
        }
        // Checkpoints of this page beyond its last record: the records they cover are missing.
        if let Some(c) = checkpoints.front() {
            self.failure = Some(
                self.flush()
                    .err()
                    .unwrap_or_else(|| self.missing(&c.stored)),
            );
        }
    }

    fn push(&mut self, row: Row) -> Result<(), IntegrityFailure> {
        let record = match row {
            Ok(record) => record,
            Err(Unreadable { seq, problem }) => {
                self.flush()?;
                return Err(IntegrityFailure {
                    kind: IntegrityFailureKind::UnreadableRecord,
                    seq,
                    event_id: None,
                    expected: "a well-formed record row".into(),
                    found: problem.clone(),
                    message: format!("record {seq} cannot be read: {problem}"),
                });
            }
        };
        self.chain.push(&record).map_err(|e| chain_failure(&e))?;
        self.leaves.push_leaf(leaf_hash(record.hash.as_bytes()));
        self.last_event = Some(record.event_id);
        self.checked += 1;
        Ok(())
    }

    /// Verifies pending signatures, so that a bad record before a boundary is reported first.
    fn flush(&mut self) -> Result<(), IntegrityFailure> {
        self.chain.check_pending().map_err(|e| chain_failure(&e))
    }

    /// Compares every published and seen checkpoint whose size is the number of records
    /// pushed so far.
    fn boundary(
        &mut self,
        checkpoints: &mut VecDeque<PageCheckpoint>,
    ) -> Result<(), IntegrityFailure> {
        let size = self.leaves.end();
        while checkpoints
            .front()
            .is_some_and(|c| c.stored.size.get() == size)
        {
            let c = checkpoints.pop_front().expect("front exists");
            self.flush()?;
            self.published(c)?;
        }
        while self.seen.front().is_some_and(|c| c.size().get() == size) {
            let seen = self.seen.pop_front().expect("front exists");
            self.flush()?;
            let root = self.root();
            if seen.root() != root {
                return Err(IntegrityFailure {
                    kind: IntegrityFailureKind::Fork,
                    seq: self.seen_agreed_through,
                    event_id: None,
                    expected: format!("root {} at tree size {size}, as seen before", seen.root()),
                    found: format!("root {root}"),
                    message: super::fork_message(size, self.seen_agreed_through),
                });
            }
            self.seen_agreed_through = size;
            self.seen_checked += 1;
        }
        Ok(())
    }

    fn root(&self) -> Hash {
        self.leaves
            .root()
            .expect("the leaf range starts at 0, so it has a root")
    }

    /// Checks one published checkpoint at the current size.
    fn published(&mut self, c: PageCheckpoint) -> Result<(), IntegrityFailure> {
        let size = c.stored.size.get();
        let seq = size.saturating_sub(1);
        let event_id = self.last_event;
        let fail = |kind, expected: String, found: String, message: String| IntegrityFailure {
            kind,
            seq,
            event_id,
            expected,
            found,
            message,
        };
        let verified = open_checkpoint(
            c.stored.signed_note.as_bytes(),
            &self.vkeys,
            Some(&self.origin),
        )
        .map_err(|e| {
            fail(
                IntegrityFailureKind::CheckpointSignature,
                format!("a checkpoint of size {size} signed by a key of the tenant"),
                e.to_string(),
                format!("the published checkpoint of size {size} does not verify: {e}"),
            )
        })?;
        let signer_ok = verified.verified_by().iter().any(|vkey| {
            self.ring
                .may_sign_checkpoint(KeyId::of(vkey.verifying_key()), size)
        });
        let checkpoint = verified.into_checkpoint();
        if !signer_ok {
            return Err(fail(
                IntegrityFailureKind::CheckpointSignature,
                format!("a signature by the key current at tree size {size}"),
                "signatures only by keys not valid at that size".into(),
                format!(
                    "the published checkpoint of size {size} is signed by a key whose interval does not include that size"
                ),
            ));
        }
        if checkpoint.size() != c.stored.size || checkpoint.root() != c.stored.root {
            return Err(fail(
                IntegrityFailureKind::CheckpointSignature,
                format!(
                    "size {} and root {} as signed",
                    checkpoint.size(),
                    checkpoint.root()
                ),
                format!(
                    "size {size} and root {} in the stored columns",
                    c.stored.root
                ),
                format!("the stored checkpoint of size {size} differs from its own signed note"),
            ));
        }
        let root = self.root();
        if checkpoint.root() != root {
            return Err(fail(
                IntegrityFailureKind::CheckpointRootMismatch,
                format!(
                    "root {} (signed checkpoint of size {size})",
                    checkpoint.root()
                ),
                format!("root {root} recomputed from records 0..{seq}"),
                format!(
                    "records 0..{seq} hash to root {root}, but the published checkpoint of size {size} says {}",
                    checkpoint.root()
                ),
            ));
        }
        if let (Some(previous), Some(proof)) = (&self.previous, c.proof_from_previous) {
            let checked = proof.and_then(|proof| {
                verify_checkpoint_consistency(previous, &checkpoint, &proof)
                    .map_err(|e| e.to_string())
            });
            if let Err(problem) = checked {
                return Err(fail(
                    IntegrityFailureKind::CheckpointInconsistent,
                    format!(
                        "a consistency proof from the checkpoint of size {} to size {size}",
                        previous.size()
                    ),
                    problem.clone(),
                    format!(
                        "the checkpoints of sizes {} and {size} are not proven consistent: {problem}",
                        previous.size()
                    ),
                ));
            }
        }
        self.previous = Some(checkpoint);
        self.checkpoints_checked += 1;
        Ok(())
    }

    /// The failure for a published checkpoint that covers records the walk did not find.
    fn missing(&self, c: &StoredCheckpoint) -> IntegrityFailure {
        let first = self.leaves.end();
        let size = c.size.get();
        IntegrityFailure {
            kind: IntegrityFailureKind::MissingRecords,
            seq: first,
            event_id: None,
            expected: format!(
                "records {first}..{} (published checkpoint of size {size})",
                size - 1
            ),
            found: format!("the chain ends after {first} records"),
            message: format!(
                "the published checkpoint of size {size} covers records {first}..{}, which are missing from the database",
                size - 1
            ),
        }
    }

    /// After the last page: pending signatures, checkpoints beyond the records found, and seen
    /// checkpoints larger than anything the database holds.
    fn finish(&mut self, rest: Vec<PageCheckpoint>, latest_size: u64) {
        let mut rest: VecDeque<PageCheckpoint> = rest.into();
        let result = self.flush().and_then(|()| self.boundary(&mut rest));
        if let Err(failure) = result {
            self.failure = Some(failure);
            return;
        }
        if let Some(c) = rest.front() {
            self.failure = Some(self.missing(&c.stored));
            return;
        }
        if let Some(seen) = self.seen.front() {
            let size = seen.size().get();
            let first = self.leaves.end().max(latest_size);
            self.failure = Some(if size > latest_size {
                IntegrityFailure {
                    kind: IntegrityFailureKind::RolledBack,
                    seq: first,
                    event_id: None,
                    expected: format!("a tree of at least {size} records, as seen before"),
                    found: format!(
                        "{} records and a latest checkpoint of size {latest_size}",
                        self.leaves.end()
                    ),
                    message: format!(
                        "the ledger was rolled back: a checkpoint of size {size} was seen before, but the database now holds only {first}; records {first}..{} are gone",
                        size - 1
                    ),
                }
            } else {
                IntegrityFailure {
                    kind: IntegrityFailureKind::MissingRecords,
                    seq: self.leaves.end(),
                    event_id: None,
                    expected: format!("records up to {} (a checkpoint seen before)", size - 1),
                    found: format!("the chain ends after {} records", self.leaves.end()),
                    message: format!(
                        "a checkpoint of size {size} was seen before, but records {}..{} are missing",
                        self.leaves.end(),
                        size - 1
                    ),
                }
            });
        }
    }
}

fn chain_failure(e: &ChainError) -> IntegrityFailure {
    IntegrityFailure::from_chain_error(e)
}
