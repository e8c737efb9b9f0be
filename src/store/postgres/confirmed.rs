//! Nothing is read from or written to a primary before its synchronous standby holds everything
//! that primary can show.
//!
//! PostgreSQL commits a transaction to its own WAL first and then waits for the synchronous
//! standby; until the standby confirms, the transaction stays invisible to every other session,
//! which is what makes a receipt mean "on two servers". A crash during that wait breaks it:
//! crash recovery replays the local WAL, so once the node is back the transaction is visible
//! although the standby may never have received it, and if that node is lost before the standby
//! catches up, the standby promoted in its place does not have it. Had the service read it in
//! between, it would have answered a client's retry of that event with a receipt ("already
//! appended"), or signed a checkpoint over it: an acknowledged record that a failover then
//! loses, or a signed tree another one contradicts. The failover drill saw exactly this when an
//! old primary came back by itself, outside the failover manager.
//!
//! So every life of a primary is *confirmed* before any connection to it is used: a transaction
//! that writes one WAL message and commits with `synchronous_commit = on` and no statement
//! timeout. Its commit record lies after everything recovery replayed, and its commit returns
//! only once the synchronous standby has flushed WAL up to it, so from then on every row the node
//! shows is on the standby too. Connections to a life not yet confirmed are refused (the pool
//! retries until its acquire timeout, then the caller gets "database unavailable", 503 over
//! HTTP). Without synchronous replication the commit returns at once and this costs one
//! transaction per restart.
//!
//! A life is the node (`host:port`), its postmaster's start time, and a *sentinel*: the
//! confirming session itself, kept open. A postmaster restart changes the start time; a crash of
//! any one backend (killed, out of memory) makes PostgreSQL end every session and run crash
//! recovery inside the same postmaster, start time unchanged, and ends the sentinel with them.
//! Each new connection checks in `pg_stat_activity` that the sentinel of its node's life still
//! exists (same process id, same session start).
//!
//! The confirmation runs in a task of its own on its own connection, never inside a caller's
//! connect: a caller's timeout cannot cancel it, and however many callers wait, one transaction
//! per life waits on the server for a standby (in strict synchronous mode, with no standby, it
//! waits until one connects).
//!
//! What this cannot cover: a commit whose wait for the standby is cancelled on the primary by
//! someone else (`pg_cancel_backend`) becomes visible without the standby, and a
//! `synchronous_commit` below `on` for the application role means no receipt waits for the
//! standby in the first place. docs/OPERATIONS.md tells operators to do neither.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tokio::sync::watch;

/// How long a connection being opened waits for its node's life to be confirmed: less than the
/// pool's acquire timeout, so that the pool logs this reason rather than only its time-out.
pub(crate) const WAIT_IN_CONNECT: Duration = Duration::from_millis(2500);
/// How long the confirming task may take to connect (the wait for the standby itself is not
/// bounded: it ends when a standby confirms or the node goes away).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How many confirmed lives are remembered, each with its sentinel session open (the pool moves
/// between a handful of nodes).
const REMEMBERED: usize = 4;

/// One start of one node's postmaster: `host:port` and the start time in microseconds.
type Start = (String, i64);
/// What a confirmation ended with: `Ok`, or why not.
type Outcome = Option<Result<(), String>>;

/// The confirming session, kept open: while it exists, the node has not crashed since.
struct Sentinel {
    pid: i32,
    /// Its `backend_start` in microseconds (a process id alone could be reused).
    since_us: i64,
    _session: PgConnection,
}

/// The node the pool connects to, and which of its lives are confirmed.
pub(crate) struct Confirmations {
    /// The node new connections go to (the watcher moves it with the pool).
    target: Mutex<(PgConnectOptions, String)>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    confirmed: VecDeque<(Start, Sentinel)>,
    running: HashMap<Start, watch::Receiver<Outcome>>,
}

impl Confirmations {
    /// Confirmations for a pool connecting to `options` (`label`: its `host:port`).
    pub(crate) fn new(options: PgConnectOptions, label: &str) -> Arc<Confirmations> {
        Arc::new(Confirmations {
            target: Mutex::new((options, label.to_owned())),
            state: Mutex::new(State::default()),
        })
    }

    /// Points at the node the pool now connects to.
    pub(crate) fn point_at(&self, options: PgConnectOptions, label: &str) {
        *lock(&self.target) = (options, label.to_owned());
    }

    /// The pool's `after_connect`: refuses a standby (the node may have been demoted since it
    /// was chosen) and a primary whose life is not confirmed within [`WAIT_IN_CONNECT`].
    pub(crate) async fn admit(self: Arc<Self>, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        self.admit_within(conn, WAIT_IN_CONNECT)
            .await
            .map_err(|why| sqlx::Error::Configuration(why.into()))
    }

    /// As [`Confirmations::admit`], waiting at most `wait`; why not, as a sentence.
    async fn admit_within(
        self: &Arc<Self>,
        conn: &mut PgConnection,
        wait: Duration,
    ) -> Result<(), String> {
        let label = lock(&self.target).1.clone();
        let (standby, started) = node_state(conn)
            .await
            .map_err(|e| format!("{label}: {e}"))?;
        if standby {
            return Err(
                "the PostgreSQL node is a standby (in recovery), not the primary; waiting for the primary"
                    .into(),
            );
        }
        let start: Start = (label.clone(), started);
        if self
            .sentinel_lives(conn, &start)
            .await
            .map_err(|e| format!("{label}: {e}"))?
        {
            return Ok(());
        }
        self.confirm(start, wait).await
    }

    /// Whether `start` is confirmed and its sentinel still exists, seen from `conn` (a session
    /// of the same role on the same node); forgets the life when its sentinel is gone.
    async fn sentinel_lives(
        &self,
        conn: &mut PgConnection,
        start: &Start,
    ) -> Result<bool, sqlx::Error> {
        let known = lock(&self.state)
            .confirmed
            .iter()
            .find(|(s, _)| s == start)
            .map(|(_, x)| (x.pid, x.since_us));
        let Some((pid, since_us)) = known else {
            return Ok(false);
        };
        let lives: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND (EXTRACT(EPOCH FROM backend_start) * 1000000)::BIGINT = $2)",
        )
        .bind(pid)
        .bind(since_us)
        .fetch_one(conn)
        .await?;
        if !lives {
            tracing::warn!(node = %start.0, "every session of the PostgreSQL primary ended (a crash and recovery in place): confirming it again");
            lock(&self.state)
                .confirmed
                .retain(|(s, x)| !(s == start && x.pid == pid));
        }
        Ok(lives)
    }

    /// Confirms the target node's current life, waiting at most `wait`: for opening a store,
    /// where a clear refusal is better than the pool's timeout.
    pub(crate) async fn confirm_target(self: &Arc<Self>, wait: Duration) -> Result<(), String> {
        let (options, label) = lock(&self.target).clone();
        let mut conn = tokio::time::timeout(wait, options.connect())
            .await
            .map_err(|_| format!("{label}: no answer within {} s", wait.as_secs_f64()))?
            .map_err(|e| format!("{label}: {e}"))?;
        let admitted = self.admit_within(&mut conn, wait).await;
        let _ = sqlx::Connection::close(conn).await;
        admitted
    }

    /// Waits at most `wait` for the life `start` of the target to be confirmed, starting the
    /// confirmation unless one is under way.
    async fn confirm(self: &Arc<Self>, start: Start, wait: Duration) -> Result<(), String> {
        let label = start.0.clone();
        let mut answer = {
            let mut state = lock(&self.state);
            if state.confirmed.iter().any(|(s, _)| *s == start) {
                return Ok(());
            }
            // A task that ended without telling (it cannot, short of a panic) is replaced.
            match state
                .running
                .get(&start)
                .filter(|a| a.has_changed().is_ok())
            {
                Some(answer) => answer.clone(),
                None => {
                    let (tell, answer) = watch::channel(None);
                    state.running.insert(start.clone(), answer.clone());
                    let options = lock(&self.target).0.clone();
                    let me = Arc::clone(self);
                    let ours = answer.clone();
                    tokio::spawn(async move {
                        let outcome = commit_on(&options, &start).await;
                        let mut state = lock(&me.state);
                        let told = match outcome {
                            Ok(sentinel) => {
                                tracing::info!(node = %start.0, "the primary's life is confirmed on its synchronous standby");
                                state.confirmed.push_back((start.clone(), sentinel));
                                while state.confirmed.len() > REMEMBERED {
                                    state.confirmed.pop_front();
                                }
                                Ok(())
                            }
                            Err(why) => Err(why),
                        };
                        if state
                            .running
                            .get(&start)
                            .is_some_and(|a| a.same_channel(&ours))
                        {
                            state.running.remove(&start);
                        }
                        drop(state);
                        let _ = tell.send(Some(told));
                    });
                    answer
                }
            }
        };
        match tokio::time::timeout(wait, answer.wait_for(Option::is_some)).await {
            // (`wait_for` returns only once the outcome is set; were it not, refuse.)
            Ok(Ok(outcome)) => outcome.clone().unwrap_or_else(|| {
                Err(format!(
                    "{label}: the confirmation of its start has no outcome"
                ))
            }),
            Ok(Err(_)) => Err(format!(
                "{label}: the confirmation of its start ended without an answer"
            )),
            Err(_) => Err(format!(
                "the PostgreSQL primary {label} (re)started or recovered from a crash, and its synchronous standby has not yet confirmed that it holds everything this node shows (waited {:.1} s); nothing is read or written there until it does",
                wait.as_secs_f64()
            )),
        }
    }
}

/// Whether the connection's node is in recovery, and when its postmaster started (µs).
async fn node_state(conn: &mut PgConnection) -> Result<(bool, i64), sqlx::Error> {
    sqlx::query_as(
        "SELECT pg_is_in_recovery(), (EXTRACT(EPOCH FROM pg_postmaster_start_time()) * 1000000)::BIGINT",
    )
    .fetch_one(conn)
    .await
}

/// The confirming transaction, on a session of its own to the node of `start`, which it returns
/// as the life's sentinel.
async fn commit_on(options: &PgConnectOptions, start: &Start) -> Result<Sentinel, String> {
    let (label, started) = start;
    let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, options.connect())
        .await
        .map_err(|_| format!("{label}: no answer within {} s", CONNECT_TIMEOUT.as_secs()))?
        .map_err(|e| format!("{label}: {e}"))?;
    let (standby, now) = node_state(&mut conn)
        .await
        .map_err(|e| format!("{label}: {e}"))?;
    if standby || now != *started {
        return Err(format!(
            "{label} restarted or was demoted while its start was being confirmed"
        ));
    }
    // A transaction that writes WAL: a transactional message takes a transaction id and writes a
    // record, so its commit waits for the synchronous standby (taking a transaction id alone is
    // not enough: PostgreSQL does not wait when a transaction wrote nothing before its commit
    // record). Its own settings, whatever the role's: a commit that does not wait for the
    // standby's flush, or whose wait a timeout cancels, would confirm nothing.
    sqlx::raw_sql(
        "BEGIN; SET LOCAL synchronous_commit = on; SET LOCAL statement_timeout = 0; \
         SELECT pg_logical_emit_message(true, 'auditex', 'confirm a primary''s start'); COMMIT",
    )
    .execute(&mut conn)
    .await
    .map_err(|e| format!("{label}: the confirming transaction failed: {e}"))?;
    let (pid, since_us): (i32, i64) = sqlx::query_as(
        "SELECT pid, (EXTRACT(EPOCH FROM backend_start) * 1000000)::BIGINT FROM pg_stat_activity WHERE pid = pg_backend_pid()",
    )
    .fetch_one(&mut conn)
    .await
    .map_err(|e| format!("{label}: {e}"))?;
    Ok(Sentinel {
        pid,
        since_us,
        _session: conn,
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
