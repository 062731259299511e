//! Clean starts and continuous downtracks, through real `rtc` peers.

use std::time::Duration;

use bytes::Bytes;

use crate::testkit::Harness;
use crate::{ClassId, Role, RouterEvent};

/// A VP8 keyframe's first packet (S bit, partition 0, P bit clear) and a delta frame's.
const KEY: &[u8] = &[0x10, 0x10, 0x01, 0x02, 0x9d, 0x01, 0x2a];
const DELTA: &[u8] = &[0x10, 0x11, 0x01, 0x02, 0x03, 0x04, 0x05];

fn send_for(h: &mut Harness, from: usize, payload: &'static [u8], duration: Duration) -> u64 {
    let end = h.now + duration;
    let mut sent = 0;
    while h.now < end {
        h.send_packet(from, Bytes::from_static(payload));
        sent += 1;
        h.run_for(Duration::from_millis(33));
    }
    sent
}

#[test]
fn a_new_classroom_gets_video_from_a_keyframe_on_and_asks_for_one() {
    let mut h = Harness::new();
    let teacher = h.join(Role::Master);
    h.publish_video(teacher);
    h.run_for(Duration::from_millis(300));
    send_for(&mut h, teacher, KEY, Duration::from_millis(200));
    let asked_before = h.peers[teacher].keyframe_requests;

    let a = h.join(Role::Remote);
    send_for(&mut h, teacher, DELTA, Duration::from_secs(2));
    assert_eq!(
        h.peers[a].received, 0,
        "no delta frame reaches a classroom that has no keyframe yet"
    );
    assert!(
        h.peers[teacher].keyframe_requests > asked_before,
        "the teacher is asked for a keyframe"
    );

    let sent = 1
        + send_for(&mut h, teacher, KEY, Duration::from_millis(1))
        + send_for(&mut h, teacher, DELTA, Duration::from_millis(500));
    let _ = sent;
    assert!(h.peers[a].received > 0, "video starts at the keyframe");
    let seqs = &h.peers[a].received_seqs;
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
        "and runs on without a hole: {seqs:?}"
    );
}

#[test]
fn a_renegotiation_asks_keyframes_only_for_the_tracks_it_adds() {
    let mut h = Harness::new();
    let teacher = h.join(Role::Master);
    let a = h.join(Role::Remote);
    let c = h.join(Role::Remote);
    h.publish_video(teacher);
    h.publish_video(c);
    h.run_for(Duration::from_millis(300));
    for _ in 0..60 {
        h.send_packet(teacher, Bytes::from_static(KEY));
        h.send_packet(c, Bytes::from_static(KEY));
        h.run_for(Duration::from_millis(33));
    }
    assert!(h.peers[a].received > 0, "A sees the teacher");
    let (teacher_asked, c_asked) = (
        h.peers[teacher].keyframe_requests,
        h.peers[c].keyframe_requests,
    );

    // C goes on stage: A's subscribe leg renegotiates to add C's video.
    let offers_before = h.events.len();
    let now = h.now;
    let c_id = h.peers[c].id.clone();
    h.router.set_stage(now, &ClassId::from("c_test"), [c_id]);
    for _ in 0..60 {
        h.send_packet(teacher, Bytes::from_static(DELTA));
        h.send_packet(c, Bytes::from_static(DELTA));
        h.run_for(Duration::from_millis(33));
    }
    let a_id = h.peers[a].id.clone();
    assert!(
        h.events[offers_before..].iter().any(
            |e| matches!(e, RouterEvent::SubscribeOffer { classroom, .. } if *classroom == a_id)
        ),
        "A renegotiated"
    );
    assert!(
        h.peers[c].keyframe_requests > c_asked,
        "C, whose track was added, is asked for a keyframe"
    );
    assert_eq!(
        h.peers[teacher].keyframe_requests, teacher_asked,
        "the teacher, whose track A already had, is not disturbed"
    );
}

#[test]
fn a_whep_viewer_follows_the_teacher_through_a_rejoin_with_continuous_numbering() {
    let mut h = Harness::new();
    let teacher = h.join(Role::Master);
    h.publish_video(teacher);
    h.run_for(Duration::from_millis(300));
    send_for(&mut h, teacher, KEY, Duration::from_millis(300));
    let viewer = h.view().expect("the viewer is answered");
    send_for(&mut h, teacher, KEY, Duration::from_secs(1));
    let before = h.peers[viewer].received;
    assert!(before > 10, "the viewer sees the teacher");

    let offers_before = h.events.len();
    h.rejoin_and_publish_video(teacher);
    h.run_for(Duration::from_millis(300));
    send_for(&mut h, teacher, DELTA, Duration::from_millis(300));
    send_for(&mut h, teacher, KEY, Duration::from_millis(1));
    send_for(&mut h, teacher, DELTA, Duration::from_secs(1));
    let seqs = &h.peers[viewer].received_seqs;
    assert!(
        h.peers[viewer].received > before + 10,
        "the viewer sees the teacher again without reconnecting"
    );
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
        "its sequence numbers run on across the switch: {seqs:?}"
    );
    let viewer_id = h.peers[viewer].id.clone();
    assert!(
        !h.events[offers_before..].iter().any(
            |e| matches!(e, RouterEvent::SubscribeOffer { classroom, .. } if *classroom == viewer_id)
        ),
        "nothing was renegotiated with the viewer"
    );
}

/// Two H.264 profiles are two codecs: a constrained-baseline (42e01f) camera reaches the
/// subscriber under the payload type its leg negotiated for 42e01f, not the first H.264 one.
#[test]
fn an_h264_profile_is_forwarded_under_its_own_payload_type() {
    let mut h = Harness::new();
    let teacher = h.join(Role::Master);
    let a = h.join(Role::Remote);
    h.publish_video_as(
        teacher,
        "video/H264",
        "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
    );
    h.run_for(Duration::from_millis(300));
    // An IDR slice, so the downtrack starts at once.
    const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x00, 0x33];
    send_for(&mut h, teacher, IDR, Duration::from_millis(600));
    assert!(h.peers[a].received > 0, "A receives the H.264 camera");

    let a_id = h.peers[a].id.clone();
    let member = &h.router.members[&a_id];
    let down = member.downtracks.values().next().expect("a downtrack");
    let key = member.subscribe.expect("a subscribe leg");
    let mut sender = h
        .router
        .transports
        .get_mut(&key)
        .and_then(|t| t.pc.rtp_sender(down.sender))
        .expect("its sender");
    let negotiated = sender
        .get_parameters()
        .rtp_parameters
        .codecs
        .iter()
        .find(|c| c.payload_type == down.payload_type)
        .map(|c| c.rtp_codec.sdp_fmtp_line.clone())
        .expect("the payload type is negotiated");
    assert!(
        negotiated.contains("profile-level-id=42e01f"),
        "payload type {} is {negotiated}",
        down.payload_type
    );
}
