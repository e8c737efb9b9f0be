//! `auditex master-key`: generate a new master key, show the configured keys' ids, count the
//! stored values by the key that sealed them, and re-seal everything under the current key
//! (`rotate`, online and crash-safe; the store work is in [`crate::store::reseal`]). The rotation
//! procedure is in docs/OPERATIONS.md.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Subcommand;

use crate::cli::configure::{master_key_exists, store_config};
use crate::cli::result::CliResult;
use crate::config::StoreSettings;
use crate::store::Store;
use crate::store::crypto::MasterKey;
use crate::store::reseal::{RESEAL_BATCH_DEFAULT, ResealOptions, ResealProgress};

/// `auditex master-key` commands.
#[derive(Debug, Subcommand)]
pub enum MasterKeyCommand {
    /// Write a new random master key to FILE (mode 0600; an existing file is never replaced) and
    /// print its id.
    Generate {
        /// Where to write the key.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print the ids of the configured keys: the current one, then the previous ones.
    Ids,
    /// Count the stored sealed values by the master key that sealed them. Fails (exit status 1)
    /// while any value is sealed under another key than the current one.
    Status,
    /// Re-seal every private signing key and erasable value under the current master key
    /// (AUDITEX_MASTER_KEY_FILE), opening each with whichever configured key sealed it
    /// (AUDITEX_PREVIOUS_MASTER_KEYS_FILE). Safe while the service runs, safe to interrupt at any
    /// point, and safe to run again: it carries on where it stopped.
    Rotate {
        /// Values re-sealed per transaction.
        #[arg(long, default_value_t = RESEAL_BATCH_DEFAULT)]
        batch_size: u64,
        /// Examine at most this many values per second, to spare a busy database.
        #[arg(long)]
        rows_per_second: Option<u64>,
    },
}

/// Runs a `master-key` command.
///
/// # Errors
/// Whatever the command failed with.
pub async fn run(store: &StoreSettings, command: MasterKeyCommand) -> CliResult {
    if let MasterKeyCommand::Generate { out } = &command {
        let key = MasterKey::generate();
        key.write_new_file(out)?;
        println!("{}", key.id());
        eprintln!(
            "wrote a new master key to {} (id {}); back it up before using it",
            out.display(),
            key.id()
        );
        return Ok(());
    }
    // Never generate a master key here: a new key would open nothing that is stored.
    if !master_key_exists(store) {
        return Err("master-key commands need the configured master key: set \
                    AUDITEX_MASTER_KEY_FILE"
            .into());
    }
    let mut config = store_config(store)?;
    // A maintenance command signs nothing.
    config.publish_in_background = false;
    let s = Store::open_with_workers(config).await?;
    let result = run_open(&s, command).await;
    s.shutdown().await;
    result
}

async fn run_open(store: &Store, command: MasterKeyCommand) -> CliResult {
    let keys = store.master_keys();
    match command {
        MasterKeyCommand::Generate { .. } => Ok(()),
        MasterKeyCommand::Ids => {
            println!("{}  (current: seals)", keys.current().id());
            for key in keys.previous() {
                println!("{}  (previous: opens only)", key.id());
            }
            Ok(())
        }
        MasterKeyCommand::Status => {
            let census = store.seal_census().await?;
            let current = keys.current().id().to_string();
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "current_master_key_id": current,
                    "sealed_values_by_master_key": census,
                }))?
            );
            let other: u64 = census
                .iter()
                .filter(|(id, _)| **id != current)
                .map(|(_, n)| n)
                .sum();
            if other > 0 {
                return Err(format!(
                    "{other} value(s) are not sealed under the current master key {current}: \
                     run `auditex master-key rotate`"
                )
                .into());
            }
            eprintln!("every sealed value is under the current master key {current}");
            Ok(())
        }
        MasterKeyCommand::Rotate {
            batch_size,
            rows_per_second,
        } => {
            if batch_size == 0 {
                return Err("--batch-size must be at least 1".into());
            }
            let mut reporter = Reporter::new();
            let report = store
                .reseal_all(
                    ResealOptions {
                        batch_size,
                        rows_per_second,
                    },
                    &mut |p| reporter.update(p),
                )
                .await;
            reporter.finish();
            let report = report?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            eprintln!(
                "every sealed value is now under master key {}; once `auditex master-key status` \
                 agrees on every instance, remove the previous keys from \
                 AUDITEX_PREVIOUS_MASTER_KEYS_FILE and restart (keep them as long as backups \
                 sealed under them are kept)",
                report.master_key_id
            );
            Ok(())
        }
    }
}

/// Progress on standard error: a bar on a terminal, otherwise a line at most once a second (for
/// logs of a job runner).
struct Reporter {
    bar: Option<indicatif::ProgressBar>,
    last_line: Option<Instant>,
}

impl Reporter {
    fn new() -> Self {
        Reporter {
            bar: None,
            last_line: None,
        }
    }

    fn update(&mut self, p: ResealProgress) {
        if std::io::stderr().is_terminal() {
            let bar = self.bar.get_or_insert_with(|| {
                let bar = indicatif::ProgressBar::with_draw_target(
                    Some(p.total),
                    indicatif::ProgressDrawTarget::stderr(),
                );
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "re-sealing {wide_bar} {human_pos}/{human_len} values  {per_sec}  eta {eta}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                bar
            });
            bar.set_position(p.done.min(p.total));
            return;
        }
        if self
            .last_line
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            self.last_line = Some(Instant::now());
            eprintln!("re-sealed {} of {} values", p.done, p.total);
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
