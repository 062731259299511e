//! What one subscriber receives of one published track, made continuous: sequence numbers,
//! timestamps and (VP8) picture ids are rewritten so the stream a subscriber sees never jumps,
//! even when the source behind it changes (a WHEP display that follows the teacher's camera and
//! screen share), and video starts and switches on a keyframe only.
//!
//! Sans-IO and allocation-free on the common path: a payload is copied only when its VP8
//! descriptor must change, which happens only after a source switch. The same idea as
//! mediasoup's `SeqManager` + `RtpStreamSend` and LiveKit's `rtpmunger.go`: the first packet
//! forwarded from a source fixes offsets that carry on from the last packet sent.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

/// The codecs whose keyframes and descriptors we read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Audio,
    Vp8,
    Vp9,
    H264,
    Av1,
    /// A video codec we cannot parse: forwarded without waiting for a keyframe.
    OtherVideo,
}

impl Codec {
    pub fn from_mime(mime: &str) -> Self {
        let mime = mime.to_ascii_lowercase();
        match mime.as_str() {
            "video/vp8" => Codec::Vp8,
            "video/vp9" => Codec::Vp9,
            "video/h264" => Codec::H264,
            "video/av1" => Codec::Av1,
            m if m.starts_with("audio/") => Codec::Audio,
            _ => Codec::OtherVideo,
        }
    }

    pub fn is_video(self) -> bool {
        self != Codec::Audio
    }

    /// Whether this codec's keyframes can be told apart (so a start can wait for one).
    fn knows_keyframes(self) -> bool {
        matches!(self, Codec::Vp8 | Codec::Vp9 | Codec::H264 | Codec::Av1)
    }

    fn clock_rate(self) -> u32 {
        match self {
            Codec::Audio => 48_000,
            _ => 90_000,
        }
    }
}

/// How far (in packets) a source's start mark trails its newest packet at most.
const START_TRAILS_BY: i16 = 0x4000;

/// How long the source a downtrack follows may send nothing before another source's packets
/// take over ([`Munger::rewrite`]): far longer than any gap between a live stream's packets
/// (audio comes every 20 ms, video every frame), far shorter than a teacher would wait.
const SOURCE_QUIET: Duration = Duration::from_secs(1);

/// Whether an RTP payload is the first packet of a keyframe (a decoder can start here).
pub fn is_keyframe_start(codec: Codec, payload: &[u8]) -> bool {
    match codec {
        Codec::Vp8 => vp8_keyframe_start(payload),
        Codec::Vp9 => vp9_keyframe_start(payload),
        Codec::H264 => h264_keyframe_start(payload),
        Codec::Av1 => av1_keyframe_start(payload),
        Codec::Audio | Codec::OtherVideo => false,
    }
}

/// The parts of a VP8 payload descriptor (RFC 7741 §4.2) a forwarder rewrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8Descriptor {
    /// Offset of the picture id in the payload, and whether it is 15 bits (else 7).
    pub picture_id_at: Option<(usize, bool)>,
    pub picture_id: u16,
    pub tl0_at: Option<usize>,
    pub tl0: u8,
    /// The payload header's offset (after the descriptor).
    pub header_len: usize,
    /// S bit set and partition 0: the first packet of a frame.
    pub frame_start: bool,
}

pub fn parse_vp8(payload: &[u8]) -> Option<Vp8Descriptor> {
    let first = *payload.first()?;
    let mut d = Vp8Descriptor {
        picture_id_at: None,
        picture_id: 0,
        tl0_at: None,
        tl0: 0,
        header_len: 1,
        frame_start: first & 0x10 != 0 && first & 0x07 == 0,
    };
    if first & 0x80 == 0 {
        return Some(d);
    }
    let ext = *payload.get(1)?;
    let mut at = 2;
    if ext & 0x80 != 0 {
        let b = *payload.get(at)?;
        if b & 0x80 != 0 {
            let lo = *payload.get(at + 1)?;
            d.picture_id = u16::from_be_bytes([b & 0x7f, lo]);
            d.picture_id_at = Some((at, true));
            at += 2;
        } else {
            d.picture_id = u16::from(b);
            d.picture_id_at = Some((at, false));
            at += 1;
        }
    }
    if ext & 0x40 != 0 {
        d.tl0 = *payload.get(at)?;
        d.tl0_at = Some(at);
        at += 1;
    }
    if ext & 0x30 != 0 {
        at += 1;
    }
    if at > payload.len() {
        return None;
    }
    d.header_len = at;
    Some(d)
}

fn vp8_keyframe_start(payload: &[u8]) -> bool {
    parse_vp8(payload).is_some_and(|d| {
        // The VP8 payload header's P bit is 0 on a keyframe (RFC 6386 §9.1).
        d.frame_start && payload.get(d.header_len).is_some_and(|b| b & 0x01 == 0)
    })
}

/// VP9 (RFC 9628 §4.2): the first packet (B) of a picture that is not inter-predicted (P = 0),
/// in the base spatial layer.
fn vp9_keyframe_start(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    let (inter, layers, begin) = (first & 0x40 != 0, first & 0x20 != 0, first & 0x08 != 0);
    if inter || !begin {
        return false;
    }
    if !layers {
        return true;
    }
    let mut at = 1;
    if first & 0x80 != 0 {
        // Picture id: 7 or 15 bits.
        at += match payload.get(1) {
            Some(b) if b & 0x80 != 0 => 2,
            Some(_) => 1,
            None => return false,
        };
    }
    // Layer indices: TID(3) U(1) SID(3) D(1).
    payload.get(at).is_some_and(|b| (b >> 1) & 0x07 == 0)
}

/// H.264 (RFC 6184): an IDR slice or a sequence parameter set starts the packet, alone, in a
/// STAP-A, or as the first fragment of an FU-A.
fn h264_keyframe_start(payload: &[u8]) -> bool {
    const IDR: u8 = 5;
    const SPS: u8 = 7;
    const STAP_A: u8 = 24;
    const FU_A: u8 = 28;
    let Some(&header) = payload.first() else {
        return false;
    };
    match header & 0x1f {
        IDR | SPS => true,
        STAP_A => {
            let mut at = 1;
            while at + 2 < payload.len() {
                let len = usize::from(u16::from_be_bytes([payload[at], payload[at + 1]]));
                if matches!(payload[at + 2] & 0x1f, IDR | SPS) {
                    return true;
                }
                at += 2 + len;
            }
            false
        }
        FU_A => payload
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && fu & 0x1f == IDR),
        _ => false,
    }
}

/// AV1 (RTP payload format §4.4): the N bit of the aggregation header marks the first packet of
/// a new coded video sequence, which starts with a keyframe.
fn av1_keyframe_start(payload: &[u8]) -> bool {
    payload.first().is_some_and(|b| b & 0x08 != 0)
}

/// How one packet leaves for the subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    pub sequence_number: u16,
    pub timestamp: u32,
    /// A new payload when the descriptor changed (VP8 picture id / TL0PICIDX after a switch).
    pub payload: Option<Bytes>,
}

#[derive(Debug, Clone, Copy)]
struct Sent {
    sequence_number: u16,
    timestamp: u32,
    at: Instant,
    picture_id: Option<u16>,
    tl0: Option<u8>,
}

/// The rewriting state of one subscriber's copy of one track.
#[derive(Debug, Clone)]
pub struct Munger {
    codec: Codec,
    /// The SSRC now feeding this downtrack, once a packet of it was forwarded.
    source: Option<u32>,
    /// Video waits for a keyframe: at the start and after a source switch.
    awaiting_keyframe: bool,
    /// The first incoming sequence number of the current source: older ones are not ours.
    start_seq: u16,
    seq_offset: u16,
    ts_offset: u32,
    picture_id_offset: u16,
    tl0_offset: u8,
    last: Option<Sent>,
}

impl Munger {
    /// A new downtrack: video waits for a keyframe when its codec's keyframes are known.
    pub fn new(codec: Codec) -> Self {
        Self {
            codec,
            source: None,
            awaiting_keyframe: codec.knows_keyframes(),
            start_seq: 0,
            seq_offset: 0,
            ts_offset: 0,
            picture_id_offset: 0,
            tl0_offset: 0,
            last: None,
        }
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// `timestamp` of `ssrc` as this downtrack sends it, if `ssrc` is what feeds it now.
    pub fn translate_timestamp(&self, ssrc: u32, timestamp: u32) -> Option<u32> {
        (self.source == Some(ssrc)).then(|| timestamp.wrapping_add(self.ts_offset))
    }

    /// Whether video is held back until a keyframe arrives.
    pub fn awaiting_keyframe(&self) -> bool {
        self.awaiting_keyframe
    }

    /// Another source will feed this downtrack: its packets are forwarded from its next keyframe
    /// on, continuing the numbering of what was sent so far.
    pub fn switch_source(&mut self) {
        self.source = None;
        self.awaiting_keyframe = self.codec.knows_keyframes();
    }

    /// Start over at the next keyframe (after a hole the subscriber cannot repair).
    pub fn restart_at_keyframe(&mut self) {
        if self.codec.knows_keyframes() {
            self.awaiting_keyframe = true;
        }
    }

    /// Rewrite one packet from `ssrc`, or `None` to drop it. `keyframe`: whether it starts a
    /// keyframe ([`is_keyframe_start`], computed once per packet for all subscribers).
    pub fn rewrite(
        &mut self,
        now: Instant,
        ssrc: u32,
        sequence_number: u16,
        timestamp: u32,
        payload: &Bytes,
        keyframe: bool,
    ) -> Option<Rewritten> {
        let vp8 = if self.codec == Codec::Vp8 {
            parse_vp8(payload)
        } else {
            None
        };
        match self.source {
            Some(current) if current == ssrc => {
                if self.awaiting_keyframe {
                    if !keyframe {
                        return None;
                    }
                    // Restarting on the same source: its numbering already continues.
                    self.start_seq = sequence_number;
                    self.awaiting_keyframe = false;
                } else {
                    let ahead = sequence_number.wrapping_sub(self.start_seq) as i16;
                    if ahead < 0 {
                        // Older than where this source started (a late retransmission): its
                        // number would fall among packets already sent from before.
                        return None;
                    }
                    // Slide the start along behind the newest packet, so that the comparison
                    // stays inside half the sequence space: a fixed start would call every packet
                    // "older" once 32768 had been sent (11 minutes of Opus). Nothing 16384
                    // packets late can still be retransmitted.
                    if ahead > START_TRAILS_BY {
                        self.start_seq = sequence_number.wrapping_sub(START_TRAILS_BY as u16);
                    }
                }
            }
            // Another source than the one this downtrack follows. Normally a late packet of a
            // stream that was replaced: dropped. But if the followed source has gone quiet, the
            // stream feeding this track moved on without this downtrack being switched (a slot
            // filled twice in a race, say): follow the new source from its next keyframe rather
            // than drop it for good. The router asks for that keyframe when we say we wait.
            Some(_) => {
                let quiet = self
                    .last
                    .is_none_or(|l| now.saturating_duration_since(l.at) >= SOURCE_QUIET);
                if !quiet {
                    return None;
                }
                self.switch_source();
                return self.rewrite(now, ssrc, sequence_number, timestamp, payload, keyframe);
            }
            None => {
                if self.awaiting_keyframe && !keyframe {
                    return None;
                }
                self.start(now, ssrc, sequence_number, timestamp, vp8);
                self.awaiting_keyframe = false;
            }
        }
        let out_seq = sequence_number.wrapping_add(self.seq_offset);
        let out_ts = timestamp.wrapping_add(self.ts_offset);
        let mut out_picture = None;
        let mut out_tl0 = None;
        let mut new_payload = None;
        if let Some(d) = vp8 {
            if d.picture_id_at.is_some() {
                out_picture = Some(d.picture_id.wrapping_add(self.picture_id_offset) & 0x7fff);
            }
            if d.tl0_at.is_some() {
                out_tl0 = Some(d.tl0.wrapping_add(self.tl0_offset));
            }
            if self.picture_id_offset != 0 || self.tl0_offset != 0 {
                new_payload = Some(rewrite_vp8(payload, &d, out_picture, out_tl0));
            }
        }
        let newer = self
            .last
            .is_none_or(|l| (out_seq.wrapping_sub(l.sequence_number) as i16) > 0);
        if newer {
            self.last = Some(Sent {
                sequence_number: out_seq,
                timestamp: out_ts,
                at: now,
                picture_id: out_picture,
                tl0: out_tl0,
            });
        }
        Some(Rewritten {
            sequence_number: out_seq,
            timestamp: out_ts,
            payload: new_payload,
        })
    }

    /// The first packet of a source: offsets that make it follow the last packet sent.
    fn start(
        &mut self,
        now: Instant,
        ssrc: u32,
        sequence_number: u16,
        timestamp: u32,
        vp8: Option<Vp8Descriptor>,
    ) {
        self.source = Some(ssrc);
        self.start_seq = sequence_number;
        let Some(last) = self.last else {
            // The very first source: numbers pass through unchanged.
            return;
        };
        self.seq_offset = last
            .sequence_number
            .wrapping_add(1)
            .wrapping_sub(sequence_number);
        // The new source's first packet comes as much later as it really did (at least one tick).
        let elapsed = now.saturating_duration_since(last.at);
        let ticks = (elapsed.as_secs_f64() * f64::from(self.codec.clock_rate())) as u32;
        self.ts_offset = last
            .timestamp
            .wrapping_add(ticks.max(1))
            .wrapping_sub(timestamp);
        if let Some(d) = vp8 {
            if let Some(p) = last.picture_id {
                self.picture_id_offset = p.wrapping_add(1).wrapping_sub(d.picture_id) & 0x7fff;
            }
            if let Some(t) = last.tl0 {
                self.tl0_offset = t.wrapping_add(1).wrapping_sub(d.tl0);
            }
        }
    }
}

/// A copy of a VP8 payload with its picture id and TL0PICIDX replaced (same width, same size).
fn rewrite_vp8(
    payload: &Bytes,
    d: &Vp8Descriptor,
    picture_id: Option<u16>,
    tl0: Option<u8>,
) -> Bytes {
    let mut out = BytesMut::from(&payload[..]);
    if let (Some((at, long)), Some(p)) = (d.picture_id_at, picture_id) {
        if long {
            let [hi, lo] = p.to_be_bytes();
            out[at] = 0x80 | (hi & 0x7f);
            out[at + 1] = lo;
        } else {
            out[at] = (p & 0x7f) as u8;
        }
    }
    if let (Some(at), Some(t)) = (d.tl0_at, tl0) {
        out[at] = t;
    }
    out.freeze()
}

#[cfg(test)]
mod tests {

    use super::*;

    /// A VP8 packet with a 15-bit picture id and a TL0PICIDX; `start` marks a frame's first
    /// packet, `key` a keyframe.
    fn vp8(picture_id: u16, tl0: u8, start: bool, key: bool) -> Bytes {
        let [hi, lo] = picture_id.to_be_bytes();
        let first = 0x80 | if start { 0x10 } else { 0 };
        let header = if key { 0x10 } else { 0x11 };
        Bytes::from(vec![first, 0xc0, 0x80 | hi, lo, tl0, header, 0, 0, 0xaa])
    }

    #[test]
    fn keyframes_are_told_apart_for_vp8_vp9_h264_and_av1() {
        assert!(is_keyframe_start(Codec::Vp8, &vp8(5, 1, true, true)));
        assert!(!is_keyframe_start(Codec::Vp8, &vp8(5, 1, true, false)));
        assert!(
            !is_keyframe_start(Codec::Vp8, &vp8(5, 1, false, true)),
            "not a frame's first packet"
        );
        // The smallest VP8 descriptor, no extensions: S set, then a keyframe header.
        assert!(is_keyframe_start(Codec::Vp8, &[0x10, 0x50, 0, 0]));

        // VP9: B set, P clear, no layer indices → key; P set → delta; flexible with SID 1 → not.
        assert!(is_keyframe_start(Codec::Vp9, &[0x08, 0]));
        assert!(!is_keyframe_start(Codec::Vp9, &[0x48, 0]));
        assert!(!is_keyframe_start(Codec::Vp9, &[0x00, 0]), "not the start");
        assert!(is_keyframe_start(Codec::Vp9, &[0xa8, 0x85, 0x01, 0x00]));
        assert!(!is_keyframe_start(Codec::Vp9, &[0xa8, 0x85, 0x01, 0x02]));

        // H.264: IDR, SPS in a STAP-A, the first FU-A fragment of an IDR; not a P slice.
        assert!(is_keyframe_start(Codec::H264, &[0x65, 0x88]));
        assert!(is_keyframe_start(
            Codec::H264,
            &[0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce]
        ));
        assert!(is_keyframe_start(Codec::H264, &[0x7c, 0x85, 0x88]));
        assert!(!is_keyframe_start(Codec::H264, &[0x7c, 0x05, 0x88]));
        assert!(!is_keyframe_start(Codec::H264, &[0x41, 0x9a]));

        assert!(is_keyframe_start(Codec::Av1, &[0x18]));
        assert!(!is_keyframe_start(Codec::Av1, &[0x10]));
        assert!(!is_keyframe_start(Codec::Vp8, &[]));
    }

    #[test]
    fn video_starts_at_a_keyframe() {
        let t0 = Instant::now();
        let mut m = Munger::new(Codec::Vp8);
        assert!(m.awaiting_keyframe());
        let delta = vp8(10, 3, true, false);
        assert_eq!(m.rewrite(t0, 1, 100, 9000, &delta, false), None);
        let key = vp8(11, 4, true, true);
        let out = m.rewrite(t0, 1, 101, 12000, &key, true).expect("keyframe");
        assert_eq!((out.sequence_number, out.timestamp), (101, 12000));
        assert_eq!(
            out.payload, None,
            "the first source passes through unchanged"
        );
        let rest = m
            .rewrite(t0, 1, 102, 12000, &vp8(11, 4, false, false), false)
            .expect("rest of the keyframe");
        assert_eq!(rest.sequence_number, 102);
        assert_eq!(
            m.rewrite(t0, 1, 100, 9000, &delta, false),
            None,
            "a late packet from before the start is not forwarded"
        );
    }

    #[test]
    fn a_source_switch_continues_numbering_at_the_new_sources_keyframe() {
        let t0 = Instant::now();
        let mut m = Munger::new(Codec::Vp8);
        m.rewrite(t0, 1, 500, 1_000, &vp8(300, 7, true, true), true)
            .expect("first keyframe");
        let t1 = t0 + Duration::from_millis(33);
        let last = m
            .rewrite(t1, 1, 501, 3_970, &vp8(301, 8, true, false), false)
            .expect("delta");
        assert_eq!(last.sequence_number, 501);

        m.switch_source();
        let t2 = t1 + Duration::from_millis(100);
        assert_eq!(
            m.rewrite(t2, 2, 40_000, 77, &vp8(9000, 200, true, false), false),
            None,
            "the new source's deltas wait for its keyframe"
        );
        assert_eq!(
            m.rewrite(t2, 1, 502, 6_940, &vp8(302, 9, true, false), false),
            None,
            "the old source is cut off"
        );
        let key = m
            .rewrite(t2, 2, 40_001, 3_077, &vp8(9001, 201, true, true), true)
            .expect("the new source's keyframe");
        assert_eq!(key.sequence_number, 502, "sequence numbers run on");
        assert_eq!(
            key.timestamp,
            3_970 + 9_000,
            "the timestamp advances by the 100 ms that really passed"
        );
        let d = parse_vp8(key.payload.as_ref().expect("descriptor rewritten")).expect("vp8");
        assert_eq!(
            (d.picture_id, d.tl0),
            (302, 9),
            "picture id and TL0PICIDX run on"
        );
        let next = m
            .rewrite(
                t2 + Duration::from_millis(33),
                2,
                40_002,
                6_047,
                &vp8(9002, 201, true, false),
                false,
            )
            .expect("the new source's next frame");
        assert_eq!(next.sequence_number, 503);
        assert_eq!(next.timestamp, 3_970 + 9_000 + 2_970);
        let d = parse_vp8(next.payload.as_ref().expect("rewritten")).expect("vp8");
        assert_eq!((d.picture_id, d.tl0), (303, 9));
        // Payload after the descriptor is untouched.
        assert_eq!(&next.payload.expect("rewritten")[5..], &[0x11, 0, 0, 0xaa]);
    }

    #[test]
    fn a_downtrack_left_on_a_quiet_source_follows_the_live_one_at_its_keyframe() {
        let t0 = Instant::now();
        let mut m = Munger::new(Codec::Vp8);
        m.rewrite(t0, 1, 500, 1_000, &vp8(300, 7, true, true), true)
            .expect("first keyframe");
        // Source 2 feeds the track now but nobody switched this downtrack over.
        let soon = t0 + Duration::from_millis(100);
        assert_eq!(
            m.rewrite(soon, 2, 9_000, 50, &vp8(40, 1, true, true), true),
            None,
            "while source 1 is live, another source's packets are late ones: dropped"
        );
        let later = t0 + SOURCE_QUIET + Duration::from_millis(10);
        assert_eq!(
            m.rewrite(later, 2, 9_010, 60, &vp8(41, 1, true, false), false),
            None,
            "a delta cannot start the picture"
        );
        assert!(
            m.awaiting_keyframe(),
            "the router is told to ask for a keyframe"
        );
        let key = m
            .rewrite(later, 2, 9_011, 70, &vp8(42, 2, true, true), true)
            .expect("source 1 went quiet: source 2's keyframe is forwarded");
        assert_eq!(key.sequence_number, 501, "numbering runs on");
        assert_eq!(
            m.rewrite(later, 1, 501, 4_000, &vp8(301, 7, true, false), false),
            None,
            "the quiet source is not followed any more"
        );
    }

    #[test]
    fn numbers_wrap_around() {
        let t0 = Instant::now();
        let mut m = Munger::new(Codec::Vp8);
        m.rewrite(t0, 1, 65_535, u32::MAX, &vp8(0x7fff, 255, true, true), true)
            .expect("key");
        m.switch_source();
        let out = m
            .rewrite(t0, 2, 7, 5, &vp8(5, 9, true, true), true)
            .expect("key");
        assert_eq!(out.sequence_number, 0);
        assert_eq!(out.timestamp, 0, "one tick after u32::MAX");
        let d = parse_vp8(out.payload.as_ref().expect("rewritten")).expect("vp8");
        assert_eq!((d.picture_id, d.tl0), (0, 0));
    }

    #[test]
    fn a_long_lesson_keeps_flowing_past_half_the_sequence_space() {
        let mut m = Munger::new(Codec::Audio);
        let now = Instant::now();
        let payload = Bytes::from_static(&[0xf8; 80]);
        // Three times round the 16-bit sequence space: 3 hours of Opus at 50 packets a second
        // would be far more, but every packet must pass all the same.
        for n in 0..(3 * 65536u32) {
            let seq = (1000 + n) as u16;
            assert!(
                m.rewrite(now, 7, seq, n.wrapping_mul(960), &payload, false)
                    .is_some(),
                "packet {n} was dropped"
            );
        }
        // A retransmission from before the source started is still refused.
        let mut m = Munger::new(Codec::Audio);
        assert!(m.rewrite(now, 7, 500, 0, &payload, false).is_some());
        assert!(m.rewrite(now, 7, 499, 0, &payload, false).is_none());
    }

    #[test]
    fn audio_passes_at_once() {
        let t0 = Instant::now();
        let mut m = Munger::new(Codec::Audio);
        assert!(!m.awaiting_keyframe());
        let out = m
            .rewrite(t0, 9, 10, 960, &Bytes::from_static(&[0xf8; 10]), false)
            .expect("audio");
        assert_eq!((out.sequence_number, out.timestamp), (10, 960));
    }
}
