//! Each tenant's latest checkpoint with its cosignatures, kept briefly for the proof endpoints.
//!
//! An inclusion proof against the latest checkpoint otherwise reads that checkpoint and its
//! cosignatures from the database on every request: two of a proof's three or four reads, each
//! on SQLite a hand-off to a connection's thread and back. The checkpoint changes at most once
//! per publication interval, so it is kept here and read again when:
//!
//! - it is older than [`LATEST_CHECKPOINT_KEPT_MS`]: the bound on how late a proof shows a
//!   checkpoint another node published, or a cosignature another node stored;
//! - it is smaller than the caller needs (the record asked for is beyond it, or `min_tree_size`
//!   is larger), so a record never waits for the time bound to find the checkpoint covering it;
//! - this store published a checkpoint or stored a cosignature for the tenant, or held or
//!   released it after a rollback ([`LatestCheckpoints::forget`]).
//!
//! A fill races a publication: a read started before [`LatestCheckpoints::forget`] may return
//! the checkpoint it replaced. Every forget moves an epoch on, and a fill whose read began in an
//! earlier epoch is not kept. Whatever is kept, a proof against it verifies only if it is true:
//! the checkpoint is signed, and the proof is checked against it by whoever receives it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ledger::types::TenantId;

use super::StoredCheckpoint;

/// How long a tenant's latest checkpoint is served to proofs from memory before it is read again.
pub const LATEST_CHECKPOINT_KEPT_MS: u64 = 100;

/// Most tenants whose latest checkpoint is kept (a checkpoint note is well under 1 KiB without
/// cosignatures, up to about 10 KiB with 32 of them); when full, the set is emptied.
const LATEST_CHECKPOINTS_MAX: usize = 4096;

/// The kept checkpoints and the epoch that invalidates fills racing a forget.
#[derive(Default)]
pub(crate) struct LatestCheckpoints {
    kept: Mutex<HashMap<TenantId, (Instant, StoredCheckpoint)>>,
    epoch: AtomicU64,
}

/// Where a fill began: pass it back to [`LatestCheckpoints::keep`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Epoch(u64);

impl LatestCheckpoints {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, (Instant, StoredCheckpoint)>> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The kept checkpoint of `tenant`, if it is young enough and of at least `at_least` records.
    pub(crate) fn get(&self, tenant: &TenantId, at_least: u64) -> Option<StoredCheckpoint> {
        let kept = self.lock();
        let (at, checkpoint) = kept.get(tenant)?;
        (at.elapsed() < Duration::from_millis(LATEST_CHECKPOINT_KEPT_MS)
            && checkpoint.size.get() >= at_least)
            .then(|| checkpoint.clone())
    }

    /// Marks the start of a fill's read.
    pub(crate) fn begin(&self) -> Epoch {
        Epoch(self.epoch.load(Ordering::Acquire))
    }

    /// Keeps `checkpoint`, read since `began`, unless something was forgotten meanwhile.
    pub(crate) fn keep(&self, tenant: &TenantId, began: Epoch, checkpoint: StoredCheckpoint) {
        let mut kept = self.lock();
        // Checked under the lock that `forget` bumps the epoch under: no forget slips between.
        if self.epoch.load(Ordering::Acquire) != began.0 {
            return;
        }
        if kept.len() >= LATEST_CHECKPOINTS_MAX && !kept.contains_key(tenant) {
            kept.clear();
        }
        kept.insert(tenant.clone(), (Instant::now(), checkpoint));
    }

    /// Forgets the tenant's kept checkpoint, and any fill still reading.
    pub(crate) fn forget(&self, tenant: &TenantId) {
        let mut kept = self.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        kept.remove(tenant);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::types::{Hash, TreeSize};

    fn checkpoint(size: u64) -> StoredCheckpoint {
        StoredCheckpoint {
            size: TreeSize::new(size),
            root: Hash::from_bytes([7; 32]),
            signed_note: format!("note of {size}\n"),
            published_at_us: 1,
        }
    }

    fn tenant(name: &str) -> TenantId {
        TenantId::parse(name).expect("a valid tenant id")
    }

    #[test]
    fn a_kept_checkpoint_serves_only_callers_it_covers() {
        let latest = LatestCheckpoints::default();
        let acme = tenant("acme");
        assert!(latest.get(&acme, 0).is_none());
        latest.keep(&acme, latest.begin(), checkpoint(10));
        assert_eq!(latest.get(&acme, 10).map(|c| c.size.get()), Some(10));
        assert!(latest.get(&acme, 11).is_none(), "a larger need reads again");
        assert!(latest.get(&tenant("other"), 0).is_none());
    }

    #[test]
    fn a_fill_that_began_before_a_forget_is_not_kept() {
        let latest = LatestCheckpoints::default();
        let acme = tenant("acme");
        let began = latest.begin();
        latest.forget(&tenant("other"));
        latest.keep(&acme, began, checkpoint(10));
        assert!(latest.get(&acme, 0).is_none());
        latest.keep(&acme, latest.begin(), checkpoint(12));
        latest.forget(&acme);
        assert!(
            latest.get(&acme, 0).is_none(),
            "a forget drops the kept checkpoint"
        );
    }

    #[test]
    fn a_kept_checkpoint_expires() {
        let latest = LatestCheckpoints::default();
        let acme = tenant("acme");
        latest.keep(&acme, latest.begin(), checkpoint(10));
        std::thread::sleep(Duration::from_millis(LATEST_CHECKPOINT_KEPT_MS + 20));
        assert!(latest.get(&acme, 0).is_none());
    }
}
