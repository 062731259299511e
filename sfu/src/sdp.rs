//! The little the router reads from an SDP itself.

use std::collections::HashSet;

/// The track ids (the second `msid` value) of every media section the offerer sends on: not
/// rejected (port 0) and `sendonly` or `sendrecv`. A track missing here has stopped. `None` when
/// a sending section names no track (an encoder without `msid`): then nothing can be concluded.
pub fn sending_track_ids(sdp: &str) -> Option<HashSet<String>> {
    let mut sending = HashSet::new();
    let mut unnamed = false;
    let mut section: Option<(bool, bool, Vec<String>)> = None; // (port open, sends, track ids)
    let mut close = |section: &mut Option<(bool, bool, Vec<String>)>| {
        if let Some((open, sends, ids)) = section.take()
            && open
            && sends
        {
            unnamed |= ids.is_empty();
            sending.extend(ids);
        }
    };
    for line in sdp.lines().map(str::trim) {
        if let Some(media) = line.strip_prefix("m=") {
            close(&mut section);
            let open = media
                .split_whitespace()
                .nth(1)
                .is_some_and(|port| port != "0");
            // sendrecv is the default direction of a media section.
            section = Some((open, true, Vec::new()));
        } else if let Some((_, sends, ids)) = section.as_mut() {
            match line {
                "a=recvonly" | "a=inactive" => *sends = false,
                "a=sendonly" | "a=sendrecv" => *sends = true,
                _ => {
                    if let Some(msid) = line.strip_prefix("a=msid:")
                        && let Some(track) = msid.split_whitespace().nth(1)
                    {
                        ids.push(track.to_owned());
                    }
                }
            }
        }
    }
    close(&mut section);
    (!unnamed).then_some(sending)
}

/// `sdp` without candidates for component 2 (RTCP). Every leg bundles and muxes RTCP
/// (RFC 8843, RFC 5761), so `rtc`'s copy of each host candidate for component 2 is a duplicate
/// a client would only pair in vain.
pub fn without_rtcp_candidates(sdp: &str) -> String {
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.lines() {
        let line = line.trim_end();
        let rtcp = line
            .strip_prefix("a=candidate:")
            .and_then(|c| c.split_whitespace().nth(1))
            .is_some_and(|component| component == "2");
        if !rtcp {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out
}

/// `sdp` with every `a=ice-ufrag` / `a=ice-pwd` replaced (an ICE restart of the whole session).
pub fn with_ice_credentials(sdp: &str, ufrag: &str, pwd: &str) -> String {
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.lines() {
        let line = line.trim_end();
        if line.starts_with("a=ice-ufrag:") {
            out.push_str(&format!("a=ice-ufrag:{ufrag}"));
        } else if line.starts_with("a=ice-pwd:") {
            out.push_str(&format!("a=ice-pwd:{pwd}"));
        } else {
            out.push_str(line);
        }
        out.push_str("\r\n");
    }
    out
}

/// The ICE part of a description as an SDP fragment (RFC 8840): credentials, candidates, end.
pub fn ice_fragment(sdp: &str) -> String {
    let mut fragment = String::new();
    let mut seen = std::collections::HashSet::new();
    for line in sdp.lines().map(str::trim) {
        let ice = line.starts_with("a=ice-lite")
            || line.starts_with("a=ice-ufrag:")
            || line.starts_with("a=ice-pwd:")
            || line.starts_with("a=candidate:");
        if ice && seen.insert(line.to_owned()) {
            fragment.push_str(line);
            fragment.push_str("\r\n");
        }
    }
    fragment.push_str("a=end-of-candidates\r\n");
    fragment
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_screen_share_is_not_sending() {
        let sdp = "v=0\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendonly\r\na=msid:s mic\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendonly\r\na=msid:s cam\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=inactive\r\na=msid:s screen\r\n\
            m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=sendonly\r\na=msid:s old\r\n";
        let ids = sending_track_ids(sdp).unwrap();
        assert!(ids.contains("mic") && ids.contains("cam"));
        assert!(!ids.contains("screen"), "inactive");
        assert!(!ids.contains("old"), "rejected");
    }

    #[test]
    fn credentials_are_replaced_and_extracted() {
        let sdp = "v=0\r\nm=audio 9 RTP/SAVPF 111\r\na=ice-ufrag:old\r\na=ice-pwd:oldpwd\r\na=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n";
        let restarted = with_ice_credentials(sdp, "new", "newpwd");
        assert!(
            restarted.contains("a=ice-ufrag:new\r\n") && restarted.contains("a=ice-pwd:newpwd\r\n")
        );
        assert!(!restarted.contains("old"));
        let fragment = ice_fragment(&restarted);
        assert_eq!(
            fragment,
            "a=ice-ufrag:new\r\na=ice-pwd:newpwd\r\na=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\na=end-of-candidates\r\n"
        );
    }

    #[test]
    fn rtcp_candidates_are_left_out() {
        let sdp = "v=0\r\nm=audio 9 RTP/SAVPF 111\r\n\
            a=candidate:1 1 udp 2130706431 127.0.0.1 8443 typ host\r\n\
            a=candidate:1 2 udp 2130706431 127.0.0.1 8443 typ host\r\n\
            a=end-of-candidates\r\n";
        assert_eq!(
            without_rtcp_candidates(sdp),
            "v=0\r\nm=audio 9 RTP/SAVPF 111\r\n\
            a=candidate:1 1 udp 2130706431 127.0.0.1 8443 typ host\r\n\
            a=end-of-candidates\r\n"
        );
    }

    #[test]
    fn an_offer_without_msid_says_nothing() {
        assert_eq!(
            sending_track_ids("v=0\r\nm=audio 9 RTP/SAVPF 111\r\na=sendonly\r\n"),
            None
        );
        let none_sending = sending_track_ids("v=0\r\nm=audio 9 RTP/SAVPF 111\r\na=inactive\r\n");
        assert_eq!(none_sending.map(|s| s.len()), Some(0));
    }
}
