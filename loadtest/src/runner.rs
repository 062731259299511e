//! One load-test run: C classes of a master and R remote classrooms join in a ramp over emulated
//! links, teach a lesson for the measured window (stage, board strokes, polls, a few classrooms
//! leave and rejoin), and what a teacher would notice is measured and assembled into a
//! [`Report`].
//!
//! # What is measured, and how
//!
//! - **Time to first frame**: from the moment a remote classroom starts to open its invite link
//!   (WebSocket connect) to the arrival of the first keyframe of the teacher's camera.
//! - **Media latency**: every synthetic video frame carries its send time (wall clock, shared by
//!   sender and receiver in this process); its one-way latency is taken at the arrival of its
//!   first packet, at every receiver, over both emulated links (publisher's uplink, receiver's
//!   downlink) and the server.
//! - **Latency the server adds**: one extra *probe class* (a master and one remote classroom,
//!   both on a direct loopback path, no emulation) runs beside the load with the same media. Its
//!   frames' one-way latency is what the server plus the loopback UDP stack add under this load.
//! - **Loss after retransmission**: RTP sequence numbers at every receiver; a hole filled by a
//!   retransmission (NACK) does not count, a hole never filled does. Senders stop one second
//!   before the count so late retransmissions land.
//! - **Freezes**: gaps over 300 ms between the frames of one received video track, in the window.
//! - **Jitter**: RFC 3550 interarrival jitter of every received audio track (summary line).
//! - **Keyframe recovery**: for classrooms that leave and rejoin mid-lesson, from the start of
//!   the rejoin to the first keyframe of the teacher's camera (summary line).
//! - **Board-op latency**: the teacher streams strokes (`stroke_begin`, `stroke_append` at 30 Hz,
//!   `stroke_end`); each op's send time is kept, and each remote classroom measures when the
//!   broadcast `board_op` arrives.
//! - **Vote latency**: a remote classroom's `poll_vote` until the teacher's `poll_counts` shows it.
//!
//! The WebSocket (board ops, votes, signaling) runs over direct loopback TCP; only the media
//! (UDP) crosses the emulated links. Board-op and vote latencies are therefore the server's own
//! processing and delivery time, without the network's delay.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use parking_lot::Mutex;
use serde_json::Value;
use tandem_sfu::{ClassroomId, MediaKind, Source};
use tandem_signaling::classboard::board::{BoardOp, Point, StrokeTool};
use tandem_signaling::classboard::poll::{PollKind, PollSpec, PollState};
use tandem_signaling::protocol::{ClientMessage, ServerMessage};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::cli::Args;
use crate::client::{Classroom, ClientOptions, PublishSpec, VideoSpec};
use crate::html::ServerPoint;
use crate::link::LinkProfile;
use crate::proc_stats::{MetricSet, ProcSampler};
use crate::report::{HostUsage, LossByKind, Report, ServerUsage};
use crate::server::ServerUnderTest;
use crate::slo::SloThresholds;
use crate::stats::{FREEZE_GAP, LatencyRecorder, Summary, detect_freezes, loss_pct};

/// Longest wait for a keyframe after joining; a classroom that waits longer is counted at this.
pub const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest wait for a vote to be counted; a vote that is not is counted at this.
pub const VOTE_TIMEOUT: Duration = Duration::from_secs(5);
/// Senders stop this long before the count, so retransmissions and frames in flight land.
pub const SETTLE: Duration = Duration::from_secs(1);
/// Board stroke segments are streamed at this rate while a stroke is drawn.
pub const STROKE_APPEND_INTERVAL: Duration = Duration::from_millis(33);

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
    /// Run the probe class that measures the latency the server adds.
    pub probe: bool,
    /// Print the live progress line on stderr.
    pub progress: bool,
    /// The emulated classrooms reach the server over ICE-TCP only.
    pub tcp: bool,
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
            probe: true,
            progress: true,
            tcp: args.transport == crate::cli::Transport::Tcp,
        })
    }

    /// Classrooms simulated (the probe class not counted).
    pub fn classrooms(&self) -> u32 {
        self.classes * (1 + self.remotes)
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

    fn video(&self, source: Source) -> VideoSpec {
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
    pub sfu_added: LatencyRecorder,
    pub board: LatencyRecorder,
    pub vote: LatencyRecorder,
    pub keyframe_recovery: LatencyRecorder,
    /// RFC 3550 jitter of each received audio track, ms.
    pub audio_jitter_ms: Vec<f64>,
    pub server_points: Vec<ServerPoint>,
}

impl RunOutcome {
    /// Lines printed under the report's table: what the JSON has no key for.
    pub fn extra_lines(&self) -> String {
        let j = Summary::of(&self.audio_jitter_ms);
        let k = self.keyframe_recovery.summary();
        format!(
            "audio jitter (RFC 3550, per track) p50 {:.1} ms  p95 {:.1} ms  max {:.1} ms\n\
             keyframe recovery after rejoin: {} rejoins, p50 {:.0} ms  max {:.0} ms\n",
            j.p50,
            j.p95,
            j.max,
            self.keyframe_recovery.len(),
            k.p50,
            k.max
        )
    }
}

/// The counts a run adds up, before they become a [`Report`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub classes: u32,
    pub classrooms: u32,
    pub joins_ok: u32,
    pub joins_failed: u32,
    /// Media packets the receivers should have had, and those never received.
    pub expected_packets: u64,
    pub lost_packets: u64,
    /// The audio part of the two above.
    pub audio_expected_packets: u64,
    pub audio_lost_packets: u64,
    pub freezes: u64,
    pub duration_secs: f64,
    pub server: ServerUsage,
    pub host: HostUsage,
}

/// The report of a run from its totals and recorders, with the SLOs applied.
pub fn assemble(
    totals: &Totals,
    ttff: &LatencyRecorder,
    media: &LatencyRecorder,
    sfu_added: &LatencyRecorder,
    board: &LatencyRecorder,
    vote: &LatencyRecorder,
    thresholds: &SloThresholds,
) -> Report {
    let mut report = Report {
        classes: totals.classes,
        classrooms: totals.classrooms,
        joins_ok: totals.joins_ok,
        joins_failed: totals.joins_failed,
        time_to_first_frame_ms: ttff.summary(),
        media_latency_ms: media.summary(),
        sfu_added_latency_ms: sfu_added.summary(),
        board_op_latency_ms: board.summary(),
        vote_latency_ms: vote.summary(),
        packet_loss_pct: loss_pct(
            totals.expected_packets,
            totals.expected_packets.saturating_sub(totals.lost_packets),
        ),
        packet_loss_by_kind_pct: LossByKind::from_counts(
            (totals.audio_expected_packets, totals.audio_lost_packets),
            (
                totals
                    .expected_packets
                    .saturating_sub(totals.audio_expected_packets),
                totals
                    .lost_packets
                    .saturating_sub(totals.audio_lost_packets),
            ),
        ),
        freezes: totals.freezes,
        server: totals.server,
        host: totals.host,
        duration_secs: totals.duration_secs,
        ..Report::default()
    };
    report.apply_slo(thresholds);
    report
}

/// State shared by the class tasks of one run.
struct Shared {
    start: Instant,
    http: String,
    joins_ok: AtomicU32,
    joins_failed: AtomicU32,
    classes_ready: AtomicU32,
    expected: AtomicU64,
    lost: AtomicU64,
    /// The audio part of `expected` and `lost`.
    audio_expected: AtomicU64,
    audio_lost: AtomicU64,
    freezes: AtomicU64,
    ttff: Mutex<LatencyRecorder>,
    media: Mutex<LatencyRecorder>,
    sfu_added: Mutex<LatencyRecorder>,
    board: Mutex<LatencyRecorder>,
    vote: Mutex<LatencyRecorder>,
    recovery: Mutex<LatencyRecorder>,
    jitter: Mutex<Vec<f64>>,
    /// Send time of each board op, by (object id, segment index).
    board_sent: Mutex<HashMap<(String, u64), Instant>>,
}

impl Shared {
    fn new(start: Instant, http: String) -> Self {
        let rec = || Mutex::new(LatencyRecorder::new(start));
        Self {
            start,
            http,
            joins_ok: AtomicU32::new(0),
            joins_failed: AtomicU32::new(0),
            classes_ready: AtomicU32::new(0),
            expected: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            audio_expected: AtomicU64::new(0),
            audio_lost: AtomicU64::new(0),
            freezes: AtomicU64::new(0),
            ttff: rec(),
            media: rec(),
            sfu_added: rec(),
            board: rec(),
            vote: rec(),
            recovery: rec(),
            jitter: Mutex::new(Vec::new()),
            board_sent: Mutex::new(HashMap::new()),
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

    let sampler = ServerSampler::start(server, start);
    let mut tasks = JoinSet::new();
    let total_classes = cfg.classes + u32::from(cfg.probe);
    if cfg.probe {
        tasks.spawn(run_class(
            cfg.clone(),
            sh.clone(),
            cfg.classes,
            true,
            start,
            window_rx.clone(),
        ));
    }
    for i in 0..cfg.classes {
        let at = start + cfg.ramp.mul_f64(i as f64 / cfg.classes as f64);
        tasks.spawn(run_class(
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

    let outcome = tokio::time::timeout(cfg.hard_timeout(), async {
        // Every class joined (or failed to), then a moment for the late subscribe offers.
        let join_deadline = start + cfg.ramp + FIRST_FRAME_TIMEOUT + Duration::from_secs(30);
        while sh.classes_ready.load(Ordering::SeqCst) < total_classes
            && Instant::now() < join_deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let _ = window_tx.send(Some(Instant::now()));
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
    let server_usage = sampler.stop().await;
    match outcome {
        Ok(result) => result?,
        Err(_) => {
            tasks.abort_all();
            anyhow::bail!(
                "the run did not finish within its hard timeout of {:?}",
                cfg.hard_timeout()
            );
        }
    }
    let (server, loadgen_cpu_pct_avg, server_points) = server_usage;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);

    let totals = Totals {
        classes: cfg.classes,
        classrooms: cfg.classrooms(),
        joins_ok: sh.joins_ok.load(Ordering::SeqCst),
        joins_failed: sh.joins_failed.load(Ordering::SeqCst),
        expected_packets: sh.expected.load(Ordering::SeqCst),
        lost_packets: sh.lost.load(Ordering::SeqCst),
        audio_expected_packets: sh.audio_expected.load(Ordering::SeqCst),
        audio_lost_packets: sh.audio_lost.load(Ordering::SeqCst),
        freezes: sh.freezes.load(Ordering::SeqCst),
        duration_secs: cfg.duration.as_secs_f64(),
        host: HostUsage::new(cores, loadgen_cpu_pct_avg, server.cpu_pct_avg),
        server,
    };
    let take = |m: &Mutex<LatencyRecorder>| m.lock().clone();
    let (ttff, media, sfu_added, board, vote) = (
        take(&sh.ttff),
        take(&sh.media),
        take(&sh.sfu_added),
        take(&sh.board),
        take(&sh.vote),
    );
    let report = assemble(
        &totals, &ttff, &media, &sfu_added, &board, &vote, thresholds,
    );
    Ok(RunOutcome {
        report,
        ttff,
        media,
        sfu_added,
        board,
        vote,
        keyframe_recovery: take(&sh.recovery),
        audio_jitter_ms: sh.jitter.lock().clone(),
        server_points,
    })
}

/// The links a class is joined by.
struct ClassLinks {
    teacher_url: String,
    invite_url: String,
}

async fn create_class(http: &str, title: &str) -> anyhow::Result<ClassLinks> {
    let body: Value = reqwest::Client::new()
        .post(format!("{http}/api/classes"))
        .timeout(Duration::from_secs(10))
        .json(&serde_json::json!({"title": title, "teacher_name": "Load Teacher"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let get = |k: &str| {
        body[k]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no {k} in the class answer"))
    };
    Ok(ClassLinks {
        teacher_url: get("teacher_url")?,
        invite_url: get("invite_url")?,
    })
}

/// A classroom's options: emulated unless it belongs to the probe class.
fn options(cfg: &RunConfig, probe: bool, seed: u64) -> ClientOptions {
    ClientOptions {
        // The probe measures the server on a direct UDP path, whatever the classrooms use.
        tcp: cfg.tcp && !probe,
        ..ClientOptions::browser_like((!probe).then(|| cfg.link.clone()), seed)
    }
}

/// Joins by `link` and publishes a tone and the camera (and the screen, if asked).
async fn join_and_publish(
    cfg: &RunConfig,
    http: &str,
    link: &str,
    name: &str,
    opts: ClientOptions,
    tone_hz: f32,
    screen: bool,
) -> anyhow::Result<Classroom> {
    let mut c = tokio::time::timeout(
        Duration::from_secs(20),
        Classroom::join_with(http, link, name, opts),
    )
    .await
    .map_err(|_| anyhow!("join timed out"))??;
    let spec = PublishSpec {
        tone_hz: Some(tone_hz),
        video: Some(cfg.video(Source::Camera)),
    };
    let screen = screen.then(|| cfg.video(Source::Screen));
    tokio::time::timeout(Duration::from_secs(20), c.publish_with_screen(spec, screen))
        .await
        .map_err(|_| anyhow!("publish timed out"))??;
    Ok(c)
}

/// When the first keyframe of `publisher`'s camera arrived at `c`, waiting up to `timeout`.
async fn first_keyframe(c: &Classroom, publisher: &str, timeout: Duration) -> Option<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        let first = c.inspect_received(|tracks| {
            tracks
                .values()
                .filter(|r| {
                    r.info.as_ref().is_some_and(|i| {
                        i.classroom_id.as_str() == publisher
                            && i.kind == MediaKind::Video
                            && i.source == Source::Camera
                    })
                })
                .filter_map(|r| r.keyframes.first().copied())
                .min()
        });
        if first.is_some() || Instant::now() >= deadline {
            return first;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Records how long after `since` the first keyframe came; one that never came counts as
/// [`FIRST_FRAME_TIMEOUT`], at the moment the wait gave up.
fn record_first_frame(rec: &Mutex<LatencyRecorder>, since: Instant, first: Option<Instant>) {
    let at = first.unwrap_or_else(Instant::now);
    let took = first.map_or(FIRST_FRAME_TIMEOUT, |t| t - since);
    rec.lock().record_duration(at, took);
}

/// A remote classroom of a class.
struct Remote {
    name: String,
    seed: u64,
    classroom: Option<Classroom>,
    listener: Option<tokio::task::JoinHandle<()>>,
}

/// Joins one remote classroom and measures its time to first frame.
async fn join_remote(
    cfg: &RunConfig,
    sh: &Arc<Shared>,
    links: &ClassLinks,
    teacher_id: &str,
    name: String,
    seed: u64,
    probe: bool,
) -> Remote {
    let opened = Instant::now();
    let tone = 500.0 + (seed % 8) as f32 * 50.0;
    let joined = join_and_publish(
        cfg,
        &sh.http,
        &links.invite_url,
        &name,
        options(cfg, probe, seed),
        tone,
        false,
    )
    .await;
    let mut remote = Remote {
        name,
        seed,
        classroom: None,
        listener: None,
    };
    match joined {
        Ok(c) => {
            let first = first_keyframe(&c, teacher_id, FIRST_FRAME_TIMEOUT).await;
            if first.is_none() {
                let seen: Vec<String> = c.inspect_received(|tracks| {
                    tracks
                        .values()
                        .map(|r| {
                            format!(
                                "{:?}: {} packets, {} keyframes",
                                r.info.as_ref().map(|i| (i.classroom_id.as_str(), i.kind)),
                                r.packets,
                                r.keyframes.len()
                            )
                        })
                        .collect()
                });
                let subscribe_offers = c
                    .log()
                    .iter()
                    .filter(|m| matches!(m, ServerMessage::SubscribeOffer { .. }))
                    .count();
                tracing::warn!(classroom = %c.classroom_id, teacher = teacher_id, ?seen,
                    subscribe_offers, "no keyframe of the teacher's camera");
            }
            if !probe {
                sh.joins_ok.fetch_add(1, Ordering::SeqCst);
                record_first_frame(&sh.ttff, opened, first);
                remote.listener = Some(tokio::spawn(board_listener(sh.clone(), c.subscribe())));
            }
            remote.classroom = Some(c);
        }
        Err(err) => {
            if !probe {
                sh.joins_failed.fetch_add(1, Ordering::SeqCst);
            }
            tracing::warn!(classroom = %remote.name, %err, "join failed");
        }
    }
    remote
}

/// Measures board ops as one remote classroom receives them.
async fn board_listener(sh: Arc<Shared>, mut rx: tokio::sync::broadcast::Receiver<ServerMessage>) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match rx.recv().await {
            Ok(ServerMessage::BoardOp { applied }) => {
                let now = Instant::now();
                let key = match &applied.op {
                    BoardOp::StrokeBegin { object_id, .. } => (object_id.clone(), 0),
                    BoardOp::StrokeAppend {
                        object_id, points, ..
                    } => match points.first() {
                        Some(p) => (object_id.clone(), p.0 as u64),
                        None => continue,
                    },
                    _ => continue,
                };
                let sent = sh.board_sent.lock().get(&key).copied();
                if let Some(sent) = sent {
                    sh.board.lock().record_duration(now, now - sent);
                }
            }
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
}

/// One class, from its creation to its end.
async fn run_class(
    cfg: Arc<RunConfig>,
    sh: Arc<Shared>,
    idx: u32,
    probe: bool,
    start_at: Instant,
    mut window: watch::Receiver<Option<Instant>>,
) {
    tokio::time::sleep_until(start_at.into()).await;
    let remotes_n = if probe { 1 } else { cfg.remotes };
    let fail_all = |sh: &Shared| {
        if !probe {
            sh.joins_failed.fetch_add(1 + remotes_n, Ordering::SeqCst);
        }
        sh.classes_ready.fetch_add(1, Ordering::SeqCst);
    };
    let title = if probe {
        "Load probe".to_owned()
    } else {
        format!("Load class {}", idx + 1)
    };
    let links = match create_class(&sh.http, &title).await {
        Ok(l) => l,
        Err(err) => {
            tracing::warn!(%err, class = idx, "cannot create the class");
            return fail_all(&sh);
        }
    };
    let class_seed = cfg
        .seed
        .wrapping_mul(1_000_003)
        .wrapping_add(idx as u64 * 100);
    let teacher = join_and_publish(
        &cfg,
        &sh.http,
        &links.teacher_url,
        &format!("{title} master"),
        options(&cfg, probe, class_seed),
        440.0,
        cfg.screen_share && !probe,
    )
    .await;
    let mut teacher = match teacher {
        Ok(t) => t,
        Err(err) => {
            tracing::warn!(%err, class = idx, "the master classroom cannot join");
            return fail_all(&sh);
        }
    };
    if !probe {
        sh.joins_ok.fetch_add(1, Ordering::SeqCst);
    }
    let teacher_id = teacher.classroom_id.clone();
    let mut remotes: Vec<Remote> = futures_util::future::join_all((0..remotes_n).map(|j| {
        join_remote(
            &cfg,
            &sh,
            &links,
            &teacher_id,
            format!("{title} remote {}", j + 1),
            class_seed + 1 + j as u64,
            probe,
        )
    }))
    .await;
    sh.classes_ready.fetch_add(1, Ordering::SeqCst);

    // The measured window.
    let m0 = loop {
        if let Some(m0) = *window.borrow() {
            break m0;
        }
        if window.changed().await.is_err() {
            return;
        }
    };
    let m_end = m0 + cfg.duration;
    if !probe {
        tokio::join!(
            draw_strokes(&cfg, &sh, &teacher, idx, m0, m_end),
            lesson_events(&cfg, &sh, &teacher, &links, &mut remotes, idx, m0, m_end),
        );
    }
    tokio::time::sleep_until(m_end.into()).await;

    // Stop sending, let the last retransmissions land, then count.
    teacher.stop_media();
    for r in &mut remotes {
        if let Some(c) = r.classroom.as_mut() {
            c.stop_media();
        }
    }
    tokio::time::sleep(SETTLE).await;
    harvest(&sh, &teacher, m0, m_end, probe);
    for r in &remotes {
        if let Some(c) = &r.classroom {
            harvest(&sh, c, m0, m_end, probe);
        }
    }
    let _ = teacher.send(&ClientMessage::EndClass);
    for r in remotes {
        if let Some(l) = r.listener {
            l.abort();
        }
        if let Some(c) = r.classroom {
            c.leave().await;
        }
    }
    teacher.leave().await;
}

/// The teacher draws strokes at the configured rate through the window.
async fn draw_strokes(
    cfg: &RunConfig,
    sh: &Shared,
    teacher: &Classroom,
    idx: u32,
    m0: Instant,
    m_end: Instant,
) {
    if cfg.board_strokes_per_sec <= 0.0 {
        return;
    }
    let every = Duration::from_secs_f64(1.0 / cfg.board_strokes_per_sec);
    // A stroke takes up to 0.4 s of drawing, never longer than the gap between strokes.
    let segments = ((every.min(Duration::from_millis(500)).as_secs_f64() * 0.8)
        / STROKE_APPEND_INTERVAL.as_secs_f64())
    .floor()
    .max(1.0) as u64;
    let mut n = 0u64;
    let mut next = m0;
    while next + every <= m_end {
        tokio::time::sleep_until(next.into()).await;
        let object_id = format!("lt{idx}-{n}");
        let y = (n % 500) as f64;
        let send = |op: BoardOp, seg: Option<u64>| {
            if let Some(seg) = seg {
                sh.board_sent
                    .lock()
                    .insert((object_id.clone(), seg), Instant::now());
            }
            teacher.send(&ClientMessage::BoardOp { op })
        };
        let _ = send(
            BoardOp::StrokeBegin {
                object_id: object_id.clone(),
                page: 0,
                tool: StrokeTool::Pen,
                color: "#1f77b4".to_owned(),
                width: 3.0,
                point: Point(0.0, y),
            },
            Some(0),
        );
        for seg in 1..=segments {
            tokio::time::sleep(STROKE_APPEND_INTERVAL).await;
            let _ = send(
                BoardOp::StrokeAppend {
                    object_id: object_id.clone(),
                    page: None,
                    points: vec![Point(seg as f64, y)],
                },
                Some(seg),
            );
        }
        let _ = send(
            BoardOp::StrokeEnd {
                object_id: object_id.clone(),
                page: None,
            },
            None,
        );
        n += 1;
        next += every;
    }
}

enum Event {
    Rejoin(usize),
    Poll(u32),
}

/// Stage at the start, then rejoins and polls at their times, one after the other.
#[allow(clippy::too_many_arguments)]
async fn lesson_events(
    cfg: &RunConfig,
    sh: &Arc<Shared>,
    teacher: &Classroom,
    links: &ClassLinks,
    remotes: &mut [Remote],
    idx: u32,
    m0: Instant,
    m_end: Instant,
) {
    let d = cfg.duration;
    let on_stage = cfg.on_stage() as usize;
    for r in remotes.iter().take(on_stage) {
        if let Some(c) = &r.classroom {
            let _ = teacher.send(&ClientMessage::StageAdd {
                classroom_id: ClassroomId::from(c.classroom_id.as_str()),
            });
        }
    }
    let mut events: Vec<(Instant, Event)> = Vec::new();
    for (j, _) in remotes.iter().enumerate() {
        if cfg.rejoins(idx * cfg.remotes + j as u32) {
            events.push((m0 + d.mul_f64(0.3), Event::Rejoin(j)));
        }
    }
    for k in 0..cfg.polls {
        let at = m0 + d.mul_f64((k + 1) as f64 / (cfg.polls + 1) as f64);
        events.push((at.max(m0 + d.mul_f64(0.4)), Event::Poll(k)));
    }
    events.sort_by_key(|(at, _)| *at);
    for (at, event) in events {
        if at >= m_end {
            break;
        }
        tokio::time::sleep_until(at.into()).await;
        match event {
            Event::Rejoin(j) => {
                rejoin(cfg, sh, teacher, links, &mut remotes[j], j < on_stage, m0).await
            }
            Event::Poll(k) => run_poll(sh, teacher, remotes, idx, k).await,
        }
    }
}

/// A remote classroom leaves and comes back by its invite link (a new classroom).
async fn rejoin(
    cfg: &RunConfig,
    sh: &Arc<Shared>,
    teacher: &Classroom,
    links: &ClassLinks,
    remote: &mut Remote,
    on_stage: bool,
    m0: Instant,
) {
    let Some(old) = remote.classroom.take() else {
        return;
    };
    if let Some(l) = remote.listener.take() {
        l.abort();
    }
    harvest(sh, &old, m0, Instant::now(), false);
    old.leave().await;
    let started = Instant::now();
    remote.seed ^= 0x5EED;
    let joined = join_and_publish(
        cfg,
        &sh.http,
        &links.invite_url,
        &remote.name,
        options(cfg, false, remote.seed),
        620.0,
        false,
    )
    .await;
    match joined {
        Ok(c) => {
            if on_stage {
                let _ = teacher.send(&ClientMessage::StageAdd {
                    classroom_id: ClassroomId::from(c.classroom_id.as_str()),
                });
            }
            let first = first_keyframe(&c, &teacher.classroom_id, FIRST_FRAME_TIMEOUT).await;
            record_first_frame(&sh.recovery, started, first);
            remote.listener = Some(tokio::spawn(board_listener(sh.clone(), c.subscribe())));
            remote.classroom = Some(c);
        }
        Err(err) => {
            // It was counted as joined; it is not back.
            sh.joins_ok.fetch_sub(1, Ordering::SeqCst);
            sh.joins_failed.fetch_add(1, Ordering::SeqCst);
            tracing::warn!(classroom = %remote.name, %err, "rejoin failed");
        }
    }
}

/// The teacher opens a yes/no poll, every remote classroom votes in turn, the teacher closes it.
async fn run_poll(sh: &Shared, teacher: &Classroom, remotes: &[Remote], idx: u32, k: u32) {
    let question = format!("Class {} question {}?", idx + 1, k + 1);
    let _ = teacher.send(&ClientMessage::PollStart {
        spec: PollSpec {
            question: question.clone(),
            kind: PollKind::YesNo,
            options: Vec::new(),
            anonymous: true,
            timer_secs: None,
        },
    });
    let opened = teacher
        .wait_for(VOTE_TIMEOUT, |m| {
            matches!(m, ServerMessage::Poll { poll }
                if poll.question == question && poll.state == PollState::Open)
        })
        .await;
    let Ok(ServerMessage::Poll { poll }) = opened else {
        tracing::warn!(class = idx, "poll did not open");
        return;
    };
    let mut voted = 0u32;
    for r in remotes {
        let Some(c) = &r.classroom else { continue };
        let mut rx = teacher.subscribe();
        let sent = Instant::now();
        let _ = c.send(&ClientMessage::PollVote {
            poll_id: poll.poll_id,
            choices: vec![voted % 2],
        });
        voted += 1;
        let counted = tokio::time::timeout(VOTE_TIMEOUT, async {
            loop {
                match rx.recv().await {
                    Ok(ServerMessage::PollCounts {
                        poll_id,
                        voters_total,
                        ..
                    }) if poll_id == poll.poll_id && voters_total >= voted => return,
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => std::future::pending::<()>().await,
                }
            }
        })
        .await;
        let now = Instant::now();
        let took = if counted.is_ok() {
            now - sent
        } else {
            VOTE_TIMEOUT
        };
        sh.vote.lock().record_duration(now, took);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = teacher.send(&ClientMessage::PollClose {
        poll_id: poll.poll_id,
    });
}

/// Adds what `c` received to the run's totals: latencies and freezes inside `[from, to]`,
/// loss and jitter over the whole life of each track.
fn harvest(sh: &Shared, c: &Classroom, from: Instant, to: Instant, probe: bool) {
    let in_window = |t: &Instant| *t >= from && *t <= to;
    c.inspect_received(|tracks| {
        let mut latencies = Vec::new();
        for r in tracks.values() {
            let Some(info) = &r.info else { continue };
            latencies.extend(
                r.latencies_us
                    .iter()
                    .filter(|(t, _)| in_window(t))
                    .map(|(t, us)| (*t, *us as f64 / 1e3)),
            );
            if probe {
                continue;
            }
            tracing::debug!(
                classroom = %c.classroom_id,
                publisher = %info.classroom_id,
                kind = ?info.kind,
                expected = r.seqs.expected(),
                received = r.seqs.received(),
                lost = r.seqs.lost(),
                packets = r.packets,
                "received track"
            );
            sh.expected.fetch_add(r.seqs.expected(), Ordering::SeqCst);
            sh.lost.fetch_add(r.seqs.lost(), Ordering::SeqCst);
            if info.kind == MediaKind::Audio {
                sh.audio_expected
                    .fetch_add(r.seqs.expected(), Ordering::SeqCst);
                sh.audio_lost.fetch_add(r.seqs.lost(), Ordering::SeqCst);
            }
            if info.kind == MediaKind::Video {
                let arrivals: Vec<Instant> =
                    r.frame_arrivals.iter().copied().filter(in_window).collect();
                let freezes = detect_freezes(&arrivals, FREEZE_GAP).len() as u64;
                sh.freezes.fetch_add(freezes, Ordering::SeqCst);
            } else if let Some(j) = &r.jitter {
                sh.jitter.lock().push(j.jitter_ms());
            }
        }
        let mut rec = if probe {
            sh.sfu_added.lock()
        } else {
            sh.media.lock()
        };
        for (t, ms) in latencies {
            rec.record(t, ms);
        }
    });
}

/// Live server figures for the progress line.
#[derive(Debug, Default, Clone, Copy)]
struct LiveServer {
    cpu_pct: Option<f64>,
    rss_mb: Option<f64>,
    forwarded_per_sec: Option<f64>,
}

/// Samples the server once a second: `/proc` when we started it, `/metrics` in any case.
struct ServerSampler {
    live: Arc<Mutex<LiveServer>>,
    /// The server's usage, this tool's average CPU (percent of one core), the server's samples.
    task: tokio::task::JoinHandle<(ServerUsage, Option<f64>, Vec<ServerPoint>)>,
    stop: tokio::sync::oneshot::Sender<()>,
}

impl ServerSampler {
    fn start(server: &ServerUnderTest, start: Instant) -> Self {
        let live = Arc::new(Mutex::new(LiveServer::default()));
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let pid = server.pid;
        let url = format!("{}/metrics", server.http);
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

    async fn stop(self) -> (ServerUsage, Option<f64>, Vec<ServerPoint>) {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
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
            tcp: false,
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
    fn report_assembly_sums_and_applies_the_slo() {
        let t0 = Instant::now();
        let rec = |values: &[f64]| {
            let mut r = LatencyRecorder::new(t0);
            for (i, v) in values.iter().enumerate() {
                r.record(t0 + Duration::from_millis(i as u64), *v);
            }
            r
        };
        let totals = Totals {
            classes: 4,
            classrooms: 16,
            joins_ok: 16,
            joins_failed: 0,
            expected_packets: 10_000,
            lost_packets: 25,
            audio_expected_packets: 4_000,
            audio_lost_packets: 20,
            freezes: 2,
            duration_secs: 60.0,
            server: ServerUsage {
                cpu_pct_avg: Some(80.0),
                rss_mb_peak: Some(64.0),
            },
            host: HostUsage::new(2, Some(90.0), Some(80.0)),
        };
        let media: Vec<f64> = (1..=100).map(|v| 40.0 + v as f64 * 0.5).collect();
        let r = assemble(
            &totals,
            &rec(&[400.0, 500.0, 600.0]),
            &rec(&media),
            &rec(&[0.5, 1.0, 1.5]),
            &rec(&[2.0, 3.0]),
            &rec(&[5.0]),
            &SloThresholds::default(),
        );
        assert_eq!(
            (r.classes, r.classrooms, r.joins_ok, r.joins_failed),
            (4, 16, 16, 0)
        );
        assert_eq!(r.media_latency_ms.p50, 65.0);
        assert_eq!(r.media_latency_ms.p95, 87.5);
        assert_eq!(r.media_latency_ms.max, 90.0);
        assert_eq!(r.time_to_first_frame_ms.p50, 500.0);
        assert_eq!(r.sfu_added_latency_ms.p95, 1.5);
        assert_eq!(r.vote_latency_ms.max, 5.0);
        assert!((r.packet_loss_pct - 0.25).abs() < 1e-12);
        assert_eq!(r.freezes, 2);
        assert_eq!(r.server.rss_mb_peak, Some(64.0));
        assert!(r.slo.passed, "{:?}", r.slo);

        // The JSON keeps exactly the documented keys.
        let v: Value = serde_json::from_str(&r.to_json().unwrap()).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 15);
        // 20 of 4000 audio packets, 5 of 6000 video packets.
        assert_eq!(v["packet_loss_by_kind_pct"]["audio"], 0.5);
        assert!((r.packet_loss_by_kind_pct.video - 5.0 / 60.0).abs() < 1e-12);
        assert_eq!(v["host"]["saturated"], true, "90 % + 80 % of 2 cores");
        assert_eq!(v["packet_loss_pct"], 0.25);

        let lossy = Totals {
            lost_packets: 200,
            joins_ok: 15,
            joins_failed: 1,
            ..totals
        };
        let r = assemble(
            &lossy,
            &rec(&[]),
            &rec(&media),
            &rec(&[]),
            &rec(&[]),
            &rec(&[]),
            &SloThresholds::default(),
        );
        assert!(!r.slo.passed);
        assert_eq!(r.slo.failures.len(), 2, "{:?}", r.slo.failures);
        assert!(r.slo.failures[0].starts_with("joins_failed 1"));
        assert!(r.slo.failures[1].starts_with("packet_loss_pct 2.00"));
    }
}
