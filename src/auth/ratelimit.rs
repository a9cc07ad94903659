//! The limit on failed authentications per client address: a token bucket per address and
//! [`Scope`].
//!
//! Each address may fail [`BURST`] times; one more failure is allowed back every
//! [`REFILL`]. A credential is checked only after a failure has been set aside for it
//! ([`FailureLimiter::reserve`]), and the failure is given back when the credential was good:
//! so guesses sent all at once cannot outrun the limit, each having to take its place in the
//! bucket before any of them is looked at. What an address whose bucket is empty may still do
//! is decided by the caller (the API still accepts a token it knows to be live, see
//! `api::auth`; webhooks are refused). IPv6 clients are grouped by /64, the block one host
//! usually gets, so rotating addresses inside it does not reset the limit. Successful
//! requests cost nothing and leave nothing behind.
//!
//! API tokens and each app's webhook are counted apart: forges send every customer's hooks
//! from a few shared addresses and GitHub never retries a refused delivery, so one hook with
//! a stale secret must not shut out the webhooks of other apps, nor the API.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed in a row from one address.
pub const BURST: u32 = 10;
/// The time after which one more failure is allowed.
pub const REFILL: Duration = Duration::from_secs(6);
/// Addresses remembered at most. Past this, buckets that have refilled are dropped; if that is
/// not enough (a very wide attack), all are, trading the limit for bounded memory: tokens and
/// webhook secrets have 256 bits, so the limit is a courtesy, not what keeps them safe.
const MAX_TRACKED: usize = 100_000;

/// What failed attempts are counted against, besides the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// API tokens.
    Api,
    /// The webhook of one app (`apps.id`).
    Webhook(i64),
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Failures still allowed, fractional while refilling.
    allowance: f64,
    updated: Instant,
}

/// Counts failed authentications per client address. Shared by the API and the webhooks.
#[derive(Debug)]
pub struct FailureLimiter {
    buckets: Mutex<HashMap<(IpAddr, Scope), Bucket>>,
    burst: f64,
    refill: Duration,
}

impl Default for FailureLimiter {
    fn default() -> Self {
        FailureLimiter::new(BURST, REFILL)
    }
}

impl FailureLimiter {
    pub fn new(burst: u32, refill: Duration) -> FailureLimiter {
        FailureLimiter {
            buckets: Mutex::new(HashMap::new()),
            burst: f64::from(burst),
            refill,
        }
    }

    /// `Err(retry_after)` when `ip` has used up its failures in `scope`.
    pub fn check(&self, ip: IpAddr, scope: Scope, now: Instant) -> Result<(), Duration> {
        let key = (group(ip), scope);
        let mut buckets = self.lock();
        let Some(bucket) = buckets.get_mut(&key) else {
            return Ok(());
        };
        self.refill(bucket, now);
        if bucket.allowance >= 1.0 {
            return Ok(());
        }
        let wait = self.refill.as_secs_f64() * (1.0 - bucket.allowance);
        Err(Duration::from_secs_f64(wait.max(0.0)))
    }

    /// Sets one failure aside for `ip` in `scope` before its credential is checked:
    /// `Err(retry_after)` when none is left. The [`Reservation`] says how the check went.
    pub fn reserve(
        &self,
        ip: IpAddr,
        scope: Scope,
        now: Instant,
    ) -> Result<Reservation<'_>, Duration> {
        let key = (group(ip), scope);
        let mut buckets = self.lock();
        let bucket = self.bucket(&mut buckets, key, now);
        if bucket.allowance < 1.0 {
            let wait = self.refill.as_secs_f64() * (1.0 - bucket.allowance);
            return Err(Duration::from_secs_f64(wait.max(0.0)));
        }
        bucket.allowance -= 1.0;
        Ok(Reservation {
            limiter: self,
            key,
            settled: false,
        })
    }

    /// Gives back a failure set aside; a bucket full again is forgotten.
    fn give_back(&self, key: (IpAddr, Scope)) {
        let mut buckets = self.lock();
        if let Some(bucket) = buckets.get_mut(&key) {
            bucket.allowance = (bucket.allowance + 1.0).min(self.burst);
            if bucket.allowance >= self.burst {
                buckets.remove(&key);
            }
        }
    }

    /// The bucket of `key`, refilled up to `now`; made full if there was none.
    fn bucket<'m>(
        &self,
        buckets: &'m mut HashMap<(IpAddr, Scope), Bucket>,
        key: (IpAddr, Scope),
        now: Instant,
    ) -> &'m mut Bucket {
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&key) {
            self.prune(buckets, now);
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            allowance: self.burst,
            updated: now,
        });
        self.refill(bucket, now);
        bucket
    }

    fn refill(&self, bucket: &mut Bucket, now: Instant) {
        let elapsed = now.saturating_duration_since(bucket.updated);
        let earned = elapsed.as_secs_f64() / self.refill.as_secs_f64();
        bucket.allowance = (bucket.allowance + earned).min(self.burst);
        bucket.updated = now;
    }

    fn prune(&self, buckets: &mut HashMap<(IpAddr, Scope), Bucket>, now: Instant) {
        let full_after = self.refill.mul_f64(self.burst);
        buckets.retain(|_, b| now.saturating_duration_since(b.updated) < full_after);
        if buckets.len() >= MAX_TRACKED {
            tracing::warn!(
                tracked = buckets.len(),
                "too many addresses failing authentication; forgetting them all"
            );
            buckets.clear();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(IpAddr, Scope), Bucket>> {
        // Held only for a map operation, never across an await; a panic inside one leaves
        // the map consistent enough to keep counting.
        self.buckets.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A failure set aside by [`FailureLimiter::reserve`] while a credential is checked. It stands
/// if the credential was wrong ([`Reservation::failed`]) and is given back if it was good
/// ([`Reservation::succeeded`]) or if the check never finished (the request was abandoned, or
/// Rivetr failed inside: neither tells the client anything).
#[must_use = "a reservation says whether the credential was good"]
pub struct Reservation<'a> {
    limiter: &'a FailureLimiter,
    key: (IpAddr, Scope),
    settled: bool,
}

impl Reservation<'_> {
    /// The credential was good: the failure set aside is given back.
    pub fn succeeded(mut self) {
        self.settled = true;
        self.limiter.give_back(self.key);
    }

    /// The credential was wrong: the failure stands.
    pub fn failed(mut self) {
        self.settled = true;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.limiter.give_back(self.key);
        }
    }
}

/// The key an address is counted under: IPv4 as is (also when IPv4-mapped), IPv6 by /64.
fn group(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const API: Scope = Scope::Api;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn allows_burst_failures_then_refuses_until_refilled() {
        let limiter = FailureLimiter::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        for _ in 0..3 {
            assert!(limiter.check(a, API, t0).is_ok());
            limiter.reserve(a, API, t0).unwrap().failed();
        }
        let wait = limiter.check(a, API, t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(10));
        // Halfway through the refill, still refused, for the remaining half.
        let wait = limiter
            .check(a, API, t0 + Duration::from_secs(5))
            .unwrap_err();
        assert_eq!(wait.as_secs(), 5);
        assert!(limiter.check(a, API, t0 + Duration::from_secs(10)).is_ok());
        // Other addresses, and other scopes of the same address, were never affected.
        assert!(limiter.check(ip("192.0.2.2"), API, t0).is_ok());
        assert!(limiter.check(a, Scope::Webhook(1), t0).is_ok());
    }

    #[test]
    fn ipv6_is_grouped_by_64_and_mapped_ipv4_by_address() {
        let limiter = FailureLimiter::new(1, Duration::from_secs(60));
        let t0 = Instant::now();
        limiter
            .reserve(ip("2001:db8:1:2::1"), API, t0)
            .unwrap()
            .failed();
        assert!(limiter.check(ip("2001:db8:1:2:ffff::9"), API, t0).is_err());
        assert!(limiter.check(ip("2001:db8:1:3::1"), API, t0).is_ok());
        limiter
            .reserve(ip("::ffff:198.51.100.7"), API, t0)
            .unwrap()
            .failed();
        assert!(limiter.check(ip("198.51.100.7"), API, t0).is_err());
    }

    #[test]
    fn reservations_keep_simultaneous_checks_within_the_burst() {
        let limiter = FailureLimiter::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        let a = ip("192.0.2.9");
        // Three checks in flight at once take the whole burst; a fourth must wait.
        let held: Vec<_> = (0..3)
            .map(|_| limiter.reserve(a, API, t0).unwrap())
            .collect();
        assert!(limiter.reserve(a, API, t0).is_err());
        let mut held = held.into_iter();
        // A good credential gives its place back, a wrong one keeps it.
        held.next().unwrap().succeeded();
        held.next().unwrap().failed();
        // An abandoned check gives its place back too.
        drop(held.next());
        let r = limiter.reserve(a, API, t0).unwrap();
        r.failed();
        // 3 - 1 (failed) - 1 (failed) = 1 left.
        limiter.reserve(a, API, t0).unwrap().failed();
        assert!(limiter.reserve(a, API, t0).is_err());
    }

    #[test]
    fn successful_checks_leave_nothing_behind() {
        let limiter = FailureLimiter::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..100u32 {
            limiter
                .reserve(IpAddr::V4(i.into()), API, t0)
                .unwrap()
                .succeeded();
        }
        assert!(limiter.lock().is_empty());
    }

    #[test]
    fn memory_stays_bounded() {
        let limiter = FailureLimiter::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 10) {
            limiter
                .reserve(IpAddr::V4(i.into()), API, t0)
                .unwrap()
                .failed();
        }
        assert!(limiter.lock().len() <= MAX_TRACKED);
    }
}
