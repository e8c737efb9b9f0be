//! The store's background workers, and the one function that starts them.
//!
//! A store runs up to three: the checkpoint publisher (`checkpointer`: a signed checkpoint of
//! every tenant whose tree grew, each interval), the projection runner (the read-side views
//! kept up to date) and the retention scheduler (`retention`: erases values past the tenants'
//! retention policies). [`Store::start_workers`] starts those that the configuration enables
//! (`publish_in_background`, `projections_in_background`, `retention_interval`), at most once
//! per store. It is called
//! in exactly two places:
//!
//! - the server (`server::Application::build`), for the service and for every test that runs
//!   one: it opens its store with [`Store::open`] (which starts nothing), starts the workers and
//!   keeps the returned [`Workers`] to join them at shutdown;
//! - [`Store::open_with_workers`], for a store used without a server (one-shot commands, tests
//!   and benches of the store), which says in its name that it starts them. One-shot commands that must sign
//!   nothing turn `publish_in_background` off.
//!
//! Every worker stops when the store shuts down ([`Store::shutdown`], which also closes the
//! per-tenant appenders, started lazily by a tenant's first append).

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::{Store, StoreError, checkpointer};

/// The background workers one call of [`Store::start_workers`] started.
#[derive(Debug, Default)]
pub struct Workers {
    handles: Vec<(&'static str, JoinHandle<()>)>,
}

impl Workers {
    /// The names of the workers, in the order they were started.
    pub fn names(&self) -> Vec<&'static str> {
        self.handles.iter().map(|(name, _)| *name).collect()
    }

    /// Waits up to `grace` for each worker to have stopped (after [`Store::shutdown`]), logging
    /// each one; a worker still running after `grace` is aborted.
    pub async fn join(self, grace: Duration) {
        for (name, mut handle) in self.handles {
            match tokio::time::timeout(grace, &mut handle).await {
                Ok(Ok(())) => tracing::info!(worker = name, "stopped"),
                Ok(Err(e)) => tracing::error!(worker = name, error = %e, "stopped abnormally"),
                Err(_) => {
                    handle.abort();
                    tracing::warn!(worker = name, "did not stop in time; aborted");
                }
            }
        }
    }
}

impl Store {
    /// Starts the background workers this store's configuration enables: the checkpoint
    /// publisher (`publish_in_background`) and the projection runner
    /// (`projections_in_background`, after preparing the views' state so that the first query
    /// finds it) and the retention scheduler (`retention_interval`). A second call starts nothing
    /// and returns no workers.
    ///
    /// # Errors
    /// [`StoreError`] when the views' state cannot be prepared.
    pub async fn start_workers(&self) -> Result<Workers, StoreError> {
        let mut workers = Workers::default();
        if self.inner.workers_started.swap(true, Ordering::SeqCst) {
            return Ok(workers);
        }
        let config = &self.inner.config;
        if config.projections_in_background {
            // Create the views' state (and start rebuilds of new projection versions) before
            // the first query can arrive, and before anything is spawned: a failure here leaves
            // no worker running behind the caller's error.
            projections::runner::prepare(self).await?;
        }
        if config.publish_in_background {
            let handle = checkpointer::spawn(self.clone());
            workers.handles.push(("checkpoint publisher", handle));
        }
        if config.projections_in_background {
            let runner = self.inner.views.clone();
            let handle = tokio::spawn(runner.run(self.clone(), config.projection_poll_interval));
            workers.handles.push(("projection runner", handle));
        }
        if let Some(interval) = config.retention_interval {
            let handle = super::retention::spawn_scheduler(self.clone(), interval);
            workers.handles.push(("retention scheduler", handle));
        }
        for name in workers.names() {
            tracing::debug!(worker = name, "started");
        }
        Ok(workers)
    }
}
