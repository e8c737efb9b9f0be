//! `auditex verify package`: a subject access package (FORMAT.md section 12b), read a line at a
//! time from a file or standard input and verified by `ledger::evidence::verify_package` (the
//! in-browser verifier's own code).

use std::path::Path;
use std::time::Instant;

use ledger::evidence;

use super::{Outcome, Unusable, VerifyOptions, elapsed_ms, load_trust};

/// Verifies the package in `file`.
pub(super) fn verify_package_file(
    file: &Path,
    options: &VerifyOptions,
) -> Result<Outcome, Unusable> {
    let started = Instant::now();
    let trust = load_trust(options)?;
    let input = super::open_input(file)?;
    let mut outcome = evidence::verify_package(input, &file.display().to_string(), &trust)?;
    outcome.elapsed_ms = elapsed_ms(started);
    Ok(outcome)
}
