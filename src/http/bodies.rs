//! The request-body budget at the edge: how many bytes a request reserves from the shared
//! [`BodyBudget`] (its declared length, or the largest body allowed when none is declared), held
//! while it is read and handled. A request that does not fit is answered at once with 503 and
//! Retry-After, before its body is buffered. Why the budget exists: see `app::bodies`.
//!
//! The reservation is charged to a share of the budget: the tenant of a key the address wall
//! found verified a moment ago ([`BodyShare::Tenant`]), or else the client's address. And a body
//! must arrive in time: [`BODY_SECONDS_MIN`] plus a second per [`BODY_BYTES_PER_SECOND_MIN`] of
//! its reservation, after which the request is answered 408 and its reservation given back. A
//! client that sends its headers and then stalls its body therefore holds at most its share, and
//! only for that long.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Body as _, Frame, SizeHint};

use super::REQUEST_BODY_BYTES_MAX;
use super::error::ApiError;
use crate::app::bodies::{BodyBudget, BodyShare};

/// What a client that found the budget full is told to wait, in seconds.
const RETRY_AFTER_S: u64 = 1;

/// Seconds any request body may take to arrive, however small.
pub const BODY_SECONDS_MIN: u64 = 20;

/// The slowest average rate a body may arrive at beyond [`BODY_SECONDS_MIN`]: a second more per
/// this many bytes reserved (the largest body, 8 MiB, may take 148 s).
pub const BODY_BYTES_PER_SECOND_MIN: u64 = 64 * 1024;

/// How long a body of `bytes` reserved may take to arrive.
fn body_deadline(bytes: usize) -> Duration {
    Duration::from_secs(BODY_SECONDS_MIN + bytes as u64 / BODY_BYTES_PER_SECOND_MIN)
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
    // The address wall names the tenant of a key verified a moment ago; else the address pays.
    let share = request
        .extensions()
        .get::<BodyShare>()
        .cloned()
        .unwrap_or_else(|| BodyShare::Address(super::peer_ip(&request)));
    let Some(reservation) = budget.try_reserve(share, bytes) else {
        tracing::warn!(
            bytes,
            reserved = budget.reserved_bytes(),
            "request refused: the request-body budget, or the caller's share of it, is full"
        );
        return ApiError::Unavailable {
            detail: "the service is reading as many request bodies as its memory budget allows; retry later".into(),
            retry_after: RETRY_AFTER_S,
        }
        .into_response();
    };
    let deadline = body_deadline(bytes);
    let expired = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| {
        Body::new(DeadlineBody {
            inner: body,
            sleep: Box::pin(tokio::time::sleep(deadline)),
            expired: expired.clone(),
        })
    });
    let response = next.run(request).await;
    drop(reservation);
    if expired.load(Ordering::Acquire) {
        tracing::info!(
            bytes,
            seconds = deadline.as_secs(),
            "request refused: its body did not arrive in time"
        );
        return ApiError::BodyTimedOut(deadline.as_secs()).into_response();
    }
    response
}

/// The request body, failing once its deadline passes with the body still incomplete.
struct DeadlineBody {
    inner: Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
    /// Set when the deadline ended the body, for the middleware to answer 408.
    expired: Arc<AtomicBool>,
}

/// Why a body ended early (the 408's cause, in the logs of whatever read it).
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
struct BodyTimedOut;

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.expired.store(true, Ordering::Release);
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
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
}
