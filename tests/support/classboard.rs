//! Helpers for the whiteboard and poll stories: a server with chosen limits, a class with its
//! three links, and the board as a classroom's screen shows it.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tandem_loadtest::client::Classroom;
use tandem_signaling::classboard::board::{BoardSnapshot, Catchup};
use tandem_signaling::protocol::{ErrorCode, ServerMessage};
use tandem_signaling::{Config, Server};

pub const WAIT: Duration = Duration::from_secs(10);

pub struct Running {
    pub server: Server,
    pub base: String,
}

impl Running {
    /// The server dies as in a crash (the records left as they are) but within the test: every
    /// task ends and its ports close, so the next server on the same data starts alone.
    pub async fn crash(self) {
        self.server.abort().await;
    }
}

/// A server on `data_dir` with the test settings, changed by `tweak`.
pub async fn start_on(data_dir: &Path, tweak: impl FnOnce(&mut Config)) -> Running {
    let mut config = Config::for_tests(data_dir.to_path_buf());
    tweak(&mut config);
    let server = tandem_signaling::start(config)
        .await
        .expect("server starts");
    Running {
        base: format!("http://{}", server.http_addr),
        server,
    }
}

#[path = "../common.rs"]
mod common;
/// A class's links: the same helper the other end-to-end tests use.
#[allow(unused_imports)] // Each test file takes what it needs.
pub use common::{NewClass, create_class};

/// Send a board op given as JSON (the `op` object of a `board_op` message).
pub fn draw(c: &Classroom, op: Value) {
    c.send_raw(json!({"type": "board_op", "op": op}).to_string())
        .expect("sent");
}

pub fn send(c: &Classroom, message: Value) {
    c.send_raw(message.to_string()).expect("sent");
}

/// Wait until this classroom has seen board op `seq`.
pub async fn wait_seq(c: &Classroom, seq: u64) {
    c.wait_for(
        WAIT,
        |m| matches!(m, ServerMessage::BoardOp { applied } if applied.seq >= seq),
    )
    .await
    .unwrap_or_else(|_| panic!("board op {seq} arrives"));
}

/// Wait for an error answering `in_reply_to`, and return its code.
pub async fn wait_error(c: &Classroom, in_reply_to: &str) -> ErrorCode {
    let m = c
        .wait_for(
            WAIT,
            |m| matches!(m, ServerMessage::Error { in_reply_to: Some(k), .. } if k == in_reply_to),
        )
        .await
        .unwrap_or_else(|_| panic!("an error answering {in_reply_to}"));
    match m {
        ServerMessage::Error { code, .. } => code,
        _ => unreachable!(),
    }
}

/// Wait until this classroom has been sent at least `n` errors (or `WAIT` has passed); the caller
/// then asserts which errors they are.
pub async fn wait_errors(c: &Classroom, n: usize) {
    let deadline = std::time::Instant::now() + WAIT;
    while errors(c).len() < n && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn errors(c: &Classroom) -> Vec<ErrorCode> {
    c.log()
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::Error { code, .. } => Some(code),
            _ => None,
        })
        .collect()
}

/// The board as this classroom's screen shows it: its catch-ups and every op since, applied
/// with the clients' reducer. Panics if an op arrives out of order or with a gap.
pub fn board_seen(c: &Classroom) -> BoardSnapshot {
    let mut board = BoardSnapshot::new();
    for m in c.log() {
        match m {
            ServerMessage::BoardCatchup {
                catchup: Catchup::Snapshot { snapshot },
            } => board = snapshot,
            ServerMessage::BoardCatchup {
                catchup: Catchup::Delta { ops },
            } => {
                for op in &ops {
                    if op.seq > board.seq {
                        board.apply(op).expect("a delta applies in order");
                    }
                }
            }
            ServerMessage::BoardOp { applied } if applied.seq > board.seq => {
                board.apply(&applied).expect("ops arrive in order, no gaps");
            }
            _ => {}
        }
    }
    board
}

/// Sequence numbers of the board ops this classroom received, in arrival order.
pub fn seqs_seen(c: &Classroom) -> Vec<u64> {
    c.log()
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::BoardOp { applied } => Some(applied.seq),
            _ => None,
        })
        .collect()
}

/// A stroke of `n` points streamed as begin, appends of 5 points, end.
pub fn stroke(c: &Classroom, id: &str, page: u32, x0: f64, n: usize) {
    draw(
        c,
        json!({"op":"stroke_begin","object_id":id,"page":page,"tool":"pen","color":"#E53935","width":4,"point":[x0, 100]}),
    );
    let points: Vec<[f64; 2]> = (1..n)
        .map(|i| [x0 + i as f64, 100.0 + i as f64 * 0.5])
        .collect();
    for chunk in points.chunks(5) {
        draw(
            c,
            json!({"op":"stroke_append","object_id":id,"points":chunk}),
        );
    }
    draw(c, json!({"op":"stroke_end","object_id":id}));
}
