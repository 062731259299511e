//! Per-IP limits: how many of something one address holds at once ([`PerIpCounter`]) and how
//! often it may do something ([`PerIpRate`]).
//!
//! Both maps only hold addresses that currently count: a counter entry goes when its last guard
//! drops, and a rate entry is swept once its bucket would be full again, so an attacker cycling
//! through addresses costs memory only for as long as each address is actually limited.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use dashmap::DashMap;
use parking_lot::Mutex;

/// Counts what each address holds (connections, unjoined sockets) against a cap.
#[derive(Debug)]
pub struct PerIpCounter {
    cap: usize,
    held: DashMap<IpAddr, usize>,
}

/// One unit held by an address; dropping it gives it back.
#[derive(Debug)]
pub struct IpGuard {
    counter: Arc<PerIpCounter>,
    ip: IpAddr,
}

impl PerIpCounter {
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap,
            held: DashMap::new(),
        })
    }

    /// Take one unit for `ip`, or `None` if it already holds `cap`.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<IpGuard> {
        let mut held = self.held.entry(ip).or_insert(0);
        if *held >= self.cap {
            return None;
        }
        *held += 1;
        Some(IpGuard {
            counter: Arc::clone(self),
            ip,
        })
    }

    /// What `ip` holds now.
    pub fn held(&self, ip: IpAddr) -> usize {
        self.held.get(&ip).map_or(0, |h| *h)
    }

    /// What all addresses hold together.
    pub fn total(&self) -> usize {
        self.held.iter().map(|h| *h).sum()
    }
}

impl Drop for IpGuard {
    fn drop(&mut self) {
        self.counter.held.remove_if_mut(&self.ip, |_, held| {
            *held = held.saturating_sub(1);
            *held == 0
        });
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A token bucket per address: `per_minute` actions a minute, a burst of as many.
#[derive(Debug)]
pub struct PerIpRate {
    per_sec: f64,
    burst: f64,
    buckets: Mutex<std::collections::HashMap<IpAddr, Bucket>>,
}

/// Sweep full buckets once the map holds this many addresses.
const SWEEP_AT: usize = 4096;

impl PerIpRate {
    pub fn per_minute(per_minute: u32) -> Self {
        Self {
            per_sec: per_minute as f64 / 60.0,
            burst: per_minute.max(1) as f64,
            buckets: Mutex::default(),
        }
    }

    /// Whether `ip` may act now (and if so, count it).
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        let mut buckets = self.buckets.lock();
        if buckets.len() >= SWEEP_AT {
            let (rate, burst) = (self.per_sec, self.burst);
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
            });
        }
        let bucket = buckets.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.at = now;
        bucket.tokens = (bucket.tokens + elapsed * self.per_sec).min(self.burst);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Addresses tracked now (for tests of the sweep).
    pub fn tracked(&self) -> usize {
        self.buckets.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_counter_caps_each_address_and_forgets_it_at_zero() {
        let counter = PerIpCounter::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let g1 = counter.acquire(a).unwrap();
        let g2 = counter.acquire(a).unwrap();
        assert!(counter.acquire(a).is_none(), "a third is refused");
        assert!(
            counter.acquire(b).is_some(),
            "another address is not affected"
        );
        drop(g1);
        let g3 = counter.acquire(a).unwrap();
        drop((g2, g3));
        assert_eq!(counter.held(a), 0);
        assert!(counter.held.is_empty(), "no entry is left behind");
    }

    #[test]
    fn a_rate_allows_a_burst_then_refills_evenly() {
        let rate = PerIpRate::per_minute(6);
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let t = Instant::now();
        assert_eq!((0..10).filter(|_| rate.allow(ip, t)).count(), 6);
        assert!(!rate.allow(ip, t + Duration::from_secs(5)));
        assert!(
            rate.allow(ip, t + Duration::from_secs(11)),
            "one every 10 s"
        );
    }

    #[test]
    fn full_buckets_are_swept() {
        let rate = PerIpRate::per_minute(60);
        let t = Instant::now();
        for i in 0..SWEEP_AT as u32 {
            assert!(rate.allow(IpAddr::from(i.to_be_bytes()), t));
        }
        // A minute later every bucket is full again: the next call sweeps them all.
        assert!(rate.allow("198.51.100.1".parse().unwrap(), t + Duration::from_secs(60)));
        assert_eq!(rate.tracked(), 1);
    }
}
