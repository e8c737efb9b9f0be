//! The record format: RFC 8785 vectors, the hand-written canonical body against a generic JCS,
//! sealing, tamper detection on every field, and strict parsing at the edge.

use std::collections::BTreeMap;
use std::path::Path;

use ed25519_dalek::{SigningKey, Verifier};
use ledger::canonical::{CanonicalError, canonicalize, jcs};
use ledger::draft::prepare_draft;
use ledger::keys::RecordSigner;
use ledger::record::{ChainPosition, EventType, Payload, Record, seal};
use ledger::types::{CaptureTime, EventId, Hash, Sequence, TenantId};
use proptest::prelude::*;
use serde_json::{Value, json};

fn vectors() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors"))
}

fn signer() -> RecordSigner {
    RecordSigner::new(SigningKey::from_bytes(&[7u8; 32]))
}

fn decision_payload() -> Value {
    json!({
        "model_id": "credit-limit",
        "model_version": "4.2.0",
        "input_commitment": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "outcome": "approved",
        "score": 0.87,
        "reason_codes": ["R12", "R40"],
        "subject_ref": "subj-5d41402a",
        "decided_at": "2026-11-29T08:49:27.123Z",
        "oversight_mode": "human_on_the_loop"
    })
}

fn sample_record(payload: Value, erasable: BTreeMap<String, Value>) -> Record {
    let prepared = prepare_draft(
        "01936f5e-7a2b-7c3d-8e4f-a1b2c3d4e5f6",
        "decision",
        &payload,
        &erasable,
        || [9u8; 32],
    )
    .expect("valid draft");
    seal(
        &TenantId::parse("acme-bank").expect("tenant"),
        ChainPosition {
            seq: Sequence::new(5).expect("seq"),
            prev: Hash::from_bytes([3u8; 32]),
            captured_at: CaptureTime::from_unix_micros(1_795_000_000_123_456).expect("time"),
        },
        prepared.draft,
        &signer(),
    )
}

#[test]
fn every_rfc8785_vector_canonicalizes_byte_for_byte() {
    let mut count = 0;
    for entry in std::fs::read_dir(vectors().join("rfc8785/input")).expect("vector dir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("name").to_owned();
        let input: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("input")).expect("input json");
        let expected = std::fs::read(vectors().join("rfc8785/output").join(&name)).expect("output");
        let got = jcs(&input).expect("canonicalize");
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&expected).trim_end_matches('\n'),
            "vector {name:?}"
        );
        count += 1;
    }
    assert!(count >= 6, "only {count} RFC 8785 vectors found");
}

#[test]
fn integers_beyond_two_to_the_53_are_rejected_with_their_path() {
    let value: Value = serde_json::from_str(r#"{"a":{"b":[1, 9007199254740993]}}"#).expect("json");
    let err = canonicalize(&value, "/payload").expect_err("must reject");
    assert!(
        matches!(&err, CanonicalError::UnsafeInteger { path, .. } if path == "/payload/a/b/1"),
        "{err:?}"
    );
    let ok: Value =
        serde_json::from_str(r#"{"a":9007199254740991,"b":-9007199254740991}"#).expect("json");
    assert!(canonicalize(&ok, "").is_ok());
    let neg: Value = serde_json::from_str(r#"{"a":-9007199254740992}"#).expect("json");
    assert!(canonicalize(&neg, "").is_err());
    // A double that large would be written as integer digits that other parsers cannot hold.
    let big_float: Value = serde_json::from_str(r#"{"a":5.4e17}"#).expect("json");
    assert!(canonicalize(&big_float, "").is_err());
}

#[test]
fn the_hand_written_body_equals_a_generic_jcs_of_the_same_object() {
    let mut erasable = BTreeMap::new();
    erasable.insert("applicant_name".to_owned(), json!("Jane Q. Doe"));
    erasable.insert("date_of_birth".to_owned(), json!({"y": 1990, "m": 2}));
    let record = sample_record(decision_payload(), erasable);
    let mut body = serde_json::to_value(&record).expect("to value");
    let obj = body.as_object_mut().expect("object");
    obj.remove("hash");
    obj.remove("sig");
    let generic = canonicalize(&body, "").expect("jcs");
    assert_eq!(
        String::from_utf8_lossy(&record.canonical_body()),
        String::from_utf8_lossy(&generic)
    );
}

#[test]
fn a_sealed_record_hashes_and_verifies_and_round_trips_through_json() {
    let record = sample_record(decision_payload(), BTreeMap::new());
    assert_eq!(record.compute_hash(), record.hash);
    signer()
        .verifying_key()
        .verify(record.hash.as_bytes(), record.sig.signature())
        .expect("signature verifies");
    let text = serde_json::to_string(&record).expect("serialize");
    let back = Record::from_json(&text).expect("parse");
    assert_eq!(back, record);
    assert_eq!(back.compute_hash(), record.hash);
}

#[test]
fn changing_any_envelope_field_changes_the_hash() {
    let record = sample_record(decision_payload(), BTreeMap::new());
    let text = serde_json::to_string(&record).expect("serialize");
    let base: Value = serde_json::from_str(&text).expect("json");
    let mutations: Vec<(&str, Value)> = vec![
        ("tenant", json!("acme-bamk")),
        ("seq", json!(6)),
        ("prev", json!(Hash::from_bytes([4u8; 32]).to_hex())),
        ("captured_at_us", json!(1_795_000_000_123_457u64)),
        ("event_id", json!("01936f5e-7a2b-7c3d-8e4f-a1b2c3d4e5f7")),
        ("event_type", json!("override")),
        ("key_id", json!("0000000000000000")),
        ("erasable", json!({"x": Hash::ZERO.to_hex()})),
    ];
    for (field, value) in mutations {
        let mut changed = base.clone();
        changed[field] = value;
        let parsed: Record = serde_json::from_value(changed).expect("still well-formed");
        assert_ne!(
            parsed.compute_hash(),
            record.hash,
            "changing {field} must change the hash"
        );
    }
    let mut changed = base.clone();
    changed["payload"]["score"] = json!(0.88);
    let parsed: Record = serde_json::from_value(changed).expect("well-formed");
    assert_ne!(parsed.compute_hash(), record.hash);
}

#[test]
fn payload_key_order_and_whitespace_do_not_change_the_canonical_payload() {
    let a = Payload::from_json(r#"{ "b": 1, "a": [true, null, "x"] }"#).expect("a");
    let b = Payload::from_json(r#"{"a":[true,null,"x"],"b":1}"#).expect("b");
    assert_eq!(a, b);
    assert_eq!(a.as_str(), r#"{"a":[true,null,"x"],"b":1}"#);
}

#[test]
fn erasable_values_are_committed_with_a_salt_and_are_not_in_the_record() {
    let mut erasable = BTreeMap::new();
    erasable.insert("applicant_name".to_owned(), json!("Jane Q. Doe"));
    let prepared = prepare_draft(
        "01936f5e-7a2b-7c3d-8e4f-a1b2c3d4e5f6",
        "decision",
        &decision_payload(),
        &erasable,
        || [1u8; 32],
    )
    .expect("valid");
    let value = &prepared.erasable_values
        [&ledger::record::FieldName::parse("applicant_name").expect("name")];
    let commitment = prepared
        .draft
        .erasable
        .values()
        .next()
        .expect("one commitment");
    assert_eq!(
        &value
            .commitment("/erasable/applicant_name")
            .expect("commit"),
        commitment
    );
    let other_salt = ledger::record::ErasableValue {
        salt: [2u8; 32],
        value: json!("Jane Q. Doe"),
    };
    assert_ne!(&other_salt.commitment("").expect("commit"), commitment);
    let record = sample_record(decision_payload(), erasable);
    let text = serde_json::to_string(&record).expect("serialize");
    assert!(
        !text.contains("Jane"),
        "personal data leaked into the record: {text}"
    );
}

#[test]
fn bad_client_input_is_rejected_with_every_failing_path() {
    let mut payload = decision_payload();
    payload["score"] = json!("high");
    payload
        .as_object_mut()
        .expect("obj")
        .remove("model_version");
    payload["modle_id"] = json!("typo");
    let err = prepare_draft("not-a-uuid", "decision", &payload, &BTreeMap::new(), || {
        [0u8; 32]
    })
    .expect_err("invalid");
    let paths: Vec<_> = err.iter().map(|e| e.path.as_str()).collect();
    for expected in [
        "/event_id",
        "/payload/score",
        "/payload/model_version",
        "/payload/modle_id",
    ] {
        assert!(paths.contains(&expected), "missing {expected} in {paths:?}");
    }
    let err = prepare_draft(
        "01936f5e-7a2b-7c3d-8e4f-a1b2c3d4e5f6",
        "decison",
        &decision_payload(),
        &BTreeMap::new(),
        || [0u8; 32],
    )
    .expect_err("unknown type");
    assert_eq!(err[0].path, "/event_type");
    // A UUID of another version is not an event id.
    assert!(EventId::parse("550e8400-e29b-41d4-a716-446655440000").is_err());
    assert!(EventId::parse("01936F5E-7A2B-7C3D-8E4F-A1B2C3D4E5F6").is_err());
}

#[test]
fn a_nul_anywhere_in_a_payload_or_erasable_value_is_refused_with_its_pointer() {
    let mut payload = decision_payload();
    payload["subject_ref"] = json!("x\u{0}y");
    payload["reason_codes"] = json!(["R1", "R\u{0}2"]);
    payload["attributes"] = json!({"a\u{0}b": 1, "nested": {"deep": ["ok", "n\u{0}"]}});
    let erasable = BTreeMap::from([
        ("name".to_owned(), json!({"first": "A\u{0}"})),
        ("email".to_owned(), json!("clean@example.org")),
    ]);
    let err = prepare_draft(
        "01936f5e-7a2b-7c3d-8e4f-a1b2c3d4e5f6",
        "decision",
        &payload,
        &erasable,
        || [1; 32],
    )
    .expect_err("NUL is refused");
    let mut paths: Vec<_> = err
        .iter()
        .filter(|e| e.problem.contains("U+0000"))
        .map(|e| e.path.as_str())
        .collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        vec![
            "/erasable/name/first",
            "/payload/attributes/a\u{0}b",
            "/payload/attributes/nested/deep/1",
            "/payload/reason_codes/1",
            "/payload/subject_ref",
        ]
    );
    // Every other control character is an ordinary character of a string.
    let mut payload = decision_payload();
    payload["subject_ref"] = json!("x\u{1}\u{7f}y");
    prepare_draft(
        "01936f5e-7a2b-7c3d-8e4f-a1b2c3d4e5f6",
        "decision",
        &payload,
        &BTreeMap::new(),
        || [1; 32],
    )
    .expect("control characters other than NUL are accepted");
}

#[test]
fn follow_ups_must_name_a_decision() {
    let err = prepare_draft(
        "01936f5e-7a2b-7c3d-8e4f-a1b2c3d4e5f6",
        "override",
        &json!({"reviewer": "r.smith", "new_outcome": "declined", "reason": "policy"}),
        &BTreeMap::new(),
        || [0u8; 32],
    )
    .expect_err("missing decision_id");
    assert_eq!(err[0].path, "/payload/decision_id");
    assert!(EventType::parse("override").is_ok());
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-(1i64 << 53) + 1..(1i64 << 53)).prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite and in range", |f| f.is_finite() && f.abs() < 9.0e15)
            .prop_map(|f| json!(f)),
        "\\PC{0,12}".prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("\\PC{0,8}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn hand_written_body_matches_generic_jcs_for_random_payloads(
        attrs in prop::collection::btree_map("\\PC{1,8}", json_value(), 0..4),
        seq in 0u64..(1u64 << 53),
        micros in 0u64..(1u64 << 53),
    ) {
        let mut payload = decision_payload();
        payload["attributes"] = Value::Object(attrs.into_iter().collect());
        let prepared = prepare_draft(
            "01936f5e-7a2b-7c3d-8e4f-a1b2c3d4e5f6", "decision", &payload, &BTreeMap::new(), || [0u8; 32],
        ).expect("valid");
        let record = seal(
            &TenantId::parse("t1").expect("tenant"),
            ChainPosition {
                seq: Sequence::new(seq).expect("seq"),
                prev: Hash::ZERO,
                captured_at: CaptureTime::from_unix_micros(micros).expect("time"),
            },
            prepared.draft,
            &signer(),
        );
        let mut body = serde_json::to_value(&record).expect("value");
        let obj = body.as_object_mut().expect("object");
        obj.remove("hash");
        obj.remove("sig");
        prop_assert_eq!(record.canonical_body(), canonicalize(&body, "").expect("jcs"));
        let back = Record::from_json(&serde_json::to_string(&record).expect("ser")).expect("parse");
        prop_assert_eq!(back.compute_hash(), record.hash);
    }
}

#[test]
fn a_body_from_the_canonical_texts_of_a_record_is_the_records_own_body_and_hash() {
    let mut erasable = BTreeMap::new();
    erasable.insert("applicant_name".to_owned(), json!("Jane Q. Doe"));
    let record = sample_record(decision_payload(), erasable);
    let line: Value = serde_json::from_str(&ledger::export::record_line(&record)).expect("json");
    let erasable_text = line["erasable"].to_string();
    let parts = ledger::record::BodyParts {
        tenant: &record.tenant,
        seq: record.seq,
        prev: &record.prev,
        captured_at: record.captured_at_us,
        event_id: &record.event_id,
        event_type: record.event_type,
        payload: record.payload.as_str().as_bytes(),
        erasable: erasable_text.as_bytes(),
        key_id: record.key_id,
    };
    let mut body = Vec::new();
    assert_eq!(parts.hash_into(&mut body), record.hash);
    assert_eq!(body, record.canonical_body());
    // Texts are hashed as given: another spelling of the same payload is another body, so a
    // caller that does not check canonical form gets a hash that matches nothing.
    let spaced = record.payload.as_str().replacen(':', ": ", 1);
    let other = ledger::record::BodyParts {
        payload: spaced.as_bytes(),
        ..parts
    };
    assert_ne!(other.hash_into(&mut body), record.hash);
}
