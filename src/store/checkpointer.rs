//! The checkpoint publisher: signs and stores a C2SP checkpoint for every tenant whose tree grew,
//! at least once per checkpoint interval, so any acknowledged record becomes provable within a
//! second. Every published checkpoint is kept, so consistency between any two can be proven.
//!
//! Tenants held after a detected rollback (see [`super::rollback`]) are skipped: the rollback was
//! logged once when it was found, and the held state is re-checked on every tick so that an
//! acknowledgement made by another process (`auditex rollback acknowledge`) takes effect without a
//! restart.

use futures_util::StreamExt;
use ledger::types::{TenantId, TreeSize};

use super::{Store, StoreError, TreeHead, publish_concurrency};

/// Starts the background publisher; it stops when the store shuts down.
pub(crate) fn spawn(store: Store) -> tokio::task::JoinHandle<()> {
    let interval = store.config().checkpoint_interval;
    tokio::spawn(async move {
        // On start, cover anything appended before a crash but never checkpointed: beside the
        // ticks, not before them, because with many tenants it reads each of them (80,000
        // tenants kept every checkpoint waiting for minutes).
        let stored = {
            let store = store.clone();
            tokio::spawn(async move {
                if let Err(e) = publish_stored(&store).await {
                    tracing::warn!(error = %e, "could not publish start-up checkpoints");
                }
            })
        };
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    let began = std::time::Instant::now();
                    if let Err(e) = super::rollback::recheck_held(&store).await {
                        tracing::warn!(error = %e, "could not re-check held tenants; will retry");
                    }
                    if let Err(e) = publish_all(&store).await {
                        tracing::warn!(error = %e, "checkpoint publication failed; will retry");
                    }
                    tracing::debug!(took_us = began.elapsed().as_micros(), "checkpoint round");
                }
                () = store.shutdown_signal().notified() => {
                    stored.abort();
                    return;
                }
            }
        }
    })
}

/// Publishes a checkpoint for every tenant whose live tree is ahead of its latest checkpoint,
/// except held tenants. One tenant's failure does not stop the others; the first is returned.
pub(crate) async fn publish_all(store: &Store) -> Result<(), StoreError> {
    let heads: Vec<(TenantId, TreeHead)> = store
        .lock_trees()
        .iter()
        .map(|(t, rx)| (t.clone(), *rx.borrow()))
        .collect();
    // Tenants are published side by side: each costs a few reads, a commit and the
    // published-checkpoint log's fsync, and one after another a thousand tenants that appended
    // would take seconds per tick. Publications of one tenant stay serial (the tick visits it
    // once, and its log has a lock of its own).
    let results: Vec<Result<(), StoreError>> = futures_util::stream::iter(heads)
        .filter(|(tenant, _)| std::future::ready(store.refuse_if_rolled_back(tenant).is_ok()))
        .map(|(tenant, head)| async move { publish_if_ahead(store, &tenant, head).await })
        .buffer_unordered(publish_concurrency(store.config().read_connections))
        .collect()
        .await;
    results.into_iter().find(Result::is_err).unwrap_or(Ok(()))
}

async fn publish_if_ahead(
    store: &Store,
    tenant: &TenantId,
    head: TreeHead,
) -> Result<(), StoreError> {
    if head.size.get() == 0 {
        return Ok(());
    }
    let began = std::time::Instant::now();
    let reads = store.backend().publication_reads(tenant).await?;
    if reads
        .latest_checkpoint
        .is_some_and(|size| size >= head.size)
    {
        return Ok(());
    }
    let read_us = began.elapsed().as_micros();
    store.publish_checkpoint_with(tenant, head, reads).await?;
    tracing::debug!(
        tenant = %tenant,
        size = head.size.get(),
        read_us,
        took_us = began.elapsed().as_micros(),
        "checkpoint published"
    );
    Ok(())
}

/// Publishes, from stored data alone, a checkpoint for each tenant whose records outran it,
/// tenants side by side as in a round. One tenant's failure does not stop the others; the first
/// is returned.
async fn publish_stored(store: &Store) -> Result<(), StoreError> {
    let results: Vec<Result<(), StoreError>> = futures_util::stream::iter(store.tenants().await?)
        .filter(|tenant| std::future::ready(store.refuse_if_rolled_back(tenant).is_ok()))
        .map(|tenant| async move { publish_stored_of(store, &tenant).await })
        .buffer_unordered(publish_concurrency(store.config().read_connections))
        .collect()
        .await;
    results.into_iter().find(Result::is_err).unwrap_or(Ok(()))
}

/// Publishes, from stored data alone, a checkpoint of `tenant`'s whole chain if its records
/// outran its latest checkpoint (whoever appended them: this process or another node).
pub(crate) async fn publish_stored_of(store: &Store, tenant: &TenantId) -> Result<(), StoreError> {
    let reads = store.backend().publication_reads(tenant).await?;
    let size = reads
        .head
        .as_ref()
        .map_or(TreeSize::ZERO, |h| h.seq.tree_size_through());
    if size.get() == 0 || reads.latest_checkpoint.is_some_and(|c| c >= size) {
        return Ok(());
    }
    let root = store.root_at(tenant, size).await?;
    store
        .publish_checkpoint_with(tenant, TreeHead { size, root }, reads)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_publishes_half_the_read_connections_at_once_between_one_and_sixteen() {
        assert_eq!(publish_concurrency(0), 1);
        assert_eq!(publish_concurrency(1), 1);
        assert_eq!(publish_concurrency(8), 4);
        assert_eq!(publish_concurrency(32), 16);
        assert_eq!(
            publish_concurrency(1000),
            super::super::PUBLISH_CONCURRENCY_MAX
        );
    }
}
