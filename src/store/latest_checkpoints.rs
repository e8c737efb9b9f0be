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
//! Only reads of the primary keep or use it: a read replica may be behind the primary, so a
//! request reading one reads the checkpoint from it as before (a checkpoint kept from the
//! primary could be newer than the replica's records and tree; one kept from a replica, older
//! than the primary's by the replica's lag).
//!
//! A fill races a publication: a read begun before [`LatestCheckpoints::forget`] may return the
//! checkpoint it replaced. A forget notes its time for the tenant, and a fill whose read began
//! no later is not kept. When the set is full, the entries that keep nothing current make room
//! first (and the whole set if that is not enough); what they forgot is then kept as one floor
//! for every tenant, so making room never lets a racing fill through. A kept checkpoint's age
//! counts from when its read began, so nothing is
//! served more than [`LATEST_CHECKPOINT_KEPT_MS`] after it was read, and a fill never replaces
//! a larger checkpoint, or one read later, with what it read. Whatever is kept, a proof against
//! it verifies only if it is true: the checkpoint is signed, and whoever receives the proof
//! checks it against that checkpoint.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ledger::types::TenantId;

use super::StoredCheckpoint;

/// How long a tenant's latest checkpoint is served to proofs from memory, counted from the start
/// of the read that found it.
pub const LATEST_CHECKPOINT_KEPT_MS: u64 = 100;

/// Most tenants with an entry (a checkpoint note is well under 1 KiB without cosignatures, up
/// to about 10 KiB with 32 of them); when full, room is made as the module says.
const LATEST_CHECKPOINTS_MAX: usize = 4096;

/// One tenant's entry.
#[derive(Default)]
struct Entry {
    /// The kept checkpoint and when the read that found it began.
    kept: Option<(Instant, StoredCheckpoint)>,
    /// When it was last forgotten: fills whose read began no later are not kept.
    forgotten: Option<Instant>,
}

/// The kept checkpoints, by tenant.
#[derive(Default)]
pub(crate) struct LatestCheckpoints {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: HashMap<TenantId, Entry>,
    /// When room was last made: the forget times it dropped were no later, so a fill whose read
    /// began no later is not kept, whatever its tenant.
    floor: Option<Instant>,
}

impl State {
    /// The entry of `tenant`, made room for when the set is full.
    fn entry(&mut self, tenant: &TenantId) -> &mut Entry {
        if self.entries.len() >= LATEST_CHECKPOINTS_MAX && !self.entries.contains_key(tenant) {
            let now = Instant::now();
            self.entries
                .retain(|_, e| e.kept.as_ref().is_some_and(|(read_at, _)| fresh(*read_at)));
            if self.entries.len() >= LATEST_CHECKPOINTS_MAX {
                self.entries.clear();
            }
            self.floor = Some(now);
        }
        self.entries.entry(tenant.clone()).or_default()
    }
}

/// Whether a checkpoint read at `read_at` may still be served.
fn fresh(read_at: Instant) -> bool {
    read_at.elapsed() < Duration::from_millis(LATEST_CHECKPOINT_KEPT_MS)
}

/// When a fill's read began: pass it back to [`LatestCheckpoints::keep`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadBegan(Instant);

impl LatestCheckpoints {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The kept checkpoint of `tenant`, if it is young enough and of at least `at_least` records.
    pub(crate) fn get(&self, tenant: &TenantId, at_least: u64) -> Option<StoredCheckpoint> {
        let state = self.lock();
        let (read_at, checkpoint) = state.entries.get(tenant)?.kept.as_ref()?;
        (fresh(*read_at) && checkpoint.size.get() >= at_least).then(|| checkpoint.clone())
    }

    /// Marks the start of a fill's read.
    pub(crate) fn begin(&self) -> ReadBegan {
        ReadBegan(Instant::now())
    }

    /// Keeps `checkpoint`, read since `began`, unless the tenant was forgotten meanwhile or a
    /// larger checkpoint, or one read later, is kept.
    pub(crate) fn keep(&self, tenant: &TenantId, began: ReadBegan, checkpoint: StoredCheckpoint) {
        let mut state = self.lock();
        if state.floor.is_some_and(|f| f >= began.0) {
            return;
        }
        let entry = state.entry(tenant);
        if entry.forgotten.is_some_and(|f| f >= began.0) {
            return;
        }
        if let Some((read_at, kept)) = &entry.kept
            && (kept.size > checkpoint.size || (kept.size == checkpoint.size && *read_at > began.0))
        {
            return;
        }
        entry.kept = Some((began.0, checkpoint));
    }

    /// Forgets the tenant's kept checkpoint, and any fill still reading.
    pub(crate) fn forget(&self, tenant: &TenantId) {
        let mut state = self.lock();
        let entry = state.entry(tenant);
        entry.kept = None;
        entry.forgotten = Some(Instant::now());
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

    fn kept_size(latest: &LatestCheckpoints, tenant: &TenantId) -> Option<u64> {
        latest.get(tenant, 0).map(|c| c.size.get())
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
    fn a_fill_that_began_before_its_tenant_was_forgotten_is_not_kept() {
        let latest = LatestCheckpoints::default();
        let acme = tenant("acme");
        let other = tenant("other");
        let began = latest.begin();
        latest.forget(&acme);
        latest.keep(&acme, began, checkpoint(10));
        assert_eq!(kept_size(&latest, &acme), None);
        // (Instants a millisecond apart, whatever the clock's resolution.)
        std::thread::sleep(Duration::from_millis(1));
        // Another tenant's forget does not cost this tenant its fill.
        let began = latest.begin();
        latest.forget(&other);
        latest.keep(&acme, began, checkpoint(12));
        assert_eq!(kept_size(&latest, &acme), Some(12));
        latest.forget(&acme);
        assert_eq!(
            kept_size(&latest, &acme),
            None,
            "a forget drops the kept checkpoint"
        );
    }

    #[test]
    fn a_forget_dropped_to_make_room_still_stops_a_fill_that_began_before_it() {
        let latest = LatestCheckpoints::default();
        let acme = tenant("acme");
        let began = latest.begin();
        latest.forget(&acme);
        // Enough other tenants' publications to fill the set, pruning acme's forget with theirs.
        for n in 0..=LATEST_CHECKPOINTS_MAX {
            latest.forget(&tenant(&format!("t{n}")));
        }
        assert!(latest.lock().entries.len() <= LATEST_CHECKPOINTS_MAX);
        latest.keep(&acme, began, checkpoint(10));
        assert_eq!(kept_size(&latest, &acme), None);
        std::thread::sleep(Duration::from_millis(1));
        latest.keep(&acme, latest.begin(), checkpoint(12));
        assert_eq!(
            kept_size(&latest, &acme),
            Some(12),
            "a fill begun after it is kept"
        );
    }

    #[test]
    fn making_room_keeps_the_checkpoints_still_served() {
        let latest = LatestCheckpoints::default();
        let acme = tenant("acme");
        latest.keep(&acme, latest.begin(), checkpoint(10));
        for n in 0..=LATEST_CHECKPOINTS_MAX {
            latest.forget(&tenant(&format!("t{n}")));
        }
        assert_eq!(kept_size(&latest, &acme), Some(10));
    }

    #[test]
    fn a_slower_fill_does_not_replace_a_newer_checkpoint() {
        let latest = LatestCheckpoints::default();
        let acme = tenant("acme");
        let slow = latest.begin();
        let fast = latest.begin();
        latest.keep(&acme, fast, checkpoint(20));
        latest.keep(&acme, slow, checkpoint(10));
        assert_eq!(
            kept_size(&latest, &acme),
            Some(20),
            "a smaller one does not replace it"
        );
        let later = latest.begin();
        latest.keep(&acme, later, checkpoint(20));
        latest.keep(&acme, slow, checkpoint(20));
        assert_eq!(
            latest.lock().entries[&acme]
                .kept
                .as_ref()
                .map(|(at, _)| *at),
            Some(later.0),
            "the same size read earlier does not replace it"
        );
    }

    #[test]
    fn a_kept_checkpoint_expires_counted_from_its_read() {
        let latest = LatestCheckpoints::default();
        let acme = tenant("acme");
        let began = latest.begin();
        std::thread::sleep(Duration::from_millis(LATEST_CHECKPOINT_KEPT_MS + 20));
        latest.keep(&acme, began, checkpoint(10));
        assert!(
            latest.get(&acme, 0).is_none(),
            "a read that took the whole bound is not served"
        );
    }
}
