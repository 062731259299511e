//! Command-line flags of `tandem-loadtest`. Every flag also reads an environment variable
//! `TANDEM_LOADTEST_<FLAG>` (the flag's name in upper case with `_` for `-`) when not given.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::link::{LinkProfile, PROFILE_NAMES};
use crate::slo::{self, SloThresholds};

/// Where the tool looks for the server unless told otherwise.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";
/// The link profile used unless `--profile` says otherwise: a typical dual-teacher pairing.
pub const DEFAULT_PROFILE: &str = "1000km";

/// Invalid flag values that clap's own parsing cannot catch.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CliError {
    #[error("unknown --profile {0:?}; known: {known}", known = PROFILE_NAMES.join(", "))]
    UnknownProfile(String),
    #[error("--{flag} must be between {min} and {max}, got {value}")]
    OutOfRange {
        flag: &'static str,
        value: f64,
        min: f64,
        max: f64,
    },
    #[error("--max-classes ({max}) must be at least --classes ({classes}) with --find-capacity")]
    MaxClassesBelowClasses { max: u32, classes: u32 },
    #[error(
        "--shard and --find-capacity do not go together: size a server from shards by merging their reports"
    )]
    ShardWithCapacity,
}

/// Parses `--shard I/N` (1 ≤ I ≤ N).
pub fn parse_shard(text: &str) -> Result<(u32, u32), String> {
    let bad = || format!("expected I/N with 1 ≤ I ≤ N, e.g. 2/3; got {text:?}");
    let (i, n) = text.split_once('/').ok_or_else(bad)?;
    let (i, n): (u32, u32) = (
        i.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if i == 0 || i > n {
        return Err(bad());
    }
    Ok((i, n))
}

/// `tandem-loadtest merge`: several shards' JSON reports as one.
#[derive(Debug, Clone, Parser)]
#[command(name = "tandem-loadtest merge")]
pub struct MergeArgs {
    /// The shards' JSON reports (`--report` of each `--shard I/N` run).
    #[arg(required = true, value_name = "REPORT.json")]
    pub reports: Vec<PathBuf>,

    /// Write the merged JSON report to FILE.
    #[arg(long, value_name = "FILE", env = "TANDEM_LOADTEST_REPORT")]
    pub report: Option<PathBuf>,

    /// Write the merged self-contained HTML report to FILE.
    #[arg(long, value_name = "FILE", env = "TANDEM_LOADTEST_HTML")]
    pub html: Option<PathBuf>,
}

/// Will this server hold our classes, and will the lesson still feel live?
///
/// Simulates C classes, each with a master classroom and R remote classrooms, all real WebRTC
/// peers over emulated long-distance links, and checks the result against SLOs. Exits non-zero
/// when any SLO is missed.
#[derive(Debug, Clone, Parser)]
#[command(name = "tandem-loadtest", version)]
pub struct Args {
    /// Base URL of the Tandem server to test.
    #[arg(long, env = "TANDEM_LOADTEST_SERVER", default_value = DEFAULT_SERVER)]
    pub server: String,

    /// Start the server on this host first and measure its CPU and memory from /proc. PATH is
    /// the `tandem` binary (default: the `tandem` next to this tool's binary). The server
    /// listens on the address of --server.
    #[arg(
        long,
        env = "TANDEM_LOADTEST_SPAWN_SERVER",
        value_name = "PATH",
        num_args = 0..=1
    )]
    pub spawn_server: Option<Option<PathBuf>>,

    /// Number of classes to simulate (the starting count with --find-capacity).
    #[arg(long, env = "TANDEM_LOADTEST_CLASSES", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub classes: u32,

    /// Remote classrooms per class (each class also has one master classroom).
    #[arg(long, env = "TANDEM_LOADTEST_REMOTES", default_value_t = 2)]
    pub remotes: u32,

    /// How long to measure once every class has joined, in seconds.
    #[arg(
        long,
        value_name = "SECS",
        env = "TANDEM_LOADTEST_DURATION",
        default_value_t = 60
    )]
    pub duration: u64,

    /// Spread the classes' joins evenly over this many seconds (0: all at once).
    #[arg(
        long,
        value_name = "SECS",
        env = "TANDEM_LOADTEST_RAMP_SECS",
        default_value_t = 10
    )]
    pub ramp_secs: u64,

    #[command(flatten)]
    pub link: LinkArgs,

    #[command(flatten)]
    pub media: MediaArgs,

    #[command(flatten)]
    pub lesson: LessonArgs,

    #[command(flatten)]
    pub slo: SloArgs,

    /// Write the JSON report to FILE.
    #[arg(long, value_name = "FILE", env = "TANDEM_LOADTEST_REPORT")]
    pub report: Option<PathBuf>,

    /// Write a self-contained HTML report (charts inline, no external requests) to FILE.
    #[arg(long, value_name = "FILE", env = "TANDEM_LOADTEST_HTML")]
    pub html: Option<PathBuf>,

    /// Ramp the number of classes up from --classes until an SLO breaks (or --max-classes is
    /// reached) and report the last count that held.
    #[arg(long, env = "TANDEM_LOADTEST_FIND_CAPACITY")]
    pub find_capacity: bool,

    /// Upper bound on classes for --find-capacity.
    #[arg(long, env = "TANDEM_LOADTEST_MAX_CLASSES", default_value_t = 50)]
    pub max_classes: u32,

    /// Seed for every random choice (link emulation, who draws and votes), for reproducible runs.
    #[arg(long, env = "TANDEM_LOADTEST_SEED", default_value_t = 1)]
    pub seed: u64,

    /// Run only share I of N of the classes (class k runs in shard k mod N + 1), against a
    /// server the other shards load too; merge the shards' reports with `tandem-loadtest merge`.
    /// Only shard 1 runs the probe class.
    #[arg(long, value_name = "I/N", env = "TANDEM_LOADTEST_SHARD", value_parser = parse_shard)]
    pub shard: Option<(u32, u32)>,

    /// Soak: report the slopes of the server's RSS and CPU over the measured window's second
    /// half (and the whole window's) and fail when the second half's grow faster than
    /// --slo-soak-rss-mb-per-hour / --slo-soak-cpu-pct-per-hour.
    #[arg(long, env = "TANDEM_LOADTEST_SOAK")]
    pub soak: bool,

    /// How the emulated classrooms reach the media port: udp, or tcp (ICE-TCP only, RFC 6544, as
    /// from a school network that blocks UDP; the link's loss then costs a retransmission, not a
    /// packet). The probe class stays on UDP.
    #[arg(
        long,
        value_enum,
        env = "TANDEM_LOADTEST_TRANSPORT",
        default_value = "udp"
    )]
    pub transport: Transport,
}

/// The transport of the classrooms' media.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
}

/// Emulated link of every classroom, both directions.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Link emulation")]
pub struct LinkArgs {
    /// Named link profile: lan (0.5 ms), 1000km (20 ms one way, 5 ms jitter, 1 % loss),
    /// rural-4g (60 ms, 20 ms jitter, 2 % bursty loss, 2 Mbit/s), bad (150 ms, 40 ms jitter,
    /// 5 % bursty loss, 800 kbit/s). The flags below override single values of it.
    #[arg(long, value_name = "NAME", env = "TANDEM_LOADTEST_PROFILE", default_value = DEFAULT_PROFILE)]
    pub profile: String,

    /// One-way delay, ms.
    #[arg(long, value_name = "MS", env = "TANDEM_LOADTEST_DELAY_MS")]
    pub delay_ms: Option<f64>,

    /// Jitter (standard deviation of the extra one-way delay), ms. Packets are not reordered.
    #[arg(long, value_name = "MS", env = "TANDEM_LOADTEST_JITTER_MS")]
    pub jitter_ms: Option<f64>,

    /// Average packet loss, percent.
    #[arg(long, value_name = "PCT", env = "TANDEM_LOADTEST_LOSS_PCT")]
    pub loss_pct: Option<f64>,

    /// Make losses bursty (Gilbert–Elliott) with this mean burst length in packets; 1 or 0:
    /// independent losses.
    #[arg(long, value_name = "PACKETS", env = "TANDEM_LOADTEST_BURST_LOSS")]
    pub burst_loss: Option<f64>,

    /// Bandwidth cap per direction, kbit/s; 0: uncapped.
    #[arg(long, value_name = "KBPS", env = "TANDEM_LOADTEST_BANDWIDTH_KBPS")]
    pub bandwidth_kbps: Option<u64>,

    /// Bottleneck buffer behind the bandwidth cap, KiB; packets beyond it are dropped.
    #[arg(long, value_name = "KIB", env = "TANDEM_LOADTEST_QUEUE_KIB")]
    pub queue_kib: Option<u64>,
}

/// What each classroom sends.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Media")]
pub struct MediaArgs {
    /// Camera video bitrate of each classroom, kbit/s.
    #[arg(
        long,
        value_name = "KBPS",
        env = "TANDEM_LOADTEST_VIDEO_KBPS",
        default_value_t = 1200
    )]
    pub video_kbps: u32,

    /// Video frames per second.
    #[arg(long, env = "TANDEM_LOADTEST_FPS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=120))]
    pub fps: u32,

    /// Send a keyframe this often, seconds; 0: only at start and when the server asks (as
    /// browsers do).
    #[arg(
        long,
        value_name = "SECS",
        env = "TANDEM_LOADTEST_KEYFRAME_INTERVAL_SECS",
        default_value_t = 0.0
    )]
    pub keyframe_interval_secs: f64,

    /// The master classroom also shares its screen (a second video track).
    #[arg(long, env = "TANDEM_LOADTEST_SCREEN_SHARE")]
    pub screen_share: bool,

    /// Send the microphones as plain Opus: no redundant audio (RFC 2198 RED, which the
    /// classrooms otherwise negotiate and send as Chrome does, one previous frame per packet).
    #[arg(long, env = "TANDEM_LOADTEST_NO_RED")]
    pub no_red: bool,
}

/// What happens during the lesson.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Lesson")]
pub struct LessonArgs {
    /// Share of each class's remote classrooms put on stage (seen and heard by every
    /// classroom), 0–1.
    #[arg(
        long,
        value_name = "FRACTION",
        env = "TANDEM_LOADTEST_STAGE_FRACTION",
        default_value_t = 0.5
    )]
    pub stage_fraction: f64,

    /// Share of classrooms that leave and rejoin once mid-run (measures rejoin and keyframe
    /// recovery), 0–1.
    #[arg(
        long,
        value_name = "FRACTION",
        env = "TANDEM_LOADTEST_REJOIN_FRACTION",
        default_value_t = 0.1
    )]
    pub rejoin_fraction: f64,

    /// Board strokes the master teacher draws per second, per class (0: none).
    #[arg(
        long,
        value_name = "RATE",
        env = "TANDEM_LOADTEST_BOARD_STROKES_PER_SEC",
        default_value_t = 2.0
    )]
    pub board_strokes_per_sec: f64,

    /// Polls each class runs during the measured window; every classroom votes in each.
    #[arg(long, env = "TANDEM_LOADTEST_POLLS", default_value_t = 1)]
    pub polls: u32,
}

/// Objectives; a run that misses any exits non-zero.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Service-level objectives")]
pub struct SloArgs {
    /// Most classrooms allowed to fail to join.
    #[arg(long, value_name = "N", env = "TANDEM_LOADTEST_SLO_JOINS_FAILED", default_value_t = slo::DEFAULT_MAX_JOINS_FAILED)]
    pub slo_joins_failed: u32,

    /// Highest p95 one-way media latency, ms (ITU-T G.114: 150 ms keeps talk natural).
    #[arg(long, value_name = "MS", env = "TANDEM_LOADTEST_SLO_MEDIA_LATENCY_P95_MS", default_value_t = slo::DEFAULT_MEDIA_LATENCY_P95_MS)]
    pub slo_media_latency_p95_ms: f64,

    /// Highest p95 latency added by the server itself, ms.
    #[arg(long, value_name = "MS", env = "TANDEM_LOADTEST_SLO_SFU_ADDED_LATENCY_P95_MS", default_value_t = slo::DEFAULT_SFU_ADDED_LATENCY_P95_MS)]
    pub slo_sfu_added_latency_p95_ms: f64,

    /// Highest p95 time from invite link to first decodable frame, ms.
    #[arg(long, value_name = "MS", env = "TANDEM_LOADTEST_SLO_TIME_TO_FIRST_FRAME_P95_MS", default_value_t = slo::DEFAULT_TIME_TO_FIRST_FRAME_P95_MS)]
    pub slo_time_to_first_frame_p95_ms: f64,

    /// Highest media packet loss after retransmission, percent.
    #[arg(long, value_name = "PCT", env = "TANDEM_LOADTEST_SLO_PACKET_LOSS_PCT", default_value_t = slo::DEFAULT_PACKET_LOSS_PCT)]
    pub slo_packet_loss_pct: f64,

    /// Most freezes (video gaps over 300 ms) per classroom per minute.
    #[arg(long, value_name = "RATE", env = "TANDEM_LOADTEST_SLO_FREEZES_PER_CLASSROOM_MINUTE", default_value_t = slo::DEFAULT_FREEZES_PER_CLASSROOM_MINUTE)]
    pub slo_freezes_per_classroom_minute: f64,

    /// Highest p95 board-op latency (stroke drawn to stroke shown elsewhere), ms.
    #[arg(long, value_name = "MS", env = "TANDEM_LOADTEST_SLO_BOARD_OP_LATENCY_P95_MS", default_value_t = slo::DEFAULT_BOARD_OP_LATENCY_P95_MS)]
    pub slo_board_op_latency_p95_ms: f64,

    /// Highest p95 vote latency (vote cast to vote counted), ms.
    #[arg(long, value_name = "MS", env = "TANDEM_LOADTEST_SLO_VOTE_LATENCY_P95_MS", default_value_t = slo::DEFAULT_VOTE_LATENCY_P95_MS)]
    pub slo_vote_latency_p95_ms: f64,

    /// Highest average server CPU, percent of one core (off unless set).
    #[arg(long, value_name = "PCT", env = "TANDEM_LOADTEST_SLO_SERVER_CPU_PCT")]
    pub slo_server_cpu_pct: Option<f64>,

    /// Highest peak server resident memory, MiB (off unless set).
    #[arg(long, value_name = "MIB", env = "TANDEM_LOADTEST_SLO_SERVER_RSS_MB")]
    pub slo_server_rss_mb: Option<f64>,

    /// Highest p99 lateness of the media generators against their schedule, ms; above it the
    /// run is not trustworthy (this host could not send the load) and fails.
    #[arg(long, value_name = "MS", env = "TANDEM_LOADTEST_SLO_GENERATOR_LATE_P99_MS", default_value_t = slo::DEFAULT_GENERATOR_LATE_P99_MS)]
    pub slo_generator_late_p99_ms: f64,

    /// With --soak: highest growth of the server's RSS, MiB per hour (least-squares slope over
    /// the window's second half).
    #[arg(long, value_name = "MIB", env = "TANDEM_LOADTEST_SLO_SOAK_RSS_MB_PER_HOUR", default_value_t = slo::DEFAULT_SOAK_RSS_MB_PER_HOUR)]
    pub slo_soak_rss_mb_per_hour: f64,

    /// With --soak: highest growth of the server's CPU use, percentage points of one core per
    /// hour (least-squares slope over the window's second half).
    #[arg(long, value_name = "POINTS", env = "TANDEM_LOADTEST_SLO_SOAK_CPU_PCT_PER_HOUR", default_value_t = slo::DEFAULT_SOAK_CPU_PCT_PER_HOUR)]
    pub slo_soak_cpu_pct_per_hour: f64,
}

impl SloArgs {
    pub fn thresholds(&self) -> SloThresholds {
        SloThresholds {
            max_joins_failed: self.slo_joins_failed,
            media_latency_p95_ms: self.slo_media_latency_p95_ms,
            sfu_added_latency_p95_ms: self.slo_sfu_added_latency_p95_ms,
            time_to_first_frame_p95_ms: self.slo_time_to_first_frame_p95_ms,
            packet_loss_pct: self.slo_packet_loss_pct,
            freezes_per_classroom_minute: self.slo_freezes_per_classroom_minute,
            board_op_latency_p95_ms: self.slo_board_op_latency_p95_ms,
            vote_latency_p95_ms: self.slo_vote_latency_p95_ms,
            server_cpu_pct_avg: self.slo_server_cpu_pct,
            server_rss_mb_peak: self.slo_server_rss_mb,
            generator_late_p99_ms: self.slo_generator_late_p99_ms,
            soak_rss_mb_per_hour: self.slo_soak_rss_mb_per_hour,
            soak_cpu_pct_per_hour: self.slo_soak_cpu_pct_per_hour,
        }
    }
}

impl LinkArgs {
    /// The named profile with the explicit overrides applied (the name gets `+overrides`).
    pub fn profile(&self) -> Result<LinkProfile, CliError> {
        let mut p = LinkProfile::named(&self.profile)
            .ok_or_else(|| CliError::UnknownProfile(self.profile.clone()))?;
        let ms = |flag, v: f64| {
            in_range(flag, v, 0.0, 60_000.0).map(|v| Duration::from_secs_f64(v / 1e3))
        };
        let mut overridden = false;
        if let Some(v) = self.delay_ms {
            p.delay = ms("delay-ms", v)?;
            overridden = true;
        }
        if let Some(v) = self.jitter_ms {
            p.jitter = ms("jitter-ms", v)?;
            overridden = true;
        }
        if let Some(v) = self.loss_pct {
            p.loss_pct = in_range("loss-pct", v, 0.0, 100.0)?;
            overridden = true;
        }
        if let Some(v) = self.burst_loss {
            let v = in_range("burst-loss", v, 0.0, 1000.0)?;
            p.mean_burst_packets = (v > 1.0).then_some(v);
            overridden = true;
        }
        if let Some(v) = self.bandwidth_kbps {
            p.bandwidth_bps = (v > 0).then_some(v * 1000);
            overridden = true;
        }
        if let Some(v) = self.queue_kib {
            p.queue_limit_bytes = (v as usize).saturating_mul(1024).max(1);
            overridden = true;
        }
        if overridden {
            p.name = format!("{}+overrides", p.name);
        }
        Ok(p)
    }
}

impl MediaArgs {
    /// Keyframe period, `None` for keyframes only on request.
    pub fn keyframe_interval(&self) -> Option<Duration> {
        (self.keyframe_interval_secs > 0.0)
            .then(|| Duration::from_secs_f64(self.keyframe_interval_secs))
    }

    /// Bytes per video frame that make up `--video-kbps` at `--fps`.
    pub fn video_frame_bytes(&self) -> usize {
        (self.video_kbps as usize * 1000 / 8 / self.fps.max(1) as usize).max(1)
    }
}

impl Args {
    /// Parses the process's arguments (and environment), exiting with usage on error.
    pub fn from_env() -> Self {
        Self::parse()
    }

    /// Checks what clap cannot: the profile name, fractions and ranges.
    pub fn validate(&self) -> Result<(), CliError> {
        self.link.profile()?;
        in_range("stage-fraction", self.lesson.stage_fraction, 0.0, 1.0)?;
        in_range("rejoin-fraction", self.lesson.rejoin_fraction, 0.0, 1.0)?;
        in_range(
            "board-strokes-per-sec",
            self.lesson.board_strokes_per_sec,
            0.0,
            1000.0,
        )?;
        in_range(
            "keyframe-interval-secs",
            self.media.keyframe_interval_secs,
            0.0,
            3600.0,
        )?;
        if self.find_capacity && self.shard.is_some() {
            return Err(CliError::ShardWithCapacity);
        }
        if self.find_capacity && self.max_classes < self.classes {
            return Err(CliError::MaxClassesBelowClasses {
                max: self.max_classes,
                classes: self.classes,
            });
        }
        Ok(())
    }

    /// The link profile of every classroom (both directions).
    pub fn link_profile(&self) -> Result<LinkProfile, CliError> {
        self.link.profile()
    }

    pub fn slo_thresholds(&self) -> SloThresholds {
        self.slo.thresholds()
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs(self.duration)
    }

    pub fn ramp(&self) -> Duration {
        Duration::from_secs(self.ramp_secs)
    }

    /// Classrooms per class: the master and its remotes.
    pub fn classrooms_per_class(&self) -> u32 {
        1 + self.remotes
    }
}

fn in_range(flag: &'static str, value: f64, min: f64, max: f64) -> Result<f64, CliError> {
    if value.is_finite() && (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(CliError::OutOfRange {
            flag,
            value,
            min,
            max,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("tandem-loadtest").chain(args.iter().copied()))
            .unwrap()
    }

    #[test]
    fn command_is_well_formed() {
        Args::command().debug_assert();
    }

    #[test]
    fn every_flag_has_help_and_a_prefixed_env_fallback() {
        let cmd = Args::command();
        let mut seen = 0;
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            seen += 1;
            let long = arg
                .get_long()
                .unwrap_or_else(|| panic!("{id} has no --flag"));
            assert!(arg.get_help().is_some(), "--{long} has no help text");
            let env = arg
                .get_env()
                .unwrap_or_else(|| panic!("--{long} has no env fallback"));
            let expected = format!("TANDEM_LOADTEST_{}", long.to_uppercase().replace('-', "_"));
            assert_eq!(env.to_str(), Some(expected.as_str()), "--{long}");
        }
        assert!(seen >= 35, "only {seen} flags");
    }

    #[test]
    fn defaults() {
        let a = parse(&[]);
        assert_eq!(a.server, "http://127.0.0.1:8080");
        assert_eq!(a.spawn_server, None);
        assert_eq!((a.classes, a.remotes, a.duration), (1, 2, 60));
        assert_eq!(a.classrooms_per_class(), 3);
        assert!(!a.find_capacity);
        assert_eq!(
            a.link_profile().unwrap(),
            LinkProfile::named("1000km").unwrap()
        );
        assert_eq!(a.slo_thresholds(), SloThresholds::default());
        assert_eq!(a.media.keyframe_interval(), None);
        assert_eq!(a.media.video_frame_bytes(), 5000);
        assert_eq!(a.validate(), Ok(()));
    }

    #[test]
    fn spawn_server_with_and_without_path() {
        assert_eq!(parse(&["--spawn-server"]).spawn_server, Some(None));
        let a = parse(&["--spawn-server", "--classes", "3"]);
        assert_eq!((a.spawn_server, a.classes), (Some(None), 3));
        assert_eq!(
            parse(&["--spawn-server", "target/release/tandem"]).spawn_server,
            Some(Some(PathBuf::from("target/release/tandem")))
        );
    }

    #[test]
    fn link_overrides_apply_on_top_of_the_profile() {
        let a = parse(&[
            "--profile",
            "rural-4g",
            "--delay-ms",
            "35",
            "--loss-pct",
            "0.5",
            "--burst-loss",
            "1",
            "--bandwidth-kbps",
            "0",
        ]);
        let p = a.link_profile().unwrap();
        assert_eq!(p.name, "rural-4g+overrides");
        assert_eq!(p.delay, Duration::from_millis(35));
        assert_eq!(p.jitter, Duration::from_millis(20), "kept from rural-4g");
        assert_eq!(p.loss_pct, 0.5);
        assert_eq!(p.mean_burst_packets, None);
        assert_eq!(p.bandwidth_bps, None);

        let p = parse(&[
            "--profile",
            "lan",
            "--bandwidth-kbps",
            "800",
            "--queue-kib",
            "32",
        ])
        .link_profile()
        .unwrap();
        assert_eq!(p.bandwidth_bps, Some(800_000));
        assert_eq!(p.queue_limit_bytes, 32 * 1024);
    }

    #[test]
    fn slo_overrides() {
        let a = parse(&[
            "--slo-media-latency-p95-ms",
            "200",
            "--slo-joins-failed",
            "2",
            "--slo-server-rss-mb",
            "512",
        ]);
        let t = a.slo_thresholds();
        assert_eq!(t.media_latency_p95_ms, 200.0);
        assert_eq!(t.max_joins_failed, 2);
        assert_eq!(t.server_rss_mb_peak, Some(512.0));
        assert_eq!(t.server_cpu_pct_avg, None);
        assert_eq!(t.vote_latency_p95_ms, slo::DEFAULT_VOTE_LATENCY_P95_MS);
    }

    #[test]
    fn invalid_values_are_rejected() {
        assert_eq!(
            parse(&["--profile", "moon"]).validate(),
            Err(CliError::UnknownProfile("moon".to_owned()))
        );
        assert!(matches!(
            parse(&["--stage-fraction", "1.5"]).validate(),
            Err(CliError::OutOfRange {
                flag: "stage-fraction",
                ..
            })
        ));
        assert!(parse(&["--loss-pct=-1"]).validate().is_err());
        assert_eq!(
            parse(&["--find-capacity", "--classes", "10", "--max-classes", "5"]).validate(),
            Err(CliError::MaxClassesBelowClasses {
                max: 5,
                classes: 10
            })
        );
        assert!(Args::try_parse_from(["tandem-loadtest", "--classes", "0"]).is_err());
        assert!(Args::try_parse_from(["tandem-loadtest", "--fps", "0"]).is_err());
    }

    #[test]
    fn shard_soak_and_merge_parse() {
        let a = parse(&[
            "--shard",
            "2/3",
            "--soak",
            "--slo-soak-rss-mb-per-hour",
            "4",
        ]);
        assert_eq!(a.shard, Some((2, 3)));
        assert!(a.soak);
        assert_eq!(a.slo_thresholds().soak_rss_mb_per_hour, 4.0);
        assert_eq!(
            parse(&[]).slo_thresholds().soak_rss_mb_per_hour,
            slo::DEFAULT_SOAK_RSS_MB_PER_HOUR
        );
        for bad in ["0/2", "3/2", "1", "a/b", "1/0"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
            assert!(Args::try_parse_from(["tandem-loadtest", "--shard", bad]).is_err());
        }
        let both = parse(&["--shard", "1/2", "--find-capacity"]);
        assert_eq!(both.validate(), Err(CliError::ShardWithCapacity));
        let m = MergeArgs::try_parse_from([
            "tandem-loadtest merge",
            "a.json",
            "b.json",
            "--html",
            "out.html",
        ])
        .unwrap();
        assert_eq!(m.reports.len(), 2);
        assert_eq!(m.html, Some(PathBuf::from("out.html")));
        assert!(MergeArgs::try_parse_from(["tandem-loadtest merge"]).is_err());
    }

    #[test]
    fn other_flags_parse() {
        let a = parse(&[
            "--server",
            "http://127.0.0.1:9000",
            "--classes",
            "4",
            "--remotes",
            "3",
            "--duration",
            "30",
            "--ramp-secs",
            "0",
            "--video-kbps",
            "800",
            "--fps",
            "25",
            "--keyframe-interval-secs",
            "2",
            "--screen-share",
            "--stage-fraction",
            "0.34",
            "--rejoin-fraction",
            "0",
            "--board-strokes-per-sec",
            "5",
            "--polls",
            "3",
            "--report",
            "out.json",
            "--html",
            "out.html",
            "--find-capacity",
            "--max-classes",
            "40",
            "--seed",
            "7",
        ]);
        assert_eq!(a.server, "http://127.0.0.1:9000");
        assert_eq!((a.classes, a.remotes), (4, 3));
        assert_eq!(a.duration(), Duration::from_secs(30));
        assert_eq!(a.ramp(), Duration::ZERO);
        assert_eq!(a.media.video_frame_bytes(), 4000);
        assert_eq!(a.media.keyframe_interval(), Some(Duration::from_secs(2)));
        assert!(a.media.screen_share);
        assert_eq!(a.lesson.stage_fraction, 0.34);
        assert_eq!(a.lesson.polls, 3);
        assert_eq!(a.report, Some(PathBuf::from("out.json")));
        assert_eq!(a.html, Some(PathBuf::from("out.html")));
        assert!(a.find_capacity);
        assert_eq!((a.max_classes, a.seed), (40, 7));
        assert_eq!(a.validate(), Ok(()));
    }
}
