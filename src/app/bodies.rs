//! A ceiling on the memory that request bodies hold while they are read and parsed.
//!
//! The append queues bound what waits to be written (see `store::appender`), but a request's
//! body is buffered whole (up to [`REQUEST_BODY_BYTES_MAX`]) and parsed before it reaches a
//! queue. Without a ceiling of their own, 512 clients uploading 8 MiB batches at once would hold
//! 4 GiB before the queues shed a single one. Every request that carries a body therefore
//! reserves its declared length (the largest body allowed when no length is declared) from one
//! [`BodyBudget`] shared by all connections, and holds it until its answer is ready. The HTTP
//! layer's middleware decides how much a request reserves and answers 503 with Retry-After when
//! [`BodyBudget::try_reserve`] finds no room, before the body is buffered.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Largest request body accepted, in bytes (a full batch of large decisions fits).
pub const REQUEST_BODY_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Default of the budget: bytes of request bodies that may be held at once, all connections
/// together (16 batches of the largest size allowed, or about 128 of a typical 1,000-record
/// batch).
pub const REQUEST_BODIES_BYTES_MAX: usize = 128 * 1024 * 1024;

/// The budget is counted in KiB so that its size fits the semaphore's 32-bit permit counts.
const UNIT: usize = 1024;

/// The shared budget of request-body bytes, and how many requests it has refused.
#[derive(Clone, Debug)]
pub struct BodyBudget {
    units: Arc<Semaphore>,
    units_max: usize,
    refused: Arc<AtomicU64>,
    passed: Arc<AtomicU64>,
}

/// Bytes held from the budget until dropped.
#[derive(Debug)]
pub struct BodyReservation {
    _permit: OwnedSemaphorePermit,
}

impl BodyBudget {
    /// A budget of `bytes_max` bytes (at least one body of the largest size allowed, so that no
    /// valid request is refused forever).
    pub fn new(bytes_max: usize) -> BodyBudget {
        let units_max = bytes_max.max(REQUEST_BODY_BYTES_MAX).div_ceil(UNIT);
        BodyBudget {
            units: Arc::new(Semaphore::new(units_max)),
            units_max,
            refused: Arc::new(AtomicU64::new(0)),
            passed: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Reserves `bytes` (at most [`REQUEST_BODY_BYTES_MAX`]) until the reservation is dropped,
    /// or counts a refusal and returns `None` when the budget has no room for them now.
    pub fn try_reserve(&self, bytes: usize) -> Option<BodyReservation> {
        // At most `REQUEST_BODY_BYTES_MAX / UNIT` units: fits u32.
        let units = u32::try_from(bytes.div_ceil(UNIT)).unwrap_or(u32::MAX);
        match self.units.clone().try_acquire_many_owned(units) {
            Ok(permit) => {
                self.passed.fetch_add(bytes as u64, Ordering::Relaxed);
                Some(BodyReservation { _permit: permit })
            }
            Err(_) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Bytes reserved by requests in progress now.
    pub fn reserved_bytes(&self) -> u64 {
        ((self.units_max - self.units.available_permits()) * UNIT) as u64
    }

    /// Bytes reserved by every request admitted since start.
    pub fn passed_bytes(&self) -> u64 {
        self.passed.load(Ordering::Relaxed)
    }

    /// Requests refused because the budget was full, since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_at_least_one_largest_body_and_counts_what_is_reserved() {
        let budget = BodyBudget::new(1);
        assert_eq!(budget.units_max * UNIT, REQUEST_BODY_BYTES_MAX);
        let held = budget.try_reserve(10 * UNIT).expect("room");
        assert_eq!(budget.reserved_bytes(), 10 * UNIT as u64);
        assert_eq!(budget.passed_bytes(), 10 * UNIT as u64);
        drop(held);
        assert_eq!(budget.reserved_bytes(), 0);
    }

    #[test]
    fn a_reservation_beyond_the_room_left_is_refused_and_counted() {
        let budget = BodyBudget::new(REQUEST_BODY_BYTES_MAX);
        let all = budget.try_reserve(REQUEST_BODY_BYTES_MAX).expect("room");
        assert!(budget.try_reserve(1).is_none());
        assert_eq!(budget.refused(), 1);
        drop(all);
        assert!(budget.try_reserve(1).is_some());
    }
}
