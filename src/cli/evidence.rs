//! The commands that produce evidence from the store for `auditex verify` (or any independent
//! verifier) to check: `auditex export`, `auditex bundle`, `auditex package` and `auditex proof`.
//!
//! They only read: the store is opened without the background checkpoint publisher, so producing
//! evidence never signs anything. Output goes to standard output or, with `--output FILE`, to a
//! temporary file beside FILE that is renamed into place only once complete, so a half-written
//! file never looks like evidence.
//!
//! They live with the other store-using commands, apart from the offline verifier
//! ([`crate::verify_cli`]): producing evidence needs the store, verifying it must not.

use std::path::{Path, PathBuf};

use ledger::types::{EventId, Sequence, TenantId, TreeSize};
use tokio::io::AsyncWriteExt;

use crate::cli::configure::store_config;
use crate::cli::result::{CliError, CliResult};
use crate::config::StoreSettings;
use crate::store::Store;

async fn open_read_only(args: &StoreSettings) -> Result<Store, CliError> {
    let mut config = store_config(args)?;
    config.publish_in_background = false;
    // Evidence is a faithful copy of the database, damaged or rolled back as it may be; the
    // rollback guard (which holds tenants and can refuse to open a damaged store) protects
    // writes, and these commands sign nothing. The verifier detects a rollback from the
    // checkpoints its user saw before. The erasure journal, in the same folder, is carried out
    // when the store opens: a restored backup older than an erasure must not show its values
    // here either.
    config.rollback_guard = false;
    Ok(Store::open_with_workers(config).await?)
}

/// Where evidence goes: standard output, or a file written atomically.
enum Output {
    Stdout(tokio::io::Stdout),
    File {
        file: tokio::io::BufWriter<tokio::fs::File>,
        temp: PathBuf,
        path: PathBuf,
    },
}

impl Output {
    async fn create(path: Option<&Path>) -> std::io::Result<Output> {
        let Some(path) = path else {
            return Ok(Output::Stdout(tokio::io::stdout()));
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "evidence".into());
        let temp = path.with_file_name(format!(".{name}.partial"));
        let file = tokio::fs::File::create(&temp).await.map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot create {}: {e}", temp.display()))
        })?;
        Ok(Output::File {
            file: tokio::io::BufWriter::with_capacity(1 << 20, file),
            temp,
            path: path.to_owned(),
        })
    }

    fn writer(&mut self) -> &mut (dyn tokio::io::AsyncWrite + Unpin + Send) {
        match self {
            Output::Stdout(s) => s,
            Output::File { file, .. } => file,
        }
    }

    /// Flushes and, for a file, syncs it and moves it into place.
    async fn finish(self) -> std::io::Result<()> {
        match self {
            Output::Stdout(mut s) => s.flush().await,
            Output::File {
                mut file,
                temp,
                path,
            } => {
                file.flush().await?;
                file.get_ref().sync_all().await?;
                tokio::fs::rename(&temp, &path).await
            }
        }
    }

    /// Removes a partial file after a failure.
    async fn abandon(self) {
        if let Output::File { temp, .. } = self {
            let _ = tokio::fs::remove_file(temp).await;
        }
    }
}

/// `auditex export`: the tenant's records from `from_seq` to the latest checkpoint.
///
/// # Errors
/// When the store cannot be read or written to the output; also, after the export is written,
/// when the exporter noticed damage (the export then holds the data as stored).
pub async fn export_command(
    store: &StoreSettings,
    tenant: &str,
    from_seq: u64,
    output: Option<&Path>,
) -> CliResult {
    let tenant = TenantId::parse(tenant)?;
    let s = open_read_only(store).await?;
    let mut out = Output::create(output).await?;
    let result = s.export(&tenant, from_seq, out.writer()).await;
    s.shutdown().await;
    let summary = match result {
        Ok(summary) => summary,
        Err(e) => {
            out.abandon().await;
            return Err(e.into());
        }
    };
    out.finish().await?;
    eprintln!(
        "exported {} record(s) of {tenant} from {} to the checkpoint of size {} (root {}), {} bytes",
        summary.records,
        summary.from_seq,
        summary.checkpoint_size,
        summary.checkpoint_root,
        summary.bytes
    );
    if summary.damage.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the stored ledger is damaged ({}); the export holds the data as stored: run `auditex verify` on it to find the first bad record",
            summary.damage.join("; ")
        )
        .into())
    }
}

/// `auditex bundle`: the chain-of-custody bundle of one decision.
///
/// # Errors
/// When the decision is unknown, not yet checkpointed, or the store fails.
pub async fn bundle_command(
    store: &StoreSettings,
    tenant: &str,
    decision: &str,
    output: Option<&Path>,
) -> CliResult {
    let tenant = TenantId::parse(tenant)?;
    let decision = EventId::parse(decision)?;
    let s = open_read_only(store).await?;
    let result = s.custody_bundle(&tenant, decision).await;
    s.shutdown().await;
    let mut text = result?.to_json();
    text.push('\n');
    write_all(output, text.as_bytes()).await
}

/// `auditex package`: the access package of one data subject. The subject index is brought up
/// to date first (the store opened here runs the projections), so the package is complete.
///
/// # Errors
/// When the subject is unknown, its records are not checkpointed yet, or the store fails.
pub async fn package_command(
    store: &StoreSettings,
    tenant: &str,
    subject: &str,
    output: Option<&Path>,
) -> CliResult {
    let tenant = TenantId::parse(tenant)?;
    let s = open_read_only(store).await?;
    let result = async {
        s.views_runner().catch_up(&s).await?;
        let plan = s.package_plan(&tenant, subject).await?;
        let mut out = Output::create(output).await?;
        match s.write_package(&plan, out.writer()).await {
            Ok(summary) => {
                out.finish().await?;
                Ok(summary)
            }
            Err(e) => {
                out.abandon().await;
                Err(CliError::from(e))
            }
        }
    }
    .await;
    s.shutdown().await;
    let summary = result?;
    eprintln!(
        "wrote the access package of {subject:?} ({tenant}): {} record(s), {} bytes",
        summary.records, summary.bytes
    );
    Ok(())
}

/// `auditex proof`: the tlog-proof file of record `seq`, or the consistency proof from the tree
/// of `old_size` to the checkpoint of `new_size` (default: the latest) as a consistency-proof file
/// (FORMAT.md), the same document `GET /v1/proofs/consistency` serves.
///
/// # Errors
/// When the record or sizes are out of range, or the store fails.
pub async fn proof_command(
    store: &StoreSettings,
    tenant: &str,
    seq: Option<u64>,
    old_size: Option<u64>,
    new_size: Option<u64>,
    output: Option<&Path>,
) -> CliResult {
    let tenant = TenantId::parse(tenant)?;
    let s = open_read_only(store).await?;
    let result = match (seq, old_size) {
        (Some(seq), None) => match Sequence::new(seq) {
            Ok(seq) => s
                .tlog_proof(&tenant, seq)
                .await
                .map(|p| p.format())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        },
        (None, Some(old)) => consistency_proof_text(&s, &tenant, old, new_size).await,
        _ => Err(
            "give either --seq N (a tlog-proof file) or --old-size N (a consistency proof)".into(),
        ),
    };
    s.shutdown().await;
    write_all(output, result?.as_bytes()).await
}

async fn consistency_proof_text(
    s: &Store,
    tenant: &TenantId,
    old: u64,
    new: Option<u64>,
) -> Result<String, String> {
    let new = match new {
        Some(n) => n,
        None => s
            .latest_checkpoint(tenant)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("no checkpoint has been published yet")?
            .size
            .get(),
    };
    if old > new {
        return Err(format!(
            "--old-size {old} is larger than the newer size {new}"
        ));
    }
    // Only between published checkpoints, as the API serves it: a proof from a size that no
    // signed checkpoint vouches for cannot be verified by anyone.
    let mut notes = Vec::with_capacity(2);
    for (flag, size) in [("--old-size", old), ("--new-size", new)] {
        let published = s
            .checkpoint_at(tenant, TreeSize::new(size))
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| {
                format!(
                    "{flag}: no checkpoint was published at tree size {size}, so no proof at that size can be verified (GET /v1/checkpoints lists the published sizes)"
                )
            })?;
        let published = s
            .with_cosignatures(tenant, published)
            .await
            .map_err(|e| e.to_string())?;
        notes.push(published.signed_note);
    }
    let proof = s
        .consistency_proof(tenant, TreeSize::new(old), TreeSize::new(new))
        .await
        .map_err(|e| e.to_string())?;
    let to_checkpoint = notes.pop().unwrap_or_default();
    let from_checkpoint = notes.pop().unwrap_or_default();
    Ok(ledger::consistency_file::ConsistencyProofFile::new(
        old,
        new,
        proof,
        from_checkpoint,
        to_checkpoint,
    )
    .to_json())
}

async fn write_all(output: Option<&Path>, bytes: &[u8]) -> CliResult {
    let mut out = Output::create(output).await?;
    if let Err(e) = out.writer().write_all(bytes).await {
        out.abandon().await;
        return Err(e.into());
    }
    out.finish().await?;
    Ok(())
}
