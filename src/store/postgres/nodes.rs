//! The nodes of a PostgreSQL cluster, and which of them is the primary.
//!
//! High availability is left to an established failover manager (Patroni with etcd, see
//! docs/OPERATIONS.md, "High availability on PostgreSQL"): it decides which node is the primary,
//! keeps a synchronous standby and fences the old primary. The service only has to find the
//! node that was promoted, the way libpq does with several hosts and
//! `target_session_attrs=read-write`, which sqlx does not implement:
//!
//! - the database URL may name several `host:port` pairs, comma-separated
//!   (`postgres://user:pw@db1:5432,db2:5432/auditex`);
//! - the pool connects to the node that answers `pg_is_in_recovery() = false`, and every new
//!   connection checks that again, so no connection to a standby is ever handed out (a write
//!   there would fail; a read there could be stale), nor one to a primary whose restart its
//!   synchronous standby has not confirmed (see `confirmed.rs`);
//! - a watcher asks the pool once a second whether it still talks to a primary and, when not,
//!   looks for the new one among the nodes and points the pool at it. Until one is found every
//!   operation fails as "database unavailable", which the HTTP layer answers with 503 and
//!   `Retry-After`.

use std::str::FromStr;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPool};

use super::super::StoreError;

/// How long a probe of one node may take before that node counts as unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the watcher checks that the pool still talks to the primary.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// Which node the service uses, how often that changed and since when there is none, for
/// `/metrics` (shared between the watcher and the store).
#[derive(Debug, Default)]
pub(crate) struct PrimaryState {
    node: std::sync::Mutex<String>,
    changes: std::sync::atomic::AtomicU64,
    /// When the primary was last found missing (µs since the Unix epoch), 0 while there is one.
    missing_since_us: std::sync::atomic::AtomicI64,
}

impl PrimaryState {
    pub(crate) fn new(node: &str) -> PrimaryState {
        PrimaryState {
            node: std::sync::Mutex::new(node.to_owned()),
            ..PrimaryState::default()
        }
    }

    /// The state as `/metrics` shows it.
    pub(crate) fn info(&self) -> super::super::backend::PrimaryInfo {
        use std::sync::atomic::Ordering;
        let since = self.missing_since_us.load(Ordering::Relaxed);
        super::super::backend::PrimaryInfo {
            node: self.node.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            changes: self.changes.load(Ordering::Relaxed),
            without_primary_seconds: if since == 0 {
                0.0
            } else {
                (now_us() - since).max(0) as f64 / 1e6
            },
        }
    }
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// The nodes a database URL names, in the order given.
#[derive(Clone, Debug)]
pub(crate) struct Nodes {
    options: Vec<PgConnectOptions>,
    /// `host:port` of each node, for messages (never the credentials).
    labels: Vec<String>,
}

impl Nodes {
    /// Parses a URL naming one node or several (`host1:port1,host2:port2` in the authority).
    /// A `target_session_attrs` parameter is accepted for libpq compatibility when the service
    /// can honour it (`read-write`, `primary`, or `any`, which the primary satisfies) and
    /// removed before sqlx parses the URL.
    ///
    /// # Errors
    /// [`StoreError::InvalidDatabaseUrl`] naming what is wrong with the URL (never its
    /// password).
    pub(crate) fn parse(url: &str) -> Result<Nodes, StoreError> {
        let bad = |why: &str| StoreError::InvalidDatabaseUrl(why.to_owned());
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected postgres://…"))?;
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let (userinfo, hosts) = match authority.rfind('@') {
            Some(at) => (&authority[..=at], &authority[at + 1..]),
            None => ("", authority),
        };
        let tail = strip_session_attrs(tail).map_err(|e| bad(&e))?;
        let mut options = Vec::new();
        let mut labels = Vec::new();
        for host in hosts.split(',') {
            if host.is_empty() {
                return Err(bad("an empty host in the host list"));
            }
            let one = format!("{scheme}://{userinfo}{host}{tail}");
            let parsed = PgConnectOptions::from_str(&one)
                .map_err(|e| bad(&format!("host {host}: {}", redact(&e.to_string(), url))))?;
            labels.push(format!("{}:{}", parsed.get_host(), parsed.get_port()));
            options.push(parsed);
        }
        Ok(Nodes { options, labels })
    }

    /// How many nodes the URL names.
    pub(crate) fn len(&self) -> usize {
        self.options.len()
    }

    /// The connect options of node `i`.
    pub(crate) fn options(&self, i: usize) -> &PgConnectOptions {
        &self.options[i]
    }

    /// `host:port` of node `i`.
    pub(crate) fn label(&self, i: usize) -> &str {
        &self.labels[i]
    }

    /// The index of the node that is a primary now, probing all of them at once.
    ///
    /// # Errors
    /// [`StoreError::NotPrimary`] saying what each node answered when none is a primary.
    pub(crate) async fn find_primary(&self) -> Result<usize, StoreError> {
        let probes = self.options.iter().map(|o| probe(o.clone()));
        let answers = futures_util::future::join_all(probes).await;
        let primaries: Vec<usize> = (0..answers.len())
            .filter(|&i| matches!(answers[i], Ok(false)))
            .collect();
        match primaries.as_slice() {
            [one] => return Ok(*one),
            // Two nodes accepting writes is a split brain (an old primary started outside the
            // failover manager): which one is the real primary cannot be told from here, so
            // neither is used until the manager has fenced one.
            [_, _, ..] => {
                let named: Vec<&str> = primaries.iter().map(|&i| self.label(i)).collect();
                return Err(StoreError::NotPrimary(format!(
                    "more than one PostgreSQL node claims to be the primary ({}): refusing to use either until the failover manager has demoted all but one",
                    named.join(", ")
                )));
            }
            [] => {}
        }
        let said: Vec<String> = answers
            .iter()
            .zip(&self.labels)
            .map(|(a, label)| match a {
                Ok(_) => format!("{label} is a standby (in recovery)"),
                Err(e) => format!("{label}: {e}"),
            })
            .collect();
        Err(StoreError::NotPrimary(format!(
            "no primary among the configured PostgreSQL nodes ({}); the service appends only on a primary: name every node of the cluster in AUDITEX_DATABASE_URL (host1:port1,host2:port2) and let the failover manager promote one",
            said.join("; ")
        )))
    }
}

/// Whether the node is in recovery (a standby), within [`PROBE_TIMEOUT`].
async fn probe(options: PgConnectOptions) -> Result<bool, String> {
    let attempt = async {
        let mut conn = options.connect().await.map_err(|e| e.to_string())?;
        let standby: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        // Closing politely is best effort: the answer is known already.
        let _ = sqlx::Connection::close(conn).await;
        Ok(standby)
    };
    tokio::time::timeout(PROBE_TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "no answer within {} s",
                PROBE_TIMEOUT.as_secs_f64()
            ))
        })
}

/// Keeps `pool` pointed at the primary while the pool is open; `current` is the node chosen
/// when the store opened.
pub(crate) fn watch(
    pool: PgPool,
    nodes: Nodes,
    mut current: usize,
    state: std::sync::Arc<PrimaryState>,
    confirmations: std::sync::Arc<super::confirmed::Confirmations>,
) {
    use std::sync::atomic::Ordering;
    if nodes.len() < 2 {
        return;
    }
    tokio::spawn(async move {
        let mut missing_since: Option<std::time::Instant> = None;
        while !pool.is_closed() {
            tokio::time::sleep(WATCH_INTERVAL).await;
            let primary = tokio::time::timeout(PROBE_TIMEOUT, async {
                sqlx::query_scalar::<_, bool>("SELECT NOT pg_is_in_recovery()")
                    .fetch_one(&pool)
                    .await
            })
            .await;
            // The pool's own answer, or else every node asked directly: a pool too busy to
            // answer within the probe's time is not a missing primary.
            let found = if matches!(primary, Ok(Ok(true))) {
                Ok(current)
            } else {
                nodes.find_primary().await
            };
            match found {
                Ok(found) => {
                    if found != current {
                        tracing::warn!(
                            from = nodes.label(current),
                            to = nodes.label(found),
                            "the PostgreSQL primary moved; new connections go to the new primary"
                        );
                        current = found;
                        confirmations.point_at(nodes.options(found).clone(), nodes.label(found));
                        pool.set_connect_options(nodes.options(found).clone());
                        *state.node.lock().unwrap_or_else(|p| p.into_inner()) =
                            nodes.label(found).to_owned();
                        state.changes.fetch_add(1, Ordering::Relaxed);
                    }
                    state.missing_since_us.store(0, Ordering::Relaxed);
                    if let Some(since) = missing_since.take() {
                        tracing::warn!(
                            node = nodes.label(current),
                            without_primary_ms =
                                u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX),
                            "PostgreSQL primary reachable again"
                        );
                    }
                }
                Err(e) => {
                    if missing_since.is_none() {
                        missing_since = Some(std::time::Instant::now());
                        state.missing_since_us.store(now_us(), Ordering::Relaxed);
                    }
                    tracing::warn!(error = %e, "no PostgreSQL primary at the moment");
                }
            }
        }
    });
}

/// Removes `target_session_attrs` from the URL's query, refusing values the service cannot
/// honour (it always needs a node that accepts writes).
fn strip_session_attrs(tail: &str) -> Result<String, String> {
    let Some((path, query)) = tail.split_once('?') else {
        return Ok(tail.to_owned());
    };
    let mut kept = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("target_session_attrs", value)) => {
                if !matches!(value, "read-write" | "primary" | "any") {
                    return Err(format!(
                        "target_session_attrs={value} is not supported: the service always connects to the primary"
                    ));
                }
            }
            _ => kept.push(pair),
        }
    }
    Ok(if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", kept.join("&"))
    })
}

/// `message` without the URL's password, should sqlx have quoted the URL.
fn redact(message: &str, url: &str) -> String {
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, pw)| pw)
        .filter(|pw| !pw.is_empty());
    match password {
        Some(pw) => message.replace(pw, "<redacted>"),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_with_several_hosts_names_each_node_with_the_same_credentials_and_database() {
        let nodes = Nodes::parse(
            "postgres://app:s3cret@db1:5441,db2:5442/ledger?sslmode=disable&target_session_attrs=read-write",
        )
        .unwrap();
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes.label(0), "db1:5441");
        assert_eq!(nodes.label(1), "db2:5442");
        for i in 0..2 {
            assert_eq!(nodes.options(i).get_username(), "app");
            assert_eq!(nodes.options(i).get_database(), Some("ledger"));
        }
    }

    #[test]
    fn a_url_with_one_host_is_one_node() {
        let nodes = Nodes::parse("postgresql://app@127.0.0.1:5432/postgres").unwrap();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes.label(0), "127.0.0.1:5432");
    }

    #[test]
    fn session_attributes_other_than_read_write_and_empty_hosts_are_refused_without_the_password() {
        for url in [
            "postgres://app:s3cret@db1:5441,db2:5442/l?target_session_attrs=standby",
            "postgres://app:s3cret@db1:5441,,db2:5442/l",
            "postgres://app:s3cret@db1:notaport/l",
        ] {
            let err = Nodes::parse(url).unwrap_err();
            // A configuration mistake, not an outage: nothing should retry it.
            assert!(!err.is_retryable(), "{err}");
            let e = err.to_string();
            assert!(e.starts_with("invalid PostgreSQL URL"), "{e}");
            assert!(!e.contains("s3cret"), "{e}");
        }
    }

    #[test]
    fn other_query_parameters_survive_the_removal_of_session_attributes() {
        assert_eq!(
            strip_session_attrs("/db?a=1&target_session_attrs=primary&b=2").unwrap(),
            "/db?a=1&b=2"
        );
        assert_eq!(
            strip_session_attrs("/db?target_session_attrs=read-write").unwrap(),
            "/db"
        );
        assert_eq!(strip_session_attrs("/db").unwrap(), "/db");
    }
}
