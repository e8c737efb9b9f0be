//! Verifying an export on every core.
//!
//! The export is cut into chunks of records as it is read. Reading is the only part that cannot
//! run in parallel, so it is kept to what must be done in order: each chunk's lines are appended
//! to one buffer (reused from chunk to chunk, not one allocation per line) and the last line is
//! parsed, for the anchor the next chunk starts from. Everything else about a line — checking
//! that it is UTF-8, parsing it, hashing, signature checks — happens in the worker that verifies
//! its chunk on a rayon pool: first on the fast path of `fast.rs`, which only accepts, and
//! otherwise by the reference [`ChainVerifier`]. The chunk summaries are then stitched in order,
//! which confirms that each chunk really continues the one before (as [`ChainSummary::then`]
//! does). Workers pull the next chunk from the reader whenever they are free (no barrier between
//! batches of chunks), chunks get smaller towards the end so that the cores finish together, and
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
use ledger::evidence::{HistoryFailure, check_history};
use ledger::export::{
    EXPORT_FORMAT, EXPORT_LINE_BYTES_MAX, ExportError, ExportErrorKind, ExportHeader, ExportReport,
    ExportTrailer, RecordsRead, VerifiedExportHeader, check_line_bytes,
};
use ledger::keys::{KeyInterval, KeyRing};
use ledger::note::VerifierKey;
use ledger::record::Record;
use ledger::types::{EventId, Hash, TenantId, TreeSize};
use ledger::verify::{
    ChainAnchor, ChainError, ChainSummary, ChainVerifier, LeafRange, SIGNATURE_BATCH_RECORDS,
};
use rayon::prelude::*;

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

impl From<std::io::Error> for ExportCheckError {
    fn from(e: std::io::Error) -> Self {
        ExportCheckError::Io(e)
    }
}

/// What [`read_line`] appended to its buffer.
enum RawLine {
    /// A line, from this index of the buffer to its end (without the newline).
    Line(usize),
    /// The last line of the input, which ends without a newline, from this index of the buffer.
    Unterminated(usize),
    /// A line longer than [`EXPORT_LINE_BYTES_MAX`], of this many bytes; nothing was kept.
    TooLong(usize),
}

/// Appends one line to `buf` (without its newline), refusing to buffer more than
/// [`EXPORT_LINE_BYTES_MAX`] bytes of it. Returns `None` at the end of the input.
fn read_line<R: BufRead>(reader: &mut R, buf: &mut Vec<u8>) -> std::io::Result<Option<RawLine>> {
    let start = buf.len();
    let limit = EXPORT_LINE_BYTES_MAX as u64 + 1;
    let n = std::io::Read::take(&mut *reader, limit).read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
    } else if buf.len() - start <= EXPORT_LINE_BYTES_MAX {
        return Ok(Some(RawLine::Unterminated(start)));
    } else {
        // Skip the rest of the line; nothing after a failing line matters.
        let mut bytes = buf.len() - start;
        buf.truncate(start);
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
        return Ok(Some(RawLine::TooLong(bytes)));
    }
    Ok(Some(RawLine::Line(start)))
}

/// One line of a chunk, as the verifiers see it.
enum Line<'a> {
    Text(&'a str),
    TooLong(usize),
    NotUtf8,
}

/// The lines of a chunk in one buffer. The reader only appends bytes; whether a line is UTF-8
/// is decided by the worker that verifies it.
#[derive(Default)]
struct Lines {
    bytes: Vec<u8>,
    /// Each line's place in `bytes`, without its newline.
    spans: Vec<std::ops::Range<usize>>,
    /// The length of a last line too long to keep (it ends the reading).
    too_long: Option<usize>,
}

impl Lines {
    fn clear(&mut self) {
        self.bytes.clear();
        self.spans.clear();
        self.too_long = None;
    }

    fn len(&self) -> usize {
        self.spans.len() + usize::from(self.too_long.is_some())
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The lines' bytes; a line too long to keep is empty (which no verifier accepts).
    fn raw(&self) -> impl Iterator<Item = &[u8]> {
        let too_long: &[u8] = &[];
        self.spans
            .iter()
            .map(|span| &self.bytes[span.clone()])
            .chain(self.too_long.map(|_| too_long))
    }

    fn text(&self, span: &std::ops::Range<usize>) -> Line<'_> {
        match std::str::from_utf8(&self.bytes[span.clone()]) {
            Ok(text) => Line::Text(text),
            Err(_) => Line::NotUtf8,
        }
    }

    fn iter(&self) -> impl Iterator<Item = Line<'_>> {
        self.spans
            .iter()
            .map(|span| self.text(span))
            .chain(self.too_long.map(Line::TooLong))
    }

    fn first(&self) -> Option<Line<'_>> {
        self.iter().next()
    }

    fn last(&self) -> Option<Line<'_>> {
        match self.too_long {
            Some(bytes) => Some(Line::TooLong(bytes)),
            None => self.spans.last().map(|span| self.text(span)),
        }
    }
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
    lines: Lines,
}

/// How the input ended, once it has.
enum Ending {
    /// The trailer line and its line number.
    Trailer(String, u64),
    /// The input ended without a trailer after this many lines.
    Eof(u64),
    /// A line too long to be a record ended the reading; its chunk reports it.
    BadLine,
    /// A line with a control character, or a last line without a newline, ended the reading
    /// (FORMAT.md section 1: one written form); reported after every earlier line.
    Malformed(u64, ExportErrorKind),
}

/// The reader's state between chunks.
struct Reader<R> {
    input: R,
    next_line: u64,
    next_seq: u64,
    next_anchor: Option<ChainAnchor>,
    /// The checkpoint's size: records from `next_seq` up to it remain.
    size: u64,
    /// Sizes at which a chunk must end (seen checkpoints), ascending.
    cuts: Vec<u64>,
    chunk_records: usize,
    ending: Option<Ending>,
}

impl<R: BufRead> Reader<R> {
    /// How many records the next chunk holds: `chunk_records`, but never past a cut, and
    /// towards the end a share of what remains (down to one signature batch), so that no core
    /// is left verifying a last large chunk alone while the others wait.
    fn next_chunk_records(&self) -> usize {
        let to_cut = self
            .cuts
            .iter()
            .copied()
            .find(|&c| c > self.next_seq)
            .map_or(u64::MAX, |c| c - self.next_seq);
        let threads = rayon::current_num_threads().max(1) as u64;
        let share = self.size.saturating_sub(self.next_seq) / (2 * threads);
        let share = usize::try_from(share)
            .unwrap_or(usize::MAX)
            .next_multiple_of(SIGNATURE_BATCH_RECORDS)
            .max(SIGNATURE_BATCH_RECORDS);
        usize::try_from(to_cut)
            .unwrap_or(usize::MAX)
            .min(self.chunk_records)
            .min(share)
    }

    /// Reads the next chunk into `lines` (a buffer of an earlier chunk, kept for its capacity);
    /// `None` once the records end (see [`Reader::ending`]).
    fn next_chunk(&mut self, mut lines: Lines) -> std::io::Result<Option<Chunk>> {
        while self.ending.is_none() {
            let want = self.next_chunk_records();
            let first_line = self.next_line;
            let first_seq = self.next_seq;
            let anchor = self.next_anchor;
            lines.clear();
            while lines.len() < want {
                let line_no = self.next_line;
                match read_line(&mut self.input, &mut lines.bytes)? {
                    None => {
                        self.ending = Some(Ending::Eof(line_no - 1));
                        break;
                    }
                    Some(RawLine::TooLong(bytes)) => {
                        lines.too_long = Some(bytes);
                        self.next_line += 1;
                        self.next_seq += 1;
                        self.ending = Some(Ending::BadLine);
                        break;
                    }
                    Some(raw @ (RawLine::Line(start) | RawLine::Unterminated(start))) => {
                        let line = &lines.bytes[start..];
                        let bad = match check_line_bytes(line) {
                            Err(kind) => Some(kind),
                            Ok(()) if matches!(raw, RawLine::Unterminated(_)) => {
                                Some(ExportErrorKind::MissingFinalNewline)
                            }
                            Ok(()) => None,
                        };
                        if let Some(kind) = bad {
                            self.ending = Some(Ending::Malformed(line_no, kind));
                            lines.bytes.truncate(start);
                            break;
                        }
                        // The trailer is told from a record by its first bytes; one that is
                        // not UTF-8 is a bad record line, as for the sequential verifier.
                        if line.starts_with(TRAILER_PREFIX)
                            && let Ok(text) = std::str::from_utf8(line)
                        {
                            self.ending = Some(Ending::Trailer(text.to_owned(), line_no));
                            lines.bytes.truncate(start);
                            break;
                        }
                        lines.spans.push(start..lines.bytes.len());
                        self.next_line += 1;
                        self.next_seq += 1;
                    }
                }
            }
            self.next_anchor = match lines.last() {
                Some(Line::Text(text)) => {
                    Record::from_json(text).ok().map(|r| ChainAnchor::after(&r))
                }
                _ => None,
            };
            if !lines.is_empty() {
                return Ok(Some(Chunk {
                    first_line,
                    first_seq,
                    anchor,
                    lines,
                }));
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
    /// The event ids of the run's records with their sequence numbers, in sequence order; the
    /// stitcher checks them against every earlier chunk's (event ids are unique per chain).
    event_ids: Vec<(EventId, u64)>,
}

impl Segment {
    fn of(summary: ChainSummary) -> Segment {
        let mut event_ids: Vec<(EventId, u64)> = summary
            .event_ids()
            .iter()
            .map(|(&id, &seq)| (id, seq))
            .collect();
        event_ids.sort_unstable_by_key(|&(_, seq)| seq);
        Segment {
            start: summary.start(),
            end: summary.end(),
            leaves: summary.leaves().clone(),
            event_ids,
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
        // A line that is not UTF-8 or too long makes the fast path decline, and the reference
        // reports it.
        let lines = chunk.lines.raw();
        if let Some(fast) =
            super::fast::verify_lines(&ctx.tenant, &ctx.ring, ctx.size.get(), anchor, lines)
        {
            return Ok(Some(Segment {
                start: fast.start,
                end: fast.end,
                leaves: fast.leaves,
                event_ids: fast.event_ids,
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
                    bytes,
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
    /// Every event id joined so far, with its record's sequence number.
    seen: ledger::verify::EventIds,
    /// Roots of the tree at the sizes of checkpoints seen before.
    roots_at_cuts: Vec<(u64, Hash)>,
    /// The first failure in chain order; nothing after it is joined.
    error: Option<ExportError>,
    /// Buffers of joined chunks, for the reader to fill again: their capacity is already that
    /// of a chunk.
    spare: Vec<Lines>,
}

impl Stitcher {
    fn drain(&mut self, ctx: &Context, cuts: &[u64]) {
        while self.error.is_none() {
            let Some((chunk, result)) = self.pending.remove(&self.next) else {
                return;
            };
            self.next += 1;
            let mut segment = match result {
                Ok(Some(segment)) => segment,
                Ok(None) => continue,
                Err(e) => {
                    self.error = Some(e);
                    break;
                }
            };
            for (event_id, seq) in std::mem::take(&mut segment.event_ids) {
                if let Some(first_seq) = self.seen.insert(event_id, seq) {
                    let e = ChainError::DuplicateEventId {
                        seq,
                        event_id,
                        first_seq,
                    };
                    self.error = Some(ExportError {
                        line: ctx.line_of(seq),
                        kind: ExportErrorKind::Chain(e),
                    });
                    break;
                }
            }
            if self.error.is_some() {
                break;
            }
            let joined = match self.running.take() {
                None => Ok(segment),
                Some(before) => stitch(ctx, before, segment, &chunk),
            };
            self.spare.push(chunk.lines);
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
    let not_an_export =
        || ExportCheckError::NotAnExport("the first line is not a JSON export header".into());
    let header_text = match read_line(&mut input, &mut buf)? {
        None => return Err(fail(1, ExportErrorKind::MissingHeader)),
        Some(RawLine::Line(_)) => {
            check_line_bytes(&buf).map_err(|kind| fail(1, kind))?;
            String::from_utf8(buf).map_err(|_| not_an_export())?
        }
        Some(RawLine::Unterminated(_)) => {
            check_line_bytes(&buf).map_err(|kind| fail(1, kind))?;
            return Err(fail(1, ExportErrorKind::MissingFinalNewline));
        }
        Some(RawLine::TooLong(_)) => return Err(not_an_export()),
    };
    let header = parse_header(&header_text)?;
    // The header's checks are the ledger's, exactly as the sequential verifier makes them.
    let head = header
        .clone()
        .verify(options.trusted)
        .map_err(|kind| fail(1, kind))?;
    let size = head.checkpoint.size();
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
        next_line: 2,
        next_seq: header.from_seq,
        next_anchor: (header.from_seq == 0).then(ChainAnchor::genesis),
        size: size.get(),
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
        event_ids: Vec::new(),
    });
    let state = Mutex::new(Stitcher {
        next: 0,
        pending: BTreeMap::new(),
        running,
        seen: ledger::verify::EventIds::new(),
        roots_at_cuts: Vec::new(),
        error: None,
        spare: Vec::new(),
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
        let spare = state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .spare
            .pop()
            .unwrap_or_default();
        match reader.next_chunk(spare) {
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
        Some(Ending::Malformed(line, kind)) => return Err(fail(line, kind)),
        // A line too long to keep fails its chunk, and reading stops otherwise only after a
        // failure or a read error, all reported above. Should that ever not hold, the export
        // is still not reported as verified.
        Some(Ending::BadLine) | None => {
            return Err(fail(
                reader.next_line.saturating_sub(1),
                ExportErrorKind::MalformedRecord("the export was not read to its end".into()),
            ));
        }
    };
    // The trailer is checked before what follows it, as the sequential verifier reads them: a
    // trailer that does not match its records is the first failure even if lines follow.
    let report = check_trailer(&head, running, &trailer_text, trailer_line).map_err(failed)?;
    if read_line(&mut reader.input, &mut Vec::new())?.is_some() {
        return Err(fail(trailer_line + 1, ExportErrorKind::AfterTrailer));
    }
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
    ledger::json::from_str(text).map_err(|e| ExportCheckError::Failed {
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

/// Reads the trailer strictly and holds it against the records, with the ledger's checks (the
/// sequential verifier's own).
fn check_trailer(
    head: &VerifiedExportHeader,
    summary: Option<Segment>,
    text: &str,
    n: u64,
) -> Result<ExportReport, ExportError> {
    let fail = |kind| ExportError { line: n, kind };
    let trailer = ExportTrailer::from_line(text)
        .map_err(|e| fail(ExportErrorKind::MalformedTrailer(e.to_string())))?;
    let read = RecordsRead {
        records: summary.as_ref().map_or(0, Segment::records),
        last: summary
            .as_ref()
            .filter(|s| s.records() > 0)
            .map(|s| (s.size() - 1, s.end.prev)),
        last_captured: summary
            .as_ref()
            .filter(|s| s.records() > 0)
            .and_then(|s| s.end.not_before),
        root: summary.as_ref().and_then(Segment::root),
    };
    head.check_trailer(&trailer, read).map_err(fail)
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
                message: ledger::failure::fork_message(m, agreed_through),
            }));
        }
        agreed.push(m);
        agreed_through = agreed_through.max(m);
    }
    Ok(agreed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use ledger::checkpoint::sign_checkpoint;
    use ledger::evidence::Failure;
    use ledger::export::{ExportFormat, ExportVerifier, record_line};
    use ledger::keys::{KeyId, RecordSigner};
    use ledger::merkle::{CompactTree, leaf_hash};
    use ledger::note::NoteSigner;

    const ORIGIN: &str = "test.example/ledger/acme-bank";

    /// An export of `records` records from the genesis, one line per element (without
    /// newlines), and the key that verifies its checkpoint.
    fn export(records: u64) -> (Vec<Vec<u8>>, VerifierKey) {
        let key = SigningKey::from_bytes(&[5; 32]);
        let signer = RecordSigner::new(key.clone());
        let tenant = TenantId::parse("acme-bank").expect("tenant");
        let mut tree = CompactTree::new();
        let mut before_last = None;
        let mut lines = Vec::new();
        let chain = crate::verify_cli::test_chain::signed_chain(&tenant, &signer, records, |seq| {
            (
                crate::verify_cli::test_chain::decision(seq),
                BTreeMap::new(),
            )
        });
        for record in &chain {
            if record.seq.get() + 1 == records {
                before_last = Some(tree.clone());
            }
            tree.push(leaf_hash(record.hash.as_bytes())).expect("push");
            let mut line = record_line(record).into_bytes();
            line.pop();
            lines.push(line);
        }
        let checkpoint =
            Checkpoint::new(ORIGIN, TreeSize::new(records), tree.root()).expect("checkpoint");
        let note = sign_checkpoint(
            &checkpoint,
            &[NoteSigner::new(ORIGIN, &key).expect("signer")],
        )
        .expect("sign");
        let vkey = VerifierKey::new(ORIGIN, key.verifying_key()).expect("vkey");
        let header = ExportHeader {
            format: ExportFormat,
            tenant,
            origin: ORIGIN.into(),
            from_seq: 0,
            checkpoint: note,
            keys: vec![KeyInterval {
                key_id: KeyId::of(&key.verifying_key()),
                public_key: key.verifying_key(),
                from_seq: 0,
                until_seq: None,
            }],
            verifier_keys: vec![vkey.to_string()],
        };
        let trailer = ExportTrailer {
            records,
            last_seq: records.checked_sub(1),
            // The last leaf's proof: the right edge of the tree before it, smallest first.
            inclusion_proof: before_last
                .map(|t| t.hashes().iter().rev().copied().collect())
                .unwrap_or_default(),
        };
        let mut all = vec![header.to_line().trim_end().as_bytes().to_vec()];
        all.extend(lines);
        all.push(trailer.to_line().trim_end().as_bytes().to_vec());
        (all, vkey)
    }

    fn join(lines: &[Vec<u8>]) -> Vec<u8> {
        let mut text = lines.join(&b'\n');
        text.push(b'\n');
        text
    }

    fn parallel(text: &[u8], vkey: &VerifierKey, chunk: usize) -> Result<u64, ExportError> {
        let options = ExportOptions {
            trusted: std::slice::from_ref(vkey),
            history: None,
            seen: &[],
            chunk_records: chunk,
        };
        match verify_export(text, &options, &mut |_| {}, &|_| {}) {
            Ok(v) => Ok(v.report.records),
            Err(ExportCheckError::Failed { error, .. }) => Err(error),
            Err(e) => panic!("{e:?}"),
        }
    }

    fn sequential(text: &str, vkey: &VerifierKey) -> Result<u64, ExportError> {
        let mut v = ExportVerifier::new(std::slice::from_ref(vkey));
        for line in text.split_terminator('\n') {
            if v.push_line(line).is_err() {
                break;
            }
        }
        v.finish().map(|r| r.records)
    }

    /// Chunk sizes: one record, a few, more than one signature batch, and the default.
    const CHUNKS: [usize; 4] = [1, 7, 300, 0];

    #[test]
    fn damaged_exports_fail_where_the_sequential_verifier_says() {
        let (lines, vkey) = export(700);
        let n = lines.len();
        let mut cases: Vec<(&str, Vec<Vec<u8>>)> = vec![("intact", lines.clone())];
        let mut changed = lines.clone();
        changed[400][300] ^= 1;
        cases.push(("a changed byte", changed));
        let mut early_trailer = lines.clone();
        early_trailer.insert(300, lines[n - 1].clone());
        cases.push(("a trailer among the records", early_trailer));
        let mut after = lines.clone();
        after.push(lines[5].clone());
        cases.push(("a line after the trailer", after));
        cases.push(("no trailer", lines[..n - 1].to_vec()));
        let mut long = lines.clone();
        long[513] = vec![b'x'; EXPORT_LINE_BYTES_MAX + 10];
        cases.push(("a line too long", long));
        let mut empty = lines.clone();
        empty.insert(257, Vec::new());
        cases.push(("an empty line", empty));
        for (what, lines) in cases {
            let text = join(&lines);
            let expected = sequential(std::str::from_utf8(&text).expect("utf-8"), &vkey);
            for chunk in CHUNKS {
                assert_eq!(
                    parallel(&text, &vkey, chunk),
                    expected,
                    "{what}, chunk {chunk}"
                );
            }
        }
    }

    /// The browser verifies exports with `ledger::evidence::verify_export` (sequential): its
    /// verdict on every damaged export is the one this parallel verifier's failure reports.
    #[test]
    fn the_browsers_sequential_verdict_is_the_parallel_one() {
        let (lines, vkey) = export(700);
        let n = lines.len();
        let mut changed = lines.clone();
        changed[400][300] ^= 1;
        let mut early_trailer = lines.clone();
        early_trailer.insert(300, lines[n - 1].clone());
        let mut long = lines.clone();
        long[513] = vec![b'x'; EXPORT_LINE_BYTES_MAX + 10];
        let mut not_utf8 = lines.clone();
        let middle = not_utf8[299].len() / 2;
        not_utf8[299][middle] = 0xff;
        let mut no_final_newline = join(&lines);
        no_final_newline.pop();
        // Cut inside a record, as a truncated download is.
        let whole = join(&lines);
        let cut_in_a_record = whole[..whole.len() - lines[n - 1].len() - 40].to_vec();
        let mut long_not_utf8 = lines.clone();
        long_not_utf8[200] = vec![0xff; EXPORT_LINE_BYTES_MAX + 10];
        let mut control_not_utf8 = lines.clone();
        control_not_utf8[250][10] = 0x01;
        control_not_utf8[250][20] = 0xff;
        let trust = ledger::evidence::Trust {
            vkeys: vec![vkey.clone()],
            history: None,
        };
        for (what, text) in [
            ("intact", join(&lines)),
            ("a changed byte", join(&changed)),
            ("a trailer among the records", join(&early_trailer)),
            ("no trailer", join(&lines[..n - 1])),
            ("a line too long", join(&long)),
            ("a line that is not UTF-8", join(&not_utf8)),
            ("no final newline", no_final_newline),
            ("cut inside a record", cut_in_a_record),
            ("a long line that is not UTF-8", join(&long_not_utf8)),
            (
                "a control character in a line not UTF-8",
                join(&control_not_utf8),
            ),
        ] {
            let sequential = ledger::evidence::verify_export(&text, "e.jsonl", &trust);
            let parallel = parallel(&text, &vkey, 0);
            match parallel {
                Ok(records) => {
                    assert!(sequential.verified, "{what}: {:?}", sequential.failure);
                    assert_eq!(sequential.records, Some(records), "{what}");
                }
                Err(e) => assert_eq!(
                    sequential.failure,
                    Some(Failure::of_export(&e, 0)),
                    "{what}"
                ),
            }
        }
    }

    #[test]
    fn a_line_that_is_not_utf8_is_named() {
        let (lines, vkey) = export(600);
        for target in [1, 299, 600] {
            let mut damaged = lines.clone();
            // An invalid byte inside the payload, where the fast path would otherwise read it.
            let i = damaged[target].len() / 2;
            damaged[target][i] = 0xff;
            let text = join(&damaged);
            for chunk in CHUNKS {
                let e = parallel(&text, &vkey, chunk).expect_err("not UTF-8");
                assert_eq!(e.line, target as u64 + 1, "chunk {chunk}");
                assert!(e.to_string().contains("UTF-8"), "{e}");
            }
        }
        // A line that starts like the trailer but is not UTF-8 is a bad record line.
        let mut damaged = lines.clone();
        damaged.insert(100, b"{\"end\":\xff}".to_vec());
        for chunk in CHUNKS {
            let e = parallel(&join(&damaged), &vkey, chunk).expect_err("not UTF-8");
            assert_eq!(e.line, 101, "chunk {chunk}");
        }
    }

    /// FORMAT.md section 1: every line ends with `\n`, the last one too, and none holds a `\r`;
    /// without the last newline, or with `\r\n` endings, an export has a second written form.
    #[test]
    fn the_last_newline_is_required_and_a_carriage_return_is_refused() {
        let (lines, vkey) = export(300);
        let text = join(&lines);
        let mut cut = text.clone();
        cut.pop();
        let crlf: Vec<u8> = String::from_utf8(text.clone())
            .expect("utf-8")
            .replace('\n', "\r\n")
            .into_bytes();
        for chunk in CHUNKS {
            assert_eq!(parallel(&text, &vkey, chunk), Ok(300), "chunk {chunk}");
            let e = parallel(&cut, &vkey, chunk).expect_err("no final newline");
            assert_eq!(
                (e.line, e.kind),
                (302, ExportErrorKind::MissingFinalNewline),
                "chunk {chunk}"
            );
            let e = parallel(&crlf, &vkey, chunk).expect_err("CR LF");
            assert_eq!(e.line, 1, "chunk {chunk}");
            assert!(
                matches!(
                    e.kind,
                    ExportErrorKind::ControlCharacter { byte: b'\r', .. }
                ),
                "chunk {chunk}: {e}"
            );
        }
    }

    #[test]
    fn chunks_shrink_towards_the_end_but_not_below_a_signature_batch() {
        let reader = |next_seq, size| Reader {
            input: &b""[..],
            next_line: 2,
            next_seq,
            next_anchor: None,
            size,
            cuts: vec![5000],
            chunk_records: CHUNK_RECORDS,
            ending: None,
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .expect("pool");
        pool.install(|| {
            assert_eq!(reader(0, 1_000_000).next_chunk_records(), CHUNK_RECORDS);
            // A quarter of what remains on two threads, in whole signature batches.
            assert_eq!(
                reader(990_000, 1_000_000).next_chunk_records(),
                2560.min(CHUNK_RECORDS)
            );
            assert_eq!(reader(999_000, 1_000_000).next_chunk_records(), 256);
            assert_eq!(reader(999_990, 1_000_000).next_chunk_records(), 256);
            // More lines than the checkpoint holds (they fail): still one batch at a time.
            assert_eq!(reader(2_000_000, 1_000_000).next_chunk_records(), 256);
            // Never past a seen checkpoint's size.
            assert_eq!(reader(4990, 1_000_000).next_chunk_records(), 10);
        });
    }
}
