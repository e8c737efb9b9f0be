//! A tenant's witnesses (C2SP tlog-witness) and the cosignatures they returned.
//!
//! The witnesses are configured per tenant (`auditex tenant witness add`): name and key (a vkey
//! of type 0x04), submission URL and, optionally, the CA to trust for it. The log side of the
//! protocol — sending each new checkpoint with its consistency proof — is
//! `crate::witness::client`; what it brings back is verified against the witness's key and
//! stored here, keyed by the checkpoint's size *and root*, and every checkpoint the service
//! hands out as evidence carries the cosignatures stored for it ([`Store::with_cosignatures`]).

use ledger::cosignature::{WitnessKey, verify_cosignatures};
use ledger::note::Note;
use ledger::types::TenantId;

use super::backend::WitnessRow;
use super::{Store, StoreError, StoredCheckpoint};

/// Most witnesses one tenant may configure (a checkpoint note holds at most 100 signature
/// lines, and each round contacts every witness).
pub const WITNESSES_PER_TENANT_MAX: usize = 32;

/// A witness configured for a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredWitness {
    /// Its key (and name).
    pub key: WitnessKey,
    /// The submission URL prefix (`<url>/add-checkpoint` is posted to).
    pub url: String,
    /// The CA certificate to trust for it (PEM), when no public CA signs its certificate.
    pub ca_pem: Option<String>,
}

/// Why a witness could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum WitnessConfigError {
    /// The key is not a witness vkey.
    #[error("not a witness key (C2SP vkey of type 0x04, `auditex witness vkey` prints it): {0}")]
    Key(#[from] ledger::cosignature::WitnessKeyError),
    /// The URL is not an https URL (http only on a loopback address).
    #[error("{0}")]
    Url(String),
    /// The CA file is not a PEM certificate.
    #[error("the CA certificate is not PEM")]
    Ca,
    /// Too many witnesses.
    #[error("a tenant may have at most {WITNESSES_PER_TENANT_MAX} witnesses")]
    TooMany,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn check_url(url: &str) -> Result<(), WitnessConfigError> {
    let parsed =
        url::Url::parse(url).map_err(|e| WitnessConfigError::Url(format!("{url}: {e}")))?;
    let loopback = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(WitnessConfigError::Url(format!(
            "{url}: a witness is reached over https (plain http only on a loopback address)"
        ))),
    }
}

impl Store {
    /// The tenant's witnesses, by name. A stored row that no longer parses is skipped with a
    /// warning rather than stopping the others.
    ///
    /// # Errors
    /// A database error.
    pub async fn witnesses(&self, tenant: &TenantId) -> Result<Vec<ConfiguredWitness>, StoreError> {
        let rows = self.backend().witnesses(tenant).await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| match WitnessKey::parse(&r.vkey) {
                Ok(key) => Some(ConfiguredWitness {
                    key,
                    url: r.url,
                    ca_pem: r.ca_pem,
                }),
                Err(e) => {
                    tracing::warn!(%tenant, witness = %r.name, error = %e, "a stored witness key does not parse; skipped");
                    None
                }
            })
            .collect())
    }

    /// Adds a witness to the tenant (or replaces the one of the same name).
    ///
    /// # Errors
    /// [`WitnessConfigError`] for a bad key, URL or CA, too many witnesses, an unknown tenant.
    pub async fn add_witness(
        &self,
        tenant: &TenantId,
        vkey: &str,
        url: &str,
        ca_pem: Option<String>,
    ) -> Result<WitnessKey, WitnessConfigError> {
        let key = WitnessKey::parse(vkey.trim())?;
        check_url(url)?;
        if let Some(pem) = &ca_pem {
            use rustls::pki_types::CertificateDer;
            use rustls::pki_types::pem::PemObject as _;
            let certs: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes()).collect();
            if certs.is_empty() || certs.iter().any(Result::is_err) {
                return Err(WitnessConfigError::Ca);
            }
        }
        if !self.tenant_exists(tenant).await? {
            return Err(StoreError::UnknownTenant.into());
        }
        let existing = self.backend().witnesses(tenant).await?;
        if existing.len() >= WITNESSES_PER_TENANT_MAX
            && !existing.iter().any(|w| w.name == key.name())
        {
            return Err(WitnessConfigError::TooMany);
        }
        let row = WitnessRow {
            name: key.name().to_owned(),
            vkey: key.to_string(),
            url: url.trim_end_matches('/').to_owned(),
            ca_pem,
        };
        let now = self.inner.config.clock.now_unix_micros();
        self.backend().put_witness(tenant, &row, now).await?;
        Ok(key)
    }

    /// Removes the tenant's witness named `name`; whether there was one. Its cosignatures stay.
    ///
    /// # Errors
    /// A database error.
    pub async fn remove_witness(&self, tenant: &TenantId, name: &str) -> Result<bool, StoreError> {
        self.backend().remove_witness(tenant, name).await
    }

    /// The largest tree size `witness` cosigned for the tenant.
    ///
    /// # Errors
    /// A database error.
    pub async fn last_cosigned(
        &self,
        tenant: &TenantId,
        witness: &str,
    ) -> Result<Option<u64>, StoreError> {
        self.backend().last_cosigned(tenant, witness).await
    }

    /// Keeps the cosignature of `witness` among `lines` (a witness's answer) on `checkpoint`,
    /// after verifying it; returns its timestamp, or `None` when no line verifies.
    ///
    /// # Errors
    /// A database error.
    pub async fn record_cosignature(
        &self,
        tenant: &TenantId,
        checkpoint: &StoredCheckpoint,
        witness: &WitnessKey,
        lines: &str,
    ) -> Result<Option<u64>, StoreError> {
        for line in lines.split_inclusive('\n') {
            let Ok(note) = Note::parse(format!("{}{line}", checkpoint.signed_note).as_bytes())
            else {
                continue;
            };
            if let Some(c) = verify_cosignatures(&note, std::slice::from_ref(witness)).first() {
                self.backend()
                    .record_cosignature(
                        tenant,
                        checkpoint.size.get(),
                        checkpoint.root.as_bytes(),
                        witness.name(),
                        line,
                        c.timestamp,
                    )
                    .await?;
                // Proofs show the new cosignature from now on.
                self.inner.latest_checkpoints.forget(tenant);
                return Ok(Some(c.timestamp));
            }
        }
        Ok(None)
    }

    /// `checkpoint` with the cosignatures stored for it appended to its signed note.
    ///
    /// # Errors
    /// A database error.
    pub async fn with_cosignatures(
        &self,
        tenant: &TenantId,
        mut checkpoint: StoredCheckpoint,
    ) -> Result<StoredCheckpoint, StoreError> {
        let lines = self
            .backend()
            .cosignatures(tenant, checkpoint.size.get(), checkpoint.root.as_bytes())
            .await?;
        for (_, line) in lines {
            // Only what still parses as one signature line of the note is appended.
            let candidate = format!("{}{line}", checkpoint.signed_note);
            if line.ends_with('\n') && Note::parse(candidate.as_bytes()).is_ok() {
                checkpoint.signed_note = candidate;
            }
        }
        Ok(checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn witnesses_are_reached_over_https_or_loopback_http() {
        assert!(check_url("https://witness.example.com/w1").is_ok());
        assert!(check_url("http://127.0.0.1:8444").is_ok());
        assert!(check_url("http://localhost:8444").is_ok());
        assert!(check_url("http://witness.example.com").is_err());
        assert!(check_url("ftp://witness.example.com").is_err());
        assert!(check_url("not a url").is_err());
    }
}

/// How one witness of one tenant is doing, as the cosigning client last saw it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WitnessStatus {
    /// The tenant.
    pub tenant: String,
    /// The witness's name.
    pub witness: String,
    /// The largest tree size it cosigned.
    pub cosigned_size: u64,
    /// The latest checkpoint's size.
    pub checkpoint_size: u64,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
}

impl WitnessStatus {
    /// Records of the latest checkpoint the witness has not cosigned yet.
    pub fn lag_records(&self) -> u64 {
        self.checkpoint_size.saturating_sub(self.cosigned_size)
    }
}

/// The cosigning client's view of every witness, for `/metrics`, `/readyz` and the portal.
#[derive(Default)]
pub(crate) struct WitnessBoard(
    std::sync::Mutex<std::collections::BTreeMap<(String, String), WitnessStatus>>,
);

impl Store {
    /// Records how a witness is doing (called by the cosigning client).
    pub fn note_witness_status(&self, status: WitnessStatus) {
        let mut board = self
            .inner
            .witness_board
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        board.insert((status.tenant.clone(), status.witness.clone()), status);
    }

    /// Forgets witnesses no longer configured (called by the cosigning client).
    pub fn retain_witness_status(&self, keep: impl Fn(&str, &str) -> bool) {
        let mut board = self
            .inner
            .witness_board
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        board.retain(|(t, w), _| keep(t, w));
    }

    /// Every witness's status, by tenant and name.
    pub fn witness_statuses(&self) -> Vec<WitnessStatus> {
        let board = self
            .inner
            .witness_board
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        board.values().cloned().collect()
    }
}
