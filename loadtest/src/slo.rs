//! Service-level objectives: what "the server holds and the lesson still feels live" means in
//! numbers. Every threshold has a default and a `--slo-…` flag (see `cli.rs`); a run that misses
//! any of them exits non-zero, and `--find-capacity` stops at the first class count that does.

use serde::{Deserialize, Serialize};

use crate::report::Report;

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

/// The objectives a run must meet. Server caps are off unless set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloThresholds {
    pub max_joins_failed: u32,
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
        }
    }
}

/// The objectives `report` misses, one line each (empty: all met). A threshold is met when the
/// measured value is at or below it.
///
/// Freezes are rated per classroom-minute over `report.duration_secs`; when that is unknown (0,
/// e.g. a report read back from JSON) the run counts as one minute, the strictest reading.
/// Server caps are checked only when both the cap and the measurement are present.
pub fn evaluate(report: &Report, t: &SloThresholds) -> Vec<String> {
    let mut failures = Vec::new();
    if report.joins_failed > t.max_joins_failed {
        failures.push(format!(
            "joins_failed {} > {} (of {} classrooms)",
            report.joins_failed, t.max_joins_failed, report.classrooms
        ));
    }
    let p95 = [
        (
            "time_to_first_frame_ms",
            report.time_to_first_frame_ms.p95,
            t.time_to_first_frame_p95_ms,
        ),
        (
            "media_latency_ms",
            report.media_latency_ms.p95,
            t.media_latency_p95_ms,
        ),
        (
            "sfu_added_latency_ms",
            report.sfu_added_latency_ms.p95,
            t.sfu_added_latency_p95_ms,
        ),
        (
            "board_op_latency_ms",
            report.board_op_latency_ms.p95,
            t.board_op_latency_p95_ms,
        ),
        (
            "vote_latency_ms",
            report.vote_latency_ms.p95,
            t.vote_latency_p95_ms,
        ),
    ];
    for (name, value, limit) in p95 {
        if value > limit {
            failures.push(format!("{name} p95 {value:.1} ms > {limit} ms"));
        }
    }
    if report.packet_loss_pct > t.packet_loss_pct {
        failures.push(format!(
            "packet_loss_pct {:.2} % > {} %",
            report.packet_loss_pct, t.packet_loss_pct
        ));
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
            "freezes {} = {freeze_rate:.2} per classroom-minute > {}",
            report.freezes, t.freezes_per_classroom_minute
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
    failures
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::ServerUsage;
    use crate::stats::Summary;

    fn p95(v: f64) -> Summary {
        Summary {
            p50: v / 2.0,
            p95: v,
            p99: v,
            max: v,
        }
    }

    /// A lesson that felt live: everything just under the defaults.
    fn healthy() -> Report {
        Report {
            classes: 10,
            classrooms: 30,
            joins_ok: 30,
            joins_failed: 0,
            time_to_first_frame_ms: p95(3000.0),
            media_latency_ms: p95(150.0),
            sfu_added_latency_ms: p95(10.0),
            board_op_latency_ms: p95(100.0),
            vote_latency_ms: p95(200.0),
            packet_loss_pct: 1.0,
            // 30 classrooms × 2 min × 0.5 = 30 freezes allowed.
            freezes: 30,
            server: ServerUsage {
                cpu_pct_avg: Some(90.0),
                rss_mb_peak: Some(300.0),
            },
            duration_secs: 120.0,
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
            sfu_added_latency_ms: p95(12.0),
            board_op_latency_ms: p95(101.0),
            vote_latency_ms: p95(250.0),
            packet_loss_pct: 1.5,
            freezes: 31,
            ..healthy()
        };
        let f = evaluate(&r, &t);
        assert_eq!(f.len(), 10, "{f:#?}");
        for name in [
            "joins_failed 2 > 0",
            "time_to_first_frame_ms p95 3500.0 ms > 3000 ms",
            "media_latency_ms p95 182.3 ms > 150 ms",
            "sfu_added_latency_ms",
            "board_op_latency_ms",
            "vote_latency_ms",
            "packet_loss_pct 1.50 % > 1 %",
            "freezes 31",
            "server cpu_pct_avg 90.0 % > 80 %",
            "server rss_mb_peak 300.0 MiB > 256 MiB",
        ] {
            assert!(f.iter().any(|l| l.starts_with(name)), "{name} in {f:#?}");
        }
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
        assert_eq!(evaluate(&healthy(), &tight).len(), 1);
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
