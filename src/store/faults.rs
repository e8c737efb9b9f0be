//! Faults the operator must hear about: storage that is full, a clock behind the chain, and an
//! append queue that sheds load. The store records each here as it meets it; `/readyz` and
//! `/metrics` read the snapshot, and the ERROR or WARN log line is written on the transition
//! into the fault, so that a full disk is named once per episode rather than once per request.
//!
//! Storage-full is recognised wherever a write fails, by one classification
//! ([`is_storage_full_sqlx`], [`is_storage_full_io`]) shared by both database backends and the
//! published-checkpoint files: SQLite's `SQLITE_FULL` (result code 13), PostgreSQL's SQLSTATE
//! `53100` (`disk_full`), and the operating system's `ENOSPC`/`EDQUOT`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long `/readyz` reports storage as full after the last write that failed for lack of space,
/// unless a write succeeds first. Long enough for a load balancer to notice; short enough that a
/// node whose space came back (and that nobody writes to while it is unready) offers itself
/// again without a restart: the next write then clears or renews the fault.
pub const STORAGE_FULL_HOLD_MS: u64 = 10_000;

/// What a caller refused for lack of storage is told to wait before retrying, in seconds.
pub const STORAGE_FULL_RETRY_AFTER_S: u64 = 10;

/// What a caller refused because the clock is behind is told to wait, in seconds.
pub const CLOCK_BEHIND_RETRY_AFTER_S: u64 = 30;

/// SQLite's primary result code for "database or disk is full".
const SQLITE_FULL: i32 = 13;

/// PostgreSQL's SQLSTATE for `disk_full`.
const POSTGRES_DISK_FULL: &str = "53100";

/// `ENOSPC` and `EDQUOT` on Linux (no space left; quota exceeded).
const OS_NO_SPACE: [i32; 2] = [28, 122];

/// Whether a database error means the storage is full.
pub(crate) fn is_storage_full_sqlx(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            let backend = if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                Backend::Sqlite
            } else {
                Backend::Postgres
            };
            db.code()
                .is_some_and(|code| is_storage_full_code(backend, &code))
        }
        sqlx::Error::Io(io) => is_storage_full_io(io),
        _ => false,
    }
}

/// Which database produced an error code: SQLite's are numbers, PostgreSQL's are SQLSTATEs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// Whether a database error code means the storage is full.
pub(crate) fn is_storage_full_code(backend: Backend, code: &str) -> bool {
    match backend {
        // SQLite reports extended result codes; the low byte is the primary code.
        Backend::Sqlite => code.parse::<i32>().is_ok_and(|c| c & 0xff == SQLITE_FULL),
        Backend::Postgres => code == POSTGRES_DISK_FULL,
    }
}

/// Whether an I/O error means the file system is full (or the quota is spent).
pub(crate) fn is_storage_full_io(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull
        || e.kind() == std::io::ErrorKind::QuotaExceeded
        || e.raw_os_error().is_some_and(|c| OS_NO_SPACE.contains(&c))
}

/// The faults the store has met, shared by every clone of a store.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// When a write last failed for lack of space, unless one succeeded since.
    storage_full_since: Mutex<Option<Instant>>,
    storage_full_errors: AtomicU64,
    /// How far the clock was behind the chain head at the latest append, µs (0: not behind).
    clock_behind_us: AtomicU64,
    clock_refusals: AtomicU64,
    shed_requests: AtomicU64,
    deadline_expired_requests: AtomicU64,
}

/// A point-in-time view of [`Faults`], for `/readyz` and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultStatus {
    /// A write failed for lack of space within [`STORAGE_FULL_HOLD_MS`] and none succeeded since.
    pub storage_full: bool,
    /// Writes that failed for lack of space since the start.
    pub storage_full_errors: u64,
    /// Seconds the clock was behind the chain head at the latest append (0 when it was not).
    pub clock_behind_seconds: f64,
    /// Whether that is beyond the configured allowance, so that appends are refused.
    pub clock_beyond_allowance: bool,
    /// Appends refused because the clock was too far behind.
    pub clock_refusals: u64,
    /// Append requests refused at once because the queues were full.
    pub shed_requests: u64,
    /// Append requests answered 503 because they waited in the queue past the deadline.
    pub deadline_expired_requests: u64,
}

impl Faults {
    fn lock_full(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.storage_full_since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// A write failed for lack of space: logged at ERROR when this starts an episode.
    pub(crate) fn storage_full(&self, what: &str, detail: &str) {
        self.storage_full_errors.fetch_add(1, Ordering::Relaxed);
        let mut since = self.lock_full();
        if since.is_none() {
            tracing::error!(
                write = what,
                error = detail,
                "storage full: writes fail until space is freed; the service recovers by itself"
            );
        } else {
            tracing::warn!(write = what, error = detail, "storage still full");
        }
        *since = Some(Instant::now());
    }

    /// A write succeeded: storage is not full (any more).
    pub(crate) fn write_succeeded(&self) {
        let mut since = self.lock_full();
        if since.take().is_some() {
            tracing::info!("storage no longer full: writes succeed again");
        }
    }

    /// The clock is `behind` the chain head at an append (zero when it is not).
    pub(crate) fn clock_observed(&self, behind: Duration, allowed: Duration) {
        let us = u64::try_from(behind.as_micros()).unwrap_or(u64::MAX);
        let before = self.clock_behind_us.swap(us, Ordering::Relaxed);
        if us > 0 && before == 0 {
            tracing::warn!(
                behind_ms = u64::try_from(behind.as_millis()).unwrap_or(u64::MAX),
                allowed_ms = u64::try_from(allowed.as_millis()).unwrap_or(u64::MAX),
                "the system clock is behind the latest capture time: new records carry the \
                 chain head's time until the clock catches up; appends are refused beyond the \
                 allowance"
            );
        } else if us == 0 && before > 0 {
            tracing::info!("the system clock has caught up with the chain head");
        }
    }

    pub(crate) fn clock_refused(&self) {
        self.clock_refusals.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn shed(&self) {
        self.shed_requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn deadline_expired(&self) {
        self.deadline_expired_requests
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn status(&self, clock_allowance: Duration) -> FaultStatus {
        let storage_full = self
            .lock_full()
            .is_some_and(|t| t.elapsed() < Duration::from_millis(STORAGE_FULL_HOLD_MS));
        let behind_us = self.clock_behind_us.load(Ordering::Relaxed);
        FaultStatus {
            storage_full,
            storage_full_errors: self.storage_full_errors.load(Ordering::Relaxed),
            clock_behind_seconds: behind_us as f64 / 1e6,
            clock_beyond_allowance: Duration::from_micros(behind_us) > clock_allowance,
            clock_refusals: self.clock_refusals.load(Ordering::Relaxed),
            shed_requests: self.shed_requests.load(Ordering::Relaxed),
            deadline_expired_requests: self.deadline_expired_requests.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_disk_full_codes_of_both_databases_mean_storage_full_and_no_others_do() {
        assert!(is_storage_full_code(Backend::Postgres, "53100"));
        assert!(is_storage_full_code(Backend::Sqlite, "13"));
        // Other resource and I/O errors are not "full": retrying after freeing space would not help.
        assert!(!is_storage_full_code(Backend::Postgres, "53200")); // out_of_memory
        assert!(!is_storage_full_code(Backend::Postgres, "53300")); // too_many_connections
        assert!(!is_storage_full_code(Backend::Postgres, "08006"));
        assert!(!is_storage_full_code(Backend::Sqlite, "10")); // SQLITE_IOERR
        assert!(!is_storage_full_code(Backend::Sqlite, "5")); // SQLITE_BUSY
        assert!(!is_storage_full_code(Backend::Sqlite, "not a number"));
    }

    #[test]
    fn no_space_and_quota_errors_of_the_operating_system_mean_storage_full() {
        assert!(is_storage_full_io(&std::io::Error::from_raw_os_error(28)));
        assert!(is_storage_full_io(&std::io::Error::from_raw_os_error(122)));
        assert!(is_storage_full_io(&std::io::Error::from(
            std::io::ErrorKind::StorageFull
        )));
        assert!(!is_storage_full_io(&std::io::Error::from_raw_os_error(13)));
        assert!(!is_storage_full_io(&std::io::Error::from(
            std::io::ErrorKind::NotFound
        )));
    }

    #[test]
    fn a_storage_full_episode_ends_with_the_next_successful_write() {
        let faults = Faults::default();
        let allowance = Duration::from_secs(300);
        assert!(!faults.status(allowance).storage_full);
        faults.storage_full("append", "database or disk is full");
        faults.storage_full("append", "database or disk is full");
        let status = faults.status(allowance);
        assert!(status.storage_full);
        assert_eq!(status.storage_full_errors, 2);
        faults.write_succeeded();
        let status = faults.status(allowance);
        assert!(!status.storage_full);
        assert_eq!(status.storage_full_errors, 2, "the counter only grows");
    }

    #[test]
    fn a_clock_behind_by_more_than_the_allowance_is_reported_beyond_it() {
        let faults = Faults::default();
        let allowance = Duration::from_secs(300);
        faults.clock_observed(Duration::from_secs(60), allowance);
        let status = faults.status(allowance);
        assert!((status.clock_behind_seconds - 60.0).abs() < 1e-9);
        assert!(!status.clock_beyond_allowance);
        faults.clock_observed(Duration::from_secs(301), allowance);
        assert!(faults.status(allowance).clock_beyond_allowance);
        faults.clock_observed(Duration::ZERO, allowance);
        assert_eq!(faults.status(allowance).clock_behind_seconds, 0.0);
    }
}
