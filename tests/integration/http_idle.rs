//! Idle connections over HTTPS: HTTP/2 ones, which hyper's header timeout does not reach, are
//! closed once they have had no request in flight and no traffic for the limit; a streamed
//! answer still being written is in flight, however long it waits.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::http::{Server, decision, event_id};
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

/// An export the client reads slowly is not cut off: its request counts as in flight until its
/// body has been written, not only until its headers. Over HTTP/2 the client leaves its
/// flow-control window full for longer than the idle limit, so the server can write nothing
/// and hears nothing meanwhile; then the client reads on and gets every record. Before, the
/// request stopped counting at the headers and the connection was closed under the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_answer_the_client_reads_slowly_is_not_cut_off() {
    const RECORDS: usize = 400;
    let s = Server::start(&Backend::Sqlite).await;
    let records: Vec<serde_json::Value> = (0..RECORDS).map(|_| decision(&event_id())).collect();
    let resp = s
        .post(
            &s.ingest,
            "/v1/records/batch",
            &serde_json::json!({ "records": records }),
        )
        .await;
    assert!(resp.status().is_success(), "{}", resp.status());
    s.store.publish_checkpoints().await.expect("checkpoint");

    let tls = s.tls_connect_with_alpn(&[b"h2"]).await;
    let (client, connection) = h2::client::handshake(tls).await.expect("HTTP/2");
    let connection = tokio::spawn(connection);
    let mut client = client.ready().await.expect("ready");
    let request = axum::http::Request::get("https://localhost/v1/export")
        .header("authorization", format!("Bearer {}", s.verify))
        .body(())
        .expect("request");
    let (response, _) = client.send_request(request, true).expect("send");
    let response = response.await.expect("response");
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut text = Vec::new();
    let first = body.data().await.expect("a first frame").expect("data");
    text.extend_from_slice(&first);
    // Nothing released: the window (64 KiB) fills and the server's writes wait.
    tokio::time::sleep(Duration::from_secs(
        auditex::server::HEADER_READ_TIMEOUT_S + 5,
    ))
    .await;
    body.flow_control()
        .release_capacity(first.len())
        .expect("release");
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("the stream was not cut off");
        body.flow_control()
            .release_capacity(chunk.len())
            .expect("release");
        text.extend_from_slice(&chunk);
    }
    assert!(text.len() > 65_535, "the export outgrew the window");
    let text = String::from_utf8(text).expect("utf-8");
    assert!(text.ends_with('\n'), "the export ends with a whole line");
    let decisions = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line"))
        .filter(|l| l["event_type"] == "decision")
        .count();
    assert_eq!(decisions, RECORDS, "every record arrived");
    drop(client);
    connection.abort();
    s.stop().await;
}
