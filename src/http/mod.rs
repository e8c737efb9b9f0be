//! The HTTPS layer of the API: the `/v1` endpoints for pipelines, auditors and regulators, plus
//! health, readiness, metrics and the OpenAPI document, and the middleware every answer passes
//! through (rate limits, body limits, problem documents, security headers, request logs).
//!
//! One job per module: [`api`] (records, proofs, checkpoints, keys, export, `/healthz`,
//! `/metrics`), [`views`] (the read-side views), [`integrity`] (integrity checks over HTTP),
//! [`subjects`] (subject rights: erasure requests),
//! [`holds`] (legal holds on subjects),
//! [`readiness`] (`/readyz`), [`replica_reads`] (read-only requests on read replicas), [`openapi`] (the document, assembled from those handler modules,
//! which do not import it), [`params`] (cursors, page sizes and event ids, shared by the handler
//! modules), [`extract`] (path and query parameters read alike by every handler), [`error`] (the
//! one error type), [`bodies`] and [`drain`] (the request-body budget and
//! early answers), `input` (unusable input refused before routing), [`tls`] (certificates).
//!
//! The state the handlers share is `app::AppState`; the portal is a sibling over the same state
//! and neither imports the other. `server` composes this layer's [`routes`] with the portal's
//! pages inside [`edge`] and runs the listener.

pub(crate) mod api;
pub(crate) mod bodies;
pub use bodies::{BODY_BYTES_PER_SECOND_MIN, BODY_SECONDS_MIN};
pub(crate) mod drain;
pub(crate) mod error;
pub(crate) mod extract;
pub(crate) mod holds;
mod input;
pub(crate) mod integrity;
pub(crate) mod openapi;
pub(crate) mod package;
pub(crate) mod params;
pub(crate) mod readiness;
pub(crate) mod replica_reads;
pub(crate) mod subjects;
pub(crate) mod tiles;
pub mod tls;
pub(crate) mod views;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::app::AppState;
use crate::app::bodies::BodyShare;
use crate::app::limits;
use crate::app::metrics::Metrics;
use crate::auth::Role;
use crate::store::api_keys::Principal;
use error::ApiError;

// Defined with the budget it bounds; the HTTP layer enforces it, and callers know it by this path.
pub use crate::app::bodies::REQUEST_BODY_BYTES_MAX;

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
    /// Sustained requests per second allowed per `ingest` key (twice that at once), unless the
    /// key has a rate of its own.
    pub ingest_rate_per_second: u32,
    /// Bytes of request bodies that may be held at once, all connections together (see
    /// [`bodies`]); [`crate::app::bodies::REQUEST_BODIES_BYTES_MAX`] by default.
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

fn peer_ip<T>(req: &axum::http::Request<T>) -> Option<std::net::IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The bearer token of the request's one `Authorization` header. The scheme's name is
/// case-insensitive (RFC 9110, 11.1). A request with two such headers has none: which of them
/// would act is not something a client should leave to the server.
fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let mut all = headers.get_all(header::AUTHORIZATION).iter();
    let value = all.next()?;
    if all.next().is_some() {
        return None;
    }
    let (scheme, token) = value.to_str().ok()?.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// What the address wall needs: its buckets, the keys' buckets, the store's verified keys, the
/// metrics.
#[derive(Clone)]
struct AddressWall {
    limits: limits::AddressLimits,
    keys: limits::KeyLimits,
    store: crate::store::Store,
    metrics: Arc<Metrics>,
}

/// Marks a request whose key's bucket the address wall charged already, so that the `Caller`
/// extractor does not charge it twice.
#[derive(Clone)]
struct KeyCharged(crate::auth::ApiKeyId);

/// Charges the request to its client address, or, when it carries a key this node verified a
/// moment ago, to that key's bucket instead — whatever the route, so that a valid key never
/// makes a request free; 429 with `Retry-After` when the bucket is empty.
async fn address_wall(
    State(wall): State<AddressWall>,
    mut request: Request,
    next: Next,
) -> Response {
    let vouched = bearer(request.headers()).and_then(|key| wall.store.recently_verified(key));
    let charged = match &vouched {
        Some(principal) => wall.keys.charge(principal),
        None => wall.limits.charge(peer_ip(&request)),
    };
    if let Err(wait) = charged {
        wall.metrics.rate_limited();
        return ApiError::RateLimited(wait).into_response();
    }
    if let Some(principal) = vouched {
        // The request body's share of the budget is its tenant's (see `bodies`).
        request
            .extensions_mut()
            .insert(BodyShare::Tenant(principal.tenant.clone()));
        request
            .extensions_mut()
            .insert(KeyCharged(principal.key_id));
    }
    next.run(request).await
}

/// Every route of the API: ledger, views, integrity checks, health, readiness, metrics and the
/// OpenAPI document.
pub fn routes() -> Router<AppState> {
    api::routes()
        .merge(integrity::routes())
        .merge(views::routes())
        .merge(subjects::routes())
        .merge(package::routes())
        .merge(holds::routes())
        .merge(api::ops_routes())
        .merge(readiness::routes())
        .merge(openapi::routes())
        // Paths under a tenant's log prefix (its origin's path) are not fixed routes. Tiles are
        // read-only: served by a read replica when there is one.
        .fallback(axum::handler::Handler::layer(
            tiles::serve,
            axum::middleware::from_fn(replica_reads::on_replica),
        ))
}

/// Forgets idle entries of the address rate limiter, so that its map stays bounded; the server
/// calls it every minute.
pub type AddressLimiterTrim = Box<dyn Fn() + Send + Sync>;

/// Wraps `routes` (the API's, and the portal's pages when served) in the middleware every answer
/// passes through, and gives it the state. Also returns the address limiter's trim, for the
/// server's housekeeping.
pub fn edge(
    routes: Router<AppState>,
    state: AppState,
    config: &HttpConfig,
) -> (Router, AddressLimiterTrim) {
    // The address wall charges every request to its address, but one carrying a key this node
    // verified a moment ago to that key's bucket instead (see `app::limits`).
    let wall = AddressWall {
        limits: limits::AddressLimits::new(config.rate_per_second, config.rate_burst),
        keys: state.key_limits.clone(),
        store: state.store.clone(),
        metrics: state.metrics.clone(),
    };
    let address_limits = wall.limits.clone();
    let trim: AddressLimiterTrim = Box::new(move || address_limits.retain_recent());
    let request_id = HeaderName::from_static("x-request-id");
    let router = routes
        .layer(axum::middleware::from_fn(input::refuse_unusable_input))
        // Inside the rate limits, so that a throttled request reserves nothing.
        .layer(axum::middleware::from_fn_with_state(
            state.bodies.clone(),
            bodies::reserve_body_bytes,
        ))
        .layer(axum::middleware::from_fn_with_state(wall, address_wall))
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
        .with_state(state);
    (router, trim)
}

/// Logs each request (method, path, status, latency, request id; never bodies or keys) and
/// counts statuses. A successful request is logged at DEBUG (at INFO a busy pipeline would write
/// hundreds of lines a second; the server logs a per-minute summary at INFO instead), a refused
/// one (4xx) at INFO, a failed one (5xx) at WARN.
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
    // Rejections produced below the handlers (body limit, unknown route, wrong method) come as
    // plain text; every error leaves this service as a problem document.
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
    let latency_us = started.elapsed().as_micros() as u64;
    if status >= 500 {
        tracing::warn!(request_id = %id, %method, %path, status, latency_us, "request");
    } else if status >= 400 {
        tracing::info!(request_id = %id, %method, %path, status, latency_us, "request");
    } else {
        tracing::debug!(request_id = %id, %method, %path, status, latency_us, "request");
    }
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
        // Only now, with the key verified, is its bucket charged (unless the address wall
        // charged it already, for a key it found verified).
        let charged = parts
            .extensions
            .get::<KeyCharged>()
            .is_some_and(|c| c.0 == principal.key_id);
        if !charged && let Err(wait) = state.key_limits.charge(&principal) {
            state.metrics.rate_limited();
            return Err(ApiError::RateLimited(wait));
        }
        Ok(Caller(principal))
    }
}
