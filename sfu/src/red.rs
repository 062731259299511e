//! Redundant audio (RFC 2198, `red/48000/2` over Opus), sans-IO.
//!
//! A RED payload carries the packet's own (primary) Opus frame after copies of the frames sent
//! just before it. Browsers (Chrome's `AudioEncoderCopyRed`) and LiveKit put each earlier frame
//! in as it was sent, oldest first, so the redundant block at distance `d` from the primary is the
//! packet whose sequence number is the primary's minus `d`, and its timestamp is the primary's
//! minus the block's timestamp offset.
//!
//! - [`parse`] reads a payload (bounded: at most [`MAX_REDUNDANT_BLOCKS`] redundant blocks, every
//!   header and block inside the payload) without copying media: blocks are slices of it.
//! - [`Unwrapper`] turns a stream of RED packets into plain Opus for a subscriber that did not
//!   negotiate RED: the primary of each packet, preceded by the lost packets its redundancy
//!   recovers, in order, never the same sequence number twice.
//! - [`build`] writes a payload (the load-test client and tests send RED like a browser).

use bytes::{BufMut, Bytes, BytesMut};

/// Redundant blocks accepted in one packet. Browsers send one or two; more is refused rather
/// than walked (each costs a header to parse and a packet to emit).
pub const MAX_REDUNDANT_BLOCKS: usize = 8;

/// The largest timestamp offset a redundant block header holds (14 bits).
pub const MAX_TIMESTAMP_OFFSET: u16 = (1 << 14) - 1;

/// The largest redundant block a header can describe (10 bits).
pub const MAX_BLOCK_LENGTH: usize = (1 << 10) - 1;

/// Packets behind the newest whose delivery the [`Unwrapper`] remembers (1.28 s of 20 ms
/// Opus): older ones are too late to play and are dropped.
pub const DEDUP_WINDOW: u64 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RedError {
    #[error("empty RED payload")]
    Empty,
    #[error("RED block headers run past the payload")]
    TruncatedHeader,
    #[error("a RED block runs past the payload")]
    BlockPastPayload,
    #[error("more than {MAX_REDUNDANT_BLOCKS} redundant blocks")]
    TooManyBlocks,
    #[error("a redundant block's timestamp offset or length does not fit its header")]
    BlockTooLarge,
}

/// One redundant block: an earlier frame.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redundant {
    pub payload_type: u8,
    /// How far before the primary's timestamp this frame's is.
    pub timestamp_offset: u16,
    pub payload: Bytes,
}

/// A parsed RED payload: its redundant blocks (oldest first) and its primary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Red {
    redundant: [Redundant; MAX_REDUNDANT_BLOCKS],
    count: usize,
    pub primary_payload_type: u8,
    pub primary: Bytes,
}

impl Red {
    /// The redundant blocks, oldest first.
    pub fn redundant(&self) -> &[Redundant] {
        &self.redundant[..self.count]
    }

    /// Whether every block (redundant and primary) is of payload type `pt`.
    fn all_of_type(&self, pt: u8) -> bool {
        self.primary_payload_type == pt && self.redundant().iter().all(|b| b.payload_type == pt)
    }
}

/// Read a RED payload (RFC 2198 §3). The blocks are slices of `payload`: nothing is copied.
pub fn parse(payload: &Bytes) -> Result<Red, RedError> {
    let mut red = Red::default();
    parse_into(payload, &mut red)?;
    Ok(red)
}

/// [`parse`] into a [`Red`] the caller keeps, so the hot path does not build one per packet.
pub fn parse_into(payload: &Bytes, red: &mut Red) -> Result<(), RedError> {
    if payload.is_empty() {
        return Err(RedError::Empty);
    }
    // Headers first: 4 octets per redundant block (F=1), then 1 for the primary (F=0).
    let mut lengths = [0usize; MAX_REDUNDANT_BLOCKS];
    let mut at = 0;
    let mut count = 0;
    loop {
        let first = *payload.get(at).ok_or(RedError::TruncatedHeader)?;
        if first & 0x80 == 0 {
            red.primary_payload_type = first & 0x7f;
            at += 1;
            break;
        }
        if count == MAX_REDUNDANT_BLOCKS {
            return Err(RedError::TooManyBlocks);
        }
        let header = payload.get(at..at + 4).ok_or(RedError::TruncatedHeader)?;
        let word = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        red.redundant[count].payload_type = first & 0x7f;
        red.redundant[count].timestamp_offset = ((word >> 10) & 0x3fff) as u16;
        lengths[count] = (word & 0x3ff) as usize;
        count += 1;
        at += 4;
    }
    for (block, &length) in red.redundant[..count].iter_mut().zip(&lengths) {
        let end = at + length;
        if end > payload.len() {
            return Err(RedError::BlockPastPayload);
        }
        block.payload = payload.slice(at..end);
        at = end;
    }
    red.count = count;
    red.primary = payload.slice(at..);
    Ok(())
}

/// Write a RED payload: `redundant` blocks (payload type, timestamp offset, frame), oldest
/// first, then the primary.
pub fn build(
    primary_payload_type: u8,
    primary: &[u8],
    redundant: &[(u8, u16, &[u8])],
    out: &mut BytesMut,
) -> Result<(), RedError> {
    if redundant.len() > MAX_REDUNDANT_BLOCKS {
        return Err(RedError::TooManyBlocks);
    }
    if redundant
        .iter()
        .any(|(_, offset, data)| *offset > MAX_TIMESTAMP_OFFSET || data.len() > MAX_BLOCK_LENGTH)
    {
        return Err(RedError::BlockTooLarge);
    }
    out.reserve(redundant.len() * 4 + 1 + redundant.iter().map(|b| b.2.len()).sum::<usize>());
    for (pt, offset, data) in redundant {
        out.put_u32(
            0x8000_0000
                | (u32::from(pt & 0x7f) << 24)
                | (u32::from(*offset) << 10)
                | data.len() as u32,
        );
    }
    out.put_u8(primary_payload_type & 0x7f);
    for (_, _, data) in redundant {
        out.put_slice(data);
    }
    out.put_slice(primary);
    Ok(())
}

/// `payload` (parsed as `red`) with every block's payload type set to `pt`: the same bytes
/// when they already are (the usual case: the server numbers Opus as browsers do), else a copy
/// with the headers rewritten (a subscriber's leg numbers Opus its own way).
pub fn with_payload_type(payload: &Bytes, red: &Red, pt: u8) -> Bytes {
    if red.all_of_type(pt) {
        return payload.clone();
    }
    let mut out = BytesMut::from(&payload[..]);
    for i in 0..red.count {
        out[4 * i] = 0x80 | (pt & 0x7f);
    }
    out[4 * red.count] = pt & 0x7f;
    out.freeze()
}

/// A plain Opus packet the [`Unwrapper`] hands on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unwrapped {
    pub sequence_number: u16,
    pub timestamp: u32,
    pub payload: Bytes,
    /// Rebuilt from a later packet's redundancy (its own packet never arrived).
    pub recovered: bool,
}

/// Turns one RED stream into plain Opus: per packet, the lost packets its redundancy carries,
/// then its primary, each sequence number at most once. Fixed memory.
#[derive(Debug, Clone, Default)]
pub struct Unwrapper {
    /// Extended sequence number of the newest packet handed on.
    highest: Option<u64>,
    /// Bit `i`: packet `highest - i` was handed on.
    delivered: u64,
}

impl Unwrapper {
    /// A RED packet arrived: push onto `out` (cleared first) the packets to hand on, oldest first.
    pub fn unwrap_red(
        &mut self,
        sequence_number: u16,
        timestamp: u32,
        red: &Red,
        out: &mut Vec<Unwrapped>,
    ) {
        out.clear();
        let Some(ext) = self.extend(sequence_number) else {
            return;
        };
        // On the first packet nothing was missed yet: its redundancy repeats what came before
        // this stream started for us.
        if self.highest.is_some() {
            let n = red.count as u64;
            for (i, block) in red.redundant().iter().enumerate() {
                let distance = n - i as u64;
                // An offset of 0 would be the primary itself; an empty block carries nothing.
                if block.timestamp_offset == 0 || block.payload.is_empty() || distance > ext {
                    continue;
                }
                let e = ext - distance;
                if self.should_deliver(e) {
                    self.mark(e);
                    out.push(Unwrapped {
                        sequence_number: e as u16,
                        timestamp: timestamp.wrapping_sub(u32::from(block.timestamp_offset)),
                        payload: block.payload.clone(),
                        recovered: true,
                    });
                }
            }
        }
        if self.should_deliver(ext) {
            self.mark(ext);
            out.push(Unwrapped {
                sequence_number,
                timestamp,
                payload: red.primary.clone(),
                recovered: false,
            });
        }
    }

    /// A plain packet of the same stream arrived (a sender may switch RED off): whether to hand
    /// it on (false: it was already, recovered from redundancy, or it is too old).
    pub fn plain(&mut self, sequence_number: u16) -> bool {
        let Some(ext) = self.extend(sequence_number) else {
            return false;
        };
        let deliver = self.should_deliver(ext);
        if deliver {
            self.mark(ext);
        }
        deliver
    }

    /// The extended sequence number of `seq`, relative to the newest handed on.
    fn extend(&self, seq: u16) -> Option<u64> {
        match self.highest {
            // Start one cycle up, so redundancy from just before the first unwraps above zero.
            None => Some((1 << 16) + u64::from(seq)),
            Some(highest) => {
                let delta = i64::from(seq.wrapping_sub(highest as u16) as i16);
                highest.checked_add_signed(delta)
            }
        }
    }

    fn should_deliver(&self, ext: u64) -> bool {
        match self.highest {
            None => true,
            Some(highest) if ext > highest => true,
            Some(highest) => {
                let behind = highest - ext;
                behind < DEDUP_WINDOW && self.delivered & (1 << behind) == 0
            }
        }
    }

    fn mark(&mut self, ext: u64) {
        match self.highest {
            Some(highest) if ext <= highest => self.delivered |= 1 << (highest - ext),
            Some(highest) => {
                let shift = ext - highest;
                self.delivered = if shift >= DEDUP_WINDOW {
                    0
                } else {
                    self.delivered << shift
                };
                self.delivered |= 1;
                self.highest = Some(ext);
            }
            None => {
                self.delivered = 1;
                self.highest = Some(ext);
            }
        }
    }
}

/// The primary payload type a RED format's parameters name (`111/111`: Opus at 111, RFC 2198
/// §5), if any.
pub fn primary_payload_type(fmtp: &str) -> Option<u8> {
    fmtp.split('/').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn red(primary: &[u8], redundant: &[(u8, u16, &[u8])]) -> Bytes {
        let mut out = BytesMut::new();
        build(111, primary, redundant, &mut out).expect("build");
        out.freeze()
    }

    #[test]
    fn a_payload_reads_back_as_it_was_built() {
        let payload = red(
            b"primary",
            &[(111, 1920, b"older"), (111, 960, b"previous")],
        );
        let parsed = parse(&payload).expect("parse");
        assert_eq!(parsed.primary_payload_type, 111);
        assert_eq!(&parsed.primary[..], b"primary");
        let blocks = parsed.redundant();
        assert_eq!(blocks.len(), 2);
        assert_eq!(
            (blocks[0].timestamp_offset, &blocks[0].payload[..]),
            (1920, &b"older"[..])
        );
        assert_eq!(
            (blocks[1].timestamp_offset, &blocks[1].payload[..]),
            (960, &b"previous"[..])
        );
        // Chrome's first packet carries no redundancy: a one-octet header.
        let lone = parse(&red(b"x", &[])).expect("parse");
        assert!(lone.redundant().is_empty());
        assert_eq!(&lone.primary[..], b"x");
    }

    #[test]
    fn malformed_payloads_are_refused() {
        assert_eq!(parse(&Bytes::new()), Err(RedError::Empty));
        // A redundant header cut short.
        assert_eq!(
            parse(&Bytes::from_static(&[0x80 | 111, 0, 0])),
            Err(RedError::TruncatedHeader)
        );
        // Only redundant headers, no primary header.
        assert_eq!(
            parse(&Bytes::from_static(&[0x80 | 111, 0, 0x0f, 0x00])),
            Err(RedError::TruncatedHeader)
        );
        // A block of 5 octets in a payload with 2 after the headers.
        assert_eq!(
            parse(&Bytes::from_static(&[0x80 | 111, 0, 0x3c, 0x05, 111, 1, 2])),
            Err(RedError::BlockPastPayload)
        );
        // Nine redundant headers.
        let mut many = Vec::new();
        for _ in 0..9 {
            many.extend_from_slice(&[0x80 | 111, 0, 0x3c, 0x00]);
        }
        many.push(111);
        assert_eq!(parse(&Bytes::from(many)), Err(RedError::TooManyBlocks));
        let mut out = BytesMut::new();
        assert_eq!(
            build(111, b"", &[(111, 1 << 14, b"")], &mut out),
            Err(RedError::BlockTooLarge)
        );
    }

    #[test]
    fn payload_types_are_rewritten_only_when_they_differ() {
        let payload = red(b"p", &[(111, 960, b"r")]);
        let parsed = parse(&payload).expect("parse");
        let same = with_payload_type(&payload, &parsed, 111);
        assert_eq!(same.as_ptr(), payload.as_ptr(), "no copy");
        let other = parse(&with_payload_type(&payload, &parsed, 109)).expect("parse");
        assert_eq!(other.primary_payload_type, 109);
        assert_eq!(other.redundant()[0].payload_type, 109);
        assert_eq!(&other.primary[..], b"p");
        assert_eq!(&other.redundant()[0].payload[..], b"r");
    }

    /// The stream a browser sends: packet `seq` carries frame `seq` and, as redundancy, frame
    /// `seq - 1`.
    fn browser_packet(seq: u16) -> (u16, u32, Red) {
        let ts = u32::from(seq) * 960;
        let frame = seq.to_be_bytes();
        let previous = seq.wrapping_sub(1).to_be_bytes();
        (
            seq,
            ts,
            parse(&red(&frame, &[(111, 960, &previous)])).expect("parse"),
        )
    }

    #[test]
    fn a_lost_packet_comes_back_from_the_next_ones_redundancy_once_and_in_order() {
        let mut unwrapper = Unwrapper::default();
        let mut out = Vec::new();
        let mut handed = Vec::new();
        for seq in [
            65_530u16, 65_531, /* 65_532 lost */ 65_533, 65_534, 65_535, 0, 1,
        ] {
            let (seq, ts, red) = browser_packet(seq);
            unwrapper.unwrap_red(seq, ts, &red, &mut out);
            for p in &out {
                assert_eq!(
                    &p.payload[..],
                    &p.sequence_number.to_be_bytes(),
                    "right frame"
                );
                assert_eq!(
                    p.timestamp,
                    u32::from(p.sequence_number) * 960,
                    "right time"
                );
                handed.push((p.sequence_number, p.recovered));
            }
        }
        assert_eq!(
            handed,
            vec![
                (65_530, false),
                (65_531, false),
                (65_532, true),
                (65_533, false),
                (65_534, false),
                (65_535, false),
                (0, false),
                (1, false),
            ]
        );
        // The lost packet arrives late after all: it was handed on already.
        let (seq, ts, red) = browser_packet(65_532);
        unwrapper.unwrap_red(seq, ts, &red, &mut out);
        assert!(out.is_empty());
        assert!(!unwrapper.plain(1), "a duplicate");
        assert!(unwrapper.plain(2));
    }

    #[test]
    fn the_first_packets_redundancy_recovers_nothing_and_old_packets_are_dropped() {
        let mut unwrapper = Unwrapper::default();
        let mut out = Vec::new();
        let (seq, ts, red) = browser_packet(100);
        unwrapper.unwrap_red(seq, ts, &red, &mut out);
        assert_eq!(out.len(), 1);
        assert!(!out[0].recovered);
        // Two lost in a row: one redundant block brings back only the later.
        let (seq, ts, red) = browser_packet(103);
        unwrapper.unwrap_red(seq, ts, &red, &mut out);
        let seqs: Vec<_> = out
            .iter()
            .map(|p| (p.sequence_number, p.recovered))
            .collect();
        assert_eq!(seqs, vec![(102, true), (103, false)]);
        let (seq, ts, red) = browser_packet(103 + DEDUP_WINDOW as u16 + 10);
        unwrapper.unwrap_red(seq, ts, &red, &mut out);
        assert_eq!(out.len(), 2);
        // Far behind the window now: too late to play.
        let (seq, ts, red) = browser_packet(101);
        unwrapper.unwrap_red(seq, ts, &red, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn the_format_parameters_name_the_primary() {
        assert_eq!(primary_payload_type("111/111"), Some(111));
        assert_eq!(primary_payload_type(" 109/109"), Some(109));
        assert_eq!(primary_payload_type(""), None);
    }
}
