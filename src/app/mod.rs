//! The application state: the services behind every request, shared by the API (`http`) and
//! the compliance portal (`portal`), which are siblings over it and import nothing from each
//! other.
//!
//! Each service has one job: [`integrity`] runs and remembers integrity-check jobs, [`readiness`]
//! gathers and caches the readiness facts, [`limits`] keeps the per-key rate limits, [`bodies`]
//! is the memory budget of request bodies, [`metrics`] counts what `/metrics` shows, and
//! [`memory`] gives freed heap memory back after a load. Nothing here speaks HTTP: handlers,
//! bodies of answers and middleware live in `http`; pages in `portal`. The `server` module builds
//! the state and starts and stops everything that runs in the background.

pub mod bodies;
pub mod integrity;
pub(crate) mod limits;
pub(crate) mod memory;
pub use memory::configure_allocators;
pub(crate) mod metrics;
pub(crate) mod package;
pub(crate) mod readiness;

use std::sync::Arc;

use crate::store::Store;

/// What the services are built from.
#[derive(Debug, Clone, Copy)]
pub struct AppSettings {
    /// Sustained requests per second allowed per API key.
    pub rate_per_second: u32,
    /// Burst allowance above the sustained rate.
    pub rate_burst: u32,
    /// Sustained requests per second allowed per `ingest` key (twice that at once).
    pub ingest_rate_per_second: u32,
    /// Bytes of request bodies that may be held at once, all connections together.
    pub request_bodies_bytes_max: usize,
    /// How integrity checks word a store error for the people who read them.
    pub public_error: integrity::PublicError,
}

/// Shared state of every handler, API and portal alike: one pointer, so that the clone every
/// middleware layer and extractor makes of it per request is one reference count (cloning the
/// services one by one showed as 2 % of the server's CPU under single appends).
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The services [`AppState`] shares.
pub struct Services {
    /// The store.
    pub store: Store,
    /// Metrics.
    pub metrics: Arc<metrics::Metrics>,
    /// Integrity checks started over the API or the portal.
    pub integrity: integrity::IntegrityChecks,
    /// Per-key rate limits, charged after a key is verified.
    pub key_limits: limits::KeyLimits,
    /// The cached readiness answer.
    pub readiness: readiness::Readiness,
    /// The memory budget of request bodies being read.
    pub bodies: bodies::BodyBudget,
}

impl AppState {
    /// The services over `store`, fresh (no checks, empty counters and limits).
    pub fn new(store: Store, settings: &AppSettings) -> AppState {
        AppState(Arc::new(Services {
            store,
            metrics: Arc::new(metrics::Metrics::default()),
            integrity: integrity::IntegrityChecks::new(settings.public_error),
            key_limits: limits::KeyLimits::new(
                settings.rate_per_second,
                settings.rate_burst,
                settings.ingest_rate_per_second,
            ),
            readiness: readiness::Readiness::default(),
            bodies: bodies::BodyBudget::new(settings.request_bodies_bytes_max),
        }))
    }
}
