//! The public `/verify` page: verification in the browser, with nothing uploaded.
//!
//! Over HTTP: the page needs no sign-in, it alone has a policy that allows a script (this
//! origin's, and WebAssembly compilation), and the module and WebAssembly it loads are the ones
//! the binary embeds. In headless Chromium (as `browser.rs` drives it): a custody bundle of the
//! running service verifies, a one-byte change fails naming the record, a wrong key fails; and
//! every request the server receives passes through a recording TLS proxy, which shows that
//! the page fetches its script and module and then nothing — the file's bytes never reach the
//! server.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use auditex::portal::handlers::verify::{
    SCRIPT, SCRIPT_PATH, STYLE_PATH, VERIFY_PAGE_CSP, WASM, WASM_PATH,
};
use ledger::note::VerifierKey;
use ledger::types::EventId;
use reqwest::StatusCode;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use thirtyfour::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::browser::{Browser, eventually, verifier_keys};
use crate::portal_support::PortalServer;
use crate::support::{Backend, decision_payload};

fn client(server: &PortalServer) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(server.pem.as_bytes()).expect("cert")])
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verify_page_alone_may_run_this_origins_script_and_needs_no_sign_in() {
    let server = PortalServer::start(&Backend::Sqlite, false).await;
    let client = client(&server);
    let get = |path: &str| client.get(server.url(path)).send();

    let page = get("/verify").await.expect("GET /verify");
    assert_eq!(page.status(), StatusCode::OK, "no sign-in needed");
    let csp = page
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("a policy");
    assert_eq!(csp, VERIFY_PAGE_CSP);
    let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
    for expected in [
        "default-src 'none'",
        "script-src 'self' 'wasm-unsafe-eval'",
        "connect-src 'self'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ] {
        assert!(directives.contains(&expected), "{expected} in {csp}");
    }
    // WebAssembly may be compiled; JavaScript may not be eval'ed nor inlined.
    assert!(
        !directives
            .iter()
            .any(|d| d.contains("'unsafe-eval'") || d.contains("'unsafe-inline'")),
        "{csp}"
    );
    let html = page.text().await.expect("body");
    assert!(!html.contains("<form"), "no form on the page");
    assert!(html.contains(&format!("src=\"{SCRIPT_PATH}\"")), "{html}");

    // Every other page keeps the script-free policy.
    for path in ["/sign-in", "/forgot-password", "/decisions"] {
        let other = get(path).await.expect("GET");
        let csp = other
            .headers()
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(csp.starts_with("default-src 'none'"), "{path}: {csp}");
        assert!(
            !csp.contains("script-src"),
            "{path} allows no script: {csp}"
        );
        assert!(!csp.contains("wasm-unsafe-eval"), "{path}: {csp}");
    }

    // The module and the script are the embedded ones, with the types browsers require.
    for (path, content_type, body) in [
        (WASM_PATH, "application/wasm", WASM.to_vec()),
        (
            SCRIPT_PATH,
            "text/javascript; charset=utf-8",
            SCRIPT.as_bytes().to_vec(),
        ),
    ] {
        let r = get(path).await.expect("GET");
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(
            r.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some(content_type),
            "{path}"
        );
        assert_eq!(r.bytes().await.expect("body").to_vec(), body, "{path}");
    }
    let css = get(STYLE_PATH).await.expect("GET");
    assert_eq!(css.status(), StatusCode::OK);

    // The sign-in page links to it.
    let sign_in = get("/sign-in")
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    assert!(sign_in.contains("href=\"/verify\""), "{sign_in}");
    server.stop().await;
}

/// A TLS proxy in front of the server that keeps every byte the browser sends it, decrypted:
/// what the server receives, in order. HTTP/1.1 only (no ALPN), so requests are plain text.
struct RecordingProxy {
    url: String,
    received: Arc<Mutex<Vec<u8>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RecordingProxy {
    async fn start(server: &PortalServer) -> RecordingProxy {
        let upstream_port: u16 = server
            .base
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("the server's port");
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
        let key = PrivateKeyDer::from_pem_slice(certified.signing_key.serialize_pem().as_bytes())
            .expect("key");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(
            rustls::ServerConfig::builder()
                .with_no_client_auth()
                .with_single_cert(vec![certified.cert.der().clone()], key)
                .expect("server config"),
        ));
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(server.pem.as_bytes()) {
            roots.add(cert.expect("pem")).expect("root");
        }
        let connector = tokio_rustls::TlsConnector::from(Arc::new(
            rustls::ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, connector, log) = (acceptor.clone(), connector.clone(), log.clone());
                tokio::spawn(async move {
                    let Ok(from_browser) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(upstream) =
                        tokio::net::TcpStream::connect(("127.0.0.1", upstream_port)).await
                    else {
                        return;
                    };
                    let name = ServerName::try_from("localhost").expect("name");
                    let Ok(to_server) = connector.connect(name, upstream).await else {
                        return;
                    };
                    let (mut browser_read, mut browser_write) = tokio::io::split(from_browser);
                    let (mut server_read, mut server_write) = tokio::io::split(to_server);
                    let requests = async {
                        let mut buf = vec![0u8; 64 * 1024];
                        while let Ok(n) = browser_read.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                            log.lock().expect("log").extend_from_slice(&buf[..n]);
                            if server_write.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = server_write.shutdown().await;
                    };
                    let responses = async {
                        let _ = tokio::io::copy(&mut server_read, &mut browser_write).await;
                        let _ = browser_write.shutdown().await;
                    };
                    tokio::join!(requests, responses);
                });
            }
        });
        RecordingProxy {
            url: format!("https://localhost:{port}"),
            received,
            task,
        }
    }

    /// Everything received so far.
    fn received(&self) -> Vec<u8> {
        self.received.lock().expect("log").clone()
    }

    /// The request lines (`GET /verify HTTP/1.1`) received after `from` bytes.
    fn request_lines(&self, from: usize) -> Vec<String> {
        let bytes = self.received();
        String::from_utf8_lossy(&bytes[from.min(bytes.len())..])
            .lines()
            .filter(|l| {
                [
                    "GET ", "POST ", "PUT ", "PATCH ", "DELETE ", "HEAD ", "OPTIONS ",
                ]
                .iter()
                .any(|m| l.starts_with(m))
            })
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A custody bundle of a decision of the running service, and its log's verifier keys.
async fn bundle_and_keys(server: &PortalServer) -> (String, Vec<String>) {
    let id = crate::support::new_event_id();
    let draft = ledger::draft::prepare_client_draft(
        &id,
        "decision",
        &decision_payload("approved"),
        &Default::default(),
        rand::random,
    )
    .expect("a valid decision");
    server
        .store
        .append(&server.tenant, vec![draft])
        .await
        .expect("append");
    let event_id = EventId::parse(&id).expect("event id");
    let bundle = eventually("a checkpoint covering the decision", || async {
        let _ = server.store.publish_checkpoints().await;
        server
            .store
            .custody_bundle(&server.tenant, event_id)
            .await
            .ok()
    })
    .await;
    (bundle.to_json(), verifier_keys(server).await)
}

/// Chooses `file` and `keys` on the page and verifies; returns the status heading, the
/// failure's name (empty when verified) and the report text.
async fn verify_in_page(browser: &Browser, file: &std::path::Path, keys: &str) -> [String; 3] {
    let d = &browser.driver;
    eventually("the verifier to load", || async {
        let root = d.find(By::Id("verifier")).await.ok()?;
        (root.attr("data-ready").await.ok()?.as_deref() == Some("true")).then_some(())
    })
    .await;
    let input = d.find(By::Id("evidence")).await.expect("file input");
    input
        .send_keys(file.display().to_string())
        .await
        .expect("choose the file");
    let area = d.find(By::Id("keys")).await.expect("keys");
    area.clear().await.expect("clear");
    area.send_keys(keys).await.expect("type the keys");
    // Whatever an earlier verification showed is hidden until this one is done.
    d.find(By::Id("verify-button"))
        .await
        .expect("button")
        .click()
        .await
        .expect("click");
    eventually("a verdict", || async {
        let result = d.find(By::Id("result")).await.ok()?;
        if result.attr("hidden").await.ok()?.is_some() {
            return None;
        }
        let text = |id: &'static str| async move {
            d.find(By::Id(id))
                .await
                .expect(id)
                .prop("textContent")
                .await
                .ok()
                .flatten()
                .unwrap_or_default()
        };
        Some([
            text("verify-status").await,
            text("verify-failure-kind").await,
            text("verify-report").await,
        ])
    })
    .await
}

/// `auditex verify FILE --key …` as a person runs it in the file's folder, without its timing
/// line: the text the page must show word for word.
fn cli_report(file: &std::path::Path, keys: &[String]) -> String {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_auditex"));
    command
        .current_dir(file.parent().expect("folder"))
        .arg("verify")
        .arg(file.file_name().expect("name"))
        .arg("--no-progress");
    for k in keys {
        command.args(["--key", k]);
    }
    let out = command.output().expect("run auditex verify");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .filter(|l| !l.starts_with("  checked in "))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_verifies_in_the_browser_and_a_changed_byte_or_a_wrong_key_fails_with_nothing_uploaded()
 {
    let server = PortalServer::start(&Backend::Sqlite, false).await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    let (bundle, keys) = bundle_and_keys(&server).await;
    let dir = tempfile::tempdir().expect("dir");
    let good = dir.path().join("custody.json");
    std::fs::write(&good, &bundle).expect("write");
    // One byte changed inside the decision's payload: its hash no longer matches.
    let at = bundle.find("\"approved\"").expect("the outcome") + 1;
    let mut changed = bundle.clone().into_bytes();
    changed[at] = b'A';
    let tampered = dir.path().join("custody-changed.json");
    std::fs::write(&tampered, &changed).expect("write");
    let wrong_key = {
        let origin = server.store.origin(&server.tenant).await.expect("origin");
        let other = ed25519_dalek::SigningKey::from_bytes(&[9; 32]).verifying_key();
        VerifierKey::new(&origin, other).expect("vkey").to_string()
    };

    let proxy = RecordingProxy::start(&server).await;
    browser
        .driver
        .goto(format!("{}/verify", proxy.url))
        .await
        .expect("open /verify");
    browser.expect_page("Verify evidence").await;
    browser.screenshot("verify-01-page").await;
    let loaded = eventually("the page's requests", || async {
        let lines = proxy.request_lines(0);
        lines
            .iter()
            .any(|l| l.starts_with(&format!("GET {WASM_PATH} ")))
            .then_some(lines)
    })
    .await;
    let mut paths: Vec<&str> = loaded
        .iter()
        .filter_map(|l| l.split(' ').nth(1))
        .filter(|p| *p != "/favicon.ico")
        .collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        [
            "/static/portal.css",
            STYLE_PATH,
            SCRIPT_PATH,
            WASM_PATH,
            "/verify"
        ]
        .iter()
        .copied()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>(),
        "the page loads itself, its styles, its script and the module: {loaded:?}"
    );
    let before_verifying = proxy.received().len();

    let keys_text = keys.join("\n");
    let [status, kind, report] = verify_in_page(&browser, &good, &keys_text).await;
    assert_eq!(
        (status.as_str(), kind.as_str()),
        ("Verified", ""),
        "{report}"
    );
    assert_eq!(
        report,
        cli_report(&good, &keys),
        "the page words it as auditex verify"
    );
    browser.screenshot("verify-02-verified").await;

    let [status, kind, report] = verify_in_page(&browser, &tampered, &keys_text).await;
    assert_eq!(
        (status.as_str(), kind.as_str()),
        ("Not verified", "hash_mismatch"),
        "{report}"
    );
    assert!(report.contains("FAILED at record 0 (event "), "{report}");
    assert_eq!(report, cli_report(&tampered, &keys));
    browser.screenshot("verify-03-changed-byte").await;

    let [status, kind, report] = verify_in_page(&browser, &good, &wrong_key).await;
    assert_eq!(
        (status.as_str(), kind.as_str()),
        ("Not verified", "checkpoint_not_trusted"),
        "{report}"
    );
    assert_eq!(report, cli_report(&good, std::slice::from_ref(&wrong_key)));
    browser.screenshot("verify-04-wrong-key").await;

    // Nothing reached the server while verifying: no request at all, so neither the file nor
    // any part of it (its signature is the most distinctive part).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = proxy.received();
    assert_eq!(
        proxy.request_lines(before_verifying),
        Vec::<String>::new(),
        "no request after the page loaded"
    );
    assert_eq!(after.len(), before_verifying, "not a byte more was sent");
    let parsed: serde_json::Value = serde_json::from_str(&bundle).expect("JSON");
    let signature = parsed["entries"][0]["record"]["sig"]
        .as_str()
        .expect("a signature in the bundle");
    assert!(
        !after
            .windows(signature.len())
            .any(|w| w == signature.as_bytes()),
        "the file's bytes never reach the server"
    );
    browser.quit().await;
    server.stop().await;
}
