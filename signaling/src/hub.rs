//! The hub: every live class, and the domain operations the HTTP and WebSocket handlers call.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use parking_lot::Mutex;
use rand::distr::{Alphanumeric, SampleString};
use tandem_sfu::driver::SfuHandle;
use tandem_sfu::{ClassId, ClassroomId, Leg, RouterEvent};
use tokio::sync::mpsc;

use crate::class::{Class, LegHealth, Outbox};
use crate::config::Config;
use crate::protocol::{ErrorCode, ParticipantRole, ServerMessage};
use crate::store::{ClassRecord, Store};
use crate::token::{Claims, TokenError, TokenKey};

// The whiteboard, polls and class report: the hub operations behind them.
mod classwork;
// Idle classes ending by themselves, retention, last-seen and shutdown.
mod lifecycle;
// The steps of `join`.
mod join;

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn random_id(prefix: &str, len: usize) -> String {
    format!(
        "{prefix}{}",
        Alphanumeric
            .sample_string(&mut rand::rng(), len)
            .to_lowercase()
    )
}

/// A domain failure, with the stable code both HTTP and WebSocket clients see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HubError {
    pub code: ErrorCode,
    pub message: String,
}

impl HubError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<TokenError> for HubError {
    fn from(err: TokenError) -> Self {
        HubError::new(ErrorCode::Unauthorized, err.to_string())
    }
}

impl From<rusqlite::Error> for HubError {
    fn from(err: rusqlite::Error) -> Self {
        tracing::error!(%err, "database error");
        HubError::new(
            ErrorCode::Internal,
            "the class records could not be written",
        )
    }
}

/// What `POST /api/classes` answers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CreatedClass {
    pub class_id: String,
    pub title: String,
    pub teacher_name: String,
    pub teacher_token: String,
    pub invite_token: String,
    /// The pupil voting link's token: vote only, no media.
    pub pupil_token: String,
}

/// A classroom's place in a class, as its connection holds it.
#[derive(Debug, Clone)]
pub struct Seat {
    pub class_id: ClassId,
    pub classroom_id: ClassroomId,
    pub epoch: u64,
}

pub struct Hub {
    pub config: Config,
    pub store: Store,
    pub tokens: TokenKey,
    pub sfu: SfuHandle,
    classes: DashMap<String, Arc<Mutex<Class>>>,
    /// Which class a classroom is in, to route media-plane events.
    classroom_class: DashMap<ClassroomId, String>,
    /// Turns true when the server is shutting down (connections watch it).
    shutdown: tokio::sync::watch::Sender<bool>,
}

impl Hub {
    pub fn new(config: Config, store: Store, tokens: TokenKey, sfu: SfuHandle) -> Self {
        Self {
            config,
            store,
            tokens,
            sfu,
            classes: DashMap::new(),
            classroom_class: DashMap::new(),
            shutdown: tokio::sync::watch::Sender::new(false),
        }
    }

    /// (live classes, connected participants), for `/metrics`.
    pub fn census(&self) -> (usize, usize) {
        let mut participants = 0;
        for class in self.classes.iter() {
            participants += class
                .lock()
                .participants
                .iter()
                .filter(|p| p.view.connected && p.view.role != ParticipantRole::Pupil)
                .count();
        }
        (self.classes.len(), participants)
    }

    /// Connected pupils (vote-only devices) in all classes, for `/metrics`.
    pub fn pupil_census(&self) -> usize {
        self.classes
            .iter()
            .map(|class| {
                class
                    .lock()
                    .participants
                    .iter()
                    .filter(|p| p.view.connected && p.view.role == ParticipantRole::Pupil)
                    .count()
            })
            .sum()
    }

    pub async fn create_class(
        &self,
        title: &str,
        teacher_name: &str,
    ) -> Result<CreatedClass, HubError> {
        let title = checked_len("title", title, self.config.max_title_len)?;
        let teacher_name = self.checked_name("teacher_name", teacher_name)?;
        let now = unix_now();
        let record = ClassRecord {
            class_id: random_id("c_", 12),
            title,
            teacher_name,
            created_at: now,
            ended_at: None,
        };
        self.store.insert_class(&record).await?;
        let exp = now + self.config.token_ttl_hours * 3600;
        let sign = |role| {
            self.tokens.sign(&Claims {
                v: 1,
                role,
                class_id: record.class_id.clone(),
                exp,
                nonce: random_id("", 8),
            })
        };
        tracing::info!(class = %record.class_id, "class created");
        Ok(CreatedClass {
            teacher_token: sign(ParticipantRole::Master),
            invite_token: sign(ParticipantRole::Remote),
            pupil_token: sign(ParticipantRole::Pupil),
            class_id: record.class_id,
            title: record.title,
            teacher_name: record.teacher_name,
        })
    }

    /// Fresh invite and pupil tokens for a class, for a teacher who opened the class on another
    /// device and needs its links again. `None` unless `token` is that class's teacher token.
    pub fn links_for_teacher(&self, class_id: &str, token: &str) -> Option<(String, String)> {
        let claims = self.tokens.verify(token, class_id, unix_now()).ok()?;
        if claims.role != ParticipantRole::Master {
            return None;
        }
        let sign = |role| {
            self.tokens.sign(&Claims {
                v: 1,
                role,
                class_id: class_id.to_owned(),
                exp: claims.exp,
                nonce: random_id("", 8),
            })
        };
        Some((sign(ParticipantRole::Remote), sign(ParticipantRole::Pupil)))
    }

    /// The class a token opens, for a page that has just been handed a link.
    pub fn class_for_token(&self, class_id: &str, token: &str) -> Result<ClassRecord, HubError> {
        let record = self
            .store
            .class(class_id)?
            .ok_or_else(|| HubError::new(ErrorCode::NotFound, "no such class"))?;
        self.tokens.verify(token, class_id, unix_now())?;
        if record.ended_at.is_some() {
            return Err(HubError::new(ErrorCode::ClassEnded, "the class has ended"));
        }
        Ok(record)
    }

    fn checked_name(&self, field: &str, value: &str) -> Result<String, HubError> {
        checked_len(field, value, self.config.max_name_len)
    }

    fn live_class(&self, class_id: &str) -> Result<Arc<Mutex<Class>>, HubError> {
        if let Some(class) = self.classes.get(class_id) {
            return Ok(class.clone());
        }
        // After a restart the class is still on record: bring it back to life.
        let record = self
            .store
            .class(class_id)?
            .ok_or_else(|| HubError::new(ErrorCode::NotFound, "no such class"))?;
        if record.ended_at.is_some() {
            return Err(HubError::new(ErrorCode::ClassEnded, "the class has ended"));
        }
        // Its board and polls come back with it (read before taking the map's entry).
        let (board, polls) = self.load_classwork(class_id)?;
        Ok(self
            .classes
            .entry(class_id.to_owned())
            .or_insert_with(|| Arc::new(Mutex::new(Class::restored(record, board, polls))))
            .clone())
    }

    fn class_of(&self, seat: &Seat) -> Result<Arc<Mutex<Class>>, HubError> {
        self.classes
            .get(seat.class_id.as_str())
            .map(|c| c.clone())
            .ok_or_else(|| HubError::new(ErrorCode::ClassEnded, "the class has ended"))
    }

    /// A connection joins (or resumes its place in) the class its token opens. A resume with
    /// `keep_media` keeps the classroom's media legs as they are, if the media plane still has them.
    pub async fn join(
        &self,
        token: &str,
        name: &str,
        resume: Option<&str>,
        keep_media: bool,
        outbox: Outbox,
        as_viewer: bool,
    ) -> Result<Seat, HubError> {
        let claims = self.tokens.verify_any(token, unix_now())?;
        let name = self.checked_name("name", name)?;
        let class_arc = self.live_class(&claims.class_id)?;
        let role = join::joining_role(claims.role, as_viewer);
        let class_id = ClassId::from(claims.class_id.as_str());

        // Asked of the media plane before taking the class lock (never held across I/O).
        let tracks = self.published_tracks(&class_id, role).await;
        let keepable = self
            .media_to_keep(&class_arc, resume, keep_media, role)
            .await;

        let seated = {
            let mut class = class_arc.lock();
            let seated = self.take_seat(
                &mut class,
                &class_id,
                resume,
                keepable.as_ref(),
                (name, role),
                outbox,
            )?;
            self.greet(&mut class, &seated, tracks)?;
            seated
        };
        self.classroom_class
            .insert(seated.seat.classroom_id.clone(), claims.class_id);
        self.start_media(&seated, role)?;
        Ok(seated.seat)
    }

    /// The resume key of the class's teacher seat, when `token` is that class's teacher token
    /// and the seat's connection dropped and is still within its grace period: a teacher page
    /// that reloads (and so lost its resume key) comes back to its own seat, under its classroom
    /// id, and what it publishes again continues its old tracks for everyone (the media plane
    /// holds them for it). Not a WHIP/WHEP session's seat; not a seat still connected (a second
    /// device of the teacher joins beside it, as before).
    pub fn teacher_seat_to_retake(&self, token: &str) -> Option<String> {
        let claims = self.tokens.verify_any(token, unix_now()).ok()?;
        if claims.role != ParticipantRole::Master {
            return None;
        }
        let class = self.classes.get(&claims.class_id)?.clone();
        let class = class.lock();
        let seat = class.participants.iter().find(|p| {
            p.view.role == ParticipantRole::Master && !p.view.connected && !p.http_session
        })?;
        tracing::info!(class = %claims.class_id, classroom = %seat.view.classroom_id, "a teacher page takes back its seat");
        Some(seat.session.clone())
    }

    /// The connection of `seat` dropped without a `leave`: keep its place for the grace period.
    pub fn disconnected(self: &Arc<Self>, seat: &Seat) {
        let Ok(class_arc) = self.class_of(seat) else {
            return;
        };
        {
            let mut class = class_arc.lock();
            let Some(p) = class.participant_mut(&seat.classroom_id) else {
                return;
            };
            if p.epoch != seat.epoch {
                return;
            }
            p.view.connected = false;
            p.outbox = None;
            if !class.is_pupil(&seat.classroom_id) {
                class.broadcast(&ServerMessage::ParticipantState {
                    classroom_id: seat.classroom_id.clone(),
                    connected: false,
                });
            }
        }
        let seat = seat.clone();
        self.after_grace(move |hub| hub.leave_if_still_gone(&seat));
    }

    fn leave_if_still_gone(&self, seat: &Seat) {
        let Ok(class_arc) = self.class_of(seat) else {
            return;
        };
        let gone = class_arc
            .lock()
            .participant(&seat.classroom_id)
            .is_some_and(|p| p.epoch == seat.epoch && !p.view.connected);
        if gone {
            self.leave(seat);
        }
    }

    /// The seat is a WHIP/WHEP session: it has no WebSocket, so when its media leg is lost there
    /// is nothing to wait for and it leaves.
    pub fn mark_http_session(&self, seat: &Seat) {
        if let Ok(class_arc) = self.class_of(seat)
            && let Some(p) = class_arc.lock().participant_mut(&seat.classroom_id)
        {
            p.http_session = true;
        }
    }

    /// Whether the seat's classroom is still in its class.
    pub fn is_seated(&self, seat: &Seat) -> bool {
        self.classes
            .get(seat.class_id.as_str())
            .is_some_and(|c| c.lock().participant(&seat.classroom_id).is_some())
    }

    /// A classroom leaves for good.
    pub fn leave(&self, seat: &Seat) {
        let Ok(class_arc) = self.class_of(seat) else {
            return;
        };
        let mut class = class_arc.lock();
        let Some(index) = class
            .participants
            .iter()
            .position(|p| p.view.classroom_id == seat.classroom_id)
        else {
            return;
        };
        let gone = class.participants.remove(index);
        if let Err(err) = self.store.left(gone.attendance_id, unix_now()) {
            tracing::error!(%err, "attendance not recorded");
        }
        self.classroom_class.remove(&seat.classroom_id);
        if gone.view.role == ParticipantRole::Pupil {
            tracing::info!(class = %seat.class_id, pupil = %seat.classroom_id, "pupil left");
            return;
        }
        let _ = self.sfu.leave(seat.classroom_id.clone());
        let (hands, stage) = class.forget(&seat.classroom_id);
        class.broadcast(&ServerMessage::ParticipantLeft {
            classroom_id: seat.classroom_id.clone(),
        });
        if hands {
            let hands = class.hands.clone();
            class.broadcast(&ServerMessage::Hands { hands });
        }
        if stage {
            self.announce_stage(&mut class, &seat.class_id);
        }
        tracing::info!(class = %seat.class_id, classroom = %seat.classroom_id, "left");
    }

    pub fn raise_hand(&self, seat: &Seat) -> Result<(), HubError> {
        let class_arc = self.class_of(seat)?;
        let mut class = class_arc.lock();
        if !class.hands.contains(&seat.classroom_id) {
            class.hands.push(seat.classroom_id.clone());
            let hands = class.hands.clone();
            class.broadcast(&ServerMessage::Hands { hands });
        }
        Ok(())
    }

    pub fn lower_hand(&self, seat: &Seat, whose: Option<ClassroomId>) -> Result<(), HubError> {
        let class_arc = self.class_of(seat)?;
        let mut class = class_arc.lock();
        let whose = whose.unwrap_or_else(|| seat.classroom_id.clone());
        if whose != seat.classroom_id && !class.is_teacher(&seat.classroom_id) {
            return Err(forbidden());
        }
        if class.hands.contains(&whose) {
            class.hands.retain(|h| h != &whose);
            let hands = class.hands.clone();
            class.broadcast(&ServerMessage::Hands { hands });
        }
        Ok(())
    }

    pub fn set_on_stage(&self, seat: &Seat, whom: ClassroomId, on: bool) -> Result<(), HubError> {
        let class_arc = self.class_of(seat)?;
        let mut class = class_arc.lock();
        if !class.is_teacher(&seat.classroom_id) {
            return Err(forbidden());
        }
        if class.participant(&whom).is_none() || class.is_pupil(&whom) {
            return Err(HubError::new(
                ErrorCode::NotFound,
                "no such classroom in this class",
            ));
        }
        let changed = if on && !class.stage.contains(&whom) {
            class.stage.push(whom.clone());
            // Called up to answer: the hand has been seen.
            class.hands.retain(|h| h != &whom);
            let hands = class.hands.clone();
            class.broadcast(&ServerMessage::Hands { hands });
            true
        } else if !on && class.stage.contains(&whom) {
            class.stage.retain(|s| s != &whom);
            true
        } else {
            false
        };
        if changed {
            self.announce_stage(&mut class, &seat.class_id);
        }
        Ok(())
    }

    fn announce_stage(&self, class: &mut Class, class_id: &ClassId) {
        let _ = self.sfu.set_stage(class_id.clone(), class.stage.clone());
        let stage = class.stage.clone();
        class.broadcast(&ServerMessage::Stage { stage });
    }

    pub fn mute_request(&self, seat: &Seat, whom: ClassroomId) -> Result<(), HubError> {
        let class_arc = self.class_of(seat)?;
        let mut class = class_arc.lock();
        if !class.is_teacher(&seat.classroom_id) {
            return Err(forbidden());
        }
        if class.participant(&whom).is_none() {
            return Err(HubError::new(
                ErrorCode::NotFound,
                "no such classroom in this class",
            ));
        }
        class.send_to(&whom, ServerMessage::MuteRequested);
        Ok(())
    }

    pub fn end_class(&self, seat: &Seat) -> Result<(), HubError> {
        let class_arc = self.class_of(seat)?;
        let mut class = class_arc.lock();
        if !class.is_teacher(&seat.classroom_id) {
            return Err(forbidden());
        }
        self.store.end_class(seat.class_id.as_str(), unix_now())?;
        class.broadcast_everyone(&ServerMessage::ClassEnded);
        for p in class.participants.drain(..) {
            self.classroom_class.remove(&p.view.classroom_id);
            let _ = self.sfu.leave(p.view.classroom_id.clone());
            // Dropping the outbox ends that connection once it has sent `class_ended`.
        }
        drop(class);
        self.classes.remove(seat.class_id.as_str());
        tracing::info!(class = %seat.class_id, "class ended");
        Ok(())
    }

    /// Route what the media plane reports to the classrooms it concerns.
    pub fn on_router_event(&self, event: RouterEvent) {
        match event {
            RouterEvent::TrackPublished { class, track } => {
                self.with_class(class.as_str(), |c| {
                    c.broadcast(&ServerMessage::TrackPublished { track })
                });
            }
            RouterEvent::TrackUnpublished { class, track } => {
                self.with_class(class.as_str(), |c| {
                    c.broadcast(&ServerMessage::TrackUnpublished {
                        track_id: track.track_id,
                        classroom_id: track.classroom_id,
                    })
                });
            }
            RouterEvent::SubscribeOffer {
                classroom,
                sdp,
                tracks,
            } => {
                if let Some(class_id) = self.classroom_class.get(&classroom).map(|c| c.clone()) {
                    self.with_class(&class_id, |c| {
                        c.send_to(&classroom, ServerMessage::SubscribeOffer { sdp, tracks })
                    });
                }
            }
            RouterEvent::ActiveSpeaker { class, classroom } => {
                self.with_class(class.as_str(), |c| {
                    c.broadcast(&ServerMessage::Speaking {
                        classroom_id: classroom,
                    })
                });
            }
            // Handled by `on_leg_state`, which may need to start a timer.
            RouterEvent::LegState { .. } => {}
        }
    }

    /// A media leg connected or was lost (the media plane reports loss only when consent
    /// expired or ICE/DTLS failed, not for a passing disconnect).
    ///
    /// - A WHIP/WHEP session whose leg is lost leaves at once: nobody is there to recover it, and
    ///   an encoder killed without `DELETE` must not hold its place (or its tracks) forever.
    /// - A classroom whose legs are all lost is shown as such to everyone (`media_state`); its
    ///   page restarts ICE meanwhile. If no leg is back within the reconnect grace period, its
    ///   legs are closed and its tracks end for the others (`media_reset` tells the page to
    ///   build them afresh).
    pub fn on_leg_state(self: &Arc<Self>, classroom: ClassroomId, leg: Leg, connected: bool) {
        let Some(class_id) = self.classroom_class.get(&classroom).map(|c| c.clone()) else {
            return;
        };
        let Some(class_arc) = self.classes.get(&class_id).map(|c| c.clone()) else {
            return;
        };
        let mut class = class_arc.lock();
        let Some(p) = class.participant_mut(&classroom) else {
            return;
        };
        p.legs.set(leg, connected);
        let seat = Seat {
            class_id: ClassId::from(class_id.as_str()),
            classroom_id: classroom.clone(),
            epoch: p.epoch,
        };
        if p.http_session {
            if !connected {
                drop(class);
                tracing::info!(class = %class_id, classroom = %classroom, ?leg, "WHIP/WHEP session lost its media: removed");
                self.leave(&seat);
            }
            return;
        }
        let lost = p.legs.all_lost();
        if lost == p.view.media_lost {
            return;
        }
        p.view.media_lost = lost;
        if lost {
            p.legs.lost_generation += 1;
        }
        let generation = p.legs.lost_generation;
        let role = p.view.role;
        tracing::info!(class = %class_id, classroom = %classroom, lost, "media state");
        class.broadcast(&ServerMessage::MediaState {
            classroom_id: classroom.clone(),
            connected: !lost,
        });
        drop(class);
        if lost {
            self.after_grace(move |hub| hub.reset_media_if_still_lost(&seat, role, generation));
        }
    }

    /// The grace period ran out and the classroom's media is still lost: close its legs and end
    /// its tracks for everyone, and tell its page to start its media afresh.
    fn reset_media_if_still_lost(&self, seat: &Seat, role: ParticipantRole, generation: u64) {
        let Ok(class_arc) = self.class_of(seat) else {
            return;
        };
        let mut class = class_arc.lock();
        let Some(p) = class.participant_mut(&seat.classroom_id) else {
            return;
        };
        if !p.view.media_lost || p.legs.lost_generation != generation {
            return;
        }
        p.legs = LegHealth {
            lost_generation: generation,
            ..LegHealth::default()
        };
        let Some(sfu_role) = role.media() else {
            return;
        };
        // Its media is gone for good: its legs close and its tracks end for everyone (leaving
        // first, so the media plane does not hold them as it does for a rejoin), then it joins
        // afresh.
        let _ = self.sfu.leave(seat.classroom_id.clone());
        let _ = self
            .sfu
            .join(seat.class_id.clone(), seat.classroom_id.clone(), sfu_role);
        class.send_to(&seat.classroom_id, ServerMessage::MediaReset);
        tracing::info!(class = %seat.class_id, classroom = %seat.classroom_id, "media lost past the grace period: reset");
    }

    fn with_class(&self, class_id: &str, f: impl FnOnce(&mut Class)) {
        if let Some(class) = self.classes.get(class_id).map(|c| c.clone()) {
            f(&mut class.lock());
        }
    }

    /// Forward media-plane events to the hub until the media plane stops (its loop holds the
    /// sending end, so the task ends with it and lets go of the hub).
    pub fn spawn_router_events(
        self: &Arc<Self>,
        mut events: mpsc::UnboundedReceiver<RouterEvent>,
    ) -> tokio::task::JoinHandle<()> {
        let hub = Arc::clone(self);
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                match event {
                    RouterEvent::LegState {
                        classroom,
                        leg,
                        connected,
                    } => hub.on_leg_state(classroom, leg, connected),
                    other => hub.on_router_event(other),
                }
            }
        })
    }
}

/// `value` trimmed, if it is 1 to `max` characters.
fn checked_len(field: &str, value: &str, max: usize) -> Result<String, HubError> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > max {
        return Err(HubError::new(
            ErrorCode::BadMessage,
            format!("{field} must be 1 to {max} characters"),
        ));
    }
    Ok(value.to_owned())
}

fn forbidden() -> HubError {
    HubError::new(ErrorCode::Forbidden, "only the lead teacher may do that")
}
