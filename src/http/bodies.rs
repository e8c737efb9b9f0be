//! A ceiling on the memory that request bodies hold while they are read and parsed.
//!
//! The append queues bound what waits to be written (see `store::appender`), but a request's
//! body is buffered whole (up to [`super::REQUEST_BODY_BYTES_MAX`]) and parsed before it reaches
//! a queue. Without a ceiling of their own, 512 clients uploading 8 MiB batches at once would
//! hold 4 GiB before the queues shed a single one. Every request that carries a body therefore
//! reserves its declared length (the largest body allowed when no length is declared) from one
//! budget shared by all connections, and holds it until its answer is ready. A request that does
//! not fit is answered at once with 503 and Retry-After, before its body is buffered.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::Body as _;
use tokio::sync::Semaphore;

use super::REQUEST_BODY_BYTES_MAX;
use super::error::ApiError;

/// Default of the budget: bytes of request bodies that may be held at once, all connections
/// together (16 batches of the largest size allowed, or about 128 of a typical 1,000-record
/// batch).
pub const REQUEST_BODIES_BYTES_MAX: usize = 128 * 1024 * 1024;

/// What a client that found the budget full is told to wait, in seconds.
const RETRY_AFTER_S: u64 = 1;

/// The budget is counted in KiB so that its size fits the semaphore's 32-bit permit counts.
const UNIT: usize = 1024;

/// The shared budget of request-body bytes, and how many requests it has refused.
#[derive(Clone, Debug)]
pub struct BodyBudget {
    units: Arc<Semaphore>,
    units_max: usize,
    refused: Arc<AtomicU64>,
    passed: Arc<AtomicU64>,
}

impl BodyBudget {
    /// A budget of `bytes_max` bytes (at least one body of the largest size allowed, so that no
    /// valid request is refused forever).
    pub fn new(bytes_max: usize) -> BodyBudget {
        let units_max = bytes_max.max(REQUEST_BODY_BYTES_MAX).div_ceil(UNIT);
        BodyBudget {
            units: Arc::new(Semaphore::new(units_max)),
            units_max,
            refused: Arc::new(AtomicU64::new(0)),
            passed: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Bytes reserved by requests in progress now.
    pub fn reserved_bytes(&self) -> u64 {
        ((self.units_max - self.units.available_permits()) * UNIT) as u64
    }

    /// Bytes reserved by every request admitted since start.
    pub fn passed_bytes(&self) -> u64 {
        self.passed.load(Ordering::Relaxed)
    }

    /// Requests refused because the budget was full, since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// The bytes a request's body may hold: none when it has no body, its declared length when
/// declared (the body-limit layer refuses a body longer than it declares), else the most a body
/// may be.
fn reservation(request: &Request) -> usize {
    let body = request.body();
    if body.is_end_stream() {
        return 0;
    }
    let declared = body.size_hint().exact().or_else(|| {
        request
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
    });
    match declared {
        Some(n) => {
            usize::try_from(n).map_or(REQUEST_BODY_BYTES_MAX, |n| n.min(REQUEST_BODY_BYTES_MAX))
        }
        None => REQUEST_BODY_BYTES_MAX,
    }
}

/// Reserves the request's body bytes for as long as the request is handled, or answers 503
/// with Retry-After at once when the budget is full.
pub async fn reserve_body_bytes(
    State(budget): State<BodyBudget>,
    request: Request,
    next: Next,
) -> Response {
    let bytes = reservation(&request);
    if bytes == 0 {
        return next.run(request).await;
    }
    // At most `REQUEST_BODY_BYTES_MAX / UNIT` units: fits u32.
    let units = u32::try_from(bytes.div_ceil(UNIT)).unwrap_or(u32::MAX);
    let Ok(permit) = budget.units.clone().try_acquire_many_owned(units) else {
        budget.refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            bytes,
            reserved = budget.reserved_bytes(),
            "request refused: the request-body budget is full"
        );
        return ApiError::Unavailable {
            detail: "the service is reading as many request bodies as its memory budget allows; retry later".into(),
            retry_after: RETRY_AFTER_S,
        }
        .into_response();
    };
    budget.passed.fetch_add(bytes as u64, Ordering::Relaxed);
    let response = next.run(request).await;
    drop(permit);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(builder: axum::http::request::Builder, body: axum::body::Body) -> Request {
        builder.body(body).expect("request")
    }

    #[test]
    fn a_request_reserves_its_declared_length_or_the_largest_body_when_undeclared() {
        let none = request(Request::get("/"), axum::body::Body::empty());
        assert_eq!(reservation(&none), 0);
        let sized = request(Request::post("/"), axum::body::Body::from(vec![b'x'; 5000]));
        assert_eq!(reservation(&sized), 5000);
        let stream =
            axum::body::Body::from_stream(futures_util::stream::iter(vec![
                Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"{}")),
            ]));
        let declared = request(Request::post("/").header("content-length", "2"), stream);
        assert_eq!(reservation(&declared), 2);
        let stream =
            axum::body::Body::from_stream(futures_util::stream::iter(vec![
                Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"{}")),
            ]));
        let undeclared = request(Request::post("/"), stream);
        assert_eq!(reservation(&undeclared), REQUEST_BODY_BYTES_MAX);
        let huge = request(
            Request::post("/").header("content-length", "99999999999"),
            axum::body::Body::from_stream(futures_util::stream::iter(Vec::<
                Result<axum::body::Bytes, std::io::Error>,
            >::new())),
        );
        assert_eq!(reservation(&huge), REQUEST_BODY_BYTES_MAX);
    }

    #[test]
    fn the_budget_is_at_least_one_largest_body_and_counts_what_is_reserved() {
        let budget = BodyBudget::new(1);
        assert_eq!(budget.units_max * UNIT, REQUEST_BODY_BYTES_MAX);
        let held = budget
            .units
            .clone()
            .try_acquire_many_owned(10)
            .expect("room");
        assert_eq!(budget.reserved_bytes(), 10 * UNIT as u64);
        drop(held);
        assert_eq!(budget.reserved_bytes(), 0);
    }
}
