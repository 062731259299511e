//! A long-distance link for a classroom that reaches the server over ICE-TCP.
//!
//! [`TcpLinkProxy`] stands in for the server's passive TCP candidate: the client connects to it,
//! it connects to the server, and carries the RFC 4571 frames both ways through a
//! [`LinkEmulator`] with the profile's delay, jitter and bandwidth cap.
//!
//! Loss is where TCP differs from UDP: nothing is lost, it is late. A segment the path drops is
//! sent again once the sender learns of it (fast retransmit: about one round trip later, when
//! the duplicate acknowledgements of the segments behind it come back), and the receiver hands
//! nothing after the gap to the application until it arrives (head-of-line blocking). So here a
//! frame the profile would lose is held for one round trip (twice the one-way delay) and every
//! frame behind it waits for it. The emulator's own loss is off; [`LinkStats::lost`] counts the
//! frames that were delayed this way.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rtc::shared::tcp_framing::{TcpFrameDecoder, frame_packet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::link::{LinkEmulator, LinkProfile, LinkStats, ProxyStats};

/// One direction: TCP's retransmission on top of the path's delay and jitter.
struct TcpDirection {
    path: LinkEmulator,
    loss_pct: f64,
    round_trip: Duration,
    rng: StdRng,
    /// A "lost" frame and everything sent after it wait here until it is sent again.
    held: VecDeque<Bytes>,
    held_until: Option<Instant>,
    retransmitted: u64,
}

impl TcpDirection {
    fn new(profile: LinkProfile, seed: u64) -> Self {
        let loss_pct = profile.loss_pct;
        let round_trip = profile.delay * 2;
        let path = LinkEmulator::new(
            LinkProfile {
                loss_pct: 0.0,
                mean_burst_packets: None,
                ..profile
            },
            seed,
        );
        Self {
            path,
            loss_pct,
            round_trip,
            rng: StdRng::seed_from_u64(seed ^ 0x5EED),
            held: VecDeque::new(),
            held_until: None,
            retransmitted: 0,
        }
    }

    fn send(&mut self, now: Instant, frame: Bytes) {
        self.release(now);
        if self.held_until.is_none() && self.rng.random::<f64>() * 100.0 < self.loss_pct {
            self.retransmitted += 1;
            self.held_until = Some(now + self.round_trip);
        }
        if self.held_until.is_some() {
            self.held.push_back(frame);
        } else {
            self.path.send(now, frame);
        }
    }

    /// The held frames enter the path once the retransmission has gone out.
    fn release(&mut self, now: Instant) {
        if let Some(until) = self.held_until
            && until <= now
        {
            self.held_until = None;
            for frame in self.held.drain(..) {
                self.path.send(until, frame);
            }
        }
    }

    fn poll(&mut self, now: Instant) -> Option<Bytes> {
        self.release(now);
        self.path.poll(now)
    }

    fn next_deadline(&self) -> Option<Instant> {
        match (self.held_until, self.path.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn stats(&self) -> LinkStats {
        LinkStats {
            lost: self.retransmitted,
            ..self.path.stats()
        }
    }
}

/// A TCP listener on 127.0.0.1 standing in for the server's ICE-TCP candidate; each accepted
/// connection is carried to `server` through the emulated link.
pub struct TcpLinkProxy {
    local_addr: SocketAddr,
    stats: Arc<Mutex<ProxyStats>>,
    task: JoinHandle<()>,
}

impl TcpLinkProxy {
    pub async fn start(
        server: SocketAddr,
        uplink: LinkProfile,
        downlink: LinkProfile,
        seed: u64,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let local_addr = listener.local_addr()?;
        let stats = Arc::new(Mutex::new(ProxyStats::default()));
        let shared = stats.clone();
        let task = tokio::spawn(async move {
            let mut connections = Vec::new();
            while let Ok((client, _)) = listener.accept().await {
                let Ok(upstream) = TcpStream::connect(server).await else {
                    continue;
                };
                let up = TcpDirection::new(uplink.clone(), seed);
                let down = TcpDirection::new(downlink.clone(), seed ^ 0x9E37_79B9_7F4A_7C15);
                connections.push(tokio::spawn(carry(
                    client,
                    upstream,
                    up,
                    down,
                    shared.clone(),
                )));
            }
            for c in connections {
                c.abort();
            }
        });
        Ok(Self {
            local_addr,
            stats,
            task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn stats(&self) -> ProxyStats {
        *self.stats.lock()
    }
}

impl Drop for TcpLinkProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn carry(
    client: TcpStream,
    server: TcpStream,
    mut up: TcpDirection,
    mut down: TcpDirection,
    stats: Arc<Mutex<ProxyStats>>,
) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_rd, mut client_wr) = client.into_split();
    let (mut server_rd, mut server_wr) = server.into_split();
    let (mut from_client, mut from_server) = (TcpFrameDecoder::new(), TcpFrameDecoder::new());
    let (mut cbuf, mut sbuf) = (vec![0u8; 4096], vec![0u8; 4096]);
    loop {
        let now = Instant::now();
        while let Some(frame) = up.poll(now) {
            if server_wr.write_all(&frame_packet(&frame)).await.is_err() {
                return;
            }
        }
        while let Some(frame) = down.poll(now) {
            if client_wr.write_all(&frame_packet(&frame)).await.is_err() {
                return;
            }
        }
        *stats.lock() = ProxyStats {
            uplink: up.stats(),
            downlink: down.stats(),
        };
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
            read = client_rd.read(&mut cbuf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    from_client.extend_from_slice(&cbuf[..n]);
                    let now = Instant::now();
                    while let Some(frame) = from_client.next_packet() {
                        up.send(now, Bytes::from(frame));
                    }
                }
            },
            read = server_rd.read(&mut sbuf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    from_server.extend_from_slice(&sbuf[..n]);
                    let now = Instant::now();
                    while let Some(frame) = from_server.next_packet() {
                        down.send(now, Bytes::from(frame));
                    }
                }
            },
            () = sleep => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_frame_comes_a_round_trip_late_and_holds_back_the_ones_behind() {
        let profile = LinkProfile {
            delay: Duration::from_millis(20),
            loss_pct: 100.0,
            ..LinkProfile::default()
        };
        let mut link = TcpDirection::new(profile, 1);
        let t0 = Instant::now();
        link.send(t0, Bytes::from_static(b"a"));
        link.send(t0 + Duration::from_millis(5), Bytes::from_static(b"b"));
        // Nothing before one round trip plus the one-way delay, nothing lost, order kept.
        assert!(link.poll(t0 + Duration::from_millis(59)).is_none());
        let at = t0 + Duration::from_millis(61);
        assert_eq!(link.poll(at).as_deref(), Some(&b"a"[..]));
        assert_eq!(link.poll(at).as_deref(), Some(&b"b"[..]));
        assert_eq!(link.stats().lost, 1, "counted as one retransmission");
        assert_eq!(link.stats().delivered, 2, "and nothing lost");
    }
}
