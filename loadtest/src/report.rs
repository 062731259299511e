//! The machine-readable result of a run (`--report FILE.json`), the summary table printed at its
//! end, and the merging of several shards' reports into one.
//!
//! A report keeps its raw material beside its figures: packet counts, freeze counts, the
//! histograms of every latency (`histograms`) and the server's forwarding-delay buckets at the
//! window's start and end (`server_forward_delay`). Every figure is derived from those by
//! [`Report::derive`], so merged shards give exactly the figures one run would have given. A
//! figure with no samples is `null` ("not measured"), and the SLO on it fails.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::slo::{self, SloThresholds};
use crate::stats::{HistogramJson, Histograms, Summary};

/// Names of the histograms a report carries (microseconds).
pub mod hist {
    pub const TIME_TO_FIRST_FRAME: &str = "time_to_first_frame";
    pub const MEDIA_FIRST_PACKET: &str = "media_first_packet";
    pub const MEDIA_FRAME: &str = "media_frame";
    pub const PROBE_ONE_WAY: &str = "probe_one_way";
    pub const BOARD_OP: &str = "board_op";
    pub const VOTE: &str = "vote";
    pub const GENERATOR_LATENESS: &str = "generator_lateness";
    pub const KEYFRAME_RECOVERY: &str = "keyframe_recovery";
}

/// Server resource use over the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerUsage {
    /// Average CPU of the server process, percent of one core (can exceed 100 on several cores).
    pub cpu_pct_avg: Option<f64>,
    /// Peak resident memory of the server process, MiB.
    pub rss_mb_peak: Option<f64>,
}

/// Loss of audio and of video, percent of the packets their senders sent in the window; `None`
/// when none were sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LossByKind {
    pub audio: Option<f64>,
    pub video: Option<f64>,
}

/// Media packets the senders sent in the window, to every receiver the policy promised them
/// to, and those that arrived (distinct; retransmissions fill holes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketCounts {
    pub audio_sent: u64,
    pub audio_received: u64,
    pub video_sent: u64,
    pub video_received: u64,
}

impl std::ops::AddAssign for PacketCounts {
    fn add_assign(&mut self, o: Self) {
        self.audio_sent += o.audio_sent;
        self.audio_received += o.audio_received;
        self.video_sent += o.video_sent;
        self.video_received += o.video_received;
    }
}

/// Loss in percent: `received` of `sent` arrived; `None` when nothing was sent.
fn loss(sent: u64, received: u64) -> Option<f64> {
    (sent > 0).then(|| sent.saturating_sub(received) as f64 / sent as f64 * 100.0)
}

/// Every track the policy promised to every classroom, checked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrackCheck {
    /// (receiver, track) pairs the policy promised over the whole window.
    pub promised: u64,
    /// Of those, the ones that arrived and kept arriving.
    pub ok: u64,
    /// Pairs not checked because a classroom of the pair left and rejoined in the window.
    pub not_checked: u64,
    /// One line per promised track that never arrived ("missing") or stopped ("dead").
    pub problems: Vec<String>,
}

/// When the tool and a spawned server together use this share of the host's cores, the host is
/// saturated: latency and loss then measure this machine rather than the server.
pub const HOST_SATURATED_SHARE: f64 = 0.85;

/// The machine the tool ran on: it shares its cores with a server it spawned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct HostUsage {
    /// CPU cores available to this tool.
    pub cores: u32,
    /// Average CPU of this tool (the load generator) over the run, percent of one core.
    pub loadgen_cpu_pct_avg: Option<f64>,
    /// The tool and the spawned server used at least [`HOST_SATURATED_SHARE`] of the cores.
    pub saturated: bool,
}

impl HostUsage {
    /// This host's figures, given the tool's and the server's average CPU (percent of one core;
    /// the server's is `None` when it runs elsewhere or was not measured).
    pub fn new(
        cores: u32,
        loadgen_cpu_pct_avg: Option<f64>,
        server_cpu_pct_avg: Option<f64>,
    ) -> Self {
        let used = loadgen_cpu_pct_avg.unwrap_or(0.0) + server_cpu_pct_avg.unwrap_or(0.0);
        Self {
            cores,
            loadgen_cpu_pct_avg,
            saturated: cores > 0 && used >= HOST_SATURATED_SHARE * f64::from(cores) * 100.0,
        }
    }
}

/// The server's `tandem_forward_delay_seconds` buckets as scraped once: `(le, cumulative count)`
/// in the exposition's order, `le` as written (`"0.001"`, `"+Inf"`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScrapedBuckets {
    /// When it was scraped, milliseconds since the Unix epoch.
    pub unix_ms: u64,
    pub buckets: Vec<(String, u64)>,
}

/// The server's forwarding-delay histogram at the start and at the end of the measured window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ForwardDelayWindow {
    pub start: ScrapedBuckets,
    pub end: ScrapedBuckets,
}

/// Percentiles read off bucketed counts: each is the upper bound of the bucket it falls in, in
/// ms (so "p95 ≤ 0.3 ms"); `None` when it falls in the top, unbounded bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct BucketSummary {
    /// Datagrams timed in the window.
    pub count: u64,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

impl ForwardDelayWindow {
    /// The window's percentiles (the end's counts minus the start's); `None` when the window
    /// timed nothing or the two scrapes do not have the same buckets.
    pub fn summary(&self) -> Option<BucketSummary> {
        let (a, b) = (&self.start.buckets, &self.end.buckets);
        if a.len() != b.len() || a.iter().zip(b).any(|(x, y)| x.0 != y.0) {
            return None;
        }
        let delta: Vec<(Option<f64>, u64)> = a
            .iter()
            .zip(b)
            .map(|(x, y)| {
                let le = x.0.parse::<f64>().ok().filter(|v| v.is_finite());
                (le.map(|s| s * 1e3), y.1.saturating_sub(x.1))
            })
            .collect();
        let count = delta.last().map_or(0, |(_, c)| *c);
        if count == 0 {
            return None;
        }
        let at_rank = |rank: u64| {
            delta
                .iter()
                .find(|(_, cumulative)| *cumulative >= rank.max(1))
                .and_then(|(le, _)| *le)
        };
        let quantile = |q: f64| at_rank((q * count as f64).ceil() as u64);
        Some(BucketSummary {
            count,
            p50: quantile(0.50),
            p95: quantile(0.95),
            p99: quantile(0.99),
            max: at_rank(count),
        })
    }
}

/// What the server's memory and CPU did over a soak: least-squares slopes of RSS and of CPU use.
/// The judged slopes are over the window's second half (what fills by design while a lesson
/// starts is left out, growth that goes on is not); the whole window's are kept beside them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Soak {
    /// How long the server was sampled, seconds.
    pub secs: f64,
    pub rss_mb_first: f64,
    pub rss_mb_last: f64,
    /// RSS growth over the window's second half, MiB per hour (judged).
    pub rss_mb_per_hour: f64,
    /// Growth of CPU use over the window's second half, percentage points of one core per hour
    /// (judged).
    pub cpu_pct_per_hour: f64,
    /// Where the judged half starts, seconds into the window.
    #[serde(default)]
    pub settled_from_secs: f64,
    /// RSS growth over the whole window, MiB per hour (`null` in reports from before it was kept).
    #[serde(default)]
    pub rss_mb_per_hour_whole: Option<f64>,
    /// Growth of CPU use over the whole window, points per hour.
    #[serde(default)]
    pub cpu_pct_per_hour_whole: Option<f64>,
}

/// What the lesson script was set to produce, so that a figure it should have produced and did
/// not is "not measured" (a failure) rather than silently absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Expected {
    /// Votes the script casts (every remote classroom in every poll).
    pub votes: u64,
    /// The teacher draws on the board.
    pub board_ops: bool,
    /// The probe class runs.
    pub probe: bool,
    /// The run is a soak (`--soak`).
    pub soak: bool,
}

/// A measured figure with one decimal and its unit, or "n/a" when it was not measured.
pub fn optional(value: Option<f64>, unit: &str) -> String {
    value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.1} {unit}"))
}

/// Whether the run met its service-level objectives.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SloOutcome {
    pub passed: bool,
    /// One human-readable line per objective missed.
    pub failures: Vec<String>,
}

/// The result of one load-test run, or of several shards merged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Classes simulated.
    pub classes: u32,
    /// Classrooms simulated, master and remote, over all classes.
    pub classrooms: u32,
    /// This run's share (`"I/N"`), or how many shard reports were merged (`"merged N"`);
    /// `null` for a whole run.
    pub shard: Option<String>,
    pub joins_ok: u32,
    pub joins_failed: u32,
    /// From opening the invite link to the first decodable (key)frame, ms.
    pub time_to_first_frame_ms: Option<Summary>,
    /// One-way media latency to a frame's first packet, from its scheduled send time, ms.
    pub media_latency_ms: Option<Summary>,
    /// One-way latency to a frame's last packet (the frame complete), ms.
    pub frame_latency_ms: Option<Summary>,
    /// The server's own forwarding delay over the window, from its histogram (bucket bounds).
    pub sfu_added_latency_ms: Option<BucketSummary>,
    /// One-way latency of the probe class (two classrooms on loopback, no emulation), ms.
    pub probe_one_way_latency_ms: Option<Summary>,
    /// From a board stroke sent to it shown in the other classrooms, ms.
    pub board_op_latency_ms: Option<Summary>,
    /// From a vote cast to it counted in the teacher's tally, ms.
    pub vote_latency_ms: Option<Summary>,
    /// How late the media generators ran against their schedule, ms.
    pub generator_lateness_ms: Option<Summary>,
    /// The generators kept their schedule (p99 lateness ≤ the threshold, 5 ms by default).
    pub trustworthy: bool,
    /// Media packets lost, percent of those the senders sent in the window.
    pub packet_loss_pct: Option<f64>,
    pub packet_loss_by_kind_pct: LossByKind,
    pub packets: PacketCounts,
    /// Video gaps longer than [`crate::stats::FREEZE_GAP`] (a stopped track's silence included),
    /// over all promised video tracks, and their total length.
    pub freezes: u64,
    pub freeze_secs: f64,
    pub tracks: TrackCheck,
    pub server: ServerUsage,
    pub host: HostUsage,
    pub soak: Option<Soak>,
    /// Length of the measured window, seconds.
    pub duration_secs: f64,
    pub expected: Expected,
    /// Raw latencies (µs), from which the summaries above are derived.
    pub histograms: Histograms,
    pub server_forward_delay: Option<ForwardDelayWindow>,
    pub thresholds: SloThresholds,
    pub slo: SloOutcome,
}

/// Why shard reports cannot be merged.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MergeError {
    #[error("nothing to merge")]
    Empty,
    #[error("the shards were run with different SLO thresholds")]
    Thresholds,
    #[error("the shards measured windows of different lengths ({0} s and {1} s)")]
    Durations(f64, f64),
}

impl Report {
    /// Sets every figure from the raw material (histograms, counts, server buckets) and applies
    /// the objectives; returns whether they held.
    pub fn derive(&mut self) -> bool {
        let summary = |name: &str| {
            self.histograms
                .get(name)
                .and_then(|h| Summary::of_histogram(&h.to_histogram()))
        };
        self.time_to_first_frame_ms = summary(hist::TIME_TO_FIRST_FRAME);
        self.media_latency_ms = summary(hist::MEDIA_FIRST_PACKET);
        self.frame_latency_ms = summary(hist::MEDIA_FRAME);
        self.probe_one_way_latency_ms = summary(hist::PROBE_ONE_WAY);
        self.board_op_latency_ms = summary(hist::BOARD_OP);
        self.vote_latency_ms = summary(hist::VOTE);
        self.generator_lateness_ms = summary(hist::GENERATOR_LATENESS);
        self.trustworthy = self
            .generator_lateness_ms
            .is_some_and(|l| l.p99 <= self.thresholds.generator_late_p99_ms);
        self.sfu_added_latency_ms = self
            .server_forward_delay
            .as_ref()
            .and_then(ForwardDelayWindow::summary);
        let p = self.packets;
        self.packet_loss_pct = loss(
            p.audio_sent + p.video_sent,
            p.audio_received + p.video_received,
        );
        self.packet_loss_by_kind_pct = LossByKind {
            audio: loss(p.audio_sent, p.audio_received),
            video: loss(p.video_sent, p.video_received),
        };
        let thresholds = self.thresholds.clone();
        self.apply_slo(&thresholds)
    }

    /// Evaluates the objectives and stores the outcome in `self.slo`; returns whether they held.
    pub fn apply_slo(&mut self, thresholds: &SloThresholds) -> bool {
        self.thresholds = thresholds.clone();
        let failures = slo::evaluate(self, thresholds);
        self.slo = SloOutcome {
            passed: failures.is_empty(),
            failures,
        };
        self.slo.passed
    }

    /// The shards' reports as one: counts and histograms added, the server's forwarding delay
    /// over the union of their windows (the earliest start scrape to the latest end scrape, as
    /// every shard scrapes the same server), its CPU and memory the highest any shard saw, and
    /// every figure derived again from that.
    pub fn merge(shards: &[Report]) -> Result<Report, MergeError> {
        let first = shards.first().ok_or(MergeError::Empty)?;
        let mut m = Report {
            shard: Some(format!("merged {}", shards.len())),
            duration_secs: first.duration_secs,
            thresholds: first.thresholds.clone(),
            trustworthy: true,
            ..Report::default()
        };
        let mut hist: BTreeMap<String, hdrhistogram::Histogram<u64>> = BTreeMap::new();
        let max = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(x), Some(y)) => Some(x.max(y)),
            (x, y) => x.or(y),
        };
        for r in shards {
            if r.thresholds != first.thresholds {
                return Err(MergeError::Thresholds);
            }
            if (r.duration_secs - first.duration_secs).abs() > 0.5 {
                return Err(MergeError::Durations(first.duration_secs, r.duration_secs));
            }
            m.classes += r.classes;
            m.classrooms += r.classrooms;
            m.joins_ok += r.joins_ok;
            m.joins_failed += r.joins_failed;
            m.packets += r.packets;
            m.freezes += r.freezes;
            m.freeze_secs += r.freeze_secs;
            m.tracks.promised += r.tracks.promised;
            m.tracks.ok += r.tracks.ok;
            m.tracks.not_checked += r.tracks.not_checked;
            m.tracks.problems.extend(r.tracks.problems.iter().cloned());
            m.expected.votes += r.expected.votes;
            m.expected.board_ops |= r.expected.board_ops;
            m.expected.probe |= r.expected.probe;
            m.expected.soak |= r.expected.soak;
            m.server.cpu_pct_avg = max(m.server.cpu_pct_avg, r.server.cpu_pct_avg);
            m.server.rss_mb_peak = max(m.server.rss_mb_peak, r.server.rss_mb_peak);
            m.host.cores = m.host.cores.max(r.host.cores);
            m.host.loadgen_cpu_pct_avg =
                max(m.host.loadgen_cpu_pct_avg, r.host.loadgen_cpu_pct_avg);
            m.host.saturated |= r.host.saturated;
            if let Some(s) = r.soak {
                m.soak = Some(match m.soak {
                    Some(prev) if prev.rss_mb_per_hour >= s.rss_mb_per_hour => prev,
                    _ => s,
                });
            }
            for (name, h) in &r.histograms {
                let h = h.to_histogram();
                match hist.get_mut(name) {
                    Some(acc) => {
                        let _ = acc.add(&h);
                    }
                    None => {
                        hist.insert(name.clone(), h);
                    }
                }
            }
            if let Some(w) = &r.server_forward_delay {
                let u = m.server_forward_delay.get_or_insert_with(|| w.clone());
                if w.start.unix_ms < u.start.unix_ms {
                    u.start = w.start.clone();
                }
                if w.end.unix_ms > u.end.unix_ms {
                    u.end = w.end.clone();
                }
            }
        }
        m.histograms = hist
            .iter()
            .map(|(k, h)| (k.clone(), HistogramJson::of(h)))
            .collect();
        m.derive();
        Ok(m)
    }

    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self)
    }

    /// Writes the JSON report to `path`.
    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        let mut text = self.to_json().map_err(std::io::Error::other)?;
        text.push('\n');
        std::fs::write(path, text)
    }

    /// Freezes per classroom per minute of the measured window (0 when nothing was measured).
    pub fn freezes_per_classroom_minute(&self) -> f64 {
        let classroom_minutes = self.classrooms as f64 * self.duration_secs / 60.0;
        if classroom_minutes > 0.0 {
            self.freezes as f64 / classroom_minutes
        } else {
            0.0
        }
    }

    /// The latency figures with their names and cells (p50, p95, p99, max), in the order the
    /// summaries show them; "n/a" when not measured, "≤ x" for bucket bounds.
    pub fn latency_rows(&self) -> Vec<(&'static str, [String; 4])> {
        let cells = |s: &Option<Summary>| match s {
            Some(s) => [s.p50, s.p95, s.p99, s.max].map(|v| format!("{v:.1}")),
            None => std::array::from_fn(|_| "n/a".to_owned()),
        };
        let bound = |v: Option<f64>| match v {
            Some(v) if v < 1.0 => format!("≤{v:.3}"),
            Some(v) => format!("≤{v:.1}"),
            None => ">100".to_owned(),
        };
        let server = match &self.sfu_added_latency_ms {
            Some(b) => [b.p50, b.p95, b.p99, b.max].map(bound),
            None => std::array::from_fn(|_| "n/a".to_owned()),
        };
        vec![
            ("time to first frame", cells(&self.time_to_first_frame_ms)),
            ("media first packet", cells(&self.media_latency_ms)),
            ("media frame (last packet)", cells(&self.frame_latency_ms)),
            ("added by server", server),
            ("probe class one-way", cells(&self.probe_one_way_latency_ms)),
            ("board op", cells(&self.board_op_latency_ms)),
            ("vote", cells(&self.vote_latency_ms)),
            ("generator lateness", cells(&self.generator_lateness_ms)),
        ]
    }

    /// The table printed at the end of a run.
    pub fn summary_table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "classes {}  classrooms {}  joins ok {}  failed {}{}",
            self.classes,
            self.classrooms,
            self.joins_ok,
            self.joins_failed,
            self.shard
                .as_ref()
                .map(|s| format!("  (shard {s})"))
                .unwrap_or_default()
        );
        let _ = writeln!(
            t,
            "{:<26} {:>9} {:>9} {:>9} {:>9}",
            "latency (ms)", "p50", "p95", "p99", "max"
        );
        for (name, c) in self.latency_rows() {
            let _ = writeln!(
                t,
                "{name:<26} {:>9} {:>9} {:>9} {:>9}",
                c[0], c[1], c[2], c[3]
            );
        }
        let pct = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.2} %"));
        let _ = writeln!(
            t,
            "packet loss {} of {} sent (audio {}, video {})  freezes {} ({:.2} per \
             classroom-minute, {:.1} s frozen)",
            pct(self.packet_loss_pct),
            self.packets.audio_sent + self.packets.video_sent,
            pct(self.packet_loss_by_kind_pct.audio),
            pct(self.packet_loss_by_kind_pct.video),
            self.freezes,
            self.freezes_per_classroom_minute(),
            self.freeze_secs
        );
        let _ = writeln!(
            t,
            "promised tracks {}: {} arrived throughout, {} not checked (rejoins)",
            self.tracks.promised, self.tracks.ok, self.tracks.not_checked
        );
        let _ = writeln!(
            t,
            "server cpu avg {}  rss peak {}",
            optional(self.server.cpu_pct_avg, "%"),
            optional(self.server.rss_mb_peak, "MiB")
        );
        if let Some(s) = &self.soak {
            let _ = writeln!(
                t,
                "soak {:.0} s: rss {:.1} → {:.1} MiB; from {:.0} s on {:+.1} MiB/h, cpu {:+.1} \
                 points/h (whole window {} MiB/h, {} points/h)",
                s.secs,
                s.rss_mb_first,
                s.rss_mb_last,
                s.settled_from_secs,
                s.rss_mb_per_hour,
                s.cpu_pct_per_hour,
                s.rss_mb_per_hour_whole
                    .map_or("n/a".to_owned(), |v| format!("{v:+.1}")),
                s.cpu_pct_per_hour_whole
                    .map_or("n/a".to_owned(), |v| format!("{v:+.1}")),
            );
        }
        let _ = writeln!(
            t,
            "load generator cpu avg {} of {} cores",
            optional(self.host.loadgen_cpu_pct_avg, "%"),
            self.host.cores
        );
        if !self.trustworthy {
            let _ = writeln!(
                t,
                "WARNING: NOT TRUSTWORTHY: the media generator ran late against its schedule \
                 (p99 lateness {} > {} ms): this host could not send the load it was asked to",
                optional(self.generator_lateness_ms.map(|l| l.p99), "ms"),
                self.thresholds.generator_late_p99_ms
            );
        }
        if self.host.saturated {
            let _ = writeln!(
                t,
                "WARNING: this host was saturated (generator + server ≥ {:.0} % of its cores): \
                 latency and loss measure this machine, not only the server; run fewer classes or \
                 the generator on another host",
                HOST_SATURATED_SHARE * 100.0
            );
        }
        if self.slo.passed {
            let _ = writeln!(t, "SLO: passed");
        } else {
            let _ = writeln!(t, "SLO: FAILED");
            for f in &self.slo.failures {
                let _ = writeln!(t, "  - {f}");
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{new_histogram, record_us};
    use serde_json::Value;
    use std::time::Duration;

    fn hist_ms(values: &[f64]) -> HistogramJson {
        let mut h = new_histogram();
        for v in values {
            record_us(&mut h, Duration::from_secs_f64(v / 1e3));
        }
        HistogramJson::of(&h)
    }

    fn buckets(unix_ms: u64, counts: [u64; 4]) -> ScrapedBuckets {
        ScrapedBuckets {
            unix_ms,
            buckets: ["0.0001", "0.0005", "0.001", "+Inf"]
                .iter()
                .zip(counts)
                .map(|(le, c)| ((*le).to_owned(), c))
                .collect(),
        }
    }

    /// A healthy shard: every figure measured.
    pub(crate) fn sample() -> Report {
        let mut r = Report {
            classes: 2,
            classrooms: 6,
            joins_ok: 6,
            joins_failed: 0,
            packets: PacketCounts {
                audio_sent: 1000,
                audio_received: 996,
                video_sent: 3000,
                video_received: 2997,
            },
            freezes: 1,
            freeze_secs: 0.4,
            tracks: TrackCheck {
                promised: 20,
                ok: 20,
                not_checked: 0,
                problems: vec![],
            },
            server: ServerUsage {
                cpu_pct_avg: Some(12.5),
                rss_mb_peak: None,
            },
            host: HostUsage::new(2, Some(40.0), Some(12.5)),
            duration_secs: 60.0,
            expected: Expected {
                votes: 2,
                board_ops: true,
                probe: true,
                soak: false,
            },
            server_forward_delay: Some(ForwardDelayWindow {
                start: buckets(1_000, [10, 20, 20, 20]),
                end: buckets(61_000, [910, 1_000, 1_019, 1_020]),
            }),
            ..Report::default()
        };
        for (name, v) in [
            (hist::TIME_TO_FIRST_FRAME, &[800.0, 1200.0, 1500.0][..]),
            (hist::MEDIA_FIRST_PACKET, &[45.0, 50.0, 62.0]),
            (hist::MEDIA_FRAME, &[46.0, 52.0, 70.0]),
            (hist::PROBE_ONE_WAY, &[0.4, 0.8, 2.0]),
            (hist::BOARD_OP, &[30.0]),
            (hist::VOTE, &[40.0, 41.0]),
            (hist::GENERATOR_LATENESS, &[0.05, 0.1, 0.3]),
        ] {
            r.histograms.insert(name.to_owned(), hist_ms(v));
        }
        r.thresholds = SloThresholds::default();
        r.derive();
        r
    }

    #[test]
    fn figures_derive_from_the_raw_material() {
        let r = sample();
        assert!(r.slo.passed, "{:?}", r.slo.failures);
        assert!(r.trustworthy);
        let m = r.media_latency_ms.unwrap();
        assert!(
            (m.p50 - 50.0).abs() < 0.05 && (m.max - 62.0).abs() < 0.07,
            "{m:?}"
        );
        assert!((r.packet_loss_pct.unwrap() - 7.0 / 40.0).abs() < 1e-9);
        assert!((r.packet_loss_by_kind_pct.audio.unwrap() - 0.4).abs() < 1e-9);
        // 1000 datagrams in the window: 900 ≤ 0.1 ms, 80 ≤ 0.5 ms, 19 ≤ 1 ms, 1 above.
        let s = r.sfu_added_latency_ms.unwrap();
        assert_eq!(s.count, 1000);
        assert_eq!((s.p50, s.p95, s.p99), (Some(0.1), Some(0.5), Some(1.0)));
        assert_eq!(s.max, None, "the slowest is beyond the top bucket");
    }

    #[test]
    fn nothing_measured_is_null_and_fails() {
        let mut r = sample();
        r.histograms.clear();
        r.server_forward_delay = None;
        r.packets = PacketCounts::default();
        r.derive();
        let v: Value = serde_json::from_str(&r.to_json().unwrap()).unwrap();
        for k in [
            "time_to_first_frame_ms",
            "media_latency_ms",
            "frame_latency_ms",
            "sfu_added_latency_ms",
            "probe_one_way_latency_ms",
            "board_op_latency_ms",
            "vote_latency_ms",
            "packet_loss_pct",
        ] {
            assert!(v[k].is_null(), "{k}: {}", v[k]);
        }
        assert!(!r.trustworthy, "an unmeasured generator is not trusted");
        for name in [
            "time_to_first_frame_ms not measured",
            "media_latency_ms not measured",
            "sfu_added_latency_ms not measured",
            "probe class not measured",
            "board_op_latency_ms not measured",
            "votes: 0 of 2 measured",
            "packet_loss_pct not measured",
            "generator lateness not measured",
        ] {
            assert!(
                r.slo.failures.iter().any(|f| f.starts_with(name)),
                "{name} in {:#?}",
                r.slo.failures
            );
        }
        assert!(r.summary_table().contains("n/a"));
    }

    #[test]
    fn json_round_trips() {
        let r = sample();
        let back: Report = serde_json::from_str(&r.to_json().unwrap()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn shards_merge_into_the_figures_of_all_their_samples() {
        let a = sample();
        let mut b = sample();
        b.histograms.insert(
            hist::MEDIA_FIRST_PACKET.to_owned(),
            hist_ms(&[100.0, 110.0, 120.0, 130.0, 140.0]),
        );
        b.joins_failed = 1;
        b.server_forward_delay = Some(ForwardDelayWindow {
            start: buckets(500, [5, 5, 5, 5]),
            end: buckets(60_000, [900, 1_000, 1_010, 1_010]),
        });
        b.server.rss_mb_peak = Some(80.0);
        b.derive();
        let m = Report::merge(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(m.shard.as_deref(), Some("merged 2"));
        assert_eq!((m.classes, m.classrooms, m.joins_failed), (4, 12, 1));
        assert_eq!(m.packets.video_sent, 6000);
        // Eight samples 45, 50, 62, 100 … 140: the median is the 4th, p95 the 8th.
        let media = m.media_latency_ms.unwrap();
        assert!((media.p50 - 100.0).abs() < 0.1, "{media:?}");
        assert!((media.p95 - 140.0).abs() < 0.1, "{media:?}");
        // The server window runs from b's start (earlier) to a's end (later).
        let w = m.server_forward_delay.as_ref().unwrap();
        assert_eq!((w.start.unix_ms, w.end.unix_ms), (500, 61_000));
        assert_eq!(m.sfu_added_latency_ms.unwrap().count, 1015);
        assert_eq!(m.server.rss_mb_peak, Some(80.0));
        assert!(!m.slo.passed, "a shard's failed join fails the merge");
        // Merging is order-independent and a lone shard merges into itself.
        assert_eq!(
            Report::merge(&[b, a.clone()]).unwrap().media_latency_ms,
            m.media_latency_ms
        );
        let one = Report::merge(std::slice::from_ref(&a)).unwrap();
        assert_eq!(one.media_latency_ms, a.media_latency_ms);
        assert_eq!(Report::merge(&[]), Err(MergeError::Empty));
        let mut other = sample();
        other.thresholds.packet_loss_pct = 5.0;
        assert_eq!(Report::merge(&[a, other]), Err(MergeError::Thresholds));
    }

    #[test]
    fn a_late_generator_makes_the_run_untrustworthy() {
        let mut r = sample();
        let late: Vec<f64> = (0..100).map(|i| if i < 97 { 0.2 } else { 9.0 }).collect();
        r.histograms
            .insert(hist::GENERATOR_LATENESS.to_owned(), hist_ms(&late));
        r.derive();
        assert!(!r.trustworthy);
        assert!(r.summary_table().contains("NOT TRUSTWORTHY"));
        assert!(
            r.slo
                .failures
                .iter()
                .any(|f| f.starts_with("generator late")),
            "{:?}",
            r.slo.failures
        );
    }

    #[test]
    fn a_host_busy_with_generator_and_server_is_flagged() {
        assert!(!HostUsage::new(2, Some(100.0), Some(60.0)).saturated);
        assert!(HostUsage::new(2, Some(140.0), Some(40.0)).saturated);
        assert!(HostUsage::new(4, Some(345.0), None).saturated);
        assert!(!HostUsage::new(2, None, None).saturated);
        let mut r = sample();
        r.host = HostUsage::new(2, Some(150.0), Some(30.0));
        assert!(
            r.summary_table()
                .contains("WARNING: this host was saturated")
        );
        assert!(!sample().summary_table().contains("WARNING"));
    }

    #[test]
    fn freeze_rate_per_classroom_minute() {
        let mut r = sample();
        r.freezes = 3;
        r.classrooms = 6;
        r.duration_secs = 30.0;
        // 6 classrooms × 0.5 min = 3 classroom-minutes.
        assert_eq!(r.freezes_per_classroom_minute(), 1.0);
        r.duration_secs = 0.0;
        assert_eq!(r.freezes_per_classroom_minute(), 0.0);
    }

    #[test]
    fn writes_a_file() {
        let path = std::env::temp_dir().join(format!("tandem-report-{}.json", std::process::id()));
        sample().write_json(&path).unwrap();
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v["classes"], 2);
        let _ = std::fs::remove_file(path);
    }
}
