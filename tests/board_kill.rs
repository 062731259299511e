//! `kill -9` in the middle of a busy lesson: several classes draw at once, so the database writer
//! thread commits their ops in shared transactions, and the server process is killed while ops
//! are queued and in flight. Every op any screen was shown (a broadcast is the author's
//! acknowledgement) must be on record after the crash, with no gap in any class's seqs.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tandem_loadtest::client::Classroom;
use tandem_signaling::protocol::ServerMessage;
use tandem_signaling::store::Store;
use tokio::process::Child;

mod common;

const WAIT: Duration = Duration::from_secs(20);
const CLASSES: usize = 6;
/// Ops every class must have shown before the kill, so the kill lands mid-stream.
const BEFORE_KILL: u64 = 60;

async fn spawn(data: &Path) -> (Child, String) {
    common::spawn_binary(
        data,
        &[
            "--board-max-ops-per-sec",
            "2000",
            "--board-burst",
            "2000",
            "--ws-max-messages-per-sec",
            "2000",
            "--ws-burst",
            "2000",
            "--create-per-minute",
            "0",
        ],
        WAIT,
    )
    .await
}

/// The highest board seq this screen has been shown.
fn shown(c: &Classroom) -> u64 {
    c.log()
        .iter()
        .filter_map(|m| match m {
            ServerMessage::BoardOp { applied } => Some(applied.seq),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_shown_before_a_kill_9_are_all_on_record() {
    let data = tempfile::tempdir().unwrap();
    let (mut child, base) = spawn(data.path()).await;
    let http = reqwest::Client::new();

    let mut classes = Vec::new();
    for i in 0..CLASSES {
        let created: serde_json::Value = http
            .post(format!("{base}/api/classes"))
            .json(&json!({"title": format!("Class {i}"), "teacher_name": "Ms Li"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let link = |k: &str| created[k].as_str().unwrap().to_owned();
        let teacher = Classroom::join(&base, &link("teacher_url"), "Ms Li")
            .await
            .unwrap();
        let room = Classroom::join(&base, &link("invite_url"), "Hotan No. 3")
            .await
            .unwrap();
        classes.push((link("class_id"), Arc::new(teacher), room));
    }

    // Every teacher draws one long stroke as fast as the server takes it, until the kill.
    let mut pens = Vec::new();
    for (i, (_, teacher, _)) in classes.iter().enumerate() {
        let teacher = teacher.clone();
        pens.push(tokio::spawn(async move {
            let id = format!("t{i}");
            let op = |op: serde_json::Value| json!({"type": "board_op", "op": op}).to_string();
            if teacher
                .send_raw(op(json!({"op":"stroke_begin","object_id":id,"page":0,"tool":"pen","color":"#000000","width":3,"point":[0,0]})))
                .is_err()
            {
                return;
            }
            for x in 1..4000u32 {
                let append = json!({"op":"stroke_append","object_id":id,"points":[[x, 1]]});
                if teacher.send_raw(op(append)).is_err() {
                    return;
                }
                // Keep a few ops in flight, not thousands in the socket.
                while x as u64 > shown(&teacher) + 8 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }));
    }
    let deadline = Instant::now() + WAIT;
    while classes
        .iter()
        .any(|(_, teacher, room)| shown(teacher).min(shown(room)) < BEFORE_KILL)
    {
        assert!(
            Instant::now() < deadline,
            "every class drew {BEFORE_KILL} ops"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    child.start_kill().expect("SIGKILL sent");
    child.wait().await.expect("killed");
    for pen in pens {
        pen.abort();
    }
    // What each class's screens were shown, read only once the process is gone.
    let acked: Vec<(String, u64)> = classes
        .iter()
        .map(|(id, teacher, room)| (id.clone(), shown(teacher).max(shown(room))))
        .collect();

    let store = Store::open(&data.path().join("tandem.db")).unwrap();
    for (class_id, acked) in acked {
        let (count, max): (u64, u64) = store
            .with_reader(|conn| {
                conn.query_row(
                    "SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM board_ops WHERE class_id = ?1",
                    [&class_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
            })
            .unwrap()
            .unwrap();
        println!("class {class_id}: {acked} ops shown before the kill, {max} on record");
        assert!(
            max >= acked,
            "class {class_id}: op {acked} was shown but only {max} are on record"
        );
        assert_eq!(count, max, "class {class_id}: no gap in the stored seqs");
    }
}
