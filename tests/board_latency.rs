//! How long a streamed stroke segment takes from one classroom to another on loopback:
//! `stroke_append` sent by the teacher → `board_op` received by a remote classroom, one at a
//! time, 300 times (stored in SQLite before it is broadcast). Prints p50/p95/max; asserts only
//! that every segment arrived. Run with `cargo test --test board_latency -- --nocapture`.

#[path = "support/classboard.rs"]
mod support;

use support::*;

const SEGMENTS: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stroke_segment_latency_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_on(dir.path(), |_| {}).await;
    let (teacher, remote) = drawing_pair(&s.base, "Latency").await;
    let took = segment_latencies(&teacher, &remote, SEGMENTS).await;
    println!(
        "stroke_append teacher → remote classroom over loopback ({SEGMENTS} segments): p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms",
        percentile(&took, 0.50).as_secs_f64() * 1000.0,
        percentile(&took, 0.95).as_secs_f64() * 1000.0,
        took[took.len() - 1].as_secs_f64() * 1000.0,
    );
    assert_eq!(took.len(), SEGMENTS);
}
