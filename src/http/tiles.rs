//! Each tenant's log as a C2SP tlog-tiles log (<https://c2sp.org/tlog-tiles>), so a generic tiles
//! client (a monitor, a witness, a mirror, the verifiers' `tiles` mode) reads it with no
//! Auditex-specific API.
//!
//! The log prefix is the tenant's checkpoint origin with the host taken off: the tenant whose
//! origin is `ledger.example-bank.com/acme-bank` is served at
//! `https://ledger.example-bank.com/acme-bank/` (`checkpoint`, `tile/<L>/<N>[.p/<W>]`,
//! `tile/entries/<N>[.p/<W>]`, and `records/<N>[.p/<W>]`, the same positions as whole records).
//! Because origins are recorded per tenant and may differ, these paths are matched by the
//! router's fallback rather than by fixed routes; the API's own routes always win.
//!
//! Access: a private tenant's log (the default) is read with one of its own `read` or `verify`
//! keys, and another tenant's key gets 404 as everywhere else; a public one is read by anyone.
//! Tiles and bundles are immutable and served with long-lived caching headers and strong ETags;
//! the checkpoint may be cached for two seconds.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use ledger::merkle::{TileResource, entry_bundle};
use ledger::types::TenantId;

use super::Caller;
use super::error::ApiError;
use crate::app::AppState;
use crate::auth::Role;

/// The roles whose keys read a private tenant's tiles (those that may fetch proofs).
const TILE_READERS: &[Role] = &[Role::Read, Role::Verify];

/// Full tiles and bundles never change: a year, and `immutable` so a browser does not revalidate.
const IMMUTABLE_MAX_AGE_S: u32 = 31_536_000;

/// The checkpoint moves with every publication (about once a second).
const CHECKPOINT_MAX_AGE_S: u32 = 2;

/// A path under a tenant's log prefix.
struct LogPath<'a> {
    /// The prefix without its leading slash: the origin's path, ending in the tenant id.
    prefix: &'a str,
    tenant: TenantId,
    resource: TileResource,
}

/// Splits `path` at the first slash after which a tiles resource follows. `None` when no split
/// gives one, or the prefix does not end in a valid tenant id.
/// Longest path looked at: an origin's path plus the longest tile path is far shorter, and every
/// split point is tried, so the bound keeps a hostile path's cost small.
const LOG_PATH_BYTES_MAX: usize = 1024;

fn log_path(path: &str) -> Option<LogPath<'_>> {
    if path.len() > LOG_PATH_BYTES_MAX {
        return None;
    }
    let path = path.strip_prefix('/')?;
    path.match_indices('/').find_map(|(at, _)| {
        let resource = TileResource::parse(&path[at + 1..]).ok()?;
        let prefix = &path[..at];
        let tenant = prefix.rsplit('/').next()?;
        let tenant = TenantId::parse(tenant).ok()?;
        Some(LogPath {
            prefix,
            tenant,
            resource,
        })
    })
}

/// The router's fallback: a tiles resource when the path names one, otherwise 404 as before.
pub async fn serve(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    caller: Result<Caller, ApiError>,
) -> Response {
    let Some(path) = log_path(uri.path()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if method != Method::GET && method != Method::HEAD {
        let mut response = StatusCode::METHOD_NOT_ALLOWED.into_response();
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let mut response = match answer(&state, &path, &headers, caller).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    if method == Method::HEAD {
        *response.body_mut() = axum::body::Body::empty();
    }
    response
}

async fn answer(
    state: &AppState,
    path: &LogPath<'_>,
    headers: &HeaderMap,
    caller: Result<Caller, ApiError>,
) -> Result<Response, ApiError> {
    let tenant = &path.tenant;
    let public = state.store.tiles_public(tenant).await?;
    if !public {
        let caller = caller?;
        let p = caller.require(TILE_READERS, "read the tiled log")?;
        // Another tenant's log does not exist for this key.
        if p.tenant != *tenant {
            return Err(not_found());
        }
    }
    // The prefix must be this tenant's origin (without its host), so each log has one URL.
    let origin = state.store.origin(tenant).await?;
    let origin_path = origin.split_once('/').map_or("", |(_, p)| p);
    if origin_path != path.prefix {
        return Err(not_found());
    }
    // While a rollback is unacknowledged the stored tree is not the one published.
    state.store.refuse_if_rolled_back(tenant)?;
    let visibility = if public { "public" } else { "private" };
    match path.resource {
        TileResource::Checkpoint => {
            let checkpoint = state
                .store
                .latest_checkpoint(tenant)
                .await?
                .ok_or_else(|| ApiError::NotFound("no checkpoint has been published yet".into()))?;
            // With the witnesses' cosignatures collected so far.
            let checkpoint = state.store.with_cosignatures(tenant, checkpoint).await?;
            let mut response = checkpoint.signed_note.into_response();
            let h = response.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            h.insert(
                header::CACHE_CONTROL,
                header_value(&format!("{visibility}, max-age={CHECKPOINT_MAX_AGE_S}")),
            );
            Ok(response)
        }
        TileResource::Tile { tile, width } => {
            let hashes = state
                .store
                .tile(tenant, tile, width)
                .await?
                .ok_or_else(not_found)?;
            let body: Vec<u8> = hashes.iter().flat_map(|h| *h.as_bytes()).collect();
            Ok(immutable(
                body,
                "application/octet-stream",
                visibility,
                headers,
                false,
            ))
        }
        TileResource::Entries { index, width } => {
            let hashes = state
                .store
                .entry_hashes(tenant, index, width)
                .await?
                .ok_or_else(not_found)?;
            let body = entry_bundle(hashes.iter().map(|h| &h.as_bytes()[..]))
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            Ok(immutable(
                body,
                "application/octet-stream",
                visibility,
                headers,
                true,
            ))
        }
        TileResource::Records { index, width } => {
            let records = state
                .store
                .record_bundle(tenant, index, width)
                .await?
                .ok_or_else(not_found)?;
            let body: String = records.iter().map(ledger::export::record_line).collect();
            Ok(immutable(
                body.into_bytes(),
                "application/x-ndjson",
                visibility,
                headers,
                true,
            ))
        }
    }
}

fn not_found() -> ApiError {
    ApiError::NotFound("no such tile, bundle or log".into())
}

/// Whether the client accepts gzip (`Accept-Encoding`, `q=0` honoured).
fn accepts_gzip(request: &HeaderMap) -> bool {
    request
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

fn gzip(body: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(body).ok()?;
    encoder.finish().ok()
}

/// An immutable resource: long-lived caching, a strong ETag from its bytes, and 304 when the
/// client already holds them. A bundle (`compressible`) is sent gzip-compressed to a client that
/// accepts it, as tlog-tiles recommends; the compressed form has its own ETag.
fn immutable(
    body: Vec<u8>,
    content_type: &'static str,
    visibility: &str,
    request: &HeaderMap,
    compressible: bool,
) -> Response {
    // BLAKE3 is several times faster than SHA-256 over a tile's 8 KiB, and a tag only has to
    // change when the bytes do.
    let digest = blake3::hash(&body);
    let digest = digest.as_bytes();
    let compressed = (compressible && accepts_gzip(request))
        .then(|| gzip(&body))
        .flatten();
    let (body, etag) = match compressed {
        Some(gz) => (gz, format!("\"{}-gzip\"", hex::encode(&digest[..16]))),
        None => (body, format!("\"{}\"", hex::encode(&digest[..16]))),
    };
    let gzipped = etag.ends_with("-gzip\"");
    let length = body.len();
    let matches = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == etag || tag == "*");
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        body.into_response()
    };
    let h = response.headers_mut();
    if !matches {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        // Kept when a HEAD request's body is dropped.
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        if gzipped {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
    }
    if compressible {
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    h.insert(header::ETAG, header_value(&etag));
    h.insert(
        header::CACHE_CONTROL,
        header_value(&format!(
            "{visibility}, max-age={IMMUTABLE_MAX_AGE_S}, immutable"
        )),
    );
    response
}

/// A header value from text this module built (ASCII only).
fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("no-store"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_ends_in_the_tenant_and_the_resource_follows_it() {
        let p = log_path("/ledger/acme/tile/0/x001/002.p/3").expect("a tile path");
        assert_eq!(p.prefix, "ledger/acme");
        assert_eq!(p.tenant.as_str(), "acme");
        assert!(matches!(p.resource, TileResource::Tile { width: 3, .. }));
        let p = log_path("/acme/checkpoint").expect("a checkpoint path");
        assert_eq!(p.prefix, "acme");
        assert!(log_path("/checkpoint").is_none());
        assert!(log_path("/ledger/Not_A_Tenant/checkpoint").is_none());
        assert!(log_path("/ledger/acme/tile/0/0001").is_none());
        assert!(log_path("/v1/unknown").is_none());
        // A hostile path is not looked at past the bound.
        let long = format!("/ledger/acme/{}checkpoint", "tile/0/".repeat(200));
        assert!(long.len() > LOG_PATH_BYTES_MAX && log_path(&long).is_none());
    }
}
