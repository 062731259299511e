//! Continuous downtracks for classrooms over the WebSocket: a published track is a *slot* in
//! classroom terms ("classroom X's camera / microphone / screen"), not the RTP stream that feeds
//! it now. When a classroom's publish leg is replaced (it rejoins: a page reload, a media reset
//! with the same seat) or its screen share stops and starts again, the new stream fills the same
//! slot: every subscriber keeps its downtrack (same SSRC, same m-line, no renegotiation) and its
//! [`crate::downtrack::Munger`] switches to the new source at its next keyframe, with numbering
//! that runs on. mediasoup keeps a Consumer across a Producer's replacement the same way in
//! spirit (its `SeqManager` bridges the gap); here the slot keeps its server track id too.
//!
//! A slot is in one of three states:
//!
//! - **live**: a stream of its classroom feeds it;
//! - **held**: its classroom's publish leg was replaced and the new one has not brought this
//!   source yet. Nobody is told anything: a reload is a second or two of frozen picture, not an
//!   ended track. It is held until the classroom's next publish offer (which names its sources)
//!   or [`crate::RouterConfig::slot_hold`] at most, then it becomes vacant;
//! - **vacant**: its source stopped (a screen share ended, or a rejoined classroom no longer sends
//!   it). Everybody is told `TrackUnpublished` so the tile hides, but subscribers keep its
//!   transceiver; when the classroom sends that source again the slot is live again under the
//!   same track id (`TrackPublished`), still without renegotiation.
//!
//! A slot ends for good (its downtracks removed, subscribers renegotiated) only when its
//! classroom leaves the class, its stage place is taken away, or the new stream's codec is not
//! the one its downtracks were negotiated with.

use std::time::Instant;

use rtc::rtp_transceiver::RTCRtpReceiverId;

use super::{Negotiation, Router, RouterEvent};
use crate::ids::{ClassroomId, TrackId};
use crate::keyframe::KeyframeThrottle;
use crate::policy::Role;
use crate::track::{MediaKind, Source};
use crate::transport::TransportKey;

/// Whether a published track is fed now ([`self`] module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Slot {
    Live,
    /// Its classroom's publish leg was replaced; vacant at `until` unless filled first.
    Held {
        until: Instant,
    },
    /// Its source stopped and everybody was told; filled again by the same source.
    Vacant,
}

impl Router {
    /// A member joins again (same seat, same class): its old legs close, but what it published
    /// stays as held slots for its new publish leg to fill, so its subscribers keep their
    /// downtracks. Its own receiving starts afresh on a new subscribe leg.
    pub(super) fn rejoin(&mut self, now: Instant, classroom: &ClassroomId, role: Role) {
        let Some(member) = self.members.get_mut(classroom) else {
            return;
        };
        member.role = role;
        member.declared_sources.clear();
        member.negotiation = Negotiation::default();
        member.receive_video = true;
        member.fixed = role == Role::Viewer;
        member.publish_only = false;
        let class = member.class.clone();
        let legs = [member.publish.take(), member.subscribe.take()];
        member.downtracks.clear();
        for track in self.tracks.values_mut() {
            track.subscribers.retain(|s| s != classroom);
        }
        for key in legs.into_iter().flatten() {
            self.close_transport(key);
        }
        let until = now + self.config.slot_hold;
        for track in self.tracks.values_mut() {
            if &track.info.classroom_id == classroom && track.slot == Slot::Live {
                track.slot = Slot::Held { until };
                track.refill = false;
            }
        }
        // An offer made for the old subscribe leg is void.
        self.events.retain(
            |e| !matches!(e, RouterEvent::SubscribeOffer { classroom: c, .. } if c == classroom),
        );
        tracing::info!(class = %class, classroom = %classroom, "rejoined: its tracks are held for its new publish leg");
        self.sync_class(now, &class);
    }

    /// The source of a slot stopped: it takes no packets and falls vacant, and everybody is told
    /// the track ended (once). Its subscribers keep their downtracks.
    pub(super) fn vacate(&mut self, track: &TrackId) {
        self.track_by_leg.retain(|_, t| t != track);
        let Some(slot) = self.tracks.get_mut(track) else {
            return;
        };
        slot.refill = false;
        if slot.slot == Slot::Vacant {
            return;
        }
        slot.slot = Slot::Vacant;
        self.metrics.count_loss(slot.info.kind, slot.loss.finish());
        if slot.info.kind == MediaKind::Audio
            && let Some(s) = self.speakers.get_mut(&slot.class)
        {
            s.forget(&slot.info.classroom_id);
        }
        tracing::info!(class = %slot.class, classroom = %slot.info.classroom_id, track = %track, "track vacant: its source stopped; subscribers keep its downtrack");
        self.events.push_back(RouterEvent::TrackUnpublished {
            class: slot.class.clone(),
            track: slot.info.clone(),
        });
    }

    /// Held slots of `classroom` whose source its latest publish offer does not send are vacant
    /// now (a page that reloaded without its screen share, or with its camera off).
    pub(super) fn vacate_undeclared(&mut self, classroom: &ClassroomId, declared: &[Source]) {
        if declared.is_empty() {
            // An offer that names no sources (a WHIP encoder) says nothing about the slots.
            return;
        }
        let gone: Vec<TrackId> = self
            .tracks
            .iter()
            .filter(|(_, t)| {
                &t.info.classroom_id == classroom
                    && matches!(t.slot, Slot::Held { .. })
                    && !declared.contains(&t.info.source)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for track in &gone {
            self.vacate(track);
        }
    }

    /// Held slots whose time ran out become vacant. Returns whether any did.
    pub(super) fn expire_held(&mut self, now: Instant) -> bool {
        let due: Vec<TrackId> = self
            .tracks
            .iter()
            .filter(|(_, t)| matches!(t.slot, Slot::Held { until } if until <= now))
            .map(|(id, _)| id.clone())
            .collect();
        let mut classes = Vec::new();
        for track in &due {
            if let Some(t) = self.tracks.get(track) {
                classes.push(t.class.clone());
            }
            self.vacate(track);
        }
        classes.dedup();
        for class in &classes {
            self.sync_class(now, class);
        }
        !due.is_empty()
    }

    /// The earliest instant a held slot runs out.
    pub(super) fn held_deadline(&self) -> Option<Instant> {
        self.tracks
            .values()
            .filter_map(|t| match t.slot {
                Slot::Held { until } => Some(until),
                _ => None,
            })
            .min()
    }

    /// A new stream of `classroom` opened: if a held or vacant slot of the same kind and source
    /// waits for one, the stream fills it (returns true). Its first packet then checks the codec
    /// and switches the slot's downtracks over ([`Router::refill_on_first_packet`]).
    pub(super) fn fill_slot(
        &mut self,
        key: TransportKey,
        classroom: &ClassroomId,
        rtc_track: &str,
        receiver: RTCRtpReceiverId,
        ssrc: u32,
        (kind, source): (MediaKind, Source),
    ) -> bool {
        let Some(track_id) = self
            .tracks
            .iter()
            .filter(|(_, t)| {
                &t.info.classroom_id == classroom
                    && t.info.kind == kind
                    && t.info.source == source
                    && t.slot != Slot::Live
            })
            .map(|(id, _)| id.clone())
            .min()
        else {
            return false;
        };
        let Some(slot) = self.tracks.get_mut(&track_id) else {
            return false;
        };
        slot.publish_leg = key;
        slot.receiver = receiver;
        slot.media_ssrc = ssrc;
        slot.refill = true;
        slot.keyframes = KeyframeThrottle::new(self.config.keyframe_request_interval);
        // The old stream's losses count now; the new one's numbering starts afresh.
        self.metrics.count_loss(slot.info.kind, slot.loss.finish());
        // One stream feeds a slot: a stream that filled it before this one and never sent a
        // packet (a race between two track events) must not feed it too.
        self.track_by_leg.retain(|_, t| t != &track_id);
        self.track_by_leg
            .insert((key, rtc_track.to_owned()), track_id.clone());
        tracing::info!(class = %slot.class, classroom = %classroom, track = %track_id, ssrc, "a new stream fills the slot");
        true
    }

    /// The first packet of a stream that filled a slot: its codec is known now. With the codec
    /// the slot's downtracks were negotiated for, each downtrack switches to the new source at its
    /// next keyframe (asked for at once) and the packet is forwarded (returns true). With another
    /// codec the downtracks cannot carry it: they are dropped and made anew (renegotiation).
    pub(super) fn refill_on_first_packet(
        &mut self,
        now: Instant,
        track_id: &TrackId,
        codec: rtc::rtp_transceiver::rtp_sender::RTCRtpCodec,
        extensions: crate::extensions::ExtensionIds,
        red: Option<super::RedSource>,
    ) -> bool {
        let Some(slot) = self.tracks.get_mut(track_id) else {
            return false;
        };
        let same = slot
            .codec
            .as_ref()
            .is_some_and(|c| crate::codecs::same_codec(c, &codec));
        // Announced again if it was vacant, or for the first time if its first stream never got
        // as far as a packet.
        let announce = slot.slot == Slot::Vacant || slot.codec.is_none();
        slot.payload_format = crate::downtrack::Codec::from_mime(&codec.mime_type);
        slot.codec = Some(codec);
        slot.extensions = extensions;
        slot.red = red;
        slot.refill = false;
        slot.slot = Slot::Live;
        let (class, info, subscribers) = (
            slot.class.clone(),
            slot.info.clone(),
            slot.subscribers.clone(),
        );
        if announce {
            tracing::info!(class = %class, classroom = %info.classroom_id, track = %track_id, "track published again in its slot");
            self.events.push_back(RouterEvent::TrackPublished {
                class: class.clone(),
                track: info,
            });
        }
        if same {
            for subscriber in &subscribers {
                if let Some(down) = self
                    .members
                    .get_mut(subscriber)
                    .and_then(|m| m.downtracks.get_mut(track_id))
                {
                    down.munger.switch_source();
                }
            }
        } else {
            tracing::info!(class = %class, track = %track_id, "the new stream has another codec: its downtracks are made anew");
            for subscriber in &subscribers {
                self.remove_downtrack(subscriber, track_id);
            }
        }
        // Viewers follow a slot that came back; subscribers that lacked it get it now.
        self.sync_class(now, &class);
        self.request_keyframe(now, track_id);
        same
    }
}
