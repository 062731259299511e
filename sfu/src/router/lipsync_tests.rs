//! Lip sync through the router: the receiver lines audio up with video by the sender reports it
//! gets, whatever delay each stream took to the server.

use std::time::Duration;

use bytes::Bytes;

use crate::testkit::Harness;
use crate::{MediaKind, Role};

const OPUS: &[u8] = &[0xf8; 80];
const VP8_KEY: &[u8] = &[0x10, 0x10, 0x01, 0x02, 0x9d, 0x01, 0x2a, 0, 0, 0];

/// NTP 32.32 fixed point in seconds.
fn ntp_secs(ntp: u64) -> f64 {
    (ntp >> 32) as f64 + (ntp & 0xffff_ffff) as f64 / 4_294_967_296.0
}

/// When the receiver believes `rtp_time` was captured, by the report (ntp, rtp) of its stream.
fn capture_secs(report: (u64, u32), rtp_time: u32, clock_rate: f64) -> f64 {
    let (ntp, at) = report;
    ntp_secs(ntp) + f64::from(rtp_time.wrapping_sub(at) as i32) / clock_rate
}

#[test]
fn audio_slower_to_the_server_than_video_stays_in_sync_at_the_receiver() {
    let mut h = Harness::new();
    let teacher = h.join(Role::Master);
    let a = h.join(Role::Remote);
    h.publish_audio_and_video(teacher);
    let (audio_ssrc, _) = h.audio_and_video_ssrcs(teacher);
    // The microphone's packets and reports take 150 ms longer to the server than the camera's.
    h.delay_ssrc = Some((audio_ssrc, Duration::from_millis(150)));
    h.run_for(Duration::from_millis(300));

    // Both are captured on one clock: RTP timestamps follow (fake) time since t0.
    let t0 = h.now;
    let (audio_base, video_base) = (1_000_000u32, 5_000_000u32);
    let stamp = |h: &Harness, rate: u32, base: u32| {
        base.wrapping_add(((h.now - t0).as_secs_f64() * f64::from(rate)) as u32)
    };
    while h.now < t0 + Duration::from_secs(6) {
        let ts = stamp(&h, 48_000, audio_base);
        h.send_timed(teacher, false, Bytes::from_static(OPUS), ts);
        let ts = stamp(&h, 90_000, video_base);
        h.send_timed(teacher, true, Bytes::from_static(VP8_KEY), ts);
        h.run_for(Duration::from_millis(20));
    }
    // Reports made while media flows (a report after the end maps only the last packets).
    let during = h.peers[a].sender_reports.len();

    let a_id = h.peers[a].id.clone();
    let downtrack_ssrc = |kind: MediaKind| {
        h.router.members[&a_id]
            .downtracks
            .values()
            .find(|d| d.kind == kind)
            .map(|d| d.ssrc)
            .expect("A receives the track")
    };
    let last_report = |ssrc: u32| {
        h.peers[a].sender_reports[..during]
            .iter()
            .rev()
            .find(|(s, ..)| *s == ssrc)
            .map(|&(_, ntp, rtp)| (ntp, rtp))
    };
    let audio_report = last_report(downtrack_ssrc(MediaKind::Audio)).expect("an audio report");
    let video_report = last_report(downtrack_ssrc(MediaKind::Video)).expect("a video report");

    // A moment captured 5 s after t0, as the receiver places it on each stream.
    let at = 5.0;
    let audio = capture_secs(
        audio_report,
        audio_base.wrapping_add((at * 48_000.0) as u32),
        48_000.0,
    );
    let video = capture_secs(
        video_report,
        video_base.wrapping_add((at * 90_000.0) as u32),
        90_000.0,
    );
    let skew_ms = (audio - video) * 1000.0;
    assert!(
        skew_ms.abs() < 40.0,
        "audio and video of one moment are {skew_ms:.1} ms apart at the receiver"
    );
}
