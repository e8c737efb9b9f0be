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
#[non_exhaustive]
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
    #[error(
        "the file's {member} is not the {which} checkpoint being compared (origin, size and root must be equal)"
    )]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{Checkpoint, sign_checkpoint};
    use crate::merkle::{leaf_hash, node_hash};
    use crate::note::NoteSigner;
    use crate::types::TreeSize;

    const ORIGIN: &str = "auditex.test/ledger/acme-bank";

    fn key() -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[5; 32])
    }

    fn note(size: u64, root: Hash) -> (String, Checkpoint) {
        let c = Checkpoint::new(ORIGIN, TreeSize::new(size), root).expect("checkpoint");
        let k = key();
        let text =
            sign_checkpoint(&c, &[NoteSigner::new(ORIGIN, &k).expect("signer")]).expect("sign");
        (text, c)
    }

    /// A file from the tree of one leaf to the tree of two, and the two checkpoints.
    fn sample() -> (String, Checkpoint, Checkpoint) {
        let (l0, l1) = (leaf_hash(&[1; 32]), leaf_hash(&[2; 32]));
        let (n1, c1) = note(1, l0);
        let (n2, c2) = note(2, node_hash(l0, l1));
        (
            ConsistencyProofFile::new(1, 2, vec![l1], n1, n2).to_json(),
            c1,
            c2,
        )
    }

    fn trusted() -> Vec<VerifierKey> {
        vec![VerifierKey::new(ORIGIN, key().verifying_key()).expect("vkey")]
    }

    #[test]
    fn a_written_file_parses_back_and_links_its_two_checkpoints() {
        let (text, older, newer) = sample();
        assert!(
            text.ends_with("}\n")
                && text.starts_with("{\"format\":\"auditex-consistency-proof/v1\"")
        );
        let file = ConsistencyProofFile::parse(text.as_bytes()).expect("parses");
        let hashes = file
            .check_against(&older, &newer, &trusted())
            .expect("links");
        assert_eq!(hashes.len(), 1);
        crate::verify::verify_checkpoint_consistency(&older, &newer, hashes).expect("consistent");
    }

    #[test]
    fn every_other_form_of_the_file_is_refused() {
        let (text, _, _) = sample();
        let first_hash = text
            .split("\"proof\":[\"")
            .nth(1)
            .and_then(|rest| rest.get(..64))
            .expect("a hash")
            .to_owned();
        let bad = [
            (
                "upper-case hex",
                text.replacen(&first_hash, &first_hash.to_uppercase(), 1),
            ),
            ("unknown member", text.replacen('{', "{\"note\":1,", 1)),
            ("duplicate member", text.replacen('{', "{\"from\":1,", 1)),
            (
                "fractional size",
                text.replacen("\"from\":1", "\"from\":1.0", 1),
            ),
            ("missing member", text.replacen("\"to\":2,", "", 1)),
            ("other format", text.replacen("proof/v1", "proof/v2", 1)),
            ("hex lines", format!("{first_hash}\n")),
        ];
        for (what, text) in bad {
            assert!(
                ConsistencyProofFile::parse(text.as_bytes()).is_err(),
                "{what} was accepted"
            );
        }
    }

    #[test]
    fn a_file_about_other_sizes_or_trees_does_not_link_the_checkpoints() {
        let (text, older, newer) = sample();
        let file = ConsistencyProofFile::parse(text.as_bytes()).expect("parses");
        assert!(matches!(
            file.check_against(&newer, &older, &trusted()),
            Err(ConsistencyFileError::SizeMismatch { member: "from", .. })
        ));
        let (_, other) = note(1, leaf_hash(&[9; 32]));
        assert!(matches!(
            file.check_against(&other, &newer, &trusted()),
            Err(ConsistencyFileError::CheckpointMismatch {
                member: "from_checkpoint",
                ..
            })
        ));
        let stranger = VerifierKey::new(
            ORIGIN,
            ed25519_dalek::SigningKey::from_bytes(&[6; 32]).verifying_key(),
        )
        .expect("vkey");
        assert!(matches!(
            file.check_against(&older, &newer, &[stranger]),
            Err(ConsistencyFileError::Checkpoint { .. })
        ));
    }
}
