//! The forwarding policy: the one place that decides who receives what.
//!
//! A dual-teacher lesson is asymmetric. Everybody must see and hear the lead teacher, the teacher must
//! see and hear every remote classroom, and remote classrooms hear each other only when the teacher
//! puts one "on stage" (answering a question for the whole lesson). Everything else in the SFU asks
//! [`receives`] instead of deciding on its own.

use std::collections::HashSet;

use crate::ids::ClassroomId;
use crate::track::MediaKind;

/// Where a classroom sits in the lesson.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The lead teacher's classroom.
    Master,
    /// A remote classroom run by an assistant teacher.
    Remote,
    /// A receive-only viewer (a hall display, an overflow room): sees what a remote classroom sees,
    /// publishes nothing.
    Viewer,
}

/// The classrooms the teacher has put on stage in one class.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stage {
    on_stage: HashSet<ClassroomId>,
}

impl Stage {
    pub fn contains(&self, classroom: &ClassroomId) -> bool {
        self.on_stage.contains(classroom)
    }

    pub fn replace(&mut self, classrooms: impl IntoIterator<Item = ClassroomId>) {
        self.on_stage = classrooms.into_iter().collect();
    }
}

/// Whether `subscriber` should receive the tracks that `publisher` publishes, in a class with `stage`.
pub fn receives(
    publisher: (&ClassroomId, Role),
    subscriber: (&ClassroomId, Role),
    stage: &Stage,
) -> bool {
    let (publisher_id, publisher_role) = publisher;
    let (subscriber_id, subscriber_role) = subscriber;
    if publisher_id == subscriber_id {
        // A classroom hears itself in the room; echoing it back is only an echo.
        return false;
    }
    match (publisher_role, subscriber_role) {
        (Role::Viewer, _) => false,
        (Role::Master, _) => true,
        (Role::Remote, Role::Master) => true,
        (Role::Remote, _) => stage.contains(publisher_id),
    }
}

/// Whether `subscriber` should receive one track of `kind` from `publisher`: the classroom rule
/// above, and video only while the subscriber has not switched to audio-only for a weak link.
pub fn receives_track(
    publisher: (&ClassroomId, Role),
    subscriber: (&ClassroomId, Role),
    stage: &Stage,
    kind: MediaKind,
    subscriber_wants_video: bool,
) -> bool {
    (kind == MediaKind::Audio || subscriber_wants_video) && receives(publisher, subscriber, stage)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ClassroomId {
        ClassroomId::from(s)
    }

    #[test]
    fn everyone_receives_the_master_classroom() {
        let stage = Stage::default();
        for role in [Role::Remote, Role::Viewer] {
            assert!(receives((&id("t"), Role::Master), (&id("a"), role), &stage));
        }
    }

    #[test]
    fn remote_classrooms_reach_the_master_but_each_other_only_on_stage() {
        let mut stage = Stage::default();
        let a = (&id("a"), Role::Remote);
        assert!(receives(a, (&id("t"), Role::Master), &stage));
        assert!(!receives(a, (&id("b"), Role::Remote), &stage));
        assert!(!receives(a, (&id("v"), Role::Viewer), &stage));
        stage.replace([id("a")]);
        assert!(receives(a, (&id("b"), Role::Remote), &stage));
        assert!(receives(a, (&id("v"), Role::Viewer), &stage));
        assert!(!receives(
            (&id("b"), Role::Remote),
            (&id("c"), Role::Remote),
            &stage
        ));
    }

    #[test]
    fn audio_only_classrooms_receive_no_video() {
        let stage = Stage::default();
        let (t, a) = ((&id("t"), Role::Master), (&id("a"), Role::Remote));
        assert!(receives_track(t, a, &stage, MediaKind::Audio, false));
        assert!(!receives_track(t, a, &stage, MediaKind::Video, false));
        assert!(receives_track(t, a, &stage, MediaKind::Video, true));
    }

    #[test]
    fn nobody_receives_themselves_or_a_viewer() {
        let stage = Stage::default();
        assert!(!receives(
            (&id("t"), Role::Master),
            (&id("t"), Role::Master),
            &stage
        ));
        assert!(!receives(
            (&id("v"), Role::Viewer),
            (&id("t"), Role::Master),
            &stage
        ));
    }
}
