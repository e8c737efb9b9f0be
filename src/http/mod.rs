//! The HTTPS layer: the `/v1` API for pipelines, auditors and regulators, plus health, readiness
//! and metrics endpoints.
//!
//! [`Application::build`] binds the listener (port 0 in tests) and prepares TLS;
//! [`Application::run_until_stopped`] serves until the shutdown future resolves, then stops
//! accepting connections, lets in-flight requests finish and drains queued appends. `main.rs` and
//! every test start the server through this same path.

pub mod api;
pub mod bodies;
pub mod drain;
pub mod error;
mod input;
pub mod integrity;
pub mod limits;
mod memory;
pub mod metrics;
pub mod openapi;
pub mod readiness;
pub mod tls;
pub mod views;

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::KeyExtractor;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::auth::Role;
use crate::store::Store;
use crate::store::api_keys::Principal;
use error::ApiError;
use metrics::Metrics;

/// Largest request body accepted, in bytes (a full batch of large decisions fits).
pub const REQUEST_BODY_BYTES_MAX: usize = 8 * 1024 * 1024;

/// How long graceful shutdown waits for in-flight requests.
pub const SHUTDOWN_GRACE_MS: u64 = 10_000;

/// HTTP settings.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Where to listen (`127.0.0.1:0` in tests).
    pub listen: SocketAddr,
    /// TLS, or plain HTTP for development on loopback only.
    pub tls: TlsMode,
    /// Sustained requests per second allowed per API key and per client address.
    pub rate_per_second: u32,
    /// Burst allowance above the sustained rate.
    pub rate_burst: u32,
    /// Bytes of request bodies that may be held at once, all connections together (see
    /// [`bodies`]); [`bodies::REQUEST_BODIES_BYTES_MAX`] by default.
    pub request_bodies_bytes_max: usize,
}

/// How the listener speaks.
#[derive(Debug, Clone)]
pub enum TlsMode {
    /// Certificate and key from PEM files.
    Files {
        /// Certificate chain.
        cert: std::path::PathBuf,
        /// Private key (mode 0600).
        key: std::path::PathBuf,
    },
    /// A self-signed certificate kept in this folder, generated on first start.
    SelfSigned(std::path::PathBuf),
    /// Plain HTTP: development only, and only on a loopback address.
    PlainDevelopment,
}

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
}

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: Store,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Integrity checks started over the API.
    pub integrity: integrity::IntegrityChecks,
    /// Per-key rate limits, charged after a key is verified.
    pub key_limits: limits::KeyLimits,
    /// The cached readiness answer.
    pub readiness: readiness::Readiness,
    /// The memory budget of request bodies being read.
    pub bodies: bodies::BodyBudget,
}

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    tls: Option<tls::TlsSetup>,
    router: Router,
    store: Store,
    integrity: integrity::IntegrityChecks,
}

impl Application {
    /// Binds the listener and prepares TLS and the router.
    ///
    /// # Errors
    /// [`StartError`] naming what could not be set up.
    pub fn build(store: Store, config: &HttpConfig) -> Result<Application, StartError> {
        Application::build_with_portal(store, config, None)
    }

    /// Like [`Application::build`], also serving the compliance portal's pages when `portal`
    /// is given (the service always does; API-only tests need not).
    ///
    /// # Errors
    /// [`StartError`] naming what could not be set up.
    pub fn build_with_portal(
        store: Store,
        config: &HttpConfig,
        portal: Option<crate::portal::PortalConfig>,
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
        let listener = TcpListener::bind(config.listen).map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| StartError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        let integrity = integrity::IntegrityChecks::default();
        let state = AppState {
            store: store.clone(),
            metrics: Arc::new(Metrics::default()),
            integrity: integrity.clone(),
            key_limits: limits::KeyLimits::new(config.rate_per_second, config.rate_burst),
            readiness: readiness::Readiness::default(),
            bodies: bodies::BodyBudget::new(config.request_bodies_bytes_max),
        };
        let router = router(state, config, portal.map(crate::portal::Portal::new));
        Ok(Application {
            listener,
            addr,
            tls,
            router,
            store,
            integrity,
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

    /// Serves until `shutdown` resolves, then drains: no new connections, in-flight requests get
    /// [`SHUTDOWN_GRACE_MS`] to finish, running integrity checks are cancelled and file their
    /// result, queued appends are committed, final checkpoints published.
    ///
    /// # Errors
    /// The server's I/O error.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let handle = axum_server::Handle::new();
        let stopper = handle.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests");
            stopper.graceful_shutdown(Some(Duration::from_millis(SHUTDOWN_GRACE_MS)));
        });
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        let result = match self.tls {
            Some(tls) => {
                let config = axum_server::tls_rustls::RustlsConfig::from_config(tls.config);
                axum_server::from_tcp_rustls(self.listener, config)?
                    .handle(handle)
                    .serve(service)
                    .await
            }
            None => {
                axum_server::from_tcp(self.listener)?
                    .handle(handle)
                    .serve(service)
                    .await
            }
        };
        // Running integrity checks stop and file their `cancelled` result while the store still
        // accepts appends.
        self.integrity
            .stop_all(Duration::from_millis(SHUTDOWN_GRACE_MS))
            .await;
        self.store.shutdown().await;
        result
    }
}

/// Rate-limit key: the client address only (so one address cannot spread load over many keys).
#[derive(Debug, Clone, Copy)]
struct ClientIp;

impl KeyExtractor for ClientIp {
    type Key = String;

    fn extract<T>(
        &self,
        req: &axum::http::Request<T>,
    ) -> Result<Self::Key, tower_governor::GovernorError> {
        Ok(peer_ip(req))
    }
}

fn peer_ip<T>(req: &axum::http::Request<T>) -> String {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string())
}

fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

fn rate_limited(metrics: &Metrics, e: tower_governor::GovernorError) -> Response {
    metrics.rate_limited();
    let wait = match e {
        tower_governor::GovernorError::TooManyRequests { wait_time, .. } => wait_time.max(1),
        _ => 1,
    };
    ApiError::RateLimited(wait).into_response()
}

fn router(state: AppState, config: &HttpConfig, portal: Option<crate::portal::Portal>) -> Router {
    // The address wall covers all traffic, authenticated or not; the per-key bucket is charged
    // in the `Caller` extractor once the key verified (see `limits`).
    let per_ip = {
        let quota = limits::address_quota(config.rate_per_second, config.rate_burst);
        let mut builder = GovernorConfigBuilder::default().key_extractor(ClientIp);
        builder
            .period(quota.replenish_interval())
            .burst_size(quota.burst_size().get());
        Arc::new(
            builder
                .finish()
                // `finish` fails only for a zero period or burst, which `limits` rules out.
                .expect("rate-limit configuration is valid"),
        )
    };
    // Forget idle limiter entries so the maps stay bounded.
    let address_limiter = per_ip.limiter().clone();
    let key_limits = state.key_limits.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            address_limiter.retain_recent();
            key_limits.retain_recent();
        }
    });
    let store = state.store.clone();
    memory::spawn_trimmer(state.bodies.clone(), move || {
        store.append_queue_load() == (0, 0)
    });
    let metrics = state.metrics.clone();
    let request_id = HeaderName::from_static("x-request-id");
    let pages = portal.map_or_else(Router::new, crate::portal::routes);
    api::routes()
        .merge(integrity::routes())
        .merge(views::routes())
        .merge(api::ops_routes())
        .merge(pages)
        .layer(axum::middleware::from_fn(input::refuse_unusable_input))
        // Inside the rate limits, so that a throttled request reserves nothing.
        .layer(axum::middleware::from_fn_with_state(
            state.bodies.clone(),
            bodies::reserve_body_bytes,
        ))
        .layer(GovernorLayer::new(per_ip).error_handler(move |e| rate_limited(&metrics, e)))
        .layer(RequestBodyLimitLayer::new(REQUEST_BODY_BYTES_MAX))
        // The body extractors' own default (2 MiB) would refuse batches that the limit above
        // admits, with a 413 that names the larger limit.
        .layer(axum::extract::DefaultBodyLimit::max(REQUEST_BODY_BYTES_MAX))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        // Outermost, so that every early answer (rate limits and body limit included) is sent
        // only after the client's upload has finished.
        .layer(axum::middleware::from_fn(drain::finish_reading_body))
        .with_state(state)
}

/// Logs each request (method, path, status, latency, request id; never bodies or keys) and
/// counts error statuses.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let started = std::time::Instant::now();
    let mut response = next.run(request).await;
    let status = response.status().as_u16();
    state.metrics.status(status);
    // Rejections produced below the handlers (body limit, path syntax, unknown route, wrong
    // method) come as plain text; every error leaves this service as a problem document.
    // Portal pages answer errors with HTML pages of their own.
    if status >= 400
        && response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_none_or(|v| {
                v != "application/problem+json" && !v.as_bytes().starts_with(b"text/html")
            })
    {
        response = if status == 413 {
            ApiError::BodyTooLarge(REQUEST_BODY_BYTES_MAX).into_response()
        } else {
            let (parts, body) = response.into_parts();
            let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
            error::generic_problem(parts.status, &String::from_utf8_lossy(&text), parts.headers)
        };
    }
    tracing::info!(request_id = %id, %method, %path, status, latency_us = started.elapsed().as_micros() as u64, "request");
    response
}

/// The authenticated caller. The tenant comes from the API key and from nothing else.
pub struct Caller(pub Principal);

impl Caller {
    /// Refuses the request unless the caller's role is one of `allowed`.
    ///
    /// # Errors
    /// [`ApiError::Forbidden`].
    pub fn require(&self, allowed: &[Role], action: &'static str) -> Result<&Principal, ApiError> {
        if allowed.contains(&self.0.role) {
            Ok(&self.0)
        } else {
            Err(ApiError::Forbidden {
                role: self.0.role,
                action,
            })
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers).ok_or(ApiError::Unauthorized)?;
        let principal = state
            .store
            .authenticate(token)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        // Only now, with the key verified, is its bucket charged.
        if let Err(wait) = state.key_limits.charge(&principal.key_id) {
            state.metrics.rate_limited();
            return Err(ApiError::RateLimited(wait));
        }
        Ok(Caller(principal))
    }
}
