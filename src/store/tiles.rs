//! The tenant's log as C2SP tlog-tiles resources (<https://c2sp.org/tlog-tiles>): Merkle tiles,
//! entry bundles and Auditex's record bundles, read from the stored records and node hashes, and
//! the setting that says who may read them.
//!
//! Nothing here depends on the tree size: a tile or bundle exists exactly when its hashes or
//! records are committed, so a full tile is served once its 256 hashes are stored and a partial
//! tile of width `W` once at least `W` are. Full tiles are immutable and cached (see
//! [`Store::tile_hashes`]); whoever asks for a partial one gets the first `W` of what is stored,
//! which never changes either.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ledger::merkle::{TILE_HASHES_MAX, TileId};
use ledger::record::Record;
use ledger::types::{Hash, Sequence, TenantId};

use super::{Store, StoreError, TILE_HEIGHT};

/// How long a tenant's tile access setting is trusted once read: a change made on another node
/// (or by `auditex tenant tiles` beside a running service) takes effect within this time.
pub const TILE_ACCESS_CACHE_MS: u64 = 5_000;

/// Most tenants whose setting is remembered: the tenant id comes from a URL anyone may send,
/// so the map is bounded (when full it is emptied, like the tile cache).
const TILE_ACCESS_TENANTS_MAX: usize = 10_000;

/// Tile access settings once read, by tenant: (public, when read).
#[derive(Default)]
pub(crate) struct TileAccessCache(Mutex<HashMap<TenantId, (bool, Instant)>>);

impl TileAccessCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, (bool, Instant)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store {
    /// Whether anyone may read the tenant's tiled log; otherwise only its own `read` and
    /// `verify` keys may. A tenant that never chose is private.
    ///
    /// # Errors
    /// A database error.
    pub async fn tiles_public(&self, tenant: &TenantId) -> Result<bool, StoreError> {
        let fresh = Duration::from_millis(TILE_ACCESS_CACHE_MS);
        if let Some(&(public, read)) = self.inner.tile_access.lock().get(tenant)
            && read.elapsed() < fresh
        {
            return Ok(public);
        }
        let public = self.backend().tiles_public(tenant).await?;
        let mut cache = self.inner.tile_access.lock();
        if cache.len() >= TILE_ACCESS_TENANTS_MAX {
            cache.clear();
        }
        cache.insert(tenant.clone(), (public, Instant::now()));
        Ok(public)
    }

    /// Opens the tenant's tiled log to anyone (`public`), or closes it to its own keys.
    ///
    /// # Errors
    /// [`StoreError::UnknownTenant`] for a tenant that does not exist; a database error.
    pub async fn set_tiles_public(
        &self,
        tenant: &TenantId,
        public: bool,
    ) -> Result<(), StoreError> {
        if !self.tenant_exists(tenant).await? {
            return Err(StoreError::UnknownTenant);
        }
        let now = self.inner.config.clock.now_unix_micros();
        self.backend().set_tiles_public(tenant, public, now).await?;
        self.inner.tile_access.lock().remove(tenant);
        Ok(())
    }

    /// The first `width` hashes of `tile` (`width` 256: the full tile), or `None` when fewer
    /// are stored (the tile does not exist yet at that width).
    ///
    /// # Errors
    /// A database error, or stored hashes that do not parse.
    pub async fn tile(
        &self,
        tenant: &TenantId,
        tile: TileId,
        width: u16,
    ) -> Result<Option<Arc<[Hash]>>, StoreError> {
        let hashes = self
            .tile_hashes(
                tenant,
                tile.node_level(),
                tile.index(),
                usize::from(width),
                super::TileReads::AllKept,
            )
            .await?;
        Ok(first(hashes, width))
    }

    /// The record hashes of entry bundle `index` (the leaves' data: each hashes to the level-0
    /// tile's hash with the RFC 6962 leaf hash), the first `width` of them, or `None` when fewer
    /// records exist.
    ///
    /// # Errors
    /// A database error, or a stored hash that does not parse.
    pub async fn entry_hashes(
        &self,
        tenant: &TenantId,
        index: u64,
        width: u16,
    ) -> Result<Option<Vec<Hash>>, StoreError> {
        let from = index << TILE_HEIGHT;
        let rows = self
            .backend()
            .record_hashes(tenant, from, from.saturating_add(u64::from(width)))
            .await?;
        if rows.len() < usize::from(width) {
            return Ok(None);
        }
        let hashes = rows
            .iter()
            .map(|h| Hash::from_slice(h))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(Some(hashes))
    }

    /// The records at the positions of entry bundle `index`, the first `width` of them (each
    /// checked against its stored hash), or `None` when fewer exist.
    ///
    /// # Errors
    /// A database error, or a damaged record.
    pub async fn record_bundle(
        &self,
        tenant: &TenantId,
        index: u64,
        width: u16,
    ) -> Result<Option<Vec<Record>>, StoreError> {
        let from = Sequence::new(index << TILE_HEIGHT)
            .map_err(|e| StoreError::OutOfRange(e.to_string()))?;
        let records = self.records(tenant, from, u64::from(width)).await?;
        Ok((records.len() == usize::from(width)).then_some(records))
    }
}

/// The first `width` of `hashes`, if there are that many.
fn first(hashes: Arc<[Hash]>, width: u16) -> Option<Arc<[Hash]>> {
    let width = usize::from(width.min(TILE_HASHES_MAX));
    match hashes.len() {
        n if n < width => None,
        n if n == width => Some(hashes),
        _ => Some(hashes[..width].into()),
    }
}
