//! Tests of the board: the reducer, the authority (permissions, limits, undo/redo, catch-up) and
//! the SVG export, plus the random-op generator the store tests reuse.

use super::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn teacher() -> Author {
    Author::teacher("r_1")
}
fn room_a() -> Author {
    Author::classroom("r_2")
}
fn room_b() -> Author {
    Author::classroom("r_3")
}

fn begin(id: &str, page: u32, x: f64, y: f64) -> BoardOp {
    BoardOp::StrokeBegin {
        object_id: id.into(),
        page,
        tool: StrokeTool::Pen,
        color: "#1E88E5".into(),
        width: 3.0,
        point: Point(x, y),
    }
}
fn append(id: &str, points: &[(f64, f64)]) -> BoardOp {
    BoardOp::StrokeAppend {
        object_id: id.into(),
        page: None,
        points: points.iter().map(|&(x, y)| Point(x, y)).collect(),
    }
}
fn end(id: &str) -> BoardOp {
    BoardOp::StrokeEnd {
        object_id: id.into(),
        page: None,
    }
}
fn rect(id: &str, page: u32) -> BoardOp {
    BoardOp::ShapeAdd {
        object_id: id.into(),
        page,
        shape: ShapeKind::Rect,
        color: "#000000".into(),
        width: 2.0,
        from: Point(10.0, 10.0),
        to: Point(110.0, 60.0),
        fill: Some("#ffeb3b80".into()),
    }
}
fn allow(target: DrawTarget, allowed: bool) -> BoardOp {
    BoardOp::SetDrawPermission { target, allowed }
}
fn ids_on(board: &Board, page: usize) -> Vec<String> {
    board.state().pages[page]
        .objects
        .iter()
        .map(|o| o.id.clone())
        .collect()
}
fn wire(a: &Applied) -> Applied {
    serde_json::from_str(&serde_json::to_string(a).unwrap()).unwrap()
}

/// A clock that moves 50 ms per op, so that tests stay under the rate limit.
struct Clock(Instant);
impl Clock {
    fn tick(&mut self) -> Instant {
        self.0 += Duration::from_millis(50);
        self.0
    }
}

#[test]
fn teacher_draws_a_stroke_that_grows_and_everyone_sees_the_same_line() {
    let mut board = Board::new(BoardLimits::default());
    let mut clock = Clock(Instant::now());
    let mut screen = BoardSnapshot::new();
    for op in [
        begin("t1", 0, 100.0, 100.0),
        append("t1", &[(110.0, 105.0), (120.0, 111.5)]),
        append("t1", &[(130.0, 120.0)]),
        end("t1"),
    ] {
        let applied = board.apply(&teacher(), op, clock.tick()).unwrap();
        screen.apply(&wire(&applied)).unwrap();
    }
    assert_eq!(screen, board.snapshot());
    let (_, stroke) = screen.object("t1").unwrap();
    match &stroke.shape {
        Shape::Stroke { points, color, .. } => {
            assert_eq!(points.len(), 4);
            assert_eq!(color, "#1e88e5", "colours are normalised to lower case");
        }
        other => panic!("not a stroke: {other:?}"),
    }
    assert_eq!(screen.seq, 4);
}

#[test]
fn seq_increases_by_one_per_accepted_op_and_rejections_use_none() {
    let mut board = Board::new(BoardLimits::default());
    let mut clock = Clock(Instant::now());
    let mut seqs = Vec::new();
    for i in 0..10 {
        let ok = board.apply(&teacher(), rect(&format!("r{i}"), 0), clock.tick());
        seqs.push(ok.unwrap().seq);
        let rejected = board.apply(&room_a(), rect(&format!("x{i}"), 0), clock.tick());
        assert_eq!(rejected.unwrap_err().code(), "forbidden");
    }
    assert_eq!(seqs, (1..=10).collect::<Vec<u64>>());
}

#[test]
fn classrooms_draw_only_when_the_teacher_allows_it() {
    let mut board = Board::new(BoardLimits::default());
    let mut clock = Clock(Instant::now());
    let err = board.apply(&room_a(), begin("a1", 0, 1.0, 1.0), clock.tick());
    assert_eq!(err.unwrap_err().code(), "forbidden");

    // Per classroom.
    let r2 = DrawTarget::Classroom("r_2".into());
    board
        .apply(&teacher(), allow(r2, true), clock.tick())
        .unwrap();
    board
        .apply(&room_a(), begin("a1", 0, 1.0, 1.0), clock.tick())
        .unwrap();
    let err = board.apply(&room_b(), begin("b1", 0, 1.0, 1.0), clock.tick());
    assert_eq!(err.unwrap_err().code(), "forbidden");

    // All, with one exception.
    board
        .apply(&teacher(), allow(DrawTarget::All, true), clock.tick())
        .unwrap();
    board
        .apply(&room_b(), begin("b1", 0, 1.0, 1.0), clock.tick())
        .unwrap();
    let r3 = DrawTarget::Classroom("r_3".into());
    board
        .apply(&teacher(), allow(r3, false), clock.tick())
        .unwrap();
    let err = board.apply(&room_b(), append("b1", &[(2.0, 2.0)]), clock.tick());
    assert_eq!(err.unwrap_err().code(), "forbidden", "revoked mid-stroke");
    board
        .apply(&room_a(), append("a1", &[(2.0, 2.0)]), clock.tick())
        .unwrap();

    // Revoking all removes every exception; the teacher may always draw.
    board
        .apply(&teacher(), allow(DrawTarget::All, false), clock.tick())
        .unwrap();
    assert!(board.state().permissions.classrooms.is_empty());
    assert!(!board.may_draw(&room_a()));
    assert!(board.may_draw(&teacher()));
    board
        .apply(&teacher(), begin("t1", 0, 5.0, 5.0), clock.tick())
        .unwrap();
}

#[test]
fn classrooms_may_not_run_the_board_or_touch_other_drawings() {
    let mut board = Board::new(BoardLimits::default());
    let mut clock = Clock(Instant::now());
    board
        .apply(&teacher(), allow(DrawTarget::All, true), clock.tick())
        .unwrap();
    board
        .apply(&teacher(), begin("t1", 0, 1.0, 1.0), clock.tick())
        .unwrap();
    board
        .apply(&room_a(), begin("a1", 0, 1.0, 1.0), clock.tick())
        .unwrap();
    let before = board.snapshot();
    for op in [
        BoardOp::ClearPage { page: 0 },
        BoardOp::AddPage { page: None },
        BoardOp::SetPage { page: 0 },
        allow(DrawTarget::All, true),
        append("t1", &[(3.0, 3.0)]),
        BoardOp::Erase {
            object_ids: vec!["t1".into()],
        },
    ] {
        let err = board.apply(&room_b(), op, clock.tick()).unwrap_err();
        assert_eq!(err.code(), "forbidden", "{err}");
    }
    // Nor may the teacher append to a classroom's stroke; but the teacher may erase it.
    let err = board.apply(&teacher(), append("a1", &[(3.0, 3.0)]), clock.tick());
    assert_eq!(err.unwrap_err().code(), "forbidden");
    assert_eq!(board.snapshot(), before);
    let erase = BoardOp::Erase {
        object_ids: vec!["a1".into()],
    };
    board.apply(&teacher(), erase, clock.tick()).unwrap();
    assert_eq!(ids_on(&board, 0), vec!["t1"]);
}

#[test]
fn invalid_ops_are_rejected_and_change_nothing() {
    let mut board = Board::new(BoardLimits::default());
    let mut clock = Clock(Instant::now());
    board
        .apply(&teacher(), begin("t1", 0, 1.0, 1.0), clock.tick())
        .unwrap();
    board.apply(&teacher(), end("t1"), clock.tick()).unwrap();
    let before = board.snapshot();
    let bad_colour = BoardOp::StrokeBegin {
        object_id: "c1".into(),
        page: 0,
        tool: StrokeTool::Pen,
        color: "red".into(),
        width: 2.0,
        point: Point(0.0, 0.0),
    };
    let bad_width = BoardOp::StrokeBegin {
        object_id: "c2".into(),
        page: 0,
        tool: StrokeTool::Highlighter,
        color: "#ff0000".into(),
        width: 500.0,
        point: Point(0.0, 0.0),
    };
    let cases: Vec<(BoardOp, &str)> = vec![
        (bad_colour, "invalid"),
        (bad_width, "invalid"),
        (begin("c3", 0, f64::NAN, 0.0), "invalid"),
        (begin("c4", 0, 20_000.0, 0.0), "invalid"),
        (begin("bad id!", 0, 0.0, 0.0), "invalid"),
        (begin("t1", 0, 0.0, 0.0), "invalid"),
        (begin("c5", 7, 0.0, 0.0), "not_found"),
        (append("t1", &[(2.0, 2.0)]), "invalid"),
        (append("nope", &[(2.0, 2.0)]), "not_found"),
        (
            BoardOp::Erase {
                object_ids: vec!["t1".into(), "nope".into()],
            },
            "not_found",
        ),
        (BoardOp::Erase { object_ids: vec![] }, "invalid"),
        (BoardOp::SetPage { page: 3 }, "not_found"),
        (BoardOp::ClearPage { page: 3 }, "not_found"),
        (
            BoardOp::TextAdd {
                object_id: "x1".into(),
                page: 0,
                at: Point(0.0, 0.0),
                text: "  ".into(),
                color: "#000000".into(),
                size: 24.0,
            },
            "invalid",
        ),
        (BoardOp::Redo { effect: None }, "not_found"),
    ];
    for (op, code) in cases {
        let err = board
            .apply(&teacher(), op.clone(), clock.tick())
            .unwrap_err();
        assert_eq!(err.code(), code, "{op:?}: {err}");
        assert_eq!(board.snapshot(), before, "{op:?} changed the board");
    }
    assert_eq!(board.seq(), 2);
}

#[test]
fn stroke_points_limit() {
    let limits = BoardLimits {
        max_points_per_stroke: 5,
        ..BoardLimits::default()
    };
    let mut board = Board::new(limits);
    let mut clock = Clock(Instant::now());
    board
        .apply(&teacher(), begin("t1", 0, 0.0, 0.0), clock.tick())
        .unwrap();
    board
        .apply(
            &teacher(),
            append("t1", &[(1.0, 1.0), (2.0, 2.0)]),
            clock.tick(),
        )
        .unwrap();
    let before = board.snapshot();
    let err = board.apply(
        &teacher(),
        append("t1", &[(3.0, 3.0), (4.0, 4.0), (5.0, 5.0)]),
        clock.tick(),
    );
    assert_eq!(err.unwrap_err().code(), "limit_points");
    assert_eq!(board.snapshot(), before);
    board
        .apply(
            &teacher(),
            append("t1", &[(3.0, 3.0), (4.0, 4.0)]),
            clock.tick(),
        )
        .unwrap();
}

#[test]
fn objects_per_page_limit_also_holds_for_undo() {
    let limits = BoardLimits {
        max_objects_per_page: 3,
        ..BoardLimits::default()
    };
    let mut board = Board::new(limits);
    let mut clock = Clock(Instant::now());
    for i in 0..3 {
        board
            .apply(&teacher(), rect(&format!("r{i}"), 0), clock.tick())
            .unwrap();
    }
    let before = board.snapshot();
    let err = board.apply(&teacher(), rect("r3", 0), clock.tick());
    assert_eq!(err.unwrap_err().code(), "limit_objects");
    assert_eq!(board.snapshot(), before);

    // The teacher clears the page, a classroom draws on it, and undoing the clear would
    // put three objects back next to the classroom's one: over the limit, nothing changes.
    board
        .apply(&teacher(), BoardOp::ClearPage { page: 0 }, clock.tick())
        .unwrap();
    board
        .apply(&teacher(), allow(DrawTarget::All, true), clock.tick())
        .unwrap();
    board.apply(&room_a(), rect("a1", 0), clock.tick()).unwrap();
    let before = board.snapshot();
    let err = board.apply(&teacher(), BoardOp::Undo { effect: None }, clock.tick());
    assert_eq!(err.unwrap_err().code(), "limit_objects");
    assert_eq!(board.snapshot(), before);
    // Once the classroom takes its drawing back, the undo goes through.
    board
        .apply(&room_a(), BoardOp::Undo { effect: None }, clock.tick())
        .unwrap();
    board
        .apply(&teacher(), BoardOp::Undo { effect: None }, clock.tick())
        .unwrap();
    assert_eq!(ids_on(&board, 0), vec!["r0", "r1", "r2"]);
}

#[test]
fn pages_limit_and_page_switch() {
    let limits = BoardLimits {
        max_pages: 3,
        ..BoardLimits::default()
    };
    let mut board = Board::new(limits);
    let mut clock = Clock(Instant::now());
    for expected in 1..3 {
        let a = board
            .apply(&teacher(), BoardOp::AddPage { page: None }, clock.tick())
            .unwrap();
        assert_eq!(
            a.op,
            BoardOp::AddPage {
                page: Some(expected)
            }
        );
    }
    let before = board.snapshot();
    let err = board.apply(&teacher(), BoardOp::AddPage { page: None }, clock.tick());
    assert_eq!(err.unwrap_err().code(), "limit_pages");
    assert_eq!(board.snapshot(), before);
    board
        .apply(&teacher(), BoardOp::SetPage { page: 2 }, clock.tick())
        .unwrap();
    assert_eq!(board.current_page(), 2);
}

#[test]
fn rate_limit_is_a_token_bucket_per_client() {
    let limits = BoardLimits {
        max_ops_per_sec_per_client: 10,
        burst_ops_per_client: 20,
        ..BoardLimits::default()
    };
    let mut board = Board::new(limits);
    let t0 = Instant::now();
    board
        .apply(&teacher(), begin("t1", 0, 0.0, 0.0), t0)
        .unwrap();
    for i in 1..20 {
        board
            .apply(&teacher(), append("t1", &[(i as f64, 0.0)]), t0)
            .unwrap();
    }
    let before = board.snapshot();
    let err = board.apply(&teacher(), append("t1", &[(99.0, 0.0)]), t0);
    assert_eq!(err.unwrap_err().code(), "rate_limited");
    assert_eq!(board.snapshot(), before);
    // Another client has its own bucket: its op is judged on its merits.
    let err = board.apply(&room_a(), begin("a1", 0, 0.0, 0.0), t0);
    assert_eq!(err.unwrap_err().code(), "forbidden");
    // 100 ms later one token is back, not two.
    let t1 = t0 + Duration::from_millis(100);
    board
        .apply(&teacher(), append("t1", &[(21.0, 0.0)]), t1)
        .unwrap();
    let err = board.apply(&teacher(), append("t1", &[(22.0, 0.0)]), t1);
    assert_eq!(err.unwrap_err().code(), "rate_limited");
}

#[test]
fn another_client_is_not_slowed_by_a_flooding_one() {
    let limits = BoardLimits {
        max_ops_per_sec_per_client: 1,
        burst_ops_per_client: 2,
        ..BoardLimits::default()
    };
    let mut board = Board::new(limits);
    let t0 = Instant::now();
    board
        .apply(&teacher(), allow(DrawTarget::All, true), t0)
        .unwrap();
    board
        .apply(&teacher(), begin("t1", 0, 0.0, 0.0), t0)
        .unwrap();
    assert_eq!(
        board.apply(&teacher(), end("t1"), t0).unwrap_err().code(),
        "rate_limited"
    );
    board
        .apply(&room_a(), begin("a1", 0, 0.0, 0.0), t0)
        .unwrap();
}

#[test]
fn the_catch_up_log_is_bounded_by_points_too() {
    let limits = BoardLimits {
        log_max_points: 1000,
        max_ops_per_sec_per_client: 10_000,
        burst_ops_per_client: 10_000,
        ..BoardLimits::default()
    };
    let mut board = Board::new(limits);
    let mut clock = Clock(Instant::now());
    let long: Vec<(f64, f64)> = (0..400).map(|i| (i as f64, 1.0)).collect();
    for i in 0..10 {
        let id = format!("s{i}");
        for op in [begin(&id, 0, 0.0, 0.0), append(&id, &long), end(&id)] {
            board.apply(&teacher(), op, clock.tick()).unwrap();
        }
    }
    assert!(board.log_points <= 1000, "{}", board.log_points);
    assert!(board.log.len() < 30, "old ops left the log");
    // A client far behind gets a snapshot; one just behind still gets the delta.
    assert!(matches!(board.ops_since(1), Catchup::Snapshot { .. }));
    let seq = board.seq();
    assert!(matches!(board.ops_since(seq - 2), Catchup::Delta { ops } if ops.len() == 2));
}

#[test]
fn cleared_and_erased_objects_are_freed_once_no_undo_can_bring_them_back() {
    let limits = BoardLimits {
        max_undo_depth: 3,
        ..BoardLimits::default()
    };
    let mut board = Board::new(limits);
    let mut clock = Clock(Instant::now());
    // Ten rounds of a full page that the teacher clears.
    for round in 0..10 {
        for i in 0..20 {
            let id = format!("t{round}_{i}");
            for op in [
                begin(&id, 0, 0.0, 0.0),
                append(&id, &[(5.0, 5.0)]),
                end(&id),
            ] {
                board.apply(&teacher(), op, clock.tick()).unwrap();
            }
        }
        board
            .apply(&teacher(), BoardOp::ClearPage { page: 0 }, clock.tick())
            .unwrap();
    }
    // Only the clear still within the teacher's 3-deep history can come back.
    assert_eq!(board.buried_objects(), 20);
    // And it does come back.
    board
        .apply(&teacher(), BoardOp::Undo { effect: None }, clock.tick())
        .unwrap();
    assert_eq!(ids_on(&board, 0).len(), 20);
    assert_eq!(board.buried_objects(), 0);
    // A new action drops the redo stack: an erase nobody can undo past frees at once.
    board
        .apply(&teacher(), BoardOp::ClearPage { page: 0 }, clock.tick())
        .unwrap();
    for i in 0..3 {
        board
            .apply(&teacher(), rect(&format!("n{i}"), 0), clock.tick())
            .unwrap();
    }
    assert_eq!(board.buried_objects(), 0, "the clear fell off the history");
    // A freed id is still never reused and never looks alive.
    let again = board.apply(&teacher(), begin("t9_0", 0, 1.0, 1.0), clock.tick());
    assert!(again.is_err());
}

#[test]
fn undo_and_redo_of_ones_own_actions() {
    let mut board = Board::new(BoardLimits::default());
    let mut clock = Clock(Instant::now());
    board
        .apply(&teacher(), allow(DrawTarget::All, true), clock.tick())
        .unwrap();
    for op in [
        begin("t1", 0, 0.0, 0.0),
        append("t1", &[(5.0, 5.0)]),
        end("t1"),
    ] {
        board.apply(&teacher(), op, clock.tick()).unwrap();
    }
    board.apply(&room_a(), rect("a1", 0), clock.tick()).unwrap();
    board
        .apply(&teacher(), rect("t2", 0), clock.tick())
        .unwrap();
    assert_eq!(ids_on(&board, 0), vec!["t1", "a1", "t2"]);

    // The classroom's undo removes its rectangle, not the teacher's newer one.
    let undo = board
        .apply(&room_a(), BoardOp::Undo { effect: None }, clock.tick())
        .unwrap();
    assert_eq!(
        undo.op,
        BoardOp::Undo {
            effect: Some(UndoEffect {
                remove: vec!["a1".into()],
                restore: vec![],
            })
        }
    );
    assert_eq!(ids_on(&board, 0), vec!["t1", "t2"]);
    // Redo puts it back in its old place (paint order).
    board
        .apply(&room_a(), BoardOp::Redo { effect: None }, clock.tick())
        .unwrap();
    assert_eq!(ids_on(&board, 0), vec!["t1", "a1", "t2"]);

    // Erase and undo the erase: the whole stroke comes back with all its points.
    let full = board.snapshot();
    let erase = BoardOp::Erase {
        object_ids: vec!["t1".into(), "a1".into()],
    };
    board.apply(&teacher(), erase, clock.tick()).unwrap();
    assert_eq!(ids_on(&board, 0), vec!["t2"]);
    board
        .apply(&teacher(), BoardOp::Undo { effect: None }, clock.tick())
        .unwrap();
    assert_eq!(board.state().pages, full.pages);

    // Clear page by the teacher, undo restores the page, redo clears it again.
    board
        .apply(&teacher(), BoardOp::ClearPage { page: 0 }, clock.tick())
        .unwrap();
    assert!(ids_on(&board, 0).is_empty());
    board
        .apply(&teacher(), BoardOp::Undo { effect: None }, clock.tick())
        .unwrap();
    assert_eq!(board.state().pages, full.pages);
    board
        .apply(&teacher(), BoardOp::Redo { effect: None }, clock.tick())
        .unwrap();
    assert!(ids_on(&board, 0).is_empty());
    board
        .apply(&teacher(), BoardOp::Undo { effect: None }, clock.tick())
        .unwrap();

    // A new action clears the redo stack.
    board
        .apply(&teacher(), BoardOp::Undo { effect: None }, clock.tick())
        .unwrap(); // removes t2
    assert_eq!(ids_on(&board, 0), vec!["t1", "a1"]);
    board
        .apply(&teacher(), rect("t3", 0), clock.tick())
        .unwrap();
    let err = board.apply(&teacher(), BoardOp::Redo { effect: None }, clock.tick());
    assert_eq!(err.unwrap_err().code(), "not_found");

    // Undo skips actions whose objects are already gone: the teacher erases a2 ...
    board.apply(&room_a(), rect("a2", 0), clock.tick()).unwrap();
    let erase = BoardOp::Erase {
        object_ids: vec!["a2".into()],
    };
    board.apply(&teacher(), erase, clock.tick()).unwrap();
    // ... so the classroom's undo goes past "a2" to ... its redo of "a1".
    let undo = board
        .apply(&room_a(), BoardOp::Undo { effect: None }, clock.tick())
        .unwrap();
    match undo.op {
        BoardOp::Undo {
            effect: Some(effect),
        } => assert_eq!(effect.remove, vec!["a1".to_string()]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn undo_of_an_open_stroke_removes_it_and_ends_it() {
    let mut board = Board::new(BoardLimits::default());
    let mut clock = Clock(Instant::now());
    board
        .apply(&teacher(), begin("t1", 0, 0.0, 0.0), clock.tick())
        .unwrap();
    board
        .apply(&teacher(), BoardOp::Undo { effect: None }, clock.tick())
        .unwrap();
    let err = board.apply(&teacher(), append("t1", &[(1.0, 1.0)]), clock.tick());
    assert_eq!(err.unwrap_err().code(), "not_found");
    board
        .apply(&teacher(), BoardOp::Redo { effect: None }, clock.tick())
        .unwrap();
    let err = board.apply(&teacher(), append("t1", &[(1.0, 1.0)]), clock.tick());
    assert_eq!(
        err.unwrap_err().code(),
        "invalid",
        "a restored stroke is finished"
    );
}

#[test]
fn catchup_is_a_delta_while_the_log_reaches_back_and_a_snapshot_after() {
    let limits = BoardLimits {
        log_capacity: 5,
        ..BoardLimits::default()
    };
    let mut board = Board::new(limits);
    let mut clock = Clock(Instant::now());
    for i in 0..8 {
        board
            .apply(&teacher(), rect(&format!("r{i}"), 0), clock.tick())
            .unwrap();
    }
    match board.ops_since(3) {
        Catchup::Delta { ops } => {
            assert_eq!(
                ops.iter().map(|a| a.seq).collect::<Vec<_>>(),
                [4, 5, 6, 7, 8]
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(board.ops_since(8), Catchup::Delta { ops: vec![] });
    assert!(matches!(board.ops_since(2), Catchup::Snapshot { .. }));
    assert!(matches!(board.ops_since(99), Catchup::Snapshot { .. }));
}

#[test]
fn client_reducer_rejects_gaps() {
    let mut board = Board::new(BoardLimits::default());
    let t = Instant::now();
    let a1 = board.apply(&teacher(), rect("r1", 0), t).unwrap();
    let a2 = board.apply(&teacher(), rect("r2", 0), t).unwrap();
    let mut screen = BoardSnapshot::new();
    assert_eq!(screen.apply(&a2).unwrap_err().code(), "invalid");
    screen.apply(&a1).unwrap();
    screen.apply(&a2).unwrap();
    assert_eq!(screen, board.snapshot());
}

#[test]
fn op_json_shapes() {
    let op: BoardOp = serde_json::from_str(
            r##"{"op":"stroke_begin","object_id":"r_2:17","page":0,"tool":"highlighter","color":"#FFEB3B","width":12,"point":[100.5,200]}"##,
        )
        .unwrap();
    assert!(matches!(op, BoardOp::StrokeBegin { .. }));
    let op: BoardOp = serde_json::from_str(
        r#"{"op":"set_draw_permission","target":{"classroom":"r_2"},"allowed":true}"#,
    )
    .unwrap();
    assert_eq!(op, allow(DrawTarget::Classroom("r_2".into()), true));
    let op: BoardOp =
        serde_json::from_str(r#"{"op":"set_draw_permission","target":"all","allowed":false}"#)
            .unwrap();
    assert_eq!(op, allow(DrawTarget::All, false));
    let op: BoardOp = serde_json::from_str(r#"{"op":"undo"}"#).unwrap();
    assert_eq!(op, BoardOp::Undo { effect: None });

    let mut board = Board::new(BoardLimits::default());
    let a = board
        .apply(&teacher(), begin("t1", 0, 1.234, 2.0), Instant::now())
        .unwrap();
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        r##"{"seq":1,"author":{"classroom_id":"r_1","is_teacher":true},"op":{"op":"stroke_begin","object_id":"t1","page":0,"tool":"pen","color":"#1e88e5","width":3.0,"point":[1.23,2.0]}}"##
    );
    let snap = serde_json::to_string(&board.snapshot()).unwrap();
    assert_eq!(
        snap,
        r##"{"seq":1,"pages":[{"objects":[{"id":"t1","author":"r_1","z":1,"type":"stroke","tool":"pen","color":"#1e88e5","width":3.0,"points":[[1.23,2.0]]}]}],"current_page":0,"permissions":{"all":false,"classrooms":{}}}"##
    );
}

#[test]
fn svg_export_draws_every_object_and_escapes_text() {
    let mut board = Board::new(BoardLimits::default());
    let mut clock = Clock(Instant::now());
    let ops = vec![
        begin("s1", 0, 10.0, 10.0),
        append("s1", &[(20.0, 20.0)]),
        BoardOp::StrokeBegin {
            object_id: "h1".into(),
            page: 0,
            tool: StrokeTool::Highlighter,
            color: "#ffeb3b".into(),
            width: 20.0,
            point: Point(50.0, 50.0),
        },
        rect("r1", 0),
        BoardOp::ShapeAdd {
            object_id: "e1".into(),
            page: 0,
            shape: ShapeKind::Ellipse,
            color: "#00ff00".into(),
            width: 2.0,
            from: Point(0.0, 0.0),
            to: Point(100.0, 50.0),
            fill: None,
        },
        BoardOp::ShapeAdd {
            object_id: "l1".into(),
            page: 0,
            shape: ShapeKind::Line,
            color: "#000000".into(),
            width: 2.0,
            from: Point(0.0, 0.0),
            to: Point(100.0, 50.0),
            fill: Some("#ffffff".into()),
        },
        BoardOp::ShapeAdd {
            object_id: "a1".into(),
            page: 0,
            shape: ShapeKind::Arrow,
            color: "#000000".into(),
            width: 2.0,
            from: Point(0.0, 0.0),
            to: Point(100.0, 0.0),
            fill: None,
        },
        BoardOp::TextAdd {
            object_id: "x1".into(),
            page: 0,
            at: Point(30.0, 40.0),
            text: "1 < 2 & \"half\"\nline two".into(),
            color: "#000000".into(),
            size: 24.0,
        },
    ];
    for op in ops {
        board.apply(&teacher(), op, clock.tick()).unwrap();
    }
    let svg = board_svg(&board.snapshot(), 0);
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains(r#"<path d="M10 10 L20 20""#), "{svg}");
    assert!(
        svg.contains(r#"stroke-opacity="0.4""#),
        "highlighter: {svg}"
    );
    assert!(
        svg.contains(r##"fill="#ffeb3b" fill-opacity="0.502""##),
        "{svg}"
    );
    assert!(svg.contains("<ellipse cx=\"50\" cy=\"25\" rx=\"50\" ry=\"25\""));
    assert!(svg.contains("<line x1=\"0\" y1=\"0\" x2=\"100\" y2=\"50\""));
    assert!(
        svg.contains("<polygon points=\"100,0 "),
        "arrow head: {svg}"
    );
    assert!(svg.contains("1 &lt; 2 &amp; &quot;half&quot;</tspan>"));
    assert!(svg.contains("line two</tspan>"));
    assert!(!svg.contains("NaN"));
    // An unknown page renders empty.
    assert_eq!(board_svg(&board.snapshot(), 9).matches("<rect").count(), 1);
}

/// splitmix64: a tiny seeded generator for the property tests.
pub(crate) struct Rng(u64);
impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub(crate) fn coord(&mut self) -> f64 {
        (self.below(1_600_000) as f64) / 1000.0
    }
    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            Some(&items[self.below(items.len() as u64) as usize])
        }
    }
}

/// A random op, often valid, sometimes not (unknown ids, bad colours, someone else's stroke).
pub(crate) fn random_op(rng: &mut Rng, ids: &[String], next_id: &mut u64) -> BoardOp {
    let mut fresh = || {
        *next_id += 1;
        format!("o{next_id}")
    };
    let known = |rng: &mut Rng| {
        rng.pick(ids)
            .cloned()
            .unwrap_or_else(|| "missing".to_string())
    };
    let page = rng.below(4) as u32;
    let colors = ["#000000", "#E53935", "#1e88e5cc", "blue"];
    let palette = if rng.below(20) == 0 { 4 } else { 3 };
    let color = colors[rng.below(palette) as usize].to_string();
    match rng.below(100) {
        0..20 => BoardOp::StrokeBegin {
            object_id: if rng.below(30) == 0 {
                known(rng)
            } else {
                fresh()
            },
            page,
            tool: if rng.below(4) == 0 {
                StrokeTool::Highlighter
            } else {
                StrokeTool::Pen
            },
            color,
            width: 1.0 + rng.below(300) as f64 / 10.0,
            point: Point(rng.coord(), rng.coord()),
        },
        20..45 => BoardOp::StrokeAppend {
            // Mostly a recent stroke, as while drawing.
            object_id: match rng.pick(&ids[ids.len().saturating_sub(3)..]) {
                Some(id) if rng.below(3) != 0 => id.clone(),
                _ => known(rng),
            },
            page: None,
            points: (0..1 + rng.below(6))
                .map(|_| Point(rng.coord(), rng.coord()))
                .collect(),
        },
        45..52 => BoardOp::StrokeEnd {
            object_id: known(rng),
            page: None,
        },
        52..60 => BoardOp::ShapeAdd {
            object_id: fresh(),
            page,
            shape: [
                ShapeKind::Line,
                ShapeKind::Arrow,
                ShapeKind::Rect,
                ShapeKind::Ellipse,
            ][rng.below(4) as usize],
            color,
            width: 2.5,
            from: Point(rng.coord(), rng.coord()),
            to: Point(rng.coord(), rng.coord()),
            fill: if rng.below(2) == 0 {
                Some("#ffeb3b80".into())
            } else {
                None
            },
        },
        60..64 => BoardOp::TextAdd {
            object_id: fresh(),
            page,
            at: Point(rng.coord(), rng.coord()),
            text: format!("x = {}\r\ny < 2", rng.below(100)),
            color,
            size: 18.0 + rng.below(20) as f64,
        },
        64..72 => BoardOp::Erase {
            object_ids: (0..1 + rng.below(3)).map(|_| known(rng)).collect(),
        },
        72..81 => BoardOp::Undo { effect: None },
        81..87 => BoardOp::Redo { effect: None },
        87..89 => BoardOp::ClearPage { page },
        89..91 => BoardOp::AddPage { page: None },
        91..94 => BoardOp::SetPage { page },
        _ => BoardOp::SetDrawPermission {
            target: match rng.below(3) {
                0 => DrawTarget::All,
                1 => DrawTarget::Classroom("r_2".into()),
                _ => DrawTarget::Classroom("r_3".into()),
            },
            allowed: rng.below(3) != 0,
        },
    }
}

pub(crate) fn small_limits() -> BoardLimits {
    BoardLimits {
        max_points_per_stroke: 12,
        max_objects_per_page: 25,
        max_pages: 4,
        max_undo_depth: 30,
        log_capacity: 64,
        ..BoardLimits::default()
    }
}

#[test]
fn snapshot_plus_missed_ops_equals_the_live_board_on_random_lessons() {
    let authors = [teacher(), room_a(), room_b()];
    let mut codes: BTreeMap<&'static str, usize> = BTreeMap::new();
    for seed in 1..=12u64 {
        let mut rng = Rng::new(seed);
        let mut board = Board::new(small_limits());
        let mut clock = Clock(Instant::now());
        let mut screen = BoardSnapshot::new(); // a client that saw everything
        let mut applied: Vec<Applied> = Vec::new();
        let mut saved: Vec<BoardSnapshot> = vec![BoardSnapshot::new()];
        let mut ids: Vec<String> = Vec::new();
        let mut next_id = 0;
        for _ in 0..1500 {
            let who = if rng.below(3) == 0 { 1 } else { 3 };
            let author = &authors[rng.below(who) as usize];
            let op = random_op(&mut rng, &ids, &mut next_id);
            let before = board.snapshot();
            match board.apply(author, op.clone(), clock.tick()) {
                Err(e) => {
                    *codes.entry(e.code()).or_default() += 1;
                    assert_eq!(
                        board.snapshot(),
                        before,
                        "rejected {op:?} changed the board"
                    );
                }
                Ok(a) => {
                    *codes.entry("ok").or_default() += 1;
                    assert_eq!(a.seq, before.seq + 1, "no gaps");
                    if let BoardOp::StrokeBegin { object_id, .. }
                    | BoardOp::ShapeAdd { object_id, .. }
                    | BoardOp::TextAdd { object_id, .. } = &a.op
                    {
                        ids.push(object_id.clone());
                    }
                    screen.apply(&wire(&a)).unwrap();
                    assert_eq!(screen, board.snapshot(), "client diverged after {a:?}");
                    applied.push(a);
                    if rng.below(25) == 0 {
                        saved.push(board.snapshot());
                    }
                }
            }
        }
        let fin = board.snapshot();
        let undos = applied
            .iter()
            .filter(|a| matches!(a.op, BoardOp::Undo { .. }))
            .count();
        assert!(undos > 10, "seed {seed}: only {undos} undos");
        // Late joiners / reconnecting classrooms: old snapshot + missed ops == live board.
        for old in &saved {
            let n = old.seq as usize;
            let mut late =
                serde_json::from_str::<BoardSnapshot>(&serde_json::to_string(old).unwrap())
                    .unwrap();
            match board.ops_since(old.seq) {
                Catchup::Delta { ops } => {
                    assert_eq!(ops, applied[n..]);
                    for a in &ops {
                        late.apply(&wire(a)).unwrap();
                    }
                }
                Catchup::Snapshot { snapshot } => {
                    assert!(fin.seq - old.seq > small_limits().log_capacity as u64);
                    late = snapshot;
                }
            }
            assert_eq!(late, fin, "seed {seed}: from seq {n}");
            let mut replayed = old.clone();
            for a in &applied[n..] {
                replayed.apply(&wire(a)).unwrap();
            }
            assert_eq!(replayed, fin);
        }
        // A server restart: replaying the stored ops gives the same board, and the same
        // future (undo stacks, open strokes, ids in use are rebuilt too).
        let mut restarted = Board::new(small_limits());
        for a in &applied {
            restarted.replay(&wire(a)).unwrap();
        }
        assert_eq!(restarted.snapshot(), fin);
        for _ in 0..300 {
            let author = &authors[rng.below(3) as usize];
            let op = random_op(&mut rng, &ids, &mut next_id);
            let t = clock.tick();
            let live = board.apply(author, op.clone(), t);
            let again = restarted.apply(author, op, t);
            assert_eq!(live, again);
        }
    }
    for code in [
        "ok",
        "forbidden",
        "invalid",
        "not_found",
        "limit_objects",
        "limit_points",
        "limit_pages",
    ] {
        assert!(codes.contains_key(code), "no {code}: {codes:?}");
    }
}
