//! The request-body budget over HTTPS: a request whose body does not fit the memory the
//! service allows for bodies being read is answered 503 with Retry-After before its body is
//! read, writes nothing, and the room comes back when the holder is answered.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::http::{Server, decision, event_id};
use crate::support::{Backend, TestDb};

/// `auditex_request_body_bytes_reserved` as the server reports it.
async fn reserved(s: &Server) -> u64 {
    s.metrics_text()
        .await
        .lines()
        .find_map(|l| l.strip_prefix("auditex_request_body_bytes_reserved "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .expect("the reserved-bytes gauge") as u64
}

async fn wait_for_reserved(s: &Server, wanted: impl Fn(u64) -> bool) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = reserved(s).await;
        if wanted(now) {
            return now;
        }
        assert!(Instant::now() < deadline, "reserved bytes stayed at {now}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_fit_the_budget_is_answered_503_at_once_and_writes_nothing() {
    let db = TestDb::new(&Backend::Sqlite).await;
    let (store, tenant) = db.open_with_tenant("acme-bank").await;
    // The smallest budget there is: one body of the largest size allowed.
    let s = Server::start_on_with(db, store, tenant, 1000, 1000, 1).await;
    let largest = auditex::http::REQUEST_BODY_BYTES_MAX;

    // A slow upload declares the largest body and sends only its first bytes: it holds the
    // whole budget while the server waits for the rest.
    let (more, rest) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    more.send(Ok(b"{\"records\":[".to_vec()))
        .await
        .expect("first bytes");
    let body = reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(rest));
    let slow = tokio::spawn({
        let (client, url, key) = (
            s.client.clone(),
            s.url("/v1/records/batch"),
            s.ingest.clone(),
        );
        async move {
            client
                .post(url)
                .bearer_auth(key)
                .header("content-type", "application/json")
                .header("content-length", largest.to_string())
                .body(body)
                .send()
                .await
        }
    });
    assert_eq!(wait_for_reserved(&s, |r| r > 0).await, largest as u64);

    // Meanwhile: a small append does not fit, and is told so at once, unwritten.
    let id = event_id();
    let refused = s.post(&s.ingest, "/v1/records", &decision(&id)).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    let retry_after: u64 = refused
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .expect("Retry-After");
    assert!(retry_after >= 1);
    let problem: Value = refused.json().await.expect("problem");
    assert_eq!(problem["type"], "urn:auditex:problem:unavailable");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("request bodies")),
        "{problem}"
    );
    let receipt = s.get(&s.read, &format!("/v1/events/{id}")).await;
    assert_eq!(
        receipt.status(),
        StatusCode::NOT_FOUND,
        "nothing was written"
    );
    // Requests without a body reserve nothing and pass.
    let health = s
        .client
        .get(s.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), StatusCode::OK);

    // The slow upload breaks off; its room comes back, and the same append now succeeds.
    more.send(Err(std::io::Error::other("the client gave up")))
        .await
        .expect("abort");
    drop(more);
    let _ = slow.await.expect("slow task");
    wait_for_reserved(&s, |r| r == 0).await;
    let accepted = s.post(&s.ingest, "/v1/records", &decision(&id)).await;
    assert_eq!(accepted.status(), StatusCode::CREATED);
    let metrics = s.metrics_text().await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "auditex_request_body_budget_refused_total 1"),
        "the refusal is counted"
    );
    s.stop().await;
}

/// What feeds a stalled upload the rest of its body (or an error that ends it).
type MoreBody = tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>;

/// Starts a POST of the largest body that sends its first bytes and then stalls; the task ends
/// when `more` is dropped or sent an error. Returns the sender and the request's task.
fn stalled_upload(
    s: &Server,
    key: &str,
) -> (
    MoreBody,
    tokio::task::JoinHandle<Result<reqwest::Response, reqwest::Error>>,
) {
    let (more, rest) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    more.try_send(Ok(b"{\"records\":[".to_vec()))
        .expect("first bytes");
    let body = reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(rest));
    let request = s
        .client
        .post(s.url("/v1/records/batch"))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .header(
            "content-length",
            auditex::http::REQUEST_BODY_BYTES_MAX.to_string(),
        )
        .body(body);
    (more, tokio::spawn(request.send()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenants_stalled_uploads_hold_at_most_a_quarter_of_the_budget() {
    use auditex::auth::Role;
    use ledger::types::TenantId;

    let db = TestDb::new(&Backend::Sqlite).await;
    let (store, tenant) = db.open_with_tenant("acme-bank").await;
    let other = TenantId::parse("other-bank").expect("tenant");
    store.create_tenant(&other).await.expect("tenant");
    let other_key = store
        .create_api_key(&other, Role::Ingest, "other pipeline", None)
        .await
        .expect("key")
        .reveal();
    let largest = auditex::http::REQUEST_BODY_BYTES_MAX;
    // A budget of eight of the largest bodies: a quarter of it is two.
    let s = Server::start_on_with(db, store, tenant, 1000, 1000, 8 * largest).await;
    // An append verifies the key, so that its next requests are charged to its tenant.
    let first = s
        .post(&s.ingest, "/v1/records", &decision(&event_id()))
        .await;
    assert_eq!(first.status(), StatusCode::CREATED);

    // acme-bank's stalled uploads: two are held, the third finds the tenant's share full.
    let mut held = Vec::new();
    for n in 1..=2u64 {
        held.push(stalled_upload(&s, &s.ingest));
        wait_for_reserved(&s, |r| r == n * largest as u64).await;
    }
    let (_third_more, third) = stalled_upload(&s, &s.ingest);
    let third = third.await.expect("task").expect("answer");
    assert_eq!(third.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reserved(&s).await, 2 * largest as u64);

    // Another tenant's pipeline is not held up by them: its appends, large ones included, pass.
    let small = s
        .post(&other_key, "/v1/records", &decision(&event_id()))
        .await;
    assert_eq!(small.status(), StatusCode::CREATED);
    let records: Vec<Value> = (0..1000).map(|_| decision(&event_id())).collect();
    let batch = s
        .post(
            &other_key,
            "/v1/records/batch",
            &serde_json::json!({ "records": records }),
        )
        .await;
    assert!(batch.status().is_success(), "{}", batch.status());

    for (more, task) in held {
        more.send(Err(std::io::Error::other("the client gave up")))
            .await
            .expect("abort");
        drop(more);
        let _ = task.await.expect("task");
    }
    wait_for_reserved(&s, |r| r == 0).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_arriving_is_answered_408_and_gives_its_room_back() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let s = Server::start(&Backend::Sqlite).await;
    let mut tls = s.tls_connect().await;
    // A small declared body: its deadline is the shortest there is.
    let head = format!(
        "POST /v1/records HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"event_id\"",
        s.ingest
    );
    tls.write_all(head.as_bytes()).await.expect("write");
    tls.flush().await.expect("flush");
    wait_for_reserved(&s, |r| r > 0).await;
    let started = Instant::now();
    let mut answer = vec![0u8; 8192];
    let n = tokio::time::timeout(
        Duration::from_secs(auditex::http::BODY_SECONDS_MIN + 30),
        tls.read(&mut answer),
    )
    .await
    .expect("an answer before the body's deadline has long passed")
    .expect("read");
    let text = String::from_utf8_lossy(&answer[..n]).to_string();
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        text.contains("urn:auditex:problem:body-timed-out"),
        "{text}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(auditex::http::BODY_SECONDS_MIN - 1),
        "answered only once the deadline passed"
    );
    wait_for_reserved(&s, |r| r == 0).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_stops_inside_its_headers_is_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let s = Server::start(&Backend::Sqlite).await;
    let mut tls = s.tls_connect().await;
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .expect("write");
    tls.flush().await.expect("flush");
    let mut buf = vec![0u8; 4096];
    let read = tokio::time::timeout(
        Duration::from_secs(auditex::server::HEADER_READ_TIMEOUT_S + 30),
        tls.read(&mut buf),
    )
    .await
    .expect("the server closes the connection once the headers' time is up");
    // Closed without an answer (end of stream), or reset.
    assert!(matches!(read, Err(_) | Ok(0)), "{read:?}");
    s.stop().await;
}
