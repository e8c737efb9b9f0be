//! The consistency-proof file: the one format in which Auditex hands out an RFC 9162 consistency
//! proof between two published checkpoints (FORMAT.md section 9, "The consistency-proof file").
//!
//! `GET /v1/proofs/consistency` answers with it and `auditex proof --old-size` writes it; `auditex
//! verify consistency --proof` and the independent verifier read it. It is one JSON object:
//!
//! ```json
//! {"format":"auditex-consistency-proof/v1","from":N,"to":M,"proof":["<64 hex>",…],
//!  "from_checkpoint":"<signed note of size N>","to_checkpoint":"<signed note of size M>"}
//! ```
//!
//! Nothing in it is trusted: the verifier already holds the two checkpoints it compares (one saved
//! earlier, one newer), and [`ConsistencyProofFile::check_against`] requires the file to speak of
//! exactly those — the sizes equal, and each embedded checkpoint opening under the caller's
//! trusted keys to the same origin, size and root — before its hashes are used. A proof is only
//! ever served between sizes at which checkpoints were published, because a proof about a tree
//! size that no signed checkpoint vouches for cannot be verified by anyone.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::checkpoint::{Checkpoint, OpenCheckpointError, open_checkpoint};
use crate::json::JsonError;
use crate::note::{NOTE_BYTES_MAX, VerifierKey};
use crate::proof_file::PROOF_HASHES_MAX;
use crate::types::Hash;

/// The `format` member of every consistency-proof file.
pub const CONSISTENCY_PROOF_FORMAT: &str = "auditex-consistency-proof/v1";

/// Largest consistency-proof file accepted, in bytes: two escaped notes and a full proof, with
/// room to spare.
pub const CONSISTENCY_PROOF_BYTES_MAX: usize = 4 * NOTE_BYTES_MAX + PROOF_HASHES_MAX * 70 + 1024;

/// The `format` member, which only ever holds [`CONSISTENCY_PROOF_FORMAT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsistencyProofFormat;

impl Serialize for ConsistencyProofFormat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(CONSISTENCY_PROOF_FORMAT)
    }
}

impl<'de> Deserialize<'de> for ConsistencyProofFormat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        if text == CONSISTENCY_PROOF_FORMAT {
            Ok(ConsistencyProofFormat)
        } else {
            Err(serde::de::Error::custom(format!(
                "unsupported format {:?}; expected {CONSISTENCY_PROOF_FORMAT:?}",
                text.chars().take(80).collect::<String>()
            )))
        }
    }
}

/// A consistency proof with the two checkpoints it links.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyProofFile {
    /// Always [`CONSISTENCY_PROOF_FORMAT`].
    pub format: ConsistencyProofFormat,
    /// The older tree size (that of `from_checkpoint`).
    pub from: u64,
    /// The newer tree size (that of `to_checkpoint`).
    pub to: u64,
    /// The RFC 9162 consistency proof from `from` to `to` (lower-case hex); empty when the sizes
    /// are equal.
    pub proof: Vec<Hash>,
    /// The signed checkpoint published at size `from`.
    pub from_checkpoint: String,
    /// The signed checkpoint published at size `to`.
    pub to_checkpoint: String,
}

/// Why a consistency-proof file is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsistencyFileError {
    /// The file is longer than [`CONSISTENCY_PROOF_BYTES_MAX`].
    #[error("the consistency-proof file is {bytes} bytes, more than the maximum {max}")]
    TooLarge {
        /// Length of the input.
        bytes: usize,
        /// [`CONSISTENCY_PROOF_BYTES_MAX`].
        max: usize,
    },
    /// Not a strict JSON consistency-proof document (syntax, duplicate or unknown member,
    /// upper-case hex, a fractional size, …).
    #[error("not a consistency-proof file ({CONSISTENCY_PROOF_FORMAT}): {0}")]
    Json(JsonError),
    /// More hashes than any proof in a tree of at most 2^64 leaves has.
    #[error("the proof has {count} hashes, more than the maximum {PROOF_HASHES_MAX}")]
    TooManyHashes {
        /// How many were given.
        count: usize,
    },
    /// `from` or `to` is not the size of the checkpoint it stands for.
    #[error("the file's {member} is {stated}, but the {which} checkpoint has size {size}")]
    SizeMismatch {
        /// `from` or `to`.
        member: &'static str,
        /// `older` or `newer`.
        which: &'static str,
        /// The size in the file.
        stated: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// An embedded checkpoint does not open under the trusted keys.
    #[error("the file's {member}: {source}")]
    Checkpoint {
        /// `from_checkpoint` or `to_checkpoint`.
        member: &'static str,
        /// Why it does not open.
        source: OpenCheckpointError,
    },
    /// An embedded checkpoint is another tree than the one it stands for.
    #[error("the file's {member} is not the {which} checkpoint being compared (origin, size and root must be equal)")]
    CheckpointMismatch {
        /// `from_checkpoint` or `to_checkpoint`.
        member: &'static str,
        /// `older` or `newer`.
        which: &'static str,
    },
}

impl ConsistencyProofFile {
    /// A file for `proof`, from the checkpoint `from_checkpoint` of size `from` to
    /// `to_checkpoint` of size `to`.
    pub fn new(
        from: u64,
        to: u64,
        proof: Vec<Hash>,
        from_checkpoint: String,
        to_checkpoint: String,
    ) -> Self {
        ConsistencyProofFile {
            format: ConsistencyProofFormat,
            from,
            to,
            proof,
            from_checkpoint,
            to_checkpoint,
        }
    }

    /// Parses a file strictly (FORMAT.md: I-JSON, closed member set, lower-case hex, integer
    /// sizes).
    ///
    /// # Errors
    /// [`ConsistencyFileError`] for a file that is too large, not strict JSON of this shape, or
    /// has too many hashes.
    pub fn parse(bytes: &[u8]) -> Result<Self, ConsistencyFileError> {
        if bytes.len() > CONSISTENCY_PROOF_BYTES_MAX {
            return Err(ConsistencyFileError::TooLarge {
                bytes: bytes.len(),
                max: CONSISTENCY_PROOF_BYTES_MAX,
            });
        }
        let file: ConsistencyProofFile =
            crate::json::from_slice(bytes).map_err(ConsistencyFileError::Json)?;
        if file.proof.len() > PROOF_HASHES_MAX {
            return Err(ConsistencyFileError::TooManyHashes {
                count: file.proof.len(),
            });
        }
        Ok(file)
    }

    /// The file as written: one line of JSON and a newline.
    ///
    /// # Panics
    /// Never in practice: every member serializes to JSON.
    pub fn to_json(&self) -> String {
        let mut text =
            serde_json::to_string(self).expect("a consistency proof always serializes to JSON");
        text.push('\n');
        text
    }

    /// Checks that the file links exactly `older` and `newer` — checkpoints the caller has
    /// already opened under `trusted` — and returns its proof hashes. Each embedded checkpoint
    /// must itself open under `trusted` with the same origin, size and root, so that no byte of
    /// the file goes unchecked.
    ///
    /// # Errors
    /// [`ConsistencyFileError`] naming the first member that does not match.
    pub fn check_against(
        &self,
        older: &Checkpoint,
        newer: &Checkpoint,
        trusted: &[VerifierKey],
    ) -> Result<&[Hash], ConsistencyFileError> {
        for (member, which, stated, c) in [
            ("from", "older", self.from, older),
            ("to", "newer", self.to, newer),
        ] {
            if stated != c.size().get() {
                return Err(ConsistencyFileError::SizeMismatch {
                    member,
                    which,
                    stated,
                    size: c.size().get(),
                });
            }
        }
        for (member, which, note, c) in [
            ("from_checkpoint", "older", &self.from_checkpoint, older),
            ("to_checkpoint", "newer", &self.to_checkpoint, newer),
        ] {
            let opened = open_checkpoint(note.as_bytes(), trusted, Some(c.origin()))
                .map_err(|source| ConsistencyFileError::Checkpoint { member, source })?;
            if opened.checkpoint() != c {
                return Err(ConsistencyFileError::CheckpointMismatch { member, which });
            }
        }
        Ok(&self.proof)
    }
}
