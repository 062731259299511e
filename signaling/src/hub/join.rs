//! The steps of [`Hub::join`]: who the link makes the newcomer, whether it takes back an old place
//! (and its media), a new place otherwise, what it is told first, and its start in the media plane.

use parking_lot::Mutex;
use tandem_sfu::{ClassId, ClassroomId, TrackInfo};

use super::{Hub, HubError, Seat, random_id, unix_now};
use crate::class::{Class, LegHealth, Outbox, Participant};
use crate::classboard::board::Catchup;
use crate::hub::classwork::poll_news;
use crate::protocol::{
    ClientLimits, ErrorCode, PROTOCOL_VERSION, ParticipantRole, ParticipantView, ServerMessage,
};

/// How a connection came to be seated.
pub(super) struct Seated {
    pub seat: Seat,
    /// It took back its old place (`resume`).
    pub resumed: bool,
    /// It kept its media legs as they were.
    pub media_kept: bool,
}

/// What the newcomer is: what its link says, or a viewer if it asked to only watch. A pupil link
/// never becomes anything but a vote-only seat.
pub(super) fn joining_role(link: ParticipantRole, as_viewer: bool) -> ParticipantRole {
    match link {
        ParticipantRole::Pupil => ParticipantRole::Pupil,
        _ if as_viewer => ParticipantRole::Viewer,
        link => link,
    }
}

/// The participant whose resume key is `key`, if it joined with the same role.
fn resumable(class: &Class, key: Option<&str>, role: ParticipantRole) -> Option<usize> {
    let key = key?;
    class
        .participants
        .iter()
        .position(|p| p.session == key && p.view.role == role)
}

impl Hub {
    /// What is already published in the class (nothing, for a pupil, who receives no media).
    pub(super) async fn published_tracks(
        &self,
        class_id: &ClassId,
        role: ParticipantRole,
    ) -> Vec<TrackInfo> {
        if role == ParticipantRole::Pupil {
            return Vec::new();
        }
        self.sfu.tracks(class_id.clone()).await.unwrap_or_default()
    }

    /// A WebSocket blip: the page kept its legs and asks to keep them (`keep_media`). Possible when
    /// the media plane still has the classroom (its grace period has not run out): which one.
    pub(super) async fn media_to_keep(
        &self,
        class: &Mutex<Class>,
        resume: Option<&str>,
        keep_media: bool,
        role: ParticipantRole,
    ) -> Option<ClassroomId> {
        if !keep_media || role == ParticipantRole::Pupil {
            return None;
        }
        let seated = {
            let class = class.lock();
            let index = resumable(&class, resume, role)?;
            class.participants[index].view.classroom_id.clone()
        };
        self.sfu
            .has_member(seated.clone())
            .await
            .unwrap_or(false)
            .then_some(seated)
    }

    /// Seat the connection in its old place if `resume` names one, else in a new one.
    pub(super) fn take_seat(
        &self,
        class: &mut Class,
        class_id: &ClassId,
        resume: Option<&str>,
        keepable: Option<&ClassroomId>,
        (name, role): (String, ParticipantRole),
        outbox: Outbox,
    ) -> Result<Seated, HubError> {
        match resumable(class, resume, role) {
            Some(index) => Ok(reseat(
                &mut class.participants[index],
                class_id,
                keepable,
                outbox,
            )),
            None => Ok(Seated {
                seat: self.new_seat(class, class_id, name, role, outbox)?,
                resumed: false,
                media_kept: false,
            }),
        }
    }

    /// A new place in the class, within its limits, with its attendance on record.
    fn new_seat(
        &self,
        class: &mut Class,
        class_id: &ClassId,
        name: String,
        role: ParticipantRole,
        outbox: Outbox,
    ) -> Result<Seat, HubError> {
        let pupils = class.count_role(ParticipantRole::Pupil);
        if role == ParticipantRole::Pupil {
            if pupils >= self.config.max_pupils_per_class {
                return Err(HubError::new(
                    ErrorCode::Forbidden,
                    "this class has all the pupils it can take",
                ));
            }
        } else if class.participants.len() - pupils >= self.config.max_classrooms_per_class {
            return Err(HubError::new(ErrorCode::Forbidden, "this class is full"));
        }
        let classroom_id = ClassroomId::from(random_id("r_", 10));
        let attendance_id = self.store.joined(
            class_id.as_str(),
            classroom_id.as_str(),
            &name,
            role.wire_name(),
            unix_now(),
        )?;
        class.participants.push(Participant {
            view: ParticipantView {
                classroom_id: classroom_id.clone(),
                name,
                role,
                connected: true,
                media_lost: false,
            },
            session: random_id("s_", 24),
            outbox: Some(outbox),
            attendance_id,
            epoch: 1,
            http_session: false,
            legs: LegHealth::default(),
        });
        Ok(Seat {
            class_id: class_id.clone(),
            classroom_id,
            epoch: 1,
        })
    }

    /// Tell the newcomer where it is (`welcome`, then the board and the polls) and the others
    /// that it came or came back. Called under the same lock that seated it, so `welcome` is the
    /// first message it gets; everything after it is news.
    pub(super) fn greet(
        &self,
        class: &mut Class,
        seated: &Seated,
        tracks: Vec<TrackInfo>,
    ) -> Result<(), HubError> {
        let seat = &seated.seat;
        let Some(me) = class.participant(&seat.classroom_id) else {
            return Err(HubError::new(
                ErrorCode::Internal,
                "seated and gone at once",
            ));
        };
        let pupil = me.view.role == ParticipantRole::Pupil;
        let welcome = ServerMessage::Welcome {
            v: PROTOCOL_VERSION,
            session: me.session.clone(),
            you: me.view.clone(),
            class: class.view(),
            participants: class.views(),
            stage: class.stage.clone(),
            hands: class.hands.clone(),
            tracks,
            media_kept: seated.media_kept,
            limits: ClientLimits::new(class.board.limits(), class.polls.limits()),
            ice_servers: crate::turn::ice_servers(
                &self.config,
                std::time::SystemTime::now(),
                seat.classroom_id.as_str(),
            ),
        };
        let announce = if seated.resumed {
            ServerMessage::ParticipantState {
                classroom_id: seat.classroom_id.clone(),
                connected: true,
            }
        } else {
            ServerMessage::ParticipantJoined {
                participant: me.view.clone(),
            }
        };
        class.send_to(&seat.classroom_id, welcome);
        if !pupil {
            let catchup = ServerMessage::BoardCatchup {
                catchup: Catchup::Snapshot {
                    snapshot: class.board.snapshot(),
                },
            };
            class.send_to(&seat.classroom_id, catchup);
        }
        for news in poll_news(class, &seat.classroom_id) {
            class.send_to(&seat.classroom_id, news);
        }
        // Pupils come and go by the dozen: classroom screens are not told.
        if !pupil {
            class.broadcast_except(&seat.classroom_id, &announce);
        }
        Ok(())
    }

    /// The seated classroom's media: kept legs carry on (only an offer it missed while away comes
    /// again); otherwise it starts afresh, as its old legs died with its page. Pupils have none.
    pub(super) fn start_media(
        &self,
        seated: &Seated,
        role: ParticipantRole,
    ) -> Result<(), HubError> {
        let Seated {
            seat,
            resumed,
            media_kept,
        } = seated;
        if *media_kept {
            let _ = self.sfu.resend_offer(seat.classroom_id.clone());
            tracing::info!(class = %seat.class_id, classroom = %seat.classroom_id, "resumed with its media");
            return Ok(());
        }
        // A (re)joining classroom starts its media afresh: its old legs died with its page. Its
        // tracks are held by the media plane for its new publish leg (continuous downtracks).
        // Pupils vote and nothing else: no media plane.
        let Some(sfu_role) = role.media() else {
            tracing::info!(class = %seat.class_id, pupil = %seat.classroom_id, resumed, "pupil joined");
            return Ok(());
        };
        self.sfu
            .join(seat.class_id.clone(), seat.classroom_id.clone(), sfu_role)
            .map_err(|_| HubError::new(ErrorCode::Internal, "the media plane is down"))?;
        tracing::info!(class = %seat.class_id, classroom = %seat.classroom_id, resumed, "joined");
        Ok(())
    }
}

/// Back in its old place: a new epoch (so the old connection's disconnect does nothing) and the
/// new outbox. Its legs are kept only if it asked and they are alive (`keepable`); legs that were
/// lost (or already reset by the grace timer) are not worth keeping, and the page starts afresh.
fn reseat(
    p: &mut Participant,
    class_id: &ClassId,
    keepable: Option<&ClassroomId>,
    outbox: Outbox,
) -> Seated {
    p.epoch += 1;
    p.outbox = Some(outbox);
    p.view.connected = true;
    let media_kept = keepable == Some(&p.view.classroom_id) && !p.view.media_lost;
    if !media_kept {
        // Its legs start afresh: nothing is known of them yet, and a grace timer of the old ones
        // must not reset the new. `media_lost` stays as the others were told, until a new leg
        // connects.
        p.legs = LegHealth {
            lost_generation: p.legs.lost_generation + 1,
            ..LegHealth::default()
        };
    }
    Seated {
        seat: Seat {
            class_id: class_id.clone(),
            classroom_id: p.view.classroom_id.clone(),
            epoch: p.epoch,
        },
        resumed: true,
        media_kept,
    }
}
