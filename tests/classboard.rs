//! The shared whiteboard and voting, end to end: the teacher draws and lets classrooms draw,
//! strokes grow on every screen in one order, a late joiner sees the same board, limits hurt only
//! the one who breaks them, pupils vote from their own devices, and the teacher gets a report.

#[path = "support/classboard.rs"]
mod support;

use std::time::Duration;

use serde_json::json;
use support::*;
use tandem_loadtest::client::Classroom;
use tandem_signaling::classboard::board::{BoardOp, Catchup};
use tandem_signaling::classboard::poll::{PollLimits, PollState};
use tandem_signaling::protocol::{ErrorCode, ParticipantRole, ServerMessage};

async fn lesson(base: &str, links: &NewClass) -> (Classroom, Classroom, Classroom) {
    let teacher = Classroom::join(base, &links.teacher_url, "Ms Li")
        .await
        .expect("teacher joins");
    let a = Classroom::join(base, &links.invite_url, "Hotan No. 3 School")
        .await
        .expect("A joins");
    let b = Classroom::join(base, &links.invite_url, "Kashgar No. 1 School")
        .await
        .expect("B joins");
    (teacher, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strokes_from_two_classrooms_reach_every_screen_in_one_order() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_on(dir.path(), |_| {}).await;
    let links = create_class(&s.base, "Fractions").await;
    let (teacher, a, b) = lesson(&s.base, &links).await;

    draw(
        &teacher,
        json!({"op":"set_draw_permission","target":"all","allowed":true}),
    );
    wait_seq(&b, 1).await;
    // A and B draw at the same time while the teacher draws too.
    stroke(&a, &format!("{}:1", a.classroom_id), 0, 100.0, 40);
    stroke(&b, &format!("{}:1", b.classroom_id), 0, 600.0, 40);
    stroke(&teacher, "t:1", 0, 1000.0, 40);
    // 1 permission + 3 strokes × (begin + 8 appends + end)
    let last = 1 + 3 * 10;
    for c in [&teacher, &a, &b] {
        wait_seq(c, last).await;
    }
    for (who, c) in [("teacher", &teacher), ("A", &a), ("B", &b)] {
        let seqs = seqs_seen(c);
        assert_eq!(
            seqs,
            (1..=last).collect::<Vec<_>>(),
            "{who} sees every op once, in strictly increasing order"
        );
        assert!(errors(c).is_empty(), "{who} got errors: {:?}", errors(c));
    }
    let board = board_seen(&teacher);
    assert_eq!(board, board_seen(&a));
    assert_eq!(board, board_seen(&b));
    assert_eq!(board.pages[0].objects.len(), 3, "three strokes on the page");
    for object in &board.pages[0].objects {
        let tandem_signaling::classboard::board::Shape::Stroke { points, .. } = &object.shape
        else {
            panic!("a stroke")
        };
        assert_eq!(points.len(), 40, "every point of {} arrived", object.id);
    }
    // The line grew on the others' screens: B saw A's appends one by one, each numbered.
    let a_appends = b
        .log()
        .into_iter()
        .filter(|m| {
            matches!(m, ServerMessage::BoardOp { applied }
                if applied.author.classroom_id == a.classroom_id
                && matches!(applied.op, BoardOp::StrokeAppend { .. }))
        })
        .count();
    assert_eq!(a_appends, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_classroom_draws_only_when_the_teacher_allows_and_a_pupil_never() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_on(dir.path(), |_| {}).await;
    let links = create_class(&s.base, "Shapes").await;
    let (teacher, a, b) = lesson(&s.base, &links).await;
    let pupil = Classroom::join(&s.base, &links.pupil_url, "Aylin")
        .await
        .expect("a pupil joins by the voting link");

    // Not allowed yet: A's stroke is refused, nobody's board changes.
    draw(
        &a,
        json!({"op":"stroke_begin","object_id":"a:1","page":0,"tool":"pen","color":"#000000","width":3,"point":[1,1]}),
    );
    assert_eq!(wait_error(&a, "board_op").await, ErrorCode::Forbidden);
    send(&a, json!({"type":"laser","page":0,"point":[5,5]}));
    assert_eq!(wait_error(&a, "laser").await, ErrorCode::Forbidden);

    // The teacher draws and points at any time.
    draw(
        &teacher,
        json!({"op":"shape_add","object_id":"t:1","page":0,"shape":"arrow","color":"#000000","width":3,"from":[200,200],"to":[400,260]}),
    );
    send(&teacher, json!({"type":"laser","page":0,"point":[300,230]}));
    let laser = b
        .wait_for(WAIT, |m| matches!(m, ServerMessage::Laser { .. }))
        .await
        .expect("B sees the teacher's laser pointer");
    assert!(
        matches!(laser, ServerMessage::Laser { classroom_id, page: 0, .. } if classroom_id.as_str() == teacher.classroom_id)
    );

    // Allowed: A draws; B still may not.
    draw(
        &teacher,
        json!({"op":"set_draw_permission","target":{"classroom":a.classroom_id},"allowed":true}),
    );
    wait_seq(&a, 2).await;
    draw(
        &a,
        json!({"op":"text_add","object_id":"a:2","page":0,"at":[60,400],"text":"1/2 > 1/3","color":"#000000","size":32}),
    );
    wait_seq(&teacher, 3).await;
    draw(&b, json!({"op":"erase","object_ids":["a:2"]}));
    assert_eq!(wait_error(&b, "board_op").await, ErrorCode::Forbidden);
    // A may not change the page or permissions even while it may draw.
    draw(&a, json!({"op":"add_page"}));
    wait_errors(&a, 3).await;
    assert_eq!(
        errors(&a),
        vec![
            ErrorCode::Forbidden,
            ErrorCode::Forbidden,
            ErrorCode::Forbidden
        ]
    );

    // A pupil's device votes and nothing else.
    draw(&pupil, json!({"op":"add_page"}));
    assert_eq!(wait_error(&pupil, "board_op").await, ErrorCode::Forbidden);
    send(&pupil, json!({"type":"raise_hand"}));
    assert_eq!(wait_error(&pupil, "raise_hand").await, ErrorCode::Forbidden);
    send(&pupil, json!({"type":"board_sync"}));
    assert_eq!(wait_error(&pupil, "board_sync").await, ErrorCode::Forbidden);
    assert!(
        !pupil.log().iter().any(|m| matches!(
            m,
            ServerMessage::BoardOp { .. } | ServerMessage::Laser { .. }
        )),
        "a pupil's device gets no board"
    );

    // Revoked: A is refused again.
    draw(
        &teacher,
        json!({"op":"set_draw_permission","target":{"classroom":a.classroom_id},"allowed":false}),
    );
    wait_seq(&a, 4).await;
    draw(&a, json!({"op":"erase","object_ids":["a:2"]}));
    wait_errors(&a, 4).await;
    assert_eq!(errors(&a).len(), 4);
    let board = board_seen(&teacher);
    assert_eq!(board.seq, 4);
    assert_eq!(board, board_seen(&a));
    assert_eq!(board, board_seen(&b));
    assert_eq!(board.pages.len(), 1);
    assert_eq!(board.pages[0].objects.len(), 2, "the arrow and A's text");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stroke_over_the_points_limit_is_refused_to_its_author_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_on(dir.path(), |c| {
        c.board_max_points_per_stroke = 10;
        c.board_max_pages = 2;
    })
    .await;
    let links = create_class(&s.base, "Limits").await;
    let (teacher, a, b) = lesson(&s.base, &links).await;
    // Every screen learns the limits in its welcome, so its UI can stay within them.
    for c in [&teacher, &a, &b] {
        let Some(ServerMessage::Welcome { limits, .. }) = c.log().into_iter().next() else {
            panic!("welcome first")
        };
        assert_eq!(limits.max_points_per_stroke, 10);
        assert_eq!(limits.max_pages, 2);
        assert_eq!(limits.max_poll_options, PollLimits::default().max_options);
    }
    draw(
        &teacher,
        json!({"op":"set_draw_permission","target":"all","allowed":true}),
    );
    wait_seq(&a, 1).await;
    // 1 + 5 + 4 = 10 points: fine. One more: refused.
    draw(
        &a,
        json!({"op":"stroke_begin","object_id":"a:1","page":0,"tool":"pen","color":"#000000","width":3,"point":[0,0]}),
    );
    draw(
        &a,
        json!({"op":"stroke_append","object_id":"a:1","points":[[1,1],[2,2],[3,3],[4,4],[5,5]]}),
    );
    draw(
        &a,
        json!({"op":"stroke_append","object_id":"a:1","points":[[6,6],[7,7],[8,8],[9,9]]}),
    );
    wait_seq(&a, 4).await;
    draw(
        &a,
        json!({"op":"stroke_append","object_id":"a:1","points":[[10,10]]}),
    );
    assert_eq!(wait_error(&a, "board_op").await, ErrorCode::LimitExceeded);
    // Pages: one more is fine, the third is over the limit.
    draw(&teacher, json!({"op":"add_page"}));
    draw(&teacher, json!({"op":"add_page"}));
    assert_eq!(
        wait_error(&teacher, "board_op").await,
        ErrorCode::LimitExceeded
    );
    draw(&a, json!({"op":"stroke_end","object_id":"a:1"}));
    wait_seq(&b, 6).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert!(
        errors(&b).is_empty(),
        "B heard nothing of the others' errors"
    );
    assert_eq!(errors(&a), vec![ErrorCode::LimitExceeded]);
    let board = board_seen(&b);
    assert_eq!(board.seq, 6);
    assert_eq!(board, board_seen(&teacher));
    assert_eq!(board, board_seen(&a));
    assert_eq!(board.pages.len(), 2);
    let (_, stroke) = board.object("a:1").expect("A's stroke");
    let tandem_signaling::classboard::board::Shape::Stroke { points, .. } = &stroke.shape else {
        panic!("a stroke")
    };
    assert_eq!(points.len(), 10, "the refused point is on nobody's board");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_and_a_catching_up_classroom_see_exactly_the_teachers_board() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_on(dir.path(), |_| {}).await;
    let links = create_class(&s.base, "Late").await;
    let (teacher, a, _b) = lesson(&s.base, &links).await;
    draw(
        &teacher,
        json!({"op":"set_draw_permission","target":{"classroom":a.classroom_id},"allowed":true}),
    );
    stroke(&teacher, "t:1", 0, 10.0, 12);
    wait_seq(&a, 5).await;
    stroke(&a, "a:1", 0, 300.0, 12);
    draw(
        &teacher,
        json!({"op":"shape_add","object_id":"t:2","page":0,"shape":"rect","color":"#1e88e5","width":2,"from":[50,50],"to":[300,180],"fill":"#ffeb3b80"}),
    );
    draw(&a, json!({"op":"undo"}));
    draw(&a, json!({"op":"redo"}));
    wait_seq(&teacher, 14).await;
    draw(&teacher, json!({"op":"erase","object_ids":["a:1"]}));
    draw(&teacher, json!({"op":"add_page"}));
    draw(&teacher, json!({"op":"set_page","page":1}));
    stroke(&teacher, "t:3", 1, 50.0, 6);
    draw(&teacher, json!({"op":"undo"}));
    // permission 1, two strokes of 5 ops, rect, undo, redo, erase, add and set page, a stroke
    // of 3 ops, undo
    let mid = 21;
    wait_seq(&teacher, mid).await;

    // A classroom opens the invite link now: snapshot first, then live ops.
    let late = Classroom::join(&s.base, &links.invite_url, "Yarkant No. 2 School")
        .await
        .expect("late joiner");
    let first_catchup = late
        .wait_for(WAIT, |m| matches!(m, ServerMessage::BoardCatchup { .. }))
        .await
        .unwrap();
    assert!(matches!(
        first_catchup,
        ServerMessage::BoardCatchup {
            catchup: Catchup::Snapshot { .. }
        }
    ));
    draw(&teacher, json!({"op":"clear_page","page":0}));
    draw(&teacher, json!({"op":"set_page","page":0}));
    draw(&teacher, json!({"op":"undo"}));
    for c in [&late, &teacher, &a] {
        wait_seq(c, mid + 3).await;
    }
    assert_eq!(board_seen(&late), board_seen(&teacher));
    assert_eq!(board_seen(&a), board_seen(&teacher));
    assert_eq!(board_seen(&late).current_page, 0);
    assert_eq!(board_seen(&late).pages.len(), 2);

    // A classroom that saw up to seq 5 asks for what it missed and gets exactly that.
    send(&late, json!({"type":"board_sync","since_seq":5}));
    let delta = late
        .wait_for(WAIT, |m| {
            matches!(
                m,
                ServerMessage::BoardCatchup {
                    catchup: Catchup::Delta { .. }
                }
            )
        })
        .await
        .unwrap();
    let ServerMessage::BoardCatchup {
        catchup: Catchup::Delta { ops },
    } = delta
    else {
        unreachable!()
    };
    assert_eq!(
        ops.iter().map(|o| o.seq).collect::<Vec<_>>(),
        (6..=mid + 3).collect::<Vec<_>>()
    );
    let ops_seen: Vec<_> = teacher
        .log()
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::BoardOp { applied } if applied.seq > 5 => Some(applied),
            _ => None,
        })
        .collect();
    assert_eq!(ops, ops_seen, "the delta is the very ops the teacher saw");
}

fn poll_counts(c: &Classroom) -> Vec<(Vec<u32>, u32)> {
    c.log()
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::PollCounts {
                counts,
                voters_total,
                ..
            } => Some((counts, voters_total)),
            _ => None,
        })
        .collect()
}

async fn wait_counts(c: &Classroom, counts: Vec<u32>) {
    c.wait_for(
        WAIT,
        move |m| matches!(m, ServerMessage::PollCounts { counts: got, .. } if *got == counts),
    )
    .await
    .expect("the teacher's counts change");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pupils_vote_by_link_change_their_vote_until_the_poll_closes_and_see_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_on(dir.path(), |_| {}).await;
    let links = create_class(&s.base, "Which is bigger?").await;
    let (teacher, a, b) = lesson(&s.base, &links).await;

    send(
        &teacher,
        json!({"type":"poll_start","spec":{"question":"Which is bigger?","kind":"single","options":["1/2","1/3"]}}),
    );
    let poll = a
        .wait_for(WAIT, |m| matches!(m, ServerMessage::Poll { .. }))
        .await
        .unwrap();
    let ServerMessage::Poll { poll } = poll else {
        unreachable!()
    };
    assert!(poll.anonymous, "anonymous by default");
    assert_eq!(poll.state, PollState::Open);
    let id = poll.poll_id;

    // A pupil opens the voting link (QR code) on a phone: no camera, no microphone.
    let aylin = Classroom::join(&s.base, &links.pupil_url, "Aylin")
        .await
        .expect("the pupil joins");
    let welcome = aylin
        .wait_for(WAIT, |m| matches!(m, ServerMessage::Welcome { .. }))
        .await
        .unwrap();
    assert!(
        matches!(&welcome, ServerMessage::Welcome { you, tracks, .. } if you.role == ParticipantRole::Pupil && tracks.is_empty())
    );
    aylin
        .wait_for(
            WAIT,
            |m| matches!(m, ServerMessage::Poll { poll } if poll.poll_id == id),
        )
        .await
        .expect("the pupil sees the open poll");

    send(&a, json!({"type":"poll_vote","poll_id":id,"choices":[0]}));
    wait_counts(&teacher, vec![1, 0]).await;
    send(
        &aylin,
        json!({"type":"poll_vote","poll_id":id,"choices":[1]}),
    );
    wait_counts(&teacher, vec![1, 1]).await;
    aylin
        .wait_for(
            WAIT,
            |m| matches!(m, ServerMessage::PollVoted { choices, .. } if *choices == vec![1]),
        )
        .await
        .expect("the pupil's vote is acknowledged");
    // Changing one's mind: still one vote.
    send(
        &aylin,
        json!({"type":"poll_vote","poll_id":id,"choices":[0]}),
    );
    wait_counts(&teacher, vec![2, 0]).await;
    assert_eq!(poll_counts(&teacher).last().unwrap().1, 2, "two voters");
    // The teacher asks; the teacher does not vote. Nobody else sees counts.
    send(
        &teacher,
        json!({"type":"poll_vote","poll_id":id,"choices":[0]}),
    );
    assert_eq!(
        wait_error(&teacher, "poll_vote").await,
        ErrorCode::Forbidden
    );
    assert!(poll_counts(&a).is_empty() && poll_counts(&aylin).is_empty());
    // Only the teacher closes.
    send(&b, json!({"type":"poll_close","poll_id":id}));
    assert_eq!(wait_error(&b, "poll_close").await, ErrorCode::Forbidden);

    send(&teacher, json!({"type":"poll_close","poll_id":id}));
    aylin
        .wait_for(
            WAIT,
            |m| matches!(m, ServerMessage::Poll { poll } if poll.state == PollState::Closed),
        )
        .await
        .expect("the pupil sees the poll close");
    send(
        &aylin,
        json!({"type":"poll_vote","poll_id":id,"choices":[1]}),
    );
    assert_eq!(wait_error(&aylin, "poll_vote").await, ErrorCode::PollClosed);
    send(&b, json!({"type":"poll_vote","poll_id":id,"choices":[1]}));
    assert_eq!(wait_error(&b, "poll_vote").await, ErrorCode::PollClosed);

    send(&teacher, json!({"type":"poll_publish","poll_id":id}));
    for c in [&teacher, &a, &b, &aylin] {
        let result = c
            .wait_for(WAIT, |m| matches!(m, ServerMessage::PollResult { .. }))
            .await
            .expect("the result reaches every screen");
        let ServerMessage::PollResult { results } = result else {
            unreachable!()
        };
        assert_eq!(results.counts, vec![2, 0]);
        assert_eq!(results.voters_total, 2);
        assert!(results.voters.is_none(), "anonymous: no names");
    }

    // Pupils stay off the classroom screens.
    for c in [&teacher, &a, &b] {
        assert!(
            !c.log().iter().any(|m| matches!(m, ServerMessage::ParticipantJoined { participant } if participant.role == ParticipantRole::Pupil)),
            "classrooms are not told about pupils"
        );
    }
    let metrics = reqwest::get(format!("{}/metrics", s.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("tandem_pupils_active 1"),
        "pupils counted apart: {metrics}"
    );

    // A quick A–D poll with a timer closes by itself.
    send(
        &teacher,
        json!({"type":"poll_start","spec":{"question":"Answer","kind":"quick_abcd","timer_secs":1}}),
    );
    let closed = aylin
        .wait_for(WAIT, |m| {
            matches!(m, ServerMessage::Poll { poll } if poll.poll_id == id + 1 && poll.state == PollState::Closed)
        })
        .await;
    assert!(closed.is_ok(), "the timer closes the poll");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_teacher_gets_a_class_report_as_html_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_on(dir.path(), |_| {}).await;
    let links = create_class(&s.base, "Grade 2 Maths").await;
    let (teacher, a, _b) = lesson(&s.base, &links).await;
    stroke(&teacher, "t:1", 0, 10.0, 12);
    send(
        &teacher,
        json!({"type":"poll_start","spec":{"question":"Is 1/2 > 1/3?","kind":"yes_no","anonymous":false}}),
    );
    let pupil = Classroom::join(&s.base, &links.pupil_url, "Aylin")
        .await
        .unwrap();
    pupil
        .wait_for(WAIT, |m| matches!(m, ServerMessage::Poll { .. }))
        .await
        .unwrap();
    send(&a, json!({"type":"poll_vote","poll_id":1,"choices":[0]}));
    send(
        &pupil,
        json!({"type":"poll_vote","poll_id":1,"choices":[0]}),
    );
    wait_counts(&teacher, vec![2, 0]).await;

    let http = reqwest::Client::new();
    let report = |token: &str, csv: bool| {
        // The teacher token in a header, never in the URL.
        let url = format!(
            "{}/api/classes/{}/report{}",
            s.base,
            links.class_id,
            if csv { ".csv" } else { "" }
        );
        http.get(url).bearer_auth(token).send()
    };
    // During the class.
    let html = report(&links.teacher_token, false).await.unwrap();
    assert_eq!(html.status(), 200);
    assert!(
        html.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    // Not cached anywhere, not sniffed, no referrer, and a page that may run no script at all.
    let header = |name: &str| {
        html.headers()
            .get(name)
            .unwrap_or_else(|| panic!("{name} on the report"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(header("cache-control"), "no-store");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("referrer-policy"), "no-referrer");
    let csp = header("content-security-policy");
    assert!(
        csp.starts_with("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
    let html = html.text().await.unwrap();
    for needle in [
        "Grade 2 Maths",
        "Hotan No. 3 School",
        "Kashgar No. 1 School",
        "Aylin",
        "Is 1/2 &gt; 1/3?",
        "data:image/svg+xml",
    ] {
        assert!(html.contains(needle), "the report shows {needle}");
    }
    let csv = report(&links.teacher_token, true).await.unwrap();
    assert_eq!(csv.status(), 200);
    assert!(
        csv.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert_eq!(csv.headers()["cache-control"], "no-store");
    let csv = csv.text().await.unwrap();
    assert!(csv.contains("Hotan No. 3 School") && csv.contains("Is 1/2 > 1/3?"));

    // The teacher token in a URL query opens nothing.
    let in_query = http
        .get(format!(
            "{}/api/classes/{}/report?token={}",
            s.base, links.class_id, links.teacher_token
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(in_query.status(), 401);
    // What a browser tab opens instead: a one-use ticket, bought with the token in a header.
    let ticket_url = format!("{}/api/classes/{}/report-ticket", s.base, links.class_id);
    let ticket: serde_json::Value = http
        .post(&ticket_url)
        .bearer_auth(&links.teacher_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ticket = ticket["ticket"].as_str().expect("a ticket").to_owned();
    let by_ticket = |ticket: String| {
        http.get(format!(
            "{}/api/classes/{}/report?ticket={ticket}",
            s.base, links.class_id
        ))
        .send()
    };
    let opened = by_ticket(ticket.clone()).await.unwrap();
    assert_eq!(opened.status(), 200);
    assert!(opened.text().await.unwrap().contains("Is 1/2 &gt; 1/3?"));
    assert_eq!(by_ticket(ticket).await.unwrap().status(), 401, "one use");
    let refused = http
        .post(&ticket_url)
        .bearer_auth(&links.invite_token)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403, "a classroom gets no ticket");
    assert!(csv.contains("Aylin"), "named poll: who voted what");

    // Classroom token: forbidden. Garbage: unauthorized. Unknown class: not found.
    assert_eq!(
        report(&links.invite_token, false).await.unwrap().status(),
        403
    );
    assert_eq!(
        report(&links.invite_token, true).await.unwrap().status(),
        403
    );
    assert_eq!(report("garbage", false).await.unwrap().status(), 401);
    let missing = http
        .get(format!("{}/api/classes/c_nothere/report", s.base))
        .bearer_auth(&links.teacher_token)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // After the class: still there.
    teacher.send_raw(r#"{"type":"end_class"}"#).unwrap();
    a.wait_for(WAIT, |m| matches!(m, ServerMessage::ClassEnded))
        .await
        .unwrap();
    let after = report(&links.teacher_token, false).await.unwrap();
    assert_eq!(after.status(), 200);
    assert!(after.text().await.unwrap().contains("Is 1/2 &gt; 1/3?"));
}
