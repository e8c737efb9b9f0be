//! The subject access package (FORMAT.md section 12b; GDPR Art. 15, PIPEDA): every record
//! concerning one subject, each with its inclusion proof in one checkpoint, its decrypted
//! erasable values and the marks of what was erased, as JSON Lines written in constant memory.
//!
//! The records are found through the read-side subject index (`proj_subjects`), which lags the
//! ledger. So a package is pinned first: [`Store::package_plan`] takes the latest checkpoint (size
//! N) and refuses ([`StoreError::ViewNotReady`], HTTP 503) unless the subject index has applied
//! at least the tenant's first N records — a package is never silently incomplete. Records at or
//! beyond N are not in the checkpoint and are left out.
//!
//! Memory: the index is read [`PACKAGE_PAGE_RECORDS`] rows at a time and each page's lines are
//! written before the next is read, so a writer holds one page of entries (a few hundred records
//! with their proofs and values) whatever the subject's number of records; nothing keeps the
//! entries already written.

use ledger::bundle::BundleEntry;
use ledger::package::{PackageEnd, PackageFormat, PackageHeader, PackageTrailer, entry_line};
use ledger::types::{Hash, Sequence, TenantId, TreeSize};
use projections::runner::ViewStore;
use tokio::io::AsyncWrite;

use super::evidence::verifier_keys;
use super::export::CountingWriter;
use super::{EvidenceError, Store, StoreError};

/// Subject-index rows (so records) read per page while writing a package.
pub const PACKAGE_PAGE_RECORDS: u32 = 256;

/// The projection whose rows locate a subject's records.
const SUBJECT_INDEX: &str = "subjects";

/// A package pinned to a checkpoint, checked to be complete, ready to write.
#[derive(Debug, Clone)]
pub struct PackagePlan {
    /// The header line's content.
    pub header: PackageHeader,
    /// The pinned checkpoint's tree size: records below it are in the package.
    pub checkpoint_size: u64,
    /// Its root.
    pub checkpoint_root: Hash,
    /// When the pinned checkpoint was published, µs since the Unix epoch.
    pub checkpoint_at_us: u64,
}

/// What a package writer wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageSummary {
    /// Entry lines written.
    pub records: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// Reads a planned package's entries a page at a time, in sequence order.
#[derive(Debug)]
pub struct PackageEntries<'s> {
    store: &'s Store,
    plan: &'s PackagePlan,
    after: Option<u64>,
    done: bool,
}

impl PackageEntries<'_> {
    /// The next page of entries, or `None` after the last.
    ///
    /// # Errors
    /// [`EvidenceError::Store`] when the store fails or holds damaged data.
    pub async fn next_page(&mut self) -> Result<Option<Vec<BundleEntry>>, EvidenceError> {
        if self.done {
            return Ok(None);
        }
        let tenant = &self.plan.header.tenant;
        let size = self.plan.checkpoint_size;
        let page = self
            .store
            .subject_records(
                tenant,
                &self.plan.header.subject_ref,
                self.after,
                PACKAGE_PAGE_RECORDS,
            )
            .await?;
        self.done = page.next_cursor.is_none();
        let mut entries = Vec::with_capacity(page.items.len());
        for row in page.items {
            self.after = Some(row.seq);
            // The index is in sequence order: everything from here on is newer than the
            // checkpoint the package is pinned to.
            if row.seq >= size {
                self.done = true;
                break;
            }
            let seq = Sequence::new(row.seq).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let record = self.store.record(tenant, seq).await?.ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "record {seq} is in the subject index but not in the ledger"
                ))
            })?;
            let erased = self.store.erased_fields(tenant, seq).await?;
            entries.push(
                self.store
                    .evidence_entry(tenant, record, erased, TreeSize::new(size))
                    .await?,
            );
        }
        if entries.is_empty() && self.done {
            return Ok(None);
        }
        Ok(Some(entries))
    }
}

impl Store {
    /// Pins the access package of `subject_ref` to the latest checkpoint and checks that it can
    /// be complete: the subject index has caught up with that checkpoint, and knows the subject.
    ///
    /// # Errors
    /// [`EvidenceError::UnknownSubject`] when no checkpointed record concerns the subject (also
    /// for another tenant's subject), [`EvidenceError::NotYetCheckpointed`] when its records are
    /// all newer than the checkpoint, [`StoreError::ViewNotReady`] (as `EvidenceError::Store`)
    /// while the subject index lags the checkpoint, [`EvidenceError::NoCheckpoint`] before the
    /// first checkpoint, and store failures.
    pub async fn package_plan(
        &self,
        tenant: &TenantId,
        subject_ref: &str,
    ) -> Result<PackagePlan, EvidenceError> {
        let checkpoint = self.pinned_checkpoint(tenant).await?;
        // A tenant whose erasure journal could not be carried out withholds every value; say so
        // now rather than cut the download short.
        self.erasure_journal().refuse_if_blocked(tenant)?;
        let size = checkpoint.size.get();
        let applied = self.subject_index_applied(tenant).await?;
        if applied < size {
            return Err(StoreError::ViewNotReady(format!(
                "the subject index has applied {applied} of the {size} records of the latest checkpoint; an access package must be complete, so retry shortly"
            ))
            .into());
        }
        let first = self.subject_records(tenant, subject_ref, None, 1).await?;
        match first.items.first() {
            None => return Err(EvidenceError::UnknownSubject),
            Some(row) if row.seq >= size => {
                return Err(EvidenceError::NotYetCheckpointed { seq: row.seq, size });
            }
            Some(_) => {}
        }
        let ring = self.key_history(tenant).await?;
        let origin = self.origin(tenant).await?;
        let verifier_keys = verifier_keys(&origin, &ring)?;
        Ok(PackagePlan {
            header: PackageHeader {
                format: PackageFormat,
                tenant: tenant.clone(),
                origin,
                subject_ref: subject_ref.to_owned(),
                checkpoint: checkpoint.signed_note,
                keys: ring.intervals().to_vec(),
                verifier_keys,
            },
            checkpoint_size: size,
            checkpoint_root: checkpoint.root,
            checkpoint_at_us: checkpoint.published_at_us,
        })
    }

    /// The planned package's entries, a page at a time.
    pub fn package_entries<'s>(&'s self, plan: &'s PackagePlan) -> PackageEntries<'s> {
        PackageEntries {
            store: self,
            plan,
            after: None,
            done: false,
        }
    }

    /// Writes the planned package into `out` and flushes it.
    ///
    /// # Errors
    /// [`EvidenceError::Write`] when `out` fails, [`EvidenceError::Store`] when the store does.
    /// After an error the output has no trailer, which every verifier reports as incomplete.
    pub async fn write_package<W: AsyncWrite + Unpin + ?Sized>(
        &self,
        plan: &PackagePlan,
        out: &mut W,
    ) -> Result<PackageSummary, EvidenceError> {
        let mut writer = CountingWriter::new(out);
        writer.write(plan.header.to_line().as_bytes()).await?;
        let mut records = 0u64;
        let mut entries = self.package_entries(plan);
        while let Some(page) = entries.next_page().await? {
            let mut lines = String::with_capacity(page.len() * 1024);
            for entry in &page {
                lines.push_str(&entry_line(entry));
            }
            records += page.len() as u64;
            writer.write(lines.as_bytes()).await?;
        }
        let trailer = PackageTrailer {
            end: PackageEnd { records },
        };
        writer.write(trailer.to_line().as_bytes()).await?;
        writer.flush().await?;
        Ok(PackageSummary {
            records,
            bytes: writer.bytes(),
        })
    }

    /// How many of the tenant's records (from seq 0) the active generation of the subject index
    /// has applied. A projection stuck at a record stays below it, so its packages are refused
    /// until an operator retries it.
    async fn subject_index_applied(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        let states = self.states().await?;
        let Some(state) = states.iter().find(|s| s.name == SUBJECT_INDEX) else {
            return Err(StoreError::ViewNotReady(
                "the subject index is not built yet".into(),
            ));
        };
        let positions = self.positions(tenant).await?;
        Ok(positions
            .get(&(SUBJECT_INDEX.to_owned(), state.active_generation))
            .copied()
            .unwrap_or(0))
    }
}
