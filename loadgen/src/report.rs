//! The run's figures: totals, percentiles, the per-second timeline, and their outputs (summary
//! table, JSON, `.hgrm` percentile distributions, an SVG percentile plot, comparisons).

use std::fmt::Write as _;
use std::path::Path;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::settings::RunSettings;

/// Percentiles of a latency histogram, µs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    /// 50th.
    pub p50: u64,
    /// 90th.
    pub p90: u64,
    /// 99th.
    pub p99: u64,
    /// 99.9th.
    pub p999: u64,
    /// 99.99th.
    pub p9999: u64,
    /// Largest.
    pub max: u64,
    /// Mean.
    pub mean: f64,
    /// Samples.
    pub count: u64,
}

impl Percentiles {
    /// From a histogram.
    pub fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        Self {
            p50: histogram.value_at_quantile(0.50),
            p90: histogram.value_at_quantile(0.90),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            p9999: histogram.value_at_quantile(0.9999),
            max: histogram.max(),
            mean: histogram.mean(),
            count: histogram.len(),
        }
    }
}

/// Producer figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProduceFigures {
    /// Messages the producers tried to send, warm-up included.
    pub attempted: u64,
    /// Messages acknowledged (after the warm-up).
    pub messages: u64,
    /// Value bytes acknowledged.
    pub bytes: u64,
    /// Megabytes (10^6) per second.
    pub mb_per_s: f64,
    /// Messages per second.
    pub msgs_per_s: f64,
    /// Send-to-ack latency from the intended send time, µs.
    pub latency_us: Percentiles,
}

/// Consumer figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConsumeFigures {
    /// Messages consumed (after the warm-up), over all consumers.
    pub messages: u64,
    /// Value bytes consumed.
    pub bytes: u64,
    /// Megabytes per second.
    pub mb_per_s: f64,
    /// Messages per second.
    pub msgs_per_s: f64,
}

/// End-to-end figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EndToEndFigures {
    /// Latency from the intended send time to consumption, µs.
    pub latency_us: Percentiles,
}

/// One second of the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Second {
    /// Seconds since the start.
    pub second: u64,
    /// In the warm-up.
    pub warmup: bool,
    /// Messages acknowledged.
    pub produced: u64,
    /// MB acknowledged.
    pub produced_mb: f64,
    /// p99 send-to-ack latency of this second, µs.
    pub produce_p99_us: u64,
    /// Messages consumed.
    pub consumed: u64,
    /// p99 end-to-end latency of this second, µs.
    pub e2e_p99_us: u64,
    /// Errors.
    pub errors: u64,
}

/// The machine the run was on.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Host {
    /// Host name.
    pub hostname: String,
    /// Cores visible.
    pub cores: usize,
    /// Kernel release.
    pub kernel: String,
}

impl Host {
    /// This machine.
    pub fn current() -> Self {
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .map(|text| text.trim().to_string())
                .unwrap_or_default()
        };
        Self {
            hostname: read("/proc/sys/kernel/hostname"),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel: read("/proc/sys/kernel/osrelease"),
        }
    }
}

/// The JSON report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    /// The settings.
    pub params: RunSettings,
    /// The machine.
    pub host: Host,
    /// Measured seconds (after the warm-up).
    pub seconds: f64,
    /// Producers.
    pub produce: ProduceFigures,
    /// Consumers.
    pub consume: ConsumeFigures,
    /// End to end.
    pub e2e: EndToEndFigures,
    /// Errors (failed sends, fetch errors).
    pub errors: u64,
    /// Per-second timeline.
    pub timeline: Vec<Second>,
}

fn format_us(us: u64) -> String {
    if us >= 10_000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else {
        format!("{us} µs")
    }
}

impl RunReport {
    /// The summary table printed at the end of a run.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let p = &self.params;
        let _ = writeln!(
            out,
            "\nstreambus-loadgen: {} producers, {} consumers, {} B messages, acks={:?}, {:?}, rate {}, {:.2} s measured",
            p.producers,
            p.consumers,
            p.message_bytes,
            p.acks,
            p.compression,
            if p.rate == 0 { "max".to_string() } else { format!("{} msgs/s", p.rate) },
            self.seconds
        );
        let _ = writeln!(
            out,
            "{:<10} {:>14} {:>12} {:>14}",
            "", "messages", "MB/s", "msgs/s"
        );
        let _ = writeln!(
            out,
            "{:<10} {:>14} {:>12.1} {:>14.0}",
            "produce", self.produce.messages, self.produce.mb_per_s, self.produce.msgs_per_s
        );
        let _ = writeln!(
            out,
            "{:<10} {:>14} {:>12.1} {:>14.0}",
            "consume", self.consume.messages, self.consume.mb_per_s, self.consume.msgs_per_s
        );
        let _ = writeln!(
            out,
            "{:<14} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "latency", "p50", "p90", "p99", "p99.9", "p99.99", "max"
        );
        for (name, latency) in [
            ("send→ack", &self.produce.latency_us),
            ("end-to-end", &self.e2e.latency_us),
        ] {
            if latency.count == 0 {
                continue;
            }
            let _ = writeln!(
                out,
                "{:<14} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
                name,
                format_us(latency.p50),
                format_us(latency.p90),
                format_us(latency.p99),
                format_us(latency.p999),
                format_us(latency.p9999),
                format_us(latency.max)
            );
        }
        let _ = writeln!(out, "errors: {}", self.errors);
        out
    }
}

/// Writes HdrHistogram's percentile-distribution text (the `.hgrm` format its plotter reads),
/// values in milliseconds.
pub fn write_hgrm(histogram: &Histogram<u64>, path: &Path) -> std::io::Result<()> {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    for step in histogram.iter_quantiles(5) {
        total += step.count_since_last_iteration();
        let quantile = step.quantile_iterated_to();
        let inverse = if quantile < 1.0 {
            1.0 / (1.0 - quantile)
        } else {
            f64::INFINITY
        };
        if inverse.is_finite() {
            let _ = writeln!(
                out,
                "{:>12.3} {:>2.12} {:>10} {:>14.2}",
                step.value_iterated_to() as f64 / 1000.0,
                quantile,
                total,
                inverse
            );
        } else {
            let _ = writeln!(
                out,
                "{:>12.3} {:>2.12} {:>10}",
                step.value_iterated_to() as f64 / 1000.0,
                quantile,
                total
            );
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        histogram.mean() / 1000.0,
        histogram.stdev() / 1000.0
    );
    let _ = writeln!(
        out,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        histogram.max() as f64 / 1000.0,
        histogram.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        histogram.buckets(),
        histogram.distinct_values()
    );
    std::fs::write(path, out)
}

/// Writes an SVG plot of latency against percentile (log scale of 1/(1-p), as HdrHistogram's
/// plotter draws it) for each named histogram.
pub fn write_plot(
    series: &[(&str, &Histogram<u64>)],
    title: &str,
    path: &Path,
) -> std::io::Result<()> {
    const WIDTH: f64 = 900.0;
    const HEIGHT: f64 = 500.0;
    const LEFT: f64 = 80.0;
    const RIGHT: f64 = 30.0;
    const TOP: f64 = 50.0;
    const BOTTOM: f64 = 60.0;
    const NINES: f64 = 5.0; // up to 99.999%
    const COLOURS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
    let max_ms = series
        .iter()
        .map(|(_, h)| h.max() as f64 / 1000.0)
        .fold(0.001, f64::max);
    let x = |quantile: f64| {
        let nines = (-(1.0 - quantile).max(1e-9).log10()).min(NINES);
        LEFT + nines / NINES * (WIDTH - LEFT - RIGHT)
    };
    let y = |ms: f64| TOP + (1.0 - ms / (max_ms * 1.05)) * (HEIGHT - TOP - BOTTOM);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="25" font-size="16" text-anchor="middle">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
    for (label, quantile) in [
        ("0%", 0.0),
        ("90%", 0.9),
        ("99%", 0.99),
        ("99.9%", 0.999),
        ("99.99%", 0.9999),
        ("99.999%", 0.99999),
    ] {
        let px = x(quantile);
        let _ = writeln!(
            svg,
            r##"<line x1="{px}" y1="{TOP}" x2="{px}" y2="{}" stroke="#ddd"/>"##,
            HEIGHT - BOTTOM
        );
        let _ = writeln!(
            svg,
            r#"<text x="{px}" y="{}" text-anchor="middle">{label}</text>"#,
            HEIGHT - BOTTOM + 18.0
        );
    }
    for step in 0..=5 {
        let ms = max_ms * 1.05 * step as f64 / 5.0;
        let py = y(ms);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{py}" x2="{}" y2="{py}" stroke="#eee"/>"##,
            WIDTH - RIGHT
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end">{ms:.2} ms</text>"#,
            LEFT - 6.0,
            py + 4.0
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">percentile</text>"#,
        WIDTH / 2.0,
        HEIGHT - 15.0
    );
    for (index, (name, histogram)) in series.iter().enumerate() {
        if histogram.is_empty() {
            continue;
        }
        let colour = COLOURS[index % COLOURS.len()];
        let points: Vec<String> = histogram
            .iter_quantiles(10)
            .filter(|step| step.quantile_iterated_to() < 1.0)
            .map(|step| {
                format!(
                    "{:.1},{:.1}",
                    x(step.quantile_iterated_to()),
                    y(step.value_iterated_to() as f64 / 1000.0)
                )
            })
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" fill="{colour}">{}</text>"#,
            LEFT + 10.0,
            TOP + 16.0 * (index as f64 + 1.0),
            escape(name)
        );
    }
    let _ = writeln!(svg, "</svg>");
    std::fs::write(path, svg)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Two runs side by side, with the second / first ratio.
pub fn compare(first: &RunReport, second: &RunReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<26} {:>16} {:>16} {:>10}",
        "metric", "first", "second", "ratio"
    );
    let mut row = |name: &str, a: f64, b: f64| {
        let ratio = if a > 0.0 {
            format!("{:.3}", b / a)
        } else {
            "-".into()
        };
        let _ = writeln!(out, "{name:<26} {a:>16.1} {b:>16.1} {ratio:>10}");
    };
    row(
        "produce MB/s",
        first.produce.mb_per_s,
        second.produce.mb_per_s,
    );
    row(
        "produce msgs/s",
        first.produce.msgs_per_s,
        second.produce.msgs_per_s,
    );
    row(
        "consume MB/s",
        first.consume.mb_per_s,
        second.consume.mb_per_s,
    );
    for (name, a, b) in [
        (
            "send→ack",
            &first.produce.latency_us,
            &second.produce.latency_us,
        ),
        ("end-to-end", &first.e2e.latency_us, &second.e2e.latency_us),
    ] {
        for (label, x, y) in [
            ("p50", a.p50, b.p50),
            ("p90", a.p90, b.p90),
            ("p99", a.p99, b.p99),
            ("p99.9", a.p999, b.p999),
            ("p99.99", a.p9999, b.p9999),
            ("max", a.max, b.max),
        ] {
            row(&format!("{name} {label} µs"), x as f64, y as f64);
        }
    }
    row("errors", first.errors as f64, second.errors as f64);
    out
}
