//! The load client the end-to-end benchmarks share: request bodies with unique event ids, posting
//! with retries on 429/503, batched ingestion at a capped rate, closed-loop clients, the views'
//! lag, percentiles, the raw Ed25519 baseline, and a process's resident memory and CPU time.
//! Included with `#[path]`.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use ed25519_dalek::{Signer, SigningKey};
use rayon::prelude::*;

use super::served::Served;

/// The `p`-th percentile (0..=100) of `v`, sorted here.
pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[i.min(v.len() - 1)]
}

/// Ed25519 signatures per second on every core.
pub fn raw_sign_all_cores(count: u64) -> f64 {
    let key = SigningKey::from_bytes(&[3; 32]);
    let start = Instant::now();
    (0..count).into_par_iter().for_each(|i| {
        let mut m = [0u8; 32];
        m[..8].copy_from_slice(&i.to_le_bytes());
        std::hint::black_box(key.sign(&m));
    });
    count as f64 / start.elapsed().as_secs_f64()
}

/// Pre-serialized payloads, cycled; every record gets a fresh event id.
pub struct Bodies {
    payloads: Vec<String>,
    next: AtomicU64,
}

impl Bodies {
    pub fn new() -> Arc<Self> {
        Arc::new(Bodies {
            payloads: (0..1000)
                .map(|n| auditex::cli::synthetic_decision(n).to_string())
                .collect(),
            next: AtomicU64::new(0),
        })
    }

    pub fn record(&self, out: &mut String) {
        let n = self.next.fetch_add(1, Ordering::Relaxed) as usize;
        out.push_str(r#"{"event_id":""#);
        out.push_str(&uuid::Uuid::now_v7().to_string());
        out.push_str(r#"","event_type":"decision","payload":"#);
        out.push_str(&self.payloads[n % self.payloads.len()]);
        out.push('}');
    }

    pub fn batch(&self, records: usize) -> Bytes {
        let mut s = String::with_capacity(records * 450);
        s.push_str(r#"{"records":["#);
        for i in 0..records {
            if i > 0 {
                s.push(',');
            }
            self.record(&mut s);
        }
        s.push_str("]}");
        Bytes::from(s)
    }

    pub fn single(&self) -> Bytes {
        let mut s = String::with_capacity(450);
        self.record(&mut s);
        Bytes::from(s)
    }
}

/// Posts `body` to `path` until it is accepted (429/503 are retried after a short pause, as a
/// pipeline would); returns the answer.
pub async fn post(served: &Served, key: &str, path: &str, body: Bytes) -> serde_json::Value {
    loop {
        let resp = served
            .client
            .post(format!("{}{path}", served.url))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .expect("request");
        let status = resp.status();
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || status == reqwest::StatusCode::SERVICE_UNAVAILABLE
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        assert!(
            status.is_success(),
            "{status}: {}",
            resp.text().await.unwrap_or_default()
        );
        return resp.json().await.expect("json");
    }
}

/// The largest lag (records, seconds) of any view of the read key's tenant.
pub async fn lag(served: &Served, read: &str) -> (u64, f64) {
    let status: serde_json::Value = served
        .client
        .get(format!("{}/v1/projections", served.url))
        .bearer_auth(read)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let views = status["projections"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let records = views
        .iter()
        .filter_map(|v| v["lag_records"].as_u64())
        .max()
        .unwrap_or(0);
    let seconds = views
        .iter()
        .filter_map(|v| v["lag_seconds"].as_f64())
        .fold(0.0, f64::max);
    (records, seconds)
}

/// Batched appends from 4 connections until `stop` (or `limit` records), paced to at most `cap`
/// records per second when given; records appended.
pub async fn batched_until(
    served: &Arc<Served>,
    ingest: &str,
    bodies: &Arc<Bodies>,
    stop: &Arc<AtomicBool>,
    cap: Option<f64>,
    limit: Option<u64>,
) -> u64 {
    let sent = Arc::new(AtomicU64::new(0));
    let claimed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (served, key, bodies, stop, sent, claimed) = (
            served.clone(),
            ingest.to_owned(),
            bodies.clone(),
            stop.clone(),
            sent.clone(),
            claimed.clone(),
        );
        tasks.push(tokio::spawn(async move {
            // A batch is claimed before it is sent, so the tasks together stop at `limit`.
            while !stop.load(Ordering::Relaxed)
                && limit.is_none_or(|l| claimed.fetch_add(1000, Ordering::Relaxed) < l)
            {
                if let Some(cap) = cap {
                    let due = sent.load(Ordering::Relaxed) as f64 / cap;
                    let now = start.elapsed().as_secs_f64();
                    if due > now {
                        tokio::time::sleep(Duration::from_secs_f64((due - now).min(0.5))).await;
                        continue;
                    }
                }
                let body = bodies.batch(1000);
                post(&served, &key, "/v1/records/batch", body).await;
                sent.fetch_add(1000, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.expect("submitter");
    }
    sent.load(Ordering::Relaxed)
}

/// `connections` clients, each sending `request` again as soon as it is answered, for
/// `window`: requests per second and each request's latency in milliseconds.
pub async fn closed_loop<F, Fut>(
    connections: usize,
    window: Duration,
    request: F,
) -> (f64, Vec<f64>)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let deadline = Instant::now() + window;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                request().await;
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            latencies
        }));
    }
    let start = Instant::now();
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("client"));
    }
    (
        latencies.len() as f64 / start.elapsed().as_secs_f64(),
        latencies,
    )
}

/// CPU time (user and system, all threads) that process `pid` has used, in seconds; `None` when
/// it cannot be read. `pid` 0 means this process.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let path = if pid == 0 {
        "/proc/self/stat".to_owned()
    } else {
        format!("/proc/{pid}/stat")
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis are
    // state (3), …, utime (14), stime (15), in clock ticks.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: `sysconf` reads a constant of the system; it takes no pointers.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (per_second > 0).then(|| ticks / per_second as f64)
}

/// The CPU times of a server process and of this one (the load generator) at one moment, to
/// tell the cores each used since ([`CpuMark::cores_used`]).
pub struct CpuMark {
    pid: u32,
    server: Option<f64>,
    generator: Option<f64>,
    at: Instant,
}

impl CpuMark {
    /// This moment's CPU times of the server `pid` and of this process.
    pub fn now(pid: u32) -> CpuMark {
        CpuMark {
            pid,
            server: cpu_seconds(pid),
            generator: cpu_seconds(0),
            at: Instant::now(),
        }
    }

    /// Cores the two used since the mark, as "server 1.71, load generator 0.22 of 2 cores".
    pub fn cores_used(&self) -> String {
        let elapsed = self.at.elapsed().as_secs_f64().max(0.001);
        let used = |now: Option<f64>, then: Option<f64>| match (now, then) {
            (Some(n), Some(t)) => format!("{:.2}", (n - t) / elapsed),
            _ => "?".to_owned(),
        };
        let cores = std::thread::available_parallelism().map_or(0, std::num::NonZeroUsize::get);
        format!(
            "server {}, load generator {} of {cores} cores",
            used(cpu_seconds(self.pid), self.server),
            used(cpu_seconds(0), self.generator),
        )
    }
}

/// Resident set of `pid` in MB.
pub fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
