//! Finishing the request body before an early answer leaves.
//!
//! Many answers are decided before the request body is read: 401 from the credential, 413 from
//! `Content-Length`, 429 from the rate limits. When the body is dropped unread, the transport
//! ends the upload under the client: HTTP/1.1 closes the connection after the answer, and a
//! client still writing its body (hyper's, reqwest's) fails with a broken pipe and never reads
//! the answer; HTTP/2 ends the stream with `RST_STREAM`, and clients such as curl with nghttp2,
//! racing to send the rest of their body, report a framing error instead. A pipeline with a
//! mistyped key would see a transport error and might retry forever.
//!
//! [`finish_reading_body`] wraps the request body so that what the service leaves unread stays
//! reachable, and once the answer is ready reads and discards the rest (at most
//! [`DRAIN_BYTES_MAX`] bytes within [`DRAIN_MS_MAX`]) before the answer is sent. The client's
//! upload then completes normally and the answer arrives whole, on both HTTP versions. Two kinds
//! of request pass untouched: one that asked `Expect: 100-continue` (reading its body would tell
//! the client to upload it for nothing; it is waiting for the answer instead), and one whose
//! declared body is larger than the bound (its answer is sent at once and the transport ends the
//! upload as before).

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use futures_util::StreamExt;
use http_body::{Frame, SizeHint};

use super::REQUEST_BODY_BYTES_MAX;

/// Most bytes of an unread body read and discarded before an early answer: twice the largest
/// accepted body, so that any body the service could have accepted, and the first part of a
/// larger one sent without a length, is read to its end.
pub const DRAIN_BYTES_MAX: u64 = 2 * REQUEST_BODY_BYTES_MAX as u64;

/// Longest time spent reading an unread body before the answer is sent regardless.
pub const DRAIN_MS_MAX: u64 = 5_000;

/// The request body, shared between the service (which may read it or drop it) and this layer
/// (which reads whatever the service left).
type Slot = Arc<Mutex<Option<Body>>>;

/// Middleware: runs the service, then reads and discards what it left of the request body
/// before the answer is returned (see the module documentation).
pub async fn finish_reading_body(request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let (parts, body) = request.into_parts();
    let waits_for_continue = parts
        .headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if waits_for_continue || body.is_end_stream() || declared.is_some_and(|n| n > DRAIN_BYTES_MAX) {
        // Nothing to finish, or nothing that should be read: the service gets the body as it is.
        return next.run(Request::from_parts(parts, body)).await;
    }
    let slot: Slot = Arc::new(Mutex::new(Some(body)));
    let shared = Body::new(SharedBody(slot.clone()));
    let response = next.run(Request::from_parts(parts, shared)).await;
    let rest = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let Some(rest) = rest.filter(|b| !b.is_end_stream()) {
        discard(rest).await;
    }
    response
}

/// Reads `body` to its end, at most [`DRAIN_BYTES_MAX`] bytes within [`DRAIN_MS_MAX`]; a body
/// that errors (the client went away) or exceeds either bound is simply dropped.
async fn discard(body: Body) {
    let mut stream = body.into_data_stream();
    let read_all = async {
        let mut read = 0_u64;
        while let Some(Ok(chunk)) = stream.next().await {
            read = read.saturating_add(chunk.len() as u64);
            if read > DRAIN_BYTES_MAX {
                break;
            }
        }
    };
    // Timing out only means the rest of the upload is left to the transport, as without
    // this layer.
    let _ = tokio::time::timeout(Duration::from_millis(DRAIN_MS_MAX), read_all).await;
}

/// A body read through the shared slot; once this layer has taken the body back, it ends.
struct SharedBody(Slot);

impl HttpBody for SharedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}
