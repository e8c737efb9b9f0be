//! The compliance portal in a real browser: headless Chromium driven over WebDriver.
//!
//! Each test starts its own `chromedriver` (Debian's `chromium-driver`) on a free port, opens a
//! headless Chromium session against a [`PortalServer`] and works through the portal as a person
//! would: signing in through the form, searching decisions, downloading evidence and checking it
//! with the real `auditex verify` binary, creating and revoking an API key, resetting a password
//! from the outbox, and trying the admin pages as a regulator. Every page visited is also checked
//! for accessibility basics (every input labelled, one `h1`, `lang` set) and for its stylesheet
//! having loaded under the strict Content-Security-Policy.
//!
//! Screenshots of the main pages are kept as test artifacts in `target/browser-screenshots/`
//! (PNG, one file per page, overwritten by every run).
//!
//! Without chromedriver the tests are reported as skipped (a `SKIPPED:` line, see `skip.rs`),
//! except under CI (`CI=true`), where that is a failure: `.ci/run` installs Chromium and chromedriver. The browser exercises the portal,
//! not the storage backends (the store suite covers both), so these tests run on SQLite only.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use auditex::portal::handlers::subjects::{CONFIRMATION_MISMATCH, LEGAL_BASES};
use auditex::store::users::PortalRole;
use auditex::store::views::DecisionQuery;
use ledger::draft::{ClientDraft, prepare_client_draft};
use ledger::note::VerifierKey;
use ledger::types::EventId;
use reqwest::StatusCode;
use serde_json::{Value, json};
use thirtyfour::prelude::*;

use crate::portal_support::{ADMIN_EMAIL, PASSWORD, PERSONAL_FIELDS, PortalServer};
use crate::support::Backend;

// The charts of the dashboard and the model pages (a child module: it shares `Browser`).
mod charts;

/// Environment variable naming the chromedriver binary.
const CHROMEDRIVER_VAR: &str = "AUDITEX_TEST_CHROMEDRIVER";
/// Environment variable naming the Chromium binary.
const CHROMIUM_VAR: &str = "AUDITEX_TEST_CHROMIUM";
/// Where Debian's `chromium-driver` and `chromium` put them.
const CHROMEDRIVER_DEFAULT: &str = "/usr/bin/chromedriver";
const CHROMIUM_DEFAULT: &str = "/usr/bin/chromium";

/// How long chromedriver may take to answer after it starts.
const DRIVER_START_SECS_MAX: u64 = 20;
/// How long a page, a download, a mail or a projection may take to appear.
const WAIT_SECS_MAX: u64 = 20;
/// Between two looks at something awaited.
const POLL_INTERVAL_MS: u64 = 100;

/// A chromedriver process, killed with everything it started when dropped (also on panic).
struct ChromeDriver {
    child: Child,
    url: String,
}

impl ChromeDriver {
    /// Starts `binary` on a free port and waits until it answers `/status`.
    async fn start(binary: &Path) -> ChromeDriver {
        // A port found free may be taken before chromedriver binds it; try a few.
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let mut command = Command::new(binary);
            command
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            // Its own process group, so that Drop can end the browsers with it.
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
            let child = command
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
            let mut driver = ChromeDriver {
                child,
                url: format!("http://127.0.0.1:{port}"),
            };
            if driver.ready().await {
                return driver;
            }
        }
        panic!("{} did not start answering", binary.display());
    }

    /// Waits until the driver says it is ready; false when it exited or never answered.
    async fn ready(&mut self) -> bool {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("client");
        let deadline = Instant::now() + Duration::from_secs(DRIVER_START_SECS_MAX);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return false;
            }
            if let Ok(r) = client.get(format!("{}/status", self.url)).send().await
                && let Ok(status) = r.json::<Value>().await
                && status["value"]["ready"] == json!(true)
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(POLL_INTERVAL_MS)).await;
        }
        false
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The whole process group (chromedriver and any browser it left behind), by its id.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless Chromium session with its own profile and download folder.
///
/// Fields drop in order: the WebDriver session (which ends the browser), then chromedriver,
/// then the folders the browser wrote to.
pub(crate) struct Browser {
    pub(crate) driver: WebDriver,
    chromedriver: ChromeDriver,
    downloads: tempfile::TempDir,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// A new session, or `None` (after a notice) when chromedriver is not installed here.
    ///
    /// # Panics
    /// When chromedriver is missing under CI, or the browser does not start.
    pub(crate) async fn start() -> Option<Browser> {
        let chromedriver = PathBuf::from(
            std::env::var(CHROMEDRIVER_VAR).unwrap_or_else(|_| CHROMEDRIVER_DEFAULT.to_owned()),
        );
        let chromium = std::env::var(CHROMIUM_VAR).unwrap_or_else(|_| CHROMIUM_DEFAULT.to_owned());
        if !chromedriver.is_file() {
            crate::skip::BROWSER.skip(&format!(
                "no chromedriver at {} ({CHROMEDRIVER_VAR})",
                chromedriver.display()
            ));
            return None;
        }
        // thirtyfour's HTTP client is the tests' reqwest, built without a default TLS provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let driver_process = ChromeDriver::start(&chromedriver).await;
        let downloads = tempfile::tempdir().expect("download folder");
        let profile = tempfile::tempdir().expect("profile folder");
        let mut caps = DesiredCapabilities::chrome();
        caps.set_binary(&chromium).expect("binary");
        for arg in [
            "--headless=new",
            // CI runs as root, where Chromium's sandbox cannot start.
            "--no-sandbox",
            "--disable-dev-shm-usage",
            // The test server's certificate is self-signed.
            "--ignore-certificate-errors",
            "--window-size=1280,900",
            "--disable-gpu",
            // No connections to Google's services: the machine's network is closed.
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            &format!("--user-data-dir={}", profile.path().display()),
        ] {
            caps.add_arg(arg).expect("argument");
        }
        caps.accept_insecure_certs(true).expect("capability");
        caps.add_experimental_option(
            "prefs",
            json!({
                "download.default_directory": downloads.path(),
                "download.prompt_for_download": false,
                "download.directory_upgrade": true,
                "safebrowsing.enabled": false,
            }),
        )
        .expect("prefs");
        let driver = WebDriver::new(driver_process.url.clone(), caps)
            .await
            .expect("a Chromium session starts");
        Some(Browser {
            driver,
            chromedriver: driver_process,
            downloads,
            _profile: profile,
        })
    }

    /// Ends the session (the browser closes), then chromedriver.
    pub(crate) async fn quit(self) {
        let Browser {
            driver,
            chromedriver,
            ..
        } = self;
        driver.quit().await.expect("the session ends");
        drop(chromedriver);
    }

    async fn open(&self, server: &PortalServer, path: &str) {
        self.driver
            .goto(server.url(path))
            .await
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
    }

    /// The page's text as shown (read again when the page was replaced while it was read).
    async fn text(&self) -> String {
        eventually("the page's text", || async {
            self.driver
                .find(By::Tag("body"))
                .await
                .ok()?
                .text()
                .await
                .ok()
        })
        .await
    }

    /// The path (and query) of the page shown.
    async fn path(&self) -> String {
        let url = self.driver.current_url().await.expect("url");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// Waits until the page's text contains `needle`: after a form posts back to a page with
    /// the same heading, the heading alone does not say the new page has arrived.
    pub(crate) async fn expect_text(&self, needle: &str) {
        eventually(&format!("the text {needle:?} on the page"), || async {
            let body = self.driver.find(By::Tag("body")).await.ok()?;
            body.text().await.ok()?.contains(needle).then_some(())
        })
        .await;
    }

    /// Waits for the page whose heading is `h1`, then checks its accessibility basics.
    pub(crate) async fn expect_page(&self, h1: &str) {
        eventually(&format!("a page headed {h1:?}"), || async {
            let heading = self.driver.find(By::Tag("h1")).await.ok()?;
            let text = heading.text().await.ok()?;
            (text == h1).then_some(())
        })
        .await;
        self.check_accessibility(h1).await;
    }

    /// Every input and select has a label (an enclosing `label`, a `label for` or an ARIA
    /// name), there is exactly one `h1`, `lang` is set, and the stylesheet applied (the CSP
    /// allows only this origin's stylesheet; a blocked one leaves the page unstyled).
    async fn check_accessibility(&self, page: &str) {
        let problems = self
            .driver
            .execute(
                r#"
                const problems = [];
                for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
                    const named = el.closest('label') !== null
                        || (el.getAttribute('aria-label') || '').trim() !== ''
                        || el.hasAttribute('aria-labelledby')
                        || (el.id !== '' && document.querySelector('label[for="' + CSS.escape(el.id) + '"]') !== null);
                    if (!named) problems.push('no label: ' + el.outerHTML);
                }
                for (const b of document.querySelectorAll('button, a')) {
                    const name = (b.getAttribute('aria-label') || b.textContent || '').trim();
                    if (name === '') problems.push('no accessible name: ' + b.outerHTML);
                }
                const h1 = document.querySelectorAll('h1').length;
                if (h1 !== 1) problems.push(h1 + ' h1 elements');
                if ((document.documentElement.getAttribute('lang') || '').trim() === '') problems.push('no lang');
                if (document.title.trim() === '') problems.push('no title');
                if (getComputedStyle(document.querySelector('main')).maxWidth === 'none') problems.push('the stylesheet did not apply');
                return problems;
                "#,
                Vec::new(),
            )
            .await
            .expect("script runs")
            .convert::<Vec<String>>()
            .expect("a list");
        assert!(
            problems.is_empty(),
            "accessibility basics on the {page:?} page: {problems:#?}"
        );
    }

    /// Types `value` into the field `name` of the page's main content.
    async fn fill(&self, name: &str, value: &str) {
        let field = self
            .driver
            .find(By::Css(format!("main [name='{name}']")))
            .await
            .unwrap_or_else(|e| panic!("field {name}: {e}"));
        field.clear().await.expect("clear");
        field.send_keys(value).await.expect("type");
    }

    /// Clicks the element `by` finds; `what` names it when it is missing.
    async fn click_on(&self, by: By, what: &str) {
        self.driver
            .find(by)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {what}: {e}"));
    }

    /// Clicks the main content's button labelled `label`.
    async fn press(&self, label: &str) {
        let button = format!("//main//button[normalize-space()='{label}']");
        self.click_on(By::XPath(button), &format!("button {label:?}"))
            .await;
    }

    /// Clicks the element matching `css` (a radio button, a checkbox, an option).
    async fn click(&self, css: &str) {
        self.click_on(By::Css(css), css).await;
    }

    /// Follows the link whose text is `text`.
    async fn follow(&self, text: &str) {
        self.click_on(By::LinkText(text), &format!("link {text:?}"))
            .await;
    }

    /// Whether nothing on the page matches `by`.
    async fn none(&self, by: By) -> bool {
        self.driver.find_all(by).await.expect("find").is_empty()
    }

    /// The texts of the elements matching `css`.
    async fn texts(&self, css: &str) -> Vec<String> {
        let mut out = Vec::new();
        for el in self.driver.find_all(By::Css(css)).await.expect("find") {
            out.push(el.text().await.expect("text"));
        }
        out
    }

    /// Keeps a PNG of the page as a test artifact.
    pub(crate) async fn screenshot(&self, name: &str) {
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshot folder");
        let png = self.driver.screenshot_as_png().await.expect("screenshot");
        assert!(
            png.starts_with(b"\x89PNG"),
            "the screenshot of {name} is a PNG"
        );
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
    }

    /// Waits for a finished download whose name starts with `prefix` and returns its path.
    async fn downloaded(&self, prefix: &str) -> PathBuf {
        let dir = self.downloads.path().to_owned();
        eventually(&format!("a download named {prefix}…"), || {
            let dir = dir.clone();
            async move {
                std::fs::read_dir(&dir)
                    .ok()?
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .find(|p| {
                        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                        // Chromium writes `<name>.crdownload` and renames it when complete.
                        name.starts_with(prefix) && !name.ends_with(".crdownload")
                    })
                    .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0))
            }
        })
        .await
    }

    /// Signs in through the form and lands on the dashboard.
    async fn sign_in(&self, server: &PortalServer, email: &str, password: &str) {
        self.open(server, "/sign-in").await;
        self.expect_page("Sign in").await;
        self.fill("tenant", "acme-bank").await;
        self.fill("email", email).await;
        self.fill("password", password).await;
        self.press("Sign in").await;
        self.expect_page("Dashboard").await;
        assert_eq!(self.path().await, "/");
    }

    /// Signs out with the header's button.
    async fn sign_out(&self) {
        self.driver
            .find(By::XPath("//header//button[normalize-space()='Sign out']"))
            .await
            .expect("sign-out button")
            .click()
            .await
            .expect("click");
        self.expect_page("Sign in").await;
    }
}

/// `target/browser-screenshots/`, beside cargo's `target/tmp`.
fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target folder")
        .join("browser-screenshots")
}

/// Polls `probe` until it yields a value, for at most [`WAIT_SECS_MAX`].
pub(crate) async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(WAIT_SECS_MAX);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "waited {WAIT_SECS_MAX} s for {what}"
        );
        tokio::time::sleep(Duration::from_millis(POLL_INTERVAL_MS)).await;
    }
}

fn draft(id: &str, event_type: &str, payload: &Value) -> ClientDraft {
    prepare_client_draft(id, event_type, payload, &BTreeMap::new(), rand::random)
        .unwrap_or_else(|e| panic!("valid {event_type} draft: {e:?}"))
}

fn decision(id: &str, model: (&str, &str), outcome: &str, subject: &str, score: f64) -> Value {
    decision_at(id, model, outcome, subject, score, chrono::Utc::now())
}

fn decision_at(
    id: &str,
    model: (&str, &str),
    outcome: &str,
    subject: &str,
    score: f64,
    decided_at: chrono::DateTime<chrono::Utc>,
) -> Value {
    json!({
        "model_id": model.0,
        "model_version": model.1,
        "input_commitment": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "outcome": outcome,
        "score": score,
        "subject_ref": subject,
        "decided_at": decided_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "oversight_mode": "human_on_the_loop",
        "explanation": format!("decision {id} for the browser test"),
    })
}

/// A subject reference that would run script if the portal did not escape it.
const HOSTILE_SUBJECT: &str = "cust-004 <img src=x onerror=alert(1)>";

/// When the first decision was made: two hours before the ledger captured it (a late report).
fn first_decided_at() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() - chrono::Duration::hours(2)
}

/// Four decisions (two credit-scoring, two fraud-detection, one with a hostile subject), a human
/// review and an override of the first, the views caught up and a checkpoint over all of it.
/// Returns the first decision's id and when it was decided, as the portal shows times.
async fn seed(server: &PortalServer) -> (String, String) {
    let decided_at = first_decided_at();
    let ids: Vec<String> = (0..4).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let credit = ("credit-scoring", "4.2");
    let fraud = ("fraud-detect", "1.0");
    let drafts = vec![
        draft(
            &ids[0],
            "decision",
            &decision_at(&ids[0], credit, "declined", "cust-001", 0.31, decided_at),
        ),
        draft(
            &ids[1],
            "decision",
            &decision(&ids[1], credit, "approved", "cust-002", 0.88),
        ),
        draft(
            &ids[2],
            "decision",
            &decision(&ids[2], fraud, "approved", "cust-003", 0.12),
        ),
        draft(
            &ids[3],
            "decision",
            &decision(&ids[3], fraud, "referred", HOSTILE_SUBJECT, 0.64),
        ),
        draft(
            &uuid::Uuid::now_v7().to_string(),
            "human_review",
            &json!({"decision_id": ids[0], "reviewer": "analyst-17", "action": "escalated",
                    "reason": "Declined with a thin credit file"}),
        ),
        draft(
            &uuid::Uuid::now_v7().to_string(),
            "override",
            &json!({"decision_id": ids[0], "reviewer": "supervisor-3", "new_outcome": "approved",
                    "reason": "Income verified by hand"}),
        ),
    ];
    server
        .store
        .append(&server.tenant, drafts)
        .await
        .expect("append");
    let first = EventId::parse(&ids[0]).expect("event id");
    eventually(
        "the views to show the decisions and the oversight",
        || async {
            let page = server
                .store
                .search_decisions(
                    &server.tenant,
                    &DecisionQuery {
                        limit: 50,
                        ..DecisionQuery::default()
                    },
                )
                .await
                .ok()?;
            let (_, oversight) = server
                .store
                .decision_view(&server.tenant, first)
                .await
                .ok()??;
            (page.items.len() == 4 && oversight.len() == 2).then_some(())
        },
    )
    .await;
    server
        .store
        .publish_checkpoints()
        .await
        .expect("checkpoint");
    (
        ids[0].clone(),
        decided_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// The tenant's checkpoint verifier keys in C2SP vkey form.
pub(crate) async fn verifier_keys(server: &PortalServer) -> Vec<String> {
    let origin = server.store.origin(&server.tenant).await.expect("origin");
    server
        .store
        .key_history(&server.tenant)
        .await
        .expect("key history")
        .intervals()
        .iter()
        .map(|k| {
            VerifierKey::new(&origin, k.public_key)
                .expect("verifier key")
                .to_string()
        })
        .collect()
}

/// Runs `auditex verify FILE --key …` and asserts that it succeeds.
fn assert_verifies(file: &Path, vkeys: &[String]) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_auditex"));
    command.arg("verify").arg(file).arg("--no-progress");
    for k in vkeys {
        command.args(["--key", k]);
    }
    let out = command.output().expect("run auditex verify");
    assert_eq!(
        out.status.code(),
        Some(0),
        "auditex verify {}: {}{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_finds_a_decision_and_its_downloaded_evidence_verifies() {
    let server = PortalServer::start(&Backend::Sqlite, false).await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    let (overridden, decided) = seed(&server).await;
    let vkeys = verifier_keys(&server).await;

    // Signed out, every page leads to the sign-in form.
    browser.open(&server, "/decisions").await;
    browser.expect_page("Sign in").await;
    assert_eq!(browser.path().await, "/sign-in");
    browser.screenshot("01-sign-in").await;
    browser.sign_in(&server, ADMIN_EMAIL, PASSWORD).await;
    let dashboard = browser.text().await;
    assert!(
        dashboard.contains("credit-scoring") && dashboard.contains("fraud-detect"),
        "the dashboard shows per-model volumes: {dashboard}"
    );
    browser.screenshot("02-dashboard").await;

    // Search by model, through the form.
    browser.follow("Decisions").await;
    browser.expect_page("Decisions").await;
    assert_eq!(
        browser.texts("main tbody tr").await.len(),
        4,
        "unfiltered, every decision is listed"
    );
    // The hostile subject is shown as text; nothing of it became markup.
    browser.expect_text(HOSTILE_SUBJECT).await;
    assert!(
        browser.none(By::Css("main img")).await,
        "a subject reference became an element"
    );
    browser.fill("model_id", "credit-scoring").await;
    browser.press("Search").await;
    browser.expect_page("Decisions").await;
    let rows = browser.texts("main tbody tr").await;
    assert_eq!(rows.len(), 2, "two credit-scoring decisions: {rows:?}");
    assert!(rows.iter().all(|r| r.contains("credit-scoring 4.2")));
    assert!(
        rows.iter()
            .any(|r| r.contains("cust-001") && r.contains("approved (model: declined)")),
        "the outcome in force is the override's: {rows:?}"
    );
    assert!(browser.path().await.contains("model_id=credit-scoring"));
    browser.screenshot("03-decisions-search").await;

    // Search by subject: the model field is cleared, the subject filled in.
    browser.fill("model_id", "").await;
    browser.fill("subject_ref", "cust-001").await;
    browser.press("Search").await;
    browser.expect_page("Decisions").await;
    let rows = browser.texts("main tbody tr").await;
    assert_eq!(rows.len(), 1, "one decision of cust-001: {rows:?}");
    assert!(rows[0].contains("cust-001"));

    // Open it: the record, its verification and its chain of custody.
    browser
        .driver
        .find(By::Css("main tbody tr td a"))
        .await
        .expect("link to the decision")
        .click()
        .await
        .expect("click");
    let seq = rows[0].split_whitespace().next().expect("sequence number");
    browser.expect_page(&format!("Decision {seq}")).await;
    assert_eq!(browser.path().await, format!("/decisions/{overridden}"));
    let verification = browser.texts("main .ok").await.join(" ");
    assert!(
        verification.contains("verified"),
        "the page reports the record verified: {verification:?}"
    );
    let timeline = browser.texts("main ol.timeline li").await;
    assert_eq!(
        timeline.len(),
        3,
        "decided, reviewed, overridden: {timeline:?}"
    );
    assert!(
        timeline[0].starts_with(&format!("Decided — {decided}; recorded ")),
        "the decision's own time, then its capture: {timeline:?}"
    );
    assert!(
        timeline[1].contains("human review")
            && timeline[1].contains("by analyst-17")
            && timeline[1].contains("escalated"),
        "the review: {timeline:?}"
    );
    assert!(
        timeline[2].contains("override")
            && timeline[2].contains("by supervisor-3")
            && timeline[2].contains("approved")
            && timeline[2].contains("Income verified by hand"),
        "the override: {timeline:?}"
    );
    browser.screenshot("04-decision").await;

    // Download the proof file and the bundle; the real verifier accepts both.
    browser.follow("Proof file (C2SP tlog-proof)").await;
    let proof = browser.downloaded("record-").await;
    assert_eq!(
        proof.file_name().and_then(|n| n.to_str()),
        Some(format!("record-{seq}.tlog-proof").as_str())
    );
    assert_verifies(&proof, &vkeys);
    browser.follow("Chain-of-custody bundle (JSON)").await;
    let bundle = browser.downloaded("custody-").await;
    assert_verifies(&bundle, &vkeys);
    let bundle_json: Value =
        serde_json::from_slice(&std::fs::read(&bundle).expect("read bundle")).expect("JSON");
    assert!(
        bundle_json.to_string().contains("supervisor-3"),
        "the bundle carries the override"
    );
    // The downloads are themselves audited in the ledger.
    let audited = eventually("the downloads in the ledger", || async {
        let records = server
            .store
            .records(
                &server.tenant,
                ledger::types::Sequence::new(0).expect("seq"),
                100,
            )
            .await
            .ok()?;
        let actions: Vec<String> = records
            .iter()
            .filter(|r| r.event_type == ledger::record::EventType::Access)
            .map(|r| r.payload.as_str().to_owned())
            .collect();
        let all = actions.join("\n");
        (all.contains("download_proof") && all.contains("download_bundle")).then_some(all)
    })
    .await;
    assert!(audited.contains(ADMIN_EMAIL));

    // The other working pages render and pass the basics.
    browser.follow("Models").await;
    browser.expect_page("Model inventory").await;
    let models = browser.texts("main tbody tr").await;
    assert!(
        models
            .iter()
            .any(|m| m.contains("credit-scoring") && m.contains("4.2")),
        "the inventory lists the model: {models:?}"
    );
    browser.screenshot("05-models").await;
    browser.follow("Integrity").await;
    browser.expect_page("Integrity checks").await;
    browser.screenshot("06-integrity").await;
    browser.follow("My sessions").await;
    browser.expect_page("My sessions").await;
    browser.follow("Password").await;
    browser.expect_page("Change your password").await;

    browser.quit().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_created_in_the_browser_works_until_revoked_there() {
    let server = PortalServer::start(&Backend::Sqlite, false).await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(server.pem.as_bytes()).expect("cert")])
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let records = |key: String| {
        let request = client
            .get(server.url("/v1/records"))
            .bearer_auth(key)
            .send();
        async move { request.await.expect("request").status() }
    };

    browser.sign_in(&server, ADMIN_EMAIL, PASSWORD).await;
    browser.follow("API keys").await;
    browser.expect_page("API keys").await;
    browser
        .driver
        .find(By::Css("main select[name='role'] option[value='read']"))
        .await
        .expect("the read role")
        .click()
        .await
        .expect("choose");
    browser.fill("label", "compliance dashboard").await;
    browser.press("Create the key").await;
    browser.expect_page("API keys").await;
    let key = browser
        .driver
        .find(By::Id("new-key"))
        .await
        .expect("the new key is shown")
        .text()
        .await
        .expect("text")
        .trim()
        .to_owned();
    crate::secret_scan::register_api_key(&key);
    let key_id = browser
        .driver
        .find(By::XPath(
            "//main//p[starts-with(normalize-space(), 'Key ')]/code",
        ))
        .await
        .expect("the key id")
        .text()
        .await
        .expect("text");
    let row = browser.texts("main tbody tr").await.join("\n");
    assert!(
        row.contains(&key_id) && row.contains("compliance dashboard") && row.contains("read"),
        "the list shows the new key: {row}"
    );
    assert!(!row.contains(&key), "the list never shows a secret");

    assert!(row.contains("never"), "not used yet: {row}");
    browser.screenshot("07-api-keys-new-key").await;

    assert_eq!(
        records(key.clone()).await,
        StatusCode::OK,
        "the new key works"
    );
    // Shown once: the list, reloaded, no longer has it, and it shows the use.
    browser.open(&server, "/api-keys").await;
    browser.expect_page("API keys").await;
    assert!(!browser.text().await.contains(&key));
    let row = browser
        .texts("main tbody tr")
        .await
        .into_iter()
        .find(|r| r.contains(&key_id))
        .expect("the key is listed");
    assert!(!row.contains("never"), "the last use is shown: {row}");
    assert!(browser.none(By::Id("new-key")).await);

    browser
        .driver
        .find(By::Css(format!(
            "main button[aria-label='Revoke key {key_id}']"
        )))
        .await
        .expect("the key's Revoke button")
        .click()
        .await
        .expect("click");
    browser.expect_page("API keys").await;
    let row = browser
        .texts("main tbody tr")
        .await
        .into_iter()
        .find(|r| r.contains(&key_id))
        .expect("the revoked key is still listed");
    assert!(row.contains("revoked"), "{row}");
    assert_eq!(
        records(key.clone()).await,
        StatusCode::UNAUTHORIZED,
        "a revoked key no longer authenticates"
    );

    browser.follow("Users").await;
    browser.expect_page("Users").await;
    browser.expect_text(ADMIN_EMAIL).await;
    browser.screenshot("08-users").await;

    browser.quit().await;
    server.stop().await;
}

/// Decodes the quoted-printable transfer encoding (soft line breaks and `=XX` escapes).
fn quoted_printable(text: &str) -> String {
    let joined = text.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && let Some(hex) = joined.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The reset link of the newest mail, once it has been written.
async fn reset_link(server: &PortalServer) -> String {
    eventually("the reset mail in the outbox", || async {
        let mail = quoted_printable(&server.latest_mail()?);
        mail.split_whitespace()
            .find(|w| w.contains("/reset-password?token="))
            .map(str::to_owned)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_reset_from_the_outbox_works_once_in_the_browser() {
    const NEW_PASSWORD: &str = "plum orchard quietly humming";
    let server = PortalServer::start(&Backend::Sqlite, false).await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    crate::secret_scan::register("browser test's new password", NEW_PASSWORD);

    browser.sign_in(&server, ADMIN_EMAIL, PASSWORD).await;
    browser.sign_out().await;
    browser.expect_text("You have signed out.").await;
    browser.follow("Forgot your password?").await;
    browser.expect_page("Forgot your password?").await;
    browser.fill("tenant", "acme-bank").await;
    browser.fill("email", ADMIN_EMAIL).await;
    browser.press("Send the link").await;
    browser.expect_page("Forgot your password?").await;
    browser.expect_text("a link is on its way").await;

    let link = reset_link(&server).await;
    assert!(
        link.starts_with(&format!("{}/reset-password?token=", server.base)),
        "the link is built from the public URL: {link}"
    );
    let token = link.split("token=").nth(1).expect("token");
    crate::secret_scan::register("browser test's reset token", token);
    browser.driver.goto(link.as_str()).await.expect("open link");
    browser.expect_page("Choose a new password").await;
    browser.screenshot("09-reset-password").await;
    // A refused password does not use up the link.
    browser.fill("password", NEW_PASSWORD).await;
    browser.fill("confirm", "something else entirely").await;
    browser.press("Set the password").await;
    browser.expect_page("Choose a new password").await;
    browser.expect_text("The two passwords differ.").await;
    browser.fill("password", NEW_PASSWORD).await;
    browser.fill("confirm", NEW_PASSWORD).await;
    browser.press("Set the password").await;
    browser.expect_page("Sign in").await;
    assert_eq!(browser.path().await, "/sign-in?done=password-changed");

    // The old password no longer works; the new one does.
    browser.fill("tenant", "acme-bank").await;
    browser.fill("email", ADMIN_EMAIL).await;
    browser.fill("password", PASSWORD).await;
    browser.press("Sign in").await;
    browser.expect_page("Sign in").await;
    assert!(
        browser
            .text()
            .await
            .contains("The organisation, email or password is not right")
    );
    browser.sign_in(&server, ADMIN_EMAIL, NEW_PASSWORD).await;
    browser.sign_out().await;

    // The link worked once.
    browser.driver.goto(link.as_str()).await.expect("open link");
    browser.expect_page("This link does not work").await;

    browser.quit().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regulator_cannot_reach_the_admin_pages_in_the_browser() {
    const REGULATOR_EMAIL: &str = "examiner@regulator.test";
    let server = PortalServer::start(&Backend::Sqlite, false).await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    let week_us = 7 * 24 * 3600 * 1_000_000;
    server
        .create_user(
            REGULATOR_EMAIL,
            PortalRole::Regulator,
            Some(server.store.now_us() + week_us),
        )
        .await;

    browser.sign_in(&server, REGULATOR_EMAIL, PASSWORD).await;
    let nav = browser.texts("nav a").await;
    assert!(
        nav.contains(&"Decisions".to_owned()) && nav.contains(&"Models".to_owned()),
        "the regulator reads: {nav:?}"
    );
    assert!(
        !nav.iter().any(|a| a == "API keys" || a == "Users"),
        "no admin links for a regulator: {nav:?}"
    );
    for path in ["/users", "/api-keys"] {
        browser.open(&server, path).await;
        browser.expect_page("Not allowed").await;
        assert!(
            !browser.text().await.contains(ADMIN_EMAIL),
            "{path} shows nothing of the admin page"
        );
    }
    browser.screenshot("10-regulator-not-allowed").await;
    // Read-only: the integrity page offers no check to start.
    browser.open(&server, "/integrity").await;
    browser.expect_page("Integrity checks").await;
    assert!(
        browser
            .none(By::XPath(
                "//main//button[normalize-space()='Start a full check']"
            ))
            .await,
        "a regulator cannot start a check"
    );

    browser.quit().await;
    server.stop().await;
}

/// The tenant's `erasure` records' sequence numbers.
async fn erasure_seqs(server: &PortalServer) -> Vec<u64> {
    server
        .store
        .records(
            &server.tenant,
            ledger::types::Sequence::new(0).expect("seq"),
            1000,
        )
        .await
        .expect("read the ledger")
        .iter()
        .filter(|r| r.event_type.as_str() == "erasure")
        .map(|r| r.seq.get())
        .collect()
}

/// Opens the Subjects page from the navigation and finds `subject` through the search form.
async fn find_subject(browser: &Browser, subject: &str) {
    browser.follow("Subjects").await;
    browser.expect_page("Subjects").await;
    browser.fill("subject_ref", subject).await;
    browser.press("Find").await;
    browser.expect_page(&format!("Subject {subject}")).await;
}

/// The rows' erasable-field entries (`email — stored`, `email — erased by #7`).
async fn field_states(browser: &Browser) -> Vec<String> {
    browser.texts("main tbody tr ul.fields li").await
}

/// A server with one decision about `subject` holding the erasable [`PERSONAL_FIELDS`], and a
/// browser signed in as a new `role` user `email` on that subject's page, where both fields are
/// listed as stored and no value is shown. Returns the decision's seq too; `None` when no
/// browser runs here.
async fn on_subject_page(
    role: PortalRole,
    email: &str,
    subject: &str,
) -> Option<(PortalServer, Browser, u64)> {
    let server = PortalServer::start(&Backend::Sqlite, false).await;
    let browser = Browser::start().await?;
    server.create_user(email, role, None).await;
    let tenant = server.tenant.clone();
    let decision = server.append_personal_decision(&tenant, subject).await;
    browser.sign_in(&server, email, PASSWORD).await;
    find_subject(&browser, subject).await;
    assert_eq!(
        field_states(&browser).await,
        ["email — stored", "full_name — stored"],
        "both fields are stored"
    );
    let text = browser.text().await;
    for (field, value) in PERSONAL_FIELDS {
        assert!(!text.contains(value), "the value of {field} is not shown");
    }
    Some((server, browser, decision))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compliance_officer_erases_a_field_with_a_typed_confirmation_in_the_browser() {
    const SUBJECT: &str = "cust-001";
    let Some((server, browser, decision)) =
        on_subject_page(PortalRole::Compliance, "officer@acme.test", SUBJECT).await
    else {
        return;
    };
    let tenant = server.tenant.clone();
    browser.screenshot("11-subject").await;

    // Only the email, for withdrawn consent; the confirmation mistyped first.
    browser
        .click("main input[name='scope'][value='fields']")
        .await;
    browser
        .click("main input[name='field'][value='email']")
        .await;
    browser
        .click(&format!(
            "main select[name='legal_basis'] option[value=\"{}\"]",
            LEGAL_BASES[1]
        ))
        .await;
    browser
        .fill("reason", "Consent withdrawn by letter of 2 December")
        .await;
    browser.fill("confirm", "cust-01").await;
    browser.press("Erase").await;
    browser.expect_page(&format!("Subject {SUBJECT}")).await;
    // The answer has the same heading as the form: wait for what it says.
    browser.expect_text(CONFIRMATION_MISMATCH).await;
    assert_eq!(
        server.stored_fields(&tenant, decision).await,
        ["email", "full_name"],
        "nothing erased"
    );
    assert!(erasure_seqs(&server).await.is_empty(), "no erasure record");
    browser.screenshot("12-subject-confirmation-mismatch").await;

    // The form kept the choices; the confirmation typed right this time.
    browser.fill("confirm", SUBJECT).await;
    browser.press("Erase").await;
    browser.expect_page(&format!("Subject {SUBJECT}")).await;
    browser.expect_text("Erased 1 stored value").await;
    let erasures = erasure_seqs(&server).await;
    assert_eq!(erasures.len(), 1, "one erasure record");
    let erasure = erasures[0];
    let text = browser.text().await;
    assert!(
        text.contains(&format!(
            "Erased 1 stored value: erasure record #{erasure}."
        )),
        "the result: {text}"
    );
    assert_eq!(
        field_states(&browser).await,
        [
            format!("email — erased by #{erasure}"),
            "full_name — stored".to_owned()
        ]
    );
    assert_eq!(
        server.stored_fields(&tenant, decision).await,
        ["full_name"],
        "the email is gone from the store"
    );
    browser.screenshot("13-subject-erased").await;

    browser.quit().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_reads_the_subjects_page_without_the_erase_form_and_a_forged_erasure_is_refused()
{
    const SUBJECT: &str = "cust-002";
    let Some((server, browser, decision)) =
        on_subject_page(PortalRole::Auditor, "auditor@acme.test", SUBJECT).await
    else {
        return;
    };
    let tenant = server.tenant.clone();
    assert!(
        browser
            .none(By::Css(
                "form[action='/subjects/erase'], main [name='confirm']"
            ))
            .await,
        "no erase form for an auditor"
    );
    browser.screenshot("14-subject-auditor").await;

    // The same form, forged with the session's own token: the server refuses the role.
    let csrf = browser
        .driver
        .find(By::Css("header input[name='csrf']"))
        .await
        .expect("the session's token")
        .attr("value")
        .await
        .expect("value")
        .expect("a token");
    let session = browser
        .driver
        .get_named_cookie(auditex::portal::SESSION_COOKIE)
        .await
        .expect("the session cookie")
        .value;
    crate::secret_scan::register("browser test's auditor session", &session);
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(server.pem.as_bytes()).expect("cert")])
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("csrf", csrf.as_str()),
            ("subject_ref", SUBJECT),
            ("scope", "subject"),
            ("legal_basis", LEGAL_BASES[0]),
            ("reason", "forged"),
            ("confirm", SUBJECT),
        ])
        .finish();
    let forged = client
        .post(server.url("/subjects/erase"))
        .header(
            reqwest::header::COOKIE,
            format!("{}={session}", auditex::portal::SESSION_COOKIE),
        )
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body)
        .send()
        .await
        .expect("the forged form is answered");
    assert_eq!(
        forged.status(),
        StatusCode::FORBIDDEN,
        "an auditor may not erase"
    );
    let text = forged.text().await.expect("body");
    assert!(text.contains("Your role does not give access"), "{text}");

    // Submitted by the browser itself, the forged form gets the refusal page.
    browser
        .driver
        .execute(
            r#"
            const form = document.createElement('form');
            form.method = 'post';
            form.action = '/subjects/erase';
            const add = (name, value) => {
                const input = document.createElement('input');
                input.type = 'hidden';
                input.name = name;
                input.value = value;
                form.appendChild(input);
            };
            add('csrf', document.querySelector("header input[name='csrf']").value);
            add('subject_ref', arguments[0]);
            add('scope', 'subject');
            add('legal_basis', 'other');
            add('legal_basis_other', 'forged');
            add('reason', 'forged');
            add('confirm', arguments[0]);
            document.body.appendChild(form);
            form.submit();
            "#,
            vec![json!(SUBJECT)],
        )
        .await
        .expect("the forged form is submitted");
    browser.expect_page("Not allowed").await;
    assert_eq!(
        server.stored_fields(&tenant, decision).await,
        ["email", "full_name"],
        "nothing erased"
    );
    assert!(erasure_seqs(&server).await.is_empty(), "no erasure record");

    browser.quit().await;
    server.stop().await;
}

/// Types `value` into the field `name` of the form posting to `action`.
async fn fill_form(browser: &Browser, action: &str, name: &str, value: &str) {
    let field = browser
        .driver
        .find(By::Css(format!(
            "main form[action='{action}'] [name='{name}']"
        )))
        .await
        .unwrap_or_else(|e| panic!("field {name} of {action}: {e}"));
    field.clear().await.expect("clear");
    field.send_keys(value).await.expect("type");
}

/// Fills the erase form for the whole `subject` and sends it.
async fn erase_whole_subject(browser: &Browser, subject: &str) {
    browser
        .click("main input[name='scope'][value='subject']")
        .await;
    browser
        .click(&format!(
            "main select[name='legal_basis'] option[value=\"{}\"]",
            LEGAL_BASES[1]
        ))
        .await;
    fill_form(browser, "/subjects/erase", "reason", "Consent withdrawn").await;
    fill_form(browser, "/subjects/erase", "confirm", subject).await;
    browser.press("Erase").await;
    browser.expect_page(&format!("Subject {subject}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compliance_officers_hold_refuses_an_erasure_in_the_browser_until_it_is_lifted() {
    const SUBJECT: &str = "cust-003";
    let Some((server, browser, decision)) =
        on_subject_page(PortalRole::Compliance, "officer@acme.test", SUBJECT).await
    else {
        return;
    };
    let tenant = server.tenant.clone();
    fill_form(
        &browser,
        "/subjects/hold",
        "reason",
        "Litigation pending before the district court",
    )
    .await;
    fill_form(&browser, "/subjects/hold", "reference", "Case 2026-118").await;
    browser.press("Place hold").await;
    browser.expect_page(&format!("Subject {SUBJECT}")).await;
    // The answer has the same heading as the form: wait for what it says.
    browser.expect_text(" placed.").await;
    let text = browser.text().await;
    let hold = text
        .split("Legal hold #")
        .nth(1)
        .and_then(|rest| rest.split(" placed.").next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("the hold is placed: {text}"));
    assert!(text.contains("Reference: Case 2026-118"), "{text}");
    browser.screenshot("15-subject-held").await;

    erase_whole_subject(&browser, SUBJECT).await;
    browser.expect_text("Not erased:").await;
    let text = browser.text().await;
    assert!(
        text.contains(&format!(
            "Not erased: what the request would erase is under legal hold {hold} (Litigation pending before the district court)."
        )),
        "the refusal names the hold: {text}"
    );
    assert_eq!(
        server.stored_fields(&tenant, decision).await,
        ["email", "full_name"],
        "nothing erased"
    );
    assert!(erasure_seqs(&server).await.is_empty(), "no erasure record");
    browser.screenshot("16-subject-held-erasure-refused").await;

    fill_form(
        &browser,
        "/subjects/hold/lift",
        "reason",
        "The court dismissed the case",
    )
    .await;
    browser.press(&format!("Lift hold #{hold}")).await;
    browser.expect_page(&format!("Subject {SUBJECT}")).await;
    browser.expect_text(" lifted").await;
    let text = browser.text().await;
    assert!(
        text.contains(&format!("Legal hold #{hold} lifted")),
        "{text}"
    );
    assert!(text.contains("No legal hold is in force for this subject."));

    erase_whole_subject(&browser, SUBJECT).await;
    browser.expect_text("Erased 2 stored values").await;
    let erasures = erasure_seqs(&server).await;
    assert_eq!(erasures.len(), 1, "one erasure record");
    let text = browser.text().await;
    assert!(
        text.contains(&format!(
            "Erased 2 stored values: erasure record #{}.",
            erasures[0]
        )),
        "{text}"
    );
    assert!(server.stored_fields(&tenant, decision).await.is_empty());
    browser.screenshot("17-subject-erased-after-lift").await;

    browser.quit().await;
    server.stop().await;
}

mod oversight;
