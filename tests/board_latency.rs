//! How long a streamed stroke segment takes from one classroom to another on loopback:
//! `stroke_append` sent by the teacher → `board_op` received by a remote classroom, one at a
//! time, 300 times (stored in SQLite before it is broadcast). Prints p50/p95/max; asserts only
//! that every segment arrived. Run with `cargo test --test board_latency -- --nocapture`.

#[path = "support/classboard.rs"]
mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::*;
use tandem_loadtest::client::Classroom;
use tandem_signaling::classboard::board::BoardOp;
use tandem_signaling::protocol::ServerMessage;

const SEGMENTS: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stroke_segment_latency_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_on(dir.path(), |_| {}).await;
    let links = create_class(&s.base, "Latency").await;
    let teacher = Classroom::join(&s.base, &links.teacher_url, "Ms Li")
        .await
        .unwrap();
    let remote = Classroom::join(&s.base, &links.invite_url, "Hotan No. 3 School")
        .await
        .unwrap();
    draw(
        &teacher,
        json!({"op":"stroke_begin","object_id":"t:1","page":0,"tool":"pen","color":"#000000","width":3,"point":[0,0]}),
    );
    wait_seq(&remote, 1).await;

    let mut rx = remote.subscribe();
    let mut took = Vec::with_capacity(SEGMENTS);
    for i in 0..SEGMENTS {
        let x = (i + 1) as f64;
        let sent = Instant::now();
        draw(
            &teacher,
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
    let pct = |p: f64| took[((took.len() as f64 * p) as usize).min(took.len() - 1)];
    println!(
        "stroke_append teacher → remote classroom over loopback ({SEGMENTS} segments): p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms",
        pct(0.50).as_secs_f64() * 1000.0,
        pct(0.95).as_secs_f64() * 1000.0,
        took[took.len() - 1].as_secs_f64() * 1000.0,
    );
    assert_eq!(took.len(), SEGMENTS);
}
