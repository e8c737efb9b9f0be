//! Data keys for crypto-shredding: each erasable value is sealed under a data key of its tenant
//! and subject (or of its record, when the record names no subject), and each data key is stored
//! wrapped under the master key. Destroying the data key makes every copy of a value sealed
//! under it (a freed database page, an old WAL segment) useless; erasure destroys both the
//! sealed values and, once nothing else uses it, their key (see `erasure.rs`).
//!
//! Sealed-value format, version 2 (version 1 is a value sealed under the master key directly,
//! see `crypto.rs`, still opened for rows written before data keys existed):
//!
//! ```text
//! offset  bytes  field
//! 0       1      version = 0x02
//! 1       12     AES-GCM nonce, random
//! 13      n+16   AES-256-GCM of (salt (32 bytes) || JSON of the value), and the tag
//! ```
//!
//! The associated data is the version byte and `auditex/erasable/<tenant>/<seq>/<field>`, so a
//! ciphertext copied onto another row does not open. The salt is inside the ciphertext: once the
//! key or the row is gone, the salted commitment in the record cannot be tested against guesses.
//! A data key seals at most a subject's values, far below the 2^32 random-nonce limit of
//! NIST SP 800-38D.

use std::fmt;

use aes_gcm::aead::{Aead, AeadInPlace, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use ledger::types::TenantId;
use zeroize::{Zeroize, Zeroizing};

use super::crypto::{CryptoError, MasterKeys, SealContext};

/// The version byte of a value sealed under a data key.
pub(crate) const DATA_KEY_SEAL_VERSION: u8 = 2;

const NONCE_BYTES: usize = 12;
const TAG_BYTES: usize = 16;
const SALT_BYTES: usize = 32;

/// A 256-bit data key, zeroed when dropped.
#[derive(Clone)]
pub(crate) struct DataKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

impl DataKey {
    /// A fresh random key.
    pub(crate) fn generate() -> Self {
        DataKey(Zeroizing::new(rand::random()))
    }

    /// Wraps this key under the current master key for `tenant`; `key_seq` names it.
    pub(crate) fn wrap(
        &self,
        master: &MasterKeys,
        tenant: &TenantId,
        key_seq: u64,
    ) -> Result<Vec<u8>, CryptoError> {
        master.seal(&SealContext::data_key(tenant, key_seq), self.0.as_slice())
    }

    /// Unwraps a key stored by [`DataKey::wrap`].
    pub(crate) fn unwrap(
        master: &MasterKeys,
        tenant: &TenantId,
        key_seq: u64,
        wrapped: &[u8],
    ) -> Result<Self, CryptoError> {
        let plain = Zeroizing::new(master.open(&SealContext::data_key(tenant, key_seq), wrapped)?);
        let bytes: [u8; 32] = plain.as_slice().try_into().map_err(|_| CryptoError::Open)?;
        Ok(DataKey(Zeroizing::new(bytes)))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.0.as_slice().into())
    }

    /// Seals one erasable value (its salt and its JSON text) for record `seq`, field `field`.
    ///
    /// The salt and the text are laid out where their ciphertext goes and encrypted in place:
    /// two allocations (the sealed bytes and the associated data), where separate plaintext,
    /// ciphertext and output buffers took five (the appender seals a value per erasable field
    /// of every record).
    pub(crate) fn seal_value(
        &self,
        tenant: &TenantId,
        seq: u64,
        field: &str,
        salt: &[u8; SALT_BYTES],
        json: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let nonce: [u8; NONCE_BYTES] = rand::random();
        let head = 1 + NONCE_BYTES;
        let mut out = Vec::with_capacity(head + SALT_BYTES + json.len() + TAG_BYTES);
        out.push(DATA_KEY_SEAL_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(salt);
        out.extend_from_slice(json);
        let aad = value_aad(tenant, seq, field);
        match self.cipher().encrypt_in_place_detached(
            Nonce::from_slice(&nonce),
            &aad,
            &mut out[head..],
        ) {
            Ok(tag) => {
                out.extend_from_slice(&tag);
                Ok(out)
            }
            Err(_) => {
                // Whatever the failure left in the buffer may be plaintext.
                out.zeroize();
                Err(CryptoError::Seal("AES-GCM encryption failed"))
            }
        }
    }

    /// Opens a value sealed by [`DataKey::seal_value`]: its salt and its JSON text.
    pub(crate) fn open_value(
        &self,
        tenant: &TenantId,
        seq: u64,
        field: &str,
        sealed: &[u8],
    ) -> Result<([u8; SALT_BYTES], Zeroizing<Vec<u8>>), CryptoError> {
        if sealed.len() < 1 + NONCE_BYTES + TAG_BYTES + SALT_BYTES
            || sealed[0] != DATA_KEY_SEAL_VERSION
        {
            return Err(CryptoError::Open);
        }
        let aad = value_aad(tenant, seq, field);
        let plain = Zeroizing::new(
            self.cipher()
                .decrypt(
                    Nonce::from_slice(&sealed[1..1 + NONCE_BYTES]),
                    Payload {
                        msg: &sealed[1 + NONCE_BYTES..],
                        aad: &aad,
                    },
                )
                .map_err(|_| CryptoError::Open)?,
        );
        let mut salt = [0u8; SALT_BYTES];
        salt.copy_from_slice(&plain[..SALT_BYTES]);
        Ok((salt, Zeroizing::new(plain[SALT_BYTES..].to_vec())))
    }
}

/// The raw bytes of a stored data key, unwrapped with `master`. For tests and forensic tools
/// only (proving that an erased key's bytes are nowhere on disk needs the bytes to look for); the
/// service itself never hands a data key out.
///
/// # Errors
/// [`CryptoError`] when `wrapped` does not open under `master` for this tenant and number.
#[doc(hidden)]
pub fn unwrap_data_key_for_tools(
    master: &MasterKeys,
    tenant: &TenantId,
    key_seq: u64,
    wrapped: &[u8],
) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
    Ok(Zeroizing::new(
        *DataKey::unwrap(master, tenant, key_seq, wrapped)?.0,
    ))
}

/// The associated data of a sealed value: the version byte and the value's place.
fn value_aad(tenant: &TenantId, seq: u64, field: &str) -> Vec<u8> {
    use std::io::Write as _;
    let tenant = tenant.as_str();
    // The version byte, the text's fixed part, and at most 20 digits of `seq`.
    let mut aad =
        Vec::with_capacity(1 + "auditex/erasable///".len() + tenant.len() + 20 + field.len());
    aad.push(DATA_KEY_SEAL_VERSION);
    // Writing to a Vec cannot fail.
    let _ = write!(aad, "auditex/erasable/{tenant}/{seq}/{field}");
    aad
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::crypto::MasterKey;

    fn tenant(name: &str) -> TenantId {
        TenantId::parse(name).expect("tenant")
    }

    /// The in-place sealing gives, after the version byte and its nonce, exactly what the
    /// one-shot AES-GCM encryption of the salt and text gives (ciphertext, then tag): the
    /// format values sealed before it was written in place are in.
    #[test]
    fn a_sealed_value_is_the_one_shot_encryption_of_its_salt_and_text() {
        let key = DataKey::generate();
        let acme = tenant("acme");
        let salt = [9u8; 32];
        let json = b"\"Grace Hopper\"";
        let sealed = key
            .seal_value(&acme, 11, "name", &salt, json)
            .expect("seal");
        assert_eq!(sealed[0], DATA_KEY_SEAL_VERSION);
        let nonce = &sealed[1..1 + NONCE_BYTES];
        let plain = [salt.as_slice(), json].concat();
        let expected = key
            .cipher()
            .encrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: &plain,
                    aad: &[
                        [DATA_KEY_SEAL_VERSION].as_slice(),
                        b"auditex/erasable/acme/11/name",
                    ]
                    .concat(),
                },
            )
            .expect("encrypt");
        assert_eq!(&sealed[1 + NONCE_BYTES..], expected.as_slice());
    }

    #[test]
    fn a_value_opens_only_at_its_own_place_under_its_own_key() {
        let key = DataKey::generate();
        let acme = tenant("acme");
        let salt = [7u8; 32];
        let sealed = key
            .seal_value(&acme, 4, "name", &salt, b"\"Ada\"")
            .expect("seal");
        let (s, json) = key.open_value(&acme, 4, "name", &sealed).expect("open");
        assert_eq!(s, salt);
        assert_eq!(json.as_slice(), b"\"Ada\"");
        assert!(key.open_value(&acme, 5, "name", &sealed).is_err());
        assert!(key.open_value(&acme, 4, "other", &sealed).is_err());
        assert!(key.open_value(&tenant("beta"), 4, "name", &sealed).is_err());
        assert!(
            DataKey::generate()
                .open_value(&acme, 4, "name", &sealed)
                .is_err()
        );
        // Neither the salt nor the value appears in the sealed bytes.
        assert!(!sealed.windows(5).any(|w| w == b"\"Ada\""));
        assert!(!sealed.windows(32).any(|w| w == salt));
    }

    #[test]
    fn a_wrapped_key_unwraps_only_for_its_tenant_and_number() {
        let master = MasterKeys::from(MasterKey::generate());
        let key = DataKey::generate();
        let acme = tenant("acme");
        let wrapped = key.wrap(&master, &acme, 9).expect("wrap");
        let back = DataKey::unwrap(&master, &acme, 9, &wrapped).expect("unwrap");
        assert_eq!(back.0.as_slice(), key.0.as_slice());
        assert!(DataKey::unwrap(&master, &acme, 10, &wrapped).is_err());
        assert!(DataKey::unwrap(&master, &tenant("beta"), 9, &wrapped).is_err());
        assert!(!wrapped.windows(32).any(|w| w == key.0.as_slice()));
    }
}
