//! `auditex witness`: a C2SP tlog-witness (<https://c2sp.org/tlog-witness>) that a regulator or
//! an audit firm runs on its own machine, for Auditex logs or any other log speaking the protocol.
//!
//! The witness holds its own Ed25519 key and a list of logs it watches (each a C2SP verifier key
//! whose name is the log's origin). For each log it keeps the latest checkpoint it cosigned, in
//! a SQLite file that survives crashes (WAL, synchronous commits before any answer). It cosigns
//! a checkpoint (C2SP tlog-cosignature, Ed25519 `cosignature/v1`) only when it is signed by the
//! log and consistent with that state: the RFC 9162 consistency proof from the cosigned size
//! verifies, or the size and root are the same. A checkpoint that contradicts what it cosigned —
//! another root at the same size (a fork), a smaller tree (a rollback, or a stale checkpoint
//! replayed), a proof that fails — is refused and kept with the checkpoint it contradicts. Only
//! the first is proof on its own (two log-signed roots for one size); the others are two
//! log-signed checkpoints that anyone can hold against the log's own consistency proof. Since
//! anyone may replay a log's checkpoints, what is kept is bounded: a request kept already is not
//! kept again, and at most 1,000 entries per log.
//!
//! - [`protocol`]: parsing `add-checkpoint` requests and deciding them (no I/O but the state).
//! - [`state`]: the SQLite state: the latest cosigned checkpoint per log, the evidence kept.
//! - [`server`]: HTTPS, rate limits, the routes.

pub mod client;
pub mod protocol;
pub mod server;
pub mod state;

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use ledger::cosignature::WitnessKey;
use zeroize::Zeroizing;

/// The files of a witness's folder.
pub struct WitnessDir {
    dir: PathBuf,
}

/// Why the witness's folder could not be used.
#[derive(Debug, thiserror::Error)]
pub enum WitnessDirError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The folder holds no witness yet, or one already.
    #[error("{0}")]
    State(String),
    /// The key or name file is damaged.
    #[error("{path}: {problem}")]
    Damaged {
        /// The file.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// The key file is readable by others.
    #[error(transparent)]
    Permissions(#[from] crate::store::crypto::CryptoError),
}

impl WitnessDir {
    /// The witness in folder `dir`.
    pub fn new(dir: &Path) -> Self {
        WitnessDir {
            dir: dir.to_owned(),
        }
    }

    fn key_path(&self) -> PathBuf {
        self.dir.join("witness.key")
    }

    fn name_path(&self) -> PathBuf {
        self.dir.join("witness.name")
    }

    /// The state database.
    pub fn state_path(&self) -> PathBuf {
        self.dir.join("witness.db")
    }

    /// The TLS folder of the self-signed default.
    pub fn tls_dir(&self) -> PathBuf {
        self.dir.join("tls")
    }

    fn io(path: &Path) -> impl Fn(std::io::Error) -> WitnessDirError + '_ {
        move |source| WitnessDirError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// Creates a witness named `name` with a new key (owner-only files); refuses a folder that
    /// holds one already.
    ///
    /// # Errors
    /// [`WitnessDirError`].
    pub fn init(&self, name: &str) -> Result<WitnessKey, WitnessDirError> {
        if self.key_path().exists() {
            return Err(WitnessDirError::State(format!(
                "{} already holds a witness key; it is never replaced",
                self.dir.display()
            )));
        }
        let secret = Zeroizing::new(rand::random::<[u8; 32]>());
        let key = SigningKey::from_bytes(&secret);
        let vkey = WitnessKey::new(name, key.verifying_key())
            .map_err(|e| WitnessDirError::State(format!("{name:?} cannot name a witness: {e}")))?;
        crate::file_modes::create_private_dir_all(&self.dir).map_err(Self::io(&self.dir))?;
        let hex = Zeroizing::new(hex::encode(secret.as_slice()));
        {
            use std::io::Write as _;
            let path = self.key_path();
            let mut file = crate::file_modes::private_file_options()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(Self::io(&path))?;
            file.write_all(hex.as_bytes()).map_err(Self::io(&path))?;
            file.sync_all().map_err(Self::io(&path))?;
        }
        std::fs::write(self.name_path(), format!("{name}\n"))
            .map_err(Self::io(&self.name_path()))?;
        Ok(vkey)
    }

    /// The witness's signing key and its public key.
    ///
    /// # Errors
    /// [`WitnessDirError`] when the folder holds no witness, or a damaged or exposed key file.
    pub fn load(&self) -> Result<(SigningKey, WitnessKey), WitnessDirError> {
        let key_path = self.key_path();
        if !key_path.exists() {
            return Err(WitnessDirError::State(format!(
                "{} holds no witness: create one with `auditex witness init --dir {} --name NAME`",
                self.dir.display(),
                self.dir.display()
            )));
        }
        crate::store::crypto::check_private_file(&key_path)?;
        let text = Zeroizing::new(std::fs::read_to_string(&key_path).map_err(Self::io(&key_path))?);
        let mut secret = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text.trim(), secret.as_mut_slice()).map_err(|_| {
            WitnessDirError::Damaged {
                path: key_path.display().to_string(),
                problem: "not 64 hex digits".into(),
            }
        })?;
        let name_path = self.name_path();
        let name = std::fs::read_to_string(&name_path).map_err(Self::io(&name_path))?;
        let key = SigningKey::from_bytes(&secret);
        let vkey =
            WitnessKey::new(name.trim_end_matches('\n'), key.verifying_key()).map_err(|e| {
                WitnessDirError::Damaged {
                    path: name_path.display().to_string(),
                    problem: e.to_string(),
                }
            })?;
        Ok((key, vkey))
    }
}
