//! The server on the open internet, attacked as an outsider would: oversized and binary floods,
//! sockets that never join, slowloris requests, too many connections from one address, classes
//! created cross-site or by the thousand, headers, and classes nobody closes.

#[path = "support/classboard.rs"]
mod support;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use support::*;
use tandem_loadtest::client::{Classroom, token_from_link, ws_url};
use tandem_signaling::protocol::{ErrorCode, ServerMessage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn raw_ws(base: &str) -> Ws {
    tokio_tungstenite::connect_async(ws_url(base))
        .await
        .expect("connects")
        .0
}

/// Read until the server closes: its close code (if it sent a close frame) and the protocol
/// messages before it.
async fn until_closed(ws: &mut Ws, within: Duration) -> (Option<CloseCode>, Vec<ServerMessage>) {
    let mut messages = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => panic!("still open after {within:?}; got {messages:?}"),
            Ok(None) | Ok(Some(Err(_))) => return (None, messages),
            Ok(Some(Ok(Message::Close(frame)))) => return (frame.map(|f| f.code), messages),
            Ok(Some(Ok(Message::Text(text)))) => {
                if let Ok(m) = serde_json::from_str(&text) {
                    messages.push(m);
                }
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Whether the server closes this TCP connection within `within` (EOF or reset on read).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {} // a 408 or similar before the close is fine
        }
    }
}

#[tokio::test]
async fn an_oversized_frame_is_refused_before_it_is_buffered() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_on(dir.path(), |_| {}).await;
    let mut ws = raw_ws(&s.base).await;
    // 1 MiB in one frame, never joined: over the 64 KiB limit, the connection is closed as soon
    // as the frame header is read (close code 1009; the close frame may be lost to the reset
    // that closing with the rest of the frame unread causes).
    let _ = ws.send(Message::binary(vec![b'a'; 1024 * 1024])).await;
    let (code, _) = until_closed(&mut ws, WAIT).await;
    assert!(matches!(code, Some(CloseCode::Size) | None), "{code:?}");
    // A text message one byte over the limit is refused the same way.
    let mut ws = raw_ws(&s.base).await;
    let _ = ws.send(Message::text("x".repeat(64 * 1024 + 1))).await;
    let (code, _) = until_closed(&mut ws, WAIT).await;
    assert!(matches!(code, Some(CloseCode::Size) | None), "{code:?}");
    // Exactly the limit is still a message (answered, not closed).
    let mut ws = raw_ws(&s.base).await;
    let head = r#"{"type":"ping","pad":""#;
    let padded = format!("{head}{}\"}}", " ".repeat(64 * 1024 - head.len() - 2));
    assert_eq!(padded.len(), 64 * 1024);
    ws.send(Message::text(padded)).await.unwrap();
    let answer = tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) => return Some(text),
                Some(Ok(Message::Ping(_))) => continue,
                _ => return None,
            }
        }
    })
    .await
    .expect("an answer in time");
    assert!(
        answer.is_some_and(|t| t.contains("not_joined")),
        "answered, not closed"
    );
    // And others are served meanwhile.
    let ok = reqwest::get(format!("{}/healthz", s.base)).await.unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn binary_floods_are_rate_limited_like_text() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_on(dir.path(), |_| {}).await;
    let mut ws = raw_ws(&s.base).await;
    for _ in 0..400 {
        ws.send(Message::binary(vec![0u8; 8])).await.unwrap();
    }
    let mut limited = 0;
    let mut answers = 0;
    while answers < 400 {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("answers in time")
            .expect("open")
            .expect("a frame");
        if let Message::Text(text) = frame {
            answers += 1;
            if let Ok(ServerMessage::Error {
                code: ErrorCode::RateLimited,
                ..
            }) = serde_json::from_str(&text)
            {
                limited += 1;
            }
        }
    }
    assert!(
        limited >= 250,
        "only {limited} of 400 binary frames were rate limited"
    );
}

#[tokio::test]
async fn a_socket_that_does_not_join_is_closed_and_each_address_has_few_of_them() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_on(dir.path(), |c| {
        c.ws_join_timeout_secs = 1;
        c.ws_max_unjoined_per_ip = 3;
    })
    .await;
    let links = create_class(&s.base, "Patience").await;

    let started = Instant::now();
    let mut idle = raw_ws(&s.base).await;
    let (code, messages) = until_closed(&mut idle, WAIT).await;
    assert_eq!(code, Some(CloseCode::Policy));
    assert!(
        messages.iter().any(|m| matches!(
            m,
            ServerMessage::Error {
                code: ErrorCode::NotJoined,
                ..
            }
        )),
        "{messages:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    // Three waiting sockets from one address; a fourth is refused at the upgrade.
    let mut waiting = Vec::new();
    for _ in 0..3 {
        waiting.push(raw_ws(&s.base).await);
    }
    let refused = tokio_tungstenite::connect_async(ws_url(&s.base)).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429)
        }
        other => panic!("a fourth unjoined socket was let in: {:?}", other.is_ok()),
    }
    // A socket that joins gives its place back.
    let token = token_from_link(&links.invite_url).unwrap();
    let join = serde_json::json!({"type": "join", "v": 1, "token": token, "name": "Room"});
    waiting[0]
        .send(Message::text(join.to_string()))
        .await
        .unwrap();
    let room = &mut waiting[0];
    let welcomed = tokio::time::timeout(WAIT, async {
        while let Some(Ok(frame)) = room.next().await {
            if let Message::Text(text) = frame
                && text.contains("\"welcome\"")
            {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(welcomed);
    let deadline = Instant::now() + WAIT;
    loop {
        if tokio_tungstenite::connect_async(ws_url(&s.base))
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the joined socket's place came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn slowloris_requests_and_idle_bodies_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_on(dir.path(), |c| {
        c.http_header_timeout_secs = 1;
        c.http_idle_timeout_secs = 1;
    })
    .await;
    let addr = s.server.http_addr;
    // Headers begun and never finished.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert!(
        closed_within(&mut slow, Duration::from_secs(5)).await,
        "a request whose headers never end is closed"
    );
    // A body announced and trickled out no further.
    let mut body = TcpStream::connect(addr).await.unwrap();
    body.write_all(
        b"POST /api/classes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"ti",
    )
    .await
    .unwrap();
    assert!(
        closed_within(&mut body, Duration::from_secs(5)).await,
        "a connection that goes quiet mid-body is closed"
    );
    // Meanwhile the server answers everybody else.
    let ok = reqwest::get(format!("{}/healthz", s.base)).await.unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn the_http_idle_timeout_does_not_cut_a_quiet_websocket() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_on(dir.path(), |c| {
        c.http_header_timeout_secs = 1;
        c.http_idle_timeout_secs = 1;
        c.heartbeat_secs = 30; // no server pings during the quiet spell
    })
    .await;
    let links = create_class(&s.base, "Quiet").await;
    let room = Classroom::join(&s.base, &links.invite_url, "Quiet Room")
        .await
        .unwrap();
    // Three idle timeouts without a byte either way: what is being checked is that nothing
    // happens, so this one wait is a fixed span.
    tokio::time::sleep(Duration::from_secs(3)).await;
    room.send(&tandem_signaling::protocol::ClientMessage::Ping)
        .unwrap();
    let pongs = |m: &ServerMessage| matches!(m, ServerMessage::Pong);
    room.wait_for(WAIT, pongs)
        .await
        .expect("the WebSocket is still open after the HTTP idle timeout");
}

#[tokio::test]
async fn one_address_cannot_hold_every_connection() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_on(dir.path(), |c| c.max_connections_per_ip = 5).await;
    let addr = s.server.http_addr;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    let mut sixth = TcpStream::connect(addr).await.unwrap();
    let _ = sixth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    assert!(
        closed_within(&mut sixth, Duration::from_secs(5)).await,
        "the sixth connection from one address is closed unanswered"
    );
    // One of the five goes: room for a request again.
    drop(held.pop());
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(r) = reqwest::get(format!("{}/healthz", s.base)).await
            && r.status() == 200
        {
            break;
        }
        assert!(Instant::now() < deadline, "served again once under the cap");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn class_creation_takes_json_the_key_and_a_modest_rate() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_on(dir.path(), |c| {
        c.create_key = Some("staff-room-7".into());
        c.create_per_minute = 4;
    })
    .await;
    let http = reqwest::Client::new();
    let info: serde_json::Value = http
        .get(format!("{}/api/server", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["create_key_required"], true);
    let body = r#"{"title":"Maths","teacher_name":"Ms Li"}"#;
    // The status of a class creation with this content type and key.
    let status = |content_type: &'static str, key: Option<&'static str>| {
        let mut req = http
            .post(format!("{}/api/classes", s.base))
            .header("content-type", content_type)
            .body(body);
        if let Some(key) = key {
            req = req.header("x-tandem-create-key", key);
        }
        async move { req.send().await.unwrap().status() }
    };
    // What a form on another site can send without asking: refused before anything else.
    assert_eq!(status("text/plain", Some("staff-room-7")).await, 415);
    assert_eq!(status("application/json", None).await, 401);
    assert_eq!(status("application/json", Some("staff-room-8")).await, 401);
    assert_eq!(
        status("application/json; charset=utf-8", Some("staff-room-7")).await,
        201
    );
    // Four a minute from this address (the refused `text/plain` does not count, the three above
    // do): one more, then refused.
    assert_eq!(status("application/json", Some("staff-room-7")).await, 201);
    assert_eq!(status("application/json", Some("staff-room-7")).await, 429);
}

#[tokio::test]
async fn pages_carry_a_strict_policy_and_the_api_is_not_sniffed() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_on(dir.path(), |_| {}).await;
    for path in ["/", "/teach/c_x", "/js/app.js", "/api/server"] {
        let r = reqwest::get(format!("{}{path}", s.base)).await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.starts_with("default-src 'self'"), "{path}: {csp}");
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{path}: {csp}"
        );
    }
    let info: serde_json::Value = reqwest::get(format!("{}/api/server", s.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        info["create_key_required"], false,
        "no key on a test server"
    );
}

/// `tandem_classes_active` from `/metrics`.
async fn classes_active(base: &str) -> f64 {
    metric(base, "tandem_classes_active").await
}

#[tokio::test]
async fn an_empty_class_ends_by_itself_and_old_records_go() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_on(dir.path(), |c| {
        c.class_idle_minutes = 1.0 / 60.0; // one second
        c.retention_days = 3.0 / 86_400.0; // three seconds
    })
    .await;
    let links = create_class(&s.base, "Left alone").await;
    let teacher = Classroom::join(&s.base, &links.teacher_url, "Ms Li")
        .await
        .unwrap();
    assert_eq!(classes_active(&s.base).await, 1.0);
    teacher.leave().await;
    // Ended: out of memory, the links say so.
    let deadline = Instant::now() + WAIT;
    while classes_active(&s.base).await != 0.0 {
        assert!(Instant::now() < deadline, "the empty class is still live");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let info = |token: String| {
        reqwest::get(format!(
            "{}/api/classes/{}?token={token}",
            s.base, links.class_id
        ))
    };
    assert_eq!(
        info(links.invite_token.clone()).await.unwrap().status(),
        410
    );
    let attendance = s.server.hub.store.attendance(&links.class_id).unwrap();
    assert!(
        attendance.iter().all(|a| a.left_at.is_some()),
        "{attendance:?}"
    );
    // A class nobody ever opened ends the same way.
    let never = create_class(&s.base, "Never opened").await;
    // And once past retention, both are gone from the records.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let a = info(links.invite_token.clone()).await.unwrap().status();
        let b = reqwest::get(format!(
            "{}/api/classes/{}?token={}",
            s.base, never.class_id, never.invite_token
        ))
        .await
        .unwrap()
        .status();
        if a == 404 && b == 404 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "records past retention are still there ({a}, {b})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        s.server
            .hub
            .store
            .attendance(&links.class_id)
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn the_open_file_limit_is_raised_to_the_hard_limit() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_on(dir.path(), |_| {}).await;
    let limits = std::fs::read_to_string("/proc/self/limits").expect("Linux");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("open files line");
    let fields: Vec<&str> = line.split_whitespace().collect();
    // "Max open files <soft> <hard> files"
    let (soft, hard) = (fields[3], fields[4]);
    assert_eq!(soft, hard, "{line}");
    if let Ok(hard) = hard.parse::<usize>() {
        assert_eq!(s.server.max_connections, hard - 64);
    }
}
