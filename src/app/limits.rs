//! Request rate limits: one wall per client address for all traffic, and one per API key that is
//! charged only once the key has been verified.
//!
//! The address wall runs as a tower layer before anything else, so unauthenticated traffic is
//! limited by where it comes from and by nothing a client can choose. The per-key bucket is
//! charged inside the HTTP layer's `Caller` extractor after the store verified the key: a forged key
//! that merely carries another tenant's key id never touches that key's bucket.
//!
//! Periods are computed in nanoseconds (the resolution of the limiter) so that the sustained rate
//! matches the setting at every value, and the address wall is exactly
//! [`ADDRESS_TO_KEY_RATIO`] times the key wall.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::auth::ApiKeyId;

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

/// The per-key buckets, charged after authentication.
#[derive(Clone)]
pub struct KeyLimits {
    limiter: Arc<DefaultKeyedRateLimiter<ApiKeyId>>,
}

impl KeyLimits {
    /// Buckets of `rate_per_second` sustained and `burst` at once per key.
    pub fn new(rate_per_second: u32, burst: u32) -> Self {
        KeyLimits {
            limiter: Arc::new(RateLimiter::keyed(key_quota(rate_per_second, burst))),
        }
    }

    /// Charges one request to a verified key.
    ///
    /// # Errors
    /// The whole seconds to wait (at least 1) when the key's bucket is empty.
    pub fn charge(&self, key: &ApiKeyId) -> Result<(), u64> {
        self.limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            // Round up so a client that waits the advertised time finds a request available.
            wait.as_secs()
                .saturating_add(u64::from(wait.subsec_nanos() > 0))
                .max(1)
        })
    }

    /// Forgets keys whose buckets are full again, so the map stays bounded.
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

    #[test]
    fn an_empty_key_bucket_names_a_whole_second_wait_and_other_keys_are_untouched() {
        let limits = KeyLimits::new(1, 2);
        let victim = ApiKeyId::parse("00112233445566aa").expect("id");
        let other = ApiKeyId::parse("ffeeddccbbaa9988").expect("id");
        assert_eq!(limits.charge(&victim), Ok(()));
        assert_eq!(limits.charge(&victim), Ok(()));
        assert_eq!(limits.charge(&victim), Err(1));
        assert_eq!(limits.charge(&other), Ok(()));
    }
}
