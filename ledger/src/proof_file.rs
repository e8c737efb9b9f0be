//! C2SP tlog proofs (<https://c2sp.org/tlog-proof>): the single-record proof file that a
//! regulator downloads and checks offline.
//!
//! The file is a sequence of newline-terminated lines:
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64 opaque data>        (optional)
//! index <leaf index, decimal>
//! <base64 proof hash>               (zero or more, leaf's sibling first)
//!
//! <signed checkpoint note, verbatim>
//! ```
//!
//! This module only formats and parses that layout; it checks that the checkpoint is a
//! well-formed signed note with a well-formed body, but verifies neither the signatures nor the
//! Merkle path. The extra data is not authenticated and must never be trusted on its own.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::checkpoint::{self, Checkpoint, CheckpointError};
use crate::note::{NOTE_BYTES_MAX, Note, ParseNoteError};
use crate::types::{HASH_BYTES, Hash, LeafIndex};

/// The first line of every proof file.
pub const TLOG_PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";

/// Most hashes in an inclusion proof: one per level of a tree of at most 2^64 leaves.
pub const PROOF_HASHES_MAX: usize = 64;

/// Largest extra data accepted or written, in bytes (before base64 encoding).
pub const EXTRA_BYTES_MAX: usize = 64 * 1024;

/// Longest proof file that [`TlogProof::format`] can produce, and so the longest that
/// [`TlogProof::parse`] accepts, in bytes.
pub const TLOG_PROOF_BYTES_MAX: usize = TLOG_PROOF_HEADER.len()
    + 1
    + EXTRA_PREFIX.len()
    + base64_len(EXTRA_BYTES_MAX)
    + 1
    + INDEX_PREFIX.len()
    + U64_DECIMAL_DIGITS_MAX
    + 1
    + PROOF_HASHES_MAX * (base64_len(HASH_BYTES) + 1)
    + 1
    + NOTE_BYTES_MAX;

const EXTRA_PREFIX: &str = "extra ";
const INDEX_PREFIX: &str = "index ";
/// Digits in `u64::MAX` (18446744073709551615).
const U64_DECIMAL_DIGITS_MAX: usize = 20;

/// Length of the padded base64 encoding of `bytes` bytes.
const fn base64_len(bytes: usize) -> usize {
    bytes.div_ceil(3) * 4
}

/// Errors from building or parsing a proof file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlogProofError {
    /// The file is longer than [`TLOG_PROOF_BYTES_MAX`].
    #[error("proof file is {bytes} bytes, more than the maximum {max}")]
    TooLarge {
        /// Length of the input.
        bytes: usize,
        /// [`TLOG_PROOF_BYTES_MAX`].
        max: usize,
    },
    /// The file is not valid UTF-8.
    #[error("proof file is not valid UTF-8")]
    NotUtf8,
    /// The first line is not exactly `c2sp.org/tlog-proof@v1`.
    #[error("proof file does not start with the line {TLOG_PROOF_HEADER:?}")]
    MissingHeader,
    /// The `extra` data is not canonical, padded standard base64.
    #[error("extra data is not valid standard base64")]
    ExtraBase64,
    /// The `extra` data is longer than [`EXTRA_BYTES_MAX`].
    #[error("extra data is {bytes} bytes, more than the maximum {max}")]
    ExtraTooLarge {
        /// Decoded length.
        bytes: usize,
        /// [`EXTRA_BYTES_MAX`].
        max: usize,
    },
    /// The `index` line is missing where it is expected.
    #[error("proof file has no 'index' line after the header")]
    MissingIndex,
    /// The index is not ASCII decimal without leading zeros that fits in 64 bits.
    #[error("leaf index is not a decimal number without leading zeros that fits in 64 bits")]
    InvalidIndex,
    /// A proof line is not one hash in canonical padded standard base64.
    #[error("proof hash {position} is not the padded standard base64 encoding of 32 bytes")]
    InvalidHash {
        /// 0-based position in the proof.
        position: usize,
    },
    /// More than [`PROOF_HASHES_MAX`] proof hashes.
    #[error("inclusion proof has more than {max} hashes")]
    TooManyHashes {
        /// [`PROOF_HASHES_MAX`].
        max: usize,
    },
    /// The file ends before the blank line that precedes the checkpoint.
    #[error("proof file ends before the blank line that precedes the checkpoint")]
    Truncated,
    /// The checkpoint is not a well-formed signed note.
    #[error("checkpoint is not a well-formed signed note: {0}")]
    CheckpointNote(#[from] ParseNoteError),
    /// The checkpoint's note text is not a well-formed checkpoint body.
    #[error("checkpoint body is malformed: {0}")]
    CheckpointBody(#[from] CheckpointError),
}

/// A single-record inclusion proof together with the signed checkpoint it proves against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogProof {
    extra: Option<Vec<u8>>,
    index: LeafIndex,
    proof: Vec<Hash>,
    checkpoint: String,
}

impl TlogProof {
    /// Assembles a proof file from its parts. `checkpoint` is the signed checkpoint note, which
    /// is written verbatim.
    ///
    /// # Errors
    /// [`TlogProofError::ExtraTooLarge`], [`TlogProofError::TooManyHashes`], or
    /// [`TlogProofError::CheckpointNote`] / [`TlogProofError::CheckpointBody`] when the
    /// checkpoint is not a well-formed signed checkpoint.
    pub fn new(
        extra: Option<Vec<u8>>,
        index: LeafIndex,
        proof: Vec<Hash>,
        checkpoint: String,
    ) -> Result<Self, TlogProofError> {
        if let Some(extra) = &extra {
            check_extra_len(extra.len())?;
        }
        if proof.len() > PROOF_HASHES_MAX {
            return Err(TlogProofError::TooManyHashes {
                max: PROOF_HASHES_MAX,
            });
        }
        check_checkpoint(&checkpoint)?;
        Ok(TlogProof {
            extra,
            index,
            proof,
            checkpoint,
        })
    }

    /// The opaque, unauthenticated extra data, if the file has an `extra` line.
    pub fn extra(&self) -> Option<&[u8]> {
        self.extra.as_deref()
    }

    /// The 0-based index of the proven leaf.
    pub fn index(&self) -> LeafIndex {
        self.index
    }

    /// The inclusion proof, from the leaf's sibling up to a child of the root.
    pub fn proof(&self) -> &[Hash] {
        &self.proof
    }

    /// The signed checkpoint note, exactly as it appears in the file.
    pub fn checkpoint(&self) -> &str {
        &self.checkpoint
    }

    /// Writes the proof file.
    pub fn format(&self) -> String {
        let mut out = String::with_capacity(
            TLOG_PROOF_HEADER.len() + 64 + self.proof.len() * 45 + self.checkpoint.len(),
        );
        out.push_str(TLOG_PROOF_HEADER);
        out.push('\n');
        if let Some(extra) = &self.extra {
            out.push_str(EXTRA_PREFIX);
            out.push_str(&STANDARD.encode(extra));
            out.push('\n');
        }
        out.push_str(INDEX_PREFIX);
        out.push_str(&self.index.get().to_string());
        out.push('\n');
        for hash in &self.proof {
            out.push_str(&STANDARD.encode(hash.as_bytes()));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint);
        debug_assert!(out.len() <= TLOG_PROOF_BYTES_MAX);
        out
    }

    /// Parses a proof file strictly: canonical base64 everywhere, no leading zeros in the
    /// index, no carriage returns, at most [`PROOF_HASHES_MAX`] hashes, and a checkpoint that is
    /// a well-formed signed note with a well-formed checkpoint body.
    ///
    /// # Errors
    /// A [`TlogProofError`] naming the first part of the file that is wrong.
    pub fn parse(bytes: &[u8]) -> Result<Self, TlogProofError> {
        if bytes.len() > TLOG_PROOF_BYTES_MAX {
            return Err(TlogProofError::TooLarge {
                bytes: bytes.len(),
                max: TLOG_PROOF_BYTES_MAX,
            });
        }
        let text = std::str::from_utf8(bytes).map_err(|_| TlogProofError::NotUtf8)?;
        let (header, mut rest) = text.split_once('\n').ok_or(TlogProofError::MissingHeader)?;
        if header != TLOG_PROOF_HEADER {
            return Err(TlogProofError::MissingHeader);
        }

        let mut extra = None;
        if let Some(after) = rest.strip_prefix(EXTRA_PREFIX) {
            let (encoded, after) = after.split_once('\n').ok_or(TlogProofError::Truncated)?;
            // Bound the decoded size before decoding.
            if encoded.len() > base64_len(EXTRA_BYTES_MAX) {
                return Err(TlogProofError::ExtraTooLarge {
                    bytes: encoded.len() / 4 * 3,
                    max: EXTRA_BYTES_MAX,
                });
            }
            let decoded = STANDARD
                .decode(encoded)
                .map_err(|_| TlogProofError::ExtraBase64)?;
            check_extra_len(decoded.len())?;
            extra = Some(decoded);
            rest = after;
        }

        let after = rest
            .strip_prefix(INDEX_PREFIX)
            .ok_or(TlogProofError::MissingIndex)?;
        let (index, after) = after.split_once('\n').ok_or(TlogProofError::Truncated)?;
        let index = checkpoint::parse_decimal_u64(index).ok_or(TlogProofError::InvalidIndex)?;
        rest = after;

        let mut proof = Vec::new();
        loop {
            let (line, after) = rest.split_once('\n').ok_or(TlogProofError::Truncated)?;
            rest = after;
            if line.is_empty() {
                break;
            }
            if proof.len() == PROOF_HASHES_MAX {
                return Err(TlogProofError::TooManyHashes {
                    max: PROOF_HASHES_MAX,
                });
            }
            let hash = checkpoint::decode_hash_base64(line).ok_or(TlogProofError::InvalidHash {
                position: proof.len(),
            })?;
            proof.push(hash);
        }

        check_checkpoint(rest)?;
        Ok(TlogProof {
            extra,
            index: LeafIndex::new(index),
            proof,
            checkpoint: rest.to_owned(),
        })
    }
}

fn check_extra_len(bytes: usize) -> Result<(), TlogProofError> {
    if bytes > EXTRA_BYTES_MAX {
        return Err(TlogProofError::ExtraTooLarge {
            bytes,
            max: EXTRA_BYTES_MAX,
        });
    }
    Ok(())
}

/// Checks the syntax of the signed checkpoint; its signatures are verified by whoever opens it
/// with trusted keys.
fn check_checkpoint(signed_note: &str) -> Result<(), TlogProofError> {
    let note = Note::parse(signed_note.as_bytes())?;
    Checkpoint::parse_body(note.text())?;
    Ok(())
}
