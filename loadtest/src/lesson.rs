//! The lesson script: a class is created, its master classroom and remote classrooms join and
//! publish, the teacher puts classrooms on stage, draws on the board and runs polls, a few
//! classrooms leave and rejoin; at the end every classroom's reception is measured
//! ([`crate::measure`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use parking_lot::Mutex;
use serde_json::Value;
use tandem_sfu::policy::Role;
use tandem_sfu::{ClassroomId, MediaKind, Source};
use tandem_signaling::classboard::board::{BoardOp, Point, StrokeTool};
use tandem_signaling::classboard::poll::{PollKind, PollSpec, PollState};
use tandem_signaling::protocol::{ClientMessage, ServerMessage};
use tokio::sync::watch;

use crate::client::{Classroom, ClientOptions, PublishSpec};
use crate::measure::{LatencySinks, Member, Window, check_class, harvest_latencies};
use crate::runner::{
    FIRST_FRAME_TIMEOUT, RunConfig, SETTLE, STROKE_APPEND_INTERVAL, Shared, VOTE_TIMEOUT,
};
use crate::stats::LatencyRecorder;

/// Where a classroom's received frames are recorded: the probe class's first-packet latency has
/// its own recorder.
fn sinks(sh: &Shared, probe: bool) -> LatencySinks<'_> {
    if probe {
        LatencySinks {
            first_packet: &sh.probe,
            frame: None,
            jitter: None,
        }
    } else {
        LatencySinks {
            first_packet: &sh.media,
            frame: Some(&sh.frame),
            jitter: Some(&sh.jitter),
        }
    }
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

/// A classroom's options: emulated unless it belongs to the probe class; its generators record
/// their lateness with the run's.
fn options(cfg: &RunConfig, sh: &Shared, probe: bool, seed: u64) -> ClientOptions {
    ClientOptions {
        lateness: Some(sh.lateness.clone()),
        measure_only: true,
        // The probe measures the server on a direct UDP path, whatever the classrooms use.
        tcp: cfg.tcp && !probe,
        red: cfg.red,
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
    /// It left and rejoined in the window: its pairs are not checked.
    rejoined: bool,
}

/// Joins one remote classroom and measures its time to first frame.
#[allow(clippy::too_many_arguments)]
async fn join_remote(
    cfg: &RunConfig,
    sh: &Arc<Shared>,
    links: &ClassLinks,
    teacher_id: &str,
    name: String,
    seed: u64,
    probe: bool,
    drop_camera: bool,
) -> Remote {
    let opened = Instant::now();
    let tone = 500.0 + (seed % 8) as f32 * 50.0;
    let invite = if probe && cfg.faults.probe_bad_token {
        format!("{}x", links.invite_url)
    } else {
        links.invite_url.clone()
    };
    let opts = ClientOptions {
        drop_camera,
        ..options(cfg, sh, probe, seed)
    };
    let joined = join_and_publish(cfg, &sh.http, &invite, &name, opts, tone, false).await;
    let mut remote = Remote {
        name,
        seed,
        classroom: None,
        listener: None,
        rejoined: false,
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
pub(crate) async fn run_class(
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
    let title = &title;
    let links = match create_class(&sh.http, title).await {
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
        options(&cfg, &sh, probe, class_seed),
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
            !probe && cfg.faults.dropped_camera == Some((idx, j)),
        )
    }))
    .await;
    // The stage is set before the window opens, so that its subscriptions are flowing when the
    // promised tracks start being checked.
    let on_stage = if probe { 0 } else { cfg.on_stage() as usize };
    for r in remotes.iter().take(on_stage) {
        if let Some(c) = &r.classroom {
            let _ = teacher.send(&ClientMessage::StageAdd {
                classroom_id: ClassroomId::from(c.classroom_id.as_str()),
            });
        }
    }
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
    let sinks = sinks(&sh, probe);
    harvest_latencies(&teacher, m0, m_end, &sinks);
    for r in &remotes {
        if let Some(c) = &r.classroom {
            harvest_latencies(c, m0, m_end, &sinks);
        }
    }
    if !probe {
        let master_name = format!("{title} master");
        let mut members = vec![Member {
            name: &master_name,
            classroom: &teacher,
            role: Role::Master,
            on_stage: false,
            whole_window: true,
        }];
        for (j, r) in remotes.iter().enumerate() {
            if let Some(c) = &r.classroom {
                members.push(Member {
                    name: &r.name,
                    classroom: c,
                    role: Role::Remote,
                    on_stage: j < on_stage,
                    whole_window: !r.rejoined,
                });
            }
        }
        let window = Window {
            from: m0,
            to: m_end,
        };
        // Two links' nominal delay, where a pair's own could not be measured.
        let fallback = cfg.link.delay * 2;
        check_class(&mut sh.tally.lock(), &members, window, fallback);
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

/// Strokes the teacher leaves on the board: each stroke beyond them wipes the oldest. A page
/// holds at most 2000 objects (`--board-max-objects-per-page`), which a teacher who never wiped
/// would fill in 1000 s at 2 strokes a second; every stroke after that would be refused, and a
/// long run (a soak) would measure a board that no longer changes.
pub const BOARD_KEEP_STROKES: u64 = 200;

/// The teacher draws strokes at the configured rate through the window, wiping the oldest once
/// [`BOARD_KEEP_STROKES`] are on the board.
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
        if let Some(oldest) = n.checked_sub(BOARD_KEEP_STROKES) {
            let _ = send(
                BoardOp::Erase {
                    object_ids: vec![format!("lt{idx}-{oldest}")],
                },
                None,
            );
        }
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
            Event::Poll(k) => run_poll(cfg, sh, teacher, remotes, idx, k).await,
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
    harvest_latencies(&old, m0, Instant::now(), &sinks(sh, false));
    old.leave().await;
    remote.rejoined = true;
    let started = Instant::now();
    remote.seed ^= 0x5EED;
    let joined = join_and_publish(
        cfg,
        &sh.http,
        &links.invite_url,
        &remote.name,
        options(cfg, sh, false, remote.seed),
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
async fn run_poll(
    cfg: &RunConfig,
    sh: &Shared,
    teacher: &Classroom,
    remotes: &[Remote],
    idx: u32,
    k: u32,
) {
    let mut question = format!("Class {} question {}?", idx + 1, k + 1);
    if cfg.faults.refused_polls {
        // Longer than the server takes (500 characters by default): it refuses the poll.
        question = question.repeat(100);
    }
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
