//! Moving a tenant between cells (`auditex tenant move`), the steps above the database: the copy
//! of one snapshot (in the PostgreSQL backend, `postgres/cells.rs`), its integrity check on the
//! target, the fence, the rest's copy and the switch (the backend again), writes resumed on the
//! new cell, and the whole chain checked there; and the names every layer shares.

use std::time::{Duration, Instant};

use ledger::types::TenantId;

use super::integrity::{IntegrityOptions, IntegrityOutcome, IntegrityReport};
use super::{Store, StoreError};

/// The name of the home database (`AUDITEX_DATABASE_URL`) as a cell.
pub const HOME: &str = "home";

/// How long a move keeps the target fenced after switching the placement, so that every node
/// has read the new placement (they ask for changes four times a second) before the first write
/// lands there: a node still routing to the source meanwhile finds it fenced and answers 503.
pub const SWITCH_SETTLE: Duration = Duration::from_millis(1_000);

tokio::task_local! {
    /// While a move checks the copy of its snapshot: (tenant, cell) whose ledger this task reads
    /// on that cell instead of where the placement says (`postgres/cells.rs`).
    pub(crate) static READ_ON: (String, String);
}

/// The first half of a move, as the second needs it (`postgres/cells.rs`).
#[derive(Default)]
pub struct MovePrecopy {
    /// The cell the tenant leaves.
    pub(crate) from: String,
    /// A move interrupted after its switch, to be finished.
    pub(crate) resumed_after_switch: bool,
    /// How long the copy took.
    pub(crate) precopy: Duration,
    /// The snapshot's chain length.
    pub(crate) next_seq: i64,
    /// The snapshot's largest checkpoint (-1 without).
    pub(crate) checkpoint_max: i64,
    /// The snapshot's checkpoints.
    pub(crate) checkpoints: i64,
    /// Erasure re-applications in the snapshot.
    pub(crate) reapplications: i64,
    /// Rows of each view table copied.
    pub(crate) views: Vec<(String, u64)>,
    /// The move's lock, held until this is dropped.
    pub(crate) guard: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl std::fmt::Debug for MovePrecopy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MovePrecopy")
            .field("from", &self.from)
            .field("next_seq", &self.next_seq)
            .finish_non_exhaustive()
    }
}

/// What a move copied.
#[derive(Debug, Clone, Default)]
pub struct MoveCopied {
    /// The cell the tenant left.
    pub from: String,
    /// (table, rows) for every table with rows of the tenant, in copy order.
    pub tables: Vec<(String, u64)>,
    /// Whether this finished a move interrupted after its switch (nothing copied this time).
    pub resumed_after_switch: bool,
    /// How long the copy made before the fence took (the tenant's writes went on meanwhile).
    pub precopy: Duration,
    /// From the source's fence to the switch: the rest copied, every table compared.
    pub fenced_copy: Duration,
}

/// A finished move.
#[derive(Debug, Clone)]
pub struct MoveReport {
    /// What was copied, and from where.
    pub copied: MoveCopied,
    /// The integrity check of the whole chain on its new cell, after the move (passed).
    pub check: IntegrityReport,
    /// How long the integrity checks took: of the snapshot's copy before the fence and of the
    /// whole chain after the move (neither while writes were refused).
    pub check_time: Duration,
    /// From the source's fence to writes resumed on the target: how long the tenant's writes
    /// were refused.
    pub write_pause: Duration,
}

impl Store {
    /// The configured cells' names, `home` first (just `home` without tenant cells).
    pub fn cell_names(&self) -> Vec<String> {
        self.backend().cell_names()
    }

    /// `Ok` when `name` is one of the configured cells (`home` included).
    ///
    /// # Errors
    /// [`StoreError::Cells`] naming the configured cells.
    pub fn check_cell(&self, name: &str) -> Result<(), StoreError> {
        let names = self.cell_names();
        if names.iter().any(|n| n == name) {
            return Ok(());
        }
        Err(StoreError::Cells(format!(
            "no cell named {name} is configured (cells: {}; set AUDITEX_CELLS)",
            names.join(", ")
        )))
    }

    /// The cell `tenant` is placed on, as the placement table says.
    ///
    /// # Errors
    /// [`StoreError`] when the database cannot be read.
    pub async fn placement(&self, tenant: &TenantId) -> Result<String, StoreError> {
        self.backend().placement(tenant).await
    }

    /// Moves `tenant`'s ledger and views to the cell `to`: copies the bulk from one snapshot
    /// while the tenant's writes go on, checks that copy on the target (every record's hash,
    /// link and signature, the Merkle tree and every checkpoint, as [`Store::check_integrity`]),
    /// then fences the source (its writes are refused from then on, with 503 and Retry-After),
    /// copies what came after the snapshot, compares every table with its source, switches the
    /// placement, and after [`SWITCH_SETTLE`] lets writes land on the new cell; finally checks
    /// the whole chain there again. A copy or check that fails before the switch leaves the
    /// tenant where it was, writable again. `progress` is told each table's rows as they are
    /// copied.
    ///
    /// # Errors
    /// [`StoreError::Cells`] for a move that cannot be made (no such cell, already there, an old
    /// copy on the target, a copy that differs, a check that fails); [`StoreError::UnknownTenant`];
    /// database errors.
    pub async fn move_tenant(
        &self,
        tenant: &TenantId,
        to: &str,
        progress: &(dyn for<'p> Fn(&'p str, u64) + Send + Sync),
    ) -> Result<MoveReport, StoreError> {
        let now_us = self.config().clock.now_unix_micros();
        // A tenant from before origins were stored gets its row now, on the source: the copy's
        // check on the fenced target could not write it there.
        self.origin(tenant).await?;
        let pre = self
            .backend()
            .move_precopy(tenant, to, now_us, progress)
            .await?;
        let mut check_time = Duration::ZERO;
        let copied = if pre.resumed_after_switch {
            MoveCopied {
                from: pre.from.clone(),
                resumed_after_switch: true,
                ..MoveCopied::default()
            }
        } else {
            // The snapshot's copy, checked on the target while writes go on.
            let checking = Instant::now();
            let check = READ_ON
                .scope(
                    (tenant.as_str().to_owned(), to.to_owned()),
                    self.check_integrity(tenant, IntegrityOptions::default()),
                )
                .await;
            check_time = checking.elapsed();
            if let Some(why) = failed(&check) {
                // The copy keeps no personal data: erasures on the source would never reach it.
                self.backend().drop_personal_copy(tenant, to).await?;
                return Err(StoreError::Cells(format!(
                    "the copy on cell {to} did not verify ({why}); nothing was switched, the \
                     tenant stays on cell {}",
                    pre.from
                )));
            }
            let now_us = self.config().clock.now_unix_micros();
            self.backend()
                .move_fenced(tenant, to, now_us, &pre, progress)
                .await?
        };
        let fenced = Instant::now();
        tokio::time::sleep(SWITCH_SETTLE).await;
        self.backend().move_finish(tenant, to).await?;
        let write_pause = copied.fenced_copy + fenced.elapsed();
        drop(pre);
        // The whole chain, on its new cell, as every node now reads it.
        let checking = Instant::now();
        let check = self
            .check_integrity(tenant, IntegrityOptions::default())
            .await;
        check_time += checking.elapsed();
        if let Some(why) = failed(&check) {
            return Err(StoreError::Cells(format!(
                "tenant {tenant} moved to cell {to}, whose every row is identical to cell {}'s, \
                 but the check of its chain there failed ({why}): run `auditex integrity` on it",
                copied.from
            )));
        }
        // The frozen copy left on the old cell keeps its records (the old placement's evidence)
        // but no personal data: erasures on the new cell would never reach it.
        self.backend()
            .drop_personal_copy(tenant, &copied.from)
            .await?;
        Ok(MoveReport {
            copied,
            check: check?,
            check_time,
            write_pause,
        })
    }
}

/// Why an integrity check did not pass, if it did not.
fn failed(check: &Result<IntegrityReport, StoreError>) -> Option<String> {
    match check {
        Ok(r) if r.outcome == IntegrityOutcome::Passed => None,
        Ok(r) => Some(
            r.first_failure
                .as_ref()
                .map_or_else(|| r.outcome.as_str().to_owned(), |f| format!("{f:?}")),
        ),
        Err(e) => Some(e.to_string()),
    }
}
