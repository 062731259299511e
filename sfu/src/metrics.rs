//! Counters the media plane keeps for `/metrics`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Default, Clone)]
pub struct SfuMetrics {
    pub packets_forwarded: Counter,
    pub bytes_forwarded: Counter,
    pub keyframe_requests: Counter,
    pub datagrams_received: Counter,
    /// ICE-TCP connections accepted on the media port, and open now.
    pub ice_tcp_connections: Counter,
    pub ice_tcp_connections_open: Gauge,
}

impl SfuMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "tandem_rtp_packets_forwarded",
            "RTP packets forwarded to subscribers",
            self.packets_forwarded.clone(),
        );
        registry.register(
            "tandem_rtp_bytes_forwarded",
            "RTP payload bytes forwarded to subscribers",
            self.bytes_forwarded.clone(),
        );
        registry.register(
            "tandem_keyframe_requests",
            "Keyframe requests (PLI) sent to publishers, after throttling",
            self.keyframe_requests.clone(),
        );
        registry.register(
            "tandem_media_datagrams_received",
            "UDP datagrams received on the media port",
            self.datagrams_received.clone(),
        );
        registry.register(
            "tandem_ice_tcp_connections",
            "ICE-TCP connections accepted on the media port (classrooms whose network blocks UDP)",
            self.ice_tcp_connections.clone(),
        );
        registry.register(
            "tandem_ice_tcp_connections_open",
            "ICE-TCP connections open now",
            self.ice_tcp_connections_open.clone(),
        );
    }
}
