//! The tool end to end: a real server in this process, one class of a master and two remote
//! classrooms over emulated 1000 km links for a few seconds, and the report it gives.

use std::time::Duration;

use tandem_loadtest::link::LinkProfile;
use tandem_loadtest::runner::{self, RunConfig};
use tandem_loadtest::server::ServerUnderTest;
use tandem_loadtest::slo::SloThresholds;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_class_over_1000km_passes_and_reports_what_it_measured() {
    let dir = tempfile::tempdir().unwrap();
    let server = tandem_signaling::start(tandem_signaling::Config::for_tests(
        dir.path().to_path_buf(),
    ))
    .await
    .expect("server starts");
    let target = ServerUnderTest::external(&format!("http://{}", server.http_addr)).unwrap();
    let cfg = RunConfig {
        classes: 1,
        remotes: 2,
        duration: Duration::from_secs(8),
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
        tcp: false,
    };
    // Default objectives, but one: audio is not retransmitted (Opus FEC is its repair, which a
    // sequence-number count does not credit), so with this light camera, where audio is most
    // of the packets, loss after retransmission is about the links' 2 × 1 % on audio.
    let thresholds = SloThresholds {
        packet_loss_pct: 3.0,
        ..SloThresholds::default()
    };
    let outcome = runner::run(&cfg, &target, &thresholds).await.expect("run");
    let r = &outcome.report;
    println!("{}{}", r.summary_table(), outcome.extra_lines());

    assert_eq!((r.classes, r.classrooms), (1, 3));
    assert_eq!((r.joins_ok, r.joins_failed), (3, 0));
    // Two emulated 20 ms links between sender and receiver: above 20 ms, every frame.
    assert!(!outcome.media.is_empty());
    assert!(
        outcome.media.samples().iter().all(|s| s.value > 20.0),
        "a frame faster than one emulated link: {:?}",
        r.media_latency_ms
    );
    assert!(r.media_latency_ms.p50 > 35.0, "{:?}", r.media_latency_ms);
    // The probe class is on a direct path: far below the emulated links.
    assert!(!outcome.sfu_added.is_empty());
    assert!(
        r.sfu_added_latency_ms.p50 < 20.0,
        "{:?}",
        r.sfu_added_latency_ms
    );
    assert!(r.time_to_first_frame_ms.p50 > 0.0);
    assert!(!outcome.board.is_empty(), "board ops were measured");
    assert_eq!(outcome.vote.len(), 2, "both remote classrooms voted");
    assert!(r.slo.passed, "{:?}", r.slo.failures);
    // Not spawned: CPU and memory come from the server's /metrics (here, this test's process).
    assert!(
        r.server.cpu_pct_avg.is_some() && r.server.rss_mb_peak.is_some_and(|m| m > 1.0),
        "{:?}",
        r.server
    );
    assert!(r.host.cores >= 1 && r.host.loadgen_cpu_pct_avg.is_some());

    // The JSON has exactly the documented keys.
    let v: serde_json::Value = serde_json::from_str(&r.to_json().unwrap()).unwrap();
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "board_op_latency_ms",
            "classes",
            "classrooms",
            "freezes",
            "host",
            "joins_failed",
            "joins_ok",
            "media_latency_ms",
            "packet_loss_by_kind_pct",
            "packet_loss_pct",
            "server",
            "sfu_added_latency_ms",
            "slo",
            "time_to_first_frame_ms",
            "vote_latency_ms"
        ]
    );
}
