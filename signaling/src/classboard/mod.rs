//! Shared whiteboard, polls, their persistence and the class report (sans-IO; the WebSocket
//! layer relays laser-pointer positions live and never stores them).

pub mod board;
pub mod escape;
pub mod poll;
pub mod report;
pub mod store;
