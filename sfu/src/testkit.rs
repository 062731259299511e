//! Classrooms in memory: `rtc` peers wired straight to a [`Router`], with no socket and fake time.
//!
//! Used by the router's own tests and the forwarding benchmark, so the media plane is exercised
//! through real ICE, DTLS and SRTP without any I/O.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

use crate::metrics::SfuMetrics;
use crate::router::{Router, RouterEvent};
use crate::{ClassId, ClassroomId, Role, RouterConfig, Source};

/// A classroom's peer connections, as a browser would hold them.
pub struct Peer {
    pub id: ClassroomId,
    pub addr: SocketAddr,
    pub publish: Option<RTCPeerConnection>,
    pub subscribe: Option<RTCPeerConnection>,
    sender: Option<(RTCRtpSenderId, u32, u8)>,
    /// A second track on the same publish leg (video, next to the microphone), and its numbering.
    second: Option<(RTCRtpSenderId, u32, u8)>,
    second_seq: u16,
    /// Sender reports received on the subscribe leg: (SSRC, NTP time, RTP time).
    pub sender_reports: Vec<(u32, u64, u32)>,
    /// RTP packets received on the subscribe leg.
    pub received: u64,
    /// Sequence numbers of the RTP packets received on the subscribe leg.
    pub received_seqs: Vec<u16>,
    /// Keyframe requests (PLI/FIR) its publish leg received.
    pub keyframe_requests: u64,
    /// Transport-wide congestion control feedback packets its publish leg received.
    pub transport_feedback: u64,
    /// The header of the last RTP packet received on the subscribe leg.
    pub last_received: Option<rtc::rtp::Header>,
    /// Every RTP packet received on the subscribe leg: (SSRC, sequence number, payload).
    pub received_packets: Vec<(u32, u16, Bytes)>,
    /// How many times its page joined again: each session's streams get other SSRCs, as a
    /// new browser session's do.
    generation: u32,
    /// How often its legs send consent checks (`None`: `rtc`'s default, 2 s).
    check_interval: Option<Duration>,
    seq: u16,
    /// Its legs negotiate RED (RFC 2198) beside Opus, as Chrome's do.
    red: bool,
    /// Payload type and payload of each RTP packet received on the subscribe leg.
    pub received_payloads: Vec<(u8, Bytes)>,
    /// The Opus frame it sent last, repeated as redundancy in its next RED packet.
    last_frame: Option<(u32, Bytes)>,
}

pub struct Harness {
    pub router: Router,
    /// The router's counters.
    pub metrics: Arc<SfuMetrics>,
    /// Lose the next media packet the router sends to these classrooms (a lossy downlink).
    pub lose_next_to: Vec<usize>,
    /// Lose the next media packet these classrooms send to the router (a lossy uplink).
    pub lose_next_from: Vec<usize>,
    /// Drop every DTLS record the router sends to this classroom's subscribe leg for this long,
    /// starting with its certificate flight: a loss burst in the middle of the handshake.
    pub dtls_blackout_to: Option<(usize, Duration)>,
    /// Drop every STUN datagram these classrooms send (a peer that stopped checking consent).
    pub mute_checks_from: Vec<usize>,
    /// Hold the RTP and RTCP of this SSRC this long on its way to the router (one stream of a
    /// publisher taking a slower path than its others).
    pub delay_ssrc: Option<(u32, Duration)>,
    held: Vec<(Instant, SocketAddr, BytesMut)>,
    blackout: Option<(usize, Instant)>,
    /// How many times the router sent each RTP sequence number to each classroom's subscribe leg.
    pub rtp_sent_to: HashMap<(usize, u16), u32>,
    /// Every event the router raised, in order.
    pub events: Vec<RouterEvent>,
    pub peers: Vec<Peer>,
    pub now: Instant,
    server: SocketAddr,
    class: ClassId,
}

/// The payload type `sender` sends with: the first codec its negotiation left.
fn sent_payload_type(pc: &mut RTCPeerConnection, sender: RTCRtpSenderId) -> u8 {
    pc.rtp_sender(sender)
        .and_then(|mut s| {
            s.get_parameters()
                .rtp_parameters
                .codecs
                .first()
                .map(|c| c.payload_type)
        })
        .expect("payload type")
}

fn new_pc(
    now: Instant,
    addr: SocketAddr,
    check_interval: Option<Duration>,
    red: bool,
) -> RTCPeerConnection {
    let mut media_engine = MediaEngine::default();
    media_engine.register_default_codecs().expect("codecs");
    if red {
        // Redundant audio as Chrome offers it, after Opus.
        media_engine
            .register_codec(
                rtc::rtp_transceiver::rtp_sender::RTCRtpCodecParameters {
                    rtp_codec: RTCRtpCodec {
                        mime_type: crate::codecs::MIME_TYPE_RED.into(),
                        clock_rate: 48_000,
                        channels: 2,
                        sdp_fmtp_line: "111/111".into(),
                        ..Default::default()
                    },
                    payload_type: crate::codecs::RED_PAYLOAD_TYPE,
                },
                RtpCodecKind::Audio,
            )
            .expect("red");
    }
    // Audio level first, so this client numbers it 1 in its offers (the server's own offers
    // number it otherwise: the forwarder must map one to the other).
    media_engine
        .register_header_extension(
            rtc::rtp_transceiver::rtp_sender::RTCRtpHeaderExtensionCapability {
                uri: rtc::sdp::extmap::AUDIO_LEVEL_URI.to_owned(),
            },
            RtpCodecKind::Audio,
            None,
        )
        .expect("audio level");
    // And mid on audio too, as browsers negotiate it on every m-line.
    media_engine
        .register_header_extension(
            rtc::rtp_transceiver::rtp_sender::RTCRtpHeaderExtensionCapability {
                uri: rtc::sdp::extmap::SDES_MID_URI.to_owned(),
            },
            RtpCodecKind::Audio,
            None,
        )
        .expect("mid");
    let registry =
        register_default_interceptors(rtc::interceptor::Registry::new(), &mut media_engine)
            .expect("interceptors")
            // Transport-wide sequence numbers on what it sends, as a browser stamps them.
            .with(
                rtc::interceptor::Slot::TwccSender,
                rtc::interceptor::TwccSenderBuilder::new().build(),
            )
            .with(
                rtc::interceptor::Slot::from(TRANSPORT_FEEDBACK_TAP_SLOT),
                // Transport-wide feedback through to the test (a browser's estimator reads it; the
                // test client has none).
                crate::feedback::RtcpTap::new(|packets| {
                    packets.iter().any(|p| is_transport_feedback(p.as_ref()))
                }),
            )
            .with(
                rtc::interceptor::Slot::from(crate::feedback::KEYFRAME_TAP_SLOT),
                crate::feedback::RtcpTap::keyframe_requests(),
            )
            .with(
                rtc::interceptor::Slot::from(crate::lipsync::SENDER_REPORT_TAP_SLOT),
                crate::lipsync::sender_report_tap(),
            );
    // A peer that checks less often than the default also tolerates longer silences itself.
    let settings = SettingEngineBuilder::new()
        .with_ice_timeouts(
            check_interval.map(|i| i * 3),
            check_interval.map(|i| i * 5),
            check_interval,
        )
        .build();
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_setting_engine(settings)
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .build(now)
        .expect("peer connection");
    pc.add_local_candidate(crate::transport::host_candidate(addr).expect("candidate"))
        .expect("local candidate");
    pc
}

/// Where the client's tap sits: next to the keyframe tap, nearest the application.
const TRANSPORT_FEEDBACK_TAP_SLOT: usize = crate::feedback::KEYFRAME_TAP_SLOT + 10;

fn is_transport_feedback(p: &dyn rtc::rtcp::Packet) -> bool {
    p.as_any()
        .is::<rtc::rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc>()
}

/// A Binding request signed with `password`, as `rtc-stun` builds it for a client.
pub fn signed_binding_request(username: &str, password: &str) -> Vec<u8> {
    use rtc::stun::message::{BINDING_REQUEST, Message, TransactionId};
    use rtc::stun::textattrs::TextAttribute;
    let provider = rtc::crypto::default_provider().expect("crypto provider");
    let mut m = Message::new();
    let integrity = rtc::stun::integrity::MessageIntegrity::new_short_term_integrity_with_provider(
        password.to_owned(),
        provider.crypto(),
    );
    m.build(&[
        Box::new(BINDING_REQUEST),
        Box::new(TransactionId::new()),
        Box::new(TextAttribute::new(
            rtc::stun::attributes::ATTR_USERNAME,
            username.to_owned(),
        )),
        Box::new(integrity),
        Box::new(rtc::stun::fingerprint::FINGERPRINT),
    ])
    .expect("stun message");
    m.raw
}

/// An SRTP media packet (not STUN, DTLS or RTCP; RFC 5761/7983).
fn is_rtp(datagram: &[u8]) -> bool {
    datagram.len() > 12 && datagram[0] & 0xC0 == 0x80 && !(192..=223).contains(&datagram[1])
}

/// The sender SSRC of an SRTP or SRTCP packet (both leave it in the clear).
fn media_ssrc(datagram: &[u8]) -> Option<u32> {
    if datagram.len() < 12 || datagram[0] & 0xC0 != 0x80 {
        return None;
    }
    let at = if (192..=223).contains(&datagram[1]) {
        4
    } else {
        8
    };
    Some(u32::from_be_bytes([
        datagram[at],
        datagram[at + 1],
        datagram[at + 2],
        datagram[at + 3],
    ]))
}

/// A DTLS record (RFC 7983: first byte 20..=63).
fn is_dtls(datagram: &[u8]) -> bool {
    matches!(datagram.first(), Some(20..=63))
}

/// A datagram that starts with a DTLS Certificate handshake message (record type 22, handshake
/// type 11, after the 13-byte record header).
fn starts_certificate(datagram: &[u8]) -> bool {
    datagram.len() > 13 && datagram[0] == 22 && datagram[13] == 11
}

/// Each leg of a classroom has its own address, as a browser's two peer connections do.
fn subscribe_addr(publish: SocketAddr) -> SocketAddr {
    SocketAddr::new(publish.ip(), publish.port() + 10_000)
}

impl Harness {
    pub fn new() -> Self {
        let server: SocketAddr = "127.0.0.1:8443".parse().expect("addr");
        let metrics = Arc::new(SfuMetrics::default());
        Self {
            router: Router::new(RouterConfig::new(server), metrics.clone()),
            metrics,
            events: Vec::new(),
            lose_next_to: Vec::new(),
            lose_next_from: Vec::new(),
            dtls_blackout_to: None,
            mute_checks_from: Vec::new(),
            delay_ssrc: None,
            held: Vec::new(),
            blackout: None,
            rtp_sent_to: HashMap::new(),
            peers: Vec::new(),
            now: Instant::now(),
            server,
            class: ClassId::from("c_test"),
        }
    }

    /// A classroom joins; returns its index.
    pub fn join(&mut self, role: Role) -> usize {
        self.join_checking_every(role, None)
    }

    /// A classroom whose legs send a consent check every `interval` (RFC 7675 peers: 5 s ± 20 %).
    pub fn join_checking_every(&mut self, role: Role, interval: Option<Duration>) -> usize {
        let index = self.peers.len();
        let id = ClassroomId::from(format!("r_{index}"));
        self.router
            .join(self.now, self.class.clone(), id.clone(), role);
        self.peers.push(Peer {
            id,
            addr: SocketAddr::from(([127, 0, 0, 1], 20_000 + index as u16)),
            publish: None,
            subscribe: None,
            sender: None,
            second: None,
            second_seq: 0,
            sender_reports: Vec::new(),
            received: 0,
            received_seqs: Vec::new(),
            check_interval: interval,
            keyframe_requests: 0,
            transport_feedback: 0,
            last_received: None,
            received_packets: Vec::new(),
            generation: 0,
            seq: 0,
            red: false,
            received_payloads: Vec::new(),
            last_frame: None,
        });
        self.pump();
        index
    }

    /// A classroom whose legs negotiate RED beside Opus, as Chrome's do; returns its index.
    pub fn join_with_red(&mut self, role: Role) -> usize {
        let index = self.join(role);
        self.peers[index].red = true;
        index
    }

    /// A publisher that negotiated RED sends one Opus frame as a browser does: in a RED packet
    /// (RFC 2198) that repeats its previous frame as redundancy (not yet delivered).
    pub fn send_red(&mut self, index: usize, frame: Bytes) {
        let now = self.now;
        let peer = &mut self.peers[index];
        let (sender, ssrc, _) = peer.sender.expect("publishing");
        peer.seq = peer.seq.wrapping_add(1);
        let timestamp = peer.seq as u32 * 960;
        let mut payload = BytesMut::new();
        let redundant: Vec<(u8, u16, &[u8])> = peer
            .last_frame
            .iter()
            .map(|(ts, f)| (111, timestamp.wrapping_sub(*ts) as u16, &f[..]))
            .collect();
        crate::red::build(111, &frame, &redundant, &mut payload).expect("red payload");
        peer.last_frame = Some((timestamp, frame));
        let packet = rtc::rtp::Packet {
            header: rtc::rtp::Header {
                version: 2,
                payload_type: crate::codecs::RED_PAYLOAD_TYPE,
                sequence_number: peer.seq,
                timestamp,
                ssrc,
                ..Default::default()
            },
            payload: payload.freeze(),
        };
        if let Some(pc) = peer.publish.as_mut()
            && let Some(mut s) = pc.rtp_sender(sender)
        {
            s.write_rtp(now, packet).expect("write");
        }
    }

    /// The classroom publishes one Opus track.
    pub fn publish_audio(&mut self, index: usize) {
        self.publish(index, RtpCodecKind::Audio);
    }

    /// The classroom publishes one VP8 camera track.
    pub fn publish_video(&mut self, index: usize) {
        self.publish(index, RtpCodecKind::Video);
    }

    /// The classroom publishes one camera track in `mime` with these format parameters (an
    /// H.264 profile, say).
    pub fn publish_video_as(&mut self, index: usize, mime: &str, fmtp: &str) {
        self.publish_codec(index, RtpCodecKind::Video, Some((mime, fmtp)));
    }

    fn publish(&mut self, index: usize, kind: RtpCodecKind) {
        self.publish_codec(index, kind, None);
    }

    fn publish_codec(&mut self, index: usize, kind: RtpCodecKind, codec: Option<(&str, &str)>) {
        let (mime, clock_rate, channels, name, source) = match kind {
            RtpCodecKind::Audio => ("audio/opus", 48000, 2, "mic", Source::Microphone),
            _ => ("video/VP8", 90000, 0, "cam", Source::Camera),
        };
        let (mime, fmtp) = codec.unwrap_or((mime, ""));
        let peer = &mut self.peers[index];
        let mut pc = new_pc(self.now, peer.addr, peer.check_interval, peer.red);
        let ssrc = 0x1000 + index as u32 + peer.generation * 0x10_000;
        let track = MediaStreamTrack::new(
            "s".into(),
            format!("{name}-{index}"),
            name.into(),
            kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: RTCRtpCodec {
                    mime_type: mime.into(),
                    clock_rate,
                    channels,
                    sdp_fmtp_line: fmtp.into(),
                    ..Default::default()
                },
                ..Default::default()
            }],
        );
        let sender = pc.add_track(track).expect("track");
        let offer = pc.create_offer(None).expect("offer");
        pc.set_local_description(self.now, offer.clone())
            .expect("local");
        let answer = self
            .router
            .publish_offer(
                self.now,
                &peer.id,
                offer.sdp,
                [(format!("{name}-{index}"), source)],
            )
            .expect("answer");
        pc.set_remote_description(
            self.now,
            RTCSessionDescription::answer(answer).expect("sdp"),
        )
        .expect("remote");
        let pt = sent_payload_type(&mut pc, sender);
        peer.sender = Some((sender, ssrc, pt));
        peer.publish = Some(pc);
        self.pump();
    }

    /// The classroom publishes a microphone and a camera on one leg, as a browser does.
    /// Send on them with [`Harness::send_timed`].
    pub fn publish_audio_and_video(&mut self, index: usize) {
        let peer = &mut self.peers[index];
        let mut pc = new_pc(self.now, peer.addr, peer.check_interval, peer.red);
        let mut senders = Vec::new();
        for (kind, mime, clock_rate, channels, name, ssrc) in [
            (
                RtpCodecKind::Audio,
                "audio/opus",
                48000,
                2,
                "mic",
                0x1000 + index as u32,
            ),
            (
                RtpCodecKind::Video,
                "video/VP8",
                90000,
                0,
                "cam",
                0x2000 + index as u32,
            ),
        ] {
            let track = MediaStreamTrack::new(
                "s".into(),
                format!("{name}-{index}"),
                name.into(),
                kind,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    codec: RTCRtpCodec {
                        mime_type: mime.into(),
                        clock_rate,
                        channels,
                        ..Default::default()
                    },
                    ..Default::default()
                }],
            );
            senders.push((pc.add_track(track).expect("track"), ssrc));
        }
        let offer = pc.create_offer(None).expect("offer");
        pc.set_local_description(self.now, offer.clone())
            .expect("local");
        let answer = self
            .router
            .publish_offer(
                self.now,
                &peer.id,
                offer.sdp,
                [
                    (format!("mic-{index}"), Source::Microphone),
                    (format!("cam-{index}"), Source::Camera),
                ],
            )
            .expect("answer");
        pc.set_remote_description(
            self.now,
            RTCSessionDescription::answer(answer).expect("sdp"),
        )
        .expect("remote");
        let mut with_pt = senders.into_iter().map(|(sender, ssrc)| {
            let pt = sent_payload_type(&mut pc, sender);
            (sender, ssrc, pt)
        });
        peer.sender = with_pt.next();
        peer.second = with_pt.next();
        peer.publish = Some(pc);
        self.pump();
    }

    /// The SSRCs of a classroom's microphone and camera ([`Harness::publish_audio_and_video`]).
    pub fn audio_and_video_ssrcs(&self, index: usize) -> (u32, u32) {
        let peer = &self.peers[index];
        (
            peer.sender.expect("publishing").1,
            peer.second.expect("publishing video").1,
        )
    }

    /// A publisher of audio and video sends one packet on its camera (`video`) or microphone,
    /// with this RTP timestamp (not yet delivered).
    pub fn send_timed(&mut self, index: usize, video: bool, payload: Bytes, timestamp: u32) {
        let now = self.now;
        let peer = &mut self.peers[index];
        let (sender, ssrc, pt, seq) = if video {
            let (sender, ssrc, pt) = peer.second.expect("publishing video");
            peer.second_seq = peer.second_seq.wrapping_add(1);
            (sender, ssrc, pt, peer.second_seq)
        } else {
            let (sender, ssrc, pt) = peer.sender.expect("publishing");
            peer.seq = peer.seq.wrapping_add(1);
            (sender, ssrc, pt, peer.seq)
        };
        let packet = rtc::rtp::Packet {
            header: rtc::rtp::Header {
                version: 2,
                payload_type: pt,
                sequence_number: seq,
                timestamp,
                ssrc,
                marker: video,
                ..Default::default()
            },
            payload,
        };
        if let Some(pc) = peer.publish.as_mut()
            && let Some(mut s) = pc.rtp_sender(sender)
        {
            s.write_rtp(now, packet).expect("write");
        }
    }

    /// The classroom stops its track and renegotiates, as a browser does when a share ends.
    pub fn stop_publishing(&mut self, index: usize) {
        let now = self.now;
        let peer = &mut self.peers[index];
        let (sender, ..) = peer.sender.take().expect("publishing");
        let pc = peer.publish.as_mut().expect("publish leg");
        pc.remove_track(sender).expect("remove");
        let offer = pc.create_offer(None).expect("offer");
        pc.set_local_description(now, offer.clone()).expect("local");
        let answer = self
            .router
            .publish_offer(now, &peer.id, offer.sdp, [])
            .expect("answer");
        pc.set_remote_description(now, RTCSessionDescription::answer(answer).expect("sdp"))
            .expect("remote");
        self.pump();
    }

    /// The classroom, publishing a camera ([`Harness::publish_video`]), shares a screen: a new
    /// VP8 track (`rtc_track` its msid track id, a new one per share, as a browser's is) on the
    /// same publish leg, renegotiated. Send on it with [`Harness::send_timed`] (`video`).
    pub fn share_screen(&mut self, index: usize, rtc_track: &str, ssrc: u32) {
        let now = self.now;
        let peer = &mut self.peers[index];
        let pc = peer.publish.as_mut().expect("publish leg");
        let track = MediaStreamTrack::new(
            format!("screen-{rtc_track}"),
            rtc_track.into(),
            "screen".into(),
            RtpCodecKind::Video,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: RTCRtpCodec {
                    mime_type: "video/VP8".into(),
                    clock_rate: 90000,
                    ..Default::default()
                },
                ..Default::default()
            }],
        );
        let sender = pc.add_track(track).expect("track");
        let offer = pc.create_offer(None).expect("offer");
        pc.set_local_description(now, offer.clone()).expect("local");
        let camera = format!("cam-{index}");
        let answer = self
            .router
            .publish_offer(
                now,
                &peer.id,
                offer.sdp,
                [
                    (camera, Source::Camera),
                    (rtc_track.to_owned(), Source::Screen),
                ],
            )
            .expect("answer");
        pc.set_remote_description(now, RTCSessionDescription::answer(answer).expect("sdp"))
            .expect("remote");
        let pt = sent_payload_type(pc, sender);
        peer.second = Some((sender, ssrc, pt));
        self.pump();
    }

    /// The classroom stops its screen share ([`Harness::share_screen`]) and renegotiates; its
    /// camera goes on.
    pub fn stop_screen(&mut self, index: usize) {
        let now = self.now;
        let peer = &mut self.peers[index];
        let (sender, ..) = peer.second.take().expect("sharing");
        let pc = peer.publish.as_mut().expect("publish leg");
        pc.remove_track(sender).expect("remove");
        let offer = pc.create_offer(None).expect("offer");
        pc.set_local_description(now, offer.clone()).expect("local");
        let answer = self
            .router
            .publish_offer(
                now,
                &peer.id,
                offer.sdp,
                [(format!("cam-{index}"), Source::Camera)],
            )
            .expect("answer");
        pc.set_remote_description(now, RTCSessionDescription::answer(answer).expect("sdp"))
            .expect("remote");
        self.pump();
    }

    /// The publisher sends one RTP packet (not yet delivered).
    pub fn send_packet(&mut self, index: usize, payload: Bytes) {
        self.send_packet_with_level(index, payload, None);
    }

    /// The publisher's audio leg negotiated the RFC 6464 audio level under this id.
    pub fn audio_level_id(&mut self, index: usize) -> Option<u8> {
        let peer = &mut self.peers[index];
        let (sender, ..) = peer.sender?;
        let mut s = peer.publish.as_mut()?.rtp_sender(sender)?;
        crate::extensions::ExtensionIds::from_parameters(
            &s.get_parameters().rtp_parameters.header_extensions,
        )
        .audio_level
    }

    /// The publisher sends one RTP packet (not yet delivered), with an RFC 6464 audio level
    /// (voice activity, -dBov) when given, as a browser's microphone does.
    pub fn send_packet_with_level(
        &mut self,
        index: usize,
        payload: Bytes,
        level: Option<(bool, u8)>,
    ) {
        let level_id = level.and(self.audio_level_id(index));
        let now = self.now;
        let peer = &mut self.peers[index];
        let (sender, ssrc, pt) = peer.sender.expect("publishing");
        peer.seq = peer.seq.wrapping_add(1);
        let packet = rtc::rtp::Packet {
            header: rtc::rtp::Header {
                version: 2,
                payload_type: pt,
                sequence_number: peer.seq,
                timestamp: peer.seq as u32 * 960,
                ssrc,
                ..Default::default()
            },
            payload,
        };
        let mut packet = packet;
        if let (Some(id), Some((voice, dbov))) = (level_id, level) {
            let byte = (u8::from(voice) << 7) | (dbov & 0x7f);
            packet
                .header
                .set_extension(id, Bytes::copy_from_slice(&[byte]))
                .expect("audio level");
        }
        if let Some(pc) = peer.publish.as_mut()
            && let Some(mut s) = pc.rtp_sender(sender)
        {
            s.write_rtp(now, packet).expect("write");
        }
    }

    /// The classroom's page reloads: it joins again and publishes anew, its RTP numbering
    /// starting somewhere else (as a new browser session's does).
    pub fn rejoin_and_publish_video(&mut self, index: usize) {
        let now = self.now;
        let role = crate::Role::Master;
        let peer = &mut self.peers[index];
        peer.publish = None;
        peer.subscribe = None;
        peer.sender = None;
        peer.seq = peer.seq.wrapping_add(20_000);
        peer.generation += 1;
        let id = peer.id.clone();
        self.router.join(now, self.class.clone(), id, role);
        self.pump();
        self.publish_video(index);
    }

    /// A receive-only viewer (WHEP) offers audio and video reception; returns its index.
    pub fn view(&mut self) -> Result<usize, crate::SfuError> {
        use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
        let index = self.join(Role::Viewer);
        let now = self.now;
        let peer = &mut self.peers[index];
        let mut pc = new_pc(now, subscribe_addr(peer.addr), None, peer.red);
        for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
            pc.add_transceiver_from_kind(
                kind,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    streams: vec![],
                    send_encodings: vec![],
                }),
            )
            .expect("transceiver");
        }
        let offer = pc.create_offer(None).expect("offer");
        pc.set_local_description(now, offer.clone()).expect("local");
        let answer = self.router.view_offer(now, &peer.id, offer.sdp)?;
        pc.set_remote_description(now, RTCSessionDescription::answer(answer).expect("sdp"))
            .expect("remote");
        peer.subscribe = Some(pc);
        self.pump();
        Ok(index)
    }

    /// The datagrams a publisher has queued (for replaying into the router in a benchmark).
    pub fn take_publisher_datagrams(&mut self, index: usize) -> Vec<(SocketAddr, BytesMut)> {
        let peer = &mut self.peers[index];
        let mut out = Vec::new();
        if let Some(pc) = peer.publish.as_mut() {
            while let Some(d) = pc.poll_write() {
                out.push((peer.addr, d.message));
            }
        }
        out
    }

    /// Move datagrams and events until nothing moves, advancing fake time a little each round.
    pub fn pump(&mut self) {
        for _ in 0..200 {
            let mut moved = false;
            // Peers → router.
            let mut inbound = Vec::new();
            for peer in &mut self.peers {
                let (publish_addr, subscribe_addr) = (peer.addr, subscribe_addr(peer.addr));
                for (pc, addr) in [
                    (peer.publish.as_mut(), publish_addr),
                    (peer.subscribe.as_mut(), subscribe_addr),
                ] {
                    if let Some(pc) = pc {
                        while let Some(d) = pc.poll_write() {
                            inbound.push((addr, d.message));
                        }
                    }
                }
            }
            let mut inbound: Vec<(SocketAddr, BytesMut)> = inbound
                .into_iter()
                .filter_map(|(from, data)| match self.delay_ssrc {
                    Some((ssrc, delay)) if media_ssrc(&data) == Some(ssrc) => {
                        self.held.push((self.now + delay, from, data));
                        None
                    }
                    _ => Some((from, data)),
                })
                .collect();
            let now = self.now;
            let (due, held): (Vec<_>, Vec<_>) =
                self.held.drain(..).partition(|(at, ..)| *at <= now);
            self.held = held;
            inbound.extend(due.into_iter().map(|(_, from, data)| (from, data)));
            for (from, data) in inbound {
                moved = true;
                if crate::demux::is_stun(&data)
                    && self.mute_checks_from.iter().any(|&i| {
                        self.peers[i].addr == from || subscribe_addr(self.peers[i].addr) == from
                    })
                {
                    continue;
                }
                if is_rtp(&data)
                    && let Some(at) = self
                        .lose_next_from
                        .iter()
                        .position(|&i| self.peers[i].addr == from)
                {
                    self.lose_next_from.remove(at);
                    continue;
                }
                self.router
                    .handle_datagram(self.now, self.server, from, &data);
            }
            // Router → peers.
            let by_addr: HashMap<SocketAddr, (usize, bool)> = self
                .peers
                .iter()
                .enumerate()
                .flat_map(|(i, p)| [(p.addr, (i, false)), (subscribe_addr(p.addr), (i, true))])
                .collect();
            while let Some(t) = self.router.poll_transmit() {
                moved = true;
                let Some(&(i, subscribe)) = by_addr.get(&t.to) else {
                    continue;
                };
                if subscribe && is_rtp(&t.data) {
                    let seq = u16::from_be_bytes([t.data[2], t.data[3]]);
                    *self.rtp_sent_to.entry((i, seq)).or_default() += 1;
                }
                if subscribe && is_dtls(&t.data) {
                    if let Some((l, burst)) = self.dtls_blackout_to
                        && l == i
                        && starts_certificate(&t.data)
                    {
                        self.blackout = Some((i, self.now + burst));
                        self.dtls_blackout_to = None;
                    }
                    if self
                        .blackout
                        .is_some_and(|(l, until)| l == i && self.now < until)
                    {
                        continue;
                    }
                }
                if subscribe
                    && is_rtp(&t.data)
                    && let Some(at) = self.lose_next_to.iter().position(|&l| l == i)
                {
                    self.lose_next_to.remove(at);
                    continue;
                }
                let peer = &mut self.peers[i];
                let message = TaggedBytesMut {
                    now: self.now,
                    transport: TransportContext {
                        local_addr: t.to,
                        peer_addr: self.server,
                        ecn: None,
                        transport_protocol: TransportProtocol::UDP,
                    },
                    message: t.data,
                };
                let pc = if subscribe {
                    peer.subscribe.as_mut()
                } else {
                    peer.publish.as_mut()
                };
                if let Some(pc) = pc {
                    let _ = pc.handle_read(message);
                }
            }
            while let Some(event) = self.router.poll_event() {
                self.events.push(event.clone());
                if let RouterEvent::SubscribeOffer { classroom, sdp, .. } = event {
                    moved = true;
                    self.answer(&classroom, sdp);
                }
            }
            for peer in &mut self.peers {
                if let Some(pc) = peer.subscribe.as_mut() {
                    while let Some(m) = pc.poll_read() {
                        match m.message {
                            RTCMessage::RtpPacket(_, packet) => {
                                peer.received += 1;
                                peer.received_seqs.push(packet.header.sequence_number);
                                peer.received_payloads
                                    .push((packet.header.payload_type, packet.payload.clone()));
                                peer.received_packets.push((
                                    packet.header.ssrc,
                                    packet.header.sequence_number,
                                    packet.payload.clone(),
                                ));
                                peer.last_received = Some(packet.header);
                            }
                            RTCMessage::RtcpPacket(_, packets) => {
                                for sr in crate::lipsync::sender_reports(&packets) {
                                    peer.sender_reports
                                        .push((sr.ssrc, sr.ntp_time, sr.rtp_time));
                                }
                            }
                            _ => {}
                        }
                    }
                    while pc.poll_event().is_some() {}
                }
                if let Some(pc) = peer.publish.as_mut() {
                    while let Some(m) = pc.poll_read() {
                        if let RTCMessage::RtcpPacket(_, packets) = m.message {
                            if crate::feedback::asks_for_keyframe(&packets) {
                                peer.keyframe_requests += 1;
                            }
                            peer.transport_feedback += packets
                                .iter()
                                .filter(|p| is_transport_feedback(p.as_ref()))
                                .count()
                                as u64;
                        }
                    }
                    while pc.poll_event().is_some() {}
                }
            }
            if !moved {
                self.now += Duration::from_millis(5);
                self.router.handle_timeout(self.now);
                for peer in &mut self.peers {
                    for pc in [peer.publish.as_mut(), peer.subscribe.as_mut()]
                        .into_iter()
                        .flatten()
                    {
                        let _ = pc.handle_timeout(self.now);
                    }
                }
                if self.peers.iter_mut().all(|p| {
                    [p.publish.as_mut(), p.subscribe.as_mut()]
                        .into_iter()
                        .flatten()
                        .all(|pc| pc.poll_timeout().is_none_or(|t| t > self.now))
                }) {
                    break;
                }
            }
        }
    }

    fn answer(&mut self, classroom: &ClassroomId, sdp: String) {
        let now = self.now;
        let Some(peer) = self.peers.iter_mut().find(|p| &p.id == classroom) else {
            return;
        };
        let addr = subscribe_addr(peer.addr);
        let (interval, red) = (peer.check_interval, peer.red);
        let pc = peer
            .subscribe
            .get_or_insert_with(|| new_pc(now, addr, interval, red));
        pc.set_remote_description(now, RTCSessionDescription::offer(sdp).expect("sdp"))
            .expect("remote offer");
        let answer = pc.create_answer(None).expect("answer");
        pc.set_local_description(now, answer.clone())
            .expect("local");
        self.router
            .subscribe_answer(now, classroom, answer.sdp)
            .expect("answer accepted");
    }

    /// Let `duration` of fake time pass, moving everything.
    pub fn run_for(&mut self, duration: Duration) {
        let end = self.now + duration;
        while self.now < end {
            self.pump();
            self.now += Duration::from_millis(10);
            self.router.handle_timeout(self.now);
        }
    }
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}
