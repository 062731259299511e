//! One live class in memory: who is in it, whose hand is up, who is on stage.
//!
//! Each class sits behind its own mutex inside the hub's map. Operations on a class are short and
//! never wait on I/O while holding it (messages go out through bounded per-connection outboxes),
//! so a lock per class is simpler than an actor per class and classes never contend with each other.

use tandem_sfu::ClassroomId;
use tokio::sync::mpsc;

use crate::classboard::board::{Author, Board, BoardLimits};
use crate::classboard::poll::{PollLimits, Polls, Voter, VoterKind};
use crate::protocol::{ClassView, ParticipantRole, ParticipantView, ServerMessage};
use crate::store::ClassRecord;

pub type Outbox = mpsc::Sender<ServerMessage>;

pub struct Participant {
    pub view: ParticipantView,
    /// The resume key handed out in `welcome`.
    pub session: String,
    pub outbox: Option<Outbox>,
    pub attendance_id: i64,
    /// Bumped on every (re)connection, so a stale disconnect or grace timer does nothing.
    pub epoch: u64,
    /// A WHIP/WHEP session: no WebSocket to recover through, so a lost leg ends it.
    pub http_session: bool,
    /// What the media plane last said of each of its legs.
    pub legs: LegHealth,
}

/// The last reported state of a classroom's two media legs (`None`: never reported).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LegHealth {
    pub publish: Option<bool>,
    pub subscribe: Option<bool>,
    /// Bumped each time the classroom's media becomes lost, so a stale grace timer does nothing.
    pub lost_generation: u64,
}

impl LegHealth {
    pub fn set(&mut self, leg: tandem_sfu::Leg, connected: bool) {
        match leg {
            tandem_sfu::Leg::Publish => self.publish = Some(connected),
            tandem_sfu::Leg::Subscribe => self.subscribe = Some(connected),
        }
    }

    /// Every leg the classroom has had is lost (and it had at least one).
    pub fn all_lost(&self) -> bool {
        let legs = [self.publish, self.subscribe];
        legs.iter().any(Option::is_some) && !legs.contains(&Some(true))
    }
}

pub struct Class {
    pub record: ClassRecord,
    pub participants: Vec<Participant>,
    /// Raised hands, in the order they went up.
    pub hands: Vec<ClassroomId>,
    pub stage: Vec<ClassroomId>,
    /// The shared whiteboard; every op is in SQLite before it is committed here.
    pub board: Board,
    /// The class's polls and votes, also written through to SQLite.
    pub polls: Polls,
    /// Taken (asynchronously) by a board or poll change from its check to its broadcast, so the
    /// class's changes are stored and told one at a time, in one order, while the class lock is
    /// free for everything else during the database write (see `hub/classwork.rs`).
    pub write_turn: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Class {
    pub fn new(record: ClassRecord) -> Self {
        Self {
            record,
            participants: Vec::new(),
            hands: Vec::new(),
            stage: Vec::new(),
            board: Board::new(BoardLimits::default()),
            polls: Polls::new(PollLimits::default()),
            write_turn: Default::default(),
        }
    }

    /// A class brought back with the board and polls it had on record.
    pub fn restored(record: ClassRecord, board: Board, polls: Polls) -> Self {
        Self {
            board,
            polls,
            ..Self::new(record)
        }
    }

    pub fn view(&self) -> ClassView {
        ClassView {
            class_id: self.record.class_id.clone(),
            title: self.record.title.clone(),
            teacher_name: self.record.teacher_name.clone(),
        }
    }

    pub fn participant(&self, id: &ClassroomId) -> Option<&Participant> {
        self.participants
            .iter()
            .find(|p| &p.view.classroom_id == id)
    }

    pub fn participant_mut(&mut self, id: &ClassroomId) -> Option<&mut Participant> {
        self.participants
            .iter_mut()
            .find(|p| &p.view.classroom_id == id)
    }

    /// Everyone but pupils: what classroom screens list.
    pub fn views(&self) -> Vec<ParticipantView> {
        self.participants
            .iter()
            .filter(|p| p.view.role != ParticipantRole::Pupil)
            .map(|p| p.view.clone())
            .collect()
    }

    pub fn is_pupil(&self, id: &ClassroomId) -> bool {
        self.participant(id)
            .is_some_and(|p| p.view.role == ParticipantRole::Pupil)
    }

    /// Participants of `role` (e.g. pupils, who do not take a classroom's place).
    pub fn count_role(&self, role: ParticipantRole) -> usize {
        self.participants
            .iter()
            .filter(|p| p.view.role == role)
            .count()
    }

    /// Who `id` draws as: the teacher or a remote classroom (pupils and viewers do not draw).
    pub fn author(&self, id: &ClassroomId) -> Option<Author> {
        let p = self.participant(id)?;
        match p.view.role {
            ParticipantRole::Master => Some(Author::teacher(id.as_str())),
            ParticipantRole::Remote => Some(Author::classroom(id.as_str())),
            _ => None,
        }
    }

    /// Who `id` votes as: each remote classroom and each pupil is one voter; the teacher is not.
    pub fn voter(&self, id: &ClassroomId) -> Option<Voter> {
        let p = self.participant(id)?;
        let kind = match p.view.role {
            ParticipantRole::Remote => VoterKind::Classroom,
            ParticipantRole::Pupil => VoterKind::Pupil,
            _ => return None,
        };
        Some(Voter {
            voter_id: id.to_string(),
            display_name: p.view.name.clone(),
            kind,
        })
    }

    pub fn is_teacher(&self, id: &ClassroomId) -> bool {
        self.participant(id)
            .is_some_and(|p| p.view.role == ParticipantRole::Master)
    }

    /// Send to one classroom. A full outbox means the client stopped reading: drop it, it may resume.
    pub fn send_to(&mut self, id: &ClassroomId, message: ServerMessage) {
        if let Some(p) = self.participant_mut(id) {
            deliver(p, message);
        }
    }

    /// Send to every classroom screen (pupils' devices only get polls: see `broadcast_everyone`).
    pub fn broadcast(&mut self, message: &ServerMessage) {
        for p in self
            .participants
            .iter_mut()
            .filter(|p| p.view.role != ParticipantRole::Pupil)
        {
            deliver(p, message.clone());
        }
    }

    pub fn broadcast_except(&mut self, except: &ClassroomId, message: &ServerMessage) {
        for p in self
            .participants
            .iter_mut()
            .filter(|p| &p.view.classroom_id != except && p.view.role != ParticipantRole::Pupil)
        {
            deliver(p, message.clone());
        }
    }

    /// Send to everyone, pupils included (polls and their results).
    pub fn broadcast_everyone(&mut self, message: &ServerMessage) {
        for p in &mut self.participants {
            deliver(p, message.clone());
        }
    }

    pub fn send_to_teachers(&mut self, message: &ServerMessage) {
        for p in self
            .participants
            .iter_mut()
            .filter(|p| p.view.role == ParticipantRole::Master)
        {
            deliver(p, message.clone());
        }
    }

    /// Remove a classroom from hands and stage. Returns (hands changed, stage changed).
    pub fn forget(&mut self, id: &ClassroomId) -> (bool, bool) {
        let (hands, stage) = (self.hands.len(), self.stage.len());
        self.hands.retain(|h| h != id);
        self.stage.retain(|s| s != id);
        (self.hands.len() != hands, self.stage.len() != stage)
    }
}

fn deliver(p: &mut Participant, message: ServerMessage) {
    if let Some(outbox) = &p.outbox
        && outbox.try_send(message).is_err()
    {
        tracing::warn!(classroom = %p.view.classroom_id, "outbox full or closed; dropping connection");
        p.outbox = None;
    }
}
