//! Consent freshness (RFC 7675): a leg is served while its peer keeps checking, lost only after
//! the consent timeout.

use std::time::Duration;

use bytes::Bytes;

use crate::testkit::Harness;
use crate::{Leg, Role, RouterEvent};

fn lost(h: &Harness, index: usize) -> bool {
    let id = &h.peers[index].id;
    h.events.iter().any(|e| {
        matches!(e, RouterEvent::LegState { classroom, connected: false, .. } if classroom == id)
    })
}

/// The teacher sends a video packet every 50 ms of (fake) time for `duration`, or until `stop`
/// holds. Returns the packets sent.
fn stream(
    h: &mut Harness,
    teacher: usize,
    duration: Duration,
    stop: impl Fn(&Harness) -> bool,
) -> usize {
    let end = h.now + duration;
    let mut sent = 0;
    while h.now < end && !stop(h) {
        h.send_packet(teacher, Bytes::from_static(&[0x10; 200]));
        sent += 1;
        h.run_for(Duration::from_millis(50));
    }
    sent
}

/// Peers that check every 4 s and every 6 s (5 s ± 20 %, as aiortc and Firefox do) keep
/// receiving for 40 s with not one packet missing, and no leg is ever reported lost.
#[test]
fn peers_checking_every_five_seconds_keep_receiving_without_a_gap() {
    let mut h = Harness::new();
    let teacher = h.join_checking_every(Role::Master, Some(Duration::from_secs(6)));
    let a = h.join_checking_every(Role::Remote, Some(Duration::from_secs(6)));
    let b = h.join_checking_every(Role::Remote, Some(Duration::from_secs(4)));
    h.publish_video(teacher);
    h.run_for(Duration::from_millis(300));
    h.send_packet(teacher, Bytes::from_static(&[0x10; 200]));
    h.run_for(Duration::from_millis(500));
    let start = [
        h.peers[a].received_seqs.len(),
        h.peers[b].received_seqs.len(),
    ];
    let sent = stream(&mut h, teacher, Duration::from_secs(40), |_| false);
    h.run_for(Duration::from_millis(500));
    for (i, peer) in [a, b].into_iter().enumerate() {
        let got = &h.peers[peer].received_seqs[start[i]..];
        assert_eq!(got.len(), sent, "classroom {peer} received every packet");
        let holes = got
            .windows(2)
            .filter(|w| w[1] != w[0].wrapping_add(1))
            .count();
        assert_eq!(holes, 0, "classroom {peer}'s stream has no hole");
        assert!(!lost(&h, peer), "classroom {peer}'s legs were never lost");
    }
    assert!(!lost(&h, teacher), "the teacher's leg was never lost");
}

/// A peer that stops checking keeps its legs for the consent timeout (30 s), not 5 s; then its
/// legs are reported lost and it gets no more media.
#[test]
fn a_peer_that_stops_checking_is_lost_after_thirty_seconds_and_not_before() {
    let mut h = Harness::new();
    let teacher = h.join(Role::Master);
    let a = h.join_checking_every(Role::Remote, Some(Duration::from_secs(5)));
    h.publish_video(teacher);
    h.run_for(Duration::from_millis(300));
    h.send_packet(teacher, Bytes::from_static(&[0x10; 200]));
    h.run_for(Duration::from_millis(500));
    stream(&mut h, teacher, Duration::from_secs(1), |_| false);
    assert!(h.peers[a].received > 0, "A receives");

    h.mute_checks_from.push(a);
    let muted = h.now;
    let before = h.peers[a].received;
    let sent = stream(&mut h, teacher, Duration::from_secs(40), |h| lost(h, a));
    let lost_after = h.now - muted;
    assert!(lost(&h, a), "A is lost once it stopped checking");
    // Its last check came at most 5 s before it stopped: consent lasts 25 to 30 s more.
    assert!(
        lost_after > Duration::from_secs(25) && lost_after <= Duration::from_millis(30_100),
        "A was lost {lost_after:?} after its checks stopped"
    );
    assert!(
        h.peers[a].received + 1 >= before + sent as u64,
        "A received everything while consent was fresh"
    );
    let a_id = h.peers[a].id.clone();
    assert!(
        h.events.iter().any(|e| matches!(e,
            RouterEvent::LegState { classroom, leg: Leg::Subscribe, connected: false } if *classroom == a_id)),
        "it is A's subscribe leg that is lost"
    );
    let after = h.peers[a].received;
    stream(&mut h, teacher, Duration::from_secs(2), |_| false);
    assert_eq!(h.peers[a].received, after, "a lost leg gets no media");
    assert!(!lost(&h, teacher), "the teacher, still checking, is served");
}

/// Anyone who saw the SDP knows a leg's ufrag. A check that names it but is not signed with the
/// leg's password binds nothing, so it cannot draw the leg's media to another address; a signed
/// one does (a peer whose address changed).
#[test]
fn only_a_check_signed_with_the_legs_password_binds_an_address() {
    let mut h = Harness::new();
    let teacher = h.join(Role::Master);
    let a = h.join(Role::Remote);
    h.publish_video(teacher);
    h.run_for(Duration::from_millis(300));
    stream(&mut h, teacher, Duration::from_secs(1), |_| false);
    let key = h.router.members[&h.peers[a].id]
        .subscribe
        .expect("A has a subscribe leg");
    let (ufrag, pwd) = {
        let t = &h.router.transports[&key];
        (t.ufrag.clone(), t.ice_pwd.clone())
    };
    let intruder: std::net::SocketAddr = "127.0.0.1:40404".parse().expect("addr");
    let now = h.now;
    let server = h.router.config.media_addr;
    for forged in [
        crate::testkit::signed_binding_request(&format!("{ufrag}:evil"), "a guessed password"),
        crate::testkit::signed_binding_request(&format!("{ufrag}:evil"), ""),
    ] {
        h.router.handle_datagram(now, server, intruder, &forged);
    }
    assert!(
        !h.router.by_addr.contains_key(&intruder),
        "a forged check binds nothing"
    );
    while let Some(t) = h.router.poll_transmit() {
        assert_ne!(t.to, intruder, "nothing is sent to the intruder");
    }
    let signed = crate::testkit::signed_binding_request(&format!("{ufrag}:moved"), &pwd);
    h.router.handle_datagram(now, server, intruder, &signed);
    assert_eq!(
        h.router.by_addr.get(&intruder),
        Some(&key),
        "a check signed with the leg's password binds its address"
    );
}

/// The one shared port is one host candidate for component 1: every leg bundles and muxes
/// RTCP, so a copy for component 2 would be a duplicate a client pairs in vain.
#[test]
fn offers_carry_the_host_candidate_once() {
    let mut h = Harness::new();
    let teacher = h.join(Role::Master);
    let a = h.join(Role::Remote);
    h.publish_video(teacher);
    h.run_for(Duration::from_millis(300));
    stream(&mut h, teacher, Duration::from_millis(200), |_| false);
    let a_id = h.peers[a].id.clone();
    let offer = h
        .events
        .iter()
        .find_map(|e| match e {
            RouterEvent::SubscribeOffer { classroom, sdp, .. } if *classroom == a_id => {
                Some(sdp.clone())
            }
            _ => None,
        })
        .expect("A was offered the teacher's video");
    let mut candidates: Vec<&str> = offer
        .lines()
        .filter(|l| l.starts_with("a=candidate:"))
        .collect();
    assert!(!candidates.is_empty(), "the offer names the server's port");
    for c in &candidates {
        assert_eq!(
            c.split_whitespace().nth(1),
            Some("1"),
            "component 1 only: {c}"
        );
    }
    candidates.sort_unstable();
    candidates.dedup();
    // One host candidate per transport: UDP, and the passive ICE-TCP one on the same port.
    let mut transports: Vec<String> = candidates
        .iter()
        .filter_map(|c| c.split_whitespace().nth(2))
        .map(str::to_ascii_lowercase)
        .collect();
    transports.sort_unstable();
    assert_eq!(transports, ["tcp", "udp"], "one candidate each: {offer}");
}

/// A leg lost by consent is served again as soon as a verified check comes: the peer is told
/// (`connected: true`) and media flows again.
#[test]
fn a_lost_leg_comes_back_with_a_verified_check() {
    let mut h = Harness::new();
    let teacher = h.join(Role::Master);
    let a = h.join_checking_every(Role::Remote, Some(Duration::from_secs(5)));
    h.publish_video(teacher);
    h.run_for(Duration::from_millis(300));
    stream(&mut h, teacher, Duration::from_secs(1), |_| false);
    h.mute_checks_from.push(a);
    stream(&mut h, teacher, Duration::from_secs(40), |h| lost(h, a));
    assert!(lost(&h, a), "A was lost");
    let events_before = h.events.len();

    h.mute_checks_from.clear();
    let a_id = h.peers[a].id.clone();
    let back = |h: &Harness| {
        h.events[events_before..].iter().any(|e| {
            matches!(e, RouterEvent::LegState { classroom, leg: Leg::Subscribe, connected: true }
                if *classroom == a_id)
        })
    };
    stream(&mut h, teacher, Duration::from_secs(6), back);
    assert!(
        back(&h),
        "A's subscribe leg is served again after its next check"
    );
    let received = h.peers[a].received;
    stream(&mut h, teacher, Duration::from_secs(1), |_| false);
    assert!(h.peers[a].received > received, "and media flows again");
}
