//! Re-sealing every sealed value under the current master key: the store half of
//! `auditex master-key rotate` (the command and its progress bar are in `cli/master_key.rs`).
//!
//! Online and crash-safe by construction. Each value is read, opened with whichever configured key
//! sealed it, sealed again under the current key and written back with a compare-and-swap
//! (`UPDATE … WHERE sealed = <the value read>`), a batch per transaction. At every instant each
//! stored value is either its old blob (which the previous key, still configured, opens) or its new
//! one (which the current key opens): a crash or SIGKILL at any point loses at most the batch in
//! flight, which the database rolls back, and a second run carries on where the first stopped,
//! since values already under the current key are skipped without being opened. Values the
//! service writes meanwhile are sealed under the current key already, and a value erased or
//! re-sealed meanwhile fails the comparison and is left alone.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ledger::keys::KeyId;
use ledger::types::TenantId;

use super::crypto::{SealContext, sealed_by};
use super::{Store, StoreError};

/// Default number of values re-sealed per transaction.
pub const RESEAL_BATCH_DEFAULT: u64 = 500;

/// One value to write back: its row (`seq` and field, or key id as `item`), the blob read and
/// its replacement.
pub(crate) struct Resealed {
    pub seq: i64,
    pub item: String,
    pub old: Vec<u8>,
    pub new: Vec<u8>,
}

/// How a rotation runs.
#[derive(Debug, Clone, Copy)]
pub struct ResealOptions {
    /// Values per transaction (at least 1).
    pub batch_size: u64,
    /// At most this many values examined per second, to spare a busy database; `None`: no limit.
    pub rows_per_second: Option<u64>,
}

impl Default for ResealOptions {
    fn default() -> Self {
        ResealOptions {
            batch_size: RESEAL_BATCH_DEFAULT,
            rows_per_second: None,
        }
    }
}

/// Where a rotation is, after each batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResealProgress {
    /// Values examined so far.
    pub done: u64,
    /// Values there were when the run started (values appended meanwhile are not counted).
    pub total: u64,
}

/// What a rotation did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ResealReport {
    /// The id of the master key everything is now sealed under.
    pub master_key_id: String,
    /// Tenants visited.
    pub tenants: u64,
    /// Private signing keys re-sealed.
    pub signing_keys_resealed: u64,
    /// Erasable values re-sealed (those written before data keys existed, which the master key
    /// sealed directly).
    pub erasable_values_resealed: u64,
    /// Data keys re-wrapped (each seals a subject's erasable values, which stay as they are).
    pub data_keys_rewrapped: u64,
    /// Values found under the current key already.
    pub already_current: u64,
    /// Values erased or re-sealed by someone else between reading and writing (left alone).
    pub changed_meanwhile: u64,
}

/// Which key sealed the stored values: counts by master key id (`unversioned` for values sealed
/// before sealed values carried a version byte and key id).
pub type SealCensus = BTreeMap<String, u64>;

fn census_name(blob: &[u8]) -> String {
    sealed_by(blob).map_or_else(|| "unversioned".to_owned(), |id| id.to_string())
}

impl Store {
    /// Re-seals every private signing key and erasable value of every tenant under the current
    /// master key, calling `progress` after each batch. See the module documentation.
    ///
    /// # Errors
    /// [`StoreError::Crypto`] when a value opens under no configured key (nothing more is
    /// changed; what was re-sealed stays re-sealed), or a database error.
    pub async fn reseal_all(
        &self,
        options: ResealOptions,
        progress: &mut (dyn FnMut(ResealProgress) + Send),
    ) -> Result<ResealReport, StoreError> {
        let batch = options.batch_size.max(1);
        let keys = self.master_keys();
        let tenants = self.tenants().await?;
        let mut total = 0u64;
        for tenant in &tenants {
            total += self.backend().keys(tenant).await?.len() as u64;
            total += self.backend().erasable_count(tenant).await?;
            total += self.backend().data_key_count(tenant).await?;
        }
        let mut report = ResealReport {
            master_key_id: keys.current().id().to_string(),
            tenants: tenants.len() as u64,
            ..ResealReport::default()
        };
        let started = Instant::now();
        let mut done = 0u64;
        for tenant in &tenants {
            // Signing keys first: a handful per tenant, each written on its own.
            for row in self.backend().keys(tenant).await? {
                done += 1;
                let key_id = KeyId::parse(&row.key_id)
                    .map_err(|e| StoreError::Corrupt(format!("signing key id: {e}")))?;
                let context = SealContext::signing_key(tenant, key_id);
                let Some(new) = keys
                    .reseal(&context, &row.sealed_secret)
                    .map_err(|e| named(tenant, &format!("signing key {key_id}"), e))?
                else {
                    report.already_current += 1;
                    continue;
                };
                let r = Resealed {
                    seq: 0,
                    item: row.key_id.clone(),
                    old: row.sealed_secret,
                    new,
                };
                if self.backend().reseal_signing_key(tenant, &r).await? {
                    report.signing_keys_resealed += 1;
                } else {
                    report.changed_meanwhile += 1;
                }
            }
            progress(ResealProgress { done, total });
            // Data keys: re-wrapping one re-seals every value under it, which stays untouched.
            let mut after_key = -1i64;
            loop {
                let page = self
                    .backend()
                    .data_key_page(tenant, after_key, batch)
                    .await?;
                let Some(last) = page.last() else { break };
                after_key = last.0;
                for (key_seq, wrapped) in page {
                    done += 1;
                    let context =
                        SealContext::data_key(tenant, u64::try_from(key_seq).unwrap_or(0));
                    let Some(new) = keys
                        .reseal(&context, &wrapped)
                        .map_err(|e| named(tenant, &format!("data key {key_seq}"), e))?
                    else {
                        report.already_current += 1;
                        continue;
                    };
                    let r = Resealed {
                        seq: key_seq,
                        item: String::new(),
                        old: wrapped,
                        new,
                    };
                    if self.backend().rewrap_data_key(tenant, &r).await? {
                        report.data_keys_rewrapped += 1;
                    } else {
                        report.changed_meanwhile += 1;
                    }
                }
                progress(ResealProgress { done, total });
                throttle(started, done, options.rows_per_second).await;
            }
            let mut after = (-1i64, String::new());
            loop {
                let page = self
                    .backend()
                    .erasable_sealed_page(tenant, &after, batch)
                    .await?;
                let Some(last) = page.last() else { break };
                after = (last.0, last.1.clone());
                let mut writes = Vec::new();
                for (seq, field, sealed) in page {
                    done += 1;
                    let context =
                        SealContext::erasable(tenant, u64::try_from(seq).unwrap_or(0), &field);
                    match keys
                        .reseal(&context, &sealed)
                        .map_err(|e| named(tenant, &format!("erasable value {seq}/{field}"), e))?
                    {
                        None => report.already_current += 1,
                        Some(new) => writes.push(Resealed {
                            seq,
                            item: field,
                            old: sealed,
                            new,
                        }),
                    }
                }
                if !writes.is_empty() {
                    let n = self.backend().reseal_erasable(tenant, &writes).await?;
                    report.erasable_values_resealed += n;
                    report.changed_meanwhile += writes.len() as u64 - n;
                }
                progress(ResealProgress { done, total });
                throttle(started, done, options.rows_per_second).await;
            }
        }
        Ok(report)
    }

    /// Counts the stored sealed values by the master key that sealed them: a rotation is complete
    /// when only the current key's id is left.
    ///
    /// # Errors
    /// A database error.
    pub async fn seal_census(&self) -> Result<SealCensus, StoreError> {
        let mut census = SealCensus::new();
        for tenant in self.tenants().await? {
            for row in self.backend().keys(&tenant).await? {
                *census.entry(census_name(&row.sealed_secret)).or_default() += 1;
            }
            let mut after_key = -1i64;
            loop {
                let page = self
                    .backend()
                    .data_key_page(&tenant, after_key, 5000)
                    .await?;
                let Some(last) = page.last() else { break };
                after_key = last.0;
                for (_, wrapped) in &page {
                    *census.entry(census_name(wrapped)).or_default() += 1;
                }
            }
            let mut after = (-1i64, String::new());
            loop {
                let page = self
                    .backend()
                    .erasable_sealed_page(&tenant, &after, 5000)
                    .await?;
                let Some(last) = page.last() else { break };
                after = (last.0, last.1.clone());
                for (_, _, sealed) in &page {
                    *census.entry(census_name(sealed)).or_default() += 1;
                }
            }
        }
        Ok(census)
    }
}

/// Names the value that did not open (the tenant and the row, never the data).
fn named(tenant: &TenantId, what: &str, e: super::crypto::CryptoError) -> StoreError {
    StoreError::Corrupt(format!("tenant {tenant}, {what}: {e}"))
}

/// Sleeps as long as needed to keep `done` values since `started` under `rate` per second.
async fn throttle(started: Instant, done: u64, rate: Option<u64>) {
    let Some(rate) = rate.filter(|r| *r > 0) else {
        return;
    };
    let due = Duration::from_secs_f64(done as f64 / rate as f64);
    if let Some(wait) = due.checked_sub(started.elapsed()) {
        tokio::time::sleep(wait).await;
    }
}
