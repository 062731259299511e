//! `--html FILE.html`: one self-contained page (inline CSS and SVG, no script, no external
//! request) with the summary, the SLO outcome, latency over time, latency CDFs and the server's
//! CPU and memory over time. The JSON report is embedded too, so the page alone is the record.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use tandem_signaling::classboard::board::xml_escape as escape;

use crate::proc_stats::ProcSample;
use crate::report::{Report, optional};
use crate::stats::LatencyRecorder;

/// Chart size in SVG user units.
const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 320.0;
const MARGIN_LEFT: f64 = 64.0;
const MARGIN_RIGHT: f64 = 170.0;
const MARGIN_TOP: f64 = 30.0;
const MARGIN_BOTTOM: f64 = 44.0;
/// Most points drawn per series (longer series are thinned evenly).
const MAX_POINTS: usize = 600;
/// Colours of successive series.
const PALETTE: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// One reading of the server's resources, `t` seconds after the run's start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServerPoint {
    pub t: f64,
    /// Percent of one core; `None` where it could not be measured (first sample).
    pub cpu_pct: Option<f64>,
    pub rss_mb: Option<f64>,
}

impl ServerPoint {
    /// A `/proc` sample as a chart point, `start` being the run's start.
    pub fn from_proc(start: Instant, sample: &ProcSample) -> Self {
        Self {
            t: sample.at.saturating_duration_since(start).as_secs_f64(),
            cpu_pct: sample.cpu_pct,
            rss_mb: Some(sample.rss_mb),
        }
    }
}

/// Everything the page shows.
pub struct HtmlReport<'a> {
    /// Shown as the page title (e.g. "Tandem load test: 10 classes × 3 remotes, 1000km").
    pub title: &'a str,
    pub report: &'a Report,
    /// Latency recorders by name (e.g. "media one-way"), all started at the run's start.
    pub latencies: &'a [(&'a str, &'a LatencyRecorder)],
    pub server: &'a [ServerPoint],
    /// Draw latency over time (a merged report has no time axis: its recorders come from
    /// histograms).
    pub over_time: bool,
}

/// A named line of (x, y) points.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartSeries {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// Renders the page.
pub fn render(input: &HtmlReport<'_>) -> String {
    let r = input.report;
    let mut h = String::new();
    let title = escape(input.title);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>{title}</h1>\n"
    );

    // SLO verdict.
    if r.slo.passed {
        h.push_str("<p class=\"slo pass\">SLO passed</p>\n");
    } else {
        h.push_str("<div class=\"slo fail\"><p>SLO FAILED</p><ul>\n");
        for f in &r.slo.failures {
            let _ = writeln!(h, "<li>{}</li>", escape(f));
        }
        h.push_str("</ul></div>\n");
    }

    // Summary.
    let pct = |v: Option<f64>| v.map_or("not measured".to_owned(), |v| format!("{v:.2} %"));
    let _ = write!(
        h,
        "<h2>Summary</h2>\n<p>{} classes, {} classrooms{}; joins ok {}, failed {}; \
         promised tracks {} ({} arrived throughout, {} not checked); \
         packet loss {} of {} sent (audio {}, video {}); freezes {} ({:.1} s).</p>\n",
        r.classes,
        r.classrooms,
        r.shard
            .as_ref()
            .map(|s| format!(" (shard {})", escape(s)))
            .unwrap_or_default(),
        r.joins_ok,
        r.joins_failed,
        r.tracks.promised,
        r.tracks.ok,
        r.tracks.not_checked,
        pct(r.packet_loss_pct),
        r.packets.audio_sent + r.packets.video_sent,
        pct(r.packet_loss_by_kind_pct.audio),
        pct(r.packet_loss_by_kind_pct.video),
        r.freezes,
        r.freeze_secs
    );
    if !r.trustworthy {
        h.push_str(
            "<p class=\"slo fail\">Not trustworthy: the media generator ran late against its \
             schedule.</p>\n",
        );
    }
    h.push_str(
        "<table>\n<tr><th>latency (ms)</th><th>p50</th><th>p95</th><th>p99</th><th>max</th></tr>\n",
    );
    for (name, c) in r.latency_rows() {
        let _ = writeln!(
            h,
            "<tr><td>{name}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&c[0]),
            escape(&c[1]),
            escape(&c[2]),
            escape(&c[3])
        );
    }
    h.push_str("</table>\n");
    let _ = writeln!(
        h,
        "<p>Server: CPU average {}, RSS peak {}.</p>",
        optional(r.server.cpu_pct_avg, "% of a core"),
        optional(r.server.rss_mb_peak, "MiB")
    );
    let _ = writeln!(
        h,
        "<p>Load generator: CPU average {} on a {}-core host.{}</p>",
        optional(r.host.loadgen_cpu_pct_avg, "% of a core"),
        r.host.cores,
        if r.host.saturated {
            " <strong>This host was saturated: latency and loss measure this machine, not only \
             the server.</strong>"
        } else {
            ""
        }
    );

    // Latency over time: p95 per bucket, bucket width scaled to the run.
    let run_secs = input
        .latencies
        .iter()
        .filter_map(|(_, rec)| rec.samples().iter().map(|s| s.t).reduce(f64::max))
        .fold(0.0, f64::max);
    let bucket = Duration::from_secs_f64((run_secs / 300.0).max(1.0));
    let over_time: Vec<ChartSeries> = input
        .latencies
        .iter()
        .map(|(name, rec)| ChartSeries {
            name: format!("{name} p95"),
            points: rec.bucketed(bucket).iter().map(|b| (b.t, b.p95)).collect(),
        })
        .collect();
    if input.over_time {
        h.push_str("<h2>Latency over time</h2>\n");
        h.push_str(&line_chart(
            "chart-latency-time",
            &format!("p95 latency per {:.0} s", bucket.as_secs_f64()),
            "time (s)",
            "ms",
            &over_time,
            None,
        ));
    }

    let cdfs: Vec<ChartSeries> = input
        .latencies
        .iter()
        .map(|(name, rec)| ChartSeries {
            name: (*name).to_owned(),
            points: rec.cdf(MAX_POINTS),
        })
        .collect();
    h.push_str("<h2>Latency CDF</h2>\n");
    h.push_str(&line_chart(
        "chart-latency-cdf",
        "share of samples at or below a latency",
        "latency (ms)",
        "fraction",
        &cdfs,
        Some(1.0),
    ));

    h.push_str("<h2>Server CPU and memory</h2>\n");
    let cpu = ChartSeries {
        name: "CPU %".to_owned(),
        points: input
            .server
            .iter()
            .filter_map(|p| Some((p.t, p.cpu_pct?)))
            .collect(),
    };
    h.push_str(&line_chart(
        "chart-server-cpu",
        "server CPU (percent of one core)",
        "time (s)",
        "%",
        &[cpu],
        None,
    ));
    let rss = ChartSeries {
        name: "RSS MiB".to_owned(),
        points: input
            .server
            .iter()
            .filter_map(|p| Some((p.t, p.rss_mb?)))
            .collect(),
    };
    h.push_str(&line_chart(
        "chart-server-rss",
        "server resident memory (MiB)",
        "time (s)",
        "MiB",
        &[rss],
        None,
    ));

    // The JSON report, machine-readable; `<` escaped so no string can close the element.
    let json = r
        .to_json()
        .unwrap_or_else(|_| "{}".to_owned())
        .replace('<', "\\u003c");
    let _ = write!(
        h,
        "<h2>Report JSON</h2>\n<pre id=\"report-json\">{}</pre>\n</body>\n</html>\n",
        escape(&json)
    );
    h
}

const CSS: &str = "body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;\
padding:0 1em;color:#222}table{border-collapse:collapse}td,th{border:1px solid #ccc;\
padding:.25em .6em;text-align:right}td:first-child,th:first-child{text-align:left}\
.slo{padding:.5em 1em;border-radius:4px;font-weight:bold}.pass{background:#e6f4ea;color:#137333}\
.fail{background:#fce8e6;color:#a50e0e}svg{display:block;margin:1em 0}\
pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:85%}";

/// An SVG line chart. `y_max`: a fixed top of the y axis (e.g. 1 for a CDF), else from the data.
pub fn line_chart(
    id: &str,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[ChartSeries],
    y_max: Option<f64>,
) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg id=\"{}\" class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" \
         height=\"{HEIGHT}\" role=\"img\" aria-label=\"{}\">\n\
         <text x=\"{MARGIN_LEFT}\" y=\"18\" font-size=\"14\" font-weight=\"bold\">{}</text>\n",
        escape(id),
        escape(title),
        escape(title)
    );
    let plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
    let plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM;
    let finite = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite();
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|c| c.points.iter().copied())
        .filter(finite)
        .collect();
    if all.is_empty() {
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#888\">no data</text>\n</svg>\n",
            MARGIN_LEFT + plot_w / 2.0,
            MARGIN_TOP + plot_h / 2.0
        );
        return s;
    }
    let x_min = all
        .iter()
        .map(|p| p.0)
        .fold(f64::INFINITY, f64::min)
        .min(0.0);
    let x_max = nice_ceil(all.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max));
    let y_top = y_max.unwrap_or_else(|| nice_ceil(all.iter().map(|p| p.1).fold(0.0, f64::max)));
    let x_span = (x_max - x_min).max(f64::EPSILON);
    let y_span = y_top.max(f64::EPSILON);
    let px = |x: f64| MARGIN_LEFT + (x - x_min) / x_span * plot_w;
    let py = |y: f64| MARGIN_TOP + plot_h - (y.clamp(0.0, y_top) / y_span) * plot_h;

    // Axes, grid and ticks.
    let _ = writeln!(
        s,
        "<rect x=\"{MARGIN_LEFT}\" y=\"{MARGIN_TOP}\" width=\"{plot_w}\" height=\"{plot_h}\" \
         fill=\"none\" stroke=\"#999\"/>"
    );
    for i in 0..=4 {
        let f = i as f64 / 4.0;
        let yv = y_top * f;
        let y = py(yv);
        let xv = x_min + x_span * f;
        let x = px(xv);
        let _ = writeln!(
            s,
            "<line x1=\"{MARGIN_LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>\
             <text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{}</text>",
            MARGIN_LEFT + plot_w,
            MARGIN_LEFT - 6.0,
            y + 4.0,
            tick_label(yv),
            MARGIN_TOP + plot_h + 16.0,
            tick_label(xv)
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\">{}</text>\
         <text x=\"14\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\" \
         transform=\"rotate(-90 14 {:.1})\">{}</text>",
        MARGIN_LEFT + plot_w / 2.0,
        HEIGHT - 8.0,
        escape(x_label),
        MARGIN_TOP + plot_h / 2.0,
        MARGIN_TOP + plot_h / 2.0,
        escape(y_label)
    );

    // Lines and legend.
    for (i, c) in series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let pts: Vec<(f64, f64)> = c.points.iter().copied().filter(finite).collect();
        let step = pts.len().div_ceil(MAX_POINTS).max(1);
        let mut path = String::new();
        for (k, (x, y)) in pts.iter().enumerate() {
            if k % step == 0 || k + 1 == pts.len() {
                let _ = write!(path, "{:.1},{:.1} ", px(*x), py(*y));
            }
        }
        if !pts.is_empty() {
            let _ = writeln!(
                s,
                "<polyline class=\"series\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" \
             points=\"{}\"/>",
                path.trim_end()
            );
        }
        let ly = MARGIN_TOP + 10.0 + i as f64 * 18.0;
        let lx = MARGIN_LEFT + plot_w + 12.0;
        let _ = writeln!(
            s,
            "<line x1=\"{lx:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{colour}\" \
             stroke-width=\"3\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{}</text>",
            lx + 18.0,
            lx + 24.0,
            ly + 4.0,
            escape(&c.name)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// The smallest round number (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 × 10ⁿ) at or above `v`, so the
/// axis ends near the data and its quarter ticks stay readable (1 for `v` ≤ 0).
fn nice_ceil(v: f64) -> f64 {
    if v.is_nan() || v <= 0.0 || v.is_infinite() {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|&c| c >= v * (1.0 - 1e-12))
        .unwrap_or(10.0 * mag)
}

fn tick_label(v: f64) -> String {
    if v == 0.0 || v.abs() >= 10.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{ServerUsage, SloOutcome};

    fn page(failures: Vec<String>) -> String {
        let t0 = Instant::now();
        let mut media = LatencyRecorder::new(t0);
        let mut board = LatencyRecorder::new(t0);
        for i in 0..2000u64 {
            let at = t0 + Duration::from_millis(30 * i);
            media.record(at, 40.0 + (i % 17) as f64);
            if i % 10 == 0 {
                board.record(at, 20.0 + (i % 7) as f64);
            }
        }
        let server: Vec<ServerPoint> = (0..60)
            .map(|i| ServerPoint {
                t: i as f64,
                cpu_pct: (i > 0).then_some(20.0 + i as f64),
                rss_mb: Some(100.0 + i as f64),
            })
            .collect();
        let report = Report {
            classes: 2,
            classrooms: 6,
            joins_ok: 6,
            media_latency_ms: Some(media.summary()),
            board_op_latency_ms: Some(board.summary()),
            vote_latency_ms: None,
            server: ServerUsage {
                cpu_pct_avg: Some(50.0),
                rss_mb_peak: Some(159.0),
            },
            slo: SloOutcome {
                passed: failures.is_empty(),
                failures,
            },
            ..Report::default()
        };
        let vote = LatencyRecorder::new(t0);
        render(&HtmlReport {
            title: "Tandem load test <2 classes>",
            report: &report,
            latencies: &[
                ("media one-way", &media),
                ("board op", &board),
                ("vote", &vote),
            ],
            server: &server,
            over_time: true,
        })
    }

    #[test]
    fn page_has_every_chart_and_no_external_reference() {
        let html = page(vec![]);
        assert!(html.starts_with("<!DOCTYPE html>"));
        for id in [
            "chart-latency-time",
            "chart-latency-cdf",
            "chart-server-cpu",
            "chart-server-rss",
        ] {
            assert!(html.contains(&format!("<svg id=\"{id}\"")), "{id} missing");
        }
        assert_eq!(html.matches("<svg ").count(), 4);
        assert_eq!(html.matches("</svg>").count(), 4);
        // Time and CDF charts have a line per recorder that has data; CPU and RSS one each.
        assert_eq!(html.matches("<polyline").count(), 2 + 2 + 1 + 1);
        assert!(
            html.contains(">vote p95</text>"),
            "empty series still in the legend"
        );
        assert!(html.contains("media one-way p95"));
        assert!(html.contains("SLO passed"));
        assert!(html.contains("<pre id=\"report-json\">"));
        assert!(html.contains("&quot;classes&quot;: 2"));
        assert!(html.contains("&lt;2 classes&gt;"), "title escaped");
        for external in [
            "http://", "https://", "src=", "href=", "<link", "<script", "@import",
        ] {
            assert!(!html.contains(external), "found {external}");
        }
    }

    #[test]
    fn failures_are_listed_escaped() {
        let html = page(vec!["media_latency_ms p95 182.3 ms > 150 ms".to_owned()]);
        assert!(html.contains("SLO FAILED"));
        assert!(html.contains("<li>media_latency_ms p95 182.3 ms &gt; 150 ms</li>"));
    }

    #[test]
    fn empty_chart_says_no_data() {
        let svg = line_chart("x", "t", "x", "y", &[], None);
        assert!(svg.contains("no data"));
        assert!(svg.ends_with("</svg>\n"));
    }

    #[test]
    fn points_map_into_the_plot_area() {
        let svg = line_chart(
            "c",
            "t",
            "x",
            "y",
            &[ChartSeries {
                name: "a".to_owned(),
                points: vec![(0.0, 0.0), (10.0, 100.0)],
            }],
            None,
        );
        // (0,0) is the bottom-left corner of the plot, (10,100) the top-right.
        let bottom = HEIGHT - MARGIN_BOTTOM;
        let right = WIDTH - MARGIN_RIGHT;
        assert!(
            svg.contains(&format!(
                "points=\"{MARGIN_LEFT:.1},{bottom:.1} {right:.1},{MARGIN_TOP:.1}\""
            )),
            "{svg}"
        );
    }

    #[test]
    fn proc_samples_become_points() {
        let t0 = Instant::now();
        let p = ServerPoint::from_proc(
            t0,
            &ProcSample {
                at: t0 + Duration::from_millis(1500),
                cpu_pct: Some(42.0),
                rss_mb: 12.5,
            },
        );
        assert_eq!(
            p,
            ServerPoint {
                t: 1.5,
                cpu_pct: Some(42.0),
                rss_mb: Some(12.5)
            }
        );
    }

    #[test]
    fn nice_axis_tops() {
        assert_eq!(nice_ceil(0.0), 1.0);
        assert_eq!(nice_ceil(1.0), 1.0);
        assert_eq!(nice_ceil(1.3), 1.5);
        assert_eq!(nice_ceil(2.2), 2.5);
        assert_eq!(nice_ceil(47.0), 50.0);
        assert_eq!(nice_ceil(59.0), 60.0);
        assert_eq!(nice_ceil(100.0), 100.0);
        assert_eq!(nice_ceil(730.0), 800.0);
        assert_eq!(nice_ceil(810.0), 1000.0);
    }
}
