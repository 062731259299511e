//! Long-distance links emulated in-process (the kernel here has no netem).
//!
//! [`LinkEmulator`] is a sans-IO core: it takes packets and time as input and hands packets back
//! when they are due, so it is tested with fake time and no sockets. [`UdpLinkProxy`] is the thin
//! tokio driver that puts one uplink and one downlink emulator between a classroom and the server.
//!
//! The path a packet takes through one emulator, in order:
//!
//! 1. **Bandwidth cap** (optional): a bottleneck serialiser at `bandwidth_bps` with a FIFO queue in
//!    front of it. A packet that would make the queue hold more than `queue_limit_bytes` is
//!    dropped (drop-tail), as a router's buffer does.
//! 2. **Loss**: independent (Bernoulli) loss at `loss_pct`, or, when `mean_burst_packets` is set
//!    above 1, a Gilbert–Elliott two-state model tuned to the same average rate whose loss runs
//!    have that mean length.
//! 3. **Propagation delay and jitter**: `delay` plus a jitter term.
//!
//! # Jitter without reordering
//!
//! Real jitter comes mostly from queues, which are FIFO: a path delays packets by different
//! amounts, but rarely reorders them. netem's default (independent random delay per packet)
//! reorders freely, which real paths do not, and it would also spread the packets of one video
//! frame sent back to back over the whole jitter range. So the jitter term here is a Gaussian
//! Ornstein–Uhlenbeck process in time: its standard deviation is the configured `jitter`, its
//! correlation time is [`JITTER_CORRELATION`], so packets sent close together see nearly the same
//! extra delay and packets far apart see independent ones. On top of that delivery is FIFO: a
//! packet is never delivered before the one sent ahead of it (when the jitter term falls faster
//! than packets are sent, the later packet waits for the earlier one). The mean one-way delay is
//! therefore the configured `delay` (plus the rare FIFO wait, and any bandwidth-queue wait).

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// Correlation time of the jitter process: packets closer together than this see similar delays.
pub const JITTER_CORRELATION: Duration = Duration::from_millis(20);

/// Default bottleneck buffer when a bandwidth cap is set: 64 KiB, about 260 ms at 2 Mbit/s and
/// 650 ms at 800 kbit/s (mobile links are known for deep buffers).
pub const DEFAULT_QUEUE_LIMIT_BYTES: usize = 64 * 1024;

/// Largest UDP datagram the proxy reads.
const MAX_DATAGRAM: usize = 65_536;

/// The names [`LinkProfile::named`] knows.
pub const PROFILE_NAMES: &[&str] = &["lan", "1000km", "rural-4g", "bad"];

/// How one direction of a classroom's link behaves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkProfile {
    /// Profile name for reports (`custom` when built from flags alone).
    pub name: String,
    /// One-way propagation delay.
    pub delay: Duration,
    /// Standard deviation of the extra delay (see the module docs for its shape).
    pub jitter: Duration,
    /// Average packet loss, in percent (0–100).
    pub loss_pct: f64,
    /// Mean length of a loss burst, in packets. `None` (or ≤ 1): losses are independent.
    pub mean_burst_packets: Option<f64>,
    /// Bandwidth cap in bits per second. `None`: uncapped.
    pub bandwidth_bps: Option<u64>,
    /// Bottleneck buffer in bytes; only used with a bandwidth cap.
    pub queue_limit_bytes: usize,
}

impl Default for LinkProfile {
    /// A perfect link: no delay, no loss, no cap.
    fn default() -> Self {
        Self {
            name: "custom".to_owned(),
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss_pct: 0.0,
            mean_burst_packets: None,
            bandwidth_bps: None,
            queue_limit_bytes: DEFAULT_QUEUE_LIMIT_BYTES,
        }
    }
}

impl LinkProfile {
    /// A named profile: `lan`, `1000km`, `rural-4g` or `bad` (see [`PROFILE_NAMES`]).
    pub fn named(name: &str) -> Option<Self> {
        let ms = Duration::from_millis;
        let p = match name {
            // Same building: sub-millisecond, clean.
            "lan" => Self {
                delay: Duration::from_micros(500),
                jitter: Duration::from_micros(100),
                ..Self::default()
            },
            // Two cities about 1000 km apart over fibre and a couple of ISPs.
            "1000km" => Self {
                delay: ms(20),
                jitter: ms(5),
                loss_pct: 1.0,
                ..Self::default()
            },
            // A village school on a 4G router: long, jittery, bursty, narrow.
            "rural-4g" => Self {
                delay: ms(60),
                jitter: ms(20),
                loss_pct: 2.0,
                mean_burst_packets: Some(4.0),
                bandwidth_bps: Some(2_000_000),
                ..Self::default()
            },
            // The worst link a lesson should still survive.
            "bad" => Self {
                delay: ms(150),
                jitter: ms(40),
                loss_pct: 5.0,
                mean_burst_packets: Some(6.0),
                bandwidth_bps: Some(800_000),
                ..Self::default()
            },
            _ => return None,
        };
        Some(Self {
            name: name.to_owned(),
            ..p
        })
    }

    /// The loss model this profile asks for.
    pub fn loss_model(&self) -> LossModel {
        let rate = (self.loss_pct / 100.0).clamp(0.0, 1.0);
        match self.mean_burst_packets {
            _ if rate <= 0.0 => LossModel::None,
            Some(burst) if burst > 1.0 && rate < 1.0 => {
                LossModel::Burst(GilbertElliott::with_rate(rate, burst))
            }
            _ => LossModel::Random { rate },
        }
    }
}

/// Gilbert–Elliott two-state loss model: a Good and a Bad state, a packet is lost with
/// `loss_in_good` in Good and `loss_in_bad` in Bad, and after each packet the state changes with
/// `p_good_to_bad` / `p_bad_to_good`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GilbertElliott {
    pub p_good_to_bad: f64,
    pub p_bad_to_good: f64,
    pub loss_in_good: f64,
    pub loss_in_bad: f64,
}

impl GilbertElliott {
    /// The simple Gilbert model (lossless Good, all-lost Bad) with average loss `rate` (0–1,
    /// exclusive of 1) and mean loss-run length `mean_burst` packets (> 1).
    ///
    /// Bad lasts a geometric number of packets with mean `1 / p_bad_to_good`, so
    /// `p_bad_to_good = 1 / mean_burst`; the stationary share of Bad is
    /// `p_good_to_bad / (p_good_to_bad + p_bad_to_good)`, which is set to `rate`.
    pub fn with_rate(rate: f64, mean_burst: f64) -> Self {
        let r = 1.0 / mean_burst.max(1.0);
        let p = (rate * r / (1.0 - rate)).clamp(0.0, 1.0);
        Self {
            p_good_to_bad: p,
            p_bad_to_good: r,
            loss_in_good: 0.0,
            loss_in_bad: 1.0,
        }
    }

    /// Long-run average loss rate.
    pub fn average_rate(&self) -> f64 {
        let sum = self.p_good_to_bad + self.p_bad_to_good;
        if sum <= 0.0 {
            return self.loss_in_good;
        }
        let bad = self.p_good_to_bad / sum;
        bad * self.loss_in_bad + (1.0 - bad) * self.loss_in_good
    }
}

/// How packets are lost on a link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LossModel {
    None,
    /// Each packet lost independently with probability `rate` (0–1).
    Random {
        rate: f64,
    },
    /// Bursty loss.
    Burst(GilbertElliott),
}

/// Counters of one emulator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkStats {
    /// Packets handed to `send`.
    pub sent: u64,
    /// Packets handed back by `poll`.
    pub delivered: u64,
    pub delivered_bytes: u64,
    /// Packets lost by the loss model.
    pub lost: u64,
    /// Packets dropped because the bandwidth queue was full.
    pub queue_dropped: u64,
}

struct InFlight {
    due: Instant,
    packet: Bytes,
}

/// One direction of an emulated link, sans IO. Give it packets with [`send`](Self::send), take
/// them back with [`poll`](Self::poll) once they are due, and sleep until
/// [`next_deadline`](Self::next_deadline) in between.
pub struct LinkEmulator {
    profile: LinkProfile,
    loss: LossModel,
    rng: StdRng,
    /// Gilbert–Elliott state: `true` in Bad.
    in_bad: bool,
    /// Current jitter term in seconds and when it was last advanced.
    jitter_s: f64,
    jitter_at: Option<Instant>,
    /// When the bottleneck serialiser finishes the last queued packet.
    link_free_at: Option<Instant>,
    /// Due time of the last packet queued (deliveries are FIFO).
    last_due: Option<Instant>,
    in_flight: VecDeque<InFlight>,
    stats: LinkStats,
}

impl LinkEmulator {
    /// An emulator for `profile`, reproducible for a given `seed`.
    pub fn new(profile: LinkProfile, seed: u64) -> Self {
        let loss = profile.loss_model();
        let mut rng = StdRng::seed_from_u64(seed);
        // Start the jitter process in its stationary distribution.
        let jitter_s = profile.jitter.as_secs_f64() * standard_normal(&mut rng);
        // Start the loss chain in its stationary distribution too.
        let in_bad = match loss {
            LossModel::Burst(ge) => {
                let sum = ge.p_good_to_bad + ge.p_bad_to_good;
                sum > 0.0 && rng.random::<f64>() < ge.p_good_to_bad / sum
            }
            _ => false,
        };
        Self {
            profile,
            loss,
            rng,
            in_bad,
            jitter_s,
            jitter_at: None,
            link_free_at: None,
            last_due: None,
            in_flight: VecDeque::new(),
            stats: LinkStats::default(),
        }
    }

    pub fn profile(&self) -> &LinkProfile {
        &self.profile
    }

    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Packets accepted and not yet delivered.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// A packet enters the link at `now`.
    pub fn send(&mut self, now: Instant, packet: Bytes) {
        self.stats.sent += 1;
        let departure = match self.serialise(now, packet.len()) {
            Some(t) => t,
            None => {
                self.stats.queue_dropped += 1;
                return;
            }
        };
        if self.lose() {
            self.stats.lost += 1;
            return;
        }
        let jitter_s = self.advance_jitter(departure);
        let delay_s = (self.profile.delay.as_secs_f64() + jitter_s).max(0.0);
        let mut due = departure + Duration::from_secs_f64(delay_s);
        if let Some(last) = self.last_due {
            due = due.max(last);
        }
        self.last_due = Some(due);
        self.in_flight.push_back(InFlight { due, packet });
    }

    /// The next packet due at or before `now`, in the order they were sent.
    pub fn poll(&mut self, now: Instant) -> Option<Bytes> {
        if self.in_flight.front()?.due > now {
            return None;
        }
        let p = self.in_flight.pop_front()?;
        self.stats.delivered += 1;
        self.stats.delivered_bytes += p.packet.len() as u64;
        Some(p.packet)
    }

    /// When the next packet is due, if any is in flight.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.in_flight.front().map(|p| p.due)
    }

    /// When the packet leaves the bottleneck, or `None` if the queue is full.
    fn serialise(&mut self, now: Instant, len: usize) -> Option<Instant> {
        let Some(bps) = self.profile.bandwidth_bps.filter(|&b| b > 0) else {
            return Some(now);
        };
        let free_at = self.link_free_at.unwrap_or(now).max(now);
        let backlog_bytes = (free_at - now).as_secs_f64() * bps as f64 / 8.0;
        if backlog_bytes + len as f64 > self.profile.queue_limit_bytes as f64 {
            return None;
        }
        let done = free_at + Duration::from_secs_f64(len as f64 * 8.0 / bps as f64);
        self.link_free_at = Some(done);
        Some(done)
    }

    fn lose(&mut self) -> bool {
        match self.loss {
            LossModel::None => false,
            LossModel::Random { rate } => self.rng.random::<f64>() < rate,
            LossModel::Burst(ge) => {
                let p_loss = if self.in_bad {
                    ge.loss_in_bad
                } else {
                    ge.loss_in_good
                };
                let lost = self.rng.random::<f64>() < p_loss;
                let p_switch = if self.in_bad {
                    ge.p_bad_to_good
                } else {
                    ge.p_good_to_bad
                };
                if self.rng.random::<f64>() < p_switch {
                    self.in_bad = !self.in_bad;
                }
                lost
            }
        }
    }

    /// Advances the Ornstein–Uhlenbeck jitter process to `at` and returns its value in seconds.
    fn advance_jitter(&mut self, at: Instant) -> f64 {
        let sigma = self.profile.jitter.as_secs_f64();
        if sigma <= 0.0 {
            return 0.0;
        }
        let dt = match self.jitter_at {
            Some(prev) => at.saturating_duration_since(prev).as_secs_f64(),
            None => f64::INFINITY,
        };
        self.jitter_at = Some(at);
        let rho = (-dt / JITTER_CORRELATION.as_secs_f64()).exp();
        let z = standard_normal(&mut self.rng);
        self.jitter_s = rho * self.jitter_s + (1.0 - rho * rho).sqrt() * sigma * z;
        self.jitter_s
    }
}

/// A standard normal sample (Box–Muller).
fn standard_normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Counters of both directions of a proxy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyStats {
    /// Client → server.
    pub uplink: LinkStats,
    /// Server → client.
    pub downlink: LinkStats,
}

/// A UDP socket on 127.0.0.1 that stands in for the server's media address: what the client
/// sends to it goes through the uplink emulator to `server`, what `server` sends back goes
/// through the downlink emulator to the client (the last other address that sent to the proxy).
///
/// The proxy sends to the server from its own socket, so the server sees the proxy's address as
/// the client's (as a NAT would). Dropping the proxy stops its task and closes the socket.
pub struct UdpLinkProxy {
    local_addr: SocketAddr,
    stats: Arc<Mutex<ProxyStats>>,
    /// While set, the link is down: every datagram either way is lost ([`Self::set_cut`]).
    cut: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl UdpLinkProxy {
    /// Binds 127.0.0.1:0 and starts forwarding. `seed` makes the two directions reproducible.
    pub async fn start(
        server: SocketAddr,
        uplink: LinkProfile,
        downlink: LinkProfile,
        seed: u64,
    ) -> io::Result<Self> {
        Self::start_dropping(server, uplink, downlink, seed, None).await
    }

    /// [`start`](Self::start), with a fault: every uplink RTP packet of the stream
    /// `drop_uplink_ssrc` (its SSRC is in the clear in SRTP) is dropped, as a broken middlebox
    /// would, and counted as lost.
    pub async fn start_dropping(
        server: SocketAddr,
        uplink: LinkProfile,
        downlink: LinkProfile,
        seed: u64,
        drop_uplink_ssrc: Option<u32>,
    ) -> io::Result<Self> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let local_addr = socket.local_addr()?;
        let stats = Arc::new(Mutex::new(ProxyStats::default()));
        let cut = Arc::new(AtomicBool::new(false));
        let up = LinkEmulator::new(uplink, seed);
        let down = LinkEmulator::new(downlink, seed ^ 0x9E37_79B9_7F4A_7C15);
        let task = tokio::spawn(run_proxy(
            socket,
            server,
            up,
            down,
            stats.clone(),
            drop_uplink_ssrc,
            cut.clone(),
        ));
        Ok(Self {
            local_addr,
            stats,
            cut,
            task,
        })
    }

    /// The address the client should send media to instead of the server's.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn stats(&self) -> ProxyStats {
        *self.stats.lock()
    }

    /// Take the link down (a classroom's network drops out: every datagram either way is lost
    /// and counted so) or bring it back.
    pub fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::Relaxed);
    }
}

impl Drop for UdpLinkProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run_proxy(
    socket: UdpSocket,
    server: SocketAddr,
    mut up: LinkEmulator,
    mut down: LinkEmulator,
    stats: Arc<Mutex<ProxyStats>>,
    drop_uplink_ssrc: Option<u32>,
    cut: Arc<AtomicBool>,
) {
    let mut client: Option<SocketAddr> = None;
    let mut dropped = 0u64;
    let mut dropped_down = 0u64;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let now = Instant::now();
        while let Some(p) = up.poll(now) {
            if let Err(e) = socket.send_to(&p, server).await {
                tracing::debug!(%server, error = %e, "link proxy: send to server failed");
            }
        }
        while let Some(p) = down.poll(now) {
            if let Some(to) = client
                && let Err(e) = socket.send_to(&p, to).await
            {
                tracing::debug!(client = %to, error = %e, "link proxy: send to client failed");
            }
        }
        let mut uplink = up.stats();
        uplink.lost += dropped;
        uplink.sent += dropped;
        let mut downlink = down.stats();
        downlink.lost += dropped_down;
        downlink.sent += dropped_down;
        *stats.lock() = ProxyStats { uplink, downlink };
        let deadline = match (up.next_deadline(), down.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok((len, from)) => {
                    let packet = Bytes::copy_from_slice(&buf[..len]);
                    let now = Instant::now();
                    let cut = cut.load(Ordering::Relaxed);
                    if from == server {
                        if cut {
                            dropped_down += 1;
                        } else {
                            down.send(now, packet);
                        }
                    } else {
                        client = Some(from);
                        if cut || drop_uplink_ssrc.is_some_and(|ssrc| rtp_ssrc(&packet) == Some(ssrc)) {
                            dropped += 1;
                        } else {
                            up.send(now, packet);
                        }
                    }
                }
                // ICMP port-unreachable surfaces here on Linux; keep going.
                Err(e) => tracing::debug!(error = %e, "link proxy: receive failed"),
            },
            () = sleep => {}
        }
    }
}

/// The SSRC of an (S)RTP packet, `None` for anything else (RFC 7983 first byte, RFC 5761 RTCP
/// packet types).
fn rtp_ssrc(datagram: &[u8]) -> Option<u32> {
    let is_rtp = datagram.len() >= 12
        && (128..=191).contains(&datagram[0])
        && !(64..=95).contains(&(datagram[1] & 0x7f));
    is_rtp.then(|| u32::from_be_bytes([datagram[8], datagram[9], datagram[10], datagram[11]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: u64 = 42;

    #[test]
    fn the_dropped_stream_is_told_by_its_ssrc() {
        let rtp = [0x80, 96, 0, 1, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2];
        assert_eq!(rtp_ssrc(&rtp), Some(0xdead_beef));
        let rtcp = [0x81, 201, 0, 7, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1];
        assert_eq!(rtp_ssrc(&rtcp), None);
        assert_eq!(rtp_ssrc(&[22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 1]), None);
    }

    /// Sends `n` packets of `size` bytes every `interval`, polling as time goes by; returns the
    /// one-way delay of each delivered packet, by sequence number.
    fn run(
        profile: LinkProfile,
        n: usize,
        size: usize,
        interval: Duration,
    ) -> (LinkEmulator, Vec<(u32, Duration)>) {
        let mut link = LinkEmulator::new(profile, SEED);
        let t0 = Instant::now();
        let mut sent_at = Vec::with_capacity(n);
        let mut out = Vec::new();
        let mut drain = |link: &mut LinkEmulator, now: Instant, sent_at: &[Instant]| {
            while let Some(p) = link.poll(now) {
                let seq = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
                out.push((seq, now - sent_at[seq as usize]));
            }
        };
        for i in 0..n {
            let now = t0 + interval * i as u32;
            // Deliver what became due before this send, at its exact due time.
            while let Some(d) = link.next_deadline().filter(|&d| d <= now) {
                drain(&mut link, d, &sent_at);
            }
            let mut p = vec![0u8; size.max(4)];
            p[..4].copy_from_slice(&(i as u32).to_be_bytes());
            sent_at.push(now);
            link.send(now, Bytes::from(p));
        }
        while let Some(d) = link.next_deadline() {
            drain(&mut link, d, &sent_at);
        }
        (link, out)
    }

    fn mean_ms(d: &[(u32, Duration)]) -> f64 {
        d.iter().map(|(_, d)| d.as_secs_f64() * 1e3).sum::<f64>() / d.len() as f64
    }

    fn std_ms(d: &[(u32, Duration)]) -> f64 {
        let m = mean_ms(d);
        let var = d
            .iter()
            .map(|(_, d)| (d.as_secs_f64() * 1e3 - m).powi(2))
            .sum::<f64>()
            / d.len() as f64;
        var.sqrt()
    }

    /// Lengths of the runs of consecutive lost sequence numbers.
    fn loss_runs(delivered: &[(u32, Duration)], n: usize) -> Vec<usize> {
        let mut got = vec![false; n];
        for (s, _) in delivered {
            got[*s as usize] = true;
        }
        let mut runs = Vec::new();
        let mut run = 0;
        for g in got {
            if g {
                if run > 0 {
                    runs.push(run);
                }
                run = 0;
            } else {
                run += 1;
            }
        }
        if run > 0 {
            runs.push(run);
        }
        runs
    }

    #[test]
    fn named_profiles_exist_and_match_the_issue() {
        for name in PROFILE_NAMES {
            assert_eq!(LinkProfile::named(name).unwrap().name, *name);
        }
        assert!(LinkProfile::named("moon").is_none());
        let p = LinkProfile::named("1000km").unwrap();
        assert_eq!(p.delay, Duration::from_millis(20));
        assert_eq!(p.jitter, Duration::from_millis(5));
        assert_eq!(p.loss_pct, 1.0);
        assert_eq!(p.loss_model(), LossModel::Random { rate: 0.01 });
        assert!(matches!(
            LinkProfile::named("rural-4g").unwrap().loss_model(),
            LossModel::Burst(_)
        ));
    }

    #[test]
    fn perfect_link_delivers_everything_at_once_in_order() {
        let (link, out) = run(LinkProfile::default(), 1000, 100, Duration::from_millis(1));
        assert_eq!(out.len(), 1000);
        assert!(out.iter().all(|(_, d)| d.is_zero()));
        assert!(out.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(link.stats().delivered, 1000);
        assert_eq!(link.in_flight(), 0);
    }

    #[test]
    fn nothing_is_delivered_before_its_delay() {
        let profile = LinkProfile {
            delay: Duration::from_millis(20),
            ..LinkProfile::default()
        };
        let mut link = LinkEmulator::new(profile, SEED);
        let t0 = Instant::now();
        link.send(t0, Bytes::from_static(b"hello"));
        assert_eq!(link.next_deadline(), Some(t0 + Duration::from_millis(20)));
        assert!(link.poll(t0 + Duration::from_millis(19)).is_none());
        assert_eq!(
            link.poll(t0 + Duration::from_millis(20)).as_deref(),
            Some(&b"hello"[..])
        );
        assert!(link.poll(t0 + Duration::from_secs(1)).is_none());
        assert_eq!(link.next_deadline(), None);
    }

    #[test]
    fn mean_delay_and_jitter_match_the_profile_without_reordering() {
        let profile = LinkProfile {
            delay: Duration::from_millis(20),
            jitter: Duration::from_millis(5),
            ..LinkProfile::default()
        };
        // Audio-like: one packet every 20 ms.
        let (_, out) = run(profile, 20_000, 160, Duration::from_millis(20));
        assert_eq!(out.len(), 20_000);
        let mean = mean_ms(&out);
        let sd = std_ms(&out);
        assert!((mean - 20.0).abs() < 1.0, "mean delay {mean} ms");
        assert!((sd - 5.0).abs() < 1.0, "jitter (sd) {sd} ms");
        assert!(out.windows(2).all(|w| w[0].0 < w[1].0), "reordered");
        // Jitter is really there: delays spread over more than ±2 ms.
        let max = out.iter().map(|(_, d)| *d).max().unwrap();
        let min = out.iter().map(|(_, d)| *d).min().unwrap();
        assert!(max - min > Duration::from_millis(15), "{min:?}..{max:?}");
    }

    #[test]
    fn back_to_back_packets_of_a_frame_stay_together() {
        let profile = LinkProfile {
            delay: Duration::from_millis(20),
            jitter: Duration::from_millis(5),
            ..LinkProfile::default()
        };
        // 10 packets 0.1 ms apart: one video frame.
        let (_, out) = run(profile, 10, 1200, Duration::from_micros(100));
        let spread = out
            .iter()
            .map(|(s, d)| *d + Duration::from_micros(100) * *s);
        let (lo, hi) = spread.fold((Duration::MAX, Duration::ZERO), |(lo, hi), a| {
            (lo.min(a), hi.max(a))
        });
        assert!(
            hi - lo < Duration::from_millis(5),
            "frame spread {:?}",
            hi - lo
        );
    }

    #[test]
    fn random_loss_rate_is_within_tolerance() {
        let profile = LinkProfile {
            loss_pct: 5.0,
            ..LinkProfile::default()
        };
        let n = 50_000;
        let (link, out) = run(profile, n, 100, Duration::from_millis(1));
        let lost = (n - out.len()) as f64 / n as f64 * 100.0;
        // σ of the estimate ≈ 0.1 %.
        assert!((lost - 5.0).abs() < 0.5, "lost {lost} %");
        assert_eq!(link.stats().lost as usize, n - out.len());
    }

    #[test]
    fn burst_loss_has_the_same_rate_but_longer_runs_than_random_loss() {
        let n = 100_000;
        let random = LinkProfile {
            loss_pct: 3.0,
            ..LinkProfile::default()
        };
        let burst = LinkProfile {
            mean_burst_packets: Some(5.0),
            ..random.clone()
        };
        let (_, r_out) = run(random, n, 100, Duration::from_millis(1));
        let (_, b_out) = run(burst, n, 100, Duration::from_millis(1));
        let r_rate = (n - r_out.len()) as f64 / n as f64 * 100.0;
        let b_rate = (n - b_out.len()) as f64 / n as f64 * 100.0;
        assert!((r_rate - 3.0).abs() < 0.5, "random {r_rate} %");
        assert!((b_rate - 3.0).abs() < 0.8, "burst {b_rate} %");
        let mean_run = |runs: Vec<usize>| runs.iter().sum::<usize>() as f64 / runs.len() as f64;
        let r_run = mean_run(loss_runs(&r_out, n));
        let b_run = mean_run(loss_runs(&b_out, n));
        // Independent 3 % loss: mean run 1/(1-0.03) ≈ 1.03; Gilbert with bursts of 5: ≈ 5.
        assert!(r_run < 1.2, "random runs {r_run}");
        assert!(b_run > 3.5 && b_run < 6.5, "burst runs {b_run}");
    }

    #[test]
    fn gilbert_elliott_parameters_give_the_asked_rate() {
        let ge = GilbertElliott::with_rate(0.02, 4.0);
        assert!((ge.average_rate() - 0.02).abs() < 1e-12);
        assert!((ge.p_bad_to_good - 0.25).abs() < 1e-12);
    }

    #[test]
    fn bandwidth_cap_bounds_throughput_and_drops_tail() {
        let profile = LinkProfile {
            bandwidth_bps: Some(1_000_000),
            queue_limit_bytes: 20_000,
            ..LinkProfile::default()
        };
        // Offer 4 Mbit/s (1000-byte packets every 2 ms) for 10 s.
        let n = 5000;
        let (link, out) = run(profile, n, 1000, Duration::from_millis(2));
        let delivered_bits = out.len() as f64 * 8000.0;
        let last = out
            .iter()
            .map(|(s, d)| Duration::from_millis(2) * *s + *d)
            .max();
        let secs = last.unwrap().as_secs_f64();
        let mbps = delivered_bits / secs / 1e6;
        assert!(mbps <= 1.01 && mbps > 0.9, "throughput {mbps} Mbit/s");
        assert!(link.stats().queue_dropped > 3000, "{:?}", link.stats());
        // The queue never holds more than its limit: at most 20 kB / 1 Mbit/s = 160 ms of wait
        // (plus one packet's serialisation).
        let worst = out.iter().map(|(_, d)| *d).max().unwrap();
        assert!(
            worst <= Duration::from_millis(170),
            "queueing delay {worst:?}"
        );
        assert!(
            worst >= Duration::from_millis(140),
            "queue never filled: {worst:?}"
        );
    }

    #[test]
    fn under_the_cap_nothing_is_dropped_and_delay_is_serialisation_only() {
        let profile = LinkProfile {
            bandwidth_bps: Some(1_000_000),
            ..LinkProfile::default()
        };
        // 0.4 Mbit/s offered.
        let (link, out) = run(profile, 1000, 1000, Duration::from_millis(20));
        assert_eq!(out.len(), 1000);
        assert_eq!(link.stats().queue_dropped, 0);
        let eight = Duration::from_millis(8);
        assert!(
            out.iter()
                .all(|(_, d)| d.abs_diff(eight) < Duration::from_micros(1))
        );
    }

    #[test]
    fn same_seed_same_outcome() {
        let p = LinkProfile::named("bad").unwrap();
        let (_, a) = run(p.clone(), 2000, 500, Duration::from_millis(5));
        let (_, b) = run(p, 2000, 500, Duration::from_millis(5));
        assert_eq!(a, b);
    }

    async fn recv(sock: &UdpSocket) -> (Vec<u8>, SocketAddr) {
        let mut buf = [0u8; 2048];
        let (n, from) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
            .await
            .expect("timed out waiting for a datagram")
            .unwrap();
        (buf[..n].to_vec(), from)
    }

    #[tokio::test]
    async fn proxy_forwards_both_ways_with_delay_and_stops_when_dropped() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let delayed = |ms| LinkProfile {
            delay: Duration::from_millis(ms),
            ..LinkProfile::default()
        };
        let proxy =
            UdpLinkProxy::start(server.local_addr().unwrap(), delayed(50), delayed(80), SEED)
                .await
                .unwrap();
        let proxy_addr = proxy.local_addr();

        let t = Instant::now();
        client.send_to(b"ping", proxy_addr).await.unwrap();
        let (data, from) = recv(&server).await;
        let up = t.elapsed();
        assert_eq!(data, b"ping");
        assert_eq!(from, proxy_addr, "the server sees the proxy as the client");
        assert!(up >= Duration::from_millis(50), "uplink took {up:?}");

        let t = Instant::now();
        server.send_to(b"pong", from).await.unwrap();
        let (data, from) = recv(&client).await;
        let down = t.elapsed();
        assert_eq!(data, b"pong");
        assert_eq!(from, proxy_addr);
        assert!(down >= Duration::from_millis(80), "downlink took {down:?}");

        let stats = proxy.stats();
        assert_eq!(stats.uplink.delivered, 1);
        assert_eq!(stats.downlink.delivered, 1);

        drop(proxy);
        // The task is gone once its socket is closed: the port can be bound again.
        let mut rebound = false;
        for _ in 0..100 {
            if std::net::UdpSocket::bind(proxy_addr).is_ok() {
                rebound = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(rebound, "proxy socket still open after drop");
    }
}
