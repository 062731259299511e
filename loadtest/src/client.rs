//! A classroom as a program: joins a class by its link over the real signaling API and publishes
//! and receives real WebRTC media (the `webrtc` crate). The end-to-end tests and the load-test tool
//! both drive classrooms through this.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::link::{LinkProfile, ProxyStats, UdpLinkProxy};
use crate::loss::SeqCounter;
use crate::media::{
    Bins, FrameAssembler, LatenessRecorder, OpusOptions, SenderReport, local_track, payload_type,
    red_send_payload_type, send_tone, send_video,
};
use crate::stats::JitterEstimator;
use crate::tcp_link::TcpLinkProxy;
use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use tandem_sfu::{MediaKind, Source, TrackInfo};
use tandem_signaling::protocol::{ClientMessage, DeclaredTrack, ServerMessage};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceGatheringState, RTCPeerConnectionState, RTCSessionDescription,
    Registry, register_default_interceptors,
};

// The media generator and the WHIP/WHEP client have their own modules; these names stay here
// for the tests that use them through the classroom client.
pub use crate::media::{
    PublishSpec, VideoFrameInfo, VideoSpec, decode_opus, dominant_frequency, parse_video,
    synthetic_vp8_frame, wall_micros,
};
pub use crate::whip::{HttpMediaSession, HttpOfferOutcome};

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
    /// One-way latency of stamped video frames to their first packet, in microseconds, with
    /// its arrival (measured from the frame's scheduled send time).
    pub latencies_us: Vec<(Instant, u64)>,
    /// One-way latency of complete video frames (to the last of their packets to arrive,
    /// retransmissions included), in microseconds, with that arrival.
    pub frame_latencies_us: Vec<(Instant, u64)>,
    /// Distinct packets received, by arrival (to compare with what the sender sent).
    pub arrivals: Bins,
    /// Video frames still missing packets.
    pub frames: FrameAssembler,
    /// Arrival of each frame's first packet (for freeze detection).
    pub frame_arrivals: Vec<Instant>,
    /// Opus payloads by sequence number (audio tracks), for decoding.
    pub opus: Vec<(u16, Bytes)>,
    pub ended: bool,
    /// Which RTP sequence numbers arrived (retransmissions fill holes): loss after NACK.
    pub seqs: SeqCounter,
    /// RFC 3550 interarrival jitter of the audio packets (audio tracks only).
    pub jitter: Option<JitterEstimator>,
    /// Unwraps RED (RFC 2198) audio, as a browser's receiver does: a packet lost on the way is
    /// rebuilt from the next one's redundancy and counts as received.
    pub red: tandem_sfu::red::Unwrapper,
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
    /// Where the media generators record how late they ran against their schedule.
    pub lateness: Option<LatenessRecorder>,
    /// A fault for tests of the load test: the publish leg's emulated link drops every packet
    /// of the camera (the camera is declared, negotiated and sent as usual).
    pub drop_camera: bool,
    /// Keep no received Opus payloads (a load-test classroom measures, it does not listen), so
    /// that its memory does not grow with the length of a soak.
    pub measure_only: bool,
    /// Send a consent check (RFC 7675) on each leg this often instead of `rtc`'s 2 s, as aiortc,
    /// Firefox and many encoders do (5 s ± 20 %).
    pub consent_check_interval: Option<Duration>,
    /// Reach the server over ICE-TCP only (RFC 6544), as a classroom whose network blocks UDP.
    pub tcp: bool,
    /// Negotiate redundant audio (RFC 2198, `red/48000/2` over Opus) as Chrome does: send the
    /// microphone as RED (each packet repeats the previous frame) when the server accepts it,
    /// and unwrap the RED it receives.
    pub red: bool,
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
    /// Opus settings (FEC on, DTX off, RED negotiated, as Chrome sends by default).
    pub fn browser_like(link: Option<LinkProfile>, seed: u64) -> Self {
        Self {
            link,
            seed,
            opus_fec: true,
            opus_dtx: false,
            lateness: None,
            drop_camera: false,
            measure_only: false,
            consent_check_interval: None,
            tcp: false,
            red: true,
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
    pub(crate) async fn proxy_for(
        &self,
        leg_seed: u64,
        sdp: &str,
        proxies: &Mutex<Vec<LinkProxy>>,
        drop_ssrc: Option<u32>,
    ) -> anyhow::Result<String> {
        let Some(profile) = &self.link else {
            return Ok(sdp.to_owned());
        };
        let server = self
            .candidate_addr(sdp)
            .ok_or_else(|| anyhow!("no server candidate in the SDP"))?;
        let (proxy, local) = if self.tcp {
            // (The camera-dropping fault is a UDP link's; TCP repairs every loss anyway.)
            let proxy =
                TcpLinkProxy::start(server, profile.clone(), profile.clone(), leg_seed).await?;
            let local = proxy.local_addr();
            (LinkProxy::Tcp(proxy), local)
        } else {
            let proxy = UdpLinkProxy::start_dropping(
                server,
                profile.clone(),
                profile.clone(),
                leg_seed,
                drop_ssrc,
            )
            .await?;
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
pub(crate) struct Shared {
    pub(crate) received: HashMap<String, ReceivedTrack>,
    offered: HashMap<String, TrackInfo>,
    /// Keep no Opus payloads (see [`ClientOptions::measure_only`]).
    drop_opus: bool,
    /// The payload types the server sends RED under (from the subscribe leg's answer).
    red_payload_types: Vec<u8>,
}

/// A track this classroom publishes, and what its sender reports.
#[derive(Debug, Clone)]
pub struct PublishedTrack {
    pub source: Source,
    pub kind: MediaKind,
    pub report: SenderReport,
}

/// A classroom connected to a class.
pub struct Classroom {
    pub classroom_id: String,
    pub session: String,
    http_base: String,
    token: String,
    name: String,
    outgoing: mpsc::UnboundedSender<Message>,
    /// What `outgoing` queues; the WebSocket writer of the moment drains it (a resumed
    /// connection takes over what was queued while the link was down).
    outgoing_rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Message>>>,
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
    /// What this classroom publishes.
    published: Vec<PublishedTrack>,
}

/// The payload types an SDP description gives redundant audio (`a=rtpmap:<pt> red/48000/2`).
pub fn red_payload_types(sdp: &str) -> Vec<u8> {
    sdp.lines()
        .filter_map(|l| {
            let (pt, format) = l.trim().strip_prefix("a=rtpmap:")?.split_once(' ')?;
            format
                .to_ascii_lowercase()
                .starts_with("red/")
                .then(|| pt.parse().ok())?
        })
        .collect()
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

struct Handler {
    shared: Arc<Mutex<Shared>>,
    gathered: mpsc::UnboundedSender<()>,
    connected: mpsc::UnboundedSender<bool>,
    /// Every state the connection passes through, for [`crate::recovery`].
    state: watch::Sender<RTCPeerConnectionState>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(());
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.state.send_replace(state);
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
            let mut unwrapped = Vec::new();
            while let Some(event) = track.poll().await {
                match event {
                    TrackRemoteEvent::OnRtpPacket(packet) => {
                        let now = Instant::now();
                        let mut s = shared.lock();
                        let drop_opus = s.drop_opus;
                        let red_types = s.red_payload_types.clone();
                        let info = s.offered.get(&track_id).cloned();
                        let r = s.received.entry(track_id.clone()).or_default();
                        if r.info.is_none() {
                            r.info = info;
                        }
                        r.packets += 1;
                        r.bytes += packet.payload.len() as u64;
                        r.first_at.get_or_insert(now);
                        r.last_at = Some(now);
                        if is_audio {
                            // RED: the frames it recovers, then its own; else the packet.
                            let frames = if red_types.contains(&packet.header.payload_type) {
                                let Ok(red) = tandem_sfu::red::parse(&packet.payload) else {
                                    continue;
                                };
                                r.red.unwrap_red(
                                    packet.header.sequence_number,
                                    packet.header.timestamp,
                                    &red,
                                    &mut unwrapped,
                                );
                                unwrapped
                                    .iter()
                                    .map(|u| {
                                        (
                                            u.sequence_number,
                                            u.timestamp,
                                            u.payload.clone(),
                                            u.recovered,
                                        )
                                    })
                                    .collect::<Vec<_>>()
                            } else {
                                vec![(
                                    packet.header.sequence_number,
                                    packet.header.timestamp,
                                    packet.payload.clone(),
                                    false,
                                )]
                            };
                            for (seq, timestamp, payload, recovered) in frames {
                                // A duplicate (a retransmission of a packet that had arrived)
                                // is counted, but is no new arrival.
                                if r.seqs.record_ext(seq).is_none() {
                                    continue;
                                }
                                r.arrivals.add(now, 1);
                                if !drop_opus {
                                    r.opus.push((seq, payload));
                                }
                                // Jitter is of packets as they arrived, not of rebuilt ones.
                                if !recovered {
                                    r.jitter
                                        .get_or_insert_with(|| JitterEstimator::new(48_000))
                                        .update(now, timestamp);
                                }
                            }
                            continue;
                        }
                        // A duplicate (a retransmission of a packet that had arrived)
                        // is counted, but starts no frame and carries no new latency.
                        let Some(ext) = r.seqs.record_ext(packet.header.sequence_number) else {
                            continue;
                        };
                        r.arrivals.add(now, 1);
                        {
                            // The descriptor's start bit marks a frame's first packet, also
                            // when it arrives late as a retransmission.
                            let start = parse_video(&packet.payload);
                            let wall = wall_micros();
                            if let Some(frame) = start {
                                r.frame_arrivals.push(now);
                                if frame.keyframe {
                                    r.keyframes.push(now);
                                }
                                if let Some(sent) = frame.sent_us {
                                    r.latencies_us.push((now, wall.saturating_sub(sent)));
                                }
                            }
                            let complete = r.frames.packet(
                                packet.header.timestamp,
                                ext,
                                start.map(|f| f.sent_us),
                                packet.header.marker,
                            );
                            if let Some(Some(sent)) = complete {
                                r.frame_latencies_us.push((now, wall.saturating_sub(sent)));
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

/// RFC 7675: a peer's consent to receive lasts 30 s after its last answered check.
const CONSENT_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) async fn new_peer(
    shared: Arc<Mutex<Shared>>,
    consent_check_interval: Option<Duration>,
    tcp: bool,
    red: bool,
) -> anyhow::Result<(
    Arc<dyn PeerConnection>,
    mpsc::UnboundedReceiver<()>,
    mpsc::UnboundedReceiver<bool>,
    watch::Receiver<RTCPeerConnectionState>,
)> {
    let mut media_engine = MediaEngine::default();
    media_engine.register_default_codecs()?;
    if red {
        // As Chrome offers it: after Opus, naming Opus as its primary and redundancy.
        media_engine.register_codec(
            rtc::rtp_transceiver::rtp_sender::RTCRtpCodecParameters {
                rtp_codec: rtc::rtp_transceiver::rtp_sender::RTCRtpCodec {
                    mime_type: tandem_sfu::codecs::MIME_TYPE_RED.to_owned(),
                    clock_rate: 48_000,
                    channels: 2,
                    sdp_fmtp_line: "111/111".to_owned(),
                    rtcp_feedback: vec![],
                },
                payload_type: tandem_sfu::codecs::RED_PAYLOAD_TYPE,
            },
            RtpCodecKind::Audio,
        )?;
    }
    let registry = register_default_interceptors(Registry::new(), &mut media_engine)?.with(
        rtc::interceptor::Slot::from(tandem_sfu::feedback::KEYFRAME_TAP_SLOT),
        tandem_sfu::feedback::RtcpTap::keyframe_requests(),
    );
    let (gathered_tx, gathered) = mpsc::unbounded_channel();
    let (connected_tx, connected) = mpsc::unbounded_channel();
    let (state_tx, state) = watch::channel(RTCPeerConnectionState::New);
    let handler = Arc::new(Handler {
        shared,
        gathered: gathered_tx,
        connected: connected_tx,
        state: state_tx,
    });
    let mut settings = webrtc::peer_connection::SettingEngineBuilder::new();
    if let Some(interval) = consent_check_interval {
        // A peer that checks this rarely waits as long as consent lasts before it gives up.
        settings = settings.with_ice_timeouts(Some(CONSENT_TIMEOUT), None, Some(interval));
    }
    if tcp {
        // Only TCP candidates (an active one connects to the server's passive candidate).
        settings = settings.with_network_types(vec![rtc::ice::network_type::NetworkType::Tcp4]);
    }
    let builder = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings.build())
        .with_handler(handler as Arc<dyn PeerConnectionEventHandler>);
    let pc = if tcp {
        builder
            .with_tcp_addrs(vec!["127.0.0.1:0".to_owned()])
            .build()
            .await?
    } else {
        builder
            .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
            .build()
            .await?
    };
    Ok((Arc::new(pc), gathered, connected, state))
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
        let (outgoing, outgoing_rx) = mpsc::unbounded_channel::<Message>();
        let outgoing_rx = Arc::new(tokio::sync::Mutex::new(outgoing_rx));
        let (messages, mut first) = broadcast::channel(1024);
        // Subscribed before `join` goes out, so no offer can slip past.
        let offers = messages.subscribe();
        let log = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::new(Mutex::new(Shared {
            drop_opus: options.measure_only,
            ..Shared::default()
        }));
        let subscribe_pc: Arc<Mutex<Option<Arc<dyn PeerConnection>>>> = Arc::default();

        let join = ClientMessage::Join {
            v: 1,
            token: token.clone(),
            name: name.to_owned(),
            resume,
            keep_media: false,
        };
        let (writer, reader) = open_socket(
            http_base,
            &join,
            outgoing_rx.clone(),
            messages.clone(),
            log.clone(),
        )
        .await?;
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
            http_base: http_base.to_owned(),
            token,
            name: name.to_owned(),
            outgoing,
            outgoing_rx,
            messages,
            log,
            shared,
            subscribe_pc,
            publish_pc: None,
            tasks: vec![writer, reader],
            media_tasks: Vec::new(),
            options,
            proxies: Arc::default(),
            published: Vec::new(),
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
                    None => {
                        match new_peer(
                            shared.clone(),
                            options.consent_check_interval,
                            options.tcp,
                            options.red,
                        )
                        .await
                        {
                            Ok((pc, g, _, state)) => {
                                gathered = Some(g);
                                *slot.lock() = Some(pc.clone());
                                if !options.tcp {
                                    // Ends when the leg closes or is dropped (it holds no pc).
                                    tokio::spawn(crate::recovery::keep_leg_up(
                                        "subscribe",
                                        state,
                                        restart_subscribe_leg(outgoing.clone()),
                                    ));
                                }
                                pc
                            }
                            Err(err) => {
                                tracing::warn!(%err, "cannot create subscribe leg");
                                return;
                            }
                        }
                    }
                };
                let result: anyhow::Result<String> = async {
                    let sdp = match emulated {
                        _ if options.link.is_none() => sdp,
                        Some((server, proxy)) => rewrite_candidates(&sdp, server, proxy),
                        None => {
                            let leg_seed = options.seed.wrapping_mul(2) | 1;
                            let rewritten =
                                options.proxy_for(leg_seed, &sdp, &proxies, None).await?;
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
                        shared.lock().red_payload_types = red_payload_types(&sdp);
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

    /// The tracks this classroom publishes, with what their senders report.
    pub fn published(&self) -> &[PublishedTrack] {
        &self.published
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
        let (pc, mut gathered, mut connected, state) = new_peer(
            self.shared.clone(),
            self.options.consent_check_interval,
            self.options.tcp,
            self.options.red,
        )
        .await?;
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
        let camera_ssrc = video
            .as_ref()
            .filter(|_| {
                spec.video
                    .as_ref()
                    .is_some_and(|v| v.source == Source::Camera)
            })
            .map(|(_, ssrc)| *ssrc);
        let sdp = local_offer(&pc, &mut gathered).await?;
        let mut rx = self.messages.subscribe();
        self.send(&ClientMessage::PublishOffer {
            sdp,
            tracks: declared.clone(),
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
        let emulated_answer = self
            .options
            .proxy_for(
                self.options.seed.wrapping_mul(2),
                &answer,
                &self.proxies,
                camera_ssrc.filter(|_| self.options.drop_camera),
            )
            .await?;
        // The (server, proxy) addresses of this leg's emulated link, for the answers to come.
        let emulated = self
            .options
            .candidate_addr(&answer)
            .zip(self.options.candidate_addr(&emulated_answer))
            .filter(|_| self.options.link.is_some());
        let answer = emulated_answer;
        pc.set_remote_description(RTCSessionDescription::answer(answer.clone())?)
            .await?;
        if self.options.tcp {
            connect_tcp_candidates(&pc, &answer).await?;
        }
        match tokio::time::timeout(Duration::from_secs(10), connected.recv()).await {
            Ok(Some(true)) => {}
            _ => bail!("the publish leg did not connect"),
        }
        if !self.options.tcp {
            let leg = PublishLeg {
                pc: Arc::downgrade(&pc),
                gathered: Arc::new(tokio::sync::Mutex::new(gathered)),
                outgoing: self.outgoing.clone(),
                messages: self.messages.clone(),
                tracks: declared,
                emulated,
            };
            self.tasks.push(tokio::spawn(crate::recovery::keep_leg_up(
                "publish",
                state,
                move || leg.clone().restart(),
            )));
        }
        let lateness = self.options.lateness.clone();
        let mut report = |source: Source, kind: MediaKind| {
            let report = SenderReport {
                sent: Arc::default(),
                lateness: lateness.clone(),
            };
            self.published.push(PublishedTrack {
                source,
                kind,
                report: report.clone(),
            });
            report
        };
        let mut tasks = Vec::new();
        if let (Some(hz), Some((track, ssrc))) = (spec.tone_hz, audio) {
            let pt = payload_type(&pc, RtpCodecKind::Audio).await?;
            let opus = OpusOptions {
                fec: self.options.opus_fec,
                dtx: self.options.opus_dtx,
                red: red_send_payload_type(&pc).await,
            };
            let r = report(Source::Microphone, MediaKind::Audio);
            tasks.push(tokio::spawn(send_tone(track, ssrc, pt, hz, opus, r)));
        }
        if let (Some(v), Some((track, ssrc))) = (spec.video, video) {
            let pt = payload_type(&pc, RtpCodecKind::Video).await?;
            let r = report(v.source, MediaKind::Video);
            tasks.push(tokio::spawn(send_video(track, ssrc, pt, v, r)));
        }
        if let (Some(v), Some((track, ssrc))) = (screen, screen_track) {
            let pt = payload_type(&pc, RtpCodecKind::Video).await?;
            let r = report(v.source, MediaKind::Video);
            tasks.push(tokio::spawn(send_video(track, ssrc, pt, v, r)));
        }
        self.media_tasks.extend(tasks);
        self.publish_pc = Some(pc);
        Ok(())
    }

    /// Leave the class and close both legs.
    pub async fn leave(mut self) {
        let _ = self.send(&ClientMessage::Leave);
        self.close().await;
    }

    /// A WebSocket blip: the signaling connection drops without a word, stays down for `down`,
    /// and resumes with `keep_media`; the peer connections are not touched. Returns the
    /// `welcome` of the resumed connection.
    pub async fn blip_websocket(&mut self, down: Duration) -> anyhow::Result<ServerMessage> {
        // The first two tasks are the WebSocket's writer and reader; aborting them drops it.
        for task in self.tasks.drain(..2) {
            task.abort();
        }
        tokio::time::sleep(down).await;
        let mut first = self.messages.subscribe();
        let join = ClientMessage::Join {
            v: 1,
            token: self.token.clone(),
            name: self.name.clone(),
            resume: Some(self.session.clone()),
            keep_media: true,
        };
        let (writer, reader) = open_socket(
            &self.http_base,
            &join,
            self.outgoing_rx.clone(),
            self.messages.clone(),
            self.log.clone(),
        )
        .await?;
        self.tasks.insert(0, reader);
        self.tasks.insert(0, writer);
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match first.recv().await {
                    Ok(m @ ServerMessage::Welcome { .. }) => return Ok(m),
                    Ok(ServerMessage::Error { code, message, .. }) => {
                        bail!("resume refused: {code:?}: {message}")
                    }
                    Ok(_) => continue,
                    Err(err) => bail!("connection closed before welcome: {err}"),
                }
            }
        })
        .await
        .context("waiting for welcome")?
    }

    /// The classroom's emulated network drops out (`cut`) or comes back: every datagram of both
    /// legs is lost meanwhile; the WebSocket is not touched. Only UDP links can be cut.
    pub fn cut_links(&self, cut: bool) {
        for proxy in self.proxies.lock().iter() {
            if let LinkProxy::Udp(p) = proxy {
                p.set_cut(cut);
            }
        }
    }

    /// Both media legs die (their peer connections close) while the WebSocket stays up.
    pub async fn drop_media(&mut self) {
        self.stop_media();
        if let Some(pc) = self.publish_pc.take() {
            let _ = pc.close().await;
        }
        let sub = self.subscribe_pc.lock().take();
        if let Some(pc) = sub {
            let _ = pc.close().await;
        }
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

/// Create and apply an offer and return the SDP with the candidates in it.
/// The subscribe leg's ICE restart: the server sends a new offer with new credentials, which
/// the subscriber task answers ([`Classroom::spawn_subscriber`]; `rtc` restarts its side as the
/// answerer when the offer's credentials change).
fn restart_subscribe_leg(
    outgoing: mpsc::UnboundedSender<Message>,
) -> impl FnMut() -> std::future::Ready<anyhow::Result<()>> {
    move || {
        let text = serde_json::to_string(&ClientMessage::IceRestart {
            leg: tandem_sfu::Leg::Subscribe,
        });
        std::future::ready(match text {
            Ok(text) => outgoing
                .send(Message::text(text))
                .map_err(|_| anyhow!("the signaling connection is gone")),
            Err(err) => Err(err.into()),
        })
    }
}

/// What the publish leg's ICE restart needs: it re-offers with new credentials, as
/// `RTCPeerConnection.restartIce()` then `publish_offer` do in the browser.
#[derive(Clone)]
struct PublishLeg {
    /// Weak: the watcher must not keep a closed classroom's leg alive.
    pc: std::sync::Weak<dyn PeerConnection>,
    gathered: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<()>>>,
    outgoing: mpsc::UnboundedSender<Message>,
    messages: broadcast::Sender<ServerMessage>,
    tracks: Vec<DeclaredTrack>,
    /// (server, proxy) of the leg's emulated link: the answer's candidate goes through it again.
    emulated: Option<(SocketAddr, SocketAddr)>,
}

impl PublishLeg {
    async fn restart(self) -> anyhow::Result<()> {
        let pc = self
            .pc
            .upgrade()
            .ok_or_else(|| anyhow!("the publish leg is gone"))?;
        pc.restart_ice().await?;
        let offer = pc.create_offer(None).await?;
        let sdp = {
            let mut gathered = self.gathered.lock().await;
            apply_local(&pc, offer, Some(&mut gathered)).await?
        };
        let mut rx = self.messages.subscribe();
        self.outgoing
            .send(Message::text(serde_json::to_string(
                &ClientMessage::PublishOffer {
                    sdp,
                    tracks: self.tracks,
                },
            )?))
            .map_err(|_| anyhow!("the signaling connection is gone"))?;
        let answer = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match rx.recv().await {
                    Ok(ServerMessage::PublishAnswer { sdp }) => return Ok(sdp),
                    Ok(ServerMessage::Error { code, message, .. }) => {
                        bail!("ICE restart refused: {code:?}: {message}")
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(err) => bail!("closed: {err}"),
                }
            }
        })
        .await
        .context("waiting for the publish answer")??;
        let answer = match self.emulated {
            Some((server, proxy)) => rewrite_candidates(&answer, server, proxy),
            None => answer,
        };
        pc.set_remote_description(RTCSessionDescription::answer(answer)?)
            .await?;
        Ok(())
    }
}

pub(crate) async fn local_offer(
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

/// Connect the WebSocket, send `join` first, then start its writer (draining `outgoing`) and its
/// reader (logging and broadcasting what the server says). Returns (writer, reader).
async fn open_socket(
    http_base: &str,
    join: &ClientMessage,
    outgoing: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Message>>>,
    messages: broadcast::Sender<ServerMessage>,
    log: Arc<Mutex<Vec<ServerMessage>>>,
) -> anyhow::Result<(tokio::task::JoinHandle<()>, tokio::task::JoinHandle<()>)> {
    // TCP_NODELAY: each message is one small frame that must not wait for Nagle. (reqwest,
    // the HTTP client, sets it by default.)
    let (ws, _) = tokio_tungstenite::connect_async_with_config(ws_url(http_base), None, true)
        .await
        .context("connecting the WebSocket")?;
    let (mut sink, mut stream) = ws.split();
    sink.send(Message::text(serde_json::to_string(join)?))
        .await
        .context("sending join")?;
    let writer = tokio::spawn(async move {
        let mut outgoing = outgoing.lock().await;
        while let Some(message) = outgoing.recv().await {
            if sink.send(message).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let reader = tokio::spawn(async move {
        while let Some(Ok(frame)) = stream.next().await {
            if let Message::Text(text) = frame
                && let Ok(message) = serde_json::from_str::<ServerMessage>(&text)
            {
                log.lock().push(message.clone());
                let _ = messages.send(message);
            }
        }
    });
    Ok((writer, reader))
}

#[cfg(test)]
mod tests {
    use super::*;

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
