//! Counters the media plane keeps for `/metrics`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
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
    /// Publishers' packets that filled a gap in their sequence ([`crate::loss`]), by kind.
    pub packets_recovered: Family<[(&'static str, &'static str); 2], Counter>,
    /// Publishers' packets that never arrived, after recovery ([`crate::loss`]), by kind.
    pub packets_lost: Family<[(&'static str, &'static str); 1], Counter>,
    /// ICE-TCP connections accepted on the media port, and open now.
    pub ice_tcp_connections: Counter,
    pub ice_tcp_connections_open: Gauge,
}

impl SfuMetrics {
    /// Count what a publisher's stream of this kind recovered and lost.
    pub fn count_loss(&self, kind: crate::track::MediaKind, count: crate::loss::LossCount) {
        let kind = match kind {
            crate::track::MediaKind::Audio => "audio",
            crate::track::MediaKind::Video => "video",
        };
        if count.recovered > 0 {
            self.packets_recovered
                .get_or_create(&[("kind", kind), ("by", "nack")])
                .inc_by(count.recovered);
        }
        if count.lost > 0 {
            self.packets_lost
                .get_or_create(&[("kind", kind)])
                .inc_by(count.lost);
        }
    }

    /// Count packets of this kind a publisher's stream lost and its redundancy (RFC 2198)
    /// brought back.
    pub fn count_red_recovered(&self, kind: crate::track::MediaKind, recovered: u64) {
        let kind = match kind {
            crate::track::MediaKind::Audio => "audio",
            crate::track::MediaKind::Video => "video",
        };
        if recovered > 0 {
            self.packets_recovered
                .get_or_create(&[("kind", kind), ("by", "red")])
                .inc_by(recovered);
        }
    }
}

impl Default for SfuMetrics {
    fn default() -> Self {
        Self {
            packets_forwarded: Counter::default(),
            bytes_forwarded: Counter::default(),
            keyframe_requests: Counter::default(),
            datagrams_received: Counter::default(),
            forward_delay: Histogram::new(FORWARD_DELAY_BUCKETS),
            packets_recovered: Family::default(),
            packets_lost: Family::default(),
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
            "tandem_rtp_packets_recovered",
            "Publishers' RTP packets that filled a gap in their sequence (by = nack: a \
             retransmission, or a packet merely reordered; by = red: rebuilt from a later \
             packet's redundant audio, RFC 2198), by media kind",
            self.packets_recovered.clone(),
        );
        registry.register(
            "tandem_rtp_packets_lost",
            "Publishers' RTP packets that never reached the server after recovery (missing when \
             1024 newer packets had arrived, or when the track ended), by media kind",
            self.packets_lost.clone(),
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
