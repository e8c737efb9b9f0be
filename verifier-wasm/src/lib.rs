//! The in-browser verifier: `ledger::evidence` compiled to `wasm32-unknown-unknown`, behind a
//! plain C ABI that a hand-written ES module (`src/portal/static/verifier.js`) drives with
//! `WebAssembly.instantiateStreaming` — no bindings generator, no toolchain beyond cargo.
//!
//! The protocol: the page asks for buffers with [`verifier_alloc`], copies the file, the pasted
//! verifier keys and the key history into them, calls [`verifier_verify`], reads the result (a
//! 4-byte little-endian length, then that many bytes of UTF-8 JSON, see [`verify_json`]) and
//! gives every buffer back with [`verifier_free`]. Nothing here does I/O: the bytes come in as
//! arguments and the verdict goes out as a value, so the same code is unit-tested on the host.
//!
//! The module is built by `scripts/build-verifier-wasm` with pinned flags and committed; the
//! service embeds the committed file (ARCHITECTURE.md, "The in-browser verifier").

use ledger::evidence::{self, Trust, Unusable, parse_key_lines};
use serde::Serialize;

/// The result handed to the page.
#[derive(Debug, Serialize)]
pub struct PageResult {
    /// Whether everything verified.
    pub verified: bool,
    /// The outcome, exactly as `auditex verify --json` prints it; absent when the input could
    /// not be used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<evidence::Outcome>,
    /// Why the input could not be used (no trusted key, a malformed key or key history), as
    /// `auditex verify` words it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The verdict for people, the text `auditex verify` prints (without its timing line).
    pub report: String,
}

/// The keys the user gave: verifier keys pasted one per line (`#` comments allowed) and an
/// optional key history as `auditex key history` prints it.
///
/// # Errors
/// [`Unusable`] naming the key or history that is malformed, or saying that no key is trusted.
pub fn trust_from(keys: &str, history: &str) -> Result<Trust, Unusable> {
    let mut trust = Trust {
        vkeys: parse_key_lines(keys)
            .map_err(|(line, e)| Unusable(format!("verifier keys, line {line}: {e}")))?,
        history: None,
    };
    if !history.trim().is_empty() {
        trust.add_key_history(history, "the key history")?;
    }
    if trust.vkeys.is_empty() {
        return Err(Unusable(
            "no trusted key: paste the log's verifier keys or load its key history (the keys inside the evidence are checked, never trusted)"
                .into(),
        ));
    }
    Ok(trust)
}

/// Verifies `file` (named `name` in the report) against the keys given, and returns the
/// [`PageResult`] as JSON.
pub fn verify_json(file: &[u8], name: &str, keys: &str, history: &str) -> String {
    match trust_from(keys, history).and_then(|t| evidence::verify(file, name, &t)) {
        Ok(outcome) => encode(&PageResult {
            verified: outcome.verified,
            report: outcome.report(),
            outcome: Some(outcome),
            error: None,
        }),
        Err(Unusable(why)) => unusable_json(&why),
    }
}

/// The page's answer when the input cannot be judged at all (as `auditex verify`'s exit 2).
fn unusable_json(why: &str) -> String {
    encode(&PageResult {
        verified: false,
        report: format!("auditex verify: could not read input: {why}\n"),
        outcome: None,
        error: Some(why.to_owned()),
    })
}

fn encode(result: &PageResult) -> String {
    serde_json::to_string(result).unwrap_or_else(|e| {
        format!(
            r#"{{"verified":false,"error":"the result could not be encoded: {e}","report":""}}"#
        )
    })
}

/// Reserves `len` bytes for the page to write into; returns their address (dangling but
/// non-null for 0 bytes). The page gives them back with [`verifier_free`].
#[unsafe(no_mangle)]
pub extern "C" fn verifier_alloc(len: usize) -> *mut u8 {
    let mut buffer = Vec::<u8>::with_capacity(len);
    let ptr = buffer.as_mut_ptr();
    std::mem::forget(buffer);
    ptr
}

/// Gives back `len` bytes at `ptr` that [`verifier_alloc`] (or [`verifier_verify`], for its
/// result) handed out.
///
/// # Safety
/// `ptr` and `len` must be exactly those of one earlier allocation of this module, not yet
/// freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn verifier_free(ptr: *mut u8, len: usize) {
    // SAFETY: the caller passes back an allocation of `len` bytes' capacity made by this module
    // (a `Vec<u8>` forgotten in `verifier_alloc` or `verifier_verify`).
    drop(unsafe { Vec::from_raw_parts(ptr, 0, len) });
}

/// Reads `len` bytes at `ptr`, or nothing for a null pointer.
///
/// # Safety
/// `ptr` must be null or point to `len` initialized bytes that stay unchanged during the call.
unsafe fn input<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: guaranteed by the caller, see above.
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

/// Verifies the file at `file_ptr` (its name at `name_ptr`, UTF-8) against the verifier keys at
/// `keys_ptr` and the key history at `history_ptr` (UTF-8 text; either may be empty). Returns
/// the address of the result: a 4-byte little-endian length `n`, then `n` bytes of JSON (see
/// [`verify_json`]); the page frees `4 + n` bytes at that address with [`verifier_free`].
///
/// # Safety
/// Each pointer must be null or point to its length of initialized bytes, unchanged during the
/// call (buffers from [`verifier_alloc`] that the page filled).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn verifier_verify(
    file_ptr: *const u8,
    file_len: usize,
    name_ptr: *const u8,
    name_len: usize,
    keys_ptr: *const u8,
    keys_len: usize,
    history_ptr: *const u8,
    history_len: usize,
) -> *mut u8 {
    // SAFETY: the caller's guarantee, passed on.
    let (file, name, keys, history) = unsafe {
        (
            input(file_ptr, file_len),
            input(name_ptr, name_len),
            input(keys_ptr, keys_len),
            input(history_ptr, history_len),
        )
    };
    // Keys that are not UTF-8 are replaced, not trusted: a key that does not parse is refused.
    // A key history that is not UTF-8 is refused as `auditex verify` refuses it: replacing
    // bytes could change a key name, and so which origin the history speaks for.
    let json = match std::str::from_utf8(history) {
        Ok(history) => verify_json(
            file,
            &String::from_utf8_lossy(name),
            &String::from_utf8_lossy(keys),
            history,
        ),
        Err(_) => unusable_json("the key history: not UTF-8 text"),
    };
    let n = u32::try_from(json.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(4 + json.len());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(json.as_bytes());
    // A boxed slice's allocation is exactly its length, which is what the page frees.
    Box::into_raw(out.into_boxed_slice()).cast::<u8>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use ledger::bundle::{Bundle, BundleEntry, BundleFormat};
    use ledger::checkpoint::{Checkpoint, sign_checkpoint};
    use ledger::keys::{KeyId, KeyInterval, RecordSigner};
    use ledger::merkle::leaf_hash;
    use ledger::note::{NoteSigner, VerifierKey};
    use ledger::record::{ChainPosition, UnsignedRecord};
    use ledger::types::{CaptureTime, Hash, Sequence, TenantId, TreeSize};
    use serde_json::Value;

    const ORIGIN: &str = "test.example/ledger/acme-bank";

    /// A bundle of one decision, the only record of a log whose checkpoint `key` signed, and
    /// the verifier key of `key`.
    fn bundle(key: &SigningKey) -> (Vec<u8>, String) {
        let tenant = TenantId::parse("acme-bank").expect("tenant");
        let payload = serde_json::json!({
            "model_id": "credit-limit", "model_version": "4.2.0",
            "input_commitment": format!("{:064x}", 7), "outcome": "approved",
            "subject_ref": "subj-1", "decided_at": "2026-11-29T08:00:00Z",
            "oversight_mode": "human_on_the_loop",
        });
        let draft = ledger::draft::prepare_draft(
            "01936f5e-7a2b-7c3d-8e4f-000000000001",
            "decision",
            &payload,
            &Default::default(),
            || [7; 32],
        )
        .expect("a valid decision")
        .draft;
        let signer = RecordSigner::new(key.clone());
        let at = ChainPosition {
            seq: Sequence::new(0).expect("seq"),
            prev: Hash::ZERO,
            captured_at: CaptureTime::from_unix_micros(1_795_000_000_000_000).expect("time"),
        };
        let record = UnsignedRecord::new(&tenant, at, draft, signer.key_id()).sign(&signer);
        let root = leaf_hash(record.hash.as_bytes());
        let checkpoint = Checkpoint::new(ORIGIN, TreeSize::new(1), root).expect("checkpoint");
        let note = sign_checkpoint(
            &checkpoint,
            &[NoteSigner::new(ORIGIN, key).expect("signer")],
        )
        .expect("signed");
        let vkey = VerifierKey::new(ORIGIN, key.verifying_key())
            .expect("vkey")
            .to_string();
        let bundle = Bundle {
            format: BundleFormat,
            tenant,
            origin: ORIGIN.into(),
            decision_event_id: record.event_id,
            checkpoint: note,
            keys: vec![KeyInterval {
                key_id: KeyId::of(&key.verifying_key()),
                public_key: key.verifying_key(),
                from_seq: 0,
                until_seq: None,
            }],
            verifier_keys: vec![vkey.clone()],
            entries: vec![BundleEntry {
                record,
                inclusion_proof: Vec::new(),
                erasable_values: None,
                erased: None,
            }],
        };
        (bundle.to_json().into_bytes(), vkey)
    }

    fn verify(file: &[u8], keys: &str, history: &str) -> Value {
        serde_json::from_str(&verify_json(file, "custody.json", keys, history)).expect("JSON")
    }

    #[test]
    fn a_valid_bundle_verifies_and_the_result_says_what_was_proven() {
        let (file, vkey) = bundle(&SigningKey::from_bytes(&[5; 32]));
        let result = verify(&file, &format!("# the bank's key\n{vkey}\n"), "");
        assert_eq!(result["verified"], true, "{result}");
        let outcome = &result["outcome"];
        assert_eq!(outcome["evidence"], "bundle");
        assert_eq!(outcome["tenant"], "acme-bank");
        assert_eq!(outcome["checkpoint"]["size"], 1);
        assert!(outcome.get("failure").is_none());
        let proven = outcome["proven"].as_array().expect("proven");
        assert_eq!(proven.len(), 3, "{proven:?}");
        assert!(
            proven[0]
                .as_str()
                .is_some_and(|s| s.starts_with("decision 01936f5e-7a2b-7c3d-8e4f-000000000001 and 0 linked record(s) are in the log")),
            "{proven:?}"
        );
        assert!(
            result["report"].as_str().is_some_and(|r| r.starts_with(
                "auditex verify: bundle of tenant acme-bank (test.example/ledger/acme-bank): custody.json\nVERIFIED\n  - decision "
            )),
            "{result}"
        );
    }

    #[test]
    fn a_changed_byte_fails_naming_the_record_and_the_hash_mismatch() {
        let (mut file, vkey) = bundle(&SigningKey::from_bytes(&[5; 32]));
        let at = file
            .windows(8)
            .position(|w| w == b"approved")
            .expect("the outcome");
        file[at + 7] = b'e';
        let result = verify(&file, &vkey, "");
        assert_eq!(result["verified"], false);
        let failure = &result["outcome"]["failure"];
        assert_eq!(failure["kind"], "hash_mismatch", "{result}");
        assert_eq!(failure["seq"], 0);
        assert_eq!(failure["event_id"], "01936f5e-7a2b-7c3d-8e4f-000000000001");
        assert!(
            result["report"].as_str().is_some_and(|r| r.contains(
                "FAILED at record 0 (event 01936f5e-7a2b-7c3d-8e4f-000000000001): hash_mismatch"
            )),
            "{result}"
        );
    }

    #[test]
    fn a_key_other_than_the_signers_fails_as_an_untrusted_checkpoint() {
        let (file, _) = bundle(&SigningKey::from_bytes(&[5; 32]));
        let other = VerifierKey::new(ORIGIN, SigningKey::from_bytes(&[6; 32]).verifying_key())
            .expect("vkey")
            .to_string();
        let result = verify(&file, &other, "");
        assert_eq!(result["verified"], false);
        assert_eq!(
            result["outcome"]["failure"]["kind"], "checkpoint_not_trusted",
            "{result}"
        );
    }

    #[test]
    fn without_a_trusted_key_nothing_is_verified_and_the_reason_is_given() {
        let (file, _) = bundle(&SigningKey::from_bytes(&[5; 32]));
        let result = verify(&file, "  \n# only a comment\n", "");
        assert_eq!(result["verified"], false);
        assert!(result.get("outcome").is_none());
        assert!(
            result["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("no trusted key")),
            "{result}"
        );
        let result = verify(&file, "not a key", "");
        assert_eq!(
            result["error"]
                .as_str()
                .map(|e| e.starts_with("verifier keys, line 1: ")),
            Some(true),
            "{result}"
        );
        let result = verify(&file, "", "{\"origin\": 1}");
        assert!(
            result["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("the key history: not a key history")),
            "{result}"
        );
    }

    #[test]
    fn a_file_that_is_no_evidence_fails_as_such() {
        let (_, vkey) = bundle(&SigningKey::from_bytes(&[5; 32]));
        let result = verify(b"hello", &vkey, "");
        assert_eq!(result["verified"], false);
        assert_eq!(result["outcome"]["evidence"], "unknown");
        assert_eq!(result["outcome"]["failure"]["kind"], "not_evidence");
    }

    #[test]
    fn the_c_abi_returns_a_length_prefixed_json_result() {
        let (file, vkey) = bundle(&SigningKey::from_bytes(&[5; 32]));
        let result = call(&file, vkey.as_bytes(), b"");
        assert_eq!(result["verified"], true, "{result}");
    }

    /// Calls the C ABI with a file, keys and a key history; the parsed JSON result.
    fn call(file: &[u8], keys: &[u8], history: &[u8]) -> Value {
        let put = |bytes: &[u8]| {
            let ptr = verifier_alloc(bytes.len());
            // SAFETY: `ptr` is an allocation of `bytes.len()` bytes.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr, bytes.len()) };
            (ptr.cast_const(), bytes.len())
        };
        let (f, k, h, n) = (put(file), put(keys), put(history), put(b"f.json"));
        // SAFETY: every pointer is an allocation of its length, filled above.
        let out = unsafe { verifier_verify(f.0, f.1, n.0, n.1, k.0, k.1, h.0, h.1) };
        // SAFETY: the result starts with its 4-byte length, then that many bytes.
        let json = unsafe {
            let len = u32::from_le_bytes(*out.cast::<[u8; 4]>()) as usize;
            let text = std::slice::from_raw_parts(out.add(4), len).to_vec();
            verifier_free(out, 4 + len);
            text
        };
        for (ptr, len) in [f, k, h, n] {
            // SAFETY: allocations of this module, freed once.
            unsafe { verifier_free(ptr.cast_mut(), len) };
        }
        serde_json::from_slice(&json).expect("JSON")
    }

    #[test]
    fn a_key_history_that_is_not_utf8_is_refused_as_the_command_line_refuses_it() {
        let (file, vkey) = bundle(&SigningKey::from_bytes(&[5; 32]));
        let result = call(&file, vkey.as_bytes(), b"{\"origin\": \"bank\xff\"}");
        assert_eq!(result["verified"], false, "{result}");
        assert_eq!(
            result["error"], "the key history: not UTF-8 text",
            "{result}"
        );
        assert!(result.get("outcome").is_none(), "{result}");
    }
}
