//! One WebRTC leg of a classroom: an `rtc` peer connection on the shared port.

use std::net::SocketAddr;
use std::time::Instant;

use rand::distr::{Alphanumeric, SampleString};
use rtc::interceptor::{NackGeneratorBuilder, NackResponderBuilder, Registry, Slot};
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::RTCPeerConnectionBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::configure_rtcp_reports;
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
    pub ufrag: String,
    pub leg: Leg,
    pub classroom: ClassroomId,
    pub connected: bool,
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
        let ufrag = Alphanumeric.sample_string(&mut rand::rng(), 16);
        let password = Alphanumeric.sample_string(&mut rand::rng(), 32);

        let mut media_engine = MediaEngine::default();
        crate::codecs::register(&mut media_engine)?;
        let registry = media_interceptors(Registry::new(), config);

        let setting_engine = SettingEngineBuilder::new()
            .with_lite(true)
            .with_ice_credentials(ufrag.clone(), password)
            .build();

        let pc = RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media_engine)
            .with_setting_engine(setting_engine)
            .with_interceptor_registry(registry)
            .build(now)?;

        Ok(Self {
            pc,
            ufrag,
            leg,
            classroom,
            connected: false,
            remote_addr: None,
            udp: config.media_udp,
            tcp: config.ice_tcp,
        })
    }

    /// Answer the remote offer just set, and return the answer's SDP.
    pub fn answer(&mut self, now: Instant) -> Result<String, SfuError> {
        let answer = self.pc.create_answer(None)?;
        self.pc.set_local_description(now, answer)?;
        self.pc
            .local_description()
            .map(|d| d.sdp)
            .ok_or(SfuError::Negotiation("no local description".into()))
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

/// The interceptor chain every leg runs: NACK both ways, sender and receiver reports (the
/// feedback each codec announces is in [`crate::codecs`]).
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
    configure_rtcp_reports(registry).with(
        Slot::from(crate::feedback::KEYFRAME_TAP_SLOT),
        crate::feedback::KeyframeRequestTap::default(),
    )
}
