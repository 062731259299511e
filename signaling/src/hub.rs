//! The hub: every live class, and the domain operations the HTTP and WebSocket handlers call.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use parking_lot::Mutex;
use rand::distr::{Alphanumeric, SampleString};
use tandem_sfu::driver::SfuHandle;
use tandem_sfu::{ClassId, ClassroomId, Role, RouterEvent};
use tokio::sync::mpsc;

use crate::class::{Class, Outbox, Participant};
use crate::classboard::board::Catchup;
use crate::config::Config;
use crate::protocol::{
    ErrorCode, PROTOCOL_VERSION, ParticipantRole, ParticipantView, ServerMessage,
};
use crate::store::{ClassRecord, Store};
use crate::token::{Claims, TokenError, TokenKey, TokenRole};

// The whiteboard, polls and class report: the hub operations behind them.
mod classwork;

use classwork::poll_news;

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

    pub fn create_class(&self, title: &str, teacher_name: &str) -> Result<CreatedClass, HubError> {
        let title = self.checked_name("title", title)?;
        let teacher_name = self.checked_name("teacher_name", teacher_name)?;
        let now = unix_now();
        let record = ClassRecord {
            class_id: random_id("c_", 12),
            title,
            teacher_name,
            created_at: now,
            ended_at: None,
        };
        self.store.insert_class(&record)?;
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
            teacher_token: sign(TokenRole::Teacher),
            invite_token: sign(TokenRole::Classroom),
            pupil_token: sign(TokenRole::Pupil),
            class_id: record.class_id,
            title: record.title,
            teacher_name: record.teacher_name,
        })
    }

    /// Fresh invite and pupil tokens for a class, for a teacher who opened the class on another
    /// device and needs its links again. `None` unless `token` is that class's teacher token.
    pub fn links_for_teacher(&self, class_id: &str, token: &str) -> Option<(String, String)> {
        let claims = self.tokens.verify(token, class_id, unix_now()).ok()?;
        if claims.role != TokenRole::Teacher {
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
        Some((sign(TokenRole::Classroom), sign(TokenRole::Pupil)))
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
        let value = value.trim();
        if value.is_empty() || value.chars().count() > self.config.max_name_len {
            return Err(HubError::new(
                ErrorCode::BadMessage,
                format!(
                    "{field} must be 1 to {} characters",
                    self.config.max_name_len
                ),
            ));
        }
        Ok(value.to_owned())
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

    /// A connection joins (or resumes its place in) the class its token opens.
    pub async fn join(
        &self,
        token: &str,
        name: &str,
        resume: Option<&str>,
        outbox: Outbox,
        as_viewer: bool,
    ) -> Result<Seat, HubError> {
        let claims = self.tokens.verify_any(token, unix_now())?;
        let name = self.checked_name("name", name)?;
        let class_arc = self.live_class(&claims.class_id)?;
        let role = match claims.role {
            // A pupil link never becomes anything but a vote-only seat.
            TokenRole::Pupil => ParticipantRole::Pupil,
            _ if as_viewer => ParticipantRole::Viewer,
            TokenRole::Teacher => ParticipantRole::Teacher,
            TokenRole::Classroom => ParticipantRole::Classroom,
        };
        let class_id = ClassId::from(claims.class_id.as_str());

        // What is already published, asked before taking the class lock (never held across I/O).
        let tracks = if role == ParticipantRole::Pupil {
            Vec::new()
        } else {
            self.sfu.tracks(class_id.clone()).await.unwrap_or_default()
        };

        let (seat, resumed) = {
            let mut class = class_arc.lock();
            let resumable = resume.and_then(|key| {
                class
                    .participants
                    .iter()
                    .position(|p| p.session == key && p.view.role == role)
            });
            let (seat, resumed) = match resumable {
                Some(index) => {
                    let p = &mut class.participants[index];
                    p.epoch += 1;
                    p.outbox = Some(outbox);
                    p.view.connected = true;
                    (
                        Seat {
                            class_id: class_id.clone(),
                            classroom_id: p.view.classroom_id.clone(),
                            epoch: p.epoch,
                        },
                        true,
                    )
                }
                None => {
                    let pupils = class.count_role(ParticipantRole::Pupil);
                    if role == ParticipantRole::Pupil {
                        if pupils >= self.config.max_pupils_per_class {
                            return Err(HubError::new(
                                ErrorCode::Forbidden,
                                "this class has all the pupils it can take",
                            ));
                        }
                    } else if class.participants.len() - pupils
                        >= self.config.max_classrooms_per_class
                    {
                        return Err(HubError::new(ErrorCode::Forbidden, "this class is full"));
                    }
                    let classroom_id = ClassroomId::from(random_id("r_", 10));
                    let role_name = match role {
                        ParticipantRole::Teacher => "teacher",
                        ParticipantRole::Classroom => "classroom",
                        ParticipantRole::Viewer => "viewer",
                        ParticipantRole::Pupil => "pupil",
                    };
                    let attendance_id = self.store.joined(
                        &claims.class_id,
                        classroom_id.as_str(),
                        &name,
                        role_name,
                        unix_now(),
                    )?;
                    class.participants.push(Participant {
                        view: ParticipantView {
                            classroom_id: classroom_id.clone(),
                            name,
                            role,
                            connected: true,
                        },
                        session: random_id("s_", 24),
                        outbox: Some(outbox),
                        attendance_id,
                        epoch: 1,
                    });
                    (
                        Seat {
                            class_id: class_id.clone(),
                            classroom_id,
                            epoch: 1,
                        },
                        false,
                    )
                }
            };
            // `welcome` goes out under the same lock that seated the classroom, so it is the
            // first message the classroom gets; everything after it is news.
            let Some(me) = class.participant(&seat.classroom_id) else {
                return Err(HubError::new(
                    ErrorCode::Internal,
                    "seated and gone at once",
                ));
            };
            let welcome = ServerMessage::Welcome {
                v: PROTOCOL_VERSION,
                session: me.session.clone(),
                you: me.view.clone(),
                class: class.view(),
                participants: class.views(),
                stage: class.stage.clone(),
                hands: class.hands.clone(),
                tracks,
                ice_servers: crate::turn::ice_servers(
                    &self.config,
                    std::time::SystemTime::now(),
                    seat.classroom_id.as_str(),
                ),
            };
            let announce = if resumed {
                ServerMessage::ParticipantState {
                    classroom_id: seat.classroom_id.clone(),
                    connected: true,
                }
            } else {
                ServerMessage::ParticipantJoined {
                    participant: me.view.clone(),
                }
            };
            let pupil = role == ParticipantRole::Pupil;
            class.send_to(&seat.classroom_id, welcome);
            if !pupil {
                let catchup = ServerMessage::BoardCatchup {
                    catchup: Catchup::Snapshot {
                        snapshot: class.board.snapshot(),
                    },
                };
                class.send_to(&seat.classroom_id, catchup);
            }
            for news in poll_news(&class, &seat.classroom_id) {
                class.send_to(&seat.classroom_id, news);
            }
            // Pupils come and go by the dozen: classroom screens are not told.
            if !pupil {
                class.broadcast_except(&seat.classroom_id, &announce);
            }
            (seat, resumed)
        };
        self.classroom_class
            .insert(seat.classroom_id.clone(), claims.class_id.clone());

        // A (re)joining classroom starts its media afresh: its old legs died with its page.
        let sfu_role = match role {
            ParticipantRole::Teacher => Role::Master,
            ParticipantRole::Classroom => Role::Remote,
            ParticipantRole::Viewer => Role::Viewer,
            // Pupils vote and nothing else: no media plane.
            ParticipantRole::Pupil => {
                tracing::info!(class = %seat.class_id, pupil = %seat.classroom_id, resumed, "pupil joined");
                return Ok(seat);
            }
        };
        self.sfu
            .join(class_id, seat.classroom_id.clone(), sfu_role)
            .map_err(|_| HubError::new(ErrorCode::Internal, "the media plane is down"))?;
        tracing::info!(class = %seat.class_id, classroom = %seat.classroom_id, resumed, "joined");
        Ok(seat)
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
        let hub = Arc::clone(self);
        let seat = seat.clone();
        let grace = Duration::from_secs(self.config.reconnect_grace_secs);
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            hub.leave_if_still_gone(&seat);
        });
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
            RouterEvent::LegState { .. } => {}
        }
    }

    fn with_class(&self, class_id: &str, f: impl FnOnce(&mut Class)) {
        if let Some(class) = self.classes.get(class_id).map(|c| c.clone()) {
            f(&mut class.lock());
        }
    }

    /// Forward media-plane events to the hub until the media plane stops.
    pub fn spawn_router_events(self: &Arc<Self>, mut events: mpsc::UnboundedReceiver<RouterEvent>) {
        let hub = Arc::clone(self);
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                hub.on_router_event(event);
            }
        });
    }
}

fn forbidden() -> HubError {
    HubError::new(ErrorCode::Forbidden, "only the lead teacher may do that")
}
