//! The fast path of export verification: most of a record's cost besides its signature is
//! parsing its payload into a JSON tree and canonicalizing it again, only to hash bytes that an
//! Auditex export already carries in canonical form. This path checks instead that the payload
//! and erasable texts *are* RFC 8785 canonical (one pass over the bytes, within a conservative
//! subset: no string escapes, ASCII keys, numbers whose ES6 form is their text), hashes the
//! record body assembled from them exactly as FORMAT.md section 4 (and `ledger::record`) lays it
//! out, and makes the chain checks of `ChainVerifier` on the parsed fields.
//!
//! It only ever *accepts*: every record it accepts, the reference `ChainVerifier` accepts too,
//! with the same summary. Anything outside the subset, and every failure, makes the caller verify
//! the chunk again with the reference, which then names the first bad record exactly as the
//! sequential verifier does. A key rotation (rare) also goes to the reference.

use ed25519_dalek::{Signature, VerifyingKey};
use ledger::keys::{KeyId, KeyRing};
use ledger::merkle::leaf_hash;
use ledger::record::{EventType, FieldName};
use ledger::types::{CaptureTime, EventId, Hash, JSON_SAFE_INTEGER_MAX, Sequence, TenantId};
use ledger::verify::{ChainAnchor, LeafRange, SIGNATURE_BATCH_RECORDS};
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// Deepest nesting the fast path accepts (the ledger's canonicalizer allows 32).
const DEPTH_MAX: usize = ledger::canonical::JSON_DEPTH_MAX;

/// A record line with every field borrowed from the line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecord<'a> {
    v: u32,
    tenant: &'a str,
    seq: u64,
    prev: &'a str,
    captured_at_us: u64,
    event_id: &'a str,
    event_type: &'a str,
    #[serde(borrow)]
    payload: &'a RawValue,
    #[serde(borrow)]
    erasable: &'a RawValue,
    key_id: &'a str,
    hash: &'a str,
    sig: &'a str,
}

/// What a run of records accepted by the fast path proved: the same as a `ChainSummary`.
pub struct FastSummary {
    pub start: ChainAnchor,
    pub end: ChainAnchor,
    pub leaves: LeafRange,
}

struct Pending {
    key: VerifyingKey,
    hash: Hash,
    signature: Signature,
}

/// Verifies `lines` from `anchor` on the fast path; `None` means "use the reference".
pub fn verify_lines<'a>(
    tenant: &TenantId,
    ring: &KeyRing,
    size: u64,
    anchor: ChainAnchor,
    lines: impl Iterator<Item = &'a str>,
) -> Option<FastSummary> {
    let mut next = anchor;
    let mut leaves = LeafRange::new(anchor.next_seq);
    let mut pending: Vec<Pending> = Vec::with_capacity(SIGNATURE_BATCH_RECORDS);
    let mut body = Vec::with_capacity(1024);
    for line in lines {
        let r: RawRecord<'_> = serde_json::from_str(line).ok()?;
        if r.v != ledger::record::FORMAT_VERSION
            || r.seq != next.next_seq
            || r.seq >= size
            || r.tenant != tenant.as_str()
        {
            return None;
        }
        Sequence::new(r.seq).ok()?;
        let captured = CaptureTime::from_unix_micros(r.captured_at_us).ok()?;
        if next.not_before.is_some_and(|t| captured < t) {
            return None;
        }
        let prev = lower_hex_hash(r.prev)?;
        if prev != next.prev {
            return None;
        }
        if !is_lower_hex(r.event_id.as_bytes(), b'-') {
            return None;
        }
        EventId::parse(r.event_id).ok()?;
        let event_type = EventType::parse(r.event_type).ok()?;
        if event_type == EventType::KeyRotation {
            return None;
        }
        if !is_lower_hex(r.key_id.as_bytes(), 0) {
            return None;
        }
        let key_id = KeyId::parse(r.key_id).ok()?;
        let key = *ring.key_for(key_id, Sequence::new(r.seq).ok()?).ok()?;
        // A key that the history starts after this record needs a rotation record here.
        if ring.intervals().iter().any(|k| k.from_seq == r.seq + 1) {
            return None;
        }
        let payload = r.payload.get();
        if !payload.starts_with('{') || canonical_value(payload.as_bytes(), 0, 0)? != payload.len()
        {
            return None;
        }
        let erasable = r.erasable.get();
        if erasable != "{}" && !canonical_erasable(erasable) {
            return None;
        }
        let hash = lower_hex_hash(r.hash)?;
        if r.sig.len() != 128 || !is_lower_hex(r.sig.as_bytes(), 0) {
            return None;
        }
        let mut sig = [0u8; 64];
        hex::decode_to_slice(r.sig, &mut sig).ok()?;

        body.clear();
        write_body(&mut body, &r, captured, payload, erasable);
        let computed = Hash::from_bytes(
            Sha256::new()
                .chain_update(ledger::record::RECORD_HASH_DOMAIN)
                .chain_update([0u8])
                .chain_update(&body)
                .finalize()
                .into(),
        );
        if computed != hash {
            return None;
        }
        pending.push(Pending {
            key,
            hash,
            signature: Signature::from_bytes(&sig),
        });
        if pending.len() == SIGNATURE_BATCH_RECORDS && !batch_ok(&pending) {
            return None;
        }
        if pending.len() == SIGNATURE_BATCH_RECORDS {
            pending.clear();
        }
        leaves.push_leaf(leaf_hash(hash.as_bytes()));
        next = ChainAnchor {
            next_seq: r.seq + 1,
            prev: hash,
            not_before: Some(captured),
        };
    }
    if !batch_ok(&pending) {
        return None;
    }
    Some(FastSummary {
        start: anchor,
        end: next,
        leaves,
    })
}

/// The batch equation, as `ChainVerifier` uses it (weak keys and lone signatures are left to
/// the reference, which checks them strictly).
fn batch_ok(pending: &[Pending]) -> bool {
    if pending.is_empty() {
        return true;
    }
    if pending.len() == 1 || pending.iter().any(|p| p.key.is_weak()) {
        return pending.len() == 1
            && !pending[0].key.is_weak()
            && pending[0]
                .key
                .verify_strict(pending[0].hash.as_bytes(), &pending[0].signature)
                .is_ok();
    }
    let messages: Vec<&[u8]> = pending
        .iter()
        .map(|p| p.hash.as_bytes().as_slice())
        .collect();
    let signatures: Vec<Signature> = pending.iter().map(|p| p.signature).collect();
    let keys: Vec<VerifyingKey> = pending.iter().map(|p| p.key).collect();
    ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok()
}

/// The record body of FORMAT.md section 4 from canonical parts (member order of RFC 8785).
fn write_body(
    out: &mut Vec<u8>,
    r: &RawRecord<'_>,
    captured: CaptureTime,
    payload: &str,
    erasable: &str,
) {
    use std::io::Write;
    out.extend_from_slice(b"{\"captured_at_us\":");
    let _ = write!(out, "{}", captured.unix_micros());
    out.extend_from_slice(b",\"erasable\":");
    out.extend_from_slice(erasable.as_bytes());
    out.extend_from_slice(b",\"event_id\":\"");
    out.extend_from_slice(r.event_id.as_bytes());
    out.extend_from_slice(b"\",\"event_type\":\"");
    out.extend_from_slice(r.event_type.as_bytes());
    out.extend_from_slice(b"\",\"key_id\":\"");
    out.extend_from_slice(r.key_id.as_bytes());
    out.extend_from_slice(b"\",\"payload\":");
    out.extend_from_slice(payload.as_bytes());
    out.extend_from_slice(b",\"prev\":\"");
    out.extend_from_slice(r.prev.as_bytes());
    out.extend_from_slice(b"\",\"seq\":");
    let _ = write!(out, "{}", r.seq);
    out.extend_from_slice(b",\"tenant\":\"");
    out.extend_from_slice(r.tenant.as_bytes());
    out.extend_from_slice(b"\",\"v\":1}");
}

fn is_lower_hex(bytes: &[u8], also: u8) -> bool {
    bytes
        .iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b) || (also != 0 && *b == also))
}

fn lower_hex_hash(text: &str) -> Option<Hash> {
    if text.len() != 64 || !is_lower_hex(text.as_bytes(), 0) {
        return None;
    }
    Hash::from_hex(text).ok()
}

/// An erasable map in canonical form: field names in order, lowercase hex commitments.
fn canonical_erasable(text: &str) -> bool {
    let Ok(map) = serde_json::from_str::<std::collections::BTreeMap<&str, &str>>(text) else {
        return false;
    };
    let names_ok = map.iter().all(|(k, v)| {
        FieldName::parse(k).is_ok() && v.len() == 64 && is_lower_hex(v.as_bytes(), 0)
    });
    names_ok && canonical_value(text.as_bytes(), 0, 0) == Some(text.len())
}

/// If the JSON value starting at `i` is in canonical form (within the subset), the index just
/// after it.
fn canonical_value(s: &[u8], i: usize, depth: usize) -> Option<usize> {
    match *s.get(i)? {
        b'{' => {
            if depth >= DEPTH_MAX {
                return None;
            }
            let mut i = i + 1;
            if s.get(i) == Some(&b'}') {
                return Some(i + 1);
            }
            let mut previous: Option<&[u8]> = None;
            loop {
                let end = canonical_string(s, i)?;
                let key = &s[i + 1..end - 1];
                // ASCII keys sort the same by bytes as by UTF-16 code units; strictly increasing
                // also means no duplicates.
                if !key.is_ascii() || previous.is_some_and(|p| p >= key) {
                    return None;
                }
                previous = Some(key);
                if s.get(end) != Some(&b':') {
                    return None;
                }
                i = canonical_value(s, end + 1, depth + 1)?;
                match s.get(i)? {
                    b',' => i += 1,
                    b'}' => return Some(i + 1),
                    _ => return None,
                }
            }
        }
        b'[' => {
            if depth >= DEPTH_MAX {
                return None;
            }
            let mut i = i + 1;
            if s.get(i) == Some(&b']') {
                return Some(i + 1);
            }
            loop {
                i = canonical_value(s, i, depth + 1)?;
                match s.get(i)? {
                    b',' => i += 1,
                    b']' => return Some(i + 1),
                    _ => return None,
                }
            }
        }
        b'"' => canonical_string(s, i),
        b't' => s[i..].starts_with(b"true").then_some(i + 4),
        b'f' => s[i..].starts_with(b"false").then_some(i + 5),
        b'n' => s[i..].starts_with(b"null").then_some(i + 4),
        b'-' | b'0'..=b'9' => canonical_number(s, i),
        _ => None,
    }
}

/// A string without escapes or control characters (then its JCS form is itself).
fn canonical_string(s: &[u8], i: usize) -> Option<usize> {
    if s.get(i) != Some(&b'"') {
        return None;
    }
    let rest = &s[i + 1..];
    let len = rest
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
    (rest[len] == b'"').then_some(i + 1 + len + 1)
}

/// A number whose ES6 (RFC 8785) form is its own text, within ±(2^53 − 1).
fn canonical_number(s: &[u8], i: usize) -> Option<usize> {
    let len = s[i..]
        .iter()
        .position(|b| !matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
        .unwrap_or(s.len() - i);
    let token = std::str::from_utf8(&s[i..i + len]).ok()?;
    let integer = token
        .strip_prefix('-')
        .unwrap_or(token)
        .bytes()
        .all(|b| b.is_ascii_digit());
    if integer {
        let digits = token.strip_prefix('-').unwrap_or(token);
        let canonical = !digits.is_empty()
            && (digits == "0" || !digits.starts_with('0'))
            && token != "-0"
            && digits.len() <= 16
            && digits.parse::<u64>().ok()? <= JSON_SAFE_INTEGER_MAX;
        return canonical.then_some(i + len);
    }
    let value: f64 = token.parse().ok()?;
    if !value.is_finite() || value.abs() > JSON_SAFE_INTEGER_MAX as f64 {
        return None;
    }
    let mut buffer = ryu_js::Buffer::new();
    (buffer.format_finite(value) == token).then_some(i + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(text: &str) -> bool {
        canonical_value(text.as_bytes(), 0, 0) == Some(text.len())
    }

    #[test]
    fn canonical_texts_are_recognized() {
        for text in [
            r#"{}"#,
            r#"{"a":1,"b":[true,false,null],"c":{"d":"e"}}"#,
            r#"{"big":9007199254740991,"neg":-12,"score":0.87,"tiny":1e-7,"zero":0}"#,
            r#"{"name":"Café — ok"}"#,
        ] {
            assert!(canonical(text), "{text}");
        }
    }

    #[test]
    fn non_canonical_texts_go_to_the_reference() {
        for text in [
            r#"{ "a":1}"#,
            r#"{"b":1,"a":2}"#,
            r#"{"a":1,"a":1}"#,
            r#"{"a":1.0}"#,
            r#"{"a":-0}"#,
            r#"{"a":01}"#,
            r#"{"a":1E3}"#,
            r#"{"a":"\u0041"}"#,
            r#"{"a":9007199254740992}"#,
            r#"{"é":1}"#,
            r#"{"a":tru}"#,
        ] {
            assert!(!canonical(text), "{text}");
        }
    }

    #[test]
    fn strings_are_canonical_exactly_when_the_canonicalizer_leaves_them_alone() {
        for text in [
            "plain",
            "Café",
            "\u{7f}",
            "\u{2028}",
            "\u{2029}",
            "\u{1f600}",
            "tab\t",
            "q\"",
            "\u{1}",
        ] {
            let value = serde_json::json!({ "s": text });
            let jcs =
                String::from_utf8(ledger::canonical::jcs(&value).expect("jcs")).expect("utf-8");
            let raw = format!("{{\"s\":\"{text}\"}}");
            // Accepted only if the raw text is byte for byte the canonical one.
            assert!(!canonical(&raw) || raw == jcs, "{raw:?} vs {jcs:?}");
        }
    }

    #[test]
    fn canonical_numbers_match_the_canonicalizer() {
        for n in [
            0.1, 0.87, 1e-7, 123456.789, 1.5e-21, 4.35, 100.0, 0.000001, 2.5e15,
        ] {
            let value = serde_json::json!({ "n": n });
            let jcs =
                String::from_utf8(ledger::canonical::jcs(&value).expect("jcs")).expect("utf-8");
            assert!(canonical(&jcs), "{jcs}");
        }
    }
}
