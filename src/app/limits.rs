//! Request rate limits: one wall per client address, and one per API key that is charged only
//! once the key has been verified.
//!
//! The address wall runs as a middleware before anything else, so unauthenticated traffic is
//! limited by where it comes from and by nothing a client can choose. A request whose key this
//! node verified within the last moments (the store's verified-key cache: the same key text,
//! not merely its id) is charged there to its key's bucket instead, whatever the route: a
//! pipeline is limited by its key's rate, not by the address it shares with others, while a
//! flood of forged or unknown keys still meets the wall. Otherwise the per-key bucket is charged
//! inside the HTTP layer's `Caller` extractor after the store verified the key: a forged key that
//! merely carries another tenant's key id never touches that key's bucket. A key's rate is its own when one was set,
//! else the default of its role (`ingest` keys have a default of their own, high enough for one
//! pipeline to reach the service's capacity).
//!
//! Periods are computed in nanoseconds (the resolution of the limiter) so that the sustained rate
//! matches the setting at every value, and the address wall is exactly
//! [`ADDRESS_TO_KEY_RATIO`] times the key wall.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::auth::{ApiKeyId, Role};
use crate::store::api_keys::Principal;

/// How many times the per-key rate and burst the per-address wall allows: several keys may share
/// a gateway's address.
pub const ADDRESS_TO_KEY_RATIO: u32 = 4;

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// The time to replenish one request at `per_second` requests per second, to the nanosecond.
///
/// At most one nanosecond short of the exact period, so the sustained rate is never below the
/// setting and exceeds it by less than one part in a million for every allowed setting.
pub fn replenish_period(per_second: u64) -> Duration {
    Duration::from_nanos((NANOS_PER_SECOND / per_second.max(1)).max(1))
}

/// The quota of one API key: `rate_per_second` sustained, `burst` at once.
pub fn key_quota(rate_per_second: u32, burst: u32) -> Quota {
    quota(u64::from(rate_per_second), burst)
}

/// The quota of one client address: [`ADDRESS_TO_KEY_RATIO`] times [`key_quota`].
pub fn address_quota(rate_per_second: u32, burst: u32) -> Quota {
    quota(
        u64::from(rate_per_second) * u64::from(ADDRESS_TO_KEY_RATIO),
        burst.saturating_mul(ADDRESS_TO_KEY_RATIO),
    )
}

fn quota(per_second: u64, burst: u32) -> Quota {
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    // `replenish_period` is never zero, so `with_period` always gives a quota; the fallback keeps
    // this path free of panics all the same.
    Quota::with_period(replenish_period(per_second))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

/// The whole seconds to wait (at least 1) until `not_until`: rounded up, so that a client that
/// waits the advertised time finds a request available.
fn wait_secs(not_until: &governor::NotUntil<<DefaultClock as Clock>::Instant>) -> u64 {
    let wait = not_until.wait_time_from(DefaultClock::default().now());
    wait.as_secs()
        .saturating_add(u64::from(wait.subsec_nanos() > 0))
        .max(1)
}

/// How many times its rate a key's own bucket, and the `ingest` role's default, hold at once
/// (as the service's default: 200 a second, 400 at once).
pub const BURST_TO_RATE_RATIO: u32 = 2;

/// Most keys with a rate of their own whose buckets are kept at once.
const OWN_BUCKETS_MAX: usize = 10_000;

/// A key's own bucket, with the rate it was made for.
type OwnBucket = (u32, Arc<DefaultDirectRateLimiter>);

/// The per-key buckets, charged after authentication: a key's own rate when one was set for it
/// (`auditex apikey rate`, the portal), else the default of its role — the `ingest` rate for
/// pipelines, the general rate for everyone else.
#[derive(Clone)]
pub struct KeyLimits {
    general: Arc<DefaultKeyedRateLimiter<ApiKeyId>>,
    ingest: Arc<DefaultKeyedRateLimiter<ApiKeyId>>,
    own: Arc<Mutex<HashMap<ApiKeyId, OwnBucket>>>,
}

impl KeyLimits {
    /// Buckets of `rate_per_second` sustained and `burst` at once per key, and of
    /// `ingest_rate_per_second` (twice that at once) per `ingest` key.
    pub fn new(rate_per_second: u32, burst: u32, ingest_rate_per_second: u32) -> Self {
        KeyLimits {
            general: Arc::new(RateLimiter::keyed(key_quota(rate_per_second, burst))),
            ingest: Arc::new(RateLimiter::keyed(key_quota(
                ingest_rate_per_second,
                ingest_rate_per_second.saturating_mul(BURST_TO_RATE_RATIO),
            ))),
            own: Arc::default(),
        }
    }

    /// Charges one request to a verified key.
    ///
    /// # Errors
    /// The whole seconds to wait (at least 1) when the key's bucket is empty.
    pub fn charge(&self, principal: &Principal) -> Result<(), u64> {
        let key = &principal.key_id;
        let checked = match principal.rate_per_second {
            Some(rate) => {
                let bucket = {
                    let mut own = self.own.lock().unwrap_or_else(PoisonError::into_inner);
                    // Bounded: keys with a rate of their own are few, but set and reset rates
                    // must not grow the map for ever. Emptied, each starts a fresh bucket.
                    if own.len() >= OWN_BUCKETS_MAX && !own.contains_key(key) {
                        own.clear();
                    }
                    let entry = own.entry(key.clone()).or_insert_with(|| own_bucket(rate));
                    // The rate was changed: a fresh bucket at the new rate.
                    if entry.0 != rate {
                        *entry = own_bucket(rate);
                    }
                    entry.1.clone()
                };
                bucket.check()
            }
            None if principal.role == Role::Ingest => self.ingest.check_key(key),
            None => self.general.check_key(key),
        };
        checked.map_err(|not_until| wait_secs(&not_until))
    }

    /// Forgets keys whose buckets are full again, so the maps stay bounded. Keys with a rate of
    /// their own are kept: an operator set each of them, so there are few.
    pub fn retain_recent(&self) {
        self.general.retain_recent();
        self.ingest.retain_recent();
    }
}

fn own_bucket(rate: u32) -> OwnBucket {
    (
        rate,
        Arc::new(RateLimiter::direct(key_quota(
            rate,
            rate.saturating_mul(BURST_TO_RATE_RATIO),
        ))),
    )
}

/// The wall per client address, charged before anything else for every request that no key
/// verified within the last moments vouches for.
#[derive(Clone)]
pub struct AddressLimits {
    limiter: Arc<DefaultKeyedRateLimiter<Option<std::net::IpAddr>>>,
}

impl AddressLimits {
    /// Buckets of [`address_quota`] per client address.
    pub fn new(rate_per_second: u32, burst: u32) -> Self {
        AddressLimits {
            limiter: Arc::new(RateLimiter::keyed(address_quota(rate_per_second, burst))),
        }
    }

    /// Charges one request to `address` (`None`: a peer whose address is unknown; all such
    /// share one bucket).
    ///
    /// # Errors
    /// The whole seconds to wait (at least 1) when the address's bucket is empty.
    pub fn charge(&self, address: Option<std::net::IpAddr>) -> Result<(), u64> {
        self.limiter
            .check_key(&address)
            .map_err(|not_until| wait_secs(&not_until))
    }

    /// Forgets addresses whose buckets are full again, so the map stays bounded.
    pub fn retain_recent(&self) {
        self.limiter.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    /// Empties a fresh bucket at time zero, then counts what one further second allows.
    fn allowed_in_burst_then_one_second(quota: Quota) -> (u64, u64) {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::direct_with_clock(quota, clock.clone());
        let mut burst = 0;
        while limiter.check().is_ok() {
            burst += 1;
        }
        let mut sustained = 0;
        // Step by 1 µs through one second; every step tries as often as the bucket allows.
        for _ in 0..1_000_000 {
            clock.advance(Duration::from_micros(1));
            while limiter.check().is_ok() {
                sustained += 1;
            }
        }
        (burst, sustained)
    }

    #[test]
    fn each_rate_allows_exactly_its_count_per_key_and_four_times_per_address() {
        for (rate, burst) in [
            (1, 1),
            (3, 7),
            (200, 400),
            (300, 10),
            (999, 5),
            (1000, 1000),
        ] {
            assert_eq!(
                allowed_in_burst_then_one_second(key_quota(rate, burst)),
                (u64::from(burst), u64::from(rate)),
                "per key at {rate}/s"
            );
            assert_eq!(
                allowed_in_burst_then_one_second(address_quota(rate, burst)),
                (u64::from(burst) * 4, u64::from(rate) * 4),
                "per address at {rate}/s"
            );
        }
    }

    #[test]
    fn periods_are_nanosecond_exact_where_the_rate_divides_a_second() {
        assert_eq!(replenish_period(200), Duration::from_millis(5));
        assert_eq!(replenish_period(800), Duration::from_micros(1250));
        assert_eq!(replenish_period(300), Duration::from_nanos(3_333_333));
        assert_eq!(replenish_period(4000), Duration::from_micros(250));
        assert_eq!(replenish_period(0), Duration::from_secs(1));
    }

    fn principal(id: &str, role: Role, rate_per_second: Option<u32>) -> Principal {
        Principal {
            tenant: ledger::types::TenantId::parse("acme").expect("tenant"),
            role,
            key_id: ApiKeyId::parse(id).expect("id"),
            rate_per_second,
        }
    }

    /// How many requests `who` gets at once from a fresh bucket (stops at 1,000).
    fn burst_of(limits: &KeyLimits, who: &Principal) -> u32 {
        (0..1000).take_while(|_| limits.charge(who).is_ok()).count() as u32
    }

    #[test]
    fn an_empty_key_bucket_names_a_whole_second_wait_and_other_keys_are_untouched() {
        let limits = KeyLimits::new(1, 2, 1);
        let victim = principal("00112233445566aa", Role::Read, None);
        let other = principal("ffeeddccbbaa9988", Role::Read, None);
        assert_eq!(limits.charge(&victim), Ok(()));
        assert_eq!(limits.charge(&victim), Ok(()));
        assert_eq!(limits.charge(&victim), Err(1));
        assert_eq!(limits.charge(&other), Ok(()));
    }

    #[test]
    fn ingest_keys_have_their_roles_default_and_a_key_with_a_rate_of_its_own_has_that() {
        let limits = KeyLimits::new(1, 3, 50);
        assert_eq!(
            burst_of(&limits, &principal("0000000000000001", Role::Read, None)),
            3
        );
        assert_eq!(
            burst_of(&limits, &principal("0000000000000002", Role::Verify, None)),
            3
        );
        assert_eq!(
            burst_of(&limits, &principal("0000000000000003", Role::Ingest, None)),
            100
        );
        let own = principal("0000000000000004", Role::Read, Some(20));
        assert_eq!(burst_of(&limits, &own), 40);
        // A new rate is a fresh bucket at that rate; back to the default, the role's bucket.
        assert_eq!(
            burst_of(&limits, &principal("0000000000000004", Role::Read, Some(7))),
            14
        );
        assert_eq!(
            burst_of(&limits, &principal("0000000000000004", Role::Read, None)),
            3
        );
    }

    #[test]
    fn the_address_wall_allows_four_times_the_keys_burst_per_address() {
        let wall = AddressLimits::new(1, 3);
        let first = (0..100)
            .take_while(|_| wall.charge(Some([192, 0, 2, 1].into())).is_ok())
            .count();
        assert_eq!(first, 12);
        assert_eq!(wall.charge(Some([192, 0, 2, 1].into())), Err(1));
        assert_eq!(wall.charge(Some([192, 0, 2, 2].into())), Ok(()));
    }
}
