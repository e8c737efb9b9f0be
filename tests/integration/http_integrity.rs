//! Integrity checks over HTTP, end to end: the real server (plain HTTP on loopback, so that a
//! test can restart it on the same database and tamper with that database directly), a real
//! client, a fresh database per test on both backends.
//!
//! A check is started, followed until it ends, found in the ledger as an `integrity_check`
//! record and in the listing — also after a restart, when only the ledger remembers it. A
//! running check blocks a second start and can be cancelled, by request or by shutdown, and the
//! cancelled result is filed too. Keys of the wrong role or of another tenant see nothing, bad
//! input starts nothing, and a tampered ledger is reported failed at its first bad record.

use std::time::{Duration, Instant};

use auditex::auth::Role;
use auditex::http::{HttpConfig, TlsMode};
use auditex::server::Application;
use auditex::store::Store;
use ledger::record::EventType;
use ledger::types::{EventId, TenantId};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;

use crate::support::{Backend, TestDb, append_many, backend_tests, postgres_tests, seq, tenant_id};

const TENANT: &str = "acme-bank";

/// How long a check may take before a test gives up on it.
const CHECK_TIMEOUT: Duration = Duration::from_secs(120);

/// Records in a ledger whose check takes long enough (seconds in a debug build, a fraction of a
/// second in release) to be caught running by the requests that follow its start: several
/// pages of `INTEGRITY_PAGE_RECORDS`, so a cancellation lands before the end.
const LONG_LEDGER_RECORDS: usize = 20_000;

/// A running server on loopback with one tenant and a key of each role.
struct Instance {
    base: String,
    client: reqwest::Client,
    store: Store,
    tenant: TenantId,
    ingest: String,
    read: String,
    verify: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    db: TestDb,
}

/// Serves `store` on a fresh loopback port; returns its base URL and how to stop it.
async fn serve(
    store: &Store,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let config = HttpConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        tls: TlsMode::PlainDevelopment,
        rate_per_second: 1000,
        rate_burst: 1000,
        ingest_rate_per_second: 1000,
        request_bodies_bytes_max: auditex::app::bodies::REQUEST_BODIES_BYTES_MAX,
    };
    let app = Application::build(store.clone(), &config)
        .await
        .expect("server builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    (base, stop, task)
}

impl Instance {
    async fn start(backend: &Backend) -> Instance {
        // reqwest is built without a default TLS provider; plain HTTP needs none, but building
        // the client asks for one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let db = TestDb::new(backend).await;
        let (store, tenant) = db.open_with_tenant(TENANT).await;
        let ingest = key(&store, &tenant, Role::Ingest).await;
        let read = key(&store, &tenant, Role::Read).await;
        let verify = key(&store, &tenant, Role::Verify).await;
        let (base, stop, task) = serve(&store).await;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        Instance {
            base,
            client,
            store,
            tenant,
            ingest,
            read,
            verify,
            stop: Some(stop),
            task: Some(task),
            db,
        }
    }

    /// Stops the server (which shuts its store down) and starts a new store and server on the
    /// same database: only what the ledger holds survives.
    async fn restart(&mut self) {
        self.stop_server().await;
        self.store = self.db.open().await;
        let (base, stop, task) = serve(&self.store).await;
        self.base = base;
        self.stop = Some(stop);
        self.task = Some(task);
    }

    /// Stops the server, draining it as a real shutdown does.
    async fn stop(mut self) {
        self.stop_server().await;
    }

    async fn stop_server(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("server task").expect("server ran");
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, key: &str, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("request")
    }

    async fn post_empty(&self, key: &str, path: &str) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("request")
    }

    async fn post_json(&self, key: &str, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    async fn post_raw(
        &self,
        key: &str,
        path: &str,
        content_type: &str,
        body: &'static str,
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(key)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request")
    }

    /// Starts a check with `body` (no body when `None`) and returns its id.
    async fn start_check(&self, key: &str, body: Option<&Value>) -> String {
        let resp = match body {
            Some(b) => self.post_json(key, "/v1/integrity-checks", b).await,
            None => self.post_empty(key, "/v1/integrity-checks").await,
        };
        assert_eq!(resp.status(), StatusCode::ACCEPTED, "start");
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("a Location header")
            .to_owned();
        let started: Value = resp.json().await.expect("json");
        let id = started["id"].as_str().expect("an id").to_owned();
        EventId::parse(&id).expect("the check id is a UUIDv7");
        assert_eq!(location, format!("/v1/integrity-checks/{id}"));
        assert_eq!(started["state"], "running", "{started:#}");
        assert_eq!(started["report"], Value::Null);
        id
    }

    /// Polls the check until it is no longer running.
    async fn wait_until_ended(&self, key: &str, id: &str) -> Value {
        let deadline = Instant::now() + CHECK_TIMEOUT;
        loop {
            let resp = self.get(key, &format!("/v1/integrity-checks/{id}")).await;
            assert_eq!(resp.status(), StatusCode::OK);
            let check: Value = resp.json().await.expect("json");
            if check["state"] != "running" {
                return check;
            }
            assert!(
                Instant::now() < deadline,
                "the check did not end: {check:#}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// A second start is refused with 409, naming the running check `running`.
    async fn assert_start_refused_naming(&self, key: &str, running: &str) {
        let p = problem(
            self.post_empty(key, "/v1/integrity-checks").await,
            StatusCode::CONFLICT,
        )
        .await;
        assert!(
            p["detail"].as_str().is_some_and(|d| d.contains(running)),
            "the conflict names the running check: {p}"
        );
    }

    /// Asks for the cancellation of `id`: 202, and the check says it was asked.
    async fn cancel(&self, key: &str, id: &str) {
        let resp = self
            .post_empty(key, &format!("/v1/integrity-checks/{id}/cancel"))
            .await;
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        let cancelling: Value = resp.json().await.expect("json");
        assert_eq!(cancelling["cancel_requested"], true);
    }

    /// The check `id` as `GET /v1/integrity-checks/{id}` shows it.
    async fn check(&self, key: &str, id: &str) -> Value {
        self.get(key, &format!("/v1/integrity-checks/{id}"))
            .await
            .json()
            .await
            .expect("json")
    }

    async fn list(&self, key: &str, query: &str) -> Value {
        let resp = self.get(key, &format!("/v1/integrity-checks{query}")).await;
        assert_eq!(resp.status(), StatusCode::OK, "listing {query}");
        resp.json().await.expect("json")
    }

    async fn latest_note(&self, tenant: &TenantId) -> String {
        self.store
            .latest_checkpoint(tenant)
            .await
            .expect("latest")
            .expect("a checkpoint")
            .signed_note
    }
}

async fn key(store: &Store, tenant: &TenantId, role: Role) -> String {
    store
        .create_api_key(tenant, role, "test", None)
        .await
        .expect("key")
        .reveal()
}

async fn problem(resp: reqwest::Response, status: StatusCode) -> Value {
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
    body
}

fn ids(page: &Value) -> Vec<&str> {
    page["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| c["id"].as_str().expect("id"))
        .collect()
}

fn fresh_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

async fn a_check_runs_in_the_background_passes_and_is_filed_in_the_ledger(backend: Backend) {
    let s = Instance::start(&backend).await;
    append_many(&s.store, &s.tenant, 50, 25).await;
    s.store.publish_checkpoints().await.expect("publish");
    let checkpoint = s
        .store
        .latest_checkpoint(&s.tenant)
        .await
        .expect("latest")
        .expect("a checkpoint");

    let id = s.start_check(&s.verify, None).await;
    let done = s.wait_until_ended(&s.read, &id).await;

    assert_eq!(done["state"], "passed", "{done:#}");
    let report = &done["report"];
    assert_eq!(report["outcome"], "passed");
    assert_eq!(report["from_seq"], 0);
    assert_eq!(report["records_total"], 50);
    assert_eq!(report["records_checked"], 50);
    assert_eq!(report["checkpoint"]["size"], 50);
    assert_eq!(report["checkpoint"]["root"], checkpoint.root.to_hex());
    assert_eq!(report["checkpoints_checked"], 1);
    assert_eq!(report["first_failure"], Value::Null);
    assert_eq!(done["progress"]["checked"], 50);
    assert_eq!(done["progress"]["total"], 50);
    assert_eq!(done["problem"], Value::Null);
    assert_eq!(done["record"]["seq"], 50);
    assert_eq!(done["record"]["event_id"], id.as_str());

    // The result is a signed record of the ledger, whose event id is the check's id.
    let record = s
        .store
        .record(&s.tenant, seq(50))
        .await
        .expect("read")
        .expect("the integrity_check record");
    assert_eq!(record.event_type, EventType::IntegrityCheck);
    assert_eq!(record.event_id.to_string(), id);
    assert_eq!(done["record"]["hash"], record.hash.to_hex());
    let payload = record.payload.to_value().expect("payload");
    assert_eq!(payload["outcome"], "passed");
    assert_eq!(payload["records_checked"], 50);
    let event: Value = s
        .get(&s.read, &format!("/v1/events/{id}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(event["event_type"], "integrity_check");

    // The listing shows it, read back from the ledger, exactly as the check itself reads.
    let page = s.list(&s.verify, "").await;
    assert_eq!(ids(&page), [id.as_str()]);
    assert_eq!(page["checks"][0]["state"], "passed");
    assert_eq!(page["checks"][0]["report"], done["report"]);
    assert_eq!(page["checks"][0]["record"], done["record"]);
    assert_eq!(page["next_cursor"], Value::Null);

    // An ended check cannot be cancelled.
    let resp = s
        .post_empty(&s.read, &format!("/v1/integrity-checks/{id}/cancel"))
        .await;
    let p = problem(resp, StatusCode::CONFLICT).await;
    assert!(p["detail"].as_str().is_some_and(|d| d.contains(&id)), "{p}");
    s.stop().await;
}

async fn filed_results_survive_a_restart_and_are_listed_newest_first_with_cursors(
    backend: Backend,
) {
    let mut s = Instance::start(&backend).await;
    append_many(&s.store, &s.tenant, 20, 20).await;
    s.store.publish_checkpoints().await.expect("publish");
    let first_note = s.latest_note(&s.tenant).await;
    // A JSON `null` body is the same as no body.
    let a = s.start_check(&s.read, Some(&Value::Null)).await;
    assert_eq!(s.wait_until_ended(&s.read, &a).await["state"], "passed");
    append_many(&s.store, &s.tenant, 10, 10).await;
    s.store.publish_checkpoints().await.expect("publish");
    let b = s
        .start_check(
            &s.verify,
            Some(&json!({ "seen_checkpoints": [first_note] })),
        )
        .await;
    let b_done = s.wait_until_ended(&s.verify, &b).await;
    assert_eq!(b_done["state"], "passed", "{b_done:#}");
    assert_eq!(b_done["report"]["seen_checkpoints_checked"], 1);
    assert_eq!(b_done["report"]["records_total"], 31);

    s.restart().await;

    // Nothing is in memory any more: both come from the ledger.
    let a_after = s
        .get(&s.read, &format!("/v1/integrity-checks/{a}"))
        .await
        .json::<Value>()
        .await
        .expect("json");
    assert_eq!(a_after["state"], "passed", "{a_after:#}");
    assert_eq!(a_after["record"]["seq"], 20);
    let b_after = s
        .get(&s.verify, &format!("/v1/integrity-checks/{b}"))
        .await
        .json::<Value>()
        .await
        .expect("json");
    assert_eq!(b_after["report"], b_done["report"]);
    assert_eq!(b_after["record"], b_done["record"]);

    let all = s.list(&s.read, "").await;
    assert_eq!(ids(&all), [b.as_str(), a.as_str()], "newest first");
    let one = s.list(&s.read, "?limit=1").await;
    assert_eq!(ids(&one), [b.as_str()]);
    let cursor = one["next_cursor"].as_str().expect("a cursor");
    let two = s.list(&s.read, &format!("?limit=1&cursor={cursor}")).await;
    assert_eq!(ids(&two), [a.as_str()]);
    let cursor = two["next_cursor"].as_str().expect("a cursor");
    let three = s.list(&s.read, &format!("?limit=1&cursor={cursor}")).await;
    assert_eq!(ids(&three), Vec::<&str>::new());
    assert_eq!(three["next_cursor"], Value::Null);
    s.stop().await;
}

async fn a_running_check_blocks_a_second_start_and_is_cancelled_on_request_or_at_shutdown(
    backend: Backend,
) {
    let mut s = Instance::start(&backend).await;
    append_many(&s.store, &s.tenant, LONG_LEDGER_RECORDS, 1000).await;
    s.store.publish_checkpoints().await.expect("publish");
    let total = u64::try_from(LONG_LEDGER_RECORDS).expect("fits");

    let a = s.start_check(&s.verify, None).await;
    s.assert_start_refused_naming(&s.read, &a).await;
    let running = s.list(&s.read, "").await;
    assert_eq!(ids(&running), [a.as_str()]);
    assert_eq!(running["checks"][0]["state"], "running");

    s.cancel(&s.read, &a).await;
    let done = s.wait_until_ended(&s.read, &a).await;
    assert_eq!(done["state"], "cancelled", "{done:#}");
    assert_eq!(done["report"]["outcome"], "cancelled");
    assert_eq!(done["report"]["records_total"], total);
    let checked = done["report"]["records_checked"]
        .as_u64()
        .expect("records_checked");
    assert!(checked < total, "stopped part-way: {done:#}");
    assert_eq!(
        done["record"]["seq"], total,
        "a cancelled check is filed too"
    );
    let again = s
        .post_empty(&s.verify, &format!("/v1/integrity-checks/{a}/cancel"))
        .await;
    problem(again, StatusCode::CONFLICT).await;

    // A check still running at shutdown is cancelled and filed before the store closes.
    let b = s.start_check(&s.read, None).await;
    s.restart().await;
    let b_after: Value = s
        .get(&s.read, &format!("/v1/integrity-checks/{b}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(b_after["state"], "cancelled", "{b_after:#}");
    assert_eq!(b_after["record"]["seq"], total + 1);
    let page = s.list(&s.verify, "").await;
    assert_eq!(ids(&page), [b.as_str(), a.as_str()]);
    s.stop().await;
}

/// Two service nodes on one database: a check started on one holds the ledger on both; the
/// other shows it running, passes a cancellation on to it, and lists it; a check whose node died
/// stops holding the ledger once its heartbeat is stale.
async fn a_check_on_one_node_holds_the_ledger_on_every_node_which_shows_and_cancels_it(
    backend: Backend,
) {
    let mut s = Instance::start(&backend).await;
    // Twice the long ledger: the cancellation crosses nodes at the running node's next
    // heartbeat, and the check must still be running then.
    append_many(&s.store, &s.tenant, 2 * LONG_LEDGER_RECORDS, 1000).await;
    s.store.publish_checkpoints().await.expect("publish");
    // The second node: its own store (pool, registry) and server, the same database.
    let other_store = s.db.open().await;
    let (other_base, other_stop, other_task) = serve(&other_store).await;
    let node_a = std::mem::replace(&mut s.base, other_base.clone());
    let on_a = |s: &mut Instance| s.base = node_a.clone();
    let on_b = |s: &mut Instance| s.base = other_base.clone();

    on_a(&mut s);
    let a = s.start_check(&s.verify, None).await;
    on_b(&mut s);
    s.assert_start_refused_naming(&s.read, &a).await;
    let seen = s.check(&s.read, &a).await;
    assert_eq!(seen["state"], "running", "{seen:#}");
    assert_eq!(ids(&s.list(&s.read, "").await), [a.as_str()]);
    s.cancel(&s.read, &a).await;
    // The node running it hears of the cancellation at its next heartbeat.
    let done = s.wait_until_ended(&s.read, &a).await;
    assert_eq!(done["state"], "cancelled", "{done:#}");
    assert!(done["record"]["seq"].is_u64(), "filed: {done:#}");

    // Now the second node may start one, and the first refuses while it runs.
    let b = s.start_check(&s.read, None).await;
    on_a(&mut s);
    s.assert_start_refused_naming(&s.verify, &b).await;
    assert_eq!(s.wait_until_ended(&s.read, &b).await["state"], "passed");

    // A node that died with a check registered: it holds the ledger until its heartbeat is
    // stale, then the next start takes over.
    let dead = EventId::parse(&fresh_id()).expect("id");
    assert_eq!(
        s.store
            .claim_integrity_run(&s.tenant, dead, "{}")
            .await
            .expect("claim"),
        None
    );
    s.assert_start_refused_naming(&s.read, &dead.to_string())
        .await;
    let stale = auditex::store::integrity_runs::INTEGRITY_RUN_STALE.as_micros() + 1_000_000;
    let mut app = sqlx::PgConnection::connect(s.db.postgres_app_url())
        .await
        .expect("connect");
    let mut tx = app
        .begin_with(sqlx::AssertSqlSafe(format!(
            "BEGIN; SELECT set_config('app.tenant_id', '{}', true)",
            s.tenant
        )))
        .await
        .expect("begin");
    sqlx::query("UPDATE integrity_runs SET heartbeat_us = heartbeat_us - $1")
        .bind(i64::try_from(stale).expect("fits"))
        .execute(&mut *tx)
        .await
        .expect("age the heartbeat");
    tx.commit().await.expect("commit");
    app.close().await.ok();
    on_b(&mut s);
    let shown = s.check(&s.read, &dead.to_string()).await;
    assert_eq!(shown["state"], "error", "{shown:#}");
    assert!(
        shown["problem"]
            .as_str()
            .is_some_and(|p| p.contains("stopped")),
        "{shown:#}"
    );
    let c = s.start_check(&s.verify, None).await;
    assert_eq!(s.wait_until_ended(&s.read, &c).await["state"], "passed");
    assert_eq!(
        s.get(&s.read, &format!("/v1/integrity-checks/{dead}"))
            .await
            .status(),
        StatusCode::NOT_FOUND,
        "the dead node's check is gone once taken over"
    );

    let _ = other_stop.send(());
    other_task.await.expect("task").expect("served");
    on_a(&mut s);
    s.stop().await;
}

async fn ingest_keys_may_not_start_read_or_cancel_checks(backend: Backend) {
    let s = Instance::start(&backend).await;
    append_many(&s.store, &s.tenant, 5, 5).await;
    s.store.publish_checkpoints().await.expect("publish");
    let id = fresh_id();
    let refused = [
        s.post_empty(&s.ingest, "/v1/integrity-checks").await,
        s.post_json(&s.ingest, "/v1/integrity-checks", &json!({}))
            .await,
        s.get(&s.ingest, "/v1/integrity-checks").await,
        s.get(&s.ingest, &format!("/v1/integrity-checks/{id}"))
            .await,
        s.post_empty(&s.ingest, &format!("/v1/integrity-checks/{id}/cancel"))
            .await,
    ];
    for resp in refused {
        let p = problem(resp, StatusCode::FORBIDDEN).await;
        assert_eq!(p["type"], "urn:auditex:problem:forbidden");
    }
    let none = problem(
        s.post_empty("atx_not_a_key", "/v1/integrity-checks").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(none["type"], "urn:auditex:problem:unauthorized");
    assert_eq!(s.list(&s.read, "").await["checks"], json!([]));
    s.stop().await;
}

async fn bad_input_is_a_400_or_404_problem_and_starts_nothing(backend: Backend) {
    let s = Instance::start(&backend).await;
    append_many(&s.store, &s.tenant, 5, 5).await;
    s.store.publish_checkpoints().await.expect("publish");
    let other = tenant_id("other-bank");
    s.store.create_tenant(&other).await.expect("tenant");
    append_many(&s.store, &other, 3, 3).await;
    s.store.publish_checkpoints().await.expect("publish");
    let foreign_note = s.latest_note(&other).await;
    let decision = s
        .store
        .record(&s.tenant, seq(0))
        .await
        .expect("read")
        .expect("record")
        .event_id
        .to_string();
    let start = "/v1/integrity-checks";

    let bodies = [
        s.post_raw(&s.read, start, "application/json", "{not json")
            .await,
        s.post_raw(&s.read, start, "text/plain", r#"{"seen_checkpoints":[]}"#)
            .await,
        s.post_json(&s.read, start, &json!({"seen_checkpoints": "a note"}))
            .await,
        s.post_json(
            &s.read,
            start,
            &json!({"seen_checkpoints": [], "from_seq": 3}),
        )
        .await,
        s.post_json(&s.read, start, &json!([])).await,
    ];
    for resp in bodies {
        let p = problem(resp, StatusCode::BAD_REQUEST).await;
        assert_eq!(p["type"], "urn:auditex:problem:malformed-body", "{p}");
    }
    let oversize: Vec<String> = (0..=auditex::store::SEEN_CHECKPOINTS_MAX)
        .map(|i| format!("note {i}"))
        .collect();
    let p = problem(
        s.post_json(&s.read, start, &json!({ "seen_checkpoints": oversize }))
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        p["detail"].as_str().is_some_and(|d| d.contains("1000")),
        "{p}"
    );
    let own_note = s.latest_note(&s.tenant).await;
    for (notes, pointer) in [
        (json!(["not a checkpoint"]), "/seen_checkpoints/0"),
        (json!([own_note, foreign_note]), "/seen_checkpoints/1"),
    ] {
        let p = problem(
            s.post_json(&s.verify, start, &json!({ "seen_checkpoints": notes }))
                .await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert!(
            p["detail"].as_str().is_some_and(|d| d.contains(pointer)),
            "names {pointer}: {p}"
        );
    }

    for bad in ["not-a-uuid", "01936F5E-7A2B-7C3D-8E4F-A1B2C3D4E5F6"] {
        problem(
            s.get(&s.read, &format!("/v1/integrity-checks/{bad}")).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        problem(
            s.post_empty(&s.read, &format!("/v1/integrity-checks/{bad}/cancel"))
                .await,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    // Unknown ids and the ids of other events are not integrity checks.
    for id in [fresh_id(), decision] {
        problem(
            s.get(&s.read, &format!("/v1/integrity-checks/{id}")).await,
            StatusCode::NOT_FOUND,
        )
        .await;
        problem(
            s.post_empty(&s.verify, &format!("/v1/integrity-checks/{id}/cancel"))
                .await,
            StatusCode::NOT_FOUND,
        )
        .await;
    }
    for query in ["?limit=0", "?limit=101", "?cursor=garbage", "?colour=red"] {
        problem(
            s.get(&s.read, &format!("/v1/integrity-checks{query}"))
                .await,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }

    // Nothing was started, and nothing was written.
    assert_eq!(s.list(&s.read, "").await["checks"], json!([]));
    assert_eq!(s.store.tree_size(&s.tenant).await.expect("size").get(), 5);
    s.stop().await;
}

async fn another_tenants_checks_are_not_found_and_never_listed(backend: Backend) {
    let s = Instance::start(&backend).await;
    append_many(&s.store, &s.tenant, 5, 5).await;
    s.store.publish_checkpoints().await.expect("publish");
    let ours = s.start_check(&s.read, None).await;
    assert_eq!(s.wait_until_ended(&s.read, &ours).await["state"], "passed");

    let other = tenant_id("other-bank");
    s.store.create_tenant(&other).await.expect("tenant");
    let outsiders = [
        key(&s.store, &other, Role::Read).await,
        key(&s.store, &other, Role::Verify).await,
    ];
    let unknown = fresh_id();
    for outsider in &outsiders {
        let theirs = s
            .get(outsider, &format!("/v1/integrity-checks/{ours}"))
            .await;
        let nothing = s
            .get(outsider, &format!("/v1/integrity-checks/{unknown}"))
            .await;
        let (a, b) = (
            problem(theirs, StatusCode::NOT_FOUND).await,
            problem(nothing, StatusCode::NOT_FOUND).await,
        );
        assert_eq!(a, b, "exactly what a check that does not exist looks like");
        problem(
            s.post_empty(outsider, &format!("/v1/integrity-checks/{ours}/cancel"))
                .await,
            StatusCode::NOT_FOUND,
        )
        .await;
        assert_eq!(s.list(outsider, "").await["checks"], json!([]));
    }

    // The other tenant runs its own check; each listing shows only its own.
    let theirs = s.start_check(&outsiders[1], None).await;
    assert_eq!(
        s.wait_until_ended(&outsiders[0], &theirs).await["state"],
        "passed"
    );
    assert_eq!(ids(&s.list(&outsiders[0], "").await), [theirs.as_str()]);
    assert_eq!(ids(&s.list(&s.read, "").await), [ours.as_str()]);
    problem(
        s.get(&s.read, &format!("/v1/integrity-checks/{theirs}"))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    s.stop().await;
}

/// Changes record `seq`'s payload behind the service's back: on SQLite through a raw connection
/// after dropping the append-only trigger, on PostgreSQL as the schema owner with the table's
/// triggers disabled (as in `tamper.rs`).
async fn tamper_with_payload(db: &TestDb, seq: i64) {
    let set = "UPDATE records SET payload = replace(payload, 'outcome-', 'outcomf-')";
    let changed = if db.is_postgres() {
        let mut c = sqlx::PgConnection::connect(db.postgres_owner_url())
            .await
            .expect("connect as the owner");
        sqlx::query("ALTER TABLE records DISABLE TRIGGER USER")
            .execute(&mut c)
            .await
            .expect("the owner disables the append-only triggers");
        sqlx::query("SELECT set_config('app.tenant_id', $1, false)")
            .bind(TENANT)
            .execute(&mut c)
            .await
            .expect("set the tenant for row-level security");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "{set} WHERE tenant_id = $1 AND seq = $2"
        )))
        .bind(TENANT)
        .bind(seq)
        .execute(&mut c)
        .await
        .expect("update")
        .rows_affected()
    } else {
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(db.sqlite_path());
        let mut c = sqlx::SqliteConnection::connect_with(&options)
            .await
            .expect("raw SQLite connection");
        sqlx::query("DROP TRIGGER records_no_update")
            .execute(&mut c)
            .await
            .expect("drop trigger");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "{set} WHERE tenant_id = ? AND seq = ?"
        )))
        .bind(TENANT)
        .bind(seq)
        .execute(&mut c)
        .await
        .expect("update")
        .rows_affected()
    };
    assert_eq!(changed, 1, "record {seq} was changed");
}

async fn a_tampered_ledger_is_reported_failed_at_the_first_bad_record(backend: Backend) {
    let s = Instance::start(&backend).await;
    for _ in 0..3 {
        append_many(&s.store, &s.tenant, 20, 20).await;
        s.store.publish_checkpoints().await.expect("publish");
    }
    let victim = s
        .store
        .record(&s.tenant, seq(33))
        .await
        .expect("read")
        .expect("record 33")
        .event_id
        .to_string();
    tamper_with_payload(&s.db, 33).await;

    let id = s.start_check(&s.read, None).await;
    let done = s.wait_until_ended(&s.read, &id).await;
    assert_eq!(done["state"], "failed", "{done:#}");
    let failure = &done["report"]["first_failure"];
    assert_eq!(failure["kind"], "hash_mismatch", "{failure:#}");
    assert_eq!(failure["seq"], 33);
    assert_eq!(failure["event_id"], victim.as_str());
    assert_eq!(done["report"]["records_checked"], 33);
    assert_eq!(
        done["record"]["seq"], 60,
        "the failure is filed in the ledger"
    );
    let filed = s
        .store
        .record(&s.tenant, seq(60))
        .await
        .expect("read")
        .expect("the integrity_check record");
    let payload = filed.payload.to_value().expect("payload");
    assert_eq!(payload["outcome"], "failed");
    assert_eq!(payload["first_failure"]["seq"], 33);
    let page = s.list(&s.verify, "").await;
    assert_eq!(page["checks"][0]["state"], "failed");
    assert_eq!(page["checks"][0]["report"]["first_failure"]["seq"], 33);
    s.stop().await;
}

/// A tenant may start [`CHECK_STARTS_PER_WINDOW_MAX`] (6) checks per hour: the 7th start is a
/// 429 `quota-exceeded` problem with a Retry-After of about the hour left, starts nothing and
/// appends nothing; another tenant's allowance is its own.
async fn the_seventh_check_of_an_hour_is_refused_and_other_tenants_are_not_affected(
    backend: Backend,
) {
    use auditex::app::integrity::{CHECK_STARTS_PER_WINDOW_MAX, CHECK_STARTS_WINDOW_SECS};
    assert_eq!(CHECK_STARTS_PER_WINDOW_MAX, 6, "the documented allowance");
    let s = Instance::start(&backend).await;
    append_many(&s.store, &s.tenant, 5, 5).await;
    s.store.publish_checkpoints().await.expect("publish");
    // Both roles that may start checks draw on the one allowance of the tenant.
    for n in 0..CHECK_STARTS_PER_WINDOW_MAX {
        let key = if n % 2 == 0 { &s.read } else { &s.verify };
        let id = s.start_check(key, None).await;
        assert_eq!(s.wait_until_ended(key, &id).await["state"], "passed");
    }
    let size_before = s.store.tree_size(&s.tenant).await.expect("size");
    let refused = s.post_empty(&s.verify, "/v1/integrity-checks").await;
    let retry_after: u64 = refused
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After header in seconds");
    let body = problem(refused, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(
        body["type"], "urn:auditex:problem:quota-exceeded",
        "{body:#}"
    );
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("6 integrity checks per hour")),
        "{body:#}"
    );
    // The oldest start is seconds old: the wait is the rest of its hour, rounded up.
    assert!(
        (CHECK_STARTS_WINDOW_SECS - 300..=CHECK_STARTS_WINDOW_SECS + 1).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    assert_eq!(
        s.store.tree_size(&s.tenant).await.expect("size"),
        size_before,
        "a refused start appends nothing"
    );
    let listed = s.list(&s.read, "").await;
    assert_eq!(
        ids(&listed).len(),
        CHECK_STARTS_PER_WINDOW_MAX,
        "and starts nothing: {listed:#}"
    );

    let other = tenant_id("other-bank");
    s.store.create_tenant(&other).await.expect("tenant");
    let theirs = key(&s.store, &other, Role::Read).await;
    let id = s.start_check(&theirs, None).await;
    assert_eq!(s.wait_until_ended(&theirs, &id).await["state"], "passed");
    s.stop().await;
}

backend_tests!(
    the_seventh_check_of_an_hour_is_refused_and_other_tenants_are_not_affected,
    a_check_runs_in_the_background_passes_and_is_filed_in_the_ledger,
    filed_results_survive_a_restart_and_are_listed_newest_first_with_cursors,
    a_running_check_blocks_a_second_start_and_is_cancelled_on_request_or_at_shutdown,
    ingest_keys_may_not_start_read_or_cancel_checks,
    bad_input_is_a_400_or_404_problem_and_starts_nothing,
    another_tenants_checks_are_not_found_and_never_listed,
    a_tampered_ledger_is_reported_failed_at_the_first_bad_record,
);

postgres_tests!(a_check_on_one_node_holds_the_ledger_on_every_node_which_shows_and_cancels_it);
