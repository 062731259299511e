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
    fn an_offer_without_msid_says_nothing() {
        assert_eq!(
            sending_track_ids("v=0\r\nm=audio 9 RTP/SAVPF 111\r\na=sendonly\r\n"),
            None
        );
        let none_sending = sending_track_ids("v=0\r\nm=audio 9 RTP/SAVPF 111\r\na=inactive\r\n");
        assert_eq!(none_sending.map(|s| s.len()), Some(0));
    }
}
