//! A class report never stalls other classes: while the report of a 2000-stroke board is built
//! four times at once, another class's board ops still reach its classrooms quickly (p99 under
//! 50 ms). The report replays the whole board; it must do so off the async workers and without
//! holding the database's writer.
//!
//! Run with `cargo test --test report_stall -- --nocapture` to see the figures.

#[path = "support/classboard.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::*;
use tandem_signaling::classboard::board::{Author, Board, BoardLimits, BoardOp, Point, StrokeTool};
use tandem_signaling::classboard::store::{BoardStore, Durability, open};

const STROKES: usize = 2000;
const POINTS_PER_STROKE: usize = 40;
const SEGMENTS: usize = 200;
const REPORTS_AT_ONCE: usize = 4;

/// Write a board of `STROKES` finished strokes for `class_id` straight into the database (as the
/// server would have stored them over a long lesson).
fn long_lesson(db: &std::path::Path, class_id: &str) {
    let conn = open(db, Durability::Normal).expect("database");
    let mut board = Board::new(BoardLimits::default());
    let teacher = Author::teacher("r_teacher");
    let mut t = Instant::now();
    let mut store = |board: &mut Board, op: BoardOp| {
        t += Duration::from_millis(50); // inside the board's rate limit
        let applied = board.apply(&teacher, op, t).expect("a valid op");
        BoardStore::append_op(&conn, class_id, &applied).expect("stored");
    };
    conn.execute_batch("BEGIN").unwrap();
    store(&mut board, BoardOp::AddPage { page: None });
    for i in 0..STROKES {
        let id = format!("s{i}");
        let page = (i % 2) as u32;
        let y = (i / 2) as f64 % 700.0;
        store(
            &mut board,
            BoardOp::StrokeBegin {
                object_id: id.clone(),
                page,
                tool: StrokeTool::Pen,
                color: "#1e88e5".into(),
                width: 3.0,
                point: Point(0.0, y),
            },
        );
        let points = (1..POINTS_PER_STROKE)
            .map(|k| Point(k as f64 * 10.0, y + (k % 7) as f64))
            .collect();
        store(
            &mut board,
            BoardOp::StrokeAppend {
                object_id: id.clone(),
                page: None,
                points,
            },
        );
        store(
            &mut board,
            BoardOp::StrokeEnd {
                object_id: id,
                page: None,
            },
        );
    }
    conn.execute_batch("COMMIT").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_reports_of_a_long_board_do_not_stall_another_class() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_on(dir.path(), |_| {}).await;
    let big = create_class(&s.base, "A long lesson").await;
    long_lesson(&dir.path().join("tandem.db"), &big.class_id);

    let http = reqwest::Client::new();
    let report_url = format!("{}/api/classes/{}/report", s.base, big.class_id);
    // One report first: it is complete, and how long one takes alone.
    let alone = Instant::now();
    let page = http
        .get(&report_url)
        .bearer_auth(&big.teacher_token)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("Page 2"), "both pages are in the report");
    let alone = alone.elapsed();

    // Another class draws.
    let (teacher, remote) = drawing_pair(&s.base, "Meanwhile").await;

    // Four reports at once, again and again, while the other class draws.
    let stop = Arc::new(AtomicBool::new(false));
    let built = Arc::new(AtomicUsize::new(0));
    let mut builders = Vec::new();
    for _ in 0..REPORTS_AT_ONCE {
        let (http, url, token) = (http.clone(), report_url.clone(), big.teacher_token.clone());
        let (stop, built) = (stop.clone(), built.clone());
        builders.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let r = http.get(&url).bearer_auth(&token).send().await.unwrap();
                assert_eq!(r.status(), 200);
                r.bytes().await.unwrap();
                built.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Let the four get going.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let took = segment_latencies(&teacher, &remote, SEGMENTS).await;
    let during = built.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for b in builders {
        b.await.unwrap();
    }
    let pct = |p: f64| percentile(&took, p);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "report of {STROKES} strokes alone: {:.0} ms; {during} reports built while another class \
         drew {SEGMENTS} segments: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(alone),
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(took[took.len() - 1]),
    );
    assert!(
        during >= REPORTS_AT_ONCE,
        "only {during} reports were built during the measurement: not measured under load"
    );
    assert!(
        pct(0.99) < Duration::from_millis(50),
        "another class's board op p99 was {:.1} ms while reports were built",
        ms(pct(0.99))
    );
}
