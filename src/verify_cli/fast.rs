//! The fast path of export verification: most of a record's cost besides its signature is
//! parsing its payload into a JSON tree and canonicalizing it again, only to hash bytes that an
//! Auditex export already carries in canonical form. This path checks instead that the payload
//! and erasable texts *are* RFC 8785 canonical (one pass over the bytes, within a conservative
//! subset: no string escapes, ASCII keys, numbers whose ES6 form is their text), has
//! `ledger::record::BodyParts` lay out and hash the record body from them and the typed members
//! (the one writer of that body, which sealing uses too), and makes the chain checks of
//! `ChainVerifier` on the parsed fields.
//!
//! The line itself is read against the exact layout `auditex export` writes (the members of
//! FORMAT.md section 4 in their serialization order, no whitespace, no escapes) in the same pass
//! that checks the payload, rather than by a general JSON parser: a general parse of the line
//! and the hex decoding of its hashes together cost nearly a tenth of a signature check, most
//! of what separated this path from the raw signature rate. A line written any other way is
//! still valid JSON and goes to the reference.
//!
//! It only ever *accepts*: every record it accepts, the reference `ChainVerifier` accepts too,
//! with the same summary. Anything outside the subset, and every failure, makes the caller verify
//! the chunk again with the reference, which then names the first bad record exactly as the
//! sequential verifier does. A key rotation (rare) also goes to the reference.

use ed25519_dalek::{Signature, VerifyingKey};
use ledger::keys::{KeyId, KeyRing};
use ledger::merkle::leaf_hash;
use ledger::record::{BodyParts, EventType, FORMAT_VERSION, FieldName};
use ledger::types::{CaptureTime, EventId, Hash, JSON_SAFE_INTEGER_MAX, Sequence, TenantId};
use ledger::verify::{ChainAnchor, LeafRange, SIGNATURE_BATCH_RECORDS};

/// Deepest nesting the fast path accepts (the ledger's canonicalizer allows 32).
const DEPTH_MAX: usize = ledger::canonical::JSON_DEPTH_MAX;

/// A record line's fields, borrowed from the line. The payload and erasable texts are hashed as
/// they stand (once checked canonical); everything else is hashed from its typed value.
struct RawRecord<'a> {
    v: u64,
    tenant: &'a str,
    seq: u64,
    prev: Hash,
    captured_at_us: u64,
    event_id: &'a str,
    event_type: &'a str,
    payload: &'a [u8],
    erasable: &'a [u8],
    key_id: &'a str,
    hash: Hash,
    sig: [u8; 64],
}

/// Reads a record line laid out exactly as `auditex export` writes it (the serialization of
/// `ledger::record::Record`): `{"v":…,"tenant":"…","seq":…,"prev":"…","captured_at_us":…,
/// "event_id":"…","event_type":"…","payload":{…},"erasable":{…},"key_id":"…","hash":"…",
/// "sig":"…"}`, with a canonical payload and erasable map. `None` for anything else.
///
/// What it accepts is JSON that `Record::from_json` reads to the same values: every member
/// exactly once, strings without escapes (so their text is their value), integers as plain
/// digits that fit a `u64`, and hashes and the signature as lowercase hex of their length.
fn parse_line(line: &str) -> Option<RawRecord<'_>> {
    let mut c = Cursor {
        s: line.as_bytes(),
        i: 0,
    };
    c.literal(b"{\"v\":")?;
    let (v, _) = c.integer()?;
    c.literal(b",\"tenant\":")?;
    let tenant = c.string()?;
    c.literal(b",\"seq\":")?;
    let (seq, _) = c.integer()?;
    c.literal(b",\"prev\":")?;
    let (prev, _) = c.hex::<32>()?;
    c.literal(b",\"captured_at_us\":")?;
    let (captured_at_us, _) = c.integer()?;
    c.literal(b",\"event_id\":")?;
    let event_id = c.string()?;
    c.literal(b",\"event_type\":")?;
    let event_type = c.string()?;
    c.literal(b",\"payload\":")?;
    let payload = c.canonical_object()?;
    c.literal(b",\"erasable\":")?;
    let erasable = c.canonical_object()?;
    c.literal(b",\"key_id\":")?;
    let key_id = c.string()?;
    c.literal(b",\"hash\":")?;
    let (hash, _) = c.hex::<32>()?;
    c.literal(b",\"sig\":")?;
    let (sig, _) = c.hex::<64>()?;
    c.literal(b"}")?;
    if c.i != c.s.len() {
        return None;
    }
    // The line is UTF-8, and a string ends at an ASCII quote, so its text is too; a failure
    // here only declines.
    let text = |bytes| std::str::from_utf8(bytes).ok();
    Some(RawRecord {
        v,
        tenant: text(tenant)?,
        seq,
        prev: Hash::from_bytes(prev),
        captured_at_us,
        event_id: text(event_id)?,
        event_type: text(event_type)?,
        payload,
        erasable,
        key_id: text(key_id)?,
        hash: Hash::from_bytes(hash),
        sig,
    })
}

/// A position in a record line.
struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn literal(&mut self, text: &[u8]) -> Option<()> {
        let end = self.i.checked_add(text.len())?;
        if self.s.get(self.i..end)? != text {
            return None;
        }
        self.i = end;
        Some(())
    }

    /// A string without escapes or control characters; its bytes without the quotes.
    fn string(&mut self) -> Option<&'a [u8]> {
        let start = self.i + 1;
        self.i = canonical_string(self.s, self.i)?;
        Some(&self.s[start..self.i - 1])
    }

    /// A non-negative integer as JSON writes it (no sign, no leading zero, no fraction or
    /// exponent) that fits a `u64`; and its text.
    fn integer(&mut self) -> Option<(u64, &'a [u8])> {
        let start = self.i;
        let digits = self.s[start..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let text = &self.s[start..start + digits];
        if digits == 0 || (digits > 1 && text[0] == b'0') {
            return None;
        }
        let mut value: u64 = 0;
        for &d in text {
            value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        }
        self.i = start + digits;
        Some((value, text))
    }

    /// `N` bytes as a string of exactly `2 N` lowercase hex digits; and the digits.
    fn hex<const N: usize>(&mut self) -> Option<([u8; N], &'a [u8])> {
        let digits = self.s.get(self.i + 1..self.i + 1 + 2 * N)?;
        if self.s.get(self.i) != Some(&b'"') || self.s.get(self.i + 1 + 2 * N) != Some(&b'"') {
            return None;
        }
        let bytes = decode_lower_hex::<N>(digits)?;
        self.i += 2 * N + 2;
        Some((bytes, digits))
    }

    /// An object in canonical form (see [`canonical_value`]); its text.
    fn canonical_object(&mut self) -> Option<&'a [u8]> {
        if self.s.get(self.i) != Some(&b'{') {
            return None;
        }
        let start = self.i;
        self.i = canonical_value(self.s, start, 0)?;
        Some(&self.s[start..self.i])
    }
}

/// The value of a lowercase hex digit, or 16 for any other byte.
const HEX_VALUES: [u8; 256] = {
    let mut table = [16u8; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// Decodes exactly `2 N` lowercase hex digits (upper case is not the form Auditex writes, and
/// goes to the reference).
fn decode_lower_hex<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    if digits.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    let mut bad = 0u8;
    for (o, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let (hi, lo) = (HEX_VALUES[pair[0] as usize], HEX_VALUES[pair[1] as usize]);
        // One test for the whole string instead of a branch per digit: 16 sets bit 4.
        bad |= hi | lo;
        *o = (hi << 4) | (lo & 0x0f);
    }
    (bad & 0xf0 == 0).then_some(out)
}

/// What a run of records accepted by the fast path proved: the same as a `ChainSummary`.
pub struct FastSummary {
    pub start: ChainAnchor,
    pub end: ChainAnchor,
    pub leaves: LeafRange,
    /// Event ids with their sequence numbers, in sequence order: their uniqueness is checked
    /// where the runs are joined.
    pub event_ids: Vec<(EventId, u64)>,
}

struct Pending {
    key: VerifyingKey,
    hash: Hash,
    signature: Signature,
}

/// Verifies `lines` from `anchor` on the fast path; `None` means "use the reference". A line
/// that is not UTF-8 (or a placeholder for one that could not be kept) declines.
pub fn verify_lines<'a>(
    tenant: &TenantId,
    ring: &KeyRing,
    size: u64,
    anchor: ChainAnchor,
    lines: impl Iterator<Item = &'a [u8]>,
) -> Option<FastSummary> {
    let mut next = anchor;
    let mut leaves = LeafRange::new(anchor.next_seq);
    let mut pending: Vec<Pending> = Vec::with_capacity(SIGNATURE_BATCH_RECORDS);
    let mut body = Vec::with_capacity(1024);
    let mut event_ids = Vec::new();
    for line in lines {
        let r = parse_line(std::str::from_utf8(line).ok()?)?;
        if r.v != u64::from(FORMAT_VERSION)
            || r.seq != next.next_seq
            || r.seq >= size
            || r.tenant != tenant.as_str()
        {
            return None;
        }
        let seq = Sequence::new(r.seq).ok()?;
        let captured = CaptureTime::from_unix_micros(r.captured_at_us).ok()?;
        if next.not_before.is_some_and(|t| captured < t) {
            return None;
        }
        if r.prev != next.prev {
            return None;
        }
        if !is_lower_hex(r.event_id.as_bytes(), b'-') {
            return None;
        }
        let event_id = EventId::parse(r.event_id).ok()?;
        event_ids.push((event_id, r.seq));
        let event_type = EventType::parse(r.event_type).ok()?;
        if event_type == EventType::KeyRotation {
            return None;
        }
        if !is_lower_hex(r.key_id.as_bytes(), 0) {
            return None;
        }
        let key_id = KeyId::parse(r.key_id).ok()?;
        let key = *ring.key_for(key_id, seq).ok()?;
        // A key that the history starts after this record needs a rotation record here.
        if ring.intervals().iter().any(|k| k.from_seq == r.seq + 1) {
            return None;
        }
        if r.erasable != b"{}" && !canonical_erasable(r.erasable) {
            return None;
        }

        // The body is laid out by the ledger, from the typed members and the payload and
        // erasable texts checked canonical above: this path hashes exactly what the reference
        // hashes, or declines.
        let computed = BodyParts {
            tenant,
            seq,
            prev: &r.prev,
            captured_at: captured,
            event_id: &event_id,
            event_type,
            payload: r.payload,
            erasable: r.erasable,
            key_id,
        }
        .hash_into(&mut body);
        if computed != r.hash {
            return None;
        }
        pending.push(Pending {
            key,
            hash: r.hash,
            signature: Signature::from_bytes(&r.sig),
        });
        if pending.len() == SIGNATURE_BATCH_RECORDS && !batch_ok(&pending) {
            return None;
        }
        if pending.len() == SIGNATURE_BATCH_RECORDS {
            pending.clear();
        }
        leaves.push_leaf(leaf_hash(r.hash.as_bytes()));
        next = ChainAnchor {
            next_seq: r.seq + 1,
            prev: r.hash,
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
        event_ids,
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

fn is_lower_hex(bytes: &[u8], also: u8) -> bool {
    bytes
        .iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b) || (also != 0 && *b == also))
}

/// An erasable map in canonical form: field names in order, lowercase hex commitments.
fn canonical_erasable(text: &[u8]) -> bool {
    // Equal names cannot pass: `canonical_value` below requires strictly increasing names.
    let Ok(map) = serde_json::from_slice::<std::collections::BTreeMap<&str, &str>>(text) else {
        return false;
    };
    let names_ok = map.iter().all(|(k, v)| {
        FieldName::parse(k).is_ok() && v.len() == 64 && is_lower_hex(v.as_bytes(), 0)
    });
    names_ok && canonical_value(text, 0, 0) == Some(text.len())
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
    use ed25519_dalek::SigningKey;
    use ledger::keys::{KeyInterval, RecordSigner};
    use ledger::record::Record;
    use ledger::verify::ChainVerifier;

    const TENANT: &str = "acme-bank";

    fn signer() -> RecordSigner {
        RecordSigner::new(SigningKey::from_bytes(&[9; 32]))
    }

    fn ring() -> KeyRing {
        let key = signer().key_id();
        let public = SigningKey::from_bytes(&[9; 32]).verifying_key();
        KeyRing::new(vec![KeyInterval {
            key_id: key,
            public_key: public,
            from_seq: 0,
            until_seq: None,
        }])
        .expect("ring")
    }

    /// Export lines of a chain of `n` records from the genesis, as `auditex export` writes them:
    /// payloads with every kind of JSON value, erasable fields on every other record.
    fn lines(n: u64) -> Vec<String> {
        let tenant = TenantId::parse(TENANT).expect("tenant");
        let records = crate::verify_cli::test_chain::signed_chain(&tenant, &signer(), n, |seq| {
            let mut payload = crate::verify_cli::test_chain::decision(seq);
            payload["score"] = serde_json::json!(0.25);
            payload["reason_codes"] = serde_json::json!(["R01"]);
            payload["explanation"] = serde_json::json!("Café — fine");
            payload["attributes"] =
                serde_json::json!({"n": seq, "ok": true, "none": null, "list": [1, "two", -3.5]});
            let mut erasable = std::collections::BTreeMap::new();
            if seq % 2 == 0 {
                erasable.insert("name".to_owned(), serde_json::json!("Ada"));
            }
            (payload, erasable)
        });
        records
            .iter()
            .map(|record| {
                let mut line = ledger::export::record_line(record);
                line.pop();
                line
            })
            .collect()
    }

    fn fast(lines: &[String]) -> Option<FastSummary> {
        let tenant = TenantId::parse(TENANT).expect("tenant");
        let size = lines.len() as u64;
        let lines = lines.iter().map(|l| l.as_bytes());
        verify_lines(&tenant, &ring(), size, ChainAnchor::genesis(), lines)
    }

    /// What the reference verifier says of the same lines: the end of the chain, if it verifies.
    fn reference(lines: &[String]) -> Option<ChainAnchor> {
        let tenant = TenantId::parse(TENANT).expect("tenant");
        let mut chain = ChainVerifier::from_anchor(tenant, ring(), ChainAnchor::genesis());
        for line in lines {
            let record = Record::from_json(line).ok()?;
            if record.seq.get() >= lines.len() as u64 {
                return None;
            }
            chain.push(&record).ok()?;
        }
        chain.finish().ok().map(|s| s.end())
    }

    /// The erasable map as the export writes it.
    fn erasable_text(record: &Record) -> String {
        serde_json::to_value(record).expect("a record")["erasable"].to_string()
    }

    #[test]
    fn export_lines_are_read_as_the_reference_reads_them() {
        let lines = lines(3);
        for line in &lines {
            let raw = parse_line(line).expect("the exporter's layout");
            let record = Record::from_json(line).expect("a record");
            assert_eq!(raw.seq, record.seq.get());
            assert_eq!(raw.prev, record.prev);
            assert_eq!(raw.captured_at_us, record.captured_at_us.unix_micros());
            assert_eq!(raw.hash, record.hash);
            assert_eq!(raw.sig, record.sig.to_bytes());
            assert_eq!(raw.payload, record.payload.as_str().as_bytes());
            assert_eq!(raw.erasable, erasable_text(&record).as_bytes());
            // The ledger's body from the line's texts is the record's own body.
            let mut body = Vec::new();
            let hash = BodyParts {
                tenant: &record.tenant,
                seq: record.seq,
                prev: &raw.prev,
                captured_at: record.captured_at_us,
                event_id: &record.event_id,
                event_type: record.event_type,
                payload: raw.payload,
                erasable: raw.erasable,
                key_id: record.key_id,
            }
            .hash_into(&mut body);
            assert_eq!(body, record.canonical_body());
            assert_eq!(hash, record.hash);
        }
        let summary = fast(&lines).expect("the fast path accepts an intact chain");
        assert_eq!(Some(summary.end), reference(&lines));
    }

    #[test]
    fn other_layouts_of_the_same_record_go_to_the_reference() {
        let lines = lines(1);
        let line = &lines[0];
        let variants = [
            line.replacen("{\"v\":1,", "{ \"v\":1,", 1),
            line.replacen("{\"v\":1,", "{\"v\": 1,", 1),
            format!("{line} "),
            format!("{line}\r"),
            line.replacen("\"seq\":0", "\"seq\":00", 1),
            line.replacen("\"seq\":0", "\"seq\":0.0", 1),
            line.replacen("\"seq\":0", "\"seq\":-0", 1),
            line.replacen("acme-bank", "acme\\u002dbank", 1),
            line.replacen(
                "\"v\":1,\"tenant\":\"acme-bank\",",
                "\"tenant\":\"acme-bank\",\"v\":1,",
                1,
            ),
            line.replacen(",\"erasable\":", ",\"erasable\" :", 1),
            {
                let i = line.find("\"sig\":\"").expect("sig") + 7;
                format!("{}{}", &line[..i], line[i..].to_uppercase())
            },
            format!("{},\"x\":1}}", &line[..line.len() - 1]),
        ];
        for variant in &variants {
            assert_ne!(variant, line);
            assert!(parse_line(variant).is_none(), "{variant}");
        }
    }

    #[test]
    fn the_fast_path_never_accepts_what_the_reference_rejects() {
        let intact = lines(4);
        // Every byte of a record changed in turn (a few values each): the fast path may only
        // decline or agree with the reference.
        let target = 2;
        let mut accepted = 0;
        for i in 0..intact[target].len() {
            for replacement in [b'0', b'1', b'f', b'"', b' ', b'\\', b'}'] {
                let mut bytes = intact[target].clone().into_bytes();
                if bytes[i] == replacement {
                    continue;
                }
                bytes[i] = replacement;
                let Ok(text) = String::from_utf8(bytes) else {
                    continue;
                };
                let mut lines = intact.clone();
                lines[target] = text;
                if let Some(summary) = fast(&lines) {
                    accepted += 1;
                    assert_eq!(Some(summary.end), reference(&lines), "{}", lines[target]);
                }
            }
        }
        assert_eq!(accepted, 0, "a changed byte was accepted");
    }

    #[test]
    fn lowercase_hex_is_decoded_and_anything_else_refused() {
        assert_eq!(decode_lower_hex::<2>(b"00ff"), Some([0, 255]));
        assert_eq!(decode_lower_hex::<3>(b"0a9b7c"), Some([0x0a, 0x9b, 0x7c]));
        for bad in [&b"00FF"[..], b"0g00", b"00 0", b"000", b"00000", b"\xff000"] {
            assert_eq!(decode_lower_hex::<2>(bad), None, "{bad:?}");
        }
    }

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
