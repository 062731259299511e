//! The numbers a load test reports: percentiles, latency samples over time, freezes and jitter.
//!
//! # Percentiles
//!
//! Percentiles use the **nearest-rank** method: the p-th percentile of `n` sorted values is the
//! value at rank `ceil(p / 100 × n)` (1-based). It is always one of the measured values, never an
//! interpolation between two, so "p95 = 182 ms" means a real frame took 182 ms; and the p100 is
//! the maximum. An empty set has no summary (`None`): the report says "not measured" and the SLO
//! on it fails.
//!
//! The report's figures come from HdrHistograms (microseconds, 3 significant digits, so a
//! percentile is within 0.1 % of a measured value), which the JSON carries, so that the reports
//! of several shards merge into exactly the figures one run over all their samples would give.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest value a histogram holds, µs (an hour); larger values are clamped to it.
const HISTOGRAM_MAX_US: u64 = 3_600_000_000;

/// An empty histogram of microseconds, 1 µs to an hour, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_US, 3).expect("constant bounds are valid")
}

/// Records a duration in µs (at least 1 µs, at most an hour).
pub fn record_us(h: &mut Histogram<u64>, d: Duration) {
    let us = (d.as_micros() as u64).clamp(1, HISTOGRAM_MAX_US);
    let _ = h.record(us);
}

/// A histogram as JSON: `[[value_us, count], …]` over its non-empty bins (each value the highest
/// equivalent value of its bin, so recording it again lands in the same bin: lossless).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HistogramJson(pub Vec<[u64; 2]>);

impl HistogramJson {
    pub fn of(h: &Histogram<u64>) -> Self {
        Self(
            h.iter_recorded()
                .map(|v| [v.value_iterated_to(), v.count_at_value()])
                .collect(),
        )
    }

    pub fn to_histogram(&self) -> Histogram<u64> {
        let mut h = new_histogram();
        for [value, count] in &self.0 {
            let _ = h.record_n((*value).clamp(1, HISTOGRAM_MAX_US), *count);
        }
        h
    }
}

/// Named histograms as the report carries them.
pub type Histograms = BTreeMap<String, HistogramJson>;

/// A gap between two frames longer than this is a freeze a person would notice.
pub const FREEZE_GAP: Duration = Duration::from_millis(300);

/// p50, p95, p99 and maximum of a set of values (serialised with exactly those keys).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Summary {
    /// Summarises a histogram of microseconds in milliseconds; `None` when it is empty.
    pub fn of_histogram(h: &Histogram<u64>) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1e3;
        Some(Self {
            p50: ms(h.value_at_quantile(0.50)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        })
    }

    /// Summarises `values` (any order; NaNs are ignored). Empty: all zeros.
    pub fn of(values: &[f64]) -> Self {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
        sorted.sort_by(f64::total_cmp);
        Self::of_sorted(&sorted)
    }

    /// Summarises values already sorted ascending.
    pub fn of_sorted(sorted: &[f64]) -> Self {
        Self {
            p50: percentile_sorted(sorted, 50.0),
            p95: percentile_sorted(sorted, 95.0),
            p99: percentile_sorted(sorted, 99.0),
            max: sorted.last().copied().unwrap_or(0.0),
        }
    }
}

/// Nearest-rank percentile `p` (0–100) of values sorted ascending; 0 when empty.
pub fn percentile_sorted(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let n = sorted.len();
    let rank = ((p.clamp(0.0, 100.0) / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

/// Packet loss in percent: `received` of `expected` arrived. 0 when nothing was expected.
pub fn loss_pct(expected: u64, received: u64) -> f64 {
    if expected == 0 {
        return 0.0;
    }
    expected.saturating_sub(received) as f64 / expected as f64 * 100.0
}

/// One measurement: `t` seconds after the recorder's start, `value` (milliseconds for latencies).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub t: f64,
    pub value: f64,
}

/// Keeps every (time, value) sample of one metric, for its summary, its time series and its CDF.
#[derive(Debug, Clone)]
pub struct LatencyRecorder {
    start: Instant,
    samples: Vec<Sample>,
}

/// One time bucket of a recorder's series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Start of the bucket, seconds since the recorder's start.
    pub t: f64,
    pub count: usize,
    pub p50: f64,
    pub p95: f64,
    pub max: f64,
}

impl LatencyRecorder {
    /// A recorder whose time axis starts at `start` (use the test's start for every recorder).
    pub fn new(start: Instant) -> Self {
        Self {
            start,
            samples: Vec::new(),
        }
    }

    pub fn start(&self) -> Instant {
        self.start
    }

    /// Records `value` observed at `at`.
    pub fn record(&mut self, at: Instant, value: f64) {
        let t = at.saturating_duration_since(self.start).as_secs_f64();
        self.samples.push(Sample { t, value });
    }

    /// Records a duration in milliseconds.
    pub fn record_duration(&mut self, at: Instant, d: Duration) {
        self.record(at, d.as_secs_f64() * 1e3);
    }

    /// Adds another recorder's samples (re-based onto this recorder's start).
    pub fn merge(&mut self, other: &LatencyRecorder) {
        let shift = if other.start >= self.start {
            (other.start - self.start).as_secs_f64()
        } else {
            -(self.start - other.start).as_secs_f64()
        };
        self.samples.extend(other.samples.iter().map(|s| Sample {
            t: (s.t + shift).max(0.0),
            value: s.value,
        }));
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The samples in the order they were recorded.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    fn sorted_values(&self) -> Vec<f64> {
        let mut v: Vec<f64> = self
            .samples
            .iter()
            .map(|s| s.value)
            .filter(|v| !v.is_nan())
            .collect();
        v.sort_by(f64::total_cmp);
        v
    }

    pub fn summary(&self) -> Summary {
        Summary::of_sorted(&self.sorted_values())
    }

    /// The values (milliseconds) as a histogram of microseconds.
    pub fn histogram(&self) -> Histogram<u64> {
        let mut h = new_histogram();
        for s in &self.samples {
            if s.value.is_finite() && s.value >= 0.0 {
                record_us(&mut h, Duration::from_secs_f64(s.value / 1e3));
            }
        }
        h
    }

    /// A recorder holding a histogram's values (all at time 0: a merged report has no time
    /// axis), for the CDF of the HTML page.
    pub fn from_histogram(start: Instant, h: &Histogram<u64>) -> Self {
        let mut r = Self::new(start);
        for v in h.iter_recorded() {
            let ms = v.value_iterated_to() as f64 / 1e3;
            r.samples.extend(std::iter::repeat_n(
                Sample { t: 0.0, value: ms },
                v.count_at_value() as usize,
            ));
        }
        r
    }

    /// Empirical CDF as `(value, fraction ≤ value)` points, at most `max_points` of them (evenly
    /// spaced in rank, always including the minimum and the maximum).
    pub fn cdf(&self, max_points: usize) -> Vec<(f64, f64)> {
        let sorted = self.sorted_values();
        let n = sorted.len();
        if n == 0 || max_points == 0 {
            return Vec::new();
        }
        let points = max_points.clamp(2, n.max(2)).min(n);
        if points == 1 {
            return vec![(sorted[0], 1.0)];
        }
        (0..points)
            .map(|i| {
                let idx = i * (n - 1) / (points - 1);
                (sorted[idx], (idx + 1) as f64 / n as f64)
            })
            .collect()
    }

    /// The series in time buckets of `width` (empty buckets left out), for charts.
    pub fn bucketed(&self, width: Duration) -> Vec<Bucket> {
        let w = width.as_secs_f64();
        if w <= 0.0 || self.samples.is_empty() {
            return Vec::new();
        }
        let mut by_bucket: std::collections::BTreeMap<u64, Vec<f64>> = Default::default();
        for s in &self.samples {
            if !s.value.is_nan() {
                by_bucket
                    .entry((s.t / w).floor() as u64)
                    .or_default()
                    .push(s.value);
            }
        }
        by_bucket
            .into_iter()
            .map(|(k, mut v)| {
                v.sort_by(f64::total_cmp);
                Bucket {
                    t: k as f64 * w,
                    count: v.len(),
                    p50: percentile_sorted(&v, 50.0),
                    p95: percentile_sorted(&v, 95.0),
                    max: v[v.len() - 1],
                }
            })
            .collect()
    }
}

/// A stretch with no frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freeze {
    /// Arrival of the last frame before the gap.
    pub from: Instant,
    /// How long no frame arrived.
    pub gap: Duration,
}

/// The freezes (gaps strictly longer than `threshold`, usually [`FREEZE_GAP`]) in a sequence of
/// frame arrival times. Arrivals need not be sorted.
pub fn detect_freezes(arrivals: &[Instant], threshold: Duration) -> Vec<Freeze> {
    let mut sorted = arrivals.to_vec();
    sorted.sort();
    sorted
        .windows(2)
        .filter_map(|w| {
            let gap = w[1] - w[0];
            (gap > threshold).then_some(Freeze { from: w[0], gap })
        })
        .collect()
}

/// Interarrival jitter as RFC 3550 §6.4.1 defines it: for consecutive packets i, j,
/// `D(i,j) = (Rj − Ri) − (Sj − Si)` in RTP timestamp units and `J += (|D| − J) / 16`.
#[derive(Debug, Clone)]
pub struct JitterEstimator {
    clock_rate: u32,
    last: Option<(Instant, u32)>,
    /// In RTP timestamp units.
    jitter: f64,
}

impl JitterEstimator {
    /// For a stream with this RTP clock rate (48 000 for Opus, 90 000 for video).
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            last: None,
            jitter: 0.0,
        }
    }

    /// A packet with `rtp_timestamp` arrived at `arrival`. Packets should be fed in arrival
    /// order; RTP timestamp wrap-around is handled.
    pub fn update(&mut self, arrival: Instant, rtp_timestamp: u32) {
        if let Some((prev_arrival, prev_ts)) = self.last {
            let r = if arrival >= prev_arrival {
                (arrival - prev_arrival).as_secs_f64()
            } else {
                -(prev_arrival - arrival).as_secs_f64()
            } * self.clock_rate as f64;
            let s = rtp_timestamp.wrapping_sub(prev_ts) as i32 as f64;
            let d = r - s;
            self.jitter += (d.abs() - self.jitter) / 16.0;
        }
        self.last = Some((arrival, rtp_timestamp));
    }

    /// Current estimate in RTP timestamp units (what an RTCP receiver report carries).
    pub fn jitter_units(&self) -> f64 {
        self.jitter
    }

    /// Current estimate in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter / self.clock_rate as f64 * 1e3
    }
}

/// A video track's freezes over a stretch of time: gaps between frame arrivals longer than
/// `threshold`, where the stretch's start and end count as arrivals, so a track that stops (or
/// never starts) freezes until the end (from the start). Returns (freezes, frozen time).
pub fn freezes_in(
    arrivals: &[Instant],
    from: Instant,
    to: Instant,
    threshold: Duration,
) -> (u64, Duration) {
    let mut points: Vec<Instant> = arrivals
        .iter()
        .copied()
        .filter(|t| *t >= from && *t <= to)
        .collect();
    points.push(from);
    points.push(to);
    points.sort();
    points
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|gap| *gap > threshold)
        .fold((0, Duration::ZERO), |(n, total), gap| (n + 1, total + gap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_or_absent_track_freezes_until_the_end() {
        let t0 = Instant::now();
        let every_33ms: Vec<Instant> = (0..30).map(|i| t0 + ms(33 * i)).collect();
        // Frames for the first second of ten: one freeze of about nine seconds.
        let (n, frozen) = freezes_in(&every_33ms, t0, t0 + ms(10_000), FREEZE_GAP);
        assert_eq!(n, 1);
        assert_eq!(frozen, ms(10_000 - 33 * 29));
        // Nothing at all: the whole stretch.
        assert_eq!(
            freezes_in(&[], t0, t0 + ms(5_000), FREEZE_GAP),
            (1, ms(5_000))
        );
        // Steady frames: none.
        let steady: Vec<Instant> = (0..=300).map(|i| t0 + ms(33 * i)).collect();
        assert_eq!(
            freezes_in(&steady, t0, t0 + ms(9_900), FREEZE_GAP),
            (0, Duration::ZERO)
        );
    }

    #[test]
    fn histograms_round_trip_through_json_and_merge_exactly() {
        let mut a = new_histogram();
        let mut b = new_histogram();
        for us in 1..=1000u64 {
            record_us(&mut a, Duration::from_micros(us * 50));
        }
        for us in 1..=3000u64 {
            record_us(&mut b, Duration::from_micros(20_000 + us * 7));
        }
        let text = serde_json::to_string(&HistogramJson::of(&a)).unwrap();
        let back: HistogramJson = serde_json::from_str(&text).unwrap();
        assert_eq!(back.to_histogram(), a);
        // Merging two shards' JSON gives what one histogram of every sample gives.
        let mut merged = HistogramJson::of(&a).to_histogram();
        merged.add(HistogramJson::of(&b).to_histogram()).unwrap();
        let mut all = a.clone();
        all.add(&b).unwrap();
        assert_eq!(Summary::of_histogram(&merged), Summary::of_histogram(&all));
        // The merged percentiles are those of the raw samples, to the histogram's 0.1 %.
        let mut raw: Vec<f64> = (1..=1000u64)
            .map(|us| (us * 50) as f64 / 1e3)
            .chain((1..=3000u64).map(|us| (20_000 + us * 7) as f64 / 1e3))
            .collect();
        raw.sort_by(f64::total_cmp);
        let exact = Summary::of_sorted(&raw);
        let s = Summary::of_histogram(&merged).unwrap();
        for (got, want) in [(s.p50, exact.p50), (s.p95, exact.p95), (s.max, exact.max)] {
            assert!((got - want).abs() <= want * 0.001, "{s:?} vs {exact:?}");
        }
        // Averaging the two shards' medians would not give the median of all.
        let (ma, mb) = (
            Summary::of_histogram(&a).unwrap().p50,
            Summary::of_histogram(&b).unwrap().p50,
        );
        assert!(
            ((ma + mb) / 2.0 - exact.p50).abs() > 1.0,
            "{ma} {mb} {exact:?}"
        );
        assert_eq!(Summary::of_histogram(&new_histogram()), None);
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nearest_rank_on_one_to_hundred() {
        let v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let s = Summary::of(&v);
        assert_eq!(
            s,
            Summary {
                p50: 50.0,
                p95: 95.0,
                p99: 99.0,
                max: 100.0
            }
        );
    }

    #[test]
    fn nearest_rank_textbook_example() {
        // The classic example: 15, 20, 35, 40, 50.
        let v = [40.0, 15.0, 50.0, 35.0, 20.0];
        let mut sorted = v.to_vec();
        sorted.sort_by(f64::total_cmp);
        assert_eq!(percentile_sorted(&sorted, 5.0), 15.0);
        assert_eq!(percentile_sorted(&sorted, 30.0), 20.0);
        assert_eq!(percentile_sorted(&sorted, 40.0), 20.0);
        assert_eq!(percentile_sorted(&sorted, 50.0), 35.0);
        assert_eq!(percentile_sorted(&sorted, 100.0), 50.0);
        let s = Summary::of(&v);
        assert_eq!((s.p50, s.p95, s.p99, s.max), (35.0, 50.0, 50.0, 50.0));
    }

    #[test]
    fn summary_edge_cases() {
        assert_eq!(Summary::of(&[]), Summary::default());
        let one = Summary::of(&[7.5]);
        assert_eq!((one.p50, one.p95, one.p99, one.max), (7.5, 7.5, 7.5, 7.5));
        // 20 values 1..=20: p95 is rank 19, p99 rank 20.
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        let s = Summary::of(&v);
        assert_eq!((s.p50, s.p95, s.p99), (10.0, 19.0, 20.0));
        assert_eq!(Summary::of(&[f64::NAN, 3.0]).max, 3.0);
    }

    #[test]
    fn summary_serialises_with_exactly_its_four_keys() {
        let json = serde_json::to_value(Summary::of(&[1.0, 2.0])).unwrap();
        let mut keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["max", "p50", "p95", "p99"]);
    }

    #[test]
    fn loss_percent() {
        assert_eq!(loss_pct(200, 197), 1.5);
        assert_eq!(loss_pct(0, 0), 0.0);
        assert_eq!(loss_pct(10, 12), 0.0);
    }

    #[test]
    fn recorder_keeps_time_series_summary_and_cdf() {
        let t0 = Instant::now();
        let mut r = LatencyRecorder::new(t0);
        for i in 0..10u64 {
            // 0.5 s apart: values 10, 20, … 100.
            r.record(t0 + ms(500 * i), (i as f64 + 1.0) * 10.0);
        }
        assert_eq!(r.len(), 10);
        assert_eq!(
            r.samples()[3],
            Sample {
                t: 1.5,
                value: 40.0
            }
        );
        let s = r.summary();
        assert_eq!((s.p50, s.p95, s.max), (50.0, 100.0, 100.0));

        let cdf = r.cdf(100);
        assert_eq!(cdf.len(), 10);
        assert_eq!(cdf[0], (10.0, 0.1));
        assert_eq!(cdf[9], (100.0, 1.0));
        let short = r.cdf(4);
        assert_eq!(short.len(), 4);
        assert_eq!(short.first().copied(), Some((10.0, 0.1)));
        assert_eq!(short.last().copied(), Some((100.0, 1.0)));

        let b = r.bucketed(Duration::from_secs(2));
        // [0,2): 10..40, [2,4): 50..80, [4,6): 90, 100.
        assert_eq!(b.len(), 3);
        assert_eq!(b[0].t, 0.0);
        assert_eq!((b[0].count, b[0].p50, b[0].max), (4, 20.0, 40.0));
        assert_eq!((b[2].t, b[2].count, b[2].p95), (4.0, 2, 100.0));
    }

    #[test]
    fn merge_rebases_time() {
        let t0 = Instant::now();
        let mut a = LatencyRecorder::new(t0);
        let mut b = LatencyRecorder::new(t0 + Duration::from_secs(2));
        b.record(t0 + Duration::from_secs(3), 5.0);
        a.record_duration(t0 + Duration::from_secs(1), ms(12));
        a.merge(&b);
        assert_eq!(
            a.samples(),
            [
                Sample {
                    t: 1.0,
                    value: 12.0
                },
                Sample { t: 3.0, value: 5.0 }
            ]
        );
    }

    #[test]
    fn freezes_are_gaps_longer_than_the_threshold() {
        let t0 = Instant::now();
        // Frames every 33 ms, then a 300 ms gap (not a freeze), then a 450 ms one, out of order.
        let offsets = [0, 33, 66, 366, 399, 849, 882];
        let mut arrivals: Vec<Instant> = offsets.iter().map(|&o| t0 + ms(o)).collect();
        arrivals.swap(0, 6);
        let f = detect_freezes(&arrivals, FREEZE_GAP);
        assert_eq!(
            f,
            [Freeze {
                from: t0 + ms(399),
                gap: ms(450)
            }]
        );
        assert!(detect_freezes(&[], FREEZE_GAP).is_empty());
        assert!(detect_freezes(&[t0], FREEZE_GAP).is_empty());
    }

    #[test]
    fn rfc3550_jitter_by_hand() {
        // 90 kHz video, a frame every 40 ms (3600 units); arrivals at 0, 50, 90 ms.
        let t0 = Instant::now();
        let mut j = JitterEstimator::new(90_000);
        j.update(t0, 1000);
        assert_eq!(j.jitter_units(), 0.0);
        // D = 4500 - 3600 = 900 → J = 900 / 16 = 56.25.
        j.update(t0 + ms(50), 4600);
        assert!((j.jitter_units() - 56.25).abs() < 1e-9);
        // D = 3600 - 3600 = 0 → J = 56.25 × 15/16 = 52.734375 units = 0.5859375 ms.
        j.update(t0 + ms(90), 8200);
        assert!((j.jitter_units() - 52.734375).abs() < 1e-9);
        assert!((j.jitter_ms() - 0.5859375).abs() < 1e-9);
    }

    #[test]
    fn rfc3550_jitter_handles_timestamp_wrap_and_steady_streams() {
        let t0 = Instant::now();
        let mut j = JitterEstimator::new(48_000);
        // 20 ms Opus frames (960 units) arriving exactly on time across the u32 wrap.
        let mut ts = u32::MAX - 2000;
        for i in 0..10u64 {
            j.update(t0 + ms(20 * i), ts);
            ts = ts.wrapping_add(960);
        }
        assert!(j.jitter_units().abs() < 1e-6, "{}", j.jitter_units());
    }
}
