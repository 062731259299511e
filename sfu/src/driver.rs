//! The thin I/O loop: one UDP socket (and ICE-TCP on the same port number, [`crate::tcp`]), one
//! task, one [`Router`].
//!
//! Nothing here decides anything. The loop moves datagrams between the socket and the router,
//! wakes the router at its deadlines, and turns signaling's requests into router calls. Because
//! one task owns the router, the media plane needs no locks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::shared::TransportProtocol;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, oneshot, watch};

use crate::metrics::SfuMetrics;
use crate::router::{Router, RouterEvent};
use crate::tcp::TcpMedia;
use crate::{ClassId, ClassroomId, Leg, Role, RouterConfig, SfuError, Source, TrackInfo};

/// Largest datagram we accept; WebRTC keeps packets under the path MTU, so this is generous.
const MAX_DATAGRAM: usize = 2048;

type Reply<T> = oneshot::Sender<Result<T, SfuError>>;

enum Command {
    Join(ClassId, ClassroomId, Role),
    PublishOnly(ClassroomId),
    Leave(ClassroomId),
    SetStage(ClassId, Vec<ClassroomId>),
    ReceiveVideo(ClassroomId, bool),
    PublishOffer(ClassroomId, String, Vec<(String, Source)>, Reply<String>),
    SubscribeAnswer(ClassroomId, String, Reply<()>),
    ViewOffer(ClassroomId, String, Reply<String>),
    RestartIce(ClassroomId, Leg, String, String, Reply<String>),
    Candidate(ClassroomId, Leg, RTCIceCandidateInit, Reply<()>),
    Tracks(ClassId, oneshot::Sender<Vec<TrackInfo>>),
    TransportCount(oneshot::Sender<usize>),
    RestartSubscribeIce(ClassroomId, Reply<()>),
    HasMember(ClassroomId, oneshot::Sender<bool>),
    /// A classroom's signaling resumed with its legs as they are: its unanswered offer again.
    ResendOffer(ClassroomId),
    /// Test-only: panic inside the loop, to exercise supervision. Not reachable from the network.
    Panic,
    Probe(String, Reply<String>),
    /// Stop the loop: the router and its sockets are dropped, the event channel closes.
    Stop,
}

/// A handle on the running media plane. Cheap to clone; the loop stops at [`SfuHandle::stop`] or
/// when every handle is gone.
#[derive(Clone)]
pub struct SfuHandle {
    commands: mpsc::UnboundedSender<Command>,
    media_addr: SocketAddr,
    /// `None` while the loop runs; why it stopped once it has (a panic, or every handle gone).
    stopped: watch::Receiver<Option<String>>,
}

/// Bind the media port and start the loop. Router events arrive on the returned receiver.
/// Settings [`RouterConfig::validate`] refuses are an `InvalidInput` error.
pub async fn start(
    config: RouterConfig,
    metrics: Arc<SfuMetrics>,
) -> std::io::Result<(SfuHandle, mpsc::UnboundedReceiver<RouterEvent>)> {
    config
        .validate()
        .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidInput, err))?;
    let (socket, tcp) = bind(&config).await?;
    let local = socket.local_addr()?;
    let mut config = config;
    config.media_addr = local;
    let tcp = tcp.map(|listener| TcpMedia::start(listener, config.tcp.clone(), metrics.clone()));
    let (commands, command_rx) = mpsc::unbounded_channel();
    let (event_tx, events) = mpsc::unbounded_channel();
    let router = Router::new(config, metrics.clone());
    let media = tokio::spawn(run(
        socket, tcp, local, router, command_rx, event_tx, metrics,
    ));
    // The supervisor: a loop that panicked has no media and never will again, so it must not
    // look alive. Its end is published to every handle (health checks, the binary's main).
    let (stopped_tx, stopped) = watch::channel(None);
    tokio::spawn(async move {
        let why = match media.await {
            Ok(()) => "stopped".to_owned(),
            Err(err) if err.is_panic() => {
                let payload = err.into_panic();
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(%message, "the media plane panicked");
                format!("panicked: {message}")
            }
            Err(err) => format!("cancelled: {err}"),
        };
        let _ = stopped_tx.send(Some(why));
    });
    Ok((
        SfuHandle {
            commands,
            media_addr: local,
            stopped,
        },
        events,
    ))
}

/// The UDP socket and, with ICE-TCP, a TCP listener on the same port number. An ephemeral port
/// (`:0`) is picked for UDP first; if TCP cannot have the same number, another pair is tried.
async fn bind(config: &RouterConfig) -> std::io::Result<(UdpSocket, Option<TcpListener>)> {
    const ATTEMPTS: usize = 20;
    let mut attempt = 0;
    loop {
        let socket = UdpSocket::bind(config.media_addr).await?;
        if !config.ice_tcp {
            return Ok((socket, None));
        }
        match TcpListener::bind(socket.local_addr()?).await {
            Ok(listener) => return Ok((socket, Some(listener))),
            Err(err) if config.media_addr.port() == 0 && attempt + 1 < ATTEMPTS => {
                tracing::debug!(%err, "TCP media port taken, trying another pair");
                attempt += 1;
            }
            Err(err) => return Err(err),
        }
    }
}

async fn run(
    socket: UdpSocket,
    mut tcp: Option<TcpMedia>,
    local: SocketAddr,
    mut router: Router,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<RouterEvent>,
    metrics: Arc<SfuMetrics>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    // When the last datagram arrived and how many RTP packets it made the router forward: the
    // next RTP datagrams sent (at most that many) are its forwarded copies, timed for
    // `tandem_forward_delay_seconds`.
    let mut forwarded_from: Option<(Instant, u64)> = None;
    loop {
        while let Some(out) = router.poll_transmit() {
            if out.protocol == TransportProtocol::TCP {
                if let Some(tcp) = tcp.as_mut() {
                    tcp.send(out.to, &out.data);
                }
            } else if let Err(err) = socket.send_to(&out.data, out.to).await {
                tracing::debug!(to = %out.to, %err, "media send failed");
            }
            if let Some((received, left)) = forwarded_from.as_mut()
                && *left > 0
                && crate::demux::is_rtp(&out.data)
            {
                *left -= 1;
                metrics
                    .forward_delay
                    .observe(received.elapsed().as_secs_f64());
            }
        }
        forwarded_from = None;
        while let Some(event) = router.poll_event() {
            let _ = events.send(event);
        }
        let deadline = router.poll_timeout();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let tcp_packet = async {
            match tcp.as_mut() {
                Some(tcp) => tcp.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            command = commands.recv() => match command {
                Some(Command::Stop) | None => break,
                Some(command) => apply(&mut router, command),
            },
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, from)) => {
                    metrics.datagrams_received.inc();
                    let received = Instant::now();
                    let before = metrics.packets_forwarded.get();
                    router.handle_datagram(received, local, from, &buf[..n]);
                    let forwarded = metrics.packets_forwarded.get().saturating_sub(before);
                    forwarded_from = (forwarded > 0).then_some((received, forwarded));
                }
                // ICMP port unreachable from a vanished peer surfaces here on some systems.
                Err(err) => tracing::debug!(%err, "media receive failed"),
            },
            Some((from, packet)) = tcp_packet => {
                metrics.datagrams_received.inc();
                let received = Instant::now();
                let before = metrics.packets_forwarded.get();
                router.handle_packet(received, TransportProtocol::TCP, from, &packet);
                let forwarded = metrics.packets_forwarded.get().saturating_sub(before);
                forwarded_from = (forwarded > 0).then_some((received, forwarded));
            }
            () = sleep => router.handle_timeout(Instant::now()),
        }
    }
    tracing::info!("media plane stopped");
}

fn apply(router: &mut Router, command: Command) {
    let now = Instant::now();
    match command {
        Command::Join(class, classroom, role) => router.join(now, class, classroom, role),
        Command::Leave(classroom) => router.leave(now, &classroom),
        Command::PublishOnly(classroom) => router.set_publish_only(&classroom),
        Command::SetStage(class, stage) => router.set_stage(now, &class, stage),
        Command::ReceiveVideo(classroom, video) => router.set_receive_video(now, &classroom, video),
        Command::PublishOffer(classroom, sdp, sources, reply) => {
            let _ = reply.send(router.publish_offer(now, &classroom, sdp, sources));
        }
        Command::SubscribeAnswer(classroom, sdp, reply) => {
            let _ = reply.send(router.subscribe_answer(now, &classroom, sdp));
        }
        Command::RestartIce(classroom, leg, ufrag, pwd, reply) => {
            let _ = reply.send(router.restart_ice(now, &classroom, leg, &ufrag, &pwd));
        }
        Command::ViewOffer(classroom, sdp, reply) => {
            let _ = reply.send(router.view_offer(now, &classroom, sdp));
        }
        Command::Candidate(classroom, leg, candidate, reply) => {
            let _ = reply.send(router.add_remote_candidate(&classroom, leg, candidate));
        }
        Command::Tracks(class, reply) => {
            let _ = reply.send(router.tracks_of(&class));
        }
        Command::TransportCount(reply) => {
            let _ = reply.send(router.transport_count());
        }
        Command::RestartSubscribeIce(classroom, reply) => {
            let _ = reply.send(router.restart_subscribe_ice(now, &classroom));
        }
        Command::HasMember(classroom, reply) => {
            let _ = reply.send(router.has_member(&classroom));
        }
        Command::ResendOffer(classroom) => {
            if let Some(offer) = router.outstanding_offer(&classroom) {
                // Into the event queue, after anything the router already had to say.
                router.push_event(offer);
            }
        }
        Command::Panic => panic!("media loop panic requested by a test"),
        Command::Probe(sdp, reply) => {
            let _ = reply.send(router.probe_offer(now, sdp));
        }
        // Handled by the loop itself, which ends.
        Command::Stop => {}
    }
}

impl SfuHandle {
    /// The address the media socket is bound to.
    pub fn media_addr(&self) -> SocketAddr {
        self.media_addr
    }

    /// Whether the media loop is still running (for `/healthz`).
    pub fn is_running(&self) -> bool {
        self.stopped.borrow().is_none()
    }

    /// Wait until the media loop stops; returns why (a panic message, or `stopped`).
    pub async fn stopped(&self) -> String {
        let mut stopped = self.stopped.clone();
        match stopped.wait_for(Option::is_some).await {
            Ok(why) => why.clone().unwrap_or_default(),
            Err(_) => "the supervisor is gone".to_owned(),
        }
    }

    /// Stop the media loop and wait until it has: its UDP socket and ICE-TCP listener are closed,
    /// and the router-events receiver sees the channel end. Returns why it stopped (`stopped`, or
    /// the panic that ended it earlier).
    pub async fn stop(&self) -> String {
        let _ = self.send(Command::Stop);
        self.stopped().await
    }

    /// Make the media loop panic. For tests of supervision only; nothing on the network calls it.
    #[doc(hidden)]
    pub fn panic_for_test(&self) {
        let _ = self.send(Command::Panic);
    }

    /// The classroom asks for an ICE restart of its subscribe leg: the server re-offers with new
    /// ICE credentials.
    pub async fn restart_subscribe_ice(&self, classroom: ClassroomId) -> Result<(), SfuError> {
        self.ask(|reply| Command::RestartSubscribeIce(classroom, reply))
            .await
    }

    /// Whether the media plane still has the classroom (and so its legs, if it negotiated any).
    pub async fn has_member(&self, classroom: ClassroomId) -> Result<bool, SfuError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::HasMember(classroom, tx))?;
        rx.await.map_err(|_| SfuError::Stopped)
    }

    /// A classroom resumed its signaling and kept its legs: the subscribe offer it may have missed
    /// while its WebSocket was down comes again (as a `SubscribeOffer` event).
    pub fn resend_offer(&self, classroom: ClassroomId) -> Result<(), SfuError> {
        self.send(Command::ResendOffer(classroom))
    }

    fn send(&self, command: Command) -> Result<(), SfuError> {
        self.commands.send(command).map_err(|_| SfuError::Stopped)
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, SfuError> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx))?;
        rx.await.map_err(|_| SfuError::Stopped)?
    }

    pub fn join(&self, class: ClassId, classroom: ClassroomId, role: Role) -> Result<(), SfuError> {
        self.send(Command::Join(class, classroom, role))
    }

    /// The classroom only publishes (WHIP): no subscribe leg is made for it.
    pub fn set_publish_only(&self, classroom: ClassroomId) -> Result<(), SfuError> {
        self.send(Command::PublishOnly(classroom))
    }

    pub fn leave(&self, classroom: ClassroomId) -> Result<(), SfuError> {
        self.send(Command::Leave(classroom))
    }

    pub fn set_stage(&self, class: ClassId, stage: Vec<ClassroomId>) -> Result<(), SfuError> {
        self.send(Command::SetStage(class, stage))
    }

    /// Audio-only (false) or full (true) reception for a classroom on a weak link.
    pub fn set_receive_video(&self, classroom: ClassroomId, video: bool) -> Result<(), SfuError> {
        self.send(Command::ReceiveVideo(classroom, video))
    }

    pub async fn publish_offer(
        &self,
        classroom: ClassroomId,
        sdp: String,
        sources: Vec<(String, Source)>,
    ) -> Result<String, SfuError> {
        self.ask(|reply| Command::PublishOffer(classroom, sdp, sources, reply))
            .await
    }

    pub async fn subscribe_answer(
        &self,
        classroom: ClassroomId,
        sdp: String,
    ) -> Result<(), SfuError> {
        self.ask(|reply| Command::SubscribeAnswer(classroom, sdp, reply))
            .await
    }

    /// A receive-only viewer's offer (WHEP); returns the answer.
    pub async fn view_offer(
        &self,
        classroom: ClassroomId,
        sdp: String,
    ) -> Result<String, SfuError> {
        self.ask(|reply| Command::ViewOffer(classroom, sdp, reply))
            .await
    }

    /// ICE restart on a leg the client offered; returns the server's SDP fragment.
    pub async fn restart_ice(
        &self,
        classroom: ClassroomId,
        leg: Leg,
        ufrag: String,
        pwd: String,
    ) -> Result<String, SfuError> {
        self.ask(|reply| Command::RestartIce(classroom, leg, ufrag, pwd, reply))
            .await
    }

    pub async fn add_remote_candidate(
        &self,
        classroom: ClassroomId,
        leg: Leg,
        candidate: RTCIceCandidateInit,
    ) -> Result<(), SfuError> {
        self.ask(|reply| Command::Candidate(classroom, leg, candidate, reply))
            .await
    }

    pub async fn tracks(&self, class: ClassId) -> Result<Vec<TrackInfo>, SfuError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Tracks(class, tx))?;
        rx.await.map_err(|_| SfuError::Stopped)
    }

    /// A browser's network-check offer (see [`crate::router::PROBE_LIFETIME`]); returns the answer.
    pub async fn probe_offer(&self, sdp: String) -> Result<String, SfuError> {
        self.ask(|reply| Command::Probe(sdp, reply)).await
    }

    pub async fn transport_count(&self) -> Result<usize, SfuError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::TransportCount(tx))?;
        rx.await.map_err(|_| SfuError::Stopped)
    }
}
