//! The raw insert baseline the store and projection benchmarks measure themselves against: plain
//! batched INSERTs (1000 rows per transaction) of identical 11-column rows into an unconstrained
//! table — no hashing, no signing, no triggers — i.e. what the database alone can do on this
//! machine in the same run. Both benchmarks include this one file, so their "vs raw insert"
//! columns divide by the same thing.

use std::time::{Duration, Instant};

use sqlx::Connection;

/// Rows per INSERT transaction.
const ROWS_PER_TRANSACTION: u64 = 1000;

/// The baseline table: the columns of a stored record, without any constraint.
const RAW_TABLE: &str = "CREATE TABLE raw_bench (tenant_id TEXT, seq BIGINT, event_id TEXT, event_type TEXT, \
     captured_at_us BIGINT, prev BLOB, hash BLOB, key_id TEXT, sig BLOB, payload TEXT, erasable TEXT)";

/// Items per second.
pub fn rate(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// Rows per second inserted into a new SQLite database at `path` (WAL, synchronous FULL, as the
/// store runs it).
pub async fn raw_insert_sqlite(path: &std::path::Path, count: u64) -> f64 {
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Full);
    let mut conn = sqlx::SqliteConnection::connect_with(&opts)
        .await
        .expect("connect");
    sqlx::query(RAW_TABLE)
        .execute(&mut conn)
        .await
        .expect("table");
    let payload = auditex::cli::synthetic_decision(1).to_string();
    let start = Instant::now();
    let mut seq = 0u64;
    while seq < count {
        let mut tx = conn.begin().await.expect("begin");
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO raw_bench (tenant_id, seq, event_id, event_type, captured_at_us, prev, hash, key_id, sig, payload, erasable) ",
        );
        let n = ROWS_PER_TRANSACTION.min(count - seq);
        q.push_values(0..n, |mut b, i| {
            b.push_bind("bench")
                .push_bind((seq + i) as i64)
                .push_bind("01936f5e-7a2b-7c3d-8e4f-a1b2c3d4e5f6")
                .push_bind("decision")
                .push_bind(1_795_000_000_000_000i64)
                .push_bind(vec![0u8; 32])
                .push_bind(vec![1u8; 32])
                .push_bind("f5774d3226013b9b")
                .push_bind(vec![2u8; 64])
                .push_bind(payload.as_str())
                .push_bind("{}");
        });
        q.build().execute(&mut *tx).await.expect("insert");
        tx.commit().await.expect("commit");
        seq += n;
    }
    rate(count, start.elapsed())
}

/// Rows per second inserted into a fresh `raw_bench` table of the PostgreSQL database at `url`;
/// the table is dropped again afterwards, so nothing else the benchmark measures reads it.
pub async fn raw_insert_postgres(url: &str, count: u64) -> f64 {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    sqlx::query("DROP TABLE IF EXISTS raw_bench")
        .execute(&mut conn)
        .await
        .expect("drop");
    sqlx::query(sqlx::AssertSqlSafe(RAW_TABLE.replace("BLOB", "BYTEA")))
        .execute(&mut conn)
        .await
        .expect("table");
    let payload = auditex::cli::synthetic_decision(1).to_string();
    let start = Instant::now();
    let mut seq = 0u64;
    while seq < count {
        let n = ROWS_PER_TRANSACTION.min(count - seq);
        let seqs: Vec<i64> = (seq..seq + n).map(|s| s as i64).collect();
        let mut tx = conn.begin().await.expect("begin");
        sqlx::query(
            "INSERT INTO raw_bench SELECT 'bench', s, '01936f5e-7a2b-7c3d-8e4f-a1b2c3d4e5f6', 'decision', 1795000000000000, \
             $2, $3, 'f5774d3226013b9b', $4, $1, '{}' FROM UNNEST($5::BIGINT[]) AS s",
        )
        .bind(payload.as_str())
        .bind(vec![0u8; 32])
        .bind(vec![1u8; 32])
        .bind(vec![2u8; 64])
        .bind(&seqs)
        .execute(&mut *tx)
        .await
        .expect("insert");
        tx.commit().await.expect("commit");
        seq += n;
    }
    let r = rate(count, start.elapsed());
    sqlx::query("DROP TABLE raw_bench")
        .execute(&mut conn)
        .await
        .expect("drop");
    r
}
