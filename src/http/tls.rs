//! TLS for the API: rustls with TLS 1.2 and 1.3 only (ring provider).
//!
//! Production deployments give certificate and key paths. The embedded default creates a
//! self-signed certificate for `localhost` on first start (private key mode 0600 in the data
//! folder) and prints its SHA-256 fingerprint so clients can pin it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::store::crypto::check_private_file;

/// A TLS setup error, naming the file or setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read or parsed.
    #[error("{path}: {problem}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// The key file is readable by group or others.
    #[error(transparent)]
    Permissions(#[from] crate::store::crypto::CryptoError),
    /// rustls refused the certificate and key.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// Generating the self-signed certificate failed.
    #[error("generating a self-signed certificate: {0}")]
    Generate(String),
}

/// The certificate in use and its fingerprint.
pub struct TlsSetup {
    /// The rustls configuration.
    pub config: Arc<ServerConfig>,
    /// SHA-256 of the leaf certificate's DER, hex.
    pub fingerprint: String,
    /// The leaf certificate, PEM (clients of the self-signed default can trust exactly this).
    pub certificate_pem: String,
}

/// Loads the certificate chain and key from PEM files.
///
/// # Errors
/// [`TlsError`] naming the file.
pub fn load(cert_path: &Path, key_path: &Path) -> Result<TlsSetup, TlsError> {
    check_private_file(key_path)?;
    let file_err = |path: &Path, problem: String| TlsError::File {
        path: path.display().to_string(),
        problem,
    };
    let cert_pem =
        std::fs::read_to_string(cert_path).map_err(|e| file_err(cert_path, e.to_string()))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(cert_path, format!("not a PEM certificate chain: {e}")))?;
    if certs.is_empty() {
        return Err(file_err(cert_path, "no certificate found".into()));
    }
    let key_pem = std::fs::read(key_path).map_err(|e| file_err(key_path, e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| file_err(key_path, format!("not a PEM private key: {e}")))?;
    let fingerprint = hex::encode(Sha256::digest(certs[0].as_ref()));
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
    let mut config = config;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsSetup {
        config: Arc::new(config),
        fingerprint,
        certificate_pem: cert_pem,
    })
}

/// Paths of the generated self-signed certificate and key inside `dir`.
pub fn self_signed_paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("tls-cert.pem"), dir.join("tls-key.pem"))
}

/// Loads the self-signed certificate in `dir`, generating it on first start.
///
/// # Errors
/// [`TlsError`] when it cannot be generated, written or read.
pub fn load_or_generate_self_signed(dir: &Path) -> Result<(TlsSetup, bool), TlsError> {
    let (cert_path, key_path) = self_signed_paths(dir);
    let mut generated = false;
    if !cert_path.exists() || !key_path.exists() {
        let io = |path: &Path, e: std::io::Error| TlsError::File {
            path: path.display().to_string(),
            problem: e.to_string(),
        };
        crate::file_modes::create_private_dir_all(dir).map_err(|e| io(dir, e))?;
        let names = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        let certified = rcgen::generate_simple_self_signed(names)
            .map_err(|e| TlsError::Generate(e.to_string()))?;
        write_private(&key_path, certified.signing_key.serialize_pem().as_bytes())
            .map_err(|e| io(&key_path, e))?;
        // Public, but written like the key so that the whole folder is owner-only.
        write_private(&cert_path, certified.cert.pem().as_bytes())
            .map_err(|e| io(&cert_path, e))?;
        generated = true;
    }
    Ok((load(&cert_path, &key_path)?, generated))
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
