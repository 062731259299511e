//! Tandem's media plane: a selective forwarding unit for dual-teacher lessons.
//!
//! - [`router::Router`]: the sans-IO core (classrooms, legs, tracks, forwarding).
//! - [`policy`]: the one place that decides who receives what.
//! - [`driver`]: the thin tokio loop that owns the one UDP socket and drives the router.
//! - [`tcp`]: ICE over TCP on the same port number (RFC 6544 / RFC 4571), for the driver.

pub mod codecs;
pub mod demux;
pub mod downtrack;
pub mod driver;
pub mod extensions;
pub mod feedback;
pub mod ids;
pub mod keyframe;
pub mod lipsync;
pub mod loss;
pub mod metrics;
pub mod policy;
pub mod red;
pub mod router;
pub mod sdp;
pub mod speaker;
pub mod tcp;
/// In-memory peers and fake time for tests and benchmarks; not part of the server build.
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod track;
pub mod transport;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

pub use ids::{ClassId, ClassroomId, Leg, TrackId};
pub use policy::Role;
pub use router::{OfferedTrack, Router, RouterEvent};
/// A trickled ICE candidate, as browsers hand it over.
pub use rtc::peer_connection::transport::RTCIceCandidateInit as IceCandidateInit;
pub use track::{MediaKind, Source, TrackInfo};

/// Settings of the media plane. Every limit is named here with its default.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// The address the media socket is bound to.
    pub media_addr: SocketAddr,
    /// The IP announced in ICE candidates (a server behind NAT announces its public address).
    pub public_ip: Option<IpAddr>,
    /// At most one keyframe request per published track in this interval (mediasoup: 1 s).
    pub keyframe_request_interval: Duration,
    /// Packets kept per outgoing stream for retransmission on NACK (a power of two).
    pub nack_buffer_packets: u16,
    /// How long a leg stays served without a successful consent check from its peer (RFC 7675:
    /// 30 s). Peers check every 5 s ± 20 %; only after this long is the leg lost.
    pub consent_timeout: Duration,
    /// How long a rejoined classroom's tracks wait for its new publish leg to bring their sources
    /// again (subscribers keep their downtracks meanwhile) before they count as stopped.
    pub slot_hold: Duration,
    /// Offer the UDP host candidate (off: a test of networks that block UDP).
    pub media_udp: bool,
    /// ICE over TCP (RFC 6544): a passive TCP candidate on the media port number.
    pub ice_tcp: bool,
    /// What the TCP side of the media port may hold: connections, queued bytes, idle time.
    pub tcp: tcp::TcpLimits,
}

impl RouterConfig {
    pub fn new(media_addr: SocketAddr) -> Self {
        Self {
            media_addr,
            public_ip: None,
            keyframe_request_interval: Duration::from_secs(1),
            nack_buffer_packets: 512,
            consent_timeout: Duration::from_secs(30),
            slot_hold: Duration::from_secs(10),
            media_udp: true,
            ice_tcp: true,
            tcp: tcp::TcpLimits::default(),
        }
    }

    /// Refuse settings the media plane cannot honour, with a message naming the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.nack_buffer_packets.is_power_of_two() {
            return Err(ConfigError::NackBufferNotPowerOfTwo(
                self.nack_buffer_packets,
            ));
        }
        if self.consent_timeout.is_zero() {
            return Err(ConfigError::ZeroConsentTimeout);
        }
        Ok(())
    }

    /// The candidate address clients are told to send media to.
    pub fn announced_addr(&self) -> SocketAddr {
        let ip = match (self.public_ip, self.media_addr.ip()) {
            (Some(ip), _) => ip,
            // A wildcard bind cannot be announced; loopback is the only address known to work.
            (None, ip) if ip.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
            (None, ip) => ip,
        };
        SocketAddr::new(ip, self.media_addr.port())
    }
}

/// A media-plane setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `rtc`'s retransmission buffer indexes by sequence number modulo its size; any other size
    /// silently disables NACK answers.
    #[error(
        "nack buffer size {0} is not a power of two (the retransmission buffer needs one, e.g. 256, 512, 1024)"
    )]
    NackBufferNotPowerOfTwo(u16),
    #[error("consent timeout must be longer than zero")]
    ZeroConsentTimeout,
}

#[derive(Debug, thiserror::Error)]
pub enum SfuError {
    #[error("unknown classroom")]
    UnknownClassroom,
    #[error("not allowed: {0}")]
    NotAllowed(&'static str),
    #[error("negotiation failed: {0}")]
    Negotiation(String),
    #[error("webrtc: {0}")]
    Rtc(#[from] rtc::shared::error::Error),
    #[error("the master classroom is not publishing yet")]
    NothingToView,
    #[error("media plane stopped")]
    Stopped,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nack_buffer_that_is_not_a_power_of_two_is_refused() {
        let mut config = RouterConfig::new("127.0.0.1:0".parse().expect("addr"));
        assert_eq!(config.validate(), Ok(()));
        config.nack_buffer_packets = 500;
        let err = config.validate().expect_err("500 is refused");
        assert!(err.to_string().contains("not a power of two"), "{err}");
    }
}
