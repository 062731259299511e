//! The real `tandem` binary stopped two ways. SIGTERM: every WebSocket client is told the server is
//! going away (`server_going_away`, close code 1001), attendance is closed, the database flushed,
//! and the process exits 0 within 5 s. SIGKILL: the attendance rows the crash left open are closed
//! at the next start, no later than the last time the server was seen alive. And in process, as
//! the other tests run a server: once stopped, nothing of it is left running and its ports are
//! free.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tandem_loadtest::client::{token_from_link, ws_url};
use tandem_signaling::Config;
use tandem_signaling::store::Store;
use tokio::process::Child;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const WAIT: Duration = Duration::from_secs(15);

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The binary on `data`, and its HTTP base URL once it says it is ready.
async fn spawn(data: &Path) -> (Child, String) {
    common::spawn_binary(data, &[], WAIT).await
}

fn signal(child: &Child, name: &str) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

async fn create_class(base: &str) -> (String, String) {
    let body: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/api/classes"))
        .json(&serde_json::json!({"title": "Stopping", "teacher_name": "Ms Li"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        body["class_id"].as_str().unwrap().to_owned(),
        body["invite_url"].as_str().unwrap().to_owned(),
    )
}

/// A classroom joined over a raw WebSocket (welcome received).
async fn join(base: &str, invite_url: &str, name: &str) -> Ws {
    let mut ws = tokio_tungstenite::connect_async(ws_url(base))
        .await
        .unwrap()
        .0;
    let token = token_from_link(invite_url).unwrap();
    let join = serde_json::json!({"type": "join", "v": 1, "token": token, "name": name});
    ws.send(Message::text(join.to_string())).await.unwrap();
    tokio::time::timeout(WAIT, async {
        while let Some(Ok(frame)) = ws.next().await {
            if let Message::Text(text) = frame
                && text.contains("\"welcome\"")
            {
                return;
            }
        }
        panic!("closed before welcome");
    })
    .await
    .expect("welcome in time");
    ws
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn sigterm_says_goodbye_closes_attendance_and_exits_0_within_5_s() {
    let data = tempfile::tempdir().unwrap();
    let (mut child, base) = spawn(data.path()).await;
    let (class_id, invite) = create_class(&base).await;
    let mut rooms = vec![
        join(&base, &invite, "Hotan No. 3").await,
        join(&base, &invite, "Kashgar No. 1").await,
    ];

    let asked = Instant::now();
    signal(&child, "TERM");
    for ws in &mut rooms {
        let mut told = false;
        let code = tokio::time::timeout(WAIT, async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(text))) => {
                        told |= text.contains("\"server_going_away\"");
                    }
                    Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return None,
                }
            }
        })
        .await
        .expect("closed in time");
        assert!(told, "the client is told the server is going away");
        assert_eq!(code, Some(CloseCode::Away));
    }
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("exits within 5 s")
        .unwrap();
    let took = asked.elapsed();
    assert!(status.success(), "exit status {status:?}");
    println!("SIGTERM to exit: {} ms", took.as_millis());

    let store = Store::open(&data.path().join("tandem.db")).unwrap();
    let attendance = store.attendance(&class_id).unwrap();
    assert_eq!(attendance.len(), 2);
    for row in &attendance {
        let left = row.left_at.expect("attendance closed at shutdown");
        assert!(left >= row.joined_at && left <= unix_now());
    }
    // Flushed: the write-ahead log was folded into the database file.
    let wal = data.path().join("tandem.db-wal");
    assert!(
        std::fs::metadata(&wal).map_or(0, |m| m.len()) == 0,
        "the WAL is empty after a clean stop"
    );
}

#[tokio::test]
async fn attendance_cut_by_a_crash_is_closed_at_the_next_start() {
    let data = tempfile::tempdir().unwrap();
    let (mut child, base) = spawn(data.path()).await;
    let (class_id, invite) = create_class(&base).await;
    let _room = join(&base, &invite, "Hotan No. 3").await;
    let killed_at = unix_now();
    signal(&child, "KILL");
    child.wait().await.unwrap();
    {
        let store = Store::open(&data.path().join("tandem.db")).unwrap();
        let rows = store.attendance(&class_id).unwrap();
        assert!(rows[0].left_at.is_none(), "the crash left the row open");
    }

    // Restart in a later second than the crash, so "closed at the restart" would show.
    while unix_now() <= killed_at {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_again, _) = spawn(data.path()).await;
    let store = Store::open(&data.path().join("tandem.db")).unwrap();
    let rows = store.attendance(&class_id).unwrap();
    assert_eq!(rows.len(), 1);
    let left = rows[0].left_at.expect("closed at the next start");
    assert!(
        left >= rows[0].joined_at && left <= killed_at,
        "closed at the last time the server was seen ({left}), not at the restart"
    );
}

/// After `shutdown` (the SIGTERM path) and after `abort` (the crash the restart tests simulate)
/// every task of the server has ended, so nothing holds the hub any more, and the HTTP port and
/// the media port (UDP and ICE-TCP) can be bound again. A connected classroom and one waiting out
/// its reconnect grace period are there when it stops.
#[tokio::test]
async fn stopped_in_process_nothing_runs_on_and_the_ports_are_free() {
    for crash in [false, true] {
        let data = tempfile::tempdir().unwrap();
        let mut config = Config::for_tests(data.path().to_path_buf());
        config.ice_tcp = true;
        let server = tandem_signaling::start(config)
            .await
            .expect("server starts");
        let base = format!("http://{}", server.http_addr);
        let (_, invite) = create_class(&base).await;
        let _staying = join(&base, &invite, "Hotan No. 3").await;
        drop(join(&base, &invite, "Kashgar No. 1").await);
        let hub = Arc::clone(&server.hub);
        assert!(
            common::wait_until(WAIT, || hub.census().1 == 1).await,
            "the dropped classroom is waiting out its grace period"
        );
        let hub = {
            let weak = Arc::downgrade(&hub);
            drop(hub);
            weak
        };
        let (http, media) = (server.http_addr, server.media_addr);
        if crash {
            server.abort().await;
        } else {
            server.shutdown().await.expect("shuts down");
        }
        let how = if crash { "abort" } else { "shutdown" };
        assert!(
            common::wait_until(WAIT, || hub.upgrade().is_none()).await,
            "after {how}, a task of the server still holds the hub"
        );
        assert!(
            common::wait_until(WAIT, || std::net::UdpSocket::bind(media).is_ok()).await,
            "after {how}, the media UDP port {media} is still taken"
        );
        assert!(
            common::wait_until(WAIT, || std::net::TcpListener::bind(media).is_ok()).await,
            "after {how}, the ICE-TCP port {media} is still taken"
        );
        assert!(
            common::wait_until(WAIT, || std::net::TcpListener::bind(http).is_ok()).await,
            "after {how}, the HTTP port {http} is still taken"
        );
    }
}
