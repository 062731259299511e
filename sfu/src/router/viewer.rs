//! A receive-only viewer (WHEP) negotiates once, by its own offer, so the server can never
//! re-offer to it. It follows the master classroom anyway: its audio and video downtracks switch
//! source when the master's tracks come and go (the teacher rejoins, starts or stops a screen
//! share), on the new source's keyframe, with numbering that runs on ([`crate::downtrack`]).

use std::time::Instant;

use rtc::rtp_transceiver::rtp_sender::RTCRtpCodec;

use super::Router;
use crate::ids::{ClassId, ClassroomId, TrackId};
use crate::policy::Role;
use crate::track::{MediaKind, Source};

impl Router {
    /// What a viewer of `class` shows of `kind`: the master classroom's microphone; its screen
    /// share while it shares one (the slides are what a hall follows), else its camera.
    pub(super) fn viewer_source(
        &self,
        class: &ClassId,
        kind: MediaKind,
    ) -> Option<(TrackId, ClassroomId, MediaKind, RTCRtpCodec)> {
        self.tracks
            .iter()
            .filter(|(_, t)| &t.class == class && t.info.kind == kind)
            .filter(|(_, t)| t.slot == super::slots::Slot::Live)
            .filter(|(_, t)| {
                self.members
                    .get(&t.info.classroom_id)
                    .is_some_and(|m| m.role == Role::Master)
            })
            .filter_map(|(id, t)| {
                let preference = match t.info.source {
                    Source::Screen => 0,
                    Source::Camera | Source::Microphone => 1,
                };
                Some((
                    (preference, id.clone()),
                    (
                        id.clone(),
                        t.info.classroom_id.clone(),
                        t.info.kind,
                        t.codec.clone()?,
                    ),
                ))
            })
            .min_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, chosen)| chosen)
    }

    /// Point each of a viewer's downtracks at the source it should show now. A downtrack only
    /// takes a source of the codec it was negotiated with.
    pub(super) fn follow_master(&mut self, now: Instant, class: &ClassId, viewer: &ClassroomId) {
        for kind in [MediaKind::Audio, MediaKind::Video] {
            let Some((wanted, _, _, codec)) = self.viewer_source(class, kind) else {
                continue;
            };
            let Some(member) = self.members.get(viewer) else {
                return;
            };
            let current = member
                .downtracks
                .iter()
                .find_map(|(id, d)| (d.kind == kind).then(|| (id.clone(), d.mime.clone())));
            let Some((current, mime)) = current else {
                continue;
            };
            if current == wanted || !mime.eq_ignore_ascii_case(&codec.mime_type) {
                continue;
            }
            let Some(member) = self.members.get_mut(viewer) else {
                return;
            };
            let Some(mut down) = member.downtracks.remove(&current) else {
                continue;
            };
            down.munger.switch_source();
            member.downtracks.insert(wanted.clone(), down);
            if let Some(old) = self.tracks.get_mut(&current) {
                old.subscribers.retain(|s| s != viewer);
            }
            if let Some(new) = self.tracks.get_mut(&wanted) {
                new.subscribers.push(viewer.clone());
            }
            tracing::info!(class = %class, classroom = %viewer, from = %current, to = %wanted, "viewer follows a new source");
            self.request_keyframe(now, &wanted);
        }
    }
}
