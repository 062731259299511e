//! Identifiers shared by the media plane and the signaling layer.

use std::fmt;
use std::sync::Arc;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(Arc::from(s))
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(Arc::from(s))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// A class: one lesson, with its master classroom and its remote classrooms.
    ClassId
);
string_id!(
    /// One connected classroom (the master classroom, a remote classroom or a viewer).
    ClassroomId
);
string_id!(
    /// A track published by a classroom, as the server names it.
    TrackId
);

/// Which of a classroom's two WebRTC legs a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Leg {
    /// The classroom sends its media to the server (the classroom offers).
    Publish,
    /// The server sends the classroom what it should receive (the server offers).
    Subscribe,
}
