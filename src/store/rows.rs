//! Conversions from the rows both backends select into the store's types; the SQL that selects
//! them stays in `sqlite.rs` and `postgres.rs`, the decoding lives once, here.

use ledger::types::{CaptureTime, Hash, Sequence, TenantId, TreeSize};

use super::{ChainHead, KeyRow, RecordRow, StoreError, StoredCheckpoint};

/// A signing-key row as selected.
pub(crate) type KeyTuple = (String, Vec<u8>, Vec<u8>, i64, Option<i64>);

pub(crate) fn key_row(t: KeyTuple) -> KeyRow {
    KeyRow {
        key_id: t.0,
        public_key: t.1,
        sealed_secret: t.2,
        from_seq: t.3,
        until_seq: t.4,
    }
}

pub(crate) type RecordTuple = (
    String,
    i64,
    String,
    String,
    i64,
    Vec<u8>,
    Vec<u8>,
    String,
    Vec<u8>,
    String,
    String,
);

pub(crate) fn row(t: RecordTuple) -> RecordRow {
    RecordRow {
        tenant: t.0,
        seq: t.1,
        event_id: t.2,
        event_type: t.3,
        captured_at_us: t.4,
        prev: t.5,
        hash: t.6,
        key_id: t.7,
        sig: t.8,
        payload: t.9,
        erasable: t.10,
    }
}

pub(crate) fn head(t: (i64, Vec<u8>, i64)) -> Result<ChainHead, StoreError> {
    let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(format!("chain head: {e}"));
    Ok(ChainHead {
        seq: Sequence::new(u64::try_from(t.0).map_err(|e| corrupt(&e))?)
            .map_err(|e| corrupt(&e))?,
        hash: Hash::from_slice(&t.1).map_err(|e| corrupt(&e))?,
        captured_at: CaptureTime::from_unix_micros(u64::try_from(t.2).map_err(|e| corrupt(&e))?)
            .map_err(|e| corrupt(&e))?,
    })
}

pub(crate) fn checkpoint(t: (i64, Vec<u8>, String, i64)) -> Result<StoredCheckpoint, StoreError> {
    let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(format!("checkpoint: {e}"));
    Ok(StoredCheckpoint {
        size: TreeSize::new(u64::try_from(t.0).map_err(|e| corrupt(&e))?),
        root: Hash::from_slice(&t.1).map_err(|e| corrupt(&e))?,
        signed_note: t.2,
        published_at_us: u64::try_from(t.3).map_err(|e| corrupt(&e))?,
    })
}

/// An abandoned checkpoint row: the acknowledgement's seq and the checkpoint.
pub(crate) fn abandoned_checkpoint(
    t: (i64, i64, Vec<u8>, String, i64),
) -> Result<(u64, StoredCheckpoint), StoreError> {
    let by = u64::try_from(t.0)
        .map_err(|e| StoreError::Corrupt(format!("abandoned checkpoint: {e}")))?;
    Ok((by, checkpoint((t.1, t.2, t.3, t.4))?))
}

/// A server-side session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// SHA-256 of the session id.
    pub id_hash: Vec<u8>,
    /// Its user.
    pub user_id: String,
    /// The user's tenant.
    pub tenant: TenantId,
    /// Created, µs.
    pub created_at_us: i64,
    /// Last request, µs.
    pub last_seen_us: i64,
    /// Absolute expiry, µs.
    pub expires_at_us: i64,
    /// Ended (sign-out, password change, disable), µs.
    pub ended_at_us: Option<i64>,
    /// Client description (user agent, address) for the "my sessions" page.
    pub client: String,
}

/// A user row as the backends select it (columns as `access_sql::INSERT_USER` names them).
pub(crate) type UserTuple = (
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    i64,
    Option<i64>,
);

/// A session row as the backends select it.
pub(crate) type SessionTuple = (Vec<u8>, String, String, i64, i64, i64, Option<i64>, String);
