//! Redundant audio (RFC 2198) on the forwarding path.
//!
//! A microphone track whose publisher negotiated RED keeps a [`RedSource`]: each RED packet is
//! parsed once, and unwrapped once into the plain Opus packets that subscribers without RED get
//! (the lost packets its redundancy recovers, then its primary: [`crate::red::Unwrapper`]).
//! Subscribers that negotiated RED get the RED packet itself, under their own payload types
//! (LiveKit does the same: RED to RED subscribers, unwrapped to the others).

use rtc::rtp_transceiver::rtp_sender::RTCRtpCodecParameters;

use crate::red::{self, Red, Unwrapped, Unwrapper};

/// What the forwarding path sends for one publisher packet.
pub(super) enum Outgoing<'a> {
    /// The packet as it came (video, plain Opus).
    Plain,
    /// A RED packet: as RED to subscribers that negotiated it, else these plain packets.
    Red {
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
    pub(super) parsed: Red,
    pub(super) unwrapped: Vec<Unwrapped>,
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
        Ok(())
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
