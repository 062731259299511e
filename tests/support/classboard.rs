//! Helpers for the whiteboard and poll stories: a server with chosen limits, a class with its
//! three links, and the board as a classroom's screen shows it.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tandem_loadtest::client::Classroom;
use tandem_signaling::classboard::board::{BoardOp, BoardSnapshot, Catchup};
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
pub use common::{NewClass, create_class, metric};

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

/// A teacher and a remote classroom in a new class, the teacher's stroke `t:1` begun and seen by
/// the classroom: ready for [`segment_latencies`].
pub async fn drawing_pair(base: &str, title: &str) -> (Classroom, Classroom) {
    let links = create_class(base, title).await;
    let teacher = Classroom::join(base, &links.teacher_url, "Ms Li")
        .await
        .unwrap();
    let remote = Classroom::join(base, &links.invite_url, "Hotan No. 3 School")
        .await
        .unwrap();
    draw(
        &teacher,
        json!({"op":"stroke_begin","object_id":"t:1","page":0,"tool":"pen","color":"#000000","width":3,"point":[0,0]}),
    );
    wait_seq(&remote, 1).await;
    (teacher, remote)
}

/// How long each of `segments` stroke segments takes from `teacher` (`stroke_append` to stroke
/// `t:1`, see [`drawing_pair`]) to `remote` (its `board_op`), one at a time, sorted shortest
/// first.
pub async fn segment_latencies(
    teacher: &Classroom,
    remote: &Classroom,
    segments: usize,
) -> Vec<Duration> {
    let mut rx = remote.subscribe();
    let mut took = Vec::with_capacity(segments);
    for i in 0..segments {
        let x = (i + 1) as f64;
        let sent = std::time::Instant::now();
        draw(
            teacher,
            json!({"op":"stroke_append","object_id":"t:1","points":[[x, x / 2.0]]}),
        );
        loop {
            let m = tokio::time::timeout(WAIT, rx.recv())
                .await
                .expect("in time")
                .expect("open");
            if let ServerMessage::BoardOp { applied } = m
                && let BoardOp::StrokeAppend { points, .. } = &applied.op
                && points.first().is_some_and(|p| p.0 == x)
            {
                break;
            }
        }
        took.push(sent.elapsed());
        // 40 segments a second: a brisk pen, inside the per-connection and board rate limits.
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    took.sort();
    took
}

/// The `p` quantile (0 to 1) of `sorted` (not empty).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}
