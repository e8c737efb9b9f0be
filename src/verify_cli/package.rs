//! `auditex verify package`: a subject access package (FORMAT.md section 12b), read a line at a
//! time. The header's checkpoint must open under a trusted key exactly as a bundle's does, every
//! entry passes the bundle's per-entry checks, entries are in increasing sequence order and each
//! concerns the subject, and the trailer counts them.

use std::io::{BufRead, Read};
use std::path::Path;
use std::time::Instant;

use ledger::package::{PACKAGE_LINE_BYTES_MAX, PackageError, PackageErrorKind, PackageVerifier};

use super::{Failure, Outcome, Trust, Unusable, VerifyOptions, elapsed_ms};

impl Failure {
    /// The failure of a package, with its line.
    fn of_package(e: &PackageError) -> Failure {
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

/// Verifies the package in `file`.
pub(super) fn verify_package_file(
    file: &Path,
    options: &VerifyOptions,
) -> Result<Outcome, Unusable> {
    let started = Instant::now();
    let trust = Trust::load(options)?;
    let mut input = super::open_input(file)?;
    let mut outcome = Outcome::new("package", file.display().to_string());
    let mut verifier = PackageVerifier::new(&trust.vkeys);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let read = (&mut input)
            .take(PACKAGE_LINE_BYTES_MAX as u64 + 2)
            .read_until(b'\n', &mut buf)
            .map_err(|e| Unusable(format!("reading {}: {e}", file.display())))?;
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
            return Ok(outcome.failed(Failure::of_package(&e), started));
        }
        // Whatever the bytes are, they were read: a line that is not UTF-8 is a damaged line.
        let Ok(text) = std::str::from_utf8(&buf) else {
            let e = PackageError {
                line,
                kind: PackageErrorKind::MalformedEntry("not UTF-8".into()),
            };
            return Ok(outcome.failed(Failure::of_package(&e), started));
        };
        if let Err(e) = verifier.push_line(text) {
            return Ok(outcome.failed(Failure::of_package(&e), started));
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
                &trust,
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
    outcome.elapsed_ms = elapsed_ms(started);
    Ok(outcome)
}
