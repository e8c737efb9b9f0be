//! Application-level encryption of secrets at rest: the master keys and the sealing of tenants'
//! private signing keys and erasable values.
//!
//! The master key never enters the database. It comes from the environment or from a key file
//! outside the repository; the embedded default creates one (mode 0600) on first start. During a
//! master-key rotation the service also holds the previous keys, which open but never seal.
//!
//! Sealed format, version 1 (see docs/DESIGN.md, "Sealing secrets at rest", for why):
//!
//! ```text
//! offset  bytes  field
//! 0       1      version = 0x01
//! 1       8      id of the master key that sealed it (MasterKeyId)
//! 9       32     derivation salt, random
//! 41      12     AES-GCM nonce, random
//! 53      n+16   AES-256-GCM ciphertext and tag
//! ```
//!
//! The AES-256-GCM key is derived for this one value with HKDF-SHA-256 from the master key, with
//! `auditex/seal/v1/<purpose>/<tenant>/` followed by the salt as HKDF info: a separate key per
//! tenant, purpose and value, so no key ever encrypts more than one message and the NIST SP
//! 800-38D limit of 2^32 random-nonce encryptions per key cannot be approached. The associated
//! data is the version byte, the key id and the value's context (`auditex/signing-key/<tenant>/
//! <key id>`, `auditex/erasable/<tenant>/<seq>/<field>`), so a ciphertext copied onto another row
//! does not open.
//!
//! Version 0 (unversioned, written before version 1 existed) is a 12-byte nonce followed by
//! AES-256-GCM under the raw master key with the context as associated data. It still opens, so
//! that existing databases keep working, until `auditex master-key rotate` re-seals it; it is never
//! written any more.

use std::fmt;
use std::io::Write;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;

/// Length of the master key, in bytes (AES-256).
pub const MASTER_KEY_BYTES: usize = 32;

/// Length of an AES-GCM nonce, in bytes.
pub const NONCE_BYTES: usize = 12;

/// The version byte of the sealed format written now.
pub const SEAL_VERSION: u8 = 1;

/// Length of a master key id, in bytes.
pub const MASTER_KEY_ID_BYTES: usize = 8;

/// Length of the per-value derivation salt, in bytes.
const SALT_BYTES: usize = 32;

/// Length of the AES-GCM tag, in bytes.
const TAG_BYTES: usize = 16;

/// Bytes before the ciphertext in a version-1 blob.
const V1_HEADER_BYTES: usize = 1 + MASTER_KEY_ID_BYTES + SALT_BYTES + NONCE_BYTES;

/// HKDF-Extract salt: separates this use of the master key from any other.
const HKDF_SALT: &[u8] = b"auditex master key v1";

/// HKDF info of the master key id.
const KEY_ID_INFO: &[u8] = b"auditex/master-key-id/v1";

/// Errors handling the master key or sealed secrets.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The key text is not 64 hex digits.
    #[error("{source_name}: the master key must be 64 hex digits (32 bytes)")]
    BadKey {
        /// Where the key came from (variable or file name).
        source_name: String,
    },
    /// A key (or other secret) file could not be read or written.
    #[error("secret file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A key (or other secret) file is readable by group or others, or cannot be inspected.
    #[error(transparent)]
    PrivateFile(#[from] crate::file_modes::PrivateFileError),
    /// Decryption failed: wrong master key, or the ciphertext was altered or moved.
    #[error("a sealed secret could not be decrypted (wrong master key, or the data was altered)")]
    Open,
    /// The value was sealed under a master key this process does not hold.
    #[error(
        "a sealed secret was sealed under master key {key_id}, which is not configured: set it as \
         AUDITEX_MASTER_KEY_FILE or list it in AUDITEX_PREVIOUS_MASTER_KEYS_FILE (see the key \
         rotation procedure in docs/OPERATIONS.md)"
    )]
    UnknownMasterKey {
        /// The id recorded in the sealed value.
        key_id: MasterKeyId,
    },
    /// Encryption failed (a value too large for AES-GCM, or a failed key derivation).
    #[error("a secret could not be sealed: {0}")]
    Seal(&'static str),
}

/// What a sealed value is, which selects its derived key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A tenant's private Ed25519 signing key.
    SigningKey,
    /// An erasable value stored beside a record (sealed under the master key directly: rows
    /// written before data keys existed).
    Erasable,
    /// A data key, which seals erasable values (see `shredding.rs`).
    DataKey,
}

impl Purpose {
    /// The name used in contexts and in the key derivation.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::SigningKey => "signing-key",
            Purpose::Erasable => "erasable",
            Purpose::DataKey => "data-key",
        }
    }
}

/// Where a sealed value belongs: its purpose, its tenant, and the item within them (a key id, or
/// `<seq>/<field>`). Sealing binds the value to all three.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealContext {
    purpose: Purpose,
    tenant: String,
    item: String,
}

impl SealContext {
    /// The context of a tenant's private signing key.
    pub fn signing_key(tenant: &ledger::types::TenantId, key_id: ledger::keys::KeyId) -> Self {
        SealContext {
            purpose: Purpose::SigningKey,
            tenant: tenant.as_str().to_owned(),
            item: key_id.to_string(),
        }
    }

    /// The context of a data key, named by the sequence number of the record that created it.
    pub fn data_key(tenant: &ledger::types::TenantId, key_seq: u64) -> Self {
        SealContext {
            purpose: Purpose::DataKey,
            tenant: tenant.as_str().to_owned(),
            item: key_seq.to_string(),
        }
    }

    /// The context of an erasable value of record `seq`.
    pub fn erasable(tenant: &ledger::types::TenantId, seq: u64, field: &str) -> Self {
        SealContext {
            purpose: Purpose::Erasable,
            tenant: tenant.as_str().to_owned(),
            item: format!("{seq}/{field}"),
        }
    }

    /// The associated-data text, `auditex/<purpose>/<tenant>/<item>` (as in version 0).
    fn text(&self) -> String {
        format!(
            "auditex/{}/{}/{}",
            self.purpose.as_str(),
            self.tenant,
            self.item
        )
    }
}

/// The public, non-secret id of a master key: the first 8 bytes of an HKDF output of the key
/// (which reveals nothing usable about it). Recorded in each sealed value, shown in hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MasterKeyId([u8; MASTER_KEY_ID_BYTES]);

impl fmt::Display for MasterKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for MasterKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKeyId({self})")
    }
}

/// The 256-bit master key.
#[derive(Clone)]
pub struct MasterKey {
    bytes: [u8; MASTER_KEY_BYTES],
    /// HKDF-Extract of the key, done once; each seal only expands.
    hkdf: Hkdf<Sha256>,
    id: MasterKeyId,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({}, <redacted>)", self.id)
    }
}

impl PartialEq for MasterKey {
    fn eq(&self, other: &Self) -> bool {
        // Ids are derived from the key; comparing them compares the keys without touching them.
        self.id == other.id
    }
}

impl MasterKey {
    fn from_bytes(bytes: [u8; MASTER_KEY_BYTES]) -> Self {
        let hkdf = Hkdf::<Sha256>::new(Some(HKDF_SALT), &bytes);
        let mut id = [0u8; MASTER_KEY_ID_BYTES];
        // An 8-byte output is always within HKDF-SHA-256's limit of 8160 bytes.
        let _ = hkdf.expand(KEY_ID_INFO, &mut id);
        MasterKey {
            bytes,
            hkdf,
            id: MasterKeyId(id),
        }
    }

    /// Parses 64 hex digits (surrounding whitespace ignored).
    ///
    /// # Errors
    /// [`CryptoError::BadKey`] naming `source_name`.
    pub fn from_hex(text: &str, source_name: &str) -> Result<Self, CryptoError> {
        let mut key = [0u8; MASTER_KEY_BYTES];
        hex::decode_to_slice(text.trim(), &mut key).map_err(|_| CryptoError::BadKey {
            source_name: source_name.to_owned(),
        })?;
        Ok(MasterKey::from_bytes(key))
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        MasterKey::from_bytes(rand::random())
    }

    /// The key as 64 hex digits (for writing a new key file).
    pub fn to_hex(&self) -> String {
        hex::encode(self.bytes)
    }

    /// This key's public id.
    pub fn id(&self) -> MasterKeyId {
        self.id
    }

    /// Reads a key file, refusing one that group or others can read.
    ///
    /// # Errors
    /// [`CryptoError::Io`], [`CryptoError::PrivateFile`] or [`CryptoError::BadKey`].
    pub fn load_file(path: &Path) -> Result<Self, CryptoError> {
        check_private_file(path)?;
        let text = std::fs::read_to_string(path).map_err(|source| CryptoError::Io {
            path: path.display().to_string(),
            source,
        })?;
        MasterKey::from_hex(&text, &path.display().to_string())
    }

    /// Reads a file of master keys, one 64-hex-digit key per line (blank lines and `#` comments
    /// ignored), refusing one that group or others can read.
    ///
    /// # Errors
    /// As [`MasterKey::load_file`]; [`CryptoError::BadKey`] names the file and line.
    pub fn load_list_file(path: &Path) -> Result<Vec<Self>, CryptoError> {
        check_private_file(path)?;
        let text = std::fs::read_to_string(path).map_err(|source| CryptoError::Io {
            path: path.display().to_string(),
            source,
        })?;
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .map(|(n, l)| MasterKey::from_hex(l, &format!("{} line {}", path.display(), n + 1)))
            .collect()
    }

    /// Loads the key file at `path`, creating it with a new random key (mode 0600) if absent.
    ///
    /// # Errors
    /// As [`MasterKey::load_file`], or an I/O error creating the file.
    pub fn load_or_create_file(path: &Path) -> Result<Self, CryptoError> {
        if path.exists() {
            return MasterKey::load_file(path);
        }
        let key = MasterKey::generate();
        key.write_new_file(path)?;
        Ok(key)
    }

    /// Writes this key to a new file (mode 0600), refusing to overwrite one.
    ///
    /// # Errors
    /// [`CryptoError::Io`], also when the file exists already.
    pub fn write_new_file(&self, path: &Path) -> Result<(), CryptoError> {
        let io = |source| CryptoError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::file_modes::create_private_dir_all(dir).map_err(io)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(io)?;
        file.write_all(self.to_hex().as_bytes()).map_err(io)?;
        file.write_all(b"\n").map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(())
    }

    /// The AES-256-GCM key of one version-1 value.
    fn derive(&self, context: &SealContext, salt: &[u8]) -> Result<Aes256Gcm, CryptoError> {
        let mut key = [0u8; 32];
        // Purpose names and tenant ids never contain '/', and the salt has a fixed length at the
        // end, so the info string is unambiguous.
        self.hkdf
            .expand_multi_info(
                &[
                    b"auditex/seal/v1/",
                    context.purpose.as_str().as_bytes(),
                    b"/",
                    context.tenant.as_bytes(),
                    b"/",
                    salt,
                ],
                &mut key,
            )
            .map_err(|_| CryptoError::Seal("key derivation failed"))?;
        Ok(Aes256Gcm::new((&key).into()))
    }

    /// Seals `plaintext` for `context` in the version-1 format.
    fn seal_v1(&self, context: &SealContext, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let salt: [u8; SALT_BYTES] = rand::random();
        let nonce: [u8; NONCE_BYTES] = rand::random();
        let mut out = Vec::with_capacity(V1_HEADER_BYTES + plaintext.len() + TAG_BYTES);
        out.push(SEAL_VERSION);
        out.extend_from_slice(&self.id.0);
        out.extend_from_slice(&salt);
        out.extend_from_slice(&nonce);
        let aad = v1_aad(&out[..1 + MASTER_KEY_ID_BYTES], context);
        let ciphertext = self
            .derive(context, &salt)?
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Seal("AES-GCM encryption failed"))?;
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// Opens a version-1 blob (its key id already matched this key).
    fn open_v1(&self, context: &SealContext, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < V1_HEADER_BYTES + TAG_BYTES {
            return Err(CryptoError::Open);
        }
        let salt = &sealed[1 + MASTER_KEY_ID_BYTES..1 + MASTER_KEY_ID_BYTES + SALT_BYTES];
        let nonce = &sealed[V1_HEADER_BYTES - NONCE_BYTES..V1_HEADER_BYTES];
        let aad = v1_aad(&sealed[..1 + MASTER_KEY_ID_BYTES], context);
        self.derive(context, salt)?
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: &sealed[V1_HEADER_BYTES..],
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Open)
    }

    /// Opens a version-0 (unversioned) blob: nonce, then AES-256-GCM under the raw key.
    fn open_v0(&self, context: &SealContext, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < NONCE_BYTES + TAG_BYTES {
            return Err(CryptoError::Open);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        Aes256Gcm::new((&self.bytes).into())
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.text().as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Open)
    }
}

/// Associated data of a version-1 value: its version byte and key id, then the context text.
fn v1_aad(header: &[u8], context: &SealContext) -> Vec<u8> {
    let text = context.text();
    let mut aad = Vec::with_capacity(header.len() + text.len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(text.as_bytes());
    aad
}

/// The master key id a version-1 blob names, if it is one.
fn v1_key_id(sealed: &[u8]) -> Option<MasterKeyId> {
    if sealed.len() < V1_HEADER_BYTES + TAG_BYTES || sealed[0] != SEAL_VERSION {
        return None;
    }
    let mut id = [0u8; MASTER_KEY_ID_BYTES];
    id.copy_from_slice(&sealed[1..1 + MASTER_KEY_ID_BYTES]);
    Some(MasterKeyId(id))
}

/// The master keys a process holds: the current one, which seals, and the previous ones, which
/// only open (configured while `auditex master-key rotate` re-seals what they sealed).
#[derive(Debug, Clone)]
pub struct MasterKeys {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl From<MasterKey> for MasterKeys {
    fn from(current: MasterKey) -> Self {
        MasterKeys::new(current, Vec::new())
    }
}

impl MasterKeys {
    /// The current key and the previous ones (a previous key equal to the current one, or listed
    /// twice, is dropped).
    pub fn new(current: MasterKey, previous: Vec<MasterKey>) -> Self {
        let mut kept: Vec<MasterKey> = Vec::new();
        for key in previous {
            if key != current && !kept.contains(&key) {
                kept.push(key);
            }
        }
        MasterKeys {
            current,
            previous: kept,
        }
    }

    /// The key that seals.
    pub fn current(&self) -> &MasterKey {
        &self.current
    }

    /// The keys that only open.
    pub fn previous(&self) -> &[MasterKey] {
        &self.previous
    }

    /// Seals `plaintext` for `context` under the current key (version 1).
    ///
    /// # Errors
    /// [`CryptoError::Seal`] when encryption fails; nothing is ever returned half-sealed.
    pub fn seal(&self, context: &SealContext, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.current.seal_v1(context, plaintext)
    }

    /// Opens a value sealed for `context` by any key held, in either format.
    ///
    /// # Errors
    /// [`CryptoError::UnknownMasterKey`] when a version-1 value names a key not held;
    /// [`CryptoError::Open`] for another context, altered bytes, or a version-0 value no key opens.
    pub fn open(&self, context: &SealContext, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let named = v1_key_id(sealed);
        if let Some(id) = named
            && let Some(key) = self.keys().find(|k| k.id == id)
            && let Ok(plain) = key.open_v1(context, sealed)
        {
            return Ok(plain);
        }
        // A version-0 blob starts with a random nonce, so its first byte is 0x01 once in 256:
        // whatever did not open as version 1 is tried as version 0 before giving up.
        for key in self.keys() {
            if let Ok(plain) = key.open_v0(context, sealed) {
                return Ok(plain);
            }
        }
        match named {
            Some(key_id) if !self.keys().any(|k| k.id == key_id) => {
                Err(CryptoError::UnknownMasterKey { key_id })
            }
            _ => Err(CryptoError::Open),
        }
    }

    /// Whether `sealed` is in the current format under the current key; anything else is what a
    /// rotation re-seals.
    pub fn is_current(&self, sealed: &[u8]) -> bool {
        v1_key_id(sealed) == Some(self.current.id)
    }

    /// Opens `sealed` and seals it again under the current key; `None` when it is current already.
    ///
    /// # Errors
    /// As [`MasterKeys::open`] and [`MasterKeys::seal`].
    pub fn reseal(
        &self,
        context: &SealContext,
        sealed: &[u8],
    ) -> Result<Option<Vec<u8>>, CryptoError> {
        if self.is_current(sealed) {
            return Ok(None);
        }
        let plain = self.open(context, sealed)?;
        self.seal(context, &plain).map(Some)
    }

    fn keys(&self) -> impl Iterator<Item = &MasterKey> {
        std::iter::once(&self.current).chain(self.previous.iter())
    }
}

/// Which key sealed a stored value, as a rotation reports it.
pub fn sealed_by(sealed: &[u8]) -> Option<MasterKeyId> {
    v1_key_id(sealed)
}

/// Refuses a secret file that group or others may read ([`crate::file_modes::check_private_file`]),
/// as a [`CryptoError`].
///
/// # Errors
/// [`CryptoError::PrivateFile`] when the file cannot be inspected or its mode allows group or
/// other access.
pub fn check_private_file(path: &Path) -> Result<(), CryptoError> {
    Ok(crate::file_modes::check_private_file(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::types::TenantId;

    fn tenant(name: &str) -> TenantId {
        TenantId::parse(name).expect("tenant id")
    }

    /// A version-0 blob as written before sealing was versioned (built here with the AEAD crate
    /// directly, independently of the code under test).
    fn seal_v0(key_hex: &str, context: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut key = [0u8; 32];
        hex::decode_to_slice(key_hex, &mut key).expect("hex");
        let nonce: [u8; NONCE_BYTES] = rand::random();
        let ct = Aes256Gcm::new((&key).into())
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .expect("encrypt");
        [nonce.as_slice(), &ct].concat()
    }

    #[test]
    fn a_sealed_secret_opens_only_under_its_key_and_context() {
        let keys = MasterKeys::from(MasterKey::generate());
        let ctx = SealContext::erasable(&tenant("acme"), 7, "name");
        let sealed = keys.seal(&ctx, b"secret").expect("sealed");
        assert_eq!(sealed[0], SEAL_VERSION);
        assert_eq!(sealed.len(), V1_HEADER_BYTES + 6 + TAG_BYTES);
        assert_eq!(keys.open(&ctx, &sealed).expect("opens"), b"secret");
        for other in [
            SealContext::erasable(&tenant("other"), 7, "name"),
            SealContext::erasable(&tenant("acme"), 8, "name"),
            SealContext::erasable(&tenant("acme"), 7, "email"),
        ] {
            assert!(matches!(keys.open(&other, &sealed), Err(CryptoError::Open)));
        }
        let stranger = MasterKeys::from(MasterKey::generate());
        let err = stranger.open(&ctx, &sealed).expect_err("another key");
        assert!(
            matches!(err, CryptoError::UnknownMasterKey { key_id } if key_id == keys.current().id()),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("AUDITEX_PREVIOUS_MASTER_KEYS_FILE")
        );
        // Every byte matters: header, salt, nonce, ciphertext and tag.
        for i in 0..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[i] ^= 1;
            assert!(keys.open(&ctx, &tampered).is_err(), "byte {i} altered");
        }
        assert!(keys.open(&ctx, &sealed[..20]).is_err());
        assert!(keys.open(&ctx, &[]).is_err());
    }

    #[test]
    fn two_seals_of_one_value_share_neither_salt_nor_nonce() {
        let keys = MasterKeys::from(MasterKey::generate());
        let ctx = SealContext::erasable(&tenant("acme"), 1, "f");
        let a = keys.seal(&ctx, b"same").expect("a");
        let b = keys.seal(&ctx, b"same").expect("b");
        assert_eq!(a[..9], b[..9], "same version and key id");
        assert_ne!(a[9..V1_HEADER_BYTES], b[9..V1_HEADER_BYTES]);
        assert_ne!(a[V1_HEADER_BYTES..], b[V1_HEADER_BYTES..]);
    }

    #[test]
    fn an_unversioned_blob_from_before_still_opens_and_is_not_current() {
        let hex_key = hex::encode(rand::random::<[u8; 32]>());
        let key = MasterKey::from_hex(&hex_key, "test").expect("key");
        let t = tenant("acme");
        let key_id = ledger::keys::KeyId::of(
            &ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key(),
        );
        let ctx = SealContext::signing_key(&t, key_id);
        // Many blobs, so that some start with the version byte by chance (1 in 256).
        for n in 0..600u32 {
            let old = seal_v0(
                &hex_key,
                &format!("auditex/signing-key/acme/{key_id}"),
                &n.to_be_bytes(),
            );
            // As the only key, and as a previous key beside a new current one.
            for keys in [
                MasterKeys::from(key.clone()),
                MasterKeys::new(MasterKey::generate(), vec![key.clone()]),
            ] {
                assert_eq!(keys.open(&ctx, &old).expect("v0 opens"), n.to_be_bytes());
                if !keys.is_current(&old) {
                    let new = keys.reseal(&ctx, &old).expect("reseal").expect("changed");
                    assert!(keys.is_current(&new));
                    assert_eq!(keys.open(&ctx, &new).expect("v1 opens"), n.to_be_bytes());
                    assert_eq!(keys.reseal(&ctx, &new).expect("no-op"), None);
                }
            }
        }
    }

    #[test]
    fn a_previous_key_opens_but_never_seals() {
        let old = MasterKey::generate();
        let new = MasterKey::generate();
        let ctx = SealContext::erasable(&tenant("acme"), 3, "f");
        let sealed_old = MasterKeys::from(old.clone())
            .seal(&ctx, b"v")
            .expect("sealed");
        let both = MasterKeys::new(new.clone(), vec![old.clone(), new.clone(), old.clone()]);
        assert_eq!(
            both.previous().len(),
            1,
            "duplicates and the current key dropped"
        );
        assert_eq!(both.open(&ctx, &sealed_old).expect("opens"), b"v");
        assert!(!both.is_current(&sealed_old));
        let resealed = both
            .reseal(&ctx, &sealed_old)
            .expect("ok")
            .expect("changed");
        assert_eq!(sealed_by(&resealed), Some(new.id()));
        assert_eq!(
            MasterKeys::from(new)
                .open(&ctx, &resealed)
                .expect("new alone"),
            b"v"
        );
        assert!(MasterKeys::from(old).open(&ctx, &resealed).is_err());
    }

    #[test]
    fn a_key_file_is_created_private_and_refused_when_world_readable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("master.key");
        let created = MasterKey::load_or_create_file(&path).expect("created");
        let loaded = MasterKey::load_file(&path).expect("loaded");
        assert_eq!(created.bytes, loaded.bytes);
        assert_eq!(created.id(), loaded.id());
        assert!(created.write_new_file(&path).is_err(), "never overwrites");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            let err = MasterKey::load_file(&path).expect_err("must refuse");
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
    }

    #[test]
    fn a_key_list_file_names_the_bad_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("previous.keys");
        let a = MasterKey::generate();
        std::fs::write(&path, format!("# old keys\n{}\n\nnot-a-key\n", a.to_hex())).expect("w");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        let err = MasterKey::load_list_file(&path).expect_err("bad line");
        assert!(err.to_string().contains("line 4"), "{err}");
        std::fs::write(&path, format!("{}\n", a.to_hex())).expect("w");
        let keys = MasterKey::load_list_file(&path).expect("loaded");
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].id(), a.id());
    }

    #[test]
    fn debug_output_shows_the_key_id_and_never_the_key() {
        let key = MasterKey::generate();
        let text = format!("{key:?}");
        assert!(text.contains(&key.id().to_string()));
        assert!(!text.contains(&key.to_hex()));
    }
}
