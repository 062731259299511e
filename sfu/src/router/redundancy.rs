//! Redundant audio (RFC 2198) on the forwarding path.
//!
//! A microphone track whose publisher negotiated RED keeps a [`RedSource`]: each RED packet is
//! parsed once, and unwrapped once into the plain Opus packets that subscribers without RED get
//! (the lost packets its redundancy recovers, then its primary: [`crate::red::Unwrapper`]).
//! Subscribers that negotiated RED get RED under their own payload types (LiveKit does the
//! same: RED to RED subscribers, unwrapped to the others) — not the publisher's packet as it
//! came, but one the server builds with up to [`DOWNLINK_REDUNDANCY`] earlier frames: browsers
//! send one, which repairs a single lost packet, while a weak downlink loses packets in bursts
//! (the load test's `rural-4g` bursts average four packets). The earlier frames are the ones the
//! server handed on, so a frame recovered from the uplink's redundancy protects the downlink too.

use rtc::rtp_transceiver::rtp_sender::RTCRtpCodecParameters;

use bytes::{Bytes, BytesMut};

use crate::red::{self, Red, Unwrapped, Unwrapper};

/// How many earlier frames a RED packet to a subscriber repeats. Two cover a lost pair at 50 %
/// more audio bytes than browsers' one (an Opus voice frame is ~60–120 bytes; the pacing cost is
/// small beside video).
pub(super) const DOWNLINK_REDUNDANCY: usize = 2;

/// What the forwarding path sends for one publisher packet.
pub(super) enum Outgoing<'a> {
    /// The packet as it came (video, plain Opus).
    Plain,
    /// A RED packet: `payload` (parsed as `parsed`) to subscribers that negotiated RED, else
    /// these plain packets.
    Red {
        payload: &'a Bytes,
        parsed: &'a Red,
        unwrapped: &'a [Unwrapped],
    },
}

/// A published microphone that may send RED.
pub(super) struct RedSource {
    /// The publisher's payload type for RED.
    pub(super) payload_type: u8,
    unwrapper: Unwrapper,
    /// Reused per packet, so the hot path does not allocate.
    parsed: Red,
    pub(super) unwrapped: Vec<Unwrapped>,
    /// The newest frames handed on, oldest first, for the downlink's redundancy.
    recent: [Option<Unwrapped>; DOWNLINK_REDUNDANCY],
    /// The RED payload subscribers with RED get for the current packet, and its parse.
    pub(super) downlink: Bytes,
    pub(super) downlink_parsed: Red,
}

impl RedSource {
    /// The RED format among a publish leg's negotiated codecs, if its publisher offered it.
    pub(super) fn negotiated(codecs: &[RTCRtpCodecParameters]) -> Option<Self> {
        let red = codecs
            .iter()
            .find(|c| crate::codecs::is_red(&c.rtp_codec.mime_type))?;
        Some(Self {
            payload_type: red.payload_type,
            unwrapper: Unwrapper::default(),
            parsed: Red::default(),
            unwrapped: Vec::with_capacity(red::MAX_REDUNDANT_BLOCKS + 1),
            recent: Default::default(),
            downlink: Bytes::new(),
            downlink_parsed: Red::default(),
        })
    }

    /// A RED packet arrived: parse and unwrap it. `Err` for a malformed payload (dropped).
    pub(super) fn on_red(&mut self, packet: &rtc::rtp::Packet) -> Result<(), red::RedError> {
        red::parse_into(&packet.payload, &mut self.parsed)?;
        self.unwrapper.unwrap_red(
            packet.header.sequence_number,
            packet.header.timestamp,
            &self.parsed,
            &mut self.unwrapped,
        );
        self.downlink = packet.payload.clone();
        for i in 0..self.unwrapped.len() {
            let frame = self.unwrapped[i].clone();
            if !frame.recovered && self.rebuild(&frame).is_err() {
                // Not rebuilt (a frame too large for a RED block): the packet as it came.
                self.downlink = packet.payload.clone();
            }
            self.remember(frame);
        }
        red::parse_into(&self.downlink, &mut self.downlink_parsed)
    }

    /// The downlink's RED payload for `primary`: the remembered frames just before it, oldest
    /// first. A receiver numbers a block by the primary's sequence number minus its distance, so
    /// only an unbroken run of predecessors goes in (distance 1, 2, ...), each whose timestamp
    /// offset and length fit a RED header.
    fn rebuild(&mut self, primary: &Unwrapped) -> Result<(), red::RedError> {
        let fits = |d: usize| {
            self.recent.iter().flatten().find(|f| {
                let offset = primary.timestamp.wrapping_sub(f.timestamp);
                primary.sequence_number.wrapping_sub(f.sequence_number) as usize == d
                    && offset != 0
                    && offset <= u32::from(red::MAX_TIMESTAMP_OFFSET)
                    && f.payload.len() <= red::MAX_BLOCK_LENGTH
            })
        };
        let mut blocks: [(u8, u16, &[u8]); DOWNLINK_REDUNDANCY] =
            [(0, 0, &[]); DOWNLINK_REDUNDANCY];
        let mut run = 0;
        while run < DOWNLINK_REDUNDANCY {
            let Some(frame) = fits(run + 1) else { break };
            // Filled from the end: the nearest frame is the last block.
            blocks[DOWNLINK_REDUNDANCY - 1 - run] = (
                self.parsed.primary_payload_type,
                primary.timestamp.wrapping_sub(frame.timestamp) as u16,
                &frame.payload,
            );
            run += 1;
        }
        let mut out = BytesMut::new();
        red::build(
            self.parsed.primary_payload_type,
            &primary.payload,
            &blocks[DOWNLINK_REDUNDANCY - run..],
            &mut out,
        )?;
        self.downlink = out.freeze();
        Ok(())
    }

    /// Keep `frame` among the newest handed on (an older one arriving late is not kept).
    fn remember(&mut self, frame: Unwrapped) {
        if let Some(newest) = self.recent.last().and_then(Option::as_ref) {
            let ahead = frame.sequence_number.wrapping_sub(newest.sequence_number) as i16;
            if ahead <= 0 {
                return;
            }
        }
        self.recent.rotate_left(1);
        self.recent[DOWNLINK_REDUNDANCY - 1] = Some(frame);
    }

    /// A plain packet on a track that negotiated RED: whether subscribers without RED still need
    /// it (false when its frame already reached them from a later packet's redundancy).
    pub(super) fn on_plain(&mut self, sequence_number: u16) -> bool {
        self.unwrapper.plain(sequence_number)
    }
}

/// The primary codec of a RED track: the one its format parameters name (`111/111`), else
/// the leg's Opus.
pub(super) fn primary_codec(
    red: &RTCRtpCodecParameters,
    codecs: &[RTCRtpCodecParameters],
) -> Option<RTCRtpCodecParameters> {
    let named = red::primary_payload_type(&red.rtp_codec.sdp_fmtp_line);
    codecs
        .iter()
        .find(|c| Some(c.payload_type) == named && !crate::codecs::is_red(&c.rtp_codec.mime_type))
        .or_else(|| {
            codecs.iter().find(|c| {
                c.rtp_codec.mime_type.eq_ignore_ascii_case(
                    rtc::peer_connection::configuration::media_engine::MIME_TYPE_OPUS,
                )
            })
        })
        .cloned()
}
