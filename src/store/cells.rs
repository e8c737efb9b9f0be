//! Moving a tenant between cells (`auditex tenant move`): the steps above the database — copy
//! and switch (in the PostgreSQL backend, `postgres/cells.rs`), then the integrity check of the
//! chain on its new cell, then writes resumed there — and the names every layer shares.

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

/// Whether `name` can name a cell: 1–32 characters of a-z, 0-9 and '-', not starting with '-'
/// (migration 0028's check on the placement table).
pub fn valid_cell_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
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
    /// The integrity check of the chain on its new cell (passed).
    pub check: IntegrityReport,
    /// How long the integrity check of the chain on its new cell took (under the fence).
    pub check_time: Duration,
    /// From the source's fence to writes resumed on the target: how long the tenant's writes
    /// were refused (the copy made before the fence, [`MoveCopied::precopy`], not included).
    pub write_pause: Duration,
}

impl Store {
    /// The configured cells' names, `home` first (just `home` without tenant cells).
    pub fn cell_names(&self) -> Vec<String> {
        self.backend().cell_names()
    }

    /// The cell `tenant` is placed on, as the placement table says.
    ///
    /// # Errors
    /// [`StoreError`] when the database cannot be read.
    pub async fn placement(&self, tenant: &TenantId) -> Result<String, StoreError> {
        self.backend().placement(tenant).await
    }

    /// Moves `tenant`'s ledger and views to the cell `to`: fences the source (its writes are
    /// refused from then on, with 503 and Retry-After), copies every row, compares the copy with
    /// the source table by table, switches the placement, checks the chain on the new cell
    /// (every record's hash, signature and link, the Merkle tree and every checkpoint), then,
    /// after [`SWITCH_SETTLE`], lets writes land on the new cell. A copy or check that fails
    /// leaves the tenant where it was, writable again. `progress` is told each table's rows as
    /// they are copied.
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
        let started = Instant::now();
        let now_us = self.config().clock.now_unix_micros();
        let copied = self
            .backend()
            .move_copy(tenant, to, now_us, progress)
            .await?;
        // The placement now says `to`: this store reads the chain there.
        let checking = Instant::now();
        let check = self
            .check_integrity(tenant, IntegrityOptions::default())
            .await;
        let check_time = checking.elapsed();
        let failure = match &check {
            Ok(r) if r.outcome == IntegrityOutcome::Passed => None,
            Ok(r) => Some(format!(
                "the chain on cell {to} did not verify ({}); the tenant stays on cell {}",
                r.first_failure
                    .as_ref()
                    .map_or_else(|| r.outcome.as_str().to_owned(), |f| format!("{f:?}")),
                copied.from
            )),
            Err(e) => Some(format!(
                "the chain on cell {to} could not be checked ({e}); the tenant stays on cell {}",
                copied.from
            )),
        };
        if let Some(why) = failure {
            let now_us = self.config().clock.now_unix_micros();
            self.backend()
                .move_abort(tenant, &copied.from, now_us)
                .await?;
            return Err(StoreError::Cells(why));
        }
        tokio::time::sleep(SWITCH_SETTLE).await;
        self.backend().move_finish(tenant, to).await?;
        let check = check?;
        let write_pause = started.elapsed().saturating_sub(copied.precopy);
        Ok(MoveReport {
            copied,
            check,
            check_time,
            write_pause,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::valid_cell_name;

    #[test]
    fn cell_names_are_short_lowercase_words() {
        for ok in ["home", "eu-1", "b", "cell-02"] {
            assert!(valid_cell_name(ok), "{ok}");
        }
        for bad in ["", "-x", "EU", "a b", "a_b", &"x".repeat(33)] {
            assert!(!valid_cell_name(bad), "{bad}");
        }
    }
}
