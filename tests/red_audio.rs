//! Redundant audio (RFC 2198) end to end: the teacher's microphone crosses a link that loses
//! 5 % of its packets, sent as RED as Chrome sends it (each packet repeats the previous frame).
//! A classroom that negotiated RED rebuilds the lost frames itself; one that did not gets plain
//! Opus from the server with the lost frames already rebuilt. Both hear the 440 Hz tone, with
//! under 0.5 % of its packets lost after recovery (5 % loss × 5 % loss of the next packet:
//! about 0.25 % is expected with one redundant frame).

mod common;

use std::time::{Duration, Instant};

use tandem_loadtest::client::{
    Classroom, ClientOptions, PublishSpec, ReceivedTrack, decode_opus, dominant_frequency,
};
use tandem_loadtest::link::LinkProfile;
use tandem_sfu::MediaKind;

const TONE: PublishSpec = PublishSpec {
    tone_hz: Some(440.0),
    video: None,
};

/// Packets to measure over: 60 s of 20 ms Opus. About 7.5 are expected to stay lost (0.25 %);
/// the 0.5 % bound is 15, which a Poisson count of mean 7.5 reaches less than 1 time in 100.
const PACKETS: u64 = 3000;

fn audio_from(room: &Classroom, teacher: &Classroom) -> Option<ReceivedTrack> {
    room.received_from(&teacher.classroom_id, MediaKind::Audio)
        .into_iter()
        .max_by_key(|t| t.packets)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classrooms_hear_the_teachers_tone_through_5_percent_loss_with_red() {
    let server = common::start().await;
    let base = &server.base;
    let class = common::create_class(base, "Grade 4 Music").await;
    let lossy = LinkProfile {
        name: "5% loss".to_owned(),
        loss_pct: 5.0,
        ..LinkProfile::default()
    };
    let teacher_options = ClientOptions::browser_like(Some(lossy), 13);
    assert!(teacher_options.red, "browsers negotiate RED");
    let mut teacher = Classroom::join_with(base, &class.teacher_url, "Ms Li", teacher_options)
        .await
        .expect("the teacher joins");
    let red_room = Classroom::join_with(
        base,
        &class.invite_url,
        "Hotan No. 3",
        ClientOptions::browser_like(None, 1),
    )
    .await
    .expect("the RED classroom joins");
    let opus_room = Classroom::join_with(
        base,
        &class.invite_url,
        "Kashgar No. 1",
        ClientOptions {
            red: false,
            ..ClientOptions::browser_like(None, 2)
        },
    )
    .await
    .expect("the Opus-only classroom joins");
    teacher.publish(TONE).await.expect("the teacher publishes");

    // Poll until both classrooms have the measured stretch (bounded: twice its length).
    let deadline = Instant::now() + Duration::from_secs(2 * PACKETS / 50 + 20);
    loop {
        let expected =
            |room: &Classroom| audio_from(room, &teacher).map_or(0, |t| t.seqs.expected());
        if expected(&red_room) >= PACKETS && expected(&opus_room) >= PACKETS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the classrooms did not receive {PACKETS} packets in time (RED {}, Opus {})",
            expected(&red_room),
            expected(&opus_room)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let uplink = teacher.link_stats();
    let dropped: u64 = uplink.iter().map(|s| s.uplink.lost).sum();
    assert!(dropped > 0, "the teacher's link lost nothing: {uplink:?}");
    for (name, room) in [("RED", &red_room), ("Opus-only", &opus_room)] {
        let track = audio_from(room, &teacher).expect("the teacher's audio");
        let (expected, lost) = (track.seqs.expected(), track.seqs.lost());
        let loss_pct = 100.0 * lost as f64 / expected as f64;
        println!(
            "{name} classroom: {lost} of {expected} packets lost after recovery ({loss_pct:.2} %)"
        );
        assert!(
            loss_pct < 0.5,
            "the {name} classroom lost {loss_pct:.2} % of the teacher's audio after recovery"
        );
        let hz = dominant_frequency(
            &decode_opus(track.opus).expect("Opus decodes"),
            200.0,
            1200.0,
        )
        .expect("a tone");
        assert!(
            (hz - 440.0).abs() <= 10.0,
            "the {name} classroom hears {hz} Hz"
        );
    }
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let recovered: f64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("tandem_rtp_packets_recovered_total{")
                .filter(|l| l.contains("kind=\"audio\"") && l.contains("by=\"red\""))?
                .rsplit(' ')
                .next()?
                .parse()
                .ok()
        })
        .expect("RED recoveries in /metrics");
    assert!(recovered > 0.0, "the server rebuilt nothing");
    drop(teacher);
}
