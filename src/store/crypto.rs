//! Application-level encryption of secrets at rest: the master key and AES-256-GCM sealing of
//! tenants' private signing keys.
//!
//! The master key never enters the database. It comes from the environment or from a key file
//! outside the repository; the embedded default creates one (mode 0600) on first start. Each sealed
//! secret carries its own random 96-bit nonce and is bound to its purpose and owner through the
//! AEAD's associated data, so a ciphertext copied onto another tenant's row does not decrypt.

use std::fmt;
use std::io::Write;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

/// Length of the master key, in bytes (AES-256).
pub const MASTER_KEY_BYTES: usize = 32;

/// Length of an AES-GCM nonce, in bytes.
pub const NONCE_BYTES: usize = 12;

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
    /// A key (or other secret) file is readable by group or others.
    #[error(
        "secret file {path} is readable by group or others (mode {mode:o}); run `chmod 600 {path}` (and keep it outside the repository)"
    )]
    Permissions {
        /// The file.
        path: String,
        /// Its mode bits.
        mode: u32,
    },
    /// Decryption failed: wrong master key, or the ciphertext was altered or moved.
    #[error("a sealed secret could not be decrypted (wrong master key, or the data was altered)")]
    Open,
}

/// The 256-bit master key.
#[derive(Clone)]
pub struct MasterKey([u8; MASTER_KEY_BYTES]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// Parses 64 hex digits (surrounding whitespace ignored).
    ///
    /// # Errors
    /// [`CryptoError::BadKey`] naming `source_name`.
    pub fn from_hex(text: &str, source_name: &str) -> Result<Self, CryptoError> {
        let mut key = [0u8; MASTER_KEY_BYTES];
        hex::decode_to_slice(text.trim(), &mut key).map_err(|_| CryptoError::BadKey {
            source_name: source_name.to_owned(),
        })?;
        Ok(MasterKey(key))
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        MasterKey(rand::random())
    }

    /// Reads a key file, refusing one that group or others can read.
    ///
    /// # Errors
    /// [`CryptoError::Io`], [`CryptoError::Permissions`] or [`CryptoError::BadKey`].
    pub fn load_file(path: &Path) -> Result<Self, CryptoError> {
        check_private_file(path)?;
        let text = std::fs::read_to_string(path).map_err(|source| CryptoError::Io {
            path: path.display().to_string(),
            source,
        })?;
        MasterKey::from_hex(&text, &path.display().to_string())
    }

    /// Loads the key file at `path`, creating it with a new random key (mode 0600) if absent.
    ///
    /// # Errors
    /// As [`MasterKey::load_file`], or an I/O error creating the file.
    pub fn load_or_create_file(path: &Path) -> Result<Self, CryptoError> {
        if path.exists() {
            return MasterKey::load_file(path);
        }
        let io = |source| CryptoError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let key = MasterKey::generate();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(io)?;
        file.write_all(hex::encode(key.0).as_bytes()).map_err(io)?;
        file.write_all(b"\n").map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(key)
    }

    /// Encrypts `plaintext`, binding it to `context` (for example `signing-key/acme/<key id>`).
    /// Output: nonce (12 bytes) followed by ciphertext and tag.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Vec<u8> {
        let cipher = Aes256Gcm::new((&self.0).into());
        let nonce_bytes: [u8; NONCE_BYTES] = rand::random();
        let nonce = Nonce::from_slice(&nonce_bytes);
        // AES-GCM encryption of an in-memory buffer only fails for inputs beyond 64 GiB.
        let ciphertext = cipher
            .encrypt(
                nonce,
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_BYTES + ciphertext.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ciphertext);
        out
    }

    /// Decrypts what [`MasterKey::seal`] produced under the same `context`.
    ///
    /// # Errors
    /// [`CryptoError::Open`] for a wrong key, another context, or altered bytes.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < NONCE_BYTES {
            return Err(CryptoError::Open);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        Aes256Gcm::new((&self.0).into())
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Open)
    }
}

/// Refuses a secret file that group or others may read: the master key file today, and every
/// other secret file (TLS private key, session-signing keys, SMTP password) as they are added.
/// [`crate::config::read_secret_file`] wraps it for configuration settings.
///
/// # Errors
/// [`CryptoError::Io`] when the file cannot be inspected, [`CryptoError::Permissions`] when its
/// mode allows group or other access.
pub fn check_private_file(path: &Path) -> Result<(), CryptoError> {
    let meta = std::fs::metadata(path).map_err(|source| CryptoError::Io {
        path: path.display().to_string(),
        source,
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(CryptoError::Permissions {
                path: path.display().to_string(),
                mode,
            });
        }
    }
    let _ = meta;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_under_its_key_and_context() {
        let key = MasterKey::generate();
        let sealed = key.seal("signing-key/acme/01", b"secret");
        assert_eq!(
            key.open("signing-key/acme/01", &sealed).expect("opens"),
            b"secret"
        );
        assert!(key.open("signing-key/other/01", &sealed).is_err());
        assert!(
            MasterKey::generate()
                .open("signing-key/acme/01", &sealed)
                .is_err()
        );
        let mut tampered = sealed.clone();
        tampered[NONCE_BYTES] ^= 1;
        assert!(key.open("signing-key/acme/01", &tampered).is_err());
        assert!(key.open("signing-key/acme/01", &sealed[..5]).is_err());
    }

    #[test]
    fn a_key_file_is_created_private_and_refused_when_world_readable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("master.key");
        let created = MasterKey::load_or_create_file(&path).expect("created");
        let loaded = MasterKey::load_file(&path).expect("loaded");
        assert_eq!(created.0, loaded.0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            let err = MasterKey::load_file(&path).expect_err("must refuse");
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
    }
}
