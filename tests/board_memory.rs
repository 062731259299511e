//! A long lesson does not grow the server for ever: round after round the teacher fills the board
//! with long strokes and clears it. Once the undo history has filled, the server's resident memory
//! stays flat (cleared objects no undo can bring back are freed; the catch-up log is bounded).
//!
//! Measures the real `tandem` binary's RSS from `/proc`. Run with
//! `cargo test --test board_memory -- --nocapture` to see the figures.

use std::time::Duration;

use serde_json::json;
use tandem_loadtest::client::Classroom;
use tandem_signaling::process::read_proc;
use tandem_signaling::protocol::ServerMessage;

mod common;

const WAIT: Duration = Duration::from_secs(30);
const ROUNDS: usize = 5;
const STROKES_PER_ROUND: usize = 60;
const POINTS_PER_STROKE: usize = 5000;
/// Points per `stroke_append` (a message stays under the 64 KiB limit).
const POINTS_PER_MESSAGE: usize = 2500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rounds_of_drawing_and_clearing_keep_memory_flat() {
    let data = tempfile::tempdir().unwrap();
    let (child, base) = common::spawn_binary(
        data.path(),
        &[
            "--board-max-ops-per-sec",
            "2000",
            "--board-burst",
            "2000",
            "--ws-max-messages-per-sec",
            "2000",
            "--ws-burst",
            "2000",
        ],
        WAIT,
    )
    .await;
    let pid = child.id().expect("running");

    let created: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/api/classes"))
        .json(&json!({"title": "Memory", "teacher_name": "Ms Li"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let teacher = Classroom::join(&base, created["teacher_url"].as_str().unwrap(), "Ms Li")
        .await
        .unwrap();
    let send = |op: serde_json::Value| {
        teacher
            .send_raw(json!({"type": "board_op", "op": op}).to_string())
            .unwrap()
    };

    let mut seq = 0u64;
    let mut rss_mib = Vec::new();
    for round in 0..ROUNDS {
        for s in 0..STROKES_PER_ROUND {
            let id = format!("r{round}s{s}");
            let y = s as f64 * 7.0;
            send(
                json!({"op":"stroke_begin","object_id":id,"page":0,"tool":"pen","color":"#000000","width":3,"point":[0, y]}),
            );
            for chunk in 0..(POINTS_PER_STROKE - 1).div_ceil(POINTS_PER_MESSAGE) {
                let points: Vec<[f64; 2]> = (0..POINTS_PER_MESSAGE)
                    .map(|k| {
                        let i = chunk * POINTS_PER_MESSAGE + k;
                        [(i % 1000) as f64 + 0.25, y + (i / 1000) as f64]
                    })
                    .take(POINTS_PER_STROKE - 1 - chunk * POINTS_PER_MESSAGE)
                    .collect();
                send(json!({"op":"stroke_append","object_id":id,"points":points}));
                seq += 1;
            }
            send(json!({"op":"stroke_end","object_id":id}));
            seq += 2;
        }
        send(json!({"op":"clear_page","page":0}));
        seq += 1;
        let want = seq;
        teacher
            .wait_for(
                WAIT,
                |m| matches!(m, ServerMessage::BoardOp { applied } if applied.seq >= want),
            )
            .await
            .unwrap_or_else(|_| panic!("round {round} acknowledged"));
        let rss = read_proc(pid).unwrap().rss_kb as f64 / 1024.0;
        println!("after round {}: server RSS {rss:.1} MiB", round + 1);
        rss_mib.push(rss);
    }
    // The first rounds fill the undo history and the allocator's pools; after that, flat.
    let settled = rss_mib[1];
    let last = rss_mib[ROUNDS - 1];
    println!(
        "{ROUNDS} rounds of {STROKES_PER_ROUND} strokes × {POINTS_PER_STROKE} points, each cleared: \
         RSS {:.1} MiB after round 1, {settled:.1} after round 2, {last:.1} after round {ROUNDS}",
        rss_mib[0]
    );
    assert!(
        last - settled < 12.0,
        "the server grew {:.1} MiB over {} rounds of an empty board",
        last - settled,
        ROUNDS - 2
    );
}
