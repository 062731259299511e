//! Continuous downtracks for WebSocket classrooms ([`super::slots`]): a teacher who rejoins with
//! new streams, or stops and restarts a screen share, changes nothing on a remote classroom's
//! subscribe leg: same SSRC, same numbering carried on, no renegotiation, video from a keyframe.

use std::time::Duration;

use bytes::Bytes;

use crate::testkit::Harness;
use crate::{ClassId, Role, RouterEvent, Source, TrackId};

/// A VP8 keyframe's first packet (S bit, partition 0, P bit clear) and a delta frame's.
const KEY: &[u8] = &[0x10, 0x10, 0x01, 0x02, 0x9d, 0x01, 0x2a];
const DELTA: &[u8] = &[0x10, 0x11, 0x01, 0x02, 0x03, 0x04, 0x05];

/// The teacher's camera, one frame (packet) every 33 ms.
fn camera(h: &mut Harness, teacher: usize, payload: &'static [u8], frames: usize) {
    for _ in 0..frames {
        h.send_packet(teacher, Bytes::from_static(payload));
        h.run_for(Duration::from_millis(33));
    }
}

/// The teacher's screen share, one frame every 33 ms.
fn screen(h: &mut Harness, teacher: usize, payload: &'static [u8], frames: usize, ts: &mut u32) {
    for _ in 0..frames {
        *ts = ts.wrapping_add(2970);
        h.send_timed(teacher, true, Bytes::from_static(payload), *ts);
        h.run_for(Duration::from_millis(33));
    }
}

/// A teacher sending its camera and sharing a screen (`screen_frames` of it sent, from a
/// keyframe), and classroom A receiving both. Returns (harness, teacher, A, the screen's
/// next timestamp).
fn a_teacher_sharing_a_screen(screen_frames: usize) -> (Harness, usize, usize, u32) {
    let mut h = Harness::new();
    let teacher = h.join(Role::Master);
    let a = h.join(Role::Remote);
    h.publish_video(teacher);
    h.run_for(Duration::from_millis(300));
    camera(&mut h, teacher, KEY, 5);
    let mut ts = 0;
    h.share_screen(teacher, "screen-1", 0x5000);
    h.run_for(Duration::from_millis(300));
    screen(&mut h, teacher, KEY, screen_frames, &mut ts);
    (h, teacher, a, ts)
}

/// The SSRC under which `subscriber` receives `track`.
fn down_ssrc(h: &Harness, subscriber: usize, track: &TrackId) -> u32 {
    h.router.members[&h.peers[subscriber].id].downtracks[track].ssrc
}

/// The packets `subscriber` received under `ssrc` from index `from` on: (seq, payload).
fn received(h: &Harness, subscriber: usize, ssrc: u32, from: usize) -> Vec<(u16, Bytes)> {
    h.peers[subscriber].received_packets[from..]
        .iter()
        .filter(|(s, ..)| *s == ssrc)
        .map(|(_, seq, p)| (*seq, p.clone()))
        .collect()
}

fn offers_to(h: &Harness, since: usize, subscriber: usize) -> usize {
    let id = &h.peers[subscriber].id;
    h.events[since..]
        .iter()
        .filter(|e| matches!(e, RouterEvent::SubscribeOffer { classroom, .. } if classroom == id))
        .count()
}

fn unpublished(h: &Harness, since: usize) -> Vec<TrackId> {
    h.events[since..]
        .iter()
        .filter_map(|e| match e {
            RouterEvent::TrackUnpublished { track, .. } => Some(track.track_id.clone()),
            _ => None,
        })
        .collect()
}

fn published(h: &Harness, since: usize) -> Vec<TrackId> {
    h.events[since..]
        .iter()
        .filter_map(|e| match e {
            RouterEvent::TrackPublished { track, .. } => Some(track.track_id.clone()),
            _ => None,
        })
        .collect()
}

fn the_track(h: &Harness, source: Source) -> TrackId {
    h.router
        .tracks_of(&ClassId::from("c_test"))
        .into_iter()
        .find(|t| t.source == source)
        .map(|t| t.track_id)
        .unwrap_or_else(|| panic!("a {source:?} track is published"))
}

/// Sequence numbers that run on by one, and the first packet a keyframe.
fn assert_continuous_from_a_keyframe(before: &[(u16, Bytes)], after: &[(u16, Bytes)]) {
    let last = before.last().expect("packets before the switch").0;
    let first = after.first().expect("packets after the switch");
    assert_eq!(
        first.0,
        last.wrapping_add(1),
        "the numbering runs on without a jump (nothing was sent in between)"
    );
    assert_eq!(
        &first.1[..],
        KEY,
        "video resumes at the new source's keyframe"
    );
    assert!(
        after.windows(2).all(|w| w[1].0 == w[0].0.wrapping_add(1)),
        "and runs on without a hole: {:?}",
        after.iter().map(|p| p.0).collect::<Vec<_>>()
    );
}

#[test]
fn a_remote_classroom_keeps_its_downtrack_when_the_teacher_rejoins_with_new_streams() {
    let mut h = Harness::new();
    let teacher = h.join(Role::Master);
    let a = h.join(Role::Remote);
    h.publish_video(teacher);
    h.run_for(Duration::from_millis(300));
    camera(&mut h, teacher, KEY, 30);
    let track = the_track(&h, Source::Camera);
    let ssrc = down_ssrc(&h, a, &track);
    let before = received(&h, a, ssrc, 0);
    assert!(before.len() > 20, "A sees the teacher");
    let teacher_ssrc = h.router.tracks[&track].media_ssrc;

    // The teacher's page reloads: a new publish leg, its camera under another SSRC.
    let since = h.events.len();
    let mark = h.peers[a].received_packets.len();
    h.rejoin_and_publish_video(teacher);
    h.run_for(Duration::from_millis(300));
    let asked = h.peers[teacher].keyframe_requests;
    camera(&mut h, teacher, DELTA, 10);
    assert_ne!(
        h.router.tracks[&track].media_ssrc, teacher_ssrc,
        "the new session streams under a new SSRC"
    );
    assert!(
        h.peers[teacher].keyframe_requests > asked,
        "the new stream is asked for a keyframe"
    );
    camera(&mut h, teacher, KEY, 1);
    camera(&mut h, teacher, DELTA, 30);

    assert_eq!(
        down_ssrc(&h, a, &track),
        ssrc,
        "A keeps its downtrack and its SSRC"
    );
    let after = received(&h, a, ssrc, mark);
    assert!(
        after.len() >= 31,
        "A sees the teacher again: {}",
        after.len()
    );
    assert_eq!(
        h.peers[a].received_packets[mark..].len(),
        after.len(),
        "under no other SSRC"
    );
    assert_continuous_from_a_keyframe(&before, &after);
    assert_eq!(offers_to(&h, since, a), 0, "A's leg is not renegotiated");
    assert!(
        unpublished(&h, since).is_empty() && published(&h, since).is_empty(),
        "nobody is told a track ended or began"
    );
    assert_eq!(
        the_track(&h, Source::Camera),
        track,
        "the class still knows the camera by its track id"
    );
}

#[test]
fn a_screen_share_that_stops_and_starts_again_keeps_the_subscribers_transceiver() {
    let (mut h, teacher, a, mut ts) = a_teacher_sharing_a_screen(30);
    let track = the_track(&h, Source::Screen);
    let ssrc = down_ssrc(&h, a, &track);
    let before = received(&h, a, ssrc, 0);
    assert!(before.len() > 20, "A sees the screen share");

    // The share ends: A is told (its tile hides), its transceiver stays.
    let since = h.events.len();
    h.stop_screen(teacher);
    h.run_for(Duration::from_millis(300));
    assert_eq!(
        unpublished(&h, since),
        vec![track.clone()],
        "the share ended"
    );
    assert!(
        h.router
            .tracks_of(&ClassId::from("c_test"))
            .iter()
            .all(|t| t.source != Source::Screen),
        "a class that joins now is not told of a share"
    );
    camera(&mut h, teacher, DELTA, 10);

    // A new share (another track, another SSRC) fills the same slot.
    let mark = h.peers[a].received_packets.len();
    h.share_screen(teacher, "screen-2", 0x6000);
    h.run_for(Duration::from_millis(300));
    screen(&mut h, teacher, DELTA, 5, &mut ts);
    screen(&mut h, teacher, KEY, 1, &mut ts);
    screen(&mut h, teacher, DELTA, 20, &mut ts);
    assert_eq!(
        published(&h, since),
        vec![track.clone()],
        "the share is back under its track id"
    );
    assert_eq!(down_ssrc(&h, a, &track), ssrc, "on A's same downtrack");
    let after = received(&h, a, ssrc, mark);
    assert!(after.len() >= 21, "A sees the new share: {}", after.len());
    assert_continuous_from_a_keyframe(&before, &after);
    assert_eq!(
        offers_to(&h, since, a),
        0,
        "A's leg is renegotiated neither when the share stops nor when it starts"
    );
}

#[test]
fn a_rejoined_teacher_who_shares_no_more_ends_the_share_and_the_camera_goes_on() {
    let (mut h, teacher, a, _) = a_teacher_sharing_a_screen(5);
    let (cam, share) = (the_track(&h, Source::Camera), the_track(&h, Source::Screen));

    let since = h.events.len();
    h.rejoin_and_publish_video(teacher);
    h.run_for(Duration::from_millis(300));
    assert_eq!(
        unpublished(&h, since),
        vec![share],
        "the new page publishes no share: it ended, as soon as its offer said so"
    );
    camera(&mut h, teacher, KEY, 10);
    assert_eq!(the_track(&h, Source::Camera), cam, "the camera goes on");
    assert_eq!(offers_to(&h, since, a), 0, "A's leg is not renegotiated");

    // The teacher leaves for good: its tracks end as they always did, A's leg drops them.
    let since = h.events.len();
    let now = h.now;
    let id = h.peers[teacher].id.clone();
    h.router.leave(now, &id);
    h.run_for(Duration::from_millis(300));
    assert_eq!(
        unpublished(&h, since),
        vec![cam],
        "the camera ends; the share, ended already, is not announced twice"
    );
    assert_eq!(
        offers_to(&h, since, a),
        1,
        "A's leg drops both transceivers"
    );
    assert!(h.router.members[&h.peers[a].id].downtracks.is_empty());
}

#[test]
fn a_rejoined_classroom_that_brings_nothing_back_ends_its_tracks_after_the_hold() {
    let mut h = Harness::new();
    let teacher = h.join(Role::Master);
    let _a = h.join(Role::Remote);
    h.publish_video(teacher);
    h.run_for(Duration::from_millis(300));
    camera(&mut h, teacher, KEY, 5);
    let cam = the_track(&h, Source::Camera);

    let since = h.events.len();
    let now = h.now;
    let id = h.peers[teacher].id.clone();
    h.router
        .join(now, ClassId::from("c_test"), id, Role::Master);
    h.run_for(Duration::from_secs(5));
    assert!(
        unpublished(&h, since).is_empty(),
        "held while the page comes back"
    );
    h.run_for(Duration::from_secs(6));
    assert_eq!(
        unpublished(&h, since),
        vec![cam],
        "ended once the hold ran out"
    );
}
