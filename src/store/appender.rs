//! The per-tenant appender: the one writer that sequences a tenant's records, with group commit.
//!
//! Requests queue in a bounded channel. The appender takes every request waiting (up to
//! [`GROUP_COMMIT_RECORDS_MAX`] records, waiting at most the group-commit window for more), and
//! writes them all in one transaction: under the tenant's lock it re-reads the chain head (another
//! service instance sharing a PostgreSQL database may have appended), hashes the new records in
//! chain order, signs them on every core, inserts records, sealed erasable values and completed
//! Merkle tile hashes, and commits. Only then does any caller get a receipt.
//!
//! The queue is bounded by requests, by records and by estimated bytes, per tenant and across all
//! tenants ([`QueueBudget`]), so the memory that waiting requests hold has a stated ceiling: a
//! request that would pass it is refused at once with "overloaded, retry after". A request that
//! waited in the queue longer than the configured deadline is answered the same way instead of
//! being written, so callers hear within the deadline rather than at their own timeout.
//!
//! A failed group leaves nothing behind: its transaction is rolled back (and on SQLite a writer
//! connection left in doubt is replaced, see `sqlite.rs`), so the next group starts clean.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ledger::draft::PreparedDraft;
use ledger::keys::{KeyInterval, RecordSigner};
use ledger::merkle::{CompactTree, leaf_hash};
use ledger::record::{ChainPosition, Record, UnsignedRecord};
use ledger::types::{CaptureTime, EventId, Hash, Sequence, TenantId};
use rayon::prelude::*;
use tokio::sync::{mpsc, oneshot, watch};

use super::crypto::{MasterKeys, SealContext};
use super::erasure::ErasureScope;
use super::erasure_sql::NewDataKeyRow;
use super::holds::HoldBook;
use super::shredding::DataKey;
use super::{
    ChainHead, GROUP_COMMIT_RECORDS_MAX, NewErasableRow, NewRecordRow, Receipt, Store, StoreError,
    TILE_HEIGHT, TreeHead, db_int,
};

/// How long a rejected caller is told to wait before retrying.
pub const RETRY_AFTER_OVERLOADED_MS: u64 = 1000;

/// What one queued draft is estimated to hold besides its payload and erasable values (the
/// struct, the event id, the type, the commitments map), in bytes.
const DRAFT_OVERHEAD_BYTES: usize = 256;

/// Records and estimated bytes waiting in a queue (one tenant's, or all tenants' together), and
/// their limits.
#[derive(Debug)]
pub(crate) struct QueueBudget {
    records: AtomicUsize,
    bytes: AtomicUsize,
    records_max: usize,
    bytes_max: usize,
}

impl QueueBudget {
    pub(crate) fn new(records_max: usize, bytes_max: usize) -> Self {
        QueueBudget {
            records: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            records_max,
            bytes_max,
        }
    }

    /// Records and bytes waiting now.
    pub(crate) fn load(&self) -> (usize, usize) {
        (
            self.records.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }

    /// Reserves room for `records` and `bytes`, or refuses when that would pass a limit. A
    /// request alone larger than a limit is admitted into an empty queue, so that no valid
    /// batch is refused forever.
    fn try_take(&self, records: usize, bytes: usize) -> bool {
        let r = self.records.fetch_add(records, Ordering::AcqRel);
        let b = self.bytes.fetch_add(bytes, Ordering::AcqRel);
        let empty = r == 0 && b == 0;
        if !empty && (r + records > self.records_max || b + bytes > self.bytes_max) {
            self.give_back(records, bytes);
            return false;
        }
        true
    }

    fn give_back(&self, records: usize, bytes: usize) {
        self.records.fetch_sub(records, Ordering::AcqRel);
        self.bytes.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Room reserved in the tenant's and the total queue budget, given back when the request has
/// been answered (or dropped).
struct Permit {
    budgets: [Arc<QueueBudget>; 2],
    records: usize,
    bytes: usize,
}

impl Permit {
    fn take(
        tenant: &Arc<QueueBudget>,
        total: &Arc<QueueBudget>,
        records: usize,
        bytes: usize,
    ) -> Option<Permit> {
        if !tenant.try_take(records, bytes) {
            return None;
        }
        if !total.try_take(records, bytes) {
            tenant.give_back(records, bytes);
            return None;
        }
        Some(Permit {
            budgets: [tenant.clone(), total.clone()],
            records,
            bytes,
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        for b in &self.budgets {
            b.give_back(self.records, self.bytes);
        }
    }
}

/// The estimated memory a queued draft holds.
fn draft_bytes(d: &PreparedDraft) -> usize {
    let erasable: usize = d
        .erasable_values
        .iter()
        .map(|(name, v)| {
            name.as_str().len() + serde_json::to_vec(&v.value).map_or(0, |b| b.len()) + 64
        })
        .sum();
    DRAFT_OVERHEAD_BYTES + d.draft.payload.as_str().len() + erasable
}

/// Below this many records a group is hashed and signed on the appender's own task: handing it
/// to the blocking and signing pools would cost more than it saves.
const PARALLEL_SIGN_RECORDS_MIN: usize = 64;

/// From this many payload bytes a group is hashed and signed on the blocking and signing pools
/// however few its records: hashing is proportional to the bytes, and on SQLite every tenant's
/// appender shares one thread ([`appenders_runtime`]), so a few large records of one tenant
/// hashed there would hold up every other tenant's appends.
const PARALLEL_SIGN_BYTES_MIN: usize = 256 * 1024;

/// Why an append was not done. Nothing of a failed request was written.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The tenant's queue is full; retry after the given time.
    #[error("the ledger is overloaded; retry after {} ms", retry_after.as_millis())]
    Overloaded {
        /// Suggested wait.
        retry_after: Duration,
    },
    /// An event id was appended before with different content.
    #[error("event id {event_id} was already appended with different content ({reason})")]
    Conflict {
        /// The event id.
        event_id: EventId,
        /// What differs.
        reason: String,
    },
    /// The tenant does not exist.
    #[error("unknown tenant")]
    UnknownTenant,
    /// More records than one request may carry.
    #[error("a batch may hold at most {max} records (got {records})")]
    BatchTooLarge {
        /// Records sent.
        records: usize,
        /// The limit.
        max: usize,
    },
    /// The request waited in the queue longer than the deadline and was not written; retry
    /// after the given time.
    #[error(
        "the ledger is overloaded: the request waited {} ms in the queue (at most {} ms); retry after {} ms",
        waited.as_millis(), deadline.as_millis(), retry_after.as_millis()
    )]
    QueueDeadline {
        /// How long it waited.
        waited: Duration,
        /// The configured deadline.
        deadline: Duration,
        /// Suggested wait.
        retry_after: Duration,
    },
    /// The store is shutting down.
    #[error("the ledger is shutting down")]
    ShuttingDown,
    /// An `erasure` record would erase what an active legal hold holds (see `holds.rs`).
    #[error(
        "erasure {event_id} refused: it would erase what legal hold {hold_seq} holds ({reason})"
    )]
    LegalHold {
        /// The refused erasure's event id.
        event_id: EventId,
        /// The hold: the seq of the `legal_hold` record that placed it.
        hold_seq: u64,
        /// The hold's reason.
        reason: String,
    },
    /// A `legal_hold` record lifts a hold that is not active for its subject.
    #[error("legal_hold {event_id} refused: hold {hold_seq} is not an active hold of that subject")]
    HoldNotActive {
        /// The refused record's event id.
        event_id: EventId,
        /// The hold it names.
        hold_seq: u64,
    },
    /// The database failed; nothing was committed and the request may be retried.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AppendError {
    /// Whether retrying the same request later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            AppendError::Overloaded { .. }
                | AppendError::QueueDeadline { .. }
                | AppendError::ShuttingDown
        ) || matches!(self, AppendError::Store(e) if e.is_retryable())
    }
}

/// What one caller asked for, and where to send the answer.
type Request = (Vec<PreparedDraft>, Reply);

/// The channel back to a waiting caller.
type Reply = oneshot::Sender<Result<Vec<Receipt>, AppendError>>;

enum Message {
    Append {
        drafts: Vec<PreparedDraft>,
        reply: oneshot::Sender<Result<Vec<Receipt>, AppendError>>,
        /// The room the request holds in the queue budgets until it is answered.
        permit: Permit,
        enqueued: Instant,
    },
    Rotate(oneshot::Sender<Result<KeyInterval, AppendError>>),
    Close(oneshot::Sender<()>),
}

/// A cloneable handle to a tenant's appender.
#[derive(Clone)]
pub(crate) struct Handle {
    tx: mpsc::Sender<Message>,
    budget: Arc<QueueBudget>,
    total: Arc<QueueBudget>,
    store: Store,
}

impl Handle {
    pub(crate) fn is_alive(&self) -> bool {
        !self.tx.is_closed()
    }

    /// Requests waiting in the queue.
    pub(crate) fn queue_depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    pub(crate) async fn submit(
        &self,
        drafts: Vec<PreparedDraft>,
    ) -> Result<Vec<Receipt>, AppendError> {
        let overloaded = AppendError::Overloaded {
            retry_after: Duration::from_millis(RETRY_AFTER_OVERLOADED_MS),
        };
        let bytes = drafts.iter().map(draft_bytes).sum();
        let Some(permit) = Permit::take(&self.budget, &self.total, drafts.len(), bytes) else {
            self.store.faults().shed();
            return Err(overloaded);
        };
        let (reply, rx) = oneshot::channel();
        self.tx
            .try_send(Message::Append {
                drafts,
                reply,
                permit,
                enqueued: Instant::now(),
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => {
                    self.store.faults().shed();
                    overloaded
                }
                mpsc::error::TrySendError::Closed(_) => AppendError::ShuttingDown,
            })?;
        rx.await.map_err(|_| AppendError::ShuttingDown)?
    }

    /// Rotates the tenant's signing key: appends a key-rotation record signed by the old key
    /// that announces the new one, effective from the next sequence number.
    pub(crate) async fn rotate(&self) -> Result<KeyInterval, AppendError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Message::Rotate(reply))
            .await
            .map_err(|_| AppendError::ShuttingDown)?;
        rx.await.map_err(|_| AppendError::ShuttingDown)?
    }

    /// Asks the appender to finish what is queued and stop, and waits for it.
    pub(crate) async fn close(self) {
        let (done, rx) = oneshot::channel();
        if self.tx.send(Message::Close(done)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

struct Appender {
    store: Store,
    tenant: TenantId,
    signer: Arc<RecordSigner>,
    key: KeyInterval,
    head: Option<ChainHead>,
    tree: CompactTree,
    tree_tx: watch::Sender<TreeHead>,
    /// Unwrapped data keys of recent subjects (see [`DataKeyCache`]).
    data_keys: DataKeyCache,
    /// How many of the next groups look their event ids up before writing (see
    /// [`LOOKUPS_AFTER_DUPLICATE`]); the others write first.
    lookups_ahead: u32,
}

/// Groups that look their event ids up before writing, after a group met an event id already
/// stored. A group normally writes without looking: the ledger's unique index on event ids
/// refuses a repeated one, and only then is the group looked up and decided again, answering
/// repeats with the stored records' receipts. A client retrying after a lost answer repeats
/// ids for a while, so its next groups look first rather than be written twice.
pub const LOOKUPS_AFTER_DUPLICATE: u32 = 64;

/// Starts the appender of `tenant`, resuming from the stored chain head.
pub(crate) async fn spawn(
    store: Store,
    tenant: TenantId,
) -> Result<(Handle, watch::Receiver<TreeHead>), AppendError> {
    let (signer, key) = store.current_signer(&tenant).await?;
    let head = store.chain_head(&tenant).await?;
    let size = head.map_or(ledger::types::TreeSize::ZERO, |h| h.seq.tree_size_through());
    let tree = store.compact_tree_at(&tenant, size).await?;
    let (tree_tx, tree_rx) = watch::channel(TreeHead {
        size: tree.size(),
        root: tree.root(),
    });
    let (tx, rx) = mpsc::channel(store.config().queue_requests_max.max(1));
    let handle = Handle {
        tx,
        budget: Arc::new(QueueBudget::new(
            store.config().queue_records_max,
            store.config().queue_bytes_max,
        )),
        total: store.queue_total().clone(),
        store: store.clone(),
    };
    let appender = Appender {
        data_keys: DataKeyCache::default(),
        store,
        tenant,
        signer: Arc::new(signer),
        key,
        head,
        tree,
        tree_tx,
        lookups_ahead: 0,
    };
    if appender.store.backend().kind() == super::backend::BackendKind::Sqlite {
        appenders_runtime()?.spawn(appender.run(rx));
    } else {
        tokio::spawn(appender.run(rx));
    }
    Ok((handle, tree_rx))
}

/// The runtime SQLite stores' appenders run on: one thread of its own, apart from the async
/// workers that serve requests. An appender's group is a chain of hand-offs to the database's
/// threads (the write lock, the head, the insert, the commit). On the shared workers each answer
/// waited in their queue behind the requests being parsed and answered, and the group's cycle,
/// which single appends wait for, grew by that wait at every step; on a thread of its own, the
/// operating system runs the appender as soon as SQLite's thread answers. One thread serves every
/// tenant's appender: between hand-offs an appender only decides and seals groups of fewer than
/// [`PARALLEL_SIGN_RECORDS_MIN`] records and [`PARALLEL_SIGN_BYTES_MIN`] bytes (larger ones go to
/// the blocking and signing pools). PostgreSQL's appenders stay on the async workers: there the
/// thread cost 5 % of single appends (BENCHMARKS.md), presumably because their answers arrive on
/// sockets that the workers' own event loop polls. Built on first use and kept for the life of
/// the process.
fn appenders_runtime() -> Result<&'static tokio::runtime::Handle, StoreError> {
    static RUNTIME: std::sync::LazyLock<std::io::Result<tokio::runtime::Runtime>> =
        std::sync::LazyLock::new(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("auditex-appender")
                .enable_all()
                .build()
        });
    match &*RUNTIME {
        Ok(runtime) => Ok(runtime.handle()),
        Err(e) => Err(StoreError::Unavailable(Arc::new(sqlx::Error::Io(
            std::io::Error::new(
                e.kind(),
                format!("the appenders' runtime did not start: {e}"),
            ),
        )))),
    }
}

/// One request inside a group, with what was decided for each of its drafts.
struct Pending {
    reply: oneshot::Sender<Result<Vec<Receipt>, AppendError>>,
    /// Per draft: an existing record (duplicate) or the index of a new record in this group.
    outcome: Vec<Slot>,
}

#[derive(Clone)]
enum Slot {
    Existing(Box<Record>),
    New(usize),
    /// A repeat, inside this group, of the draft that makes new record `usize`: it writes
    /// nothing itself, so its receipt says `duplicate`.
    Repeat(usize),
}

/// Why a group did not commit.
enum GroupFailed {
    Store(StoreError),
    /// Another writer sharing the database (a second service node) appended some of these
    /// event ids after this group's idempotency look-up: the drafts come back untouched, with
    /// the records now stored under their ids, to be decided again.
    Raced(Vec<PreparedDraft>, HashMap<EventId, Record>),
    /// A group written without looking its event ids up first met some already stored (the
    /// unique index refused the insert): the drafts come back, rebuilt from the sealed records,
    /// with the records stored under their ids, to be decided again.
    Repeated(Vec<PreparedDraft>, HashMap<EventId, Record>),
}

impl From<StoreError> for GroupFailed {
    fn from(e: StoreError) -> Self {
        GroupFailed::Store(e)
    }
}

impl From<super::CryptoError> for GroupFailed {
    fn from(e: super::CryptoError) -> Self {
        GroupFailed::Store(e.into())
    }
}

impl Appender {
    async fn run(mut self, mut rx: mpsc::Receiver<Message>) {
        let window = self.store.config().group_commit_window;
        let wait_max = self.store.config().queue_wait_max;
        while let Some(first) = rx.recv().await {
            let mut group = Vec::new();
            // Held until the group is answered: the queue budgets count a request until then.
            let mut permits = Vec::new();
            let mut records = 0usize;
            let mut rotate = None;
            let mut close = None;
            let mut next = Some(first);
            let deadline = Instant::now() + window;
            // Gather requests until the group is full, the window closes, or a control message
            // (rotation, close) needs the group committed first.
            while let Some(message) = next.take() {
                match message {
                    Message::Append {
                        drafts,
                        reply,
                        permit,
                        enqueued,
                    } => {
                        let waited = enqueued.elapsed();
                        if waited > wait_max {
                            // Answered now, unwritten: the caller hears within the deadline
                            // instead of at its own timeout, and the queue drains faster.
                            self.store.faults().deadline_expired();
                            let _ = reply.send(Err(AppendError::QueueDeadline {
                                waited,
                                deadline: wait_max,
                                retry_after: Duration::from_millis(RETRY_AFTER_OVERLOADED_MS),
                            }));
                        } else {
                            records += drafts.len();
                            group.push((drafts, reply));
                            permits.push(permit);
                        }
                    }
                    Message::Rotate(reply) => rotate = Some(reply),
                    Message::Close(done) => close = Some(done),
                }
                if rotate.is_some() || close.is_some() || records >= GROUP_COMMIT_RECORDS_MAX {
                    break;
                }
                next = match rx.try_recv() {
                    Ok(m) => Some(m),
                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            None
                        } else {
                            tokio::time::timeout(left, rx.recv()).await.ok().flatten()
                        }
                    }
                };
            }
            if !group.is_empty() {
                self.process(group, permits).await;
            }
            if let Some(reply) = rotate {
                let _ = reply.send(self.rotate().await);
            }
            if let Some(done) = close {
                rx.close();
                // Finish whatever was queued before the close was seen.
                let mut rest = Vec::new();
                while let Ok(m) = rx.try_recv() {
                    match m {
                        Message::Append { drafts, reply, .. } => rest.push((drafts, reply)),
                        Message::Rotate(reply) => {
                            let _ = reply.send(Err(AppendError::ShuttingDown));
                        }
                        Message::Close(other) => {
                            let _ = other.send(());
                        }
                    }
                }
                if !rest.is_empty() {
                    self.process(rest, Vec::new()).await;
                }
                let _ = done.send(());
                return;
            }
        }
    }

    /// Appends `group` and answers its requests. The queue budgets' `permits` are released just
    /// before the group's answers go out (a request refused for a conflict while the group is
    /// decided is answered earlier): a caller with a receipt finds its request no longer counted
    /// in the queue, although on SQLite the appender runs on a thread of its own and the caller
    /// may read the queue's gauges before this task runs another step.
    async fn process(&mut self, group: Vec<Request>, permits: Vec<Permit>) {
        match self.try_process(group, permits).await {
            Ok(()) => {}
            Err((pending, e)) => {
                // Nothing was committed (or, for an erasure journal that could not be written,
                // nothing is acknowledged); the cached head may be stale if the outcome of the
                // commit is unknown, so the next group re-reads it (see `commit_group`).
                match &e {
                    StoreError::StorageFull(detail) => {
                        self.store.faults().storage_full("append", detail);
                    }
                    StoreError::ClockBehind { .. } => {
                        tracing::warn!(tenant = %self.tenant, error = %e, "append refused");
                    }
                    _ => tracing::warn!(tenant = %self.tenant, error = %e, "append group failed"),
                }
                for p in pending {
                    let _ = p
                        .reply
                        .send(Err(AppendError::Store(e.for_another_caller())));
                }
            }
        }
    }

    async fn try_process(
        &mut self,
        group: Vec<Request>,
        permits: Vec<Permit>,
    ) -> Result<(), (Vec<Pending>, StoreError)> {
        fn refuse_all(group: Vec<Request>, e: StoreError) -> (Vec<Pending>, StoreError) {
            let pending = group
                .into_iter()
                .map(|(_, reply)| Pending {
                    reply,
                    outcome: Vec::new(),
                })
                .collect();
            (pending, e)
        }
        // Legal holds: only a group with erasure or hold records reads them (see `holds.rs`).
        let mut holds = match self
            .hold_book(group.iter().flat_map(|(d, _)| d.iter()))
            .await
        {
            Ok(book) => book,
            Err(e) => return Err(refuse_all(group, e)),
        };
        // 1. Idempotency: which event ids exist already (one read for the whole group). A
        //    group that screens holds looks first, as its screening must not count a repeat as
        //    new; so does one soon after a repeat was met, and one that names an event id
        //    twice: a draft stored already must be judged against the stored record, not
        //    against another request's draft of the same id. Any other group writes first (see
        //    `LOOKUPS_AFTER_DUPLICATE`): the look-up is a read per 500 ids on the group's path.
        let look_up = holds.is_some() || self.lookups_ahead > 0 || names_an_id_twice(&group);
        let existing = if look_up {
            self.lookups_ahead = self.lookups_ahead.saturating_sub(1);
            let ids: Vec<String> = group
                .iter()
                .flat_map(|(d, _)| d.iter().map(|p| p.draft.event_id.to_string()))
                .collect();
            let lookup = Instant::now();
            let existing = match self.existing(&ids).await {
                Ok(e) => e,
                Err(e) => return Err(refuse_all(group, e)),
            };
            tracing::trace!(
                ids = ids.len(),
                lookup_us = u64::try_from(lookup.elapsed().as_micros()).unwrap_or(u64::MAX),
                "idempotency lookup"
            );
            if !existing.is_empty() {
                self.lookups_ahead = LOOKUPS_AFTER_DUPLICATE;
            }
            existing
        } else {
            HashMap::new()
        };
        let next_seq = self.head.map_or(Sequence::FIRST.get(), |h| h.seq.get() + 1);
        // 2. Decide each draft: duplicate of a stored record, duplicate of a new one in this group,
        //    or new. A request with any conflict is refused whole and claims nothing.
        let mut new: Vec<PreparedDraft> = Vec::new();
        let mut new_by_id: HashMap<EventId, usize> = HashMap::new();
        let mut pending = Vec::new();
        for (drafts, reply) in group {
            let mut outcome = Vec::with_capacity(drafts.len());
            let mut local: Vec<PreparedDraft> = Vec::new();
            let mut local_by_id: HashMap<EventId, usize> = HashMap::new();
            let mut conflict = None;
            for d in drafts {
                let id = d.draft.event_id;
                let verdict = if let Some(record) = existing.get(&id) {
                    match self.same_content(record, &d).await {
                        Ok(None) => Ok(Slot::Existing(Box::new(record.clone()))),
                        Ok(Some(reason)) => Err(AppendError::Conflict {
                            event_id: id,
                            reason,
                        }),
                        Err(e) => Err(AppendError::Store(e)),
                    }
                } else if let Some(&i) = new_by_id.get(&id) {
                    match draft_difference(&new[i], &d) {
                        None => Ok(Slot::Repeat(i)),
                        Some(reason) => Err(AppendError::Conflict {
                            event_id: id,
                            reason,
                        }),
                    }
                } else if let Some(&j) = local_by_id.get(&id) {
                    match draft_difference(&local[j], &d) {
                        None => Ok(Slot::Repeat(new.len() + j)),
                        Some(reason) => Err(AppendError::Conflict {
                            event_id: id,
                            reason,
                        }),
                    }
                } else {
                    local_by_id.insert(id, local.len());
                    local.push(d);
                    Ok(Slot::New(new.len() + local.len() - 1))
                };
                match verdict {
                    Ok(slot) => outcome.push(slot),
                    Err(e) => {
                        conflict = Some(e);
                        break;
                    }
                }
            }
            if conflict.is_none()
                && let Some(book) = &mut holds
                && let Err(e) = book
                    .screen(
                        &self.store,
                        &self.tenant,
                        &new,
                        &local,
                        next_seq + new.len() as u64,
                    )
                    .await
            {
                conflict = Some(e);
            }
            if let Some(err) = conflict {
                let _ = reply.send(Err(err));
                continue;
            }
            for (id, j) in local_by_id {
                new_by_id.insert(id, new.len() + j);
            }
            new.extend(local);
            pending.push(Pending { reply, outcome });
        }

        // 3. Sequence, seal and commit the new records in one transaction. Each race with
        //    another node removes at least one draft, so this ends.
        let mut new = new;
        let mut pending = pending;
        let records = loop {
            if new.is_empty() {
                break Vec::new();
            }
            match self.commit_group(new, None, look_up).await {
                Ok(r) => break r,
                Err(GroupFailed::Store(e)) => return Err((pending, e)),
                Err(GroupFailed::Raced(drafts, stored)) => {
                    tracing::info!(
                        tenant = %self.tenant,
                        stored_by_another_writer = stored.len(),
                        "another writer appended some of this group's event ids first; they answer with its receipts"
                    );
                    (new, pending) = self.decide_again(drafts, &stored, pending).await?;
                }
                Err(GroupFailed::Repeated(drafts, stored)) => {
                    tracing::debug!(
                        tenant = %self.tenant,
                        repeated = stored.len(),
                        "a group written before its look-up repeated stored event ids; deciding it again"
                    );
                    self.lookups_ahead = LOOKUPS_AFTER_DUPLICATE;
                    (new, pending) = self.decide_again(drafts, &stored, pending).await?;
                }
            }
        };

        // 4. Acknowledge, now that everything is durable.
        drop(permits);
        for p in pending {
            let receipts = p
                .outcome
                .iter()
                .map(|slot| match slot {
                    Slot::Existing(r) => Receipt::of(r, true),
                    Slot::New(i) => Receipt::of(&records[*i], false),
                    Slot::Repeat(i) => Receipt::of(&records[*i], true),
                })
                .collect();
            let _ = p.reply.send(Ok(receipts));
        }
        Ok(())
    }

    /// After some of `drafts` were found stored under their event ids at the write (another node
    /// appended them, [`GroupFailed::Raced`], or the group was written before its look-up,
    /// [`GroupFailed::Repeated`]): a draft now in `stored` answers with the stored record's
    /// receipt (or refuses its request whole when the content differs, as a duplicate always
    /// does); the rest are renumbered for the next attempt.
    async fn decide_again(
        &self,
        drafts: Vec<PreparedDraft>,
        stored: &HashMap<EventId, Record>,
        pending: Vec<Pending>,
    ) -> Result<(Vec<PreparedDraft>, Vec<Pending>), (Vec<Pending>, StoreError)> {
        // Per draft: the stored record it repeats, or why it conflicts with it.
        let mut verdict: Vec<Option<Result<Box<Record>, String>>> =
            Vec::with_capacity(drafts.len());
        for d in &drafts {
            verdict.push(match stored.get(&d.draft.event_id) {
                None => None,
                Some(record) => match self.same_content(record, d).await {
                    Ok(None) => Some(Ok(Box::new(record.clone()))),
                    Ok(Some(reason)) => Some(Err(reason)),
                    Err(e) => return Err((pending, e)),
                },
            });
        }
        let mut keep = vec![false; drafts.len()];
        let mut kept = Vec::with_capacity(pending.len());
        for p in pending {
            let conflict = p.outcome.iter().find_map(|slot| match slot {
                Slot::New(i) | Slot::Repeat(i) => match &verdict[*i] {
                    Some(Err(reason)) => Some(AppendError::Conflict {
                        event_id: drafts[*i].draft.event_id,
                        reason: reason.clone(),
                    }),
                    _ => None,
                },
                Slot::Existing(_) => None,
            });
            if let Some(e) = conflict {
                let _ = p.reply.send(Err(e));
                continue;
            }
            for slot in &p.outcome {
                if let Slot::New(i) | Slot::Repeat(i) = slot
                    && verdict[*i].is_none()
                {
                    keep[*i] = true;
                }
            }
            kept.push(p);
        }
        let mut index = vec![usize::MAX; drafts.len()];
        let mut next = Vec::new();
        for (i, d) in drafts.into_iter().enumerate() {
            if keep[i] {
                index[i] = next.len();
                next.push(d);
            }
        }
        // The request that was to write a draft may have been refused above while a later one
        // repeating it was kept: the first kept mention then writes it, so its receipt is not
        // marked duplicate.
        let mut written = vec![false; next.len()];
        for p in &mut kept {
            for slot in &mut p.outcome {
                let i = match slot {
                    Slot::New(i) | Slot::Repeat(i) => *i,
                    Slot::Existing(_) => continue,
                };
                // (No kept request names a conflicting draft: those were refused above.)
                *slot = match &verdict[i] {
                    Some(Ok(record)) => Slot::Existing(record.clone()),
                    _ if written[index[i]] => Slot::Repeat(index[i]),
                    _ => {
                        written[index[i]] = true;
                        Slot::New(index[i])
                    }
                };
            }
        }
        Ok((next, kept))
    }

    async fn existing(&self, ids: &[String]) -> Result<HashMap<EventId, Record>, StoreError> {
        let mut out = HashMap::new();
        // Bounded chunks keep every statement well under the databases' parameter limits.
        for chunk in ids.chunks(500) {
            let rows = self
                .store
                .backend()
                .records_by_event_ids(&self.tenant, chunk)
                .await?;
            for row in rows {
                let record = row.into_record()?;
                out.insert(record.event_id, record);
            }
        }
        Ok(out)
    }

    /// The active holds of the subjects `drafts` erase or hold; `None` when they name none.
    async fn hold_book<'a>(
        &self,
        drafts: impl IntoIterator<Item = &'a PreparedDraft>,
    ) -> Result<Option<HoldBook>, StoreError> {
        let subjects = super::holds::screened_subjects(drafts);
        if subjects.is_empty() {
            return Ok(None);
        }
        let names: Vec<&str> = subjects.iter().map(String::as_str).collect();
        let rows = self
            .store
            .backend()
            .active_holds(&self.tenant, &names)
            .await?;
        Ok(Some(HoldBook::new(rows)))
    }

    /// `None` when `draft` is a faithful retry of `record`, else what differs.
    async fn same_content(
        &self,
        record: &Record,
        draft: &PreparedDraft,
    ) -> Result<Option<String>, StoreError> {
        if record.event_type != draft.draft.event_type {
            return Ok(Some("event_type differs".into()));
        }
        if record.payload != draft.draft.payload {
            return Ok(Some("payload differs".into()));
        }
        if !record.erasable.keys().eq(draft.draft.erasable.keys()) {
            return Ok(Some("erasable fields differ".into()));
        }
        if draft.erasable_values.is_empty() {
            return Ok(None);
        }
        // A retry carries the same values under fresh salts: recommit them with the stored
        // salts. Values erased since cannot be compared and are accepted as the same.
        let stored = self.store.erasable_values(&self.tenant, record.seq).await?;
        for (name, value) in &draft.erasable_values {
            if let (Some(s), Some(commitment)) = (stored.get(name), record.erasable.get(name)) {
                let again = ledger::record::ErasableValue {
                    salt: s.salt,
                    value: value.value.clone(),
                };
                if again.commitment("").ok().as_ref() != Some(commitment) {
                    return Ok(Some(format!("erasable field {} differs", name.as_str())));
                }
            }
        }
        Ok(None)
    }

    /// Generates a new key and commits the rotation record that announces it.
    async fn rotate(&mut self) -> Result<KeyInterval, AppendError> {
        let secret: [u8; 32] = rand::random();
        let new_key = ed25519_dalek::SigningKey::from_bytes(&secret);
        let key_id = ledger::keys::KeyId::of(&new_key.verifying_key());
        let sealed = self
            .store
            .master()
            .seal(&SealContext::signing_key(&self.tenant, key_id), &secret)
            .map_err(|e| AppendError::Store(e.into()))?;
        let records = self
            .commit_group(Vec::new(), Some((new_key, sealed)), true)
            .await
            .map_err(|e| match e {
                GroupFailed::Store(e) => e,
                // A rotation appends no client drafts, so it never races on event ids.
                GroupFailed::Raced(..) | GroupFailed::Repeated(..) => {
                    StoreError::Corrupt("a key rotation raced on event ids".into())
                }
            })?;
        let from_seq = records.last().map_or(0, |r| r.seq.get() + 1);
        Ok(KeyInterval {
            key_id,
            public_key: self.signer.verifying_key(),
            from_seq,
            until_seq: None,
        })
    }

    /// Writes `drafts` as the next records of the chain and returns them sealed. With `rotation`,
    /// the group is a single key-rotation record signed by the current key, and the new key takes
    /// over from the following sequence number in the same transaction.
    /// `looked_up` says whether the drafts' event ids were looked up before: when not, an
    /// insert refused by the unique index on event ids is answered with
    /// [`GroupFailed::Repeated`].
    async fn commit_group(
        &mut self,
        mut drafts: Vec<PreparedDraft>,
        rotation: Option<(ed25519_dalek::SigningKey, Vec<u8>)>,
        looked_up: bool,
    ) -> Result<Vec<Record>, GroupFailed> {
        let started = Instant::now();
        let mut tx = self.store.backend().begin_append(&self.tenant).await?;
        // On SQLite, the wait for the ledger file's one writer (checkpoints and the access
        // tables use it too; the views have a file and a writer of their own).
        let locked = started.elapsed();
        // Under the tenant's lock: if someone else moved the chain, resume from what is stored.
        let head = tx.chain_head(&self.tenant).await?;
        if head != self.head {
            tracing::info!(tenant = %self.tenant, "chain head moved outside this appender; resuming from the database");
            // Whoever moved it may have made or destroyed data keys (an erasure elsewhere).
            self.data_keys.clear();
            let size = head.map_or(ledger::types::TreeSize::ZERO, |h| h.seq.tree_size_through());
            self.tree = self.store.compact_tree_at(&self.tenant, size).await?;
            self.head = head;
            let (signer, key) = self.store.current_signer(&self.tenant).await?;
            self.signer = Arc::new(signer);
            self.key = key;
            // The idempotency look-up ran before this lock: whoever moved the chain may have
            // appended some of the same event ids (a client retrying on another node). Now that
            // they are committed, look again; inserting them would fail the whole group.
            let ids: Vec<String> = drafts
                .iter()
                .map(|d| d.draft.event_id.to_string())
                .collect();
            if !ids.is_empty() {
                let stored = self.existing(&ids).await?;
                if !stored.is_empty() {
                    // Dropping the transaction rolls it back and releases the tenant's lock.
                    drop(tx);
                    return Err(GroupFailed::Raced(drafts, stored));
                }
            }
        }

        // The screening read the holds outside this transaction: if another instance sharing
        // the database placed or lifted one since, the group must not commit on stale holds.
        let subjects = super::holds::screened_subjects(&drafts);
        if !subjects.is_empty() {
            let names: Vec<&str> = subjects.iter().map(String::as_str).collect();
            let mut book = HoldBook::new(tx.active_holds(&self.tenant, &names).await?);
            let first = self.head.map_or(Sequence::FIRST.get(), |h| h.seq.get() + 1);
            if let Err(e) = book
                .screen(&self.store, &self.tenant, &[], &drafts, first)
                .await
            {
                tracing::warn!(tenant = %self.tenant, error = %e, "legal holds changed during the group; retrying");
                return Err(GroupFailed::Store(StoreError::Unavailable(Arc::new(
                    sqlx::Error::Protocol(
                        "legal holds changed while the group was prepared; retry".into(),
                    ),
                ))));
            }
        }

        let mut new_key_row = None;
        if let Some((key, sealed)) = &rotation {
            let seq = self.head.map_or(0, |h| h.seq.get() + 1);
            let key_id = ledger::keys::KeyId::of(&key.verifying_key());
            let payload = serde_json::json!({
                "new_key_id": key_id.to_hex(),
                "new_public_key": hex::encode(key.verifying_key().as_bytes()),
                "effective_from_seq": seq + 1,
            });
            let draft = super::ServiceDraft::prepare(
                &uuid::Uuid::now_v7().to_string(),
                ledger::record::EventType::KeyRotation,
                &payload,
            )
            .map_err(|e| StoreError::Corrupt(format!("rotation record: {e}")))?;
            drafts = vec![draft.into_prepared()];
            new_key_row = Some(super::KeyRow {
                key_id: key_id.to_hex(),
                public_key: key.verifying_key().as_bytes().to_vec(),
                sealed_secret: sealed.clone(),
                from_seq: db_int(seq + 1),
                until_seq: None,
            });
        }

        let now = self.store.config().clock.now_unix_micros();
        // A clock behind the chain head would stamp every record with the head's instant: say
        // so, and past the allowance refuse rather than freeze capture times for hours.
        let head_time = self.head.map_or(0, |h| h.captured_at.unix_micros());
        let behind = Duration::from_micros(head_time.saturating_sub(now));
        let allowed = self.store.config().clock_behind_max;
        self.store.faults().clock_observed(behind, allowed);
        if behind > allowed {
            self.store.faults().clock_refused();
            return Err(GroupFailed::Store(StoreError::ClockBehind {
                behind,
                allowed,
            }));
        }
        // Sequence numbers and capture times first; the hashes, which chain each record to
        // the one before, and the signatures are made together below.
        let mut last = self.head.map(|h| (h.seq, h.captured_at.unix_micros()));
        let mut positioned = Vec::with_capacity(drafts.len());
        let mut values = ValuesToSeal::default();
        // Data keys: each value is sealed under its subject's key (found, or made here), or
        // under a key of its own record when it concerns no known subject.
        let subjects = GroupSubjects::resolve(&self.store, &self.tenant, &drafts).await?;
        // The cache is exact while this appender is the chain's only writer (checked above), so
        // only subjects it does not hold are looked up.
        let missing: Vec<&str> = subjects
            .all()
            .into_iter()
            .filter(|s| !self.data_keys.holds(s))
            .collect();
        let stored = if missing.is_empty() {
            Default::default()
        } else {
            tx.subject_keys(&self.tenant, &missing).await?
        };
        // Keys learnt in this group enter the cache only once it commits: a key made for a
        // group that rolls back does not exist.
        let mut learnt: Vec<(String, i64, DataKey)> = Vec::new();
        let mut forget: Vec<String> = Vec::new();
        let mut in_group: HashMap<String, (i64, DataKey)> = HashMap::new();
        let mut erased_in_group: HashSet<String> = HashSet::new();
        let mut erasures = Vec::new();
        // Each draft's values, kept while the ids are unchecked: a group the unique index
        // refuses goes back as drafts, rebuilt from its sealed records and these.
        let mut values_kept = Vec::with_capacity(if looked_up { 0 } else { drafts.len() });
        for d in drafts {
            let PreparedDraft {
                draft,
                erasable_values,
            } = d;
            let (seq, last_time) = match last {
                None => (Sequence::FIRST, 0),
                Some((s, t)) => (
                    s.next()
                        .map_err(|e| StoreError::OutOfRange(e.to_string()))?,
                    t,
                ),
            };
            // Capture time never goes backwards within a chain, even if the clock does.
            let captured_at = CaptureTime::from_unix_micros(now.max(last_time))
                .map_err(|e| StoreError::OutOfRange(e.to_string()))?;
            if !erasable_values.is_empty() {
                let subject = subjects.of(&draft);
                let (key_seq, key) = match subject.and_then(|s| in_group.get(s)) {
                    Some((k, key)) => (*k, key.clone()),
                    None => {
                        let usable = subject.filter(|s| !erased_in_group.contains(*s));
                        let cached = usable.and_then(|s| self.data_keys.get(s));
                        let found = usable.and_then(|s| stored.get(s));
                        let (k, key) = match (cached, found) {
                            (Some((k, key)), _) => (k, key),
                            (None, Some((k, wrapped))) => {
                                let key = DataKey::unwrap(
                                    self.store.master(),
                                    &self.tenant,
                                    u64::try_from(*k).map_err(|_| {
                                        StoreError::Corrupt("negative data key number".into())
                                    })?,
                                    wrapped,
                                )?;
                                if let Some(s) = subject {
                                    learnt.push((s.to_owned(), *k, key.clone()));
                                }
                                (*k, key)
                            }
                            (None, None) => {
                                // A new key, named by the record it first seals for; wrapped
                                // with the group's signing (`seal_all`).
                                let key = DataKey::generate();
                                let k = db_int(seq.get());
                                if let Some(s) = subject {
                                    learnt.push((s.to_owned(), k, key.clone()));
                                }
                                values.new_keys.push(NewDataKeyRow {
                                    key_seq: k,
                                    subject_ref: subject.map(str::to_owned),
                                    wrapped: Vec::new(),
                                });
                                values.to_wrap.push(key.clone());
                                (k, key)
                            }
                        };
                        if let Some(s) = subject {
                            in_group.insert(s.to_owned(), (k, key.clone()));
                        }
                        (k, key)
                    }
                };
                for (name, value) in &erasable_values {
                    let plain = zeroize::Zeroizing::new(
                        serde_json::to_vec(&value.value)
                            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    );
                    // Sealed with the group's signing (`seal_all`), on every core.
                    values.rows.push(NewErasableRow {
                        seq: db_int(seq.get()),
                        field: name.as_str().to_owned(),
                        salt: Vec::new(),
                        sealed: Vec::new(),
                        subject_ref: subject.map(str::to_owned),
                        key_seq,
                    });
                    values.to_seal.push(ValueToSeal {
                        key: key.clone(),
                        salt: value.salt,
                        plain,
                    });
                }
            }
            if draft.event_type == ledger::record::EventType::Erasure
                && let Some(scope) = ErasureScope::from_payload(seq.get(), draft.payload.as_str())
            {
                // After a whole subject's erasure its key is gone: later values get a new one.
                if scope.whole_subject() {
                    in_group.remove(&scope.subject_ref);
                    erased_in_group.insert(scope.subject_ref.clone());
                }
                // Any erasure may destroy the subject's key (once no value uses it): the next
                // group asks the database.
                forget.push(scope.subject_ref.clone());
                erasures.push(scope);
            }
            last = Some((seq, captured_at.unix_micros()));
            positioned.push((seq, captured_at, draft));
            if !looked_up {
                values_kept.push(erasable_values);
            }
        }
        let valued = started.elapsed();
        let Sealed {
            records,
            tree,
            nodes,
            head,
            values,
        } = seal_all(
            positioned,
            self.tenant.clone(),
            self.head,
            self.tree.clone(),
            self.signer.clone(),
            values,
            self.store.clone(),
        )
        .await?;
        let ValuesToSeal {
            rows: erasable,
            new_keys,
            ..
        } = values;
        for r in &records {
            // A key outside its interval must never sign (rotation bugs would show up here).
            if r.seq.get() < self.key.from_seq
                || self.key.until_seq.is_some_and(|u| r.seq.get() >= u)
            {
                return Err(GroupFailed::Store(StoreError::Corrupt(format!(
                    "key {} is not valid for sequence {}",
                    self.key.key_id, r.seq
                ))));
            }
        }

        let payload_erasable: Vec<String> = records
            .iter()
            .map(|r| {
                serde_json::to_string(&r.erasable).map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        let rows: Vec<NewRecordRow<'_>> = records
            .iter()
            .zip(payload_erasable)
            .map(|(record, erasable)| NewRecordRow {
                record,
                payload: record.payload.as_str(),
                erasable,
            })
            .collect();
        let signed = started.elapsed();
        let inserted = tx
            .insert(&self.tenant, &rows, &erasable, &new_keys, &nodes)
            .await;
        let written = started.elapsed();
        drop(rows);
        if let Err(e) = inserted {
            if !looked_up && e.is_unique_violation() {
                // Dropping the transaction rolls it back: nothing of the group is written.
                drop(tx);
                let ids: Vec<String> = records.iter().map(|r| r.event_id.to_string()).collect();
                let stored = self.existing(&ids).await?;
                if !stored.is_empty() {
                    let drafts = records
                        .into_iter()
                        .zip(values_kept)
                        .map(|(r, erasable_values)| PreparedDraft {
                            draft: ledger::record::RecordDraft {
                                event_id: r.event_id,
                                event_type: r.event_type,
                                payload: r.payload,
                                erasable: r.erasable,
                            },
                            erasable_values,
                        })
                        .collect();
                    return Err(GroupFailed::Repeated(drafts, stored));
                }
            }
            return Err(e.into());
        }
        // Erasures take effect in the transaction that appends them, after the group's own
        // values are in (an erasure covers the values before it in the chain, these included).
        // The log is marked first: from here on it may hold the erased values' old pages.
        if !erasures.is_empty() {
            self.store.backend().mark_log()?;
        }
        for scope in &erasures {
            tx.erase(&self.tenant, scope).await?;
        }
        // Holds and the retention policy follow their records in the same transaction.
        let hold_changes = super::holds::HoldChange::of_records(&records);
        if !hold_changes.is_empty() {
            tx.apply_holds(&self.tenant, &hold_changes).await?;
        }
        if let Some((seq, rules)) = super::retention::policy_of_records(&records)? {
            tx.replace_retention_policy(&self.tenant, seq, &rules)
                .await?;
        }
        if let Some(row) = &new_key_row {
            tx.rotate_key(&self.tenant, &self.key.key_id.to_hex(), row, now)
                .await?;
        }
        let sealed = started.elapsed();
        tx.commit().await?;
        self.store.faults().write_succeeded();
        // Group size and commit latency, for tuning the group-commit window.
        tracing::debug!(
            tenant = %self.tenant,
            records = records.len(),
            lock_us = u64::try_from(locked.as_micros()).unwrap_or(u64::MAX),
            valued_us = u64::try_from(valued.as_micros()).unwrap_or(u64::MAX),
            signed_us = u64::try_from(signed.as_micros()).unwrap_or(u64::MAX),
            written_us = u64::try_from(written.as_micros()).unwrap_or(u64::MAX),
            sealed_us = u64::try_from(sealed.as_micros()).unwrap_or(u64::MAX),
            committed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            "group committed"
        );

        self.tree = tree;
        self.head = head;
        for (subject, k, key) in learnt {
            self.data_keys.insert(subject, k, key);
        }
        for subject in &forget {
            self.data_keys.forget(subject);
        }
        if let (Some((key, _)), Some(row)) = (rotation, new_key_row) {
            self.key = KeyInterval {
                key_id: ledger::keys::KeyId::of(&key.verifying_key()),
                public_key: key.verifying_key(),
                from_seq: u64::try_from(row.from_seq).unwrap_or(0),
                until_seq: None,
            };
            self.signer = Arc::new(RecordSigner::new(key));
        }
        self.tree_tx.send_replace(TreeHead {
            size: self.tree.size(),
            root: self.tree.root(),
        });
        // Live tailing: the projection runner applies the new records without waiting to poll.
        self.store.views_runner().wake_for(&self.tenant);
        if !erasures.is_empty() {
            // Journaled once committed and before anyone is answered (see `erasure.rs`): a
            // restored backup cannot bring back what an acknowledged erasure erased, and an
            // erasure that did not commit is never carried out.
            let erasure_records: Vec<&Record> = records
                .iter()
                .filter(|r| r.event_type == ledger::record::EventType::Erasure)
                .collect();
            self.store
                .erasure_journal()
                .record(&self.tenant, &erasure_records)?;
            // And before anyone is answered, the database's log loses the erased values' old
            // page images (SQLite's write-ahead log; see `Backend::truncate_log`).
            self.store.truncate_log_after_erasure().await;
        }
        Ok(records)
    }
}

/// Whether any event id occurs more than once among the group's drafts.
fn names_an_id_twice(group: &[Request]) -> bool {
    let mut seen = HashSet::with_capacity(group.iter().map(|(d, _)| d.len()).sum());
    !group
        .iter()
        .flat_map(|(d, _)| d.iter())
        .all(|p| seen.insert(p.draft.event_id))
}

/// What differs between two drafts of one event id, if anything.
fn draft_difference(a: &PreparedDraft, b: &PreparedDraft) -> Option<String> {
    content_difference(
        (&a.draft, &a.erasable_values),
        (&b.draft, &b.erasable_values),
    )
    .map(str::to_owned)
}

/// A draft as [`content_difference`] compares it: the record draft and its erasable values.
pub(crate) type DraftContent<'a> = (
    &'a ledger::record::RecordDraft,
    &'a std::collections::BTreeMap<ledger::record::FieldName, ledger::record::ErasableValue>,
);

/// What differs between two drafts of one event id, if anything: the event type, the canonical
/// payload or the erasable values (not their commitments, whose salts are drawn afresh for
/// every record). Drafts that differ in none are one record asked for twice: appended once,
/// the repeat answered as a duplicate. The API names the conflicting items of a batch by this
/// same rule, so that it refuses no batch the appender would take.
pub(crate) fn content_difference(a: DraftContent<'_>, b: DraftContent<'_>) -> Option<&'static str> {
    if a.0.event_type != b.0.event_type {
        return Some("event_type differs");
    }
    if a.0.payload != b.0.payload {
        return Some("payload differs");
    }
    // Without the iterator's allocation: equal lengths, then pairwise.
    let same_values = a.1.len() == b.1.len()
        && a.1
            .iter()
            .zip(b.1.iter())
            .all(|((ka, va), (kb, vb))| ka == kb && va.value == vb.value);
    if !same_values {
        return Some("erasable fields differ");
    }
    None
}

/// A group's records, hashed in chain order and signed, with the tree and head they lead to.
struct Sealed {
    records: Vec<Record>,
    tree: CompactTree,
    /// The Merkle nodes completed at tile boundaries: (level, index, hash).
    nodes: Vec<(u8, u64, Hash)>,
    head: Option<ChainHead>,
    /// The group's erasable values and new data keys, sealed and wrapped.
    values: ValuesToSeal,
}

/// A group's erasable values and new data keys, their rows laid out by the appender with the
/// sealed bytes and wrapped keys still empty: [`seal_all`] fills them in on every core, with the
/// signatures, rather than on the appender's one thread (AES-GCM per value, and an HKDF and
/// AES-GCM per new key).
#[derive(Default)]
struct ValuesToSeal {
    rows: Vec<NewErasableRow>,
    /// What seals each of `rows`, in the same order.
    to_seal: Vec<ValueToSeal>,
    new_keys: Vec<NewDataKeyRow>,
    /// The key each of `new_keys` wraps, in the same order.
    to_wrap: Vec<DataKey>,
}

/// The key, salt and JSON text of one erasable value to seal.
struct ValueToSeal {
    key: DataKey,
    salt: [u8; ledger::record::ERASABLE_SALT_BYTES],
    plain: zeroize::Zeroizing<Vec<u8>>,
}

impl ValuesToSeal {
    /// Seals every value and wraps every new key of `tenant` (under `master`), in parallel
    /// when `parallel`.
    fn seal(
        &mut self,
        tenant: &TenantId,
        master: &MasterKeys,
        parallel: bool,
    ) -> Result<(), StoreError> {
        let seal = |(row, v): (&mut NewErasableRow, &ValueToSeal)| -> Result<(), StoreError> {
            let seq = u64::try_from(row.seq)
                .map_err(|_| StoreError::Corrupt("negative sequence".into()))?;
            row.sealed = v
                .key
                .seal_value(tenant, seq, &row.field, &v.salt, &v.plain)?;
            Ok(())
        };
        let wrap = |(row, key): (&mut NewDataKeyRow, &DataKey)| -> Result<(), StoreError> {
            let seq = u64::try_from(row.key_seq)
                .map_err(|_| StoreError::Corrupt("negative data key number".into()))?;
            row.wrapped = key.wrap(master, tenant, seq)?;
            Ok(())
        };
        if parallel {
            self.rows
                .par_iter_mut()
                .zip(self.to_seal.par_iter())
                .try_for_each(seal)?;
            self.new_keys
                .par_iter_mut()
                .zip(self.to_wrap.par_iter())
                .try_for_each(wrap)?;
        } else {
            self.rows
                .iter_mut()
                .zip(self.to_seal.iter())
                .try_for_each(seal)?;
            self.new_keys
                .iter_mut()
                .zip(self.to_wrap.iter())
                .try_for_each(wrap)?;
        }
        // The plaintexts (zeroed as they drop) and the keys are no longer needed.
        self.to_seal = Vec::new();
        self.to_wrap = Vec::new();
        Ok(())
    }
}

/// Hashes `positioned` records in order after `head` (each links to the one before), adds them
/// to `tree`, and signs them. A group large enough to pay for it (by records or by payload bytes)
/// does all of this on the blocking pool and signs on rayon's: a 2,000-record group is
/// milliseconds of hashing, during which the appender's thread would serve no one else.
async fn seal_all(
    positioned: Vec<(Sequence, CaptureTime, ledger::record::RecordDraft)>,
    tenant: TenantId,
    head: Option<ChainHead>,
    tree: CompactTree,
    signer: Arc<RecordSigner>,
    mut values: ValuesToSeal,
    store: Store,
) -> Result<Sealed, StoreError> {
    let bytes: usize = positioned
        .iter()
        .map(|(_, _, d)| d.payload.as_str().len())
        .sum();
    if positioned.len() < PARALLEL_SIGN_RECORDS_MIN && bytes < PARALLEL_SIGN_BYTES_MIN {
        let (unsigned, sealed) = hash_all(positioned, &tenant, head, tree, &signer)?;
        let records = unsigned.into_iter().map(|u| u.sign(&signer)).collect();
        values.seal(&tenant, store.master(), false)?;
        return Ok(Sealed {
            records,
            values,
            ..sealed
        });
    }
    // The blocking thread waits for the pool, so no async worker does; rayon re-raises a
    // worker's panic here, where it is turned into an error rather than taking the appender down.
    // The store goes along, not a copy of its master keys (which would be one more copy of the
    // key material in memory, per group).
    tokio::task::spawn_blocking(move || {
        let (unsigned, sealed) = hash_all(positioned, &tenant, head, tree, &signer)?;
        let (records, values) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let records = unsigned
                .into_par_iter()
                .map(|u| u.sign(&signer))
                .collect::<Vec<_>>();
            values
                .seal(&tenant, store.master(), true)
                .map(|()| (records, values))
        }))
        .map_err(|_| StoreError::Corrupt("a signing thread panicked".into()))??;
        Ok(Sealed {
            records,
            values,
            ..sealed
        })
    })
    .await
    .map_err(|e| StoreError::Corrupt(format!("sealing task failed: {e}")))?
}

/// The hashing half of [`seal_all`]: the unsigned records, and the rest of [`Sealed`] with no
/// records yet.
fn hash_all(
    positioned: Vec<(Sequence, CaptureTime, ledger::record::RecordDraft)>,
    tenant: &TenantId,
    mut head: Option<ChainHead>,
    mut tree: CompactTree,
    signer: &RecordSigner,
) -> Result<(Vec<UnsignedRecord>, Sealed), StoreError> {
    let mut unsigned = Vec::with_capacity(positioned.len());
    let mut nodes = Vec::new();
    for (seq, captured_at, draft) in positioned {
        let prev = head.map_or(Hash::ZERO, |h| h.hash);
        let u = UnsignedRecord::new(
            tenant,
            ChainPosition {
                seq,
                prev,
                captured_at,
            },
            draft,
            signer.key_id(),
        );
        for n in tree
            .push(leaf_hash(u.hash().as_bytes()))
            .map_err(|e| StoreError::OutOfRange(e.to_string()))?
        {
            if n.id.level() > 0 && n.id.level() % TILE_HEIGHT == 0 {
                nodes.push((n.id.level(), n.id.index(), n.hash));
            }
        }
        head = Some(ChainHead {
            seq,
            hash: u.hash(),
            captured_at,
        });
        unsigned.push(u);
    }
    Ok((
        unsigned,
        Sealed {
            records: Vec::new(),
            tree,
            nodes,
            head,
            values: ValuesToSeal::default(),
        },
    ))
}

/// The subject each draft of a group concerns: its own `subject_ref`, or that of the decision its
/// `decision_id` names (in the group or already stored). Only drafts with erasable values matter.
struct GroupSubjects {
    by_event: HashMap<EventId, String>,
}

impl GroupSubjects {
    async fn resolve(
        store: &Store,
        tenant: &TenantId,
        drafts: &[PreparedDraft],
    ) -> Result<Self, StoreError> {
        let mut by_event = HashMap::new();
        let mut decisions: HashMap<String, String> = HashMap::new();
        let mut wanted = Vec::new();
        // Only drafts with values need a subject: most groups parse no payload here.
        for d in drafts.iter().filter(|d| !d.erasable_values.is_empty()) {
            let fields = payload_strings(d.draft.payload.as_str());
            if let Some(s) = fields.subject_ref {
                by_event.insert(d.draft.event_id, s);
            } else if let Some(id) = fields.decision_id {
                wanted.push((d.draft.event_id, id));
            }
        }
        if !wanted.is_empty() {
            // A follow-up may name a decision of the same group.
            let ids: HashSet<&str> = wanted.iter().map(|(_, id)| id.as_str()).collect();
            for d in drafts {
                let id = d.draft.event_id.to_string();
                if d.draft.event_type == ledger::record::EventType::Decision
                    && ids.contains(id.as_str())
                    && let Some(s) = payload_strings(d.draft.payload.as_str()).subject_ref
                {
                    decisions.insert(id, s);
                }
            }
            let missing: Vec<String> = wanted
                .iter()
                .filter(|(_, id)| !decisions.contains_key(id))
                .map(|(_, id)| id.clone())
                .collect();
            for chunk in missing.chunks(500) {
                for row in store.backend().records_by_event_ids(tenant, chunk).await? {
                    let record = row.into_record()?;
                    if record.event_type == ledger::record::EventType::Decision
                        && let Some(s) = payload_strings(record.payload.as_str()).subject_ref
                    {
                        decisions.insert(record.event_id.to_string(), s);
                    }
                }
            }
            for (event, id) in wanted {
                if let Some(s) = decisions.get(&id) {
                    by_event.insert(event, s.clone());
                }
            }
        }
        Ok(GroupSubjects { by_event })
    }

    fn of(&self, draft: &ledger::record::RecordDraft) -> Option<&str> {
        self.by_event.get(&draft.event_id).map(String::as_str)
    }

    fn all(&self) -> Vec<&str> {
        let set: HashSet<&str> = self.by_event.values().map(String::as_str).collect();
        set.into_iter().collect()
    }
}

/// The `subject_ref` and `decision_id` members of a payload, when they are strings.
struct PayloadLinks {
    subject_ref: Option<String>,
    decision_id: Option<String>,
}

fn payload_strings(payload: &str) -> PayloadLinks {
    #[derive(serde::Deserialize)]
    struct Links {
        subject_ref: Option<serde_json::Value>,
        decision_id: Option<serde_json::Value>,
    }
    let links: Option<Links> = serde_json::from_str(payload).ok();
    let text = |v: Option<serde_json::Value>| match v {
        Some(serde_json::Value::String(s)) => Some(s),
        _ => None,
    };
    match links {
        Some(l) => PayloadLinks {
            subject_ref: text(l.subject_ref),
            decision_id: text(l.decision_id),
        },
        None => PayloadLinks {
            subject_ref: None,
            decision_id: None,
        },
    }
}

/// Unwrapped data keys of recent subjects, so that appending to a known subject neither looks its
/// key up nor unwraps it again (an HKDF and an AES-GCM opening).
///
/// The cache is exact only while this appender is the chain's only writer: it holds keys of
/// committed groups only, forgets a subject on any erasure of it, and is cleared whenever the
/// chain head is not the one this appender committed last (another instance, or a one-shot
/// command, appended — and may have erased). Master-key rotation re-wraps keys without changing
/// them, so it leaves the cache right.
#[derive(Default)]
struct DataKeyCache {
    keys: HashMap<String, (i64, DataKey)>,
}

/// Subjects whose keys the cache holds at most (about 100 bytes each); past that it starts
/// again.
const DATA_KEY_CACHE_MAX: usize = 65_536;

impl DataKeyCache {
    fn holds(&self, subject: &str) -> bool {
        self.keys.contains_key(subject)
    }

    fn get(&self, subject: &str) -> Option<(i64, DataKey)> {
        self.keys.get(subject).cloned()
    }

    fn insert(&mut self, subject: String, key_seq: i64, key: DataKey) {
        if self.keys.len() >= DATA_KEY_CACHE_MAX && !self.keys.contains_key(&subject) {
            self.keys.clear();
        }
        self.keys.insert(subject, (key_seq, key));
    }

    fn clear(&mut self) {
        self.keys.clear();
    }

    fn forget(&mut self, subject: &str) {
        self.keys.remove(subject);
    }
}
