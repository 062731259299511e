//! What a published track is, in classroom terms.

use crate::ids::{ClassroomId, TrackId};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Audio,
    Video,
}

/// What a track shows or carries; the browser client lays screens out by it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Microphone,
    Camera,
    /// A screen share: the teacher's slides, usually.
    Screen,
}

impl Source {
    /// The source a track has when its publisher did not say: its kind's usual one.
    pub fn default_for(kind: MediaKind) -> Self {
        match kind {
            MediaKind::Audio => Source::Microphone,
            MediaKind::Video => Source::Camera,
        }
    }
}

/// A published track as every classroom sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TrackInfo {
    pub track_id: TrackId,
    pub classroom_id: ClassroomId,
    pub kind: MediaKind,
    pub source: Source,
}
