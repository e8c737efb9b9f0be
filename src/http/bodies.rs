//! The request-body budget at the edge: how many bytes a request reserves from the shared
//! [`BodyBudget`] (its declared length, or the largest body allowed when none is declared), held
//! while it is read and handled. A request that does not fit is answered at once with 503 and
//! Retry-After, before its body is buffered. Why the budget exists: see `app::bodies`.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::Body as _;

use super::REQUEST_BODY_BYTES_MAX;
use super::error::ApiError;
use crate::app::bodies::BodyBudget;

/// What a client that found the budget full is told to wait, in seconds.
const RETRY_AFTER_S: u64 = 1;

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
    let Some(reservation) = budget.try_reserve(bytes) else {
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
    let response = next.run(request).await;
    drop(reservation);
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
}
