//! Startup and shutdown, in one place: [`Application::build`] binds the listener (port 0 in
//! tests), prepares TLS, builds the application state, starts every background task and composes
//! the router (the API's routes, the portal's pages when configured, inside the HTTP edge);
//! [`Application::run_until_stopped`] serves until the shutdown future resolves, then stops
//! everything in order and says so in the log.
//!
//! What runs in the background of a served store, and who starts it:
//!
//! - the store's workers, the checkpoint publisher and the projection runner, started here with
//!   `Store::start_workers` (the store is opened with `Store::open`, which starts nothing; see
//!   `store::workers`), joined at shutdown;
//! - the per-tenant appenders, started by the store on a tenant's first append and closed by
//!   `Store::shutdown`;
//! - the integrity-check jobs, started by requests (`app::integrity`) and cancelled here at
//!   shutdown so that each files its `cancelled` result;
//! - housekeeping started here: forgetting idle rate-limiter entries, and giving freed heap
//!   memory back after a load (`app::memory`).
//!
//! `main` (through `auditex serve`) and every test start the server through this same path.

mod idle;

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use axum::Router;
use tokio::task::JoinHandle;

use crate::app::{AppSettings, AppState, memory};
use crate::http::{self, HttpConfig, TlsMode, tls};
use crate::portal::{self, Portal, PortalConfig};
use crate::store::{Store, StoreError, Workers};

/// How long graceful shutdown waits for in-flight requests, and then for each background task.
pub const SHUTDOWN_GRACE_MS: u64 = 10_000;

/// How often idle rate-limiter entries are forgotten.
const LIMITER_TRIM_INTERVAL_MS: u64 = 60_000;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Plain HTTP was asked for on a non-loopback address.
    #[error(
        "plain HTTP is allowed only on a loopback address (AUDITEX_LISTEN={0}); configure TLS instead"
    )]
    PlainHttpNotLoopback(SocketAddr),
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The store's background workers could not be started.
    #[error("cannot start the store's workers: {0}")]
    Workers(#[from] StoreError),
}

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    tls: Option<tls::TlsSetup>,
    router: Router,
    state: AppState,
    workers: Workers,
    housekeeping: Vec<(&'static str, JoinHandle<()>)>,
}

impl Application {
    /// Binds the listener, prepares TLS and the router, and starts the background tasks.
    ///
    /// # Errors
    /// [`StartError`] naming what could not be set up.
    pub async fn build(store: Store, config: &HttpConfig) -> Result<Application, StartError> {
        Application::build_with_portal(store, config, None).await
    }

    /// Like [`Application::build`], also serving the compliance portal's pages when `portal`
    /// is given (the service always does; API-only tests need not).
    ///
    /// # Errors
    /// [`StartError`] naming what could not be set up.
    pub async fn build_with_portal(
        store: Store,
        config: &HttpConfig,
        portal: Option<PortalConfig>,
    ) -> Result<Application, StartError> {
        let tls = match &config.tls {
            TlsMode::Files { cert, key } => Some(tls::load(cert, key)?),
            TlsMode::SelfSigned(dir) => {
                let (setup, generated) = tls::load_or_generate_self_signed(dir)?;
                if generated {
                    tracing::warn!(fingerprint = %setup.fingerprint, "generated a self-signed TLS certificate");
                }
                Some(setup)
            }
            TlsMode::PlainDevelopment => {
                if !config.listen.ip().is_loopback() {
                    return Err(StartError::PlainHttpNotLoopback(config.listen));
                }
                tracing::warn!("plain HTTP for development: never use this in production");
                None
            }
        };
        let bind_error = |source| StartError::Bind {
            addr: config.listen,
            source,
        };
        let listener = TcpListener::bind(config.listen).map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let state = AppState::new(
            store.clone(),
            &AppSettings {
                rate_per_second: config.rate_per_second,
                rate_burst: config.rate_burst,
                ingest_rate_per_second: config.ingest_rate_per_second,
                request_bodies_bytes_max: config.request_bodies_bytes_max,
                public_error: http::error::public_detail,
            },
        );
        // Before the first request can arrive: the projection runner prepares the views' state.
        let workers = store.start_workers().await?;
        // Erasures a restore removed from the chain, carried out again when the store opened,
        // get records of this chain before the service takes requests (`store::erasure`). Only
        // the service restates: a one-shot command (`auditex rollback status`, `apikey`, …)
        // appends nothing it was not asked to.
        store.restate_reerased_all().await;
        let pages = portal.map_or_else(Router::new, |p| portal::routes(Portal::new(p)));
        let (router, trim_address_limits) =
            http::edge(http::routes().merge(pages), state.clone(), config);
        let mut housekeeping = housekeeping(&state, trim_address_limits);
        // The log side of witnessing: new checkpoints go to each tenant's witnesses.
        housekeeping.push((
            "witness cosigning",
            tokio::spawn(crate::witness::client::Cosigner::new(store.clone()).run()),
        ));
        Ok(Application {
            listener,
            addr,
            tls,
            router,
            state,
            workers,
            housekeeping,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// SHA-256 fingerprint of the TLS certificate, when TLS is on.
    pub fn tls_fingerprint(&self) -> Option<&str> {
        self.tls.as_ref().map(|t| t.fingerprint.as_str())
    }

    /// The TLS certificate (PEM), when TLS is on.
    pub fn tls_certificate_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(|t| t.certificate_pem.as_str())
    }

    /// Serves until `shutdown` resolves, then stops, in this order: no new connections, and
    /// in-flight requests get [`SHUTDOWN_GRACE_MS`] to finish; running integrity checks are
    /// cancelled and file their result (while the store still accepts appends); the store
    /// commits queued appends and publishes final checkpoints; its workers are joined; the
    /// housekeeping tasks end.
    ///
    /// # Errors
    /// The server's I/O error.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let grace = Duration::from_millis(SHUTDOWN_GRACE_MS);
        let handle = axum_server::Handle::new();
        let stopper = handle.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests");
            stopper.graceful_shutdown(Some(grace));
        });
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        // TCP_NODELAY on every accepted connection: without it, a response written in more than
        // one segment waits for the client's delayed acknowledgement of the first (Nagle's
        // algorithm), tens of milliseconds on every request of a keep-alive connection.
        // And a connection with no request in flight that sends and receives nothing for as long
        // is closed, HTTP/2 ones too, which hyper's timeout does not reach (`idle`).
        let nodelay = idle::IdleAcceptor::new(
            axum_server::accept::NoDelayAcceptor::new(),
            Duration::from_secs(HEADER_READ_TIMEOUT_S),
            Duration::from_secs(RESPONSE_STALL_TIMEOUT_S),
        );
        let mut server = axum_server::from_tcp(self.listener)?;
        // A connection that does not finish a request's headers in time is closed (hyper's own
        // default, which axum-server turns off): otherwise a client that sends part of a
        // request and stops holds its connection for ever. An idle keep-alive connection is
        // closed after the same time. Request bodies have deadlines of their own (`http::bodies`).
        server
            .http_builder()
            .http1()
            .header_read_timeout(Some(Duration::from_secs(HEADER_READ_TIMEOUT_S)));
        let result = match self.tls {
            Some(tls) => {
                let config = axum_server::tls_rustls::RustlsConfig::from_config(tls.config);
                server
                    .acceptor(
                        axum_server::tls_rustls::RustlsAcceptor::new(config).acceptor(nodelay),
                    )
                    .handle(handle)
                    .serve(service)
                    .await
            }
            None => server.acceptor(nodelay).handle(handle).serve(service).await,
        };
        tracing::info!("listener stopped");
        self.state.integrity.stop_all(grace).await;
        tracing::info!("integrity checks stopped");
        self.state.store.shutdown().await;
        tracing::info!("store shut down: queued appends committed, final checkpoints published");
        self.workers.join(grace).await;
        for (name, task) in self.housekeeping {
            task.abort();
            tracing::info!(task = name, "stopped");
        }
        result
    }
}

/// Seconds a client has to send a request's headers (and an idle keep-alive connection is
/// kept, HTTP/2 ones included) before its connection is closed.
pub const HEADER_READ_TIMEOUT_S: u64 = 30;

/// Seconds a connection with a request in flight may go without sending or receiving a byte
/// (a streamed answer waiting for its next page, or for a client that does not read) before it
/// is closed.
pub const RESPONSE_STALL_TIMEOUT_S: u64 = 300;

/// Seconds between the INFO lines that sum up the requests answered (each request itself is
/// logged at DEBUG when it succeeded).
const REQUEST_SUMMARY_INTERVAL_S: u64 = 60;

/// Starts the periodic tasks that keep the state's memory bounded, and the request summary.
fn housekeeping(
    state: &AppState,
    trim_address_limits: http::AddressLimiterTrim,
) -> Vec<(&'static str, JoinHandle<()>)> {
    let key_limits = state.key_limits.clone();
    let limiter_trim = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(LIMITER_TRIM_INTERVAL_MS));
        loop {
            tick.tick().await;
            trim_address_limits();
            key_limits.retain_recent();
        }
    });
    let store = state.store.clone();
    let memory_trim = memory::spawn_trimmer(state.bodies.clone(), move || {
        store.append_queue_load() == (0, 0)
    });
    let metrics = state.metrics.clone();
    let request_summary = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(REQUEST_SUMMARY_INTERVAL_S));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = metrics.request_totals();
        loop {
            tick.tick().await;
            let now = metrics.request_totals();
            let minute = now.since(last);
            last = now;
            if minute.requests > 0 {
                tracing::info!(
                    requests = minute.requests,
                    client_errors = minute.client_errors,
                    server_errors = minute.server_errors,
                    interval_s = REQUEST_SUMMARY_INTERVAL_S,
                    "requests answered"
                );
            }
        }
    });
    vec![
        ("rate-limiter trim", limiter_trim),
        ("memory trim", memory_trim),
        ("request summary", request_summary),
    ]
}
