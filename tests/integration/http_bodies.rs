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
