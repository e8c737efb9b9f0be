//! C2SP signed notes (<https://c2sp.org/signed-note>) with Ed25519 signatures.
//!
//! A signed note is UTF-8 text that ends in a newline, then a blank line, then one or more
//! signature lines of the form `— <key name> <base64(key id || signature)>`. Auditex publishes
//! its checkpoints as signed notes so that a regulator can check them with any independent
//! implementation of the C2SP formats, not only with ours.
//!
//! Only signature type `0x01` (Ed25519 over the note text) is produced or verified. Signature
//! lines of other types, or from keys the verifier does not know, are parsed for syntax and then
//! ignored, as the specification requires. The key id of an Ed25519 key is the first four bytes
//! of `SHA-256(key name || 0x0A || 0x01 || public key)`, and a verifier key is shared as the text
//! `<name>+<8 hex digits of key id>+<base64(0x01 || public key)>`.
//!
//! Parsing is strict: a note that another implementation might accept leniently (non-canonical
//! base64, a carriage return, a trailing blank line) is rejected here, because a verifier that
//! accepts more than the signer produces widens the attack surface for no benefit.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};

/// Largest signed note accepted or produced, in bytes.
///
/// The specification asks verifiers to bound notes and to accept at least 16 signatures of up to
/// about 5 kB each (post-quantum cosignatures); 256 KiB leaves room for that plus the text.
pub const NOTE_BYTES_MAX: usize = 256 * 1024;

/// Largest number of signature lines accepted or produced in one note (known and unknown keys
/// together). The specification requires at least 16; the Go reference implementation stops at
/// 100, and so do we.
pub const SIGNATURE_LINES_MAX: usize = 100;

/// The signature type identifier byte of Ed25519 signatures over the note text.
pub const SIGNATURE_TYPE_ED25519: u8 = 0x01;

/// Length of a key id, in bytes.
pub const NOTE_KEY_ID_BYTES: usize = 4;

/// Length of an Ed25519 signature, in bytes.
const ED25519_SIGNATURE_BYTES: usize = 64;

/// Length of an Ed25519 public key, in bytes.
const ED25519_PUBLIC_KEY_BYTES: usize = 32;

/// Every signature line starts with an em dash (U+2014) and a space.
const SIGNATURE_LINE_PREFIX: &str = "\u{2014} ";

/// The 32-bit identifier that, together with the key name, selects the key of a signature line.
///
/// It is a hint, not a cryptographic commitment: a colliding id only leads to a failed
/// signature check, because the verifier already holds the public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NoteKeyId([u8; NOTE_KEY_ID_BYTES]);

impl NoteKeyId {
    /// Wraps four bytes (big-endian order, as they appear on the wire).
    pub const fn from_bytes(bytes: [u8; NOTE_KEY_ID_BYTES]) -> Self {
        NoteKeyId(bytes)
    }

    /// Borrows the four bytes.
    pub const fn as_bytes(&self) -> &[u8; NOTE_KEY_ID_BYTES] {
        &self.0
    }

    /// Eight lowercase hex digits, the form used in verifier keys.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for NoteKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NoteKeyId({})", self.to_hex())
    }
}

impl fmt::Display for NoteKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Derives the key id of an Ed25519 key: the first four bytes of
/// `SHA-256(name || 0x0A || 0x01 || public key)`.
///
/// The name is hashed as given; callers that build keys go through [`VerifierKey::new`] or
/// [`NoteSigner::new`], which check the name first.
pub fn ed25519_key_id(name: &str, public_key: &VerifyingKey) -> NoteKeyId {
    let digest = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update([b'\n', SIGNATURE_TYPE_ED25519])
        .chain_update(public_key.as_bytes())
        .finalize();
    let mut id = [0u8; NOTE_KEY_ID_BYTES];
    id.copy_from_slice(&digest[..NOTE_KEY_ID_BYTES]);
    NoteKeyId(id)
}

/// Why a key name was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyNameError {
    /// The name is the empty string.
    #[error("key name is empty")]
    Empty,
    /// The name contains `+`, which separates the fields of a verifier key.
    #[error("key name contains '+'")]
    Plus,
    /// The name contains a Unicode space, which would split a signature line.
    #[error("key name contains a Unicode space")]
    Space,
    /// The name contains an ASCII control character, which no signed note may contain.
    #[error("key name contains an ASCII control character")]
    ControlCharacter,
}

/// Checks the key name rules: non-empty, no `+`, no Unicode space, no ASCII control character.
///
/// The last rule is ours: the specification forbids control characters anywhere in a note, so a
/// name that contains one could never appear in a valid signature line.
pub(crate) fn check_key_name(name: &str) -> Result<(), KeyNameError> {
    if name.is_empty() {
        return Err(KeyNameError::Empty);
    }
    for c in name.chars() {
        if c == '+' {
            return Err(KeyNameError::Plus);
        }
        if c.is_whitespace() {
            return Err(KeyNameError::Space);
        }
        if u32::from(c) < 0x20 {
            return Err(KeyNameError::ControlCharacter);
        }
    }
    Ok(())
}

/// Byte offset of the first ASCII control character other than newline, if any.
///
/// Scanning bytes is sound for UTF-8 text: every byte of a multi-byte sequence is at least 0x80.
pub(crate) fn find_control_character(text: &str) -> Option<usize> {
    text.bytes().position(|b| b < 0x20 && b != b'\n')
}

/// Errors from parsing or building a [`VerifierKey`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifierKeyError {
    /// The text is not three `+`-separated fields.
    #[error("verifier key must have the form <name>+<8 hex digits>+<base64 key>")]
    Malformed,
    /// The name breaks the key name rules.
    #[error("invalid key name in verifier key: {0}")]
    Name(#[from] KeyNameError),
    /// The key id field is not exactly eight hex digits.
    #[error("key id of a verifier key must be exactly 8 hex digits")]
    KeyIdNotHex,
    /// The key field is not canonical, padded standard base64.
    #[error("public key of a verifier key is not valid standard base64")]
    Base64,
    /// The key field decodes to nothing, so it has no signature type byte.
    #[error("verifier key has no signature type byte")]
    MissingSignatureType,
    /// The signature type is not Ed25519 (0x01), the only one Auditex supports.
    #[error("unsupported signature type {0:#04x}; only Ed25519 (0x01) is supported")]
    UnsupportedSignatureType(u8),
    /// The public key is not 32 bytes long.
    #[error("an Ed25519 public key is 32 bytes, got {0}")]
    PublicKeyLength(usize),
    /// The 32 bytes are not the encoding of a curve point.
    #[error("not a valid Ed25519 public key")]
    InvalidPublicKey,
    /// The public key has small order, so signatures under it prove nothing.
    #[error("Ed25519 public key has small order")]
    WeakPublicKey,
    /// The key id in the text is not the one derived from the name and the key.
    #[error("key id {stated} does not match the id {derived} derived from the name and key")]
    KeyIdMismatch {
        /// The id written in the verifier key.
        stated: NoteKeyId,
        /// The id derived from the name and public key.
        derived: NoteKeyId,
    },
}

/// A trusted Ed25519 public key with its name and key id, as a verifier holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    key_id: NoteKeyId,
    key: VerifyingKey,
}

impl VerifierKey {
    /// Builds a verifier key from a name and a public key, deriving the key id.
    ///
    /// # Errors
    /// [`VerifierKeyError::Name`] when the name breaks the key name rules, and
    /// [`VerifierKeyError::WeakPublicKey`] for a small-order public key.
    pub fn new(name: &str, key: VerifyingKey) -> Result<Self, VerifierKeyError> {
        check_key_name(name)?;
        if key.is_weak() {
            return Err(VerifierKeyError::WeakPublicKey);
        }
        Ok(VerifierKey {
            name: name.to_owned(),
            key_id: ed25519_key_id(name, &key),
            key,
        })
    }

    /// Parses the text form `<name>+<8 hex key id>+<base64(0x01 || 32-byte public key)>`.
    ///
    /// # Errors
    /// A [`VerifierKeyError`] naming the first field that is wrong; in particular
    /// [`VerifierKeyError::KeyIdMismatch`] when the stated key id is not the derived one.
    pub fn parse(vkey: &str) -> Result<Self, VerifierKeyError> {
        // The name cannot contain '+' and the id is hex, so the first two '+' are the
        // separators; the base64 field may itself contain '+'.
        let (name, rest) = vkey.split_once('+').ok_or(VerifierKeyError::Malformed)?;
        let (id_hex, key_base64) = rest.split_once('+').ok_or(VerifierKeyError::Malformed)?;
        check_key_name(name)?;
        let mut stated = [0u8; NOTE_KEY_ID_BYTES];
        crate::types::decode_lower_hex(id_hex, &mut stated)
            .map_err(|_| VerifierKeyError::KeyIdNotHex)?;
        let stated = NoteKeyId(stated);
        let raw = STANDARD
            .decode(key_base64)
            .map_err(|_| VerifierKeyError::Base64)?;
        let (&signature_type, public_key) = raw
            .split_first()
            .ok_or(VerifierKeyError::MissingSignatureType)?;
        if signature_type != SIGNATURE_TYPE_ED25519 {
            return Err(VerifierKeyError::UnsupportedSignatureType(signature_type));
        }
        let public_key = <[u8; ED25519_PUBLIC_KEY_BYTES]>::try_from(public_key)
            .map_err(|_| VerifierKeyError::PublicKeyLength(public_key.len()))?;
        let key = crate::keys::strict_verifying_key(&public_key).map_err(|e| match e {
            crate::keys::PublicKeyError::SmallOrder => VerifierKeyError::WeakPublicKey,
            _ => VerifierKeyError::InvalidPublicKey,
        })?;
        let verifier = VerifierKey::new(name, key)?;
        if verifier.key_id != stated {
            return Err(VerifierKeyError::KeyIdMismatch {
                stated,
                derived: verifier.key_id,
            });
        }
        Ok(verifier)
    }

    /// The key name (for an Auditex log key, the checkpoint origin).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id derived from the name and the public key.
    pub fn key_id(&self) -> NoteKeyId {
        self.key_id
    }

    /// The Ed25519 public key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Whether `signature` (without the key id prefix) is a valid Ed25519 signature of `text`.
    ///
    /// Verification is strict (RFC 8032 with canonical encodings, no small-order components);
    /// every signature that an honest signer produces passes it.
    fn verifies(&self, text: &[u8], signature: &[u8]) -> bool {
        let Ok(signature) = <[u8; ED25519_SIGNATURE_BYTES]>::try_from(signature) else {
            return false;
        };
        self.key
            .verify_strict(text, &Signature::from_bytes(&signature))
            .is_ok()
    }
}

impl fmt::Display for VerifierKey {
    /// Writes the verifier key text `<name>+<key id hex>+<base64(0x01 || public key)>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut raw = [0u8; 1 + ED25519_PUBLIC_KEY_BYTES];
        raw[0] = SIGNATURE_TYPE_ED25519;
        raw[1..].copy_from_slice(self.key.as_bytes());
        write!(f, "{}+{}+{}", self.name, self.key_id, STANDARD.encode(raw))
    }
}

impl FromStr for VerifierKey {
    type Err = VerifierKeyError;

    fn from_str(vkey: &str) -> Result<Self, Self::Err> {
        VerifierKey::parse(vkey)
    }
}

/// A named Ed25519 signing key that signs notes.
///
/// It borrows the secret key rather than copying it, so the caller keeps sole control of where
/// the secret lives and when it is zeroized.
#[derive(Clone)]
pub struct NoteSigner<'k> {
    name: String,
    key_id: NoteKeyId,
    key: &'k SigningKey,
}

impl<'k> NoteSigner<'k> {
    /// Pairs a key name with a signing key, deriving the key id.
    ///
    /// # Errors
    /// [`KeyNameError`] when the name breaks the key name rules.
    pub fn new(name: &str, key: &'k SigningKey) -> Result<Self, KeyNameError> {
        check_key_name(name)?;
        Ok(NoteSigner {
            name: name.to_owned(),
            key_id: ed25519_key_id(name, &key.verifying_key()),
            key,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id derived from the name and the public key.
    pub fn key_id(&self) -> NoteKeyId {
        self.key_id
    }

    /// The verifier key that checks this signer's signatures.
    pub fn verifier_key(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }
}

impl fmt::Debug for NoteSigner<'_> {
    // Written by hand so that no part of the secret key can reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// Errors from [`sign_note`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignNoteError {
    /// The text does not end in a newline (this includes the empty text).
    #[error("note text must end with a newline")]
    MissingFinalNewline,
    /// The text contains an ASCII control character other than newline (for example `\r`).
    #[error("note text contains an ASCII control character at byte {offset}")]
    ControlCharacter {
        /// Byte offset of the character in the text.
        offset: usize,
    },
    /// No signer was given; a note needs at least one signature line.
    #[error("a signed note needs at least one signer")]
    NoSigners,
    /// More signers than [`SIGNATURE_LINES_MAX`].
    #[error("{count} signers is more than the {max} signature lines a note may carry")]
    TooManySigners {
        /// Number of signers given.
        count: usize,
        /// [`SIGNATURE_LINES_MAX`].
        max: usize,
    },
    /// Two signers share a name and key id; verifiers reject such a note.
    #[error("signer {name} with key id {key_id} appears twice")]
    DuplicateSigner {
        /// The repeated key name.
        name: String,
        /// The repeated key id.
        key_id: NoteKeyId,
    },
    /// The signed note would be longer than [`NOTE_BYTES_MAX`].
    #[error("signed note would be {bytes} bytes, more than the maximum {max}")]
    TooLarge {
        /// Length of the note (or of the text alone, if that is already too long).
        bytes: usize,
        /// [`NOTE_BYTES_MAX`].
        max: usize,
    },
}

/// Signs `text` with every signer and returns the signed note:
/// `text + "\n" + one "— <name> <base64(key id || signature)>\n" line per signer`.
///
/// # Errors
/// [`SignNoteError`] when the text is not valid note text (it must end in a newline and contain
/// no ASCII control character other than newline), when there are no signers, too many, or two
/// with the same name and key id, or when the note would exceed [`NOTE_BYTES_MAX`].
pub fn sign_note(text: &str, signers: &[NoteSigner<'_>]) -> Result<String, SignNoteError> {
    if text.len() > NOTE_BYTES_MAX {
        return Err(SignNoteError::TooLarge {
            bytes: text.len(),
            max: NOTE_BYTES_MAX,
        });
    }
    if !text.ends_with('\n') {
        return Err(SignNoteError::MissingFinalNewline);
    }
    if let Some(offset) = find_control_character(text) {
        return Err(SignNoteError::ControlCharacter { offset });
    }
    if signers.is_empty() {
        return Err(SignNoteError::NoSigners);
    }
    if signers.len() > SIGNATURE_LINES_MAX {
        return Err(SignNoteError::TooManySigners {
            count: signers.len(),
            max: SIGNATURE_LINES_MAX,
        });
    }
    for (i, signer) in signers.iter().enumerate() {
        let repeated = signers[..i]
            .iter()
            .any(|earlier| earlier.name == signer.name && earlier.key_id == signer.key_id);
        if repeated {
            return Err(SignNoteError::DuplicateSigner {
                name: signer.name.clone(),
                key_id: signer.key_id,
            });
        }
    }

    let mut note = String::with_capacity(text.len() + 1 + signers.len() * 128);
    note.push_str(text);
    note.push('\n');
    for signer in signers {
        let signature = signer.key.sign(text.as_bytes());
        let mut raw = [0u8; NOTE_KEY_ID_BYTES + ED25519_SIGNATURE_BYTES];
        raw[..NOTE_KEY_ID_BYTES].copy_from_slice(signer.key_id.as_bytes());
        raw[NOTE_KEY_ID_BYTES..].copy_from_slice(&signature.to_bytes());
        note.push_str(SIGNATURE_LINE_PREFIX);
        note.push_str(&signer.name);
        note.push(' ');
        note.push_str(&STANDARD.encode(raw));
        note.push('\n');
    }
    if note.len() > NOTE_BYTES_MAX {
        return Err(SignNoteError::TooLarge {
            bytes: note.len(),
            max: NOTE_BYTES_MAX,
        });
    }
    Ok(note)
}

/// Why one signature line was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureLineError {
    /// The line does not start with an em dash (U+2014) and a space.
    #[error("does not start with an em dash (U+2014) and a space")]
    Prefix,
    /// There is no space between the key name and the signature.
    #[error("has no space between the key name and the signature")]
    MissingSignature,
    /// The key name breaks the key name rules.
    #[error("has an invalid key name: {0}")]
    Name(KeyNameError),
    /// The signature is not canonical, padded standard base64.
    #[error("has a signature that is not valid standard base64")]
    Base64,
    /// The signature decodes to fewer than five bytes (a key id and at least one byte).
    #[error("has a signature of {bytes} bytes; at least 5 are needed")]
    TooShort {
        /// Decoded length.
        bytes: usize,
    },
}

/// Errors from [`Note::parse`]: the bytes are not a well-formed signed note.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseNoteError {
    /// The note is longer than [`NOTE_BYTES_MAX`].
    #[error("signed note is {bytes} bytes, more than the maximum {max}")]
    TooLarge {
        /// Length of the input.
        bytes: usize,
        /// [`NOTE_BYTES_MAX`].
        max: usize,
    },
    /// The note is not valid UTF-8.
    #[error("signed note is not valid UTF-8")]
    NotUtf8,
    /// The note contains an ASCII control character other than newline (for example `\r`).
    #[error("signed note contains an ASCII control character at byte {offset}")]
    ControlCharacter {
        /// Byte offset of the character in the input.
        offset: usize,
    },
    /// There is no blank line separating the text from the signatures.
    #[error("signed note has no blank line between the text and the signatures")]
    MissingSeparator,
    /// Nothing follows the last blank line.
    #[error("signed note has no signature lines after its last blank line")]
    NoSignatures,
    /// The last signature line does not end with a newline.
    #[error("the last signature line does not end with a newline")]
    UnterminatedSignatureLine,
    /// More than [`SIGNATURE_LINES_MAX`] signature lines.
    #[error("signed note has more than {max} signature lines")]
    TooManySignatures {
        /// [`SIGNATURE_LINES_MAX`].
        max: usize,
    },
    /// A signature line is malformed.
    #[error("signature line {line} {reason}")]
    SignatureLine {
        /// 1-based position among the signature lines.
        line: usize,
        /// What is wrong with it.
        reason: SignatureLineError,
    },
}

/// One signature line of a note, parsed but not verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    name: String,
    key_id: NoteKeyId,
    signature: Vec<u8>,
}

impl NoteSignature {
    /// The key name on the line.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id (the first four decoded bytes).
    pub fn key_id(&self) -> NoteKeyId {
        self.key_id
    }

    /// The signature bytes after the key id (64 bytes for a well-formed Ed25519 signature; other
    /// lengths are kept because lines from unknown keys may use other algorithms).
    pub fn signature_bytes(&self) -> &[u8] {
        &self.signature
    }
}

/// A syntactically valid signed note whose signatures have not been checked yet.
///
/// The text must not be trusted until [`verify_note`] succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    text: String,
    signatures: Vec<NoteSignature>,
}

impl Note {
    /// Splits a signed note into its text and its signature lines.
    ///
    /// The text is everything up to and including the newline before the *last* blank line, so
    /// the text may itself contain blank lines.
    ///
    /// # Errors
    /// [`ParseNoteError`] when the input is longer than [`NOTE_BYTES_MAX`], is not UTF-8,
    /// contains an ASCII control character other than newline, has no blank line, no signature
    /// lines, more than [`SIGNATURE_LINES_MAX`] of them, or a malformed one.
    pub fn parse(bytes: &[u8]) -> Result<Note, ParseNoteError> {
        if bytes.len() > NOTE_BYTES_MAX {
            return Err(ParseNoteError::TooLarge {
                bytes: bytes.len(),
                max: NOTE_BYTES_MAX,
            });
        }
        let message = std::str::from_utf8(bytes).map_err(|_| ParseNoteError::NotUtf8)?;
        if let Some(offset) = find_control_character(message) {
            return Err(ParseNoteError::ControlCharacter { offset });
        }
        let split = message
            .rfind("\n\n")
            .ok_or(ParseNoteError::MissingSeparator)?;
        // The text keeps its final newline; the second newline is the blank separator line.
        let text = &message[..=split];
        let signature_block = &message[split + 2..];
        if signature_block.is_empty() {
            return Err(ParseNoteError::NoSignatures);
        }
        let lines = signature_block
            .strip_suffix('\n')
            .ok_or(ParseNoteError::UnterminatedSignatureLine)?;

        let mut signatures = Vec::new();
        for (i, line) in lines.split('\n').enumerate() {
            if i == SIGNATURE_LINES_MAX {
                return Err(ParseNoteError::TooManySignatures {
                    max: SIGNATURE_LINES_MAX,
                });
            }
            let signature =
                parse_signature_line(line).map_err(|reason| ParseNoteError::SignatureLine {
                    line: i + 1,
                    reason,
                })?;
            signatures.push(signature);
        }
        Ok(Note {
            text: text.to_owned(),
            signatures,
        })
    }

    /// The note text, including its final newline (the bytes that were signed).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The signature lines in the order they appear.
    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }
}

fn parse_signature_line(line: &str) -> Result<NoteSignature, SignatureLineError> {
    let rest = line
        .strip_prefix(SIGNATURE_LINE_PREFIX)
        .ok_or(SignatureLineError::Prefix)?;
    // A key name contains no space, so the first space ends it.
    let (name, encoded) = rest
        .split_once(' ')
        .ok_or(SignatureLineError::MissingSignature)?;
    check_key_name(name).map_err(SignatureLineError::Name)?;
    let raw = STANDARD
        .decode(encoded)
        .map_err(|_| SignatureLineError::Base64)?;
    if raw.len() <= NOTE_KEY_ID_BYTES {
        return Err(SignatureLineError::TooShort { bytes: raw.len() });
    }
    let (id, signature) = raw.split_at(NOTE_KEY_ID_BYTES);
    let mut key_id = [0u8; NOTE_KEY_ID_BYTES];
    key_id.copy_from_slice(id);
    Ok(NoteSignature {
        name: name.to_owned(),
        key_id: NoteKeyId(key_id),
        signature: signature.to_vec(),
    })
}

/// Errors from [`verify_note`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyNoteError {
    /// A line from a known key (same name and key id) carries an invalid signature; the whole
    /// note is rejected, as the specification recommends.
    #[error("the signature by known key {name} ({key_id}) is invalid")]
    BadSignature {
        /// The key name.
        name: String,
        /// The key id.
        key_id: NoteKeyId,
    },
    /// A known key signed the note twice. The Go reference implementation silently keeps the
    /// first line; we reject, so that a second, possibly invalid, line cannot go unchecked.
    #[error("known key {name} ({key_id}) signed the note more than once")]
    DuplicateSignature {
        /// The key name.
        name: String,
        /// The key id.
        key_id: NoteKeyId,
    },
    /// No signature line is from a known key.
    #[error("the note carries no signature from a known key")]
    NoVerifiedSignature,
}

/// Verifies a parsed note against trusted keys and returns the keys whose signatures verified,
/// in the order of their signature lines.
///
/// A line whose name and key id both match a known key must verify; a line that matches only
/// one of the two, or neither, is from an unknown key and is ignored.
///
/// # Errors
/// [`VerifyNoteError::BadSignature`] when a known key's signature fails,
/// [`VerifyNoteError::DuplicateSignature`] when a known key appears on two lines, and
/// [`VerifyNoteError::NoVerifiedSignature`] when no line is from a known key.
pub fn verify_note<'k>(
    note: &Note,
    known: &'k [VerifierKey],
) -> Result<Vec<&'k VerifierKey>, VerifyNoteError> {
    let mut verified: Vec<&'k VerifierKey> = Vec::new();
    for line in &note.signatures {
        let Some(key) = known
            .iter()
            .find(|key| key.name == line.name && key.key_id == line.key_id)
        else {
            continue;
        };
        if verified
            .iter()
            .any(|seen| seen.name == key.name && seen.key_id == key.key_id)
        {
            return Err(VerifyNoteError::DuplicateSignature {
                name: key.name.clone(),
                key_id: key.key_id,
            });
        }
        if !key.verifies(note.text.as_bytes(), &line.signature) {
            return Err(VerifyNoteError::BadSignature {
                name: key.name.clone(),
                key_id: key.key_id,
            });
        }
        verified.push(key);
    }
    if verified.is_empty() {
        return Err(VerifyNoteError::NoVerifiedSignature);
    }
    Ok(verified)
}
