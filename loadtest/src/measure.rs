//! Measurement: what the classrooms received, checked against what the policy promised and what
//! the senders sent; the server's own figures (forwarding-delay histogram, CPU and memory); and
//! the report assembled from them.
//!
//! # Counting over the measured window
//!
//! Senders count what they hand to each track and receivers count each distinct packet that
//! arrives, both in 10 ms slots of one clock ([`crate::media::Bins`]). For a promised (receiver,
//! track) pair, "sent" is the sender's count over the window `[m0, m_end)` and "received" the
//! receiver's count from the window's start shifted by that path's mean one-way latency (the
//! packets in flight at the start are matched in expectation; it can be off by the packets of one
//! jitter swing, about one per track), less what the sender sent after the window (so that late
//! arrivals of the window's last packets count). Loss is `1 − received / sent`, summed over pairs. A track
//! that never arrives or stops therefore counts all its missing packets, its silence counts as
//! freeze time (the window's edges count as frames), and the pair is listed by name.
//!
//! Pairs with a classroom that leaves and rejoins in the window are not checked (counted as
//! such); their frames' latencies are still measured.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use tandem_sfu::policy::{self, Role, Stage};
use tandem_sfu::{ClassroomId, MediaKind, Source};

use crate::client::{Classroom, ReceivedTrack};
use crate::html::ServerPoint;
use crate::proc_stats::{MetricSet, ProcSampler};
use crate::report::{
    ForwardDelayWindow, PacketCounts, ScrapedBuckets, ServerUsage, Soak, TrackCheck,
};
use crate::stats::{FREEZE_GAP, LatencyRecorder, freezes_in};

/// A promised track with no packet in the last this-long of the window has stopped ("dead").
pub const DEAD_AFTER: Duration = Duration::from_secs(2);
/// The server's forwarding-delay histogram, as it names it in `/metrics`.
pub const FORWARD_DELAY_BUCKET: &str = "tandem_forward_delay_seconds_bucket";

/// The measured window.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub from: Instant,
    pub to: Instant,
}

/// One classroom of a class as the track check sees it.
pub struct Member<'a> {
    pub name: &'a str,
    pub classroom: &'a Classroom,
    pub role: Role,
    pub on_stage: bool,
    /// It was in the class for the whole window (it did not leave and rejoin).
    pub whole_window: bool,
}

/// Loss, freezes and the promised-track check, added up over the classes of a run.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub packets: PacketCounts,
    pub freezes: u64,
    pub frozen: Duration,
    pub tracks: TrackCheck,
}

fn source_name(source: Source) -> &'static str {
    match source {
        Source::Microphone => "microphone",
        Source::Camera => "camera",
        Source::Screen => "screen",
    }
}

/// Mean of a track's first-packet latencies, if it has any. The mean, not the median: shifting
/// a window's start by the mean delay lets as many packets sent before it arrive inside it as
/// packets sent inside it arrive before it (in expectation, whatever the delay's tail).
fn mean_latency(r: &ReceivedTrack) -> Option<Duration> {
    if r.latencies_us.is_empty() {
        return None;
    }
    let sum: u64 = r.latencies_us.iter().map(|(_, us)| *us).sum();
    Some(Duration::from_micros(sum / r.latencies_us.len() as u64))
}

/// Checks every track the policy promises between the members of one class over `w`, and adds
/// loss, freezes and problems to `tally`. `fallback_delay`: the path delay assumed for a pair
/// whose latency could not be measured (no video frame of that publisher arrived).
pub fn check_class(tally: &mut Tally, members: &[Member<'_>], w: Window, fallback_delay: Duration) {
    let mut stage = Stage::default();
    stage.replace(
        members
            .iter()
            .filter(|m| m.on_stage)
            .map(|m| ClassroomId::from(m.classroom.classroom_id.as_str())),
    );
    for receiver in members {
        let rid = ClassroomId::from(receiver.classroom.classroom_id.as_str());
        receiver.classroom.inspect_received(|received| {
            check_receiver(
                tally,
                members,
                receiver,
                &rid,
                &stage,
                received,
                w,
                fallback_delay,
            )
        });
    }
}

/// [`check_class`] for one receiver, with what it received.
#[allow(clippy::too_many_arguments)]
fn check_receiver(
    tally: &mut Tally,
    members: &[Member<'_>],
    receiver: &Member<'_>,
    rid: &ClassroomId,
    stage: &Stage,
    received: &std::collections::HashMap<String, ReceivedTrack>,
    w: Window,
    fallback_delay: Duration,
) {
    for publisher in members {
        let pid = ClassroomId::from(publisher.classroom.classroom_id.as_str());
        if !policy::receives((&pid, publisher.role), (rid, receiver.role), stage) {
            continue;
        }
        let from_publisher = |kind: MediaKind, source: Source| {
            received
                .values()
                .filter(|r| {
                    r.info.as_ref().is_some_and(|i| {
                        i.classroom_id == pid && i.kind == kind && i.source == source
                    })
                })
                .max_by_key(|r| r.packets)
        };
        let delay = from_publisher(MediaKind::Video, Source::Camera)
            .and_then(mean_latency)
            .unwrap_or(fallback_delay);
        for track in publisher.classroom.published() {
            if !(receiver.whole_window && publisher.whole_window) {
                tally.tracks.not_checked += 1;
                continue;
            }
            tally.tracks.promised += 1;
            let name = format!(
                "{} {} at {}",
                publisher.name,
                source_name(track.source),
                receiver.name
            );
            let sent = track.report.sent.lock().sum(w.from, w.to);
            let got = from_publisher(track.kind, track.source);
            let (shifted_from, shifted_to) = (w.from + delay, w.to + delay);
            // Everything that arrived from the shifted start on, less what the sender sent
            // after the window (it stops just after; those packets are counted as arrived):
            // late arrivals of the window's last packets still count.
            let sent_after = track.report.sent.lock().sum(w.to, far_future());
            let arrived = got.map_or(0, |r| r.arrivals.sum(shifted_from, far_future()));
            let arrived = arrived.saturating_sub(sent_after).min(sent);
            let counts = &mut tally.packets;
            match track.kind {
                MediaKind::Audio => {
                    counts.audio_sent += sent;
                    counts.audio_received += arrived;
                }
                MediaKind::Video => {
                    counts.video_sent += sent;
                    counts.video_received += arrived;
                    let frames = got.map_or(&[][..], |r| &r.frame_arrivals[..]);
                    let (n, frozen) = freezes_in(frames, shifted_from, shifted_to, FREEZE_GAP);
                    tally.freezes += n;
                    tally.frozen += frozen;
                }
            }
            let tail = got.map_or(0, |r| {
                r.arrivals.sum(
                    shifted_to.checked_sub(DEAD_AFTER).unwrap_or(shifted_from),
                    shifted_to,
                )
            });
            if arrived == 0 {
                let why = if sent == 0 {
                    " (its sender sent nothing)"
                } else {
                    ""
                };
                tally.tracks.problems.push(format!("missing: {name}{why}"));
            } else if tail == 0 {
                tally.tracks.problems.push(format!(
                    "dead: {name} (nothing in the last {} s of the window)",
                    DEAD_AFTER.as_secs()
                ));
            } else {
                tally.tracks.ok += 1;
            }
        }
    }
}

/// The latency recorders a classroom's received frames feed.
pub struct LatencySinks<'a> {
    /// First packet of each frame.
    pub first_packet: &'a Mutex<LatencyRecorder>,
    /// Last packet of each frame (the frame complete); `None` for the probe class.
    pub frame: Option<&'a Mutex<LatencyRecorder>>,
    pub jitter: Option<&'a Mutex<Vec<f64>>>,
}

/// Adds the latencies of the frames `c` received inside `[from, to]` to `sinks`, and the RFC 3550
/// jitter of its audio tracks.
pub fn harvest_latencies(c: &Classroom, from: Instant, to: Instant, sinks: &LatencySinks<'_>) {
    let in_window = |t: &Instant| *t >= from && *t <= to;
    c.inspect_received(|tracks| {
        let mut first = sinks.first_packet.lock();
        for r in tracks.values() {
            if r.info.is_none() {
                continue;
            }
            for (t, us) in r.latencies_us.iter().filter(|(t, _)| in_window(t)) {
                first.record(*t, *us as f64 / 1e3);
            }
            if let Some(frame) = sinks.frame {
                let mut frame = frame.lock();
                for (t, us) in r.frame_latencies_us.iter().filter(|(t, _)| in_window(t)) {
                    frame.record(*t, *us as f64 / 1e3);
                }
            }
            if let (Some(sink), Some(j)) = (sinks.jitter, &r.jitter) {
                sink.lock().push(j.jitter_ms());
            }
        }
    });
}

/// An instant after every count of a run.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

/// Milliseconds since the Unix epoch.
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The server's `tandem_forward_delay_seconds` buckets now; `None` when it does not export them
/// or cannot be reached.
pub async fn scrape_forward_delay(client: &reqwest::Client, http: &str) -> Option<ScrapedBuckets> {
    let text = client
        .get(format!("{http}/metrics"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    forward_delay_buckets(&text)
}

/// The forwarding-delay buckets in a Prometheus exposition.
pub fn forward_delay_buckets(exposition: &str) -> Option<ScrapedBuckets> {
    let buckets: Vec<(String, u64)> = MetricSet::parse(exposition)
        .metrics
        .iter()
        .filter(|m| m.name == FORWARD_DELAY_BUCKET)
        .filter_map(|m| Some((m.labels.get("le")?.clone(), m.value as u64)))
        .collect();
    (!buckets.is_empty()).then(|| ScrapedBuckets {
        unix_ms: unix_ms(),
        buckets,
    })
}

/// Scrapes the forwarding-delay buckets at the window's start and end.
pub async fn forward_delay_window(
    http: &str,
    w: Window,
    hard_end: Instant,
) -> Option<ForwardDelayWindow> {
    let client = reqwest::Client::new();
    tokio::time::sleep_until(w.from.into()).await;
    let start = scrape_forward_delay(&client, http).await;
    tokio::time::sleep_until(w.to.min(hard_end).into()).await;
    let end = scrape_forward_delay(&client, http).await;
    Some(ForwardDelayWindow {
        start: start?,
        end: end?,
    })
}

/// Least-squares slope of `(x, y)` points, per unit of x; `None` with fewer than two distinct x.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let (num, den) = points.iter().fold((0.0, 0.0), |(num, den), (x, y)| {
        (num + (x - mx) * (y - my), den + (x - mx) * (x - mx))
    });
    (den > 0.0).then(|| num / den)
}

/// The soak figures from the server's samples between `from` and `to` seconds of the run.
///
/// The judged slopes are fitted over the window's second half only: what a server holds by
/// design fills while the lesson starts (retransmission buffers in seconds, the board's catch-up
/// log of 10 000 ops and the SQLite page cache within minutes, the allocator's arenas), and that
/// fill is not growth a longer lesson would continue. Growth that does not level off (state per
/// packet or per second) climbs at the same rate in both halves, so the second half still
/// catches it. The whole window's slopes are reported beside them.
pub fn soak_of(points: &[ServerPoint], from: f64, to: f64) -> Option<Soak> {
    let settled_from = from + (to - from) / 2.0;
    let series = |from: f64, pick: fn(&ServerPoint) -> Option<f64>| -> Vec<(f64, f64)> {
        points
            .iter()
            .filter(|p| p.t >= from && p.t <= to)
            .filter_map(|p| Some((p.t / 3600.0, pick(p)?)))
            .collect()
    };
    let rss = series(from, |p| p.rss_mb);
    let cpu = series(from, |p| p.cpu_pct);
    let settled_rss = series(settled_from, |p| p.rss_mb);
    let settled_cpu = series(settled_from, |p| p.cpu_pct);
    Some(Soak {
        secs: (rss.last()?.0 - rss.first()?.0) * 3600.0,
        rss_mb_first: rss.first()?.1,
        rss_mb_last: rss.last()?.1,
        rss_mb_per_hour: slope(&settled_rss)?,
        cpu_pct_per_hour: slope(&settled_cpu).unwrap_or(0.0),
        settled_from_secs: settled_from - from,
        rss_mb_per_hour_whole: slope(&rss),
        cpu_pct_per_hour_whole: slope(&cpu),
    })
}

/// Live server figures for the progress line.
#[derive(Debug, Default, Clone, Copy)]
pub struct LiveServer {
    pub cpu_pct: Option<f64>,
    pub rss_mb: Option<f64>,
    pub forwarded_per_sec: Option<f64>,
}

/// What the sampler measured: the server's usage, this tool's average CPU (percent of one core),
/// the server's samples.
pub type Sampled = (ServerUsage, Option<f64>, Vec<ServerPoint>);

/// Samples the server once a second: `/proc` when we started it, `/metrics` in any case.
pub struct ServerSampler {
    pub live: Arc<Mutex<LiveServer>>,
    task: tokio::task::JoinHandle<Sampled>,
    stop: tokio::sync::oneshot::Sender<()>,
}

impl ServerSampler {
    pub fn start(http: &str, pid: Option<u32>, start: Instant) -> Self {
        let live = Arc::new(Mutex::new(LiveServer::default()));
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let url = format!("{http}/metrics");
        let live2 = live.clone();
        let task = tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut proc = pid.map(ProcSampler::new);
            // This tool's own CPU: on a small host it competes with the server it measures.
            let mut generator = ProcSampler::new(std::process::id());
            let mut points = Vec::new();
            let mut last_fwd: Option<(Instant, f64)> = None;
            let mut first_cpu: Option<(Instant, f64)> = None;
            let mut last_cpu: Option<(Instant, f64)> = None;
            let mut metrics_rss_peak: Option<f64> = None;
            let mut ticker = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = &mut stopped => break,
                }
                let mut point = ServerPoint {
                    t: start.elapsed().as_secs_f64(),
                    cpu_pct: None,
                    rss_mb: None,
                };
                let _ = generator.sample();
                if let Some(p) = proc.as_mut()
                    && let Ok(s) = p.sample()
                {
                    point = ServerPoint::from_proc(start, &s);
                }
                let scraped = async {
                    client
                        .get(&url)
                        .timeout(Duration::from_secs(2))
                        .send()
                        .await?
                        .text()
                        .await
                }
                .await;
                let mut live = LiveServer::default();
                if let Ok(text) = scraped {
                    let m = MetricSet::parse(&text);
                    let now = Instant::now();
                    if let Some(fwd) = m.sum("tandem_rtp_packets_forwarded_total") {
                        if let Some((t, prev)) = last_fwd {
                            live.forwarded_per_sec =
                                Some((fwd - prev).max(0.0) / (now - t).as_secs_f64().max(1e-3));
                        }
                        last_fwd = Some((now, fwd));
                    }
                    if proc.is_none() {
                        if let Some(cpu) = m.process_cpu_seconds() {
                            if let Some((t, prev)) = last_cpu {
                                point.cpu_pct = Some(
                                    (cpu - prev).max(0.0) / (now - t).as_secs_f64().max(1e-3)
                                        * 100.0,
                                );
                            }
                            first_cpu.get_or_insert((now, cpu));
                            last_cpu = Some((now, cpu));
                        }
                        point.rss_mb = m.process_rss_mb();
                        if let Some(r) = point.rss_mb {
                            metrics_rss_peak = Some(metrics_rss_peak.map_or(r, |p: f64| p.max(r)));
                        }
                    }
                }
                live.cpu_pct = point.cpu_pct;
                live.rss_mb = point.rss_mb;
                *live2.lock() = live;
                if point.cpu_pct.is_some() || point.rss_mb.is_some() {
                    points.push(point);
                }
            }
            let usage = match &proc {
                Some(p) => ServerUsage {
                    cpu_pct_avg: p.cpu_pct_avg(),
                    rss_mb_peak: p.rss_mb_peak(),
                },
                None => ServerUsage {
                    cpu_pct_avg: match (first_cpu, last_cpu) {
                        (Some((t0, c0)), Some((t1, c1))) if t1 > t0 => {
                            Some((c1 - c0) / (t1 - t0).as_secs_f64() * 100.0)
                        }
                        _ => None,
                    },
                    rss_mb_peak: metrics_rss_peak,
                },
            };
            (usage, generator.cpu_pct_avg(), points)
        });
        Self { live, task, stop }
    }

    pub async fn stop(self) -> Sampled {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line_and_of_noise() {
        let line: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 3.0 + 2.0 * i as f64)).collect();
        assert!((slope(&line).unwrap() - 2.0).abs() < 1e-12);
        assert_eq!(slope(&[(1.0, 1.0)]), None);
        assert_eq!(slope(&[(1.0, 1.0), (1.0, 2.0)]), None);
        let flat: Vec<(f64, f64)> = (0..100)
            .map(|i| (i as f64, if i % 2 == 0 { 10.0 } else { 11.0 }))
            .collect();
        assert!(slope(&flat).unwrap().abs() < 0.001);
    }

    #[test]
    fn soak_slopes_are_per_hour_over_the_windows_second_half() {
        // RSS grows 1 MiB every 10 minutes: 6 MiB/h; the ramp before t = 60 s is left out.
        let mut points: Vec<ServerPoint> = (0..=60)
            .map(|i| ServerPoint {
                t: i as f64,
                cpu_pct: Some(5.0),
                rss_mb: Some(10.0 + i as f64),
            })
            .collect();
        points.extend((1..=60).map(|i| ServerPoint {
            t: 60.0 + i as f64 * 60.0,
            cpu_pct: Some(20.0),
            rss_mb: Some(70.0 + i as f64 / 10.0),
        }));
        let s = soak_of(&points, 61.0, 3660.0).unwrap();
        assert!((s.rss_mb_per_hour - 6.0).abs() < 1e-9, "{s:?}");
        assert!(
            (s.rss_mb_per_hour_whole.unwrap() - 6.0).abs() < 1e-9,
            "{s:?}"
        );
        assert!(s.cpu_pct_per_hour.abs() < 1e-9, "{s:?}");
        assert!(
            (s.rss_mb_first - 70.1).abs() < 1e-9 && s.rss_mb_last == 76.0,
            "{s:?}"
        );
        assert!((s.secs - 3540.0).abs() < 1e-6, "{s:?}");
        assert!((s.settled_from_secs - 1799.5).abs() < 1e-6, "{s:?}");
        assert_eq!(soak_of(&points, 5000.0, 6000.0), None);
    }

    #[test]
    fn a_fill_that_levels_off_passes_and_steady_growth_does_not() {
        // A server whose state fills for its first 20 minutes (30 MiB) and then holds, sampled
        // once a second for an hour: the whole window's slope is steep, the settled half flat.
        let fill = |t: f64| 30.0 + 30.0 * (t / 1200.0).min(1.0);
        let filled: Vec<ServerPoint> = (0..=3600)
            .map(|i| ServerPoint {
                t: i as f64,
                cpu_pct: Some(10.0),
                rss_mb: Some(fill(i as f64)),
            })
            .collect();
        let s = soak_of(&filled, 0.0, 3600.0).unwrap();
        assert!(s.rss_mb_per_hour.abs() < 1e-6, "{s:?}");
        assert!(s.rss_mb_per_hour_whole.unwrap() > 16.0, "{s:?}");
        // The same fill on top of a leak of 20 MiB/h: the settled half still sees the leak.
        let leaking: Vec<ServerPoint> = filled
            .iter()
            .map(|p| ServerPoint {
                rss_mb: p.rss_mb.map(|r| r + 20.0 * p.t / 3600.0),
                ..*p
            })
            .collect();
        let s = soak_of(&leaking, 0.0, 3600.0).unwrap();
        assert!((s.rss_mb_per_hour - 20.0).abs() < 1e-6, "{s:?}");
    }

    #[test]
    fn forward_delay_buckets_are_read_from_the_exposition() {
        let text = "# TYPE tandem_forward_delay_seconds histogram\n\
            tandem_forward_delay_seconds_sum 0.5\n\
            tandem_forward_delay_seconds_count 10\n\
            tandem_forward_delay_seconds_bucket{le=\"0.0001\"} 7\n\
            tandem_forward_delay_seconds_bucket{le=\"0.001\"} 9\n\
            tandem_forward_delay_seconds_bucket{le=\"+Inf\"} 10\n";
        let b = forward_delay_buckets(text).unwrap();
        assert_eq!(
            b.buckets,
            [
                ("0.0001".to_owned(), 7),
                ("0.001".to_owned(), 9),
                ("+Inf".to_owned(), 10)
            ]
        );
        assert_eq!(
            forward_delay_buckets("tandem_rtp_packets_forwarded_total 5\n"),
            None
        );
    }
}
