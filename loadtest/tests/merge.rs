//! `tandem-loadtest merge`: two shards' JSON reports become one, from their histograms.

use std::process::Command;
use std::time::Duration;

use tandem_loadtest::report::{
    Expected, ForwardDelayWindow, PacketCounts, Report, ScrapedBuckets, TrackCheck, hist,
};
use tandem_loadtest::slo::SloThresholds;
use tandem_loadtest::stats::{HistogramJson, new_histogram, record_us};

fn shard(name: &str, media_ms: &[f64], end_ms: u64, end_count: u64) -> Report {
    let mut histograms = std::collections::BTreeMap::new();
    let h = |values: &[f64]| {
        let mut h = new_histogram();
        for v in values {
            record_us(&mut h, Duration::from_secs_f64(v / 1e3));
        }
        HistogramJson::of(&h)
    };
    histograms.insert(hist::MEDIA_FIRST_PACKET.to_owned(), h(media_ms));
    histograms.insert(hist::MEDIA_FRAME.to_owned(), h(media_ms));
    histograms.insert(hist::TIME_TO_FIRST_FRAME.to_owned(), h(&[900.0]));
    histograms.insert(hist::GENERATOR_LATENESS.to_owned(), h(&[0.2]));
    let buckets = |unix_ms, n| ScrapedBuckets {
        unix_ms,
        buckets: vec![("0.001".to_owned(), n), ("+Inf".to_owned(), n)],
    };
    let mut r = Report {
        classes: 1,
        classrooms: 3,
        shard: Some(name.to_owned()),
        joins_ok: 3,
        packets: PacketCounts {
            audio_sent: 1000,
            audio_received: 995,
            video_sent: 2000,
            video_received: 2000,
        },
        tracks: TrackCheck {
            promised: 10,
            ok: 10,
            ..TrackCheck::default()
        },
        duration_secs: 60.0,
        expected: Expected::default(),
        histograms,
        server_forward_delay: Some(ForwardDelayWindow {
            start: buckets(1_000, 0),
            end: buckets(end_ms, end_count),
        }),
        thresholds: SloThresholds::default(),
        ..Report::default()
    };
    r.derive();
    r
}

#[test]
fn merge_adds_the_shards_up_and_writes_json_and_html() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.json");
    let b = dir.path().join("b.json");
    shard("1/2", &[40.0, 41.0, 42.0], 61_000, 500)
        .write_json(&a)
        .unwrap();
    shard("2/2", &[140.0, 141.0, 142.0, 143.0], 62_000, 900)
        .write_json(&b)
        .unwrap();
    let out = dir.path().join("all.json");
    let html = dir.path().join("all.html");
    let status = Command::new(env!("CARGO_BIN_EXE_tandem-loadtest"))
        .args(["merge".as_ref(), a.as_os_str(), b.as_os_str()])
        .arg("--report")
        .arg(&out)
        .arg("--html")
        .arg(&html)
        .status()
        .unwrap();
    let merged: Report = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(merged.shard.as_deref(), Some("merged 2"));
    assert_eq!((merged.classes, merged.classrooms), (2, 6));
    // Seven frames 40, 41, 42, 140 … 143 ms: the median is the 4th (140 ms), not the average
    // of the shards' medians (91 ms); p95 is the 7th.
    let media = merged.media_latency_ms.unwrap();
    assert!((media.p50 - 140.0).abs() < 0.2, "{media:?}");
    assert!((media.p95 - 143.0).abs() < 0.2, "{media:?}");
    // The server's window ends at the latest end scrape (both shards scrape one server).
    assert_eq!(merged.sfu_added_latency_ms.unwrap().count, 900);
    assert_eq!(merged.packets.audio_sent, 2000);
    // 143 ms is within the 150 ms objective: the merge passes, and says so by its exit code.
    assert!(merged.slo.passed, "{:?}", merged.slo.failures);
    assert_eq!(status.code(), Some(0));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("2 shards merged") && page.contains("chart-latency-cdf"));
    assert!(
        !page.contains("chart-latency-time"),
        "a merge has no time axis"
    );

    // A file that is not a report is refused with the error exit code.
    std::fs::write(&b, "{}").unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_tandem-loadtest"))
        .args(["merge".as_ref(), a.as_os_str(), b.as_os_str()])
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2));
}
