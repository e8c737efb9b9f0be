//! The log side of C2SP tlog-witness: the service sends each tenant's new checkpoints to the
//! tenant's witnesses and keeps what they cosign.
//!
//! Every [`POLL_MS`] the client looks at each tenant with witnesses; for each witness behind the
//! latest checkpoint it posts `add-checkpoint` with the consistency proof from the size the
//! witness last cosigned (as stored, or as the witness said in a 409, which is then retried at
//! once from that size). The answer is verified against the witness's key before it is stored.
//! Witnesses are contacted concurrently with a timeout each, so a slow or dead witness delays
//! no other and never the checkpoints themselves; one that fails is retried with a growing pause
//! (at most [`BACKOFF_MAX_MS`]). A witness that claims a larger tree than the log has (after a
//! rollback) cannot be caught up and is reported, not forced.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ledger::types::{TenantId, TreeSize};

use crate::store::witnesses::{ConfiguredWitness, WitnessStatus};
use crate::store::{Store, StoredCheckpoint};

/// How often the client looks for checkpoints to send.
pub const POLL_MS: u64 = 200;

/// How long one witness request may take.
pub const REQUEST_TIMEOUT_MS: u64 = 10_000;

/// Longest witness answer read (a few signature lines, or a size).
const WITNESS_ANSWER_BYTES_MAX: usize = 64 * 1024;

/// The longest pause before retrying a failing witness.
pub const BACKOFF_MAX_MS: u64 = 30_000;

/// How long the tenants' witness lists are trusted before being read again.
const CONFIG_REFRESH_MS: u64 = 5_000;

/// What the client knows of one witness of one tenant.
struct Progress {
    /// The size the witness last cosigned, as far as the client knows.
    known: Option<u64>,
    /// The root the witness cosigned at `known`, when this client saw it do so: a checkpoint of
    /// the same size with another root (after a rollback) is not cosigned yet.
    known_root: Option<ledger::types::Hash>,
    /// No attempt before this instant (after failures).
    not_before: Instant,
    /// The pause after the next failure.
    backoff: Duration,
    last_error: Option<String>,
}

/// The cosigning client.
pub struct Cosigner {
    store: Store,
    progress: HashMap<(TenantId, String), Progress>,
    clients: HashMap<Option<String>, reqwest::Client>,
    config: HashMap<TenantId, Vec<ConfiguredWitness>>,
    config_read: Option<Instant>,
}

impl Cosigner {
    /// A client for the store's tenants.
    pub fn new(store: Store) -> Cosigner {
        Cosigner {
            store,
            progress: HashMap::new(),
            clients: HashMap::new(),
            config: HashMap::new(),
            config_read: None,
        }
    }

    /// Runs until the task is aborted.
    pub async fn run(mut self) {
        let mut tick = tokio::time::interval(Duration::from_millis(POLL_MS));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.round().await {
                tracing::warn!(error = %e, "witness round failed");
            }
        }
    }

    /// One pass over every tenant with witnesses.
    ///
    /// # Errors
    /// A store error reading the configuration.
    pub async fn round(&mut self) -> Result<(), crate::store::StoreError> {
        let stale = self
            .config_read
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(CONFIG_REFRESH_MS));
        if stale {
            let mut config = HashMap::new();
            for tenant in self.store.tenants().await? {
                let witnesses = self.store.witnesses(&tenant).await?;
                if !witnesses.is_empty() {
                    config.insert(tenant, witnesses);
                }
            }
            self.config = config;
            self.config_read = Some(Instant::now());
            let config = &self.config;
            self.progress.retain(|(t, name), _| {
                config
                    .get(t)
                    .is_some_and(|ws| ws.iter().any(|w| w.key.name() == name))
            });
            self.store.retain_witness_status(|t, name| {
                config.iter().any(|(tenant, ws)| {
                    tenant.as_str() == t && ws.iter().any(|w| w.key.name() == name)
                })
            });
        }
        let tenants: Vec<(TenantId, Vec<ConfiguredWitness>)> = self
            .config
            .iter()
            .map(|(t, w)| (t.clone(), w.clone()))
            .collect();
        for (tenant, witnesses) in tenants {
            // A tenant held after a rollback shows no checkpoint as current: nothing to send.
            if self.store.refuse_if_rolled_back(&tenant).is_err() {
                continue;
            }
            let Some(checkpoint) = self.store.latest_checkpoint(&tenant).await? else {
                continue;
            };
            let mut jobs = Vec::new();
            for w in &witnesses {
                let key = (tenant.clone(), w.key.name().to_owned());
                if !self.progress.contains_key(&key) {
                    let known = self.store.last_cosigned(&tenant, w.key.name()).await?;
                    self.progress.insert(
                        key.clone(),
                        Progress {
                            known,
                            known_root: None,
                            not_before: Instant::now(),
                            backoff: Duration::from_millis(POLL_MS),
                            last_error: None,
                        },
                    );
                }
                let Some((known, known_root, not_before)) = self
                    .progress
                    .get(&key)
                    .map(|p| (p.known, p.known_root, p.not_before))
                else {
                    continue;
                };
                // Behind unless it cosigned this very checkpoint (size and root): a witness that
                // cosigned a larger or another tree (a rollback) is sent it too, and says why not.
                let behind =
                    known != Some(checkpoint.size.get()) || known_root != Some(checkpoint.root);
                if behind && Instant::now() >= not_before {
                    let client = self.client(w.ca_pem.as_ref());
                    jobs.push(send(
                        self.store.clone(),
                        tenant.clone(),
                        w.clone(),
                        client,
                        checkpoint.clone(),
                        known.unwrap_or(0),
                    ));
                }
            }
            let results = futures_util::future::join_all(jobs).await;
            for (name, result) in results {
                let key = (tenant.clone(), name.clone());
                let Some(p) = self.progress.get_mut(&key) else {
                    continue;
                };
                match result {
                    Ok(size) => {
                        p.known = Some(size);
                        p.known_root = Some(checkpoint.root);
                        p.last_error = None;
                        p.backoff = Duration::from_millis(POLL_MS);
                        p.not_before = Instant::now();
                    }
                    Err(Failure { known, message }) => {
                        if known.is_some() {
                            p.known = known;
                            p.known_root = None;
                        }
                        tracing::warn!(%tenant, witness = %name, error = %message, "witness did not cosign");
                        p.last_error = Some(message);
                        p.not_before = Instant::now() + p.backoff;
                        p.backoff = (p.backoff * 2).min(Duration::from_millis(BACKOFF_MAX_MS));
                    }
                }
            }
            for w in &witnesses {
                if let Some(p) = self
                    .progress
                    .get(&(tenant.clone(), w.key.name().to_owned()))
                {
                    self.store.note_witness_status(WitnessStatus {
                        tenant: tenant.to_string(),
                        witness: w.key.name().to_owned(),
                        cosigned_size: p.known.unwrap_or(0),
                        checkpoint_size: checkpoint.size.get(),
                        last_error: p.last_error.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    fn client(&mut self, ca_pem: Option<&String>) -> Option<reqwest::Client> {
        if let Some(c) = self.clients.get(&ca_pem.cloned()) {
            return Some(c.clone());
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_millis(REQUEST_TIMEOUT_MS))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("auditex/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_pem {
            let cert = reqwest::Certificate::from_pem(pem.as_bytes()).ok()?;
            builder = builder.tls_certs_only([cert]);
        }
        let client = builder.build().ok()?;
        self.clients.insert(ca_pem.cloned(), client.clone());
        Some(client)
    }
}

/// A failed attempt: what the witness's size turned out to be, if it said, and why.
struct Failure {
    known: Option<u64>,
    message: String,
}

/// Sends `checkpoint` to `witness` from `old` (and once more from the size a 409 names);
/// returns the witness's name and the size it now holds cosigned.
async fn send(
    store: Store,
    tenant: TenantId,
    witness: ConfiguredWitness,
    client: Option<reqwest::Client>,
    checkpoint: StoredCheckpoint,
    old: u64,
) -> (String, Result<u64, Failure>) {
    let name = witness.key.name().to_owned();
    let Some(client) = client else {
        return (
            name,
            Err(Failure {
                known: None,
                message: "the witness's CA certificate cannot be used".into(),
            }),
        );
    };
    // A witness believed ahead of this log (after a rollback) is asked afresh from 0: its 409
    // says where it stands now (it may have been reset by its operator since).
    let old = if old > checkpoint.size.get() { 0 } else { old };
    let mut old = old;
    let mut learnt = None;
    for _ in 0..2 {
        match attempt(&store, &tenant, &witness, &client, &checkpoint, old).await {
            Ok(size) => return (name, Ok(size)),
            Err(Attempt::Conflict(size)) if size <= checkpoint.size.get() && size != old => {
                // The witness holds another size: resend from there.
                old = size;
                learnt = Some(size);
            }
            Err(Attempt::Conflict(size)) => {
                let message = if size > checkpoint.size.get() {
                    format!(
                        "the witness has cosigned a tree of {size} records, larger than this log's {}: after a rollback it cannot be caught up (see docs/OPERATIONS.md)",
                        checkpoint.size
                    )
                } else {
                    format!("the witness keeps answering 409 with size {size}")
                };
                return (
                    name,
                    Err(Failure {
                        known: Some(size),
                        message,
                    }),
                );
            }
            Err(Attempt::Failed(message)) => {
                return (
                    name,
                    Err(Failure {
                        known: learnt,
                        message,
                    }),
                );
            }
        }
    }
    (
        name,
        Err(Failure {
            known: learnt,
            message: "the witness's size kept changing".into(),
        }),
    )
}

enum Attempt {
    Conflict(u64),
    Failed(String),
}

async fn attempt(
    store: &Store,
    tenant: &TenantId,
    witness: &ConfiguredWitness,
    client: &reqwest::Client,
    checkpoint: &StoredCheckpoint,
    old: u64,
) -> Result<u64, Attempt> {
    let size = checkpoint.size.get();
    let proof = if old == 0 || old >= size {
        Vec::new()
    } else {
        store
            .consistency_proof(tenant, TreeSize::new(old), checkpoint.size)
            .await
            .map_err(|e| Attempt::Failed(format!("consistency proof from {old}: {e}")))?
    };
    let mut body = format!("old {old}\n");
    for h in &proof {
        body.push_str(&STANDARD.encode(h.as_bytes()));
        body.push('\n');
    }
    body.push('\n');
    body.push_str(&checkpoint.signed_note);
    let url = format!("{}/add-checkpoint", witness.url);
    let response = client
        .post(&url)
        .body(body)
        .send()
        .await
        .map_err(|e| Attempt::Failed(format!("{url}: {e}")))?;
    let status = response.status();
    let text = crate::fetch::body_at_most(response, WITNESS_ANSWER_BYTES_MAX)
        .await
        .map_err(|e| Attempt::Failed(format!("{url}: {e}")))?
        .ok_or_else(|| {
            Attempt::Failed(format!(
                "{url}: an answer over {WITNESS_ANSWER_BYTES_MAX} bytes"
            ))
        })?;
    let text = String::from_utf8_lossy(&text).into_owned();
    match status.as_u16() {
        200 => match store
            .record_cosignature(tenant, checkpoint, &witness.key, &text)
            .await
        {
            Ok(Some(_)) => Ok(size),
            Ok(None) => Err(Attempt::Failed(
                "the witness answered 200 without a valid cosignature by its key".into(),
            )),
            Err(e) => Err(Attempt::Failed(format!("storing the cosignature: {e}"))),
        },
        409 => text
            .strip_suffix('\n')
            .and_then(|s| s.parse::<u64>().ok())
            .map(Attempt::Conflict)
            .map_or_else(
                || Err(Attempt::Failed(format!("409 without a size: {text:?}"))),
                Err,
            ),
        _ => Err(Attempt::Failed(format!(
            "HTTP {status}: {}",
            text.lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(200)
                .collect::<String>()
        ))),
    }
}
