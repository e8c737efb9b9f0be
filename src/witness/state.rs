//! The witness's state: for each log (by origin), the latest checkpoint it cosigned, and the
//! evidence of misbehaviour it kept. One SQLite file, WAL with synchronous commits, so a
//! cosignature is answered only once the state that backs it is on disk; a crash loses nothing
//! acknowledged.
//!
//! Moving a log's state is a compare-and-set on (size, root): two requests decided against the
//! same state cannot both win, so the state never moves backwards (the race the tlog-witness
//! specification warns about).

use std::str::FromStr;

use ledger::types::Hash;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// Most evidence entries kept per log.
pub const EVIDENCE_PER_LOG_MAX: i64 = 1_000;

/// The latest checkpoint cosigned for a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latest {
    /// Its tree size.
    pub size: u64,
    /// Its root.
    pub root: Hash,
    /// The checkpoint with the log's signature and the witness's cosignature.
    pub checkpoint: String,
}

/// A checkpoint, signed by the log, that contradicted what the witness had cosigned.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Evidence {
    /// The log.
    pub origin: String,
    /// When it arrived (POSIX seconds).
    pub received_at: u64,
    /// What it contradicts, in a sentence.
    pub reason: String,
    /// The checkpoint the witness had cosigned then.
    pub cosigned: Option<String>,
    /// The whole `add-checkpoint` request (old size, proof, the log-signed checkpoint).
    pub request: String,
}

/// The state database.
#[derive(Clone)]
pub struct WitnessState {
    pool: SqlitePool,
}

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl WitnessState {
    /// Opens (creating) the state at `path`.
    ///
    /// # Errors
    /// The database error.
    pub async fn open(path: &std::path::Path) -> Result<Self, sqlx::Error> {
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS latest (
                 origin      TEXT PRIMARY KEY NOT NULL,
                 size        INTEGER NOT NULL CHECK (size >= 0),
                 root        BLOB NOT NULL CHECK (length(root) = 32),
                 checkpoint  TEXT NOT NULL,
                 updated_at  INTEGER NOT NULL
             ) STRICT",
        )
        .execute(&pool)
        .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS evidence (
                 id          INTEGER PRIMARY KEY AUTOINCREMENT,
                 origin      TEXT NOT NULL,
                 received_at INTEGER NOT NULL,
                 reason      TEXT NOT NULL,
                 cosigned    TEXT,
                 request     TEXT NOT NULL
             ) STRICT",
        )
        .execute(&pool)
        .await?;
        Ok(WitnessState { pool })
    }

    /// The latest checkpoint cosigned for `origin`.
    ///
    /// # Errors
    /// The database error, or a stored root that is not 32 bytes.
    pub async fn latest(&self, origin: &str) -> Result<Option<Latest>, sqlx::Error> {
        let row: Option<(i64, Vec<u8>, String)> =
            sqlx::query_as("SELECT size, root, checkpoint FROM latest WHERE origin = ?")
                .bind(origin)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|(size, root, checkpoint)| {
            let root = Hash::from_slice(&root).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            Ok(Latest {
                size: u64::try_from(size).unwrap_or(0),
                root,
                checkpoint,
            })
        })
        .transpose()
    }

    /// Moves `origin`'s state from `from` (`None`: never cosigned) to `to`, unless another
    /// request moved it first; returns whether it moved. Durable when it returns.
    ///
    /// # Errors
    /// The database error.
    pub async fn advance(
        &self,
        origin: &str,
        from: Option<(u64, Hash)>,
        to: &Latest,
        now: u64,
    ) -> Result<bool, sqlx::Error> {
        let done = match from {
            None => {
                sqlx::query(
                    "INSERT INTO latest (origin, size, root, checkpoint, updated_at)
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT (origin) DO NOTHING",
                )
                .bind(origin)
                .bind(int(to.size))
                .bind(to.root.as_bytes().as_slice())
                .bind(&to.checkpoint)
                .bind(int(now))
                .execute(&self.pool)
                .await?
            }
            Some((size, root)) => {
                sqlx::query(
                    "UPDATE latest SET size = ?, root = ?, checkpoint = ?, updated_at = ?
                 WHERE origin = ? AND size = ? AND root = ?",
                )
                .bind(int(to.size))
                .bind(to.root.as_bytes().as_slice())
                .bind(&to.checkpoint)
                .bind(int(now))
                .bind(origin)
                .bind(int(size))
                .bind(root.as_bytes().as_slice())
                .execute(&self.pool)
                .await?
            }
        };
        Ok(done.rows_affected() == 1)
    }

    /// Keeps a refused, log-signed checkpoint as evidence, unless the same request is kept
    /// already or the log has [`EVIDENCE_PER_LOG_MAX`] entries (anyone may replay a log's
    /// checkpoints, so what is kept is bounded); returns whether it was kept.
    ///
    /// # Errors
    /// The database error.
    pub async fn keep_evidence(&self, e: &Evidence) -> Result<bool, sqlx::Error> {
        let (count, same): (i64, i64) = sqlx::query_as(
            "SELECT count(*), coalesce(sum(request = ?), 0) FROM evidence WHERE origin = ?",
        )
        .bind(&e.request)
        .bind(&e.origin)
        .fetch_one(&self.pool)
        .await?;
        if same > 0 || count >= EVIDENCE_PER_LOG_MAX {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO evidence (origin, received_at, reason, cosigned, request)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&e.origin)
        .bind(int(e.received_at))
        .bind(&e.reason)
        .bind(&e.cosigned)
        .bind(&e.request)
        .execute(&self.pool)
        .await?;
        Ok(true)
    }

    /// The evidence kept, oldest first.
    ///
    /// # Errors
    /// The database error.
    pub async fn evidence(&self) -> Result<Vec<Evidence>, sqlx::Error> {
        let rows: Vec<(String, i64, String, Option<String>, String)> = sqlx::query_as(
            "SELECT origin, received_at, reason, cosigned, request FROM evidence ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(origin, received_at, reason, cosigned, request)| Evidence {
                    origin,
                    received_at: u64::try_from(received_at).unwrap_or(0),
                    reason,
                    cosigned,
                    request,
                },
            )
            .collect())
    }

    /// Every log's latest cosigned checkpoint, by origin.
    ///
    /// # Errors
    /// The database error.
    pub async fn all_latest(&self) -> Result<Vec<(String, u64)>, sqlx::Error> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT origin, size FROM latest ORDER BY origin")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(o, s)| (o, u64::try_from(s).unwrap_or(0)))
            .collect())
    }

    /// Forgets what was cosigned for `origin` (the operator's decision after a disclosed
    /// rollback), keeping the forgotten checkpoint as evidence with the reason; returns whether
    /// there was one.
    ///
    /// # Errors
    /// The database error.
    pub async fn reset(&self, origin: &str, reason: &str, now: u64) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let cosigned: Option<String> =
            sqlx::query_scalar("SELECT checkpoint FROM latest WHERE origin = ?")
                .bind(origin)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(cosigned) = cosigned else {
            return Ok(false);
        };
        sqlx::query(
            "INSERT INTO evidence (origin, received_at, reason, cosigned, request)
             VALUES (?, ?, ?, ?, '')",
        )
        .bind(origin)
        .bind(int(now))
        .bind(format!("state reset by the operator: {reason}"))
        .bind(&cosigned)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM latest WHERE origin = ?")
            .bind(origin)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Closes the database.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
