//! C2SP tlog-cosignature (<https://c2sp.org/tlog-cosignature>), Ed25519 type `0x04`
//! (`cosignature/v1`): a witness's timestamped statement that a checkpoint is the largest
//! consistent tree head it has seen for the log.
//!
//! A cosignature is a signed-note signature line on the checkpoint:
//! `— <witness name> base64(key id || timestamp (u64, big-endian) || Ed25519 signature)`, where
//! the key id is `SHA-256(name || 0x0A || 0x04 || public key)[..4]` and the signature covers
//! `"cosignature/v1\ntime <timestamp>\n" || the checkpoint's note text`. A witness key is shared
//! as the vkey `<name>+<8 hex key id>+<base64(0x04 || public key)>`.
//!
//! Only Ed25519 cosignatures are produced and checked (the spec recommends ML-DSA-44 for new
//! deployments; the Ed25519 type is the one today's witness network speaks, and needs no new
//! cryptography). Lines from other keys or of other types are ignored, as the spec requires.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};

use crate::note::{KeyNameError, Note, NoteKeyId, check_key_name};

/// The signature type byte of an Ed25519 cosignature (`cosignature/v1`).
pub const SIGNATURE_TYPE_COSIGNATURE_V1: u8 = 0x04;

/// Largest timestamp a cosignature may carry (2^63 − 1).
pub const TIMESTAMP_MAX: u64 = i64::MAX as u64;

/// Bytes of a cosignature's signature field: key id, timestamp, Ed25519 signature.
const COSIGNATURE_BYTES: usize = 4 + 8 + 64;

/// Errors from parsing or building a [`WitnessKey`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessKeyError {
    /// The text is not three `+`-separated fields.
    #[error("a witness key has the form <name>+<8 hex digits>+<base64(0x04 || key)>")]
    Malformed,
    /// The name breaks the key name rules.
    #[error("invalid witness name: {0}")]
    Name(#[from] KeyNameError),
    /// The key id is not eight lower-case hex digits.
    #[error("the key id of a witness key must be exactly 8 lower-case hex digits")]
    KeyIdNotHex,
    /// The key field is not standard base64.
    #[error("the public key of a witness key is not valid standard base64")]
    Base64,
    /// The key is not of type 0x04 (Ed25519 cosignature/v1).
    #[error(
        "unsupported witness key type {0:#04x}; only Ed25519 cosignature/v1 (0x04) is supported"
    )]
    UnsupportedType(u8),
    /// The key is not a valid, strong Ed25519 public key of 32 bytes.
    #[error("not a valid Ed25519 public key")]
    InvalidPublicKey,
    /// The stated key id is not the one derived from name and key.
    #[error("key id {stated} does not match the id {derived} derived from the name and key")]
    KeyIdMismatch {
        /// The id written in the vkey.
        stated: NoteKeyId,
        /// The id derived from the name and public key.
        derived: NoteKeyId,
    },
}

/// The key id of an Ed25519 cosigner: `SHA-256(name || 0x0A || 0x04 || public key)[..4]`.
pub fn cosigner_key_id(name: &str, public_key: &VerifyingKey) -> NoteKeyId {
    let digest = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update([b'\n', SIGNATURE_TYPE_COSIGNATURE_V1])
        .chain_update(public_key.as_bytes())
        .finalize();
    NoteKeyId::from_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// A trusted witness: its name, key id and Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessKey {
    name: String,
    key_id: NoteKeyId,
    key: VerifyingKey,
}

impl WitnessKey {
    /// A witness key from a name and a public key.
    ///
    /// # Errors
    /// [`WitnessKeyError::Name`] for a bad name, [`WitnessKeyError::InvalidPublicKey`] for a
    /// small-order key.
    pub fn new(name: &str, key: VerifyingKey) -> Result<Self, WitnessKeyError> {
        check_key_name(name)?;
        if key.is_weak() {
            return Err(WitnessKeyError::InvalidPublicKey);
        }
        Ok(WitnessKey {
            name: name.to_owned(),
            key_id: cosigner_key_id(name, &key),
            key,
        })
    }

    /// Parses `<name>+<8 hex key id>+<base64(0x04 || 32-byte public key)>`.
    ///
    /// # Errors
    /// A [`WitnessKeyError`] naming the first field that is wrong.
    pub fn parse(vkey: &str) -> Result<Self, WitnessKeyError> {
        let (name, rest) = vkey.split_once('+').ok_or(WitnessKeyError::Malformed)?;
        let (id_hex, key_base64) = rest.split_once('+').ok_or(WitnessKeyError::Malformed)?;
        check_key_name(name)?;
        let mut stated = [0u8; 4];
        crate::types::decode_lower_hex(id_hex, &mut stated)
            .map_err(|_| WitnessKeyError::KeyIdNotHex)?;
        let raw = STANDARD
            .decode(key_base64)
            .map_err(|_| WitnessKeyError::Base64)?;
        let (&kind, public_key) = raw.split_first().ok_or(WitnessKeyError::Malformed)?;
        if kind != SIGNATURE_TYPE_COSIGNATURE_V1 {
            return Err(WitnessKeyError::UnsupportedType(kind));
        }
        let public_key =
            <[u8; 32]>::try_from(public_key).map_err(|_| WitnessKeyError::InvalidPublicKey)?;
        let key = crate::keys::strict_verifying_key(&public_key)
            .map_err(|_| WitnessKeyError::InvalidPublicKey)?;
        let witness = WitnessKey::new(name, key)?;
        let stated = NoteKeyId::from_bytes(stated);
        if witness.key_id != stated {
            return Err(WitnessKeyError::KeyIdMismatch {
                stated,
                derived: witness.key_id,
            });
        }
        Ok(witness)
    }

    /// The witness's name (its key name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id.
    pub fn key_id(&self) -> NoteKeyId {
        self.key_id
    }

    /// The Ed25519 public key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }
}

impl fmt::Display for WitnessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut raw = [0u8; 33];
        raw[0] = SIGNATURE_TYPE_COSIGNATURE_V1;
        raw[1..].copy_from_slice(self.key.as_bytes());
        write!(f, "{}+{}+{}", self.name, self.key_id, STANDARD.encode(raw))
    }
}

/// The message an Ed25519 cosignature signs: `cosignature/v1`, the time line, the note text.
pub fn cosigned_message(timestamp: u64, note_text: &str) -> Vec<u8> {
    let mut message = format!("cosignature/v1\ntime {timestamp}\n").into_bytes();
    message.extend_from_slice(note_text.as_bytes());
    message
}

/// Why a cosignature could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CosignError {
    /// The name breaks the key name rules.
    #[error("invalid witness name: {0}")]
    Name(#[from] KeyNameError),
    /// The timestamp is zero or above 2^63 − 1.
    #[error("a cosignature's timestamp must be between 1 and 2^63 - 1, got {0}")]
    Timestamp(u64),
}

/// The cosignature line (newline-terminated) of witness `name` with `key` over the checkpoint
/// whose note text is `note_text`, at `timestamp` (POSIX seconds).
///
/// # Errors
/// [`CosignError`] for a bad name or a timestamp of zero or above 2^63 − 1.
pub fn cosign(
    name: &str,
    key: &SigningKey,
    note_text: &str,
    timestamp: u64,
) -> Result<String, CosignError> {
    check_key_name(name)?;
    if timestamp == 0 || timestamp > TIMESTAMP_MAX {
        return Err(CosignError::Timestamp(timestamp));
    }
    let signature = key.sign(&cosigned_message(timestamp, note_text));
    let mut raw = [0u8; COSIGNATURE_BYTES];
    raw[..4].copy_from_slice(cosigner_key_id(name, &key.verifying_key()).as_bytes());
    raw[4..12].copy_from_slice(&timestamp.to_be_bytes());
    raw[12..].copy_from_slice(&signature.to_bytes());
    Ok(format!("\u{2014} {name} {}\n", STANDARD.encode(raw)))
}

/// A valid cosignature found on a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosignature {
    /// The witness's name.
    pub name: String,
    /// The witness key's id.
    pub key_id: NoteKeyId,
    /// When the witness cosigned (POSIX seconds).
    pub timestamp: u64,
    /// The trusted key whose signature verified: two trusted keys may share a name and a
    /// 4-byte key id, and a quorum counts the key, never the name.
    pub key: VerifyingKey,
}

/// The valid cosignatures on `note` by the witnesses in `trusted`, at most one per witness key
/// (the earliest timestamp if a key cosigned twice). Lines of other keys or types, and lines of a
/// trusted key that do not verify, are not counted. A line is checked against every trusted key
/// with its name and key id, and credited to the one whose signature verifies.
pub fn verify_cosignatures(note: &Note, trusted: &[WitnessKey]) -> Vec<Cosignature> {
    let mut found: Vec<Cosignature> = Vec::new();
    for line in note.signatures() {
        // The parsed signature field excludes the 4-byte key id.
        let bytes = line.signature_bytes();
        if bytes.len() != COSIGNATURE_BYTES - 4 {
            continue;
        }
        let mut time = [0u8; 8];
        time.copy_from_slice(&bytes[..8]);
        let timestamp = u64::from_be_bytes(time);
        let Ok(signature) = <[u8; 64]>::try_from(&bytes[8..]) else {
            continue;
        };
        if timestamp == 0 || timestamp > TIMESTAMP_MAX {
            continue;
        }
        let message = cosigned_message(timestamp, note.text());
        let signature = Signature::from_bytes(&signature);
        let Some(witness) = trusted.iter().find(|w| {
            w.name == line.name()
                && w.key_id == line.key_id()
                && w.key.verify_strict(&message, &signature).is_ok()
        }) else {
            continue;
        };
        match found.iter_mut().find(|c| c.key == witness.key) {
            Some(c) => c.timestamp = c.timestamp.min(timestamp),
            None => found.push(Cosignature {
                name: witness.name.clone(),
                key_id: witness.key_id,
                timestamp,
                key: witness.key,
            }),
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str =
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

    fn log_signed() -> String {
        let log = SigningKey::from_bytes(&[1; 32]);
        let signer =
            crate::note::NoteSigner::new("example.com/behind-the-sofa", &log).expect("name");
        crate::note::sign_note(TEXT, &[signer]).expect("signed")
    }

    #[test]
    fn the_signed_message_is_the_spec_s_example() {
        // c2sp.org/tlog-cosignature, "Ed25519 signed message".
        assert_eq!(
            String::from_utf8(cosigned_message(1_679_315_147, TEXT)).expect("utf-8"),
            "cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
        );
    }

    #[test]
    fn two_trusted_keys_sharing_a_name_and_key_id_are_each_credited_only_with_their_own_lines() {
        // A hostile witness that took an honest one's name and found a key with the same 4-byte
        // id: its line must not count for the honest key, nor hide the honest key's line.
        let name = "witness.example.com/w1";
        let honest = SigningKey::from_bytes(&[2; 32]);
        let hostile = SigningKey::from_bytes(&[3; 32]);
        let honest_key = WitnessKey::new(name, honest.verifying_key()).expect("key");
        let forged = WitnessKey {
            name: name.to_owned(),
            key_id: honest_key.key_id(),
            key: hostile.verifying_key(),
        };
        let trusted = [forged, honest_key.clone()];
        let hostile_line = cosign(name, &hostile, TEXT, 1_679_315_147).expect("cosigned");
        // The line carries the hostile key's own id; give it the honest id, as the search would.
        let (head, tail) = hostile_line.split_at(hostile_line.rfind(' ').expect("space") + 1);
        let mut raw = STANDARD.decode(tail.trim_end()).expect("base64");
        raw[..4].copy_from_slice(honest_key.key_id().as_bytes());
        let hostile_line = format!("{head}{}\n", STANDARD.encode(raw));
        let note =
            Note::parse(format!("{}{hostile_line}", log_signed()).as_bytes()).expect("a note");
        let found = verify_cosignatures(&note, &trusted);
        assert_eq!(found.len(), 1, "one line, one key");
        assert_eq!(found[0].key, hostile.verifying_key());
        assert_ne!(found[0].key, honest.verifying_key());
        // The honest key's line is found although the hostile entry comes first.
        let honest_line = cosign(name, &honest, TEXT, 1_679_315_148).expect("cosigned");
        let note =
            Note::parse(format!("{}{honest_line}", log_signed()).as_bytes()).expect("a note");
        let found = verify_cosignatures(&note, &trusted);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].key, honest.verifying_key());
    }

    #[test]
    fn a_cosignature_verifies_with_its_witness_key_only() {
        let key = SigningKey::from_bytes(&[2; 32]);
        let witness = WitnessKey::new("witness.example.com/w1", key.verifying_key()).expect("key");
        let line = cosign("witness.example.com/w1", &key, TEXT, 1_679_315_147).expect("cosigned");
        let note = Note::parse(format!("{}{line}", log_signed()).as_bytes()).expect("a note");
        let found = verify_cosignatures(&note, std::slice::from_ref(&witness));
        assert_eq!(
            found,
            vec![Cosignature {
                name: "witness.example.com/w1".into(),
                key_id: witness.key_id(),
                timestamp: 1_679_315_147,
                key: key.verifying_key(),
            }]
        );
        // Another witness's key finds nothing; the log's own signature is not a cosignature.
        let other = WitnessKey::new(
            "witness.example.com/w1",
            SigningKey::from_bytes(&[3; 32]).verifying_key(),
        )
        .expect("key");
        assert!(verify_cosignatures(&note, &[other]).is_empty());
        // A changed timestamp or checkpoint breaks it.
        let forged = line.replace(&line[line.len() - 90..line.len() - 80], &"A".repeat(10));
        let note = Note::parse(format!("{}{forged}", log_signed()).as_bytes()).expect("a note");
        assert!(verify_cosignatures(&note, std::slice::from_ref(&witness)).is_empty());
        let moved = log_signed().replace("20852163", "20852164");
        let note = Note::parse(format!("{moved}{line}").as_bytes()).expect("a note");
        assert!(verify_cosignatures(&note, &[witness]).is_empty());
    }

    #[test]
    fn witness_keys_round_trip_and_bad_ones_are_refused() {
        let key = SigningKey::from_bytes(&[2; 32]).verifying_key();
        let witness = WitnessKey::new("witness.example.com/w1", key).expect("key");
        let text = witness.to_string();
        assert!(text.starts_with(&format!("witness.example.com/w1+{}+B", witness.key_id())));
        assert_eq!(WitnessKey::parse(&text), Ok(witness.clone()));
        // The checkpoint (0x01) form of the same key is not a witness key.
        let note_key = crate::note::VerifierKey::new("witness.example.com/w1", key)
            .expect("key")
            .to_string();
        assert!(matches!(
            WitnessKey::parse(&note_key),
            Err(WitnessKeyError::UnsupportedType(1) | WitnessKeyError::KeyIdMismatch { .. })
        ));
        assert!(WitnessKey::parse("no-plus-signs").is_err());
        let wrong_id = text.replacen(&witness.key_id().to_string(), "00000000", 1);
        assert!(matches!(
            WitnessKey::parse(&wrong_id),
            Err(WitnessKeyError::KeyIdMismatch { .. })
        ));
    }

    #[test]
    fn timestamps_of_zero_or_beyond_2_63_are_not_signed() {
        let key = SigningKey::from_bytes(&[2; 32]);
        assert_eq!(cosign("w", &key, TEXT, 0), Err(CosignError::Timestamp(0)));
        assert!(cosign("w", &key, TEXT, TIMESTAMP_MAX + 1).is_err());
        assert!(cosign("w", &key, TEXT, TIMESTAMP_MAX).is_ok());
    }
}
