//! Counters and histograms for `/metrics`, in the Prometheus text exposition format.
//!
//! A handful of fixed series do not justify a metrics framework: atomics and a renderer suffice.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the append-latency histogram, in seconds.
const LATENCY_BUCKETS_S: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// Upper bounds of the batch-size histogram, in records.
const BATCH_BUCKETS: [u64; 7] = [1, 10, 50, 100, 250, 500, 1000];

/// A fixed-bucket histogram.
struct Histogram<const N: usize> {
    buckets: [AtomicU64; N],
    count: AtomicU64,
    /// Sum in microseconds (latency) or records (batch size).
    sum: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    fn new() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }

    fn observe(&self, bucket_index: usize, amount: u64) {
        for b in &self.buckets[bucket_index.min(N)..] {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(amount, Ordering::Relaxed);
    }
}

/// The service's metrics.
/// Request counts at one moment; the difference of two is what happened between them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestTotals {
    /// Answered requests.
    pub requests: u64,
    /// Of them, 4xx.
    pub client_errors: u64,
    /// Of them, 5xx.
    pub server_errors: u64,
}

impl RequestTotals {
    /// What was counted since `earlier`.
    pub fn since(self, earlier: RequestTotals) -> RequestTotals {
        RequestTotals {
            requests: self.requests.saturating_sub(earlier.requests),
            client_errors: self.client_errors.saturating_sub(earlier.client_errors),
            server_errors: self.server_errors.saturating_sub(earlier.server_errors),
        }
    }
}

pub struct Metrics {
    appended_records: AtomicU64,
    append_requests: AtomicU64,
    append_failures: AtomicU64,
    rate_limited: AtomicU64,
    client_errors: AtomicU64,
    server_errors: AtomicU64,
    /// Every answered request, for the periodic summary line.
    requests: AtomicU64,
    latency: Histogram<10>,
    batch: Histogram<7>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            appended_records: AtomicU64::new(0),
            append_requests: AtomicU64::new(0),
            append_failures: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            client_errors: AtomicU64::new(0),
            server_errors: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            latency: Histogram::new(),
            batch: Histogram::new(),
        }
    }
}

impl Metrics {
    /// Records one successful append request of `batch` records, `new` of them not appended
    /// before (the rest were idempotent retries).
    pub fn append_ok(&self, batch: usize, new: usize, took: Duration) {
        self.append_requests.fetch_add(1, Ordering::Relaxed);
        self.appended_records
            .fetch_add(new as u64, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        let i = LATENCY_BUCKETS_S
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BUCKETS_S.len());
        self.latency
            .observe(i, u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
        // The histogram describes requests (how large clients make their batches), so it counts
        // every record of the batch, retried ones included.
        let n = batch as u64;
        let j = BATCH_BUCKETS
            .iter()
            .position(|b| n <= *b)
            .unwrap_or(BATCH_BUCKETS.len());
        self.batch.observe(j, n);
    }

    /// Records a failed append request.
    pub fn append_failed(&self) {
        self.append_requests.fetch_add(1, Ordering::Relaxed);
        self.append_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a rate-limit rejection.
    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a response status.
    pub fn status(&self, status: u16) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if (400..500).contains(&status) {
            self.client_errors.fetch_add(1, Ordering::Relaxed);
        } else if status >= 500 {
            self.server_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Answered requests, client errors and server errors so far (for the log summary).
    pub fn request_totals(&self) -> RequestTotals {
        RequestTotals {
            requests: self.requests.load(Ordering::Relaxed),
            client_errors: self.client_errors.load(Ordering::Relaxed),
            server_errors: self.server_errors.load(Ordering::Relaxed),
        }
    }

    /// Renders every series; `gauges` adds point-in-time values (queue depth, checkpoint age).
    pub fn render(&self, gauges: &[(&str, &str, f64)]) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        };
        counter(
            &mut out,
            "auditex_appended_records_total",
            "Records appended (new, not duplicates).",
            &self.appended_records,
        );
        counter(
            &mut out,
            "auditex_append_requests_total",
            "Append requests answered.",
            &self.append_requests,
        );
        counter(
            &mut out,
            "auditex_append_failures_total",
            "Append requests that failed.",
            &self.append_failures,
        );
        counter(
            &mut out,
            "auditex_rate_limited_total",
            "Requests rejected by rate limits.",
            &self.rate_limited,
        );
        counter(
            &mut out,
            "auditex_http_client_errors_total",
            "Responses with a 4xx status.",
            &self.client_errors,
        );
        counter(
            &mut out,
            "auditex_http_server_errors_total",
            "Responses with a 5xx status.",
            &self.server_errors,
        );

        let _ = writeln!(
            out,
            "# HELP auditex_append_latency_seconds Append request latency until durable.\n# TYPE auditex_append_latency_seconds histogram"
        );
        for (b, c) in LATENCY_BUCKETS_S.iter().zip(&self.latency.buckets) {
            let _ = writeln!(
                out,
                "auditex_append_latency_seconds_bucket{{le=\"{b}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let count = self.latency.count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "auditex_append_latency_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "auditex_append_latency_seconds_sum {}",
            self.latency.sum.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "auditex_append_latency_seconds_count {count}");

        let _ = writeln!(
            out,
            "# HELP auditex_append_batch_records Records per append request.\n# TYPE auditex_append_batch_records histogram"
        );
        for (b, c) in BATCH_BUCKETS.iter().zip(&self.batch.buckets) {
            let _ = writeln!(
                out,
                "auditex_append_batch_records_bucket{{le=\"{b}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let count = self.batch.count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "auditex_append_batch_records_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "auditex_append_batch_records_sum {}",
            self.batch.sum.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "auditex_append_batch_records_count {count}");

        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_histogram_counts_whole_batches_and_the_total_counts_new_records() {
        let metrics = Metrics::default();
        metrics.append_ok(5, 2, Duration::from_millis(3));
        metrics.append_ok(1, 0, Duration::from_millis(1));
        let text = metrics.render(&[]);
        let line = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("{name} in {text}"))
                .to_owned()
        };
        assert_eq!(
            line("auditex_append_batch_records_sum "),
            "auditex_append_batch_records_sum 6"
        );
        assert_eq!(
            line("auditex_append_batch_records_count "),
            "auditex_append_batch_records_count 2"
        );
        assert_eq!(
            line("auditex_appended_records_total "),
            "auditex_appended_records_total 2"
        );
    }
}
