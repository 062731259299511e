//! One WebRTC leg of a classroom: an `rtc` peer connection on the shared port.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rtc::interceptor::{
    NackGeneratorBuilder, NackResponderBuilder, ReceiverReportBuilder, Registry, Slot,
    TwccReceiverBuilder,
};
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::RTCPeerConnectionBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCIceCandidate, RTCIceCandidateInit,
};

use crate::ids::{ClassroomId, Leg};
use crate::{RouterConfig, SfuError};

/// Key of a transport inside the router.
pub type TransportKey = u64;

pub struct Transport {
    pub pc: RTCPeerConnection,
    /// The server's ICE ufrag this leg is found by (empty until its first local description).
    /// The ICE agent picks new credentials on every ICE restart, so the router keeps its
    /// demultiplexing map in step with the local description (`Router::sync_ufrag`).
    pub ufrag: String,
    /// The ICE password of the server's side (from the same local description as `ufrag`): a
    /// check counts only if it is signed with it.
    pub ice_pwd: String,
    pub leg: Leg,
    pub classroom: ClassroomId,
    /// Whether media is forwarded on this leg: it connected (ICE and DTLS), has not failed, and
    /// its consent is fresh. What [`crate::RouterEvent::LegState`] last said.
    pub connected: bool,
    /// The peer connection reached `connected` and has not failed or closed since. A transient
    /// ICE `disconnected` does not clear it.
    pub pc_up: bool,
    /// When the peer last sent a connectivity check that verified (RFC 7675 consent).
    pub consent_at: Option<Instant>,
    pub remote_addr: Option<SocketAddr>,
    /// Which host candidates this leg announces (see [`RouterConfig`]).
    udp: bool,
    tcp: bool,
}

impl Transport {
    pub fn new(
        now: Instant,
        config: &RouterConfig,
        leg: Leg,
        classroom: ClassroomId,
    ) -> Result<Self, SfuError> {
        let mut media_engine = MediaEngine::default();
        crate::codecs::register(&mut media_engine, leg)?;
        crate::extensions::register(&mut media_engine, leg)?;
        let mut registry = media_interceptors(Registry::new(), config);
        if leg == Leg::Publish {
            // Transport-wide feedback to the publisher (draft-holmer-rmcat-transport-wide-cc):
            // its browser's send-side estimator runs on it.
            registry = registry.with(Slot::TwccReceiver, TwccReceiverBuilder::new().build());
        }

        // No fixed ICE credentials: the agent draws random ones, and fresh ones on each ICE
        // restart (RFC 8445 §9: both sides of a restarted session use new credentials). Fixed
        // ones here would be reused by every restart.
        // The router keeps consent itself (`Transport::consent_at`); `rtc-ice`'s own liveness
        // timer (5 s by default, and fed by any packet) would only flap the state, so it waits
        // as long as consent does and stays a backstop.
        let setting_engine = SettingEngineBuilder::new()
            .with_lite(true)
            .with_ice_timeouts(Some(config.consent_timeout), Some(ICE_FAILED_AFTER), None)
            .build();

        let pc = RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media_engine)
            .with_setting_engine(setting_engine)
            .with_interceptor_registry(registry)
            .build(now)?;

        Ok(Self {
            pc,
            ufrag: String::new(),
            ice_pwd: String::new(),
            leg,
            classroom,
            connected: false,
            pc_up: false,
            consent_at: None,
            remote_addr: None,
            udp: config.media_udp,
            tcp: config.ice_tcp,
        })
    }

    /// When consent runs out, if it was ever given.
    pub fn consent_expires(&self, timeout: Duration) -> Option<Instant> {
        self.consent_at.map(|at| at + timeout)
    }

    /// Whether the leg should be served at `now`: up, and consent fresh.
    pub fn served(&self, now: Instant, timeout: Duration) -> bool {
        self.pc_up && self.consent_expires(timeout).is_some_and(|end| now < end)
    }

    /// Answer the remote offer just set, and return the answer's SDP.
    pub fn answer(&mut self, now: Instant) -> Result<String, SfuError> {
        let answer = self.pc.create_answer(None)?;
        self.pc.set_local_description(now, answer)?;
        self.pc
            .local_description()
            .map(|d| crate::sdp::without_rtcp_candidates(&d.sdp))
            .ok_or(SfuError::Negotiation("no local description".into()))
    }

    /// The ICE ufrag and password of the current local description, if there is one.
    pub fn local_credentials(&self) -> Option<(String, String)> {
        let sdp = self.pc.local_description()?.sdp;
        let value = |name: &str| {
            sdp.lines()
                .find_map(|l| l.trim().strip_prefix(name))
                .map(|v| v.trim().to_owned())
        };
        Some((value("a=ice-ufrag:")?, value("a=ice-pwd:")?))
    }

    /// Announce the shared media port as this leg's candidates: UDP and, with ICE-TCP, a passive
    /// TCP candidate on the same port number (RFC 6544 §4.5: the server only accepts).
    pub fn add_host_candidate(&mut self, announced: SocketAddr) -> Result<(), SfuError> {
        if self.udp {
            self.pc.add_local_candidate(host_candidate(announced)?)?;
        }
        if self.tcp {
            self.pc
                .add_local_candidate(passive_tcp_candidate(announced)?)?;
        }
        // The end-of-gathering sentinel: a lite server has nothing more to gather.
        self.pc
            .add_local_candidate(RTCIceCandidateInit::default())?;
        Ok(())
    }
}

/// How long `rtc-ice` waits after its (consent-long) disconnected timeout before it fails a leg.
const ICE_FAILED_AFTER: Duration = Duration::from_secs(5);

/// A UDP host candidate at `addr`.
pub fn host_candidate(addr: SocketAddr) -> Result<RTCIceCandidateInit, SfuError> {
    let candidate = CandidateHostConfig {
        base_config: CandidateConfig {
            network: "udp".to_owned(),
            address: addr.ip().to_string(),
            port: addr.port(),
            component: 1,
            ..Default::default()
        },
        ..Default::default()
    }
    .new_candidate_host()?;
    Ok(RTCIceCandidate::from(&candidate).to_json()?)
}

/// A passive TCP host candidate at `addr` (`tcptype passive`, RFC 6544). Its priority is below
/// the UDP candidate's (RFC 6544 §4.2), so a peer that reaches both uses UDP.
pub fn passive_tcp_candidate(addr: SocketAddr) -> Result<RTCIceCandidateInit, SfuError> {
    let candidate = CandidateHostConfig {
        base_config: CandidateConfig {
            network: "tcp".to_owned(),
            address: addr.ip().to_string(),
            port: addr.port(),
            component: 1,
            ..Default::default()
        },
        tcp_type: rtc::ice::tcp_type::TcpType::Passive,
    }
    .new_candidate_host()?;
    Ok(RTCIceCandidate::from(&candidate).to_json()?)
}

/// The interceptor chain every leg runs: NACK both ways, receiver reports, and the taps that let
/// keyframe requests and sender reports through to the router (the feedback each codec
/// announces is in [`crate::codecs`]).
///
/// Retransmission buffers follow LiveKit's sizing (about 500 packets of video); the `rtc`
/// responder wants a power of two.
fn media_interceptors(registry: Registry, config: &RouterConfig) -> Registry {
    let registry = registry
        .with(
            Slot::NackResponder,
            NackResponderBuilder::new()
                .with_size(config.nack_buffer_packets)
                .build(),
        )
        .with(Slot::NackGenerator, NackGeneratorBuilder::new().build());
    // Receiver reports only: the router sends each downtrack's sender reports itself, translated
    // from its publisher's (`crate::lipsync`).
    registry
        .with(Slot::ReceiverReport, ReceiverReportBuilder::new().build())
        .with(
            Slot::from(crate::feedback::KEYFRAME_TAP_SLOT),
            crate::feedback::RtcpTap::keyframe_requests(),
        )
        .with(
            Slot::from(crate::lipsync::SENDER_REPORT_TAP_SLOT),
            crate::lipsync::sender_report_tap(),
        )
}
