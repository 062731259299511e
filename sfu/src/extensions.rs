//! RTP header extensions (RFC 8285): which ones the legs negotiate, and what a forwarded packet
//! carries of them on the subscriber's leg.
//!
//! Extension ids are negotiated per leg, so a publisher's audio level under id 1 may be id 5 on
//! a subscriber's leg. Per extension, a forwarded packet carries:
//! - `ssrc-audio-level` (RFC 6464): the publisher's value, under the subscriber's id.
//! - `sdes:mid` (RFC 8843): the subscriber's own mid for this downtrack (the publisher's mid
//!   names an m-line of another session).
//! - `rid` / `repaired-rid` (RFC 8852): not carried. They name the publisher's simulcast layers;
//!   a subscriber receives one plain stream.
//! - `abs-send-time` and `transport-wide-cc`: not carried. Both describe the hop they were sent
//!   on (the publisher's send clock, its transport-wide sequence); `rtc` has no interceptor that
//!   writes abs-send-time, and subscribe legs do not negotiate transport-cc yet (nothing reads the
//!   feedback a subscriber would send).
//!
//! The same as LiveKit's and mediasoup's forwarders: the ids are mapped once per downtrack, and
//! each packet only copies reference-counted payloads.

use bytes::Bytes;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpHeaderExtensionParameters, RtpCodecKind};
use rtc::sdp::extmap::{
    ABS_SEND_TIME_URI, AUDIO_LEVEL_URI, SDES_MID_URI, SDES_REPAIR_RTP_STREAM_ID_URI,
    SDES_RTP_STREAM_ID_URI, TRANSPORT_CC_URI,
};

use crate::SfuError;
use crate::ids::Leg;

/// Register the header extensions a leg negotiates. The order fixes the ids the server offers
/// on its subscribe legs (`rtc` numbers them in registration order from 1).
///
/// Publish legs also negotiate `transport-wide-cc`: the server answers with transport-wide
/// feedback ([`crate::transport`]), which browsers' send-side estimators need.
pub fn register(media_engine: &mut MediaEngine, leg: Leg) -> Result<(), SfuError> {
    use rtc::rtp_transceiver::rtp_sender::RTCRtpHeaderExtensionCapability as Capability;
    let both = [RtpCodecKind::Audio, RtpCodecKind::Video];
    let mut uris: Vec<(&str, &[RtpCodecKind])> = vec![
        (SDES_MID_URI, &both),
        (ABS_SEND_TIME_URI, &both),
        (SDES_RTP_STREAM_ID_URI, &both[1..]),
        (SDES_REPAIR_RTP_STREAM_ID_URI, &both[1..]),
        (AUDIO_LEVEL_URI, &both[..1]),
    ];
    if leg == Leg::Publish {
        uris.push((TRANSPORT_CC_URI, &both));
    }
    for (uri, kinds) in uris {
        for kind in kinds {
            media_engine.register_header_extension(
                Capability {
                    uri: uri.to_owned(),
                },
                *kind,
                None,
            )?;
        }
    }
    Ok(())
}

/// The ids one side of a leg negotiated for the extensions the forwarder reads or writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExtensionIds {
    pub mid: Option<u8>,
    pub audio_level: Option<u8>,
}

impl ExtensionIds {
    /// From the negotiated parameters of a sender or receiver.
    pub fn from_parameters(params: &[RTCRtpHeaderExtensionParameters]) -> Self {
        let id = |uri: &str| {
            params
                .iter()
                .find(|p| p.uri == uri)
                .and_then(|p| u8::try_from(p.id).ok())
        };
        Self {
            mid: id(SDES_MID_URI),
            audio_level: id(AUDIO_LEVEL_URI),
        }
    }
}

/// What a downtrack writes: its leg's ids, and its own mid value (cheap to clone per packet).
#[derive(Debug, Clone, Default)]
pub struct DownExtensions {
    pub ids: ExtensionIds,
    pub mid: Bytes,
}

/// The RFC 6464 audio level of a packet: (voice activity, level in -dBov, 0 loudest, 127
/// silent), if the packet carries it.
pub fn audio_level(header: &rtc::rtp::Header, ids: &ExtensionIds) -> Option<(bool, u8)> {
    let payload = header.get_extension(ids.audio_level?)?;
    let byte = *payload.first()?;
    Some((byte & 0x80 != 0, byte & 0x7f))
}

/// Replace `out`'s extensions (a copy of the publisher's `source` header) with what the
/// subscriber's leg carries: see the module docs. Without `down` (the leg's ids are not known
/// yet), the packet carries none.
pub fn rewrite(
    out: &mut rtc::rtp::Header,
    source: &rtc::rtp::Header,
    from: &ExtensionIds,
    down: Option<&DownExtensions>,
) {
    out.extension = false;
    out.extensions.clear();
    out.extensions_padding = 0;
    let Some(down) = down else {
        return;
    };
    if let (Some(to), Some(level)) = (
        down.ids.audio_level,
        from.audio_level.and_then(|id| source.get_extension(id)),
    ) {
        // Ids from negotiation are 1..=14 and levels one byte: this cannot fail.
        let _ = out.set_extension(to, level);
    }
    if let Some(to) = down.ids.mid
        && !down.mid.is_empty()
    {
        let _ = out.set_extension(to, down.mid.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use rtc::rtp::Header;
    use rtc::shared::marshal::{Marshal, MarshalSize, Unmarshal};

    fn publisher_header() -> Header {
        let mut h = Header {
            version: 2,
            ssrc: 7,
            ..Default::default()
        };
        h.set_extension(1, Bytes::from_static(&[0x80 | 30]))
            .expect("level");
        h.set_extension(3, Bytes::from_static(b"0")).expect("mid");
        h.set_extension(4, Bytes::from_static(&[1, 2, 3]))
            .expect("abs-send-time");
        h
    }

    #[test]
    fn the_level_moves_to_the_subscribers_id_and_the_rest_is_the_subscribers_own() {
        let source = publisher_header();
        let from = ExtensionIds {
            mid: Some(3),
            audio_level: Some(1),
        };
        let down = DownExtensions {
            ids: ExtensionIds {
                mid: Some(1),
                audio_level: Some(5),
            },
            mid: Bytes::from_static(b"2"),
        };
        let mut out = source.clone();
        rewrite(&mut out, &source, &from, Some(&down));
        // Through the wire format, as the subscriber parses it.
        let mut buf = BytesMut::zeroed(out.marshal_size());
        out.marshal_to(&mut buf).expect("marshal");
        let parsed = Header::unmarshal(&mut buf.freeze()).expect("parse");
        assert_eq!(audio_level(&parsed, &down.ids), Some((true, 30)));
        assert_eq!(parsed.get_extension(1).as_deref(), Some(&b"2"[..]));
        assert_eq!(parsed.extensions.len(), 2, "abs-send-time is not carried");
    }

    #[test]
    fn a_leg_that_negotiated_nothing_gets_a_packet_without_extensions() {
        let source = publisher_header();
        let from = ExtensionIds {
            mid: Some(3),
            audio_level: Some(1),
        };
        let mut out = source.clone();
        rewrite(&mut out, &source, &from, Some(&DownExtensions::default()));
        assert!(!out.extension && out.extensions.is_empty());
        let mut out = source.clone();
        rewrite(&mut out, &source, &from, None);
        assert!(out.extensions.is_empty());
    }
}
