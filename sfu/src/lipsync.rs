//! Lip sync through the SFU: each downtrack carries its publisher's clock mapping.
//!
//! A receiver lines audio up with video by the RTCP sender reports of each stream (RFC 3550
//! §6.4.1: this RTP timestamp was captured at this NTP time). Reports made by the server from
//! the time it forwards packets would map each stream's arrival, so audio and video that took
//! different paths (or queues) to the server would drift apart by the difference. Instead the
//! publisher's own reports are translated: same NTP time, the RTP time moved by the downtrack's
//! timestamp offset, the SSRC and packet/octet counts of the downtrack. `rtc`'s sender-report
//! interceptor cannot be fed another clock mapping, so the server's legs run without it
//! ([`crate::transport`]) and the router sends the translated reports.

use rtc::rtcp::sender_report::SenderReport;

/// Where the tap sits: after every built-in interceptor, next to the keyframe-request tap.
pub const SENDER_REPORT_TAP_SLOT: usize = crate::feedback::KEYFRAME_TAP_SLOT + 1;

/// The sender reports in an RTCP compound packet.
pub fn sender_reports(
    packets: &[Box<dyn rtc::rtcp::Packet>],
) -> impl Iterator<Item = &SenderReport> {
    packets
        .iter()
        .filter_map(|p| p.as_any().downcast_ref::<SenderReport>())
}

/// A publisher's report as one downtrack's: the publisher's NTP time, its RTP time moved by the
/// downtrack's timestamp offset, the downtrack's SSRC and counts.
pub fn translate(
    report: &SenderReport,
    ssrc: u32,
    rtp_time: u32,
    packet_count: u32,
    octet_count: u32,
) -> SenderReport {
    SenderReport {
        ssrc,
        ntp_time: report.ntp_time,
        rtp_time,
        packet_count,
        octet_count,
        ..Default::default()
    }
}

/// Lets a publisher's sender reports out of the interceptor chain (`rtc` stops inbound RTCP
/// that no interceptor vouches for); the receiver-report interceptor still reads them first.
pub fn sender_report_tap() -> crate::feedback::RtcpTap {
    crate::feedback::RtcpTap::new(|packets| sender_reports(packets).next().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_keeps_the_publishers_ntp_time_and_takes_the_downtracks_numbers() {
        let report = SenderReport {
            ssrc: 1,
            ntp_time: 0xe000_0000_8000_0000,
            rtp_time: 1000,
            packet_count: 500,
            octet_count: 90_000,
            ..Default::default()
        };
        let out = translate(&report, 7, 1000u32.wrapping_add(u32::MAX), 12, 3400);
        assert_eq!(out.ssrc, 7);
        assert_eq!(out.ntp_time, report.ntp_time);
        assert_eq!(out.rtp_time, 999);
        assert_eq!((out.packet_count, out.octet_count), (12, 3400));
    }
}
