//! Read replicas: hot standbys of the primary that serve requests which only read.
//!
//! The service may be given standby URLs (`AUDITEX_READ_DATABASE_URLS`). A request the HTTP layer
//! marks as read-only (records, proofs, checkpoints, keys, bundles, exports, tiles) reads from one
//! replica for its whole life, chosen at its first read among the replicas "in reads": reachable,
//! in recovery, and replaying within the lag bound (`AUDITEX_REPLICA_LAG_MAX_MS`). Everything
//! else — appends, the views' queries (their tables are unlogged, so a standby has none), personal
//! data and erasure state (a replica's lag must never show a value after its erasure was
//! acknowledged), who may read the tiles, the background workers, administration — reads the
//! primary. What a replica answers is correct because of two facts:
//!
//! - a standby replays the primary's WAL in commit order, and a checkpoint row is committed after
//!   the records and tree nodes it covers, so every checkpoint a standby holds is covered by the
//!   records and nodes it holds: a replica never serves a checkpoint newer than its data;
//! - a standby only moves forward and the primary is ahead of every standby, so a request that
//!   moves from its replica to the primary (never the other way) never sees the ledger go back.
//!
//! A request moves to the primary when its replica leaves reads or fails to begin a transaction,
//! and the HTTP layer runs a read again on the primary when the replica's answer was a miss (no
//! such record, no checkpoint of that size or at least `min_tree_size`) or a failure: a replica
//! never answers 404 or 409 where the primary would answer 200.
//!
//! Lag: every [`WATCH_INTERVAL`] the watcher notes the primary's WAL position and the time. A
//! replica's lag is the age of the oldest noted position its replay has not reached, 0 when it
//! has reached the newest; the positions are kept for [`SAMPLES_KEPT_FOR`] so any lag beyond the
//! bound is seen. When the primary cannot be asked, no lag can be known and every replica leaves
//! reads until it can.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

use super::super::StoreError;
use super::super::backend::ReplicaInfo;
use super::nodes::Nodes;

/// How often the watcher measures each replica.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);
/// How long a measurement of one node may take before it counts as unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the primary's WAL positions are kept: longer than any sensible lag bound, so a lag
/// beyond the bound is measured as such (beyond it, the lag reads as at least this).
const SAMPLES_KEPT_FOR: Duration = Duration::from_secs(120);
/// The default lag bound.
pub const REPLICA_LAG_MAX_MS_DEFAULT: u64 = 2000;

/// Where the current request reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadRoute {
    /// A read-only request that has not read yet: its first read picks a replica.
    Unpicked,
    /// Replica `index`, `label` (`host:port`).
    Replica(usize, Arc<str>),
    /// The primary.
    Primary,
}

tokio::task_local! {
    static ROUTE: RefCell<ReadRoute>;
}

/// The current task's route; the primary outside [`scope`].
pub fn current() -> ReadRoute {
    ROUTE
        .try_with(|r| r.borrow().clone())
        .unwrap_or(ReadRoute::Primary)
}

fn set(route: ReadRoute) {
    // Outside a scope every read is on the primary already.
    let _ = ROUTE.try_with(|r| *r.borrow_mut() = route);
}

/// Runs `read` with `route` (what a task spawned for a request carries on), returning where it
/// read last.
pub async fn scope<F: Future>(route: ReadRoute, read: F) -> (F::Output, ReadRoute) {
    ROUTE
        .scope(RefCell::new(route), async move {
            let out = read.await;
            (out, current())
        })
        .await
}

/// One replica and what the watcher last measured of it.
struct Replica {
    label: Arc<str>,
    pool: PgPool,
    in_reads: AtomicBool,
    /// `u64::MAX` while unknown.
    lag_ms: AtomicU64,
    /// Read transactions begun here.
    reads: AtomicU64,
    /// Why it is out of reads, for the log when that changes.
    why_out: std::sync::Mutex<String>,
}

/// The configured replicas.
#[derive(Default)]
pub(crate) struct Replicas {
    list: Vec<Replica>,
    lag_max: Duration,
    next: AtomicUsize,
}

impl Replicas {
    /// Pools for `urls` (one standby each), connected lazily: a replica down at start does not
    /// stop the service, it stays out of reads until the watcher reaches it.
    ///
    /// # Errors
    /// [`StoreError::InvalidDatabaseUrl`] when a URL does not parse or names several hosts.
    pub(crate) fn new(
        urls: &[String],
        lag_max: Duration,
        connections: u32,
    ) -> Result<Replicas, StoreError> {
        let mut list = Vec::new();
        for url in urls {
            let nodes = Nodes::parse(url)?;
            if nodes.len() != 1 {
                return Err(StoreError::InvalidDatabaseUrl(format!(
                    "a read replica URL names one standby; {} names {} hosts (give each standby its own URL)",
                    nodes.label(0),
                    nodes.len()
                )));
            }
            let pool = PgPoolOptions::new()
                .max_connections(connections.max(2))
                .acquire_timeout(PROBE_TIMEOUT)
                .test_before_acquire(false)
                .before_acquire(super::ping_if_idle)
                .connect_lazy_with(nodes.options(0).clone());
            list.push(Replica {
                label: Arc::from(nodes.label(0)),
                pool,
                in_reads: AtomicBool::new(false),
                lag_ms: AtomicU64::new(u64::MAX),
                reads: AtomicU64::new(0),
                // Empty: the first verdict that keeps it out is logged, whatever it is.
                why_out: std::sync::Mutex::new(String::new()),
            });
        }
        Ok(Replicas {
            list,
            lag_max,
            next: AtomicUsize::new(0),
        })
    }

    /// The next replica in reads, round robin.
    fn pick(&self) -> Option<usize> {
        let n = self.list.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| self.list[i].in_reads.load(Ordering::Relaxed))
    }

    /// A transaction begun with `begin` on the replica the current request reads, picking one
    /// when it has none; `None` when the request reads the primary (not read-only, no replica
    /// in reads, or its replica left reads or failed to begin, which moves it to the primary).
    pub(crate) async fn begin(&self, begin: &str) -> Option<Transaction<'static, Postgres>> {
        if self.list.is_empty() {
            return None;
        }
        let i = match current() {
            ReadRoute::Primary => return None,
            ReadRoute::Replica(i, _) => i,
            ReadRoute::Unpicked => {
                let Some(i) = self.pick() else {
                    set(ReadRoute::Primary);
                    return None;
                };
                set(ReadRoute::Replica(i, self.list[i].label.clone()));
                i
            }
        };
        let replica = &self.list[i];
        if !replica.in_reads.load(Ordering::Relaxed) {
            set(ReadRoute::Primary);
            return None;
        }
        match replica
            .pool
            .begin_with(sqlx::AssertSqlSafe(begin.to_owned()))
            .await
        {
            Ok(tx) => {
                replica.reads.fetch_add(1, Ordering::Relaxed);
                Some(tx)
            }
            Err(e) => {
                tracing::warn!(replica = %replica.label, error = %e, "a read replica failed to begin a read; reading the primary");
                set(ReadRoute::Primary);
                None
            }
        }
    }

    /// The replicas as `/metrics` shows them.
    pub(crate) fn info(&self) -> Vec<ReplicaInfo> {
        self.list
            .iter()
            .map(|r| {
                let lag = r.lag_ms.load(Ordering::Relaxed);
                ReplicaInfo {
                    label: r.label.to_string(),
                    in_reads: r.in_reads.load(Ordering::Relaxed),
                    lag_seconds: (lag != u64::MAX).then(|| lag as f64 / 1000.0),
                    reads: r.reads.load(Ordering::Relaxed),
                }
            })
            .collect()
    }

    /// Measures every replica against `primary` each [`WATCH_INTERVAL`] while `primary` is open.
    pub(crate) fn watch(self: Arc<Self>, primary: PgPool) {
        if self.list.is_empty() {
            return;
        }
        tokio::spawn(async move {
            let mut positions = Positions::default();
            let mut primary_system = None;
            while !primary.is_closed() {
                let now = Instant::now();
                match tokio::time::timeout(PROBE_TIMEOUT, primary_position(&primary)).await {
                    Ok(Ok((lsn, system))) => {
                        positions.note(now, lsn);
                        primary_system = Some(system);
                    }
                    Ok(Err(e)) => {
                        positions.lost(format!("the primary's WAL position cannot be read ({e})"))
                    }
                    Err(_) => positions.lost("the primary did not answer within 2 s".into()),
                }
                let measures = self
                    .list
                    .iter()
                    .map(|r| tokio::time::timeout(PROBE_TIMEOUT, replay_position(&r.pool)));
                let answers = futures_util::future::join_all(measures).await;
                for (replica, answer) in self.list.iter().zip(answers) {
                    let verdict = match answer {
                        Err(_) => Err("no answer within 2 s".to_owned()),
                        Ok(Err(e)) => Err(format!("unreachable ({e})")),
                        Ok(Ok(r)) if !r.standby => Err("not a standby (not in recovery): a promoted or misconfigured node is never read as a replica".to_owned()),
                        Ok(Ok(r)) if primary_system.is_some_and(|p| p != r.system) => Err(format!(
                            "a standby of another cluster (system identifier {}, the primary's {}): it holds another database",
                            r.system,
                            primary_system.unwrap_or_default()
                        )),
                        Ok(Ok(r)) => positions.lag(now, r.replayed),
                    };
                    self.judge(replica, verdict);
                }
                tokio::time::sleep(WATCH_INTERVAL.saturating_sub(now.elapsed())).await;
            }
        });
    }

    /// Puts `replica` in or out of reads by what was measured, logging each change.
    fn judge(&self, replica: &Replica, verdict: Result<Duration, String>) {
        let (lag_ms, why_out) = match verdict {
            Ok(lag) => {
                let ms = u64::try_from(lag.as_millis()).unwrap_or(u64::MAX - 1);
                let out = (lag > self.lag_max).then(|| {
                    format!(
                        "replaying {:.1} s behind the primary, beyond the bound of {:.1} s",
                        lag.as_secs_f64(),
                        self.lag_max.as_secs_f64()
                    )
                });
                (ms, out)
            }
            Err(why) => (u64::MAX, Some(why)),
        };
        replica.lag_ms.store(lag_ms, Ordering::Relaxed);
        let was_in = replica.in_reads.swap(why_out.is_none(), Ordering::Relaxed);
        let mut last_why = replica.why_out.lock().unwrap_or_else(|p| p.into_inner());
        match why_out {
            None if !was_in => {
                tracing::info!(replica = %replica.label, lag_ms, "a read replica is in reads");
                last_why.clear();
            }
            // Logged when it leaves reads and when the reason changes kind, not every half second.
            Some(why) if was_in || kind(&last_why) != kind(&why) => {
                tracing::warn!(replica = %replica.label, reason = %why, "a read replica is out of reads; its requests read the primary");
                *last_why = why;
            }
            _ => {}
        }
    }
}

/// The first words of a reason, which stay the same while only its figures change.
fn kind(why: &str) -> &str {
    why.split([' ', '(']).next().unwrap_or("")
}

/// The primary's WAL positions noted by the watcher, oldest first.
#[derive(Default)]
struct Positions {
    noted: VecDeque<(Instant, u64)>,
    /// Why the primary's position is unknown now.
    lost: Option<String>,
}

impl Positions {
    fn note(&mut self, at: Instant, lsn: u64) {
        self.lost = None;
        while self
            .noted
            .front()
            .is_some_and(|(t, _)| at.duration_since(*t) > SAMPLES_KEPT_FOR)
        {
            self.noted.pop_front();
        }
        // Only a position that moved is worth keeping: an idle primary adds nothing.
        if self.noted.back().is_none_or(|(_, last)| *last != lsn) {
            self.noted.push_back((at, lsn));
        }
    }

    fn lost(&mut self, why: String) {
        self.lost = Some(why);
    }

    /// The lag of a replica that has replayed up to `replayed`, measured at `now`: the age of
    /// the oldest noted position it has not reached.
    fn lag(&self, now: Instant, replayed: u64) -> Result<Duration, String> {
        if let Some(why) = &self.lost {
            return Err(format!("no lag can be measured: {why}"));
        }
        if self.noted.is_empty() {
            return Err("no lag can be measured yet".into());
        }
        Ok(self
            .noted
            .iter()
            .find(|(_, lsn)| *lsn > replayed)
            .map_or(Duration::ZERO, |(t, _)| now.duration_since(*t)))
    }
}

/// The primary's current WAL write position in bytes, and its cluster's system identifier.
async fn primary_position(primary: &PgPool) -> Result<(u64, i64), sqlx::Error> {
    let (lsn, system): (i64, i64) = sqlx::query_as(
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::BIGINT, system_identifier FROM pg_control_system()",
    )
    .fetch_one(primary)
    .await?;
    Ok((u64::try_from(lsn).unwrap_or(0), system))
}

/// What a replica says of itself.
struct Replay {
    /// Whether it is in recovery (a standby).
    standby: bool,
    /// How far it has replayed, in bytes.
    replayed: u64,
    /// Its cluster's system identifier: a standby of the primary has the primary's.
    system: i64,
}

async fn replay_position(replica: &PgPool) -> Result<Replay, sqlx::Error> {
    let (standby, lsn, system): (bool, Option<i64>, i64) = sqlx::query_as(
        "SELECT pg_is_in_recovery(), pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::BIGINT, system_identifier FROM pg_control_system()",
    )
    .fetch_one(replica)
    .await?;
    Ok(Replay {
        standby,
        replayed: lsn.map_or(0, |l| u64::try_from(l).unwrap_or(0)),
        system,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_the_age_of_the_oldest_position_not_replayed() {
        let t0 = Instant::now();
        let mut p = Positions::default();
        assert!(p.lag(t0, 0).is_err(), "nothing noted yet: unknown");
        p.note(t0, 100);
        p.note(t0 + Duration::from_secs(1), 100); // idle: not kept
        p.note(t0 + Duration::from_secs(2), 300);
        p.note(t0 + Duration::from_secs(3), 500);
        let now = t0 + Duration::from_secs(4);
        assert_eq!(p.lag(now, 500), Ok(Duration::ZERO));
        assert_eq!(p.lag(now, 600), Ok(Duration::ZERO));
        assert_eq!(p.lag(now, 400), Ok(Duration::from_secs(1)));
        assert_eq!(p.lag(now, 300), Ok(Duration::from_secs(1)));
        assert_eq!(p.lag(now, 299), Ok(Duration::from_secs(2)));
        assert_eq!(p.lag(now, 50), Ok(Duration::from_secs(4)));
        p.lost("down".into());
        assert!(p.lag(now, 500).is_err(), "the primary unknown: no lag");
        p.note(now, 500);
        assert_eq!(p.lag(now, 500), Ok(Duration::ZERO));
    }

    #[test]
    fn positions_older_than_kept_are_forgotten() {
        let t0 = Instant::now();
        let mut p = Positions::default();
        p.note(t0, 1);
        p.note(t0 + SAMPLES_KEPT_FOR + Duration::from_secs(1), 2);
        assert_eq!(p.noted.len(), 1);
    }

    #[tokio::test]
    async fn a_route_lives_in_its_request_scope_only() {
        assert_eq!(
            current(),
            ReadRoute::Primary,
            "outside a scope: the primary"
        );
        set(ReadRoute::Replica(0, Arc::from("r:1")));
        assert_eq!(
            current(),
            ReadRoute::Primary,
            "outside a scope nothing is set"
        );
        let ((), last) = scope(ReadRoute::Replica(0, Arc::from("r:1")), async {
            assert!(matches!(current(), ReadRoute::Replica(0, _)));
            set(ReadRoute::Primary);
            assert_eq!(current(), ReadRoute::Primary);
        })
        .await;
        assert_eq!(last, ReadRoute::Primary);
    }

    #[tokio::test]
    async fn without_a_replica_in_reads_a_request_reads_the_primary() {
        let replicas = Replicas::new(
            &["postgres://u:p@127.0.0.1:1/db".to_owned()],
            Duration::from_secs(2),
            2,
        )
        .expect("parses");
        let (tx, last) = scope(ReadRoute::Unpicked, replicas.begin("BEGIN")).await;
        assert!(tx.is_none());
        assert_eq!(last, ReadRoute::Primary);
        assert!(
            Replicas::new(
                &["postgres://u:p@a:1,b:2/db".to_owned()],
                Duration::from_secs(2),
                2
            )
            .is_err(),
            "one standby per URL"
        );
    }
}
