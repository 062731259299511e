//! Tandem's load-test tool, and the WebRTC classroom client it shares with the end-to-end tests.

pub mod client;
