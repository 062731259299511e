//! Network-check probes: a short-lived leg with no classroom behind it, so a browser can find out
//! before a lesson which paths reach the media port (UDP, ICE-TCP, or only a TURN relay).
//!
//! The browser offers (a receive-only audio section is enough), the router answers with the same
//! candidates a classroom gets, and ICE and DTLS run as for any leg. Nothing is forwarded to or
//! from a probe, and it is closed after [`PROBE_LIFETIME`] whatever happens. At most
//! [`MAX_PROBES`] are open at once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rtc::peer_connection::sdp::RTCSessionDescription;

use super::Router;
use crate::SfuError;
use crate::ids::{ClassroomId, Leg};
use crate::transport::{Transport, TransportKey};

/// How long a probe leg lives: long enough for ICE over a slow TURN relay to connect.
pub const PROBE_LIFETIME: Duration = Duration::from_secs(20);
/// Probes open at once (each is a peer connection); more are refused until some expire.
pub const MAX_PROBES: usize = 64;

/// The open probes and when each closes.
#[derive(Default)]
pub(super) struct Probes {
    closes_at: HashMap<TransportKey, Instant>,
}

impl Probes {
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.closes_at.values().min().copied()
    }
}

impl Router {
    /// A network-check offer: answer it on a new probe leg that closes by itself.
    pub fn probe_offer(&mut self, now: Instant, sdp: String) -> Result<String, SfuError> {
        if self.probes.closes_at.len() >= MAX_PROBES {
            return Err(SfuError::NotAllowed("too many network checks at once"));
        }
        let id = ClassroomId::from(format!("netcheck-{}", self.next_key));
        let mut transport = Transport::new(now, &self.config, Leg::Publish, id)?;
        transport
            .pc
            .set_remote_description(now, RTCSessionDescription::offer(sdp)?)?;
        transport.add_host_candidate(self.config.announced_addr())?;
        let answer = transport.answer(now)?;
        let key = self.insert_transport(transport);
        // The answer set the leg's ICE credentials; checks find the probe by them.
        self.sync_ufrag(key);
        self.probes.closes_at.insert(key, now + PROBE_LIFETIME);
        self.drain(now, key);
        self.flush();
        Ok(answer)
    }

    /// Close the probes whose time is up.
    pub(super) fn expire_probes(&mut self, now: Instant) {
        let due: Vec<TransportKey> = self
            .probes
            .closes_at
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(key, _)| *key)
            .collect();
        for key in due {
            self.probes.closes_at.remove(&key);
            self.close_transport(key);
        }
    }

    /// Probe legs open now.
    pub fn probe_count(&self) -> usize {
        self.probes.closes_at.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rtc::peer_connection::RTCPeerConnectionBuilder;
    use rtc::peer_connection::configuration::RTCConfigurationBuilder;
    use rtc::peer_connection::configuration::media_engine::MediaEngine;
    use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
    use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};

    use super::*;
    use crate::RouterConfig;
    use crate::metrics::SfuMetrics;

    fn offer(now: Instant) -> String {
        let mut media = MediaEngine::default();
        media.register_default_codecs().unwrap();
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media)
            .build(now)
            .unwrap();
        pc.add_transceiver_from_kind(
            RtpCodecKind::Audio,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                ..Default::default()
            }),
        )
        .unwrap();
        pc.create_offer(None).unwrap().sdp
    }

    #[test]
    fn a_probe_gets_the_lesson_candidates_and_closes_by_itself() {
        let now = Instant::now();
        let config = RouterConfig::new("127.0.0.1:8443".parse().unwrap());
        let mut router = Router::new(config, Arc::new(SfuMetrics::default()));
        let answer = router.probe_offer(now, offer(now)).unwrap();
        assert!(
            answer.contains(" udp ") && answer.contains("tcptype passive"),
            "{answer}"
        );
        assert_eq!((router.probe_count(), router.transport_count()), (1, 1));
        assert!(
            router
                .poll_timeout()
                .is_some_and(|at| at <= now + PROBE_LIFETIME)
        );

        router.handle_timeout(now + PROBE_LIFETIME - Duration::from_secs(1));
        assert_eq!(router.probe_count(), 1, "still open before its time");
        router.handle_timeout(now + PROBE_LIFETIME);
        assert_eq!((router.probe_count(), router.transport_count()), (0, 0));
    }

    #[test]
    fn probes_over_the_limit_are_refused() {
        let now = Instant::now();
        let config = RouterConfig::new("127.0.0.1:8443".parse().unwrap());
        let mut router = Router::new(config, Arc::new(SfuMetrics::default()));
        let sdp = offer(now);
        for _ in 0..MAX_PROBES {
            router.probe_offer(now, sdp.clone()).unwrap();
        }
        assert!(matches!(
            router.probe_offer(now, sdp),
            Err(SfuError::NotAllowed(_))
        ));
    }
}
