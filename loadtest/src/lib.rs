//! Tandem's load-test tool, and the WebRTC classroom client it shares with the end-to-end tests.

pub mod capacity;
pub mod cli;
pub mod client;
pub mod html;
pub mod lesson;
pub mod link;
pub mod loss;
pub mod measure;
pub mod media;
pub mod proc_stats;
pub mod recovery;
pub mod report;
pub mod runner;
pub mod server;
pub mod slo;
pub mod stats;
pub mod tcp_link;
pub mod whip;
