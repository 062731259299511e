//! `tandem-loadtest`: will this server hold our N classes, and will the lesson still feel live?
//! See `loadtest/README.md`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser as _;
use tandem_loadtest::capacity::CapacitySearch;
use tandem_loadtest::cli::{Args, MergeArgs};
use tandem_loadtest::html::{self, HtmlReport};
use tandem_loadtest::report::{Report, hist};
use tandem_loadtest::runner::{self, RunConfig, RunOutcome};
use tandem_loadtest::server;
use tandem_loadtest::stats::LatencyRecorder;

/// Longest measured window of one `--find-capacity` step.
const CAPACITY_STEP_DURATION: Duration = Duration::from_secs(20);

/// Exit codes: every SLO held, one was missed, the run could not be made.
const EXIT_PASSED: u8 = 0;
const EXIT_SLO_MISSED: u8 = 1;
const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("merge") {
        let args = MergeArgs::parse_from(std::env::args().skip(1));
        return match merge(&args) {
            Ok(code) => ExitCode::from(code),
            Err(err) => {
                eprintln!("tandem-loadtest merge: {err:#}");
                ExitCode::from(EXIT_ERROR)
            }
        };
    }
    let args = Args::from_env();
    if let Err(err) = args.validate() {
        eprintln!("tandem-loadtest: {err}");
        return ExitCode::from(EXIT_ERROR);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(err) => {
            eprintln!("tandem-loadtest: {err}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let code = runtime.block_on(async {
        tokio::select! {
            code = run(args) => code.unwrap_or_else(|err| {
                eprintln!("tandem-loadtest: {err:#}");
                EXIT_ERROR
            }),
            _ = tokio::signal::ctrl_c() => {
                eprintln!("\ntandem-loadtest: interrupted");
                EXIT_ERROR
            }
        }
    });
    // Dropping the run above stopped any server it started; give tasks a moment to end.
    runtime.shutdown_timeout(Duration::from_secs(2));
    ExitCode::from(code)
}

async fn run(args: Args) -> anyhow::Result<u8> {
    let spawn: Option<PathBuf> = match &args.spawn_server {
        Some(path) => Some(server::default_binary(path.as_deref())?),
        None => None,
    };
    let thresholds = args.slo_thresholds();
    if !args.find_capacity {
        let cfg = RunConfig::from_args(&args, args.classes)?;
        eprintln!(
            "tandem-loadtest: {} classes × (1 master + {} remotes) on {} for {} s{}",
            cfg.classes,
            cfg.remotes,
            cfg.link.name,
            cfg.duration.as_secs(),
            spawn
                .as_ref()
                .map(|p| format!(", server {}", p.display()))
                .unwrap_or_else(|| format!(", server {}", args.server))
        );
        let outcome =
            runner::run_against(&cfg, spawn.as_deref(), &args.server, &thresholds).await?;
        print!("{}", outcome.report.summary_table());
        print!("{}", outcome.extra_lines());
        write_outputs(&args, &cfg, &outcome)?;
        return Ok(if outcome.report.slo.passed {
            EXIT_PASSED
        } else {
            EXIT_SLO_MISSED
        });
    }

    let mut search = CapacitySearch::new(args.classes, args.max_classes);
    let mut best: Option<(RunConfig, RunOutcome)> = None;
    let mut first_miss: Option<(RunConfig, RunOutcome)> = None;
    while let Some(classes) = search.next() {
        let mut cfg = RunConfig::from_args(&args, classes)?;
        cfg.duration = cfg.duration.min(CAPACITY_STEP_DURATION);
        eprintln!(
            "capacity step: {classes} classes × (1 + {}) classrooms on {}, {} s",
            cfg.remotes,
            cfg.link.name,
            cfg.duration.as_secs()
        );
        let (held, outcome) =
            match runner::run_against(&cfg, spawn.as_deref(), &args.server, &thresholds).await {
                Ok(o) => (o.report.slo.passed, Some(o)),
                Err(err) => {
                    eprintln!("  {classes} classes: run failed: {err:#}");
                    (false, None)
                }
            };
        if let Some(o) = &outcome {
            let r = &o.report;
            let ms = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.1} ms"));
            eprintln!(
                "  {classes} classes: {}  (frame p95 {}, server adds p95 {}, \
                 loss {}, freezes {}, server cpu {}, generator cpu {}, joins {}/{}){}",
                if held { "held" } else { "MISSED" },
                ms(r.frame_latency_ms.map(|s| s.p95)),
                r.sfu_added_latency_ms.map_or("n/a".to_owned(), |s| s
                    .p95
                    .map_or("> 100 ms".to_owned(), |v| format!("≤ {v} ms"))),
                r.packet_loss_pct
                    .map_or("n/a".to_owned(), |v| format!("{v:.2} %")),
                r.freezes,
                pct(r.server.cpu_pct_avg),
                pct(r.host.loadgen_cpu_pct_avg),
                r.joins_ok,
                r.classrooms,
                if r.host.saturated {
                    " — this host was saturated"
                } else {
                    ""
                }
            );
            for f in &r.slo.failures {
                eprintln!("    - {f}");
            }
        }
        search.record(classes, held);
        if let Some(o) = outcome {
            if held {
                best = Some((cfg, o));
            } else if first_miss.is_none() {
                first_miss = Some((cfg, o));
            }
        }
    }
    let steps: Vec<String> = search
        .steps()
        .iter()
        .map(|(n, held)| format!("{n}{}", if *held { "✓" } else { "✗" }))
        .collect();
    println!("capacity steps: {}", steps.join(" "));
    match search.capacity() {
        Some(n) => println!(
            "capacity: {n} classes of 1 master + {} remote classrooms held every SLO{}",
            args.remotes,
            if search.hit_max() {
                " (stopped at --max-classes)"
            } else {
                ""
            }
        ),
        None => println!("capacity: not even {} classes held every SLO", args.classes),
    }
    if let Some((cfg, o)) = &first_miss
        && o.report.host.saturated
    {
        println!(
            "note: at {} classes this host was saturated (generator cpu {}, server cpu {} of {} \
             cores), so the limit found is this machine's; run the tool on another host \
             (--server URL) to find the server's",
            cfg.classes,
            pct(o.report.host.loadgen_cpu_pct_avg),
            pct(o.report.server.cpu_pct_avg),
            o.report.host.cores
        );
    }
    let shown = best.as_ref().or(first_miss.as_ref());
    if let Some((cfg, outcome)) = shown {
        println!("report of the {} class step:", cfg.classes);
        print!("{}", outcome.report.summary_table());
        print!("{}", outcome.extra_lines());
        write_outputs(&args, cfg, outcome)?;
    }
    Ok(if search.capacity().is_some() {
        EXIT_PASSED
    } else {
        EXIT_SLO_MISSED
    })
}

/// A CPU figure, percent of one core.
fn pct(v: Option<f64>) -> String {
    v.map_or("n/a".to_owned(), |c| format!("{c:.0} %"))
}

fn write_outputs(args: &Args, cfg: &RunConfig, outcome: &RunOutcome) -> anyhow::Result<()> {
    if let Some(path) = &args.report {
        outcome
            .report
            .write_json(path)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("report: {}", path.display());
    }
    if let Some(path) = &args.html {
        let title = format!(
            "Tandem load test: {} classes × (1 + {}) classrooms, {}",
            cfg.classes, cfg.remotes, cfg.link.name
        );
        let latencies = outcome.latencies();
        let page = html::render(&HtmlReport {
            title: &title,
            report: &outcome.report,
            latencies: &latencies,
            server: &outcome.server_points,
            over_time: true,
        });
        std::fs::write(path, page).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("html: {}", path.display());
    }
    Ok(())
}

/// `tandem-loadtest merge`: the shards' reports as one, exactly (from their histograms).
fn merge(args: &MergeArgs) -> anyhow::Result<u8> {
    let mut shards = Vec::new();
    for path in &args.reports {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let report: Report = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a tandem-loadtest report", path.display()))?;
        shards.push(report);
    }
    let merged = Report::merge(&shards)?;
    print!("{}", merged.summary_table());
    if let Some(path) = &args.report {
        merged
            .write_json(path)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("report: {}", path.display());
    }
    if let Some(path) = &args.html {
        let start = std::time::Instant::now();
        let recorder = |name: &str| {
            merged
                .histograms
                .get(name)
                .map(|h| LatencyRecorder::from_histogram(start, &h.to_histogram()))
                .unwrap_or_else(|| LatencyRecorder::new(start))
        };
        let recorders = [
            ("media first packet", recorder(hist::MEDIA_FIRST_PACKET)),
            ("media frame", recorder(hist::MEDIA_FRAME)),
            ("probe class one-way", recorder(hist::PROBE_ONE_WAY)),
            ("board op", recorder(hist::BOARD_OP)),
            ("vote", recorder(hist::VOTE)),
        ];
        let latencies: Vec<(&str, &LatencyRecorder)> =
            recorders.iter().map(|(n, r)| (*n, r)).collect();
        let title = format!(
            "Tandem load test: {} classes, {} classrooms, {} shards merged",
            merged.classes,
            merged.classrooms,
            shards.len()
        );
        let page = html::render(&HtmlReport {
            title: &title,
            report: &merged,
            latencies: &latencies,
            server: &[],
            over_time: false,
        });
        std::fs::write(path, page).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("html: {}", path.display());
    }
    Ok(if merged.slo.passed {
        EXIT_PASSED
    } else {
        EXIT_SLO_MISSED
    })
}
