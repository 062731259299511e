//! Packet loss as a receiver sees it, from RTP sequence numbers.
//!
//! [`SeqCounter`] extends each 16-bit sequence number to 64 bits (the nearest value to the
//! highest seen, RFC 3550 appendix A.1 in spirit) and keeps one bit per sequence number from the
//! first one received. A packet that was lost on a link and then retransmitted after a NACK fills
//! its bit when the retransmission arrives, so [`SeqCounter::lost`] counts only the holes that
//! were **never** filled: the loss left after retransmission. Duplicates count once.

/// Which sequence numbers of one RTP stream arrived.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeqCounter {
    /// Extended sequence number of the first packet received.
    base: Option<u64>,
    /// Highest extended sequence number received.
    highest: u64,
    /// One bit per sequence number from `base`.
    bits: Vec<u64>,
    /// Distinct sequence numbers received.
    unique: u64,
}

/// Start extended numbers well above zero so packets reordered before the first one still fit.
const EXT_START: u64 = 1 << 32;

impl SeqCounter {
    /// Records a packet with sequence number `seq`; `false` if it had arrived before (a
    /// duplicate) or is older than the first packet.
    pub fn record(&mut self, seq: u16) -> bool {
        self.record_ext(seq).is_some()
    }

    /// [`record`](Self::record), returning the packet's extended sequence number when it is new.
    pub fn record_ext(&mut self, seq: u16) -> Option<u64> {
        let ext = match self.base {
            None => {
                self.base = Some(EXT_START + seq as u64);
                self.highest = EXT_START + seq as u64;
                EXT_START + seq as u64
            }
            Some(_) => {
                let delta = seq.wrapping_sub(self.highest as u16) as i16 as i64;
                (self.highest as i64 + delta) as u64
            }
        };
        let base = self.base?;
        if ext < base {
            // Older than the first packet seen: not part of the measured range.
            return None;
        }
        let idx = (ext - base) as usize;
        let word = idx / 64;
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        let mask = 1u64 << (idx % 64);
        self.highest = self.highest.max(ext);
        if self.bits[word] & mask != 0 {
            return None;
        }
        self.bits[word] |= mask;
        self.unique += 1;
        Some(ext)
    }

    /// Packets from the first received to the highest received (what the sender sent in that
    /// range).
    pub fn expected(&self) -> u64 {
        match self.base {
            Some(base) => self.highest - base + 1,
            None => 0,
        }
    }

    /// Distinct packets received.
    pub fn received(&self) -> u64 {
        self.unique
    }

    /// Holes in the range that were never filled.
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.unique)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_holes_across_the_wrap_and_ignores_duplicates() {
        let mut c = SeqCounter::default();
        let fresh: Vec<bool> = [65530u16, 65531, 65533, 65535, 0, 1, 1, 3]
            .into_iter()
            .map(|s| c.record(s))
            .collect();
        assert_eq!(fresh, [true, true, true, true, true, true, false, true]);
        // 65530..=3 is 10 numbers; missing 65532, 65534, 2.
        assert_eq!(c.expected(), 10);
        assert_eq!(c.received(), 7);
        assert_eq!(c.lost(), 3);
    }

    #[test]
    fn a_late_retransmission_fills_its_hole() {
        let mut c = SeqCounter::default();
        for s in 100u16..200 {
            if s != 150 {
                c.record(s);
            }
        }
        assert_eq!(c.lost(), 1);
        assert!(c.record(150));
        assert_eq!(c.lost(), 0);
        assert_eq!(c.expected(), 100);
    }

    #[test]
    fn packets_before_the_first_are_outside_the_range() {
        let mut c = SeqCounter::default();
        assert!(c.record(10));
        assert!(!c.record(9));
        assert!(c.record(11));
        assert_eq!((c.expected(), c.received(), c.lost()), (2, 2, 0));
        assert_eq!(SeqCounter::default().expected(), 0);
    }
}
