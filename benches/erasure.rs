//! Crypto-shredding costs (issue 20), on each backend:
//!
//! - `erase`: `Store::erase_subject` of a subject with 10,000 records, each with one erasable
//!   value (one transaction: the erasure record, 10,000 values deleted and listed as erased,
//!   the data key destroyed, the journal written);
//! - `ingest`: batched appends (1000-record requests from 4 concurrent submitters) of synthetic
//!   decisions without erasable fields and with one erasable field each, alternated in the same
//!   run, reported as ratios: every decision names a subject of its own, appended once as
//!   subjects new to the tenant (a data key made and stored per subject) and once more as known
//!   subjects (each key taken from the appender's cache); each pass is divided by the same pass
//!   without the field;
//! - `https`: the same comparison as users see it: the release `auditex serve` (its read side
//!   and checkpointing running) started as a process of its own on the backend, driven over
//!   HTTPS by this process with `POST /v1/records/batch` (1000 records per request, 4
//!   connections); rounds alternate between a tenant whose decisions carry no erasable field and
//!   one whose decisions carry one each.
//!
//! Run: `cargo bench --bench erasure` (SQLite), with `AUDITEX_BENCH_POSTGRES_ADMIN_URL` and
//! `AUDITEX_BENCH_POSTGRES_APP_URL` set to include PostgreSQL; `AUDITEX_BENCH_RECORDS` sets the
//! records per ingestion measurement (default 20,000), `AUDITEX_BENCH_ROUNDS` the alternations
//! (default 3; the median is reported); `AUDITEX_BENCH_HTTPS_RECORDS` (default 50,000) and
//! `AUDITEX_BENCH_HTTPS_ROUNDS` (default 5) the same for the HTTPS comparison;
//! `AUDITEX_BENCH_HTTPS_ONLY=plain` or `=erasable` runs only that side of it (no ratio), so that
//! a profile of the server (`perf record -p <server>`) covers one kind of record;
//! `AUDITEX_BENCH_INGEST_ONLY` does the same for the in-process comparison.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

#[path = "support/settings.rs"]
mod settings;
use settings::{env_u64, median};

use auditex::store::crypto::MasterKey;
use auditex::store::subjects::SubjectErasure;
use auditex::store::{DatabaseUrl, Store, StoreConfig};
use ledger::draft::{ClientDraft, prepare_client_draft};
use ledger::types::TenantId;

#[path = "support/served.rs"]
mod served;
use served::{Served, serve, views_caught_up};

/// Records of the subject erased.
const ERASED_RECORDS: u64 = 10_000;

/// Synthetic decision `n`, with one erasable field when `erasable`.
fn decision(n: u64, erasable: bool, subject: Option<&str>) -> ClientDraft {
    let mut payload = auditex::cli::synthetic_decision(n);
    if let Some(s) = subject {
        payload["subject_ref"] = serde_json::json!(s);
    }
    let mut fields = BTreeMap::new();
    if erasable {
        fields.insert(
            "name".to_owned(),
            serde_json::json!(format!("Person Number {n}")),
        );
    }
    let id = uuid::Uuid::now_v7().to_string();
    prepare_client_draft(&id, "decision", &payload, &fields, rand::random).expect("valid")
}

/// Appends `drafts` in 1000-record requests from 4 concurrent submitters; records per second.
async fn batched(store: &Store, tenant: &TenantId, drafts: Vec<ClientDraft>) -> f64 {
    const SUBMITTERS: usize = 4;
    let count = drafts.len();
    let batches: Vec<Vec<ClientDraft>> = drafts.chunks(1000).map(<[ClientDraft]>::to_vec).collect();
    let queue = Arc::new(std::sync::Mutex::new(batches));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..SUBMITTERS {
        let (store, tenant, queue) = (store.clone(), tenant.clone(), queue.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().expect("queue").pop();
                let Some(batch) = next else { break };
                store.append(&tenant, batch).await.expect("append");
            }
        }));
    }
    for t in tasks {
        t.await.expect("submitter");
    }
    count as f64 / start.elapsed().as_secs_f64()
}

async fn run_backend(
    name: &str,
    database: DatabaseUrl,
    admin: Option<String>,
    count: u64,
    rounds: u64,
) {
    let journal = tempfile::tempdir().expect("tempdir");
    let database_copy = database.clone();
    let config_admin = admin.clone();
    let mut config = StoreConfig::new(database, MasterKey::generate());
    config.admin_database = admin;
    config.checkpoint_dir = Some(journal.path().to_path_buf());
    let store = Store::open_with_workers(config).await.expect("open store");
    let run = std::process::id();

    // Ingestion, alternating without and with an erasable field, each on a tenant of its own,
    // every decision naming a subject of its own. Each tenant gets two passes: the first with
    // subjects new to it (with a field: a data key made for each), the second naming the same
    // subjects again (keys from the appender's cache). Each pass is compared with the same pass
    // without the field, so both sides run on a ledger of the same size.
    let (mut plain_first, mut plain_second, mut fresh, mut known) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let sides = sides("AUDITEX_BENCH_INGEST_ONLY");
    for round in 0..rounds {
        for erasable in [false, true]
            .into_iter()
            .filter(|side| sides.contains(side))
        {
            let tenant =
                TenantId::parse(&format!("ingest-{run}-{round}-{erasable}")).expect("tenant");
            store.create_tenant(&tenant).await.expect("tenant");
            let pass = || {
                (0..count)
                    .map(|n| decision(n, erasable, Some(&format!("subject-{round}-{n}"))))
                    .collect::<Vec<_>>()
            };
            let first = batched(&store, &tenant, pass()).await;
            let second = batched(&store, &tenant, pass()).await;
            if erasable {
                fresh.push(first);
                known.push(second);
            } else {
                plain_first.push(first);
                plain_second.push(second);
            }
        }
    }
    if !plain_first.is_empty() {
        let (p1, p2) = (median(plain_first.clone()), median(plain_second.clone()));
        println!("| {name} | ingest, no erasable field, first pass | {p1:>8.0} rec/s | 1.00 |");
        println!("| {name} | ingest, no erasable field, second pass | {p2:>8.0} rec/s | 1.00 |");
    }
    if !fresh.is_empty() {
        let (f, k) = (median(fresh), median(known));
        for (what, s, p) in [
            (
                "first pass: new subjects (a key made per subject)",
                f,
                &plain_first,
            ),
            (
                "second pass: known subjects (cached keys)",
                k,
                &plain_second,
            ),
        ] {
            let ratio = if p.is_empty() {
                "—".to_owned()
            } else {
                let r = s / median(p.clone());
                format!("{r:.3} ({:+.1} %)", (r - 1.0) * 100.0)
            };
            println!(
                "| {name} | ingest, one erasable field per record, {what} | {s:>8.0} rec/s | {ratio} |"
            );
        }
    }

    // Erasing a subject with 10,000 records, beside 10,000 of other subjects.
    let mut times = Vec::new();
    for round in 0..rounds {
        let tenant = TenantId::parse(&format!("erase-{run}-{round}")).expect("tenant");
        store.create_tenant(&tenant).await.expect("tenant");
        let mut drafts = Vec::new();
        for n in 0..ERASED_RECORDS {
            drafts.push(decision(n, true, Some("the-subject")));
            drafts.push(decision(n, true, None));
        }
        batched(&store, &tenant, drafts).await;
        let start = Instant::now();
        let outcome = store
            .erase_subject(
                &tenant,
                SubjectErasure {
                    subject_ref: "the-subject".to_owned(),
                    event_ids: None,
                    fields: None,
                    reason: "benchmark".to_owned(),
                    legal_basis: "GDPR Art. 17(1)(a)".to_owned(),
                },
            )
            .await
            .expect("erase");
        times.push(start.elapsed().as_secs_f64());
        assert_eq!(outcome.erased, ERASED_RECORDS);
    }
    let t = median(times);
    println!(
        "| {name} | erase a subject with {ERASED_RECORDS} records | {:>8.0} ms | {:.2} of the 1 s target |",
        t * 1000.0,
        t
    );
    store.shutdown().await;
    https(name, &database_copy, config_admin.as_deref()).await;
}

/// The request bodies of `count` decisions in 1000-record batches, serialized up front so the
/// client's work is not in the measurement.
fn bodies(count: u64, erasable: bool, offset: u64) -> Vec<axum::body::Bytes> {
    let events: Vec<serde_json::Value> = (0..count)
        .map(|n| {
            let mut e = serde_json::json!({
                "event_id": uuid::Uuid::now_v7().to_string(),
                "event_type": "decision",
                "payload": auditex::cli::synthetic_decision(offset + n),
            });
            if erasable {
                e["erasable"] =
                    serde_json::json!({"name": format!("Person Number {}", offset + n)});
            }
            e
        })
        .collect();
    events
        .chunks(1000)
        .map(|c| {
            axum::body::Bytes::from(
                serde_json::to_vec(&serde_json::json!({"records": c})).expect("json"),
            )
        })
        .collect()
}

/// Posts `bodies` over 4 connections; records per second.
async fn post_all(served: &Served, key: &str, bodies: Vec<axum::body::Bytes>, count: u64) -> f64 {
    let queue = Arc::new(std::sync::Mutex::new(bodies));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (queue, client, url, key) = (
            queue.clone(),
            served.client.clone(),
            served.url.clone(),
            key.to_owned(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().expect("queue").pop();
                let Some(body) = next else { break };
                loop {
                    let resp = client
                        .post(format!("{url}/v1/records/batch"))
                        .bearer_auth(&key)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .expect("request");
                    let status = resp.status();
                    // Back-pressure (429/503) is retried, as a pipeline would.
                    if status == reqwest::StatusCode::TOO_MANY_REQUESTS
                        || status == reqwest::StatusCode::SERVICE_UNAVAILABLE
                    {
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        continue;
                    }
                    assert!(
                        status.is_success(),
                        "{status}: {}",
                        resp.text().await.unwrap_or_default()
                    );
                    break;
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("client");
    }
    count as f64 / start.elapsed().as_secs_f64()
}

/// The sides of a comparison the variable `name` asks for: `plain` (no erasable field),
/// `erasable`, or both when unset, so that a profile covers one kind of record.
fn sides(name: &str) -> Vec<bool> {
    match std::env::var(name).ok().as_deref() {
        None | Some("") => vec![false, true],
        Some("plain") => vec![false],
        Some("erasable") => vec![true],
        Some(other) => panic!("{name} is plain or erasable, not {other:?}"),
    }
}

/// The ingestion comparison over HTTPS against `auditex serve` in a process of its own. Each
/// measurement starts with both tenants' views caught up, and the order alternates per round,
/// so neither side pays for the other's read-side work or runs on a larger database.
async fn https(name: &str, database: &DatabaseUrl, admin: Option<&str>) {
    let count = env_u64("AUDITEX_BENCH_HTTPS_RECORDS", 50_000);
    let rounds = env_u64("AUDITEX_BENCH_HTTPS_ROUNDS", 5).max(1);
    let run = std::process::id();
    let (plain_tenant, erasable_tenant) = (
        format!("https-{run}-plain"),
        format!("https-{run}-erasable"),
    );
    // The service gets a database file of its own beside the in-process one.
    let database = match database {
        DatabaseUrl::Sqlite(path) => DatabaseUrl::Sqlite(path.with_extension("https.db")),
        other => other.clone(),
    };
    let sides = sides("AUDITEX_BENCH_HTTPS_ONLY");
    let (served, keys) = serve(
        &database,
        admin,
        &[&plain_tenant, &erasable_tenant],
        &[("RUST_LOG", "warn")],
    );
    let (mut plain, mut erasable) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let offset = round * count;
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for with_value in order.into_iter().filter(|side| sides.contains(side)) {
            let ingest = if with_value { &keys[2] } else { &keys[0] };
            views_caught_up(&served, &keys[1]).await;
            views_caught_up(&served, &keys[3]).await;
            let rate = post_all(&served, ingest, bodies(count, with_value, offset), count).await;
            if with_value {
                erasable.push(rate);
            } else {
                plain.push(rate);
            }
        }
    }
    let line = |what: &str, rate: f64, ratio: &str| {
        println!(
            "| {name} | HTTPS ingest (auditex serve, read side on), {what} | {rate:>8.0} rec/s | {ratio} |"
        );
    };
    match (plain.is_empty(), erasable.is_empty()) {
        (false, false) => {
            let (p, e) = (median(plain), median(erasable));
            line("no erasable field", p, "1.00");
            let ratio = format!("{:.3} ({:+.1} %)", e / p, (e / p - 1.0) * 100.0);
            line("one erasable field per record", e, &ratio);
        }
        (false, true) => line("no erasable field", median(plain), "—"),
        (true, false) => line("one erasable field per record", median(erasable), "—"),
        (true, true) => {}
    }
}

fn main() {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let count = env_u64("AUDITEX_BENCH_RECORDS", 20_000);
    let rounds = env_u64("AUDITEX_BENCH_ROUNDS", 3).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _ = rustls::crypto::ring::default_provider().install_default();
    rt.block_on(async {
        println!(
            "records per ingestion measurement: {count}; rounds: {rounds} (median); cores: {}",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        println!("| backend | measurement | result | ratio |");
        println!("|---|---|---|---|");
        let dir = tempfile::tempdir().expect("tempdir");
        run_backend("SQLite", DatabaseUrl::Sqlite(dir.path().join("bench.db")), None, count, rounds).await;
        if let (Ok(admin), Ok(app)) = (
            std::env::var("AUDITEX_BENCH_POSTGRES_ADMIN_URL"),
            std::env::var("AUDITEX_BENCH_POSTGRES_APP_URL"),
        ) {
            run_backend("PostgreSQL", DatabaseUrl::Postgres(app), Some(admin), count, rounds).await;
        } else {
            println!("(PostgreSQL skipped: set AUDITEX_BENCH_POSTGRES_ADMIN_URL and AUDITEX_BENCH_POSTGRES_APP_URL)");
        }
    });
}
