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
//!
//! No one caller may hold more than a quarter of the budget ([`SHARE_DIVISOR`]; at least one body
//! of the largest size): a reservation is charged to its share, the tenant of a key the service
//! verified a moment ago or else the client's address, so that one tenant's requests (or one
//! address's), however slowly their bodies arrive, leave the rest of the budget to the others.
//! How long a body may take to arrive is bounded too (see `http::bodies`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Largest request body accepted, in bytes (a full batch of large decisions fits).
pub const REQUEST_BODY_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Default of the budget: bytes of request bodies that may be held at once, all connections
/// together (16 batches of the largest size allowed, or about 128 of a typical 1,000-record
/// batch).
pub const REQUEST_BODIES_BYTES_MAX: usize = 128 * 1024 * 1024;

/// The budget is counted in KiB so that its size fits the semaphore's 32-bit permit counts.
const UNIT: usize = 1024;

/// One share of the budget is at most its size divided by this (but at least one body of the
/// largest size).
pub const SHARE_DIVISOR: usize = 4;

/// Who a reservation is charged to: the tenant of a key verified a moment ago, or else the
/// client's address (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum BodyShare {
    /// A tenant.
    Tenant(ledger::types::TenantId),
    /// A client address, when the request carries no key verified a moment ago.
    Address(Option<std::net::IpAddr>),
}

/// The shared budget of request-body bytes, and how many requests it has refused.
#[derive(Clone, Debug)]
pub struct BodyBudget {
    units: Arc<Semaphore>,
    units_max: usize,
    share_units_max: usize,
    /// Units held per share; an entry is removed when its share holds nothing, so the map holds
    /// at most one entry per request being read.
    shares: Arc<Mutex<HashMap<BodyShare, usize>>>,
    refused: Arc<AtomicU64>,
    passed: Arc<AtomicU64>,
}

/// Bytes held from the budget until dropped.
#[derive(Debug)]
pub struct BodyReservation {
    _permit: OwnedSemaphorePermit,
    share: BodyShare,
    units: usize,
    shares: Arc<Mutex<HashMap<BodyShare, usize>>>,
}

impl Drop for BodyReservation {
    fn drop(&mut self) {
        let mut shares = self.shares.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = shares.get_mut(&self.share) {
            *held = held.saturating_sub(self.units);
            if *held == 0 {
                shares.remove(&self.share);
            }
        }
    }
}

impl BodyBudget {
    /// A budget of `bytes_max` bytes (at least one body of the largest size allowed, so that no
    /// valid request is refused forever).
    pub fn new(bytes_max: usize) -> BodyBudget {
        let units_max = bytes_max.max(REQUEST_BODY_BYTES_MAX).div_ceil(UNIT);
        let share_units_max = (units_max / SHARE_DIVISOR).max(REQUEST_BODY_BYTES_MAX / UNIT);
        BodyBudget {
            units: Arc::new(Semaphore::new(units_max)),
            units_max,
            share_units_max,
            shares: Arc::new(Mutex::new(HashMap::new())),
            refused: Arc::new(AtomicU64::new(0)),
            passed: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Reserves `bytes` (at most [`REQUEST_BODY_BYTES_MAX`]) for `share` until the reservation
    /// is dropped, or counts a refusal and returns `None` when the budget, or the share's part of
    /// it, has no room for them now.
    pub fn try_reserve(&self, share: BodyShare, bytes: usize) -> Option<BodyReservation> {
        let units = bytes.min(REQUEST_BODY_BYTES_MAX).div_ceil(UNIT);
        let mut shares = self.shares.lock().unwrap_or_else(PoisonError::into_inner);
        let held = shares.get(&share).copied().unwrap_or(0);
        let permit = (held + units <= self.share_units_max)
            .then(|| {
                // At most `REQUEST_BODY_BYTES_MAX / UNIT` units: fits u32.
                let n = u32::try_from(units).unwrap_or(u32::MAX);
                self.units.clone().try_acquire_many_owned(n).ok()
            })
            .flatten();
        let Some(permit) = permit else {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        shares.insert(share.clone(), held + units);
        drop(shares);
        self.passed.fetch_add(bytes as u64, Ordering::Relaxed);
        Some(BodyReservation {
            _permit: permit,
            share,
            units,
            shares: self.shares.clone(),
        })
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

    fn share(n: u8) -> BodyShare {
        BodyShare::Tenant(ledger::types::TenantId::parse(&format!("tenant-{n}")).expect("id"))
    }

    #[test]
    fn the_budget_is_at_least_one_largest_body_and_counts_what_is_reserved() {
        let budget = BodyBudget::new(1);
        assert_eq!(budget.units_max * UNIT, REQUEST_BODY_BYTES_MAX);
        let held = budget.try_reserve(share(1), 10 * UNIT).expect("room");
        assert_eq!(budget.reserved_bytes(), 10 * UNIT as u64);
        assert_eq!(budget.passed_bytes(), 10 * UNIT as u64);
        drop(held);
        assert_eq!(budget.reserved_bytes(), 0);
    }

    #[test]
    fn a_reservation_beyond_the_room_left_is_refused_and_counted() {
        let budget = BodyBudget::new(REQUEST_BODY_BYTES_MAX);
        let all = budget
            .try_reserve(share(1), REQUEST_BODY_BYTES_MAX)
            .expect("room");
        assert!(budget.try_reserve(share(2), 1).is_none());
        assert_eq!(budget.refused(), 1);
        drop(all);
        assert!(budget.try_reserve(share(2), 1).is_some());
    }

    #[test]
    fn one_share_holds_at_most_a_quarter_and_the_others_keep_the_rest() {
        let budget = BodyBudget::new(8 * REQUEST_BODY_BYTES_MAX);
        let quarter = 2 * REQUEST_BODY_BYTES_MAX;
        let first = budget
            .try_reserve(share(1), REQUEST_BODY_BYTES_MAX)
            .expect("room");
        let second = budget
            .try_reserve(share(1), REQUEST_BODY_BYTES_MAX)
            .expect("room");
        assert_eq!(budget.reserved_bytes(), quarter as u64);
        // The share is full: even one more byte is refused, while another share gets room.
        assert!(budget.try_reserve(share(1), 1).is_none());
        let address = BodyShare::Address(Some(std::net::Ipv4Addr::LOCALHOST.into()));
        let other = budget
            .try_reserve(address.clone(), REQUEST_BODY_BYTES_MAX)
            .expect("another share has room");
        drop(first);
        let again = budget
            .try_reserve(share(1), REQUEST_BODY_BYTES_MAX)
            .expect("room again once one is dropped");
        drop((second, again, other));
        assert_eq!(budget.reserved_bytes(), 0);
        assert!(
            budget.shares.lock().expect("shares").is_empty(),
            "shares holding nothing are forgotten"
        );
    }

    #[test]
    fn a_small_budget_still_gives_every_share_one_largest_body() {
        let budget = BodyBudget::new(REQUEST_BODY_BYTES_MAX);
        assert!(
            budget
                .try_reserve(share(1), REQUEST_BODY_BYTES_MAX)
                .is_some()
        );
    }
}
