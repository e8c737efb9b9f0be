//! Read-only requests on read replicas.
//!
//! The ledger's read endpoints (records, receipts, proofs, checkpoints, keys, bundles, exports,
//! tiles) run inside a read scope: their first database read picks a read replica in reads, and
//! every later read of the request stays there unless the store moves it to the primary (see
//! `store::postgres::replicas`). Without replicas the scope changes nothing.
//!
//! A replica may be behind the primary. So that it never answers worse than the primary would,
//! a request whose replica answered a miss or a failure (404, 409, 410, 500, 503) runs again on
//! the primary: a record appended a moment ago is found, a checkpoint of at least
//! `min_tree_size` is served when the primary has one. `Auditex-Read-From` says which answered
//! when a replica was involved: `replica <host:port>`, or `primary` when its miss sent the
//! request there.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use crate::store::{ReadRoute, read_scope};

/// The header naming the database that answered a read.
pub const READ_FROM: HeaderName = HeaderName::from_static("auditex-read-from");

/// Answers that a replica behind the primary may give where the primary would not.
const MISSES: [StatusCode; 5] = [
    StatusCode::NOT_FOUND,
    StatusCode::CONFLICT,
    StatusCode::GONE,
    StatusCode::INTERNAL_SERVER_ERROR,
    StatusCode::SERVICE_UNAVAILABLE,
];

/// Middleware of the read endpoints: see the module.
pub async fn on_replica(request: Request, next: Next) -> Response {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    // A GET has no body to replay; the parts are all a second run needs.
    let again = parts.clone();
    let (mut response, route) = read_scope(
        ReadRoute::Unpicked,
        next.clone().run(Request::from_parts(parts, body)),
    )
    .await;
    let ReadRoute::Replica(_, label) = route else {
        return response;
    };
    if !MISSES.contains(&response.status()) {
        if let Ok(v) = HeaderValue::from_str(&format!("replica {label}")) {
            response.headers_mut().insert(READ_FROM, v);
        }
        return response;
    }
    tracing::debug!(replica = %label, status = %response.status(), "a read missed on a replica; reading the primary");
    let (mut response, _) = read_scope(
        ReadRoute::Primary,
        next.run(Request::from_parts(again, Body::empty())),
    )
    .await;
    response
        .headers_mut()
        .insert(READ_FROM, HeaderValue::from_static("primary"));
    response
}
