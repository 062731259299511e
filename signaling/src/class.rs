//! One live class in memory: who is in it, whose hand is up, who is on stage.
//!
//! Each class sits behind its own mutex inside the hub's map. Operations on a class are short and
//! never wait on I/O while holding it (messages go out through bounded per-connection outboxes),
//! so a lock per class is simpler than an actor per class and classes never contend with each other.

use tandem_sfu::ClassroomId;
use tokio::sync::mpsc;

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
}

pub struct Class {
    pub record: ClassRecord,
    pub participants: Vec<Participant>,
    /// Raised hands, in the order they went up.
    pub hands: Vec<ClassroomId>,
    pub stage: Vec<ClassroomId>,
}

impl Class {
    pub fn new(record: ClassRecord) -> Self {
        Self {
            record,
            participants: Vec::new(),
            hands: Vec::new(),
            stage: Vec::new(),
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

    pub fn views(&self) -> Vec<ParticipantView> {
        self.participants.iter().map(|p| p.view.clone()).collect()
    }

    pub fn is_teacher(&self, id: &ClassroomId) -> bool {
        self.participant(id)
            .is_some_and(|p| p.view.role == ParticipantRole::Teacher)
    }

    /// Send to one classroom. A full outbox means the client stopped reading: drop it, it may resume.
    pub fn send_to(&mut self, id: &ClassroomId, message: ServerMessage) {
        if let Some(p) = self.participant_mut(id) {
            deliver(p, message);
        }
    }

    pub fn broadcast(&mut self, message: &ServerMessage) {
        for p in &mut self.participants {
            deliver(p, message.clone());
        }
    }

    pub fn broadcast_except(&mut self, except: &ClassroomId, message: &ServerMessage) {
        for p in self
            .participants
            .iter_mut()
            .filter(|p| &p.view.classroom_id != except)
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
