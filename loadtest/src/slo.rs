//! Service-level objectives: what "the server holds and the lesson still feels live" means in
//! numbers. Every threshold has a default and a `--slo-…` flag (see `cli.rs`); a run that misses
//! any of them exits non-zero, and `--find-capacity` stops at the first class count that does.

use serde::{Deserialize, Serialize};

use crate::report::{Report, hist};
use crate::stats::Summary;

/// Default: no classroom may fail to join.
pub const DEFAULT_MAX_JOINS_FAILED: u32 = 0;
/// Default p95 one-way media latency, ms: ITU-T G.114 keeps conversation natural under 150 ms.
pub const DEFAULT_MEDIA_LATENCY_P95_MS: f64 = 150.0;
/// Default p95 latency the server itself adds, ms (an SFU forwards; it should not buffer).
pub const DEFAULT_SFU_ADDED_LATENCY_P95_MS: f64 = 10.0;
/// Default p95 from opening the invite link to the first decodable frame, ms.
pub const DEFAULT_TIME_TO_FIRST_FRAME_P95_MS: f64 = 3000.0;
/// Default media packet loss left after retransmission, percent.
pub const DEFAULT_PACKET_LOSS_PCT: f64 = 1.0;
/// Default freezes (gaps over 300 ms) per classroom per minute: at most one every two minutes.
pub const DEFAULT_FREEZES_PER_CLASSROOM_MINUTE: f64 = 0.5;
/// Default p95 from a board stroke to it showing in the other classrooms, ms.
pub const DEFAULT_BOARD_OP_LATENCY_P95_MS: f64 = 100.0;
/// Default p95 from a vote to it being counted, ms.
pub const DEFAULT_VOTE_LATENCY_P95_MS: f64 = 200.0;
/// Default largest p99 lateness of the media generators against their schedule, ms: above it
/// the run is not trustworthy (the host could not send the load it was asked to).
pub const DEFAULT_GENERATOR_LATE_P99_MS: f64 = 5.0;
/// Default largest growth of the server's RSS over a soak, MiB per hour.
pub const DEFAULT_SOAK_RSS_MB_PER_HOUR: f64 = 16.0;
/// Default largest growth of the server's CPU use over a soak, percentage points per hour.
pub const DEFAULT_SOAK_CPU_PCT_PER_HOUR: f64 = 10.0;
/// At most this many missing or dead tracks are listed one by one among the failures.
const TRACK_FAILURES_LISTED: usize = 10;

/// The objectives a run must meet. Server caps are off unless set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloThresholds {
    pub max_joins_failed: u32,
    /// p95 one-way latency of complete frames (and of first packets), ms.
    pub media_latency_p95_ms: f64,
    pub sfu_added_latency_p95_ms: f64,
    pub time_to_first_frame_p95_ms: f64,
    pub packet_loss_pct: f64,
    pub freezes_per_classroom_minute: f64,
    pub board_op_latency_p95_ms: f64,
    pub vote_latency_p95_ms: f64,
    /// Average server CPU, percent of one core.
    pub server_cpu_pct_avg: Option<f64>,
    /// Peak server resident memory, MiB.
    pub server_rss_mb_peak: Option<f64>,
    /// The largest p99 generator lateness for a trustworthy run, ms.
    pub generator_late_p99_ms: f64,
    /// With `--soak`: the largest RSS growth allowed, MiB per hour.
    pub soak_rss_mb_per_hour: f64,
    /// With `--soak`: the largest CPU growth allowed, percentage points of one core per hour.
    pub soak_cpu_pct_per_hour: f64,
}

impl Default for SloThresholds {
    fn default() -> Self {
        Self {
            max_joins_failed: DEFAULT_MAX_JOINS_FAILED,
            media_latency_p95_ms: DEFAULT_MEDIA_LATENCY_P95_MS,
            sfu_added_latency_p95_ms: DEFAULT_SFU_ADDED_LATENCY_P95_MS,
            time_to_first_frame_p95_ms: DEFAULT_TIME_TO_FIRST_FRAME_P95_MS,
            packet_loss_pct: DEFAULT_PACKET_LOSS_PCT,
            freezes_per_classroom_minute: DEFAULT_FREEZES_PER_CLASSROOM_MINUTE,
            board_op_latency_p95_ms: DEFAULT_BOARD_OP_LATENCY_P95_MS,
            vote_latency_p95_ms: DEFAULT_VOTE_LATENCY_P95_MS,
            server_cpu_pct_avg: None,
            server_rss_mb_peak: None,
            generator_late_p99_ms: DEFAULT_GENERATOR_LATE_P99_MS,
            soak_rss_mb_per_hour: DEFAULT_SOAK_RSS_MB_PER_HOUR,
            soak_cpu_pct_per_hour: DEFAULT_SOAK_CPU_PCT_PER_HOUR,
        }
    }
}

/// The objectives `report` misses, one line each (empty: all met). A threshold is met when the
/// measured value is at or below it; a figure the run should have measured and did not is a
/// miss ("not measured"), never a pass.
///
/// Freezes are rated per classroom-minute over `report.duration_secs`; when that is unknown (0)
/// the run counts as one minute, the strictest reading. Server caps are checked only when both
/// the cap and the measurement are present.
pub fn evaluate(report: &Report, t: &SloThresholds) -> Vec<String> {
    let mut failures = Vec::new();
    if report.joins_failed > t.max_joins_failed {
        failures.push(format!(
            "joins_failed {} > {} (of {} classrooms)",
            report.joins_failed, t.max_joins_failed, report.classrooms
        ));
    }
    let mut p95 = |name: &str, s: Option<Summary>, limit: f64, required: bool| match s {
        Some(s) if s.p95 > limit => {
            failures.push(format!("{name} p95 {:.1} ms > {limit} ms", s.p95));
        }
        Some(_) => {}
        None if required => failures.push(format!("{name} not measured (no samples)")),
        None => {}
    };
    p95(
        "time_to_first_frame_ms",
        report.time_to_first_frame_ms,
        t.time_to_first_frame_p95_ms,
        true,
    );
    p95(
        "media_latency_ms",
        report.media_latency_ms,
        t.media_latency_p95_ms,
        true,
    );
    p95(
        "frame_latency_ms",
        report.frame_latency_ms,
        t.media_latency_p95_ms,
        true,
    );
    p95(
        "board_op_latency_ms",
        report.board_op_latency_ms,
        t.board_op_latency_p95_ms,
        report.expected.board_ops,
    );
    p95(
        "vote_latency_ms",
        report.vote_latency_ms,
        t.vote_latency_p95_ms,
        false,
    );
    let votes: u64 = report
        .histograms
        .get(hist::VOTE)
        .map_or(0, |h| h.0.iter().map(|[_, c]| c).sum());
    if votes < report.expected.votes {
        failures.push(format!(
            "votes: {votes} of {} measured (a poll did not open, or classrooms could not vote)",
            report.expected.votes
        ));
    }
    match &report.sfu_added_latency_ms {
        None => failures.push(
            "sfu_added_latency_ms not measured (the server exported no \
             tandem_forward_delay_seconds, or timed nothing in the window)"
                .to_owned(),
        ),
        Some(s) => match s.p95 {
            None => failures.push(format!(
                "sfu_added_latency_ms p95 beyond the server's top bucket > {} ms",
                t.sfu_added_latency_p95_ms
            )),
            Some(v) if v > t.sfu_added_latency_p95_ms => failures.push(format!(
                "sfu_added_latency_ms p95 ≤ {v} ms (bucket) > {} ms",
                t.sfu_added_latency_p95_ms
            )),
            Some(_) => {}
        },
    }
    if report.expected.probe && report.probe_one_way_latency_ms.is_none() {
        failures
            .push("probe class not measured (it did not join, or received no frame)".to_owned());
    }
    match report.generator_lateness_ms {
        None => failures.push("generator lateness not measured (nothing was sent)".to_owned()),
        Some(l) if l.p99 > t.generator_late_p99_ms => failures.push(format!(
            "generator late: p99 {:.1} ms > {} ms behind its schedule: this run is not \
             trustworthy",
            l.p99, t.generator_late_p99_ms
        )),
        Some(_) => {}
    }
    match report.packet_loss_pct {
        None => failures.push("packet_loss_pct not measured (no packets sent)".to_owned()),
        Some(v) if v > t.packet_loss_pct => failures.push(format!(
            "packet_loss_pct {v:.2} % > {} % (of {} sent)",
            t.packet_loss_pct,
            report.packets.audio_sent + report.packets.video_sent
        )),
        Some(_) => {}
    }
    let minutes = if report.duration_secs > 0.0 {
        report.duration_secs / 60.0
    } else {
        1.0
    };
    let classroom_minutes = report.classrooms.max(1) as f64 * minutes;
    let freeze_rate = report.freezes as f64 / classroom_minutes;
    if freeze_rate > t.freezes_per_classroom_minute {
        failures.push(format!(
            "freezes {} = {freeze_rate:.2} per classroom-minute > {} ({:.1} s frozen)",
            report.freezes, t.freezes_per_classroom_minute, report.freeze_secs
        ));
    }
    if report.tracks.promised == 0 {
        failures.push("promised tracks not measured (no pair checked)".to_owned());
    }
    for problem in report.tracks.problems.iter().take(TRACK_FAILURES_LISTED) {
        failures.push(format!("track {problem}"));
    }
    if report.tracks.problems.len() > TRACK_FAILURES_LISTED {
        failures.push(format!(
            "track problems: {} more",
            report.tracks.problems.len() - TRACK_FAILURES_LISTED
        ));
    }
    if let (Some(limit), Some(v)) = (t.server_cpu_pct_avg, report.server.cpu_pct_avg)
        && v > limit
    {
        failures.push(format!("server cpu_pct_avg {v:.1} % > {limit} %"));
    }
    if let (Some(limit), Some(v)) = (t.server_rss_mb_peak, report.server.rss_mb_peak)
        && v > limit
    {
        failures.push(format!("server rss_mb_peak {v:.1} MiB > {limit} MiB"));
    }
    if report.expected.soak {
        match &report.soak {
            None => failures.push(
                "soak not measured (fewer than two samples of the server's memory)".to_owned(),
            ),
            Some(s) => {
                if s.rss_mb_per_hour > t.soak_rss_mb_per_hour {
                    failures.push(format!(
                        "soak: server RSS grows {:.1} MiB/h > {} MiB/h (second half of the window)",
                        s.rss_mb_per_hour, t.soak_rss_mb_per_hour
                    ));
                }
                if s.cpu_pct_per_hour > t.soak_cpu_pct_per_hour {
                    failures.push(format!(
                        "soak: server CPU grows {:.1} points/h > {} points/h (second half of the window)",
                        s.cpu_pct_per_hour, t.soak_cpu_pct_per_hour
                    ));
                }
            }
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{BucketSummary, Expected, PacketCounts, ServerUsage, Soak, TrackCheck};

    fn p95(v: f64) -> Option<Summary> {
        Some(Summary {
            p50: v / 2.0,
            p95: v,
            p99: v,
            max: v,
        })
    }

    fn server(p95: Option<f64>) -> Option<BucketSummary> {
        Some(BucketSummary {
            count: 1000,
            p50: Some(0.1),
            p95,
            p99: p95,
            max: None,
        })
    }

    /// A lesson that felt live: everything just under the defaults.
    fn healthy() -> Report {
        Report {
            classes: 10,
            classrooms: 30,
            joins_ok: 30,
            joins_failed: 0,
            time_to_first_frame_ms: p95(3000.0),
            media_latency_ms: p95(140.0),
            frame_latency_ms: p95(150.0),
            sfu_added_latency_ms: server(Some(10.0)),
            probe_one_way_latency_ms: p95(3.0),
            board_op_latency_ms: p95(100.0),
            vote_latency_ms: p95(200.0),
            generator_lateness_ms: p95(5.0),
            trustworthy: true,
            packet_loss_pct: Some(1.0),
            packets: PacketCounts {
                audio_sent: 100,
                audio_received: 99,
                video_sent: 100,
                video_received: 99,
            },
            // 30 classrooms × 2 min × 0.5 = 30 freezes allowed.
            freezes: 30,
            tracks: TrackCheck {
                promised: 120,
                ok: 120,
                ..TrackCheck::default()
            },
            server: ServerUsage {
                cpu_pct_avg: Some(90.0),
                rss_mb_peak: Some(300.0),
            },
            duration_secs: 120.0,
            expected: Expected {
                votes: 0,
                board_ops: true,
                probe: true,
                soak: true,
            },
            soak: Some(Soak {
                secs: 600.0,
                rss_mb_first: 30.0,
                rss_mb_last: 32.0,
                rss_mb_per_hour: DEFAULT_SOAK_RSS_MB_PER_HOUR,
                cpu_pct_per_hour: DEFAULT_SOAK_CPU_PCT_PER_HOUR,
                ..Soak::default()
            }),
            ..Report::default()
        }
    }

    #[test]
    fn values_at_the_thresholds_pass() {
        assert_eq!(
            evaluate(&healthy(), &SloThresholds::default()),
            Vec::<String>::new()
        );
    }

    #[test]
    fn each_missed_objective_is_named() {
        let t = SloThresholds {
            server_cpu_pct_avg: Some(80.0),
            server_rss_mb_peak: Some(256.0),
            ..SloThresholds::default()
        };
        let r = Report {
            joins_failed: 2,
            time_to_first_frame_ms: p95(3500.0),
            media_latency_ms: p95(182.3),
            frame_latency_ms: p95(190.0),
            sfu_added_latency_ms: server(Some(20.0)),
            board_op_latency_ms: p95(101.0),
            vote_latency_ms: p95(250.0),
            generator_lateness_ms: p95(6.0),
            packet_loss_pct: Some(1.5),
            freezes: 31,
            tracks: TrackCheck {
                promised: 120,
                ok: 119,
                not_checked: 0,
                problems: vec![
                    "missing: Load class 1 remote 1 camera at Load class 1 master".into(),
                ],
            },
            soak: Some(Soak {
                rss_mb_per_hour: 100.0,
                cpu_pct_per_hour: 50.0,
                ..Soak::default()
            }),
            ..healthy()
        };
        let f = evaluate(&r, &t);
        assert_eq!(f.len(), 15, "{f:#?}");
        for name in [
            "joins_failed 2 > 0",
            "time_to_first_frame_ms p95 3500.0 ms > 3000 ms",
            "media_latency_ms p95 182.3 ms > 150 ms",
            "frame_latency_ms p95 190.0 ms > 150 ms",
            "sfu_added_latency_ms p95 ≤ 20 ms (bucket) > 10 ms",
            "board_op_latency_ms",
            "vote_latency_ms",
            "generator late: p99 6.0 ms",
            "packet_loss_pct 1.50 % > 1 %",
            "freezes 31",
            "track missing: Load class 1 remote 1 camera at Load class 1 master",
            "server cpu_pct_avg 90.0 % > 80 %",
            "server rss_mb_peak 300.0 MiB > 256 MiB",
            "soak: server RSS grows 100.0 MiB/h",
            "soak: server CPU grows 50.0 points/h",
        ] {
            assert!(f.iter().any(|l| l.starts_with(name)), "{name} in {f:#?}");
        }
    }

    #[test]
    fn a_figure_not_measured_fails_never_passes() {
        let t = SloThresholds::default();
        let cases: [(&str, Report); 8] = [
            (
                "media_latency_ms not measured",
                Report {
                    media_latency_ms: None,
                    ..healthy()
                },
            ),
            (
                "sfu_added_latency_ms not measured",
                Report {
                    sfu_added_latency_ms: None,
                    ..healthy()
                },
            ),
            (
                "sfu_added_latency_ms p95 beyond",
                Report {
                    sfu_added_latency_ms: server(None),
                    ..healthy()
                },
            ),
            (
                "probe class not measured",
                Report {
                    probe_one_way_latency_ms: None,
                    ..healthy()
                },
            ),
            (
                "votes: 3 of 4 measured",
                Report {
                    expected: Expected {
                        votes: 4,
                        ..healthy().expected
                    },
                    histograms: [(
                        hist::VOTE.to_owned(),
                        crate::stats::HistogramJson(vec![[40_000, 3]]),
                    )]
                    .into(),
                    ..healthy()
                },
            ),
            (
                "packet_loss_pct not measured",
                Report {
                    packet_loss_pct: None,
                    ..healthy()
                },
            ),
            (
                "promised tracks not measured",
                Report {
                    tracks: TrackCheck::default(),
                    ..healthy()
                },
            ),
            (
                "soak not measured",
                Report {
                    soak: None,
                    ..healthy()
                },
            ),
        ];
        for (want, r) in cases {
            let f = evaluate(&r, &t);
            assert!(f.len() == 1 && f[0].starts_with(want), "{want}: {f:#?}");
        }
        // Figures the script was not set to produce are not required.
        let r = Report {
            board_op_latency_ms: None,
            probe_one_way_latency_ms: None,
            soak: None,
            expected: Expected::default(),
            ..healthy()
        };
        assert!(evaluate(&r, &t).is_empty());
    }

    #[test]
    fn overrides_loosen_and_tighten() {
        let loose = SloThresholds {
            max_joins_failed: 3,
            ..SloThresholds::default()
        };
        let r = Report {
            joins_failed: 3,
            ..healthy()
        };
        assert!(evaluate(&r, &loose).is_empty());
        let tight = SloThresholds {
            media_latency_p95_ms: 100.0,
            ..SloThresholds::default()
        };
        assert_eq!(
            evaluate(&healthy(), &tight).len(),
            2,
            "first packet and frame"
        );
    }

    #[test]
    fn server_caps_apply_only_when_measured() {
        let t = SloThresholds {
            server_cpu_pct_avg: Some(1.0),
            server_rss_mb_peak: Some(1.0),
            ..SloThresholds::default()
        };
        let r = Report {
            server: ServerUsage::default(),
            ..healthy()
        };
        assert!(evaluate(&r, &t).is_empty());
    }

    #[test]
    fn unknown_duration_counts_as_one_minute() {
        let r = Report {
            duration_secs: 0.0,
            ..healthy()
        };
        // 30 freezes over 30 classroom-minutes = 1 > 0.5.
        assert_eq!(evaluate(&r, &SloThresholds::default()).len(), 1);
    }
}
