//! What `auditex verify` concludes about one file of evidence, as a pure function of its bytes
//! and the keys the caller trusts: the kind of evidence, what it proves (one sentence each) and
//! the first failure, named (`hash_mismatch`, `bad_signature`, `fork`, …) with what was expected
//! and what was found.
//!
//! The command-line verifier and the in-browser verifier (this crate compiled to WebAssembly)
//! both report through this module, so the two cannot word a verdict differently. Reading files,
//! standard input, clocks, threads and the network stay with the callers: a caller times the
//! verification itself (`Outcome::elapsed_ms`), and the command line verifies large exports on
//! every core with its own driver, reporting through [`Failure::of_export`] and
//! [`Outcome::export_verified`] as the sequential [`verify_export`] here does.

use std::collections::BTreeMap;
use std::io::{BufRead, Read};

use serde::Serialize;

use crate::bundle::{BUNDLE_FORMAT, Bundle, BundleError, verify_bundle as verify_bundle_entries};
use crate::checkpoint::Checkpoint;
use crate::export::{
    EXPORT_FORMAT, EXPORT_LINE_BYTES_MAX, ExportError, ExportErrorKind, ExportReport,
    ExportVerifier, check_line_bytes,
};
use crate::failure::IntegrityFailure;
use crate::keys::{KeyInterval, KeyRing};
use crate::note::{Note, VerifierKey, VerifierKeyError};
use crate::package::{PACKAGE_LINE_BYTES_MAX, PackageError, PackageErrorKind, PackageVerifier};
use crate::proof_file::{TLOG_PROOF_BYTES_MAX, TLOG_PROOF_HEADER, TlogProof};
use crate::record::FieldName;
use crate::types::{EventId, Hash};
use crate::verify::{
    ChainError, CheckpointConsistencyError, TlogProofVerifyError, verify_tlog_proof_file,
};

/// Bytes of a file looked at to recognize its kind.
pub const SNIFF_BYTES: usize = 512;

/// What verification found wrong, ready to print.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// A stable name for the failure class (`hash_mismatch`, `bad_signature`, `fork`, …).
    pub kind: String,
    /// The first affected sequence number, when there is one.
    pub seq: Option<u64>,
    /// The event id of that record, when known.
    pub event_id: Option<EventId>,
    /// The 1-based line of the file, for line-based evidence.
    pub line: Option<u64>,
    /// What valid evidence has there.
    pub expected: Option<String>,
    /// What was found.
    pub found: Option<String>,
    /// One sentence for people.
    pub message: String,
}

impl Failure {
    pub fn new(kind: &str, message: impl Into<String>) -> Failure {
        Failure {
            kind: kind.to_owned(),
            seq: None,
            event_id: None,
            line: None,
            expected: None,
            found: None,
            message: message.into(),
        }
    }

    pub fn at(mut self, seq: Option<u64>, event_id: Option<EventId>) -> Failure {
        self.seq = seq;
        self.event_id = event_id;
        self
    }

    pub fn expected_found(
        mut self,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Failure {
        self.expected = Some(expected.into());
        self.found = Some(found.into());
        self
    }

    /// Where the failure is, as the report names it: ` at record 7 (event …), line 9`, or
    /// nothing when the failure is not at a record or line.
    pub fn place(&self) -> String {
        let at = match (self.seq, &self.event_id) {
            (Some(seq), Some(id)) => format!(" at record {seq} (event {id})"),
            (Some(seq), None) => format!(" at record {seq}"),
            _ => String::new(),
        };
        let line = self.line.map_or(String::new(), |l| format!(", line {l}"));
        format!("{at}{line}")
    }

    /// The failure of a chain error, as the service's integrity check reports it.
    pub fn chain(e: &ChainError) -> Failure {
        let f = IntegrityFailure::from_chain_error(e);
        let kind = serde_json::to_value(f.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "chain".into());
        Failure {
            kind,
            seq: Some(f.seq),
            event_id: f.event_id,
            line: None,
            expected: Some(f.expected),
            found: Some(f.found),
            message: f.message,
        }
    }

    pub fn history(h: HistoryFailure) -> Failure {
        Failure::new(h.kind, h.message)
            .at(h.seq, None)
            .expected_found(h.expected, h.found)
    }

    /// The failure of an export, with its line.
    pub fn of_export(e: &ExportError, from_seq: u64) -> Failure {
        use ExportErrorKind as K;
        // Record lines start at line 2 with `from_seq`.
        let seq_of_line = (e.line >= 2).then(|| from_seq + e.line - 2);
        let message = e.to_string();
        let mut f = match &e.kind {
            K::Chain(c) => Failure::chain(c),
            K::LineTooLong { .. } => Failure::new("line_too_long", "").at(seq_of_line, None),
            K::MissingHeader => Failure::new("missing_header", ""),
            K::MalformedHeader(_) => Failure::new("malformed_header", ""),
            K::Head(_) => Failure::new("checkpoint_not_trusted", ""),
            K::StartBeyondCheckpoint { .. } => Failure::new("start_beyond_checkpoint", ""),
            K::MalformedRecord(_) => Failure::new("malformed_record", "").at(seq_of_line, None),
            K::BeyondCheckpoint { seq, size } => Failure::new("beyond_checkpoint", "")
                .at(Some(*seq), None)
                .expected_found(format!("a record below {size}"), format!("record {seq}")),
            K::MalformedTrailer(_) => Failure::new("malformed_trailer", ""),
            K::RecordCount { stated, counted } => Failure::new("trailer_mismatch", "")
                .expected_found(format!("{counted} records"), format!("{stated} records")),
            K::LastSeq { stated, counted } => Failure::new("trailer_mismatch", "").expected_found(
                format!("last_seq {counted:?}"),
                format!("last_seq {stated:?}"),
            ),
            K::Incomplete {
                from_seq,
                size,
                expected,
                found,
            } => Failure::new("missing_records", "")
                .at(Some(from_seq + found), None)
                .expected_found(
                    format!(
                        "{expected} records, {from_seq}..{} (checkpoint of size {size})",
                        size.get().saturating_sub(1)
                    ),
                    format!("{found} records"),
                ),
            K::Inclusion { seq, source } => Failure::new("inclusion_proof", "")
                .at(Some(*seq), None)
                .expected_found(
                    format!("record {seq} as the last leaf of the checkpoint's tree"),
                    source.to_string(),
                ),
            K::UnexpectedProof { .. } => Failure::new("trailer_mismatch", ""),
            K::RootMismatch {
                size,
                expected,
                computed,
            } => Failure::new("checkpoint_root_mismatch", "")
                .at(Some(size.get().saturating_sub(1)), None)
                .expected_found(
                    format!("root {expected} (signed checkpoint of size {size})"),
                    format!("root {computed} recomputed from the records"),
                ),
            K::MissingTrailer => Failure::new("missing_trailer", ""),
            K::AfterTrailer => Failure::new("after_trailer", ""),
            K::ControlCharacter { .. } => {
                Failure::new("control_character", "").at(seq_of_line, None)
            }
            K::MissingFinalNewline => Failure::new("missing_final_newline", ""),
        };
        f.line = Some(e.line);
        f.message = message;
        f
    }

    pub fn of_bundle(e: &BundleError) -> Failure {
        use BundleError as B;
        let message = e.to_string();
        let mut f = match e {
            B::Record(r) => Failure::chain(&ChainError::Record(r.clone())),
            B::Inclusion(i) => Failure::new("inclusion_proof", "")
                .at(Some(i.seq), Some(i.event_id))
                .expected_found(
                    format!("a path to the root of the checkpoint of size {}", i.size),
                    i.source.to_string(),
                ),
            B::WrongTenant {
                seq,
                event_id,
                found,
            } => Failure::new("wrong_tenant", "")
                .at(Some(*seq), Some(*event_id))
                .expected_found("the bundle's tenant", found.to_string()),
            B::OutOfOrder { seq, event_id, .. } => {
                Failure::new("out_of_order", "").at(Some(*seq), Some(*event_id))
            }
            B::FirstNotADecision { seq, event_id, .. } => {
                Failure::new("not_a_decision", "").at(Some(*seq), Some(*event_id))
            }
            B::DecisionIdMismatch {
                seq,
                expected,
                found,
            } => Failure::new("decision_mismatch", "")
                .at(Some(*seq), Some(*found))
                .expected_found(expected.to_string(), found.to_string()),
            B::NotLinked { seq, event_id, .. } => {
                Failure::new("not_linked", "").at(Some(*seq), Some(*event_id))
            }
            B::ProofTooLong { seq, .. } => Failure::new("inclusion_proof", "").at(Some(*seq), None),
            B::TooManyErasableValues { seq, .. } | B::ErasableNotCommitted { seq, .. } => {
                Failure::new("erasable_value", "").at(Some(*seq), None)
            }
            B::ErasedNotCommitted { seq, .. }
            | B::ErasedAndSupplied { seq, .. }
            | B::ErasureNotAfter { seq, .. } => {
                Failure::new("erased_field", "").at(Some(*seq), None)
            }
            B::ErasedByNonErasure {
                erasure_seq,
                event_id,
                event_type,
                ..
            } => Failure::new("erased_field", "")
                .at(Some(*erasure_seq), Some(*event_id))
                .expected_found("an erasure event", event_type.to_string()),
            B::ErasureDoesNotCover {
                erasure_seq,
                event_id,
                ..
            } => Failure::new("erased_field", "").at(Some(*erasure_seq), Some(*event_id)),
            B::ErasableMismatch { seq, field } => Failure::new("erasable_value", "")
                .at(Some(*seq), None)
                .expected_found(
                    format!(
                        "a value and salt matching the commitment of {}",
                        field.as_str()
                    ),
                    "a value that does not match".to_owned(),
                ),
            B::Head(_) => Failure::new("checkpoint_not_trusted", ""),
            B::Json(_) | B::TooLarge { .. } | B::NoEntries | B::TooManyEntries { .. } => {
                Failure::new("malformed_bundle", "")
            }
        };
        f.message = message;
        f
    }

    pub fn of_tlog(e: &TlogProofVerifyError) -> Failure {
        use TlogProofVerifyError as T;
        let message = e.to_string();
        let mut f = match e {
            T::Record(r) => Failure::chain(&ChainError::Record(r.clone())),
            T::Inclusion(i) => Failure::new("inclusion_proof", "")
                .at(Some(i.seq), Some(i.event_id))
                .expected_found(
                    format!("a path to the root of the checkpoint of size {}", i.size),
                    i.source.to_string(),
                ),
            T::IndexMismatch { index, seq } => Failure::new("index_mismatch", "")
                .at(Some(*seq), None)
                .expected_found(format!("index {seq}"), format!("index {index}")),
            T::Checkpoint(_)
            | T::TenantNotInOrigin { .. }
            | T::CheckpointKeyOutsideInterval { .. } => Failure::new("checkpoint_not_trusted", ""),
            T::Parse(_) | T::MissingRecord | T::MalformedRecord(_) => {
                Failure::new("malformed_proof", "")
            }
        };
        f.message = message;
        f
    }

    pub fn of_consistency(e: &CheckpointConsistencyError) -> Failure {
        use CheckpointConsistencyError as C;
        let message = e.to_string();
        let mut f = match e {
            C::OriginMismatch { older, newer } => {
                Failure::new("origin_mismatch", "").expected_found(older.clone(), newer.clone())
            }
            C::RolledBack { seen, offered } => Failure::new("rolled_back", "")
                .at(Some(offered.get()), None)
                .expected_found(
                    format!("a tree of at least {seen} records"),
                    format!("a checkpoint of size {offered}"),
                ),
            C::Fork { size, root1, root2 } => Failure::new("fork", "").expected_found(
                format!("root {root1} at size {size}"),
                format!("root {root2} at size {size}"),
            ),
            C::Proof(p) => Failure::new("inconsistent", "").expected_found(
                "a consistency proof from the older tree to the newer",
                p.to_string(),
            ),
        };
        f.message = message;
        f
    }
}

impl Failure {
    /// The failure of a package, with its line.
    pub fn of_package(e: &PackageError) -> Failure {
        use PackageErrorKind as K;
        let mut f = match &e.kind {
            K::Entry(b) => Failure::of_bundle(b),
            K::NotConcerning { .. } => Failure::new("not_concerning_subject", ""),
            K::MissingTrailer => Failure::new("missing_trailer", ""),
            K::CountMismatch { declared, found } => Failure::new("count_mismatch", "")
                .expected_found(format!("{found} records"), format!("{declared} records")),
            K::AfterTrailer => Failure::new("after_trailer", ""),
            K::Head(_) => Failure::new("checkpoint_not_trusted", ""),
            K::Empty | K::MalformedHeader(_) | K::BadSubjectRef => {
                Failure::new("malformed_header", "")
            }
            // The names the export's failures of the same kind have.
            K::ControlCharacter { .. } => Failure::new("control_character", ""),
            K::NoFinalNewline => Failure::new("missing_final_newline", ""),
            K::LineTooLong { .. } => Failure::new("line_too_long", ""),
            // Malformed entries, and kinds `ledger` adds later: the message says what it is.
            _ => Failure::new("malformed_entry", ""),
        };
        if let Some((seq, event_id)) = e.kind.record() {
            f.seq = Some(seq);
            f.event_id = event_id.or(f.event_id);
        }
        f.line = Some(e.line);
        f.message = e.to_string();
        f
    }
}

/// The result of one verification, printed as text or JSON.
#[derive(Debug, Serialize)]
pub struct Outcome {
    /// Whether everything verified.
    pub verified: bool,
    /// The kind of evidence: `export`, `bundle`, `package`, `tlog-proof`, `consistency`,
    /// `tiles`, or `unknown`.
    pub evidence: &'static str,
    /// The file (or URL) verified, as the caller names it.
    pub file: String,
    /// The tenant the evidence is of, when it says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The log's origin, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// The signed checkpoint the evidence was verified against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointInfo>,
    /// What was proven, one sentence each.
    pub proven: Vec<String>,
    /// How many records were verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records: Option<u64>,
    /// The first failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// The valid cosignatures of trusted witnesses on the checkpoint (with `--witness`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cosignatures: Vec<CosignatureInfo>,
    /// How long verifying took; set by the caller, which has a clock (this crate has none).
    pub elapsed_ms: u64,
    /// The checkpoint note, when the evidence is not a file (the tiles mode).
    #[serde(skip)]
    pub note: Option<String>,
    /// The latest capture time of the records the evidence proves, µs.
    #[serde(skip)]
    pub captured_max_us: Option<u64>,
}

impl Outcome {
    /// An outcome not (yet) verified.
    pub fn new(evidence: &'static str, file: String) -> Outcome {
        Outcome {
            verified: false,
            evidence,
            file,
            tenant: None,
            origin: None,
            checkpoint: None,
            proven: Vec::new(),
            records: None,
            failure: None,
            cosignatures: Vec::new(),
            elapsed_ms: 0,
            note: None,
            captured_max_us: None,
        }
    }

    /// Marks the evidence verified against the checkpoint of `size` and `root`, unless the key
    /// history it carries disagrees with the trusted one (then that is the failure); returns
    /// whether it is verified.
    pub fn verified_at(
        &mut self,
        trust: &Trust,
        origin: &str,
        keys: &[KeyInterval],
        size: u64,
        root: Hash,
    ) -> bool {
        if let Some(history) = trust.history_for(origin)
            && let Err(h) = check_history(history, keys)
        {
            self.failure = Some(Failure::history(h));
            return false;
        }
        self.verified = true;
        self.checkpoint = Some(CheckpointInfo { size, root });
        true
    }

    /// The verdict for people, as `auditex verify` prints it (without the timing line): what
    /// was verified, then `VERIFIED` and what is proven, or `FAILED` with where, the failure's
    /// name, its sentence, and what was expected and found.
    pub fn report(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let subject = match (&self.tenant, &self.origin) {
            (Some(t), Some(origin)) => format!(" of tenant {t} ({origin})"),
            (None, Some(origin)) => format!(" of {origin}"),
            (Some(t), None) => format!(" of tenant {t}"),
            (None, None) => String::new(),
        };
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "auditex verify: {}{subject}: {}",
            self.evidence, self.file
        );
        match &self.failure {
            None => {
                let _ = writeln!(out, "VERIFIED");
                for line in &self.proven {
                    let _ = writeln!(out, "  - {line}");
                }
            }
            Some(f) => {
                let _ = writeln!(out, "FAILED{}: {}", f.place(), f.kind);
                let _ = writeln!(out, "  {}", f.message);
                if let Some(e) = &f.expected {
                    let _ = writeln!(out, "  expected: {e}");
                }
                if let Some(found) = &f.found {
                    let _ = writeln!(out, "  found:    {found}");
                }
            }
        }
        out
    }

    /// This outcome, failed with `failure`.
    pub fn with_failure(mut self, failure: Failure) -> Outcome {
        self.failure = Some(failure);
        self
    }

    /// Fills in a verified export's report: tenant, checkpoint, records and what they prove.
    /// `seen_agreed` are the sizes of checkpoints seen before that the export's tree agrees with.
    pub fn export_verified(&mut self, r: &ExportReport, seen_agreed: &[u64], trust: &Trust) {
        self.tenant = Some(r.tenant.to_string());
        self.origin = Some(r.origin.clone());
        self.checkpoint = Some(CheckpointInfo {
            size: r.checkpoint_size.get(),
            root: r.checkpoint_root,
        });
        self.records = Some(r.records);
        self.captured_max_us = r.last_captured.map(|t| t.unix_micros());
        self.verified = true;
        let range = match r.last_seq {
            Some(last) => format!("records {}..{last}", r.from_seq),
            None => "no records".into(),
        };
        self.proven.push(format!(
            "{} {range}: every hash, chain link, sequence number, capture time, signature and key interval checked",
            r.records
        ));
        if r.root_recomputed {
            self.proven.push(format!(
                "the Merkle root recomputed from all {} records equals the signed checkpoint's root {} (tree size {}, signed by key {})",
                r.checkpoint_size, r.checkpoint_root, r.checkpoint_size, r.checkpoint_key_id
            ));
        } else {
            self.proven.push(format!(
                "the last record is proven to be the last leaf of the signed checkpoint of size {} (root {}, signed by key {}), and the links tie every earlier record to it",
                r.checkpoint_size, r.checkpoint_root, r.checkpoint_key_id
            ));
        }
        for size in seen_agreed {
            self.proven.push(format!(
                "consistent with the checkpoint of size {size} seen before"
            ));
        }
        if trust.history_for(&r.origin).is_some() {
            self.proven
                .push("the export's key history agrees with the trusted key history".into());
        }
    }
}

/// The checkpoint a verdict rests on.
#[derive(Debug, Serialize)]
pub struct CheckpointInfo {
    /// Its tree size.
    pub size: u64,
    /// Its root hash.
    pub root: Hash,
}

impl CheckpointInfo {
    /// The size and root of `c`.
    pub fn of(c: &Checkpoint) -> Self {
        CheckpointInfo {
            size: c.size().get(),
            root: c.root(),
        }
    }
}

/// A valid cosignature, as the report lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CosignatureInfo {
    /// The witness's name.
    pub witness: String,
    /// When it cosigned (POSIX seconds).
    pub timestamp: u64,
}

/// Input that could not be used (the command line's exit code 2): no trusted key, a malformed
/// trusted key or key history, a request the evidence cannot answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unusable(pub String);

/// The keys the caller trusts. The keys listed inside the evidence are checked, never trusted.
#[derive(Debug, Default)]
pub struct Trust {
    /// Trusted checkpoint verifier keys.
    pub vkeys: Vec<VerifierKey>,
    /// A trusted key history and the origin it is for.
    pub history: Option<(String, Vec<KeyInterval>)>,
}

impl Trust {
    /// The trusted key history, when it is for `origin`.
    pub fn history_for(&self, origin: &str) -> Option<&[KeyInterval]> {
        self.history
            .as_ref()
            .filter(|(o, _)| o == origin)
            .map(|(_, keys)| keys.as_slice())
    }

    /// Trusts a key history as `auditex key history` prints it (`{"origin": …, "keys": […]}`):
    /// its keys for its origin, with their validity intervals.
    ///
    /// # Errors
    /// [`Unusable`] when the text is not a key history, or one of its keys cannot be a
    /// verifier key of its origin; `name` names the text in the message.
    pub fn add_key_history(&mut self, text: &str, name: &str) -> Result<(), Unusable> {
        let history = crate::keys::KeyHistory::parse(text).map_err(|e| {
            Unusable(format!(
                "{name}: not a key history as `auditex key history` prints it (FORMAT.md): {e}"
            ))
        })?;
        let keys = history.intervals();
        let origin = history.origin;
        for k in &keys {
            self.vkeys.push(
                VerifierKey::new(&origin, k.public_key)
                    .map_err(|e| Unusable(format!("{name}: {e}")))?,
            );
        }
        self.history = Some((origin, keys));
        Ok(())
    }
}

/// Parses a list of verifier keys, one per line; `#` starts a comment and blank lines are
/// skipped.
///
/// # Errors
/// The 1-based line of the first key that does not parse, with why.
pub fn parse_key_lines(text: &str) -> Result<Vec<VerifierKey>, (usize, VerifierKeyError)> {
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        keys.push(VerifierKey::parse(line).map_err(|e| (i + 1, e))?);
    }
    Ok(keys)
}

/// A disagreement with what the verifier trusted or saw before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryFailure {
    /// `rolled_back`, `fork`, `seen_checkpoint` or `key_history_mismatch`.
    pub kind: &'static str,
    /// The first affected sequence number.
    pub seq: Option<u64>,
    /// What was expected.
    pub expected: String,
    /// What was found.
    pub found: String,
    /// One sentence.
    pub message: String,
}

/// Checks that published key history agrees with a trusted one: every key in both has the same
/// public key and start, and the same end unless one of them is still open (one history is newer).
pub fn check_history(
    trusted: &[KeyInterval],
    published: &[KeyInterval],
) -> Result<(), HistoryFailure> {
    for t in trusted {
        let Some(p) = published.iter().find(|p| p.key_id == t.key_id) else {
            continue;
        };
        let ends_agree =
            t.until_seq == p.until_seq || t.until_seq.is_none() || p.until_seq.is_none();
        if p.public_key != t.public_key || p.from_seq != t.from_seq || !ends_agree {
            return Err(HistoryFailure {
                kind: "key_history_mismatch",
                seq: Some(p.from_seq.min(t.from_seq)),
                expected: format!(
                    "key {} valid {}..{}",
                    t.key_id,
                    t.from_seq,
                    t.until_seq.map_or(String::new(), |u| u.to_string())
                ),
                found: format!(
                    "key {} valid {}..{}",
                    p.key_id,
                    p.from_seq,
                    p.until_seq.map_or(String::new(), |u| u.to_string())
                ),
                message: format!(
                    "the evidence's key history disagrees with the trusted key history about key {}",
                    t.key_id
                ),
            });
        }
    }
    // A key the evidence adds must start where the trusted history's open key may have ended.
    let overlap = published.iter().find(|p| {
        trusted.iter().all(|t| t.key_id != p.key_id)
            && trusted
                .iter()
                .any(|t| t.until_seq.is_some_and(|u| p.from_seq < u) && p.from_seq >= t.from_seq)
    });
    if let Some(p) = overlap {
        return Err(HistoryFailure {
            kind: "key_history_mismatch",
            seq: Some(p.from_seq),
            expected: "no other key inside the trusted history's closed intervals".into(),
            found: format!("key {} from {}", p.key_id, p.from_seq),
            message: format!(
                "the evidence's key history has key {} inside an interval the trusted history gives to another key",
                p.key_id
            ),
        });
    }
    Ok(())
}

/// The kinds of evidence a file may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A whole-ledger export (JSON Lines).
    Export,
    /// A chain-of-custody bundle (JSON).
    Bundle,
    /// A subject access package (JSON Lines).
    Package,
    /// A C2SP tlog-proof file.
    TlogProof,
}

/// Recognizes a file's kind from its first bytes (at most [`SNIFF_BYTES`] are looked at).
pub fn sniff(start: &[u8]) -> Option<Kind> {
    if start.starts_with(TLOG_PROOF_HEADER.as_bytes()) {
        return Some(Kind::TlogProof);
    }
    let text = String::from_utf8_lossy(&start[..start.len().min(SNIFF_BYTES)]);
    if text.contains(EXPORT_FORMAT) {
        Some(Kind::Export)
    } else if text.contains(BUNDLE_FORMAT) {
        Some(Kind::Bundle)
    } else if text.contains(crate::package::PACKAGE_FORMAT) {
        Some(Kind::Package)
    } else {
        None
    }
}

/// The outcome for a file that was read but is no kind of evidence: not verified, as any damaged
/// evidence would be (a changed byte can make a file unrecognizable).
pub fn not_evidence(name: &str) -> Outcome {
    Outcome::new("unknown", name.to_owned()).with_failure(Failure::new(
        "not_evidence",
        format!(
            "{name} is not an Auditex export, custody bundle or tlog-proof file (a checkpoint alone proves nothing: use `auditex verify consistency`)"
        ),
    ))
}

/// Verifies evidence held in memory, whatever its kind: the in-browser verifier's entry point.
/// An export is verified sequentially here (the command line verifies it on every core, with
/// the same checks and the same report).
///
/// # Errors
/// [`Unusable`] when the trusted keys cannot decide (see [`verify_proof`]) or the bytes are
/// larger than the kind allows.
pub fn verify(bytes: &[u8], name: &str, trust: &Trust) -> Result<Outcome, Unusable> {
    match sniff(bytes) {
        Some(Kind::Export) => Ok(verify_export(bytes, name, trust)),
        Some(Kind::Bundle) => Ok(verify_bundle(bytes, name, trust)),
        Some(Kind::Package) => verify_package(bytes, name, trust),
        Some(Kind::TlogProof) => verify_proof(
            &bytes[..bytes.len().min(TLOG_PROOF_BYTES_MAX + 1)],
            name,
            trust,
        ),
        None => Ok(not_evidence(name)),
    }
}

/// Verifies a custody bundle. A caller reading a file reads at most `BUNDLE_BYTES_MAX + 1`
/// bytes: more is refused here, for every caller alike.
pub fn verify_bundle(bytes: &[u8], name: &str, trust: &Trust) -> Outcome {
    let mut outcome = Outcome::new("bundle", name.to_owned());
    if bytes.len() > crate::bundle::BUNDLE_BYTES_MAX {
        return outcome.with_failure(Failure::new(
            "malformed_bundle",
            format!(
                "larger than a bundle may be ({} bytes)",
                crate::bundle::BUNDLE_BYTES_MAX
            ),
        ));
    }
    // Whatever the bytes are, they were read: a document that is not a bundle at all is judged
    // like a damaged one (exit 1), since a changed byte can make a bundle into either.
    let value = match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(v) if v.get("format").and_then(serde_json::Value::as_str) == Some(BUNDLE_FORMAT) => v,
        Ok(_) => {
            return outcome.with_failure(Failure::new(
                "malformed_bundle",
                format!("not a custody bundle: no \"format\": \"{BUNDLE_FORMAT}\""),
            ));
        }
        Err(e) => {
            return outcome.with_failure(Failure::new(
                "malformed_bundle",
                format!("not a custody bundle: not a JSON document: {e}"),
            ));
        }
    };
    outcome.tenant = value
        .get("tenant")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    outcome.origin = value
        .get("origin")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let checked = Bundle::from_json(bytes).and_then(|bundle| {
        let report = verify_bundle_entries(&bundle, &trust.vkeys)?;
        Ok((bundle, report))
    });
    match checked {
        Ok((bundle, report)) => {
            outcome.captured_max_us = bundle
                .entries
                .iter()
                .map(|e| e.record.captured_at_us.unix_micros())
                .max();
            if outcome.verified_at(
                trust,
                &bundle.origin,
                &bundle.keys,
                report.checkpoint_size.get(),
                report.checkpoint_root,
            ) {
                outcome.records = Some(report.entries.len() as u64);
                outcome.proven.push(format!(
                    "decision {} and {} linked record(s) are in the log: each hash, signature and key interval checked, each inclusion proof leads to the signed checkpoint of size {} (root {}, signed by key {})",
                    report.decision_event_id,
                    report.entries.len() - 1,
                    report.checkpoint_size,
                    report.checkpoint_root,
                    report.checkpoint_key_id
                ));
                for e in &report.entries {
                    let erasable = if e.erasable_values_verified
                        + e.erasable_values_absent
                        + e.erasable_values_erased
                        == 0
                    {
                        String::new()
                    } else {
                        format!(
                            "; erasable values: {} matched their commitments, {} absent (withheld), {} erased{}",
                            e.erasable_values_verified,
                            e.erasable_values_absent,
                            e.erasable_values_erased,
                            erased_by(&e.erased)
                        )
                    };
                    outcome.proven.push(format!(
                        "record {} ({} {}){erasable}",
                        e.seq, e.event_type, e.event_id
                    ));
                }
                outcome.proven.push(
                    "a bundle proves that these records are in the log; only an export proves that no follow-up is missing".into(),
                );
            }
        }
        Err(e) => outcome.failure = Some(Failure::of_bundle(&e)),
    }
    outcome
}

/// " (applicant_name by seq 17, …)": which erasure record erased each field, or nothing.
fn erased_by(erased: &BTreeMap<FieldName, u64>) -> String {
    if erased.is_empty() {
        return String::new();
    }
    let each: Vec<String> = erased
        .iter()
        .map(|(field, seq)| format!("{} by seq {seq}", field.as_str()))
        .collect();
    format!(" ({})", each.join(", "))
}

/// Verifies a C2SP tlog-proof file (at most `TLOG_PROOF_BYTES_MAX` bytes, which the caller
/// reads).
///
/// # Errors
/// [`Unusable`] when several trusted keys are named like the proof's origin and no key history
/// says which was valid when, or the trusted key history is not a valid key ring.
pub fn verify_proof(bytes: &[u8], name: &str, trust: &Trust) -> Result<Outcome, Unusable> {
    // A file that does not start with the tlog-proof header line is judged like any other damage
    // (exit 1): a changed byte of the header is tampering too.
    let mut outcome = Outcome::new("tlog-proof", name.to_owned());
    outcome.records = Some(1);
    // The origin is read from the checkpoint inside the file; the checkpoint must then open
    // under a trusted key of that origin.
    let origin = TlogProof::parse(bytes)
        .ok()
        .and_then(|p| checkpoint_origin(p.checkpoint().as_bytes()));
    let Some(origin) = origin else {
        outcome.failure = Some(Failure::of_tlog(&TlogProofVerifyError::Parse(
            TlogProof::parse(bytes)
                .err()
                .unwrap_or(crate::proof_file::TlogProofError::Truncated),
        )));
        return Ok(outcome);
    };
    outcome.origin = Some(origin.clone());
    let ring = match trust.history_for(&origin) {
        Some(keys) => KeyRing::new(keys.to_vec()).map_err(|e| Unusable(e.to_string()))?,
        None => {
            let named: Vec<&VerifierKey> =
                trust.vkeys.iter().filter(|k| k.name() == origin).collect();
            match named.as_slice() {
                [] => {
                    outcome.failure = Some(Failure::new(
                        "checkpoint_not_trusted",
                        format!(
                            "no trusted key is named {origin:?}, the origin of the proof's checkpoint"
                        ),
                    ));
                    return Ok(outcome);
                }
                [one] => KeyRing::single(*one.verifying_key()),
                _ => {
                    return Err(Unusable(format!(
                        "several trusted keys are named {origin:?}: pass --key-history so that the record key's validity interval can be checked"
                    )));
                }
            }
        }
    };
    match verify_tlog_proof_file(bytes, &trust.vkeys, &ring, &origin) {
        Ok(proven) => {
            let r = &proven.record;
            outcome.verified = true;
            outcome.captured_max_us = Some(r.captured_at_us.unix_micros());
            outcome.tenant = Some(r.tenant.to_string());
            outcome.checkpoint = Some(CheckpointInfo::of(&proven.checkpoint));
            outcome.proven.push(format!(
                "record {} ({} {}, captured {}) hashes to {}, is signed by key {} valid for it, and is leaf {} of the signed checkpoint of size {} (root {})",
                r.seq,
                r.event_type,
                r.event_id,
                r.captured_at_us,
                r.hash,
                r.key_id,
                r.seq,
                proven.checkpoint.size(),
                proven.checkpoint.root()
            ));
            if trust.history_for(&origin).is_none() {
                outcome.proven.push(
                    "the key's validity interval was taken as unbounded (one trusted key, no --key-history)".into(),
                );
            }
        }
        Err(e) => {
            outcome.tenant = TlogProof::parse(bytes)
                .ok()
                .and_then(|p| p.extra().map(<[u8]>::to_vec))
                .and_then(|extra| serde_json::from_slice::<serde_json::Value>(&extra).ok())
                .and_then(|v| v.get("tenant").and_then(|t| t.as_str()).map(str::to_owned));
            outcome.failure = Some(Failure::of_tlog(&e));
        }
    }
    Ok(outcome)
}

/// The origin (first line) of a signed checkpoint, if it is a well-formed note.
pub fn checkpoint_origin(note: &[u8]) -> Option<String> {
    let note = Note::parse(note).ok()?;
    Checkpoint::parse_body(note.text())
        .ok()
        .map(|c| c.origin().to_owned())
}

/// Verifies a subject access package read from `input` a line at a time. The header's
/// checkpoint must open under a trusted key exactly as a bundle's does, every entry passes the
/// bundle's per-entry checks, entries are in increasing sequence order and each concerns the
/// subject, and the trailer counts them.
///
/// # Errors
/// [`Unusable`] when `input` cannot be read.
pub fn verify_package(
    mut input: impl BufRead,
    name: &str,
    trust: &Trust,
) -> Result<Outcome, Unusable> {
    let mut outcome = Outcome::new("package", name.to_owned());
    let mut verifier = PackageVerifier::new(&trust.vkeys);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let read = (&mut input)
            .take(PACKAGE_LINE_BYTES_MAX as u64 + 2)
            .read_until(b'\n', &mut buf)
            .map_err(|e| Unusable(format!("reading {name}: {e}")))?;
        if read == 0 {
            break;
        }
        let line = verifier.lines() + 1;
        if buf.last() == Some(&b'\n') {
            buf.pop();
        } else {
            let kind = if buf.len() > PACKAGE_LINE_BYTES_MAX {
                PackageErrorKind::LineTooLong {
                    bytes: buf.len(),
                    max: PACKAGE_LINE_BYTES_MAX,
                }
            } else {
                PackageErrorKind::NoFinalNewline
            };
            let e = PackageError { line, kind };
            return Ok(outcome.with_failure(Failure::of_package(&e)));
        }
        // Whatever the bytes are, they were read: a line that is not UTF-8 is a damaged line.
        let Ok(text) = std::str::from_utf8(&buf) else {
            let e = PackageError {
                line,
                kind: PackageErrorKind::MalformedEntry("not UTF-8".into()),
            };
            return Ok(outcome.with_failure(Failure::of_package(&e)));
        };
        if let Err(e) = verifier.push_line(text) {
            return Ok(outcome.with_failure(Failure::of_package(&e)));
        }
        // The latest capture time of the records proven, for the witnesses' signed time (the
        // line was just verified, so its record's capture time is the one hashed and signed).
        if let Some(captured) = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| v.get("record")?.get("captured_at_us")?.as_u64())
        {
            outcome.captured_max_us = outcome.captured_max_us.max(Some(captured));
        }
    }
    match verifier.finish() {
        Err(e) => outcome.failure = Some(Failure::of_package(&e)),
        Ok(report) => {
            outcome.tenant = Some(report.tenant.to_string());
            outcome.origin = Some(report.origin.clone());
            if outcome.verified_at(
                trust,
                &report.origin,
                &report.keys,
                report.checkpoint_size.get(),
                report.checkpoint_root,
            ) {
                outcome.records = Some(report.records);
                outcome.proven.push(format!(
                    "{} record(s) concerning subject {:?} ({} decision(s), {} erasure(s)) are in the log: each hash, signature and key interval checked, each inclusion proof leads to the signed checkpoint of size {} (root {}, signed by key {})",
                    report.records,
                    report.subject_ref,
                    report.decisions,
                    report.erasures,
                    report.checkpoint_size,
                    report.checkpoint_root,
                    report.checkpoint_key_id
                ));
                outcome.proven.push(format!(
                    "every record is the subject's: a decision or erasure naming the subject, or linked to one of the subject's decisions; erasable values: {} matched their commitments, {} withheld, {} erased",
                    report.values_verified, report.values_withheld, report.fields_erased
                ));
                outcome.proven.push(
                    "a package proves that these records are in the log; only an export proves that none concerning the subject is missing".into(),
                );
            }
        }
    }
    Ok(outcome)
}

/// Verifies a whole-ledger export held in memory, sequentially, with the checks of
/// [`ExportVerifier`], which the command line's parallel verifier is tested to match; the
/// export's published key history must agree with a trusted one of its origin.
pub fn verify_export(bytes: &[u8], name: &str, trust: &Trust) -> Outcome {
    let mut outcome = Outcome::new("export", name.to_owned());
    let mut verifier = ExportVerifier::new(&trust.vkeys);
    let mut from_seq = 0;
    let mut failed = None;
    for (i, raw) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
        let line_no = i as u64 + 1;
        let (line, terminated) = match raw.strip_suffix(b"\n") {
            Some(line) => (line, true),
            None => (raw, false),
        };
        // The bytes are judged in the command line's order (`src/verify_cli/export.rs`): length,
        // control characters, the final newline, and only then UTF-8 — so that a damaged file
        // gets the same failure in both verifiers. For the header, a line too long or not UTF-8
        // means the file is not an export.
        let not_an_export = || {
            let mut f = Failure::new(
                "malformed_header",
                "not an Auditex export: the first line is not a JSON export header",
            );
            f.line = Some(1);
            f
        };
        let bad = if line.len() > EXPORT_LINE_BYTES_MAX {
            if line_no == 1 {
                return outcome.with_failure(not_an_export());
            }
            Some(ExportErrorKind::LineTooLong {
                bytes: line.len(),
                max: EXPORT_LINE_BYTES_MAX,
            })
        } else if let Err(kind) = check_line_bytes(line) {
            Some(kind)
        } else if !terminated {
            Some(ExportErrorKind::MissingFinalNewline)
        } else {
            None
        };
        if let Some(kind) = bad {
            failed = Some(ExportError {
                line: line_no,
                kind,
            });
            break;
        }
        let Ok(text) = std::str::from_utf8(line) else {
            if line_no == 1 {
                return outcome.with_failure(not_an_export());
            }
            failed = Some(ExportError {
                line: line_no,
                kind: ExportErrorKind::MalformedRecord("the line is not UTF-8".into()),
            });
            break;
        };
        if let Err(e) = verifier.push_line(text) {
            failed = Some(e);
            break;
        }
        // The header verified: its key history must agree with a trusted one, before any
        // record is judged (the command line's order).
        if line_no == 1
            && let Ok(header) = crate::json::from_str::<crate::export::ExportHeader>(text)
        {
            from_seq = header.from_seq;
            if let Some(history) = trust.history_for(&header.origin)
                && let Err(h) = check_history(history, &header.keys)
            {
                return outcome.with_failure(Failure::history(h));
            }
        }
    }
    let result = match failed {
        Some(e) => Err(e),
        None => verifier.finish(),
    };
    match result {
        Ok(report) => outcome.export_verified(&report, &[], trust),
        Err(e) => outcome.failure = Some(Failure::of_export(&e, from_seq)),
    }
    outcome
}
