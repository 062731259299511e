//! The codecs every leg negotiates: Opus (with RED, RFC 2198), and the video codecs browsers and WHIP encoders send.
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
    TYPE_RTCP_FB_TRANSPORT_CC,
};

use crate::SfuError;

/// The mime type of redundant audio (RFC 2198).
pub const MIME_TYPE_RED: &str = "audio/red";

/// The payload type the server gives RED in its own offers (Chrome's).
pub const RED_PAYLOAD_TYPE: u8 = 63;

/// Whether `mime` is redundant audio.
pub fn is_red(mime: &str) -> bool {
    mime.eq_ignore_ascii_case(MIME_TYPE_RED)
}
use crate::ids::Leg;

/// Register the SFU's codecs, with NACK, PLI and FIR on video, and on publish legs
/// transport-wide congestion control feedback (answered by the `rtc` TWCC receiver,
/// [`crate::transport`]). No `goog-remb`: the server sends no REMB.
pub fn register(media_engine: &mut MediaEngine, leg: Leg) -> Result<(), SfuError> {
    let transport_cc = || {
        (leg == Leg::Publish).then(|| RTCPFeedback {
            typ: TYPE_RTCP_FB_TRANSPORT_CC.to_owned(),
            parameter: String::new(),
        })
    };
    media_engine.register_codec(
        codec(
            MIME_TYPE_OPUS,
            48_000,
            2,
            "minptime=10;useinbandfec=1",
            111,
            transport_cc().into_iter().collect(),
        ),
        RtpCodecKind::Audio,
    )?;
    // Redundant audio (RFC 2198) over that Opus, numbered and parameterised as Chrome offers
    // it. Listed after Opus: a peer sends RED only when it prefers it ([`crate::red`]).
    media_engine.register_codec(
        codec(
            MIME_TYPE_RED,
            48_000,
            2,
            "111/111",
            RED_PAYLOAD_TYPE,
            Vec::new(),
        ),
        RtpCodecKind::Audio,
    )?;
    let feedback = || {
        [
            ("ccm", "fir"),
            (TYPE_RTCP_FB_NACK, ""),
            (TYPE_RTCP_FB_NACK, "pli"),
        ]
        .into_iter()
        .map(|(typ, parameter)| RTCPFeedback {
            typ: typ.to_owned(),
            parameter: parameter.to_owned(),
        })
        .chain(transport_cc())
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

/// Whether two codecs are the same for forwarding: mime type, clock rate, channels, and the
/// format parameters that change the bitstream (RFC 6184 §8.1 for H.264: `packetization-mode`
/// and the profile part of `profile-level-id`; VP9 `profile-id`; AV1 `profile`). Two H.264
/// profiles are two codecs.
pub fn same_codec(a: &RTCRtpCodec, b: &RTCRtpCodec) -> bool {
    if !a.mime_type.eq_ignore_ascii_case(&b.mime_type)
        || a.clock_rate != b.clock_rate
        || a.channels.max(1) != b.channels.max(1)
    {
        return false;
    }
    let (fa, fb) = (&a.sdp_fmtp_line, &b.sdp_fmtp_line);
    if a.mime_type.eq_ignore_ascii_case(MIME_TYPE_H264) {
        // profile_idc and profile-iop (constraint flags); the level may differ (it is
        // negotiable, `level-asymmetry-allowed`).
        let profile = |f: &str| {
            fmtp(f, "profile-level-id")
                .map(|p| p.get(..4).unwrap_or(p).to_ascii_lowercase())
                .unwrap_or_else(|| "4200".to_owned())
        };
        let mode = |f: &str| fmtp(f, "packetization-mode").unwrap_or("0").to_owned();
        return profile(fa) == profile(fb) && mode(fa) == mode(fb);
    }
    for (mime, key) in [(MIME_TYPE_VP9, "profile-id"), (MIME_TYPE_AV1, "profile")] {
        if a.mime_type.eq_ignore_ascii_case(mime) {
            return fmtp(fa, key).unwrap_or("0") == fmtp(fb, key).unwrap_or("0");
        }
    }
    true
}

/// The value of `key` in an SDP `a=fmtp` parameter list (`k=v;k=v`).
fn fmtp<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim().eq_ignore_ascii_case(key).then_some(v.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(mime: &str, clock_rate: u32, channels: u16, fmtp: &str) -> RTCRtpCodec {
        RTCRtpCodec {
            mime_type: mime.to_owned(),
            clock_rate,
            channels,
            sdp_fmtp_line: fmtp.to_owned(),
            rtcp_feedback: vec![],
        }
    }

    #[test]
    fn two_h264_profiles_are_two_codecs() {
        let baseline = c(
            MIME_TYPE_H264,
            90_000,
            0,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f",
        );
        let constrained = c(
            MIME_TYPE_H264,
            90_000,
            0,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        );
        let mode0 = c(
            MIME_TYPE_H264,
            90_000,
            0,
            "packetization-mode=0;profile-level-id=42e01f",
        );
        let higher_level = c(
            "video/h264",
            90_000,
            0,
            "profile-level-id=42E034;packetization-mode=1",
        );
        assert!(!same_codec(&baseline, &constrained));
        assert!(!same_codec(&constrained, &mode0));
        assert!(
            same_codec(&constrained, &higher_level),
            "the level is negotiable"
        );
    }

    #[test]
    fn clock_rate_channels_and_profiles_count() {
        let opus = c(MIME_TYPE_OPUS, 48_000, 2, "minptime=10;useinbandfec=1");
        assert!(same_codec(&opus, &c("audio/OPUS", 48_000, 2, "")));
        assert!(!same_codec(&opus, &c(MIME_TYPE_OPUS, 48_000, 1, "")));
        assert!(!same_codec(&opus, &c(MIME_TYPE_OPUS, 16_000, 2, "")));
        let vp9 = c(MIME_TYPE_VP9, 90_000, 0, "profile-id=0");
        assert!(same_codec(&vp9, &c(MIME_TYPE_VP9, 90_000, 0, "")));
        assert!(!same_codec(
            &vp9,
            &c(MIME_TYPE_VP9, 90_000, 0, "profile-id=2")
        ));
    }
}
