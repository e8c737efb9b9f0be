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
//! notes the time of the last byte read or written. A request in flight may go without traffic
//! for a longer limit, the stall limit, and no longer: otherwise a client that never reads (an
//! HTTP/2 flow-control window of zero, a full TCP window) would hold its connection for ever
//! with any answer that has a body.
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
/// closed after `limit`, one with a request in flight but no traffic after `stall`.
#[derive(Debug, Clone)]
pub struct IdleAcceptor<A> {
    inner: A,
    limit: Duration,
    stall: Duration,
}

impl<A> IdleAcceptor<A> {
    /// Wraps `inner`; connections idle for `limit` are closed, and so are connections whose
    /// requests in flight have had no traffic for `stall`.
    pub fn new(inner: A, limit: Duration, stall: Duration) -> Self {
        IdleAcceptor {
            inner,
            limit,
            stall,
        }
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
        let (limit, stall) = (self.limit, self.stall);
        Box::pin(async move {
            let (stream, service) = accepted.await?;
            let activity = Arc::new(Activity::default());
            Ok((
                IdleStream::new(stream, activity.clone(), limit, stall),
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
    stall: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl<T> IdleStream<T> {
    fn new(inner: T, activity: Arc<Activity>, limit: Duration, stall: Duration) -> Self {
        activity.touch();
        let timer = Box::pin(tokio::time::sleep_until(activity.idle_at(limit).into()));
        IdleStream {
            inner,
            activity,
            limit,
            stall,
            timer,
        }
    }

    /// Whether the connection has been idle for the limit (or, with a request in flight, for
    /// the stall limit); re-arms the timer otherwise (which also registers this task to be
    /// woken when it fires).
    fn idle(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            let busy = self.activity.in_flight.load(Ordering::Relaxed) > 0;
            let now = Instant::now();
            let idle_at = self.activity.idle_at(self.limit);
            let stalled_at = self.activity.idle_at(self.stall);
            if (!busy && idle_at <= now) || stalled_at <= now {
                return true;
            }
            // Busy: look again a limit later (the request may end meanwhile), or when it
            // stalls. Traffic since the timer was set: look again when it is a limit old.
            let next = if busy {
                (now + self.limit).min(stalled_at)
            } else {
                idle_at
            };
            self.timer.as_mut().reset(next.into());
        }
    }

    /// Notes a write's traffic; a write the client's window holds back fails once the
    /// connection has stalled (a connection task blocked on writing may not read meanwhile).
    fn wrote(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match result {
            Poll::Ready(Ok(n)) if n > 0 => {
                self.activity.touch();
                Poll::Ready(Ok(n))
            }
            Poll::Pending if self.idle(cx) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection stalled",
            ))),
            other => other,
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
        self.wrote(cx, result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(cx, result)
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

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;

    /// The idle limit of these tests.
    const LIMIT: Duration = Duration::from_millis(50);

    /// A connection's stream with `in_flight` requests, closed after [`LIMIT`] idle or `stall`
    /// stalled; the other end, kept open and silent.
    fn connection(in_flight: usize, stall: Duration) -> (DuplexStream, IdleStream<DuplexStream>) {
        let (client, server) = tokio::io::duplex(64);
        let activity = Arc::new(Activity::default());
        let stream = IdleStream::new(server, activity.clone(), LIMIT, stall);
        activity.in_flight.store(in_flight, Ordering::Relaxed);
        (client, stream)
    }

    /// A request in flight keeps its connection from idling, but not for ever: with no traffic
    /// for the stall limit its next read fails, so that a client that never reads an answer
    /// cannot hold the connection.
    #[tokio::test]
    async fn a_request_in_flight_without_traffic_for_the_stall_limit_closes_its_connection() {
        let stall = Duration::from_millis(400);
        let (_client, mut stream) = connection(1, stall);
        let started = Instant::now();
        let e = stream.read(&mut [0u8; 8]).await.expect_err("closed");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(
            started.elapsed() >= stall - Duration::from_millis(5),
            "closed after {:?}, before the stall limit: the request in flight kept it open \
             past the idle limit",
            started.elapsed()
        );
    }

    /// The same for a connection blocked writing an answer its client does not read: the
    /// pending write fails at the stall limit (the connection's task may not be reading).
    #[tokio::test]
    async fn a_write_the_client_does_not_read_fails_at_the_stall_limit() {
        let (_client, mut stream) = connection(1, Duration::from_millis(400));
        let e = stream
            .write_all(&[7u8; 4096])
            .await
            .expect_err("the write fails");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }

    /// With no request in flight, the idle limit closes the connection.
    #[tokio::test]
    async fn a_connection_with_nothing_in_flight_is_closed_after_the_idle_limit() {
        let (_client, mut stream) = connection(0, Duration::from_secs(3600));
        let e = stream.read(&mut [0u8; 8]).await.expect_err("closed");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
