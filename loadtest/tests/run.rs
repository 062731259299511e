//! The tool end to end: a real server in this process, one class of a master and two remote
//! classrooms over emulated 1000 km links for a few seconds, and the report it gives; then the
//! same lesson with one fault at a time, each of which must fail the run by name.
//!
//! The runs are made one after the other in one test, so that they do not compete with each
//! other for this machine's cores (the generator's lateness is part of the verdict).

use std::time::Duration;

use tandem_loadtest::link::LinkProfile;
use tandem_loadtest::runner::{self, Faults, RunConfig, RunOutcome};
use tandem_loadtest::server::ServerUnderTest;
use tandem_loadtest::slo::SloThresholds;

fn lesson(duration: Duration, faults: Faults) -> RunConfig {
    RunConfig {
        classes: 1,
        remotes: 2,
        duration,
        ramp: Duration::ZERO,
        link: LinkProfile::named("1000km").unwrap(),
        // A light camera, so a debug build on two shared cores keeps up.
        fps: 15,
        frame_bytes: 1500,
        keyframe_interval: Some(Duration::from_secs(2)),
        screen_share: false,
        stage_fraction: 0.5,
        rejoin_fraction: 0.0,
        board_strokes_per_sec: 2.0,
        polls: 1,
        seed: 7,
        probe: true,
        progress: false,
        shard: None,
        soak: false,
        faults,
        tcp: false,
        red: true,
    }
}

/// Default objectives, loosened only where this test's setting, not the server, sets the
/// figure.
fn thresholds() -> SloThresholds {
    SloThresholds {
        // Audio is not retransmitted (Opus FEC is its repair, which a packet count does not
        // credit), so with this light camera, where audio is most of the packets, loss is
        // about the links' 2 × 1 % on audio.
        packet_loss_pct: 3.0,
        // A debug build whose server shares this test's two runtime threads with six clients
        // and their link emulators: its forwarding waits for the clients' tasks, and the
        // generators for everyone. A release server on its own cores is held to the defaults.
        sfu_added_latency_p95_ms: 50.0,
        generator_late_p99_ms: 30.0,
        ..SloThresholds::default()
    }
}

async fn run(server: &ServerUnderTest, cfg: RunConfig) -> RunOutcome {
    let outcome = runner::run(&cfg, server, &thresholds()).await.expect("run");
    println!(
        "{}{}",
        outcome.report.summary_table(),
        outcome.extra_lines()
    );
    outcome
}

fn failed_with(outcome: &RunOutcome, line: &str) -> bool {
    let r = &outcome.report;
    !r.slo.passed && r.slo.failures.iter().any(|f| f.contains(line))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_class_over_1000km_passes_and_each_fault_fails_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = tandem_signaling::start(tandem_signaling::Config::for_tests(
        dir.path().to_path_buf(),
    ))
    .await
    .expect("server starts");
    let target = ServerUnderTest::external(&format!("http://{}", server.http_addr)).unwrap();

    // A healthy lesson passes, and every figure was measured.
    let outcome = run(&target, lesson(Duration::from_secs(8), Faults::default())).await;
    let r = &outcome.report;
    assert_eq!((r.classes, r.classrooms), (1, 3));
    assert_eq!((r.joins_ok, r.joins_failed), (3, 0));
    // The master receives both remotes (2 tracks each); each remote receives the master, and
    // the remote on stage (2 tracks): 4 + 4 + 2 promised (receiver, track) pairs.
    assert_eq!(
        (r.tracks.promised, r.tracks.ok),
        (10, 10),
        "{:?}",
        r.tracks.problems
    );
    // Two emulated 20 ms links between sender and receiver: most frames take more than 40 ms.
    // (Not every one: the links' jitter is ±5 ms, so a few frames may be faster.)
    let media = r.media_latency_ms.expect("media latency measured");
    assert!(media.p50 > 35.0, "{media:?}");
    let frame = r.frame_latency_ms.expect("frame latency measured");
    assert!(
        frame.p50 >= media.p50,
        "frame {frame:?} vs first packet {media:?}"
    );
    // The server's own delay comes from its histogram, far below the links'.
    let server_delay = r.sfu_added_latency_ms.expect("server delay measured");
    assert!(server_delay.count > 100, "{server_delay:?}");
    assert!(
        server_delay.p50.is_some_and(|v| v < 20.0),
        "{server_delay:?}"
    );
    let probe = r.probe_one_way_latency_ms.expect("probe measured");
    let sent = r.packets.audio_sent + r.packets.video_sent;
    assert!(sent > 1000, "{:?}", r.packets);
    assert!(r.time_to_first_frame_ms.is_some());
    assert!(!outcome.board.is_empty(), "board ops were measured");
    assert_eq!(outcome.vote.len(), 2, "both remote classrooms voted");
    assert!(r.generator_lateness_ms.is_some());
    // A run whose generator kept its schedule passes, and its probe class on a direct path
    // is far below the emulated links. On a host too busy to send the load on time the tool
    // says so (not trustworthy) instead of blaming the server; then only what holds whatever
    // the host's load is asserted above.
    if r.trustworthy {
        assert!(
            r.slo.passed,
            "a trustworthy run failed: {:?}",
            r.slo.failures
        );
        assert!(probe.p50 < 20.0, "{probe:?}");
    }
    // Not spawned: CPU and memory come from the server's /metrics (here, this test's process).
    assert!(
        r.server.cpu_pct_avg.is_some() && r.server.rss_mb_peak.is_some_and(|m| m > 1.0),
        "{:?}",
        r.server
    );
    assert!(r.host.cores >= 1 && r.host.loadgen_cpu_pct_avg.is_some());
    // The JSON carries what a merge needs (integers: exact), and reads back into the same
    // figures.
    let json = r.to_json().unwrap();
    let mut back: tandem_loadtest::report::Report = serde_json::from_str(&json).unwrap();
    assert_eq!(
        (
            &back.histograms,
            &back.packets,
            &back.tracks,
            &back.server_forward_delay
        ),
        (
            &r.histograms,
            &r.packets,
            &r.tracks,
            &r.server_forward_delay
        )
    );
    back.derive();
    assert_eq!(
        (back.frame_latency_ms, back.sfu_added_latency_ms, &back.slo),
        (r.frame_latency_ms, r.sfu_added_latency_ms, &r.slo)
    );

    // A remote classroom's camera never reaches the server (its link drops every packet of
    // it) while the policy promises it to the master: the track is named, and every packet its
    // sender sent counts as lost.
    let faults = Faults {
        dropped_camera: Some((0, 1)),
        ..Faults::default()
    };
    let outcome = run(&target, lesson(Duration::from_secs(4), faults)).await;
    let r = &outcome.report;
    assert!(
        failed_with(
            &outcome,
            "missing: Load class 1 remote 2 camera at Load class 1 master"
        ),
        "{:?}",
        r.slo.failures
    );
    assert!(
        failed_with(&outcome, "packet_loss_pct"),
        "{:?}",
        r.slo.failures
    );
    assert!(
        r.packet_loss_by_kind_pct.video.is_some_and(|v| v > 3.0),
        "{:?} {:?}",
        r.packet_loss_by_kind_pct,
        r.packets
    );

    // The probe class cannot join: "added by" figures of the probe are not measured: a failure.
    let faults = Faults {
        probe_bad_token: true,
        ..Faults::default()
    };
    let outcome = run(&target, lesson(Duration::from_secs(4), faults)).await;
    assert!(
        failed_with(&outcome, "probe class not measured"),
        "{:?}",
        outcome.report.slo.failures
    );

    // The poll never opens (the server refuses it): no vote is measured, which fails.
    let faults = Faults {
        refused_polls: true,
        ..Faults::default()
    };
    let outcome = run(&target, lesson(Duration::from_secs(4), faults)).await;
    assert!(
        failed_with(&outcome, "votes: 0 of 2 measured"),
        "{:?}",
        outcome.report.slo.failures
    );
}
