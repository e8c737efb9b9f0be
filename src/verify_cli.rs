//! `auditex verify`: the offline verifier a regulator runs on evidence, with no server and no
//! database — only the files given and the public keys the regulator trusts.
//!
//! It verifies a C2SP tlog-proof file (one record), a chain-of-custody bundle (one decision and
//! its follow-ups), a whole-ledger export (every record, on every core; see [`export`]), and the
//! consistency of a checkpoint saved earlier with a newer one. Trust comes only from the command
//! line: C2SP verifier keys (`--key`, `--keys FILE`) or the key history that `auditex key
//! history` prints (`--key-history FILE`); the keys listed inside the evidence are checked, never
//! trusted.
//!
//! Exit codes (also in README.md and FORMAT.md, "Verdicts"): 0 everything verified; 1
//! verification failed (the evidence was changed, is incomplete, is not signed by a trusted key,
//! or was read but is not valid evidence of the kind asked for — a changed byte can make evidence
//! into anything, so tampering is never reported as "unreadable"); 2 a file could not be opened
//! or read, or the request was unusable (no trusted key, a malformed trusted key or key history,
//! a grown tree without a consistency proof, bad flags).
//! On failure the output names the first bad record — sequence number, event id, line — with what
//! was expected and what was found.

pub mod export;
mod fast;
mod package;
pub mod tiles;
mod witness;

/// Chains of signed records for the verifiers' unit tests.
#[cfg(test)]
mod test_chain {
    use ledger::keys::RecordSigner;
    use ledger::record::{ChainPosition, Record, UnsignedRecord};
    use ledger::types::{CaptureTime, Hash, Sequence, TenantId};

    /// A decision payload whose input commitment is made from `seq`.
    pub(crate) fn decision(seq: u64) -> serde_json::Value {
        serde_json::json!({
            "model_id": "m", "model_version": "1", "input_commitment": format!("{seq:064x}"),
            "outcome": "approved", "subject_ref": "s", "decided_at": "2026-11-29T08:00:00Z",
            "oversight_mode": "human_on_the_loop",
        })
    }

    /// The records 0..n of a tenant's chain from the genesis, signed by `signer`: record `seq`
    /// is a decision with the payload and erasable fields that `content(seq)` gives, captured
    /// `seq` µs after a fixed time.
    pub(crate) fn signed_chain(
        tenant: &TenantId,
        signer: &RecordSigner,
        n: u64,
        content: impl Fn(
            u64,
        ) -> (
            serde_json::Value,
            std::collections::BTreeMap<String, serde_json::Value>,
        ),
    ) -> Vec<Record> {
        let mut prev = Hash::ZERO;
        (0..n)
            .map(|seq| {
                let (payload, erasable) = content(seq);
                let id = format!("01936f5e-7a2b-7c3d-8e4f-{seq:012x}");
                let draft =
                    ledger::draft::prepare_draft(&id, "decision", &payload, &erasable, || [7; 32])
                        .expect("valid")
                        .draft;
                let at = ChainPosition {
                    seq: Sequence::new(seq).expect("seq"),
                    prev,
                    captured_at: CaptureTime::from_unix_micros(1_795_000_000_000_000 + seq)
                        .expect("time"),
                };
                let record = UnsignedRecord::new(tenant, at, draft, signer.key_id()).sign(signer);
                prev = record.hash;
                record
            })
            .collect()
    }
}

use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, Subcommand};
use ledger::bundle::Bundle;
use ledger::checkpoint::open_checkpoint;
use ledger::evidence::{
    self, CheckpointInfo, Failure, Kind, Outcome, Trust, checkpoint_origin, parse_key_lines, sniff,
};
use ledger::keys::KeyRing;
use ledger::note::{Note, VerifierKey};
use ledger::proof_file::{TLOG_PROOF_BYTES_MAX, TlogProof};
use ledger::verify::verify_checkpoint_consistency;

use export::{ExportCheckError, ExportOptions};

/// Exit code: everything verified.
pub const EXIT_VERIFIED: u8 = 0;
/// Exit code: the evidence does not verify (tampered, incomplete, or not signed by a trusted key).
pub const EXIT_FAILED: u8 = 1;
/// Exit code: the input could not be read, or the request was unusable.
pub const EXIT_UNREADABLE: u8 = 2;

/// Largest checkpoint, key or proof file read, in bytes.
const SMALL_FILE_BYTES_MAX: u64 = 1024 * 1024;

/// Exports at least this long get a progress bar on a terminal.
const PROGRESS_RECORDS_MIN: u64 = 50_000;

/// `auditex verify`: what to verify and whom to trust.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct VerifyArgs {
    /// The kind of evidence. Without one, FILE is verified as whatever it is.
    #[command(subcommand)]
    pub target: Option<VerifyTarget>,
    /// An export, bundle or tlog-proof file (`-` for standard input); its kind is recognized.
    pub file: Option<PathBuf>,
    /// Trust and output options.
    #[command(flatten)]
    pub options: VerifyOptions,
}

/// The kinds of evidence.
#[derive(Debug, Subcommand)]
pub enum VerifyTarget {
    /// A whole-ledger export (JSON Lines): every record, link and signature, the Merkle root.
    Export {
        /// The export file (`-` for standard input).
        file: PathBuf,
        /// A signed checkpoint you saw before (repeatable); a smaller tree now is a rollback,
        /// another root at the same size a fork.
        #[arg(long = "checkpoint", value_name = "FILE")]
        checkpoints: Vec<PathBuf>,
        /// Trust and output options.
        #[command(flatten)]
        options: VerifyOptions,
    },
    /// A chain-of-custody bundle: a decision and its follow-ups, each proven in a checkpoint.
    Bundle {
        /// The bundle file (`-` for standard input).
        file: PathBuf,
        /// Trust and output options.
        #[command(flatten)]
        options: VerifyOptions,
    },
    /// A subject access package (JSON Lines): every record concerning one subject, each proven
    /// in a checkpoint, with the subject's personal data and what was erased.
    Package {
        /// The package file (`-` for standard input).
        file: PathBuf,
        /// Trust and output options.
        #[command(flatten)]
        options: VerifyOptions,
    },
    /// A C2SP tlog-proof file: one record proven in a checkpoint.
    Proof {
        /// The proof file (`-` for standard input).
        file: PathBuf,
        /// Trust and output options.
        #[command(flatten)]
        options: VerifyOptions,
    },
    /// A log served as C2SP tlog-tiles (FORMAT.md section 8a), from its tiles alone: the
    /// checkpoint's root, records (`--leaf`), consistency with a saved checkpoint (`--old`),
    /// or the whole log (`--all`). A private log's API key comes from `AUDITEX_API_KEY`.
    Tiles(tiles::TilesArgs),
    /// Two checkpoints of one log: the newer must extend the older (RFC 9162 consistency).
    Consistency {
        /// The checkpoint saved earlier: a signed note, or an export, bundle or proof file that
        /// holds one.
        #[arg(long, value_name = "FILE")]
        old: PathBuf,
        /// The newer checkpoint, in the same forms.
        #[arg(long, value_name = "FILE")]
        new: PathBuf,
        /// The consistency proof: the consistency-proof file (FORMAT.md) that `auditex proof
        /// --old-size` writes and GET /v1/proofs/consistency serves, or an export from record 0
        /// whose records recompute both trees. Not needed when both checkpoints have the same
        /// size (checked when given).
        #[arg(long, value_name = "FILE")]
        proof: Option<PathBuf>,
        /// Trust and output options.
        #[command(flatten)]
        options: VerifyOptions,
    },
}

/// Whom to trust and how to report.
#[derive(Debug, Clone, Default, Args)]
pub struct VerifyOptions {
    /// A trusted checkpoint verifier key, C2SP vkey form `<origin>+<key id>+<base64>`
    /// (repeatable).
    #[arg(long = "key", value_name = "VKEY")]
    pub keys: Vec<String>,
    /// A file of trusted verifier keys, one per line (`#` starts a comment).
    #[arg(long = "keys", value_name = "FILE")]
    pub keys_file: Option<PathBuf>,
    /// A trusted key history, as `auditex key history` prints it (JSON): its keys are trusted
    /// for the origin it names, with their validity intervals.
    #[arg(long, value_name = "FILE")]
    pub key_history: Option<PathBuf>,
    /// Print the result as JSON on standard output.
    #[arg(long)]
    pub json: bool,
    /// Show a progress bar on standard error even when it is not a terminal.
    #[arg(long, conflicts_with = "no_progress")]
    pub progress: bool,
    /// Never show a progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Threads to verify on (default: every core).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// A trusted witness key, C2SP vkey of type 0x04 as `auditex witness vkey` prints it
    /// (repeatable): the evidence's checkpoint must carry cosignatures of `--quorum` of them.
    #[arg(long = "witness", value_name = "VKEY")]
    pub witnesses: Vec<String>,
    /// How many of the `--witness` keys must have cosigned the checkpoint (default: all).
    #[arg(long, value_name = "N")]
    pub quorum: Option<usize>,
    /// A C2SP tlog-policy file: its logs' keys are trusted, and the checkpoint must be
    /// cosigned by its witnesses as its quorum says.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["witnesses", "quorum"])]
    pub policy: Option<PathBuf>,
}

/// Timing for outcomes: the verdict itself (`ledger::evidence`) has no clock.
trait Timed {
    /// This outcome failed with `failure`, after the time since `started`.
    fn failed(self, failure: Failure, started: Instant) -> Outcome;
}

impl Timed for Outcome {
    fn failed(self, failure: Failure, started: Instant) -> Outcome {
        let mut outcome = self.with_failure(failure);
        outcome.elapsed_ms = elapsed_ms(started);
        outcome
    }
}

/// Input that could not be used: exit code 2.
#[derive(Debug)]
struct Unusable(String);

impl<E: std::fmt::Display> From<E> for Unusable {
    fn from(e: E) -> Self {
        Unusable(e.to_string())
    }
}

/// The keys the caller trusts, from the options.
fn load_trust(options: &VerifyOptions) -> Result<Trust, Unusable> {
    let mut trust = Trust::default();
    for text in &options.keys {
        let vkey =
            VerifierKey::parse(text.trim()).map_err(|e| Unusable(format!("--key {text}: {e}")))?;
        trust.vkeys.push(vkey);
    }
    if let Some(path) = &options.keys_file {
        let text = read_small_text(path)?;
        let keys = parse_key_lines(&text)
            .map_err(|(line, e)| Unusable(format!("{} line {line}: {e}", path.display())))?;
        trust.vkeys.extend(keys);
    }
    if let Some(path) = &options.key_history {
        let text = read_small_text(path)?;
        trust.add_key_history(&text, &path.display().to_string())?;
    }
    if let Some(path) = &options.policy {
        let policy = ledger::policy::Policy::parse(&read_small_text(path)?)
            .map_err(|e| Unusable(format!("{}: {e}", path.display())))?;
        for log in policy.logs() {
            if !trust.vkeys.contains(log) {
                trust.vkeys.push(log.clone());
            }
        }
    }
    if trust.vkeys.is_empty() {
        return Err(Unusable(
            "no trusted key: pass --key VKEY, --keys FILE, --key-history FILE or a --policy \
             listing logs (the keys inside the evidence are checked, never trusted)"
                .into(),
        ));
    }
    Ok(trust)
}

fn read_small_bytes(path: &Path) -> Result<Vec<u8>, Unusable> {
    let mut bytes = Vec::new();
    open_input(path)?
        .take(SMALL_FILE_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Unusable(format!("{}: {e}", path.display())))?;
    if bytes.len() as u64 > SMALL_FILE_BYTES_MAX {
        return Err(Unusable(format!(
            "{}: larger than {SMALL_FILE_BYTES_MAX} bytes",
            path.display()
        )));
    }
    Ok(bytes)
}

fn read_small_text(path: &Path) -> Result<String, Unusable> {
    String::from_utf8(read_small_bytes(path)?)
        .map_err(|_| Unusable(format!("{}: not UTF-8 text", path.display())))
}

/// Opens a file, or standard input for `-`.
fn open_input(path: &Path) -> Result<Box<dyn BufRead + Send>, Unusable> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(BufReader::new(std::io::stdin())));
    }
    let file = std::fs::File::open(path)
        .map_err(|e| Unusable(format!("cannot open {}: {e}", path.display())))?;
    Ok(Box::new(BufReader::with_capacity(1 << 20, file)))
}

/// Runs `auditex verify` and returns its exit code.
pub fn run(args: VerifyArgs) -> u8 {
    // Each kind's outcome, the options it ran with, and the file whose checkpoint the witness
    // policy judges (the tiles mode keeps the served checkpoint in its outcome instead).
    let (outcome, options, evidence): (_, VerifyOptions, Option<PathBuf>) = match args.target {
        Some(VerifyTarget::Export {
            file,
            checkpoints,
            options,
        }) => (
            verify_export_file(&file, &checkpoints, &options),
            options,
            Some(file),
        ),
        Some(VerifyTarget::Bundle { file, options }) => {
            (verify_bundle_file(&file, &options), options, Some(file))
        }
        Some(VerifyTarget::Proof { file, options }) => {
            (verify_proof_file(&file, &options), options, Some(file))
        }
        Some(VerifyTarget::Package { file, options }) => (
            package::verify_package_file(&file, &options),
            options,
            Some(file),
        ),
        Some(VerifyTarget::Tiles(tiles)) => {
            (tiles::verify_tiles(&tiles), tiles.options.clone(), None)
        }
        Some(VerifyTarget::Consistency {
            old,
            new,
            proof,
            options,
        }) => (
            verify_consistency(&old, &new, proof.as_deref(), &options),
            options,
            Some(new),
        ),
        None => match &args.file {
            Some(file) => (
                verify_any(file, &args.options),
                args.options.clone(),
                Some(file.clone()),
            ),
            None => (
                Err(Unusable(
                    "nothing to verify: give a file, or one of export, bundle, proof, consistency, tiles (see --help)"
                        .into(),
                )),
                args.options.clone(),
                None,
            ),
        },
    };
    let outcome = outcome.and_then(|o| witness::apply(o, &options, evidence.as_deref()));
    report(outcome, options.json)
}

fn verify_any(file: &Path, options: &VerifyOptions) -> Result<Outcome, Unusable> {
    let kind = {
        let mut input = open_input(file)?;
        let start = input
            .fill_buf()
            .map_err(|e| Unusable(format!("{}: {e}", file.display())))?;
        sniff(start)
    };
    if file.as_os_str() == "-" && kind.is_some() {
        // The sniffed bytes were consumed from the pipe with the reader; standard input can be
        // read only once.
        return Err(Unusable(
            "standard input cannot be recognized and then read: name the kind (auditex verify export -)"
                .into(),
        ));
    }
    match kind {
        Some(Kind::Export) => verify_export_file(file, &[], options),
        Some(Kind::Bundle) => verify_bundle_file(file, options),
        Some(Kind::Package) => package::verify_package_file(file, options),
        Some(Kind::TlogProof) => verify_proof_file(file, options),
        // Read, but recognized as no kind of evidence: not verified (exit 1), as any damaged
        // evidence would be — a changed byte can make a file unrecognizable.
        None => Ok(evidence::not_evidence(&file.display().to_string())),
    }
}

fn progress_bar(options: &VerifyOptions, total: u64) -> Option<indicatif::ProgressBar> {
    let wanted = options.progress
        || (!options.no_progress
            && total >= PROGRESS_RECORDS_MIN
            && std::io::stderr().is_terminal());
    if !wanted {
        return None;
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    let style = indicatif::ProgressStyle::with_template(
        "verifying {wide_bar} {human_pos}/{human_len} records  {per_sec}  eta {eta}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    Some(bar)
}

fn thread_pool(options: &VerifyOptions) -> Result<rayon::ThreadPool, Unusable> {
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(n) = options.threads {
        if n == 0 {
            return Err(Unusable("--threads must be at least 1".into()));
        }
        builder = builder.num_threads(n);
    }
    builder
        .build()
        .map_err(|e| Unusable(format!("cannot start the verifier threads: {e}")))
}

fn verify_export_file(
    file: &Path,
    checkpoint_files: &[PathBuf],
    options: &VerifyOptions,
) -> Result<Outcome, Unusable> {
    let started = Instant::now();
    let mut seen = Vec::with_capacity(checkpoint_files.len());
    for path in checkpoint_files {
        match checkpoint_note_of(path)? {
            Ok(note) => seen.push(note),
            Err(f) => {
                return Ok(Outcome::new("export", file.display().to_string()).failed(f, started));
            }
        }
    }
    verify_export_with(file, &seen, options)
}

/// Verifies the export in `file`, comparing its tree with the checkpoints in `seen`.
fn verify_export_with(
    file: &Path,
    seen: &[String],
    options: &VerifyOptions,
) -> Result<Outcome, Unusable> {
    let started = Instant::now();
    let trust = load_trust(options)?;
    let input = open_input(file)?;
    let pool = thread_pool(options)?;
    let bar: std::sync::OnceLock<Option<indicatif::ProgressBar>> = std::sync::OnceLock::new();
    let mut on_start = |total: u64| {
        let _ = bar.set(progress_bar(options, total));
    };
    let on_records = |n: u64| {
        if let Some(Some(b)) = bar.get() {
            b.inc(n);
        }
    };
    let export_options = ExportOptions {
        trusted: &trust.vkeys,
        history: trust
            .history
            .as_ref()
            .map(|(origin, keys)| (origin.as_str(), keys.as_slice())),
        seen,
        chunk_records: 0,
    };
    let result =
        pool.install(|| export::verify_export(input, &export_options, &mut on_start, &on_records));
    if let Some(Some(b)) = bar.get() {
        b.finish_and_clear();
    }
    let mut outcome = Outcome::new("export", file.display().to_string());
    match result {
        Ok(verified) => outcome.export_verified(&verified.report, &verified.seen_agreed, &trust),
        Err(ExportCheckError::Io(e)) => {
            return Err(Unusable(format!("reading {}: {e}", file.display())));
        }
        Err(ExportCheckError::NotAnExport(why)) => {
            // Read, but not an export: judged like a damaged header (exit 1), since a changed
            // byte of the header makes an export into "not an export".
            let mut f = Failure::new("malformed_header", format!("not an Auditex export: {why}"));
            f.line = Some(1);
            outcome.failure = Some(f);
        }
        Err(ExportCheckError::Unanswerable(why)) => return Err(Unusable(why)),
        Err(ExportCheckError::Failed { error, from_seq }) => {
            outcome.failure = Some(Failure::of_export(&error, from_seq));
        }
        Err(ExportCheckError::History(h)) => outcome.failure = Some(Failure::history(h)),
    }
    outcome.elapsed_ms = elapsed_ms(started);
    Ok(outcome)
}

fn verify_bundle_file(file: &Path, options: &VerifyOptions) -> Result<Outcome, Unusable> {
    let started = Instant::now();
    let trust = load_trust(options)?;
    let mut bytes = Vec::new();
    open_input(file)?
        .take(ledger::bundle::BUNDLE_BYTES_MAX as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Unusable(format!("reading {}: {e}", file.display())))?;
    let mut outcome = evidence::verify_bundle(&bytes, &file.display().to_string(), &trust);
    outcome.elapsed_ms = elapsed_ms(started);
    Ok(outcome)
}

fn verify_proof_file(file: &Path, options: &VerifyOptions) -> Result<Outcome, Unusable> {
    let started = Instant::now();
    let trust = load_trust(options)?;
    let mut bytes = Vec::new();
    open_input(file)?
        .take(TLOG_PROOF_BYTES_MAX as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Unusable(format!("reading {}: {e}", file.display())))?;
    let mut outcome = evidence::verify_proof(&bytes, &file.display().to_string(), &trust)?;
    outcome.elapsed_ms = elapsed_ms(started);
    Ok(outcome)
}

/// The signed checkpoint in a file: a bare note, or the one inside an export, bundle or proof.
/// The outer error is a file that could not be read (exit 2); the inner one a file that was read
/// but holds no well-formed checkpoint (exit 1: damage, judged as a verification failure).
fn checkpoint_note_of(path: &Path) -> Result<Result<String, Failure>, Unusable> {
    let mut input = open_input(path)?;
    let kind = sniff(
        input
            .fill_buf()
            .map_err(|e| Unusable(format!("{}: {e}", path.display())))?,
    );
    let malformed = |what: String| {
        Failure::new(
            "malformed_checkpoint",
            format!("{}: {what}", path.display()),
        )
    };
    let read_all = |input: Box<dyn BufRead + Send>, max: usize| {
        let mut bytes = Vec::new();
        input
            .take(max as u64 + 1)
            .read_to_end(&mut bytes)
            .map(|_| bytes)
            .map_err(|e| Unusable(format!("{}: {e}", path.display())))
    };
    Ok(match kind {
        Some(kind @ (Kind::Export | Kind::Package)) => {
            let (what, max) = if kind == Kind::Export {
                ("export", ledger::export::EXPORT_LINE_BYTES_MAX)
            } else {
                ("package", ledger::package::PACKAGE_LINE_BYTES_MAX)
            };
            let mut line = Vec::new();
            input
                .take(max as u64 + 1)
                .read_until(b'\n', &mut line)
                .map_err(|e| Unusable(format!("{}: {e}", path.display())))?;
            let Some(line) = line.strip_suffix(b"\n") else {
                return Ok(Err(malformed(format!("the {what} header has no newline"))));
            };
            if let Err(e) = ledger::export::check_line_bytes(line) {
                return Ok(Err(malformed(format!("malformed {what} header: {e}"))));
            }
            let checkpoint = if kind == Kind::Export {
                ledger::json::from_slice::<ledger::export::ExportHeader>(line)
                    .map(|header| header.checkpoint)
            } else {
                ledger::json::from_slice::<ledger::package::PackageHeader>(line)
                    .map(|header| header.checkpoint)
            };
            checkpoint.map_err(|e| malformed(format!("malformed {what} header: {e}")))
        }
        Some(Kind::Bundle) => {
            let bytes = read_all(input, ledger::bundle::BUNDLE_BYTES_MAX)?;
            Bundle::from_json(&bytes)
                .map(|bundle| bundle.checkpoint)
                .map_err(|e| malformed(format!("malformed bundle: {e}")))
        }
        Some(Kind::TlogProof) => {
            let bytes = read_all(input, TLOG_PROOF_BYTES_MAX)?;
            TlogProof::parse(&bytes)
                .map(|proof| proof.checkpoint().to_owned())
                .map_err(|e| malformed(format!("malformed proof file: {e}")))
        }
        None => {
            let bytes = read_all(input, SMALL_FILE_BYTES_MAX as usize)?;
            match Note::parse(&bytes) {
                // Note::parse accepted the bytes, so they are UTF-8.
                Ok(_) => String::from_utf8(bytes).map_err(|_| malformed("not UTF-8".into())),
                Err(e) => Err(malformed(format!(
                    "not a signed checkpoint, export, bundle or proof file: {e}"
                ))),
            }
        }
    })
}

/// What `--proof` of `verify consistency` holds.
enum ConsistencyEvidence {
    /// A consistency-proof file (FORMAT.md), parsed.
    File(ledger::consistency_file::ConsistencyProofFile),
    /// An export from record 0, whose records recompute both trees.
    Export(PathBuf),
}

/// Reads `--proof`: a consistency-proof file, or an export. A file that was read but is neither
/// is a failure (exit 1), never "unreadable".
fn read_consistency_evidence(
    path: &Path,
) -> Result<Result<ConsistencyEvidence, Failure>, Unusable> {
    let is_export = {
        let mut input = open_input(path)?;
        let start = input
            .fill_buf()
            .map_err(|e| Unusable(format!("{}: {e}", path.display())))?;
        sniff(start) == Some(Kind::Export)
    };
    if is_export {
        if path.as_os_str() == "-" {
            return Err(Unusable(
                "an export given as --proof cannot be read from standard input".into(),
            ));
        }
        return Ok(Ok(ConsistencyEvidence::Export(path.to_owned())));
    }
    let mut bytes = Vec::new();
    open_input(path)?
        .take(ledger::consistency_file::CONSISTENCY_PROOF_BYTES_MAX as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Unusable(format!("reading {}: {e}", path.display())))?;
    Ok(
        ledger::consistency_file::ConsistencyProofFile::parse(&bytes)
            .map(ConsistencyEvidence::File)
            .map_err(|e| Failure::new("malformed_proof", format!("{}: {e}", path.display()))),
    )
}

/// FORMAT.md section 9: a checkpoint signed by a key outside its interval is rejected. With a
/// trusted key history for the checkpoint's origin the intervals come from it; with a single
/// trusted key of that origin and no history, that key is taken as valid for every size (as for
/// a tlog-proof file); several keys without a history cannot be told apart in time (exit 2).
fn check_checkpoint_interval(
    verified: &ledger::checkpoint::VerifiedCheckpoint,
    trust: &Trust,
    label: &str,
) -> Result<Result<(), Failure>, Unusable> {
    let checkpoint = verified.checkpoint();
    let origin = checkpoint.origin();
    let ring = match trust.history_for(origin) {
        Some(keys) => KeyRing::new(keys.to_vec())?,
        None => {
            let named = trust.vkeys.iter().filter(|k| k.name() == origin).count();
            if named > 1 {
                return Err(Unusable(format!(
                    "several trusted keys are named {origin:?}: pass --key-history so that the validity interval of the key that signed each checkpoint can be checked"
                )));
            }
            return Ok(Ok(()));
        }
    };
    if ledger::verify::checkpoint_signing_key(verified, &ring, origin).is_some() {
        return Ok(Ok(()));
    }
    Ok(Err(Failure::new(
        "checkpoint_key_outside_interval",
        format!(
            "the {label} checkpoint (size {}) is not signed by a key whose validity interval allows a checkpoint of that size",
            checkpoint.size()
        ),
    )
    .expected_found(
        format!(
            "a signature by the key that the key history makes current at size {}",
            checkpoint.size()
        ),
        "only signatures by keys retired before, or introduced after, that size".to_owned(),
    )))
}

fn verify_consistency(
    old: &Path,
    new: &Path,
    proof: Option<&Path>,
    options: &VerifyOptions,
) -> Result<Outcome, Unusable> {
    let started = Instant::now();
    let trust = load_trust(options)?;
    let outcome = Outcome::new(
        "consistency",
        format!("{} -> {}", old.display(), new.display()),
    );
    let mut opened = Vec::new();
    for (label, path) in [("old", old), ("new", new)] {
        let note = match checkpoint_note_of(path)? {
            Ok(note) => note,
            Err(f) => return Ok(outcome.failed(f, started)),
        };
        let origin = checkpoint_origin(note.as_bytes()).unwrap_or_default();
        match open_checkpoint(note.as_bytes(), &trust.vkeys, Some(&origin)) {
            Ok(c) => {
                if let Err(f) = check_checkpoint_interval(&c, &trust, label)? {
                    return Ok(outcome.failed(f, started));
                }
                opened.push((note, c.into_checkpoint()));
            }
            Err(e) => {
                return Ok(outcome.failed(
                    Failure::new(
                        "checkpoint_not_trusted",
                        format!("the {label} checkpoint ({}): {e}", path.display()),
                    )
                    .expected_found("a checkpoint signed by a trusted key", e.to_string()),
                    started,
                ));
            }
        }
    }
    let mut outcome = outcome;
    let (Some((new_note, newer)), Some((old_note, older))) = (opened.pop(), opened.pop()) else {
        return Err(Unusable("two checkpoints are needed".into()));
    };
    outcome.origin = Some(newer.origin().to_owned());
    outcome.checkpoint = Some(CheckpointInfo::of(&newer));

    // Size and root alone settle rollbacks and forks; only growth needs a proof. A proof given
    // anyway is checked all the same: nothing supplied goes unchecked.
    let needs_proof =
        older.origin() == newer.origin() && newer.size() > older.size() && older.size().get() > 0;
    // A rollback, a fork or two logs is named as such, before any proof file is looked at.
    if !needs_proof && let Err(e) = verify_checkpoint_consistency(&older, &newer, &[]) {
        return Ok(outcome.failed(Failure::of_consistency(&e), started));
    }
    let evidence = match proof {
        Some(p) => match read_consistency_evidence(p)? {
            Ok(e) => Some(e),
            Err(f) => return Ok(outcome.failed(f, started)),
        },
        None if needs_proof => {
            return Err(Unusable(format!(
                "a consistency proof is needed from size {} to {}: pass --proof FILE (from `auditex proof --tenant T --old-size {}` or GET /v1/proofs/consistency?from={}) or an export from record 0",
                older.size(),
                newer.size(),
                older.size(),
                older.size()
            )));
        }
        None => None,
    };
    let result = if let Some(ConsistencyEvidence::Export(path)) = &evidence {
        let export_outcome = verify_export_with(path, &[old_note, new_note], options)?;
        match export_outcome.failure {
            Some(f) => Err(f),
            None => Ok(format!(
                "both trees were recomputed from the records of {}: the checkpoint of size {} is a prefix of the one of size {}",
                path.display(),
                older.size(),
                newer.size()
            )),
        }
    } else {
        let hashes = match &evidence {
            Some(ConsistencyEvidence::File(file)) => {
                match file.check_against(&older, &newer, &trust.vkeys) {
                    Ok(hashes) => hashes.to_vec(),
                    Err(e) => {
                        return Ok(
                            outcome.failed(Failure::new("proof_mismatch", e.to_string()), started)
                        );
                    }
                }
            }
            _ => Vec::new(),
        };
        verify_checkpoint_consistency(&older, &newer, &hashes)
            .map(|()| {
                format!(
                    "the checkpoint of size {} (root {}) extends the one of size {} (root {}): nothing in the older tree was changed",
                    newer.size(),
                    newer.root(),
                    older.size(),
                    older.root()
                )
            })
            .map_err(|e| Failure::of_consistency(&e))
    };
    match result {
        Ok(proven) => {
            outcome.verified = true;
            outcome.proven.push(proven);
        }
        Err(f) => outcome.failure = Some(f),
    }
    outcome.elapsed_ms = elapsed_ms(started);
    Ok(outcome)
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Prints the outcome and returns the exit code.
fn report(outcome: Result<Outcome, Unusable>, json: bool) -> u8 {
    let mut out = std::io::stdout().lock();
    let code = match &outcome {
        Ok(o) if o.verified => EXIT_VERIFIED,
        Ok(_) => EXIT_FAILED,
        Err(_) => EXIT_UNREADABLE,
    };
    let written = match (&outcome, json) {
        (Ok(o), true) => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(o).unwrap_or_default()
        ),
        (Err(Unusable(why)), true) => writeln!(
            out,
            "{}",
            serde_json::json!({ "verified": false, "error": "could not read input", "message": why })
        ),
        (Ok(o), false) => write_human(&mut out, o),
        (Err(Unusable(why)), false) => {
            let _ = out.flush();
            eprintln!("auditex verify: could not read input: {why}");
            Ok(())
        }
    };
    let _ = written.and_then(|()| out.flush());
    code
}

fn write_human(out: &mut impl Write, o: &Outcome) -> std::io::Result<()> {
    write!(out, "{}", o.report())?;
    let rate = match o.records {
        Some(n) if o.elapsed_ms > 0 && n > 1 => {
            format!(
                " ({:.0} records/s)",
                n as f64 * 1000.0 / o.elapsed_ms as f64
            )
        }
        _ => String::new(),
    };
    writeln!(
        out,
        "  checked in {:.2} s{rate}",
        o.elapsed_ms as f64 / 1000.0
    )
}
