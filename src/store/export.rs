//! The streaming ledger export (FORMAT.md section 12): a tenant's records from `from_seq` up to
//! the latest published checkpoint, as JSON Lines, written in constant memory.
//!
//! The export is pinned when it starts: it takes the latest checkpoint, writes the header, then
//! pages through the records below that checkpoint's size, so records appended meanwhile never
//! tear it. Lines come from the `ledger::export` writers, which produce exactly what the
//! verifiers read.
//!
//! An export is evidence, so it is a faithful copy of what the database holds: records are
//! written as stored, without the read-back hash check that other reads make. A damaged ledger
//! still exports, and `auditex verify` (or any other verifier) then names the first bad record.
//! Damage the exporter itself notices — records missing below the checkpoint's size, an inclusion
//! proof the store cannot build — is also returned in [`ExportSummary::damage`].

use ledger::export::{EXPORT_FORMAT, ExportFormat, ExportHeader, ExportTrailer, record_line};
use ledger::types::{Hash, LeafIndex, Sequence, TenantId, TreeSize};
use serde::Serialize;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::{EvidenceError, Store};

/// Records read from the database per query while exporting; with the write buffer this bounds
/// the exporter's memory whatever the ledger's length.
pub const EXPORT_PAGE_RECORDS: u64 = 2048;

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportSummary {
    /// The tenant.
    pub tenant: TenantId,
    /// Always `auditex-export/v1`.
    pub format: &'static str,
    /// The first sequence number exported.
    pub from_seq: u64,
    /// The record lines written.
    pub records: u64,
    /// The size of the checkpoint the export is pinned to.
    pub checkpoint_size: u64,
    /// That checkpoint's root.
    pub checkpoint_root: Hash,
    /// Bytes written.
    pub bytes: u64,
    /// Damage noticed while exporting; empty for a healthy ledger. The export holds the data as
    /// stored either way.
    pub damage: Vec<String>,
}

impl Store {
    /// Writes the tenant's export from `from_seq` to the latest published checkpoint into `out`
    /// and flushes it.
    ///
    /// # Errors
    /// [`EvidenceError::NoCheckpoint`] before the first checkpoint, [`EvidenceError::OutOfRange`]
    /// when `from_seq` is beyond it, [`EvidenceError::Write`] when `out` fails, and
    /// [`EvidenceError::Store`] for an unknown tenant, a database failure or a row that cannot be
    /// read as a record at all. After an error the output is incomplete and has no trailer.
    pub async fn export<W: AsyncWrite + Unpin + ?Sized>(
        &self,
        tenant: &TenantId,
        from_seq: u64,
        out: &mut W,
    ) -> Result<ExportSummary, EvidenceError> {
        let ring = self.key_history(tenant).await?;
        let checkpoint = self
            .latest_checkpoint(tenant)
            .await?
            .ok_or(EvidenceError::NoCheckpoint)?;
        let checkpoint = self.with_cosignatures(tenant, checkpoint).await?;
        let size = checkpoint.size.get();
        if from_seq > size {
            return Err(EvidenceError::OutOfRange(format!(
                "from_seq {from_seq} is beyond the latest checkpoint's tree size {size}"
            )));
        }
        let origin = self.origin(tenant).await?;
        let verifier_keys = super::evidence::verifier_keys(&origin, &ring)?;
        let header = ExportHeader {
            format: ExportFormat,
            tenant: tenant.clone(),
            origin,
            from_seq,
            checkpoint: checkpoint.signed_note.clone(),
            keys: ring.intervals().to_vec(),
            verifier_keys,
        };
        let mut writer = CountingWriter::new(out);
        writer.write(header.to_line().as_bytes()).await?;

        let mut damage = Vec::new();
        let mut records = 0u64;
        let mut last_seq: Option<u64> = None;
        let mut next = from_seq;
        'pages: while next < size {
            let from = Sequence::new(next).map_err(|e| EvidenceError::OutOfRange(e.to_string()))?;
            let rows = self
                .backend()
                .records_range(tenant, from, EXPORT_PAGE_RECORDS.min(size - next))
                .await?;
            if rows.is_empty() {
                break;
            }
            let mut page = String::with_capacity(rows.len() * 768);
            for row in rows {
                let record = row.into_unchecked_record().map_err(EvidenceError::Store)?;
                let seq = record.seq.get();
                if seq >= size {
                    writer.write(page.as_bytes()).await?;
                    break 'pages;
                }
                if seq != next {
                    damage.push(format!(
                        "expected record {next} but the database holds record {seq} next"
                    ));
                }
                page.push_str(&record_line(&record));
                records += 1;
                last_seq = Some(seq);
                next = seq + 1;
            }
            writer.write(page.as_bytes()).await?;
        }
        if next < size {
            damage.push(format!(
                "the checkpoint of size {size} covers records {next}..{}, which are missing from the database",
                size - 1
            ));
        }
        let inclusion_proof = match last_seq {
            None => Vec::new(),
            Some(seq) => self
                .inclusion_proof(tenant, LeafIndex::new(seq), TreeSize::new(size))
                .await
                .unwrap_or_else(|e| {
                    damage.push(format!(
                        "the inclusion proof of record {seq} in the checkpoint of size {size} cannot be built: {e}"
                    ));
                    Vec::new()
                }),
        };
        let trailer = ExportTrailer {
            records,
            last_seq,
            inclusion_proof,
        };
        writer.write(trailer.to_line().as_bytes()).await?;
        writer.flush().await?;
        for problem in &damage {
            tracing::warn!(tenant = %tenant, problem = %problem, "export of a damaged ledger");
        }
        Ok(ExportSummary {
            tenant: tenant.clone(),
            format: EXPORT_FORMAT,
            from_seq,
            records,
            checkpoint_size: size,
            checkpoint_root: checkpoint.root,
            bytes: writer.bytes,
            damage,
        })
    }
}

/// Counts what goes through to the output (the export's and the access package's writer).
pub(super) struct CountingWriter<'w, W: ?Sized> {
    out: &'w mut W,
    bytes: u64,
}

impl<'w, W: AsyncWrite + Unpin + ?Sized> CountingWriter<'w, W> {
    pub(super) fn new(out: &'w mut W) -> Self {
        CountingWriter { out, bytes: 0 }
    }

    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    pub(super) async fn flush(&mut self) -> Result<(), EvidenceError> {
        self.out.flush().await.map_err(EvidenceError::Write)
    }

    pub(super) async fn write(&mut self, bytes: &[u8]) -> Result<(), EvidenceError> {
        self.out
            .write_all(bytes)
            .await
            .map_err(EvidenceError::Write)?;
        self.bytes += bytes.len() as u64;
        Ok(())
    }
}
