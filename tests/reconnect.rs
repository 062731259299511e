//! A classroom on a weak link drops and comes back: within the grace period it gets its place back;
//! after it, it is gone for everyone.

mod common;

use std::time::Duration;

use tandem_loadtest::client::Classroom;
use tandem_signaling::Config;
use tandem_signaling::protocol::ServerMessage;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_classroom_resumes_its_place_within_the_grace_period() {
    let server = common::start().await;
    let class = common::create_class(&server.base, "Geography").await;
    let teacher = Classroom::join(&server.base, &class.teacher_url, "Ms Li")
        .await
        .unwrap();
    let mut a = Classroom::join(&server.base, &class.invite_url, "Hotan No. 3")
        .await
        .unwrap();
    let (id, session) = (a.classroom_id.clone(), a.session.clone());
    teacher
        .send(&tandem_signaling::protocol::ClientMessage::StageAdd {
            classroom_id: id.as_str().into(),
        })
        .unwrap();

    // The link dies without a goodbye.
    a.close().await;
    teacher
        .wait_for(Duration::from_secs(5), |m| {
            matches!(m, ServerMessage::ParticipantState { classroom_id, connected: false } if classroom_id.as_str() == id)
        })
        .await
        .expect("the teacher sees A's link drop");

    let back = Classroom::rejoin(
        &server.base,
        &class.invite_url,
        "Hotan No. 3",
        Some(session),
    )
    .await
    .unwrap();
    assert_eq!(back.classroom_id, id, "A got its place back");
    let welcome = back.log().into_iter().next().unwrap();
    let ServerMessage::Welcome { stage, .. } = welcome else {
        panic!("welcome first")
    };
    assert!(
        stage.iter().any(|s| s.as_str() == id),
        "and is still on stage"
    );
    teacher
        .wait_for(Duration::from_secs(5), |m| {
            matches!(m, ServerMessage::ParticipantState { classroom_id, connected: true } if classroom_id.as_str() == id)
        })
        .await
        .expect("the teacher sees A back");
    assert!(
        !teacher
            .log()
            .iter()
            .any(|m| matches!(m, ServerMessage::ParticipantLeft { .. })),
        "nobody left"
    );

    // A forged resume key does not take anyone's place.
    let stranger = Classroom::rejoin(
        &server.base,
        &class.invite_url,
        "Stranger",
        Some("s_forged".into()),
    )
    .await
    .unwrap();
    assert_ne!(stranger.classroom_id, id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_classroom_that_does_not_come_back_is_gone_after_the_grace_period() {
    let data = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(data.path().to_path_buf());
    config.reconnect_grace_secs = 1;
    let server = tandem_signaling::start(config).await.unwrap();
    let base = format!("http://{}", server.http_addr);
    let class = common::create_class(&base, "Biology").await;
    let teacher = Classroom::join(&base, &class.teacher_url, "Ms Li")
        .await
        .unwrap();
    let mut a = Classroom::join(&base, &class.invite_url, "Room A")
        .await
        .unwrap();
    let id = a.classroom_id.clone();
    a.close().await;
    teacher
        .wait_for(Duration::from_secs(5), |m| {
            matches!(m, ServerMessage::ParticipantLeft { classroom_id } if classroom_id.as_str() == id)
        })
        .await
        .expect("A is gone after the grace period");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_dropped_by_the_heartbeat() {
    use futures_util::StreamExt;
    let data = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(data.path().to_path_buf());
    config.heartbeat_secs = 1;
    config.heartbeat_timeout_secs = 2;
    let server = tandem_signaling::start(config).await.unwrap();
    let base = format!("http://{}", server.http_addr);
    // A client that connects and then never reads nor answers pings: its socket is closed.
    let (ws, _) = tokio_tungstenite::connect_async(tandem_loadtest::client::ws_url(&base))
        .await
        .unwrap();
    let (_sink, mut stream) = ws.split();
    // Reading only pings would answer them (tungstenite replies automatically), so stop
    // reading entirely and check later that the server hung up.
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Drain what was sent meanwhile; a server that still pings after this never hung up.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let closed = loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => break false,
            Ok(None) | Ok(Some(Err(_))) => break true,
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_)))) => break true,
            Ok(Some(Ok(_))) => continue,
        }
    };
    assert!(closed, "the server hung up on the silent client");
}
