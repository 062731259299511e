//! Letting keyframe requests out of the interceptor chain.
//!
//! `rtc` stops inbound RTCP at the end of its interceptor chain unless an interceptor vouches for a
//! packet. An SFU must see a subscriber's PLI/FIR to relay it to the publisher (and a publishing
//! client must see it to encode a keyframe), so this tap marks exactly those and leaves receiver
//! reports and NACKs to the interceptors that already act on them.

use std::collections::VecDeque;
use std::time::Instant;

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

/// Where the tap sits: after every built-in interceptor, nearest the application.
pub const KEYFRAME_TAP_SLOT: usize = 14_000;

/// Whether an RTCP compound packet asks for a keyframe.
pub fn asks_for_keyframe(packets: &[Box<dyn rtc::rtcp::Packet>]) -> bool {
    packets
        .iter()
        .any(|p| p.as_any().is::<PictureLossIndication>() || p.as_any().is::<FullIntraRequest>())
}

/// Which inbound RTCP compound packets a [`RtcpTap`] lets through to the application.
pub type RtcpFilter = fn(&[Box<dyn rtc::rtcp::Packet>]) -> bool;

/// Lets the RTCP packets `wants` picks out of the interceptor chain and passes everything else
/// on untouched, for the interceptors that already act on it. One tap per kind of feedback the
/// application reads: keyframe requests here, sender reports in [`crate::lipsync`].
pub struct RtcpTap {
    wants: RtcpFilter,
    reads: VecDeque<TaggedPacket>,
    writes: VecDeque<TaggedPacket>,
}

impl RtcpTap {
    pub fn new(wants: RtcpFilter) -> Self {
        Self {
            wants,
            reads: VecDeque::new(),
            writes: VecDeque::new(),
        }
    }

    /// The tap for keyframe requests (PLI/FIR).
    pub fn keyframe_requests() -> Self {
        Self::new(asks_for_keyframe)
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for RtcpTap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet
            && (self.wants)(packets)
        {
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.reads.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.reads.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Error> {
        self.writes.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.writes.pop_front()
    }

    fn handle_timeout(&mut self, _now: Instant) -> Result<(), Error> {
        Ok(())
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        None
    }
}

impl Interceptor for RtcpTap {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}
