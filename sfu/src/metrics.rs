//! Counters the media plane keeps for `/metrics`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds (seconds) of `tandem_forward_delay_seconds`: fine below a millisecond, where a
/// healthy SFU's forwarding lives, coarse up to 100 ms, where it is in trouble.
pub const FORWARD_DELAY_BUCKETS: [f64; 20] = [
    0.000_025, 0.000_05, 0.000_075, 0.000_1, 0.000_15, 0.000_2, 0.000_3, 0.000_4, 0.000_5,
    0.000_75, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1,
];

#[derive(Debug, Clone)]
pub struct SfuMetrics {
    pub packets_forwarded: Counter,
    pub bytes_forwarded: Counter,
    pub keyframe_requests: Counter,
    pub datagrams_received: Counter,
    /// From a media datagram received to each RTP datagram it made the server forward being
    /// handed to the socket (observed by the driver).
    pub forward_delay: Histogram,
    /// ICE-TCP connections accepted on the media port, and open now.
    pub ice_tcp_connections: Counter,
    pub ice_tcp_connections_open: Gauge,
}

impl Default for SfuMetrics {
    fn default() -> Self {
        Self {
            packets_forwarded: Counter::default(),
            bytes_forwarded: Counter::default(),
            keyframe_requests: Counter::default(),
            datagrams_received: Counter::default(),
            forward_delay: Histogram::new(FORWARD_DELAY_BUCKETS),
            ice_tcp_connections: Counter::default(),
            ice_tcp_connections_open: Gauge::default(),
        }
    }
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
        registry.register_with_unit(
            "tandem_forward_delay",
            "Delay from a media datagram received to each RTP datagram it made the server forward \
             being sent",
            prometheus_client::registry::Unit::Seconds,
            self.forward_delay.clone(),
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
