//! Answers decided before the request body is read (401, 403, 413, 429; a wrong content type's
//! 400) reach the client
//! whole, with their problem document, over HTTP/1.1 and HTTP/2 alike, on the real TLS server:
//! with reqwest (hyper's client) on each version, and with curl, whose HTTP/2 stack (nghttp2)
//! reported a framing error instead of the answer when the server ended the stream before the
//! upload was finished.

use std::io::Write as _;
use std::process::Command;

use reqwest::header::CONTENT_TYPE;

use crate::http::Server;
use crate::support::{Backend, backend_tests};

/// Rounds per case, as the contract says: every one of them must get its answer.
const ROUNDS: usize = 50;

/// A body larger than one HTTP/2 flow-control window, so that the client is still uploading
/// when the answer comes.
const LARGE_BODY_BYTES: usize = 3 * 1024 * 1024;

/// What one request should be answered with.
struct Case {
    name: &'static str,
    key: Option<String>,
    content_type: &'static str,
    body: Vec<u8>,
    status: u16,
    problem_type: &'static str,
}

fn cases(s: &Server) -> Vec<Case> {
    let small = br#"{"bad":12345}"#.to_vec();
    let large = vec![b'a'; LARGE_BODY_BYTES];
    let oversize = vec![b' '; auditex::http::REQUEST_BODY_BYTES_MAX + 1];
    vec![
        Case {
            name: "no key, small body",
            key: None,
            content_type: "application/json",
            body: small.clone(),
            status: 401,
            problem_type: "urn:auditex:problem:unauthorized",
        },
        Case {
            name: "no key, large body",
            key: None,
            content_type: "application/json",
            body: large,
            status: 401,
            problem_type: "urn:auditex:problem:unauthorized",
        },
        Case {
            name: "a read key appending",
            key: Some(s.read.clone()),
            content_type: "application/json",
            body: small.clone(),
            status: 403,
            problem_type: "urn:auditex:problem:forbidden",
        },
        Case {
            name: "wrong content type",
            key: Some(s.ingest.clone()),
            content_type: "text/plain",
            body: small,
            status: 400,
            problem_type: "urn:auditex:problem:malformed-body",
        },
        Case {
            name: "oversize body",
            key: Some(s.ingest.clone()),
            content_type: "application/json",
            body: oversize,
            status: 413,
            problem_type: "urn:auditex:problem:body-too-large",
        },
    ]
}

fn client(s: &Server, http2: bool) -> reqwest::Client {
    let cert = reqwest::Certificate::from_pem(s.certificate_pem().as_bytes()).expect("cert");
    let builder = reqwest::Client::builder()
        .tls_certs_only([cert])
        .timeout(std::time::Duration::from_secs(60));
    let builder = if http2 {
        builder.http2_prior_knowledge()
    } else {
        builder.http1_only()
    };
    builder.build().expect("client")
}

/// Sends `case` with reqwest and checks status, problem type and protocol version.
async fn send(client: &reqwest::Client, s: &Server, case: &Case, http2: bool) {
    let mut request = client
        .post(s.url("/v1/records"))
        .header(CONTENT_TYPE, case.content_type)
        .body(case.body.clone());
    if let Some(key) = &case.key {
        request = request.bearer_auth(key);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{} (http2: {http2}): no answer: {e:?}", case.name));
    let expected_version = if http2 {
        reqwest::Version::HTTP_2
    } else {
        reqwest::Version::HTTP_11
    };
    assert_eq!(response.version(), expected_version, "{}", case.name);
    assert_eq!(response.status().as_u16(), case.status, "{}", case.name);
    assert_eq!(
        response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "{}",
        case.name
    );
    let problem: serde_json::Value = response
        .json()
        .await
        .unwrap_or_else(|e| panic!("{} (http2: {http2}): body: {e:?}", case.name));
    assert_eq!(problem["type"], case.problem_type, "{}", case.name);
    assert_eq!(problem["status"], case.status, "{}", case.name);
}

backend_tests! {
    every_early_answer_reaches_reqwest_whole_on_both_http_versions,
    every_early_answer_reaches_curl_whole_on_both_http_versions,
    a_rate_limited_request_gets_its_429_problem_on_both_http_versions,
    a_batch_of_more_than_two_mebibytes_within_the_body_limit_is_accepted,
}

/// The body limit is [`auditex::http::REQUEST_BODY_BYTES_MAX`] for every endpoint: the body
/// extractors' smaller default of 2 MiB refused such batches with a 413 naming the larger limit.
async fn a_batch_of_more_than_two_mebibytes_within_the_body_limit_is_accepted(backend: Backend) {
    let s = Server::start(&backend).await;
    let pad = "x".repeat(3000);
    let records: Vec<serde_json::Value> = (0..1000)
        .map(|_| {
            let mut payload = crate::support::decision_payload("approved");
            payload["explanation"] = serde_json::Value::String(pad.clone());
            serde_json::json!({
                "event_id": crate::support::new_event_id(),
                "event_type": "decision",
                "payload": payload,
            })
        })
        .collect();
    let body = serde_json::json!({ "records": records });
    let size = serde_json::to_vec(&body).expect("json").len();
    assert!(
        size > 3 * 1024 * 1024 && size < auditex::http::REQUEST_BODY_BYTES_MAX,
        "{size}"
    );
    for http2 in [false, true] {
        let response = client(&s, http2)
            .post(s.url("/v1/records/batch"))
            .bearer_auth(&s.ingest)
            .json(&body)
            .send()
            .await
            .expect("answer");
        // The same event ids the second time: the retry is answered with the same receipts.
        let status = response.status().as_u16();
        assert!(status == 200 || status == 201, "http2: {http2}: {status}");
        let answer: serde_json::Value = response.json().await.expect("receipts");
        assert_eq!(
            answer["receipts"].as_array().map(Vec::len),
            Some(1000),
            "http2: {http2}"
        );
    }
    s.stop().await;
}

async fn every_early_answer_reaches_reqwest_whole_on_both_http_versions(backend: Backend) {
    let s = Server::start(&backend).await;
    for http2 in [false, true] {
        let client = client(&s, http2);
        for case in cases(&s) {
            for _ in 0..ROUNDS {
                send(&client, &s, &case, http2).await;
            }
        }
    }
    s.stop().await;
}

/// curl is the client the defect was seen with; the test needs it on the machine (CI installs
/// it) and fails rather than skips without it.
async fn every_early_answer_reaches_curl_whole_on_both_http_versions(backend: Backend) {
    let s = Server::start(&backend).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, s.certificate_pem()).expect("cert file");
    let url = s.url("/v1/records");
    for case in cases(&s) {
        let body = dir.path().join("body");
        std::fs::File::create(&body)
            .and_then(|mut f| f.write_all(&case.body))
            .expect("body file");
        for version in ["--http1.1", "--http2"] {
            let request = Curl {
                cert: cert.clone(),
                body: body.clone(),
                key: case.key.clone(),
                content_type: case.content_type,
                version,
                url: url.clone(),
            };
            let answers = tokio::task::spawn_blocking(move || {
                (0..ROUNDS).map(|_| request.send()).collect::<Vec<_>>()
            })
            .await
            .expect("curl runs");
            for (code, status, text) in answers {
                assert_eq!(code, 0, "{} over {version}: curl failed: {text}", case.name);
                assert_eq!(status, case.status, "{} over {version}", case.name);
                let problem: serde_json::Value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{} over {version}: {e}: {text}", case.name));
                assert_eq!(
                    problem["type"], case.problem_type,
                    "{} over {version}",
                    case.name
                );
            }
        }
    }
    s.stop().await;
}

/// The limits lowered to one request a second with a burst of one: after the first request of a
/// client, the next ones are refused by the rate limit before their body is read. Each refusal
/// must arrive whole; a request that the bucket admitted after a refill (the body is not JSON)
/// gets its own whole 400, so the test does not depend on how fast the machine is.
async fn a_rate_limited_request_gets_its_429_problem_on_both_http_versions(backend: Backend) {
    let s = Server::start_with(&backend, 1, 1).await;
    let large = vec![b'a'; LARGE_BODY_BYTES];
    for http2 in [false, true] {
        let client = client(&s, http2);
        // The first request takes the burst.
        let _ = client
            .post(s.url("/v1/records"))
            .bearer_auth(&s.ingest)
            .header(CONTENT_TYPE, "application/json")
            .body(large.clone())
            .send()
            .await
            .expect("first request answered");
        let mut limited = 0;
        for _ in 0..ROUNDS {
            let response = client
                .post(s.url("/v1/records"))
                .bearer_auth(&s.ingest)
                .header(CONTENT_TYPE, "application/json")
                .body(large.clone())
                .send()
                .await
                .unwrap_or_else(|e| panic!("http2: {http2}: no answer: {e:?}"));
            let status = response.status().as_u16();
            let retry_after = response.headers().contains_key("retry-after");
            let problem: serde_json::Value = response
                .json()
                .await
                .unwrap_or_else(|e| panic!("http2: {http2}: body: {e:?}"));
            match status {
                429 => {
                    limited += 1;
                    assert!(retry_after, "http2: {http2}: 429 without Retry-After");
                    assert_eq!(problem["type"], "urn:auditex:problem:rate-limited");
                }
                400 => assert_eq!(problem["type"], "urn:auditex:problem:malformed-body"),
                other => panic!("http2: {http2}: unexpected {other}: {problem}"),
            }
        }
        assert!(limited > 0, "http2: {http2}: no request was rate limited");
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    }
    s.stop().await;
}

/// One curl invocation.
struct Curl {
    cert: std::path::PathBuf,
    body: std::path::PathBuf,
    key: Option<String>,
    content_type: &'static str,
    version: &'static str,
    url: String,
}

impl Curl {
    /// Sends the request; returns curl's exit code, the HTTP status and the answer's body.
    fn send(&self) -> (i32, u16, String) {
        let mut command = Command::new("curl");
        command
            .arg("--silent")
            .arg(self.version)
            .arg("--cacert")
            .arg(&self.cert)
            .arg("--header")
            .arg(format!("Content-Type: {}", self.content_type))
            .arg("--data-binary")
            .arg(format!("@{}", self.body.display()))
            .arg("--write-out")
            .arg("\n%{http_code}")
            .arg(&self.url);
        if let Some(key) = &self.key {
            command
                .arg("--header")
                .arg(format!("Authorization: Bearer {key}"));
        }
        let output = command
            .output()
            .expect("curl is installed (apt-get install curl)");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (
            output.status.code().unwrap_or(-1),
            status.trim().parse().unwrap_or(0),
            body.to_owned(),
        )
    }
}
