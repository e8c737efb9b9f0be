//! Verifying an export on every core.
//!
//! The export is read line by line on one thread and cut into chunks of records. Each chunk is
//! verified on its own, starting from the anchor of the record before it (parsed by the reader
//! from the previous chunk's last line), with batch signature checks, on a rayon pool: first on
//! the fast path of `fast.rs`, which only accepts, and otherwise by the reference
//! [`ChainVerifier`]. The chunk summaries are then stitched in order, which confirms that each
//! chunk really continues the one before (as [`ChainSummary::then`] does). Workers pull the next
//! chunk from the reader whenever they are free (no barrier between batches of chunks), and
//! memory stays bounded by about two chunks per thread whatever the length of the export.
//!
//! The checks and the error reported are those of the sequential `ledger::export::ExportVerifier`
//! (the tests compare the two on tampered exports): the first failing record in chain order, with
//! its line. On top of that, checkpoints the verifier saw before are compared with the export's
//! tree (rollback, fork), and the export's key history with a trusted one.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use ledger::checkpoint::{Checkpoint, open_checkpoint};
use ledger::export::{
    EXPORT_FORMAT, EXPORT_LINE_BYTES_MAX, ExportError, ExportErrorKind, ExportHeader, ExportReport,
    ExportTrailer,
};
use ledger::keys::{KeyInterval, KeyRing};
use ledger::merkle::{leaf_hash, verify_inclusion};
use ledger::note::VerifierKey;
use ledger::record::Record;
use ledger::types::{Hash, LeafIndex, TenantId, TreeSize};
use ledger::verify::{ChainAnchor, ChainSummary, ChainVerifier, LeafRange, verify_evidence_head};
use rayon::prelude::*;
use serde::Deserialize;

/// Records per chunk verified by one task. Large enough that stitching and the per-chunk
/// signature batch tail cost nothing; small enough that the last chunks keep every core busy.
pub const CHUNK_RECORDS: usize = 2048;

/// How the trailer line starts; a record line starts with `{"v":`.
const TRAILER_PREFIX: &[u8] = b"{\"end\"";

/// What the caller trusts and wants checked besides the export itself.
#[derive(Debug, Clone, Copy)]
pub struct ExportOptions<'a> {
    /// Checkpoint verifier keys the caller trusts.
    pub trusted: &'a [VerifierKey],
    /// A key history the caller trusts and the origin it is for; an export of that origin
    /// must publish a history that agrees with it.
    pub history: Option<(&'a str, &'a [KeyInterval])>,
    /// Signed checkpoints the caller saw before (C2SP notes).
    pub seen: &'a [String],
    /// Records per chunk (0 means [`CHUNK_RECORDS`]).
    pub chunk_records: usize,
}

/// What a verified export proved.
#[derive(Debug, Clone)]
pub struct ExportVerified {
    /// The ledger's report: tenant, range, checkpoint, whether the root was recomputed.
    pub report: ExportReport,
    /// The checkpoints seen before, by size, that the export's tree agrees with.
    pub seen_agreed: Vec<u64>,
}

/// Why an export does not verify, or could not be verified.
#[derive(Debug)]
pub enum ExportCheckError {
    /// The input could not be read.
    Io(std::io::Error),
    /// The input is not an Auditex export at all.
    NotAnExport(String),
    /// The request cannot be answered from this export (for example a seen checkpoint smaller
    /// than the export's range start).
    Unanswerable(String),
    /// The export does not verify: the first failure, as the sequential verifier reports it.
    Failed {
        /// The failure and its line.
        error: ExportError,
        /// The header's `from_seq` (0 when the header itself failed), so that a line number can
        /// be turned into a sequence number.
        from_seq: u64,
    },
    /// The export verifies, but its tree disagrees with a checkpoint seen before.
    History(HistoryFailure),
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

impl From<std::io::Error> for ExportCheckError {
    fn from(e: std::io::Error) -> Self {
        ExportCheckError::Io(e)
    }
}

/// One line as read.
enum Line {
    Text(String),
    TooLong(usize),
    NotUtf8,
}

/// Reads one line into `buf` (without its newline), refusing to buffer more than
/// [`EXPORT_LINE_BYTES_MAX`] bytes of it. Returns `None` at the end of the input.
fn read_line<R: BufRead>(reader: &mut R, buf: &mut Vec<u8>) -> std::io::Result<Option<Line>> {
    buf.clear();
    let limit = EXPORT_LINE_BYTES_MAX as u64 + 1;
    let n = std::io::Read::take(&mut *reader, limit).read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
    } else if buf.len() > EXPORT_LINE_BYTES_MAX {
        // Skip the rest of the line; nothing after a failing line matters.
        let mut bytes = buf.len();
        loop {
            let chunk = reader.fill_buf()?;
            if chunk.is_empty() {
                break;
            }
            let (used, done) = match chunk.iter().position(|b| *b == b'\n') {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            bytes += used - usize::from(done);
            reader.consume(used);
            if done {
                break;
            }
        }
        return Ok(Some(Line::TooLong(bytes)));
    }
    Ok(Some(match String::from_utf8(std::mem::take(buf)) {
        Ok(text) => Line::Text(text),
        Err(_) => Line::NotUtf8,
    }))
}

/// Everything the chunk verifiers share.
struct Context {
    tenant: TenantId,
    ring: KeyRing,
    from_seq: u64,
    size: TreeSize,
}

impl Context {
    fn line_of(&self, seq: u64) -> u64 {
        seq.saturating_sub(self.from_seq).saturating_add(2)
    }
}

/// A run of record lines verified by one task.
struct Chunk {
    first_line: u64,
    first_seq: u64,
    /// The anchor of the record before the chunk; `None` to take the first record's own link
    /// on trust (the first chunk of an export from a later sequence, or after an unparsable
    /// line, which fails first anyway).
    anchor: Option<ChainAnchor>,
    lines: Vec<Line>,
}

/// How the input ended, once it has.
enum Ending {
    /// The trailer line and its line number.
    Trailer(String, u64),
    /// The input ended without a trailer after this many lines.
    Eof(u64),
    /// A line that cannot be a record ended the reading (too long, not UTF-8); its chunk
    /// reports it.
    BadLine,
}

/// The reader's state between chunks.
struct Reader<R> {
    input: R,
    buf: Vec<u8>,
    next_line: u64,
    next_seq: u64,
    next_anchor: Option<ChainAnchor>,
    /// Sizes at which a chunk must end (seen checkpoints), ascending.
    cuts: Vec<u64>,
    chunk_records: usize,
    ending: Option<Ending>,
}

impl<R: BufRead> Reader<R> {
    /// Reads the next chunk; `None` once the records end (see [`Reader::ending`]).
    fn next_chunk(&mut self) -> std::io::Result<Option<Chunk>> {
        while self.ending.is_none() {
            let end_seq = self
                .cuts
                .iter()
                .copied()
                .find(|&c| c > self.next_seq)
                .map_or(u64::MAX, |c| c - self.next_seq);
            let want = usize::try_from(end_seq)
                .unwrap_or(usize::MAX)
                .min(self.chunk_records);
            let mut chunk = Chunk {
                first_line: self.next_line,
                first_seq: self.next_seq,
                anchor: self.next_anchor,
                lines: Vec::with_capacity(want),
            };
            while chunk.lines.len() < want {
                let line_no = self.next_line;
                match read_line(&mut self.input, &mut self.buf)? {
                    None => {
                        self.ending = Some(Ending::Eof(line_no - 1));
                        break;
                    }
                    Some(Line::Text(text)) if text.as_bytes().starts_with(TRAILER_PREFIX) => {
                        self.ending = Some(Ending::Trailer(text, line_no));
                        break;
                    }
                    Some(line) => {
                        let bad = !matches!(line, Line::Text(_));
                        chunk.lines.push(line);
                        self.next_line += 1;
                        self.next_seq += 1;
                        if bad {
                            self.ending = Some(Ending::BadLine);
                            break;
                        }
                    }
                }
            }
            self.next_anchor = match chunk.lines.last() {
                Some(Line::Text(text)) => {
                    Record::from_json(text).ok().map(|r| ChainAnchor::after(&r))
                }
                _ => None,
            };
            if !chunk.lines.is_empty() {
                return Ok(Some(chunk));
            }
        }
        Ok(None)
    }
}

/// What a run of verified records proved: where it started and ended, and the Merkle hashes of
/// its records. The same as a `ChainSummary`, which the fast path cannot build.
struct Segment {
    start: ChainAnchor,
    end: ChainAnchor,
    leaves: LeafRange,
}

impl Segment {
    fn of(summary: ChainSummary) -> Segment {
        Segment {
            start: summary.start(),
            end: summary.end(),
            leaves: summary.leaves().clone(),
        }
    }

    fn records(&self) -> u64 {
        self.end.next_seq - self.start.next_seq
    }

    fn size(&self) -> u64 {
        self.end.next_seq
    }

    /// The Merkle root of the tree of [`Segment::size`] records, when the run started at the
    /// genesis.
    fn root(&self) -> Option<Hash> {
        if self.start.is_genesis() {
            self.leaves.root()
        } else {
            None
        }
    }
}

/// A chunk's result: what its records proved, or the first failure in it.
type ChunkResult = Result<Option<Segment>, ExportError>;

/// Verifies a chunk on the fast path (see `fast.rs`), or with the reference `ChainVerifier`
/// when the fast path declines.
fn verify_chunk(ctx: &Context, chunk: &Chunk) -> ChunkResult {
    if let Some(anchor) = chunk.anchor {
        let lines = chunk.lines.iter().map(|l| match l {
            Line::Text(text) => text.as_str(),
            // Not JSON: the fast path declines and the reference reports it.
            Line::TooLong(_) | Line::NotUtf8 => "",
        });
        if let Some(fast) =
            super::fast::verify_lines(&ctx.tenant, &ctx.ring, ctx.size.get(), anchor, lines)
        {
            return Ok(Some(Segment {
                start: fast.start,
                end: fast.end,
                leaves: fast.leaves,
            }));
        }
    }
    verify_chunk_reference(ctx, chunk)
}

fn verify_chunk_reference(ctx: &Context, chunk: &Chunk) -> ChunkResult {
    let mut chain: Option<ChainVerifier> = None;
    // Reports `kind` at line `n`, unless a pending signature before it fails first.
    let fail = |chain: &mut Option<ChainVerifier>, n: u64, kind: ExportErrorKind| {
        if let Some(c) = chain
            && let Err(e) = c.check_pending()
        {
            return ExportError {
                line: ctx.line_of(e.seq()),
                kind: ExportErrorKind::Chain(e),
            };
        }
        ExportError { line: n, kind }
    };
    for (i, line) in chunk.lines.iter().enumerate() {
        let n = chunk.first_line + i as u64;
        let text = match line {
            Line::Text(text) => text,
            Line::TooLong(bytes) => {
                let kind = ExportErrorKind::LineTooLong {
                    bytes: *bytes,
                    max: EXPORT_LINE_BYTES_MAX,
                };
                return Err(fail(&mut chain, n, kind));
            }
            Line::NotUtf8 => {
                let kind = ExportErrorKind::MalformedRecord("the line is not UTF-8".into());
                return Err(fail(&mut chain, n, kind));
            }
        };
        let record = match Record::from_json(text) {
            Ok(record) => record,
            Err(e) => {
                return Err(fail(
                    &mut chain,
                    n,
                    ExportErrorKind::MalformedRecord(e.to_string()),
                ));
            }
        };
        let seq = record.seq.get();
        if seq >= ctx.size.get() {
            let kind = ExportErrorKind::BeyondCheckpoint {
                seq,
                size: ctx.size,
            };
            return Err(fail(&mut chain, n, kind));
        }
        let verifier = chain.get_or_insert_with(|| {
            let anchor = chunk.anchor.unwrap_or(ChainAnchor {
                next_seq: chunk.first_seq,
                ..ChainAnchor::assumed_for(&record)
            });
            ChainVerifier::from_anchor(ctx.tenant.clone(), ctx.ring.clone(), anchor)
        });
        if let Err(e) = verifier.push(&record) {
            return Err(ExportError {
                line: ctx.line_of(e.seq()),
                kind: ExportErrorKind::Chain(e),
            });
        }
    }
    match chain.map(ChainVerifier::finish) {
        None => Ok(None),
        Some(Ok(summary)) => Ok(Some(Segment::of(summary))),
        Some(Err(e)) => Err(ExportError {
            line: ctx.line_of(e.seq()),
            kind: ExportErrorKind::Chain(e),
        }),
    }
}

/// Joins chunk results in order as they complete.
struct Stitcher {
    /// The index of the next chunk to join.
    next: usize,
    pending: BTreeMap<usize, (Chunk, ChunkResult)>,
    running: Option<Segment>,
    /// Roots of the tree at the sizes of checkpoints seen before.
    roots_at_cuts: Vec<(u64, Hash)>,
    /// The first failure in chain order; nothing after it is joined.
    error: Option<ExportError>,
}

impl Stitcher {
    fn drain(&mut self, ctx: &Context, cuts: &[u64]) {
        while self.error.is_none() {
            let Some((chunk, result)) = self.pending.remove(&self.next) else {
                return;
            };
            self.next += 1;
            let segment = match result {
                Ok(Some(segment)) => segment,
                Ok(None) => continue,
                Err(e) => {
                    self.error = Some(e);
                    break;
                }
            };
            let joined = match self.running.take() {
                None => Ok(segment),
                Some(before) => stitch(ctx, before, segment, &chunk),
            };
            match joined {
                Ok(r) => {
                    if cuts.contains(&r.size())
                        && let Some(root) = r.root()
                    {
                        self.roots_at_cuts.push((r.size(), root));
                    }
                    self.running = Some(r);
                }
                Err(e) => self.error = Some(e),
            }
        }
        self.pending.clear();
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrailerLine {
    end: ExportTrailer,
}

/// Verifies an export read from `input` on the current rayon pool. `on_start` gets the number
/// of records the header announces; `on_records` is called as chunks are verified.
///
/// # Errors
/// [`ExportCheckError`]: unreadable input, not an export, a request the export cannot answer,
/// or the first failure.
pub fn verify_export<R: BufRead + Send>(
    input: R,
    options: &ExportOptions<'_>,
    on_start: &mut dyn FnMut(u64),
    on_records: &(dyn Fn(u64) + Sync),
) -> Result<ExportVerified, ExportCheckError> {
    let mut input = input;
    let mut buf = Vec::new();
    let fail = |line, kind| ExportCheckError::Failed {
        error: ExportError { line, kind },
        from_seq: 0,
    };
    let header_text = match read_line(&mut input, &mut buf)? {
        None => return Err(fail(1, ExportErrorKind::MissingHeader)),
        Some(Line::Text(text)) => text,
        Some(Line::TooLong(_) | Line::NotUtf8) => {
            return Err(ExportCheckError::NotAnExport(
                "the first line is not a JSON export header".into(),
            ));
        }
    };
    let header = parse_header(&header_text)?;
    let head = verify_evidence_head(
        &header.tenant,
        &header.origin,
        &header.checkpoint,
        &header.keys,
        &header.verifier_keys,
        options.trusted,
    )
    .map_err(|e| fail(1, ExportErrorKind::Head(e)))?;
    let size = head.checkpoint.size();
    if header.from_seq > size.get() {
        return Err(fail(
            1,
            ExportErrorKind::StartBeyondCheckpoint {
                from_seq: header.from_seq,
                size,
            },
        ));
    }
    if let Some((origin, trusted)) = options.history
        && origin == header.origin
    {
        check_history(trusted, &header.keys).map_err(ExportCheckError::History)?;
    }
    let from_seq = header.from_seq;
    let fail = |line, kind| ExportCheckError::Failed {
        error: ExportError { line, kind },
        from_seq,
    };
    let failed = |error| ExportCheckError::Failed { error, from_seq };
    let seen = open_seen(options.seen, options.trusted, &header.origin)?;
    if header.from_seq > 0
        && let Some(c) = seen.iter().find(|c| c.size() < size && c.size().get() > 0)
    {
        return Err(ExportCheckError::Unanswerable(format!(
            "the checkpoint of size {} seen before cannot be compared with an export that starts at record {}: use an export from record 0, or `auditex verify consistency` with a proof",
            c.size(),
            header.from_seq
        )));
    }
    on_start(size.get() - header.from_seq);

    let ctx = Context {
        tenant: header.tenant.clone(),
        ring: head.ring.clone(),
        from_seq: header.from_seq,
        size,
    };
    let cuts: Vec<u64> = seen
        .iter()
        .map(|c| c.size().get())
        .filter(|&s| s > header.from_seq && s <= size.get())
        .collect();
    let mut reader = Reader {
        input,
        buf,
        next_line: 2,
        next_seq: header.from_seq,
        next_anchor: (header.from_seq == 0).then(ChainAnchor::genesis),
        cuts: cuts.clone(),
        chunk_records: if options.chunk_records == 0 {
            CHUNK_RECORDS
        } else {
            options.chunk_records
        },
        ending: None,
    };
    // An export from 0 is anchored at the genesis even when it has no records, as the
    // sequential verifier does, so that its (empty) root is compared too.
    let running: Option<Segment> = (header.from_seq == 0).then(|| Segment {
        start: ChainAnchor::genesis(),
        end: ChainAnchor::genesis(),
        leaves: LeafRange::new(0),
    });
    let state = Mutex::new(Stitcher {
        next: 0,
        pending: BTreeMap::new(),
        running,
        roots_at_cuts: Vec::new(),
        error: None,
    });
    let stop = AtomicBool::new(false);
    let mut io_error = None;
    let mut index = 0usize;
    // Workers pull the next chunk from the reader whenever they are free, so reading interleaves
    // with verification without a barrier; results are stitched in order as they complete (at
    // most one pending result per thread).
    let chunks = std::iter::from_fn(|| {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        match reader.next_chunk() {
            Ok(Some(chunk)) => {
                index += 1;
                Some((index - 1, chunk))
            }
            Ok(None) => None,
            Err(e) => {
                io_error = Some(e);
                None
            }
        }
    });
    chunks.par_bridge().for_each(|(i, chunk)| {
        let result = verify_chunk(&ctx, &chunk);
        on_records(chunk.lines.len() as u64);
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        s.pending.insert(i, (chunk, result));
        s.drain(&ctx, &cuts);
        if s.error.is_some() {
            stop.store(true, Ordering::Relaxed);
        }
    });
    if let Some(e) = io_error {
        return Err(ExportCheckError::Io(e));
    }
    let Stitcher {
        running,
        roots_at_cuts,
        error,
        ..
    } = state.into_inner().unwrap_or_else(|p| p.into_inner());
    if let Some(e) = error {
        return Err(failed(e));
    }

    let (trailer_text, trailer_line) = match reader.ending {
        Some(Ending::Trailer(text, line)) => (text, line),
        Some(Ending::Eof(lines)) => {
            return Err(fail(lines + 1, ExportErrorKind::MissingTrailer));
        }
        Some(Ending::BadLine) | None => {
            unreachable!("a bad line fails its chunk, and reading ends only at one of these")
        }
    };
    if read_line(&mut reader.input, &mut reader.buf)?.is_some() {
        return Err(fail(trailer_line + 1, ExportErrorKind::AfterTrailer));
    }
    let report = check_trailer(
        &header,
        &head.checkpoint,
        head.checkpoint_key_id,
        running,
        &trailer_text,
        trailer_line,
    )
    .map_err(failed)?;
    let seen_agreed = compare_seen(&seen, &report, &roots_at_cuts)?;
    Ok(ExportVerified {
        report,
        seen_agreed,
    })
}

/// Parses the header, telling "not an export" (some other file) from a malformed export.
fn parse_header(text: &str) -> Result<ExportHeader, ExportCheckError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|_| {
        ExportCheckError::NotAnExport("the first line is not a JSON export header".into())
    })?;
    if value.get("format").and_then(serde_json::Value::as_str) != Some(EXPORT_FORMAT) {
        return Err(ExportCheckError::NotAnExport(format!(
            "the first line has no \"format\": \"{EXPORT_FORMAT}\""
        )));
    }
    // Parsed again from the text, so that an error carries its position as the sequential
    // verifier's does.
    serde_json::from_str(text).map_err(|e| ExportCheckError::Failed {
        error: ExportError {
            line: 1,
            kind: ExportErrorKind::MalformedHeader(e.to_string()),
        },
        from_seq: 0,
    })
}

/// Joins the summary of `chunk` to everything before it. Every chunk after a verified one was
/// anchored on that one's last record, so this fails only if the reader and the verifier
/// disagree; the chunk's first record is then re-checked from the true anchor to name the error.
fn stitch(
    ctx: &Context,
    mut before: Segment,
    next: Segment,
    chunk: &Chunk,
) -> Result<Segment, ExportError> {
    let end = before.end;
    let joined = if next.start == end {
        before.leaves.append(next.leaves).map(|()| {
            before.end = next.end;
            before
        })
    } else {
        Err(ledger::verify::LeafRangeError {
            end: end.next_seq,
            begin: next.start.next_seq,
        })
    };
    match joined {
        Ok(joined) => Ok(joined),
        Err(stitch_error) => {
            let first = match chunk.lines.first() {
                Some(Line::Text(text)) => Record::from_json(text).ok(),
                _ => None,
            };
            let error = first.and_then(|record| {
                let mut verifier =
                    ChainVerifier::from_anchor(ctx.tenant.clone(), ctx.ring.clone(), end)
                        .with_signature_batch(1);
                verifier.push(&record).err()
            });
            Err(match error {
                Some(e) => ExportError {
                    line: ctx.line_of(e.seq()),
                    kind: ExportErrorKind::Chain(e),
                },
                None => ExportError {
                    line: chunk.first_line,
                    kind: ExportErrorKind::MalformedRecord(stitch_error.to_string()),
                },
            })
        }
    }
}

/// The trailer checks of FORMAT.md section 12, as the sequential verifier makes them.
fn check_trailer(
    header: &ExportHeader,
    checkpoint: &Checkpoint,
    checkpoint_key_id: ledger::keys::KeyId,
    summary: Option<Segment>,
    text: &str,
    n: u64,
) -> Result<ExportReport, ExportError> {
    let fail = |kind| ExportError { line: n, kind };
    let trailer = serde_json::from_str::<TrailerLine>(text)
        .map_err(|e| fail(ExportErrorKind::MalformedTrailer(e.to_string())))?
        .end;
    let records = summary.as_ref().map_or(0, Segment::records);
    if trailer.records != records {
        return Err(fail(ExportErrorKind::RecordCount {
            stated: trailer.records,
            counted: records,
        }));
    }
    let last = summary
        .as_ref()
        .filter(|s| s.records() > 0)
        .map(|s| (s.size() - 1, s.end.prev));
    let last_seq = last.map(|(seq, _)| seq);
    if trailer.last_seq != last_seq {
        return Err(fail(ExportErrorKind::LastSeq {
            stated: trailer.last_seq,
            counted: last_seq,
        }));
    }
    let size = checkpoint.size();
    let expected = size.get() - header.from_seq;
    if records != expected {
        return Err(fail(ExportErrorKind::Incomplete {
            from_seq: header.from_seq,
            size,
            expected,
            found: records,
        }));
    }
    match last {
        Some((seq, hash)) => verify_inclusion(
            leaf_hash(hash.as_bytes()),
            LeafIndex::new(seq),
            size,
            &trailer.inclusion_proof,
            checkpoint.root(),
        )
        .map_err(|source| fail(ExportErrorKind::Inclusion { seq, source }))?,
        None if !trailer.inclusion_proof.is_empty() => {
            return Err(fail(ExportErrorKind::UnexpectedProof {
                hashes: trailer.inclusion_proof.len(),
            }));
        }
        None => {}
    }
    let root = summary.as_ref().and_then(Segment::root);
    if let Some(computed) = root
        && computed != checkpoint.root()
    {
        return Err(fail(ExportErrorKind::RootMismatch {
            size,
            expected: checkpoint.root(),
            computed,
        }));
    }
    Ok(ExportReport {
        tenant: header.tenant.clone(),
        origin: header.origin.clone(),
        from_seq: header.from_seq,
        records,
        last_seq,
        last_hash: last.map(|(_, hash)| hash),
        checkpoint_size: size,
        checkpoint_root: checkpoint.root(),
        checkpoint_key_id,
        root_recomputed: root.is_some(),
    })
}

/// Opens checkpoints seen before with the trusted keys; they must be of the export's log.
pub fn open_seen(
    notes: &[String],
    trusted: &[VerifierKey],
    origin: &str,
) -> Result<Vec<Checkpoint>, ExportCheckError> {
    let mut seen = Vec::with_capacity(notes.len());
    for (i, note) in notes.iter().enumerate() {
        let c = open_checkpoint(note.as_bytes(), trusted, Some(origin)).map_err(|e| {
            ExportCheckError::History(HistoryFailure {
                kind: "seen_checkpoint",
                seq: None,
                expected: format!("a checkpoint of {origin} signed by a trusted key"),
                found: e.to_string(),
                message: format!("checkpoint seen before #{}: {e}", i + 1),
            })
        })?;
        seen.push(c.into_checkpoint());
    }
    seen.sort_by_key(|c| c.size());
    Ok(seen)
}

/// Compares checkpoints seen before with the export's tree: larger is a rollback, another root
/// at the same size a fork. Returns the sizes that agree.
fn compare_seen(
    seen: &[Checkpoint],
    report: &ExportReport,
    roots_at_cuts: &[(u64, Hash)],
) -> Result<Vec<u64>, ExportCheckError> {
    let size = report.checkpoint_size.get();
    let mut agreed = Vec::new();
    let mut agreed_through = report.from_seq;
    for c in seen {
        let m = c.size().get();
        if m > size {
            return Err(ExportCheckError::History(HistoryFailure {
                kind: "rolled_back",
                seq: Some(size),
                expected: format!("a tree of at least {m} records, as seen before"),
                found: format!("a checkpoint of size {size}"),
                message: format!(
                    "the log was rolled back: a checkpoint of size {m} was seen before, but the export's checkpoint has size {size}; records {size}..{} are gone",
                    m - 1
                ),
            }));
        }
        let computed = if m == size {
            Some(report.checkpoint_root)
        } else if m == 0 {
            Some(ledger::merkle::empty_root())
        } else {
            roots_at_cuts.iter().find(|(s, _)| *s == m).map(|(_, r)| *r)
        };
        let Some(computed) = computed else {
            // Only an export from a later sequence lacks the root, and that was refused before.
            continue;
        };
        if computed != c.root() {
            return Err(ExportCheckError::History(HistoryFailure {
                kind: "fork",
                seq: Some(agreed_through),
                expected: format!("root {} at tree size {m}, as seen before", c.root()),
                found: format!("root {computed}"),
                message: format!(
                    "the log forked: a checkpoint seen before commits to another tree of size {m}; the histories agree up to size {agreed_through}, so records from {agreed_through} on differ"
                ),
            }));
        }
        agreed.push(m);
        agreed_through = agreed_through.max(m);
    }
    Ok(agreed)
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
