//! The WebSocket protocol, version 1: one serde enum per direction. `docs/protocol.md` is its manual.

use serde::{Deserialize, Serialize};
use tandem_sfu::{ClassroomId, Leg, OfferedTrack, Role, Source, TrackId, TrackInfo};

use crate::classboard::board::{Applied, BoardLimits, BoardOp, Catchup, Point};
use crate::classboard::poll::{Poll, PollLimits, PollResults, PollSpec};

pub const PROTOCOL_VERSION: u32 = 1;

/// The ICE candidate as browsers hand it over (`RTCIceCandidateInit`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IceCandidate {
    pub candidate: String,
    #[serde(rename = "sdpMid", default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    #[serde(
        rename = "sdpMLineIndex",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sdp_mline_index: Option<u16>,
    #[serde(
        rename = "usernameFragment",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub username_fragment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeclaredTrack {
    pub track_id: String,
    pub source: Source,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    Join {
        v: u32,
        token: String,
        name: String,
        #[serde(default)]
        resume: Option<String>,
        /// With `resume`: this page still holds its media legs from before the drop; keep them
        /// (no renegotiation). Without it a resumed classroom's media starts afresh.
        #[serde(default)]
        keep_media: bool,
    },
    PublishOffer {
        sdp: String,
        #[serde(default)]
        tracks: Vec<DeclaredTrack>,
    },
    SubscribeAnswer {
        sdp: String,
    },
    IceCandidate {
        target: Leg,
        candidate: IceCandidate,
    },
    /// The subscribe leg lost its path: the server re-offers it with new ICE credentials.
    /// (The publish leg restarts by a `publish_offer` with new credentials.)
    IceRestart {
        leg: Leg,
    },
    RaiseHand,
    LowerHand {
        #[serde(default)]
        classroom_id: Option<ClassroomId>,
    },
    StageAdd {
        classroom_id: ClassroomId,
    },
    StageRemove {
        classroom_id: ClassroomId,
    },
    MuteRequest {
        classroom_id: ClassroomId,
    },
    EndClass,
    Ping,
    Leave,
    /// What this classroom wants to receive; `video: false` is the audio-only mode for weak links.
    SubscribePrefs {
        video: bool,
    },
    /// Change the whiteboard (see `classboard::board::BoardOp`).
    BoardOp {
        op: BoardOp,
    },
    /// Ask for what was missed since `since_seq` (a full snapshot without it).
    BoardSync {
        #[serde(default)]
        since_seq: Option<u64>,
    },
    /// Laser pointer position: relayed live, never stored.
    Laser {
        page: u32,
        point: Point,
    },
    LaserOff,
    PollStart {
        spec: PollSpec,
    },
    PollVote {
        poll_id: u64,
        choices: Vec<u32>,
    },
    PollClose {
        poll_id: u64,
    },
    PollPublish {
        poll_id: u64,
    },
}

impl ClientMessage {
    /// The wire name, echoed in `error.in_reply_to`.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientMessage::Join { .. } => "join",
            ClientMessage::PublishOffer { .. } => "publish_offer",
            ClientMessage::SubscribeAnswer { .. } => "subscribe_answer",
            ClientMessage::IceCandidate { .. } => "ice_candidate",
            ClientMessage::IceRestart { .. } => "ice_restart",
            ClientMessage::RaiseHand => "raise_hand",
            ClientMessage::LowerHand { .. } => "lower_hand",
            ClientMessage::StageAdd { .. } => "stage_add",
            ClientMessage::StageRemove { .. } => "stage_remove",
            ClientMessage::MuteRequest { .. } => "mute_request",
            ClientMessage::EndClass => "end_class",
            ClientMessage::Ping => "ping",
            ClientMessage::Leave => "leave",
            ClientMessage::SubscribePrefs { .. } => "subscribe_prefs",
            ClientMessage::BoardOp { .. } => "board_op",
            ClientMessage::BoardSync { .. } => "board_sync",
            ClientMessage::Laser { .. } => "laser",
            ClientMessage::LaserOff => "laser_off",
            ClientMessage::PollStart { .. } => "poll_start",
            ClientMessage::PollVote { .. } => "poll_vote",
            ClientMessage::PollClose { .. } => "poll_close",
            ClientMessage::PollPublish { .. } => "poll_publish",
        }
    }
}

/// Where a participant sits in the lesson: the media plane's [`Role`] in the same words, and the
/// pupil, who only votes. The one role type from the wire (and the signed links) to the router;
/// see `docs/architecture.md` ("One vocabulary").
///
/// On the wire, in links already handed out and in the attendance records, the master classroom
/// is `"teacher"` and a remote classroom `"classroom"` (protocol v1, which clients speak).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParticipantRole {
    /// The lead teacher's classroom.
    #[serde(rename = "teacher")]
    Master,
    /// A remote classroom run by an assistant teacher.
    #[serde(rename = "classroom")]
    Remote,
    /// Receives the master classroom only (a WHEP hall display or overflow room).
    Viewer,
    /// Votes from a pupil's own device (pupil voting link); no media, never in `participants`.
    Pupil,
}

impl ParticipantRole {
    /// Its role in the media plane; a pupil has none.
    pub fn media(self) -> Option<Role> {
        match self {
            ParticipantRole::Master => Some(Role::Master),
            ParticipantRole::Remote => Some(Role::Remote),
            ParticipantRole::Viewer => Some(Role::Viewer),
            ParticipantRole::Pupil => None,
        }
    }

    /// Its name on the wire, which the attendance records keep too.
    pub fn wire_name(self) -> &'static str {
        match self {
            ParticipantRole::Master => "teacher",
            ParticipantRole::Remote => "classroom",
            ParticipantRole::Viewer => "viewer",
            ParticipantRole::Pupil => "pupil",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParticipantView {
    pub classroom_id: ClassroomId,
    pub name: String,
    pub role: ParticipantRole,
    pub connected: bool,
    /// Every media leg of this classroom is lost (see `media_state`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub media_lost: bool,
}

/// The server's limits that shape what a client lets its user do (part of `welcome`). They are
/// the class's own board and poll limits, so they follow the server's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientLimits {
    /// Points in one stroke (`stroke_begin` + every `stroke_append`).
    pub max_points_per_stroke: usize,
    /// Characters in one text object on the board.
    pub max_text_chars: usize,
    /// Pages on the board.
    pub max_pages: usize,
    /// Options of a choice poll.
    pub max_poll_options: usize,
    /// Characters in a poll question.
    pub max_poll_question_chars: usize,
    /// Characters in one poll option.
    pub max_poll_option_chars: usize,
    /// Longest poll timer, in seconds.
    pub max_poll_timer_secs: u32,
}

impl ClientLimits {
    pub fn new(board: &BoardLimits, polls: &PollLimits) -> Self {
        Self {
            max_points_per_stroke: board.max_points_per_stroke,
            max_text_chars: board.max_text_chars,
            max_pages: board.max_pages,
            max_poll_options: polls.max_options,
            max_poll_question_chars: polls.max_question_chars,
            max_poll_option_chars: polls.max_option_chars,
            max_poll_timer_secs: polls.max_timer_secs,
        }
    }
}

/// The default limits: what a `welcome` without `limits` (an older server) means.
impl Default for ClientLimits {
    fn default() -> Self {
        Self::new(&BoardLimits::default(), &PollLimits::default())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassView {
    pub class_id: String,
    pub title: String,
    pub teacher_name: String,
}

/// Stable error codes; clients switch on these, never on the message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadMessage,
    TooLarge,
    Unauthorized,
    Forbidden,
    NotJoined,
    RateLimited,
    NotFound,
    ClassEnded,
    NegotiationFailed,
    Internal,
    /// A board or poll limit (points per stroke, objects per page, pages, polls per class).
    LimitExceeded,
    /// A well-formed message whose content cannot be used (bad colour, unknown option, …).
    Invalid,
    /// A vote for a poll that is closed (or whose timer ran out).
    PollClosed,
    /// `poll_start` while another poll is open.
    PollAlreadyOpen,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Welcome {
        v: u32,
        session: String,
        you: ParticipantView,
        class: ClassView,
        participants: Vec<ParticipantView>,
        stage: Vec<ClassroomId>,
        hands: Vec<ClassroomId>,
        tracks: Vec<TrackInfo>,
        /// A resume with `keep_media`: the media legs are as they were, nothing to renegotiate.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        media_kept: bool,
        /// The limits this class's board and polls enforce, so a client never offers what the
        /// server would refuse.
        #[serde(default)]
        limits: ClientLimits,
        /// TURN (and STUN) servers with credentials for this join, for `RTCConfiguration.iceServers`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ice_servers: Vec<crate::turn::IceServer>,
    },
    PublishAnswer {
        sdp: String,
    },
    SubscribeOffer {
        sdp: String,
        tracks: Vec<OfferedTrack>,
    },
    IceCandidate {
        target: Leg,
        candidate: IceCandidate,
    },
    ParticipantJoined {
        participant: ParticipantView,
    },
    ParticipantLeft {
        classroom_id: ClassroomId,
    },
    ParticipantState {
        classroom_id: ClassroomId,
        connected: bool,
    },
    /// A classroom's media legs are all lost (`connected: false`: its picture and sound have
    /// stopped; it may recover by ICE restart) or one is connected again (`true`).
    MediaState {
        classroom_id: ClassroomId,
        connected: bool,
    },
    /// To a classroom whose legs stayed lost past the reconnect grace period: the server closed
    /// them and ended its tracks; build both legs afresh (a new `publish_offer`; a new
    /// `subscribe_offer` follows).
    MediaReset,
    TrackPublished {
        track: TrackInfo,
    },
    TrackUnpublished {
        track_id: TrackId,
        classroom_id: ClassroomId,
    },
    /// The classroom whose microphone is loudest now (`null`: nobody speaks), decided by the
    /// media server from RFC 6464 audio levels; sent on change, a few times a second at most.
    Speaking {
        classroom_id: Option<ClassroomId>,
    },
    Hands {
        hands: Vec<ClassroomId>,
    },
    Stage {
        stage: Vec<ClassroomId>,
    },
    MuteRequested,
    ClassEnded,
    Pong,
    /// An accepted board op, to every classroom including its author (its acknowledgement).
    BoardOp {
        applied: Applied,
    },
    /// After `welcome` and in reply to `board_sync`.
    BoardCatchup {
        catchup: Catchup,
    },
    Laser {
        classroom_id: ClassroomId,
        page: u32,
        point: Point,
    },
    LaserOff {
        classroom_id: ClassroomId,
    },
    /// A poll started, closed or was published (to everyone, pupils included).
    Poll {
        poll: Poll,
    },
    /// To the voter: its vote is stored (also after joining, for the open poll).
    PollVoted {
        poll_id: u64,
        choices: Vec<u32>,
    },
    /// Live counts, to the teacher only.
    PollCounts {
        poll_id: u64,
        counts: Vec<u32>,
        voters_total: u32,
    },
    /// A published result, to everyone.
    PollResult {
        results: PollResults,
    },
    /// The server is shutting down (a restart or an upgrade): the connection closes right after
    /// with close code 1001. The class goes on; reconnect and `join` with `resume`.
    ServerGoingAway,
    Error {
        code: ErrorCode,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        in_reply_to: Option<String>,
    },
}

impl ServerMessage {
    pub fn error(code: ErrorCode, message: impl Into<String>, in_reply_to: Option<&str>) -> Self {
        ServerMessage::Error {
            code,
            message: message.into(),
            in_reply_to: in_reply_to.map(str::to_owned),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Rust names are the router's; the wire keeps protocol v1's strings, in both directions
    /// (the roles in links already handed out are read back).
    #[test]
    fn roles_keep_their_wire_names() {
        for (role, wire, media) in [
            (ParticipantRole::Master, "teacher", Some(Role::Master)),
            (ParticipantRole::Remote, "classroom", Some(Role::Remote)),
            (ParticipantRole::Viewer, "viewer", Some(Role::Viewer)),
            (ParticipantRole::Pupil, "pupil", None),
        ] {
            assert_eq!(serde_json::to_value(role).unwrap(), wire);
            assert_eq!(role.wire_name(), wire);
            assert_eq!(
                serde_json::from_value::<ParticipantRole>(wire.into()).unwrap(),
                role
            );
            assert_eq!(role.media(), media);
        }
    }

    #[test]
    fn parses_the_documented_join() {
        let msg: ClientMessage = serde_json::from_str(
            r#"{"type":"join","v":1,"token":"abc","name":"Grade 2, Hotan No. 3 School"}"#,
        )
        .unwrap();
        assert_eq!(msg.kind(), "join");
    }

    #[test]
    fn recovery_messages_are_as_documented() {
        let resume: ClientMessage = serde_json::from_str(
            r#"{"type":"join","v":1,"token":"abc","name":"Room A","resume":"s_1","keep_media":true}"#,
        )
        .unwrap();
        assert!(matches!(
            resume,
            ClientMessage::Join {
                keep_media: true,
                ..
            }
        ));
        let restart: ClientMessage =
            serde_json::from_str(r#"{"type":"ice_restart","leg":"subscribe"}"#).unwrap();
        assert_eq!(
            restart,
            ClientMessage::IceRestart {
                leg: Leg::Subscribe
            }
        );
        let lost = ServerMessage::MediaState {
            classroom_id: ClassroomId::from("r_2"),
            connected: false,
        };
        assert_eq!(
            serde_json::to_string(&lost).unwrap(),
            r#"{"type":"media_state","classroom_id":"r_2","connected":false}"#
        );
        assert_eq!(
            serde_json::to_string(&ServerMessage::MediaReset).unwrap(),
            r#"{"type":"media_reset"}"#
        );
        // Nobody speaking is an explicit `null`, as docs/protocol.md shows.
        assert_eq!(
            serde_json::to_string(&ServerMessage::Speaking {
                classroom_id: Some(ClassroomId::from("r_2"))
            })
            .unwrap(),
            r#"{"type":"speaking","classroom_id":"r_2"}"#
        );
        assert_eq!(
            serde_json::to_string(&ServerMessage::Speaking { classroom_id: None }).unwrap(),
            r#"{"type":"speaking","classroom_id":null}"#
        );
        // `media_lost` and `media_kept` are only on the wire when true (older clients never see them).
        let view = ParticipantView {
            classroom_id: ClassroomId::from("r_2"),
            name: "Room A".into(),
            role: ParticipantRole::Remote,
            connected: true,
            media_lost: false,
        };
        assert!(!serde_json::to_string(&view).unwrap().contains("media_lost"));
    }

    #[test]
    fn parses_a_trickled_candidate() {
        let msg: ClientMessage = serde_json::from_str(
            r#"{"type":"ice_candidate","target":"publish","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}}"#,
        )
        .unwrap();
        assert!(matches!(
            msg,
            ClientMessage::IceCandidate {
                target: Leg::Publish,
                ..
            }
        ));
    }

    #[test]
    fn rejects_unknown_types_and_fields() {
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"hack"}"#).is_err());
        assert!(
            serde_json::from_str::<ClientMessage>(
                r#"{"type":"stage_add","classroom_id":"r_1","x":1}"#
            )
            .is_err()
        );
    }

    #[test]
    fn board_and_poll_messages_have_the_documented_shapes() {
        let msg: ClientMessage = serde_json::from_str(
            r#"{"type":"board_op","op":{"op":"stroke_append","object_id":"r_2:1","points":[[104,123]]}}"#,
        )
        .unwrap();
        assert_eq!(msg.kind(), "board_op");
        let msg: ClientMessage =
            serde_json::from_str(r#"{"type":"poll_vote","poll_id":1,"choices":[0]}"#).unwrap();
        assert_eq!(msg.kind(), "poll_vote");
        let msg: ClientMessage = serde_json::from_str(
            r#"{"type":"poll_start","spec":{"question":"Ready?","kind":"yes_no"}}"#,
        )
        .unwrap();
        assert!(matches!(msg, ClientMessage::PollStart { spec } if spec.anonymous));
        let text = serde_json::to_string(&ServerMessage::BoardCatchup {
            catchup: Catchup::Delta { ops: Vec::new() },
        })
        .unwrap();
        assert_eq!(
            text,
            r#"{"type":"board_catchup","catchup":{"kind":"delta","ops":[]}}"#
        );
        let text =
            serde_json::to_string(&ServerMessage::error(ErrorCode::LimitExceeded, "x", None))
                .unwrap();
        assert!(text.contains(r#""code":"limit_exceeded""#));
    }

    #[test]
    fn errors_carry_stable_codes() {
        let text = serde_json::to_string(&ServerMessage::error(
            ErrorCode::Forbidden,
            "teacher only",
            Some("stage_add"),
        ))
        .unwrap();
        assert_eq!(
            text,
            r#"{"type":"error","code":"forbidden","message":"teacher only","in_reply_to":"stage_add"}"#
        );
    }
}
