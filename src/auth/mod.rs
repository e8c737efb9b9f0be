//! API keys: their text format, generation, parsing and verification, and the roles they carry.
//!
//! A key reads `atx_<key id: 16 hex>_<secret: 64 hex>_<check: 8 hex>`. The `atx_` prefix makes
//! leaked keys easy to spot by secret scanners; the check digits (the first 4 bytes of SHA-256 of
//! everything before them) let a scanner, or this service, reject a mistyped or made-up key without
//! a database lookup. The secret is 256 random bits, so a fast hash (SHA-256) is enough to store:
//! there is no password to brute-force. Only the hash is stored; comparison is constant-time.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The prefix of every API key.
pub const API_KEY_PREFIX: &str = "atx_";

/// Length of an API key's text, in bytes.
pub const API_KEY_TEXT_BYTES: usize = 4 + 16 + 1 + 64 + 1 + 8;

/// What a key may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Append records and read its own receipts (pipelines).
    Ingest,
    /// Read records, proofs, bundles and exports (compliance staff, auditors).
    Read,
    /// Proofs, checkpoints, keys, bundles and exports only (regulators, external auditors).
    Verify,
    /// Subject rights (a bank's data-protection office): erase a subject's personal data, place
    /// and lift legal holds, list the records concerning a subject and download its access
    /// package; nothing else.
    Privacy,
}

impl Role {
    /// Every role, in the order help texts list them.
    pub const ALL: [Role; 4] = [Role::Ingest, Role::Read, Role::Verify, Role::Privacy];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Read => "read",
            Role::Verify => "verify",
            Role::Privacy => "privacy",
        }
    }

    /// Parses a stored or typed name.
    ///
    /// # Errors
    /// A message listing the roles.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "ingest" => Ok(Role::Ingest),
            "read" => Ok(Role::Read),
            "verify" => Ok(Role::Verify),
            "privacy" => Ok(Role::Privacy),
            other => Err(format!(
                "unknown role {other:?}: use ingest, read, verify or privacy"
            )),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The public id of a key (16 hex digits), shown in listings and logs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ApiKeyId(String);

impl ApiKeyId {
    /// Parses 16 lowercase hex digits.
    ///
    /// # Errors
    /// When the text is not 16 lowercase hex digits.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.len() == 16
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(ApiKeyId(text.to_owned()))
        } else {
            Err("an API key id is 16 lowercase hex digits".into())
        }
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ApiKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A whole API key as presented by a client. Never logged: `Debug` shows only the id.
pub struct ApiKeySecret {
    id: ApiKeyId,
    secret: [u8; 32],
}

impl fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeySecret({}, <redacted>)", self.id)
    }
}

fn check_digits(body: &str) -> String {
    hex::encode(&Sha256::digest(body.as_bytes())[..4])
}

impl ApiKeySecret {
    /// A new random key (the caller shows its text once and stores only [`ApiKeySecret::hash`]).
    pub fn generate() -> Self {
        let id: [u8; 8] = rand::random();
        ApiKeySecret {
            id: ApiKeyId(hex::encode(id)),
            secret: rand::random(),
        }
    }

    /// Parses key text, checking prefix, shape and check digits.
    ///
    /// # Errors
    /// A generic message; the caller answers 401 without saying which part was wrong.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        const MALFORMED: &str = "malformed API key";
        // Every valid key is ASCII; refusing anything else first makes the byte offsets below
        // fall on character boundaries, so slicing cannot panic on, say, a multi-byte letter.
        if text.len() != API_KEY_TEXT_BYTES || !text.is_ascii() || !text.starts_with(API_KEY_PREFIX)
        {
            return Err(MALFORMED);
        }
        let body = &text[..text.len() - 9];
        let (rest, check) = text.split_at(text.len() - 8);
        if !rest.ends_with('_')
            || check_digits(body)
                .as_bytes()
                .ct_eq(check.as_bytes())
                .unwrap_u8()
                != 1
        {
            return Err(MALFORMED);
        }
        let mut parts = body[API_KEY_PREFIX.len()..].split('_');
        let (Some(id), Some(secret), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(MALFORMED);
        };
        let id = ApiKeyId::parse(id).map_err(|_| MALFORMED)?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(secret, &mut bytes).map_err(|_| MALFORMED)?;
        Ok(ApiKeySecret { id, secret: bytes })
    }

    /// The key's public id.
    pub fn id(&self) -> &ApiKeyId {
        &self.id
    }

    /// The full key text, to show exactly once.
    pub fn reveal(&self) -> String {
        let body = format!("{API_KEY_PREFIX}{}_{}", self.id, hex::encode(self.secret));
        let check = check_digits(&body);
        format!("{body}_{check}")
    }

    /// What the database stores: SHA-256 of the secret bytes.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.secret).into()
    }

    /// Compares with a stored hash in constant time.
    pub fn matches(&self, stored_hash: &[u8]) -> bool {
        self.hash().ct_eq(stored_hash).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_parses_back_and_matches_only_its_hash() {
        let key = ApiKeySecret::generate();
        let text = key.reveal();
        assert!(text.starts_with("atx_"));
        assert_eq!(text.len(), API_KEY_TEXT_BYTES);
        let parsed = ApiKeySecret::parse(&text).expect("parses");
        assert_eq!(parsed.id(), key.id());
        assert!(parsed.matches(&key.hash()));
        assert!(!parsed.matches(&ApiKeySecret::generate().hash()));
        assert!(!format!("{parsed:?}").contains(&hex::encode(key.secret)));
    }

    #[test]
    fn every_role_parses_back_from_its_name_and_unknown_names_list_them_all() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Ok(role));
        }
        let refused = Role::parse("admin").expect_err("not an API-key role");
        for role in Role::ALL {
            assert!(refused.contains(role.as_str()), "{refused}");
        }
        assert!(Role::parse("Privacy").is_err(), "names are lowercase");
    }

    #[test]
    fn a_mistyped_key_fails_its_check_digits() {
        let text = ApiKeySecret::generate().reveal();
        for i in 4..text.len() {
            let mut bytes = text.clone().into_bytes();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            let altered = String::from_utf8(bytes).expect("ascii");
            if altered != text {
                assert!(ApiKeySecret::parse(&altered).is_err(), "position {i}");
            }
        }
        assert!(ApiKeySecret::parse("").is_err());
        assert!(ApiKeySecret::parse("Bearer x").is_err());
    }

    #[test]
    fn non_ascii_text_of_the_key_length_is_refused_without_panicking() {
        let text = ApiKeySecret::generate().reveal();
        // A two-byte letter straddling each slicing offset (the check digits, the separators),
        // keeping the byte length equal to a real key's.
        for at in [0, 4, 19, 20, 21, 85, 86, 87, text.len() - 9, text.len() - 2] {
            let mut altered = text.clone();
            altered.replace_range(at..at + 2, "é");
            assert_eq!(altered.len(), API_KEY_TEXT_BYTES);
            assert!(ApiKeySecret::parse(&altered).is_err(), "offset {at}");
        }
        let all_wide = "é".repeat(API_KEY_TEXT_BYTES / 2);
        assert_eq!(all_wide.len(), API_KEY_TEXT_BYTES);
        assert!(ApiKeySecret::parse(&all_wide).is_err());
    }
}
