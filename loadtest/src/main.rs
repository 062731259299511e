//! `tandem-loadtest`: will this server hold our N classes, and will the lesson still feel live?
//! See `loadtest/README.md`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tandem_loadtest::capacity::CapacitySearch;
use tandem_loadtest::cli::Args;
use tandem_loadtest::html::{self, HtmlReport};
use tandem_loadtest::runner::{self, RunConfig, RunOutcome};
use tandem_loadtest::server;

/// Longest measured window of one `--find-capacity` step.
const CAPACITY_STEP_DURATION: Duration = Duration::from_secs(20);

/// Exit codes: every SLO held, one was missed, the run could not be made.
const EXIT_PASSED: u8 = 0;
const EXIT_SLO_MISSED: u8 = 1;
const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
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
            eprintln!(
                "  {classes} classes: {}  (media p95 {:.1} ms, server adds p95 {:.1} ms, \
                 loss {:.2} %, freezes {}, server cpu {}, generator cpu {}, joins {}/{}){}",
                if held { "held" } else { "MISSED" },
                r.media_latency_ms.p95,
                r.sfu_added_latency_ms.p95,
                r.packet_loss_pct,
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
        let latencies = [
            ("media one-way", &outcome.media),
            ("added by server", &outcome.sfu_added),
            ("board op", &outcome.board),
            ("vote", &outcome.vote),
        ];
        let page = html::render(&HtmlReport {
            title: &title,
            report: &outcome.report,
            latencies: &latencies,
            server: &outcome.server_points,
        });
        std::fs::write(path, page).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("html: {}", path.display());
    }
    Ok(())
}
