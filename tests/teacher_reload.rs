//! The teacher's page reloads mid-lesson: it comes back to its own seat, publishes anew (new
//! peer connections, new SSRCs), and a remote classroom's picture and sound continue on the
//! tracks it already had: no `track_unpublished`, no renegotiation of its subscribe leg, sequence
//! numbers that run on.

mod common;

use std::time::{Duration, Instant};

use tandem_loadtest::client::{Classroom, PublishSpec, VideoSpec};
use tandem_sfu::{MediaKind, Source};
use tandem_signaling::protocol::ServerMessage;

fn tone_and_video(hz: f32) -> PublishSpec {
    PublishSpec {
        tone_hz: Some(hz),
        video: Some(VideoSpec {
            fps: 15,
            frame_bytes: 800,
            keyframe_interval: Some(Duration::from_secs(2)),
            source: Source::Camera,
        }),
    }
}

async fn wait_until(what: &str, within: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ready() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The track ids of `from`'s `kind` that `at` receives.
fn track_ids(at: &Classroom, from: &str, kind: MediaKind) -> Vec<String> {
    let mut ids: Vec<String> = at
        .received_from(from, kind)
        .into_iter()
        .filter_map(|t| t.info.map(|i| i.track_id.to_string()))
        .collect();
    ids.sort();
    ids
}

/// Frames of `from`'s video that `at` received after `since`.
fn frames_since(at: &Classroom, from: &str, since: Instant) -> usize {
    at.received_from(from, MediaKind::Video)
        .iter()
        .flat_map(|t| t.frame_arrivals.iter())
        .filter(|t| **t > since)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teacher_who_reloads_continues_on_the_tracks_the_classrooms_have() {
    let server = common::start().await;
    let class = common::create_class(&server.base, "History").await;
    let mut teacher = Classroom::join(&server.base, &class.teacher_url, "Ms Li")
        .await
        .unwrap();
    let a = Classroom::join(&server.base, &class.invite_url, "Hotan No. 3")
        .await
        .unwrap();
    teacher.publish(tone_and_video(440.0)).await.unwrap();
    let t_id = teacher.classroom_id.clone();
    let start = Instant::now();
    wait_until("A sees the teacher", Duration::from_secs(10), || {
        frames_since(&a, &t_id, start) > 10
    })
    .await;
    let video = track_ids(&a, &t_id, MediaKind::Video);
    let audio = track_ids(&a, &t_id, MediaKind::Audio);
    assert_eq!(
        (video.len(), audio.len()),
        (1, 1),
        "A receives a camera and a microphone"
    );
    let seen = a.log().len();

    // The page reloads: its WebSocket and both peer connections go without a word, and the
    // new page joins with the teacher link alone (no resume key survives a reload).
    teacher.close().await;
    a.wait_for(Duration::from_secs(5), |m| {
        matches!(m, ServerMessage::ParticipantState { classroom_id, connected: false } if classroom_id.as_str() == t_id)
    })
    .await
    .expect("A sees the teacher's link drop");
    let mut teacher = Classroom::join(&server.base, &class.teacher_url, "Ms Li")
        .await
        .unwrap();
    assert_eq!(
        teacher.classroom_id, t_id,
        "the reloaded page takes back the teacher's seat"
    );
    teacher.publish(tone_and_video(440.0)).await.unwrap();
    let back = Instant::now();
    wait_until("A sees the teacher again", Duration::from_secs(10), || {
        frames_since(&a, &t_id, back) > 15
    })
    .await;

    assert_eq!(
        track_ids(&a, &t_id, MediaKind::Video),
        video,
        "the picture continues on the same track"
    );
    assert_eq!(
        track_ids(&a, &t_id, MediaKind::Audio),
        audio,
        "the sound continues on the same track"
    );
    let news = a.log()[seen..].to_vec();
    for m in &news {
        assert!(
            !matches!(
                m,
                ServerMessage::TrackUnpublished { .. }
                    | ServerMessage::TrackPublished { .. }
                    | ServerMessage::SubscribeOffer { .. }
                    | ServerMessage::ParticipantLeft { .. }
                    | ServerMessage::ParticipantJoined { .. }
            ),
            "A was told nothing about tracks or seats: {m:?}"
        );
    }
    assert!(
        news.iter().any(|m| matches!(m, ServerMessage::ParticipantState { classroom_id, connected: true } if classroom_id.as_str() == t_id)),
        "A sees the teacher back: {news:?}"
    );
    for kind in [MediaKind::Video, MediaKind::Audio] {
        let track = a.received_from(&t_id, kind).remove(0);
        assert!(
            track.seqs.expected() > 25,
            "{kind:?}: {} packets",
            track.seqs.expected()
        );
        // Sequence numbers run on across the new source (a jump would show as thousands of
        // holes); loopback loses nothing that retransmission does not repair.
        assert!(
            track.seqs.lost() <= 2,
            "{kind:?}: {} of {} sequence numbers never arrived",
            track.seqs.lost(),
            track.seqs.expected()
        );
    }
    drop(teacher);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_teacher_seat_whose_connection_dropped_is_taken_back() {
    let server = common::start().await;
    let class = common::create_class(&server.base, "History").await;
    let teacher = Classroom::join(&server.base, &class.teacher_url, "Ms Li")
        .await
        .unwrap();
    // A second device of the teacher's, while the first is connected: a seat of its own.
    let second = Classroom::join(&server.base, &class.teacher_url, "Ms Li (tablet)")
        .await
        .unwrap();
    assert_ne!(second.classroom_id, teacher.classroom_id);

    // A classroom link names no seat: a classroom that comes back without its resume key is
    // a new classroom, even while another one's seat waits out its grace period.
    let mut a = Classroom::join(&server.base, &class.invite_url, "Room A")
        .await
        .unwrap();
    let a_id = a.classroom_id.clone();
    a.close().await;
    teacher
        .wait_for(Duration::from_secs(5), |m| {
            matches!(m, ServerMessage::ParticipantState { classroom_id, connected: false } if classroom_id.as_str() == a_id)
        })
        .await
        .expect("the teacher sees A's link drop");
    let b = Classroom::join(&server.base, &class.invite_url, "Room B")
        .await
        .unwrap();
    assert_ne!(b.classroom_id, a_id, "B does not take A's seat");
}
