//! What a publisher's stream lost on its way to the server, after recovery: sans-IO, fixed
//! memory, no allocation per packet.
//!
//! Packets are tracked by extended sequence number in a window of [`WINDOW`] packets. A packet
//! that fills a gap in the window counts as *recovered* (a NACK retransmission: the legs use no
//! RTX, so a retransmission comes on the media SSRC; a packet merely reordered counts too). A
//! packet still missing when it leaves the window, or when the track ends, counts as *lost*.
//! Duplicates and packets older than the window change nothing.

/// Packets tracked behind the newest: 20 s of Opus at 50 packets/s, 1–3 s of video, well over
/// the time NACK takes to repair a loss.
pub const WINDOW: u64 = 1024;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LossCount {
    pub recovered: u64,
    pub lost: u64,
}

#[derive(Debug, Clone)]
pub struct LossTracker {
    /// Received flags by extended sequence number modulo [`WINDOW`].
    received: [u64; (WINDOW / 64) as usize],
    /// Extended sequence number of the first packet, and of the newest.
    first: u64,
    highest: Option<u64>,
}

impl Default for LossTracker {
    fn default() -> Self {
        Self {
            received: [0; (WINDOW / 64) as usize],
            first: 0,
            highest: None,
        }
    }
}

impl LossTracker {
    /// A packet with this RTP sequence number arrived: what it recovered, and what left the
    /// window unrepaired.
    pub fn on_packet(&mut self, seq: u16) -> LossCount {
        let Some(highest) = self.highest else {
            // Start one cycle up, so packets from just before the first unwrap without going
            // below zero.
            let ext = (1 << 16) + u64::from(seq);
            self.first = ext;
            self.highest = Some(ext);
            self.set(ext);
            return LossCount::default();
        };
        let delta = i64::from(seq.wrapping_sub(highest as u16) as i16);
        let Some(ext) = highest.checked_add_signed(delta) else {
            return LossCount::default();
        };
        let mut count = LossCount::default();
        if ext > highest {
            count.lost = self.advance(highest, ext);
            self.highest = Some(ext);
            self.set(ext);
        } else if ext + WINDOW > highest && ext >= self.first && !self.is_set(ext) {
            self.set(ext);
            count.recovered = 1;
        }
        count
    }

    /// The track ended: every packet still missing is lost.
    pub fn finish(&mut self) -> LossCount {
        let Some(highest) = self.highest else {
            return LossCount::default();
        };
        let from = self.first.max((highest + 1).saturating_sub(WINDOW));
        let lost = (from..=highest).filter(|&e| !self.is_set(e)).count() as u64;
        *self = Self::default();
        LossCount { recovered: 0, lost }
    }

    /// Move the window's head from `from` to `to`: the packets that leave it unreceived are lost.
    fn advance(&mut self, from: u64, to: u64) -> u64 {
        let steps = to - from;
        let mut lost = 0;
        if steps >= WINDOW {
            // Every tracked packet leaves; those between that never entered it are lost too.
            let start = self.first.max((from + 1).saturating_sub(WINDOW));
            lost += (start..=from).filter(|&e| !self.is_set(e)).count() as u64;
            lost += steps - WINDOW;
            self.received = [0; (WINDOW / 64) as usize];
            return lost;
        }
        for e in from + 1..=to {
            // The slot's previous occupant, `e - WINDOW`, leaves the window.
            if e >= self.first + WINDOW && !self.is_set(e - WINDOW) {
                lost += 1;
            }
            self.clear(e);
        }
        lost
    }

    fn slot(ext: u64) -> (usize, u64) {
        let i = ext % WINDOW;
        ((i / 64) as usize, 1 << (i % 64))
    }

    fn is_set(&self, ext: u64) -> bool {
        let (word, bit) = Self::slot(ext);
        self.received[word] & bit != 0
    }

    fn set(&mut self, ext: u64) {
        let (word, bit) = Self::slot(ext);
        self.received[word] |= bit;
    }

    fn clear(&mut self, ext: u64) {
        let (word, bit) = Self::slot(ext);
        self.received[word] &= !bit;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(t: &mut LossTracker, seqs: impl IntoIterator<Item = u16>) -> LossCount {
        let mut total = LossCount::default();
        for s in seqs {
            let c = t.on_packet(s);
            total.recovered += c.recovered;
            total.lost += c.lost;
        }
        total
    }

    #[test]
    fn a_retransmitted_packet_is_recovered_and_nothing_is_lost() {
        let mut t = LossTracker::default();
        let c = feed(
            &mut t,
            (0..10).filter(|&s| s != 4).chain([4]).chain(10..2000),
        );
        assert_eq!(
            c,
            LossCount {
                recovered: 1,
                lost: 0
            }
        );
        assert_eq!(t.finish(), LossCount::default());
    }

    #[test]
    fn a_packet_never_repaired_is_lost_once_it_leaves_the_window_or_the_track_ends() {
        let mut t = LossTracker::default();
        let c = feed(&mut t, (0..100).filter(|&s| s != 50));
        assert_eq!(c, LossCount::default(), "not yet: NACK may still repair it");
        assert_eq!(t.finish().lost, 1);
        let mut t = LossTracker::default();
        let c = feed(&mut t, (0..2000).filter(|&s| s != 50));
        assert_eq!(
            c,
            LossCount {
                recovered: 0,
                lost: 1
            }
        );
        assert_eq!(t.finish().lost, 0);
    }

    #[test]
    fn sequence_numbers_wrap_and_duplicates_or_ancient_packets_count_nothing() {
        let mut t = LossTracker::default();
        let seqs = (0..3000u32)
            .map(|i| (65_000 + i) as u16)
            .filter(|&s| s != 3);
        let c = feed(&mut t, seqs);
        assert_eq!(
            c,
            LossCount {
                recovered: 0,
                lost: 1
            }
        );
        assert_eq!(feed(&mut t, [1000, 1000, 65_010]), LossCount::default());
    }

    #[test]
    fn a_long_outage_counts_every_packet_it_swallowed() {
        let mut t = LossTracker::default();
        feed(&mut t, 0..10);
        let c = feed(&mut t, [5000]);
        assert_eq!(
            c.lost,
            5000 - 10 - (WINDOW - 1),
            "those out of the window at once"
        );
        assert_eq!(t.finish().lost, WINDOW - 1, "the rest when the track ends");
    }
}
