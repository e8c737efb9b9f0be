//! Operations commands: `auditex backup`, `auditex restore`, `auditex rollback` and
//! `auditex tenant move`.
//!
//! Each prints a JSON report on standard output (for backup registers and scripts) and a sentence
//! for the operator on standard error. The store work lives in [`crate::store::backup`] and
//! [`crate::store::rollback`]; this module only parses, asks and prints.

use std::path::PathBuf;

use clap::Subcommand;
use ledger::types::TenantId;

use crate::cli::configure::{database, master_key_exists, store_config};
use crate::cli::result::CliResult;
use crate::config::StoreSettings;
use crate::store::backup::{backup_sqlite_file, restore_sqlite, verify_ledger};
use crate::store::{DatabaseUrl, Store};

/// `auditex rollback` commands.
#[derive(Debug, Subcommand)]
pub enum RollbackCommand {
    /// Report tenants held because the database is behind (or forks from) the checkpoint
    /// published last. Fails (exit status 1) when any tenant is held.
    Status,
    /// Acknowledge a detected rollback: appends a `rollback_acknowledged` record (operator,
    /// reason, both tree states), publishes a checkpoint of the new tree and releases the tenant.
    Acknowledge {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// Why the rollback happened and why it is accepted (recorded in the ledger).
        #[arg(long)]
        reason: String,
        /// Who acknowledges (recorded in the ledger). Defaults to $SUDO_USER or $USER.
        #[arg(long)]
        operator: Option<String>,
    },
}

/// `auditex backup PATH`.
///
/// # Errors
/// Whatever the backup failed with.
pub async fn backup(store: &StoreSettings, path: PathBuf) -> CliResult {
    let DatabaseUrl::Sqlite(database) = database(store) else {
        return Err(
            "`auditex backup` copies the embedded SQLite database; back up PostgreSQL \
                    with pg_basebackup and WAL archiving (docs/OPERATIONS.md, \
                    scripts/pg-pitr-drill)"
                .into(),
        );
    };
    let summary = backup_sqlite_file(&database, &path).await?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    eprintln!(
        "backup written to {} ({} bytes, sha256 {}). It holds the signing keys sealed: keep the \
         master key backed up separately, never beside it.",
        summary.path.display(),
        summary.bytes,
        summary.sha256
    );
    Ok(())
}

/// `auditex restore BACKUP [--force]` and `auditex restore --verify-only`.
///
/// # Errors
/// Whatever the restore or verification failed with.
pub async fn restore(
    store: &StoreSettings,
    backup: Option<PathBuf>,
    force: bool,
    verify_only: bool,
) -> CliResult {
    // Never generate a master key here: a new key could not open the restored signing keys.
    if !master_key_exists(store) {
        return Err(
            "restore needs the master key this database was written with: set \
                    AUDITEX_MASTER_KEY_FILE (or restore <data-dir>/master.key from your key backup)"
                .into(),
        );
    }
    let mut config = store_config(store)?;
    if verify_only {
        if backup.is_some() {
            return Err("--verify-only checks the configured database; give no BACKUP".into());
        }
        config.publish_in_background = false;
        let s = Store::open_with_workers(config).await?;
        let report = verify_ledger(&s).await;
        s.shutdown().await;
        let report = report?;
        println!("{}", serde_json::to_string_pretty(&report)?);
        let records: u64 = report.tenants.iter().map(|t| t.records).sum();
        eprintln!(
            "verified {} tenant(s), {records} record(s): every chain, Merkle root and latest \
             checkpoint checks out",
            report.tenants.len()
        );
        return Ok(());
    }
    let Some(backup) = backup else {
        return Err("give the backup file to restore (or --verify-only)".into());
    };
    let report = restore_sqlite(&backup, &config, force).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    if let Some(previous) = &report.previous {
        eprintln!(
            "the database it replaced was kept as {}",
            previous.display()
        );
    }
    eprintln!(
        "restored {} into {}; every chain, Merkle root and latest checkpoint verified",
        backup.display(),
        report.database.display()
    );
    let held: Vec<_> = report
        .verification
        .tenants
        .iter()
        .filter_map(|t| t.rollback.as_ref().map(|r| (&t.tenant, r)))
        .collect();
    for (tenant, problem) in &held {
        eprintln!(
            "tenant {tenant} is HELD: {problem}. It will publish no checkpoint and accept no \
             append until you run `auditex rollback acknowledge --tenant {tenant} --reason \"...\"`"
        );
    }
    Ok(())
}

/// `auditex rollback status|acknowledge`.
///
/// # Errors
/// An error when `status` finds a held tenant, or whatever the acknowledgement failed with.
pub async fn rollback(store: &StoreSettings, command: RollbackCommand) -> CliResult {
    let mut config = store_config(store)?;
    // Read and acknowledge only; the running service publishes.
    config.publish_in_background = false;
    let s = Store::open_with_workers(config).await?;
    let result = match command {
        RollbackCommand::Status => {
            let status = s.rollback_status();
            let held: Vec<serde_json::Value> = status
                .held()
                .iter()
                .map(|(t, p)| {
                    serde_json::json!({ "tenant": t.as_str(), "problem": p.kind(), "detail": p.to_string() })
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "checkpoint_dir": store.checkpoint_dir(),
                    "held": held,
                }))?
            );
            if status.is_clear() {
                eprintln!(
                    "no tenant is held: every database tree extends its published checkpoint"
                );
                Ok(())
            } else {
                Err(format!(
                    "{} tenant(s) held after a rollback; see `auditex rollback acknowledge --help`",
                    held.len()
                )
                .into())
            }
        }
        RollbackCommand::Acknowledge {
            tenant,
            reason,
            operator,
        } => {
            let tenant = TenantId::parse(&tenant)?;
            let operator = operator
                .or_else(|| std::env::var("SUDO_USER").ok())
                .or_else(|| std::env::var("USER").ok())
                .filter(|o| !o.trim().is_empty())
                .ok_or("say who acknowledges with --operator NAME")?;
            match s.acknowledge_rollback(&tenant, &operator, &reason).await {
                Ok(receipt) => {
                    println!("{}", serde_json::to_string(&receipt)?);
                    eprintln!(
                        "rollback of {tenant} acknowledged by {operator} as record {}; \
                         checkpoints and appends resume",
                        receipt.seq
                    );
                    Ok(())
                }
                Err(e) => Err(e.into()),
            }
        }
    };
    s.shutdown().await;
    result
}

/// `auditex tenant move ID --to CELL`: moves the tenant with a progress line per table on
/// standard error, then prints the JSON report.
///
/// # Errors
/// Whatever the move failed with: before its switch the tenant stays where it was; after it
/// (the final check), the tenant is on its new cell and the error says so.
pub async fn move_tenant(s: &Store, tenant: &TenantId, to: &str) -> CliResult {
    s.check_cell(to)?;
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} copying {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    eprintln!(
        "moving {tenant} to cell {to}: copying while its writes go on, then refusing them until the rest is copied and checked"
    );
    let progress = |table: &str, rows: u64| bar.set_message(format!("{table}: {rows} rows"));
    let report = s.move_tenant(tenant, to, &progress).await;
    bar.finish_and_clear();
    let report = report.map_err(|e| {
        format!(
            "{e}\n(the command can be run again: it resumes a move that was interrupted, and \
             finishes one that switched already; `auditex tenant cell {tenant}` says where the \
             tenant is)"
        )
    })?;
    let tables: serde_json::Map<String, serde_json::Value> = report
        .copied
        .tables
        .iter()
        .map(|(t, n)| (t.clone(), serde_json::json!(n)))
        .collect();
    let out = serde_json::json!({
        "tenant": tenant.as_str(),
        "from": report.copied.from,
        "to": to,
        "rows": tables,
        "records_checked": report.check.records_checked,
        "checkpoints_checked": report.check.checkpoints_checked,
        "write_pause_ms": u64::try_from(report.write_pause.as_millis()).unwrap_or(u64::MAX),
        "resumed_after_switch": report.copied.resumed_after_switch,
        "precopy_ms": u64::try_from(report.copied.precopy.as_millis()).unwrap_or(u64::MAX),
        "fenced_copy_ms": u64::try_from(report.copied.fenced_copy.as_millis()).unwrap_or(u64::MAX),
        "check_ms": u64::try_from(report.check_time.as_millis()).unwrap_or(u64::MAX),
    });
    println!("{out}");
    eprintln!(
        "{tenant} moved from cell {} to cell {to}: copy identical, {} records and {} checkpoints verified there; copied {:.1} s while writes went on, then writes paused {:.1} s",
        report.copied.from,
        report.check.records_checked,
        report.check.checkpoints_checked,
        report.copied.precopy.as_secs_f64(),
        report.write_pause.as_secs_f64()
    );
    Ok(())
}
