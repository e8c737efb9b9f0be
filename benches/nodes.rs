//! One tenant's ingestion with several service nodes on one PostgreSQL primary (issue 22).
//!
//! Each node is a store of its own (its own pool and appender, as a separate `auditex serve`
//! would have) on the same database; appends of one tenant from any node take that tenant's
//! advisory lock in the database, and a node that finds the chain moved by another re-reads the
//! head and the tree. The same load — `AUDITEX_BENCH_RECORDS` records (default 40,000) in
//! batches of `AUDITEX_BENCH_BATCH` (default 100) from 8 submitters — is spread over 1, 2 and 4
//! nodes; rates are reported as ratios to one node in the same run, beside the raw batched
//! insert rate of the same database. Median of `AUDITEX_BENCH_ROUNDS` rounds (default 3).
//!
//! Run: `AUDITEX_BENCH_POSTGRES_ADMIN_URL=… AUDITEX_BENCH_POSTGRES_APP_URL=… cargo bench --bench nodes`.

use std::time::Instant;

#[path = "support/settings.rs"]
mod settings;
use settings::{env_u64, median};

use auditex::store::crypto::MasterKey;
use auditex::store::{DatabaseUrl, Store, StoreConfig};
use ledger::draft::{ClientDraft, prepare_client_draft};
use ledger::types::TenantId;

// Only the PostgreSQL half of the shared baseline is used here.
#[allow(dead_code)]
#[path = "support/raw_insert.rs"]
mod raw_insert;

const SUBMITTERS: usize = 8;

fn drafts(count: u64) -> Vec<ClientDraft> {
    (0..count)
        .map(|n| {
            let id = uuid::Uuid::now_v7().to_string();
            prepare_client_draft(
                &id,
                "decision",
                &auditex::cli::synthetic_decision(n),
                &Default::default(),
                rand::random,
            )
            .expect("draft")
        })
        .collect()
}

/// Records per second appended to `tenant` by `SUBMITTERS` submitters spread over `nodes`.
async fn ingest(nodes: &[Store], tenant: &TenantId, records: u64, batch: u64) -> f64 {
    let all = drafts(records);
    let mut per_submitter: Vec<Vec<Vec<ClientDraft>>> = vec![Vec::new(); SUBMITTERS];
    for (i, chunk) in all
        .chunks(usize::try_from(batch).unwrap_or(100))
        .enumerate()
    {
        per_submitter[i % SUBMITTERS].push(chunk.to_vec());
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, batches) in per_submitter.into_iter().enumerate() {
        let store = nodes[i % nodes.len()].clone();
        let tenant = tenant.clone();
        tasks.push(tokio::spawn(async move {
            for b in batches {
                store.append(&tenant, b).await.expect("append");
            }
        }));
    }
    for t in tasks {
        t.await.expect("submitter");
    }
    records as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let (Ok(admin), Ok(app)) = (
        std::env::var("AUDITEX_BENCH_POSTGRES_ADMIN_URL"),
        std::env::var("AUDITEX_BENCH_POSTGRES_APP_URL"),
    ) else {
        println!("set AUDITEX_BENCH_POSTGRES_ADMIN_URL and AUDITEX_BENCH_POSTGRES_APP_URL");
        return;
    };
    let records = env_u64("AUDITEX_BENCH_RECORDS", 40_000);
    let batch = env_u64("AUDITEX_BENCH_BATCH", 100).max(1);
    let rounds = env_u64("AUDITEX_BENCH_ROUNDS", 3).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let key = MasterKey::generate();
        let mut nodes = Vec::new();
        for _ in 0..4 {
            let mut config = StoreConfig::new(DatabaseUrl::Postgres(app.clone()), key.clone());
            config.admin_database = Some(admin.clone());
            config.publish_in_background = false;
            nodes.push(Store::open_with_workers(config).await.expect("open node"));
        }
        let raw = raw_insert::raw_insert_postgres(&admin, 100_000).await;
        println!(
            "cores: {}; {records} records per measurement in batches of {batch} from {SUBMITTERS} submitters; median of {rounds}",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        println!("| nodes | records/s | ratio to 1 node | ratio to raw insert ({raw:.0}/s) |");
        println!("|---|---|---|---|");
        let run = std::process::id();
        // A warm-up on every node (connections opened, statements prepared), not measured.
        let warm = TenantId::parse(&format!("n{run}-warm")).expect("tenant");
        nodes[0].create_tenant(&warm).await.expect("tenant");
        ingest(&nodes, &warm, records / 4, batch).await;
        let mut one = None;
        for n in [1usize, 2, 4] {
            let mut rates = Vec::new();
            for round in 0..rounds {
                let tenant = TenantId::parse(&format!("n{run}-{n}-{round}")).expect("tenant");
                nodes[0].create_tenant(&tenant).await.expect("tenant");
                let rate = ingest(&nodes[..n], &tenant, records, batch).await;
                eprintln!("{n} node(s), round {round}: {rate:.0} records/s");
                rates.push(rate);
            }
            let rate = median(rates);
            let base = *one.get_or_insert(rate);
            println!("| {n} | {rate:.0} | {:.2} | {:.3} |", rate / base, rate / raw);
        }
        for node in nodes {
            node.shutdown().await;
        }
    });
}
