//! The machine-readable result of a run (`--report FILE.json`) and the summary table printed at
//! its end.
//!
//! The JSON has exactly these keys: `classes`, `classrooms`, `joins_ok`, `joins_failed`,
//! `time_to_first_frame_ms`, `media_latency_ms`, `sfu_added_latency_ms`, `board_op_latency_ms`,
//! `vote_latency_ms` (each `{p50,p95,p99,max}`), `packet_loss_pct`, `packet_loss_by_kind_pct`
//! (`audio`, `video`), `freezes`, `server`
//! (`cpu_pct_avg`, `rss_mb_peak`; `null` when not measured), `host` (`cores`,
//! `loadgen_cpu_pct_avg`, `saturated`) and `slo` (`passed`, `failures`).

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::slo::{self, SloThresholds};
use crate::stats::Summary;

/// Server resource use over the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerUsage {
    /// Average CPU of the server process, percent of one core (can exceed 100 on several cores).
    pub cpu_pct_avg: Option<f64>,
    /// Peak resident memory of the server process, MiB.
    pub rss_mb_peak: Option<f64>,
}

/// Loss after retransmission of audio and of video, percent of each kind's packets. Audio is not
/// retransmitted (Opus in-band FEC is its repair, which a sequence count does not credit), so its
/// loss is about the links' own; video's is what NACK could not repair.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LossByKind {
    pub audio: f64,
    pub video: f64,
}

impl LossByKind {
    /// From `(expected, lost)` packet counts of audio and of video.
    pub fn from_counts(audio: (u64, u64), video: (u64, u64)) -> Self {
        let pct = |(expected, lost): (u64, u64)| {
            crate::stats::loss_pct(expected, expected.saturating_sub(lost))
        };
        Self {
            audio: pct(audio),
            video: pct(video),
        }
    }
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

/// The result of one load-test run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Classes simulated.
    pub classes: u32,
    /// Classrooms simulated, master and remote, over all classes.
    pub classrooms: u32,
    pub joins_ok: u32,
    pub joins_failed: u32,
    /// From opening the invite link to the first decodable (key)frame, ms.
    pub time_to_first_frame_ms: Summary,
    /// One-way media latency, sender to receiver through the server, ms.
    pub media_latency_ms: Summary,
    /// The part of the one-way latency the server adds (total minus the emulated links), ms.
    pub sfu_added_latency_ms: Summary,
    /// From a board stroke sent to it shown in the other classrooms, ms.
    pub board_op_latency_ms: Summary,
    /// From a vote cast to it counted in the teacher's tally, ms.
    pub vote_latency_ms: Summary,
    /// Media packets lost after retransmission, percent of those sent.
    pub packet_loss_pct: f64,
    pub packet_loss_by_kind_pct: LossByKind,
    /// Video gaps longer than [`crate::stats::FREEZE_GAP`], over all receivers.
    pub freezes: u64,
    pub server: ServerUsage,
    pub host: HostUsage,
    pub slo: SloOutcome,
    /// Length of the measured window, seconds. Not part of the JSON (its key set is fixed); the
    /// runner sets it so that [`slo::evaluate`] can rate freezes per classroom-minute.
    #[serde(skip)]
    pub duration_secs: f64,
}

impl Report {
    /// Evaluates the objectives and stores the outcome in `self.slo`; returns whether they held.
    pub fn apply_slo(&mut self, thresholds: &SloThresholds) -> bool {
        let failures = slo::evaluate(self, thresholds);
        self.slo = SloOutcome {
            passed: failures.is_empty(),
            failures,
        };
        self.slo.passed
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

    /// The latency figures with their names, in the order the summaries show them.
    pub fn latency_rows(&self) -> [(&'static str, &Summary); 5] {
        [
            ("time to first frame", &self.time_to_first_frame_ms),
            ("media one-way", &self.media_latency_ms),
            ("added by server", &self.sfu_added_latency_ms),
            ("board op", &self.board_op_latency_ms),
            ("vote", &self.vote_latency_ms),
        ]
    }

    /// The table printed at the end of a run.
    pub fn summary_table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "classes {}  classrooms {}  joins ok {}  failed {}",
            self.classes, self.classrooms, self.joins_ok, self.joins_failed
        );
        let _ = writeln!(
            t,
            "{:<26} {:>9} {:>9} {:>9} {:>9}",
            "latency (ms)", "p50", "p95", "p99", "max"
        );
        for (name, s) in self.latency_rows() {
            let _ = writeln!(
                t,
                "{name:<26} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                s.p50, s.p95, s.p99, s.max
            );
        }
        let _ = writeln!(
            t,
            "packet loss {:.2} % (audio {:.2} %, video {:.2} %)  freezes {} ({:.2} per classroom-minute)",
            self.packet_loss_pct,
            self.packet_loss_by_kind_pct.audio,
            self.packet_loss_by_kind_pct.video,
            self.freezes,
            self.freezes_per_classroom_minute()
        );
        let _ = writeln!(
            t,
            "server cpu avg {}  rss peak {}",
            optional(self.server.cpu_pct_avg, "%"),
            optional(self.server.rss_mb_peak, "MiB")
        );
        let _ = writeln!(
            t,
            "load generator cpu avg {} of {} cores",
            optional(self.host.loadgen_cpu_pct_avg, "%"),
            self.host.cores
        );
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
    use serde_json::Value;

    fn sample() -> Report {
        Report {
            classes: 2,
            classrooms: 6,
            joins_ok: 6,
            joins_failed: 0,
            time_to_first_frame_ms: Summary {
                p50: 800.0,
                p95: 1200.0,
                p99: 1500.0,
                max: 1600.0,
            },
            media_latency_ms: Summary::of(&[45.0, 50.0, 62.0]),
            sfu_added_latency_ms: Summary::of(&[0.4, 0.8, 2.0]),
            board_op_latency_ms: Summary::of(&[30.0]),
            vote_latency_ms: Summary::of(&[40.0]),
            packet_loss_pct: 0.2,
            packet_loss_by_kind_pct: LossByKind::from_counts((1000, 4), (3000, 4)),
            freezes: 1,
            server: ServerUsage {
                cpu_pct_avg: Some(12.5),
                rss_mb_peak: None,
            },
            host: HostUsage::new(2, Some(40.0), Some(12.5)),
            slo: SloOutcome {
                passed: true,
                failures: vec![],
            },
            duration_secs: 60.0,
        }
    }

    #[test]
    fn json_has_exactly_the_documented_keys_and_shapes() {
        let v: Value = serde_json::from_str(&sample().to_json().unwrap()).unwrap();
        let obj = v.as_object().unwrap();
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort();
        let mut expected = vec![
            "classes",
            "classrooms",
            "joins_ok",
            "joins_failed",
            "time_to_first_frame_ms",
            "media_latency_ms",
            "sfu_added_latency_ms",
            "board_op_latency_ms",
            "vote_latency_ms",
            "packet_loss_pct",
            "packet_loss_by_kind_pct",
            "freezes",
            "server",
            "host",
            "slo",
        ];
        expected.sort();
        assert_eq!(keys, expected);

        for k in [
            "classes",
            "classrooms",
            "joins_ok",
            "joins_failed",
            "freezes",
        ] {
            assert!(obj[k].is_u64(), "{k} is a count");
        }
        assert!(obj["packet_loss_pct"].is_number());
        for k in [
            "time_to_first_frame_ms",
            "media_latency_ms",
            "sfu_added_latency_ms",
            "board_op_latency_ms",
            "vote_latency_ms",
        ] {
            let s = obj[k]
                .as_object()
                .unwrap_or_else(|| panic!("{k} is an object"));
            let mut sk: Vec<&str> = s.keys().map(String::as_str).collect();
            sk.sort();
            assert_eq!(sk, ["max", "p50", "p95", "p99"], "{k}");
            assert!(s.values().all(Value::is_number), "{k}");
        }
        let server = obj["server"].as_object().unwrap();
        assert_eq!(server.len(), 2);
        assert_eq!(server["cpu_pct_avg"], 12.5);
        assert!(server["rss_mb_peak"].is_null());
        assert_eq!(obj["packet_loss_by_kind_pct"]["audio"], 0.4);
        assert!(obj["packet_loss_by_kind_pct"]["video"].is_number());
        let host = obj["host"].as_object().unwrap();
        assert_eq!(host.len(), 3);
        assert_eq!(host["cores"], 2);
        assert_eq!(host["loadgen_cpu_pct_avg"], 40.0);
        assert_eq!(host["saturated"], false);
        let slo = obj["slo"].as_object().unwrap();
        assert_eq!(slo.len(), 2);
        assert_eq!(slo["passed"], true);
        assert!(slo["failures"].is_array());
        assert_eq!(obj["media_latency_ms"]["p50"], 50.0);
    }

    #[test]
    fn json_round_trips() {
        let r = sample();
        let back: Report = serde_json::from_str(&r.to_json().unwrap()).unwrap();
        assert_eq!(
            back,
            Report {
                duration_secs: 0.0,
                ..r
            }
        );
    }

    #[test]
    fn apply_slo_records_the_outcome_and_the_table_shows_it() {
        let mut r = sample();
        assert!(r.apply_slo(&SloThresholds::default()));
        assert!(r.summary_table().contains("SLO: passed"));
        r.joins_failed = 1;
        assert!(!r.apply_slo(&SloThresholds::default()));
        assert!(!r.slo.passed);
        assert_eq!(r.slo.failures.len(), 1);
        let table = r.summary_table();
        assert!(table.contains("SLO: FAILED"), "{table}");
        assert!(table.contains("joins_failed"), "{table}");
        assert!(table.contains("12.5 %"), "{table}");
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
