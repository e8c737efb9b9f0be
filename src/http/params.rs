//! Request parameters every handler module reads the same way: opaque page cursors, page sizes,
//! bounded text and event ids. A leaf: it imports only the error type, so that the handler
//! modules (`api`, `views`, `integrity`, `subjects`) share it without importing each other.

use std::fmt::Display;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ledger::payload::STRING_BYTES_MAX;
use ledger::types::EventId;

use super::error::ApiError;

/// What a record listing's cursor says: "continue at this sequence number".
const RECORD_CURSOR_PREFIX: &str = "seq:";

/// The cursor of a listing by sequence number, continuing at `seq`.
pub fn encode_cursor(seq: u64) -> String {
    encode_prefixed_cursor(RECORD_CURSOR_PREFIX, seq)
}

/// The sequence number a cursor from [`encode_cursor`] continues at.
///
/// # Errors
/// [`ApiError::BadParameter`] for a cursor this service did not issue.
pub fn decode_cursor(cursor: &str) -> Result<u64, ApiError> {
    decode_prefixed_cursor(RECORD_CURSOR_PREFIX, cursor)
}

/// An opaque cursor: `prefix` and a number, base64url-encoded. The prefix names what the number
/// means, so that a cursor of one listing is refused by another.
pub fn encode_prefixed_cursor(prefix: &str, n: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{prefix}{n}"))
}

/// The number in a cursor from [`encode_prefixed_cursor`] with the same `prefix`.
///
/// # Errors
/// [`ApiError::BadParameter`] for a cursor this service did not issue.
pub fn decode_prefixed_cursor(prefix: &str, cursor: &str) -> Result<u64, ApiError> {
    let bad = || ApiError::BadParameter("cursor is not one this service issued".into());
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = std::str::from_utf8(&bytes).map_err(|_| bad())?;
    text.strip_prefix(prefix)
        .and_then(|n| n.parse().ok())
        .ok_or_else(bad)
}

/// The page size asked for: `default` when none is given, else a value in `1..=max`.
///
/// # Errors
/// [`ApiError::BadParameter`] naming the limit when it is out of range.
pub fn page_limit<T>(given: Option<T>, default: T, max: T) -> Result<T, ApiError>
where
    T: Copy + PartialOrd + Display + From<u8>,
{
    match given {
        None => Ok(default),
        Some(n) if n >= T::from(1) && n <= max => Ok(n),
        Some(n) => Err(ApiError::BadParameter(format!(
            "limit {n} is out of range 1..={max}"
        ))),
    }
}

/// A text parameter (path or query), when given: 1 to [`STRING_BYTES_MAX`] bytes, the length of
/// a payload string, so that anything the ledger can hold can be asked for.
///
/// # Errors
/// [`ApiError::BadParameter`] naming the parameter and the bounds.
pub fn text(name: &str, value: &Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if v.is_empty() || v.len() > STRING_BYTES_MAX => Err(ApiError::BadParameter(
            format!("{name} must be 1 to {STRING_BYTES_MAX} bytes"),
        )),
        other => Ok(other.clone()),
    }
}

/// An event id given as a path or query parameter.
///
/// # Errors
/// [`ApiError::BadParameter`] saying why it is not one.
pub fn parse_event_id(text: &str) -> Result<EventId, ApiError> {
    EventId::parse(text).map_err(|e| ApiError::BadParameter(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_only_under_its_own_prefix() {
        let cursor = encode_prefixed_cursor("before:", 42);
        assert_eq!(decode_prefixed_cursor("before:", &cursor).ok(), Some(42));
        assert!(matches!(
            decode_prefixed_cursor("seq:", &cursor),
            Err(ApiError::BadParameter(_))
        ));
        assert_eq!(decode_cursor(&encode_cursor(7)).ok(), Some(7));
        assert!(decode_cursor("not base64 at all!").is_err());
    }

    #[test]
    fn a_page_limit_outside_one_to_max_is_refused_naming_the_range() {
        assert_eq!(page_limit(None, 20u64, 100).ok(), Some(20));
        assert_eq!(page_limit(Some(100u64), 20, 100).ok(), Some(100));
        match page_limit(Some(0u32), 50, 500) {
            Err(ApiError::BadParameter(m)) => assert_eq!(m, "limit 0 is out of range 1..=500"),
            other => panic!("refused, not {other:?}"),
        }
        assert!(page_limit(Some(101u64), 20, 100).is_err());
    }
}
