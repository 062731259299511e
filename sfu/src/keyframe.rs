//! Throttling keyframe requests (PLI) towards a publisher.
//!
//! Every subscriber that loses a packet it cannot recover, or joins late, asks for a keyframe. A
//! classroom of thirty subscribers must not make the publisher's encoder send thirty keyframes, so
//! requests are merged: at most one per `min_interval` (mediasoup's `keyFrameRequestDelay` is one
//! second). A request inside the interval is not dropped but deferred to its end, so a late joiner
//! still gets its keyframe within one interval.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct KeyframeThrottle {
    min_interval: Duration,
    last_sent: Option<Instant>,
    deferred: bool,
}

impl KeyframeThrottle {
    pub fn new(min_interval: Duration) -> Self {
        Self {
            min_interval,
            last_sent: None,
            deferred: false,
        }
    }

    /// A subscriber asks for a keyframe. Returns true when the request should go to the publisher now.
    pub fn request(&mut self, now: Instant) -> bool {
        match self.last_sent {
            Some(last) if now < last + self.min_interval => {
                self.deferred = true;
                false
            }
            _ => {
                self.last_sent = Some(now);
                self.deferred = false;
                true
            }
        }
    }

    /// When a deferred request falls due.
    pub fn deadline(&self) -> Option<Instant> {
        match (self.deferred, self.last_sent) {
            (true, Some(last)) => Some(last + self.min_interval),
            _ => None,
        }
    }

    /// Time has passed. Returns true when a deferred request should go to the publisher now.
    pub fn poll(&mut self, now: Instant) -> bool {
        match self.deadline() {
            Some(due) if now >= due => self.request(now),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_requests_within_the_interval_and_defers_the_last() {
        let t0 = Instant::now();
        let mut k = KeyframeThrottle::new(Duration::from_secs(1));
        assert!(k.request(t0));
        assert!(!k.request(t0 + Duration::from_millis(100)));
        assert!(!k.request(t0 + Duration::from_millis(200)));
        assert_eq!(k.deadline(), Some(t0 + Duration::from_secs(1)));
        assert!(!k.poll(t0 + Duration::from_millis(999)));
        assert!(k.poll(t0 + Duration::from_secs(1)));
        // Served: nothing more is due.
        assert_eq!(k.deadline(), None);
        assert!(!k.poll(t0 + Duration::from_secs(5)));
    }

    #[test]
    fn a_request_after_the_interval_goes_at_once() {
        let t0 = Instant::now();
        let mut k = KeyframeThrottle::new(Duration::from_secs(1));
        assert!(k.request(t0));
        assert!(k.request(t0 + Duration::from_millis(1500)));
    }
}
