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
//! So every start of a primary's postmaster (its node and `pg_postmaster_start_time()`) is
//! *confirmed* once before any connection to it is used: a transaction that writes one WAL
//! message and commits. Its commit record lies after everything recovery replayed, and its commit
//! returns only once the synchronous standby has flushed WAL up to it, so from then on every row
//! the node shows is on the standby too. Connections to a start not yet confirmed are refused
//! (the pool retries until its acquire timeout, then the caller gets "database unavailable",
//! 503 over HTTP). Without synchronous replication the commit returns at once and this costs one
//! transaction per restart.
//!
//! The confirmation runs in one task of its own on a connection of its own, never inside a
//! caller's connect: a caller's timeout cannot cancel it, and however many callers wait, at
//! most one transaction waits on the server for a standby (in strict synchronous mode, with no
//! standby, it waits until one connects).
//!
//! What this cannot cover: a commit whose wait for the standby is cancelled on the primary
//! (`pg_cancel_backend`, a `statement_timeout` set for the application role) becomes visible
//! without the standby. The service never cancels one; docs/OPERATIONS.md tells operators not
//! to either.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tokio::sync::watch;

/// How long a connection being opened waits for its node's start to be confirmed: less than
/// the pool's acquire timeout, so a caller learns why rather than only that it timed out.
pub(crate) const WAIT_IN_CONNECT: Duration = Duration::from_millis(2500);
/// How many confirmed starts are remembered (the pool moves between a handful of nodes).
const REMEMBERED: usize = 8;

/// One start of one node's postmaster: `host:port` and the start time in microseconds.
type Start = (String, i64);
/// What a confirmation ended with: `Ok`, or why not.
type Outcome = Option<Result<(), String>>;

/// The node the pool connects to, and which of its starts are confirmed.
pub(crate) struct Confirmations {
    /// The node new connections go to (the watcher moves it with the pool).
    target: Mutex<(PgConnectOptions, String)>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    confirmed: VecDeque<Start>,
    running: Option<(Start, watch::Receiver<Outcome>)>,
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
    /// was chosen) and a primary whose start is not confirmed within [`WAIT_IN_CONNECT`].
    pub(crate) async fn admit(self: Arc<Self>, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        let (standby, started) = node_state(conn).await?;
        if standby {
            return Err(sqlx::Error::Configuration(
                "the PostgreSQL node is a standby (in recovery), not the primary; waiting for the primary"
                    .into(),
            ));
        }
        self.confirm(started, WAIT_IN_CONNECT)
            .await
            .map_err(|why| sqlx::Error::Configuration(why.into()))
    }

    /// Confirms the target node's current start, waiting at most `wait`: for opening a store,
    /// where a clear refusal is better than the pool's timeout.
    pub(crate) async fn confirm_target(self: &Arc<Self>, wait: Duration) -> Result<(), String> {
        let (options, label) = lock(&self.target).clone();
        let mut conn = tokio::time::timeout(wait, options.connect())
            .await
            .map_err(|_| format!("{label}: no answer within {} s", wait.as_secs_f64()))?
            .map_err(|e| format!("{label}: {e}"))?;
        let (_, started) = node_state(&mut conn)
            .await
            .map_err(|e| format!("{label}: {e}"))?;
        let _ = sqlx::Connection::close(conn).await;
        self.confirm(started, wait).await
    }

    /// Waits at most `wait` for the target's start `started` to be confirmed, starting the
    /// confirmation unless it is known or under way.
    async fn confirm(self: &Arc<Self>, started: i64, wait: Duration) -> Result<(), String> {
        let (options, label) = lock(&self.target).clone();
        let start: Start = (label.clone(), started);
        let mut answer = {
            let mut state = lock(&self.state);
            if state.confirmed.contains(&start) {
                return Ok(());
            }
            match &state.running {
                Some((running, answer)) if *running == start => answer.clone(),
                _ => {
                    let (tell, answer) = watch::channel(None);
                    state.running = Some((start.clone(), answer.clone()));
                    let me = Arc::clone(self);
                    tokio::spawn(async move {
                        let outcome = commit_on(&options, &start).await;
                        let mut state = lock(&me.state);
                        if outcome.is_ok() {
                            tracing::info!(node = %start.0, "the primary's start is confirmed on its synchronous standby");
                            state.confirmed.push_back(start.clone());
                            while state.confirmed.len() > REMEMBERED {
                                state.confirmed.pop_front();
                            }
                        }
                        if state.running.as_ref().is_some_and(|(s, _)| *s == start) {
                            state.running = None;
                        }
                        drop(state);
                        let _ = tell.send(Some(outcome));
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
                "the PostgreSQL primary {label} (re)started and its synchronous standby has not yet confirmed that it holds everything this node recovered (waited {:.1} s); nothing is read or written there until it does",
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

/// The confirming transaction, on a connection of its own to the node of `start`.
async fn commit_on(options: &PgConnectOptions, start: &Start) -> Result<(), String> {
    let (label, started) = start;
    let mut conn = options
        .connect()
        .await
        .map_err(|e| format!("{label}: {e}"))?;
    let (standby, now) = node_state(&mut conn)
        .await
        .map_err(|e| format!("{label}: {e}"))?;
    if standby || now != *started {
        return Err(format!(
            "{label} restarted or was demoted while its start was being confirmed"
        ));
    }
    // One statement in an implicit transaction that writes WAL: a transactional message takes a
    // transaction id and writes a record, so its commit waits for the synchronous standby like
    // any other. (Taking a transaction id alone is not enough: PostgreSQL does not wait for the
    // standby when a transaction wrote nothing before its commit record.)
    sqlx::query("SELECT pg_logical_emit_message(true, 'auditex', 'confirm a primary''s start')")
        .execute(&mut conn)
        .await
        .map_err(|e| format!("{label}: {e}"))?;
    let _ = sqlx::Connection::close(conn).await;
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
