//! Classrooms joining at the same moment (the first minutes of every lesson) all get the picture.

mod common;

use std::time::Duration;

use tandem_loadtest::client::{Classroom, PublishSpec, VideoSpec};
use tandem_sfu::{MediaKind, Source};
use tandem_signaling::protocol::ClientMessage;

fn media(hz: f32) -> PublishSpec {
    PublishSpec {
        tone_hz: Some(hz),
        video: Some(VideoSpec {
            fps: 15,
            frame_bytes: 900,
            keyframe_interval: None,
            source: Source::Camera,
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_classrooms_joining_together_all_see_the_teacher() {
    let server = common::start().await;
    let class = common::create_class(&server.base, "Assembly").await;
    let mut teacher = Classroom::join(&server.base, &class.teacher_url, "Ms Li")
        .await
        .unwrap();
    teacher.publish(media(440.0)).await.unwrap();

    let join = |name: &'static str| {
        let (base, invite) = (server.base.clone(), class.invite_url.clone());
        async move {
            let mut c = Classroom::join(&base, &invite, name).await.unwrap();
            c.publish(media(660.0)).await.unwrap();
            c
        }
    };
    let (a, b, c) = tokio::join!(join("A"), join("B"), join("C"));
    // The teacher calls one up at once, while the others are still negotiating.
    teacher
        .send(&ClientMessage::StageAdd {
            classroom_id: a.classroom_id.as_str().into(),
        })
        .unwrap();
    // Wait until every classroom has what the assertions below check (or 20 s have passed).
    let pictured = |room: &Classroom| {
        room.received_from(&teacher.classroom_id, MediaKind::Video)
            .first()
            .is_some_and(|t| !t.keyframes.is_empty() && t.frame_arrivals.len() > 15)
    };
    let hears_a = |room: &Classroom| {
        room.received_from(&a.classroom_id, MediaKind::Audio)
            .first()
            .is_some_and(|t| t.packets > 20)
    };
    common::wait_until(Duration::from_secs(20), || {
        [&a, &b, &c].into_iter().all(pictured) && [&b, &c].into_iter().all(hears_a)
    })
    .await;
    for (name, room) in [("A", &a), ("B", &b), ("C", &c)] {
        let video = room.received_from(&teacher.classroom_id, MediaKind::Video);
        let track = video
            .first()
            .unwrap_or_else(|| panic!("{name} receives the teacher's video"));
        assert!(!track.keyframes.is_empty(), "{name} got a keyframe");
        assert!(
            track.frame_arrivals.len() > 15,
            "{name} gets frames ({})",
            track.frame_arrivals.len()
        );
    }
    for (name, room) in [("B", &b), ("C", &c)] {
        let audio = room.received_from(&a.classroom_id, MediaKind::Audio);
        assert!(
            audio.first().is_some_and(|t| t.packets > 20),
            "{name} hears A on stage"
        );
    }
}
