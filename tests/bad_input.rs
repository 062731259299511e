//! Bad input gets a clear error and the class goes on: forged and expired tokens, a classroom
//! trying the teacher's controls, garbage, oversized frames and floods.

mod common;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tandem_loadtest::client::{Classroom, ws_url};
use tandem_signaling::protocol::{ClientMessage, ErrorCode, ServerMessage};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn raw(base: &str) -> Ws {
    tokio_tungstenite::connect_async(ws_url(base))
        .await
        .expect("connects")
        .0
}

/// The next protocol message on a raw socket.
async fn next(ws: &mut Ws) -> ServerMessage {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a reply in time")
            .expect("socket open")
            .expect("a frame");
        if let Message::Text(text) = frame {
            return serde_json::from_str(&text).expect("a protocol message");
        }
    }
}

/// The next answer to what this socket sent (an error or a pong), past class news.
async fn next_answer(ws: &mut Ws) -> ServerMessage {
    loop {
        let message = next(ws).await;
        if matches!(message, ServerMessage::Error { .. } | ServerMessage::Pong) {
            return message;
        }
    }
}

fn error_code(message: &ServerMessage) -> Option<ErrorCode> {
    match message {
        ServerMessage::Error { code, .. } => Some(*code),
        _ => None,
    }
}

async fn join_with(base: &str, token: &str) -> ServerMessage {
    let mut ws = raw(base).await;
    let join = serde_json::json!({"type": "join", "v": 1, "token": token, "name": "Somebody"});
    ws.send(Message::text(join.to_string())).await.unwrap();
    next(&mut ws).await
}

#[tokio::test]
async fn forged_expired_and_foreign_tokens_are_refused() {
    let server = common::start().await;
    let class = common::create_class(&server.base, "Science").await;
    let other = common::create_class(&server.base, "History").await;
    let invite = tandem_loadtest::client::token_from_link(&class.invite_url).unwrap();

    // A flipped character in the signature.
    let mut forged = invite.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(
        error_code(&join_with(&server.base, &forged).await),
        Some(ErrorCode::Unauthorized)
    );
    assert_eq!(
        error_code(&join_with(&server.base, "not-a-token").await),
        Some(ErrorCode::Unauthorized)
    );

    // Signed by the server's key, but expired.
    let expired = server
        .server
        .hub
        .tokens
        .sign(&tandem_signaling::token::Claims {
            v: 1,
            role: tandem_signaling::protocol::ParticipantRole::Master,
            class_id: class.class_id.clone(),
            exp: 1,
            nonce: "x".into(),
        });
    assert_eq!(
        error_code(&join_with(&server.base, &expired).await),
        Some(ErrorCode::Unauthorized)
    );

    // A valid invite checked against another class's page.
    let status = reqwest::get(format!(
        "{}/api/classes/{}?token={invite}",
        server.base, other.class_id
    ))
    .await
    .unwrap()
    .status();
    assert_eq!(status, 401);
    let info = |token: String| {
        let url = format!(
            "{}/api/classes/{}?token={token}",
            server.base, class.class_id
        );
        async move {
            let response = reqwest::get(url).await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<serde_json::Value>().await.unwrap()
        }
    };
    let seen_by_classroom = info(invite.clone()).await;
    assert_eq!(seen_by_classroom["title"], "Science");
    assert!(
        seen_by_classroom.get("invite_url").is_none(),
        "a classroom is not handed the class's links"
    );
    // The teacher on another device gets the invite link again, and it works.
    let teacher_token = tandem_loadtest::client::token_from_link(&class.teacher_url).unwrap();
    let seen_by_teacher = info(teacher_token).await;
    let invite_again = seen_by_teacher["invite_url"]
        .as_str()
        .expect("the teacher gets the invite link");
    let again = tandem_loadtest::client::token_from_link(invite_again).unwrap();
    assert!(
        matches!(
            join_with(&server.base, &again).await,
            ServerMessage::Welcome { .. }
        ),
        "the re-issued invite link works"
    );
    let status = reqwest::get(format!("{}/api/classes/c_nope?token={invite}", server.base))
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_remote_classroom_cannot_use_the_teachers_controls() {
    let server = common::start().await;
    let class = common::create_class(&server.base, "Art").await;
    let teacher = Classroom::join(&server.base, &class.teacher_url, "Ms Li")
        .await
        .unwrap();
    let a = Classroom::join(&server.base, &class.invite_url, "Room A")
        .await
        .unwrap();
    for message in [
        ClientMessage::StageAdd {
            classroom_id: a.classroom_id.as_str().into(),
        },
        ClientMessage::MuteRequest {
            classroom_id: teacher.classroom_id.as_str().into(),
        },
        ClientMessage::LowerHand {
            classroom_id: Some(teacher.classroom_id.as_str().into()),
        },
        ClientMessage::EndClass,
    ] {
        let kind = message.kind();
        a.send(&message).unwrap();
        let reply = a
            .wait_for(
                Duration::from_secs(5),
                |m| matches!(m, ServerMessage::Error { in_reply_to: Some(k), .. } if k == kind),
            )
            .await
            .unwrap_or_else(|_| panic!("{kind} is refused"));
        assert_eq!(error_code(&reply), Some(ErrorCode::Forbidden), "{kind}");
    }
    // The class went on: the teacher can still do all of it.
    teacher
        .send(&ClientMessage::StageAdd {
            classroom_id: a.classroom_id.as_str().into(),
        })
        .unwrap();
    a.wait_for(
        Duration::from_secs(5),
        |m| matches!(m, ServerMessage::Stage { stage } if stage.len() == 1),
    )
    .await
    .expect("the teacher's stage change reaches A");
}

#[tokio::test]
async fn garbage_huge_frames_and_floods_get_errors_and_others_are_served() {
    let server = common::start().await;
    let class = common::create_class(&server.base, "Music").await;
    let bystander = Classroom::join(&server.base, &class.invite_url, "Quiet Room")
        .await
        .unwrap();

    let mut ws = raw(&server.base).await;
    // Anything before join.
    ws.send(Message::text(r#"{"type":"raise_hand"}"#))
        .await
        .unwrap();
    assert_eq!(
        error_code(&next_answer(&mut ws).await),
        Some(ErrorCode::NotJoined)
    );
    let invite = tandem_loadtest::client::token_from_link(&class.invite_url).unwrap();
    let join = serde_json::json!({"type": "join", "v": 1, "token": invite, "name": "Noisy Room"});
    ws.send(Message::text(join.to_string())).await.unwrap();
    assert!(matches!(next(&mut ws).await, ServerMessage::Welcome { .. }));

    for garbage in [
        "not json",
        "{}",
        r#"{"type":"launch_missiles"}"#,
        r#"{"type":"stage_add"}"#,
    ] {
        ws.send(Message::text(garbage)).await.unwrap();
        assert_eq!(
            error_code(&next_answer(&mut ws).await),
            Some(ErrorCode::BadMessage),
            "{garbage}"
        );
    }
    ws.send(Message::binary(vec![0u8; 10])).await.unwrap();
    assert_eq!(
        error_code(&next_answer(&mut ws).await),
        Some(ErrorCode::BadMessage)
    );

    // A flood: past the burst, messages are refused with `rate_limited`.
    for _ in 0..300 {
        ws.send(Message::text(r#"{"type":"ping"}"#)).await.unwrap();
    }
    let mut limited = 0;
    for _ in 0..300 {
        if error_code(&next_answer(&mut ws).await) == Some(ErrorCode::RateLimited) {
            limited += 1;
        }
    }
    assert!(
        limited >= 100,
        "only {limited} of 300 flood messages were limited"
    );

    // Others were served all along, and the noisy connection recovers after a pause.
    bystander.send(&ClientMessage::Ping).unwrap();
    bystander
        .wait_for(Duration::from_secs(5), |m| matches!(m, ServerMessage::Pong))
        .await
        .expect("the bystander is answered");
    tokio::time::sleep(Duration::from_millis(500)).await;
    ws.send(Message::text(r#"{"type":"ping"}"#)).await.unwrap();
    assert!(matches!(next_answer(&mut ws).await, ServerMessage::Pong));
    // Nothing stored was lost: the class is still there for a new classroom.
    let late = Classroom::join(&server.base, &class.invite_url, "Late Room").await;
    assert!(late.is_ok(), "the class still admits classrooms");
}

#[tokio::test]
async fn the_api_refuses_bad_class_requests() {
    let server = common::start().await;
    let http = reqwest::Client::new();
    let post = |body: String| {
        http.post(format!("{}/api/classes", server.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    assert_eq!(post("nonsense".into()).await.unwrap().status(), 400);
    assert_eq!(
        post(r#"{"title":"","teacher_name":"x"}"#.into())
            .await
            .unwrap()
            .status(),
        400
    );
    let long = format!(r#"{{"title":"{}","teacher_name":"x"}}"#, "t".repeat(300));
    assert_eq!(post(long).await.unwrap().status(), 400);
    let huge = format!(r#"{{"title":"{}","teacher_name":"x"}}"#, "t".repeat(20_000));
    assert_eq!(post(huge).await.unwrap().status(), 413);
    assert_eq!(
        post(r#"{"title":"Maths","teacher_name":"Ms Li"}"#.into())
            .await
            .unwrap()
            .status(),
        201
    );
}
