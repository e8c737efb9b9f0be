//! C2SP checkpoints (<https://c2sp.org/tlog-checkpoint>): the signed tree heads of tenant logs.
//!
//! A checkpoint body is three lines — the log's origin, the tree size in decimal and the base64
//! root hash — followed by optional extension lines; it is published as a signed note (see
//! [`crate::note`]). Every Auditex tenant has its own log whose origin is
//! `<service origin>/<tenant>` (see [`tenant_origin`]), and the log's signing key is named after
//! that origin, so a checkpoint is accepted only when the key named like its origin signed it.
//!
//! Parsing is strict and canonical: for every accepted body, [`Checkpoint::to_body`] gives back
//! the same bytes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::note::{
    self, Note, NoteSigner, ParseNoteError, SignNoteError, VerifierKey, VerifyNoteError,
};
use crate::types::{HASH_BYTES, Hash, TreeSize};

/// Errors from building or parsing a checkpoint body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The body does not end with a newline.
    #[error("checkpoint body does not end with a newline")]
    MissingFinalNewline,
    /// The body contains an ASCII control character other than newline.
    #[error("checkpoint body contains an ASCII control character at byte {offset}")]
    ControlCharacter {
        /// Byte offset in the body.
        offset: usize,
    },
    /// One of the three mandatory lines is missing.
    #[error("checkpoint body has no {line} line")]
    MissingLine {
        /// Which line: "tree size" or "root hash".
        line: &'static str,
    },
    /// The origin is empty or consists only of whitespace.
    #[error("checkpoint origin is empty or only whitespace")]
    EmptyOrigin,
    /// The origin contains an ASCII control character (including a newline).
    #[error("checkpoint origin contains an ASCII control character")]
    OriginControlCharacter,
    /// The tree size is not ASCII decimal without leading zeros that fits in 64 bits.
    #[error("tree size is not a decimal number without leading zeros that fits in 64 bits")]
    InvalidSize,
    /// The root hash is not the padded standard base64 encoding of exactly 32 bytes.
    #[error("root hash is not the padded standard base64 encoding of 32 bytes")]
    InvalidRoot,
    /// An extension line is empty (the specification requires them to be non-empty).
    #[error("extension line {index} is empty")]
    EmptyExtensionLine {
        /// 0-based position among the extension lines.
        index: usize,
    },
    /// An extension line contains an ASCII control character (including a newline).
    #[error("extension line {index} contains an ASCII control character")]
    ExtensionControlCharacter {
        /// 0-based position among the extension lines.
        index: usize,
    },
}

/// A checkpoint body: the log's origin, tree size and root hash, plus opaque extension lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    origin: String,
    size: TreeSize,
    root: Hash,
    extensions: Vec<String>,
}

impl Checkpoint {
    /// Builds a checkpoint without extension lines.
    ///
    /// # Errors
    /// [`CheckpointError::EmptyOrigin`] or [`CheckpointError::OriginControlCharacter`] when the
    /// origin could not be written as the first line of a note.
    pub fn new(
        origin: impl Into<String>,
        size: TreeSize,
        root: Hash,
    ) -> Result<Self, CheckpointError> {
        let origin = origin.into();
        check_origin(&origin)?;
        Ok(Checkpoint {
            origin,
            size,
            root,
            extensions: Vec::new(),
        })
    }

    /// Replaces the extension lines. The specification discourages them (monitors cannot audit
    /// them); Auditex itself writes none.
    ///
    /// # Errors
    /// [`CheckpointError::EmptyExtensionLine`] or [`CheckpointError::ExtensionControlCharacter`]
    /// for a line that could not be written as one non-empty line of a note.
    pub fn with_extensions(mut self, extensions: Vec<String>) -> Result<Self, CheckpointError> {
        for (index, line) in extensions.iter().enumerate() {
            check_extension(index, line)?;
        }
        self.extensions = extensions;
        Ok(self)
    }

    /// The origin line: the identity of the log.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The number of leaves in the tree.
    pub fn size(&self) -> TreeSize {
        self.size
    }

    /// The RFC 6962 root hash of the tree at that size.
    pub fn root(&self) -> Hash {
        self.root
    }

    /// The extension lines, without their newlines.
    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }

    /// The note text: `<origin>\n<size>\n<base64 root>\n` followed by one line per extension.
    pub fn to_body(&self) -> String {
        let mut body = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size.get(),
            STANDARD.encode(self.root.as_bytes())
        );
        for line in &self.extensions {
            body.push_str(line);
            body.push('\n');
        }
        body
    }

    /// Parses a note text as a checkpoint body, strictly: the tree size has no sign, no spaces
    /// and no leading zeros (except `0` itself), the root is exactly 32 bytes in canonical padded
    /// standard base64, and extension lines are non-empty.
    ///
    /// The origin is not required to be a valid key name: the specification tells clients not
    /// to assume its format. It must only be non-empty and not whitespace alone.
    ///
    /// # Errors
    /// A [`CheckpointError`] naming the first line that is wrong.
    pub fn parse_body(body: &str) -> Result<Self, CheckpointError> {
        let content = body
            .strip_suffix('\n')
            .ok_or(CheckpointError::MissingFinalNewline)?;
        if let Some(offset) = note::find_control_character(body) {
            return Err(CheckpointError::ControlCharacter { offset });
        }
        let mut lines = content.split('\n');
        // `split` always yields at least one item, so the origin line is always present (and
        // empty for an empty body, which check_origin rejects).
        let origin = lines.next().unwrap_or_default();
        check_origin(origin)?;
        let size = lines
            .next()
            .ok_or(CheckpointError::MissingLine { line: "tree size" })?;
        let size = parse_decimal_u64(size).ok_or(CheckpointError::InvalidSize)?;
        let root = lines
            .next()
            .ok_or(CheckpointError::MissingLine { line: "root hash" })?;
        let root = decode_hash_base64(root).ok_or(CheckpointError::InvalidRoot)?;
        let mut extensions = Vec::new();
        for (index, line) in lines.enumerate() {
            check_extension(index, line)?;
            extensions.push(line.to_owned());
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size: TreeSize::new(size),
            root,
            extensions,
        })
    }
}

fn check_origin(origin: &str) -> Result<(), CheckpointError> {
    if origin.chars().all(char::is_whitespace) {
        return Err(CheckpointError::EmptyOrigin);
    }
    if origin.bytes().any(|b| b < 0x20) {
        return Err(CheckpointError::OriginControlCharacter);
    }
    Ok(())
}

fn check_extension(index: usize, line: &str) -> Result<(), CheckpointError> {
    if line.is_empty() {
        return Err(CheckpointError::EmptyExtensionLine { index });
    }
    if line.bytes().any(|b| b < 0x20) {
        return Err(CheckpointError::ExtensionControlCharacter { index });
    }
    Ok(())
}

/// Parses ASCII decimal with no sign and no leading zeros (except `"0"`), as the C2SP formats
/// write tree sizes and leaf indexes. `None` for anything else, including overflow.
pub(crate) fn parse_decimal_u64(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if bytes.len() > 1 && bytes[0] == b'0' {
        return None;
    }
    text.parse().ok()
}

/// Decodes one hash written as canonical padded standard base64 (44 characters). `None` for
/// any other length, alphabet, padding or non-zero trailing bits.
pub(crate) fn decode_hash_base64(text: &str) -> Option<Hash> {
    // Checking the length first bounds the work on hostile input.
    if text.len() != HASH_BYTES.div_ceil(3) * 4 {
        return None;
    }
    let bytes = STANDARD.decode(text).ok()?;
    Hash::from_slice(&bytes).ok()
}

/// The checkpoint origin (and log key name) of a tenant's log: `<service_origin>/<tenant>`,
/// for example `auditex.example.com/ledger/acme`.
///
/// Both parts are taken as given; the caller passes a configured service origin and an already
/// validated tenant id. Because the origin is also the key name, [`NoteSigner::new`] rejects it
/// later if it contains a space or `+`.
pub fn tenant_origin(service_origin: &str, tenant: &str) -> String {
    format!("{service_origin}/{tenant}")
}

/// Errors from [`sign_checkpoint`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignCheckpointError {
    /// None of the signers is named like the origin, so verifiers would not accept the note.
    #[error("no signer is named like the checkpoint origin {origin:?}")]
    NoLogSigner {
        /// The checkpoint origin.
        origin: String,
    },
    /// Signing the note failed.
    #[error("cannot sign the checkpoint note: {0}")]
    Note(#[from] SignNoteError),
}

/// Signs a checkpoint and returns the signed note text.
///
/// One signer must be the log's own key, whose name equals the origin; other signers (for
/// example a second key during rotation) add further signature lines.
///
/// # Errors
/// [`SignCheckpointError::NoLogSigner`] when no signer is named like the origin, and
/// [`SignCheckpointError::Note`] when the note cannot be signed (duplicate signers, too many,
/// too long).
pub fn sign_checkpoint(
    checkpoint: &Checkpoint,
    signers: &[NoteSigner<'_>],
) -> Result<String, SignCheckpointError> {
    if !signers
        .iter()
        .any(|signer| signer.name() == checkpoint.origin)
    {
        return Err(SignCheckpointError::NoLogSigner {
            origin: checkpoint.origin.clone(),
        });
    }
    Ok(note::sign_note(&checkpoint.to_body(), signers)?)
}

/// Errors from [`open_checkpoint`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenCheckpointError {
    /// The bytes are not a well-formed signed note.
    #[error("malformed signed note: {0}")]
    Note(#[from] ParseNoteError),
    /// The signatures do not check out against the trusted keys.
    #[error("checkpoint signature check failed: {0}")]
    Signature(#[from] VerifyNoteError),
    /// The signed text is not a well-formed checkpoint body.
    #[error("malformed checkpoint body: {0}")]
    Body(#[from] CheckpointError),
    /// The checkpoint is from another log than the caller expected.
    #[error("checkpoint origin {found:?} is not the expected {expected:?}")]
    OriginMismatch {
        /// The origin the caller asked for.
        expected: String,
        /// The origin in the checkpoint.
        found: String,
    },
    /// The checkpoint has extension lines: an Auditex checkpoint is exactly three lines
    /// (FORMAT.md), so a verifier never has to decide what an extension means.
    #[error(
        "the checkpoint has {count} extension line(s); an Auditex checkpoint is exactly origin, size and root"
    )]
    ExtensionLines {
        /// How many lines follow the root.
        count: usize,
    },
    /// Trusted keys signed the checkpoint, but none of them is the log's key (named like the
    /// origin): for example only a cosigner's key verified.
    #[error("no verified signature is from the log key named {origin:?}")]
    NotSignedByLog {
        /// The checkpoint origin.
        origin: String,
    },
}

/// A checkpoint whose note verified against trusted keys, including the log's own key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    checkpoint: Checkpoint,
    note: Note,
    verified_by: Vec<VerifierKey>,
}

impl VerifiedCheckpoint {
    /// The checkpoint body.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The parsed signed note, including lines from keys that were ignored.
    pub fn note(&self) -> &Note {
        &self.note
    }

    /// The trusted keys whose signatures verified, in the order of their lines.
    pub fn verified_by(&self) -> &[VerifierKey] {
        &self.verified_by
    }

    /// Gives up the note and keeps the checkpoint.
    pub fn into_checkpoint(self) -> Checkpoint {
        self.checkpoint
    }
}

/// Parses and verifies a signed checkpoint.
///
/// The note must verify against `known` (see [`note::verify_note`]), one verified key must be
/// named like the checkpoint's origin, and, when `expected_origin` is given, the origin must be
/// exactly that. The body is parsed only after the signatures verified, as the signed-note
/// specification requires.
///
/// # Errors
/// [`OpenCheckpointError`] saying which of those checks failed.
pub fn open_checkpoint(
    signed_note: &[u8],
    known: &[VerifierKey],
    expected_origin: Option<&str>,
) -> Result<VerifiedCheckpoint, OpenCheckpointError> {
    let note = Note::parse(signed_note)?;
    let verified_by: Vec<VerifierKey> = note::verify_note(&note, known)?
        .into_iter()
        .cloned()
        .collect();
    let checkpoint = Checkpoint::parse_body(note.text())?;
    if !checkpoint.extensions.is_empty() {
        return Err(OpenCheckpointError::ExtensionLines {
            count: checkpoint.extensions.len(),
        });
    }
    if let Some(expected) = expected_origin
        && checkpoint.origin != expected
    {
        return Err(OpenCheckpointError::OriginMismatch {
            expected: expected.to_owned(),
            found: checkpoint.origin,
        });
    }
    if !verified_by
        .iter()
        .any(|key| key.name() == checkpoint.origin)
    {
        return Err(OpenCheckpointError::NotSignedByLog {
            origin: checkpoint.origin,
        });
    }
    Ok(VerifiedCheckpoint {
        checkpoint,
        note,
        verified_by,
    })
}
