//! The codecs every leg negotiates: Opus, and the video codecs browsers and WHIP encoders send.
//!
//! No RTX (RFC 4588). `rtc` 0.21 unwraps RTX only after its interceptor chain, so its NACK
//! generator never sees a repaired packet arrive and asks for it again every interval until the
//! packet leaves its window: one lost packet was sent about 70 times (test
//! `router::tests::lost_video_packets_are_retransmitted_on_both_legs`). Without RTX, browsers and `rtc` retransmit
//! on the media SSRC, which the generator does count, and the forwarding path is the same.

use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_AV1, MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8, MIME_TYPE_VP9, MediaEngine,
};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind, TYPE_RTCP_FB_NACK,
};

use crate::SfuError;

/// Register the SFU's codecs, with NACK, PLI and FIR on video.
pub fn register(media_engine: &mut MediaEngine) -> Result<(), SfuError> {
    media_engine.register_codec(
        codec(
            MIME_TYPE_OPUS,
            48_000,
            2,
            "minptime=10;useinbandfec=1",
            111,
            vec![],
        ),
        RtpCodecKind::Audio,
    )?;
    let feedback = || {
        [
            ("goog-remb", ""),
            ("ccm", "fir"),
            (TYPE_RTCP_FB_NACK, ""),
            (TYPE_RTCP_FB_NACK, "pli"),
        ]
        .into_iter()
        .map(|(typ, parameter)| RTCPFeedback {
            typ: typ.to_owned(),
            parameter: parameter.to_owned(),
        })
        .collect::<Vec<_>>()
    };
    for (mime, fmtp, payload_type) in [
        (MIME_TYPE_VP8, "", 96),
        (MIME_TYPE_VP9, "profile-id=0", 98),
        (
            MIME_TYPE_H264,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f",
            102,
        ),
        (
            MIME_TYPE_H264,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
            125,
        ),
        (MIME_TYPE_AV1, "profile-id=0", 41),
    ] {
        media_engine.register_codec(
            codec(mime, 90_000, 0, fmtp, payload_type, feedback()),
            RtpCodecKind::Video,
        )?;
    }
    Ok(())
}

fn codec(
    mime: &str,
    clock_rate: u32,
    channels: u16,
    fmtp: &str,
    payload_type: u8,
    rtcp_feedback: Vec<RTCPFeedback>,
) -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: mime.to_owned(),
            clock_rate,
            channels,
            sdp_fmtp_line: fmtp.to_owned(),
            rtcp_feedback,
        },
        payload_type,
    }
}
