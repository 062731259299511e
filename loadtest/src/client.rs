//! A classroom as a program: joins a class by its link over the real signaling API and publishes
//! and receives real WebRTC media (the `webrtc` crate). The end-to-end tests and the load-test tool
//! both drive classrooms through this.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::link::{LinkProfile, ProxyStats, UdpLinkProxy};
use crate::loss::SeqCounter;
use crate::stats::JitterEstimator;
use crate::tcp_link::TcpLinkProxy;
use anyhow::{Context, anyhow, bail};
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use tandem_sfu::{Source, TrackInfo};
use tandem_signaling::protocol::{ClientMessage, DeclaredTrack, ServerMessage};
use tokio::sync::{broadcast, mpsc};
use tokio_tungstenite::tungstenite::Message;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceGatheringState, RTCPeerConnectionState, RTCSessionDescription,
    Registry, register_default_interceptors,
};

/// Marks a synthetic video payload that carries its send time.
const STAMP_MAGIC: &[u8; 4] = b"TDM1";
/// Opus frame length: 20 ms at 48 kHz, as browsers send.
const OPUS_FRAME_SAMPLES: usize = 960;

/// Microseconds since the Unix epoch; sender and receiver share this clock on one host.
pub fn wall_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// What one classroom has received of one published track.
#[derive(Debug, Default, Clone)]
pub struct ReceivedTrack {
    pub info: Option<TrackInfo>,
    pub packets: u64,
    pub bytes: u64,
    pub first_at: Option<Instant>,
    pub last_at: Option<Instant>,
    /// Arrival of each packet that starts a keyframe.
    pub keyframes: Vec<Instant>,
    /// One-way latency of stamped video frames, in microseconds, with their arrival.
    pub latencies_us: Vec<(Instant, u64)>,
    /// Arrival of each frame's first packet (for freeze detection).
    pub frame_arrivals: Vec<Instant>,
    /// Opus payloads by sequence number (audio tracks), for decoding.
    pub opus: Vec<(u16, Bytes)>,
    pub ended: bool,
    /// Which RTP sequence numbers arrived (retransmissions fill holes): loss after NACK.
    pub seqs: SeqCounter,
    /// RFC 3550 interarrival jitter of the audio packets (audio tracks only).
    pub jitter: Option<JitterEstimator>,
}

/// How a classroom reaches the server. The default is what [`Classroom::join`] does: a direct
/// loopback path and Opus as the plain encoder makes it.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Put each peer connection behind its own [`UdpLinkProxy`] with this profile both ways.
    pub link: Option<LinkProfile>,
    /// Seed of this classroom's link emulators (the publish leg uses `2 × seed`, the subscribe
    /// leg `2 × seed + 1`).
    pub seed: u64,
    /// Opus in-band forward error correction, as browsers negotiate it (`useinbandfec=1`).
    pub opus_fec: bool,
    /// Opus discontinuous transmission (`usedtx=1`): silence is sent as rare comfort-noise frames.
    pub opus_dtx: bool,
    /// Reach the server over ICE-TCP only (RFC 6544), as a classroom whose network blocks UDP.
    pub tcp: bool,
}

/// The emulated link of one leg: UDP datagrams, or the frames of an ICE-TCP connection.
pub enum LinkProxy {
    Udp(UdpLinkProxy),
    Tcp(TcpLinkProxy),
}

impl LinkProxy {
    pub fn stats(&self) -> ProxyStats {
        match self {
            Self::Udp(p) => p.stats(),
            Self::Tcp(p) => p.stats(),
        }
    }
}

impl ClientOptions {
    /// The options of a classroom behind an emulated link (`None`: direct) with browser-like
    /// Opus settings (FEC on, DTX off, as Chrome sends by default).
    pub fn browser_like(link: Option<LinkProfile>, seed: u64) -> Self {
        Self {
            link,
            seed,
            opus_fec: true,
            opus_dtx: false,
            tcp: false,
        }
    }

    /// The server's candidate this client uses in `sdp`: its UDP one, or with `tcp` its passive
    /// TCP one.
    pub fn candidate_addr(&self, sdp: &str) -> Option<SocketAddr> {
        if self.tcp {
            server_tcp_candidate_addr(sdp)
        } else {
            server_candidate_addr(sdp)
        }
    }

    /// With a link profile: starts a proxy for one leg towards the server candidate in `sdp`
    /// and returns the SDP pointing at the proxy. Without: `sdp` as it is.
    async fn proxy_for(
        &self,
        leg_seed: u64,
        sdp: &str,
        proxies: &Mutex<Vec<LinkProxy>>,
    ) -> anyhow::Result<String> {
        let Some(profile) = &self.link else {
            return Ok(sdp.to_owned());
        };
        let server = self
            .candidate_addr(sdp)
            .ok_or_else(|| anyhow!("no server candidate in the SDP"))?;
        let (proxy, local) = if self.tcp {
            let proxy =
                TcpLinkProxy::start(server, profile.clone(), profile.clone(), leg_seed).await?;
            let local = proxy.local_addr();
            (LinkProxy::Tcp(proxy), local)
        } else {
            let proxy =
                UdpLinkProxy::start(server, profile.clone(), profile.clone(), leg_seed).await?;
            let local = proxy.local_addr();
            (LinkProxy::Udp(proxy), local)
        };
        let rewritten = rewrite_candidates(sdp, server, local);
        proxies.lock().push(proxy);
        Ok(rewritten)
    }
}

/// The address of the first UDP candidate in an SDP (`a=candidate:F C udp PRIO IP PORT typ …`).
pub fn server_candidate_addr(sdp: &str) -> Option<SocketAddr> {
    sdp.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("a=candidate:")?;
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() < 6 || !f[2].eq_ignore_ascii_case("udp") {
            return None;
        }
        let ip: std::net::IpAddr = f[4].parse().ok()?;
        Some(SocketAddr::new(ip, f[5].parse().ok()?))
    })
}

/// The address of the first passive TCP candidate in an SDP (RFC 6544: `… tcp PRIO IP PORT typ
/// host tcptype passive`).
pub fn server_tcp_candidate_addr(sdp: &str) -> Option<SocketAddr> {
    tcp_passive_candidates(sdp)
        .into_iter()
        .next()
        .map(|(addr, _)| addr)
}

/// Every passive TCP candidate of an SDP, with its `candidate:` line.
fn tcp_passive_candidates(sdp: &str) -> Vec<(SocketAddr, String)> {
    sdp.lines()
        .filter_map(|line| {
            let candidate = line.trim().strip_prefix("a=")?;
            let f: Vec<&str> = candidate
                .strip_prefix("candidate:")?
                .split_whitespace()
                .collect();
            if f.len() < 6 || !f[2].eq_ignore_ascii_case("tcp") {
                return None;
            }
            let passive = f.windows(2).any(|w| w[0] == "tcptype" && w[1] == "passive");
            let ip: std::net::IpAddr = f[4].parse().ok()?;
            let port = f[5].parse().ok()?;
            passive.then(|| (SocketAddr::new(ip, port), candidate.to_owned()))
        })
        .collect()
}

/// Hand the passive TCP candidates of the remote SDP to the peer connection one by one: the
/// `webrtc` crate opens its ICE-TCP connection only for a candidate added this way, not for one
/// that arrives inside a description.
async fn connect_tcp_candidates(pc: &Arc<dyn PeerConnection>, sdp: &str) -> anyhow::Result<()> {
    for (_, candidate) in tcp_passive_candidates(sdp) {
        pc.add_ice_candidate(webrtc::peer_connection::RTCIceCandidateInit {
            candidate,
            sdp_mid: None,
            sdp_mline_index: Some(0),
            ..Default::default()
        })
        .await?;
    }
    Ok(())
}

/// The SDP with every candidate at `from` moved to `to` (every other line untouched, line
/// endings kept).
pub fn rewrite_candidates(sdp: &str, from: SocketAddr, to: SocketAddr) -> String {
    let mut out = String::with_capacity(sdp.len() + 64);
    for line in sdp.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        let ending = &line[body.len()..];
        let rewritten = body.strip_prefix("a=candidate:").and_then(|rest| {
            let mut f: Vec<&str> = rest.split(' ').collect();
            if f.len() < 6 {
                return None;
            }
            let ip: std::net::IpAddr = f[4].parse().ok()?;
            if SocketAddr::new(ip, f[5].parse().ok()?) != from {
                return None;
            }
            let (ip, port) = (to.ip().to_string(), to.port().to_string());
            f[4] = &ip;
            f[5] = &port;
            Some(format!("a=candidate:{}", f.join(" ")))
        });
        out.push_str(rewritten.as_deref().unwrap_or(body));
        out.push_str(ending);
    }
    out
}

#[derive(Default)]
struct Shared {
    received: HashMap<String, ReceivedTrack>,
    offered: HashMap<String, TrackInfo>,
}

/// A classroom connected to a class.
pub struct Classroom {
    pub classroom_id: String,
    pub session: String,
    outgoing: mpsc::UnboundedSender<Message>,
    messages: broadcast::Sender<ServerMessage>,
    log: Arc<Mutex<Vec<ServerMessage>>>,
    shared: Arc<Mutex<Shared>>,
    subscribe_pc: Arc<Mutex<Option<Arc<dyn PeerConnection>>>>,
    publish_pc: Option<Arc<dyn PeerConnection>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The tasks that send media (stopped by [`Classroom::stop_media`]).
    media_tasks: Vec<tokio::task::JoinHandle<()>>,
    options: ClientOptions,
    /// The link emulators of both legs, if any; dropped with the classroom.
    proxies: Arc<Mutex<Vec<LinkProxy>>>,
}

/// The WebSocket URL of a server given its HTTP base URL.
pub fn ws_url(http_base: &str) -> String {
    let base = http_base.trim_end_matches('/');
    match base.strip_prefix("https://") {
        Some(rest) => format!("wss://{rest}/ws"),
        None => format!("ws://{}/ws", base.trim_start_matches("http://")),
    }
}

/// The token in a teacher or invite link (`…#token=…`).
pub fn token_from_link(link: &str) -> anyhow::Result<String> {
    link.split_once("#token=")
        .map(|(_, t)| t.to_owned())
        .ok_or_else(|| anyhow!("no token in link {link}"))
}

/// What media a classroom sends.
#[derive(Debug, Clone)]
pub struct PublishSpec {
    /// A sine tone at this frequency, Opus-encoded, if set.
    pub tone_hz: Option<f32>,
    /// Synthetic VP8 video at this frame rate and size, if set.
    pub video: Option<VideoSpec>,
}

#[derive(Debug, Clone)]
pub struct VideoSpec {
    pub fps: u32,
    pub frame_bytes: usize,
    /// Also send a keyframe this often; `None`: only when a keyframe is asked for (and at start).
    pub keyframe_interval: Option<Duration>,
    pub source: Source,
}

struct Handler {
    shared: Arc<Mutex<Shared>>,
    gathered: mpsc::UnboundedSender<()>,
    connected: mpsc::UnboundedSender<bool>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(());
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        match state {
            RTCPeerConnectionState::Connected => {
                let _ = self.connected.send(true);
            }
            RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                let _ = self.connected.send(false);
            }
            _ => {}
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let shared = self.shared.clone();
        let track_id = track.track_id().await;
        let is_audio = track.kind().await == RtpCodecKind::Audio;
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                match event {
                    TrackRemoteEvent::OnRtpPacket(packet) => {
                        let now = Instant::now();
                        let mut s = shared.lock();
                        let info = s.offered.get(&track_id).cloned();
                        let r = s.received.entry(track_id.clone()).or_default();
                        if r.info.is_none() {
                            r.info = info;
                        }
                        r.packets += 1;
                        r.bytes += packet.payload.len() as u64;
                        r.first_at.get_or_insert(now);
                        r.last_at = Some(now);
                        // A duplicate (a retransmission of a packet that had arrived)
                        // is counted, but starts no frame and carries no new latency.
                        let fresh = r.seqs.record(packet.header.sequence_number);
                        if !fresh {
                            continue;
                        }
                        if is_audio {
                            r.opus
                                .push((packet.header.sequence_number, packet.payload.clone()));
                            r.jitter
                                .get_or_insert_with(|| JitterEstimator::new(48_000))
                                .update(now, packet.header.timestamp);
                        } else if let Some(frame) = parse_video(&packet.payload) {
                            // The descriptor's start bit marks a frame's first packet, also
                            // when it arrives late as a retransmission.
                            r.frame_arrivals.push(now);
                            if frame.keyframe {
                                r.keyframes.push(now);
                            }
                            if let Some(sent) = frame.sent_us {
                                r.latencies_us
                                    .push((now, wall_micros().saturating_sub(sent)));
                            }
                        }
                    }
                    TrackRemoteEvent::OnEnded => {
                        shared
                            .lock()
                            .received
                            .entry(track_id.clone())
                            .or_default()
                            .ended = true;
                        break;
                    }
                    _ => {}
                }
            }
        });
    }
}

async fn new_peer(
    shared: Arc<Mutex<Shared>>,
    tcp: bool,
) -> anyhow::Result<(
    Arc<dyn PeerConnection>,
    mpsc::UnboundedReceiver<()>,
    mpsc::UnboundedReceiver<bool>,
)> {
    let mut media_engine = MediaEngine::default();
    media_engine.register_default_codecs()?;
    let registry = register_default_interceptors(Registry::new(), &mut media_engine)?.with(
        rtc::interceptor::Slot::from(tandem_sfu::feedback::KEYFRAME_TAP_SLOT),
        tandem_sfu::feedback::KeyframeRequestTap::default(),
    );
    let (gathered_tx, gathered) = mpsc::unbounded_channel();
    let (connected_tx, connected) = mpsc::unbounded_channel();
    let handler = Arc::new(Handler {
        shared,
        gathered: gathered_tx,
        connected: connected_tx,
    });
    let builder = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .with_handler(handler as Arc<dyn PeerConnectionEventHandler>);
    let pc = if tcp {
        // Only TCP candidates (an active one connects to the server's passive candidate).
        builder
            .with_setting_engine(
                webrtc::peer_connection::SettingEngineBuilder::new()
                    .with_network_types(vec![rtc::ice::network_type::NetworkType::Tcp4])
                    .build(),
            )
            .with_tcp_addrs(vec!["127.0.0.1:0".to_owned()])
            .build()
            .await?
    } else {
        builder
            .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
            .build()
            .await?
    };
    Ok((Arc::new(pc), gathered, connected))
}

impl Classroom {
    /// Open a teacher or invite link and join as `name`.
    pub async fn join(http_base: &str, link_or_token: &str, name: &str) -> anyhow::Result<Self> {
        Self::rejoin(http_base, link_or_token, name, None).await
    }

    /// Join again after a dropped connection, asking for the old place back with `resume`
    /// (the `session` of the earlier `welcome`).
    pub async fn rejoin(
        http_base: &str,
        link_or_token: &str,
        name: &str,
        resume: Option<String>,
    ) -> anyhow::Result<Self> {
        Self::connect(
            http_base,
            link_or_token,
            name,
            resume,
            ClientOptions::default(),
        )
        .await
    }

    /// [`join`](Self::join) with options: with `options.link` set, each of the classroom's two
    /// peer connections reaches the server through its own emulated link (the server's
    /// candidate in the SDP it sends is rewritten to the proxy's address).
    pub async fn join_with(
        http_base: &str,
        link_or_token: &str,
        name: &str,
        options: ClientOptions,
    ) -> anyhow::Result<Self> {
        Self::connect(http_base, link_or_token, name, None, options).await
    }

    async fn connect(
        http_base: &str,
        link_or_token: &str,
        name: &str,
        resume: Option<String>,
        options: ClientOptions,
    ) -> anyhow::Result<Self> {
        let token = token_from_link(link_or_token).unwrap_or_else(|_| link_or_token.to_owned());
        let (ws, _) = tokio_tungstenite::connect_async(ws_url(http_base))
            .await
            .context("connecting the WebSocket")?;
        let (mut sink, mut stream) = ws.split();
        let (outgoing, mut outgoing_rx) = mpsc::unbounded_channel::<Message>();
        let (messages, mut first) = broadcast::channel(1024);
        // Subscribed before `join` goes out, so no offer can slip past.
        let offers = messages.subscribe();
        let log = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::new(Mutex::new(Shared::default()));
        let subscribe_pc: Arc<Mutex<Option<Arc<dyn PeerConnection>>>> = Arc::default();

        let writer = tokio::spawn(async move {
            while let Some(message) = outgoing_rx.recv().await {
                if sink.send(message).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let reader = {
            let messages = messages.clone();
            let log = log.clone();
            tokio::spawn(async move {
                while let Some(Ok(frame)) = stream.next().await {
                    if let Message::Text(text) = frame
                        && let Ok(message) = serde_json::from_str::<ServerMessage>(&text)
                    {
                        log.lock().push(message.clone());
                        let _ = messages.send(message);
                    }
                }
            })
        };

        let join = ClientMessage::Join {
            v: 1,
            token,
            name: name.to_owned(),
            resume,
        };
        outgoing.send(Message::text(serde_json::to_string(&join)?))?;
        let welcome = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match first.recv().await {
                    Ok(m @ ServerMessage::Welcome { .. }) => return Ok(m),
                    Ok(ServerMessage::Error { code, message, .. }) => {
                        bail!("join refused: {code:?}: {message}")
                    }
                    Ok(_) => continue,
                    Err(err) => bail!("connection closed before welcome: {err}"),
                }
            }
        })
        .await
        .context("waiting for welcome")??;
        let ServerMessage::Welcome { you, session, .. } = welcome else {
            unreachable!()
        };

        let mut classroom = Self {
            classroom_id: you.classroom_id.to_string(),
            session,
            outgoing,
            messages,
            log,
            shared,
            subscribe_pc,
            publish_pc: None,
            tasks: vec![writer, reader],
            media_tasks: Vec::new(),
            options,
            proxies: Arc::default(),
        };
        classroom.spawn_subscriber(offers);
        Ok(classroom)
    }

    /// Answer every subscribe offer the server sends.
    fn spawn_subscriber(&mut self, mut rx: broadcast::Receiver<ServerMessage>) {
        let outgoing = self.outgoing.clone();
        let shared = self.shared.clone();
        let slot = self.subscribe_pc.clone();
        let options = self.options.clone();
        let proxies = self.proxies.clone();
        self.tasks.push(tokio::spawn(async move {
            let mut gathered = None;
            // The subscribe leg's (server, proxy) addresses, once its emulator runs.
            let mut emulated: Option<(SocketAddr, SocketAddr)> = None;
            let mut tcp_connecting = false;
            while let Ok(message) = rx.recv().await {
                let ServerMessage::SubscribeOffer { sdp, tracks } = message else {
                    continue;
                };
                {
                    let mut s = shared.lock();
                    for offered in tracks {
                        s.offered
                            .insert(offered.track.track_id.to_string(), offered.track.clone());
                    }
                }
                let existing = slot.lock().clone();
                let pc = match existing {
                    Some(pc) => pc,
                    None => match new_peer(shared.clone(), options.tcp).await {
                        Ok((pc, g, _)) => {
                            gathered = Some(g);
                            *slot.lock() = Some(pc.clone());
                            pc
                        }
                        Err(err) => {
                            tracing::warn!(%err, "cannot create subscribe leg");
                            return;
                        }
                    },
                };
                let result: anyhow::Result<String> = async {
                    let sdp = match emulated {
                        _ if options.link.is_none() => sdp,
                        Some((server, proxy)) => rewrite_candidates(&sdp, server, proxy),
                        None => {
                            let leg_seed = options.seed.wrapping_mul(2) | 1;
                            let rewritten = options.proxy_for(leg_seed, &sdp, &proxies).await?;
                            if let (Some(s), Some(p)) = (
                                options.candidate_addr(&sdp),
                                options.candidate_addr(&rewritten),
                            ) {
                                emulated = Some((s, p));
                            }
                            rewritten
                        }
                    };
                    pc.set_remote_description(RTCSessionDescription::offer(sdp.clone())?)
                        .await?;
                    // A new leg over ICE-TCP connects to the server's passive candidate.
                    if options.tcp && gathered.is_some() && !tcp_connecting {
                        tcp_connecting = true;
                        connect_tcp_candidates(&pc, &sdp).await?;
                    }
                    let answer = pc.create_answer(None).await?;
                    // Only a new leg gathers; a renegotiation reuses its candidates.
                    apply_local(&pc, answer, gathered.as_mut()).await
                }
                .await;
                match result {
                    Ok(sdp) => {
                        let answer = ClientMessage::SubscribeAnswer { sdp };
                        if let Ok(text) = serde_json::to_string(&answer) {
                            let _ = outgoing.send(Message::text(text));
                        }
                    }
                    Err(err) => tracing::warn!(%err, "cannot answer subscribe offer"),
                }
            }
        }));
    }

    /// Send a protocol message.
    pub fn send(&self, message: &ClientMessage) -> anyhow::Result<()> {
        self.outgoing
            .send(Message::text(serde_json::to_string(message)?))
            .map_err(|_| anyhow!("connection closed"))
    }

    /// Send raw text (for tests of malformed input).
    pub fn send_raw(&self, text: impl Into<String>) -> anyhow::Result<()> {
        self.outgoing
            .send(Message::text(text.into()))
            .map_err(|_| anyhow!("connection closed"))
    }

    /// A receiver of every server message from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ServerMessage> {
        self.messages.subscribe()
    }

    /// Every server message so far.
    pub fn log(&self) -> Vec<ServerMessage> {
        self.log.lock().clone()
    }

    /// Wait until a message matching `want` has arrived (including earlier ones).
    pub async fn wait_for(
        &self,
        timeout: Duration,
        want: impl Fn(&ServerMessage) -> bool,
    ) -> anyhow::Result<ServerMessage> {
        let mut rx = self.messages.subscribe();
        if let Some(m) = self.log.lock().iter().find(|m| want(m)) {
            return Ok(m.clone());
        }
        tokio::time::timeout(timeout, async {
            loop {
                match rx.recv().await {
                    Ok(m) if want(&m) => return Ok(m),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(err) => bail!("connection closed: {err}"),
                }
            }
        })
        .await
        .map_err(|_| anyhow!("timed out waiting for a message"))?
    }

    /// What this classroom has received, by track id.
    pub fn received(&self) -> HashMap<String, ReceivedTrack> {
        self.shared.lock().received.clone()
    }

    /// Looks at what this classroom has received without copying it (the lock is held while
    /// `f` runs: keep it short).
    pub fn inspect_received<R>(&self, f: impl FnOnce(&HashMap<String, ReceivedTrack>) -> R) -> R {
        f(&self.shared.lock().received)
    }

    /// Stop sending media (the legs stay up, so late retransmissions still arrive).
    pub fn stop_media(&mut self) {
        for task in self.media_tasks.drain(..) {
            task.abort();
        }
    }

    /// Counters of this classroom's emulated links (publish leg first), empty without emulation.
    pub fn link_stats(&self) -> Vec<crate::link::ProxyStats> {
        self.proxies.lock().iter().map(LinkProxy::stats).collect()
    }

    /// Received tracks published by `classroom_id` of `kind`.
    pub fn received_from(
        &self,
        classroom_id: &str,
        kind: tandem_sfu::MediaKind,
    ) -> Vec<ReceivedTrack> {
        self.received()
            .into_values()
            .filter(|r| {
                r.info
                    .as_ref()
                    .is_some_and(|i| i.classroom_id.as_str() == classroom_id && i.kind == kind)
            })
            .collect()
    }

    /// Publish audio and/or video; media flows until the classroom is dropped or leaves.
    pub async fn publish(&mut self, spec: PublishSpec) -> anyhow::Result<()> {
        self.publish_with_screen(spec, None).await
    }

    /// [`publish`](Self::publish), plus a second video track (a screen share) if `screen` is set.
    pub async fn publish_with_screen(
        &mut self,
        spec: PublishSpec,
        screen: Option<VideoSpec>,
    ) -> anyhow::Result<()> {
        let (pc, mut gathered, mut connected) =
            new_peer(self.shared.clone(), self.options.tcp).await?;
        let mut declared = Vec::new();
        let mut audio = None;
        let mut video = None;
        if spec.tone_hz.is_some() {
            let (track, ssrc) = local_track(RtpCodecKind::Audio, "audio/opus", 48000, 2);
            pc.add_track(track.clone() as Arc<dyn TrackLocal>).await?;
            declared.push(DeclaredTrack {
                track_id: track.track().await.track_id().to_owned(),
                source: Source::Microphone,
            });
            audio = Some((track, ssrc));
        }
        if let Some(v) = &spec.video {
            let (track, ssrc) = local_track(RtpCodecKind::Video, "video/VP8", 90000, 0);
            pc.add_track(track.clone() as Arc<dyn TrackLocal>).await?;
            declared.push(DeclaredTrack {
                track_id: track.track().await.track_id().to_owned(),
                source: v.source,
            });
            video = Some((track, ssrc));
        }
        let mut screen_track = None;
        if let Some(v) = &screen {
            let (track, ssrc) = local_track(RtpCodecKind::Video, "video/VP8", 90000, 0);
            pc.add_track(track.clone() as Arc<dyn TrackLocal>).await?;
            declared.push(DeclaredTrack {
                track_id: track.track().await.track_id().to_owned(),
                source: v.source,
            });
            screen_track = Some((track, ssrc));
        }
        let sdp = local_offer(&pc, &mut gathered).await?;
        let mut rx = self.messages.subscribe();
        self.send(&ClientMessage::PublishOffer {
            sdp,
            tracks: declared,
        })?;
        let answer = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match rx.recv().await {
                    Ok(ServerMessage::PublishAnswer { sdp }) => return Ok(sdp),
                    Ok(ServerMessage::Error { code, message, .. }) => {
                        bail!("publish refused: {code:?}: {message}")
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(err) => bail!("closed: {err}"),
                }
            }
        })
        .await
        .context("waiting for the publish answer")??;
        let answer = self
            .options
            .proxy_for(self.options.seed.wrapping_mul(2), &answer, &self.proxies)
            .await?;
        pc.set_remote_description(RTCSessionDescription::answer(answer.clone())?)
            .await?;
        if self.options.tcp {
            connect_tcp_candidates(&pc, &answer).await?;
        }
        match tokio::time::timeout(Duration::from_secs(10), connected.recv()).await {
            Ok(Some(true)) => {}
            _ => bail!("the publish leg did not connect"),
        }
        if let (Some(hz), Some((track, ssrc))) = (spec.tone_hz, audio) {
            let pt = payload_type(&pc, RtpCodecKind::Audio).await?;
            let opus = OpusOptions::from(&self.options);
            self.media_tasks
                .push(tokio::spawn(send_tone(track, ssrc, pt, hz, opus)));
        }
        if let (Some(v), Some((track, ssrc))) = (spec.video, video) {
            let pt = payload_type(&pc, RtpCodecKind::Video).await?;
            self.media_tasks
                .push(tokio::spawn(send_video(track, ssrc, pt, v)));
        }
        if let (Some(v), Some((track, ssrc))) = (screen, screen_track) {
            let pt = payload_type(&pc, RtpCodecKind::Video).await?;
            self.media_tasks
                .push(tokio::spawn(send_video(track, ssrc, pt, v)));
        }
        self.publish_pc = Some(pc);
        Ok(())
    }

    /// Leave the class and close both legs.
    pub async fn leave(mut self) {
        let _ = self.send(&ClientMessage::Leave);
        self.close().await;
    }

    /// Drop the connection without a word (a classroom whose link died).
    pub async fn close(&mut self) {
        self.stop_media();
        if let Some(pc) = self.publish_pc.take() {
            let _ = pc.close().await;
        }
        let sub = self.subscribe_pc.lock().take();
        if let Some(pc) = sub {
            let _ = pc.close().await;
        }
        // Give the writer a moment to flush a last message.
        tokio::time::sleep(Duration::from_millis(50)).await;
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }
}

impl Drop for Classroom {
    fn drop(&mut self) {
        for task in self.tasks.iter().chain(&self.media_tasks) {
            task.abort();
        }
    }
}

fn local_track(
    kind: RtpCodecKind,
    mime: &str,
    clock_rate: u32,
    channels: u16,
) -> (Arc<TrackLocalStaticRTP>, u32) {
    let ssrc = rand::random::<u32>();
    let id = format!("{kind}-{ssrc:08x}");
    let track = MediaStreamTrack::new(
        "tandem-client".to_owned(),
        id.clone(),
        id,
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: rtc::rtp_transceiver::rtp_sender::RTCRtpCodec {
                mime_type: mime.to_owned(),
                clock_rate,
                channels,
                ..Default::default()
            },
            ..Default::default()
        }],
    );
    (Arc::new(TrackLocalStaticRTP::new(track)), ssrc)
}

async fn payload_type(pc: &Arc<dyn PeerConnection>, kind: RtpCodecKind) -> anyhow::Result<u8> {
    for sender in pc.get_senders().await {
        let params = sender.get_parameters().await?;
        if let Some(codec) = params.rtp_parameters.codecs.first()
            && sender.track().track().await.kind() == kind
        {
            return Ok(codec.payload_type);
        }
    }
    bail!("no negotiated codec for {kind}")
}

fn rtp(ssrc: u32, pt: u8, seq: u16, ts: u32, marker: bool, payload: Bytes) -> rtc::rtp::Packet {
    rtc::rtp::Packet {
        header: rtc::rtp::Header {
            version: 2,
            marker,
            payload_type: pt,
            sequence_number: seq,
            timestamp: ts,
            ssrc,
            ..Default::default()
        },
        payload,
    }
}

/// Opus encoder settings a browser negotiates.
#[derive(Debug, Clone, Copy, Default)]
struct OpusOptions {
    fec: bool,
    dtx: bool,
}

impl From<&ClientOptions> for OpusOptions {
    fn from(o: &ClientOptions) -> Self {
        Self {
            fec: o.opus_fec,
            dtx: o.opus_dtx,
        }
    }
}

/// Send an Opus-encoded sine tone in 20 ms frames, as a browser microphone would.
async fn send_tone(
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    pt: u8,
    hz: f32,
    options: OpusOptions,
) {
    let Ok(mut encoder) = opus::Encoder::new(48000, opus::Channels::Mono, opus::Application::Voip)
    else {
        return;
    };
    if options.fec {
        // As Chrome does with useinbandfec=1: FEC on, tuned for a few percent loss.
        let _ = encoder.set_inband_fec(true);
        let _ = encoder.set_packet_loss_perc(5);
    }
    if options.dtx {
        let _ = encoder.set_dtx(true);
    }
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    let (mut seq, mut ts, mut phase) = (rand::random::<u16>(), rand::random::<u32>(), 0f32);
    let step = 2.0 * std::f32::consts::PI * hz / 48000.0;
    let mut pcm = vec![0f32; OPUS_FRAME_SAMPLES];
    let mut out = vec![0u8; 1500];
    loop {
        ticker.tick().await;
        for s in pcm.iter_mut() {
            *s = 0.5 * phase.sin();
            phase = (phase + step) % (2.0 * std::f32::consts::PI);
        }
        let Ok(n) = encoder.encode_float(&pcm, &mut out) else {
            return;
        };
        let packet = rtp(ssrc, pt, seq, ts, false, Bytes::copy_from_slice(&out[..n]));
        if track.write_rtp(packet).await.is_err() {
            // Not bound yet or unbound; keep the cadence.
        }
        seq = seq.wrapping_add(1);
        ts = ts.wrapping_add(OPUS_FRAME_SAMPLES as u32);
    }
}

/// A synthetic VP8 frame: a real payload descriptor and frame tag (so keyframes are recognisable),
/// then the send time, then filler.
pub fn synthetic_vp8_frame(keyframe: bool, frame_no: u32, bytes: usize) -> Bytes {
    let mut b = BytesMut::with_capacity(bytes.max(32));
    b.put_u8(0x10); // descriptor: S=1, partition 0
    // Frame tag: bit 0 is the inverse keyframe flag; show_frame set.
    b.put_u8(if keyframe { 0x10 } else { 0x11 });
    b.put_u8(0);
    b.put_u8(0);
    if keyframe {
        b.put_slice(&[0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]); // start code, 640x480
    }
    b.put_slice(STAMP_MAGIC);
    b.put_u64(wall_micros());
    b.put_u32(frame_no);
    while b.len() < bytes {
        b.put_u8((b.len() % 251) as u8);
    }
    b.freeze()
}

/// What a received synthetic frame's first packet says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoFrameInfo {
    pub keyframe: bool,
    pub sent_us: Option<u64>,
}

pub fn parse_video(payload: &[u8]) -> Option<VideoFrameInfo> {
    let descriptor = *payload.first()?;
    if descriptor & 0x10 == 0 {
        return None; // not the start of a frame
    }
    let tag = *payload.get(1)?;
    let keyframe = tag & 0x01 == 0;
    let stamp_at = if keyframe { 11 } else { 4 };
    let sent_us = payload
        .get(stamp_at..stamp_at + 12)
        .filter(|s| &s[..4] == STAMP_MAGIC)
        .map(|s| u64::from_be_bytes(s[4..12].try_into().unwrap_or_default()));
    Some(VideoFrameInfo { keyframe, sent_us })
}

/// Send synthetic video: a keyframe at start, on every keyframe request, and every
/// `keyframe_interval` if set.
async fn send_video(track: Arc<TrackLocalStaticRTP>, ssrc: u32, pt: u8, spec: VideoSpec) {
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / spec.fps.max(1) as f64));
    let (mut seq, mut ts) = (rand::random::<u16>(), rand::random::<u32>());
    let ts_step = 90_000 / spec.fps.max(1);
    let mut frame_no = 0u32;
    let mut want_keyframe = true;
    let mut last_keyframe = Instant::now();
    // Keyframe requests arrive as track events.
    let (kf_tx, mut kf_rx) = mpsc::unbounded_channel();
    let requests = {
        let track = track.clone();
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                if let TrackLocalEvent::OnRtcpPacket(packets) = event
                    && tandem_sfu::feedback::asks_for_keyframe(&packets)
                {
                    let _ = kf_tx.send(());
                }
            }
        })
    };
    loop {
        ticker.tick().await;
        while kf_rx.try_recv().is_ok() {
            want_keyframe = true;
        }
        if spec
            .keyframe_interval
            .is_some_and(|every| last_keyframe.elapsed() >= every)
        {
            want_keyframe = true;
        }
        let keyframe = std::mem::take(&mut want_keyframe);
        if keyframe {
            last_keyframe = Instant::now();
        }
        // Keyframes are larger: three packets' worth.
        let size = if keyframe {
            spec.frame_bytes * 3
        } else {
            spec.frame_bytes
        };
        let frame = synthetic_vp8_frame(keyframe, frame_no, size);
        let mut chunks = frame.chunks(1100).peekable();
        let mut first = true;
        while let Some(chunk) = chunks.next() {
            let payload = if first {
                Bytes::copy_from_slice(chunk)
            } else {
                // Continuation packets: descriptor without the start bit.
                let mut b = BytesMut::with_capacity(chunk.len() + 1);
                b.put_u8(0x00);
                b.put_slice(chunk);
                b.freeze()
            };
            first = false;
            let last = chunks.peek().is_none();
            if track
                .write_rtp(rtp(ssrc, pt, seq, ts, last, payload))
                .await
                .is_err()
            {
                break;
            }
            seq = seq.wrapping_add(1);
        }
        ts = ts.wrapping_add(ts_step);
        frame_no += 1;
        if requests.is_finished() && frame_no > u32::MAX - 1 {
            break;
        }
    }
}

/// Decode received Opus payloads (in sequence order) to mono PCM at 48 kHz.
pub fn decode_opus(mut payloads: Vec<(u16, Bytes)>) -> anyhow::Result<Vec<f32>> {
    // Sequence numbers may wrap; sort by distance from the first.
    let Some(&(first, _)) = payloads.first() else {
        return Ok(Vec::new());
    };
    payloads.sort_by_key(|(seq, _)| seq.wrapping_sub(first));
    let mut decoder = opus::Decoder::new(48000, opus::Channels::Mono)?;
    let mut pcm = Vec::new();
    let mut frame = vec![0f32; 5760];
    for (_, payload) in payloads {
        let n = decoder.decode_float(&payload, &mut frame, false)?;
        pcm.extend_from_slice(&frame[..n]);
    }
    Ok(pcm)
}

/// The strongest frequency in `pcm` between `lo` and `hi` Hz, in 5 Hz steps (Goertzel).
pub fn dominant_frequency(pcm: &[f32], lo: f32, hi: f32) -> Option<f32> {
    if pcm.len() < 4800 {
        return None;
    }
    // Skip the codec's warm-up.
    let pcm = &pcm[pcm.len() / 5..];
    let power = |hz: f32| {
        let w = 2.0 * std::f32::consts::PI * hz / 48000.0;
        let coeff = 2.0 * w.cos();
        let (mut s1, mut s2) = (0f32, 0f32);
        for &x in pcm {
            let s0 = x + coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        s1 * s1 + s2 * s2 - coeff * s1 * s2
    };
    let mut best = (lo, 0f32);
    let mut hz = lo;
    while hz <= hi {
        let p = power(hz);
        if p > best.1 {
            best = (hz, p);
        }
        hz += 5.0;
    }
    (best.1 > 0.0).then_some(best.0)
}

/// A WHIP publisher or WHEP viewer: a standard client that speaks HTTP and SDP, no WebSocket.
pub struct HttpMediaSession {
    pub location: String,
    /// The server's answer, kept to apply an ICE restart's new credentials to.
    answer: String,
    etag: String,
    pc: Arc<dyn PeerConnection>,
    shared: Arc<Mutex<Shared>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// What a WHIP/WHEP server answered to an offer.
pub enum HttpOfferOutcome {
    Created(HttpMediaSession),
    /// The server refused: status and body.
    Refused(u16, String),
}

/// Create and apply an offer and return the SDP with the candidates in it.
async fn local_offer(
    pc: &Arc<dyn PeerConnection>,
    gathered: &mut mpsc::UnboundedReceiver<()>,
) -> anyhow::Result<String> {
    let offer = pc.create_offer(None).await?;
    apply_local(pc, offer, Some(gathered)).await
}

/// Apply a local offer or answer, give candidate gathering (when `gathered` is given) up to 2 s
/// (loopback needs far less), and return the SDP as it then stands.
async fn apply_local(
    pc: &Arc<dyn PeerConnection>,
    description: RTCSessionDescription,
    gathered: Option<&mut mpsc::UnboundedReceiver<()>>,
) -> anyhow::Result<String> {
    pc.set_local_description(description).await?;
    if let Some(g) = gathered {
        let _ = tokio::time::timeout(Duration::from_secs(2), g.recv()).await;
    }
    Ok(pc
        .local_description()
        .await
        .ok_or_else(|| anyhow!("no local description"))?
        .sdp)
}

/// Offer by `POST` (WHIP/WHEP), apply the answer and wait for the connection. A refusal closes the
/// peer connection and comes back as (status, body); success as (Location, ETag, answer SDP).
async fn negotiate_over_http(
    http_base: &str,
    path: &str,
    token: &str,
    pc: &Arc<dyn PeerConnection>,
    gathered: &mut mpsc::UnboundedReceiver<()>,
    connected: &mut mpsc::UnboundedReceiver<bool>,
) -> anyhow::Result<Result<(String, String, String), (u16, String)>> {
    let sdp = local_offer(pc, gathered).await?;
    let response = reqwest::Client::new()
        .post(format!("{}{path}", http_base.trim_end_matches('/')))
        .bearer_auth(token)
        .header("content-type", "application/sdp")
        .body(sdp)
        .send()
        .await?;
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let etag = response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.text().await?;
    if status != 201 {
        let _ = pc.close().await;
        return Ok(Err((status, body)));
    }
    pc.set_remote_description(RTCSessionDescription::answer(body.clone())?)
        .await?;
    match tokio::time::timeout(Duration::from_secs(10), connected.recv()).await {
        Ok(Some(true)) => Ok(Ok((location, etag, body))),
        _ => bail!("the session at {path} did not connect"),
    }
}

impl HttpMediaSession {
    /// WHIP: publish a tone (and synthetic video) into `class_id` with a teacher or invite token.
    pub async fn publish(
        http_base: &str,
        class_id: &str,
        token: &str,
        spec: PublishSpec,
    ) -> anyhow::Result<HttpOfferOutcome> {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (pc, mut gathered, mut connected) = new_peer(shared.clone(), false).await?;
        let (audio, audio_ssrc) = local_track(RtpCodecKind::Audio, "audio/opus", 48000, 2);
        pc.add_track(audio.clone() as Arc<dyn TrackLocal>).await?;
        let video = if spec.video.is_some() {
            let (track, ssrc) = local_track(RtpCodecKind::Video, "video/VP8", 90000, 0);
            pc.add_track(track.clone() as Arc<dyn TrackLocal>).await?;
            Some((track, ssrc))
        } else {
            None
        };
        let path = format!("/whip/{class_id}");
        let (location, etag, answer) =
            match negotiate_over_http(http_base, &path, token, &pc, &mut gathered, &mut connected)
                .await?
            {
                Ok(created) => created,
                Err((status, body)) => return Ok(HttpOfferOutcome::Refused(status, body)),
            };
        let mut tasks = Vec::new();
        if let Some(hz) = spec.tone_hz {
            let pt = payload_type(&pc, RtpCodecKind::Audio).await?;
            tasks.push(tokio::spawn(send_tone(
                audio,
                audio_ssrc,
                pt,
                hz,
                OpusOptions::default(),
            )));
        }
        if let (Some(v), Some((track, ssrc))) = (spec.video, video) {
            let pt = payload_type(&pc, RtpCodecKind::Video).await?;
            tasks.push(tokio::spawn(send_video(track, ssrc, pt, v)));
        }
        Ok(HttpOfferOutcome::Created(Self {
            location,
            answer,
            etag,
            pc,
            shared,
            tasks,
        }))
    }

    /// WHEP: watch the master classroom of `class_id`.
    pub async fn view(
        http_base: &str,
        class_id: &str,
        token: &str,
    ) -> anyhow::Result<HttpOfferOutcome> {
        use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (pc, mut gathered, mut connected) = new_peer(shared.clone(), false).await?;
        for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
            pc.add_transceiver_from_kind(
                kind,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    ..Default::default()
                }),
            )
            .await?;
        }
        let path = format!("/whep/{class_id}");
        let (location, etag, answer) =
            match negotiate_over_http(http_base, &path, token, &pc, &mut gathered, &mut connected)
                .await?
            {
                Ok(created) => created,
                Err((status, body)) => return Ok(HttpOfferOutcome::Refused(status, body)),
            };
        Ok(HttpOfferOutcome::Created(Self {
            location,
            answer,
            etag,
            pc,
            shared,
            tasks: Vec::new(),
        }))
    }

    /// What a viewer has received, by track id (its kind is known from the codec, not the class).
    pub fn received(&self) -> HashMap<String, ReceivedTrack> {
        self.shared.lock().received.clone()
    }

    /// Restart ICE by `PATCH` (RFC 9725 §4.3.2): new local credentials out, the server's back.
    /// Returns the status of the `PATCH`.
    pub async fn restart_ice(&mut self, http_base: &str, token: &str) -> anyhow::Result<u16> {
        self.pc.restart_ice().await?;
        let offer = self.pc.create_offer(None).await?;
        self.pc.set_local_description(offer).await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let local = self
            .pc
            .local_description()
            .await
            .ok_or_else(|| anyhow!("no local description"))?
            .sdp;
        let response = reqwest::Client::new()
            .patch(format!(
                "{}{}",
                http_base.trim_end_matches('/'),
                self.location
            ))
            .bearer_auth(token)
            .header("content-type", "application/trickle-ice-sdpfrag")
            .header("if-match", &self.etag)
            .body(tandem_sfu::sdp::ice_fragment(&local))
            .send()
            .await?;
        let status = response.status().as_u16();
        if status != 200 {
            return Ok(status);
        }
        if let Some(etag) = response.headers().get("etag").and_then(|v| v.to_str().ok()) {
            self.etag = etag.to_owned();
        }
        let fragment = response.text().await?;
        let value = |name: &str| {
            fragment
                .lines()
                .find_map(|l| l.trim().strip_prefix(name).map(str::to_owned))
                .ok_or_else(|| anyhow!("the fragment has no {name}"))
        };
        let answer = tandem_sfu::sdp::with_ice_credentials(
            &self.answer,
            &value("a=ice-ufrag:")?,
            &value("a=ice-pwd:")?,
        );
        self.pc
            .set_remote_description(RTCSessionDescription::answer(answer.clone())?)
            .await?;
        self.answer = answer;
        Ok(status)
    }

    /// End the session with `DELETE` on its location; returns the status.
    pub async fn end(mut self, http_base: &str, token: &str) -> anyhow::Result<u16> {
        let status = reqwest::Client::new()
            .delete(format!(
                "{}{}",
                http_base.trim_end_matches('/'),
                self.location
            ))
            .bearer_auth(token)
            .send()
            .await?
            .status()
            .as_u16();
        for task in self.tasks.drain(..) {
            task.abort();
        }
        let _ = self.pc.close().await;
        Ok(status)
    }
}

impl Drop for HttpMediaSession {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_frames_round_trip() {
        let key = synthetic_vp8_frame(true, 1, 300);
        let info = parse_video(&key).unwrap();
        assert!(info.keyframe);
        assert!(info.sent_us.is_some_and(|us| us > 0));
        let delta = synthetic_vp8_frame(false, 2, 300);
        assert!(!parse_video(&delta).unwrap().keyframe);
        assert_eq!(
            parse_video(&[0x00, 1, 2]),
            None,
            "a continuation packet starts no frame"
        );
    }

    #[test]
    fn a_tone_survives_opus_and_is_found() {
        let mut encoder =
            opus::Encoder::new(48000, opus::Channels::Mono, opus::Application::Voip).unwrap();
        let mut payloads = Vec::new();
        let mut out = vec![0u8; 1500];
        for i in 0..50u16 {
            let pcm: Vec<f32> = (0..OPUS_FRAME_SAMPLES)
                .map(|n| {
                    let t = (i as usize * OPUS_FRAME_SAMPLES + n) as f32 / 48000.0;
                    0.5 * (2.0 * std::f32::consts::PI * 660.0 * t).sin()
                })
                .collect();
            let n = encoder.encode_float(&pcm, &mut out).unwrap();
            payloads.push((i.wrapping_add(65530), Bytes::copy_from_slice(&out[..n])));
        }
        let pcm = decode_opus(payloads).unwrap();
        let hz = dominant_frequency(&pcm, 200.0, 1000.0).unwrap();
        assert!((hz - 660.0).abs() <= 10.0, "found {hz}");
    }

    const ANSWER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
        c=IN IP4 0.0.0.0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 40001 typ host\r\n\
        a=end-of-candidates\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
        a=candidate:1 1 udp 2130706431 127.0.0.1 40001 typ host\r\n";

    #[test]
    fn the_server_candidate_is_found_and_moved_to_the_proxy() {
        let server: SocketAddr = "127.0.0.1:40001".parse().unwrap();
        let proxy: SocketAddr = "127.0.0.1:50123".parse().unwrap();
        assert_eq!(server_candidate_addr(ANSWER), Some(server));
        let rewritten = rewrite_candidates(ANSWER, server, proxy);
        assert_eq!(
            rewritten
                .matches("a=candidate:1 1 udp 2130706431 127.0.0.1 50123 typ host\r\n")
                .count(),
            2,
            "{rewritten}"
        );
        assert!(!rewritten.contains("40001"));
        assert_eq!(server_candidate_addr(&rewritten), Some(proxy));
        // Everything else is byte for byte the same.
        assert_eq!(rewritten.replace("50123", "40001"), ANSWER);
        // Another address is left alone; so is an SDP without candidates.
        let other: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert_eq!(rewrite_candidates(ANSWER, other, proxy), ANSWER);
        assert_eq!(server_candidate_addr("v=0\nm=audio 9 x\n"), None);
        assert_eq!(
            rewrite_candidates(
                "v=0\na=candidate:1 1 udp 1 127.0.0.1 40001 typ host\n",
                server,
                proxy
            ),
            "v=0\na=candidate:1 1 udp 1 127.0.0.1 50123 typ host\n"
        );
    }

    #[test]
    fn links_carry_their_token() {
        assert_eq!(
            token_from_link("http://x/join/c_1#token=abc.def").unwrap(),
            "abc.def"
        );
        assert_eq!(ws_url("http://127.0.0.1:8080"), "ws://127.0.0.1:8080/ws");
    }
}
