//! One load-test run: C classes of a master and R remote classrooms join in a ramp over emulated
//! links, teach a lesson for the measured window (the script is in [`crate::lesson`]), and what a
//! teacher would notice is measured ([`crate::measure`]) and assembled into a [`Report`].
//!
//! # What is measured, and how
//!
//! - **Time to first frame**: from the moment a remote classroom starts to open its invite link
//!   (WebSocket connect) to the arrival of the first keyframe of the teacher's camera.
//! - **Media latency**: every synthetic video frame carries its *scheduled* send time (the
//!   generators are open-loop, [`crate::media`]); its one-way latency is taken at the arrival of
//!   its first packet and, for the frame complete, of its last packet, at every receiver, over
//!   both emulated links and the server.
//! - **Latency the server adds**: the server's own `tandem_forward_delay_seconds` histogram,
//!   scraped at the window's start and end. The *probe class* (a master and one remote
//!   classroom on a direct loopback path) still runs beside the load; its frames' one-way
//!   latency is reported under its own name.
//! - **Loss, freezes, promised tracks**: see [`crate::measure`]: every (receiver, track) pair
//!   the forwarding policy promises is checked against what its sender sent in the window.
//! - **Generator lateness**: how late the media generators ran against their schedule in the
//!   window; p99 above 5 ms makes the run untrustworthy (and fails it).
//! - **Board-op latency**, **vote latency**: over the WebSocket, which runs over direct loopback
//!   TCP (with `TCP_NODELAY`); only the media (UDP) crosses the emulated links.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::cli::Args;
use crate::client::VideoSpec;
use crate::html::ServerPoint;
use crate::link::LinkProfile;
use crate::measure::{self, LiveServer, ServerSampler, Tally, Window};
use crate::media::LatenessRecorder;
use crate::report::{Expected, HostUsage, Report, hist};
use crate::server::ServerUnderTest;
use crate::slo::SloThresholds;
use crate::stats::{HistogramJson, LatencyRecorder, Summary};
use tandem_sfu::Source;

/// Longest wait for a keyframe after joining; a classroom that waits longer is counted at this.
pub const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest wait for a vote to be counted; a vote that is not is counted at this.
pub const VOTE_TIMEOUT: Duration = Duration::from_secs(5);
/// Senders stop this long before the count, so retransmissions and frames in flight land.
pub const SETTLE: Duration = Duration::from_secs(1);
/// Board stroke segments are streamed at this rate while a stroke is drawn.
pub const STROKE_APPEND_INTERVAL: Duration = Duration::from_millis(33);

/// Faults a test of the load test injects, to show that each one fails the run. Not flags: a
/// real run has none.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// This remote classroom's (class index, remote index) emulated uplink drops every packet
    /// of its camera, while the policy promises the camera to the master.
    pub dropped_camera: Option<(u32, u32)>,
    /// The probe class opens its invite link with a token the server refuses.
    pub probe_bad_token: bool,
    /// Every poll is started with a question the server refuses (too long), so none opens.
    pub refused_polls: bool,
}

/// What one run simulates.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub classes: u32,
    pub remotes: u32,
    pub duration: Duration,
    pub ramp: Duration,
    pub link: LinkProfile,
    pub fps: u32,
    pub frame_bytes: usize,
    pub keyframe_interval: Option<Duration>,
    pub screen_share: bool,
    pub stage_fraction: f64,
    pub rejoin_fraction: f64,
    pub board_strokes_per_sec: f64,
    pub polls: u32,
    pub seed: u64,
    /// Run the probe class.
    pub probe: bool,
    /// Print the live progress line on stderr.
    pub progress: bool,
    /// `Some((i, n))`: run only share `i` (1-based) of `n` of the classes (`--shard I/N`).
    pub shard: Option<(u32, u32)>,
    /// Report the server's RSS and CPU slopes over the window and fail on growth.
    pub soak: bool,
    pub faults: Faults,
    /// The emulated classrooms reach the server over ICE-TCP only.
    pub tcp: bool,
    /// Classrooms negotiate and send redundant audio (RED), as Chrome does.
    pub red: bool,
}

impl RunConfig {
    /// The run the flags ask for, with `classes` classes.
    pub fn from_args(args: &Args, classes: u32) -> anyhow::Result<Self> {
        Ok(Self {
            classes,
            remotes: args.remotes,
            duration: args.duration(),
            ramp: args.ramp(),
            link: args.link_profile()?,
            fps: args.media.fps,
            frame_bytes: args.media.video_frame_bytes(),
            keyframe_interval: args.media.keyframe_interval(),
            screen_share: args.media.screen_share,
            stage_fraction: args.lesson.stage_fraction,
            rejoin_fraction: args.lesson.rejoin_fraction,
            board_strokes_per_sec: args.lesson.board_strokes_per_sec,
            polls: args.lesson.polls,
            seed: args.seed,
            probe: args.shard.is_none_or(|(i, _)| i == 1),
            progress: true,
            shard: args.shard,
            soak: args.soak,
            faults: Faults::default(),
            tcp: args.transport == crate::cli::Transport::Tcp,
            red: !args.media.no_red,
        })
    }

    /// The classes this run (this shard) runs, by their index among all `classes`.
    pub fn class_indices(&self) -> Vec<u32> {
        (0..self.classes)
            .filter(|i| self.shard.is_none_or(|(s, n)| i % n == s - 1))
            .collect()
    }

    /// Classrooms this run simulates (the probe class not counted).
    pub fn classrooms(&self) -> u32 {
        self.class_indices().len() as u32 * (1 + self.remotes)
    }

    /// Remote classrooms of each class put on stage.
    pub fn on_stage(&self) -> u32 {
        ((self.stage_fraction * self.remotes as f64).round() as u32).min(self.remotes)
    }

    /// Whether remote classroom `global` (class × remotes + index) leaves and rejoins: spread
    /// evenly, `floor(N × fraction)` of the N remote classrooms.
    pub fn rejoins(&self, global: u32) -> bool {
        let f = self.rejoin_fraction;
        ((global + 1) as f64 * f).floor() > (global as f64 * f).floor()
    }

    /// Upper bound of the whole run; it is stopped (and fails) past this.
    pub fn hard_timeout(&self) -> Duration {
        self.ramp + self.duration + Duration::from_secs(90)
    }

    pub(crate) fn video(&self, source: Source) -> VideoSpec {
        VideoSpec {
            fps: self.fps,
            frame_bytes: self.frame_bytes,
            keyframe_interval: self.keyframe_interval,
            source,
        }
    }
}

/// Everything a run measured, with the series the HTML page draws.
pub struct RunOutcome {
    pub report: Report,
    pub ttff: LatencyRecorder,
    pub media: LatencyRecorder,
    pub frame: LatencyRecorder,
    pub probe: LatencyRecorder,
    pub board: LatencyRecorder,
    pub vote: LatencyRecorder,
    pub keyframe_recovery: LatencyRecorder,
    /// RFC 3550 jitter of each received audio track, ms.
    pub audio_jitter_ms: Vec<f64>,
    pub server_points: Vec<ServerPoint>,
}

impl RunOutcome {
    /// Lines printed under the report's table: what the table has no row for.
    pub fn extra_lines(&self) -> String {
        let j = Summary::of(&self.audio_jitter_ms);
        let k = self.keyframe_recovery.summary();
        let mut s = format!(
            "audio jitter (RFC 3550, per track) p50 {:.1} ms  p95 {:.1} ms  max {:.1} ms\n\
             keyframe recovery after rejoin: {} rejoins, p50 {:.0} ms  max {:.0} ms\n",
            j.p50,
            j.p95,
            j.max,
            self.keyframe_recovery.len(),
            k.p50,
            k.max
        );
        for p in &self.report.tracks.problems {
            s.push_str(&format!("track {p}\n"));
        }
        s
    }

    /// The recorders the HTML page charts, by name.
    pub fn latencies(&self) -> [(&'static str, &LatencyRecorder); 5] {
        [
            ("media first packet", &self.media),
            ("media frame", &self.frame),
            ("probe class one-way", &self.probe),
            ("board op", &self.board),
            ("vote", &self.vote),
        ]
    }
}

/// State shared by the class tasks of one run.
pub(crate) struct Shared {
    pub(crate) start: Instant,
    pub(crate) http: String,
    pub(crate) joins_ok: AtomicU32,
    pub(crate) joins_failed: AtomicU32,
    pub(crate) classes_ready: AtomicU32,
    pub(crate) tally: Mutex<Tally>,
    pub(crate) ttff: Mutex<LatencyRecorder>,
    pub(crate) media: Mutex<LatencyRecorder>,
    pub(crate) frame: Mutex<LatencyRecorder>,
    pub(crate) probe: Mutex<LatencyRecorder>,
    pub(crate) board: Mutex<LatencyRecorder>,
    pub(crate) vote: Mutex<LatencyRecorder>,
    pub(crate) recovery: Mutex<LatencyRecorder>,
    pub(crate) jitter: Mutex<Vec<f64>>,
    pub(crate) lateness: LatenessRecorder,
    /// Send time of each board op, by (object id, segment index).
    pub(crate) board_sent: Mutex<std::collections::HashMap<(String, u64), Instant>>,
}

impl Shared {
    fn new(start: Instant, http: String) -> Self {
        let rec = || Mutex::new(LatencyRecorder::new(start));
        let lateness = LatenessRecorder::default();
        lateness.set_recording(false);
        Self {
            start,
            http,
            joins_ok: AtomicU32::new(0),
            joins_failed: AtomicU32::new(0),
            classes_ready: AtomicU32::new(0),
            tally: Mutex::new(Tally::default()),
            ttff: rec(),
            media: rec(),
            frame: rec(),
            probe: rec(),
            board: rec(),
            vote: rec(),
            recovery: rec(),
            jitter: Mutex::new(Vec::new()),
            lateness,
            board_sent: Mutex::new(Default::default()),
        }
    }
}

/// Runs the lesson against `server` and measures it.
pub async fn run(
    cfg: &RunConfig,
    server: &ServerUnderTest,
    thresholds: &SloThresholds,
) -> anyhow::Result<RunOutcome> {
    let start = Instant::now();
    let sh = Arc::new(Shared::new(start, server.http.clone()));
    let cfg = Arc::new(cfg.clone());
    let (window_tx, window_rx) = watch::channel(None::<Instant>);

    let sampler = ServerSampler::start(&server.http, server.pid, start);
    let mut tasks = JoinSet::new();
    let indices = cfg.class_indices();
    let total_classes = indices.len() as u32 + u32::from(cfg.probe);
    if cfg.probe {
        tasks.spawn(crate::lesson::run_class(
            cfg.clone(),
            sh.clone(),
            cfg.classes,
            true,
            start,
            window_rx.clone(),
        ));
    }
    for &i in &indices {
        let at = start + cfg.ramp.mul_f64(i as f64 / cfg.classes as f64);
        tasks.spawn(crate::lesson::run_class(
            cfg.clone(),
            sh.clone(),
            i,
            false,
            at,
            window_rx.clone(),
        ));
    }
    let progress = cfg.progress.then(|| {
        tokio::spawn(progress_line(
            cfg.clone(),
            sh.clone(),
            sampler.live.clone(),
            window_rx.clone(),
        ))
    });

    let hard_end = start + cfg.hard_timeout();
    let mut forward_delay = None;
    let mut window = None;
    let outcome = tokio::time::timeout(cfg.hard_timeout(), async {
        // Every class joined (or failed to), then a moment for the late subscribe offers.
        let join_deadline = start + cfg.ramp + FIRST_FRAME_TIMEOUT + Duration::from_secs(30);
        while sh.classes_ready.load(Ordering::SeqCst) < total_classes
            && Instant::now() < join_deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let m0 = Instant::now();
        let w = Window {
            from: m0,
            to: m0 + cfg.duration,
        };
        window = Some(w);
        let _ = window_tx.send(Some(m0));
        sh.lateness.set_recording(true);
        let http = sh.http.clone();
        let lateness = sh.lateness.clone();
        forward_delay = Some(tokio::spawn(async move {
            let scraped = measure::forward_delay_window(&http, w, hard_end).await;
            lateness.set_recording(false);
            scraped
        }));
        while let Some(joined) = tasks.join_next().await {
            if let Err(err) = joined
                && err.is_panic()
            {
                return Err(anyhow!("a class task panicked: {err}"));
            }
        }
        Ok(())
    })
    .await;
    if let Some(p) = progress {
        p.abort();
        eprintln!();
    }
    let (server_usage, loadgen_cpu_pct_avg, server_points) = sampler.stop().await;
    match outcome {
        Ok(result) => result?,
        Err(_) => {
            tasks.abort_all();
            if let Some(f) = forward_delay {
                f.abort();
            }
            anyhow::bail!(
                "the run did not finish within its hard timeout of {:?}",
                cfg.hard_timeout()
            );
        }
    }
    let server_forward_delay = match forward_delay {
        Some(f) => f.await.ok().flatten(),
        None => None,
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let take = |m: &Mutex<LatencyRecorder>| m.lock().clone();
    let outcome = RunOutcome {
        report: Report::default(),
        ttff: take(&sh.ttff),
        media: take(&sh.media),
        frame: take(&sh.frame),
        probe: take(&sh.probe),
        board: take(&sh.board),
        vote: take(&sh.vote),
        keyframe_recovery: take(&sh.recovery),
        audio_jitter_ms: sh.jitter.lock().clone(),
        server_points,
    };
    let tally = sh.tally.lock().clone();
    let soak = match window {
        Some(w) if cfg.soak => {
            let t = |i: Instant| i.saturating_duration_since(start).as_secs_f64();
            measure::soak_of(&outcome.server_points, t(w.from), t(w.to))
        }
        _ => None,
    };
    let mut histograms = crate::stats::Histograms::new();
    for (name, rec) in [
        (hist::TIME_TO_FIRST_FRAME, &outcome.ttff),
        (hist::MEDIA_FIRST_PACKET, &outcome.media),
        (hist::MEDIA_FRAME, &outcome.frame),
        (hist::PROBE_ONE_WAY, &outcome.probe),
        (hist::BOARD_OP, &outcome.board),
        (hist::VOTE, &outcome.vote),
        (hist::KEYFRAME_RECOVERY, &outcome.keyframe_recovery),
    ] {
        histograms.insert(name.to_owned(), HistogramJson::of(&rec.histogram()));
    }
    histograms.insert(
        hist::GENERATOR_LATENESS.to_owned(),
        HistogramJson::of(&sh.lateness.histogram()),
    );
    let mut report = Report {
        classes: indices.len() as u32,
        classrooms: cfg.classrooms(),
        shard: cfg.shard.map(|(i, n)| format!("{i}/{n}")),
        joins_ok: sh.joins_ok.load(Ordering::SeqCst),
        joins_failed: sh.joins_failed.load(Ordering::SeqCst),
        packets: tally.packets,
        freezes: tally.freezes,
        freeze_secs: tally.frozen.as_secs_f64(),
        tracks: tally.tracks,
        host: HostUsage::new(cores, loadgen_cpu_pct_avg, server_usage.cpu_pct_avg),
        server: server_usage,
        soak,
        duration_secs: cfg.duration.as_secs_f64(),
        expected: Expected {
            votes: u64::from(cfg.polls) * u64::from(cfg.remotes) * indices.len() as u64,
            board_ops: cfg.board_strokes_per_sec > 0.0 && cfg.remotes > 0 && !indices.is_empty(),
            probe: cfg.probe,
            soak: cfg.soak,
        },
        histograms,
        server_forward_delay,
        thresholds: thresholds.clone(),
        ..Report::default()
    };
    report.derive();
    Ok(RunOutcome { report, ..outcome })
}

/// The live progress line on stderr, rewritten in place once a second.
async fn progress_line(
    cfg: Arc<RunConfig>,
    sh: Arc<Shared>,
    live: Arc<Mutex<LiveServer>>,
    window: watch::Receiver<Option<Instant>>,
) {
    use std::io::Write as _;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    loop {
        ticker.tick().await;
        let phase = match *window.borrow() {
            None => "joining".to_owned(),
            Some(m0) => {
                let t = m0.elapsed().min(cfg.duration).as_secs();
                if m0.elapsed() > cfg.duration {
                    "counting".to_owned()
                } else {
                    format!("lesson {t}/{}s", cfg.duration.as_secs())
                }
            }
        };
        let recent = |m: &Mutex<LatencyRecorder>| {
            let r = m.lock();
            let cutoff = sh.start.elapsed().as_secs_f64() - 5.0;
            let v: Vec<f64> = r
                .samples()
                .iter()
                .rev()
                .take_while(|s| s.t >= cutoff)
                .map(|s| s.value)
                .collect();
            Summary::of(&v).p95
        };
        let s = *live.lock();
        let opt =
            |v: Option<f64>, unit: &str| v.map_or("–".to_owned(), |v| format!("{v:.0}{unit}"));
        let line = format!(
            "[{:>4}s] {phase:<14} joined {}/{} failed {} | board p95(5s) {:.1} ms | votes {} | \
             server cpu {} rss {} fwd {} pkt/s",
            sh.start.elapsed().as_secs(),
            sh.joins_ok.load(Ordering::SeqCst),
            cfg.classrooms(),
            sh.joins_failed.load(Ordering::SeqCst),
            recent(&sh.board),
            sh.vote.lock().len(),
            opt(s.cpu_pct, "%"),
            opt(s.rss_mb, "MiB"),
            opt(s.forwarded_per_sec, ""),
        );
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{line:<120}");
        let _ = err.flush();
    }
}

/// Runs one step with a server of its own (or the external one).
pub async fn run_against(
    cfg: &RunConfig,
    spawn: Option<&std::path::Path>,
    external: &str,
    thresholds: &SloThresholds,
) -> anyhow::Result<RunOutcome> {
    let server = match spawn {
        Some(binary) => ServerUnderTest::spawn(binary).await?,
        None => ServerUnderTest::external(external)?,
    };
    let outcome = run(cfg, &server, thresholds).await.context("load-test run");
    server.stop().await;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> RunConfig {
        RunConfig {
            classes: 4,
            remotes: 3,
            duration: Duration::from_secs(60),
            ramp: Duration::from_secs(10),
            link: LinkProfile::named("1000km").unwrap(),
            fps: 30,
            frame_bytes: 5000,
            keyframe_interval: None,
            screen_share: false,
            stage_fraction: 0.5,
            rejoin_fraction: 0.1,
            board_strokes_per_sec: 2.0,
            polls: 1,
            seed: 1,
            probe: true,
            progress: false,
            shard: None,
            soak: false,
            faults: Faults::default(),
            tcp: false,
            red: true,
        }
    }

    #[test]
    fn stage_and_rejoin_shares() {
        let c = cfg();
        assert_eq!(c.classrooms(), 16);
        assert_eq!(c.on_stage(), 2, "half of 3, rounded");
        let rejoining: Vec<u32> = (0..12).filter(|&g| c.rejoins(g)).collect();
        assert_eq!(rejoining, [9], "floor(12 × 0.1) = 1 of 12");
        let all = RunConfig {
            rejoin_fraction: 1.0,
            stage_fraction: 1.0,
            ..cfg()
        };
        assert_eq!((0..12).filter(|&g| all.rejoins(g)).count(), 12);
        assert_eq!(all.on_stage(), 3);
        let none = RunConfig {
            rejoin_fraction: 0.0,
            ..cfg()
        };
        assert_eq!((0..12).filter(|&g| none.rejoins(g)).count(), 0);
    }

    #[test]
    fn shards_split_the_classes_between_them() {
        let shard = |i, n| RunConfig {
            classes: 5,
            shard: Some((i, n)),
            ..cfg()
        };
        assert_eq!(shard(1, 2).class_indices(), [0, 2, 4]);
        assert_eq!(shard(2, 2).class_indices(), [1, 3]);
        assert_eq!(shard(2, 2).classrooms(), 8);
        let all: Vec<u32> = (1..=3).flat_map(|i| shard(i, 3).class_indices()).collect();
        assert_eq!(all.len(), 5);
        assert_eq!(cfg().class_indices(), [0, 1, 2, 3]);
    }
}
