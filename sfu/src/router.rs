//! The media plane as a sans-IO state machine.
//!
//! The [`Router`] owns every classroom's WebRTC legs. It is fed datagrams, time and signaling
//! commands, and hands back datagrams to send, events for the signaling layer and its next deadline.
//! It never touches a socket or a clock, so it is tested with fake time; [`crate::driver`] is the
//! thin loop that gives it a real UDP socket.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use rtc::peer_connection::configuration::RTCOfferOptions;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpReceiverId, RTCRtpSenderId};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

use crate::demux;
use crate::downtrack::{Codec, Munger};
use crate::ids::{ClassId, ClassroomId, Leg, TrackId};
use crate::keyframe::KeyframeThrottle;
use crate::metrics::SfuMetrics;
use crate::policy::{self, Role, Stage};
use crate::speaker::ActiveSpeaker;
use crate::track::{MediaKind, Source, TrackInfo};
use crate::transport::{Transport, TransportKey};
use crate::{RouterConfig, SfuError};

mod probe;
pub use probe::{MAX_PROBES, PROBE_LIFETIME};
mod redundancy;
use redundancy::{Outgoing, RedSource};

/// A datagram the router wants on the wire.
#[derive(Debug)]
pub struct Transmit {
    pub to: SocketAddr,
    pub data: BytesMut,
    /// UDP, or the ICE-TCP connection from `to` (the driver frames it, RFC 4571).
    pub protocol: TransportProtocol,
}

/// A published track as carried on one subscriber's leg.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OfferedTrack {
    /// The subscriber-side transceiver that carries it.
    pub mid: String,
    pub track: TrackInfo,
}

/// What the router tells the signaling layer.
#[derive(Debug, Clone, PartialEq)]
pub enum RouterEvent {
    /// Media of a new track is arriving; everybody in the class should be told.
    TrackPublished { class: ClassId, track: TrackInfo },
    /// A track ended (unpublished, or its classroom left).
    TrackUnpublished { class: ClassId, track: TrackInfo },
    /// What `classroom` receives changed: send it this offer on its subscribe leg.
    SubscribeOffer {
        classroom: ClassroomId,
        sdp: String,
        tracks: Vec<OfferedTrack>,
    },
    /// A leg is served, or was lost. The contract the signaling layer relies on:
    ///
    /// - `connected: true` when the leg (re)connects: ICE and DTLS are up and its peer's consent
    ///   is fresh (a check that verified with the leg's password, RFC 7675).
    /// - `connected: false` only when the leg is really lost: consent expired
    ///   ([`crate::RouterConfig::consent_timeout`], 30 s without a verified check), or ICE or DTLS
    ///   failed, or the leg closed. A transient ICE `disconnected` (a peer that checks every
    ///   5 s ± 20 %) raises nothing, and media keeps being forwarded meanwhile.
    ///
    /// A leg lost by consent gets no media until a verified check comes again (then
    /// `connected: true`); if none comes within 5 s more, ICE fails (`connected: false` again)
    /// and only an ICE restart brings it back.
    LegState {
        classroom: ClassroomId,
        leg: Leg,
        connected: bool,
    },
    /// The class's active speaker changed (`None`: nobody speaks now), decided from the audio
    /// levels of its classrooms' microphones ([`crate::speaker`]).
    ActiveSpeaker {
        class: ClassId,
        classroom: Option<ClassroomId>,
    },
}

struct Member {
    class: ClassId,
    role: Role,
    publish: Option<TransportKey>,
    subscribe: Option<TransportKey>,
    /// Sources the classroom declared for its tracks, by the track id in its SDP `msid`.
    declared_sources: HashMap<String, Source>,
    /// What this classroom receives, by published track.
    downtracks: HashMap<TrackId, DownTrack>,
    negotiation: Negotiation,
    /// False in audio-only mode: video tracks are not forwarded to this classroom.
    receive_video: bool,
    /// A viewer that negotiated once, by its own offer (WHEP): the server cannot re-offer to it,
    /// so what it receives is fixed at that answer.
    fixed: bool,
    /// Publishes and receives nothing (a WHIP encoder): it has no subscribe leg.
    publish_only: bool,
}

#[derive(Default, PartialEq, Eq)]
struct Negotiation {
    offer_outstanding: bool,
    needs_offer: bool,
    /// The next offer restarts ICE (the classroom asked: its subscribe leg lost its path).
    ice_restart: bool,
}

struct DownTrack {
    sender: RTCRtpSenderId,
    /// The id of the sender's track on the subscriber's leg (the server id of the track it was
    /// created for): the subscriber's keyframe requests name it, also after a source switch.
    label: String,
    ssrc: u32,
    payload_type: u8,
    /// Sequence numbers, timestamps and picture ids made continuous; clean starts.
    munger: Munger,
    kind: MediaKind,
    /// The codec negotiated for it: only a source of this codec can feed it.
    mime: String,
    /// Packets and payload octets sent, for its sender reports (wrapping, RFC 3550).
    packets_sent: u32,
    octets_sent: u32,
    /// The header extensions its leg negotiated (`None` until its leg has a description).
    extensions: Option<crate::extensions::DownExtensions>,
    /// Its leg's payload type for RED, when the subscriber negotiated it: a RED source is
    /// forwarded as RED, else unwrapped to plain Opus ([`redundancy`]).
    red_payload_type: Option<u8>,
}

struct PublishedTrack {
    info: TrackInfo,
    class: ClassId,
    receiver: RTCRtpReceiverId,
    publish_leg: TransportKey,
    media_ssrc: u32,
    codec: Option<RTCRtpCodec>,
    /// What the forwarding path reads of its payloads (set with `codec`).
    payload_format: Codec,
    /// The header extension ids its publisher negotiated (set with `codec`).
    extensions: crate::extensions::ExtensionIds,
    /// What its packets lost on the way here, after recovery (`/metrics`).
    loss: crate::loss::LossTracker,
    /// A microphone whose publisher negotiated RED (set with `codec`).
    red: Option<RedSource>,
    keyframes: KeyframeThrottle,
    /// Classrooms whose subscribe leg carries this track.
    subscribers: Vec<ClassroomId>,
    /// Fed now, held for a rejoined publisher, or vacant ([`slots`]).
    slot: slots::Slot,
    /// A new stream filled the slot: its first packet checks the codec and switches downtracks.
    refill: bool,
}

#[derive(Default)]
struct ClassMedia {
    members: Vec<ClassroomId>,
    stage: Stage,
}

pub struct Router {
    config: RouterConfig,
    metrics: Arc<SfuMetrics>,
    next_key: TransportKey,
    next_track: u64,
    transports: HashMap<TransportKey, Transport>,
    by_ufrag: HashMap<String, TransportKey>,
    by_addr: HashMap<SocketAddr, TransportKey>,
    /// ICE-TCP connections, by the peer's address (a TCP and a UDP peer may share one).
    by_tcp_addr: HashMap<SocketAddr, TransportKey>,
    members: HashMap<ClassroomId, Member>,
    classes: HashMap<ClassId, ClassMedia>,
    /// Published tracks, by server id.
    tracks: HashMap<TrackId, PublishedTrack>,
    /// (publish leg, rtc track id) → server track id.
    track_by_leg: HashMap<(TransportKey, String), TrackId>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<RouterEvent>,
    dirty: HashSet<TransportKey>,
    /// Who speaks in each class.
    speakers: HashMap<ClassId, ActiveSpeaker>,
    /// Network-check legs ([`probe`]), closed by time.
    probes: probe::Probes,
}

impl Router {
    pub fn new(config: RouterConfig, metrics: Arc<SfuMetrics>) -> Self {
        Self {
            config,
            metrics,
            next_key: 1,
            next_track: 1,
            transports: HashMap::new(),
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            by_tcp_addr: HashMap::new(),
            members: HashMap::new(),
            classes: HashMap::new(),
            tracks: HashMap::new(),
            track_by_leg: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            dirty: HashSet::new(),
            speakers: HashMap::new(),
            probes: probe::Probes::default(),
        }
    }

    /// A classroom joins a class. Joining again (a reconnect) starts it afresh.
    pub fn join(&mut self, now: Instant, class: ClassId, classroom: ClassroomId, role: Role) {
        if self
            .members
            .get(&classroom)
            .is_some_and(|m| m.class == class)
        {
            // The same seat again (a page reload): what it published is held for its new legs.
            self.rejoin(now, &classroom, role);
            self.flush();
            return;
        }
        if self.members.contains_key(&classroom) {
            self.leave(now, &classroom);
        }
        self.classes
            .entry(class.clone())
            .or_default()
            .members
            .push(classroom.clone());
        self.members.insert(
            classroom,
            Member {
                class: class.clone(),
                role,
                publish: None,
                subscribe: None,
                declared_sources: HashMap::new(),
                downtracks: HashMap::new(),
                negotiation: Negotiation::default(),
                receive_video: true,
                // Viewers (WHEP) negotiate once, by their own offer, in `view_offer`.
                fixed: role == Role::Viewer,
                publish_only: false,
            },
        );
        self.sync_class(now, &class);
        self.flush();
    }

    /// A classroom leaves: its tracks end for everyone, its legs close and nothing of it remains.
    pub fn leave(&mut self, now: Instant, classroom: &ClassroomId) {
        let Some(member) = self.members.remove(classroom) else {
            return;
        };
        let ended: Vec<TrackId> = self
            .tracks
            .iter()
            .filter(|(_, t)| &t.info.classroom_id == classroom)
            .map(|(id, _)| id.clone())
            .collect();
        for track in ended {
            self.unpublish(&track);
        }
        for track in self.tracks.values_mut() {
            track.subscribers.retain(|s| s != classroom);
        }
        for key in [member.publish, member.subscribe].into_iter().flatten() {
            self.close_transport(key);
        }
        if let Some(class) = self.classes.get_mut(&member.class) {
            class.members.retain(|m| m != classroom);
            if class.members.is_empty() {
                self.classes.remove(&member.class);
            }
        }
        self.sync_class(now, &member.class);
        self.flush();
    }

    /// The classroom only publishes (a WHIP session): it gets no subscribe leg, and one made
    /// when it joined is closed. Any offer made for that leg is void.
    pub fn set_publish_only(&mut self, classroom: &ClassroomId) {
        let Some(member) = self.members.get_mut(classroom) else {
            return;
        };
        member.publish_only = true;
        member.negotiation = Negotiation::default();
        let gone: Vec<TrackId> = member.downtracks.keys().cloned().collect();
        for track in &gone {
            self.remove_downtrack(classroom, track);
        }
        if let Some(key) = self
            .members
            .get_mut(classroom)
            .and_then(|m| m.subscribe.take())
        {
            self.close_transport(key);
        }
        self.events.retain(
            |e| !matches!(e, RouterEvent::SubscribeOffer { classroom: c, .. } if c == classroom),
        );
        self.flush();
    }

    /// The teacher changed who is on stage.
    pub fn set_stage(
        &mut self,
        now: Instant,
        class: &ClassId,
        on_stage: impl IntoIterator<Item = ClassroomId>,
    ) {
        if let Some(media) = self.classes.get_mut(class) {
            media.stage.replace(on_stage);
        }
        self.sync_class(now, class);
        self.flush();
    }

    /// Audio-only mode for a classroom on a weak link (`false`), or back to everything (`true`).
    pub fn set_receive_video(&mut self, now: Instant, classroom: &ClassroomId, video: bool) {
        let Some(member) = self.members.get_mut(classroom) else {
            return;
        };
        if member.receive_video == video {
            return;
        }
        member.receive_video = video;
        let class = member.class.clone();
        self.sync_class(now, &class);
        self.flush();
    }

    /// The classroom offers what it publishes; returns the server's answer.
    pub fn publish_offer(
        &mut self,
        now: Instant,
        classroom: &ClassroomId,
        sdp: String,
        sources: impl IntoIterator<Item = (String, Source)>,
    ) -> Result<String, SfuError> {
        let member = self
            .members
            .get_mut(classroom)
            .ok_or(SfuError::UnknownClassroom)?;
        if member.role == Role::Viewer {
            return Err(SfuError::NotAllowed("a viewer publishes nothing"));
        }
        let sources: Vec<(String, Source)> = sources.into_iter().collect();
        let declared: Vec<Source> = sources.iter().map(|(_, s)| *s).collect();
        member.declared_sources.extend(sources);
        let key = match member.publish {
            Some(key) => key,
            None => {
                let transport = Transport::new(now, &self.config, Leg::Publish, classroom.clone())?;
                let key = self.insert_transport(transport);
                self.members
                    .get_mut(classroom)
                    .ok_or(SfuError::UnknownClassroom)?
                    .publish = Some(key);
                key
            }
        };
        let announced = self.config.announced_addr();
        let transport = self
            .transports
            .get_mut(&key)
            .ok_or(SfuError::UnknownClassroom)?;
        let first = transport.pc.remote_description().is_none();
        let sending = crate::sdp::sending_track_ids(&sdp);
        transport
            .pc
            .set_remote_description(now, RTCSessionDescription::offer(sdp)?)?;
        if first {
            transport.add_host_candidate(announced)?;
        }
        let sdp = transport.answer(now)?;
        // An offer with new ICE credentials is an ICE restart: ours changed with it.
        self.sync_ufrag(key);
        // A renegotiation that stops sending a track (a screen share ended) ends that track.
        let stopped: Vec<TrackId> = self
            .track_by_leg
            .iter()
            .filter(|((leg, rtc_track), _)| {
                *leg == key && sending.as_ref().is_some_and(|s| !s.contains(rtc_track))
            })
            .map(|(_, track)| track.clone())
            .collect();
        // Its slot stays (vacant) for the subscribers: a share that starts again fills it.
        for track in &stopped {
            self.vacate(track);
        }
        self.vacate_undeclared(classroom, &declared);
        if let Some(class) = self.members.get(classroom).map(|m| m.class.clone()) {
            self.sync_class(now, &class);
        }
        self.drain(now, key);
        self.flush();
        Ok(sdp)
    }

    /// The classroom answered the last subscribe offer.
    pub fn subscribe_answer(
        &mut self,
        now: Instant,
        classroom: &ClassroomId,
        sdp: String,
    ) -> Result<(), SfuError> {
        let member = self
            .members
            .get_mut(classroom)
            .ok_or(SfuError::UnknownClassroom)?;
        let key = member
            .subscribe
            .filter(|_| member.negotiation.offer_outstanding)
            .ok_or(SfuError::Negotiation(
                "no subscribe offer is outstanding".into(),
            ))?;
        let transport = self
            .transports
            .get_mut(&key)
            .ok_or(SfuError::UnknownClassroom)?;
        transport
            .pc
            .set_remote_description(now, RTCSessionDescription::answer(sdp)?)?;
        member.negotiation.offer_outstanding = false;
        let class = member.class.clone();
        refresh_extensions(member, transport);
        self.drain(now, key);
        // Changes that came while the offer was out go in the next one.
        self.offer_if_needed(now, classroom);
        // Only the downtracks this negotiation added wait for a keyframe; nobody else's publisher
        // is disturbed.
        self.request_keyframes_awaiting(now, classroom);
        let _ = class;
        self.flush();
        Ok(())
    }

    /// A receive-only viewer offers (WHEP): answer with the master classroom's microphone and
    /// camera (its screen share when it has no camera). The viewer must have joined as a
    /// [`Role::Viewer`]; the master classroom must be publishing.
    pub fn view_offer(
        &mut self,
        now: Instant,
        classroom: &ClassroomId,
        sdp: String,
    ) -> Result<String, SfuError> {
        let member = self
            .members
            .get(classroom)
            .ok_or(SfuError::UnknownClassroom)?;
        if !member.fixed || member.subscribe.is_some() {
            return Err(SfuError::NotAllowed("only a new viewer offers to receive"));
        }
        let class = member.class.clone();
        let offer = RTCSessionDescription::offer(sdp)?;
        let chosen: Vec<(TrackId, ClassroomId, MediaKind, RTCRtpCodec)> =
            [MediaKind::Audio, MediaKind::Video]
                .into_iter()
                .filter_map(|kind| self.viewer_source(&class, kind))
                .collect();
        if chosen.is_empty() {
            return Err(SfuError::NothingToView);
        }

        let mut transport = Transport::new(now, &self.config, Leg::Subscribe, classroom.clone())?;
        transport.pc.set_remote_description(now, offer)?;
        transport.add_host_candidate(self.config.announced_addr())?;
        let key = self.insert_transport(transport);
        if let Some(m) = self.members.get_mut(classroom) {
            m.subscribe = Some(key);
            m.fixed = true;
        }
        for (track, publisher, kind, codec) in chosen {
            self.add_downtrack(now, classroom, &track, &publisher, kind, codec)?;
        }
        let transport = self
            .transports
            .get_mut(&key)
            .ok_or(SfuError::UnknownClassroom)?;
        let sdp = transport.answer(now)?;
        if let Some(m) = self.members.get_mut(classroom) {
            refresh_extensions(m, transport);
        }
        self.sync_ufrag(key);
        self.drain(now, key);
        self.flush();
        Ok(sdp)
    }

    /// ICE restart on a leg the client offered (WHIP/WHEP `PATCH`): the client's new credentials
    /// replace the old ones in its last offer, the leg answers again, and the server's side of the
    /// new ICE session comes back as an SDP fragment (`a=ice-ufrag`, `a=ice-pwd`, its candidate).
    pub fn restart_ice(
        &mut self,
        now: Instant,
        classroom: &ClassroomId,
        leg: Leg,
        ufrag: &str,
        pwd: &str,
    ) -> Result<String, SfuError> {
        let member = self
            .members
            .get(classroom)
            .ok_or(SfuError::UnknownClassroom)?;
        let key = match leg {
            Leg::Publish => member.publish,
            Leg::Subscribe => member.subscribe.filter(|_| member.fixed),
        }
        .ok_or(SfuError::NotAllowed(
            "only a leg the client offered restarts by PATCH",
        ))?;
        let transport = self
            .transports
            .get_mut(&key)
            .ok_or(SfuError::UnknownClassroom)?;
        let offer = transport
            .pc
            .remote_description()
            .map(|d| d.sdp.clone())
            .ok_or(SfuError::Negotiation("no offer to restart".into()))?;
        let offer = crate::sdp::with_ice_credentials(&offer, ufrag, pwd);
        transport
            .pc
            .set_remote_description(now, RTCSessionDescription::offer(offer)?)?;
        let answer = transport.answer(now)?;
        self.sync_ufrag(key);
        self.drain(now, key);
        self.flush();
        Ok(crate::sdp::ice_fragment(&answer))
    }

    /// ICE restart on a subscribe leg the server offers (a classroom over the WebSocket): the next
    /// subscribe offer carries new server credentials, so the classroom's answer restarts ICE
    /// (RFC 8445 §9). If an offer is outstanding, the restart goes in the one after its answer.
    pub fn restart_subscribe_ice(
        &mut self,
        now: Instant,
        classroom: &ClassroomId,
    ) -> Result<(), SfuError> {
        let member = self
            .members
            .get_mut(classroom)
            .ok_or(SfuError::UnknownClassroom)?;
        if member.fixed || member.subscribe.is_none() {
            return Err(SfuError::NotAllowed(
                "no subscribe leg the server offers to restart",
            ));
        }
        member.negotiation.needs_offer = true;
        member.negotiation.ice_restart = true;
        self.offer_if_needed(now, classroom);
        self.flush();
        Ok(())
    }

    /// The subscribe offer a classroom has not answered yet, sent again (its WebSocket dropped
    /// after the offer went out and has resumed). `None` when nothing is outstanding.
    pub fn outstanding_offer(&mut self, classroom: &ClassroomId) -> Option<RouterEvent> {
        let member = self.members.get(classroom)?;
        if !member.negotiation.offer_outstanding {
            return None;
        }
        let transport = self.transports.get_mut(&member.subscribe?)?;
        let sdp = transport.pc.local_description()?.sdp;
        Some(RouterEvent::SubscribeOffer {
            classroom: classroom.clone(),
            sdp,
            tracks: offered_tracks(member, transport, &self.tracks),
        })
    }

    /// Whether the classroom is a member with its media legs, for a resume that keeps them.
    pub fn has_member(&self, classroom: &ClassroomId) -> bool {
        self.members.contains_key(classroom)
    }

    /// A trickled ICE candidate from the classroom.
    pub fn add_remote_candidate(
        &mut self,
        classroom: &ClassroomId,
        leg: Leg,
        candidate: RTCIceCandidateInit,
    ) -> Result<(), SfuError> {
        let member = self
            .members
            .get(classroom)
            .ok_or(SfuError::UnknownClassroom)?;
        let key = match leg {
            Leg::Publish => member.publish,
            Leg::Subscribe => member.subscribe,
        }
        .ok_or(SfuError::Negotiation(
            "that leg is not negotiated yet".into(),
        ))?;
        if candidate.candidate.is_empty() {
            return Ok(());
        }
        if let Some(transport) = self.transports.get_mut(&key) {
            transport.pc.add_remote_candidate(candidate)?;
        }
        Ok(())
    }

    /// A datagram arrived on the shared media port (bound at `_local`: a wildcard or a private
    /// address behind NAT; the ICE agent knows the port by its announced address).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        _local: SocketAddr,
        from: SocketAddr,
        data: &[u8],
    ) {
        self.handle_packet(now, TransportProtocol::UDP, from, data);
    }

    /// A packet arrived on the media port over `protocol`: a UDP datagram, or one RFC 4571 frame
    /// of the ICE-TCP connection from `from` (the driver undoes the framing).
    pub fn handle_packet(
        &mut self,
        now: Instant,
        protocol: TransportProtocol,
        from: SocketAddr,
        data: &[u8],
    ) {
        // A connectivity check names its leg by ufrag; it binds its address to that leg and
        // refreshes the leg's consent only when signed with the leg's password.
        let check = demux::binding_request_ufrag(data)
            .and_then(|ufrag| self.by_ufrag.get(ufrag))
            .copied();
        let key = match check {
            Some(key) => {
                let verified = self
                    .transports
                    .get(&key)
                    .is_some_and(|t| demux::binding_request_verifies(data, &t.ice_pwd));
                if !verified {
                    tracing::debug!(%from, "connectivity check without valid integrity ignored");
                    return;
                }
                self.on_consent(now, key, protocol, from);
                key
            }
            None => match self.addresses(protocol).get(&from) {
                Some(key) => *key,
                // Not from a verified address of any leg: a stray, a scanner, a leg closed.
                None => return,
            },
        };
        let Some(transport) = self.transports.get_mut(&key) else {
            match protocol {
                TransportProtocol::TCP => self.by_tcp_addr.remove(&from),
                _ => self.by_addr.remove(&from),
            };
            return;
        };
        // The ICE agent finds the candidate a packet reached by its address, which is the announced
        // one (`--public-ip`), not the socket's own (`0.0.0.0`, or a private address behind NAT):
        // the server has one host candidate per protocol, all at that address.
        let local_addr = self.config.announced_addr();
        let read = transport.pc.handle_read(TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr,
                peer_addr: from,
                ecn: None,
                transport_protocol: protocol,
            },
            message: BytesMut::from(data),
        });
        if let Err(err) = read {
            tracing::debug!(%from, %err, "datagram rejected");
        }
        self.drain(now, key);
        self.flush();
    }

    /// The next instant the router must be woken at, if any.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let legs = self
            .transports
            .values_mut()
            .filter_map(|t| t.pc.poll_timeout());
        let timeout = self.config.consent_timeout;
        let legs = legs.min();
        let keyframes = self.tracks.values().filter_map(|t| t.keyframes.deadline());
        let speakers = self.speakers.values().filter_map(|s| s.poll_timeout());
        let consent = self
            .transports
            .values()
            .filter(|t| t.connected)
            .filter_map(|t| t.consent_expires(timeout));
        legs.into_iter()
            .chain(self.held_deadline())
            .chain(keyframes)
            .chain(speakers)
            .chain(consent)
            .chain(self.probes.deadline())
            .min()
    }

    /// Time has passed: retransmissions, reports, consent checks, deferred keyframe requests.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<TransportKey> = self
            .transports
            .iter_mut()
            .filter_map(|(k, t)| {
                t.pc.poll_timeout()
                    .is_some_and(|at| at <= now)
                    .then_some(*k)
            })
            .collect();
        for key in due {
            if let Some(t) = self.transports.get_mut(&key)
                && let Err(err) = t.pc.handle_timeout(now)
            {
                tracing::debug!(%err, "leg timeout handling failed");
            }
            self.drain(now, key);
        }
        let timeout = self.config.consent_timeout;
        let expired: Vec<TransportKey> = self
            .transports
            .iter()
            .filter(|(_, t)| t.connected && !t.served(now, timeout))
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            self.update_leg_state(now, key);
        }
        let deferred: Vec<TrackId> = self
            .tracks
            .iter_mut()
            .filter_map(|(id, t)| t.keyframes.poll(now).then(|| id.clone()))
            .collect();
        self.decide_speakers(now);
        for track in deferred {
            self.send_pli(now, &track);
        }
        self.expire_probes(now);
        self.expire_held(now);
        self.flush();
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<RouterEvent> {
        self.events.pop_front()
    }

    /// Queue an event for the signaling layer (one the driver was asked to repeat).
    pub fn push_event(&mut self, event: RouterEvent) {
        self.events.push_back(event);
    }

    /// Tracks being published in a class.
    pub fn tracks_of(&self, class: &ClassId) -> Vec<TrackInfo> {
        let mut tracks: Vec<TrackInfo> = self
            .tracks
            .values()
            .filter(|t| &t.class == class && t.slot != slots::Slot::Vacant)
            .map(|t| t.info.clone())
            .collect();
        tracks.sort_by(|a, b| a.track_id.cmp(&b.track_id));
        tracks
    }

    /// Live transports; a leak shows here first.
    pub fn transport_count(&self) -> usize {
        self.transports.len()
    }

    // ---- internals ----

    fn insert_transport(&mut self, transport: Transport) -> TransportKey {
        let key = self.next_key;
        self.next_key += 1;
        if !transport.ufrag.is_empty() {
            self.by_ufrag.insert(transport.ufrag.clone(), key);
        }
        self.transports.insert(key, transport);
        key
    }

    /// Keep `by_ufrag` (and the password consent checks are verified with) in step with the
    /// leg's local ICE credentials: set by its first local
    /// description, new after every ICE restart. Checks under the old ufrag are not answered
    /// any more, so the old entry goes.
    fn sync_ufrag(&mut self, key: TransportKey) {
        let Some(t) = self.transports.get_mut(&key) else {
            return;
        };
        let Some((ufrag, pwd)) = t.local_credentials() else {
            return;
        };
        if ufrag == t.ufrag {
            return;
        }
        t.ice_pwd = pwd;
        let old = std::mem::replace(&mut t.ufrag, ufrag.clone());
        if !old.is_empty() {
            self.by_ufrag.remove(&old);
        }
        self.by_ufrag.insert(ufrag, key);
    }

    fn close_transport(&mut self, key: TransportKey) {
        if let Some(mut transport) = self.transports.remove(&key) {
            let _ = transport.pc.close();
            // Say goodbye (DTLS close_notify) before forgetting the leg.
            while let Some(out) = transport.pc.poll_write() {
                self.push_transmit(out);
            }
            self.by_ufrag.remove(&transport.ufrag);
            self.by_addr.retain(|_, k| *k != key);
            self.by_tcp_addr.retain(|_, k| *k != key);
            self.track_by_leg.retain(|(k, _), _| *k != key);
        }
        self.dirty.remove(&key);
    }

    fn push_transmit(&mut self, out: TaggedBytesMut) {
        self.transmits.push_back(Transmit {
            to: out.transport.peer_addr,
            data: out.message,
            protocol: out.transport.transport_protocol,
        });
    }

    /// Move every dirty leg's outgoing datagrams to the transmit queue.
    fn flush(&mut self) {
        let dirty: Vec<TransportKey> = self.dirty.drain().collect();
        for key in dirty {
            if let Some(t) = self.transports.get_mut(&key) {
                while let Some(out) = t.pc.poll_write() {
                    self.transmits.push_back(Transmit {
                        to: out.transport.peer_addr,
                        data: out.message,
                        protocol: out.transport.transport_protocol,
                    });
                }
            }
        }
    }

    /// Handle what a leg produced: state changes, new tracks, media and feedback; the leg's own
    /// datagrams go out at the next flush.
    fn drain(&mut self, now: Instant, key: TransportKey) {
        self.dirty.insert(key);
        let mut events = Vec::new();
        let mut reads = Vec::new();
        {
            let Some(t) = self.transports.get_mut(&key) else {
                return;
            };
            while let Some(event) = t.pc.poll_event() {
                events.push(event);
            }
            while let Some(read) = t.pc.poll_read() {
                reads.push(read);
            }
        }
        for event in events {
            self.on_leg_event(now, key, event);
        }
        for TaggedRTCMessage { message, .. } in reads {
            match message {
                RTCMessage::RtpPacket(rtc_track, packet) => {
                    self.on_media(now, key, &rtc_track, packet)
                }
                RTCMessage::RtcpPacket(rtc_track, packets) => {
                    self.on_feedback(now, key, &rtc_track, &packets)
                }
                _ => {}
            }
        }
    }

    fn on_leg_event(&mut self, now: Instant, key: TransportKey, event: RTCPeerConnectionEvent) {
        let Some(t) = self.transports.get_mut(&key) else {
            return;
        };
        let (leg, classroom) = (t.leg, t.classroom.clone());
        match event {
            RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                match state {
                    RTCPeerConnectionState::Connected => t.pc_up = true,
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                        t.pc_up = false;
                        if !t.connected {
                            // It never got served (or was lost already): the failure is news.
                            tracing::info!(classroom = %classroom, ?leg, %state, "leg failed");
                            self.events.push_back(RouterEvent::LegState {
                                classroom,
                                leg,
                                connected: false,
                            });
                            return;
                        }
                    }
                    RTCPeerConnectionState::Disconnected => {
                        // Transient: consent (RFC 7675) decides when the leg is lost, not this.
                        tracing::debug!(classroom = %classroom, ?leg, "leg disconnected; still served while consent is fresh");
                        return;
                    }
                    _ => return,
                }
                self.update_leg_state(now, key);
            }
            RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                self.on_track_open(key, &classroom, init.track_id, init.receiver_id, init.ssrc);
            }
            RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnClose(rtc_track)) => {
                if let Some(track) = self.track_by_leg.remove(&(key, rtc_track)) {
                    // Its classroom is still here: the slot waits for the source to come back.
                    self.vacate(&track);
                    if let Some(class) = self.members.get(&classroom).map(|m| m.class.clone()) {
                        self.sync_class(now, &class);
                    }
                }
            }
            _ => {}
        }
    }

    /// A verified connectivity check from `from` for the leg `key`: its address is the leg's, and
    /// its consent is fresh again.
    /// The verified remote addresses of the legs, for packets over `protocol`.
    fn addresses(&self, protocol: TransportProtocol) -> &HashMap<SocketAddr, TransportKey> {
        match protocol {
            TransportProtocol::TCP => &self.by_tcp_addr,
            _ => &self.by_addr,
        }
    }

    fn on_consent(
        &mut self,
        now: Instant,
        key: TransportKey,
        protocol: TransportProtocol,
        from: SocketAddr,
    ) {
        let Some(t) = self.transports.get_mut(&key) else {
            return;
        };
        t.consent_at = Some(now);
        if t.remote_addr != Some(from) {
            t.remote_addr = Some(from);
            match protocol {
                TransportProtocol::TCP => self.by_tcp_addr.insert(from, key),
                _ => self.by_addr.insert(from, key),
            };
        }
        if !t.connected && t.pc_up {
            self.update_leg_state(now, key);
        }
    }

    /// Serve a leg or stop serving it as its state and consent say; tell signaling on a change.
    fn update_leg_state(&mut self, now: Instant, key: TransportKey) {
        let timeout = self.config.consent_timeout;
        let Some(t) = self.transports.get_mut(&key) else {
            return;
        };
        let served = t.served(now, timeout);
        if served == t.connected {
            return;
        }
        t.connected = served;
        let (leg, classroom) = (t.leg, t.classroom.clone());
        if served {
            tracing::info!(classroom = %classroom, ?leg, "leg connected");
        } else if t.pc_up {
            tracing::info!(classroom = %classroom, ?leg, timeout_secs = timeout.as_secs(), "leg lost: consent expired");
        } else {
            tracing::info!(classroom = %classroom, ?leg, "leg lost: failed or closed");
        }
        self.events.push_back(RouterEvent::LegState {
            classroom: classroom.clone(),
            leg,
            connected: served,
        });
        if served && leg == Leg::Subscribe {
            // Whatever was not sent while the leg was down cannot be repaired: start again at a
            // keyframe.
            if let Some(m) = self.members.get_mut(&classroom) {
                for down in m.downtracks.values_mut() {
                    down.munger.restart_at_keyframe();
                }
            }
            self.request_keyframes_for(now, &classroom);
        }
    }

    fn on_track_open(
        &mut self,
        key: TransportKey,
        classroom: &ClassroomId,
        rtc_track: String,
        receiver: RTCRtpReceiverId,
        ssrc: u32,
    ) {
        let Some(member) = self.members.get(classroom) else {
            return;
        };
        if self.track_by_leg.contains_key(&(key, rtc_track.clone())) {
            return;
        }
        let Some(t) = self.transports.get_mut(&key) else {
            return;
        };
        let Some(rtp_receiver) = t.pc.rtp_receiver(receiver) else {
            return;
        };
        let kind = match rtp_receiver.track().kind() {
            RtpCodecKind::Audio => MediaKind::Audio,
            _ => MediaKind::Video,
        };
        let source = member
            .declared_sources
            .get(&rtc_track)
            .copied()
            .unwrap_or(Source::default_for(kind));
        if self.fill_slot(key, classroom, &rtc_track, receiver, ssrc, (kind, source)) {
            return;
        }
        let Some(member) = self.members.get(classroom) else {
            return;
        };
        let track_id = TrackId::from(format!("t{}", self.next_track));
        self.next_track += 1;
        let info = TrackInfo {
            track_id: track_id.clone(),
            classroom_id: classroom.clone(),
            kind,
            source,
        };
        self.track_by_leg.insert((key, rtc_track), track_id.clone());
        self.tracks.insert(
            track_id,
            PublishedTrack {
                info,
                class: member.class.clone(),
                receiver,
                publish_leg: key,
                media_ssrc: ssrc,
                codec: None,
                payload_format: Codec::OtherVideo,
                extensions: Default::default(),
                loss: Default::default(),
                red: None,
                keyframes: KeyframeThrottle::new(self.config.keyframe_request_interval),
                subscribers: Vec::new(),
                slot: slots::Slot::Live,
                refill: false,
            },
        );
    }

    /// A publisher's RTP packet: forward it to every subscriber of its track.
    fn on_media(
        &mut self,
        now: Instant,
        key: TransportKey,
        rtc_track: &str,
        packet: rtc::rtp::Packet,
    ) {
        let Some(track_id) = self.track_by_leg.get(&(key, rtc_track.to_owned())).cloned() else {
            return;
        };
        let Some(track) = self.tracks.get_mut(&track_id) else {
            return;
        };
        if track.codec.is_none() || track.refill {
            // The first packet names the codec the browser chose: now the track can be offered.
            let found = self.transports.get_mut(&key).and_then(|t| {
                let mut receiver = t.pc.rtp_receiver(track.receiver)?;
                let params = &receiver.get_parameters().rtp_parameters;
                let chosen = params
                    .codecs
                    .iter()
                    .find(|c| c.payload_type == packet.header.payload_type)?;
                // A RED track is offered as its primary codec: every subscriber can take that,
                // and those that negotiate RED too get it as RED.
                let codec = if crate::codecs::is_red(&chosen.rtp_codec.mime_type) {
                    redundancy::primary_codec(chosen, &params.codecs)?.rtp_codec
                } else {
                    chosen.rtp_codec.clone()
                };
                let red = (track.info.kind == MediaKind::Audio)
                    .then(|| RedSource::negotiated(&params.codecs))
                    .flatten();
                Some((
                    codec,
                    crate::extensions::ExtensionIds::from_parameters(&params.header_extensions),
                    red,
                ))
            });
            let Some((codec, extensions, red)) = found else {
                return;
            };
            if track.refill {
                // A stream that filled a slot ([`slots`]): forwarded as the slot's from now on.
                if self.refill_on_first_packet(now, &track_id, codec, extensions, red) {
                    self.on_media(now, key, rtc_track, packet);
                }
                return;
            }
            track.extensions = extensions;
            track.red = red;
            track.payload_format = Codec::from_mime(&codec.mime_type);
            track.codec = Some(codec);
            let (class, info) = (track.class.clone(), track.info.clone());
            tracing::info!(class = %class, classroom = %info.classroom_id, track = %info.track_id, kind = ?info.kind, "track published");
            self.events.push_back(RouterEvent::TrackPublished {
                class: class.clone(),
                track: info,
            });
            self.sync_class(now, &class);
            return;
        }
        let loss = track.loss.on_packet(packet.header.sequence_number);
        self.metrics.count_loss(track.info.kind, loss);
        if track.info.kind == MediaKind::Audio
            && let Some((_, level)) =
                crate::extensions::audio_level(&packet.header, &track.extensions)
        {
            if let Some(s) = self.speakers.get_mut(&track.class) {
                s.observe(now, &track.info.classroom_id, level);
            } else {
                let mut s = ActiveSpeaker::default();
                s.observe(now, &track.info.classroom_id, level);
                self.speakers.insert(track.class.clone(), s);
            }
        }
        let keyframe = crate::downtrack::is_keyframe_start(track.payload_format, &packet.payload);
        let outgoing = match track.red.as_mut() {
            Some(red) if packet.header.payload_type == red.payload_type => {
                if let Err(err) = red.on_red(&packet) {
                    tracing::debug!(class = %track.class, classroom = %track.info.classroom_id, %err, "malformed RED packet dropped");
                    return;
                }
                // Lost packets the redundancy brought back: recovered, not lost.
                for recovered in red.unwrapped.iter().filter(|p| p.recovered) {
                    let count = track.loss.on_packet(recovered.sequence_number);
                    self.metrics
                        .count_red_recovered(track.info.kind, count.recovered);
                }
                Outgoing::Red {
                    payload: &red.downlink,
                    parsed: &red.downlink_parsed,
                    unwrapped: &red.unwrapped,
                }
            }
            Some(red) => {
                if !red.on_plain(packet.header.sequence_number) {
                    // Its frame reached every subscriber already, from a RED packet.
                    return;
                }
                Outgoing::Plain
            }
            None => Outgoing::Plain,
        };
        let waiting = forward(
            now,
            &packet,
            &outgoing,
            keyframe,
            &track_id,
            &track.extensions,
            &track.subscribers,
            &mut self.members,
            &mut self.transports,
            &mut self.dirty,
            &self.metrics,
        );
        if waiting {
            // A subscriber holds this track back until a keyframe: make sure one is coming
            // (throttled, so asking again per packet costs nothing upstream).
            self.request_keyframe(now, &track_id);
        }
    }

    /// RTCP that surfaced on a leg: keyframe requests from subscribers go to the publisher.
    fn on_feedback(
        &mut self,
        now: Instant,
        key: TransportKey,
        rtc_track: &str,
        packets: &[Box<dyn rtc::rtcp::Packet>],
    ) {
        let wants_keyframe = crate::feedback::asks_for_keyframe(packets);
        let is_subscribe_leg = self
            .transports
            .get(&key)
            .is_some_and(|t| t.leg == Leg::Subscribe);
        if !is_subscribe_leg {
            self.relay_sender_reports(now, key, rtc_track, packets);
        }
        if wants_keyframe && is_subscribe_leg {
            // The sender is named after the track it was made for; the track now feeding it
            // may be another (a WHEP display that followed a screen share).
            let source = self
                .transports
                .get(&key)
                .and_then(|t| self.members.get(&t.classroom))
                .and_then(|m| {
                    m.downtracks
                        .iter()
                        .find(|(_, d)| d.label == rtc_track)
                        .map(|(id, _)| id.clone())
                });
            if let Some(track) = source {
                self.request_keyframe(now, &track);
            }
        }
    }

    /// A publisher's sender reports, translated for every downtrack its track feeds
    /// ([`crate::lipsync`]).
    fn relay_sender_reports(
        &mut self,
        now: Instant,
        key: TransportKey,
        rtc_track: &str,
        packets: &[Box<dyn rtc::rtcp::Packet>],
    ) {
        let mut reports = crate::lipsync::sender_reports(packets).peekable();
        if reports.peek().is_none() {
            return;
        }
        let Some(track_id) = self.track_by_leg.get(&(key, rtc_track.to_owned())) else {
            return;
        };
        let Some(track) = self.tracks.get(track_id) else {
            return;
        };
        for report in reports {
            for subscriber in &track.subscribers {
                let Some(member) = self.members.get(subscriber) else {
                    continue;
                };
                let (Some(down), Some(leg)) = (member.downtracks.get(track_id), member.subscribe)
                else {
                    continue;
                };
                let Some(rtp_time) = down
                    .munger
                    .translate_timestamp(report.ssrc, report.rtp_time)
                else {
                    continue;
                };
                let Some(transport) = self.transports.get_mut(&leg).filter(|t| t.connected) else {
                    continue;
                };
                let translated = crate::lipsync::translate(
                    report,
                    down.ssrc,
                    rtp_time,
                    down.packets_sent,
                    down.octets_sent,
                );
                if let Some(mut sender) = transport.pc.rtp_sender(down.sender)
                    && sender.write_rtcp(now, vec![Box::new(translated)]).is_ok()
                {
                    self.dirty.insert(leg);
                }
            }
        }
    }

    /// Ask for keyframes for the downtracks of `classroom` that wait for one to start.
    fn request_keyframes_awaiting(&mut self, now: Instant, classroom: &ClassroomId) {
        let Some(member) = self.members.get(classroom) else {
            return;
        };
        let waiting: Vec<TrackId> = member
            .downtracks
            .iter()
            .filter(|(_, d)| d.munger.awaiting_keyframe())
            .map(|(id, _)| id.clone())
            .collect();
        for track in waiting {
            self.request_keyframe(now, &track);
        }
    }

    fn request_keyframes_for(&mut self, now: Instant, classroom: &ClassroomId) {
        let Some(member) = self.members.get(classroom) else {
            return;
        };
        let video: Vec<TrackId> = member
            .downtracks
            .keys()
            .filter(|id| {
                self.tracks
                    .get(*id)
                    .is_some_and(|t| t.info.kind == MediaKind::Video)
            })
            .cloned()
            .collect();
        for track in video {
            self.request_keyframe(now, &track);
        }
    }

    fn request_keyframe(&mut self, now: Instant, track: &TrackId) {
        if let Some(t) = self.tracks.get_mut(track)
            && t.info.kind == MediaKind::Video
            && t.keyframes.request(now)
        {
            self.send_pli(now, track);
        }
    }

    fn send_pli(&mut self, now: Instant, track: &TrackId) {
        let Some(t) = self.tracks.get(track) else {
            return;
        };
        let (leg, receiver, media_ssrc) = (t.publish_leg, t.receiver, t.media_ssrc);
        if let Some(transport) = self.transports.get_mut(&leg)
            && let Some(mut rtp_receiver) = transport.pc.rtp_receiver(receiver)
        {
            let pli = PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc,
            };
            if rtp_receiver.write_rtcp(now, vec![Box::new(pli)]).is_ok() {
                self.metrics.keyframe_requests.inc();
            }
            self.dirty.insert(leg);
        }
    }

    fn unpublish(&mut self, track: &TrackId) {
        let Some(mut published) = self.tracks.remove(track) else {
            return;
        };
        self.metrics
            .count_loss(published.info.kind, published.loss.finish());
        self.track_by_leg.retain(|_, t| t != track);
        if published.info.kind == MediaKind::Audio
            && let Some(s) = self.speakers.get_mut(&published.class)
        {
            s.forget(&published.info.classroom_id);
        }
        tracing::info!(class = %published.class, track = %track, "track unpublished");
        if published.slot == slots::Slot::Vacant {
            // Everybody was told when it fell vacant.
            return;
        }
        self.events.push_back(RouterEvent::TrackUnpublished {
            class: published.class,
            track: published.info,
        });
    }

    /// Tell each class whose active speaker changed; forget the classes that ended.
    fn decide_speakers(&mut self, now: Instant) {
        let classes = &self.classes;
        self.speakers.retain(|class, _| classes.contains_key(class));
        for (class, speaker) in &mut self.speakers {
            if let Some(classroom) = speaker.poll(now) {
                tracing::debug!(class = %class, classroom = ?classroom, "active speaker");
                self.events.push_back(RouterEvent::ActiveSpeaker {
                    class: class.clone(),
                    classroom,
                });
            }
        }
    }

    /// Make every member of a class receive exactly what the policy says, renegotiating as needed.
    fn sync_class(&mut self, now: Instant, class: &ClassId) {
        let Some(media) = self.classes.get(class) else {
            return;
        };
        let stage = media.stage.clone();
        let members = media.members.clone();
        let tracks: Vec<(TrackId, ClassroomId, MediaKind, RTCRtpCodec)> = self
            .tracks
            .iter()
            .filter(|(_, t)| &t.class == class)
            .filter_map(|(id, t)| {
                Some((
                    id.clone(),
                    t.info.classroom_id.clone(),
                    t.info.kind,
                    t.codec.clone()?,
                ))
            })
            .collect();
        for subscriber in &members {
            if self.members.get(subscriber).is_some_and(|m| m.publish_only) {
                continue;
            }
            if self.members.get(subscriber).is_some_and(|m| m.fixed) {
                self.follow_master(now, class, subscriber);
                continue;
            }
            let Some((sub_role, receive_video)) = self
                .members
                .get(subscriber)
                .filter(|m| !m.fixed)
                .map(|m| (m.role, m.receive_video))
            else {
                continue;
            };
            let wanted: HashSet<TrackId> = tracks
                .iter()
                .filter(|(_, publisher, kind, _)| {
                    self.members.get(publisher).is_some_and(|p| {
                        policy::receives_track(
                            (publisher, p.role),
                            (subscriber, sub_role),
                            &stage,
                            *kind,
                            receive_video,
                        )
                    })
                })
                .map(|(id, ..)| id.clone())
                .collect();
            let current: HashSet<TrackId> = self.members[subscriber]
                .downtracks
                .keys()
                .cloned()
                .collect();
            let mut changed = false;
            for gone in current.difference(&wanted) {
                self.remove_downtrack(subscriber, gone);
                changed = true;
            }
            for new in wanted.difference(&current) {
                let Some((_, publisher, kind, codec)) = tracks.iter().find(|(id, ..)| id == new)
                else {
                    continue;
                };
                // A held or vacant slot is kept by those who have it, not offered anew.
                if self
                    .tracks
                    .get(new)
                    .is_some_and(|t| t.slot != slots::Slot::Live)
                {
                    continue;
                }
                match self.add_downtrack(now, subscriber, new, publisher, *kind, codec.clone()) {
                    Ok(()) => changed = true,
                    Err(err) => {
                        tracing::warn!(classroom = %subscriber, track = %new, %err, "cannot forward track")
                    }
                }
            }
            if changed {
                if let Some(m) = self.members.get_mut(subscriber) {
                    m.negotiation.needs_offer = true;
                }
                self.offer_if_needed(now, subscriber);
            }
        }
    }

    fn add_downtrack(
        &mut self,
        now: Instant,
        subscriber: &ClassroomId,
        track: &TrackId,
        publisher: &ClassroomId,
        kind: MediaKind,
        codec: RTCRtpCodec,
    ) -> Result<(), SfuError> {
        let key = match self.members.get(subscriber).and_then(|m| m.subscribe) {
            Some(key) => key,
            None => {
                let mut transport =
                    Transport::new(now, &self.config, Leg::Subscribe, subscriber.clone())?;
                transport.add_host_candidate(self.config.announced_addr())?;
                let key = self.insert_transport(transport);
                if let Some(m) = self.members.get_mut(subscriber) {
                    m.subscribe = Some(key);
                }
                key
            }
        };
        let transport = self
            .transports
            .get_mut(&key)
            .ok_or(SfuError::UnknownClassroom)?;
        let ssrc = rand::random::<u32>();
        let mime = codec.mime_type.clone();
        let payload_format = Codec::from_mime(&mime);
        let media_track = rtc::media_stream::MediaStreamTrack::new(
            // The stream is the publishing classroom, so a browser groups its audio and video.
            publisher.to_string(),
            track.to_string(),
            track.to_string(),
            match kind {
                MediaKind::Audio => RtpCodecKind::Audio,
                MediaKind::Video => RtpCodecKind::Video,
            },
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: codec.clone(),
                ..Default::default()
            }],
        );
        let sender = transport.pc.add_track(media_track)?;
        let payload_type = transport
            .pc
            .rtp_sender(sender)
            .and_then(|mut s| {
                s.get_parameters()
                    .rtp_parameters
                    .codecs
                    .iter()
                    .find(|c| crate::codecs::same_codec(&c.rtp_codec, &codec))
                    .map(|c| c.payload_type)
            })
            .ok_or(SfuError::Negotiation(format!(
                "no payload type for {mime} {}",
                codec.sdp_fmtp_line
            )))?;
        if let Some(m) = self.members.get_mut(subscriber) {
            m.downtracks.insert(
                track.clone(),
                DownTrack {
                    sender,
                    label: track.to_string(),
                    ssrc,
                    payload_type,
                    munger: Munger::new(payload_format),
                    kind,
                    mime,
                    packets_sent: 0,
                    octets_sent: 0,
                    extensions: None,
                    red_payload_type: None,
                },
            );
        }
        if let Some(t) = self.tracks.get_mut(track) {
            t.subscribers.push(subscriber.clone());
        }
        Ok(())
    }

    fn remove_downtrack(&mut self, subscriber: &ClassroomId, track: &TrackId) {
        let Some(member) = self.members.get_mut(subscriber) else {
            return;
        };
        if let Some(down) = member.downtracks.remove(track)
            && let Some(key) = member.subscribe
            && let Some(t) = self.transports.get_mut(&key)
        {
            let _ = t.pc.remove_track(down.sender);
        }
        if let Some(t) = self.tracks.get_mut(track) {
            t.subscribers.retain(|s| s != subscriber);
        }
    }

    /// Send a new subscribe offer when one is owed and none is outstanding.
    fn offer_if_needed(&mut self, now: Instant, classroom: &ClassroomId) {
        let Some(member) = self.members.get_mut(classroom) else {
            return;
        };
        let Some(key) = member.subscribe else {
            return;
        };
        if !member.negotiation.needs_offer || member.negotiation.offer_outstanding {
            return;
        }
        let Some(transport) = self.transports.get_mut(&key) else {
            return;
        };
        let options = member
            .negotiation
            .ice_restart
            .then_some(RTCOfferOptions { ice_restart: true });
        let offer = match transport
            .pc
            .create_offer(options)
            .and_then(|offer| transport.pc.set_local_description(now, offer))
        {
            Ok(()) => transport
                .pc
                .local_description()
                .map(|d| crate::sdp::without_rtcp_candidates(&d.sdp)),
            Err(err) => {
                tracing::warn!(classroom = %classroom, %err, "cannot create subscribe offer");
                None
            }
        };
        let Some(sdp) = offer else {
            return;
        };
        let offered = offered_tracks(member, transport, &self.tracks);
        member.negotiation.needs_offer = false;
        member.negotiation.offer_outstanding = true;
        member.negotiation.ice_restart = false;
        self.dirty.insert(key);
        self.sync_ufrag(key);
        self.events.push_back(RouterEvent::SubscribeOffer {
            classroom: classroom.clone(),
            sdp,
            tracks: offered,
        });
    }
}

/// The tracks a subscriber's leg carries, by the mid of their transceiver.
fn offered_tracks(
    member: &Member,
    transport: &mut Transport,
    tracks: &HashMap<TrackId, PublishedTrack>,
) -> Vec<OfferedTrack> {
    let mut offered = Vec::new();
    for (track_id, down) in &member.downtracks {
        let Some(info) = tracks.get(track_id).map(|t| t.info.clone()) else {
            continue;
        };
        let mid = transport
            .pc
            .get_transceivers()
            .collect::<Vec<_>>()
            .into_iter()
            .find_map(|id| {
                let tr = transport.pc.rtp_transceiver(id)?;
                (tr.sender() == Some(down.sender)).then(|| tr.mid().clone())?
            });
        if let Some(mid) = mid {
            offered.push(OfferedTrack { mid, track: info });
        }
    }
    offered.sort_by(|a, b| a.mid.cmp(&b.mid));
    offered
}

/// Read, once a negotiation completed, the header extension ids, RED payload type and mid each
/// downtrack's sender writes (so the forwarding path does not ask `rtc` per packet).
fn refresh_extensions(member: &mut Member, transport: &mut Transport) {
    for down in member.downtracks.values_mut() {
        let Some((ids, red)) = transport.pc.rtp_sender(down.sender).map(|mut s| {
            let params = &s.get_parameters().rtp_parameters;
            (
                crate::extensions::ExtensionIds::from_parameters(&params.header_extensions),
                params
                    .codecs
                    .iter()
                    .find(|c| crate::codecs::is_red(&c.rtp_codec.mime_type))
                    .map(|c| c.payload_type),
            )
        }) else {
            continue;
        };
        down.red_payload_type = red;
        let mid = transport
            .pc
            .get_transceivers()
            .collect::<Vec<_>>()
            .into_iter()
            .find_map(|id| {
                let tr = transport.pc.rtp_transceiver(id)?;
                (tr.sender() == Some(down.sender)).then(|| tr.mid().clone())?
            })
            .unwrap_or_default();
        down.extensions = Some(crate::extensions::DownExtensions {
            ids,
            mid: bytes::Bytes::from(mid),
        });
    }
}

/// The hot path: one packet in, one write per subscriber out. The payload is reference-counted
/// (`bytes::Bytes`), so building each subscriber's packet here copies no media, except a VP8
/// payload on a downtrack whose picture ids a source switch shifted (its descriptor is
/// rewritten, or a RED payload whose blocks a subscriber numbers otherwise); `rtc` then
/// serialises and SRTP-encrypts the packet once per subscriber. Returns whether a subscriber is
/// waiting for a keyframe of this track.
#[allow(clippy::too_many_arguments)]
fn forward(
    now: Instant,
    packet: &rtc::rtp::Packet,
    outgoing: &Outgoing<'_>,
    keyframe: bool,
    track: &TrackId,
    extensions: &crate::extensions::ExtensionIds,
    subscribers: &[ClassroomId],
    members: &mut HashMap<ClassroomId, Member>,
    transports: &mut HashMap<TransportKey, Transport>,
    dirty: &mut HashSet<TransportKey>,
    metrics: &SfuMetrics,
) -> bool {
    let mut waiting = false;
    for subscriber in subscribers {
        let Some(member) = members.get_mut(subscriber) else {
            continue;
        };
        let Some(key) = member.subscribe else {
            continue;
        };
        let Some(down) = member.downtracks.get_mut(track) else {
            continue;
        };
        let Some(transport) = transports.get_mut(&key) else {
            continue;
        };
        if !transport.connected {
            continue;
        }
        match (outgoing, down.red_payload_type) {
            (Outgoing::Plain, _) => {
                waiting |= send(
                    now, packet, None, keyframe, extensions, down, transport, key, dirty, metrics,
                );
            }
            (
                Outgoing::Red {
                    payload, parsed, ..
                },
                Some(red_payload_type),
            ) => {
                // RED as RED: the blocks in the subscriber's numbering of Opus.
                let as_red = Some(Replace {
                    payload_type: red_payload_type,
                    sequence_number: packet.header.sequence_number,
                    timestamp: packet.header.timestamp,
                    payload: crate::red::with_payload_type(payload, parsed, down.payload_type),
                });
                waiting |= send(
                    now, packet, as_red, keyframe, extensions, down, transport, key, dirty, metrics,
                );
            }
            (Outgoing::Red { unwrapped, .. }, None) => {
                // Plain Opus: the recovered packets first, then the primary.
                for opus in unwrapped.iter() {
                    let plain = Some(Replace {
                        payload_type: down.payload_type,
                        sequence_number: opus.sequence_number,
                        timestamp: opus.timestamp,
                        payload: opus.payload.clone(),
                    });
                    waiting |= send(
                        now, packet, plain, keyframe, extensions, down, transport, key, dirty,
                        metrics,
                    );
                }
            }
        }
    }
    waiting
}

/// What a downtrack sends instead of a publisher packet's own payload type, numbering and
/// payload (before its own rewriting): RED forwarded, or a packet unwrapped from RED.
struct Replace {
    payload_type: u8,
    sequence_number: u16,
    timestamp: u32,
    payload: bytes::Bytes,
}

/// One packet to one downtrack: `packet` as it came, or with `replace`. Returns whether the
/// downtrack waits for a keyframe.
#[allow(clippy::too_many_arguments)]
fn send(
    now: Instant,
    packet: &rtc::rtp::Packet,
    replace: Option<Replace>,
    keyframe: bool,
    extensions: &crate::extensions::ExtensionIds,
    down: &mut DownTrack,
    transport: &mut Transport,
    key: TransportKey,
    dirty: &mut HashSet<TransportKey>,
    metrics: &SfuMetrics,
) -> bool {
    let header = &packet.header;
    let (payload_type, sequence_number, timestamp, payload) = match &replace {
        Some(r) => (r.payload_type, r.sequence_number, r.timestamp, &r.payload),
        None => (
            down.payload_type,
            header.sequence_number,
            header.timestamp,
            &packet.payload,
        ),
    };
    let Some(rewritten) = down.munger.rewrite(
        now,
        header.ssrc,
        sequence_number,
        timestamp,
        payload,
        keyframe,
    ) else {
        return down.munger.awaiting_keyframe();
    };
    let mut out = rtc::rtp::Packet {
        header: packet.header.clone(),
        payload: payload.clone(),
    };
    out.header.ssrc = down.ssrc;
    out.header.payload_type = payload_type;
    out.header.sequence_number = rewritten.sequence_number;
    out.header.timestamp = rewritten.timestamp;
    if let Some(payload) = rewritten.payload {
        out.payload = payload;
    }
    // Extension ids are negotiated per leg: the subscriber's leg gets its own.
    crate::extensions::rewrite(
        &mut out.header,
        &packet.header,
        extensions,
        down.extensions.as_ref(),
    );
    let bytes = out.payload.len() as u64;
    if let Some(mut sender) = transport.pc.rtp_sender(down.sender)
        && sender.write_rtp(now, out).is_ok()
    {
        down.packets_sent = down.packets_sent.wrapping_add(1);
        down.octets_sent = down.octets_sent.wrapping_add(bytes as u32);
        metrics.packets_forwarded.inc();
        metrics.bytes_forwarded.inc_by(bytes);
        dirty.insert(key);
    }
    false
}

mod slots;
mod viewer;

#[cfg(test)]
mod consent_tests;
#[cfg(test)]
mod downtrack_tests;
#[cfg(test)]
mod lipsync_tests;
#[cfg(test)]
mod red_tests;
#[cfg(test)]
mod slot_tests;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use crate::Role;
    use crate::testkit::Harness;

    /// `speakers` each send `packets` Opus-sized packets, one every 20 ms, as a microphone does.
    fn talk(h: &mut Harness, speakers: &[usize], packets: usize) {
        for _ in 0..packets {
            for &s in speakers {
                h.send_packet(s, Bytes::from_static(&[0xf8; 80]));
            }
            h.run_for(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_remote_classroom_hears_the_teacher_and_not_another_classroom_until_on_stage() {
        let mut h = Harness::new();
        let teacher = h.join(Role::Master);
        let a = h.join(Role::Remote);
        let b = h.join(Role::Remote);
        h.publish_audio(a);
        h.publish_audio(teacher);
        h.run_for(Duration::from_millis(500));
        talk(&mut h, &[teacher, a], 20);
        assert!(h.peers[a].received >= 10, "A hears the teacher");
        assert!(h.peers[teacher].received >= 10, "the teacher hears A");
        let b_before = h.peers[b].received;
        assert!(b_before >= 10, "B hears the teacher");

        let class = crate::ClassId::from("c_test");
        let now = h.now;
        let a_id = h.peers[a].id.clone();
        h.router.set_stage(now, &class, [a_id]);
        h.run_for(Duration::from_millis(500));
        let b_mid = h.peers[b].received;
        talk(&mut h, &[a], 20);
        assert!(h.peers[b].received >= b_mid + 10, "B hears A on stage");
    }

    #[test]
    fn a_subscriber_gets_the_audio_level_under_the_id_its_own_leg_negotiated() {
        let mut h = Harness::new();
        let teacher = h.join(Role::Master);
        let a = h.join(Role::Remote);
        h.publish_audio(teacher);
        h.run_for(Duration::from_millis(500));
        let published_id = h
            .audio_level_id(teacher)
            .expect("publisher negotiated audio level");
        assert_eq!(published_id, 1, "the client numbers audio level 1");
        for _ in 0..10 {
            h.send_packet_with_level(teacher, Bytes::from_static(&[0xf8; 80]), Some((true, 25)));
            h.run_for(Duration::from_millis(20));
        }
        let header = h.peers[a].last_received.clone().expect("A receives audio");
        // The id the subscriber's leg negotiated, as its browser reads it.
        let pc = h.peers[a].subscribe.as_mut().expect("subscribe leg");
        let receiver = pc
            .get_transceivers()
            .collect::<Vec<_>>()
            .into_iter()
            .find_map(|t| pc.rtp_transceiver(t).and_then(|t| t.receiver()))
            .expect("receiver");
        let ids = crate::extensions::ExtensionIds::from_parameters(
            &pc.rtp_receiver(receiver)
                .expect("receiver")
                .get_parameters()
                .rtp_parameters
                .header_extensions,
        );
        let subscribed_id = ids.audio_level.expect("subscriber negotiated audio level");
        assert_ne!(subscribed_id, published_id, "the test must need a rewrite");
        assert_eq!(
            crate::extensions::audio_level(&header, &ids),
            Some((true, 25)),
            "the level arrives under the subscriber's id"
        );
        assert!(
            header.get_extension(published_id).is_none() || ids.mid == Some(published_id),
            "nothing is left under the publisher's id but the subscriber's own mid"
        );
        let mid = pc
            .get_transceivers()
            .collect::<Vec<_>>()
            .into_iter()
            .find_map(|t| pc.rtp_transceiver(t).and_then(|t| t.mid().clone()))
            .expect("mid");
        assert_eq!(
            ids.mid.and_then(|m| header.get_extension(m)).as_deref(),
            Some(mid.as_bytes()),
            "the subscriber's own mid is written"
        );
    }

    #[test]
    fn the_class_learns_that_the_loud_classroom_speaks_and_never_the_silent_one() {
        let mut h = Harness::new();
        let teacher = h.join(Role::Master);
        let a = h.join(Role::Remote);
        h.publish_audio(teacher);
        h.publish_audio(a);
        h.run_for(Duration::from_millis(500));
        let start = h.now;
        let seen = h.events.len();
        let changes = |h: &Harness| -> Vec<_> {
            h.events[seen..]
                .iter()
                .filter_map(|e| match e {
                    super::RouterEvent::ActiveSpeaker { classroom, .. } => Some(classroom.clone()),
                    _ => None,
                })
                .collect()
        };
        let mut decided_after = None;
        for _ in 0..100 {
            h.send_packet_with_level(a, Bytes::from_static(&[0xf8; 80]), Some((true, 20)));
            h.send_packet_with_level(teacher, Bytes::from_static(&[0xf8; 80]), Some((false, 127)));
            h.run_for(Duration::from_millis(20));
            if decided_after.is_none() && !changes(&h).is_empty() {
                decided_after = Some(h.now - start);
            }
        }
        assert_eq!(
            changes(&h),
            vec![Some(h.peers[a].id.clone())],
            "A speaks, and the teacher never does"
        );
        let after = decided_after.expect("decided");
        assert!(after <= Duration::from_millis(500), "after {after:?}");
    }

    #[test]
    fn a_publisher_receives_transport_wide_feedback() {
        let mut h = Harness::new();
        let teacher = h.join(Role::Master);
        let _a = h.join(Role::Remote);
        h.publish_audio(teacher);
        h.run_for(Duration::from_millis(300));
        talk(&mut h, &[teacher], 25);
        assert!(
            h.peers[teacher].transport_feedback > 0,
            "the server answers the publisher with transport-wide feedback"
        );
    }

    #[test]
    fn a_track_the_classroom_stops_sending_ends_for_everyone() {
        let mut h = Harness::new();
        let teacher = h.join(Role::Master);
        let a = h.join(Role::Remote);
        h.publish_audio(teacher);
        h.run_for(Duration::from_millis(300));
        h.send_packet(teacher, Bytes::from_static(&[1; 50]));
        h.run_for(Duration::from_millis(300));
        let class = crate::ClassId::from("c_test");
        assert_eq!(h.router.tracks_of(&class).len(), 1);
        h.stop_publishing(teacher);
        assert!(
            h.router.tracks_of(&class).is_empty(),
            "the stopped track is unpublished"
        );
        assert!(
            h.events
                .iter()
                .any(|e| matches!(e, crate::RouterEvent::TrackUnpublished { .. }))
        );
        let _ = a;
    }

    /// Loss on either leg is repaired by NACK and retransmission: the classroom gets every packet,
    /// and a repaired packet is not asked for and sent again and again.
    #[test]
    fn lost_video_packets_are_retransmitted_on_both_legs() {
        let mut h = Harness::new();
        let teacher = h.join(Role::Master);
        let a = h.join(Role::Remote);
        h.publish_video(teacher);
        h.run_for(Duration::from_millis(300));
        h.send_packet(teacher, Bytes::from_static(&[0x10; 200]));
        h.run_for(Duration::from_millis(500));
        let start = h.peers[a].received_seqs.len();
        for n in 0..30 {
            if n == 10 {
                h.lose_next_to.push(a);
            }
            if n == 20 {
                h.lose_next_from.push(teacher);
            }
            h.send_packet(teacher, Bytes::from_static(&[0x10; 200]));
            h.run_for(Duration::from_millis(33));
        }
        h.run_for(Duration::from_millis(1500));
        assert!(
            h.lose_next_to.is_empty() && h.lose_next_from.is_empty(),
            "both losses happened"
        );
        let mut got: Vec<u16> = h.peers[a].received_seqs[start..].to_vec();
        got.sort_unstable();
        got.dedup();
        assert_eq!(
            got.len(),
            30,
            "every packet arrived, lost ones by retransmission: {got:?}"
        );
        let most = h.rtp_sent_to.values().max().copied().unwrap_or(0);
        assert!(most <= 2, "a packet went to a classroom {most} times");
        // The uplink loss was repaired: /metrics counts it recovered, and nothing lost.
        let m = h.metrics.clone();
        assert_eq!(
            m.packets_recovered
                .get_or_create(&[("kind", "video"), ("by", "nack")])
                .get(),
            1
        );
        h.stop_publishing(teacher);
        assert_eq!(m.packets_lost.get_or_create(&[("kind", "video")]).get(), 0);
    }

    #[test]
    fn an_audio_packet_lost_on_the_uplink_counts_as_lost_after_recovery() {
        let mut h = Harness::new();
        let teacher = h.join(Role::Master);
        let _a = h.join(Role::Remote);
        h.publish_audio(teacher);
        h.run_for(Duration::from_millis(300));
        for n in 0..30 {
            if n == 10 {
                h.lose_next_from.push(teacher);
            }
            h.send_packet(teacher, Bytes::from_static(&[0xf8; 80]));
            h.run_for(Duration::from_millis(20));
        }
        h.run_for(Duration::from_millis(500));
        h.stop_publishing(teacher);
        let m = &h.metrics;
        assert_eq!(m.packets_lost.get_or_create(&[("kind", "audio")]).get(), 1);
        assert_eq!(
            m.packets_recovered
                .get_or_create(&[("kind", "audio"), ("by", "nack")])
                .get(),
            0,
            "audio is not retransmitted"
        );
    }

    /// A loss burst eats the server's last handshake flight; the classroom repeats its own flight
    /// meanwhile. The server must still send its flight again, or the leg never connects.
    #[test]
    fn a_dtls_flight_lost_in_a_burst_is_sent_again() {
        let mut h = Harness::new();
        let teacher = h.join(Role::Master);
        h.publish_audio(teacher);
        h.run_for(Duration::from_millis(300));
        h.send_packet(teacher, Bytes::from_static(&[0xf8; 80]));
        h.run_for(Duration::from_millis(100));
        h.dtls_blackout_to = Some((1, Duration::from_millis(1500)));
        let a = h.join(Role::Remote);
        h.run_for(Duration::from_secs(6));
        assert!(h.dtls_blackout_to.is_none(), "the burst happened");
        let a_id = h.peers[a].id.clone();
        assert!(
            h.events.iter().any(|e| matches!(e,
                crate::RouterEvent::LegState { classroom, leg: crate::Leg::Subscribe, connected: true }
                    if *classroom == a_id)),
            "A's subscribe leg connected after the burst"
        );
        let before = h.peers[a].received;
        talk(&mut h, &[teacher], 10);
        assert!(h.peers[a].received >= before + 5, "A hears the teacher");
    }

    #[test]
    fn a_subscribe_ice_restart_brings_new_server_credentials_and_the_demux_follows() {
        let mut h = Harness::new();
        let teacher = h.join(Role::Master);
        let a = h.join(Role::Remote);
        h.publish_audio(a);
        h.publish_audio(teacher);
        h.run_for(Duration::from_millis(500));
        talk(&mut h, &[teacher, a], 20);
        assert!(h.peers[a].received >= 10, "A hears the teacher");
        let a_id = h.peers[a].id.clone();
        let last_ufrag = |h: &Harness| {
            h.events
                .iter()
                .rev()
                .find_map(|e| match e {
                    crate::RouterEvent::SubscribeOffer { classroom, sdp, .. }
                        if *classroom == a_id =>
                    {
                        sdp.lines()
                            .find_map(|l| l.trim().strip_prefix("a=ice-ufrag:"))
                            .map(str::to_owned)
                    }
                    _ => None,
                })
                .expect("a subscribe offer to A")
        };
        let before = last_ufrag(&h);
        let key = h.router.members[&a_id]
            .subscribe
            .expect("A's subscribe leg");
        assert_eq!(h.router.by_ufrag.get(&before), Some(&key));

        let now = h.now;
        h.router.restart_subscribe_ice(now, &a_id).expect("restart");
        h.run_for(Duration::from_millis(500));
        let after = last_ufrag(&h);
        assert_ne!(after, before, "the server's ufrag is new");
        assert_eq!(
            h.router.by_ufrag.get(&after),
            Some(&key),
            "found by the new ufrag"
        );
        assert!(
            !h.router.by_ufrag.contains_key(&before),
            "checks under the old ufrag are no longer taken"
        );
        let heard = h.peers[a].received;
        talk(&mut h, &[teacher, a], 20);
        assert!(
            h.peers[a].received >= heard + 10,
            "A hears the teacher over the restarted session"
        );
        // A viewer's leg is offered by the viewer (WHEP): it restarts by PATCH, not this way.
        let publish_only = h.join(Role::Viewer);
        let viewer = h.peers[publish_only].id.clone();
        assert!(h.router.restart_subscribe_ice(now, &viewer).is_err());
    }

    #[test]
    fn a_classroom_that_leaves_leaves_nothing_behind() {
        let mut h = Harness::new();
        let teacher = h.join(Role::Master);
        let a = h.join(Role::Remote);
        h.publish_audio(teacher);
        h.publish_audio(a);
        h.run_for(Duration::from_millis(300));
        h.send_packet(a, Bytes::from_static(&[1; 50]));
        h.send_packet(teacher, Bytes::from_static(&[1; 50]));
        h.run_for(Duration::from_millis(300));
        assert_eq!(h.router.transport_count(), 4);
        let now = h.now;
        let a_id = h.peers[a].id.clone();
        h.router.leave(now, &a_id);
        assert_eq!(h.router.transport_count(), 2, "A's legs are closed");
        assert!(h.router.tracks_of(&crate::ClassId::from("c_test")).len() == 1);
    }
}
