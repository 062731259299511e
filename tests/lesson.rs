//! A whole lesson, end to end, with real WebRTC peers: the teacher teaches, two remote classrooms
//! join by link, one is put on stage, a late classroom joins, one leaves.

mod common;

use std::time::Duration;

use tandem_loadtest::client::{Classroom, PublishSpec, VideoSpec, decode_opus, dominant_frequency};
use tandem_sfu::{MediaKind, Source};
use tandem_signaling::protocol::{ClientMessage, ServerMessage};

fn lesson_media(tone_hz: f32) -> PublishSpec {
    PublishSpec {
        tone_hz: Some(tone_hz),
        video: Some(VideoSpec {
            fps: 15,
            frame_bytes: 900,
            // Keyframes only when asked: a late joiner's picture proves the request path works.
            keyframe_interval: None,
            source: Source::Camera,
        }),
    }
}

/// The tone a classroom hears from `from`, if any.
fn heard(classroom: &Classroom, from: &str) -> Option<f32> {
    let audio = classroom.received_from(from, MediaKind::Audio);
    let track = audio.into_iter().max_by_key(|t| t.packets)?;
    let pcm = decode_opus(track.opus).ok()?;
    dominant_frequency(&pcm, 200.0, 1200.0)
}

/// How long a test waits for media to show what it asserts; polling ends as soon as it does.
const PATIENCE: Duration = Duration::from_secs(20);

/// Whether `classroom` hears `from`'s tone at `hz` (±10 Hz).
fn hears(classroom: &Classroom, from: &str, hz: f32) -> bool {
    heard(classroom, from).is_some_and(|got| (got - hz).abs() <= 10.0)
}

/// Whether `classroom` receives `from`'s video: more than `frames` frames and a keyframe.
fn sees(classroom: &Classroom, from: &str, frames: usize) -> bool {
    classroom
        .received_from(from, MediaKind::Video)
        .first()
        .is_some_and(|t| t.frame_arrivals.len() > frames && !t.keyframes.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lesson_between_a_master_classroom_and_two_remote_classrooms() {
    let server = common::start().await;
    let class = common::create_class(&server.base, "Grade 2 Maths").await;

    let mut teacher = Classroom::join(&server.base, &class.teacher_url, "Ms Li")
        .await
        .expect("teacher joins");
    teacher
        .publish(lesson_media(440.0))
        .await
        .expect("teacher publishes");

    let mut a = Classroom::join(&server.base, &class.invite_url, "Hotan No. 3 School")
        .await
        .expect("classroom A joins by invite link");
    a.publish(lesson_media(660.0)).await.expect("A publishes");
    let b = Classroom::join(&server.base, &class.invite_url, "Kashgar No. 1 School")
        .await
        .expect("classroom B joins by invite link");
    common::wait_until(PATIENCE, || {
        hears(&a, &teacher.classroom_id, 440.0)
            && hears(&b, &teacher.classroom_id, 440.0)
            && hears(&teacher, &a.classroom_id, 660.0)
            && sees(&a, &teacher.classroom_id, 10)
            && sees(&teacher, &a.classroom_id, 10)
    })
    .await;

    // Everyone hears the teacher's 440 Hz; the teacher hears A's 660 Hz; B does not hear A.
    for (who, classroom) in [("A", &a), ("B", &b)] {
        let hz = heard(classroom, &teacher.classroom_id)
            .unwrap_or_else(|| panic!("classroom {who} hears the teacher"));
        assert!((hz - 440.0).abs() <= 10.0, "classroom {who} hears {hz} Hz");
    }
    let hz = heard(&teacher, &a.classroom_id).expect("the teacher hears classroom A");
    assert!((hz - 660.0).abs() <= 10.0, "teacher hears {hz} Hz from A");
    assert!(
        b.received_from(&a.classroom_id, MediaKind::Audio)
            .is_empty(),
        "B must not hear A before A is on stage"
    );

    // Video flows both ways, starting with a keyframe asked for by the server.
    for (who, classroom, from) in [
        ("A", &a, &teacher.classroom_id),
        ("teacher", &teacher, &a.classroom_id),
    ] {
        let video = classroom.received_from(from, MediaKind::Video);
        let track = video
            .first()
            .unwrap_or_else(|| panic!("{who} receives video"));
        assert!(track.frame_arrivals.len() > 10, "{who} receives frames");
        assert!(!track.keyframes.is_empty(), "{who} received a keyframe");
    }

    // The teacher puts A on stage: now B hears A too.
    teacher
        .send(&ClientMessage::StageAdd {
            classroom_id: a.classroom_id.as_str().into(),
        })
        .unwrap();
    b.wait_for(Duration::from_secs(5), |m| {
        matches!(m, ServerMessage::Stage { stage } if stage.iter().any(|s| s.as_str() == a.classroom_id))
    })
    .await
    .expect("B is told A is on stage");
    common::wait_until(PATIENCE, || hears(&b, &a.classroom_id, 660.0)).await;
    let hz = heard(&b, &a.classroom_id).expect("B hears A once A is on stage");
    assert!((hz - 660.0).abs() <= 10.0, "B hears {hz} Hz from A");

    // A late classroom gets a keyframe within a second of its first video packet.
    let late = Classroom::join(&server.base, &class.invite_url, "Late School")
        .await
        .expect("late classroom joins");
    common::wait_until(PATIENCE, || sees(&late, &teacher.classroom_id, 0)).await;
    let video = late.received_from(&teacher.classroom_id, MediaKind::Video);
    let track = video
        .first()
        .expect("the late classroom receives the teacher's video");
    let first = track.first_at.expect("packets arrived");
    let keyframe = *track
        .keyframes
        .first()
        .expect("the late classroom got a keyframe");
    assert!(
        keyframe.duration_since(first) <= Duration::from_secs(1),
        "keyframe came {:?} after the first packet",
        keyframe.duration_since(first)
    );

    // B's link is weak: it switches to audio only. Its video stops, its sound goes on.
    b.send(&ClientMessage::SubscribePrefs { video: false })
        .unwrap();
    let count = |kind| -> u64 {
        b.received_from(&teacher.classroom_id, kind)
            .iter()
            .map(|t| t.packets)
            .sum()
    };
    // Video already on its way may still land: wait for half a second of sound (25 packets of
    // 20 ms) without a video packet, then watch one more second of sound (50 packets).
    common::quiet_stretch(
        PATIENCE,
        25,
        || count(MediaKind::Audio),
        || count(MediaKind::Video),
    )
    .await;
    let (video_before, audio_before) = (count(MediaKind::Video), count(MediaKind::Audio));
    common::wait_until(PATIENCE, || count(MediaKind::Audio) > audio_before + 50).await;
    assert_eq!(
        count(MediaKind::Video),
        video_before,
        "no video reaches an audio-only classroom"
    );
    assert!(
        count(MediaKind::Audio) > audio_before + 20,
        "its sound goes on"
    );

    // A leaves: its tracks end for everyone, and its legs are gone from the server.
    let legs_before = server.server.hub.sfu.transport_count().await.unwrap();
    let a_id = a.classroom_id.clone();
    a.leave().await;
    teacher
        .wait_for(Duration::from_secs(5), |m| {
            matches!(m, ServerMessage::TrackUnpublished { classroom_id, .. } if classroom_id.as_str() == a_id)
        })
        .await
        .expect("the teacher is told A's tracks ended");
    teacher
        .wait_for(Duration::from_secs(5), |m| {
            matches!(m, ServerMessage::ParticipantLeft { classroom_id } if classroom_id.as_str() == a_id)
        })
        .await
        .expect("the teacher sees A leave");
    let legs_after = server.server.hub.sfu.transport_count().await.unwrap();
    assert_eq!(legs_after, legs_before - 2, "A's two legs are closed");
    // Packets already in flight may still land; then, over half a second of the teacher's
    // sound (25 packets of 20 ms), nothing of A may arrive.
    let from_a = || b.received_from(&a_id, MediaKind::Audio)[0].packets;
    let teacher_audio = || {
        b.received_from(&teacher.classroom_id, MediaKind::Audio)
            .iter()
            .map(|t| t.packets)
            .sum::<u64>()
    };
    assert!(
        common::quiet_stretch(PATIENCE, 25, teacher_audio, from_a).await,
        "nothing of A reaches B after A left"
    );

    // The forwarding counters moved.
    let metrics = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let forwarded: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tandem_rtp_packets_forwarded_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("forwarded counter");
    assert!(forwarded > 500, "forwarded {forwarded} packets");
    // Each forwarded packet's delay inside the server was timed: as many observations as
    // forwarded packets (a datagram's copies are all sent before the next one is read), and on
    // an idle loopback nearly all of them well under 10 ms.
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in /metrics"))
    };
    let timed = value("tandem_forward_delay_seconds_count ");
    assert!(
        timed > 500.0 && timed <= forwarded as f64,
        "{timed} delays timed, {forwarded} packets forwarded"
    );
    let under_10ms = value("tandem_forward_delay_seconds_bucket{le=\"0.01\"} ");
    assert!(
        under_10ms >= 0.9 * timed,
        "{under_10ms} of {timed} under 10 ms"
    );
}
