//! Telling apart the datagrams on the one shared media port.
//!
//! All classrooms send to one UDP port. Once a remote address is known, it names its transport. A
//! new address first sends an ICE connectivity check (a STUN Binding request) whose USERNAME
//! attribute starts with the ICE username fragment the server gave that transport in its SDP — that
//! is how a new address is matched (RFC 8445 §7.2.2; what mediasoup's WebRtcServer and LiveKit's UDP
//! mux do). The ufrag alone is public (it travels in the SDP), so a check only counts, binds an
//! address or refreshes consent, when its MESSAGE-INTEGRITY verifies with that leg's password
//! (RFC 8489 §14.5, short-term credentials; RFC 7675 consent).

const STUN_HEADER_LEN: usize = 20;
const STUN_MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const STUN_BINDING_REQUEST: [u8; 2] = [0x00, 0x01];
const ATTR_USERNAME: u16 = 0x0006;
const ATTR_MESSAGE_INTEGRITY: u16 = 0x0008;
/// HMAC-SHA1: 20 bytes.
const MESSAGE_INTEGRITY_LEN: usize = 20;

/// Whether a datagram is STUN (RFC 7983: first byte 0..=3).
pub fn is_stun(datagram: &[u8]) -> bool {
    datagram.len() >= STUN_HEADER_LEN && datagram[0] <= 3 && datagram[4..8] == STUN_MAGIC_COOKIE
}

/// The server-side ICE ufrag a STUN Binding request is addressed to, if the datagram is one.
pub fn binding_request_ufrag(datagram: &[u8]) -> Option<&str> {
    let value = binding_request_attribute(datagram, ATTR_USERNAME)?.1;
    let username = std::str::from_utf8(value).ok()?;
    // "<receiver ufrag>:<sender ufrag>": we are the receiver.
    username.split(':').next()
}

/// Whether a STUN Binding request carries a MESSAGE-INTEGRITY that verifies with `password`
/// (the short-term credential of the leg its USERNAME names, RFC 8489 §14.5).
pub fn binding_request_verifies(datagram: &[u8], password: &str) -> bool {
    let Some((at, tag)) = binding_request_attribute(datagram, ATTR_MESSAGE_INTEGRITY) else {
        return false;
    };
    if tag.len() != MESSAGE_INTEGRITY_LEN {
        return false;
    }
    // The HMAC covers the message up to the attribute, with the header's length field set as if
    // MESSAGE-INTEGRITY were the last attribute (a FINGERPRINT may follow it).
    let length = (at + 4 + MESSAGE_INTEGRITY_LEN - STUN_HEADER_LEN) as u16;
    let mut signed = Vec::with_capacity(at);
    signed.extend_from_slice(&datagram[..2]);
    signed.extend_from_slice(&length.to_be_bytes());
    signed.extend_from_slice(&datagram[4..at]);
    let key = ring::hmac::Key::new(
        ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        password.as_bytes(),
    );
    ring::hmac::verify(&key, &signed, tag).is_ok()
}

/// The offset and value of the first attribute of `kind` in a STUN Binding request.
fn binding_request_attribute(datagram: &[u8], kind: u16) -> Option<(usize, &[u8])> {
    if !is_stun(datagram) || datagram[0..2] != STUN_BINDING_REQUEST {
        return None;
    }
    let declared = u16::from_be_bytes([datagram[2], datagram[3]]) as usize;
    let end = (STUN_HEADER_LEN + declared).min(datagram.len());
    let mut at = STUN_HEADER_LEN;
    while at + 4 <= end {
        let found = u16::from_be_bytes([datagram[at], datagram[at + 1]]);
        let len = u16::from_be_bytes([datagram[at + 2], datagram[at + 3]]) as usize;
        let value = datagram.get(at + 4..at + 4 + len)?;
        if found == kind {
            return Some((at, value));
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    None
}

/// Whether a datagram is (S)RTP media, not RTCP: RFC 7983 puts RTP and RTCP at first byte
/// 128..=191, and RFC 5761 §4 tells them apart by the second byte (RTCP packet types 192..=223
/// leave 64..=95 once the marker bit is masked off). SRTP keeps that header in the clear.
pub fn is_rtp(datagram: &[u8]) -> bool {
    datagram.len() >= 12
        && (128..=191).contains(&datagram[0])
        && !(64..=95).contains(&(datagram[1] & 0x7f))
}

#[cfg(test)]
mod tests {
    #[test]
    fn rtp_is_told_from_rtcp_stun_and_dtls() {
        // RTP, VP8 payload type 96 with and without the marker bit.
        assert!(is_rtp(&[0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]));
        assert!(is_rtp(&[0x80, 0x80 | 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]));
        // RTCP receiver report (201) and PLI (206).
        assert!(!is_rtp(&[0x81, 201, 0, 7, 0, 0, 0, 0, 0, 0, 0, 1]));
        assert!(!is_rtp(&[0x81, 206, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1]));
        // A DTLS record (20..=63) and a STUN message (0..=3); a runt.
        assert!(!is_rtp(&[23, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 1]));
        assert!(!is_rtp(&[0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0]));
        assert!(!is_rtp(&[0x80, 96]));
    }

    use super::*;

    use crate::testkit::signed_binding_request;

    #[test]
    fn integrity_verifies_only_with_the_legs_password() {
        let check = signed_binding_request("srvA:cli9", "the-right-password");
        assert_eq!(binding_request_ufrag(&check), Some("srvA"));
        assert!(binding_request_verifies(&check, "the-right-password"));
        assert!(!binding_request_verifies(&check, "another-password"));
        let mut tampered = check.clone();
        tampered[8] ^= 1; // the transaction id
        assert!(!binding_request_verifies(&tampered, "the-right-password"));
        // The ufrag alone, as anyone who saw the SDP could send it, proves nothing.
        assert!(!binding_request_verifies(
            &binding_request("srvA:cli9"),
            "the-right-password"
        ));
    }

    fn binding_request(username: &str) -> Vec<u8> {
        let mut attrs = Vec::new();
        // A PRIORITY attribute first, as browsers send it, to prove we walk past others.
        attrs.extend_from_slice(&[0x00, 0x24, 0x00, 0x04, 1, 2, 3, 4]);
        attrs.extend_from_slice(&ATTR_USERNAME.to_be_bytes());
        attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attrs.extend_from_slice(username.as_bytes());
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        let mut msg = vec![0x00, 0x01];
        msg.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        msg.extend_from_slice(&STUN_MAGIC_COOKIE);
        msg.extend_from_slice(&[7; 12]);
        msg.extend_from_slice(&attrs);
        msg
    }

    #[test]
    fn finds_the_server_ufrag() {
        assert_eq!(
            binding_request_ufrag(&binding_request("srvA:cli9")),
            Some("srvA")
        );
    }

    #[test]
    fn ignores_media_and_garbage() {
        let rtp = [
            0x80u8, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(binding_request_ufrag(&rtp), None);
        assert_eq!(binding_request_ufrag(&[0, 1, 2]), None);
        let mut truncated = binding_request("srvA:cli9");
        truncated.truncate(26);
        assert_eq!(binding_request_ufrag(&truncated), None);
    }
}
