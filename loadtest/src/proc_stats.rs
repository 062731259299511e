//! Server resource use: CPU and memory of a process on this host from `/proc` (read with
//! [`tandem_signaling::process`], which the server's own `/metrics` uses too), and the server's
//! Prometheus text from `/metrics`.
//!
//! CPU % is `Δ(utime + stime) / ticks_per_second / Δwall × 100`, percent of **one** core (a
//! process busy on both cores of a 2-core host reads 200 %).

use std::collections::BTreeMap;
use std::io;
use std::time::Instant;

pub use tandem_signaling::process::{ProcReading, clock_ticks_per_sec, read_proc};

/// CPU and memory of a process at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcSample {
    pub at: Instant,
    /// CPU since the previous sample, percent of one core; `None` for the first sample.
    pub cpu_pct: Option<f64>,
    /// Resident memory, MiB.
    pub rss_mb: f64,
}

/// Samples one process, keeping what it needs for CPU deltas and the run's average and peak.
#[derive(Debug)]
pub struct ProcSampler {
    pid: u32,
    ticks_per_sec: u64,
    first: Option<ProcReading>,
    last: Option<ProcReading>,
    rss_peak_kb: u64,
}

impl ProcSampler {
    pub fn new(pid: u32) -> Self {
        Self {
            pid,
            ticks_per_sec: clock_ticks_per_sec(),
            first: None,
            last: None,
            rss_peak_kb: 0,
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Reads the process now (an error when it has exited).
    pub fn sample(&mut self) -> io::Result<ProcSample> {
        let now = read_proc(self.pid)?;
        let cpu_pct = self.last.and_then(|prev| self.cpu_pct_between(&prev, &now));
        self.first.get_or_insert(now);
        self.last = Some(now);
        self.rss_peak_kb = self.rss_peak_kb.max(now.rss_kb);
        Ok(ProcSample {
            at: now.at,
            cpu_pct,
            rss_mb: kb_to_mb(now.rss_kb),
        })
    }

    /// Average CPU % from the first sample to the last; `None` before two samples.
    pub fn cpu_pct_avg(&self) -> Option<f64> {
        self.cpu_pct_between(self.first.as_ref()?, self.last.as_ref()?)
    }

    /// Highest RSS seen in a sample, MiB; `None` before any.
    pub fn rss_mb_peak(&self) -> Option<f64> {
        self.last.map(|_| kb_to_mb(self.rss_peak_kb))
    }

    fn cpu_pct_between(&self, a: &ProcReading, b: &ProcReading) -> Option<f64> {
        let wall = b.at.checked_duration_since(a.at)?.as_secs_f64();
        if wall <= 0.0 {
            return None;
        }
        let ticks = b.cpu_ticks.saturating_sub(a.cpu_ticks) as f64;
        Some(ticks / self.ticks_per_sec as f64 / wall * 100.0)
    }
}

fn kb_to_mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// One sample line of Prometheus text.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses Prometheus text exposition: `name value` and `name{label="v",…} value` lines, with
/// an optional trailing timestamp. Comments (`#`), blank lines and lines that do not parse are
/// skipped.
pub fn parse_prometheus(text: &str) -> Vec<Metric> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Metric> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = &line[..name_end];
    if name.is_empty() {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        let (parsed, remaining) = parse_labels(after_brace)?;
        labels = parsed;
        rest = remaining;
    }
    let value = parse_value(rest.split_whitespace().next()?)?;
    Some(Metric {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Parses `a="x",b="y"}` and returns the labels and the text after the `}`.
fn parse_labels(mut s: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix('}') {
            return Some((labels, rest));
        }
        let eq = s.find('=')?;
        let key = s[..eq].trim().to_owned();
        s = s[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break i,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        };
        labels.insert(key, value);
        s = s[end + 1..].trim_start();
        s = s.strip_prefix(',').unwrap_or(s);
    }
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// A scrape of `/metrics`, for looking values up.
#[derive(Debug, Clone, Default)]
pub struct MetricSet {
    pub metrics: Vec<Metric>,
}

impl MetricSet {
    pub fn parse(text: &str) -> Self {
        Self {
            metrics: parse_prometheus(text),
        }
    }

    /// The value of the first sample named `name` (with any labels).
    pub fn get(&self, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
    }

    /// The value of the sample named `name` whose labels include all of `labels`.
    pub fn get_with(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.metrics
            .iter()
            .find(|m| {
                m.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| m.labels.get(*k).is_some_and(|x| x == v))
            })
            .map(|m| m.value)
    }

    /// The sum over all samples named `name` (all label sets); `None` if there is none.
    pub fn sum(&self, name: &str) -> Option<f64> {
        let mut found = false;
        let total: f64 = self
            .metrics
            .iter()
            .filter(|m| m.name == name)
            .inspect(|_| found = true)
            .map(|m| m.value)
            .sum();
        found.then_some(total)
    }

    /// `process_cpu_seconds_total`, the standard process collector's CPU time, if exported.
    pub fn process_cpu_seconds(&self) -> Option<f64> {
        self.get("process_cpu_seconds_total")
    }

    /// `process_resident_memory_bytes` in MiB, if exported.
    pub fn process_rss_mb(&self) -> Option<f64> {
        self.get("process_resident_memory_bytes")
            .map(|b| b / (1024.0 * 1024.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn samples_this_process() {
        assert!(clock_ticks_per_sec() > 0);
        let mut s = ProcSampler::new(std::process::id());
        let first = s.sample().unwrap();
        assert_eq!(first.cpu_pct, None);
        assert!(first.rss_mb > 0.0, "{first:?}");
        assert_eq!(s.cpu_pct_avg(), None);

        // Burn CPU until the kernel has charged us at least a few ticks (bounded).
        let start_ticks = read_proc(std::process::id()).unwrap().cpu_ticks;
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut x = 0u64;
        // A window of at least 300 ms: ticks are 10 ms apart, so a shorter one magnifies the
        // rounding (and the other test threads' work) into an impossible percentage.
        let window_start = Instant::now();
        while (read_proc(std::process::id()).unwrap().cpu_ticks < start_ticks + 3
            || window_start.elapsed() < Duration::from_millis(300))
            && Instant::now() < deadline
        {
            for i in 0..200_000u64 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
            }
            std::hint::black_box(x);
        }
        let second = s.sample().unwrap();
        let cpu = second.cpu_pct.unwrap();
        // Several test threads may run at once; this process can use every core.
        let cores = std::thread::available_parallelism().map_or(64, |n| n.get()) as f64;
        assert!(cpu > 0.0 && cpu <= 100.0 * cores + 20.0, "cpu {cpu} %");
        assert_eq!(s.cpu_pct_avg(), second.cpu_pct);
        assert!(s.rss_mb_peak().unwrap() >= first.rss_mb.min(second.rss_mb));
    }

    #[test]
    fn a_missing_process_is_an_error() {
        // PIDs are at most 2^22 on Linux.
        assert!(ProcSampler::new(u32::MAX - 1).sample().is_err());
    }

    const METRICS: &str = r#"# HELP tandem_classes_active Classes live in memory.
# TYPE tandem_classes_active gauge
tandem_classes_active 3
# TYPE tandem_packets_forwarded counter
tandem_packets_forwarded_total 123456
http_requests_total{method="post",code="200"} 1027 1395066363000
http_requests_total{method="get",code="400"} 3
weird{path="a \"quoted\", {braced} value\\n",le="+Inf"} +Inf
process_cpu_seconds_total 12.5
process_resident_memory_bytes 1.048576e8

not a metric line
"#;

    #[test]
    fn prometheus_text() {
        let m = parse_prometheus(METRICS);
        assert_eq!(m.len(), 7, "{m:#?}");
        assert_eq!(m[0].name, "tandem_classes_active");
        assert!(m[0].labels.is_empty());
        assert_eq!(m[0].value, 3.0);
        assert_eq!(m[2].labels["method"], "post");
        assert_eq!(m[2].labels["code"], "200");
        assert_eq!(m[2].value, 1027.0);
        assert_eq!(m[4].labels["path"], "a \"quoted\", {braced} value\\n");
        assert_eq!(m[4].labels["le"], "+Inf");
        assert_eq!(m[4].value, f64::INFINITY);

        let set = MetricSet::parse(METRICS);
        assert_eq!(set.get("tandem_packets_forwarded_total"), Some(123456.0));
        assert_eq!(set.sum("http_requests_total"), Some(1030.0));
        assert_eq!(
            set.get_with("http_requests_total", &[("code", "400")]),
            Some(3.0)
        );
        assert_eq!(set.get("nope"), None);
        assert_eq!(set.sum("nope"), None);
        assert_eq!(set.process_cpu_seconds(), Some(12.5));
        assert_eq!(set.process_rss_mb(), Some(100.0));
    }
}
