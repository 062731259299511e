//! Redundant audio (RFC 2198) through the router: a teacher's browser sends RED; a classroom
//! that negotiated RED gets RED, one that did not gets plain Opus, with the frames lost on the
//! teacher's uplink rebuilt from the redundancy.

use std::time::Duration;

use bytes::Bytes;

use crate::Role;
use crate::codecs::RED_PAYLOAD_TYPE;
use crate::testkit::Harness;

/// The Opus frame of the `n`-th 20 ms of the teacher's microphone (distinct per frame).
fn frame(n: u16) -> Bytes {
    let mut f = vec![0xf8; 60];
    f[1..3].copy_from_slice(&n.to_be_bytes());
    Bytes::from(f)
}

/// A teacher publishing RED, a classroom that negotiated RED and one that did not; both hear the
/// teacher already (the first frames went to setting the subscriptions up). Returns
/// (harness, teacher, RED classroom, Opus-only classroom, frames sent so far).
fn lesson() -> (Harness, usize, usize, usize, u16) {
    let mut h = Harness::new();
    let teacher = h.join_with_red(Role::Master);
    let red_room = h.join_with_red(Role::Remote);
    let opus_room = h.join(Role::Remote);
    h.publish_audio(teacher);
    h.run_for(Duration::from_millis(300));
    let mut n = 0;
    // Poll (in fake time, bounded) until both classrooms receive.
    while h.peers[red_room].received == 0 || h.peers[opus_room].received == 0 {
        assert!(n < 100, "the classrooms never heard the teacher");
        h.send_red(teacher, frame(n));
        n += 1;
        h.run_for(Duration::from_millis(20));
    }
    for p in &mut h.peers {
        p.received_payloads.clear();
    }
    (h, teacher, red_room, opus_room, n)
}

#[test]
fn a_red_classroom_gets_red_and_an_opus_classroom_gets_the_plain_frames() {
    let (mut h, teacher, red_room, opus_room, first) = lesson();
    let frames: Vec<Bytes> = (first..first + 50).map(frame).collect();
    for f in &frames {
        h.send_red(teacher, f.clone());
        h.run_for(Duration::from_millis(20));
    }

    let red = &h.peers[red_room].received_payloads;
    assert_eq!(red.len(), frames.len());
    for ((pt, payload), n) in red.iter().zip(first..) {
        assert_eq!(*pt, RED_PAYLOAD_TYPE, "forwarded as RED");
        let parsed = crate::red::parse(payload).expect("a RED payload");
        assert_eq!(parsed.primary, frame(n));
        // The teacher's browser sent one earlier frame; the server repeats two.
        assert_eq!(redundant_frames(&parsed), [frame(n - 2), frame(n - 1)]);
    }

    let opus = &h.peers[opus_room].received_payloads;
    assert!(
        opus.iter().all(|(pt, _)| *pt == 111),
        "plain Opus: {:?}",
        opus.iter().map(|(pt, _)| pt).collect::<Vec<_>>()
    );
    let heard: Vec<&Bytes> = opus.iter().map(|(_, p)| p).collect();
    assert_eq!(heard, frames.iter().collect::<Vec<_>>());
}

#[test]
fn with_5_percent_uplink_loss_the_opus_classroom_still_gets_every_frame() {
    let (mut h, teacher, red_room, opus_room, first) = lesson();
    let frames: Vec<Bytes> = (first..first + 200).map(frame).collect();
    for (i, f) in frames.iter().enumerate() {
        // One packet in twenty never reaches the server (never two in a row: one redundant
        // block covers one loss).
        if i % 20 == 7 {
            h.lose_next_from.push(teacher);
        }
        h.send_red(teacher, f.clone());
        h.run_for(Duration::from_millis(20));
    }
    let lost = frames.len() / 20;

    let heard: Vec<&Bytes> = h.peers[opus_room]
        .received_payloads
        .iter()
        .map(|(_, p)| p)
        .collect();
    assert_eq!(
        heard,
        frames.iter().collect::<Vec<_>>(),
        "every frame, in order, once"
    );
    // The RED classroom gets the packets that arrived, and rebuilds the rest itself: each
    // carries the two frames before it, those lost on the uplink too (rebuilt by the server), so
    // its own downlink may lose two in a row.
    let red = &h.peers[red_room].received_payloads;
    assert_eq!(red.len(), frames.len() - lost);
    let arrived = (first..first + 200).filter(|n| (n - first) % 20 != 7);
    for ((_, payload), n) in red.iter().zip(arrived) {
        let parsed = crate::red::parse(payload).expect("a RED payload");
        assert_eq!(parsed.primary, frame(n));
        assert_eq!(redundant_frames(&parsed), [frame(n - 2), frame(n - 1)]);
    }
    let recovered = h
        .metrics
        .packets_recovered
        .get_or_create(&[("kind", "audio"), ("by", "red")])
        .get();
    assert_eq!(recovered, lost as u64);
    h.stop_publishing(teacher);
    assert_eq!(
        h.metrics
            .packets_lost
            .get_or_create(&[("kind", "audio")])
            .get(),
        0,
        "nothing lost after recovery"
    );
}

/// The frames a RED payload repeats, oldest first, checked to be 20 ms apart back from its
/// primary (the timestamp offsets a receiver numbers them by).
fn redundant_frames(red: &crate::red::Red) -> Vec<Bytes> {
    let blocks = red.redundant();
    for (i, block) in blocks.iter().enumerate() {
        let distance = (blocks.len() - i) as u16;
        assert_eq!(
            block.timestamp_offset,
            960 * distance,
            "20 ms of 48 kHz per frame"
        );
        assert_eq!(block.payload_type, 111);
    }
    blocks.iter().map(|b| b.payload.clone()).collect()
}
