//! A lesson's media survives what real networks do to it: a WebSocket that blips, a media path
//! that needs a new ICE session, and a classroom whose media is gone for good.

mod common;

use std::time::{Duration, Instant};

use tandem_loadtest::client::{Classroom, PublishSpec, VideoSpec};
use tandem_sfu::{Leg, MediaKind, Source};
use tandem_signaling::Config;
use tandem_signaling::protocol::{ClientMessage, ServerMessage};

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

/// Frames of `from`'s video that `at` received, by arrival time.
fn frames(at: &Classroom, from: &str) -> Vec<Instant> {
    let mut all: Vec<Instant> = at
        .received_from(from, MediaKind::Video)
        .into_iter()
        .flat_map(|t| t.frame_arrivals)
        .collect();
    all.sort();
    all
}

/// The longest time without a frame between `since` and `until`; `None` if no frame came at all.
fn longest_gap(arrivals: &[Instant], since: Instant, until: Instant) -> Option<Duration> {
    let inside: Vec<Instant> = arrivals
        .iter()
        .copied()
        .filter(|t| *t >= since && *t <= until)
        .collect();
    let first = *inside.first()?;
    let last = *inside.last()?;
    let mut gap = first.duration_since(since).max(until.duration_since(last));
    for pair in inside.windows(2) {
        gap = gap.max(pair[1].duration_since(pair[0]));
    }
    Some(gap)
}

async fn wait_until(what: &str, within: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ready() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn keyframe_requests(base: &str) -> f64 {
    common::metric(base, "tandem_keyframe_requests_total").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_blip_leaves_the_media_alone() {
    let server = common::start().await;
    let class = common::create_class(&server.base, "Geography").await;
    let mut teacher = Classroom::join(&server.base, &class.teacher_url, "Ms Li")
        .await
        .unwrap();
    let mut a = Classroom::join(&server.base, &class.invite_url, "Hotan No. 3")
        .await
        .unwrap();
    let b = Classroom::join(&server.base, &class.invite_url, "Kashgar No. 1")
        .await
        .unwrap();
    teacher.publish(tone_and_video(440.0)).await.unwrap();
    a.publish(tone_and_video(550.0)).await.unwrap();
    let (t_id, a_id) = (teacher.classroom_id.clone(), a.classroom_id.clone());
    wait_until(
        "everyone sees the teacher, the teacher sees A",
        Duration::from_secs(10),
        || {
            frames(&a, &t_id).len() > 10
                && frames(&b, &t_id).len() > 10
                && frames(&teacher, &a_id).len() > 10
        },
    )
    .await;
    // Settled: the joins' keyframe requests are behind us.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let offers_before = |c: &Classroom| {
        c.log()
            .iter()
            .filter(|m| matches!(m, ServerMessage::SubscribeOffer { .. }))
            .count()
    };
    let (teacher_offers, b_offers) = (offers_before(&teacher), offers_before(&b));
    let (teacher_log, b_log) = (teacher.log().len(), b.log().len());
    let plis = keyframe_requests(&server.base).await;

    let start = Instant::now();
    let welcome = a.blip_websocket(Duration::from_secs(3)).await.unwrap();
    let ServerMessage::Welcome {
        you, media_kept, ..
    } = welcome
    else {
        panic!("welcome")
    };
    assert_eq!(you.classroom_id.as_str(), a_id, "A has its place back");
    assert!(media_kept, "A's media legs were kept");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let end = Instant::now();

    for (who, at, from) in [
        ("the teacher", &teacher, &a_id),
        ("B", &b, &t_id),
        ("A", &a, &t_id),
    ] {
        let gap = longest_gap(&frames(at, from), start, end)
            .unwrap_or_else(|| panic!("{who} received no frame across the blip"));
        assert!(
            gap < Duration::from_millis(500),
            "{who}'s picture stalled for {gap:?} across A's WebSocket blip"
        );
    }
    for (who, c, offers, seen) in [
        ("the teacher", &teacher, teacher_offers, teacher_log),
        ("B", &b, b_offers, b_log),
    ] {
        assert_eq!(offers_before(c), offers, "{who} was not renegotiated");
        let news = &c.log()[seen..];
        assert!(
            !news
                .iter()
                .any(|m| matches!(m, ServerMessage::TrackUnpublished { .. })),
            "{who} saw no track end: {news:?}"
        );
    }
    assert_eq!(
        keyframe_requests(&server.base).await,
        plis,
        "nobody was asked for a keyframe"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribe_leg_restarts_ice_over_the_websocket_with_new_server_credentials() {
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
    wait_until("A sees the teacher", Duration::from_secs(10), || {
        frames(&a, &t_id).len() > 10
    })
    .await;
    let ufrag = |sdp: &str| {
        sdp.lines()
            .find_map(|l| l.trim().strip_prefix("a=ice-ufrag:"))
            .map(str::to_owned)
    };
    let last_offer = |c: &Classroom| {
        c.log().iter().rev().find_map(|m| match m {
            ServerMessage::SubscribeOffer { sdp, .. } => Some(sdp.clone()),
            _ => None,
        })
    };
    let before = last_offer(&a).and_then(|s| ufrag(&s)).expect("an offer");
    let offers = a.log().len();

    a.send(&ClientMessage::IceRestart {
        leg: Leg::Subscribe,
    })
    .unwrap();
    wait_until("the server re-offers", Duration::from_secs(5), || {
        a.log()[offers..]
            .iter()
            .any(|m| matches!(m, ServerMessage::SubscribeOffer { .. }))
    })
    .await;
    let after = last_offer(&a).and_then(|s| ufrag(&s)).expect("an offer");
    assert_ne!(before, after, "the server's ICE credentials are new");

    // The classroom answered; media flows over the new ICE session.
    let restarted = Instant::now();
    wait_until(
        "A sees the teacher after the restart",
        Duration::from_secs(5),
        || frames(&a, &t_id).iter().filter(|t| **t > restarted).count() > 15,
    )
    .await;
    // The publish leg has no such message: it restarts by offering new credentials.
    a.send(&ClientMessage::IceRestart { leg: Leg::Publish })
        .unwrap();
    a.wait_for(
        Duration::from_secs(5),
        |m| matches!(m, ServerMessage::Error { in_reply_to: Some(r), .. } if r == "ice_restart"),
    )
    .await
    .expect("a publish-leg ice_restart is refused with a reason");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_classroom_whose_media_fails_is_shown_lost_and_its_tracks_end_after_the_grace() {
    let data = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(data.path().to_path_buf());
    config.reconnect_grace_secs = 2;
    let server = tandem_signaling::start(config).await.unwrap();
    let base = format!("http://{}", server.http_addr);
    let class = common::create_class(&base, "Biology").await;
    let mut teacher = Classroom::join(&base, &class.teacher_url, "Ms Li")
        .await
        .unwrap();
    let mut a = Classroom::join(&base, &class.invite_url, "Room A")
        .await
        .unwrap();
    teacher.publish(tone_and_video(440.0)).await.unwrap();
    a.publish(tone_and_video(550.0)).await.unwrap();
    let (t_id, a_id) = (teacher.classroom_id.clone(), a.classroom_id.clone());
    wait_until(
        "A and the teacher see each other",
        Duration::from_secs(10),
        || frames(&a, &t_id).len() > 5 && frames(&teacher, &a_id).len() > 5,
    )
    .await;

    // Both of A's legs die; its WebSocket stays up.
    a.drop_media().await;
    teacher
        .wait_for(Duration::from_secs(40), |m| {
            matches!(m, ServerMessage::MediaState { classroom_id, connected: false } if classroom_id.as_str() == a_id)
        })
        .await
        .expect("the teacher is told A's connection is lost");
    let lost_at = Instant::now();
    assert!(
        !teacher
            .log()
            .iter()
            .any(|m| matches!(m, ServerMessage::ParticipantLeft { .. })),
        "A is still in the class"
    );
    // After the grace period A's tracks end for the others and A is told to start afresh.
    teacher
        .wait_for(Duration::from_secs(10), |m| {
            matches!(m, ServerMessage::TrackUnpublished { classroom_id, .. } if classroom_id.as_str() == a_id)
        })
        .await
        .expect("A's tracks end for the teacher");
    assert!(
        lost_at.elapsed() >= Duration::from_millis(1500),
        "not before the grace period"
    );
    a.wait_for(Duration::from_secs(5), |m| {
        matches!(m, ServerMessage::MediaReset)
    })
    .await
    .expect("A is told to build its media again");

    // A does: it publishes again and the teacher is told its media is back.
    a.publish(tone_and_video(550.0)).await.unwrap();
    teacher
        .wait_for(Duration::from_secs(10), |m| {
            matches!(m, ServerMessage::MediaState { classroom_id, connected: true } if classroom_id.as_str() == a_id)
        })
        .await
        .expect("the teacher sees A's media back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_does_not_keep_legs_that_were_lost() {
    let server = common::start().await;
    let class = common::create_class(&server.base, "Art").await;
    let teacher = Classroom::join(&server.base, &class.teacher_url, "Ms Li")
        .await
        .unwrap();
    let mut a = Classroom::join(&server.base, &class.invite_url, "Room A")
        .await
        .unwrap();
    a.publish(tone_and_video(550.0)).await.unwrap();
    let a_id = a.classroom_id.clone();
    wait_until("the teacher sees A", Duration::from_secs(10), || {
        frames(&teacher, &a_id).len() > 5
    })
    .await;
    a.drop_media().await;
    teacher
        .wait_for(Duration::from_secs(40), |m| {
            matches!(m, ServerMessage::MediaState { classroom_id, connected: false } if classroom_id.as_str() == a_id)
        })
        .await
        .expect("A's media is lost");
    // A's page comes back asking to keep its legs, but they are dead: it starts afresh.
    let welcome = a.blip_websocket(Duration::from_millis(200)).await.unwrap();
    let ServerMessage::Welcome { media_kept, .. } = welcome else {
        panic!("welcome")
    };
    assert!(!media_kept, "lost legs are not kept");
    a.publish(tone_and_video(550.0)).await.unwrap();
    teacher
        .wait_for(Duration::from_secs(10), |m| {
            matches!(m, ServerMessage::MediaState { classroom_id, connected: true } if classroom_id.as_str() == a_id)
        })
        .await
        .expect("the teacher is told A's media is back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_classroom_whose_network_drops_out_past_consent_restarts_ice_on_both_legs_by_itself() {
    let data = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(data.path().to_path_buf());
    // Consent runs out during the outage (RFC 7675 allows 30 s; 3 s keeps the test short):
    // the old ICE sessions are over and only a restart brings the legs back.
    config.consent_timeout_secs = 3;
    config.reconnect_grace_secs = 60;
    let server = tandem_signaling::start(config).await.unwrap();
    let base = format!("http://{}", server.http_addr);
    let class = common::create_class(&base, "Geography").await;
    let mut teacher = Classroom::join(&base, &class.teacher_url, "Ms Li")
        .await
        .unwrap();
    let lan = tandem_loadtest::link::LinkProfile::named("lan");
    let options = tandem_loadtest::client::ClientOptions::browser_like(lan, 11);
    let mut a = Classroom::join_with(&base, &class.invite_url, "Hotan No. 3", options)
        .await
        .unwrap();
    teacher.publish(tone_and_video(440.0)).await.unwrap();
    a.publish(tone_and_video(550.0)).await.unwrap();
    let (t_id, a_id) = (teacher.classroom_id.clone(), a.classroom_id.clone());
    wait_until(
        "A and the teacher see each other",
        Duration::from_secs(10),
        || frames(&a, &t_id).len() > 5 && frames(&teacher, &a_id).len() > 5,
    )
    .await;
    let offers = a.log().len();

    a.cut_links(true);
    teacher
        .wait_for(Duration::from_secs(15), |m| {
            matches!(m, ServerMessage::MediaState { classroom_id, connected: false } if classroom_id.as_str() == a_id)
        })
        .await
        .expect("the server finds A's consent expired");
    tokio::time::sleep(Duration::from_secs(6)).await;
    a.cut_links(false);
    let back = Instant::now();

    wait_until(
        "A sees the teacher again, and the teacher A",
        Duration::from_secs(25),
        || {
            frames(&a, &t_id).iter().filter(|t| **t > back).count() > 15
                && frames(&teacher, &a_id)
                    .iter()
                    .filter(|t| **t > back)
                    .count()
                    > 15
        },
    )
    .await;
    assert!(
        a.log()[offers..]
            .iter()
            .any(|m| matches!(m, ServerMessage::SubscribeOffer { .. })),
        "the subscribe leg came back by an ICE restart (a new offer)"
    );
    println!(
        "A's media back {} ms after its network",
        back.elapsed().as_millis()
    );
}
