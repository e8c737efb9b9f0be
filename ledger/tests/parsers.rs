//! Property tests of every parser in `ledger`: signed note, checkpoint, tlog-proof, export lines
//! (header, record, trailer), bundle, key history and verifier key.
//!
//! For each one:
//! - arbitrary bytes (and arbitrary text) never make it panic;
//! - a valid value, serialized, parses back to the same value and serializes to the same bytes;
//! - a single-byte change of a valid serialized form either fails or parses to a value that
//!   serializes to exactly the changed bytes: nothing is normalised. A JSON document is held to
//!   that as a JSON value (whitespace, member order and string escapes are JSON's, not the
//!   format's), except inside a record's `payload`, which the format reads as JSON and hashes in
//!   its RFC 8785 form (FORMAT.md section 4), so that another spelling of the same payload value
//!   (`1E-7` for `1e-7`) is the same signed record.
//!
//! The case count is bounded for CI (`PROPTEST_CASES` overrides it for a longer campaign).

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::SigningKey;
use ledger::bundle::{Bundle, BundleEntry, BundleFormat, ErasedField};
use ledger::checkpoint::{Checkpoint, sign_checkpoint};
use ledger::draft::prepare_draft;
use ledger::export::{ExportFormat, ExportHeader, ExportTrailer, record_line};
use ledger::keys::{KeyHistory, KeyInterval, KeyRing, RecordSigner};
use ledger::note::{Note, NoteSigner, VerifierKey};
use ledger::proof_file::TlogProof;
use ledger::record::{ChainPosition, Record, seal};
use ledger::types::{CaptureTime, Hash, LeafIndex, Sequence, TenantId, TreeSize};
use proptest::prelude::*;
use proptest::test_runner::Config;

/// Cases of the no-panic properties unless `PROPTEST_CASES` says otherwise.
const CASES: u32 = 512;

/// Cases of the round-trip and mutation properties: each case tries some hundred mutations of a
/// freshly signed document, so these are fewer, to keep the file well under a minute in a debug
/// build. `PROPTEST_CASES` raises every property to its value.
const MUTATION_CASES: u32 = 48;

fn config(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        // A failing case is shrunk only briefly: the document is in the message.
        max_shrink_iters: 64,
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Valid values.

/// A tenant id: lower-case letters, digits and dashes, starting with a letter.
fn tenant() -> impl Strategy<Value = TenantId> {
    "[a-z][a-z0-9-]{0,20}[a-z0-9]".prop_filter_map("a tenant id", |t| TenantId::parse(&t).ok())
}

/// A service origin such as `audit.example/ledger`, then the tenant's origin.
fn origin() -> impl Strategy<Value = String> {
    (
        "[a-z]{1,10}\\.[a-z]{2,5}(/[a-z0-9._-]{1,10}){0,2}",
        tenant(),
    )
        .prop_map(|(service, tenant)| format!("{service}/{}", tenant.as_str()))
}

fn signing_key() -> impl Strategy<Value = SigningKey> {
    any::<[u8; 32]>().prop_map(|seed| SigningKey::from_bytes(&seed))
}

fn hash() -> impl Strategy<Value = Hash> {
    any::<[u8; 32]>().prop_map(Hash::from_bytes)
}

fn checkpoint_body() -> impl Strategy<Value = Checkpoint> {
    (origin(), 0u64..=u64::MAX / 2, hash()).prop_filter_map("a checkpoint", |(o, size, root)| {
        Checkpoint::new(&o, TreeSize::new(size), root).ok()
    })
}

/// A signed checkpoint note, signed by one to three keys named like its origin.
fn signed_checkpoint() -> impl Strategy<Value = (Checkpoint, String)> {
    (
        checkpoint_body(),
        proptest::collection::vec(signing_key(), 1..=3),
    )
        .prop_filter_map("a signed note", |(checkpoint, keys)| {
            let signers: Vec<NoteSigner<'_>> = keys
                .iter()
                .map(|k| NoteSigner::new(checkpoint.origin(), k))
                .collect::<Result<_, _>>()
                .ok()?;
            let note = sign_checkpoint(&checkpoint, &signers).ok()?;
            Some((checkpoint, note))
        })
}

fn payload() -> impl Strategy<Value = serde_json::Value> {
    (
        "[a-z-]{1,12}",
        0u32..1000,
        proptest::option::of("[ -~\u{e9}\u{2014}\u{1f600}]{0,16}"),
        proptest::collection::vec("[A-Z][0-9]{2}", 0..3),
        any::<bool>(),
    )
        .prop_map(|(model, score, explanation, reasons, flag)| {
            let mut p = serde_json::json!({
                "model_id": model,
                "model_version": "1.0.0",
                "input_commitment": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                "outcome": if flag { "approved" } else { "declined" },
                "score": f64::from(score) / 1000.0,
                "reason_codes": reasons,
                "subject_ref": "subj-1",
                "decided_at": "2026-11-29T08:49:27.123Z",
                "oversight_mode": "human_on_the_loop",
                "attributes": {"n": score, "ok": flag, "none": null, "ratio": 1e-7},
            });
            if let Some(e) = explanation {
                p["explanation"] = serde_json::Value::String(e);
            }
            p
        })
}

/// A sealed record at some position of some tenant's chain, with or without erasable fields.
fn record() -> impl Strategy<Value = Record> {
    (
        tenant(),
        payload(),
        any::<[u8; 16]>(),
        0u64..1_000_000,
        hash(),
        1_700_000_000_000_000u64..1_900_000_000_000_000,
        any::<bool>(),
        signing_key(),
    )
        .prop_filter_map(
            "a record",
            |(tenant, payload, id, seq, prev, micros, erasable, key)| {
                // A UUIDv7 from random bytes: version 7, RFC 4122 variant.
                let mut id = id;
                id[6] = 0x70 | (id[6] & 0x0f);
                id[8] = 0x80 | (id[8] & 0x3f);
                let event_id = uuid_text(&id);
                let mut fields = BTreeMap::new();
                if erasable {
                    fields.insert("applicant_name".to_owned(), serde_json::json!("Jane Doe"));
                    fields.insert("birth_date".to_owned(), serde_json::json!({"y": 1980}));
                }
                let prepared =
                    prepare_draft(&event_id, "decision", &payload, &fields, || [5u8; 32]).ok()?;
                Some(seal(
                    &tenant,
                    ChainPosition {
                        seq: Sequence::new(seq).ok()?,
                        prev: if seq == 0 { Hash::ZERO } else { prev },
                        captured_at: CaptureTime::from_unix_micros(micros).ok()?,
                    },
                    prepared.draft,
                    &RecordSigner::new(key),
                ))
            },
        )
}

fn uuid_text(b: &[u8; 16]) -> String {
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// A key history of one to three keys, each retired where the next starts.
fn key_intervals() -> impl Strategy<Value = Vec<KeyInterval>> {
    (proptest::collection::vec((signing_key(), 1u64..10_000), 1..=3)).prop_map(|keys| {
        let mut from = 0;
        let count = keys.len();
        keys.into_iter()
            .enumerate()
            .map(|(i, (key, length))| {
                let signer = RecordSigner::new(key);
                let interval = KeyInterval {
                    key_id: signer.key_id(),
                    public_key: signer.verifying_key(),
                    from_seq: from,
                    until_seq: (i + 1 < count).then_some(from + length),
                };
                from += length;
                interval
            })
            .collect()
    })
}

fn key_history() -> impl Strategy<Value = KeyHistory> {
    (origin(), key_intervals()).prop_filter_map("a key history", |(origin, keys)| {
        KeyHistory::of(&origin, &KeyRing::new(keys).ok()?).ok()
    })
}

fn verifier_key() -> impl Strategy<Value = VerifierKey> {
    (origin(), signing_key()).prop_filter_map("a verifier key", |(origin, key)| {
        VerifierKey::new(&origin, key.verifying_key()).ok()
    })
}

fn tlog_proof() -> impl Strategy<Value = TlogProof> {
    (
        proptest::option::of(record()),
        0u64..1_000_000,
        proptest::collection::vec(hash(), 0..20),
        signed_checkpoint(),
    )
        .prop_filter_map("a tlog-proof", |(record, index, proof, (_, note))| {
            let extra = record.map(|r| record_line(&r).trim_end().as_bytes().to_vec());
            TlogProof::new(extra, LeafIndex::new(index), proof, note).ok()
        })
}

fn export_header() -> impl Strategy<Value = ExportHeader> {
    (
        tenant(),
        signed_checkpoint(),
        key_intervals(),
        0u64..1000,
        verifier_key(),
    )
        .prop_map(
            |(tenant, (checkpoint, note), keys, from_seq, vkey)| ExportHeader {
                format: ExportFormat,
                tenant,
                origin: checkpoint.origin().to_owned(),
                from_seq,
                checkpoint: note,
                keys,
                verifier_keys: vec![vkey.to_string()],
            },
        )
}

fn export_trailer() -> impl Strategy<Value = ExportTrailer> {
    (
        0u64..1_000_000,
        proptest::option::of(0u64..1_000_000),
        proptest::collection::vec(hash(), 0..8),
    )
        .prop_map(|(records, last_seq, inclusion_proof)| ExportTrailer {
            records,
            last_seq,
            inclusion_proof,
        })
}

fn bundle() -> impl Strategy<Value = Bundle> {
    (
        export_header(),
        proptest::collection::vec(
            (
                record(),
                proptest::collection::vec(hash(), 0..4),
                // The committed values: 0 left out, 1 given, 2 marked erased.
                0u8..3,
            ),
            1..3,
        ),
    )
        .prop_filter_map("a bundle", |(header, entries)| {
            let decision_event_id = entries.first()?.0.event_id;
            let entries = entries
                .into_iter()
                .map(|(record, inclusion_proof, values)| {
                    let erasure_seq = ledger::types::Sequence::new(record.seq.get() + 1).ok();
                    let erased = match erasure_seq {
                        Some(erasure_seq) if values == 2 && !record.erasable.is_empty() => Some(
                            record
                                .erasable
                                .keys()
                                .map(|name| (name.clone(), ErasedField { erasure_seq }))
                                .collect(),
                        ),
                        _ => None,
                    };
                    let erasable_values = (values == 1 && !record.erasable.is_empty()).then(|| {
                        record
                            .erasable
                            .keys()
                            .map(|name| {
                                (
                                    name.clone(),
                                    ledger::record::ErasableValue {
                                        salt: [5u8; 32],
                                        value: serde_json::json!("Jane Doe"),
                                    },
                                )
                            })
                            .collect()
                    });
                    BundleEntry {
                        record,
                        inclusion_proof,
                        erasable_values,
                        erased,
                    }
                })
                .collect();
            Some(Bundle {
                format: BundleFormat,
                tenant: header.tenant,
                origin: header.origin,
                decision_event_id,
                checkpoint: header.checkpoint,
                keys: header.keys,
                verifier_keys: header.verifier_keys,
                entries,
            })
        })
}

// ---------------------------------------------------------------------------------------------
// The parsers, each with its writer, as byte functions.

/// A signed note written back from its parts, as `sign_note` writes one.
fn note_bytes(note: &Note) -> String {
    let mut out = format!("{}\n", note.text());
    for s in note.signatures() {
        let mut raw = s.key_id().as_bytes().to_vec();
        raw.extend_from_slice(s.signature_bytes());
        out.push_str(&format!("\u{2014} {} {}\n", s.name(), STANDARD.encode(raw)));
    }
    out
}

fn reparse_note(bytes: &[u8]) -> Option<String> {
    Note::parse(bytes).ok().map(|n| note_bytes(&n))
}

fn reparse_checkpoint(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    Checkpoint::parse_body(text).ok().map(|c| c.to_body())
}

fn reparse_tlog_proof(bytes: &[u8]) -> Option<String> {
    TlogProof::parse(bytes).ok().map(|p| p.format())
}

fn reparse_vkey(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    VerifierKey::parse(text).ok().map(|k| k.to_string())
}

fn reparse_record(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    Record::from_json(text).ok().map(|r| record_line(&r))
}

fn reparse_header(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    ledger::json::from_str::<ExportHeader>(text)
        .ok()
        .map(|h| h.to_line())
}

fn reparse_trailer(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    ExportTrailer::from_line(text).ok().map(|t| t.to_line())
}

fn reparse_bundle(bytes: &[u8]) -> Option<String> {
    Bundle::from_json(bytes).ok().map(|b| b.to_json())
}

fn reparse_key_history(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    KeyHistory::parse(text).ok().map(|h| h.to_json())
}

/// A parser followed by its writer: what the parser read, written back (`None` if it refused).
type Reparse = fn(&[u8]) -> Option<String>;

/// Every parser with its writer, for the no-panic properties.
const PARSERS: [(&str, Reparse); 9] = [
    ("note", reparse_note),
    ("checkpoint", reparse_checkpoint),
    ("tlog-proof", reparse_tlog_proof),
    ("vkey", reparse_vkey),
    ("record line", reparse_record),
    ("export header", reparse_header),
    ("export trailer", reparse_trailer),
    ("bundle", reparse_bundle),
    ("key history", reparse_key_history),
];

/// Whether two JSON texts are the same JSON value: JSON does not read insignificant whitespace,
/// the order of an object's members or how a string character is escaped (`\/` is `/`).
fn same_json(a: &[u8], b: &[u8]) -> bool {
    match (
        serde_json::from_slice::<serde_json::Value>(a),
        serde_json::from_slice::<serde_json::Value>(b),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The byte ranges of the `payload` objects in a serialized JSON document: each record's
/// canonical payload text, found where the writer put it.
fn payload_spans(text: &str, payloads: &[&str]) -> Vec<std::ops::Range<usize>> {
    let mut spans = Vec::new();
    let mut from = 0;
    for p in payloads {
        if let Some(at) = text[from..].find(&format!("\"payload\":{p}")).or_else(|| {
            text[from..]
                .find(&format!("\"payload\": {p}"))
                .map(|i| i + 1)
        }) {
            let start = from + at + "\"payload\":".len();
            spans.push(start..start + p.len());
            from = start + p.len();
        }
    }
    spans
}

/// The single-byte changes tried at each position: neighbours of the byte, its other case,
/// structural characters, hex and base64 digits, and the bytes of a multi-byte character.
const REPLACEMENTS: &[u8] = b" \n\"\\{}[],:0139afAF+/=-\xc3\xa9\x00";

/// Checks that no single-byte change of `valid` is read as anything but exactly what it says
/// (see the module documentation); `json` relaxes that to equal JSON values, and to anything in
/// `exempt`.
fn check_mutations(
    what: &str,
    valid: &str,
    reparse: Reparse,
    json: bool,
    exempt: &[std::ops::Range<usize>],
    positions: &[usize],
) -> Result<(), TestCaseError> {
    let bytes = valid.as_bytes();
    for &i in positions {
        let i = i % bytes.len();
        let mut candidates: Vec<u8> = REPLACEMENTS.to_vec();
        candidates.extend([
            bytes[i].wrapping_add(1),
            bytes[i].wrapping_sub(1),
            bytes[i] ^ 0x20,
        ]);
        for r in candidates {
            if r == bytes[i] {
                continue;
            }
            let mut mutated = bytes.to_vec();
            mutated[i] = r;
            let Some(written) = reparse(&mutated) else {
                continue;
            };
            if written.as_bytes() == mutated.as_slice() {
                continue;
            }
            if json
                && (same_json(written.as_bytes(), &mutated)
                    || exempt.iter().any(|s| s.contains(&i)))
            {
                continue;
            }
            return Err(TestCaseError::fail(format!(
                "{what}: byte {i} set to {r:#04x} was read as something else:\n  read:    {:?}\n  written: {written:?}",
                String::from_utf8_lossy(&mutated)
            )));
        }
    }
    Ok(())
}

fn positions() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(any::<usize>(), 24)
}

// ---------------------------------------------------------------------------------------------
// No panics.

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn no_parser_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for (_, parse) in PARSERS {
            let _ = parse(&bytes);
        }
    }

    #[test]
    fn no_parser_panics_on_arbitrary_text_made_of_its_own_alphabet(
        text in "[{}\\[\\]\":,0-9a-fA-F+/= \n\u{2014}.a-z_-]{0,400}"
    ) {
        for (_, parse) in PARSERS {
            let _ = parse(text.as_bytes());
        }
    }

    #[test]
    fn no_parser_panics_on_a_valid_document_cut_short((header, cut) in (export_header(), any::<usize>())) {
        let texts = [
            header.to_line(),
            header.checkpoint.clone(),
            header.verifier_keys[0].clone(),
        ];
        for text in texts {
            let cut = cut % (text.len() + 1);
            for (_, parse) in PARSERS {
                let _ = parse(&text.as_bytes()[..cut]);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Round trips and mutations, one parser at a time.

proptest! {
    #![proptest_config(config(MUTATION_CASES))]

    #[test]
    fn a_signed_note_round_trips_and_no_changed_byte_is_normalised(
        (_, note) in signed_checkpoint(), at in positions()
    ) {
        prop_assert_eq!(reparse_note(note.as_bytes()), Some(note.clone()));
        check_mutations("note", &note, reparse_note, false, &[], &at)?;
    }

    #[test]
    fn a_checkpoint_round_trips_and_no_changed_byte_is_normalised(
        checkpoint in checkpoint_body(), at in positions()
    ) {
        let body = checkpoint.to_body();
        let parsed = Checkpoint::parse_body(&body);
        prop_assert_eq!(parsed.as_ref().ok(), Some(&checkpoint));
        check_mutations("checkpoint", &body, reparse_checkpoint, false, &[], &at)?;
    }

    #[test]
    fn a_tlog_proof_round_trips_and_no_changed_byte_is_normalised(
        proof in tlog_proof(), at in positions()
    ) {
        let text = proof.format();
        prop_assert_eq!(TlogProof::parse(text.as_bytes()).ok(), Some(proof.clone()));
        check_mutations("tlog-proof", &text, reparse_tlog_proof, false, &[], &at)?;
    }

    #[test]
    fn a_verifier_key_round_trips_and_no_changed_byte_is_normalised(
        vkey in verifier_key(), at in positions()
    ) {
        let text = vkey.to_string();
        let parsed = VerifierKey::parse(&text);
        prop_assert_eq!(parsed.as_ref().map(|k| k.to_string()).ok(), Some(text.clone()));
        check_mutations("vkey", &text, reparse_vkey, false, &[], &at)?;
    }

    #[test]
    fn a_record_line_round_trips_and_no_changed_byte_is_normalised(
        record in record(), at in positions()
    ) {
        let line = record_line(&record);
        let text = line.trim_end();
        prop_assert_eq!(Record::from_json(text).ok(), Some(record.clone()));
        let spans = payload_spans(&line, &[record.payload.as_str()]);
        prop_assert_eq!(spans.len(), 1);
        check_mutations("record line", &line, reparse_record, true, &spans, &at)?;
    }

    #[test]
    fn an_export_header_round_trips_and_no_changed_byte_is_normalised(
        header in export_header(), at in positions()
    ) {
        let line = header.to_line();
        let parsed = ledger::json::from_str::<ExportHeader>(line.trim_end());
        prop_assert_eq!(parsed.ok(), Some(header.clone()));
        check_mutations("export header", &line, reparse_header, true, &[], &at)?;
    }

    #[test]
    fn an_export_trailer_round_trips_and_no_changed_byte_is_normalised(
        trailer in export_trailer(), at in positions()
    ) {
        let line = trailer.to_line();
        prop_assert_eq!(ExportTrailer::from_line(line.trim_end()).ok(), Some(trailer.clone()));
        check_mutations("export trailer", &line, reparse_trailer, true, &[], &at)?;
    }

    #[test]
    fn a_bundle_round_trips_and_no_changed_byte_is_normalised(
        bundle in bundle(), at in positions()
    ) {
        let text = bundle.to_json();
        prop_assert_eq!(Bundle::from_json(text.as_bytes()).ok(), Some(bundle.clone()));
        let payloads: Vec<&str> = bundle.entries.iter().map(|e| e.record.payload.as_str()).collect();
        let spans = payload_spans(&text, &payloads);
        prop_assert_eq!(spans.len(), payloads.len());
        check_mutations("bundle", &text, reparse_bundle, true, &spans, &at)?;
    }

    #[test]
    fn a_key_history_round_trips_and_no_changed_byte_is_normalised(
        history in key_history(), at in positions()
    ) {
        let text = history.to_json();
        prop_assert_eq!(KeyHistory::parse(&text).ok(), Some(history.clone()));
        check_mutations("key history", &text, reparse_key_history, true, &[], &at)?;
    }
}

#[test]
fn a_payload_spelled_otherwise_is_the_same_payload() {
    // The one reading that is not byte-exact, by design: a payload is JSON, hashed in its RFC
    // 8785 form, so another spelling of the same value is the same record.
    let line = "{\"a\":1e-7}";
    let payload = ledger::record::Payload::from_json(line).expect("a payload");
    assert_eq!(payload.as_str(), "{\"a\":1e-7}");
    let other = ledger::record::Payload::from_json("{\"a\":1E-7}").expect("a payload");
    assert_eq!(other, payload);
}
