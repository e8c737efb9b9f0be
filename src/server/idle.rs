//! Closing idle connections, HTTP/2 ones included.
//!
//! hyper closes an HTTP/1 connection that takes too long over a request's headers, which also
//! ends an idle keep-alive connection (`header_read_timeout`). HTTP/2 has no such limit: a
//! client that opens a connection and sends nothing more keeps its socket, its TLS state and
//! its buffers for ever, and enough of them exhaust the process's file descriptors and memory.
//!
//! [`IdleAcceptor`] wraps every accepted connection. It counts the connection's requests in
//! flight (from the call of the service until its response body has been written or dropped,
//! so that a streamed export waiting for its next page, or for a slow reader, is not idle) and
//! notes the time of the last byte read or written.
//! A connection with no request in flight and no traffic for the idle limit gets a `TimedOut`
//! error on its next read, which makes hyper close it. Traffic only stores a time: the timer is
//! re-armed when it fires, not on every byte.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What a connection's stream and its service share: requests in flight, and the last traffic
/// (microseconds since [`epoch`]).
#[derive(Debug, Default)]
struct Activity {
    in_flight: AtomicUsize,
    last_us: AtomicU64,
}

/// The process's reference instant, so that a time fits an atomic integer.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl Activity {
    fn touch(&self) {
        let now = u64::try_from(epoch().elapsed().as_micros()).unwrap_or(u64::MAX);
        self.last_us.store(now, Ordering::Relaxed);
    }

    /// When the connection becomes idle for `limit` if nothing happens before.
    fn idle_at(&self, limit: Duration) -> Instant {
        epoch() + Duration::from_micros(self.last_us.load(Ordering::Relaxed)) + limit
    }
}

/// Wraps an acceptor: its streams and services report their activity, and an idle connection is
/// closed after `limit`.
#[derive(Debug, Clone)]
pub struct IdleAcceptor<A> {
    inner: A,
    limit: Duration,
}

impl<A> IdleAcceptor<A> {
    /// Wraps `inner`; connections idle for `limit` are closed.
    pub fn new(inner: A, limit: Duration) -> Self {
        IdleAcceptor { inner, limit }
    }
}

impl<I, S, A> axum_server::accept::Accept<I, S> for IdleAcceptor<A>
where
    A: axum_server::accept::Accept<I, S>,
    A::Future: Send + 'static,
{
    type Stream = IdleStream<A::Stream>;
    type Service = Counted<A::Service>;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let accepted = self.inner.accept(stream, service);
        let limit = self.limit;
        Box::pin(async move {
            let (stream, service) = accepted.await?;
            let activity = Arc::new(Activity::default());
            activity.touch();
            let timer = Box::pin(tokio::time::sleep_until(activity.idle_at(limit).into()));
            Ok((
                IdleStream {
                    inner: stream,
                    activity: activity.clone(),
                    limit,
                    timer,
                },
                Counted {
                    inner: service,
                    activity,
                },
            ))
        })
    }
}

/// An accepted stream that notes its traffic and fails its reads once the connection is idle.
#[derive(Debug)]
pub struct IdleStream<T> {
    inner: T,
    activity: Arc<Activity>,
    limit: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl<T> IdleStream<T> {
    /// Whether the connection has been idle for the limit; re-arms the timer otherwise (which
    /// also registers this task to be woken when it fires).
    fn idle(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            let busy = self.activity.in_flight.load(Ordering::Relaxed) > 0;
            let idle_at = self.activity.idle_at(self.limit);
            if !busy && idle_at <= Instant::now() {
                return true;
            }
            // Busy, or traffic since the timer was set: look again a whole limit later.
            let next = if busy {
                Instant::now() + self.limit
            } else {
                idle_at
            };
            self.timer.as_mut().reset(next.into());
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleStream<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.activity.touch();
                }
                Poll::Ready(result)
            }
            Poll::Pending if self.idle(cx) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection idle",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleStream<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A connection's service, counting its requests in flight.
#[derive(Debug, Clone)]
pub struct Counted<S> {
    inner: S,
    activity: Arc<Activity>,
}

/// Ends a request's count when it is dropped: with the response's body, once the body has been
/// written or the request abandoned (or with the response future, when it fails).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

impl<S, R, B> tower::Service<R> for Counted<S>
where
    S: tower::Service<R, Response = axum::http::Response<B>>,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = axum::http::Response<Counting<B>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.activity.in_flight.fetch_add(1, Ordering::Relaxed);
        let guard = InFlight(self.activity.clone());
        let response = self.inner.call(request);
        // The request stays in flight while its body is written: a streamed export or package
        // that waits for its next page, or for a slow reader, is not an idle connection.
        Box::pin(async move {
            Ok(response.await?.map(|body| Counting {
                inner: body,
                _in_flight: guard,
            }))
        })
    }
}

/// A response body that keeps its request counted in flight until it is dropped.
pub struct Counting<B> {
    inner: B,
    _in_flight: InFlight,
}

impl<B: http_body::Body + Unpin> http_body::Body for Counting<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
