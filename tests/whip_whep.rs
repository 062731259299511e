//! WHIP ingest and WHEP playback with standard clients that speak only HTTP and SDP.

mod common;

use std::time::Duration;

use tandem_loadtest::client::{
    Classroom, HttpMediaSession, HttpOfferOutcome, PublishSpec, VideoSpec, decode_opus,
    dominant_frequency, token_from_link,
};
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

fn created(outcome: HttpOfferOutcome) -> HttpMediaSession {
    match outcome {
        HttpOfferOutcome::Created(session) => session,
        HttpOfferOutcome::Refused(status, body) => panic!("refused {status}: {body}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encoder_publishes_by_whip_and_a_hall_display_watches_by_whep() {
    let server = common::start().await;
    let class = common::create_class(&server.base, "Assembly").await;
    let teacher_token = token_from_link(&class.teacher_url).unwrap();
    let invite_token = token_from_link(&class.invite_url).unwrap();

    // A remote classroom in the browser protocol, to prove the WHIP camera is part of the class.
    let classroom = Classroom::join(&server.base, &class.invite_url, "Hotan No. 3")
        .await
        .unwrap();

    // OBS-style encoder as the master classroom's camera and microphone.
    let encoder = created(
        HttpMediaSession::publish(
            &server.base,
            &class.class_id,
            &teacher_token,
            tone_and_video(440.0),
        )
        .await
        .expect("WHIP publish"),
    );
    assert!(
        encoder
            .location
            .starts_with(&format!("/whip/{}/", class.class_id))
    );
    classroom
        .wait_for(Duration::from_secs(5), |m| matches!(m, ServerMessage::TrackPublished { track } if track.kind == MediaKind::Audio))
        .await
        .expect("the classroom is told of the encoder's audio");

    // A hall display watches by WHEP with an invite token (the server answers 409 until the
    // encoder's media has arrived).
    let display = view_when_media_flows(&server.base, &class.class_id, &invite_token).await;

    let hears = |tracks: Vec<tandem_loadtest::client::ReceivedTrack>| {
        let audio = tracks
            .into_iter()
            .filter(|t| !t.opus.is_empty())
            .max_by_key(|t| t.packets)?;
        dominant_frequency(&decode_opus(audio.opus).ok()?, 200.0, 1200.0)
    };
    let encoder_id = classroom
        .log()
        .iter()
        .find_map(|m| match m {
            ServerMessage::TrackPublished { track } => Some(track.classroom_id.to_string()),
            _ => None,
        })
        .unwrap();
    let near_440 = |hz: Option<f32>| hz.is_some_and(|hz| (hz - 440.0).abs() <= 10.0);
    common::wait_until(Duration::from_secs(20), || {
        near_440(hears(
            classroom.received_from(&encoder_id, MediaKind::Audio),
        )) && near_440(hears(display.received().into_values().collect()))
            && frames(&display) > 10
    })
    .await;
    let hz = hears(classroom.received_from(&encoder_id, MediaKind::Audio))
        .expect("classroom hears the encoder");
    assert!((hz - 440.0).abs() <= 10.0, "classroom hears {hz} Hz");
    let hz =
        hears(display.received().into_values().collect()).expect("the display hears the lesson");
    assert!((hz - 440.0).abs() <= 10.0, "display hears {hz} Hz");
    let video_frames: usize = display
        .received()
        .values()
        .map(|t| t.frame_arrivals.len())
        .sum();
    assert!(
        video_frames > 10,
        "the display receives video frames ({video_frames})"
    );

    // A trickled candidate is taken (204); a PATCH for another ICE session is refused (412).
    let patch = |if_match: &str, body: &str| {
        reqwest::Client::new()
            .patch(format!("{}{}", server.base, display.location))
            .bearer_auth(&invite_token)
            .header("content-type", "application/trickle-ice-sdpfrag")
            .header("if-match", if_match.to_owned())
            .body(body.to_owned())
            .send()
    };
    let trickle = "a=mid:0\r\na=candidate:9 1 udp 2122260223 127.0.0.1 40000 typ host\r\n";
    assert_eq!(patch("*", trickle).await.unwrap().status(), 204);
    assert_eq!(
        patch("\"someone-else\"", trickle).await.unwrap().status(),
        412
    );
    let status = reqwest::Client::new()
        .patch(format!("{}{}", server.base, display.location))
        .bearer_auth(&invite_token)
        .header("content-type", "application/sdp")
        .body(trickle)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 415);

    // Both clients restart ICE by PATCH (a laptop changed networks); media keeps flowing.
    let mut display = display;
    let mut encoder = encoder;
    assert_eq!(
        display
            .restart_ice(&server.base, &invite_token)
            .await
            .unwrap(),
        200
    );
    assert_eq!(
        encoder
            .restart_ice(&server.base, &teacher_token)
            .await
            .unwrap(),
        200
    );
    let packets = |d: &HttpMediaSession| d.received().values().map(|t| t.packets).sum::<u64>();
    // Packets of the old ICE session may still be counted: ask for three times the 50 packets
    // the assertion needs (about three seconds of the lesson) past the moment of the restart.
    let before = packets(&display);
    common::wait_until(Duration::from_secs(20), || packets(&display) > before + 150).await;
    assert!(
        packets(&display) > before + 150,
        "media flows after the ICE restarts"
    );

    // DELETE ends each session and the class goes on.
    assert_eq!(display.end(&server.base, &invite_token).await.unwrap(), 200);
    assert_eq!(
        encoder.end(&server.base, &teacher_token).await.unwrap(),
        200
    );
    classroom
        .wait_for(Duration::from_secs(5), |m| {
            matches!(m, ServerMessage::TrackUnpublished { .. })
        })
        .await
        .expect("the encoder's tracks end when its session is deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_and_whep_errors_follow_the_rfc_and_the_class_goes_on() {
    let server = common::start().await;
    let class = common::create_class(&server.base, "Physics").await;
    let other = common::create_class(&server.base, "Chemistry").await;
    let teacher_token = token_from_link(&class.teacher_url).unwrap();
    let other_token = token_from_link(&other.teacher_url).unwrap();
    let http = reqwest::Client::new();
    let post = |path: String, token: Option<&str>, content_type: &str, body: &str| {
        let mut request = http
            .post(format!("{}{path}", server.base))
            .header("content-type", content_type)
            .body(body.to_owned());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";
    for kind in ["whip", "whep"] {
        let path = format!("/{kind}/{}", class.class_id);
        let unknown = format!("/{kind}/c_nosuchclass");
        let (sdp, teacher, other) = (
            "application/sdp",
            Some(teacher_token.as_str()),
            Some(other_token.as_str()),
        );
        let garbage = "v=0\r\nm=garbage\r\n";
        let cases = [
            (&path, None, sdp, offer, 401, "no token"),
            (&path, Some("forged.token"), sdp, offer, 401, "forged"),
            (&path, other, sdp, offer, 403, "other class"),
            (&unknown, teacher, sdp, offer, 404, "unknown class"),
            (&path, teacher, "text/plain", offer, 415, "content type"),
            (&path, teacher, sdp, "hello", 400, "not SDP"),
            (&path, teacher, sdp, garbage, 400, "unusable SDP"),
        ];
        for (to, token, content_type, body, want, what) in cases {
            let got = post(to.clone(), token, content_type, body).await.unwrap();
            assert_eq!(got.status().as_u16(), want, "{kind}: {what}");
        }
    }
    // A pupil's voting link carries no media.
    let created: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/api/classes", server.base))
        .json(&serde_json::json!({"title": "Drama", "teacher_name": "Mr Wu"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pupil = created["pupil_token"].as_str().unwrap();
    let drama = created["class_id"].as_str().unwrap();
    for kind in ["whip", "whep"] {
        let status = post(
            format!("/{kind}/{drama}"),
            Some(pupil),
            "application/sdp",
            offer,
        )
        .await
        .unwrap()
        .status();
        assert_eq!(status, 403, "{kind}: pupil token");
    }

    // A session that does not exist.
    let status = http
        .delete(format!("{}/whip/{}/nope", server.base, class.class_id))
        .bearer_auth(&teacher_token)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404);

    // The class went on: failed sessions left nobody behind, and a classroom still joins.
    let teacher = Classroom::join(&server.base, &class.teacher_url, "Ms Li")
        .await
        .unwrap();
    let welcome = teacher.log().into_iter().next().unwrap();
    let ServerMessage::Welcome { participants, .. } = welcome else {
        panic!("welcome first")
    };
    assert_eq!(
        participants.len(),
        1,
        "no failed WHIP/WHEP session left a participant"
    );
}

/// A WHIP encoder only sends: the server makes it no subscribe leg, even when there is media in
/// the class it could receive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_session_gets_no_subscribe_leg() {
    let server = common::start().await;
    let class = common::create_class(&server.base, "Ingest only").await;
    let teacher_token = token_from_link(&class.teacher_url).unwrap();
    let mut classroom = Classroom::join(&server.base, &class.invite_url, "Hotan No. 3")
        .await
        .unwrap();
    classroom
        .publish(PublishSpec {
            tone_hz: Some(330.0),
            video: None,
        })
        .await
        .expect("the classroom publishes");
    let _encoder = created(
        HttpMediaSession::publish(
            &server.base,
            &class.class_id,
            &teacher_token,
            tone_and_video(440.0),
        )
        .await
        .expect("WHIP publish"),
    );
    // The classroom's two legs and the encoder's publish leg; poll until the classroom's
    // subscribe leg for the encoder's tracks exists.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let legs = server.server.hub.sfu.transport_count().await.unwrap();
        if legs >= 3 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "only {legs} legs");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        server.server.hub.sfu.transport_count().await.unwrap(),
        3,
        "the classroom's publish and subscribe legs and the encoder's publish leg, no more"
    );
}

/// A hall display follows the master classroom without reconnecting: the teacher's page
/// reloads (it leaves and joins again) and comes back with its camera and a screen share; the
/// display's one video track switches to the share, its numbering running on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whep_display_follows_the_teacher_through_a_rejoin_and_a_screen_share() {
    let server = common::start().await;
    let class = common::create_class(&server.base, "Hall").await;
    let invite_token = token_from_link(&class.invite_url).unwrap();
    let camera = tone_and_video(440.0);
    let mut teacher = Classroom::join(&server.base, &class.teacher_url, "Ms Li")
        .await
        .unwrap();
    teacher.publish(camera.clone()).await.expect("camera");

    // WHEP answers 409 until the teacher's media arrives.
    let display = view_when_media_flows(&server.base, &class.class_id, &invite_token).await;
    wait_for_frames(&display, 10).await;

    teacher.leave().await;
    let mut teacher = Classroom::join(&server.base, &class.teacher_url, "Ms Li")
        .await
        .unwrap();
    let screen = VideoSpec {
        fps: 5,
        frame_bytes: 1200,
        keyframe_interval: None,
        source: Source::Screen,
    };
    teacher
        .publish_with_screen(camera, Some(screen))
        .await
        .expect("camera and screen share");
    let before = frames(&display);
    wait_for_frames(&display, before + 15).await;

    let tracks = video_tracks(&display);
    assert_eq!(tracks.len(), 1, "one video track all along, no reconnect");
    let seqs = &tracks[0].seqs;
    assert!(
        seqs.lost() < 20,
        "its numbering runs on across the switch: {} expected, {} received",
        seqs.expected(),
        seqs.received()
    );
}

/// Watch the class by WHEP, asking again while the server answers 409 (no media to watch yet),
/// for up to 10 s.
async fn view_when_media_flows(base: &str, class_id: &str, token: &str) -> HttpMediaSession {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match HttpMediaSession::view(base, class_id, token)
            .await
            .expect("WHEP view")
        {
            HttpOfferOutcome::Created(session) => return session,
            HttpOfferOutcome::Refused(status, body) => {
                assert!(std::time::Instant::now() < deadline, "{status}: {body}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// A viewer's video tracks that carried anything.
fn video_tracks(display: &HttpMediaSession) -> Vec<tandem_loadtest::client::ReceivedTrack> {
    display
        .received()
        .into_values()
        .filter(|t| t.opus.is_empty() && t.packets > 0)
        .collect()
}

fn frames(display: &HttpMediaSession) -> usize {
    video_tracks(display)
        .iter()
        .map(|t| t.frame_arrivals.len())
        .sum()
}

/// Poll until the viewer has `at_least` video frames, or fail after 15 s.
async fn wait_for_frames(display: &HttpMediaSession, at_least: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while frames(display) < at_least {
        assert!(
            std::time::Instant::now() < deadline,
            "the display got only {} frames",
            frames(display)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_and_whep_answer_options_cors_and_the_finer_http_rules() {
    let server = common::start().await;
    let class = common::create_class(&server.base, "Music").await;
    let other = common::create_class(&server.base, "Art").await;
    let teacher_token = token_from_link(&class.teacher_url).unwrap();
    let http = reqwest::Client::new();
    let header = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase()
    };

    // OPTIONS on an endpoint says what it takes (RFC 9725 §4.2), for WHIP and WHEP alike.
    for kind in ["whip", "whep"] {
        let url = format!("{}/{kind}/{}", server.base, class.class_id);
        let plain = http
            .request(reqwest::Method::OPTIONS, &url)
            .send()
            .await
            .unwrap();
        assert!(
            plain.status().is_success(),
            "{kind}: OPTIONS {}",
            plain.status()
        );
        assert_eq!(header(&plain, "accept-post"), "application/sdp", "{kind}");

        // A browser page on another origin asks first (a CORS preflight) and may then post.
        let preflight = http
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", "https://player.example")
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
            .await
            .unwrap();
        assert!(preflight.status().is_success(), "{kind}: preflight");
        assert_eq!(header(&preflight, "access-control-allow-origin"), "*");
        assert!(header(&preflight, "access-control-allow-methods").contains("post"));
        let allowed = header(&preflight, "access-control-allow-headers");
        assert!(
            allowed.contains("authorization") && allowed.contains("content-type"),
            "{kind}: allowed headers {allowed}"
        );
    }

    // An encoder publishes from a page on another origin, naming the scheme in lower case.
    let encoder = created(
        HttpMediaSession::publish(
            &server.base,
            &class.class_id,
            &teacher_token,
            tone_and_video(330.0),
        )
        .await
        .expect("WHIP publish"),
    );
    let session_url = format!("{}{}", server.base, encoder.location);
    let trickle = "a=mid:0\r\na=candidate:9 1 udp 2122260223 127.0.0.1 40000 typ host\r\n";
    let etag = {
        let r = http
            .patch(&session_url)
            .header("authorization", format!("bearer {teacher_token}"))
            .header("origin", "https://encoder.example")
            .header("content-type", "application/trickle-ice-sdpfrag")
            .body(trickle)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "the scheme name is case-insensitive");
        assert_eq!(header(&r, "access-control-allow-origin"), "*");
        let exposed = header(&r, "access-control-expose-headers");
        for name in ["location", "link", "etag"] {
            assert!(exposed.contains(name), "{name} is exposed: {exposed}");
        }
        // The session's own OPTIONS names PATCH's format.
        let options = http
            .request(reqwest::Method::OPTIONS, &session_url)
            .send()
            .await
            .unwrap();
        assert!(options.status().is_success());
        assert_eq!(
            header(&options, "accept-patch"),
            "application/trickle-ice-sdpfrag"
        );
        encoder.etag().to_owned()
    };

    // If-Match takes a list of entity tags (RFC 9110 §13.1.1); a list without ours is refused.
    let patch = |if_match: String| {
        http.patch(&session_url)
            .header("authorization", format!("BEARER {teacher_token}"))
            .header("content-type", "application/trickle-ice-sdpfrag")
            .header("if-match", if_match)
            .body(trickle)
            .send()
    };
    let listed = patch(format!("\"someone-else\", {etag}")).await.unwrap();
    assert_eq!(listed.status(), 204, "our ETag in a list");
    let not_listed = patch("\"a\", \"b\"".to_owned()).await.unwrap();
    assert_eq!(not_listed.status(), 412, "a list without our ETag");
    let weak = patch(format!("W/{etag}")).await.unwrap();
    assert_eq!(weak.status(), 412, "a weak tag never matches strongly");
    assert_eq!(patch("*".to_owned()).await.unwrap().status(), 204);

    // The class in the path must be the session's: under another class it is no resource,
    // even with that class's own token.
    let other_token = token_from_link(&other.teacher_url).unwrap();
    let elsewhere = encoder
        .location
        .replacen(&class.class_id, &other.class_id, 1);
    for (method, token) in [
        (reqwest::Method::PATCH, &teacher_token),
        (reqwest::Method::DELETE, &teacher_token),
        (reqwest::Method::DELETE, &other_token),
    ] {
        let status = http
            .request(method.clone(), format!("{}{elsewhere}", server.base))
            .bearer_auth(token)
            .header("content-type", "application/trickle-ice-sdpfrag")
            .body(trickle)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 404, "{method} under another class's path");
    }
    // The session is still there, and ends by DELETE at its own path.
    assert_eq!(
        encoder.end(&server.base, &teacher_token).await.unwrap(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encoder_that_dies_without_delete_leaves_the_class() {
    use tandem_loadtest::client::ClientOptions;
    use tandem_loadtest::link::LinkProfile;
    let server = common::start().await;
    let class = common::create_class(&server.base, "Assembly").await;
    let teacher_token = token_from_link(&class.teacher_url).unwrap();
    let invite_token = token_from_link(&class.invite_url).unwrap();
    let classroom = Classroom::join(&server.base, &class.invite_url, "Hotan No. 3")
        .await
        .unwrap();
    // The encoder reaches the media port through a link it can lose at once, as in a power cut.
    let link = ClientOptions {
        link: Some(LinkProfile::default()),
        ..ClientOptions::default()
    };
    let encoder = created(
        HttpMediaSession::publish_with(
            &server.base,
            &class.class_id,
            &teacher_token,
            tone_and_video(440.0),
            link,
        )
        .await
        .expect("WHIP publish"),
    );
    classroom
        .wait_for(Duration::from_secs(5), |m| {
            matches!(m, ServerMessage::TrackPublished { .. })
        })
        .await
        .expect("the encoder publishes");
    let active = || common::metric(&server.base, "tandem_participants_active");
    assert_eq!(active().await, 2.0, "the classroom and the encoder");

    // The encoder dies: no DELETE, no DTLS goodbye, its link is gone; the server hears nothing.
    let died = std::time::Instant::now();
    let location = encoder.location.clone();
    encoder.vanish().await;

    // Consent expires (30 s at most, RFC 7675) and the session is removed: its tracks end, the
    // participant count drops and WHEP has nothing to play again.
    classroom
        .wait_for(Duration::from_secs(40), |m| {
            matches!(m, ServerMessage::ParticipantLeft { .. })
        })
        .await
        .expect("the dead encoder leaves the class");
    println!(
        "the silent encoder was removed {:?} after it died",
        died.elapsed()
    );
    classroom
        .wait_for(Duration::from_secs(5), |m| {
            matches!(m, ServerMessage::TrackUnpublished { .. })
        })
        .await
        .expect("its tracks end");
    assert_eq!(active().await, 1.0, "only the classroom is left");
    let status = reqwest::Client::new()
        .delete(format!("{}{location}", server.base))
        .bearer_auth(&teacher_token)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404, "its session is gone for HTTP too");
    match HttpMediaSession::view(&server.base, &class.class_id, &invite_token)
        .await
        .unwrap()
    {
        HttpOfferOutcome::Refused(status, _) => assert_eq!(status, 409, "nothing to watch"),
        HttpOfferOutcome::Created(_) => panic!("WHEP found the dead encoder's media"),
    }
}
