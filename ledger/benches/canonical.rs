//! RFC 8785 canonicalization of a decision's payload: the ledger's writer (`canonical::jcs`)
//! against the maintained library it replaced (`serde_json_canonicalizer`), the baseline
//! measured in the same run; and the strict check of a request body (`json::check`) and the
//! preparation of its drafts (`draft::prepare_client_draft`), against serde_json's bare walk of
//! the same body (`IgnoredAny`). Run: `cargo bench -p ledger --bench canonical`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::Value;

/// The payloads of the load benchmark's decisions: ten members, nested arrays, a score.
fn payloads() -> Vec<Value> {
    (0..256u64)
        .map(|n| {
            serde_json::json!({
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
            })
        })
        .collect()
}

fn canonical(c: &mut Criterion) {
    let payloads = payloads();
    let mut g = c.benchmark_group("canonical_payload");
    g.throughput(Throughput::Elements(payloads.len() as u64));
    g.bench_function("library_serde_json_canonicalizer", |b| {
        b.iter(|| {
            for p in &payloads {
                black_box(serde_json_canonicalizer::to_vec(p).expect("jcs"));
            }
        });
    });
    g.bench_function("ledger_canonical_jcs", |b| {
        b.iter(|| {
            for p in &payloads {
                black_box(ledger::canonical::jcs(p).expect("jcs"));
            }
        });
    });
    g.finish();
}

/// A batch request body as the load benchmark sends it: one decision per event id.
fn batch_body(ids: &[String], payloads: &[Value]) -> String {
    let records: Vec<Value> = ids
        .iter()
        .zip(payloads)
        .map(|(id, p)| serde_json::json!({"event_id": id, "event_type": "decision", "payload": p}))
        .collect();
    serde_json::json!({ "records": records }).to_string()
}

fn request_body(c: &mut Criterion) {
    let payloads = payloads();
    let ids: Vec<String> = (0..payloads.len())
        .map(|i| format!("01932c07-0000-7000-8000-{i:012x}"))
        .collect();
    let body = batch_body(&ids, &payloads);
    let none = std::collections::BTreeMap::new();
    let mut g = c.benchmark_group("request_body");
    g.throughput(Throughput::Elements(payloads.len() as u64));
    g.bench_function("serde_json_walk_baseline", |b| {
        b.iter(|| black_box(serde_json::from_str::<serde::de::IgnoredAny>(&body).expect("json")));
    });
    g.bench_function("ledger_json_check", |b| {
        b.iter(|| ledger::json::check(black_box(&body)).expect("strict"));
    });
    g.bench_function("ledger_prepare_client_drafts", |b| {
        b.iter(|| {
            for (id, p) in ids.iter().zip(&payloads) {
                black_box(
                    ledger::draft::prepare_client_draft(id, "decision", p, &none, || [7; 32])
                        .expect("valid"),
                );
            }
        });
    });
    g.finish();
}

criterion_group!(benches, canonical, request_body);
criterion_main!(benches);
