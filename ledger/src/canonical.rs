//! RFC 8785 (JSON Canonicalization Scheme) with the extra strictness the ledger needs.
//!
//! JCS defines numbers as IEEE-754 doubles. An integer outside ±(2^53 − 1) would be silently
//! rounded by any JCS implementation, so the hash would commit to a different number than the one
//! the client sent; we reject such input instead of signing something the client did not say.
//! The canonical bytes are produced by a maintained library (`serde_json_canonicalizer`), which the
//! RFC 8785 test vectors check in `tests/record.rs`.

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
/// [`CanonicalError::Library`] if the canonicalizer fails.
pub fn jcs(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    serde_json_canonicalizer::to_vec(value).map_err(|e| CanonicalError::Library(e.to_string()))
}
