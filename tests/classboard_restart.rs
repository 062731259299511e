//! Kill the server mid-lesson and start it again on the same data folder: the board (undo
//! history included) and the polls with their votes are all there, and classrooms that come back
//! see them and carry on.

#[path = "support/classboard.rs"]
mod support;

use serde_json::json;
use support::*;
use tandem_loadtest::client::Classroom;
use tandem_signaling::classboard::poll::PollState;
use tandem_signaling::protocol::ServerMessage;

fn polls_seen(c: &Classroom) -> Vec<(u64, PollState)> {
    let mut polls: Vec<(u64, PollState)> = Vec::new();
    for m in c.log() {
        if let ServerMessage::Poll { poll } = m {
            match polls.iter_mut().find(|(id, _)| *id == poll.poll_id) {
                Some(p) => p.1 = poll.state,
                None => polls.push((poll.poll_id, poll.state)),
            }
        }
    }
    polls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_and_the_polls_survive_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = start_on(dir.path(), |_| {}).await;
    let links = create_class(&first.base, "Restart").await;
    let mut teacher = Classroom::join(&first.base, &links.teacher_url, "Ms Li")
        .await
        .unwrap();
    let mut a = Classroom::join(&first.base, &links.invite_url, "Hotan No. 3 School")
        .await
        .unwrap();
    draw(
        &teacher,
        json!({"op":"set_draw_permission","target":{"classroom":a.classroom_id},"allowed":true}),
    );
    stroke(&teacher, "t:1", 0, 10.0, 23);
    wait_seq(&a, 8).await;
    stroke(&a, "a:1", 0, 400.0, 9);
    draw(
        &teacher,
        json!({"op":"text_add","object_id":"t:2","page":0,"at":[60,400],"text":"½ > ⅓","color":"#000000","size":32}),
    );
    draw(&teacher, json!({"op":"undo"}));
    draw(&teacher, json!({"op":"add_page"}));
    draw(&teacher, json!({"op":"set_page","page":1}));
    // 1 + 7 + 4 + 1 + 1 + 1 + 1
    wait_seq(&a, 16).await;

    send(
        &teacher,
        json!({"type":"poll_start","spec":{"question":"Which is bigger?","kind":"single","options":["1/2","1/3"]}}),
    );
    a.wait_for(WAIT, |m| matches!(m, ServerMessage::Poll { .. }))
        .await
        .unwrap();
    send(&a, json!({"type":"poll_vote","poll_id":1,"choices":[0]}));
    teacher
        .wait_for(WAIT, |m| {
            matches!(
                m,
                ServerMessage::PollCounts {
                    voters_total: 1,
                    ..
                }
            )
        })
        .await
        .unwrap();
    send(&teacher, json!({"type":"poll_publish","poll_id":1}));
    send(
        &teacher,
        json!({"type":"poll_start","spec":{"question":"Ready?","kind":"yes_no"}}),
    );
    a.wait_for(
        WAIT,
        |m| matches!(m, ServerMessage::Poll { poll } if poll.poll_id == 2),
    )
    .await
    .unwrap();
    send(&a, json!({"type":"poll_vote","poll_id":2,"choices":[1]}));
    a.wait_for(WAIT, |m| {
        matches!(m, ServerMessage::PollVoted { poll_id: 2, .. })
    })
    .await
    .unwrap();

    let board_before = board_seen(&teacher);
    assert_eq!(board_before.seq, 16);
    assert_eq!(board_before, board_seen(&a));

    // The server dies: connections drop, the process is gone.
    teacher.close().await;
    a.close().await;
    first.crash().await;

    let second = start_on(dir.path(), |_| {}).await;
    let teacher = Classroom::join(&second.base, &links.teacher_url, "Ms Li")
        .await
        .expect("the teacher's link still works");
    let a = Classroom::join(&second.base, &links.invite_url, "Hotan No. 3 School")
        .await
        .expect("the classroom comes back");
    for c in [&teacher, &a] {
        c.wait_for(WAIT, |m| matches!(m, ServerMessage::BoardCatchup { .. }))
            .await
            .unwrap();
        assert_eq!(
            board_seen(c),
            board_before,
            "the same board after the restart"
        );
    }
    assert_eq!(
        board_seen(&a).current_page,
        1,
        "still on the teacher's page"
    );
    let result = a
        .wait_for(WAIT, |m| matches!(m, ServerMessage::PollResult { .. }))
        .await
        .expect("the published result is shown again");
    let ServerMessage::PollResult { results } = result else {
        unreachable!()
    };
    assert_eq!(results.counts, vec![1, 0]);
    let counts = teacher
        .wait_for(WAIT, |m| {
            matches!(m, ServerMessage::PollCounts { poll_id: 2, .. })
        })
        .await
        .unwrap();
    assert!(
        matches!(counts, ServerMessage::PollCounts { counts, voters_total: 1, .. } if counts == vec![0, 1])
    );
    assert_eq!(
        polls_seen(&teacher),
        vec![(1, PollState::Published), (2, PollState::Open)]
    );

    // The lesson goes on: numbering continues where it stopped.
    draw(&teacher, json!({"op":"erase","object_ids":["a:1"]}));
    wait_seq(&a, 17).await;
    wait_seq(&teacher, 17).await;
    let board = board_seen(&a);
    assert_eq!(board, board_seen(&teacher));
    assert!(board.object("a:1").is_none());
    assert!(board.object("t:1").is_some());
    // The reconnected classroom votes in the still-open poll (a new seat: a new voter).
    send(&a, json!({"type":"poll_vote","poll_id":2,"choices":[0]}));
    teacher
        .wait_for(WAIT, |m| {
            matches!(
                m,
                ServerMessage::PollCounts {
                    voters_total: 2,
                    ..
                }
            )
        })
        .await
        .expect("votes go on after the restart");
}
