//! The worked examples in FORMAT.md, recomputed. Each fenced block in FORMAT.md tagged
//! `example:NAME` must equal what this file computes for NAME, byte for byte, so the
//! specification cannot drift from the code. Run with `AUDITEX_PRINT_EXAMPLES=1` to print them.

use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;
use ledger::checkpoint::{Checkpoint, sign_checkpoint};
use ledger::draft::prepare_draft;
use ledger::keys::RecordSigner;
use ledger::merkle::{CompactTree, leaf_hash};
use ledger::note::NoteSigner;
use ledger::record::{ChainPosition, seal};
use ledger::types::{CaptureTime, Hash, Sequence, TenantId};
use serde_json::json;

fn examples() -> Vec<(&'static str, String)> {
    let key = SigningKey::from_bytes(&[0x01; 32]);
    let signer = RecordSigner::new(key.clone());
    let tenant = TenantId::parse("acme-bank").expect("tenant");
    let origin = "auditex.example/ledger/acme-bank";
    let mut erasable = BTreeMap::new();
    erasable.insert("applicant_name".to_owned(), json!("Jane Q. Doe"));
    let decision = prepare_draft(
        "01936f5e-7a2b-7c3d-8e4f-a1b2c3d4e5f6",
        "decision",
        &json!({
            "model_id": "credit-limit",
            "model_version": "4.2.0",
            "input_commitment": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "outcome": "approved",
            "score": 0.87,
            "reason_codes": ["R12", "R40"],
            "subject_ref": "subj-5d41402a",
            "decided_at": "2026-11-29T08:49:27.123Z",
            "oversight_mode": "human_on_the_loop"
        }),
        &erasable,
        || [0x11; 32],
    )
    .expect("decision");
    let r0 = seal(
        &tenant,
        ChainPosition {
            seq: Sequence::new(0).expect("seq"),
            prev: Hash::ZERO,
            captured_at: CaptureTime::from_unix_micros(1_795_000_000_123_456).expect("time"),
        },
        decision.draft,
        &signer,
    );
    let review = prepare_draft(
        "01936f5e-7b00-7c3d-8e4f-a1b2c3d4e5f7",
        "human_review",
        &json!({
            "decision_id": "01936f5e-7a2b-7c3d-8e4f-a1b2c3d4e5f6",
            "reviewer": "analyst-17",
            "action": "confirmed"
        }),
        &BTreeMap::new(),
        || [0x22; 32],
    )
    .expect("review");
    let r1 = seal(
        &tenant,
        ChainPosition {
            seq: Sequence::new(1).expect("seq"),
            prev: r0.hash,
            captured_at: CaptureTime::from_unix_micros(1_795_000_000_223_456).expect("time"),
        },
        review.draft,
        &signer,
    );
    let mut tree = CompactTree::new();
    tree.push(leaf_hash(r0.hash.as_bytes())).expect("push");
    tree.push(leaf_hash(r1.hash.as_bytes())).expect("push");
    let checkpoint = Checkpoint::new(origin, tree.size(), tree.root()).expect("checkpoint");
    let note_signer = NoteSigner::new(origin, &key).expect("note signer");
    let signed = sign_checkpoint(&checkpoint, std::slice::from_ref(&note_signer)).expect("sign");
    let value = &decision.erasable_values
        [&ledger::record::FieldName::parse("applicant_name").expect("name")];
    vec![
        ("public-key", hex::encode(key.verifying_key().as_bytes())),
        ("key-id", signer.key_id().to_hex()),
        (
            "erasable-commitment",
            value.commitment("").expect("commit").to_hex(),
        ),
        (
            "record-0-body",
            String::from_utf8(r0.canonical_body()).expect("utf8"),
        ),
        ("record-0-hash", r0.hash.to_hex()),
        ("record-0-sig", r0.sig.to_hex()),
        (
            "record-0-json",
            serde_json::to_string_pretty(&r0).expect("json"),
        ),
        (
            "record-1-body",
            String::from_utf8(r1.canonical_body()).expect("utf8"),
        ),
        ("record-1-hash", r1.hash.to_hex()),
        (
            "leaf-hashes",
            format!(
                "{}\n{}",
                leaf_hash(r0.hash.as_bytes()).to_hex(),
                leaf_hash(r1.hash.as_bytes()).to_hex()
            ),
        ),
        ("root-2", tree.root().to_hex()),
        ("vkey", note_signer.verifier_key().to_string()),
        ("checkpoint", signed),
    ]
}

fn blocks(doc: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        if let Some(name) = line.trim().strip_prefix("```text example:") {
            let mut body = Vec::new();
            for l in lines.by_ref() {
                if l.trim_end() == "```" {
                    break;
                }
                body.push(l);
            }
            out.insert(name.trim().to_owned(), body.join("\n"));
        }
    }
    out
}

#[test]
fn the_worked_examples_in_format_md_are_reproduced_exactly() {
    let examples = examples();
    if std::env::var_os("AUDITEX_PRINT_EXAMPLES").is_some() {
        for (name, value) in &examples {
            println!("```text example:{name}\n{value}\n```\n");
        }
    }
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../FORMAT.md"))
        .expect("FORMAT.md");
    let found = blocks(&doc);
    for (name, value) in &examples {
        let block = found
            .get(*name)
            .unwrap_or_else(|| panic!("FORMAT.md has no block example:{name}"));
        assert_eq!(
            block.trim_end(),
            value.trim_end(),
            "FORMAT.md example:{name} is out of date"
        );
    }
}
