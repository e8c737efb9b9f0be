//! Offline verification speed: the full verification rate of an export (records/s) by the
//! engine behind `auditex verify export`, beside the raw Ed25519 batch-verification rate of the
//! same signatures measured in the same run on the same cores — the floor a verifier cannot beat,
//! since every record carries one signature.
//!
//! ```text
//! cargo bench --bench verify                                          # 200,000 records
//! AUDITEX_BENCH_VERIFY_RECORDS=1000000 cargo bench --bench verify     # the 1M-record figure
//! ```
//!
//! `AUDITEX_BENCH_VERIFY_EXPORT=FILE` keeps the generated export (and prints its verifier key) so
//! that the `auditex verify export` binary can be timed on it end to end.
//!
//! The export is generated in a temporary file (records signed on every core), then:
//! - raw: `ed25519_dalek::verify_batch` over the records' hashes and signatures in batches of
//!   256, on every core (rayon) and on one;
//! - full: the parallel export verifier (read, parse, canonicalize, hash, link, batch-verify
//!   signatures, Merkle root, trailer proof) on every core and on one thread, and the sequential
//!   reference `ledger::export::ExportVerifier` on one core.
//!
//! The measurements are interleaved, one run of each with the worker threads' stacks at each of
//! eight offsets within a 4 KiB page (four above 500,000 records; see [`pool`] for why); each
//! offset's rates are printed, and the best of each gives the summary.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::time::{Duration, Instant};

use auditex::verify_cli::export::{ExportOptions, verify_export};
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use ledger::checkpoint::{Checkpoint, sign_checkpoint};
use ledger::draft::prepare_draft;
use ledger::export::{ExportFormat, ExportHeader, ExportTrailer, ExportVerifier, record_line};
use ledger::keys::{KeyId, KeyInterval, RecordSigner};
use ledger::merkle::{CompactTree, leaf_hash};
use ledger::note::{NoteSigner, VerifierKey};
use ledger::record::{ChainPosition, Record, UnsignedRecord};
use ledger::types::{CaptureTime, Hash, Sequence, TenantId, TreeSize};
use rayon::prelude::*;

const RECORDS_DEFAULT: u64 = 200_000;
const BATCH: usize = 256;
const ORIGIN: &str = "bench.example/ledger/acme-bank";

fn payload(n: u64) -> serde_json::Value {
    serde_json::json!({
        "model_id": format!("credit-model-{}", n % 3),
        "model_version": "1.4.0",
        "input_commitment": format!("{n:064x}"),
        "outcome": if n.is_multiple_of(4) { "declined" } else { "approved" },
        "score": (n % 1000) as f64 / 1000.0,
        "reason_codes": ["R01", "R17"],
        "explanation": "Debt-to-income ratio and payment history within policy; utilisation moderate.",
        "subject_ref": format!("subject-{}", n % 10_000),
        "decided_at": "2026-11-29T08:00:00Z",
        "oversight_mode": "human_on_the_loop",
    })
}

/// Writes an export of `records` records; returns its path's holder, the trusted key and the
/// records' (hash, signature) pairs for the raw measurement.
fn generate(
    records: u64,
) -> (
    tempfile::NamedTempFile,
    VerifierKey,
    VerifyingKey,
    Vec<(Hash, Signature)>,
) {
    let key = SigningKey::from_bytes(&[7; 32]);
    let signer = RecordSigner::new(key.clone());
    let tenant = TenantId::parse("acme-bank").expect("tenant");
    let t0 = 1_795_000_000_000_000u64;
    let mut file = tempfile::NamedTempFile::new().expect("temporary file");
    let mut out = BufWriter::with_capacity(1 << 20, file.as_file_mut());
    let mut tree = CompactTree::new();
    let mut prev = Hash::ZERO;
    let mut pairs = Vec::with_capacity(usize::try_from(records).expect("fits"));
    let mut body = String::new();
    let mut last_tree = None;
    let mut next = 0u64;
    while next < records {
        let n = (records - next).min(65_536);
        // Hash in order (each record links to the previous one), sign on every core.
        let unsigned: Vec<UnsignedRecord> = (next..next + n)
            .map(|seq| {
                let id = format!("01936f5e-7a2b-7c3d-8e4f-{seq:012x}");
                let draft =
                    prepare_draft(&id, "decision", &payload(seq), &BTreeMap::new(), || [7; 32])
                        .expect("valid")
                        .draft;
                let at = ChainPosition {
                    seq: Sequence::new(seq).expect("seq"),
                    prev,
                    captured_at: CaptureTime::from_unix_micros(t0 + seq * 1000).expect("time"),
                };
                let u = UnsignedRecord::new(&tenant, at, draft, signer.key_id());
                prev = u.hash();
                u
            })
            .collect();
        let sealed: Vec<Record> = unsigned.into_par_iter().map(|u| u.sign(&signer)).collect();
        for r in &sealed {
            if r.seq.get() + 1 == records {
                last_tree = Some(tree.clone());
            }
            tree.push(leaf_hash(r.hash.as_bytes())).expect("push");
            pairs.push((r.hash, *r.sig.signature()));
            body.push_str(&record_line(r));
        }
        out.write_all(body.as_bytes()).expect("write");
        body.clear();
        next += n;
    }
    drop(out);
    // The last record's inclusion proof: the right edge of the tree before it, smallest first.
    let proof: Vec<Hash> = last_tree
        .map(|t| t.hashes().iter().rev().copied().collect())
        .unwrap_or_default();
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
        inclusion_proof: proof,
    };
    // Header first: rewrite the file as header + records + trailer.
    let records_path = file.path().to_owned();
    let mut full = tempfile::NamedTempFile::new().expect("temporary file");
    {
        let mut w = BufWriter::with_capacity(1 << 20, full.as_file_mut());
        w.write_all(header.to_line().as_bytes()).expect("write");
        let mut r =
            BufReader::with_capacity(1 << 20, std::fs::File::open(&records_path).expect("open"));
        std::io::copy(&mut r, &mut w).expect("copy");
        w.write_all(trailer.to_line().as_bytes()).expect("write");
    }
    (full, vkey, key.verifying_key(), pairs)
}

fn rate(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn raw_batch(pairs: &[(Hash, Signature)], key: &VerifyingKey) {
    let run = |chunk: &[(Hash, Signature)]| {
        let messages: Vec<&[u8]> = chunk.iter().map(|(h, _)| h.as_bytes().as_slice()).collect();
        let signatures: Vec<Signature> = chunk.iter().map(|(_, s)| *s).collect();
        let keys = vec![*key; chunk.len()];
        ed25519_dalek::verify_batch(&messages, &signatures, &keys).expect("valid batch");
    };
    pairs.par_chunks(BATCH).for_each(run);
}

fn full(path: &std::path::Path, trusted: &[VerifierKey]) -> u64 {
    let input = BufReader::with_capacity(1 << 20, std::fs::File::open(path).expect("open"));
    let options = ExportOptions {
        trusted,
        history: None,
        seen: &[],
        chunk_records: 0,
    };
    verify_export(input, &options, &mut |_| {}, &|_| {})
        .map_err(|e| format!("{e:?}"))
        .expect("the export verifies")
        .report
        .records
}

fn sequential(path: &std::path::Path, trusted: &[VerifierKey]) -> u64 {
    let input = BufReader::with_capacity(1 << 20, std::fs::File::open(path).expect("open"));
    let mut v = ExportVerifier::new(trusted);
    for line in input.lines() {
        v.push_line(&line.expect("read")).expect("verifies");
    }
    v.finish().expect("verifies").records
}

/// The time of one run of `f` on `pool`.
fn time<T: Send>(pool: &rayon::ThreadPool, f: impl Fn() -> T + Sync) -> Duration {
    let t = Instant::now();
    pool.install(|| std::hint::black_box(f()));
    t.elapsed()
}

/// Stack offsets of the worker threads, in bytes: every 512th byte of a 4 KiB page.
const STACK_OFFSETS: [usize; 8] = [0, 512, 1024, 1536, 2048, 2560, 3072, 3584];

/// Runs `f` with the stack `offset` bytes (one of [`STACK_OFFSETS`]) deeper than it would be.
fn at_stack_offset(offset: usize, f: impl FnOnce()) {
    #[inline(never)]
    fn deeper<const N: usize>(f: impl FnOnce()) {
        let pad = [0u8; N];
        std::hint::black_box(&pad);
        f();
        std::hint::black_box(&pad);
    }
    match offset {
        512 => deeper::<512>(f),
        1024 => deeper::<1024>(f),
        1536 => deeper::<1536>(f),
        2048 => deeper::<2048>(f),
        2560 => deeper::<2560>(f),
        3072 => deeper::<3072>(f),
        3584 => deeper::<3584>(f),
        _ => f(),
    }
}

/// A pool of `threads` workers whose stacks start `offset` bytes deeper.
///
/// The Ed25519 batch equation (curve25519-dalek's AVX2 multiscalar multiplication) runs up to
/// 15 % faster or slower depending on where in a 4 KiB page its stack frames fall, the same
/// work whichever code calls it; the offset a run gets is an accident of the call path. So both
/// the raw baseline and the full verification are measured at every offset of
/// [`STACK_OFFSETS`], and each keeps its best: what the hardware does at a favourable alignment,
/// not whose frames happened to land well.
fn pool(threads: usize, offset: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .spawn_handler(move |thread| {
            std::thread::Builder::new()
                .spawn(move || at_stack_offset(offset, || thread.run()))
                .map(|_| ())
        })
        .build()
        .expect("pool")
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this file as a test, so keep
    // that short.
    let testing = !std::env::args().any(|a| a == "--bench");
    let records: u64 = std::env::var("AUDITEX_BENCH_VERIFY_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if testing { 2_000 } else { RECORDS_DEFAULT });
    let offsets: &[usize] = if testing {
        &STACK_OFFSETS[..1]
    } else if records > 500_000 {
        &STACK_OFFSETS[..4]
    } else {
        &STACK_OFFSETS
    };
    let cores = std::thread::available_parallelism().map_or(1, usize::from);

    let started = Instant::now();
    let (file, vkey, key, pairs) = pool(cores, 0).install(|| generate(records));
    let bytes = std::fs::metadata(file.path()).map_or(0, |m| m.len());
    eprintln!(
        "generated an export of {records} records ({:.0} MB) in {:.1} s",
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    let trusted = [vkey];

    // Interleaved, so that load from other processes on a shared machine hits every
    // measurement alike; the best of each is kept. The sequential reference, which is not part
    // of the ratio, is timed at the first two offsets only.
    println!("verify: {records} records, {cores} core(s), stack offsets {offsets:?}");
    println!(
        "  offset   raw {cores} cores   full {cores} cores   ratio   raw 1 core   full 1 thread   ratio"
    );
    let mut times = [Duration::MAX; 5];
    for (i, &offset) in offsets.iter().enumerate() {
        let all = pool(cores, offset);
        let one = pool(1, offset);
        let measured = [
            time(&all, || raw_batch(&pairs, &key)),
            time(&all, || full(file.path(), &trusted)),
            time(&one, || raw_batch(&pairs, &key)),
            time(&one, || full(file.path(), &trusted)),
            if i < 2 {
                time(&one, || sequential(file.path(), &trusted))
            } else {
                Duration::MAX
            },
        ];
        let r = measured.map(|t| rate(records, t));
        println!(
            "  {offset:>6}   {:>10.0}   {:>12.0}   {:>4.0}%   {:>10.0}   {:>13.0}   {:>4.0}%",
            r[0],
            r[1],
            100.0 * r[1] / r[0],
            r[2],
            r[3],
            100.0 * r[3] / r[2]
        );
        for (t, m) in times.iter_mut().zip(measured) {
            *t = (*t).min(m);
        }
    }
    let [raw_all, full_all, raw_one, full_one, seq_one] = times.map(|t| rate(records, t));
    let full_all_time = times[1];
    if let Ok(keep) = std::env::var("AUDITEX_BENCH_VERIFY_EXPORT") {
        std::fs::copy(file.path(), &keep).expect("keep the export");
        eprintln!(
            "kept the export as {keep}; its verifier key: {}",
            trusted[0]
        );
    }

    println!("best of each:");
    println!("  raw ed25519 batch verify, {cores} cores   {raw_all:>10.0} sig/s");
    println!("  raw ed25519 batch verify, 1 core      {raw_one:>10.0} sig/s");
    println!(
        "  full export verification, {cores} cores   {full_all:>10.0} records/s  ({:.0}% of raw on {cores} cores; {:.2} s)",
        100.0 * full_all / raw_all,
        full_all_time.as_secs_f64()
    );
    println!(
        "  full export verification, 1 thread    {full_one:>10.0} records/s  ({:.0}% of raw on 1 core)",
        100.0 * full_one / raw_one
    );
    println!("  sequential reference (ExportVerifier) {seq_one:>10.0} records/s");
    println!(
        "  1,000,000 records at the {cores}-core rate: {:.1} s",
        1_000_000.0 / full_all
    );
}
