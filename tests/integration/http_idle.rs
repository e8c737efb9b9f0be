//! Idle connections over HTTPS: HTTP/2 ones, which hyper's header timeout does not reach, are
//! closed once they have had no request in flight and no traffic for the limit.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::http::Server;
use crate::support::Backend;

/// The HTTP/2 client connection preface followed by an empty SETTINGS frame (RFC 9113 3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// A client that negotiates HTTP/2, sends its preface and then nothing: the server closes the
/// connection once the idle limit is up. Before, it kept the connection (with its socket and TLS
/// state) for as long as the client wished, and many such clients could exhaust the process's
/// file descriptors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_is_closed() {
    let s = Server::start(&Backend::Sqlite).await;
    let mut tls = s.tls_connect_with_alpn(&[b"h2"]).await;
    assert_eq!(
        tls.get_ref().1.alpn_protocol(),
        Some(&b"h2"[..]),
        "the server speaks HTTP/2"
    );
    tls.write_all(PREFACE).await.expect("preface");
    tls.flush().await.expect("flush");
    let started = std::time::Instant::now();
    let mut buf = vec![0u8; 4096];
    // The server's SETTINGS (and whatever else it sends) first, then the end of the stream.
    let closed = tokio::time::timeout(
        Duration::from_secs(auditex::server::HEADER_READ_TIMEOUT_S + 30),
        async {
            loop {
                match tls.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        },
    )
    .await;
    assert!(
        closed.is_ok(),
        "the idle HTTP/2 connection is still open after {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() >= Duration::from_secs(auditex::server::HEADER_READ_TIMEOUT_S - 1),
        "closed after {:?}, before the limit",
        started.elapsed()
    );
    s.stop().await;
}
