//! RFC 8785 (JSON Canonicalization Scheme) with the extra strictness the ledger needs.
//!
//! JCS defines numbers as IEEE-754 doubles. An integer outside ±(2^53 − 1) would be silently
//! rounded by any JCS implementation, so the hash would commit to a different number than the one
//! the client sent; we reject such input instead of signing something the client did not say.
//!
//! The canonical bytes are written by [`jcs`], a direct walk of the value. The maintained
//! library (`serde_json_canonicalizer`) did the same work several times over: it wrote each
//! object key, parsed it back and copied it into a UTF-16 buffer to sort the keys, and
//! buffered every member value apart; a payload's canonicalization was 4–6 % of the server's
//! CPU under load (BENCHMARKS.md, "The canonical writer, and page statements from a ladder of
//! sizes"). The library stays the oracle: `tests/canonical.rs` checks this writer against it
//! byte for byte on generated values, and the RFC 8785 test vectors check it in
//! `tests/record.rs`.

use serde_json::Value;

use crate::types::JSON_SAFE_INTEGER_MAX;

/// Deepest nesting of arrays and objects accepted in a payload.
pub const JSON_DEPTH_MAX: usize = 32;

/// Why a JSON value cannot be canonicalized exactly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CanonicalError {
    /// An integer that IEEE-754 doubles cannot hold exactly.
    #[error(
        "{path}: the number {number} cannot be represented exactly in canonical JSON (numbers must lie within ±(2^53-1)); send it as a string"
    )]
    UnsafeInteger {
        /// JSON Pointer to the offending number.
        path: String,
        /// The number as it was given.
        number: String,
    },
    /// Nesting deeper than [`JSON_DEPTH_MAX`].
    #[error("{path}: JSON nested deeper than {JSON_DEPTH_MAX} levels")]
    TooDeep {
        /// JSON Pointer to the first value beyond the limit.
        path: String,
    },
    /// The text is not JSON.
    #[error("malformed JSON: {0}")]
    Syntax(String),
    /// A value that must be a JSON object is not one.
    #[error("{path}: must be a JSON object")]
    NotAnObject {
        /// JSON Pointer to the value.
        path: String,
    },
    /// The canonicalizer itself failed (it should not for a validated value).
    #[error("canonicalization failed: {0}")]
    Library(String),
}

impl CanonicalError {
    /// The JSON Pointer of the offending value, when the error concerns one.
    pub fn path(&self) -> Option<&str> {
        match self {
            CanonicalError::UnsafeInteger { path, .. }
            | CanonicalError::TooDeep { path }
            | CanonicalError::NotAnObject { path } => Some(path),
            CanonicalError::Syntax(_) | CanonicalError::Library(_) => None,
        }
    }
}

/// Checks that every number in `value` is exactly representable and the nesting is bounded.
///
/// # Errors
/// [`CanonicalError::UnsafeInteger`] or [`CanonicalError::TooDeep`], naming the JSON Pointer path
/// of the first offending value below `base_path`.
pub fn check_representable(value: &Value, base_path: &str) -> Result<(), CanonicalError> {
    check(value, &mut base_path.to_owned(), 0)
}

fn check(value: &Value, path: &mut String, depth: usize) -> Result<(), CanonicalError> {
    match value {
        Value::Number(n) => {
            // Integers parsed as u64/i64 are exact in serde_json but not in a double. Doubles of
            // magnitude 2^53 and above are refused as well: RFC 8785 writes them as integer digits
            // (5.4e17 becomes "540000000000000000"), which another verifier's JSON parser reads
            // back as an integer that its JCS library must then refuse or round.
            let unsafe_int = match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => u > JSON_SAFE_INTEGER_MAX,
                (None, Some(i), _) => i.unsigned_abs() > JSON_SAFE_INTEGER_MAX,
                (None, None, Some(f)) => f.abs() > JSON_SAFE_INTEGER_MAX as f64,
                (None, None, None) => false,
            };
            if unsafe_int {
                return Err(CanonicalError::UnsafeInteger {
                    path: path.clone(),
                    number: n.to_string(),
                });
            }
            Ok(())
        }
        Value::Array(items) => {
            if depth >= JSON_DEPTH_MAX {
                return Err(CanonicalError::TooDeep { path: path.clone() });
            }
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push('/');
                path.push_str(&i.to_string());
                check(item, path, depth + 1)?;
                path.truncate(len);
            }
            Ok(())
        }
        Value::Object(map) => {
            if depth >= JSON_DEPTH_MAX {
                return Err(CanonicalError::TooDeep { path: path.clone() });
            }
            for (key, item) in map {
                let len = path.len();
                path.push('/');
                push_pointer_token(path, key);
                check(item, path, depth + 1)?;
                path.truncate(len);
            }
            Ok(())
        }
        Value::Null | Value::Bool(_) | Value::String(_) => Ok(()),
    }
}

/// Appends `token` escaped as RFC 6901 requires (`~` → `~0`, `/` → `~1`).
pub(crate) fn push_pointer_token(path: &mut String, token: &str) {
    for c in token.chars() {
        match c {
            '~' => path.push_str("~0"),
            '/' => path.push_str("~1"),
            c => path.push(c),
        }
    }
}

/// Canonicalizes `value` with RFC 8785 after checking that it is exactly representable.
///
/// # Errors
/// See [`check_representable`]; `base_path` prefixes the paths in the errors.
pub fn canonicalize(value: &Value, base_path: &str) -> Result<Vec<u8>, CanonicalError> {
    check_representable(value, base_path)?;
    jcs(value)
}

/// Plain RFC 8785 canonicalization, without the ledger's number-range rule. Used for the RFC 8785
/// test vectors (which contain doubles such as 1e+30) and by [`canonicalize`].
///
/// # Errors
/// [`CanonicalError::Library`] for a number that is not a finite double (which a
/// `serde_json::Value` cannot hold) or a string serde_json cannot write.
pub fn jcs(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(128);
    write_jcs(value, &mut out)?;
    Ok(out)
}

/// Appends the RFC 8785 form of `value` to `out` (section 3.2 of the RFC):
/// - literals as they are;
/// - every number as the double it denotes, in ECMAScript's `Number.prototype.toString` form
///   (`ryu_js`, the form the library writes; integers as doubles too, so `1.0` and `1` are both
///   `1`);
/// - strings as serde_json writes them, which is the RFC's escaping: `"` and `\`, the five short
///   escapes of control characters and `\u00xx` in lower case for the others, every other
///   character as itself;
/// - object members sorted by their keys' UTF-16 code units (not their UTF-8 bytes: the two
///   orders differ between characters from U+E000 and those beyond U+FFFF), with no whitespace.
fn write_jcs(value: &Value, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            let double = n.as_f64().filter(|d| d.is_finite()).ok_or_else(|| {
                CanonicalError::Library(format!("the number {n} is not a finite double"))
            })?;
            out.extend_from_slice(ryu_js::Buffer::new().format_finite(double).as_bytes());
        }
        Value::String(text) => write_string(text, out)?,
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_jcs(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // Sorted whatever the map's own order: serde_json's is insertion order when any
            // crate of the build enables its `preserve_order` feature (a test dependency of the
            // service does), and UTF-8 byte order otherwise, which is not UTF-16's.
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_unstable_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push(b'{');
            for (i, (key, item)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out)?;
                out.push(b':');
                write_jcs(item, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// Appends `text` as a JSON string, escaped as serde_json escapes (see [`write_jcs`]).
fn write_string(text: &str, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    serde_json::to_writer(out, text).map_err(|e| CanonicalError::Library(e.to_string()))
}
