//! Tests of the C2SP formats: signed notes, checkpoints and tlog-proof files, against published
//! vectors (C2SP signed-note example, RFC 8032) and against every malformed input we could think
//! of. Keys come from fixed seeds so that every run signs the same bytes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use ledger::checkpoint::{
    Checkpoint, CheckpointError, OpenCheckpointError, SignCheckpointError, open_checkpoint,
    sign_checkpoint, tenant_origin,
};
use ledger::note::{
    KeyNameError, NOTE_BYTES_MAX, Note, NoteKeyId, NoteSigner, ParseNoteError, SIGNATURE_LINES_MAX,
    SignNoteError, SignatureLineError, VerifierKey, VerifierKeyError, VerifyNoteError,
    ed25519_key_id, sign_note, verify_note,
};
use ledger::proof_file::{
    EXTRA_BYTES_MAX, PROOF_HASHES_MAX, TLOG_PROOF_BYTES_MAX, TLOG_PROOF_HEADER, TlogProof,
    TlogProofError,
};
use ledger::types::{Hash, LeafIndex, TreeSize};
use proptest::prelude::*;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

const ORIGIN: &str = "auditex.example.com/ledger/acme";

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn signer<'k>(name: &str, key: &'k SigningKey) -> NoteSigner<'k> {
    NoteSigner::new(name, key).expect("test key names are valid")
}

fn root(byte: u8) -> Hash {
    Hash::from_bytes([byte; 32])
}

fn decode_hex<const N: usize>(text: &str) -> [u8; N] {
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).expect("vector hex is valid");
    out
}

// ---------------------------------------------------------------------------------------------
// Published vectors
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct SignedNoteVector {
    verifier_key: String,
    key_name: String,
    key_id_hex: String,
    note_text: String,
    signature_line: String,
    signed_note: String,
}

fn signed_note_vector() -> SignedNoteVector {
    let text = include_str!("vectors/c2sp/signed-note.json");
    serde_json::from_str(text).expect("signed-note vector is valid JSON")
}

#[test]
fn the_c2sp_verifier_key_parses_with_its_name_and_key_id() {
    let vector = signed_note_vector();
    let vkey = VerifierKey::parse(&vector.verifier_key).expect("vector vkey parses");
    assert_eq!(vkey.name(), vector.key_name);
    assert_eq!(vkey.key_id().to_hex(), vector.key_id_hex);
}

#[test]
fn the_c2sp_key_id_is_the_truncated_sha256_of_name_newline_type_and_key() {
    let vector = signed_note_vector();
    let vkey = VerifierKey::parse(&vector.verifier_key).expect("vector vkey parses");
    let mut preimage = vector.key_name.as_bytes().to_vec();
    preimage.push(0x0a);
    preimage.push(0x01);
    preimage.extend_from_slice(vkey.verifying_key().as_bytes());
    let digest = Sha256::digest(&preimage);
    assert_eq!(hex::encode(&digest[..4]), vector.key_id_hex);
    assert_eq!(
        ed25519_key_id(&vector.key_name, vkey.verifying_key()).to_hex(),
        vector.key_id_hex
    );
}

#[test]
fn the_c2sp_verifier_key_formats_back_to_the_same_text() {
    let vector = signed_note_vector();
    let vkey: VerifierKey = vector.verifier_key.parse().expect("vector vkey parses");
    assert_eq!(vkey.to_string(), vector.verifier_key);
}

#[test]
fn the_c2sp_signed_note_is_text_blank_line_and_signature_line() {
    let vector = signed_note_vector();
    assert!(
        vector
            .signature_line
            .starts_with("\u{2014} example.com/foo ")
    );
    assert_eq!(
        vector.signed_note,
        format!("{}\n{}\n", vector.note_text, vector.signature_line)
    );
    let note = Note::parse(vector.signed_note.as_bytes()).expect("vector note parses");
    assert_eq!(note.text(), vector.note_text);
    let [line] = note.signatures() else {
        panic!("the vector has exactly one signature line");
    };
    assert_eq!(line.name(), vector.key_name);
    assert_eq!(line.key_id().to_hex(), vector.key_id_hex);
    assert_eq!(line.signature_bytes().len(), 64);
}

#[test]
fn the_c2sp_signed_note_verifies_under_its_verifier_key() {
    let vector = signed_note_vector();
    let vkey = VerifierKey::parse(&vector.verifier_key).expect("vector vkey parses");
    let note = Note::parse(vector.signed_note.as_bytes()).expect("vector note parses");
    let known = [vkey];
    let verified = verify_note(&note, &known).expect("vector note verifies");
    assert_eq!(verified, vec![&known[0]]);
}

#[test]
fn the_c2sp_signed_note_fails_when_its_text_is_altered() {
    let vector = signed_note_vector();
    let vkey = VerifierKey::parse(&vector.verifier_key).expect("vector vkey parses");
    let altered = vector
        .signed_note
        .replace("example message", "exemplary message");
    let note = Note::parse(altered.as_bytes()).expect("altered note still parses");
    assert!(matches!(
        verify_note(&note, &[vkey]),
        Err(VerifyNoteError::BadSignature { .. })
    ));
}

#[derive(Deserialize)]
struct Rfc8032Vectors {
    vectors: Vec<Rfc8032Vector>,
}

#[derive(Deserialize)]
struct Rfc8032Vector {
    secret_key: String,
    public_key: String,
    message: String,
    signature: String,
}

fn rfc8032_vectors() -> Vec<Rfc8032Vector> {
    let text = include_str!("vectors/rfc8032-ed25519.json");
    let file: Rfc8032Vectors = serde_json::from_str(text).expect("RFC 8032 vectors are JSON");
    assert!(!file.vectors.is_empty());
    file.vectors
}

#[test]
fn rfc8032_seeds_give_the_published_public_keys_and_signatures() {
    for vector in rfc8032_vectors() {
        let signing = SigningKey::from_bytes(&decode_hex::<32>(&vector.secret_key));
        assert_eq!(
            hex::encode(signing.verifying_key().as_bytes()),
            vector.public_key
        );
        let message = hex::decode(&vector.message).expect("message hex");
        let signature = signing.sign(&message);
        assert_eq!(hex::encode(signature.to_bytes()), vector.signature);
    }
}

#[test]
fn rfc8032_signatures_verify_and_fail_after_any_single_bit_flip() {
    for vector in rfc8032_vectors() {
        let public = VerifyingKey::from_bytes(&decode_hex::<32>(&vector.public_key))
            .expect("vector public key");
        let message = hex::decode(&vector.message).expect("message hex");
        let good = decode_hex::<64>(&vector.signature);
        let signature = ed25519_dalek::Signature::from_bytes(&good);
        assert!(public.verify_strict(&message, &signature).is_ok());
        for bit in [0, 7, 255, 256, 511] {
            let mut bad = good;
            bad[bit / 8] ^= 1 << (bit % 8);
            let signature = ed25519_dalek::Signature::from_bytes(&bad);
            assert!(
                public.verify_strict(&message, &signature).is_err(),
                "flipping bit {bit} must break the signature"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Verifier keys and signers
// ---------------------------------------------------------------------------------------------

#[test]
fn a_signer_and_its_verifier_key_round_trip_through_text() {
    let signing = key(1);
    let signer = signer(ORIGIN, &signing);
    let vkey = signer.verifier_key();
    assert_eq!(vkey.key_id(), signer.key_id());
    let text = vkey.to_string();
    assert!(text.starts_with(&format!("{ORIGIN}+{}+", signer.key_id().to_hex())));
    assert_eq!(VerifierKey::parse(&text), Ok(vkey));
}

#[test]
fn a_verifier_key_with_an_uppercase_key_id_is_rejected() {
    // FORMAT.md: exactly one encoding of every value; the key id is lower-case hex.
    let signing = key(1);
    let vkey = signer("log.example", &signing).verifier_key();
    let text = vkey.to_string();
    let id = vkey.key_id().to_hex();
    let upper = text.replacen(&id, &id.to_uppercase(), 1);
    assert!(VerifierKey::parse(&upper).is_err());
    assert_eq!(VerifierKey::parse(&text), Ok(vkey));
}

#[test]
fn a_verifier_key_with_a_wrong_key_id_is_rejected() {
    let signing = key(1);
    let vkey = signer("log.example", &signing).verifier_key();
    let text = vkey.to_string();
    let id = vkey.key_id().to_hex();
    let mut wrong = *vkey.key_id().as_bytes();
    wrong[3] ^= 1;
    let text = text.replacen(&id, &hex::encode(wrong), 1);
    assert_eq!(
        VerifierKey::parse(&text),
        Err(VerifierKeyError::KeyIdMismatch {
            stated: NoteKeyId::from_bytes(wrong),
            derived: vkey.key_id(),
        })
    );
}

#[test]
fn a_verifier_key_renamed_without_a_new_key_id_is_rejected() {
    let signing = key(1);
    let vkey = signer("log.example", &signing).verifier_key();
    let renamed = vkey.to_string().replacen("log.example", "log2.example", 1);
    assert!(matches!(
        VerifierKey::parse(&renamed),
        Err(VerifierKeyError::KeyIdMismatch { .. })
    ));
}

#[test]
fn malformed_verifier_keys_are_rejected_with_the_field_at_fault() {
    let signing = key(1);
    let good = signer("log.example", &signing).verifier_key().to_string();
    let (name_and_id, key_b64) = good.rsplit_once('+').expect("three fields");
    let id = &name_and_id["log.example+".len()..];
    let public = signing.verifying_key().to_bytes();
    let with_type = |t: u8, key: &[u8]| {
        let mut raw = vec![t];
        raw.extend_from_slice(key);
        STANDARD.encode(raw)
    };

    let cases: Vec<(String, VerifierKeyError)> = vec![
        ("log.example".into(), VerifierKeyError::Malformed),
        (format!("log.example+{id}"), VerifierKeyError::Malformed),
        (
            format!("+{id}+{key_b64}"),
            VerifierKeyError::Name(KeyNameError::Empty),
        ),
        (
            format!("log example+{id}+{key_b64}"),
            VerifierKeyError::Name(KeyNameError::Space),
        ),
        (
            format!("log\u{a0}example+{id}+{key_b64}"),
            VerifierKeyError::Name(KeyNameError::Space),
        ),
        (
            format!("log\u{1}example+{id}+{key_b64}"),
            VerifierKeyError::Name(KeyNameError::ControlCharacter),
        ),
        (
            format!("log.example+{}+{key_b64}", &id[..7]),
            VerifierKeyError::KeyIdNotHex,
        ),
        (
            format!("log.example+{id}0+{key_b64}"),
            VerifierKeyError::KeyIdNotHex,
        ),
        (
            format!("log.example+zzzzzzzz+{key_b64}"),
            VerifierKeyError::KeyIdNotHex,
        ),
        (
            format!("log.example+{id}+{}", &key_b64[..key_b64.len() - 1]),
            VerifierKeyError::Base64,
        ),
        (
            format!("log.example+{id}+{key_b64} "),
            VerifierKeyError::Base64,
        ),
        (
            format!("log.example+{id}+"),
            VerifierKeyError::MissingSignatureType,
        ),
        (
            format!("log.example+{id}+{}", with_type(0x02, &public)),
            VerifierKeyError::UnsupportedSignatureType(0x02),
        ),
        (
            format!("log.example+{id}+{}", with_type(0x01, &public[..31])),
            VerifierKeyError::PublicKeyLength(31),
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(VerifierKey::parse(&text), Err(expected), "input {text:?}");
    }
}

#[test]
fn a_small_order_public_key_is_refused() {
    // The encoding of the identity point: a valid curve point of order 1.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let weak = VerifyingKey::from_bytes(&identity).expect("the identity decodes");
    assert_eq!(
        VerifierKey::new("log.example", weak),
        Err(VerifierKeyError::WeakPublicKey)
    );
    let id = ed25519_key_id("log.example", &weak);
    let mut raw = vec![0x01];
    raw.extend_from_slice(&identity);
    let text = format!("log.example+{id}+{}", STANDARD.encode(raw));
    assert_eq!(
        VerifierKey::parse(&text),
        Err(VerifierKeyError::WeakPublicKey)
    );
}

#[test]
fn signers_with_invalid_names_are_refused() {
    let signing = key(1);
    for (name, expected) in [
        ("", KeyNameError::Empty),
        ("a+b", KeyNameError::Plus),
        ("a b", KeyNameError::Space),
        ("a\tb", KeyNameError::Space),
        ("a\u{2003}b", KeyNameError::Space),
        ("a\rb", KeyNameError::Space),
        ("a\u{1b}b", KeyNameError::ControlCharacter),
    ] {
        assert_eq!(
            NoteSigner::new(name, &signing).map(|_| ()),
            Err(expected),
            "{name:?}"
        );
    }
}

#[test]
fn a_signer_debug_output_shows_no_secret() {
    let signing = key(9);
    let debug = format!("{:?}", signer("log.example", &signing));
    assert!(debug.contains("log.example"));
    assert!(!debug.contains(&hex::encode(signing.to_bytes())));
    assert!(!debug.contains("09, 09"));
}

// ---------------------------------------------------------------------------------------------
// Signing and verifying notes
// ---------------------------------------------------------------------------------------------

#[test]
fn a_signed_note_has_the_text_a_blank_line_and_one_exact_line_per_signer() {
    let signing = key(1);
    let s = signer("log.example", &signing);
    let text = "hello\nworld\n";
    let note = sign_note(text, std::slice::from_ref(&s)).expect("signs");
    let expected_sig = signing.sign(text.as_bytes()).to_bytes();
    let mut payload = s.key_id().as_bytes().to_vec();
    payload.extend_from_slice(&expected_sig);
    assert_eq!(
        note,
        format!(
            "hello\nworld\n\n\u{2014} log.example {}\n",
            STANDARD.encode(payload)
        )
    );
}

#[test]
fn a_signed_note_round_trips_and_verifies() {
    let signing = key(1);
    let s = signer("log.example", &signing);
    let text = "line one\n\nline three after a blank line\n";
    let signed = sign_note(text, std::slice::from_ref(&s)).expect("signs");
    let note = Note::parse(signed.as_bytes()).expect("parses");
    assert_eq!(note.text(), text);
    let known = [s.verifier_key()];
    assert_eq!(verify_note(&note, &known), Ok(vec![&known[0]]));
}

#[test]
fn a_text_that_is_a_single_newline_can_be_signed_and_verified() {
    let signing = key(1);
    let s = signer("log.example", &signing);
    let signed = sign_note("\n", std::slice::from_ref(&s)).expect("signs");
    let note = Note::parse(signed.as_bytes()).expect("parses");
    assert_eq!(note.text(), "\n");
    assert!(verify_note(&note, &[s.verifier_key()]).is_ok());
}

#[test]
fn a_text_that_looks_like_a_signature_block_stays_text() {
    let signing = key(1);
    let s = signer("log.example", &signing);
    let text = "a\n\n\u{2014} log.example AAAAAAA=\n";
    let signed = sign_note(text, std::slice::from_ref(&s)).expect("signs");
    let note = Note::parse(signed.as_bytes()).expect("parses");
    assert_eq!(note.text(), text);
    assert_eq!(note.signatures().len(), 1);
    assert!(verify_note(&note, &[s.verifier_key()]).is_ok());
}

#[test]
fn two_known_signers_both_verify_in_line_order() {
    let (k1, k2) = (key(1), key(2));
    let signers = [signer("log.example", &k1), signer("witness.example", &k2)];
    let signed = sign_note("text\n", &signers).expect("signs");
    let note = Note::parse(signed.as_bytes()).expect("parses");
    let known = [signers[1].verifier_key(), signers[0].verifier_key()];
    assert_eq!(verify_note(&note, &known), Ok(vec![&known[1], &known[0]]));
}

#[test]
fn a_line_from_an_unknown_key_is_ignored_when_a_known_key_verifies() {
    let (k1, k2) = (key(1), key(2));
    let signers = [signer("log.example", &k1), signer("stranger.example", &k2)];
    let signed = sign_note("text\n", &signers).expect("signs");
    let note = Note::parse(signed.as_bytes()).expect("parses");
    assert_eq!(note.signatures().len(), 2);
    let known = [signers[0].verifier_key()];
    assert_eq!(verify_note(&note, &known), Ok(vec![&known[0]]));
}

#[test]
fn a_note_signed_only_by_unknown_keys_is_rejected() {
    let (k1, k2) = (key(1), key(2));
    let signed = sign_note("text\n", &[signer("stranger.example", &k2)]).expect("signs");
    let note = Note::parse(signed.as_bytes()).expect("parses");
    let known = [signer("log.example", &k1).verifier_key()];
    assert_eq!(
        verify_note(&note, &known),
        Err(VerifyNoteError::NoVerifiedSignature)
    );
}

#[test]
fn a_note_signed_by_the_wrong_key_under_the_right_name_is_rejected() {
    // A different key under the same name has a different key id, so the line is unknown.
    let (right, wrong) = (key(1), key(2));
    let signed = sign_note("text\n", &[signer("log.example", &wrong)]).expect("signs");
    let note = Note::parse(signed.as_bytes()).expect("parses");
    let known = [signer("log.example", &right).verifier_key()];
    assert_eq!(
        verify_note(&note, &known),
        Err(VerifyNoteError::NoVerifiedSignature)
    );
}

#[test]
fn a_known_key_id_under_another_name_is_an_unknown_key() {
    let signing = key(1);
    let s = signer("log.example", &signing);
    let signed = sign_note("text\n", std::slice::from_ref(&s)).expect("signs");
    // Same key id and signature, other name: the spec says to ignore it, not to fail on it.
    let renamed = signed.replace("\u{2014} log.example ", "\u{2014} other.example ");
    let note = Note::parse(renamed.as_bytes()).expect("parses");
    assert_eq!(
        verify_note(&note, &[s.verifier_key()]),
        Err(VerifyNoteError::NoVerifiedSignature)
    );
}

fn flip_signature_bit(signed: &str, line: usize, byte: usize) -> String {
    let (text, block) = signed.split_at(signed.rfind("\n\n").expect("separator") + 2);
    let mut lines: Vec<String> = block.lines().map(str::to_owned).collect();
    let (prefix, encoded) = lines[line].rsplit_once(' ').expect("signature line");
    let mut raw = STANDARD.decode(encoded).expect("base64");
    raw[byte] ^= 0x01;
    lines[line] = format!("{prefix} {}", STANDARD.encode(raw));
    format!("{text}{}\n", lines.join("\n"))
}

#[test]
fn a_flipped_signature_bit_from_a_known_key_rejects_the_whole_note() {
    let (k1, k2) = (key(1), key(2));
    let signers = [signer("log.example", &k1), signer("witness.example", &k2)];
    let signed = sign_note("text\n", &signers).expect("signs");
    // Byte 4 is the first signature byte (bytes 0..4 are the key id); 67 is the last.
    for byte in [4, 40, 67] {
        let tampered = flip_signature_bit(&signed, 1, byte);
        let note = Note::parse(tampered.as_bytes()).expect("parses");
        let known = [signers[0].verifier_key(), signers[1].verifier_key()];
        assert_eq!(
            verify_note(&note, &known),
            Err(VerifyNoteError::BadSignature {
                name: "witness.example".into(),
                key_id: signers[1].key_id(),
            }),
            "byte {byte}"
        );
    }
}

#[test]
fn a_flipped_signature_bit_from_an_unknown_key_is_ignored() {
    let (k1, k2) = (key(1), key(2));
    let signers = [signer("log.example", &k1), signer("stranger.example", &k2)];
    let signed = sign_note("text\n", &signers).expect("signs");
    let tampered = flip_signature_bit(&signed, 1, 10);
    let note = Note::parse(tampered.as_bytes()).expect("parses");
    let known = [signers[0].verifier_key()];
    assert_eq!(verify_note(&note, &known), Ok(vec![&known[0]]));
}

#[test]
fn a_flipped_key_id_bit_makes_the_line_unknown() {
    let signing = key(1);
    let s = signer("log.example", &signing);
    let signed = sign_note("text\n", std::slice::from_ref(&s)).expect("signs");
    let tampered = flip_signature_bit(&signed, 0, 0);
    let note = Note::parse(tampered.as_bytes()).expect("parses");
    assert_eq!(
        verify_note(&note, &[s.verifier_key()]),
        Err(VerifyNoteError::NoVerifiedSignature)
    );
}

#[test]
fn an_altered_text_fails_verification() {
    let signing = key(1);
    let s = signer("log.example", &signing);
    let signed = sign_note("amount 100\n", std::slice::from_ref(&s)).expect("signs");
    let known = [s.verifier_key()];
    for altered in [
        signed.replace("amount 100", "amount 900"),
        signed.replace("amount 100\n", "amount 100 \n"),
        format!("x{signed}"),
        signed.replacen("amount 100\n", "amount 100\n\n", 1),
    ] {
        let note = Note::parse(altered.as_bytes()).expect("still well-formed");
        assert!(
            matches!(
                verify_note(&note, &known),
                Err(VerifyNoteError::BadSignature { .. })
            ),
            "{altered:?}"
        );
    }
}

#[test]
fn a_truncated_signature_from_a_known_key_is_a_bad_signature() {
    let signing = key(1);
    let s = signer("log.example", &signing);
    let mut payload = s.key_id().as_bytes().to_vec();
    payload.extend_from_slice(&signing.sign(b"text\n").to_bytes()[..63]);
    let note = format!(
        "text\n\n\u{2014} log.example {}\n",
        STANDARD.encode(payload)
    );
    let note = Note::parse(note.as_bytes()).expect("parses");
    assert!(matches!(
        verify_note(&note, &[s.verifier_key()]),
        Err(VerifyNoteError::BadSignature { .. })
    ));
}

#[test]
fn a_known_key_signing_twice_is_rejected() {
    let signing = key(1);
    let s = signer("log.example", &signing);
    let signed = sign_note("text\n", std::slice::from_ref(&s)).expect("signs");
    let line = &signed["text\n\n".len()..];
    let doubled = format!("{signed}{line}");
    let note = Note::parse(doubled.as_bytes()).expect("parses");
    assert_eq!(
        verify_note(&note, &[s.verifier_key()]),
        Err(VerifyNoteError::DuplicateSignature {
            name: "log.example".into(),
            key_id: s.key_id(),
        })
    );
}

#[test]
fn repeated_lines_from_an_unknown_key_are_ignored() {
    let (k1, k2) = (key(1), key(2));
    let signers = [signer("log.example", &k1), signer("stranger.example", &k2)];
    let signed = sign_note("text\n", &signers).expect("signs");
    let stranger_line = signed.lines().last().expect("a line").to_owned();
    let doubled = format!("{signed}{stranger_line}\n");
    let note = Note::parse(doubled.as_bytes()).expect("parses");
    assert_eq!(note.signatures().len(), 3);
    assert!(verify_note(&note, &[signers[0].verifier_key()]).is_ok());
}

#[test]
fn an_unknown_line_with_an_unfamiliar_signature_length_is_ignored() {
    let signing = key(1);
    let s = signer("log.example", &signing);
    let signed = sign_note("text\n", std::slice::from_ref(&s)).expect("signs");
    let other = format!(
        "{signed}\u{2014} pq.example {}\n",
        STANDARD.encode([0xAB; 2500])
    );
    let note = Note::parse(other.as_bytes()).expect("parses");
    assert_eq!(note.signatures()[1].signature_bytes().len(), 2496);
    assert!(verify_note(&note, &[s.verifier_key()]).is_ok());
}

#[test]
fn verifying_with_no_known_keys_fails() {
    let signing = key(1);
    let signed = sign_note("text\n", &[signer("log.example", &signing)]).expect("signs");
    let note = Note::parse(signed.as_bytes()).expect("parses");
    assert_eq!(
        verify_note(&note, &[]),
        Err(VerifyNoteError::NoVerifiedSignature)
    );
}

#[test]
fn invalid_texts_and_signer_lists_cannot_be_signed() {
    let (k1, k2) = (key(1), key(2));
    let one = [signer("log.example", &k1)];
    assert_eq!(sign_note("", &one), Err(SignNoteError::MissingFinalNewline));
    assert_eq!(
        sign_note("no newline", &one),
        Err(SignNoteError::MissingFinalNewline)
    );
    assert_eq!(
        sign_note("crlf\r\n", &one),
        Err(SignNoteError::ControlCharacter { offset: 4 })
    );
    assert_eq!(
        sign_note("tab\there\n", &one),
        Err(SignNoteError::ControlCharacter { offset: 3 })
    );
    assert_eq!(sign_note("text\n", &[]), Err(SignNoteError::NoSigners));
    let twice = [signer("log.example", &k1), signer("log.example", &k1)];
    assert_eq!(
        sign_note("text\n", &twice),
        Err(SignNoteError::DuplicateSigner {
            name: "log.example".into(),
            key_id: twice[0].key_id(),
        })
    );
    // The same name with another key is another key id, so it is not a duplicate.
    let rotated = [signer("log.example", &k1), signer("log.example", &k2)];
    assert!(sign_note("text\n", &rotated).is_ok());
    let many: Vec<NoteSigner<'_>> = (0..=SIGNATURE_LINES_MAX)
        .map(|i| signer(&format!("w{i}.example"), &k1))
        .collect();
    assert_eq!(
        sign_note("text\n", &many),
        Err(SignNoteError::TooManySigners {
            count: SIGNATURE_LINES_MAX + 1,
            max: SIGNATURE_LINES_MAX,
        })
    );
    let huge = "x".repeat(NOTE_BYTES_MAX - 1) + "\n";
    assert!(matches!(
        sign_note(&huge, &one),
        Err(SignNoteError::TooLarge { .. })
    ));
}

#[test]
fn the_spec_minimum_of_sixteen_signatures_and_our_maximum_are_accepted() {
    let signing = key(1);
    for count in [16, SIGNATURE_LINES_MAX] {
        let signers: Vec<NoteSigner<'_>> = (0..count)
            .map(|i| signer(&format!("w{i}.example"), &signing))
            .collect();
        let signed = sign_note("text\n", &signers).expect("signs");
        let note = Note::parse(signed.as_bytes()).expect("parses");
        assert_eq!(note.signatures().len(), count);
        let known: Vec<VerifierKey> = signers.iter().map(NoteSigner::verifier_key).collect();
        assert_eq!(verify_note(&note, &known).map(|v| v.len()), Ok(count));
    }
}

// ---------------------------------------------------------------------------------------------
// Malformed notes
// ---------------------------------------------------------------------------------------------

fn good_note() -> String {
    let signing = key(1);
    sign_note("text\n", &[signer("log.example", &signing)]).expect("signs")
}

fn parse_err(input: &[u8]) -> ParseNoteError {
    match Note::parse(input) {
        Ok(note) => panic!("{:?} parsed as {note:?}", String::from_utf8_lossy(input)),
        Err(e) => e,
    }
}

fn line_err(input: &str) -> SignatureLineError {
    match parse_err(input.as_bytes()) {
        ParseNoteError::SignatureLine { reason, .. } => reason,
        other => panic!("expected a signature line error for {input:?}, got {other:?}"),
    }
}

#[test]
fn a_note_without_a_blank_line_is_rejected() {
    let note = good_note().replacen("\n\n", "\n", 1);
    assert_eq!(parse_err(note.as_bytes()), ParseNoteError::MissingSeparator);
    assert_eq!(parse_err(b""), ParseNoteError::MissingSeparator);
}

#[test]
fn a_note_without_signature_lines_is_rejected() {
    assert_eq!(parse_err(b"text\n\n"), ParseNoteError::NoSignatures);
    // A trailing blank line after the signatures moves the split after them.
    let note = good_note() + "\n";
    assert_eq!(parse_err(note.as_bytes()), ParseNoteError::NoSignatures);
}

#[test]
fn a_note_whose_last_line_has_no_newline_is_rejected() {
    let note = good_note();
    let note = note.strip_suffix('\n').expect("ends in newline");
    assert_eq!(
        parse_err(note.as_bytes()),
        ParseNoteError::UnterminatedSignatureLine
    );
}

#[test]
fn a_note_with_crlf_line_endings_is_rejected() {
    let note = good_note().replace('\n', "\r\n");
    assert_eq!(
        parse_err(note.as_bytes()),
        ParseNoteError::ControlCharacter { offset: 4 }
    );
}

#[test]
fn a_note_with_control_characters_is_rejected() {
    for c in ['\0', '\t', '\u{b}', '\u{c}', '\u{1f}'] {
        let note = good_note().replacen("text", &format!("te{c}t"), 1);
        assert_eq!(
            parse_err(note.as_bytes()),
            ParseNoteError::ControlCharacter { offset: 2 }
        );
    }
}

#[test]
fn a_note_that_is_not_utf8_is_rejected() {
    let mut note = good_note().into_bytes();
    note[1] = 0xff;
    assert_eq!(parse_err(&note), ParseNoteError::NotUtf8);
}

#[test]
fn an_oversize_note_is_rejected_before_parsing() {
    let note = "x".repeat(NOTE_BYTES_MAX) + &good_note();
    assert_eq!(
        parse_err(note.as_bytes()),
        ParseNoteError::TooLarge {
            bytes: note.len(),
            max: NOTE_BYTES_MAX,
        }
    );
}

#[test]
fn a_note_with_too_many_signature_lines_is_rejected() {
    let note = good_note();
    let line = &note["text\n\n".len()..];
    let many = format!("text\n\n{}", line.repeat(SIGNATURE_LINES_MAX + 1));
    assert_eq!(
        parse_err(many.as_bytes()),
        ParseNoteError::TooManySignatures {
            max: SIGNATURE_LINES_MAX,
        }
    );
}

#[test]
fn signature_lines_without_the_em_dash_and_space_are_rejected() {
    let note = good_note();
    for wrong in [
        "-- ",
        "- ",
        "\u{2013} ",
        "\u{2014}",
        "\u{2014}  ",
        " \u{2014} ",
    ] {
        let bad = note.replacen("\u{2014} ", wrong, 1);
        assert!(
            matches!(
                line_err(&bad),
                SignatureLineError::Prefix
                    | SignatureLineError::Name(KeyNameError::Empty)
                    | SignatureLineError::MissingSignature
            ),
            "{wrong:?}"
        );
    }
    assert_eq!(
        line_err(&note.replacen("\u{2014} ", "-- ", 1)),
        SignatureLineError::Prefix
    );
}

#[test]
fn signature_lines_with_bad_names_or_base64_are_rejected() {
    let note = good_note();
    let (head, encoded) = note.trim_end().rsplit_once(' ').expect("line");
    let cases: Vec<(String, SignatureLineError)> = vec![
        (
            "text\n\n\u{2014} log.example\n".to_owned(),
            SignatureLineError::MissingSignature,
        ),
        (
            format!("text\n\n\u{2014} log+example {encoded}\n"),
            SignatureLineError::Name(KeyNameError::Plus),
        ),
        (
            format!("text\n\n\u{2014}  {encoded}\n"),
            SignatureLineError::Name(KeyNameError::Empty),
        ),
        (
            format!("{head} \n"),
            SignatureLineError::TooShort { bytes: 0 },
        ),
        (
            format!("{head} {}\n", &encoded[..encoded.len() - 1]),
            SignatureLineError::Base64,
        ),
        (
            format!("{head} {}\n", encoded.trim_end_matches('=')),
            SignatureLineError::Base64,
        ),
        (format!("{head} {} \n", encoded), SignatureLineError::Base64),
        (
            format!(
                "{head} {}\n",
                STANDARD
                    .encode([0xfb; 8])
                    .replace('+', "-")
                    .replace('/', "_")
            ),
            SignatureLineError::Base64,
        ),
        (
            format!("{head} {}\n", STANDARD.encode([1, 2, 3, 4])),
            SignatureLineError::TooShort { bytes: 4 },
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(line_err(&input), expected, "{input:?}");
    }
}

#[test]
fn a_signature_with_non_canonical_base64_trailing_bits_is_rejected() {
    // Five bytes encode to "AAAAAAA=" canonically; "AAAAAAB=" decodes to the same bytes in
    // lenient decoders.
    assert_eq!(
        line_err("text\n\n\u{2014} log.example AAAAAAB=\n"),
        SignatureLineError::Base64
    );
    assert!(Note::parse("text\n\n\u{2014} log.example AAAAAAA=\n".as_bytes()).is_ok());
}

#[test]
fn the_first_bad_signature_line_is_reported_by_position() {
    let note = good_note() + "garbage\n";
    assert_eq!(
        parse_err(note.as_bytes()),
        ParseNoteError::SignatureLine {
            line: 2,
            reason: SignatureLineError::Prefix,
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Checkpoints
// ---------------------------------------------------------------------------------------------

#[test]
fn tenant_origins_append_the_tenant_to_the_service_origin() {
    assert_eq!(
        tenant_origin("auditex.example.com/ledger", "acme"),
        "auditex.example.com/ledger/acme"
    );
}

#[test]
fn a_checkpoint_body_is_origin_size_and_base64_root() {
    let checkpoint = Checkpoint::new(ORIGIN, TreeSize::new(20852163), root(0xab)).expect("valid");
    assert_eq!(
        checkpoint.to_body(),
        format!("{ORIGIN}\n20852163\n{}\n", STANDARD.encode([0xab; 32]))
    );
}

#[test]
fn the_c2sp_example_checkpoint_body_parses_and_formats_back() {
    let body =
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
    let checkpoint = Checkpoint::parse_body(body).expect("spec example parses");
    assert_eq!(checkpoint.origin(), "example.com/behind-the-sofa");
    assert_eq!(checkpoint.size(), TreeSize::new(20852163));
    assert!(checkpoint.extensions().is_empty());
    assert_eq!(checkpoint.to_body(), body);
}

#[test]
fn checkpoint_bodies_with_extensions_round_trip() {
    let checkpoint = Checkpoint::new(ORIGIN, TreeSize::ZERO, root(0))
        .and_then(|c| c.with_extensions(vec!["ext one".into(), "— two".into()]))
        .expect("valid");
    let body = checkpoint.to_body();
    assert!(body.ends_with("=\next one\n— two\n"));
    assert_eq!(Checkpoint::parse_body(&body), Ok(checkpoint));
}

#[test]
fn the_largest_tree_size_round_trips() {
    let checkpoint = Checkpoint::new(ORIGIN, TreeSize::new(u64::MAX), root(1)).expect("valid");
    assert_eq!(
        Checkpoint::parse_body(&checkpoint.to_body()),
        Ok(checkpoint)
    );
}

#[test]
fn malformed_checkpoint_bodies_are_rejected() {
    let r = STANDARD.encode([7u8; 32]);
    let cases: Vec<(String, CheckpointError)> = vec![
        (format!("o\n1\n{r}"), CheckpointError::MissingFinalNewline),
        (String::new(), CheckpointError::MissingFinalNewline),
        ("\n".into(), CheckpointError::EmptyOrigin),
        (format!("\n1\n{r}\n"), CheckpointError::EmptyOrigin),
        (format!("  \n1\n{r}\n"), CheckpointError::EmptyOrigin),
        (format!("\u{3000}\n1\n{r}\n"), CheckpointError::EmptyOrigin),
        (
            "o\n".into(),
            CheckpointError::MissingLine { line: "tree size" },
        ),
        (
            "o\n1\n".into(),
            CheckpointError::MissingLine { line: "root hash" },
        ),
        (format!("o\n01\n{r}\n"), CheckpointError::InvalidSize),
        (format!("o\n00\n{r}\n"), CheckpointError::InvalidSize),
        (format!("o\n+1\n{r}\n"), CheckpointError::InvalidSize),
        (format!("o\n-1\n{r}\n"), CheckpointError::InvalidSize),
        (format!("o\n 1\n{r}\n"), CheckpointError::InvalidSize),
        (format!("o\n1 \n{r}\n"), CheckpointError::InvalidSize),
        (format!("o\n\n{r}\n"), CheckpointError::InvalidSize),
        (format!("o\n0x10\n{r}\n"), CheckpointError::InvalidSize),
        (format!("o\n1e3\n{r}\n"), CheckpointError::InvalidSize),
        (format!("o\n١\n{r}\n"), CheckpointError::InvalidSize),
        (
            format!("o\n18446744073709551616\n{r}\n"),
            CheckpointError::InvalidSize,
        ),
        ("o\n1\n\n".into(), CheckpointError::InvalidRoot),
        (
            format!("o\n1\n{}\n", STANDARD.encode([7u8; 31])),
            CheckpointError::InvalidRoot,
        ),
        (
            format!("o\n1\n{}\n", STANDARD.encode([7u8; 33])),
            CheckpointError::InvalidRoot,
        ),
        (
            format!("o\n1\n{}\n", r.trim_end_matches('=')),
            CheckpointError::InvalidRoot,
        ),
        (
            format!("o\n1\n{}\n", hex::encode([7u8; 32])),
            CheckpointError::InvalidRoot,
        ),
        (format!("o\n1\n {r}\n"), CheckpointError::InvalidRoot),
        (
            // 43 symbols + '=' encode 32 bytes; a non-zero unused low bit is non-canonical.
            format!("o\n1\n{}B=\n", &r[..42]),
            CheckpointError::InvalidRoot,
        ),
        (
            format!(
                "o\n1\n{}\n",
                STANDARD
                    .encode([0xfb; 32])
                    .replace('+', "-")
                    .replace('/', "_")
            ),
            CheckpointError::InvalidRoot,
        ),
        (
            format!("o\n1\n{r}\n\n"),
            CheckpointError::EmptyExtensionLine { index: 0 },
        ),
        (
            format!("o\n1\n{r}\next\n\n"),
            CheckpointError::EmptyExtensionLine { index: 1 },
        ),
        (
            format!("o\r\n1\n{r}\n"),
            CheckpointError::ControlCharacter { offset: 1 },
        ),
        (
            format!("o\n1\n{r}\r\n"),
            CheckpointError::ControlCharacter { offset: 48 },
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(Checkpoint::parse_body(&body), Err(expected), "{body:?}");
    }
}

#[test]
fn size_zero_is_accepted_and_origins_need_not_be_key_names() {
    let r = STANDARD.encode([7u8; 32]);
    let checkpoint = Checkpoint::parse_body(&format!("a log+with spaces\n0\n{r}\n")).expect("ok");
    assert_eq!(checkpoint.size(), TreeSize::ZERO);
    assert_eq!(checkpoint.origin(), "a log+with spaces");
}

#[test]
fn checkpoints_with_unwritable_fields_cannot_be_built() {
    assert_eq!(
        Checkpoint::new("", TreeSize::ZERO, root(0)),
        Err(CheckpointError::EmptyOrigin)
    );
    assert_eq!(
        Checkpoint::new(" ", TreeSize::ZERO, root(0)),
        Err(CheckpointError::EmptyOrigin)
    );
    assert_eq!(
        Checkpoint::new("a\nb", TreeSize::ZERO, root(0)),
        Err(CheckpointError::OriginControlCharacter)
    );
    let base = Checkpoint::new("o", TreeSize::ZERO, root(0)).expect("valid");
    assert_eq!(
        base.clone()
            .with_extensions(vec!["ok".into(), String::new()]),
        Err(CheckpointError::EmptyExtensionLine { index: 1 })
    );
    assert_eq!(
        base.with_extensions(vec!["a\nb".into()]),
        Err(CheckpointError::ExtensionControlCharacter { index: 0 })
    );
}

#[test]
fn a_signed_checkpoint_opens_with_the_log_key() {
    let signing = key(1);
    let log = signer(ORIGIN, &signing);
    let checkpoint = Checkpoint::new(ORIGIN, TreeSize::new(42), root(3)).expect("valid");
    let signed = sign_checkpoint(&checkpoint, std::slice::from_ref(&log)).expect("signs");
    assert!(signed.starts_with(&checkpoint.to_body()));
    let known = [log.verifier_key()];
    let opened = open_checkpoint(signed.as_bytes(), &known, Some(ORIGIN)).expect("opens");
    assert_eq!(opened.checkpoint(), &checkpoint);
    assert_eq!(opened.verified_by(), &known);
    assert_eq!(opened.note().text(), checkpoint.to_body());
    assert_eq!(opened.into_checkpoint(), checkpoint);
    assert!(open_checkpoint(signed.as_bytes(), &known, None).is_ok());
}

#[test]
fn a_cosigned_checkpoint_reports_every_verified_key() {
    let (k1, k2, k3) = (key(1), key(2), key(3));
    let signers = [
        signer(ORIGIN, &k1),
        signer("witness.example", &k2),
        signer("unknown-witness.example", &k3),
    ];
    let checkpoint = Checkpoint::new(ORIGIN, TreeSize::new(7), root(3)).expect("valid");
    let signed = sign_checkpoint(&checkpoint, &signers).expect("signs");
    let known = [signers[0].verifier_key(), signers[1].verifier_key()];
    let opened = open_checkpoint(signed.as_bytes(), &known, Some(ORIGIN)).expect("opens");
    assert_eq!(opened.verified_by(), &known);
}

#[test]
fn a_checkpoint_from_another_origin_is_rejected() {
    let signing = key(1);
    let other = tenant_origin("auditex.example.com/ledger", "globex");
    let log = signer(&other, &signing);
    let checkpoint = Checkpoint::new(other.as_str(), TreeSize::new(1), root(3)).expect("valid");
    let signed = sign_checkpoint(&checkpoint, std::slice::from_ref(&log)).expect("signs");
    assert_eq!(
        open_checkpoint(signed.as_bytes(), &[log.verifier_key()], Some(ORIGIN)),
        Err(OpenCheckpointError::OriginMismatch {
            expected: ORIGIN.into(),
            found: other,
        })
    );
}

#[test]
fn a_checkpoint_verified_only_by_a_cosigner_is_rejected() {
    let (k1, k2) = (key(1), key(2));
    let signers = [signer(ORIGIN, &k1), signer("witness.example", &k2)];
    let checkpoint = Checkpoint::new(ORIGIN, TreeSize::new(7), root(3)).expect("valid");
    let signed = sign_checkpoint(&checkpoint, &signers).expect("signs");
    assert_eq!(
        open_checkpoint(signed.as_bytes(), &[signers[1].verifier_key()], None),
        Err(OpenCheckpointError::NotSignedByLog {
            origin: ORIGIN.into(),
        })
    );
}

#[test]
fn a_checkpoint_signed_by_a_key_named_otherwise_is_rejected() {
    // A trusted key of tenant globex must not vouch for a checkpoint that claims to be acme's.
    let signing = key(1);
    let globex = signer("auditex.example.com/ledger/globex", &signing);
    let body = Checkpoint::new(ORIGIN, TreeSize::new(7), root(3))
        .expect("valid")
        .to_body();
    let signed = sign_note(&body, std::slice::from_ref(&globex)).expect("signs");
    assert_eq!(
        open_checkpoint(signed.as_bytes(), &[globex.verifier_key()], None),
        Err(OpenCheckpointError::NotSignedByLog {
            origin: ORIGIN.into(),
        })
    );
}

#[test]
fn a_checkpoint_needs_the_log_key_among_its_signers() {
    let signing = key(1);
    let checkpoint = Checkpoint::new(ORIGIN, TreeSize::new(7), root(3)).expect("valid");
    assert_eq!(
        sign_checkpoint(&checkpoint, &[signer("witness.example", &signing)]),
        Err(SignCheckpointError::NoLogSigner {
            origin: ORIGIN.into(),
        })
    );
    assert_eq!(
        sign_checkpoint(&checkpoint, &[]),
        Err(SignCheckpointError::NoLogSigner {
            origin: ORIGIN.into(),
        })
    );
}

#[test]
fn a_tampered_checkpoint_fails_to_open() {
    let signing = key(1);
    let log = signer(ORIGIN, &signing);
    let checkpoint = Checkpoint::new(ORIGIN, TreeSize::new(42), root(3)).expect("valid");
    let signed = sign_checkpoint(&checkpoint, std::slice::from_ref(&log)).expect("signs");
    let known = [log.verifier_key()];
    let larger = signed.replacen("\n42\n", "\n43\n", 1);
    assert!(matches!(
        open_checkpoint(larger.as_bytes(), &known, Some(ORIGIN)),
        Err(OpenCheckpointError::Signature(
            VerifyNoteError::BadSignature { .. }
        ))
    ));
    let wrong_key = [signer(ORIGIN, &key(2)).verifier_key()];
    assert_eq!(
        open_checkpoint(signed.as_bytes(), &wrong_key, Some(ORIGIN)),
        Err(OpenCheckpointError::Signature(
            VerifyNoteError::NoVerifiedSignature
        ))
    );
    assert!(matches!(
        open_checkpoint(&signed.as_bytes()[1..], &known, Some(ORIGIN)),
        Err(OpenCheckpointError::Signature(_))
    ));
    assert!(matches!(
        open_checkpoint(signed.replace('\n', "\r\n").as_bytes(), &known, None),
        Err(OpenCheckpointError::Note(
            ParseNoteError::ControlCharacter { .. }
        ))
    ));
}

#[test]
fn a_signed_note_that_is_not_a_checkpoint_fails_to_open() {
    let signing = key(1);
    let log = signer(ORIGIN, &signing);
    let signed = sign_note(&format!("{ORIGIN}\n42\n"), std::slice::from_ref(&log)).expect("signs");
    assert_eq!(
        open_checkpoint(signed.as_bytes(), &[log.verifier_key()], Some(ORIGIN)),
        Err(OpenCheckpointError::Body(CheckpointError::MissingLine {
            line: "root hash"
        }))
    );
}

// ---------------------------------------------------------------------------------------------
// tlog-proof files
// ---------------------------------------------------------------------------------------------

fn signed_checkpoint() -> String {
    let signing = key(1);
    let checkpoint = Checkpoint::new(ORIGIN, TreeSize::new(109482), root(0x5a)).expect("valid");
    sign_checkpoint(&checkpoint, &[signer(ORIGIN, &signing)]).expect("signs")
}

fn proof_hashes(count: u8) -> Vec<Hash> {
    (0..count).map(root).collect()
}

fn proof_err(input: &str) -> TlogProofError {
    match TlogProof::parse(input.as_bytes()) {
        Ok(proof) => panic!("{input:?} parsed as {proof:?}"),
        Err(e) => e,
    }
}

#[test]
fn a_proof_file_has_the_spec_layout() {
    let checkpoint = signed_checkpoint();
    let hashes = proof_hashes(2);
    let proof = TlogProof::new(
        Some(b"record v1".to_vec()),
        LeafIndex::new(73894),
        hashes.clone(),
        checkpoint.clone(),
    )
    .expect("valid");
    let expected = format!(
        "c2sp.org/tlog-proof@v1\nextra {}\nindex 73894\n{}\n{}\n\n{checkpoint}",
        STANDARD.encode(b"record v1"),
        STANDARD.encode(hashes[0].as_bytes()),
        STANDARD.encode(hashes[1].as_bytes()),
    );
    assert_eq!(proof.format(), expected);
}

#[test]
fn a_proof_file_without_extra_or_hashes_omits_those_lines() {
    let checkpoint = signed_checkpoint();
    let proof =
        TlogProof::new(None, LeafIndex::new(0), Vec::new(), checkpoint.clone()).expect("valid");
    assert_eq!(
        proof.format(),
        format!("{TLOG_PROOF_HEADER}\nindex 0\n\n{checkpoint}")
    );
    assert_eq!(TlogProof::parse(proof.format().as_bytes()), Ok(proof));
}

#[test]
fn proof_files_round_trip_with_and_without_extra_data() {
    let checkpoint = signed_checkpoint();
    for extra in [None, Some(Vec::new()), Some(vec![0, 1, 2, 0xff])] {
        let proof = TlogProof::new(
            extra.clone(),
            LeafIndex::new(5),
            proof_hashes(3),
            checkpoint.clone(),
        )
        .expect("valid");
        let parsed = TlogProof::parse(proof.format().as_bytes()).expect("parses");
        assert_eq!(parsed.extra(), extra.as_deref());
        assert_eq!(parsed.index(), LeafIndex::new(5));
        assert_eq!(parsed.proof(), proof_hashes(3).as_slice());
        assert_eq!(parsed.checkpoint(), checkpoint);
        assert_eq!(parsed, proof);
    }
}

#[test]
fn a_parsed_proof_checkpoint_opens_with_the_log_key() {
    let signing = key(1);
    let proof = TlogProof::new(
        None,
        LeafIndex::new(1),
        proof_hashes(1),
        signed_checkpoint(),
    )
    .expect("valid");
    let parsed = TlogProof::parse(proof.format().as_bytes()).expect("parses");
    let known = [signer(ORIGIN, &signing).verifier_key()];
    let opened = open_checkpoint(parsed.checkpoint().as_bytes(), &known, Some(ORIGIN))
        .expect("checkpoint opens");
    assert_eq!(opened.checkpoint().size(), TreeSize::new(109482));
}

#[test]
fn the_maximum_number_of_proof_hashes_is_accepted_and_one_more_is_not() {
    let checkpoint = signed_checkpoint();
    let max = u8::try_from(PROOF_HASHES_MAX).expect("fits");
    let proof = TlogProof::new(
        None,
        LeafIndex::new(1),
        proof_hashes(max),
        checkpoint.clone(),
    )
    .expect("valid");
    let text = proof.format();
    assert_eq!(TlogProof::parse(text.as_bytes()), Ok(proof));
    assert_eq!(
        TlogProof::new(None, LeafIndex::new(1), proof_hashes(max + 1), checkpoint),
        Err(TlogProofError::TooManyHashes {
            max: PROOF_HASHES_MAX,
        })
    );
    let extra_line = format!("{}\n", STANDARD.encode([9u8; 32]));
    let too_many = text.replacen("index 1\n", &format!("index 1\n{extra_line}"), 1);
    assert_eq!(
        proof_err(&too_many),
        TlogProofError::TooManyHashes {
            max: PROOF_HASHES_MAX,
        }
    );
}

#[test]
fn malformed_proof_files_are_rejected() {
    let checkpoint = signed_checkpoint();
    let h = STANDARD.encode([1u8; 32]);
    let cases: Vec<(String, TlogProofError)> = vec![
        (String::new(), TlogProofError::MissingHeader),
        (TLOG_PROOF_HEADER.into(), TlogProofError::MissingHeader),
        (
            format!("c2sp.org/tlog-proof@v2\nindex 0\n\n{checkpoint}"),
            TlogProofError::MissingHeader,
        ),
        (
            format!("{TLOG_PROOF_HEADER}\r\nindex 0\r\n\r\n{checkpoint}"),
            TlogProofError::MissingHeader,
        ),
        (
            format!(" {TLOG_PROOF_HEADER}\nindex 0\n\n{checkpoint}"),
            TlogProofError::MissingHeader,
        ),
        (
            format!("{TLOG_PROOF_HEADER}\n\nindex 0\n\n{checkpoint}"),
            TlogProofError::MissingIndex,
        ),
        (
            format!("{TLOG_PROOF_HEADER}\n{h}\n\n{checkpoint}"),
            TlogProofError::MissingIndex,
        ),
        (
            format!("{TLOG_PROOF_HEADER}\nindex 0\nextra AAAA\n\n{checkpoint}"),
            TlogProofError::InvalidHash { position: 0 },
        ),
        (
            format!("{TLOG_PROOF_HEADER}\nextra\nindex 0\n\n{checkpoint}"),
            TlogProofError::MissingIndex,
        ),
        (
            format!("{TLOG_PROOF_HEADER}\nextra AAA\nindex 0\n\n{checkpoint}"),
            TlogProofError::ExtraBase64,
        ),
        (
            format!("{TLOG_PROOF_HEADER}\nextra AAB=\nindex 0\n\n{checkpoint}"),
            TlogProofError::ExtraBase64,
        ),
        (
            format!("{TLOG_PROOF_HEADER}\nextra AAAA\nextra AAAA\nindex 0\n\n{checkpoint}"),
            TlogProofError::MissingIndex,
        ),
        (
            format!("{TLOG_PROOF_HEADER}\nindex 01\n\n{checkpoint}"),
            TlogProofError::InvalidIndex,
        ),
        (
            format!("{TLOG_PROOF_HEADER}\nindex -1\n\n{checkpoint}"),
            TlogProofError::InvalidIndex,
        ),
        (
            format!("{TLOG_PROOF_HEADER}\nindex +1\n\n{checkpoint}"),
            TlogProofError::InvalidIndex,
        ),
        (
            format!("{TLOG_PROOF_HEADER}\nindex \n\n{checkpoint}"),
            TlogProofError::InvalidIndex,
        ),
        (
            format!("{TLOG_PROOF_HEADER}\nindex  1\n\n{checkpoint}"),
            TlogProofError::InvalidIndex,
        ),
        (
            format!("{TLOG_PROOF_HEADER}\nindex 18446744073709551616\n\n{checkpoint}"),
            TlogProofError::InvalidIndex,
        ),
        (
            format!("{TLOG_PROOF_HEADER}\nIndex 1\n\n{checkpoint}"),
            TlogProofError::MissingIndex,
        ),
        (
            format!("{TLOG_PROOF_HEADER}\nindex 1"),
            TlogProofError::Truncated,
        ),
        (
            format!("{TLOG_PROOF_HEADER}\nindex 1\n{h}\n"),
            TlogProofError::Truncated,
        ),
        (
            format!(
                "{TLOG_PROOF_HEADER}\nindex 1\n{h}\n{}\n\n{checkpoint}",
                STANDARD.encode([1u8; 31])
            ),
            TlogProofError::InvalidHash { position: 1 },
        ),
        (
            format!("{TLOG_PROOF_HEADER}\nindex 1\n{}\n\n{checkpoint}", &h[..43]),
            TlogProofError::InvalidHash { position: 0 },
        ),
        (
            format!("{TLOG_PROOF_HEADER}\nindex 1\n{h} \n\n{checkpoint}"),
            TlogProofError::InvalidHash { position: 0 },
        ),
        (
            format!("{TLOG_PROOF_HEADER}\nindex 1\n{h}\r\n\n{checkpoint}"),
            TlogProofError::InvalidHash { position: 0 },
        ),
        (
            format!(
                "{TLOG_PROOF_HEADER}\nindex 1\n{}\n\n{checkpoint}",
                hex::encode([1u8; 32])
            ),
            TlogProofError::InvalidHash { position: 0 },
        ),
        (
            format!("{TLOG_PROOF_HEADER}\nindex 1\n{h}\n\n"),
            TlogProofError::CheckpointNote(ParseNoteError::MissingSeparator),
        ),
        (
            format!("{TLOG_PROOF_HEADER}\nindex 1\n{h}\n\n\n{checkpoint}"),
            TlogProofError::CheckpointBody(CheckpointError::EmptyOrigin),
        ),
        (
            format!(
                "{TLOG_PROOF_HEADER}\nindex 1\n{h}\n\n{}",
                checkpoint.replace('\n', "\r\n")
            ),
            TlogProofError::CheckpointNote(ParseNoteError::ControlCharacter { offset: 31 }),
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(proof_err(&input), expected, "{input:?}");
    }
}

#[test]
fn a_proof_file_whose_checkpoint_is_not_a_checkpoint_is_rejected() {
    let signing = key(1);
    let not_checkpoint = sign_note("hello\n", &[signer(ORIGIN, &signing)]).expect("signs");
    assert_eq!(
        TlogProof::new(None, LeafIndex::new(0), Vec::new(), not_checkpoint.clone()),
        Err(TlogProofError::CheckpointBody(
            CheckpointError::MissingLine { line: "tree size" }
        ))
    );
    assert_eq!(
        proof_err(&format!("{TLOG_PROOF_HEADER}\nindex 0\n\n{not_checkpoint}")),
        TlogProofError::CheckpointBody(CheckpointError::MissingLine { line: "tree size" })
    );
    assert_eq!(
        TlogProof::new(None, LeafIndex::new(0), Vec::new(), "no note".into()),
        Err(TlogProofError::CheckpointNote(
            ParseNoteError::MissingSeparator
        ))
    );
}

#[test]
fn oversize_proof_files_and_extra_data_are_rejected() {
    let checkpoint = signed_checkpoint();
    let huge = "x".repeat(TLOG_PROOF_BYTES_MAX + 1);
    assert_eq!(
        proof_err(&huge),
        TlogProofError::TooLarge {
            bytes: TLOG_PROOF_BYTES_MAX + 1,
            max: TLOG_PROOF_BYTES_MAX,
        }
    );
    assert_eq!(
        TlogProof::new(
            Some(vec![0; EXTRA_BYTES_MAX + 1]),
            LeafIndex::new(0),
            Vec::new(),
            checkpoint.clone()
        ),
        Err(TlogProofError::ExtraTooLarge {
            bytes: EXTRA_BYTES_MAX + 1,
            max: EXTRA_BYTES_MAX,
        })
    );
    let big_extra = STANDARD.encode(vec![0u8; EXTRA_BYTES_MAX + 3]);
    assert!(matches!(
        proof_err(&format!(
            "{TLOG_PROOF_HEADER}\nextra {big_extra}\nindex 0\n\n{checkpoint}"
        )),
        TlogProofError::ExtraTooLarge { .. }
    ));
    let max_extra = TlogProof::new(
        Some(vec![0; EXTRA_BYTES_MAX]),
        LeafIndex::new(0),
        Vec::new(),
        checkpoint,
    )
    .expect("valid");
    assert_eq!(
        TlogProof::parse(max_extra.format().as_bytes()),
        Ok(max_extra)
    );
}

#[test]
fn a_proof_file_that_is_not_utf8_is_rejected() {
    let proof =
        TlogProof::new(None, LeafIndex::new(0), Vec::new(), signed_checkpoint()).expect("valid");
    let mut bytes = proof.format().into_bytes();
    let last = bytes.len() - 3;
    bytes[last] = 0xc3;
    assert_eq!(TlogProof::parse(&bytes), Err(TlogProofError::NotUtf8));
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_checkpoint_body_round_trips(
        origin in "[a-z0-9./-]{1,40}",
        size in any::<u64>(),
        root_bytes in any::<[u8; 32]>(),
        extensions in proptest::collection::vec("[ -~]{1,20}", 0..4),
    ) {
        let checkpoint = Checkpoint::new(origin, TreeSize::new(size), Hash::from_bytes(root_bytes))
            .and_then(|c| c.with_extensions(extensions))
            .expect("generated fields are valid");
        prop_assert_eq!(Checkpoint::parse_body(&checkpoint.to_body()), Ok(checkpoint));
    }

    #[test]
    fn any_proof_file_round_trips(
        extra in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..100)),
        index in any::<u64>(),
        hashes in proptest::collection::vec(any::<[u8; 32]>(), 0..=PROOF_HASHES_MAX),
    ) {
        let proof = TlogProof::new(
            extra,
            LeafIndex::new(index),
            hashes.into_iter().map(Hash::from_bytes).collect(),
            signed_checkpoint(),
        )
        .expect("generated parts are valid");
        prop_assert_eq!(TlogProof::parse(proof.format().as_bytes()), Ok(proof));
    }

    #[test]
    fn any_valid_text_signs_and_verifies(text in "[^\\x00-\\x1f]{0,200}(\n[^\\x00-\\x1f]{0,50}){0,5}\n") {
        let signing = key(4);
        let s = signer("prop.example", &signing);
        let signed = sign_note(&text, std::slice::from_ref(&s)).expect("valid text signs");
        let note = Note::parse(signed.as_bytes()).expect("parses");
        prop_assert_eq!(note.text(), text.as_str());
        prop_assert!(verify_note(&note, &[s.verifier_key()]).is_ok());
    }

    #[test]
    fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Note::parse(&bytes);
        let _ = TlogProof::parse(&bytes);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = Checkpoint::parse_body(text);
            let _ = VerifierKey::parse(text);
        }
    }
}
