//! Criterion benchmarks of the pure ledger core, each beside the raw primitive measured in the same
//! run: sealing a record against plain Ed25519 signing of a 32-byte message, and Merkle work at
//! one million leaves. `scripts/bench-report` turns the results into the ratios in BENCHMARKS.md.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::{Signer, SigningKey};
use ledger::draft::{PreparedDraft, prepare_draft};
use ledger::keys::RecordSigner;
use ledger::merkle::{
    CompactTree, inclusion_proof_node_ids, leaf_hash, node_hash, verify_inclusion,
};
use ledger::record::{ChainPosition, UnsignedRecord};
use ledger::types::{CaptureTime, Hash, LeafIndex, Sequence, TenantId, TreeSize};

const BATCH: usize = 256;

fn decision(n: u64) -> PreparedDraft {
    let payload = serde_json::json!({
        "model_id": "credit-limit",
        "model_version": "4.2.0",
        "input_commitment": format!("{n:064x}"),
        "outcome": "approved",
        "score": 0.87,
        "reason_codes": ["R12", "R40", "R77"],
        "explanation": "Debt-to-income ratio and payment history within policy; utilisation moderate.",
        "subject_ref": format!("subj-{n:08x}"),
        "decided_at": "2026-11-29T08:49:27.123Z",
        "oversight_mode": "human_on_the_loop"
    });
    let id = format!("01936f5e-7a2b-7c3d-8e4f-{n:012x}");
    prepare_draft(&id, "decision", &payload, &BTreeMap::new(), || [7; 32]).expect("valid")
}

fn sealing(c: &mut Criterion) {
    let key = SigningKey::from_bytes(&[1; 32]);
    let signer = RecordSigner::new(key.clone());
    let tenant = TenantId::parse("acme-bank").expect("tenant");
    let drafts: Vec<PreparedDraft> = (0..BATCH as u64).map(decision).collect();
    let messages: Vec<[u8; 32]> = (0..BATCH).map(|i| [i as u8; 32]).collect();

    let mut g = c.benchmark_group("seal");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("raw_ed25519_sign_32B", |b| {
        b.iter(|| {
            for m in &messages {
                black_box(key.sign(m));
            }
        })
    });
    g.bench_function("record_hash_and_sign", |b| {
        b.iter_batched(
            || drafts.clone(),
            |drafts| {
                let mut prev = Hash::ZERO;
                for (i, d) in drafts.into_iter().enumerate() {
                    let at = ChainPosition {
                        seq: Sequence::new(i as u64).expect("seq"),
                        prev,
                        captured_at: CaptureTime::from_unix_micros(1_795_000_000_000_000)
                            .expect("t"),
                    };
                    let r =
                        UnsignedRecord::new(&tenant, at, d.draft, signer.key_id()).sign(&signer);
                    prev = r.hash;
                    black_box(&r);
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("prepare_draft_validate_canonicalize", |b| {
        let payload =
            serde_json::to_value(drafts[0].draft.payload.to_value().expect("v")).expect("v");
        b.iter(|| {
            for _ in 0..BATCH {
                black_box(
                    prepare_draft(
                        "01936f5e-7a2b-7c3d-8e4f-a1b2c3d4e5f6",
                        "decision",
                        &payload,
                        &BTreeMap::new(),
                        || [7; 32],
                    )
                    .expect("valid"),
                );
            }
        })
    });
    g.finish();
}

fn merkle(c: &mut Criterion) {
    const LEAVES: u64 = 1 << 20;
    // Every level of the tree, kept in memory as a store would keep its tiles.
    let mut levels: Vec<Vec<Hash>> =
        vec![(0..LEAVES).map(|i| leaf_hash(&i.to_be_bytes())).collect()];
    while levels.last().map_or(0, Vec::len) > 1 {
        let below = levels.last().expect("level");
        levels.push(
            below
                .chunks(2)
                .filter(|p| p.len() == 2)
                .map(|p| node_hash(p[0], p[1]))
                .collect(),
        );
    }
    let size = TreeSize::new(LEAVES);
    let root = levels.last().expect("root")[0];

    let mut g = c.benchmark_group("merkle_1M");
    g.sample_size(10);
    g.throughput(Throughput::Elements(LEAVES));
    g.bench_function("compact_tree_append_1M_leaves", |b| {
        b.iter(|| {
            let mut t = CompactTree::new();
            for h in &levels[0] {
                t.push(*h).expect("push");
            }
            black_box(t.root())
        })
    });
    g.finish();

    let mut g = c.benchmark_group("proof_1M");
    g.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    g.bench_function("inclusion_proof_assemble_and_verify", |b| {
        b.iter(|| {
            i = (i + 7919) % LEAVES;
            let nodes = inclusion_proof_node_ids(LeafIndex::new(i), size).expect("ids");
            let hashes: Vec<Hash> = nodes
                .ids()
                .iter()
                .map(|id| levels[usize::from(id.level())][id.index() as usize])
                .collect();
            let proof = nodes.rehash(&hashes).expect("rehash");
            verify_inclusion(levels[0][i as usize], LeafIndex::new(i), size, &proof, root)
                .expect("verifies");
        })
    });
    g.finish();
}

fn verification(c: &mut Criterion) {
    const RECORDS: usize = 4096;
    let key = SigningKey::from_bytes(&[1; 32]);
    let signer = RecordSigner::new(key.clone());
    let tenant = TenantId::parse("acme-bank").expect("tenant");
    let ring = ledger::keys::KeyRing::single(key.verifying_key());
    let mut prev = Hash::ZERO;
    let records: Vec<ledger::record::Record> = (0..RECORDS as u64)
        .map(|i| {
            let at = ChainPosition {
                seq: Sequence::new(i).expect("seq"),
                prev,
                captured_at: CaptureTime::from_unix_micros(1_795_000_000_000_000).expect("t"),
            };
            let r =
                UnsignedRecord::new(&tenant, at, decision(i).draft, signer.key_id()).sign(&signer);
            prev = r.hash;
            r
        })
        .collect();
    let lines: Vec<String> = records
        .iter()
        .map(|r| serde_json::to_string(r).expect("json"))
        .collect();
    let messages: Vec<[u8; 32]> = records.iter().map(|r| *r.hash.as_bytes()).collect();
    let sigs: Vec<ed25519_dalek::Signature> = records.iter().map(|r| *r.sig.signature()).collect();
    let keys = vec![key.verifying_key(); ledger::verify::SIGNATURE_BATCH_RECORDS];

    let mut g = c.benchmark_group("verify");
    g.sample_size(10);
    g.throughput(Throughput::Elements(RECORDS as u64));
    g.bench_function("raw_ed25519_batch_verify_32B", |b| {
        b.iter(|| {
            for (m, s) in messages
                .chunks(ledger::verify::SIGNATURE_BATCH_RECORDS)
                .zip(sigs.chunks(ledger::verify::SIGNATURE_BATCH_RECORDS))
            {
                let ms: Vec<&[u8]> = m.iter().map(|x| x.as_slice()).collect();
                ed25519_dalek::verify_batch(&ms, s, &keys[..ms.len()]).expect("valid");
            }
        })
    });
    g.bench_function("chain_verify_parsed_records", |b| {
        b.iter(|| {
            let mut v = ledger::verify::ChainVerifier::new(tenant.clone(), ring.clone());
            for r in &records {
                v.push(r).expect("valid");
            }
            black_box(v.finish().expect("valid"))
        })
    });
    g.bench_function("chain_verify_from_json_lines", |b| {
        b.iter(|| {
            let mut v = ledger::verify::ChainVerifier::new(tenant.clone(), ring.clone());
            for line in &lines {
                let r = ledger::record::Record::from_json(line).expect("parse");
                v.push(&r).expect("valid");
            }
            black_box(v.finish().expect("valid"))
        })
    });
    g.finish();
}

criterion_group!(benches, sealing, merkle, verification);
criterion_main!(benches);
