//! The HTTPS API end to end: the real server over TLS on a random port, a real HTTP client, a fresh
//! database per test (SQLite always, PostgreSQL when configured).

use std::time::Duration;

use auditex::auth::Role;
use auditex::http::{HttpConfig, TlsMode};
use auditex::server::Application;
use auditex::store::Store;
use ledger::checkpoint::open_checkpoint;
use ledger::merkle::verify_inclusion;
use ledger::note::VerifierKey;
use ledger::types::{Hash, LeafIndex, TenantId, TreeSize};
use reqwest::StatusCode;
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};

use crate::support::{Backend, TestDb, backend_tests, decision_payload, new_event_id};

/// A running server with one tenant and a key of each role.
pub struct Server {
    pub base: String,
    pub client: reqwest::Client,
    pub store: Store,
    pub tenant: TenantId,
    pub ingest: String,
    pub read: String,
    pub verify: String,
    pub privacy: String,
    pem: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _db: TestDb,
    _dir: tempfile::TempDir,
}

impl Server {
    pub async fn start(backend: &Backend) -> Server {
        Server::start_with(backend, 1000, 1000).await
    }

    pub async fn start_with(backend: &Backend, rate: u32, burst: u32) -> Server {
        let db = TestDb::new(backend).await;
        let (store, tenant) = db.open_with_tenant("acme-bank").await;
        Server::start_on(db, store, tenant, rate, burst).await
    }

    /// A server on an opened store of `db` whose tenant exists already.
    pub async fn start_on(
        db: TestDb,
        store: Store,
        tenant: TenantId,
        rate: u32,
        burst: u32,
    ) -> Server {
        let bodies = auditex::app::bodies::REQUEST_BODIES_BYTES_MAX;
        Server::start_on_with(db, store, tenant, rate, burst, bodies).await
    }

    /// Like [`Server::start_on`], with a request-body budget of `bodies` bytes.
    pub async fn start_on_with(
        db: TestDb,
        store: Store,
        tenant: TenantId,
        rate: u32,
        burst: u32,
        bodies: usize,
    ) -> Server {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("tempdir");
        let config = HttpConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            tls: TlsMode::SelfSigned(dir.path().join("tls")),
            rate_per_second: rate,
            rate_burst: burst,
            ingest_rate_per_second: rate,
            request_bodies_bytes_max: bodies,
        };
        let app = Application::build(store.clone(), &config)
            .await
            .expect("server builds");
        let pem = app.tls_certificate_pem().expect("tls").to_owned();
        let base = format!("https://localhost:{}", app.port());
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).expect("cert")])
            .http1_only()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        let key = |role| {
            let store = store.clone();
            let tenant = tenant.clone();
            async move {
                store
                    .create_api_key(&tenant, role, "test", None)
                    .await
                    .expect("key")
                    .reveal()
            }
        };
        let (ingest, read, verify, privacy) = (
            key(Role::Ingest).await,
            key(Role::Read).await,
            key(Role::Verify).await,
            key(Role::Privacy).await,
        );
        crate::secret_scan::register_api_keys(&[&ingest, &read, &verify, &privacy]);
        Server {
            base,
            client,
            store,
            tenant,
            ingest,
            read,
            verify,
            privacy,
            pem,
            stop: Some(stop),
            task: Some(task),
            _db: db,
            _dir: dir,
        }
    }

    /// A TLS connection to the server, for requests written by hand.
    pub async fn tls_connect(&self) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        self.tls_connect_with_alpn(&[]).await
    }

    /// A TLS connection offering the application protocols `alpn` (none: HTTP/1.1).
    pub async fn tls_connect_with_alpn(
        &self,
        alpn: &[&[u8]],
    ) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(self.pem.as_bytes()) {
            roots.add(cert.expect("cert")).expect("root");
        }
        let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut config = config;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let port = self.base.rsplit(':').next().expect("port");
        let tcp = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
            .await
            .expect("connect");
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        connector.connect(name, tcp).await.expect("handshake")
    }

    /// Sends only the head of a POST whose Content-Length exceeds the limit; returns the status
    /// and content type of the answer.
    pub async fn oversize_post(&self) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tls = self.tls_connect().await;
        let head = format!(
            "POST /v1/records HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.ingest,
            auditex::http::REQUEST_BODY_BYTES_MAX + 1
        );
        tls.write_all(head.as_bytes()).await.expect("write");
        let mut buf = vec![0u8; 4096];
        let n = tls.read(&mut buf).await.expect("read");
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let content_type = text
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-type:")
                    .map(|v| v.trim().to_owned())
            })
            .unwrap_or_default();
        (status, content_type)
    }

    /// The server's TLS certificate (PEM), for clients of other kinds.
    pub fn certificate_pem(&self) -> &str {
        &self.pem
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post(&self, key: &str, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// The `/metrics` text.
    pub async fn metrics_text(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    pub async fn get(&self, key: &str, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("request")
    }

    /// Stops the server (draining appends) and hands back the database, which lives on.
    pub async fn stop(mut self) -> TestDb {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("server task").expect("server ran");
        }
        self._db
    }
}

pub fn event_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

pub fn decision(id: &str) -> Value {
    json!({
        "event_id": id,
        "event_type": "decision",
        "payload": {
            "model_id": "credit-limit",
            "model_version": "4.2.0",
            "input_commitment": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "outcome": "approved",
            "score": 0.87,
            "subject_ref": "subj-5d41402a",
            "decided_at": "2026-11-29T08:49:27Z",
            "oversight_mode": "human_on_the_loop"
        },
        "erasable": {"applicant_name": "Jane Q. Doe"}
    })
}

pub async fn problem(resp: reqwest::Response, status: StatusCode) -> Value {
    let url = resp.url().to_string();
    assert_eq!(resp.status(), status, "unexpected status for {url}");
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "{status} from {url} is not a problem document"
    );
    let body: Value = resp.json().await.expect("problem json");
    assert_eq!(body["status"], status.as_u16());
    assert!(
        body["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("urn:auditex:problem:"))
    );
    body
}

async fn appending_returns_receipts_and_retries_are_idempotent(backend: Backend) {
    let s = Server::start(&backend).await;
    let id = event_id();
    let first = s.post(&s.ingest, "/v1/records", &decision(&id)).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(
        first.headers().contains_key("strict-transport-security"),
        "HSTS on every response"
    );
    assert!(first.headers().contains_key("x-request-id"));
    let r1: Value = first.json().await.expect("receipt");
    assert_eq!(r1["seq"], 0);
    assert_eq!(r1["duplicate"], false);
    let again = s.post(&s.ingest, "/v1/records", &decision(&id)).await;
    assert_eq!(again.status(), StatusCode::OK);
    let r2: Value = again.json().await.expect("receipt");
    assert_eq!(
        (r2["seq"].clone(), r2["hash"].clone(), r2["sig"].clone()),
        (r1["seq"].clone(), r1["hash"].clone(), r1["sig"].clone())
    );
    assert_eq!(r2["duplicate"], true);

    let mut other = decision(&id);
    other["payload"]["outcome"] = json!("declined");
    let conflict = s.post(&s.ingest, "/v1/records", &other).await;
    problem(conflict, StatusCode::CONFLICT).await;

    let batch: Vec<Value> = (0..10).map(|_| decision(&event_id())).collect();
    let resp = s
        .post(&s.ingest, "/v1/records/batch", &json!({"records": batch}))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let receipts: Value = resp.json().await.expect("receipts");
    let seqs: Vec<u64> = receipts["receipts"]
        .as_array()
        .expect("list")
        .iter()
        .map(|r| r["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());

    // The receipt can be fetched again by event id (what a pipeline does after a timeout).
    let got: Value = s
        .get(&s.ingest, &format!("/v1/receipts/{id}"))
        .await
        .json()
        .await
        .expect("receipt");
    assert_eq!(got["hash"], r1["hash"]);

    // Reading back: by seq, by event id, and paginated.
    let record: Value = s
        .get(&s.read, "/v1/records/0")
        .await
        .json()
        .await
        .expect("record");
    assert_eq!(record["hash"], r1["hash"]);
    assert_eq!(record["event_id"], json!(id));
    assert!(
        record["erasable"]["applicant_name"].is_string(),
        "only the commitment is in the record"
    );
    assert!(!record.to_string().contains("Jane"));
    let by_event: Value = s
        .get(&s.read, &format!("/v1/events/{id}"))
        .await
        .json()
        .await
        .expect("record");
    assert_eq!(by_event, record);
    let mut seen = Vec::new();
    let mut path = "/v1/records?limit=4".to_owned();
    loop {
        let page: Value = s.get(&s.read, &path).await.json().await.expect("page");
        for r in page["records"].as_array().expect("records") {
            seen.push(r["seq"].as_u64().expect("seq"));
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/records?limit=4&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, (0..=10).collect::<Vec<_>>());
    s.stop().await;
}

/// Appends `count` decisions in one batch over HTTPS, then publishes a checkpoint covering them.
async fn append_and_publish(s: &Server, count: usize) {
    let batch: Vec<Value> = (0..count).map(|_| decision(&event_id())).collect();
    assert_eq!(
        s.post(&s.ingest, "/v1/records/batch", &json!({"records": batch}))
            .await
            .status(),
        StatusCode::OK
    );
    s.store.publish_checkpoints().await.expect("checkpoint");
}

async fn proofs_fetched_over_https_verify_against_signed_checkpoints(backend: Backend) {
    let s = Server::start(&backend).await;
    append_and_publish(&s, 37).await;
    let keys: Value = s
        .get(&s.verify, "/v1/keys")
        .await
        .json()
        .await
        .expect("keys");
    let vkey = VerifierKey::parse(keys["keys"][0]["verifier_key"].as_str().expect("vkey"))
        .expect("vkey parses");
    let origin = keys["origin"].as_str().expect("origin").to_owned();
    let latest = s
        .get(&s.verify, "/v1/checkpoints/latest")
        .await
        .text()
        .await
        .expect("checkpoint");
    let cp = open_checkpoint(
        latest.as_bytes(),
        std::slice::from_ref(&vkey),
        Some(&origin),
    )
    .expect("checkpoint verifies");
    assert_eq!(cp.checkpoint().size(), TreeSize::new(37));

    for seq in [0u64, 1, 17, 36] {
        let proof: Value = s
            .get(&s.verify, &format!("/v1/proofs/inclusion?seq={seq}"))
            .await
            .json()
            .await
            .expect("proof");
        let hashes: Vec<Hash> = proof["proof"]
            .as_array()
            .expect("proof")
            .iter()
            .map(|h| Hash::from_hex(h.as_str().expect("hex")).expect("hash"))
            .collect();
        let leaf = Hash::from_hex(proof["leaf_hash"].as_str().expect("leaf")).expect("leaf");
        verify_inclusion(
            leaf,
            LeafIndex::new(seq),
            TreeSize::new(37),
            &hashes,
            cp.checkpoint().root(),
        )
        .expect("inclusion verifies");
        // And the self-contained C2SP proof file a regulator downloads.
        let file = s
            .get(&s.verify, &format!("/v1/proofs/inclusion/{seq}/tlog-proof"))
            .await
            .bytes()
            .await
            .expect("file");
        let ring = s.store.key_history(&s.tenant).await.expect("ring");
        let proven = ledger::verify::verify_tlog_proof_file(
            &file,
            std::slice::from_ref(&vkey),
            &ring,
            &origin,
        )
        .expect("tlog-proof verifies");
        assert_eq!(proven.record.seq.get(), seq);
    }

    // A later checkpoint is consistent with the earlier one.
    let more: Vec<Value> = (0..20).map(|_| decision(&event_id())).collect();
    s.post(&s.ingest, "/v1/records/batch", &json!({"records": more}))
        .await;
    s.store.publish_checkpoints().await.expect("checkpoint");
    let c: Value = s
        .get(&s.verify, "/v1/proofs/consistency?from=37")
        .await
        .json()
        .await
        .expect("consistency");
    assert_eq!(c["to"], 57);
    // The proofs above kept the checkpoint of 37 for proofs; publishing forgot it, so a proof
    // asked for now is against the new one (not one up to 100 ms old).
    let proof: Value = s
        .get(&s.verify, "/v1/proofs/inclusion?seq=0")
        .await
        .json()
        .await
        .expect("proof");
    assert_eq!(proof["tree_size"], 57);
    let older = open_checkpoint(
        c["from_checkpoint"].as_str().expect("from").as_bytes(),
        std::slice::from_ref(&vkey),
        Some(&origin),
    )
    .expect("older");
    let newer = open_checkpoint(
        c["to_checkpoint"].as_str().expect("to").as_bytes(),
        std::slice::from_ref(&vkey),
        Some(&origin),
    )
    .expect("newer");
    let hashes: Vec<Hash> = c["proof"]
        .as_array()
        .expect("proof")
        .iter()
        .map(|h| Hash::from_hex(h.as_str().expect("hex")).expect("hash"))
        .collect();
    ledger::verify::verify_checkpoint_consistency(older.checkpoint(), newer.checkpoint(), &hashes)
        .expect("consistent");
    // The answer is the consistency-proof file that `auditex verify consistency --proof` reads.
    let file = ledger::consistency_file::ConsistencyProofFile::parse(
        serde_json::to_string(&c).expect("json").as_bytes(),
    )
    .expect("the API answers with the consistency-proof file");
    assert_eq!(
        file.check_against(
            older.checkpoint(),
            newer.checkpoint(),
            std::slice::from_ref(&vkey)
        )
        .expect("it links exactly the two checkpoints"),
        hashes.as_slice()
    );
    // No proof from or to a size at which no checkpoint was published: no one could verify it.
    for query in ["from=36", "from=37&to=56"] {
        let body = problem(
            s.get(&s.verify, &format!("/v1/proofs/consistency?{query}"))
                .await,
            StatusCode::NOT_FOUND,
        )
        .await;
        let detail = body["detail"].as_str().expect("detail");
        assert!(
            detail.contains("no checkpoint was published at tree size")
                && detail.contains("GET /v1/checkpoints"),
            "{detail}"
        );
    }
    let list: Value = s
        .get(&s.verify, "/v1/checkpoints")
        .await
        .json()
        .await
        .expect("list");
    assert_eq!(list["checkpoints"].as_array().expect("list").len(), 2);
    s.stop().await;
}

async fn every_bad_input_gets_a_4xx_problem_and_writes_nothing(backend: Backend) {
    let s = Server::start(&backend).await;
    let post_raw = |body: Vec<u8>, content_type: &'static str| {
        s.client
            .post(s.url("/v1/records"))
            .bearer_auth(&s.ingest)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    problem(
        post_raw(b"{not json".to_vec(), "application/json")
            .await
            .expect("sent"),
        StatusCode::BAD_REQUEST,
    )
    .await;
    problem(
        post_raw(vec![0xff, 0xfe, b'{', b'}'], "application/json")
            .await
            .expect("sent"),
        StatusCode::BAD_REQUEST,
    )
    .await;
    // The fields of a record as an array, in declaration order: serde could fill the request
    // from it by position; every body must be an object.
    let d = decision(&event_id());
    let as_array = json!([d["event_id"], d["event_type"], d["payload"], {}]);
    let p = problem(
        post_raw(
            serde_json::to_vec(&as_array).expect("json"),
            "application/json",
        )
        .await
        .expect("sent"),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(p["type"], "urn:auditex:problem:malformed-body", "{p}");
    problem(
        post_raw(
            serde_json::to_vec(&decision(&event_id())).expect("json"),
            "text/plain",
        )
        .await
        .expect("sent"),
        StatusCode::BAD_REQUEST,
    )
    .await;
    // An oversize body is refused from its Content-Length, before it is read. A raw TLS
    // connection announces one and reads the answer (a client still streaming megabytes would
    // see the connection close under it).
    let (status, content_type) = s.oversize_post().await;
    assert_eq!(status, 413);
    assert_eq!(content_type, "application/problem+json");

    let mut wrong_type = decision(&event_id());
    wrong_type["payload"]["score"] = json!("high");
    let p = problem(
        s.post(&s.ingest, "/v1/records", &wrong_type).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(p["errors"][0]["pointer"], "/payload/score");

    let mut missing = decision(&event_id());
    missing["payload"]
        .as_object_mut()
        .expect("obj")
        .remove("model_version");
    let p = problem(
        s.post(&s.ingest, "/v1/records", &missing).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(p["errors"][0]["pointer"], "/payload/model_version");

    let mut unknown = decision(&event_id());
    unknown["event_type"] = json!("decison");
    let p = problem(
        s.post(&s.ingest, "/v1/records", &unknown).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(p["errors"][0]["pointer"], "/event_type");

    let mut service_only = decision(&event_id());
    service_only["event_type"] = json!("key_rotation");
    let p = problem(
        s.post(&s.ingest, "/v1/records", &service_only).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(p["type"], "urn:auditex:problem:validation");
    assert_eq!(p["errors"].as_array().map(Vec::len), Some(1), "{p}");
    assert_eq!(p["errors"][0]["pointer"], "/event_type");
    assert_eq!(
        p["errors"][0]["detail"],
        "key_rotation events are written by the service itself and cannot be appended"
    );
    let mut batch: Vec<Value> = (0..3).map(|_| decision(&event_id())).collect();
    batch[1]["event_type"] = json!("integrity_check");
    let p = problem(
        s.post(&s.ingest, "/v1/records/batch", &json!({"records": batch}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(p["errors"][0]["pointer"], "/records/1/event_type", "{p}");

    let big_number = format!(
        r#"{{"event_id":"{}","event_type":"decision","payload":{{"model_id":"m","model_version":"1","input_commitment":"{}","outcome":"ok","subject_ref":"s","decided_at":"2026-11-29T08:49:27Z","oversight_mode":"automated","attributes":{{"amount":12345678901234567890}}}}}}"#,
        event_id(),
        "ab".repeat(32)
    );
    let p = problem(
        post_raw(big_number.into_bytes(), "application/json")
            .await
            .expect("sent"),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(p["errors"][0]["pointer"], "/payload/attributes/amount");

    let mut bad_batch: Vec<Value> = (0..3).map(|_| decision(&event_id())).collect();
    bad_batch[2]["payload"]["outcome"] = json!(7);
    let p = problem(
        s.post(
            &s.ingest,
            "/v1/records/batch",
            &json!({"records": bad_batch}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(p["errors"][0]["pointer"], "/records/2/payload/outcome");
    let too_many: Vec<Value> = (0..1001).map(|_| decision(&event_id())).collect();
    problem(
        s.post(
            &s.ingest,
            "/v1/records/batch",
            &json!({"records": too_many}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    problem(
        s.post(&s.ingest, "/v1/records/batch", &json!({"records": []}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    problem(
        s.post(&s.ingest, "/v1/records", &json!({"event_id": event_id()}))
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;

    // Nothing above was written, and a half-bad batch wrote none of its good records.
    assert_eq!(
        s.store.tree_size(&s.tenant).await.expect("size"),
        TreeSize::ZERO
    );

    s.post(&s.ingest, "/v1/records", &decision(&event_id()))
        .await;
    s.store.publish_checkpoints().await.expect("checkpoint");
    problem(
        s.get(&s.read, "/v1/records?cursor=bm9wZQ").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    problem(
        s.get(&s.read, "/v1/records?limit=0").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    problem(
        s.get(&s.read, "/v1/records?limit=abc").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    problem(
        s.get(&s.read, "/v1/records/99999999999999999999").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    problem(
        s.get(&s.read, "/v1/events/not-a-uuid").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    problem(
        s.get(&s.verify, "/v1/proofs/inclusion?seq=5").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        s.get(&s.verify, "/v1/proofs/inclusion?seq=0&tree_size=9")
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        s.get(&s.verify, "/v1/proofs/inclusion").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    problem(
        s.get(&s.verify, "/v1/proofs/consistency?from=0").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    problem(
        s.get(&s.verify, "/v1/proofs/consistency?from=5").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    problem(
        s.get(&s.verify, "/v1/proofs/consistency?from=1&to=7").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    s.stop().await;
}

/// Asserts a `bad-parameter` problem of 400 whose detail holds `named`, and returns it.
async fn bad_parameter(resp: reqwest::Response, named: &str) -> Value {
    let p = problem(resp, StatusCode::BAD_REQUEST).await;
    assert_eq!(p["type"], "urn:auditex:problem:bad-parameter", "{p}");
    let detail = p["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(named), "the detail names {named:?}: {p}");
    p
}

/// Every typed path parameter (a record's or a hold's sequence number; text that is not UTF-8
/// once percent-decoded) is refused with the same problem, naming the parameter.
async fn a_path_parameter_that_does_not_parse_is_a_bad_parameter_naming_it(backend: Backend) {
    let s = Server::start(&backend).await;
    let seq = "seq must be a sequence number (0 to 2^53-1)";
    for path in [
        "/v1/records/-1",
        "/v1/records/x",
        "/v1/records/99999999999999999999",
    ] {
        bad_parameter(s.get(&s.read, path).await, seq).await;
    }
    bad_parameter(
        s.get(&s.verify, "/v1/proofs/inclusion/1.5/tlog-proof")
            .await,
        seq,
    )
    .await;
    let lift = s
        .client
        .delete(s.url("/v1/subjects/subj-5d41402a/holds/first"))
        .bearer_auth(&s.privacy)
        .json(&json!({"reason": "the case closed"}))
        .send()
        .await
        .expect("request");
    bad_parameter(lift, "hold_seq must be a sequence number (0 to 2^53-1)").await;
    for (key, path, name) in [
        (&s.read, "/v1/events/%FF", "event_id"),
        (&s.ingest, "/v1/receipts/%C3", "event_id"),
        (&s.read, "/v1/decisions/%FF/bundle", "event_id"),
        (&s.read, "/v1/subjects/%FF/records", "subject_ref"),
        (&s.read, "/v1/integrity-checks/%FF", "id"),
    ] {
        bad_parameter(
            s.get(key, path).await,
            &format!("{name} must be UTF-8 text"),
        )
        .await;
    }
    // Other answers are as they were: a well-formed number beyond any record is not found.
    problem(s.get(&s.read, "/v1/records/7").await, StatusCode::NOT_FOUND).await;
    s.stop().await;
}

/// A query parameter that does not parse is named with what it must be (a page size's range is
/// the endpoint's own); so are one the endpoint does not take, one given twice and a required
/// one missing.
async fn a_query_parameter_that_does_not_parse_is_named_with_what_it_must_be(backend: Backend) {
    let s = Server::start(&backend).await;
    for (key, path, named) in [
        (
            &s.read,
            "/v1/records?limit=abc",
            "limit must be a whole number from 1 to 1000",
        ),
        (
            &s.read,
            "/v1/records?from_seq=-1",
            "from_seq must be a sequence number (0 to 2^53-1)",
        ),
        (
            &s.verify,
            "/v1/checkpoints?limit=1.5",
            "limit must be a whole number from 1 to 1000",
        ),
        (
            &s.read,
            "/v1/decisions?limit=x",
            "limit must be a whole number from 1 to 500",
        ),
        (
            &s.read,
            "/v1/decisions?score_min=high",
            "score_min must be a number",
        ),
        (
            &s.read,
            "/v1/oversight/queue?limit=",
            "limit must be a whole number from 1 to 500",
        ),
        (
            &s.read,
            "/v1/integrity-checks?limit=ten",
            "limit must be a whole number from 1 to 100",
        ),
        (
            &s.verify,
            "/v1/proofs/inclusion?seq=-1",
            "seq must be a sequence number (0 to 2^53-1)",
        ),
        (
            &s.verify,
            "/v1/proofs/inclusion?seq=0&tree_size=x",
            "tree_size must be a tree size",
        ),
        (
            &s.verify,
            "/v1/proofs/consistency?from=one",
            "from must be a tree size",
        ),
        (
            &s.verify,
            "/v1/checkpoints/latest?min_tree_size=-1",
            "min_tree_size must be a tree size",
        ),
        (
            &s.verify,
            "/v1/export?from_seq=x",
            "from_seq must be a sequence number",
        ),
        (
            &s.read,
            "/v1/records?colour=red",
            "`colour` is not a parameter of this endpoint",
        ),
        (
            &s.read,
            "/v1/records?limit=1&limit=2",
            "`limit` is given more than once",
        ),
        (&s.verify, "/v1/proofs/inclusion", "`seq` is required"),
    ] {
        bad_parameter(s.get(key, path).await, named).await;
    }
    // The role is still checked before the parameters.
    problem(
        s.get(&s.verify, "/v1/records?limit=abc").await,
        StatusCode::FORBIDDEN,
    )
    .await;
    s.stop().await;
}

/// A batch item that is not an object is named by its pointer, as a record object expected;
/// nothing is written.
async fn a_batch_item_that_is_not_a_record_object_is_named_by_its_pointer(backend: Backend) {
    let s = Server::start(&backend).await;
    let record = || decision(&event_id());
    for (records, pointer) in [
        (json!([record(), record(), record(), null]), "/records/3"),
        (json!([record(), 7]), "/records/1"),
        (json!(["a record"]), "/records/0"),
    ] {
        let p = problem(
            s.post(
                &s.ingest,
                "/v1/records/batch",
                &json!({ "records": records }),
            )
            .await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(p["type"], "urn:auditex:problem:malformed-body", "{p}");
        let detail = p["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(&format!("{pointer}: expected a record object")),
            "{p}"
        );
    }
    // A record object with a member missing is named by its pointer too.
    let mut missing = record();
    missing
        .as_object_mut()
        .expect("object")
        .remove("event_type");
    let p = problem(
        s.post(
            &s.ingest,
            "/v1/records/batch",
            &json!({ "records": [record(), missing] }),
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(p["type"], "urn:auditex:problem:malformed-body", "{p}");
    assert!(
        p["detail"]
            .as_str()
            .is_some_and(|d| d.contains("/records/1: missing field `event_type`")),
        "{p}"
    );
    assert_eq!(
        s.store.tree_size(&s.tenant).await.expect("size"),
        TreeSize::ZERO
    );
    s.stop().await;
}

/// A batch that gives one event id to two different records is a 409 naming both; one that
/// repeats a record exactly is appended as before, the repeat's receipt marked duplicate.
async fn a_batch_giving_one_event_id_to_two_different_records_names_both(backend: Backend) {
    let s = Server::start(&backend).await;
    let mut records: Vec<Value> = (0..6).map(|_| decision(&event_id())).collect();
    records[4] = records[1].clone();
    records[4]["payload"]["outcome"] = json!("declined");
    let p = problem(
        s.post(
            &s.ingest,
            "/v1/records/batch",
            &json!({ "records": records }),
        )
        .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(p["type"], "urn:auditex:problem:conflict", "{p}");
    let detail = p["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("/records/1") && detail.contains("/records/4"),
        "{p}"
    );
    assert!(
        detail.contains(records[1]["event_id"].as_str().unwrap_or_default()),
        "{p}"
    );
    assert_eq!(
        s.store.tree_size(&s.tenant).await.expect("size"),
        TreeSize::ZERO
    );

    records[4] = records[1].clone();
    let resp = s
        .post(
            &s.ingest,
            "/v1/records/batch",
            &json!({ "records": records }),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let receipts: Value = resp.json().await.expect("receipts");
    assert_eq!(
        receipts["receipts"][4]["seq"],
        receipts["receipts"][1]["seq"]
    );
    assert_eq!(receipts["receipts"][4]["duplicate"], true);
    assert_eq!(
        s.store.tree_size(&s.tenant).await.expect("size"),
        TreeSize::new(5)
    );
    s.stop().await;
}

async fn roles_and_keys_are_enforced(backend: Backend) {
    let s = Server::start(&backend).await;
    let id = event_id();
    assert_eq!(
        s.post(&s.ingest, "/v1/records", &decision(&id))
            .await
            .status(),
        StatusCode::CREATED
    );
    // No key, a malformed key, a well-formed unknown key.
    let resp = s
        .client
        .get(s.url("/v1/records/0"))
        .send()
        .await
        .expect("sent");
    assert!(resp.headers().contains_key("www-authenticate"));
    problem(resp, StatusCode::UNAUTHORIZED).await;
    problem(
        s.get("atx_nonsense", "/v1/records/0").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let stranger = auditex::auth::ApiKeySecret::generate().reveal();
    problem(
        s.get(&stranger, "/v1/records/0").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // Roles.
    problem(
        s.get(&s.ingest, "/v1/records/0").await,
        StatusCode::FORBIDDEN,
    )
    .await;
    problem(
        s.get(&s.verify, "/v1/records/0").await,
        StatusCode::FORBIDDEN,
    )
    .await;
    problem(s.get(&s.verify, "/v1/records").await, StatusCode::FORBIDDEN).await;
    problem(
        s.post(&s.read, "/v1/records", &decision(&event_id())).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    problem(
        s.post(&s.verify, "/v1/records", &decision(&event_id()))
            .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    problem(
        s.get(&s.ingest, "/v1/proofs/inclusion?seq=0").await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(
        s.get(&s.read, "/v1/records/0").await.status(),
        StatusCode::OK
    );
    // Revoked and expired keys stop working.
    let revoked = s
        .store
        .create_api_key(&s.tenant, Role::Read, "old", None)
        .await
        .expect("key");
    assert_eq!(
        s.get(&revoked.reveal(), "/v1/records/0").await.status(),
        StatusCode::OK
    );
    assert!(
        s.store
            .revoke_api_key(&s.tenant, revoked.id())
            .await
            .expect("revoke")
    );
    problem(
        s.get(&revoked.reveal(), "/v1/records/0").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let expired = s
        .store
        .create_api_key(&s.tenant, Role::Verify, "regulator", Some(1))
        .await
        .expect("key");
    problem(
        s.get(&expired.reveal(), "/v1/keys").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let listed = s.store.api_keys(&s.tenant).await.expect("list");
    assert!(
        listed
            .iter()
            .any(|k| k.key_id == revoked.id().to_string() && k.revoked_at_us.is_some())
    );
    assert!(
        listed.iter().any(|k| k.last_used_at_us.is_some()),
        "last use is recorded"
    );
    s.stop().await;
}

async fn another_tenants_key_sees_nothing(backend: Backend) {
    let s = Server::start(&backend).await;
    let id = event_id();
    s.post(&s.ingest, "/v1/records", &decision(&id)).await;
    s.store.publish_checkpoints().await.expect("checkpoint");
    let other = TenantId::parse("other-bank").expect("tenant");
    s.store.create_tenant(&other).await.expect("tenant");
    let mut outsiders = Vec::new();
    for role in [Role::Ingest, Role::Read, Role::Verify] {
        outsiders.push((
            role,
            s.store
                .create_api_key(&other, role, "outsider", None)
                .await
                .expect("key")
                .reveal(),
        ));
    }
    let missing_id = event_id();
    let paths = [
        "/v1/records/0".to_owned(),
        format!("/v1/events/{id}"),
        format!("/v1/receipts/{id}"),
        "/v1/proofs/inclusion?seq=0".to_owned(),
        "/v1/proofs/inclusion/0/tlog-proof".to_owned(),
        "/v1/proofs/consistency?from=1".to_owned(),
        "/v1/checkpoints/latest".to_owned(),
        format!("/v1/decisions/{id}/bundle"),
        "/v1/export".to_owned(),
    ];
    for (role, key) in &outsiders {
        for path in &paths {
            let resp = s.get(key, path).await;
            let status = resp.status();
            let text = resp.text().await.expect("body");
            assert!(
                status == StatusCode::NOT_FOUND || status == StatusCode::FORBIDDEN,
                "{role} key of another tenant got {status} for {path}: {text}"
            );
            assert!(
                !text.contains(&id) || path.contains(&id),
                "{path} leaked the record"
            );
        }
        // A listing shows only the caller's own (empty) ledger.
        if *role == Role::Read {
            let page: Value = s.get(key, "/v1/records").await.json().await.expect("page");
            assert_eq!(page["records"], json!([]));
            // Exactly what a record that does not exist looks like.
            let theirs = s.get(key, &format!("/v1/events/{id}")).await;
            let nothing = s.get(key, &format!("/v1/events/{missing_id}")).await;
            assert_eq!(theirs.status(), nothing.status());
            let (a, b): (Value, Value) = (
                theirs.json().await.expect("json"),
                nothing.json().await.expect("json"),
            );
            assert_eq!(a, b);
        }
    }
    // Appending with the other tenant's key lands in the other tenant's chain.
    let resp = s.post(&outsiders[0].1, "/v1/records", &decision(&id)).await;
    assert_eq!(
        resp.status(),
        StatusCode::CREATED,
        "the same event id in another tenant is a new record"
    );
    assert_eq!(
        s.store.tree_size(&other).await.expect("size"),
        TreeSize::new(1)
    );
    assert_eq!(
        s.store.tree_size(&s.tenant).await.expect("size"),
        TreeSize::new(1)
    );
    s.stop().await;
}

/// At 1 request per second with a burst of 3, a key gets exactly its burst: requests 1 to 3
/// are answered, 4 to 6 are 429 `rate-limited` problems telling it to wait exactly 1 s, and
/// `/metrics` counts exactly those three. The count is exact whenever the six requests fit in
/// less than the one second the bucket needs to refill one request; on a machine too slow for
/// that the round is repeated with a fresh key, so a slow run can never pass a wrong count.
async fn rate_limits_answer_429_with_retry_after(backend: Backend) {
    const RATE_PER_SECOND: u32 = 1;
    const BURST: u32 = 3;
    const REQUESTS: usize = 6;
    let s = Server::start_with(&backend, RATE_PER_SECOND, BURST).await;
    let mut attempts = 0;
    // Every 429 of every round, for the counter in /metrics.
    let mut limited_total = 0;
    let (statuses, refused) = loop {
        attempts += 1;
        let key = s
            .store
            .create_api_key(&s.tenant, Role::Verify, "rate test", None)
            .await
            .expect("key")
            .reveal();
        crate::secret_scan::register_api_keys(&[&key]);
        let started = std::time::Instant::now();
        let mut statuses = Vec::new();
        let mut refused = Vec::new();
        for _ in 0..REQUESTS {
            let resp = s.get(&key, "/v1/keys").await;
            statuses.push(resp.status());
            if resp.status() == StatusCode::TOO_MANY_REQUESTS {
                limited_total += 1;
                refused.push(resp);
            }
        }
        if started.elapsed() < Duration::from_secs(1) || attempts == 3 {
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "three rounds of six requests each took a second or more"
            );
            break (statuses, refused);
        }
    };
    let ok = StatusCode::OK;
    let limited = StatusCode::TOO_MANY_REQUESTS;
    assert_eq!(
        statuses,
        [ok, ok, ok, limited, limited, limited],
        "exactly the burst of {BURST} is answered"
    );
    for resp in refused {
        let retry = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        assert_eq!(retry.as_deref(), Some("1"), "one request back per second");
        let body = problem(resp, StatusCode::TOO_MANY_REQUESTS).await;
        assert_eq!(body["type"], "urn:auditex:problem:rate-limited");
    }
    // The address wall is 4 times the key's (12 at once): the metrics request is within it.
    let text = s.metrics_text().await;
    assert!(
        text.lines()
            .any(|l| l == format!("auditex_rate_limited_total {limited_total}")),
        "{text}"
    );
    s.stop().await;
}

/// Forged keys that carry the victim key's id (random secret, valid check digits) are refused
/// without touching its bucket: the victim gets exactly its burst, then 429.
async fn forged_keys_with_a_victims_key_id_do_not_throttle_the_victim(backend: Backend) {
    let s = Server::start_with(&backend, 1, 3).await;
    let victim_id = s.verify[4..20].to_owned();
    for _ in 0..6 {
        let body = format!(
            "atx_{victim_id}_{}",
            hex::encode(rand::random::<[u8; 32]>())
        );
        let check = hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(body.as_bytes())[..4]);
        let forged = format!("{body}_{check}");
        assert_eq!(
            s.get(&forged, "/v1/keys").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(s.get(&s.verify, "/v1/keys").await.status());
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    s.stop().await;
}

/// A key given a rate of its own is limited by that rate, not the default: with a default of
/// 1 a second (3 at once) and an address wall of 12 at once, 20 quick requests of a key allowed
/// 50 a second all pass — its requests, once its key is verified, are charged to the key alone,
/// not to the address. Set back to the default, the same key gets exactly the default's burst.
/// Forged keys still meet the address wall.
async fn a_keys_own_rate_replaces_the_default_and_its_requests_pass_the_address_wall(
    backend: Backend,
) {
    let s = Server::start_with(&backend, 1, 3).await;
    let key = s
        .store
        .create_api_key(&s.tenant, Role::Verify, "own rate", None)
        .await
        .expect("key");
    let text = key.reveal();
    crate::secret_scan::register_api_keys(&[&text]);
    assert!(
        s.store
            .set_api_key_rate(&s.tenant, key.id(), Some(50))
            .await
            .expect("set")
    );
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(s.get(&text, "/v1/keys").await.status());
    }
    assert_eq!(statuses, [StatusCode::OK; 20], "the key's own burst of 100");

    // Out of range: refused, nothing changes.
    for bad in [0, 100_001] {
        let err = s
            .store
            .set_api_key_rate(&s.tenant, key.id(), Some(bad))
            .await
            .expect_err("out of range");
        assert!(err.to_string().contains("between 1 and 100000"), "{err}");
    }
    let listed = s.store.api_keys(&s.tenant).await.expect("keys");
    assert_eq!(
        listed
            .iter()
            .find(|k| k.key_id == key.id().as_str())
            .and_then(|k| k.rate_per_second),
        Some(50)
    );

    assert!(
        s.store
            .set_api_key_rate(&s.tenant, key.id(), None)
            .await
            .expect("set")
    );
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(s.get(&text, "/v1/keys").await.status());
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ],
        "back to the default: its burst of 3"
    );

    // A flood of forged keys: never authenticated, so every one is charged to the address.
    let mut forged = Vec::new();
    for _ in 0..30 {
        let body = format!(
            "atx_{}_{}",
            hex::encode(rand::random::<[u8; 8]>()),
            hex::encode(rand::random::<[u8; 32]>())
        );
        let check = hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(body.as_bytes())[..4]);
        forged.push(s.get(&format!("{body}_{check}"), "/v1/keys").await.status());
    }
    assert!(
        forged
            .iter()
            .all(|c| *c == StatusCode::UNAUTHORIZED || *c == StatusCode::TOO_MANY_REQUESTS),
        "{forged:?}"
    );
    assert!(
        forged.contains(&StatusCode::TOO_MANY_REQUESTS),
        "the address wall stops forged keys: {forged:?}"
    );

    // A verified key does not make other routes free: once vouched for, its requests to any
    // route (here /healthz, which takes no key) are charged to its bucket.
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    let other = s
        .store
        .create_api_key(&s.tenant, Role::Verify, "other routes", None)
        .await
        .expect("key")
        .reveal();
    crate::secret_scan::register_api_keys(&[&other]);
    assert_eq!(s.get(&other, "/v1/keys").await.status(), StatusCode::OK);
    let mut health = Vec::new();
    for _ in 0..4 {
        health.push(s.get(&other, "/healthz").await.status());
    }
    assert_eq!(
        health,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS
        ],
        "the rest of the key's burst of 3, then 429"
    );
    s.stop().await;
}

/// Only the portal writes the four-eyes steps (FORMAT.md §7): over the API a proposal, a
/// withdrawal or an approval's members are refused naming the member, and, while the tenant
/// requires four eyes, so is any `override` (a batch holding one writes nothing). Without four
/// eyes a pipeline's plain override is appended as before.
async fn the_four_eyes_steps_are_refused_over_the_api_and_overrides_while_four_eyes_is_on(
    backend: Backend,
) {
    let s = Server::start(&backend).await;
    let decision = new_event_id();
    let created = s
        .post(
            &s.ingest,
            "/v1/records",
            &json!({"event_id": decision, "event_type": "decision", "payload": decision_payload("approved")}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let review = |action: &str| {
        json!({"event_id": new_event_id(), "event_type": "human_review", "payload": {
            "decision_id": decision, "reviewer": "pipeline@bank.test", "action": action, "reason": "r"}})
    };
    let override_with = |extra: &[(&str, Value)]| {
        let mut payload = json!({"decision_id": decision, "reviewer": "pipeline@bank.test",
            "new_outcome": "declined", "reason": "policy"});
        for (k, v) in extra {
            payload[*k] = v.clone();
        }
        json!({"event_id": new_event_id(), "event_type": "override", "payload": payload})
    };
    let size_before = s.store.tree_size(&s.tenant).await.expect("size");
    let cases = [
        (review("override_proposed"), "/payload/action"),
        (review("override_withdrawn"), "/payload/action"),
        (review("override_rejected"), "/payload/action"),
        (
            override_with(&[("approved_by", json!("someone@bank.test"))]),
            "/payload/approved_by",
        ),
        (
            override_with(&[("proposal_id", json!(new_event_id()))]),
            "/payload/proposal_id",
        ),
    ];
    for (body, pointer) in &cases {
        let resp = s.post(&s.ingest, "/v1/records", body).await;
        let problem = problem(resp, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(problem["errors"][0]["pointer"], *pointer, "{problem}");
    }
    let mut settings = s
        .store
        .oversight_settings(&s.tenant)
        .await
        .expect("settings");
    settings.four_eyes = true;
    s.store
        .set_oversight_settings(&s.tenant, settings, "admin@bank.test")
        .await
        .expect("four eyes on");
    let resp = s.post(&s.ingest, "/v1/records", &override_with(&[])).await;
    let refused = problem(resp, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(refused["errors"][0]["pointer"], "/event_type", "{refused}");
    assert!(
        refused.to_string().contains("requires four eyes"),
        "{refused}"
    );
    let batch = json!({"records": [review("confirmed"), override_with(&[])]});
    let resp = s.post(&s.ingest, "/v1/records/batch", &batch).await;
    let refused = problem(resp, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(refused["errors"][0]["pointer"], "/records/1/event_type");
    assert_eq!(
        s.store.tree_size(&s.tenant).await.expect("size"),
        size_before,
        "nothing was written"
    );

    settings.four_eyes = false;
    s.store
        .set_oversight_settings(&s.tenant, settings, "admin@bank.test")
        .await
        .expect("four eyes off");
    let resp = s.post(&s.ingest, "/v1/records", &override_with(&[])).await;
    assert_eq!(
        resp.status(),
        StatusCode::CREATED,
        "a plain override without four eyes"
    );
    s.stop().await;
}

/// A service whose master key no longer opens one tenant's signing key (started with the wrong
/// key file: a real misconfiguration) is not ready. `/readyz` answers 503 with a whole
/// `application/problem+json` document: the not-ready type, the list of failing facts, every
/// fact (none cut, none dropped), counts only, and no tenant's name anywhere.
async fn readyz_answers_a_whole_problem_document_naming_no_tenant_when_not_ready(backend: Backend) {
    const LOST: &str = "lost-key-bank";
    const SERVED: &str = "served-bank";
    let db = TestDb::new(&backend).await;
    let (first, _) = db.open_with_tenant(LOST).await;
    first.shutdown().await;
    // Restarted with another master key: the first tenant's signing key no longer opens.
    let bytes: [u8; 32] = rand::random();
    crate::secret_scan::register_bytes("the other master key", &bytes);
    let mut config = db.config();
    config.master_key =
        auditex::store::crypto::MasterKey::from_hex(&hex::encode(bytes), "other").expect("key");
    let store = Store::open_with_workers(config)
        .await
        .expect("the store opens");
    let served = crate::support::tenant_id(SERVED);
    store.create_tenant(&served).await.expect("tenant");
    // The views' status is part of the answer (information only).
    let runner = store.views_runner().clone();
    runner.catch_up(&store).await.expect("views");
    let s = Server::start_on(db, store, served, 1000, 1000).await;

    let resp = s.client.get(s.url("/readyz")).send().await.expect("readyz");
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let text = resp.text().await.expect("body");
    let body: Value = serde_json::from_str(&text).expect("the whole body is JSON");
    assert_eq!(body["type"], "urn:auditex:problem:not-ready");
    assert_eq!(body["title"], "Not ready");
    assert_eq!(body["status"], 503);
    assert_eq!(body["detail"], "not ready: signing_keys");
    assert_eq!(body["not_ready"], json!(["signing_keys"]));
    assert_eq!(body["signing_keys"], "1 of 2 not usable");
    assert_eq!(body["rollback_held_tenants"], 0);
    for (fact, value) in [
        ("database", "ok"),
        ("migrations", "current"),
        ("storage", "ok"),
        ("clock", "ok"),
    ] {
        assert_eq!(body[fact], value, "{fact} is present: {text}");
    }
    assert_eq!(
        body["projections"].as_array().map(Vec::len),
        Some(5),
        "the information facts are kept whole"
    );
    assert!(text.len() > 500, "nothing cut at 500 characters: {text}");
    let lower = text.to_lowercase();
    for name in [LOST, SERVED, "bank"] {
        assert!(!lower.contains(name), "{name} in {text}");
    }
    s.stop().await;
}

/// The value of the `/metrics` series `name` whose labels contain every one of `labels`.
fn series(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .find_map(|l| l.rsplit(' ').next().and_then(|v| v.parse().ok()))
}

/// A record the decisions projection cannot apply in one tenant shows over `/metrics` as the
/// three stuck series of that projection and tenant only: the record's seq, and a lag in records
/// and seconds that keeps growing as records arrive; the other tenant and the other projections
/// have none.
async fn a_stuck_projection_is_reported_per_tenant_in_metrics_and_its_lag_grows(backend: Backend) {
    use crate::projections::{decision_of, poison_decisions_view};
    let db = TestDb::new(&backend).await;
    poison_decisions_view(&db, true).await;
    let (store, tenant) = db.open_with_tenant("stuck-bank").await;
    let other = crate::support::tenant_id("current-bank");
    store.create_tenant(&other).await.expect("tenant");
    let s = Server::start_on(db, store, tenant, 1000, 1000).await;
    let store = &s.store;
    store
        .append(&s.tenant, vec![decision_of("s-1")])
        .await
        .expect("append");
    let poisoned = store
        .append(&s.tenant, vec![decision_of("poison")])
        .await
        .expect("append")[0]
        .seq;
    store
        .append(&s.tenant, vec![decision_of("s-3"), decision_of("s-4")])
        .await
        .expect("append");
    crate::support::append_many(store, &other, 4, 2).await;
    let runner = store.views_runner().clone();
    runner.catch_up(store).await.expect("no outage");

    let metrics = || async {
        s.client
            .get(s.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    };
    let text = metrics().await;
    let ours = ["projection=\"decisions\"", "tenant=\"stuck-bank\""];
    assert_eq!(
        series(&text, "auditex_projection_stuck_seq", &ours),
        Some(poisoned as f64),
        "{text}"
    );
    assert_eq!(
        series(&text, "auditex_projection_stuck_lag_records", &ours),
        Some(3.0),
        "the poisoned record and the two after it: {text}"
    );
    let seconds = series(&text, "auditex_projection_stuck_lag_seconds", &ours)
        .expect("the stuck lag in seconds");
    assert!(seconds >= 0.0);
    for name in [
        "auditex_projection_stuck_seq",
        "auditex_projection_stuck_lag_records",
        "auditex_projection_stuck_lag_seconds",
    ] {
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(&format!("{name}{{")))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "one series, this tenant's decisions: {lines:?}"
        );
    }
    assert_eq!(
        series(
            &text,
            "auditex_projection_lag_records",
            &["projection=\"decisions\""]
        ),
        Some(3.0)
    );

    // Later records: the lag grows, the seq stays.
    tokio::time::sleep(Duration::from_millis(50)).await;
    store
        .append(&s.tenant, vec![decision_of("s-5"), decision_of("s-6")])
        .await
        .expect("append");
    runner.catch_up(store).await.expect("no outage");
    let text = metrics().await;
    assert_eq!(
        series(&text, "auditex_projection_stuck_seq", &ours),
        Some(poisoned as f64)
    );
    assert_eq!(
        series(&text, "auditex_projection_stuck_lag_records", &ours),
        Some(5.0),
        "{text}"
    );
    let later = series(&text, "auditex_projection_stuck_lag_seconds", &ours).expect("seconds");
    assert!(
        later > seconds,
        "the age keeps growing: {seconds} then {later}"
    );
    s.stop().await;
}

async fn health_readiness_metrics_and_openapi_are_served(backend: Backend) {
    let s = Server::start(&backend).await;
    assert_eq!(
        s.client
            .get(s.url("/healthz"))
            .send()
            .await
            .expect("h")
            .status(),
        StatusCode::OK
    );
    let ready: Value = s
        .client
        .get(s.url("/readyz"))
        .send()
        .await
        .expect("r")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["signing_keys"], "1 loaded");
    assert_eq!(ready["rollback_held_tenants"], json!(0));
    assert_eq!(ready["not_ready"], json!([]));
    assert_eq!(
        (&ready["storage"], &ready["clock"]),
        (&json!("ok"), &json!("ok"))
    );
    s.post(&s.ingest, "/v1/records", &decision(&event_id()))
        .await;
    let metrics = s
        .client
        .get(s.url("/metrics"))
        .send()
        .await
        .expect("m")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("auditex_appended_records_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("auditex_append_latency_seconds_bucket"));
    assert!(metrics.contains("auditex_append_queue_requests"));
    for fault in [
        "auditex_storage_full 0",
        "auditex_storage_full_errors_total 0",
        "auditex_append_shed_total 0",
        "auditex_append_deadline_expired_total 0",
        "auditex_clock_behind_seconds 0",
        "auditex_append_queue_records 0",
        "# TYPE auditex_append_shed_total counter",
    ] {
        assert!(metrics.contains(fault), "{fault} in {metrics}");
    }
    let served = s
        .client
        .get(s.url("/v1/openapi.json"))
        .send()
        .await
        .expect("o")
        .text()
        .await
        .expect("text");
    let doc: Value = serde_json::from_str(&served).expect("json");
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1"))
    );
    let checked_in =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json"))
            .expect("docs/openapi.json");
    assert_eq!(
        serde_json::from_str::<Value>(&checked_in).expect("json"),
        doc,
        "docs/openapi.json is out of date: run `auditex openapi > docs/openapi.json`"
    );
    s.stop().await;
}

async fn shutdown_drains_and_keeps_every_acknowledged_append(backend: Backend) {
    let s = Server::start(&backend).await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (client, url, key) = (s.client.clone(), s.url("/v1/records"), s.ingest.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for _ in 0..20 {
                match client
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&decision(&event_id()))
                    .send()
                    .await
                {
                    Ok(r) if r.status() == StatusCode::CREATED => {
                        acked.push(r.json::<Value>().await.expect("receipt"))
                    }
                    _ => break,
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let store = s.store.clone();
    let tenant = s.tenant.clone();
    let _db = s.stop().await;
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.expect("task"));
    }
    for r in &acked {
        let seq = ledger::types::Sequence::new(r["seq"].as_u64().expect("seq")).expect("seq");
        let rec = store
            .record(&tenant, seq)
            .await
            .expect("read")
            .expect("acknowledged record present");
        assert_eq!(rec.hash.to_hex(), r["hash"].as_str().expect("hash"));
    }
}

async fn evidence_downloaded_over_https_verifies_offline_with_auditex_verify(backend: Backend) {
    let s = Server::start(&backend).await;
    let decision_id = event_id();
    s.post(&s.ingest, "/v1/records", &decision(&decision_id))
        .await;
    let review = json!({"event_id": event_id(), "event_type": "human_review",
        "payload": {"decision_id": decision_id, "reviewer": "analyst-17", "action": "confirmed"}});
    let noise: Vec<Value> = (0..5).map(|_| decision(&event_id())).collect();
    s.post(&s.ingest, "/v1/records/batch", &json!({"records": noise}))
        .await;
    assert_eq!(
        s.post(&s.ingest, "/v1/records", &review).await.status(),
        StatusCode::CREATED
    );
    s.store.publish_checkpoints().await.expect("checkpoint");

    let dir = tempfile::tempdir().expect("tempdir");
    let keys: Value = s
        .get(&s.verify, "/v1/keys")
        .await
        .json()
        .await
        .expect("keys");
    let vkey = keys["keys"][0]["verifier_key"]
        .as_str()
        .expect("vkey")
        .to_owned();
    let files = [
        ("bundle", format!("/v1/decisions/{decision_id}/bundle")),
        ("export", "/v1/export".to_owned()),
        ("proof", "/v1/proofs/inclusion/6/tlog-proof".to_owned()),
    ];
    for (kind, path) in &files {
        let resp = s.get(&s.verify, path).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let bytes = resp.bytes().await.expect("body");
        let file = dir.path().join(kind);
        std::fs::write(&file, &bytes).expect("write");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_auditex"))
            .args(["verify", kind])
            .arg(&file)
            .args(["--key", &vkey, "--json"])
            .output()
            .expect("run auditex verify");
        assert!(
            out.status.success(),
            "{kind} did not verify: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // One flipped byte in a record's hash must make it fail with the "tampered" code.
        let text = String::from_utf8_lossy(&bytes).to_string();
        let record_hash = s
            .store
            .record(&s.tenant, ledger::types::Sequence::new(6).expect("seq"))
            .await
            .expect("read")
            .expect("record")
            .hash
            .to_hex();
        if text.contains(&record_hash) {
            let mut broken = record_hash.clone().into_bytes();
            broken[0] = if broken[0] == b'0' { b'1' } else { b'0' };
            let tampered =
                text.replacen(&record_hash, &String::from_utf8(broken).expect("ascii"), 1);
            std::fs::write(&file, tampered).expect("write");
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_auditex"))
                .args(["verify", kind])
                .arg(&file)
                .args(["--key", &vkey])
                .output()
                .expect("run auditex verify");
            assert_eq!(
                out.status.code(),
                Some(1),
                "a tampered {kind} must be reported as tampered"
            );
        }
    }
    // The consistency proof the API serves is the file `auditex verify consistency --proof`
    // reads, between the checkpoint saved earlier and a newer one.
    let early = s
        .store
        .latest_checkpoint(&s.tenant)
        .await
        .expect("latest")
        .expect("a checkpoint");
    let more: Vec<Value> = (0..9).map(|_| decision(&event_id())).collect();
    s.post(&s.ingest, "/v1/records/batch", &json!({"records": more}))
        .await;
    s.store.publish_checkpoints().await.expect("checkpoint");
    let old = dir.path().join("early.checkpoint");
    std::fs::write(&old, &early.signed_note).expect("write");
    let new = dir.path().join("latest.checkpoint");
    let latest = s.get(&s.verify, "/v1/checkpoints/latest").await;
    std::fs::write(&new, latest.bytes().await.expect("body")).expect("write");
    let proof = dir.path().join("consistency.json");
    let resp = s
        .get(
            &s.verify,
            &format!("/v1/proofs/consistency?from={}", early.size),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    std::fs::write(&proof, resp.bytes().await.expect("body")).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_auditex"))
        .args(["verify", "consistency", "--old"])
        .arg(&old)
        .arg("--new")
        .arg(&new)
        .arg("--proof")
        .arg(&proof)
        .args(["--key", &vkey, "--json"])
        .output()
        .expect("run auditex verify");
    assert_eq!(
        out.status.code(),
        Some(0),
        "the API's consistency proof did not verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The export endpoint refuses what it cannot serve before streaming.
    problem(
        s.get(&s.verify, "/v1/export?from_seq=999").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    problem(
        s.get(&s.verify, &format!("/v1/decisions/{}/bundle", event_id()))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(s.get(&s.ingest, "/v1/export").await, StatusCode::FORBIDDEN).await;
    s.stop().await;
}

/// While a tenant is held after a detected rollback, no checkpoint is presented as current; after
/// the acknowledgement, a receipt's event id that the rollback abandoned answers 410 naming the
/// acknowledgement, and the abandoned checkpoints are listed as such.
async fn a_held_tenant_has_no_current_checkpoint_and_rolled_back_receipts_answer_410(
    backend: Backend,
) {
    let checkpoints = tempfile::tempdir().expect("tempdir");
    let tenant = crate::support::tenant_id("acme-bank");
    let with_dir = |db: &TestDb| {
        let mut config = db.config();
        config.checkpoint_dir = Some(checkpoints.path().to_owned());
        config
    };
    // The published history: 5 records and their checkpoint.
    let published = TestDb::new(&backend).await;
    let store = Store::open_with_workers(with_dir(&published))
        .await
        .expect("open");
    store.create_tenant(&tenant).await.expect("tenant");
    let receipts = store
        .append(&tenant, crate::support::decisions(5))
        .await
        .expect("append");
    store.publish_checkpoints().await.expect("publish");
    store.shutdown().await;
    // The restored database holds only the first 2.
    let restored = TestDb::new(&backend).await;
    let store = restored.open().await;
    store.create_tenant(&tenant).await.expect("tenant");
    crate::support::append_many(&store, &tenant, 2, 2).await;
    store.shutdown().await;
    let store = Store::open_with_workers(with_dir(&restored))
        .await
        .expect("reopen");
    assert!(!store.rollback_status().is_clear(), "held");
    let s = Server::start_on(restored, store, tenant.clone(), 1000, 1000).await;

    let resp = s.get(&s.read, "/v1/checkpoints/latest").await;
    assert!(resp.headers().contains_key("retry-after"));
    let p = problem(resp, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(p["type"], "urn:auditex:problem:rollback-held");

    let ack = s
        .store
        .acknowledge_rollback(&tenant, "dana", "volume restored")
        .await
        .expect("acknowledged");
    assert_eq!(ack.seq, 2);
    assert_eq!(
        s.get(&s.read, "/v1/checkpoints/latest").await.status(),
        StatusCode::OK
    );

    // Record 3 of the published history is gone: its receipt was rolled back.
    let gone = receipts[3].event_id.to_string();
    let p = problem(
        s.get(&s.read, &format!("/v1/receipts/{gone}")).await,
        StatusCode::GONE,
    )
    .await;
    assert_eq!(p["type"], "urn:auditex:problem:rolled-back");
    let detail = p["detail"].as_str().expect("detail");
    assert!(detail.contains("record 2"), "{detail}");
    assert!(detail.contains("sequence numbers 2 to 4"), "{detail}");
    // An event id made after the acknowledgement was never rolled back: plain 404.
    let later = event_id();
    let p = problem(
        s.get(&s.read, &format!("/v1/receipts/{later}")).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(p["type"], "urn:auditex:problem:not-found");

    let page: Value = s
        .get(&s.read, "/v1/checkpoints")
        .await
        .json()
        .await
        .expect("json");
    let list = page["checkpoints"].as_array().expect("checkpoints");
    let abandoned: Vec<&Value> = list.iter().filter(|c| c["branch"] == "abandoned").collect();
    assert_eq!(abandoned.len(), 1, "{list:?}");
    assert_eq!(abandoned[0]["tree_size"], 5);
    assert_eq!(abandoned[0]["abandoned_by_seq"], 2);
    assert!(
        list.iter()
            .filter(|c| c["branch"] == "current")
            .all(|c| c.get("abandoned_by_seq").is_none())
    );
    assert!(
        list.iter()
            .any(|c| c["branch"] == "current" && c["tree_size"] == 3)
    );
    s.stop().await;
}

/// A NUL in a record is refused at the edge with its pointer (no record a view cannot hold is
/// ever acknowledged), and a `%00` in a query parameter or path is a 400 naming it, on every
/// route, where it used to reach the database and answer 503.
async fn nul_in_a_record_or_a_query_is_refused_with_what_holds_it(backend: Backend) {
    let s = Server::start(&backend).await;
    let mut record = decision(&event_id());
    record["payload"]["subject_ref"] = json!("x\u{0}y");
    let p = problem(
        s.post(&s.ingest, "/v1/records", &record).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(p["errors"][0]["pointer"], "/payload/subject_ref", "{p}");
    let p = problem(
        s.get(&s.read, "/v1/decisions?outcome=a%00b").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(
        p["detail"],
        "query parameter `outcome` must not contain U+0000 (%00)"
    );
    for path in [
        "/v1/models?model_id=%00",
        "/v1/oversight/actions?decision_id=%00",
        "/v1/subjects/x%00y",
    ] {
        problem(s.get(&s.read, path).await, StatusCode::BAD_REQUEST).await;
    }
    assert_eq!(
        s.store.tree_size(&s.tenant).await.expect("size"),
        TreeSize::ZERO
    );
    s.stop().await;
}

/// The server, not `Store::open`, starts the store's background workers: nothing
/// is published or projected before `Application::build`, both are once it ran, and shutdown
/// stops them (a second start finds them started once already).
async fn the_server_starts_the_store_workers_and_shutdown_stops_them(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let mut config = db.config();
    config.checkpoint_interval = Duration::from_millis(100);
    config.projections_in_background = true;
    config.projection_poll_interval = Duration::from_millis(100);
    let store = Store::open(config).await.expect("the store opens");
    let tenant = crate::support::tenant_id("acme-bank");
    store.create_tenant(&tenant).await.expect("tenant");
    store
        .append(&tenant, crate::support::decisions(3))
        .await
        .expect("append");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        store
            .latest_checkpoint(&tenant)
            .await
            .expect("read")
            .is_none(),
        "no publisher runs before the server starts one"
    );

    let http = HttpConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        tls: TlsMode::PlainDevelopment,
        rate_per_second: 10,
        rate_burst: 10,
        ingest_rate_per_second: 10,
        request_bodies_bytes_max: auditex::app::bodies::REQUEST_BODIES_BYTES_MAX,
    };
    let app = Application::build(store.clone(), &http)
        .await
        .expect("server builds");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let published = store
            .latest_checkpoint(&tenant)
            .await
            .expect("read")
            .is_some_and(|c| c.size == TreeSize::new(3));
        if published && crate::support::decisions_served(&store, &tenant).await == 3 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server's workers publish and project within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    stop.send(()).expect("server running");
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the server stops")
        .expect("task")
        .expect("served");
    assert!(
        store
            .start_workers()
            .await
            .expect("start")
            .names()
            .is_empty(),
        "a store's workers start once"
    );
}

/// Read-your-writes for checkpoints: `min_tree_size` bounds the latest checkpoint from below
/// (409 while none has reached it), on every endpoint that proves against the latest, and is
/// refused beside an explicit size.
async fn min_tree_size_answers_409_until_a_checkpoint_reaches_it(backend: Backend) {
    let s = Server::start(&backend).await;
    append_and_publish(&s, 5).await;
    for path in [
        "/v1/checkpoints/latest?min_tree_size=5",
        "/v1/checkpoints/latest?min_tree_size=0",
        "/v1/proofs/inclusion?seq=4&min_tree_size=5",
        "/v1/proofs/inclusion/4/tlog-proof?min_tree_size=5",
        "/v1/proofs/consistency?from=5&min_tree_size=5",
        "/v1/export?min_tree_size=5",
    ] {
        assert_eq!(
            s.get(&s.verify, path).await.status(),
            StatusCode::OK,
            "{path}"
        );
    }
    for path in [
        "/v1/checkpoints/latest?min_tree_size=6",
        "/v1/proofs/inclusion?seq=4&min_tree_size=6",
        "/v1/proofs/inclusion/4/tlog-proof?min_tree_size=6",
        "/v1/proofs/consistency?from=5&min_tree_size=6",
        "/v1/export?min_tree_size=6",
    ] {
        let resp = s.get(&s.verify, path).await;
        assert_eq!(resp.status(), StatusCode::CONFLICT, "{path}");
        let problem: Value = resp.json().await.expect("problem");
        let detail = problem["detail"].as_str().expect("detail");
        assert!(
            detail.contains("min_tree_size") && detail.contains("the latest has 5"),
            "{path}: {detail}"
        );
    }
    for path in [
        "/v1/proofs/inclusion?seq=4&tree_size=5&min_tree_size=5",
        "/v1/proofs/consistency?from=5&to=5&min_tree_size=5",
        "/v1/checkpoints/latest?min_tree_size=-1",
        "/v1/checkpoints/latest?min_tree_size=x",
        "/v1/checkpoints/latest?min=5",
    ] {
        assert_eq!(
            s.get(&s.verify, path).await.status(),
            StatusCode::BAD_REQUEST,
            "{path}"
        );
    }
    // Once a checkpoint reaches it, the same request passes; without replicas no answer says
    // where it was read.
    append_and_publish(&s, 1).await;
    let resp = s
        .get(&s.verify, "/v1/checkpoints/latest?min_tree_size=6")
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get("auditex-read-from").is_none());
}

backend_tests!(
    min_tree_size_answers_409_until_a_checkpoint_reaches_it,
    a_held_tenant_has_no_current_checkpoint_and_rolled_back_receipts_answer_410,
    nul_in_a_record_or_a_query_is_refused_with_what_holds_it,
    evidence_downloaded_over_https_verifies_offline_with_auditex_verify,
    appending_returns_receipts_and_retries_are_idempotent,
    proofs_fetched_over_https_verify_against_signed_checkpoints,
    every_bad_input_gets_a_4xx_problem_and_writes_nothing,
    a_path_parameter_that_does_not_parse_is_a_bad_parameter_naming_it,
    a_query_parameter_that_does_not_parse_is_named_with_what_it_must_be,
    a_batch_item_that_is_not_a_record_object_is_named_by_its_pointer,
    a_batch_giving_one_event_id_to_two_different_records_names_both,
    roles_and_keys_are_enforced,
    another_tenants_key_sees_nothing,
    rate_limits_answer_429_with_retry_after,
    readyz_answers_a_whole_problem_document_naming_no_tenant_when_not_ready,
    a_stuck_projection_is_reported_per_tenant_in_metrics_and_its_lag_grows,
    forged_keys_with_a_victims_key_id_do_not_throttle_the_victim,
    a_keys_own_rate_replaces_the_default_and_its_requests_pass_the_address_wall,
    the_four_eyes_steps_are_refused_over_the_api_and_overrides_while_four_eyes_is_on,
    health_readiness_metrics_and_openapi_are_served,
    shutdown_drains_and_keeps_every_acknowledged_append,
    the_server_starts_the_store_workers_and_shutdown_stops_them,
);

#[tokio::test]
async fn plain_http_is_refused_off_loopback() {
    let db = TestDb::new(&Backend::Sqlite).await;
    let store = db.open().await;
    let config = HttpConfig {
        listen: "0.0.0.0:0".parse().expect("addr"),
        tls: TlsMode::PlainDevelopment,
        rate_per_second: 10,
        rate_burst: 10,
        ingest_rate_per_second: 10,
        request_bodies_bytes_max: auditex::app::bodies::REQUEST_BODIES_BYTES_MAX,
    };
    let err = Application::build(store.clone(), &config)
        .await
        .err()
        .expect("must refuse");
    assert!(err.to_string().contains("loopback"), "{err}");
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_case_insensitive_and_two_credentials_are_none() {
    let s = Server::start(&Backend::Sqlite).await;
    let other = TenantId::parse("other-bank").expect("tenant");
    s.store.create_tenant(&other).await.expect("tenant");
    let outsider = s
        .store
        .create_api_key(&other, Role::Read, "outsider", None)
        .await
        .expect("key")
        .reveal();
    let id = event_id();
    assert_eq!(
        s.post(&s.ingest, "/v1/records", &decision(&id))
            .await
            .status(),
        StatusCode::CREATED
    );
    let path = s.url(&format!("/v1/events/{id}"));
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let r = s
            .client
            .get(&path)
            .header("authorization", format!("{scheme} {}", s.read))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), StatusCode::OK, "scheme {scheme}");
    }
    // Two Authorization headers, in either order: neither acts, whichever tenant they name.
    for (first, second) in [(&s.read, &outsider), (&outsider, &s.read)] {
        let r = s
            .client
            .get(&path)
            .header("authorization", format!("Bearer {first}"))
            .header("authorization", format!("Bearer {second}"))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    s.stop().await;
}
