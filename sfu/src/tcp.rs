//! ICE over TCP for the driver: passive candidates on the media port number (RFC 6544), each
//! packet framed with a two-byte length (RFC 4571).
//!
//! A classroom whose network blocks UDP connects to the media port over TCP and sends the same
//! STUN, DTLS, RTP and RTCP packets it would send over UDP, each behind its length. This module
//! only accepts connections and undoes and redoes that framing; every packet goes through the same
//! [`crate::Router`] as a UDP datagram, named by the connection's remote address (what LiveKit's
//! TCP mux and mediasoup's `WebRtcServer` do).
//!
//! What one connection may cost is bounded: its reads are one frame at a time (at most
//! [`MAX_FRAME`] plus a read buffer), its write queue at [`TcpLimits::max_queued_bytes`] (beyond that a packet
//! is dropped, as a full router queue drops a datagram), the number of connections at
//! [`TcpLimits::max_connections`], and a connection that says nothing for
//! [`TcpLimits::idle_timeout`] or whose first packet is not an ICE check is closed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use rtc::shared::tcp_framing::{MAX_FRAMED_PACKET_SIZE, TcpFrameDecoder, frame_packet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::metrics::SfuMetrics;

/// Limits of the TCP side of the media port.
#[derive(Debug, Clone)]
pub struct TcpLimits {
    /// Open ICE-TCP connections at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Bytes waiting to be written to one connection; a packet that would go over is dropped.
    pub max_queued_bytes: usize,
    /// A connection with nothing received for this long is closed (RFC 7675 consent expires
    /// after 30 s without a check, and every peer checks more often than that).
    pub idle_timeout: Duration,
}

impl Default for TcpLimits {
    fn default() -> Self {
        Self {
            max_connections: 1000,
            max_queued_bytes: 256 * 1024,
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// Frames read from all connections wait here for the driver; when it is full, readers stop
/// reading and TCP flow control slows the senders down.
const INBOUND_QUEUE: usize = 1024;
const READ_BUFFER: usize = 4096;
/// Largest packet taken from a connection: what the UDP side takes from a datagram. WebRTC keeps
/// every packet under the path MTU over TCP too; a longer frame closes the connection, so one
/// connection buffers at most this plus a read.
pub const MAX_FRAME: usize = 2048;

enum Inbound {
    Opened(SocketAddr, Writer),
    Frame(SocketAddr, Vec<u8>),
    Closed(SocketAddr),
}

struct Writer {
    packets: mpsc::UnboundedSender<Bytes>,
    queued: Arc<AtomicUsize>,
}

/// The TCP half of the media port, as the driver sees it: packets in, packets out, by peer address.
pub struct TcpMedia {
    inbound: mpsc::Receiver<Inbound>,
    writers: HashMap<SocketAddr, Writer>,
    max_queued_bytes: usize,
    metrics: Arc<SfuMetrics>,
}

impl TcpMedia {
    /// Accept ICE-TCP connections on `listener` (a task per connection) until `self` is dropped;
    /// then the listener closes, and each connection once its writer is gone.
    pub fn start(listener: TcpListener, limits: TcpLimits, metrics: Arc<SfuMetrics>) -> Self {
        let (tx, inbound) = mpsc::channel(INBOUND_QUEUE);
        let max_queued_bytes = limits.max_queued_bytes;
        tokio::spawn(accept(listener, tx, limits));
        Self {
            inbound,
            writers: HashMap::new(),
            max_queued_bytes,
            metrics,
        }
    }

    /// The next packet from any connection, with the connection's remote address. Cancel-safe.
    /// `None` once the listener has stopped.
    pub async fn recv(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        loop {
            match self.inbound.recv().await? {
                Inbound::Opened(peer, writer) => {
                    self.writers.insert(peer, writer);
                    self.metrics.ice_tcp_connections.inc();
                }
                Inbound::Closed(peer) => {
                    self.writers.remove(&peer);
                }
                Inbound::Frame(peer, packet) => return Some((peer, packet)),
            }
            self.metrics
                .ice_tcp_connections_open
                .set(self.writers.len() as i64);
        }
    }

    /// Queue `packet` for the connection from `to`. False when there is no such connection (it
    /// closed) or its queue is full: the packet is dropped, as UDP would lose it.
    pub fn send(&mut self, to: SocketAddr, packet: &[u8]) -> bool {
        let Some(writer) = self.writers.get(&to) else {
            return false;
        };
        if packet.len() > MAX_FRAMED_PACKET_SIZE {
            return false;
        }
        let framed = frame_packet(packet);
        let queued = writer.queued.load(Ordering::Relaxed);
        if queued + framed.len() > self.max_queued_bytes {
            tracing::debug!(%to, queued, "ICE-TCP write queue full, packet dropped");
            return false;
        }
        writer.queued.fetch_add(framed.len(), Ordering::Relaxed);
        writer.packets.send(Bytes::from(framed)).is_ok()
    }

    /// Open connections.
    pub fn connections(&self) -> usize {
        self.writers.len()
    }
}

async fn accept(listener: TcpListener, inbound: mpsc::Sender<Inbound>, limits: TcpLimits) {
    let live = Arc::new(AtomicUsize::new(0));
    loop {
        // The driver dropped its end: the media plane stopped, so the listener closes now rather
        // than at the next connection attempt.
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = inbound.closed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(%err, "ICE-TCP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if live.load(Ordering::Relaxed) >= limits.max_connections {
            tracing::warn!(%peer, max = limits.max_connections, "ICE-TCP connection refused: too many open");
            continue;
        }
        live.fetch_add(1, Ordering::Relaxed);
        let (inbound, limits, live) = (inbound.clone(), limits.clone(), live.clone());
        tokio::spawn(async move {
            serve(stream, peer, &inbound, &limits).await;
            let _ = inbound.send(Inbound::Closed(peer)).await;
            live.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// One connection: frames in to the driver, queued frames out, until either side stops.
async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    inbound: &mpsc::Sender<Inbound>,
    limits: &TcpLimits,
) {
    // Media is latency-bound: a packet goes out when it is queued, not when a segment fills.
    let _ = stream.set_nodelay(true);
    let (mut read, mut write) = stream.into_split();
    let (packets, mut outgoing) = mpsc::unbounded_channel::<Bytes>();
    let queued = Arc::new(AtomicUsize::new(0));
    let writer = Writer {
        packets,
        queued: queued.clone(),
    };
    if inbound.send(Inbound::Opened(peer, writer)).await.is_err() {
        return;
    }
    let writing = async {
        while let Some(framed) = outgoing.recv().await {
            if write.write_all(&framed).await.is_err() {
                break;
            }
            queued.fetch_sub(framed.len(), Ordering::Relaxed);
        }
    };
    let reading = async {
        let mut decoder = TcpFrameDecoder::new();
        let mut buf = vec![0u8; READ_BUFFER];
        let mut first = true;
        loop {
            let n = match tokio::time::timeout(limits.idle_timeout, read.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => n,
                Err(_) => {
                    tracing::debug!(%peer, "ICE-TCP connection idle, closed");
                    break;
                }
            };
            decoder.extend_from_slice(&buf[..n]);
            while let Some(packet) = decoder.next_packet() {
                if packet.len() > MAX_FRAME {
                    tracing::debug!(%peer, "ICE-TCP frame longer than {MAX_FRAME} bytes, closed");
                    return;
                }
                // RFC 6544 §3: the first thing on a connection is an ICE connectivity check.
                if first && crate::demux::binding_request_ufrag(&packet).is_none() {
                    tracing::debug!(%peer, "ICE-TCP connection not opened by an ICE check, closed");
                    return;
                }
                first = false;
                if inbound.send(Inbound::Frame(peer, packet)).await.is_err() {
                    return;
                }
            }
            // What is left is the start of one frame: longer than a packet may be, it is refused
            // before it is all buffered.
            if decoder.buffered_len() > MAX_FRAME + 2 {
                tracing::debug!(%peer, "ICE-TCP frame longer than {MAX_FRAME} bytes, closed");
                return;
            }
        }
    };
    tokio::select! {
        () = writing => {}
        () = reading => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding_request(username: &str) -> Vec<u8> {
        let mut attrs = Vec::new();
        attrs.extend_from_slice(&0x0006u16.to_be_bytes());
        attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attrs.extend_from_slice(username.as_bytes());
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        let mut msg = vec![0x00, 0x01];
        msg.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        msg.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
        msg.extend_from_slice(&[7; 12]);
        msg.extend_from_slice(&attrs);
        msg
    }

    async fn media(limits: TcpLimits) -> (TcpMedia, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (
            TcpMedia::start(listener, limits, Arc::new(SfuMetrics::default())),
            addr,
        )
    }

    async fn recv(media: &mut TcpMedia) -> (SocketAddr, Vec<u8>) {
        tokio::time::timeout(Duration::from_secs(5), media.recv())
            .await
            .expect("a packet within 5 s")
            .expect("listener running")
    }

    #[tokio::test]
    async fn frames_split_across_reads_arrive_whole_and_replies_are_framed() {
        let (mut media, addr) = media(TcpLimits::default()).await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        let check = binding_request("srv:cli");
        let rtp = vec![0x80u8; 1200];
        let mut wire = frame_packet(&check);
        wire.extend(frame_packet(&rtp));
        // Byte by byte for the first frame, the rest at once: framing, not reads, delimits.
        for byte in &wire[..check.len() + 2] {
            client.write_all(&[*byte]).await.unwrap();
        }
        client.write_all(&wire[check.len() + 2..]).await.unwrap();
        let (from, first) = recv(&mut media).await;
        assert_eq!(first, check);
        assert_eq!(from, client.local_addr().unwrap());
        assert_eq!(recv(&mut media).await.1, rtp);

        assert!(media.send(from, b"reply"));
        let mut got = [0u8; 7];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"\x00\x05reply");
    }

    #[tokio::test]
    async fn a_connection_not_opened_by_an_ice_check_is_closed() {
        let (mut media, addr) = media(TcpLimits::default()).await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        client
            .write_all(&frame_packet(b"GET / HTTP/1.1\r\n\r\n"))
            .await
            .unwrap();
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
            .await
            .expect("closed within 5 s");
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "the server closes the connection"
        );
        // Nothing reached the router.
        let nothing = tokio::time::timeout(Duration::from_millis(200), media.recv()).await;
        assert!(nothing.is_err(), "no packet is handed on");
    }

    #[tokio::test]
    async fn a_full_write_queue_drops_packets_instead_of_growing() {
        let limits = TcpLimits {
            max_queued_bytes: 4 * 1024,
            ..TcpLimits::default()
        };
        let (mut media, addr) = media(limits).await;
        // The client never reads: the kernel buffers fill, then our queue does.
        let mut client = TcpStream::connect(addr).await.unwrap();
        client
            .write_all(&frame_packet(&binding_request("srv:cli")))
            .await
            .unwrap();
        let (from, _) = recv(&mut media).await;
        let packet = vec![0u8; 1000];
        let mut dropped = 0;
        for _ in 0..20_000 {
            if !media.send(from, &packet) {
                dropped += 1;
            }
        }
        assert!(dropped > 0, "a reader that never reads must lose packets");
        assert!(media.connections() == 1, "the connection itself stays");
    }

    #[tokio::test]
    async fn a_frame_longer_than_a_packet_closes_the_connection() {
        let (mut media, addr) = media(TcpLimits::default()).await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        client
            .write_all(&frame_packet(&binding_request("srv:cli")))
            .await
            .unwrap();
        recv(&mut media).await;
        // A 60 000-byte frame announced, and its start sent: no need to wait for the rest.
        let mut wire = 60_000u16.to_be_bytes().to_vec();
        wire.extend(vec![0u8; 8000]);
        let _ = client.write_all(&wire).await;
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
            .await
            .expect("closed within 5 s");
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "the server closes the connection"
        );
    }

    #[tokio::test]
    async fn connections_over_the_limit_are_refused() {
        let limits = TcpLimits {
            max_connections: 1,
            ..TcpLimits::default()
        };
        let (mut media, addr) = media(limits).await;
        let mut first = TcpStream::connect(addr).await.unwrap();
        first
            .write_all(&frame_packet(&binding_request("srv:a")))
            .await
            .unwrap();
        recv(&mut media).await;
        let mut second = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 4];
        let read = tokio::time::timeout(Duration::from_secs(5), second.read(&mut buf))
            .await
            .expect("closed within 5 s");
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "the second connection is closed"
        );
    }
}
