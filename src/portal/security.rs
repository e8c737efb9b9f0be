//! The portal's security primitives: password hashing and policy, the session-cookie key ring,
//! CSRF tokens, and random tokens. Nothing here is hand-rolled cryptography: Argon2id
//! (`argon2`), HMAC-SHA-256 (`hmac` + `sha2`) and the OS random generator do the work; this
//! module only decides parameters and formats.
//!
//! - **Passwords**: Argon2id with m = 19 MiB, t = 2, p = 1 (OWASP's recommendation), hashed on a
//!   blocking thread. 12 to 128 characters, no composition rules, refused when on the
//!   common-password list shipped in the binary (or a common password with digits or symbols
//!   appended, or repeated).
//! - **Session cookies** hold `<session id>.<key id>.<HMAC-SHA-256(key, "session:" || id)>`, all
//!   base64url. The newest key of the ring signs; every key of the ring verifies, so adding a key
//!   (rotation) logs no one out, and retiring an old key ends only the sessions it signed.
//! - **CSRF tokens** are `HMAC(newest key, "csrf:" || binding)`, bound to the session id (or, before
//!   sign-in, to a random pre-session cookie); any key of the ring verifies them.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Argon2id memory cost, KiB (OWASP: at least 19 MiB).
pub const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
/// Argon2id passes.
pub const ARGON2_PASSES: u32 = 2;
/// Argon2id lanes.
pub const ARGON2_LANES: u32 = 1;

/// Shortest password accepted, in characters.
pub const PASSWORD_CHARS_MIN: usize = 12;
/// Longest password accepted, in characters (well above the required 64).
pub const PASSWORD_CHARS_MAX: usize = 128;

type HmacSha256 = hmac::Hmac<Sha256>;

static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("common-passwords.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect()
});

fn argon2() -> Argon2<'static> {
    // The parameters are constants within Argon2's limits, so `Params::new` cannot fail; fall
    // back to the library default (stronger in memory) rather than panic if it ever did.
    let params =
        Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, ARGON2_LANES, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Why a password is refused, for the person choosing it.
pub fn password_problem(password: &str) -> Option<String> {
    let chars = password.chars().count();
    if chars < PASSWORD_CHARS_MIN {
        return Some(format!(
            "Use at least {PASSWORD_CHARS_MIN} characters; a few unrelated words work well."
        ));
    }
    if chars > PASSWORD_CHARS_MAX {
        return Some(format!("Use at most {PASSWORD_CHARS_MAX} characters."));
    }
    if is_common(password) {
        return Some(
            "This password is on a list of commonly used passwords; choose another.".into(),
        );
    }
    None
}

/// Whether a password is a common one, also when digits or symbols were added at the end or it
/// is a common one repeated.
pub fn is_common(password: &str) -> bool {
    let lower = password.to_lowercase();
    if COMMON_PASSWORDS.contains(lower.as_str()) {
        return true;
    }
    let base = lower.trim_end_matches(|c: char| !c.is_alphabetic());
    if base.len() >= 4 && COMMON_PASSWORDS.contains(base) {
        return true;
    }
    // "passwordpassword", "qwertyqwertyqwerty": a common password repeated.
    (1..=lower.len() / 2).any(|n| {
        lower.len().is_multiple_of(n)
            && lower.is_char_boundary(n)
            && lower[..n].repeat(lower.len() / n) == lower
            && (n < 4 || COMMON_PASSWORDS.contains(&lower[..n]))
    })
}

/// Hashes a password with Argon2id on a blocking thread; returns the PHC string.
///
/// # Errors
/// The hasher's error (out of memory), as text.
pub async fn hash_password(password: String) -> Result<String, String> {
    tokio::task::spawn_blocking(move || {
        let salt =
            SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|e| e.to_string())?;
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Checks a password against a PHC string on a blocking thread. A malformed stored hash never
/// verifies.
pub async fn verify_password(password: String, phc: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&phc)
            .map(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// A hash of a random password with the same parameters: sign-in for an unknown email verifies
/// against it, so that it costs the same time as a wrong password.
pub static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let salt = SaltString::encode_b64(&[7u8; 16]).map_or_else(|_| String::new(), |s| s.to_string());
    SaltString::from_b64(&salt)
        .ok()
        .and_then(|s| {
            argon2()
                .hash_password(&rand::random::<[u8; 32]>(), &s)
                .ok()
                .map(|h| h.to_string())
        })
        .unwrap_or_default()
});

/// 32 random bytes, base64url: session ids, reset tokens, pre-session CSRF cookies.
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// SHA-256 of a token, as stored in the database.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// One key of the ring.
#[derive(Clone)]
struct RingKey {
    id: String,
    secret: [u8; 32],
}

/// The session-signing key ring: the first key signs, all verify.
#[derive(Clone)]
pub struct KeyRing {
    keys: Vec<RingKey>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("KeyRing").field("key_ids", &ids).finish()
    }
}

/// Errors of the key-ring file.
#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    /// The file cannot be read or written.
    #[error("session key file {path}: {problem}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        problem: String,
    },
}

fn file_error(path: &Path, problem: impl std::fmt::Display) -> KeyRingError {
    KeyRingError::File {
        path: path.display().to_string(),
        problem: problem.to_string(),
    }
}

impl KeyRing {
    /// A ring of one random key (tests).
    pub fn random() -> KeyRing {
        KeyRing {
            keys: vec![RingKey {
                id: hex::encode(rand::random::<[u8; 4]>()),
                secret: rand::random(),
            }],
        }
    }

    /// Parses the file format: one key per line, `<id> <64 hex digits>`, newest first; `#`
    /// comments.
    ///
    /// # Errors
    /// A line that is not a key, or no key at all.
    pub fn parse(text: &str, path: &Path) -> Result<KeyRing, KeyRingError> {
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (Some(id), Some(hex_secret), None) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(file_error(
                    path,
                    format!("line {}: expected `<id> <64 hex digits>`", n + 1),
                ));
            };
            let mut secret = [0u8; 32];
            hex::decode_to_slice(hex_secret, &mut secret).map_err(|_| {
                file_error(
                    path,
                    format!("line {}: the key is not 64 hex digits", n + 1),
                )
            })?;
            if id.len() > 32 || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(file_error(
                    path,
                    format!("line {}: the key id must be 1-32 letters or digits", n + 1),
                ));
            }
            keys.push(RingKey {
                id: id.to_owned(),
                secret,
            });
        }
        if keys.is_empty() {
            return Err(file_error(path, "holds no key"));
        }
        Ok(KeyRing { keys })
    }

    /// Loads the ring from a 0600 file, creating it with one new key when it does not exist.
    ///
    /// # Errors
    /// An unreadable or malformed file, or one readable by group or others.
    pub fn load_or_create(path: &Path) -> Result<KeyRing, KeyRingError> {
        if !path.exists() {
            write_ring_file(path, &[new_line()])?;
            tracing::info!(file = %path.display(), "created the session-signing key file");
        }
        crate::store::crypto::check_private_file(path).map_err(|e| file_error(path, e))?;
        let text = std::fs::read_to_string(path).map_err(|e| file_error(path, e))?;
        KeyRing::parse(&text, path)
    }

    /// The ids, newest first.
    pub fn ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.id.clone()).collect()
    }

    fn mac(key: &RingKey, purpose: &str, data: &[u8]) -> [u8; 32] {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&key.secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(purpose.as_bytes());
        mac.update(b":");
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    fn newest(&self) -> &RingKey {
        // `parse` refuses an empty ring.
        &self.keys[0]
    }

    /// The cookie value for a session id.
    pub fn sign_session(&self, session_id: &str) -> String {
        let key = self.newest();
        let mac = KeyRing::mac(key, "session", session_id.as_bytes());
        format!("{session_id}.{}.{}", key.id, URL_SAFE_NO_PAD.encode(mac))
    }

    /// The session id of a cookie value, if its signature verifies under a key of the ring.
    pub fn open_session(&self, cookie: &str) -> Option<String> {
        let mut parts = cookie.split('.');
        let (Some(id), Some(key_id), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        if id.len() != 43 {
            return None;
        }
        let key = self.keys.iter().find(|k| k.id == key_id)?;
        let given = URL_SAFE_NO_PAD.decode(mac).ok()?;
        let expected = KeyRing::mac(key, "session", id.as_bytes());
        bool::from(given.ct_eq(&expected)).then(|| id.to_owned())
    }

    /// The CSRF token bound to `binding` (a session id or a pre-session cookie).
    pub fn csrf_token(&self, binding: &str) -> String {
        let key = self.newest();
        format!(
            "{}.{}",
            key.id,
            URL_SAFE_NO_PAD.encode(KeyRing::mac(key, "csrf", binding.as_bytes()))
        )
    }

    /// Whether `token` is the CSRF token of `binding` under a key of the ring.
    pub fn check_csrf(&self, binding: &str, token: &str) -> bool {
        let Some((key_id, mac)) = token.split_once('.') else {
            return false;
        };
        let Some(key) = self.keys.iter().find(|k| k.id == key_id) else {
            return false;
        };
        let Ok(given) = URL_SAFE_NO_PAD.decode(mac) else {
            return false;
        };
        bool::from(given.ct_eq(&KeyRing::mac(key, "csrf", binding.as_bytes())))
    }
}

fn new_line() -> String {
    format!(
        "{} {}",
        hex::encode(rand::random::<[u8; 4]>()),
        hex::encode(rand::random::<[u8; 32]>())
    )
}

fn write_ring_file(path: &Path, lines: &[String]) -> Result<(), KeyRingError> {
    use std::io::Write as _;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::file_modes::create_private_dir_all(dir).map_err(|e| file_error(path, e))?;
    }
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(|e| file_error(path, e))?;
    let text = format!(
        "# Auditex session-signing keys, newest first: `<id> <64 hex digits>`. The first signs new\n# sessions; every key here still verifies. Keep this file secret (mode 0600).\n{}\n",
        lines.join("\n")
    );
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| file_error(path, e))?;
    std::fs::rename(&tmp, path).map_err(|e| file_error(path, e))
}

/// Adds a new newest key to the file; returns its id. Existing sessions stay valid.
///
/// # Errors
/// The file cannot be read or written.
pub fn rotate_key_file(path: &Path) -> Result<String, KeyRingError> {
    let ring = KeyRing::load_or_create(path)?;
    let line = new_line();
    let id = line.split(' ').next().unwrap_or_default().to_owned();
    let mut lines = vec![line];
    lines.extend(
        ring.keys
            .iter()
            .map(|k| format!("{} {}", k.id, hex::encode(k.secret))),
    );
    write_ring_file(path, &lines)?;
    Ok(id)
}

/// Removes a key that no longer signs (not the newest); sessions it signed end.
///
/// # Errors
/// Unknown id, the newest key, or the file cannot be read or written.
pub fn retire_key_file(path: &Path, id: &str) -> Result<(), KeyRingError> {
    let ring = KeyRing::load_or_create(path)?;
    if ring.keys.first().is_some_and(|k| k.id == id) {
        return Err(file_error(
            path,
            format!("{id} is the newest key, which signs new sessions; rotate first"),
        ));
    }
    if !ring.keys.iter().any(|k| k.id == id) {
        return Err(file_error(path, format!("has no key {id}")));
    }
    let lines: Vec<String> = ring
        .keys
        .iter()
        .filter(|k| k.id != id)
        .map(|k| format!("{} {}", k.id, hex::encode(k.secret)))
        .collect();
    write_ring_file(path, &lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_policy() {
        assert!(password_problem("short").is_some());
        assert!(
            password_problem("password1234").is_some(),
            "common + digits"
        );
        assert!(password_problem("qwertyuiop123").is_some());
        assert!(password_problem("passwordpassword").is_some(), "repeated");
        assert!(
            password_problem("aaaaaaaaaaaaaa").is_some(),
            "one character repeated"
        );
        assert!(password_problem(&"x".repeat(129)).is_some());
        assert!(password_problem("correct horse battery staple").is_none());
        assert!(password_problem("Zebra-Lantern-Quota-7").is_none());
    }

    #[test]
    fn sessions_verify_under_every_key_and_forgeries_fail() {
        let path = Path::new("test");
        let old = KeyRing::parse(&format!("a1 {}", "11".repeat(32)), path).expect("ring");
        let rotated = KeyRing::parse(
            &format!("b2 {}\na1 {}", "22".repeat(32), "11".repeat(32)),
            path,
        )
        .expect("ring");
        let id = random_token();
        let cookie = old.sign_session(&id);
        assert_eq!(rotated.open_session(&cookie), Some(id.clone()));
        let new_cookie = rotated.sign_session(&id);
        assert!(new_cookie.contains(".b2."));
        assert_eq!(old.open_session(&new_cookie), None, "unknown key");
        let mut forged = cookie.clone();
        forged.replace_range(0..1, if cookie.starts_with('A') { "B" } else { "A" });
        assert_eq!(rotated.open_session(&forged), None);
        let csrf = old.csrf_token(&id);
        assert!(rotated.check_csrf(&id, &csrf));
        assert!(!rotated.check_csrf(&random_token(), &csrf));
        assert!(!rotated.check_csrf(&id, "a1.AAAA"));
    }
}
