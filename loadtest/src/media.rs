//! Media generation: what a classroom sends. An Opus tone in 20 ms packets and synthetic VP8
//! frames, both **open-loop**: every packet has a scheduled send time (start + n × period) that
//! does not move when the generator runs late, a video frame carries that scheduled time (not the
//! time it was built), and how late the generator was against its schedule is recorded. A starved
//! generator therefore shows up in the frames' latency and in its own lateness figure instead of
//! quietly sending fewer, later-stamped frames (coordinated omission).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use tandem_sfu::Source;
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::PeerConnection;

use anyhow::bail;

/// Marks a synthetic video payload that carries its send time.
const STAMP_MAGIC: &[u8; 4] = b"TDM1";
/// Opus frame length: 20 ms at 48 kHz, as browsers send.
pub(crate) const OPUS_FRAME_SAMPLES: usize = 960;
/// Width of one [`Bins`] slot.
pub const BIN: Duration = Duration::from_millis(10);

/// Microseconds since the Unix epoch; sender and receiver share this clock on one host.
pub fn wall_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The instant every [`Bins`] of this process counts from.
pub fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// Packet counts in 10 ms slots of this process's clock ([`origin`]): what a sender handed to a
/// track, or what a receiver got, so the two can be compared over any stretch of time. Costs
/// 4 bytes per 10 ms of the process's life (about 23 KiB a minute) per track.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bins {
    counts: Vec<u32>,
}

impl Bins {
    fn slot(at: Instant) -> usize {
        (at.saturating_duration_since(origin()).as_nanos() / BIN.as_nanos()) as usize
    }

    /// Counts `n` at `at`.
    pub fn add(&mut self, at: Instant, n: u32) {
        let slot = Self::slot(at);
        if slot >= self.counts.len() {
            self.counts.resize(slot + 1, 0);
        }
        self.counts[slot] = self.counts[slot].saturating_add(n);
    }

    /// Counts from `from` (inclusive) to `to` (exclusive), to the slot.
    pub fn sum(&self, from: Instant, to: Instant) -> u64 {
        let (a, b) = (Self::slot(from), Self::slot(to).min(self.counts.len()));
        self.counts
            .get(a..b.max(a))
            .map_or(0, |s| s.iter().map(|&c| c as u64).sum())
    }

    /// The instant at the end of the last slot with a count, if any.
    pub fn last(&self) -> Option<Instant> {
        let i = self.counts.iter().rposition(|&c| c > 0)?;
        Some(origin() + BIN * (i as u32 + 1))
    }
}

/// How late a run's generators were against their schedules, in microseconds; shared by every
/// sender of a run. It records only while it is on (the runner turns it on for the measured
/// window: joins and the end of a run are not what the figures are about); it starts on.
#[derive(Clone)]
pub struct LatenessRecorder(Arc<Mutex<Histogram<u64>>>, Arc<AtomicBool>);

impl std::fmt::Debug for LatenessRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("LatenessRecorder")
            .field(&self.0.lock().len())
            .finish()
    }
}

impl Default for LatenessRecorder {
    fn default() -> Self {
        Self(
            Arc::new(Mutex::new(crate::stats::new_histogram())),
            Arc::new(AtomicBool::new(true)),
        )
    }
}

impl LatenessRecorder {
    pub fn record(&self, late: Duration) {
        if self.1.load(Ordering::Relaxed) {
            crate::stats::record_us(&mut self.0.lock(), late);
        }
    }

    /// Records from now on (`true`) or not.
    pub fn set_recording(&self, on: bool) {
        self.1.store(on, Ordering::SeqCst);
    }

    /// A copy of what was recorded.
    pub fn histogram(&self) -> Histogram<u64> {
        self.0.lock().clone()
    }
}

/// What a sender tells the run about one track it publishes.
#[derive(Debug, Clone, Default)]
pub struct SenderReport {
    /// Packets handed to the track, by send time.
    pub sent: Arc<Mutex<Bins>>,
    /// Where to record the generator's lateness, if anywhere.
    pub lateness: Option<LatenessRecorder>,
}

/// Open-loop pacing: the n-th tick is due at `start + n × period` whatever happened before.
struct Schedule {
    start: Instant,
    start_wall_us: u64,
    period: Duration,
    n: u32,
}

impl Schedule {
    fn new(period: Duration) -> Self {
        Self {
            start: Instant::now(),
            start_wall_us: wall_micros(),
            period,
            n: 0,
        }
    }

    /// Waits for the next tick (returns at once when it is already past), records how late it
    /// is, and returns its scheduled time on the wall clock ([`wall_micros`]).
    async fn next(&mut self, lateness: Option<&LatenessRecorder>) -> u64 {
        let offset = self.period * self.n;
        self.n += 1;
        let due = self.start + offset;
        tokio::time::sleep_until(due.into()).await;
        if let Some(l) = lateness {
            l.record(Instant::now().saturating_duration_since(due));
        }
        self.start_wall_us + offset.as_micros() as u64
    }
}

/// What media a classroom sends.
#[derive(Debug, Clone)]
pub struct PublishSpec {
    /// A sine tone at this frequency, Opus-encoded, if set.
    pub tone_hz: Option<f32>,
    /// Synthetic VP8 video at this frame rate and size, if set.
    pub video: Option<VideoSpec>,
}

#[derive(Debug, Clone)]
pub struct VideoSpec {
    pub fps: u32,
    pub frame_bytes: usize,
    /// Also send a keyframe this often; `None`: only when a keyframe is asked for (and at start).
    pub keyframe_interval: Option<Duration>,
    pub source: Source,
}

pub(crate) fn local_track(
    kind: RtpCodecKind,
    mime: &str,
    clock_rate: u32,
    channels: u16,
) -> (Arc<TrackLocalStaticRTP>, u32) {
    let ssrc = rand::random::<u32>();
    let id = format!("{kind}-{ssrc:08x}");
    let track = MediaStreamTrack::new(
        "tandem-client".to_owned(),
        id.clone(),
        id,
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: rtc::rtp_transceiver::rtp_sender::RTCRtpCodec {
                mime_type: mime.to_owned(),
                clock_rate,
                channels,
                ..Default::default()
            },
            ..Default::default()
        }],
    );
    (Arc::new(TrackLocalStaticRTP::new(track)), ssrc)
}

pub(crate) async fn payload_type(
    pc: &Arc<dyn PeerConnection>,
    kind: RtpCodecKind,
) -> anyhow::Result<u8> {
    for sender in pc.get_senders().await {
        let params = sender.get_parameters().await?;
        if let Some(codec) = params.rtp_parameters.codecs.first()
            && sender.track().track().await.kind() == kind
        {
            return Ok(codec.payload_type);
        }
    }
    bail!("no negotiated codec for {kind}")
}

fn rtp(ssrc: u32, pt: u8, seq: u16, ts: u32, marker: bool, payload: Bytes) -> rtc::rtp::Packet {
    rtc::rtp::Packet {
        header: rtc::rtp::Header {
            version: 2,
            marker,
            payload_type: pt,
            sequence_number: seq,
            timestamp: ts,
            ssrc,
            ..Default::default()
        },
        payload,
    }
}

/// Opus encoder settings a browser negotiates.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OpusOptions {
    pub(crate) fec: bool,
    pub(crate) dtx: bool,
    /// Send RED (RFC 2198) under this payload type: each packet carries the previous frame as
    /// redundancy, as Chrome does when RED is negotiated.
    pub(crate) red: Option<u8>,
}

/// The payload type a publish leg negotiated for RED on its audio sender, if it did.
pub(crate) async fn red_send_payload_type(pc: &Arc<dyn PeerConnection>) -> Option<u8> {
    for sender in pc.get_senders().await {
        if sender.track().track().await.kind() != RtpCodecKind::Audio {
            continue;
        }
        let Ok(params) = sender.get_parameters().await else {
            continue;
        };
        if let Some(red) = params
            .rtp_parameters
            .codecs
            .iter()
            .find(|c| tandem_sfu::codecs::is_red(&c.rtp_codec.mime_type))
        {
            return Some(red.payload_type);
        }
    }
    None
}

/// Send an Opus-encoded sine tone in 20 ms frames, as a browser microphone would.
pub(crate) async fn send_tone(
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    pt: u8,
    hz: f32,
    options: OpusOptions,
    report: SenderReport,
) {
    let Ok(mut encoder) = opus::Encoder::new(48000, opus::Channels::Mono, opus::Application::Voip)
    else {
        return;
    };
    if options.fec {
        // As Chrome does with useinbandfec=1: FEC on, tuned for a few percent loss.
        let _ = encoder.set_inband_fec(true);
        let _ = encoder.set_packet_loss_perc(5);
    }
    if options.dtx {
        let _ = encoder.set_dtx(true);
    }
    let mut schedule = Schedule::new(Duration::from_millis(20));
    let (mut seq, mut ts, mut phase) = (rand::random::<u16>(), rand::random::<u32>(), 0f32);
    let step = 2.0 * std::f32::consts::PI * hz / 48000.0;
    let mut pcm = vec![0f32; OPUS_FRAME_SAMPLES];
    let mut out = vec![0u8; 1500];
    // The previous frame and its timestamp, repeated in the next RED packet.
    let mut previous: Option<(u32, Bytes)> = None;
    loop {
        schedule.next(report.lateness.as_ref()).await;
        for s in pcm.iter_mut() {
            *s = 0.5 * phase.sin();
            phase = (phase + step) % (2.0 * std::f32::consts::PI);
        }
        let Ok(n) = encoder.encode_float(&pcm, &mut out) else {
            return;
        };
        let frame = Bytes::copy_from_slice(&out[..n]);
        let packet = match options.red {
            Some(red_pt) => {
                let mut payload = BytesMut::new();
                let redundant: Vec<(u8, u16, &[u8])> = previous
                    .iter()
                    .filter_map(|(at, f)| {
                        let offset = u16::try_from(ts.wrapping_sub(*at)).ok()?;
                        (offset <= tandem_sfu::red::MAX_TIMESTAMP_OFFSET
                            && f.len() <= tandem_sfu::red::MAX_BLOCK_LENGTH)
                            .then_some((pt, offset, &f[..]))
                    })
                    .collect();
                if tandem_sfu::red::build(pt, &frame, &redundant, &mut payload).is_err() {
                    return;
                }
                previous = Some((ts, frame));
                rtp(ssrc, red_pt, seq, ts, false, payload.freeze())
            }
            None => rtp(ssrc, pt, seq, ts, false, frame),
        };
        if track.write_rtp(packet).await.is_ok() {
            report.sent.lock().add(Instant::now(), 1);
        }
        // Not bound yet or unbound: keep the cadence.
        seq = seq.wrapping_add(1);
        ts = ts.wrapping_add(OPUS_FRAME_SAMPLES as u32);
    }
}

/// A synthetic VP8 frame: a real payload descriptor and frame tag (so keyframes are recognisable),
/// then its scheduled send time (`sent_us`, [`wall_micros`]), then filler.
pub fn synthetic_vp8_frame(keyframe: bool, frame_no: u32, bytes: usize, sent_us: u64) -> Bytes {
    let mut b = BytesMut::with_capacity(bytes.max(32));
    b.put_u8(0x10); // descriptor: S=1, partition 0
    // Frame tag: bit 0 is the inverse keyframe flag; show_frame set.
    b.put_u8(if keyframe { 0x10 } else { 0x11 });
    b.put_u8(0);
    b.put_u8(0);
    if keyframe {
        b.put_slice(&[0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]); // start code, 640x480
    }
    b.put_slice(STAMP_MAGIC);
    b.put_u64(sent_us);
    b.put_u32(frame_no);
    while b.len() < bytes {
        b.put_u8((b.len() % 251) as u8);
    }
    b.freeze()
}

/// What a received synthetic frame's first packet says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoFrameInfo {
    pub keyframe: bool,
    pub sent_us: Option<u64>,
}

pub fn parse_video(payload: &[u8]) -> Option<VideoFrameInfo> {
    let descriptor = *payload.first()?;
    if descriptor & 0x10 == 0 {
        return None; // not the start of a frame
    }
    let tag = *payload.get(1)?;
    let keyframe = tag & 0x01 == 0;
    let stamp_at = if keyframe { 11 } else { 4 };
    let sent_us = payload
        .get(stamp_at..stamp_at + 12)
        .filter(|s| &s[..4] == STAMP_MAGIC)
        .map(|s| u64::from_be_bytes(s[4..12].try_into().unwrap_or_default()));
    Some(VideoFrameInfo { keyframe, sent_us })
}

/// Send synthetic video: a keyframe at start, on every keyframe request, and every
/// `keyframe_interval` if set.
pub(crate) async fn send_video(
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    pt: u8,
    spec: VideoSpec,
    report: SenderReport,
) {
    let mut schedule = Schedule::new(Duration::from_secs_f64(1.0 / spec.fps.max(1) as f64));
    let (mut seq, mut ts) = (rand::random::<u16>(), rand::random::<u32>());
    let ts_step = 90_000 / spec.fps.max(1);
    let mut frame_no = 0u32;
    let mut want_keyframe = true;
    let mut last_keyframe = Instant::now();
    // Keyframe requests arrive as track events.
    let (kf_tx, mut kf_rx) = mpsc::unbounded_channel();
    let requests = {
        let track = track.clone();
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                if let TrackLocalEvent::OnRtcpPacket(packets) = event
                    && tandem_sfu::feedback::asks_for_keyframe(&packets)
                {
                    let _ = kf_tx.send(());
                }
            }
        })
    };
    loop {
        let sent_us = schedule.next(report.lateness.as_ref()).await;
        while kf_rx.try_recv().is_ok() {
            want_keyframe = true;
        }
        if spec
            .keyframe_interval
            .is_some_and(|every| last_keyframe.elapsed() >= every)
        {
            want_keyframe = true;
        }
        let keyframe = std::mem::take(&mut want_keyframe);
        if keyframe {
            last_keyframe = Instant::now();
        }
        // Keyframes are larger: three packets' worth.
        let size = if keyframe {
            spec.frame_bytes * 3
        } else {
            spec.frame_bytes
        };
        let frame = synthetic_vp8_frame(keyframe, frame_no, size, sent_us);
        let mut chunks = frame.chunks(1100).peekable();
        let mut first = true;
        while let Some(chunk) = chunks.next() {
            let payload = if first {
                Bytes::copy_from_slice(chunk)
            } else {
                // Continuation packets: descriptor without the start bit.
                let mut b = BytesMut::with_capacity(chunk.len() + 1);
                b.put_u8(0x00);
                b.put_slice(chunk);
                b.freeze()
            };
            first = false;
            let last = chunks.peek().is_none();
            if track
                .write_rtp(rtp(ssrc, pt, seq, ts, last, payload))
                .await
                .is_err()
            {
                break;
            }
            report.sent.lock().add(Instant::now(), 1);
            seq = seq.wrapping_add(1);
        }
        ts = ts.wrapping_add(ts_step);
        frame_no += 1;
        if requests.is_finished() && frame_no > u32::MAX - 1 {
            break;
        }
    }
}

/// Decode received Opus payloads (in sequence order) to mono PCM at 48 kHz.
pub fn decode_opus(mut payloads: Vec<(u16, Bytes)>) -> anyhow::Result<Vec<f32>> {
    // Sequence numbers may wrap; sort by distance from the first.
    let Some(&(first, _)) = payloads.first() else {
        return Ok(Vec::new());
    };
    payloads.sort_by_key(|(seq, _)| seq.wrapping_sub(first));
    let mut decoder = opus::Decoder::new(48000, opus::Channels::Mono)?;
    let mut pcm = Vec::new();
    let mut frame = vec![0f32; 5760];
    for (_, payload) in payloads {
        let n = decoder.decode_float(&payload, &mut frame, false)?;
        pcm.extend_from_slice(&frame[..n]);
    }
    Ok(pcm)
}

/// The strongest frequency in `pcm` between `lo` and `hi` Hz, in 5 Hz steps (Goertzel).
pub fn dominant_frequency(pcm: &[f32], lo: f32, hi: f32) -> Option<f32> {
    if pcm.len() < 4800 {
        return None;
    }
    // Skip the codec's warm-up.
    let pcm = &pcm[pcm.len() / 5..];
    let power = |hz: f32| {
        let w = 2.0 * std::f32::consts::PI * hz / 48000.0;
        let coeff = 2.0 * w.cos();
        let (mut s1, mut s2) = (0f32, 0f32);
        for &x in pcm {
            let s0 = x + coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        s1 * s1 + s2 * s2 - coeff * s1 * s2
    };
    let mut best = (lo, 0f32);
    let mut hz = lo;
    while hz <= hi {
        let p = power(hz);
        if p > best.1 {
            best = (hz, p);
        }
        hz += 5.0;
    }
    (best.1 > 0.0).then_some(best.0)
}

/// Completes synthetic frames as their packets arrive: a frame (one RTP timestamp) is complete
/// when its first packet (VP8 start bit), its last (RTP marker) and every sequence number between
/// them have arrived, retransmissions included. Keeps at most [`FrameAssembler::PENDING`] frames
/// open; older incomplete ones are dropped (they never completed).
#[derive(Debug, Clone, Default)]
pub struct FrameAssembler {
    pending: std::collections::VecDeque<(u32, PendingFrame)>,
}

#[derive(Debug, Clone, Default)]
struct PendingFrame {
    sent_us: Option<u64>,
    first: Option<u64>,
    last: Option<u64>,
    have: u64,
}

impl FrameAssembler {
    pub const PENDING: usize = 64;

    /// A fresh packet of the frame at `rtp_ts`, with extended sequence number `seq`, the frame's
    /// scheduled send time if this packet starts it, and the marker bit. Returns the frame's
    /// scheduled send time when this packet completes it.
    pub fn packet(
        &mut self,
        rtp_ts: u32,
        seq: u64,
        start: Option<Option<u64>>,
        marker: bool,
    ) -> Option<Option<u64>> {
        let i = match self.pending.iter().position(|(ts, _)| *ts == rtp_ts) {
            Some(i) => i,
            None => {
                if self.pending.len() >= Self::PENDING {
                    self.pending.pop_front();
                }
                self.pending.push_back((rtp_ts, PendingFrame::default()));
                self.pending.len() - 1
            }
        };
        let f = &mut self.pending[i].1;
        f.have += 1;
        if let Some(sent) = start {
            f.first = Some(seq);
            f.sent_us = sent;
        }
        if marker {
            f.last = Some(seq);
        }
        match (f.first, f.last) {
            (Some(a), Some(b)) if b >= a && f.have == b - a + 1 => {
                let sent = f.sent_us;
                self.pending.remove(i);
                Some(sent)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_frames_round_trip() {
        let key = synthetic_vp8_frame(true, 1, 300, 1_234_567);
        let info = parse_video(&key).unwrap();
        assert!(info.keyframe);
        assert_eq!(info.sent_us, Some(1_234_567));
        let delta = synthetic_vp8_frame(false, 2, 300, 1_234_600);
        assert!(!parse_video(&delta).unwrap().keyframe);
        assert_eq!(
            parse_video(&[0x00, 1, 2]),
            None,
            "a continuation packet starts no frame"
        );
    }

    #[test]
    fn a_tone_survives_opus_and_is_found() {
        let mut encoder =
            opus::Encoder::new(48000, opus::Channels::Mono, opus::Application::Voip).unwrap();
        let mut payloads = Vec::new();
        let mut out = vec![0u8; 1500];
        for i in 0..50u16 {
            let pcm: Vec<f32> = (0..OPUS_FRAME_SAMPLES)
                .map(|n| {
                    let t = (i as usize * OPUS_FRAME_SAMPLES + n) as f32 / 48000.0;
                    0.5 * (2.0 * std::f32::consts::PI * 660.0 * t).sin()
                })
                .collect();
            let n = encoder.encode_float(&pcm, &mut out).unwrap();
            payloads.push((i.wrapping_add(65530), Bytes::copy_from_slice(&out[..n])));
        }
        let pcm = decode_opus(payloads).unwrap();
        let hz = dominant_frequency(&pcm, 200.0, 1000.0).unwrap();
        assert!((hz - 660.0).abs() <= 10.0, "found {hz}");
    }

    #[test]
    fn a_frame_completes_with_its_last_missing_packet() {
        let mut a = FrameAssembler::default();
        // Frame at ts 9000: packets 10 (start), 11, 12 (marker); 11 arrives last.
        assert_eq!(a.packet(9000, 10, Some(Some(77)), false), None);
        assert_eq!(a.packet(9000, 12, None, true), None);
        // The next frame completes on its own meanwhile.
        assert_eq!(a.packet(12000, 13, Some(Some(88)), true), Some(Some(88)));
        assert_eq!(a.packet(9000, 11, None, false), Some(Some(77)));
        // A frame whose start never comes never completes, and is forgotten in time.
        assert_eq!(a.packet(15000, 15, None, true), None);
        for ts in 0..FrameAssembler::PENDING as u32 {
            a.packet(20000 + ts, 100 + ts as u64, None, false);
        }
        assert_eq!(a.pending.len(), FrameAssembler::PENDING);
        assert!(a.pending.iter().all(|(ts, _)| *ts != 15000));
    }

    #[test]
    fn bins_count_over_any_stretch() {
        let t0 = origin() + Duration::from_secs(1);
        let mut b = Bins::default();
        for i in 0..100u32 {
            b.add(t0 + Duration::from_millis(20) * i, 1);
        }
        assert_eq!(b.sum(t0, t0 + Duration::from_secs(2)), 100);
        assert_eq!(b.sum(t0, t0 + Duration::from_secs(1)), 50);
        assert_eq!(
            b.sum(t0 + Duration::from_secs(5), t0 + Duration::from_secs(9)),
            0
        );
        assert_eq!(b.last(), Some(t0 + Duration::from_millis(1990)));
        assert_eq!(Bins::default().last(), None);
    }

    #[tokio::test]
    async fn open_loop_schedule_keeps_its_times_when_late() {
        let mut s = Schedule::new(Duration::from_millis(20));
        let lateness = LatenessRecorder::default();
        let first = s.next(Some(&lateness)).await;
        // The generator stalls for 100 ms: the next ticks come at once, stamped on schedule.
        std::thread::sleep(Duration::from_millis(100));
        let second = s.next(Some(&lateness)).await;
        let third = s.next(Some(&lateness)).await;
        assert_eq!((second - first, third - first), (20_000, 40_000));
        let h = lateness.histogram();
        assert_eq!(h.len(), 3);
        assert!(
            h.max() >= 60_000,
            "late by at least 100 − 40 ms: {} µs",
            h.max()
        );
    }
}
