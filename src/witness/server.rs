//! The witness over HTTPS: `POST /add-checkpoint` (the submission prefix is the server's root)
//! and `GET /<hex SHA-256 of the origin>/checkpoint` (the monitoring prefix, the same root),
//! behind a per-address rate limit and a request-size limit.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sha2::{Digest, Sha256};
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::KeyExtractor;
use tower_http::limit::RequestBodyLimitLayer;

use super::protocol::{Answer, REQUEST_BYTES_MAX, Witness};
use crate::http::TlsMode;
use crate::http::tls::{self, TlsSetup};

/// How long in-flight requests get to finish when the witness stops.
const SHUTDOWN_GRACE_MS: u64 = 5_000;

/// The witness server's settings.
pub struct WitnessConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// TLS.
    pub tls: TlsMode,
    /// Requests per second per client address.
    pub rate_per_second: u32,
    /// Burst per client address.
    pub rate_burst: u32,
}

/// Why the witness server could not start.
#[derive(Debug, thiserror::Error)]
pub enum WitnessStartError {
    /// TLS.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// Binding.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Plain HTTP off loopback.
    #[error("plain HTTP is for development on a loopback address only, not {0}")]
    PlainHttpNotLoopback(SocketAddr),
    /// A zero rate or burst.
    #[error("the rate limit and burst must be at least 1")]
    RateLimit,
}

/// Rate-limit key: the client's address.
#[derive(Clone)]
struct ClientIp;

impl KeyExtractor for ClientIp {
    type Key = String;

    fn extract<T>(
        &self,
        req: &axum::http::Request<T>,
    ) -> Result<Self::Key, tower_governor::GovernorError> {
        Ok(req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string()))
    }
}

/// A bound, ready witness server.
pub struct WitnessServer {
    listener: TcpListener,
    addr: SocketAddr,
    tls: Option<TlsSetup>,
    router: Router,
    /// Forgets addresses whose rate-limit state is back to full, so that the limiter's memory
    /// does not grow with every address that ever connected.
    trim_limiter: Box<dyn Fn() + Send + Sync>,
}

impl WitnessServer {
    /// Binds and prepares the server.
    ///
    /// # Errors
    /// [`WitnessStartError`].
    pub fn build(witness: Witness, config: &WitnessConfig) -> Result<Self, WitnessStartError> {
        let tls = match &config.tls {
            TlsMode::Files { cert, key } => Some(tls::load(cert, key)?),
            TlsMode::SelfSigned(dir) => Some(tls::load_or_generate_self_signed(dir)?.0),
            TlsMode::PlainDevelopment => {
                if !config.listen.ip().is_loopback() {
                    return Err(WitnessStartError::PlainHttpNotLoopback(config.listen));
                }
                None
            }
        };
        if config.rate_per_second == 0 || config.rate_burst == 0 {
            return Err(WitnessStartError::RateLimit);
        }
        let limiter = {
            let mut builder = GovernorConfigBuilder::default().key_extractor(ClientIp);
            builder
                .period(Duration::from_nanos(
                    1_000_000_000 / u64::from(config.rate_per_second),
                ))
                .burst_size(config.rate_burst);
            Arc::new(builder.finish().ok_or(WitnessStartError::RateLimit)?)
        };
        let address_limiter = limiter.limiter().clone();
        let trim_limiter: Box<dyn Fn() + Send + Sync> =
            Box::new(move || address_limiter.retain_recent());
        let router = Router::new()
            .route("/add-checkpoint", post(add_checkpoint))
            .route("/{origin_hash}/checkpoint", get(checkpoint))
            .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
            .layer(GovernorLayer::new(limiter))
            .layer(RequestBodyLimitLayer::new(REQUEST_BYTES_MAX))
            .with_state(Arc::new(witness));
        let bind = |source| WitnessStartError::Bind {
            addr: config.listen,
            source,
        };
        let listener = TcpListener::bind(config.listen).map_err(bind)?;
        listener.set_nonblocking(true).map_err(bind)?;
        let addr = listener.local_addr().map_err(bind)?;
        Ok(WitnessServer {
            listener,
            addr,
            tls,
            router,
            trim_limiter,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The TLS certificate (PEM), when TLS is on.
    pub fn certificate_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(|t| t.certificate_pem.as_str())
    }

    /// SHA-256 fingerprint of the TLS certificate, when TLS is on.
    pub fn tls_fingerprint(&self) -> Option<&str> {
        self.tls.as_ref().map(|t| t.fingerprint.as_str())
    }

    /// Serves until `shutdown` resolves; in-flight requests get a few seconds to finish.
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
            stopper.graceful_shutdown(Some(Duration::from_millis(SHUTDOWN_GRACE_MS)));
        });
        let trim = self.trim_limiter;
        let trimmer = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                every.tick().await;
                trim();
            }
        });
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        let served = match self.tls {
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
        trimmer.abort();
        served
    }
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

async fn add_checkpoint(State(witness): State<Arc<Witness>>, body: Bytes) -> Response {
    let plain = "text/plain; charset=utf-8";
    match witness.add_checkpoint(&body).await {
        Answer::Cosigned(lines) => text(StatusCode::OK, plain, lines),
        Answer::Conflict(size) => text(
            StatusCode::CONFLICT,
            "text/x.tlog.size",
            format!("{size}\n"),
        ),
        Answer::BadRequest(why) => text(StatusCode::BAD_REQUEST, plain, format!("{why}\n")),
        Answer::Forbidden(why) => text(StatusCode::FORBIDDEN, plain, format!("{why}\n")),
        Answer::UnknownLog(why) => text(StatusCode::NOT_FOUND, plain, format!("{why}\n")),
        Answer::Inconsistent(why) => {
            text(StatusCode::UNPROCESSABLE_ENTITY, plain, format!("{why}\n"))
        }
        Answer::Failed(why) => {
            tracing::error!(error = %why, "add-checkpoint failed");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                plain,
                "the witness could not record the checkpoint; retry\n".into(),
            )
        }
    }
}

async fn checkpoint(State(witness): State<Arc<Witness>>, Path(hash): Path<String>) -> Response {
    let plain = "text/plain; charset=utf-8";
    let origin = witness
        .origins()
        .find(|o| hex::encode(Sha256::digest(o.as_bytes())) == hash)
        .map(str::to_owned);
    let Some(origin) = origin else {
        return text(StatusCode::NOT_FOUND, plain, "no such log\n".into());
    };
    match witness.state().latest(&origin).await {
        Ok(Some(latest)) => text(StatusCode::OK, plain, latest.checkpoint),
        Ok(None) => text(
            StatusCode::NOT_FOUND,
            plain,
            "no checkpoint of this log was cosigned yet\n".into(),
        ),
        Err(e) => {
            tracing::error!(error = %e, "reading the witness state failed");
            text(StatusCode::INTERNAL_SERVER_ERROR, plain, "retry\n".into())
        }
    }
}
