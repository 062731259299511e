//! Consent freshness end to end (RFC 7675): peers that check every 5 s ± 20 %, as aiortc, Firefox
//! and many encoders do, get 30 s of video without a gap, on the classroom legs and on WHEP.
//!
//! The clients check every 6 s, the slow end of that range: a server that drops a leg after 5 s
//! without a check (as `rtc-ice` does by default) freezes their video about every 6 s.

mod common;

use std::time::{Duration, Instant};

use tandem_loadtest::client::{
    Classroom, ClientOptions, HttpMediaSession, HttpOfferOutcome, PublishSpec, ReceivedTrack,
    VideoSpec, token_from_link,
};
use tandem_sfu::{MediaKind, Source};

const CHECK_EVERY: Duration = Duration::from_secs(6);
const WATCH: Duration = Duration::from_secs(30);

fn camera() -> PublishSpec {
    PublishSpec {
        tone_hz: Some(440.0),
        video: Some(VideoSpec {
            fps: 15,
            frame_bytes: 800,
            keyframe_interval: Some(Duration::from_secs(2)),
            source: Source::Camera,
        }),
    }
}

fn slow_checker() -> ClientOptions {
    ClientOptions {
        consent_check_interval: Some(CHECK_EVERY),
        ..ClientOptions::default()
    }
}

/// Frames that arrived in `[from, to]` and the longest time without one (the window's edges
/// count, so a stream that stopped early shows its silence).
fn frames_and_longest_gap(arrivals: &[Instant], from: Instant, to: Instant) -> (usize, Duration) {
    let mut inside: Vec<Instant> = arrivals
        .iter()
        .copied()
        .filter(|t| *t >= from && *t <= to)
        .collect();
    inside.sort();
    let mut edges = vec![from];
    edges.extend(inside.iter().copied());
    edges.push(to);
    let gap = edges
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or(to - from);
    (inside.len(), gap)
}

fn video(tracks: impl IntoIterator<Item = ReceivedTrack>) -> Vec<Instant> {
    tracks
        .into_iter()
        .filter(|t| t.opus.is_empty())
        .flat_map(|t| t.frame_arrivals)
        .collect()
}

/// Poll `frames` until it reports video arriving, or fail after `within`.
async fn wait_for_video(within: Duration, frames: impl Fn() -> usize) {
    let deadline = Instant::now() + within;
    while frames() < 5 {
        assert!(Instant::now() < deadline, "no video within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_classroom_checking_every_six_seconds_sees_the_teacher_for_thirty_seconds_without_a_gap()
{
    let server = common::start().await;
    let class = common::create_class(&server.base, "Consent").await;
    let mut teacher =
        Classroom::join_with(&server.base, &class.teacher_url, "Ms Li", slow_checker())
            .await
            .expect("teacher joins");
    teacher.publish(camera()).await.expect("teacher publishes");
    let classroom = Classroom::join_with(
        &server.base,
        &class.invite_url,
        "Hotan No. 3",
        slow_checker(),
    )
    .await
    .expect("classroom joins");
    let teacher_id = teacher.classroom_id.to_string();
    let frames = || video(classroom.received_from(&teacher_id, MediaKind::Video)).len();
    wait_for_video(Duration::from_secs(15), frames).await;

    let from = Instant::now();
    tokio::time::sleep(WATCH).await;
    let to = Instant::now();
    let (received, gap) = frames_and_longest_gap(
        &video(classroom.received_from(&teacher_id, MediaKind::Video)),
        from,
        to,
    );
    println!(
        "classroom legs, checks every {CHECK_EVERY:?}: {received} frames in {WATCH:?}, longest gap {gap:?}"
    );
    assert!(
        received >= 15 * 30 * 9 / 10,
        "the classroom got {received} of about 450 frames"
    );
    assert!(
        gap < Duration::from_secs(1),
        "the teacher's video froze for {gap:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whep_display_checking_every_six_seconds_sees_the_encoder_for_thirty_seconds_without_a_gap()
 {
    let server = common::start().await;
    let class = common::create_class(&server.base, "Consent WHEP").await;
    let teacher_token = token_from_link(&class.teacher_url).expect("token");
    let invite_token = token_from_link(&class.invite_url).expect("token");
    let created = |outcome: HttpOfferOutcome| match outcome {
        HttpOfferOutcome::Created(session) => session,
        HttpOfferOutcome::Refused(status, body) => panic!("refused {status}: {body}"),
    };
    let _encoder = created(
        HttpMediaSession::publish_with(
            &server.base,
            &class.class_id,
            &teacher_token,
            camera(),
            ClientOptions {
                consent_check_interval: Some(CHECK_EVERY),
                ..ClientOptions::default()
            },
        )
        .await
        .expect("WHIP publish"),
    );
    // WHEP answers 409 until the master classroom's media arrives.
    let deadline = Instant::now() + Duration::from_secs(10);
    let display = loop {
        match HttpMediaSession::view_checking_every(
            &server.base,
            &class.class_id,
            &invite_token,
            Some(CHECK_EVERY),
        )
        .await
        .expect("WHEP view")
        {
            HttpOfferOutcome::Created(session) => break session,
            HttpOfferOutcome::Refused(status, body) => {
                assert!(Instant::now() < deadline, "refused {status}: {body}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let frames = || video(display.received().into_values()).len();
    wait_for_video(Duration::from_secs(15), frames).await;

    let from = Instant::now();
    tokio::time::sleep(WATCH).await;
    let to = Instant::now();
    let (received, gap) =
        frames_and_longest_gap(&video(display.received().into_values()), from, to);
    println!(
        "WHEP, checks every {CHECK_EVERY:?}: {received} frames in {WATCH:?}, longest gap {gap:?}"
    );
    assert!(
        received >= 15 * 30 * 9 / 10,
        "the display got {received} of about 450 frames"
    );
    assert!(
        gap < Duration::from_secs(1),
        "the encoder's video froze for {gap:?}"
    );
}
