//! The compliance portal's authentication rules (issue 6) over HTTPS, against the real server on
//! both backends: cookie flags and security headers, session rotation, idle and absolute expiry,
//! sessions ended by a password change or a disabled account, CSRF on every form, sign-in
//! throttling per account and per address, the password-reset link's life, roles and tenants,
//! the audit trail in the ledger, and session-key rotation.
//!
//! The client follows no redirect and keeps no cookie jar of its own: [`Browser`] stores what
//! `Set-Cookie` says and sends it back in a `Cookie` header, so that tests see exactly what the
//! server set. Time-based rules run on the manual clock ([`PortalServer::advance`]); no test
//! asserts how long anything took. Every password, session cookie, reset token and API key a
//! test creates or sees is registered with the secret-log scan.

use std::collections::BTreeMap;
use std::time::Duration;

use auditex::auth::Role;
use auditex::http::{HttpConfig, TlsMode};
use auditex::portal::handlers::SIGN_IN_BURST;
use auditex::portal::handlers::subjects::{CONFIRMATION_MISMATCH, LEGAL_BASES};
use auditex::portal::security::{
    KeyRing, hash_password, random_token, retire_key_file, rotate_key_file, token_hash,
};
use auditex::portal::{PRE_SESSION_COOKIE, PortalConfig, SESSION_COOKIE};
use auditex::server::Application;
use auditex::store::Store;
use auditex::store::users::{PortalRole, User};
use ledger::types::{EventId, TenantId};
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};
use serde_json::Value;

use crate::portal_support::{ADMIN_EMAIL, PASSWORD, PERSONAL_FIELDS, PortalServer};
use crate::secret_scan;
use crate::support::{
    Backend, TestDb, backend_tests, decision_with_id, new_event_id, seq, tenant_id,
};

// The charts' pages (a child module: it shares the hand-driven `Browser`).
mod charts;
// What the forms and pages accept (a child module for the same reason).
mod input;

/// A password that passes the policy but is not the account's.
const WRONG_PASSWORD: &str = "wrong horse battery staple";
/// The password tests change to.
const NEW_PASSWORD: &str = "maple quartz harbour lantern";
/// A compliance officer of the test tenant.
const OFFICER_EMAIL: &str = "officer@acme.test";
/// An auditor of the test tenant.
const AUDITOR_EMAIL: &str = "auditor@acme.test";
/// A regulator of the test tenant.
const REGULATOR_EMAIL: &str = "regulator@supervisor.test";
/// An email no account has.
const UNKNOWN_EMAIL: &str = "nobody@acme.test";
/// What every refused CSRF token answers.
const CSRF_REFUSED: &str = "Form expired";
/// What a refused role answers.
const ROLE_REFUSED: &str = "Your role does not give access";
/// What every failed sign-in answers.
const SIGN_IN_FAILED: &str = "The organisation, email or password is not right";
/// What an unusable reset link answers.
const LINK_INVALID: &str = "This link does not work";

/// Starts a server and registers the test passwords with the secret-log scan.
async fn start(backend: &Backend, manual_clock: bool) -> PortalServer {
    for password in [PASSWORD, WRONG_PASSWORD, NEW_PASSWORD] {
        secret_scan::register("portal test password", password);
    }
    PortalServer::start(backend, manual_clock).await
}

// ---------------------------------------------------------------- a browser, by hand

/// One response, read whole.
struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn location(&self) -> Option<&str> {
        self.header(header::LOCATION.as_str())
    }

    /// The whole `Set-Cookie` line for cookie `name`, if this response sets it.
    fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|line| line.split_once('=').is_some_and(|(n, _)| n.trim() == name))
            .map(str::to_owned)
    }

    /// `Retry-After`, in seconds.
    fn retry_after(&self) -> Option<u64> {
        self.header(header::RETRY_AFTER.as_str())
            .and_then(|v| v.parse().ok())
    }

    /// The value of the page's first hidden `csrf` input.
    #[track_caller]
    fn csrf(&self) -> String {
        hidden_input(&self.body, "csrf")
            .unwrap_or_else(|| panic!("the page ({}) has a CSRF field", self.status))
    }

    #[track_caller]
    fn assert_sign_in_redirect(&self, what: &str) {
        assert_eq!(
            (self.status, self.location()),
            (StatusCode::SEE_OTHER, Some("/sign-in")),
            "{what}: back to the sign-in page"
        );
    }

    #[track_caller]
    fn assert_status(&self, status: StatusCode, what: &str) {
        assert_eq!(self.status, status, "{what}");
    }
}

/// The request with an `application/x-www-form-urlencoded` body.
fn with_form(request: reqwest::RequestBuilder, form: &[(&str, &str)]) -> reqwest::RequestBuilder {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    request
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
}

/// The value of `<input … name="{name}" value="…">`.
fn hidden_input(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_owned())
}

/// The attributes of a `Set-Cookie` line after `name=value`, lower case.
fn cookie_attributes(line: &str) -> Vec<String> {
    line.split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect()
}

/// An HTTPS client that keeps the cookies it is given and nothing else.
struct Browser {
    client: reqwest::Client,
    base: String,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    fn new(server: &PortalServer) -> Browser {
        Browser::at(&server.base, &server.pem)
    }

    fn at(base: &str, pem: &str) -> Browser {
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).expect("cert")])
            .http1_only()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        Browser {
            client,
            base: base.to_owned(),
            cookies: BTreeMap::new(),
        }
    }

    /// A browser that holds this session cookie (a copy, a replay or a forgery).
    fn with_session(server: &PortalServer, cookie: &str) -> Browser {
        let mut browser = Browser::new(server);
        browser
            .cookies
            .insert(SESSION_COOKIE.to_owned(), cookie.to_owned());
        browser
    }

    fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.get(name).map(String::as_str)
    }

    fn session(&self) -> Option<&str> {
        self.cookie(SESSION_COOKIE)
    }

    async fn get(&mut self, path: &str) -> Page {
        let request = self.client.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let request = self.client.post(format!("{}{path}", self.base));
        self.send(with_form(request, form)).await
    }

    /// Sends with this browser's cookies and remembers what the response sets or removes.
    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let request = if self.cookies.is_empty() {
            request
        } else {
            let cookies: Vec<String> = self
                .cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            request.header(header::COOKIE, cookies.join("; "))
        };
        let response = request.send().await.expect("the request is answered");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.expect("the body is read");
        for line in headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
            let Some((name, value)) = line.split(';').next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let removed = cookie_attributes(line).iter().any(|a| a == "max-age=0");
            if removed || value.is_empty() {
                self.cookies.remove(name.trim());
            } else {
                self.cookies
                    .insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
        Page {
            status,
            headers,
            body,
        }
    }

    /// Opens the sign-in form and submits it for the test tenant.
    async fn sign_in(&mut self, email: &str, password: &str) -> Page {
        self.sign_in_to("acme-bank", email, password).await
    }

    /// Opens the sign-in form and submits it for `tenant`.
    async fn sign_in_to(&mut self, tenant: &str, email: &str, password: &str) -> Page {
        let form = self.get("/sign-in").await;
        form.assert_status(StatusCode::OK, "the sign-in page");
        let csrf = form.csrf();
        self.post(
            "/sign-in",
            &[
                ("csrf", &csrf),
                ("tenant", tenant),
                ("email", email),
                ("password", password),
            ],
        )
        .await
    }

    /// Signs in, which must work; returns the session cookie (registered as a secret).
    async fn sign_in_ok(&mut self, email: &str, password: &str) -> String {
        let page = self.sign_in(email, password).await;
        assert_eq!(
            (page.status, page.location()),
            (StatusCode::SEE_OTHER, Some("/")),
            "{email} signs in"
        );
        let cookie = self
            .session()
            .expect("a sign-in sets the session cookie")
            .to_owned();
        register_session_cookie(&cookie);
        cookie
    }

    /// A new browser signed in as `email` with [`PASSWORD`].
    async fn signed_in(server: &PortalServer, email: &str) -> Browser {
        let mut browser = Browser::new(server);
        browser.sign_in_ok(email, PASSWORD).await;
        browser
    }

    /// The CSRF token of this browser's session, from one of its pages.
    async fn csrf(&mut self) -> String {
        let page = self.get("/account/sessions").await;
        page.assert_status(StatusCode::OK, "a signed-in page");
        page.csrf()
    }
}

fn register_session_cookie(cookie: &str) {
    secret_scan::register("portal session cookie", cookie);
    if let Some((id, _)) = cookie.split_once('.') {
        secret_scan::register("portal session id", id);
    }
}

// ---------------------------------------------------------------- fixtures

async fn user(server: &PortalServer, email: &str) -> User {
    server
        .store
        .user_by_email(&server.tenant, email)
        .await
        .expect("read the user")
        .expect("the user exists")
}

/// `(event type, action, target)` of the tenant's `access` and `administration` records, in
/// ledger order; each must name who acted (an email) as `actor`.
async fn audit_trail(store: &Store, tenant: &TenantId) -> Vec<(String, String, Option<String>)> {
    store
        .records(tenant, seq(0), 1000)
        .await
        .expect("read the ledger")
        .into_iter()
        .filter(|r| matches!(r.event_type.as_str(), "access" | "administration"))
        .map(|r| {
            let payload: Value = serde_json::from_str(r.payload.as_str()).expect("JSON payload");
            assert!(
                payload["actor"].as_str().is_some_and(|a| a.contains('@')),
                "every portal record names who acted: {payload}"
            );
            (
                r.event_type.as_str().to_owned(),
                payload["action"].as_str().unwrap_or_default().to_owned(),
                payload["target"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

async fn audited_actions(store: &Store, tenant: &TenantId) -> Vec<String> {
    audit_trail(store, tenant)
        .await
        .into_iter()
        .map(|(_, action, _)| action)
        .collect()
}

fn mail_count(server: &PortalServer) -> usize {
    std::fs::read_dir(&server.outbox).map_or(0, |entries| entries.count())
}

/// Waits until the outbox holds `count` messages (mail is sent by a background task) and returns
/// the newest.
async fn wait_for_mail(server: &PortalServer, count: usize) -> String {
    for _ in 0..300 {
        if mail_count(server) >= count
            && let Some(mail) = server.latest_mail()
        {
            return mail;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the outbox did not reach {count} message(s)");
}

/// Gives background mail tasks time to run, for checks that no mail was sent.
async fn let_mail_settle() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}

fn mail_recipient_is(mail: &str, email: &str) -> bool {
    mail.lines()
        .any(|l| l.to_ascii_lowercase().starts_with("to:") && l.contains(email))
}

/// The reset link in a mail (quoted-printable undone when the mail uses it).
fn reset_link(mail: &str) -> String {
    let text = if mail
        .to_ascii_lowercase()
        .contains("content-transfer-encoding: quoted-printable")
    {
        mail.replace("=\r\n", "")
            .replace("=\n", "")
            .replace("=3D", "=")
    } else {
        mail.to_owned()
    };
    text.lines()
        .map(str::trim)
        .find(|l| l.contains("/reset-password?token="))
        .expect("the mail holds a reset link")
        .to_owned()
}

fn reset_token(mail: &str) -> String {
    let link = reset_link(mail);
    let (_, rest) = link.split_once("token=").expect("a token parameter");
    let token: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert_eq!(token.len(), 43, "a 256-bit token, base64url");
    secret_scan::register("password-reset token", &token);
    token
}

fn reset_path(token: &str) -> String {
    format!("/reset-password?token={token}")
}

/// Asks for a reset link for `email` from a fresh browser and returns its token.
async fn request_reset(server: &PortalServer, email: &str) -> String {
    let before = mail_count(server);
    let mut browser = Browser::new(server);
    let csrf = browser.get("/forgot-password").await.csrf();
    browser
        .post(
            "/forgot-password",
            &[("csrf", &csrf), ("tenant", "acme-bank"), ("email", email)],
        )
        .await
        .assert_status(StatusCode::OK, "the forgot-password form");
    let mail = wait_for_mail(server, before + 1).await;
    assert!(mail_recipient_is(&mail, email), "the link goes to {email}");
    reset_token(&mail)
}

/// Submits the reset form for `token` from `browser` (which needs a pre-session cookie).
async fn submit_reset(browser: &mut Browser, token: &str, password: &str, confirm: &str) -> Page {
    let csrf = browser.get("/sign-in").await.csrf();
    browser
        .post(
            "/reset-password",
            &[
                ("csrf", &csrf),
                ("token", token),
                ("password", password),
                ("confirm", confirm),
            ],
        )
        .await
}

/// Changes the password of `browser`'s user from [`PASSWORD`] to `new`.
async fn change_password(browser: &mut Browser, new: &str) -> Page {
    let csrf = browser.csrf().await;
    browser
        .post(
            "/account/password",
            &[
                ("csrf", &csrf),
                ("current", PASSWORD),
                ("password", new),
                ("confirm", new),
            ],
        )
        .await
}

/// Appends a decision to `tenant` and waits until the decisions view shows it.
async fn append_decision(store: &Store, tenant: &TenantId) -> String {
    let event_id = new_event_id();
    store
        .append(tenant, vec![decision_with_id(&event_id, "approve")])
        .await
        .expect("append");
    let id = EventId::parse(&event_id).expect("event id");
    for _ in 0..600 {
        if matches!(store.decision_view(tenant, id).await, Ok(Some(_))) {
            return event_id;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the decisions view did not catch up");
}

// ---------------------------------------------------------------- the tests

backend_tests!(
    the_session_cookie_is_host_only_secure_http_only_and_strict,
    portal_pages_send_the_security_headers,
    every_sign_in_starts_a_new_session_and_sign_out_ends_only_that_one,
    a_forged_or_tampered_session_cookie_leads_to_sign_in,
    an_idle_session_ends_after_thirty_minutes,
    activity_keeps_a_session_alive_but_never_past_twelve_hours,
    changing_the_password_ends_every_session_of_the_user,
    disabling_a_user_ends_their_sessions_and_refuses_their_sign_in,
    every_signed_in_form_refuses_a_missing_wrong_or_foreign_csrf_token,
    the_anonymous_forms_refuse_a_missing_wrong_or_foreign_csrf_token,
    an_account_is_backed_off_after_five_failures_even_for_the_right_password,
    unknown_emails_and_wrong_passwords_fail_and_back_off_identically,
    too_many_attempts_from_one_address_get_429_with_retry_after,
    forgot_password_answers_alike_and_mails_a_public_url_link_to_known_accounts_only,
    a_reset_link_expires_after_two_hours,
    a_reset_link_works_once_and_the_user_must_then_sign_in,
    a_newer_reset_link_replaces_the_older_one,
    a_password_change_invalidates_outstanding_reset_links,
    disabling_a_user_invalidates_their_reset_links,
    a_refused_new_password_does_not_use_up_the_reset_link,
    a_regulator_only_reads_and_cannot_sign_in_after_its_access_ends,
    a_compliance_officer_cannot_administer_users_or_keys,
    another_tenants_admin_sees_none_of_this_tenants_decisions_keys_or_users,
    portal_actions_are_recorded_in_the_tenants_ledger,
    an_administrative_action_whose_record_the_ledger_refuses_is_not_done,
    nothing_is_shown_or_signed_in_when_the_ledger_refuses_the_access_record,
    an_action_that_fails_after_its_record_is_followed_by_a_record_saying_so,
    the_portal_refuses_the_seventh_check_of_an_hour_without_recording_it,
    rotating_the_session_keys_signs_no_one_out_and_retiring_one_ends_only_its_sessions,
    the_dashboard_shows_how_the_tenants_witnesses_are_doing,
    an_administrator_sets_a_keys_rate_and_bad_rates_or_other_roles_change_nothing,
);

/// An administrator sets a key's own rate on the API keys page and back to the default; each
/// change is an `administration` record naming the key and the rate. A rate out of range or not
/// a number is a 400 that changes and records nothing; a compliance officer gets 403; a key id
/// the tenant does not have, 404.
async fn an_administrator_sets_a_keys_rate_and_bad_rates_or_other_roles_change_nothing(
    backend: Backend,
) {
    let server = start(&backend, false).await;
    let store = &server.store;
    let tenant = &server.tenant;
    server
        .create_user(OFFICER_EMAIL, PortalRole::Compliance, None)
        .await;
    let key = store
        .create_api_key(tenant, Role::Ingest, "pipeline", None)
        .await
        .expect("key");
    secret_scan::register_api_key(&key.reveal());
    let key_id = key.id().to_string();
    let rate_of = || async { store.api_keys(tenant).await.expect("keys")[0].rate_per_second };
    let admin_records = |store, tenant| async move {
        audit_trail(store, tenant)
            .await
            .into_iter()
            .filter(|(kind, _, _)| kind == "administration")
            .collect::<Vec<_>>()
    };
    let mut admin = Browser::signed_in(&server, ADMIN_EMAIL).await;
    let csrf = admin.csrf().await;
    let path = format!("/api-keys/{key_id}/rate");
    admin
        .post(&path, &[("csrf", &csrf), ("rate", "3000")])
        .await
        .assert_status(StatusCode::SEE_OTHER, "a rate");
    assert_eq!(rate_of().await, Some(3000));
    let page = admin.get("/api-keys").await;
    assert!(
        page.body.contains("value=\"3000\""),
        "the page shows the rate"
    );
    let before = admin_records(store, tenant).await;
    for bad in ["0", "100001", "fast", "-5", "1.5"] {
        let page = admin.post(&path, &[("csrf", &csrf), ("rate", bad)]).await;
        page.assert_status(StatusCode::BAD_REQUEST, &format!("rate {bad}"));
        assert!(page.body.contains("from 1 to 100000"), "{}", page.body);
    }
    assert_eq!(rate_of().await, Some(3000), "unchanged");
    assert_eq!(
        admin_records(store, tenant).await,
        before,
        "nothing recorded"
    );
    admin
        .post(
            "/api-keys/0123456789abcdef/rate",
            &[("csrf", &csrf), ("rate", "5")],
        )
        .await
        .assert_status(StatusCode::NOT_FOUND, "a key the tenant does not have");
    admin
        .post(&path, &[("csrf", &csrf), ("rate", "")])
        .await
        .assert_status(StatusCode::SEE_OTHER, "the default");
    assert_eq!(rate_of().await, None);
    let records = admin_records(store, tenant).await;
    let rate_records: Vec<_> = records
        .iter()
        .filter(|(_, action, _)| action == "api_key_rate_set")
        .map(|(_, _, target)| target.clone())
        .collect();
    assert_eq!(
        rate_records,
        [
            Some(format!("{key_id} 3000/s")),
            Some(format!("{key_id} default"))
        ]
    );

    let mut officer = Browser::signed_in(&server, OFFICER_EMAIL).await;
    let csrf = officer.csrf().await;
    officer
        .post(&path, &[("csrf", &csrf), ("rate", "5")])
        .await
        .assert_status(StatusCode::FORBIDDEN, "a compliance officer");
    assert_eq!(rate_of().await, None);
}

/// The dashboard lists the tenant's witnesses, and says when one fails (here: nobody listens at
/// its address), while checkpoints go on being published.
async fn the_dashboard_shows_how_the_tenants_witnesses_are_doing(backend: Backend) {
    let server = start(&backend, false).await;
    let mut browser = Browser::signed_in(&server, ADMIN_EMAIL).await;
    let page = browser.get("/").await;
    assert!(!page.body.contains("Witnesses"), "no witnesses, no section");
    let witness = ledger::cosignature::WitnessKey::new(
        "witness.example.com/dashboard",
        ed25519_dalek::SigningKey::from_bytes(&[5; 32]).verifying_key(),
    )
    .expect("key");
    server
        .store
        .add_witness(
            &server.tenant,
            &witness.to_string(),
            "http://127.0.0.1:9",
            None,
        )
        .await
        .expect("witness");
    crate::support::append_many(&server.store, &server.tenant, 3, 3).await;
    server.store.publish_checkpoints().await.expect("publish");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let page = browser.get("/").await;
        page.assert_status(StatusCode::OK, "the dashboard");
        assert!(page.body.contains("Witnesses"), "{}", page.body);
        assert!(page.body.contains("witness.example.com/dashboard"));
        if page.body.contains("failing: ") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the failing witness is not shown"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The checkpoint was published all the same.
    assert!(
        server
            .store
            .latest_checkpoint(&server.tenant)
            .await
            .expect("read")
            .is_some()
    );
    server.stop().await;
}

/// Asserts a `Set-Cookie` line has the `__Host-` prefix and its rules (`Secure`, `Path=/`, no
/// `Domain`), plus `HttpOnly` and `SameSite=Strict`.
#[track_caller]
fn assert_host_only_cookie(line: &str) {
    let name = line.split_once('=').map_or("", |(n, _)| n.trim());
    assert!(name.starts_with("__Host-"), "{name}: the __Host- prefix");
    let attributes = cookie_attributes(line);
    for wanted in ["secure", "httponly", "samesite=strict", "path=/"] {
        assert!(
            attributes.iter().any(|a| a == wanted),
            "{name} has {wanted}: {attributes:?}"
        );
    }
    assert!(
        !attributes.iter().any(|a| a.starts_with("domain")),
        "{name} has no Domain: {attributes:?}"
    );
}

async fn the_session_cookie_is_host_only_secure_http_only_and_strict(backend: Backend) {
    let server = start(&backend, false).await;
    let mut browser = Browser::new(&server);

    let form = browser.get("/sign-in").await;
    let pre = form
        .set_cookie(PRE_SESSION_COOKIE)
        .expect("the sign-in form is bound to a pre-session cookie");
    assert_host_only_cookie(&pre);
    let pre_value = browser.cookie(PRE_SESSION_COOKIE).expect("kept").to_owned();

    let signed_in = browser
        .post(
            "/sign-in",
            &[
                ("csrf", &form.csrf()),
                ("tenant", "acme-bank"),
                ("email", ADMIN_EMAIL),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(
        (signed_in.status, signed_in.location()),
        (StatusCode::SEE_OTHER, Some("/"))
    );
    let line = signed_in
        .set_cookie(SESSION_COOKIE)
        .expect("sign-in sets the session cookie");
    assert_host_only_cookie(&line);
    let cookie = browser.session().expect("kept").to_owned();
    register_session_cookie(&cookie);

    let id = server
        .config
        .keys
        .open_session(&cookie)
        .expect("the cookie holds a session id signed by the server's key");
    assert_ne!(
        id, pre_value,
        "the session id is new, not the pre-session value"
    );
    let stored = server
        .store
        .session(&token_hash(&id))
        .await
        .expect("read")
        .expect("the session is kept on the server");
    assert_eq!(stored.user_id, user(&server, ADMIN_EMAIL).await.user_id);
    assert!(
        server
            .store
            .session(id.as_bytes())
            .await
            .expect("read")
            .is_none(),
        "the server stores a hash of the id, not the id"
    );

    let cleared = signed_in
        .set_cookie(PRE_SESSION_COOKIE)
        .expect("sign-in removes the pre-session cookie");
    assert!(cookie_attributes(&cleared).iter().any(|a| a == "max-age=0"));
    assert_eq!(browser.cookie(PRE_SESSION_COOKIE), None);

    // Signing out removes the cookie with the same flags.
    let csrf = browser.csrf().await;
    let out = browser.post("/sign-out", &[("csrf", &csrf)]).await;
    let removal = out
        .set_cookie(SESSION_COOKIE)
        .expect("sign-out removes the cookie");
    assert_host_only_cookie(&removal);
    assert!(cookie_attributes(&removal).iter().any(|a| a == "max-age=0"));
    server.stop().await;
}

/// Asserts the portal's security headers.
#[track_caller]
fn assert_security_headers(page: &Page, what: &str) {
    let csp = page
        .header("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: a Content-Security-Policy"));
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{what}: no unsafe CSP sources: {csp}"
    );
    let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
    assert!(
        directives.contains(&"frame-ancestors 'none'"),
        "{what}: no framing: {csp}"
    );
    assert!(
        directives.iter().any(|d| d.starts_with("default-src")),
        "{what}: a default source: {csp}"
    );
    assert_eq!(
        page.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    let referrer = page
        .header("referrer-policy")
        .unwrap_or_else(|| panic!("{what}: a Referrer-Policy"));
    // Reset links carry their token in the URL: no policy that sends paths elsewhere.
    assert!(
        [
            "no-referrer",
            "same-origin",
            "strict-origin",
            "strict-origin-when-cross-origin"
        ]
        .contains(&referrer),
        "{what}: Referrer-Policy {referrer}"
    );
    let hsts = page
        .header("strict-transport-security")
        .unwrap_or_else(|| panic!("{what}: HSTS"));
    let max_age: u64 = hsts
        .split(';')
        .find_map(|d| d.trim().strip_prefix("max-age="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{what}: HSTS max-age: {hsts}"));
    assert!(max_age >= 15_724_800, "{what}: HSTS for six months or more");
    assert!(
        page.header("cache-control")
            .is_some_and(|c| c.contains("no-store")),
        "{what}: not cached"
    );
}

/// Asserts a page works under a CSP without `unsafe-inline`: no inline script or style.
#[track_caller]
fn assert_no_inline_code(page: &Page, what: &str) {
    let body = page.body.to_ascii_lowercase();
    for inline in [
        "<script",
        "<style",
        " style=",
        " onclick=",
        " onload=",
        "javascript:",
    ] {
        assert!(!body.contains(inline), "{what}: no {inline}");
    }
}

async fn portal_pages_send_the_security_headers(backend: Backend) {
    let server = start(&backend, false).await;
    server
        .create_user(OFFICER_EMAIL, PortalRole::Compliance, None)
        .await;
    let mut anonymous = Browser::new(&server);
    let mut admin = Browser::signed_in(&server, ADMIN_EMAIL).await;
    let mut officer = Browser::signed_in(&server, OFFICER_EMAIL).await;

    let sign_in = anonymous.get("/sign-in").await;
    sign_in.assert_status(StatusCode::OK, "the sign-in page");
    assert_security_headers(&sign_in, "the sign-in page");
    assert_no_inline_code(&sign_in, "the sign-in page");

    let reset = anonymous.get(&reset_path(&random_token())).await;
    reset.assert_status(StatusCode::BAD_REQUEST, "an unknown reset link");
    assert_security_headers(&reset, "the reset page");

    let redirect = anonymous.get("/").await;
    redirect.assert_sign_in_redirect("an anonymous visit");
    assert_security_headers(&redirect, "a redirect to sign-in");

    for path in [
        "/",
        "/decisions",
        "/models",
        "/integrity",
        "/api-keys",
        "/users",
    ] {
        let page = admin.get(path).await;
        page.assert_status(StatusCode::OK, path);
        assert_security_headers(&page, path);
        assert_no_inline_code(&page, path);
        assert_eq!(
            page.header("x-frame-options"),
            Some("DENY"),
            "{path}: no framing in older browsers either"
        );
    }

    let refused = officer.get("/users").await;
    refused.assert_status(StatusCode::FORBIDDEN, "a compliance officer on /users");
    assert_security_headers(&refused, "a refusal");

    let csrf_refused = admin.post("/integrity/start", &[("csrf", "x.y")]).await;
    csrf_refused.assert_status(StatusCode::FORBIDDEN, "a forged form");
    assert_security_headers(&csrf_refused, "a CSRF refusal");
    server.stop().await;
}

async fn every_sign_in_starts_a_new_session_and_sign_out_ends_only_that_one(backend: Backend) {
    let server = start(&backend, false).await;
    let keys = &server.config.keys;
    let admin_id = user(&server, ADMIN_EMAIL).await.user_id;
    let mut browser = Browser::new(&server);

    let first = browser.sign_in_ok(ADMIN_EMAIL, PASSWORD).await;
    // Signing in again while signed in (the old cookie is sent along) gives a new session.
    let second = browser.sign_in_ok(ADMIN_EMAIL, PASSWORD).await;
    assert_ne!(first, second, "a new cookie at every sign-in");
    let (first_id, second_id) = (
        keys.open_session(&first).expect("valid"),
        keys.open_session(&second).expect("valid"),
    );
    assert_ne!(first_id, second_id, "a new session id at every sign-in");
    let live = server
        .store
        .live_sessions(&server.tenant, &admin_id, server.store.now_us())
        .await
        .expect("sessions");
    assert_eq!(live.len(), 2, "two sessions");

    // The older session works until it is signed out.
    let mut old = Browser::with_session(&server, &first);
    old.get("/account/sessions")
        .await
        .assert_status(StatusCode::OK, "the earlier session still works");
    let old_csrf = old.csrf().await;
    let out = old.post("/sign-out", &[("csrf", &old_csrf)]).await;
    assert_eq!(
        (out.status, out.location()),
        (StatusCode::SEE_OTHER, Some("/sign-in?done=signed-out"))
    );
    assert_eq!(old.session(), None, "the browser drops the cookie");
    let ended = server
        .store
        .session(&token_hash(&first_id))
        .await
        .expect("read")
        .expect("kept");
    assert!(ended.ended_at_us.is_some(), "ended on the server");

    // A replay of the signed-out cookie is not a session, for pages and for forms.
    let mut replay = Browser::with_session(&server, &first);
    replay
        .get("/")
        .await
        .assert_sign_in_redirect("a signed-out cookie");
    replay
        .post("/account/sessions/end-others", &[("csrf", &old_csrf)])
        .await
        .assert_sign_in_redirect("a signed-out cookie posting a form");

    // Only that session ended.
    browser
        .get("/account/sessions")
        .await
        .assert_status(StatusCode::OK, "the other session lives on");
    server.stop().await;
}

/// `text` with its character at `at` replaced by a different one.
fn flip_char(text: &str, at: usize) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

async fn a_forged_or_tampered_session_cookie_leads_to_sign_in(backend: Backend) {
    let server = start(&backend, false).await;
    let mut browser = Browser::new(&server);
    let good = browser.sign_in_ok(ADMIN_EMAIL, PASSWORD).await;
    let id = server.config.keys.open_session(&good).expect("valid");
    let parts: Vec<&str> = good.split('.').collect();
    assert_eq!(parts.len(), 3, "id.key.mac");
    let (key_id, mac) = (parts[1], parts[2]);

    let unknown_session = server.config.keys.sign_session(&random_token());
    let forgeries = [
        (
            "the id changed",
            format!("{}.{key_id}.{mac}", flip_char(&id, 5)),
        ),
        (
            "the MAC changed",
            format!("{id}.{key_id}.{}", flip_char(mac, 10)),
        ),
        (
            "another id under this MAC",
            format!("{}.{key_id}.{mac}", random_token()),
        ),
        ("an unknown key id", format!("{id}.ffffffff.{mac}")),
        ("no MAC", format!("{id}.{key_id}.")),
        ("the bare id", id.clone()),
        ("signed by another key", KeyRing::random().sign_session(&id)),
        ("a well-signed id of no session", unknown_session),
        ("an empty value", String::new()),
        ("garbage", "not-a-cookie".to_owned()),
    ];
    for (what, forged) in forgeries {
        let mut forger = Browser::with_session(&server, &forged);
        forger.get("/").await.assert_sign_in_redirect(what);
        forger
            .post("/account/sessions/end-others", &[("csrf", "x.y")])
            .await
            .assert_sign_in_redirect(what);
    }
    browser
        .get("/")
        .await
        .assert_status(StatusCode::OK, "the real cookie still works");
    server.stop().await;
}

async fn an_idle_session_ends_after_thirty_minutes(backend: Backend) {
    let server = start(&backend, true).await;
    let mut browser = Browser::signed_in(&server, ADMIN_EMAIL).await;
    let mut unused = Browser::signed_in(&server, ADMIN_EMAIL).await;

    server.advance(Duration::from_secs(29 * 60));
    browser
        .get("/account/sessions")
        .await
        .assert_status(StatusCode::OK, "29 idle minutes are within the limit");
    server.advance(Duration::from_secs(29 * 60));
    browser
        .get("/account/sessions")
        .await
        .assert_status(StatusCode::OK, "the last request restarted the idle time");
    unused
        .get("/account/sessions")
        .await
        .assert_sign_in_redirect("a session unused for 58 minutes");

    server.advance(Duration::from_secs(31 * 60));
    browser
        .get("/account/sessions")
        .await
        .assert_sign_in_redirect("a session idle for 31 minutes");
    Browser::new(&server)
        .sign_in_ok(ADMIN_EMAIL, PASSWORD)
        .await;
    server.stop().await;
}

async fn activity_keeps_a_session_alive_but_never_past_twelve_hours(backend: Backend) {
    let server = start(&backend, true).await;
    let mut browser = Browser::signed_in(&server, ADMIN_EMAIL).await;
    // 28 × 25 minutes = 11 h 40 min of steady use, never idle for 30 minutes.
    for step in 1..=28 {
        server.advance(Duration::from_secs(25 * 60));
        browser
            .get("/account/sessions")
            .await
            .assert_status(StatusCode::OK, &format!("active after {} min", step * 25));
    }
    server.advance(Duration::from_secs(19 * 60));
    browser
        .get("/account/sessions")
        .await
        .assert_status(StatusCode::OK, "11 h 59 min after sign-in");
    server.advance(Duration::from_secs(2 * 60));
    browser
        .get("/account/sessions")
        .await
        .assert_sign_in_redirect("12 h 1 min after sign-in, idle for only 2 minutes");
    server.stop().await;
}

async fn changing_the_password_ends_every_session_of_the_user(backend: Backend) {
    let server = start(&backend, false).await;
    server
        .create_user(OFFICER_EMAIL, PortalRole::Compliance, None)
        .await;
    let mut one = Browser::signed_in(&server, OFFICER_EMAIL).await;
    let mut two = Browser::signed_in(&server, OFFICER_EMAIL).await;
    let mut admin = Browser::signed_in(&server, ADMIN_EMAIL).await;
    let one_cookie = one.session().expect("signed in").to_owned();

    // A wrong current password changes nothing.
    let csrf = one.csrf().await;
    let refused = one
        .post(
            "/account/password",
            &[
                ("csrf", &csrf),
                ("current", WRONG_PASSWORD),
                ("password", NEW_PASSWORD),
                ("confirm", NEW_PASSWORD),
            ],
        )
        .await;
    refused.assert_status(StatusCode::UNPROCESSABLE_ENTITY, "a wrong current password");
    two.get("/")
        .await
        .assert_status(StatusCode::OK, "nothing ended");

    let changed = change_password(&mut one, NEW_PASSWORD).await;
    assert_eq!(
        (changed.status, changed.location()),
        (
            StatusCode::SEE_OTHER,
            Some("/sign-in?done=password-changed")
        )
    );
    assert_eq!(one.session(), None, "the cookie is removed");
    Browser::with_session(&server, &one_cookie)
        .get("/")
        .await
        .assert_sign_in_redirect("the session that changed the password");
    two.get("/")
        .await
        .assert_sign_in_redirect("the user's other session");
    admin
        .get("/")
        .await
        .assert_status(StatusCode::OK, "other users' sessions go on");
    let officer_id = user(&server, OFFICER_EMAIL).await.user_id;
    assert!(
        server
            .store
            .live_sessions(&server.tenant, &officer_id, server.store.now_us())
            .await
            .expect("sessions")
            .is_empty(),
        "no live session of the user is left"
    );

    let old = Browser::new(&server).sign_in(OFFICER_EMAIL, PASSWORD).await;
    old.assert_status(StatusCode::UNAUTHORIZED, "the old password");
    Browser::new(&server)
        .sign_in_ok(OFFICER_EMAIL, NEW_PASSWORD)
        .await;
    server.stop().await;
}

async fn disabling_a_user_ends_their_sessions_and_refuses_their_sign_in(backend: Backend) {
    let server = start(&backend, false).await;
    server
        .create_user(AUDITOR_EMAIL, PortalRole::Auditor, None)
        .await;
    let mut auditor = Browser::signed_in(&server, AUDITOR_EMAIL).await;
    let mut admin = Browser::signed_in(&server, ADMIN_EMAIL).await;
    auditor
        .get("/")
        .await
        .assert_status(StatusCode::OK, "signed in");

    let auditor_id = user(&server, AUDITOR_EMAIL).await.user_id;
    let csrf = admin.csrf().await;
    let done = admin
        .post(&format!("/users/{auditor_id}/disable"), &[("csrf", &csrf)])
        .await;
    assert_eq!(
        (done.status, done.location()),
        (StatusCode::SEE_OTHER, Some("/users"))
    );
    assert!(user(&server, AUDITOR_EMAIL).await.disabled_at_us.is_some());

    auditor
        .get("/")
        .await
        .assert_sign_in_redirect("a disabled user's session");
    assert!(
        server
            .store
            .live_sessions(&server.tenant, &auditor_id, server.store.now_us())
            .await
            .expect("sessions")
            .is_empty()
    );
    let mut again = Browser::new(&server);
    let refused = again.sign_in(AUDITOR_EMAIL, PASSWORD).await;
    refused.assert_status(StatusCode::UNAUTHORIZED, "a disabled user's right password");
    assert!(refused.body.contains(SIGN_IN_FAILED));
    assert_eq!(again.session(), None);
    server.stop().await;
}

/// A form's fields as `(name, value)`.
type FormFields<'a> = Vec<(&'a str, &'a str)>;

/// The portal's POST routes, read from the router in `handlers.rs`, so that a new form cannot
/// miss the CSRF test below.
fn post_routes_of_the_router() -> Vec<String> {
    let source = include_str!("../../src/portal/handlers.rs");
    let routes_fn = source
        .split("pub fn routes()")
        .nth(1)
        .and_then(|rest| rest.split("\n}").next())
        .expect("handlers.rs has `pub fn routes()`");
    let mut routes: Vec<String> = routes_fn
        .split(".route(")
        .skip(1)
        .filter(|route| route.contains("post("))
        .filter_map(|route| route.split('"').nth(1).map(str::to_owned))
        .collect();
    routes.sort();
    routes
}

async fn every_signed_in_form_refuses_a_missing_wrong_or_foreign_csrf_token(backend: Backend) {
    let server = start(&backend, false).await;
    let store = &server.store;
    let tenant = &server.tenant;
    server
        .create_user(OFFICER_EMAIL, PortalRole::Compliance, None)
        .await;
    let officer_id = user(&server, OFFICER_EMAIL).await.user_id;
    let admin_before = user(&server, ADMIN_EMAIL).await;
    let key = store
        .create_api_key(tenant, Role::Read, "csrf target", None)
        .await
        .expect("key");
    secret_scan::register_api_key(&key.reveal());
    let key_id = key.id().to_string();
    let (decision_id, proposal_id) = (new_event_id(), new_event_id());

    let mut admin = Browser::signed_in(&server, ADMIN_EMAIL).await;
    // A second session of the same user: its token must not work in the first.
    let mut other = Browser::signed_in(&server, ADMIN_EMAIL).await;
    let own = admin.csrf().await;
    let foreign = other.csrf().await;
    assert_ne!(own, foreign, "tokens are bound to their session");
    let (own_key, own_mac) = own.split_once('.').expect("key.mac");
    let tampered = format!("{own_key}.{}", flip_char(own_mac, 10));

    // (route as the router names it, the path to post to, the form's other fields)
    let signed_in_forms: Vec<(&str, String, FormFields)> = vec![
        ("/sign-out", "/sign-out".into(), vec![]),
        (
            "/account/password",
            "/account/password".into(),
            vec![
                ("current", PASSWORD),
                ("password", NEW_PASSWORD),
                ("confirm", NEW_PASSWORD),
            ],
        ),
        (
            "/account/sessions/end-others",
            "/account/sessions/end-others".into(),
            vec![],
        ),
        ("/integrity/start", "/integrity/start".into(), vec![]),
        (
            "/api-keys",
            "/api-keys".into(),
            vec![
                ("role", "read"),
                ("label", "forged key"),
                ("expires_in_days", ""),
            ],
        ),
        (
            "/api-keys/{id}/revoke",
            format!("/api-keys/{key_id}/revoke"),
            vec![],
        ),
        (
            "/api-keys/{id}/rate",
            format!("/api-keys/{key_id}/rate"),
            vec![("rate", "5")],
        ),
        (
            "/users",
            "/users".into(),
            vec![
                ("email", "intruder@evil.test"),
                ("role", "admin"),
                ("expires_on", ""),
            ],
        ),
        (
            "/users/{id}/role",
            format!("/users/{officer_id}/role"),
            vec![("role", "admin"), ("expires_on", "")],
        ),
        (
            "/users/{id}/disable",
            format!("/users/{officer_id}/disable"),
            vec![],
        ),
        (
            "/subjects/hold",
            "/subjects/hold".into(),
            vec![("subject_ref", "subj-4711"), ("reason", "forged")],
        ),
        (
            "/subjects/hold/lift",
            "/subjects/hold/lift".into(),
            vec![
                ("subject_ref", "subj-4711"),
                ("hold_seq", "1"),
                ("reason", "forged"),
            ],
        ),
        (
            "/subjects/erase",
            "/subjects/erase".into(),
            vec![
                ("subject_ref", "subj-4711"),
                ("scope", "subject"),
                ("legal_basis", "other"),
                ("legal_basis_other", "forged"),
                ("reason", "forged"),
                ("confirm", "subj-4711"),
            ],
        ),
        (
            "/decisions/{id}/oversight",
            format!("/decisions/{decision_id}/oversight"),
            vec![
                ("act", "override"),
                ("new_outcome", "deny"),
                ("reason", "forged"),
            ],
        ),
        (
            "/oversight/proposals/{id}/approve",
            format!("/oversight/proposals/{proposal_id}/approve"),
            vec![("reason", "forged")],
        ),
        (
            "/oversight/proposals/{id}/close",
            format!("/oversight/proposals/{proposal_id}/close"),
            vec![("reason", "forged")],
        ),
        (
            "/settings/oversight",
            "/settings/oversight".into(),
            vec![
                ("four_eyes", "on"),
                ("review_sla_hours", "1"),
                ("contest_sla_hours", "1"),
                ("explanation_sla_hours", "1"),
            ],
        ),
    ];
    let anonymous_forms = ["/forgot-password", "/reset-password", "/sign-in"];
    let mut covered: Vec<String> = signed_in_forms
        .iter()
        .map(|(route, _, _)| (*route).to_owned())
        .chain(anonymous_forms.iter().map(|r| (*r).to_owned()))
        .collect();
    covered.sort();
    assert_eq!(
        covered,
        post_routes_of_the_router(),
        "every POST route of the portal is in this test (the anonymous ones in the next)"
    );

    let wrong_tokens: [(&str, Option<&str>); 5] = [
        ("no", None),
        ("an empty", Some("")),
        ("a tampered", Some(&tampered)),
        (
            "a made-up",
            Some("00000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        ),
        ("another session's", Some(&foreign)),
    ];
    for (_, path, fields) in &signed_in_forms {
        for (what, token) in wrong_tokens {
            let mut form = fields.clone();
            if let Some(token) = token {
                form.push(("csrf", token));
            }
            let page = admin.post(path, &form).await;
            page.assert_status(
                StatusCode::FORBIDDEN,
                &format!("POST {path} with {what} CSRF token"),
            );
            assert!(
                page.body.contains(CSRF_REFUSED),
                "POST {path} with {what} token: the CSRF message"
            );
        }
    }

    // Nothing changed.
    admin
        .get("/account/sessions")
        .await
        .assert_status(StatusCode::OK, "not signed out");
    other
        .get("/account/sessions")
        .await
        .assert_status(StatusCode::OK, "other sessions not ended");
    assert_eq!(
        user(&server, ADMIN_EMAIL).await,
        admin_before,
        "the password is unchanged"
    );
    let keys = store.api_keys(tenant).await.expect("keys");
    assert_eq!(keys.len(), 1, "no key created");
    assert!(keys[0].revoked_at_us.is_none(), "no key revoked");
    let users = store.users(tenant).await.expect("users");
    assert_eq!(users.len(), 2, "nobody invited");
    let officer = user(&server, OFFICER_EMAIL).await;
    assert_eq!(officer.role, PortalRole::Compliance, "no role changed");
    assert!(officer.disabled_at_us.is_none(), "nobody disabled");
    assert_eq!(mail_count(&server), 0, "no invitation sent");
    assert_eq!(
        audited_actions(store, tenant).await,
        ["sign_in", "sign_in"],
        "no action but the two sign-ins reached the ledger"
    );

    // The same form with the session's own token works: the refusals were about the token.
    let ended = admin
        .post("/account/sessions/end-others", &[("csrf", &own)])
        .await;
    ended.assert_status(StatusCode::SEE_OTHER, "the right token");
    other
        .get("/account/sessions")
        .await
        .assert_sign_in_redirect("ended by the real form");
    server.stop().await;
}

async fn the_anonymous_forms_refuse_a_missing_wrong_or_foreign_csrf_token(backend: Backend) {
    let server = start(&backend, false).await;
    let store = &server.store;
    let admin_before = user(&server, ADMIN_EMAIL).await;
    // A usable reset token, made directly in the store.
    let reset = random_token();
    secret_scan::register("password-reset token", &reset);
    let now = store.now_us();
    store
        .create_password_reset(
            &server.tenant,
            &admin_before.user_id,
            &token_hash(&reset),
            now,
            now + 3_600_000_000,
        )
        .await
        .expect("reset token");

    let mut browser = Browser::new(&server);
    let own = browser.get("/sign-in").await.csrf();
    let mut elsewhere = Browser::new(&server);
    let foreign = elsewhere.get("/sign-in").await.csrf();
    assert_ne!(own, foreign, "tokens are bound to their pre-session cookie");
    let (own_key, own_mac) = own.split_once('.').expect("key.mac");
    let tampered = format!("{own_key}.{}", flip_char(own_mac, 10));

    let forms: [(&str, Vec<(&str, &str)>); 3] = [
        (
            "/sign-in",
            vec![
                ("tenant", "acme-bank"),
                ("email", ADMIN_EMAIL),
                ("password", PASSWORD),
            ],
        ),
        (
            "/forgot-password",
            vec![("tenant", "acme-bank"), ("email", ADMIN_EMAIL)],
        ),
        (
            "/reset-password",
            vec![
                ("token", reset.as_str()),
                ("password", NEW_PASSWORD),
                ("confirm", NEW_PASSWORD),
            ],
        ),
    ];
    let wrong_tokens: [(&str, Option<&str>); 4] = [
        ("no", None),
        ("a tampered", Some(&tampered)),
        ("another browser's", Some(&foreign)),
        ("an empty", Some("")),
    ];
    for (path, fields) in &forms {
        for (what, token) in wrong_tokens {
            let mut form = fields.clone();
            if let Some(token) = token {
                form.push(("csrf", token));
            }
            let page = browser.post(path, &form).await;
            page.assert_status(
                StatusCode::FORBIDDEN,
                &format!("POST {path} with {what} CSRF token"),
            );
            assert!(page.body.contains(CSRF_REFUSED));
        }
        // A valid token without the pre-session cookie it is bound to.
        let mut form = fields.clone();
        form.push(("csrf", &own));
        let mut cookieless = Browser::new(&server);
        cookieless.post(path, &form).await.assert_status(
            StatusCode::FORBIDDEN,
            &format!("POST {path} without its cookie"),
        );
    }

    assert_eq!(browser.session(), None, "no session was started");
    assert!(
        audited_actions(store, &server.tenant).await.is_empty(),
        "nothing reached the ledger"
    );
    let_mail_settle().await;
    assert_eq!(mail_count(&server), 0, "no reset mail was sent");
    assert!(
        store
            .password_reset_user(&token_hash(&reset), store.now_us())
            .await
            .expect("read")
            .is_some(),
        "the reset token was not used"
    );
    assert_eq!(
        user(&server, ADMIN_EMAIL).await,
        admin_before,
        "password unchanged"
    );
    // The refused forms did not count as failed sign-ins either.
    browser.sign_in_ok(ADMIN_EMAIL, PASSWORD).await;
    server.stop().await;
}

async fn an_account_is_backed_off_after_five_failures_even_for_the_right_password(
    backend: Backend,
) {
    let server = start(&backend, true).await;
    server
        .create_user(OFFICER_EMAIL, PortalRole::Compliance, None)
        .await;
    let mut browser = Browser::new(&server);
    for attempt in 1..=5 {
        let page = browser.sign_in(ADMIN_EMAIL, WRONG_PASSWORD).await;
        page.assert_status(StatusCode::UNAUTHORIZED, &format!("failure {attempt}"));
        assert_eq!(page.retry_after(), None);
    }
    let sixth = browser.sign_in(ADMIN_EMAIL, WRONG_PASSWORD).await;
    sixth.assert_status(StatusCode::TOO_MANY_REQUESTS, "the sixth attempt");
    assert!(sixth.retry_after().is_some_and(|s| s >= 1), "Retry-After");

    let right = browser.sign_in(ADMIN_EMAIL, PASSWORD).await;
    right.assert_status(
        StatusCode::TOO_MANY_REQUESTS,
        "the right password during the back-off",
    );
    assert_eq!(browser.session(), None, "no session during the back-off");
    let wait = right.retry_after().expect("Retry-After");
    assert!(wait >= 1);

    // The back-off is per account: another account of the same address signs in.
    Browser::new(&server)
        .sign_in_ok(OFFICER_EMAIL, PASSWORD)
        .await;

    // Time has not moved: still refused. Once the wait has passed, the right password works.
    browser
        .sign_in(ADMIN_EMAIL, PASSWORD)
        .await
        .assert_status(StatusCode::TOO_MANY_REQUESTS, "still backed off");
    server.advance(Duration::from_secs(wait));
    browser.sign_in_ok(ADMIN_EMAIL, PASSWORD).await;
    let trail = audit_trail(&server.store, &server.tenant).await;
    let admin_sign_ins = trail
        .iter()
        .filter(|(_, action, _)| action == "sign_in")
        .count();
    assert_eq!(
        admin_sign_ins, 2,
        "the officer's and the admin's final sign-in"
    );
    server.stop().await;
}

/// `(status, Retry-After, body with the email replaced)` of six sign-ins of `email`.
async fn six_attempts(
    browser: &mut Browser,
    email: &str,
    password: &str,
) -> Vec<(u16, Option<u64>, String)> {
    let mut out = Vec::new();
    for _ in 0..6 {
        let page = browser.sign_in(email, password).await;
        out.push((
            page.status.as_u16(),
            page.retry_after(),
            page.body.replace(email, "EMAIL"),
        ));
    }
    out
}

async fn unknown_emails_and_wrong_passwords_fail_and_back_off_identically(backend: Backend) {
    let server = start(&backend, true).await;
    server
        .create_user(AUDITOR_EMAIL, PortalRole::Auditor, None)
        .await;
    let auditor = user(&server, AUDITOR_EMAIL).await;
    server
        .store
        .disable_user(&server.tenant, &auditor.user_id, server.store.now_us())
        .await
        .expect("disable");
    // One browser (one pre-session cookie), so that the CSRF tokens in the pages are the same.
    let mut browser = Browser::new(&server);

    let known = six_attempts(&mut browser, ADMIN_EMAIL, WRONG_PASSWORD).await;
    let statuses: Vec<u16> = known.iter().map(|(s, _, _)| *s).collect();
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429]);
    assert!(known[0].2.contains(SIGN_IN_FAILED), "the generic message");
    assert!(known[5].1.is_some_and(|s| s >= 1), "Retry-After");

    let unknown = six_attempts(&mut browser, UNKNOWN_EMAIL, WRONG_PASSWORD).await;
    assert!(
        known == unknown,
        "an unknown email fails and backs off exactly like a wrong password: {:?} vs {:?}",
        known.iter().map(|(s, r, _)| (s, r)).collect::<Vec<_>>(),
        unknown.iter().map(|(s, r, _)| (s, r)).collect::<Vec<_>>()
    );

    // A disabled account with its right password: the same answer again.
    let disabled = browser.sign_in(AUDITOR_EMAIL, PASSWORD).await;
    assert_eq!(
        (
            disabled.status.as_u16(),
            disabled.retry_after(),
            disabled.body.replace(AUDITOR_EMAIL, "EMAIL")
        ),
        known[0],
        "a disabled account answers like a wrong password"
    );
    server.stop().await;
}

/// Posts cheap attempts (forgot-password: no password hashing), each for another account so
/// that the per-account back-off plays no part, until one is refused; returns how many were
/// accepted and the refusal.
async fn attempt_until_refused(browser: &mut Browser, csrf: &str) -> (u32, Page) {
    for n in 0..SIGN_IN_BURST + 10 {
        let email = format!("nobody-{n}@acme.test");
        let page = browser
            .post(
                "/forgot-password",
                &[("csrf", csrf), ("tenant", "acme-bank"), ("email", &email)],
            )
            .await;
        match page.status {
            StatusCode::OK => {}
            StatusCode::TOO_MANY_REQUESTS => return (n, page),
            other => panic!("attempt {n}: unexpected {other}"),
        }
    }
    panic!("more than the burst of attempts from one address is refused");
}

async fn too_many_attempts_from_one_address_get_429_with_retry_after(backend: Backend) {
    let server = start(&backend, true).await;
    let mut browser = Browser::new(&server);
    let csrf = browser.get("/sign-in").await.csrf();
    let (accepted, refused) = attempt_until_refused(&mut browser, &csrf).await;
    assert!(
        accepted >= SIGN_IN_BURST,
        "the first {SIGN_IN_BURST} attempts are allowed (only {accepted} were)"
    );
    assert!(refused.retry_after().is_some_and(|s| s >= 1), "Retry-After");
    assert!(refused.body.contains("Too many attempts"));

    // The limit is per address, across the three forms, whatever the account: right after the
    // flood the admin's right password and a reset are refused too. One attempt is allowed
    // again every few seconds; should that moment fall between the flood and these two
    // requests (a slow machine), flood again, at most three times.
    let unknown_token = random_token();
    let mut refused_everywhere = false;
    for round in 0..3 {
        if round > 0 {
            attempt_until_refused(&mut browser, &csrf).await;
        }
        let sign_in = browser
            .post(
                "/sign-in",
                &[
                    ("csrf", &csrf),
                    ("tenant", "acme-bank"),
                    ("email", ADMIN_EMAIL),
                    ("password", PASSWORD),
                ],
            )
            .await;
        let reset = browser
            .post(
                "/reset-password",
                &[
                    ("csrf", &csrf),
                    ("token", &unknown_token),
                    ("password", NEW_PASSWORD),
                    ("confirm", NEW_PASSWORD),
                ],
            )
            .await;
        if sign_in.status == StatusCode::TOO_MANY_REQUESTS
            && reset.status == StatusCode::TOO_MANY_REQUESTS
        {
            assert!(sign_in.retry_after().is_some_and(|s| s >= 1));
            assert!(reset.retry_after().is_some_and(|s| s >= 1));
            assert_eq!(sign_in.set_cookie(SESSION_COOKIE), None, "no session");
            refused_everywhere = true;
            break;
        }
    }
    assert!(
        refused_everywhere,
        "sign-in and reset are limited per address along with forgot-password"
    );
    // Pages are not limited.
    browser
        .get("/sign-in")
        .await
        .assert_status(StatusCode::OK, "the sign-in page");
    server.stop().await;
}

/// Posts the forgot-password form with a forged `Host` and forwarding headers, which must not
/// reach the link.
async fn forgot_with_forged_host(browser: &mut Browser, csrf: &str, email: &str) -> Page {
    let request = browser
        .client
        .post(format!("{}/forgot-password", browser.base))
        .header(header::HOST, "evil.example")
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-proto", "http")
        .header("forwarded", "host=evil.example;proto=http");
    browser
        .send(with_form(
            request,
            &[("csrf", csrf), ("tenant", "acme-bank"), ("email", email)],
        ))
        .await
}

async fn forgot_password_answers_alike_and_mails_a_public_url_link_to_known_accounts_only(
    backend: Backend,
) {
    let server = start(&backend, false).await;
    server
        .create_user(AUDITOR_EMAIL, PortalRole::Auditor, None)
        .await;
    let auditor = user(&server, AUDITOR_EMAIL).await;
    server
        .store
        .disable_user(&server.tenant, &auditor.user_id, server.store.now_us())
        .await
        .expect("disable");

    let mut browser = Browser::new(&server);
    let csrf = browser.get("/forgot-password").await.csrf();
    let unknown = forgot_with_forged_host(&mut browser, &csrf, UNKNOWN_EMAIL).await;
    let disabled = forgot_with_forged_host(&mut browser, &csrf, AUDITOR_EMAIL).await;
    let known = forgot_with_forged_host(&mut browser, &csrf, ADMIN_EMAIL).await;
    unknown.assert_status(StatusCode::OK, "an unknown email");
    for (what, page) in [("a disabled account", &disabled), ("a known email", &known)] {
        assert_eq!(
            (page.status, &page.body),
            (unknown.status, &unknown.body),
            "{what} gets the very answer an unknown email gets"
        );
    }

    let mail = wait_for_mail(&server, 1).await;
    let_mail_settle().await;
    assert_eq!(
        mail_count(&server),
        1,
        "only the active, known account gets mail"
    );
    assert!(mail_recipient_is(&mail, ADMIN_EMAIL));
    let link = reset_link(&mail);
    let token = reset_token(&mail);
    assert_eq!(
        link,
        format!("{}/reset-password?token={token}", server.config.public_url),
        "the link is built from the configured public URL"
    );
    assert!(
        !mail.contains("evil.example"),
        "no request header reaches the mail"
    );
    // And the link works.
    browser
        .get(&reset_path(&token))
        .await
        .assert_status(StatusCode::OK, "the mailed link");
    server.stop().await;
}

async fn a_reset_link_expires_after_two_hours(backend: Backend) {
    let server = start(&backend, true).await;
    let token = request_reset(&server, ADMIN_EMAIL).await;
    let mut browser = Browser::new(&server);

    server.advance(Duration::from_secs(119 * 60));
    browser
        .get(&reset_path(&token))
        .await
        .assert_status(StatusCode::OK, "1 h 59 min after it was sent");
    server.advance(Duration::from_secs(2 * 60));
    let expired = browser.get(&reset_path(&token)).await;
    expired.assert_status(StatusCode::BAD_REQUEST, "2 h 1 min after it was sent");
    assert!(expired.body.contains(LINK_INVALID));
    assert!(hidden_input(&expired.body, "token").is_none(), "no form");

    let used = submit_reset(&mut browser, &token, NEW_PASSWORD, NEW_PASSWORD).await;
    used.assert_status(StatusCode::BAD_REQUEST, "submitting an expired link");
    assert!(used.body.contains(LINK_INVALID));
    Browser::new(&server)
        .sign_in_ok(ADMIN_EMAIL, PASSWORD)
        .await;
    server.stop().await;
}

async fn a_reset_link_works_once_and_the_user_must_then_sign_in(backend: Backend) {
    let server = start(&backend, false).await;
    let mut earlier = Browser::signed_in(&server, ADMIN_EMAIL).await;
    let token = request_reset(&server, ADMIN_EMAIL).await;

    let mut browser = Browser::new(&server);
    let form = browser.get(&reset_path(&token)).await;
    form.assert_status(StatusCode::OK, "the reset form");
    let csrf = form.csrf();
    let done = browser
        .post(
            "/reset-password",
            &[
                ("csrf", &csrf),
                ("token", &token),
                ("password", NEW_PASSWORD),
                ("confirm", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(
        (done.status, done.location()),
        (
            StatusCode::SEE_OTHER,
            Some("/sign-in?done=password-changed")
        )
    );
    assert_eq!(
        done.set_cookie(SESSION_COOKIE),
        None,
        "a reset does not sign in"
    );
    assert_eq!(browser.session(), None);
    browser
        .get("/")
        .await
        .assert_sign_in_redirect("after a reset");
    earlier
        .get("/")
        .await
        .assert_sign_in_redirect("a session from before the reset");

    // Used once, the link is dead.
    let again = submit_reset(&mut browser, &token, WRONG_PASSWORD, WRONG_PASSWORD).await;
    again.assert_status(StatusCode::BAD_REQUEST, "the link used a second time");
    assert!(again.body.contains(LINK_INVALID));
    browser
        .get(&reset_path(&token))
        .await
        .assert_status(StatusCode::BAD_REQUEST, "opening a used link");

    Browser::new(&server)
        .sign_in(ADMIN_EMAIL, PASSWORD)
        .await
        .assert_status(StatusCode::UNAUTHORIZED, "the old password");
    Browser::new(&server)
        .sign_in_ok(ADMIN_EMAIL, NEW_PASSWORD)
        .await;
    server.stop().await;
}

async fn a_newer_reset_link_replaces_the_older_one(backend: Backend) {
    let server = start(&backend, false).await;
    let older = request_reset(&server, ADMIN_EMAIL).await;
    let newer = request_reset(&server, ADMIN_EMAIL).await;
    assert_ne!(older, newer);
    let mut browser = Browser::new(&server);
    browser
        .get(&reset_path(&older))
        .await
        .assert_status(StatusCode::BAD_REQUEST, "the older link");
    submit_reset(&mut browser, &older, NEW_PASSWORD, NEW_PASSWORD)
        .await
        .assert_status(StatusCode::BAD_REQUEST, "submitting the older link");
    browser
        .get(&reset_path(&newer))
        .await
        .assert_status(StatusCode::OK, "the newer link");
    Browser::new(&server)
        .sign_in_ok(ADMIN_EMAIL, PASSWORD)
        .await;
    server.stop().await;
}

async fn a_password_change_invalidates_outstanding_reset_links(backend: Backend) {
    let server = start(&backend, false).await;
    let token = request_reset(&server, ADMIN_EMAIL).await;
    let mut admin = Browser::signed_in(&server, ADMIN_EMAIL).await;
    change_password(&mut admin, NEW_PASSWORD)
        .await
        .assert_status(StatusCode::SEE_OTHER, "the change");
    let mut browser = Browser::new(&server);
    browser
        .get(&reset_path(&token))
        .await
        .assert_status(StatusCode::BAD_REQUEST, "a link from before the change");
    submit_reset(&mut browser, &token, WRONG_PASSWORD, WRONG_PASSWORD)
        .await
        .assert_status(StatusCode::BAD_REQUEST, "submitting it");
    Browser::new(&server)
        .sign_in_ok(ADMIN_EMAIL, NEW_PASSWORD)
        .await;
    server.stop().await;
}

async fn disabling_a_user_invalidates_their_reset_links(backend: Backend) {
    let server = start(&backend, false).await;
    server
        .create_user(OFFICER_EMAIL, PortalRole::Compliance, None)
        .await;
    let token = request_reset(&server, OFFICER_EMAIL).await;
    let officer_id = user(&server, OFFICER_EMAIL).await.user_id;
    let mut admin = Browser::signed_in(&server, ADMIN_EMAIL).await;
    let csrf = admin.csrf().await;
    admin
        .post(&format!("/users/{officer_id}/disable"), &[("csrf", &csrf)])
        .await
        .assert_status(StatusCode::SEE_OTHER, "disable");

    let mut browser = Browser::new(&server);
    browser
        .get(&reset_path(&token))
        .await
        .assert_status(StatusCode::BAD_REQUEST, "a disabled user's reset link");
    submit_reset(&mut browser, &token, NEW_PASSWORD, NEW_PASSWORD)
        .await
        .assert_status(StatusCode::BAD_REQUEST, "submitting it");
    assert!(
        !audited_actions(&server.store, &server.tenant)
            .await
            .contains(&"password_reset".to_owned()),
        "no password was reset"
    );
    server.stop().await;
}

async fn a_refused_new_password_does_not_use_up_the_reset_link(backend: Backend) {
    let server = start(&backend, false).await;
    let token = request_reset(&server, ADMIN_EMAIL).await;
    let mut browser = Browser::new(&server);
    let refusals = [
        ("elevenchars", "elevenchars", "at least 12"),
        ("password1234", "password1234", "commonly used"),
        (NEW_PASSWORD, "maple quartz harbour lantern!", "differ"),
    ];
    for (password, confirm, why) in refusals {
        let page = submit_reset(&mut browser, &token, password, confirm).await;
        page.assert_status(StatusCode::UNPROCESSABLE_ENTITY, &format!("refused: {why}"));
        assert!(page.body.contains(why), "the page says why: {why}");
        assert_eq!(
            hidden_input(&page.body, "token").as_deref(),
            Some(token.as_str()),
            "the form is shown again for the same link"
        );
        browser
            .get(&reset_path(&token))
            .await
            .assert_status(StatusCode::OK, &format!("the link still works after {why}"));
    }
    Browser::new(&server)
        .sign_in_ok(ADMIN_EMAIL, PASSWORD)
        .await;
    let done = submit_reset(&mut browser, &token, NEW_PASSWORD, NEW_PASSWORD).await;
    done.assert_status(StatusCode::SEE_OTHER, "an acceptable password");
    server.stop().await;
}

async fn a_regulator_only_reads_and_cannot_sign_in_after_its_access_ends(backend: Backend) {
    let server = start(&backend, true).await;
    let store = &server.store;
    let access_ends = store.now_us() + 24 * 3_600_000_000;
    server
        .create_user(REGULATOR_EMAIL, PortalRole::Regulator, Some(access_ends))
        .await;
    let mut regulator = Browser::signed_in(&server, REGULATOR_EMAIL).await;

    for path in ["/api-keys", "/users"] {
        let page = regulator.get(path).await;
        page.assert_status(StatusCode::FORBIDDEN, path);
        assert!(page.body.contains(ROLE_REFUSED));
    }
    let csrf = regulator.csrf().await;
    let start_check = regulator.post("/integrity/start", &[("csrf", &csrf)]).await;
    start_check.assert_status(StatusCode::FORBIDDEN, "a regulator starting a check");
    assert!(
        start_check.body.contains(ROLE_REFUSED),
        "refused for the role, not the token"
    );
    regulator
        .post(
            "/api-keys",
            &[
                ("csrf", &csrf),
                ("role", "read"),
                ("label", "regulator key"),
            ],
        )
        .await
        .assert_status(StatusCode::FORBIDDEN, "a regulator creating a key");
    regulator
        .post(
            "/users",
            &[
                ("csrf", &csrf),
                ("email", "friend@supervisor.test"),
                ("role", "admin"),
                ("expires_on", ""),
            ],
        )
        .await
        .assert_status(StatusCode::FORBIDDEN, "a regulator inviting");
    assert!(
        store
            .api_keys(&server.tenant)
            .await
            .expect("keys")
            .is_empty()
    );
    assert_eq!(store.users(&server.tenant).await.expect("users").len(), 2);
    assert_eq!(
        audited_actions(store, &server.tenant).await,
        ["sign_in"],
        "no check started, nothing created"
    );

    // What a regulator may do: read.
    for path in ["/", "/decisions", "/models", "/integrity"] {
        let page = regulator.get(path).await;
        page.assert_status(StatusCode::OK, path);
        assert!(
            !page.body.contains("action=\"/integrity/start\""),
            "{path}: no check button"
        );
        assert!(
            !page.body.contains("href=\"/users\""),
            "{path}: no admin links"
        );
    }

    server.advance(Duration::from_secs(24 * 3600 + 1));
    regulator
        .get("/decisions")
        .await
        .assert_sign_in_redirect("a regulator whose access ended");
    let late = Browser::new(&server)
        .sign_in(REGULATOR_EMAIL, PASSWORD)
        .await;
    late.assert_status(
        StatusCode::UNAUTHORIZED,
        "signing in after the access ended",
    );
    server.stop().await;
}

async fn a_compliance_officer_cannot_administer_users_or_keys(backend: Backend) {
    let server = start(&backend, false).await;
    server
        .create_user(OFFICER_EMAIL, PortalRole::Compliance, None)
        .await;
    let admin_before = user(&server, ADMIN_EMAIL).await;
    let mut officer = Browser::signed_in(&server, OFFICER_EMAIL).await;
    for path in ["/users", "/api-keys"] {
        officer
            .get(path)
            .await
            .assert_status(StatusCode::FORBIDDEN, path);
    }
    let csrf = officer.csrf().await;
    let admin_id = &admin_before.user_id;
    officer
        .post(&format!("/users/{admin_id}/disable"), &[("csrf", &csrf)])
        .await
        .assert_status(StatusCode::FORBIDDEN, "disabling the admin");
    officer
        .post(
            &format!("/users/{admin_id}/role"),
            &[
                ("csrf", &csrf),
                ("role", "regulator"),
                ("expires_on", "2099-01-01"),
            ],
        )
        .await
        .assert_status(StatusCode::FORBIDDEN, "demoting the admin");
    let officer_id = user(&server, OFFICER_EMAIL).await.user_id;
    officer
        .post(
            &format!("/users/{officer_id}/role"),
            &[("csrf", &csrf), ("role", "admin"), ("expires_on", "")],
        )
        .await
        .assert_status(StatusCode::FORBIDDEN, "promoting oneself");
    assert_eq!(user(&server, ADMIN_EMAIL).await, admin_before);
    assert_eq!(
        user(&server, OFFICER_EMAIL).await.role,
        PortalRole::Compliance
    );
    officer
        .get("/decisions")
        .await
        .assert_status(StatusCode::OK, "the officer's own work");
    server.stop().await;
}

async fn another_tenants_admin_sees_none_of_this_tenants_decisions_keys_or_users(backend: Backend) {
    const OTHER_ADMIN: &str = "admin@globex.test";
    let server = start(&backend, false).await;
    let store = &server.store;
    let tenant = &server.tenant;
    let other = tenant_id("globex-bank");
    store.create_tenant(&other).await.expect("second tenant");
    let hash = hash_password(PASSWORD.to_owned()).await.expect("hash");
    store
        .create_user(
            &other,
            OTHER_ADMIN,
            PortalRole::Admin,
            &hash,
            None,
            store.now_us(),
        )
        .await
        .expect("second tenant's admin");

    let event_id = append_decision(store, tenant).await;
    store.publish_checkpoints().await.expect("checkpoint");
    let key = store
        .create_api_key(tenant, Role::Read, "acme pipeline", None)
        .await
        .expect("key");
    secret_scan::register_api_key(&key.reveal());
    let key_id = key.id().to_string();
    let admin_id = user(&server, ADMIN_EMAIL).await.user_id;

    let mut ours = Browser::signed_in(&server, ADMIN_EMAIL).await;
    let mut theirs = Browser::new(&server);
    let page = theirs
        .sign_in_to("globex-bank", OTHER_ADMIN, PASSWORD)
        .await;
    assert_eq!(
        page.location(),
        Some("/"),
        "the other tenant's admin signs in"
    );
    // Our organisation with their email is nobody.
    let mut wrong = Browser::new(&server);
    let page = wrong.sign_in_to("acme-bank", OTHER_ADMIN, PASSWORD).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(page.body.contains(SIGN_IN_FAILED));
    let page = ours.get(&format!("/decisions/{event_id}")).await;
    page.assert_status(StatusCode::OK, "our decision, for us");
    assert!(page.body.contains(&event_id));
    ours.get(&format!("/decisions/{event_id}/proof"))
        .await
        .assert_status(StatusCode::OK, "our proof, for us");

    theirs
        .get(&format!("/decisions/{event_id}"))
        .await
        .assert_status(StatusCode::NOT_FOUND, "our decision, for them");
    theirs
        .get(&format!("/decisions/{event_id}/proof"))
        .await
        .assert_status(StatusCode::NOT_FOUND, "our proof, for them");
    let bundle = theirs.get(&format!("/decisions/{event_id}/bundle")).await;
    assert!(
        bundle.status.is_client_error() && !bundle.body.contains("approve"),
        "our bundle, for them: {}",
        bundle.status
    );
    let list = theirs.get("/decisions").await;
    list.assert_status(StatusCode::OK, "their decisions");
    assert!(!list.body.contains(&event_id), "our decision is not listed");
    let keys = theirs.get("/api-keys").await;
    keys.assert_status(StatusCode::OK, "their keys");
    assert!(
        !keys.body.contains(&key_id) && !keys.body.contains("acme pipeline"),
        "our key is not listed"
    );
    let users = theirs.get("/users").await;
    users.assert_status(StatusCode::OK, "their users");
    assert!(!users.body.contains(ADMIN_EMAIL), "our admin is not listed");
    let our_users = ours.get("/users").await;
    assert!(!our_users.body.contains(OTHER_ADMIN), "nor theirs for us");

    let csrf = theirs.csrf().await;
    theirs
        .post(&format!("/api-keys/{key_id}/revoke"), &[("csrf", &csrf)])
        .await
        .assert_status(StatusCode::NOT_FOUND, "revoking our key");
    theirs
        .post(
            &format!("/api-keys/{key_id}/rate"),
            &[("csrf", &csrf), ("rate", "5")],
        )
        .await
        .assert_status(StatusCode::NOT_FOUND, "setting our key's rate");
    theirs
        .post(&format!("/users/{admin_id}/disable"), &[("csrf", &csrf)])
        .await
        .assert_status(StatusCode::NOT_FOUND, "disabling our admin");
    theirs
        .post(
            &format!("/users/{admin_id}/role"),
            &[("csrf", &csrf), ("role", "auditor"), ("expires_on", "")],
        )
        .await
        .assert_status(StatusCode::NOT_FOUND, "demoting our admin");
    let keys = store.api_keys(tenant).await.expect("keys");
    assert!(keys[0].revoked_at_us.is_none(), "our key is not revoked");
    let admin = user(&server, ADMIN_EMAIL).await;
    assert!(admin.disabled_at_us.is_none() && admin.role == PortalRole::Admin);
    ours.get("/")
        .await
        .assert_status(StatusCode::OK, "our admin is still signed in");
    server.stop().await;
}

async fn portal_actions_are_recorded_in_the_tenants_ledger(backend: Backend) {
    const INVITEE: &str = "invitee@acme.test";
    let server = start(&backend, false).await;
    let store = &server.store;
    let tenant = &server.tenant;
    let event_id = append_decision(store, tenant).await;
    store.publish_checkpoints().await.expect("checkpoint");

    let mut admin = Browser::signed_in(&server, ADMIN_EMAIL).await;
    let mut second = Browser::signed_in(&server, ADMIN_EMAIL).await;
    let csrf = second.csrf().await;
    second
        .post("/sign-out", &[("csrf", &csrf)])
        .await
        .assert_status(StatusCode::SEE_OTHER, "sign-out");

    let csrf = admin.csrf().await;
    let created = admin
        .post(
            "/api-keys",
            &[
                ("csrf", &csrf),
                ("role", "read"),
                ("label", "audit test key"),
                ("expires_in_days", ""),
            ],
        )
        .await;
    created.assert_status(StatusCode::CREATED, "a new key");
    let marker = "id=\"new-key\">";
    let start_at = created.body.find(marker).expect("the key is shown") + marker.len();
    let key_text: String = created.body[start_at..]
        .chars()
        .take_while(|c| *c != '<')
        .collect();
    secret_scan::register_api_key(&key_text);
    let keys = store.api_keys(tenant).await.expect("keys");
    assert_eq!(keys.len(), 1);
    let key_id = keys[0].key_id.clone();
    let listed = admin.get("/api-keys").await;
    assert!(listed.body.contains(&key_id), "the key is listed");
    assert!(!listed.body.contains(&key_text), "and shown only once");

    admin
        .post(&format!("/api-keys/{key_id}/revoke"), &[("csrf", &csrf)])
        .await
        .assert_status(StatusCode::SEE_OTHER, "revoke");
    let invited = admin
        .post(
            "/users",
            &[
                ("csrf", &csrf),
                ("email", INVITEE),
                ("role", "auditor"),
                ("expires_on", ""),
            ],
        )
        .await;
    assert_eq!(
        (invited.status, invited.location()),
        (StatusCode::SEE_OTHER, Some("/users?done=invited"))
    );
    let invitation = wait_for_mail(&server, 1).await;
    assert!(mail_recipient_is(&invitation, INVITEE));
    reset_token(&invitation);

    let proof = admin.get(&format!("/decisions/{event_id}/proof")).await;
    proof.assert_status(StatusCode::OK, "the proof file");
    assert!(
        proof
            .header("content-disposition")
            .is_some_and(|d| d.starts_with("attachment")),
        "a download"
    );
    admin
        .get(&format!("/decisions/{event_id}/bundle"))
        .await
        .assert_status(StatusCode::OK, "the bundle");
    change_password(&mut admin, NEW_PASSWORD)
        .await
        .assert_status(StatusCode::SEE_OTHER, "the password change");

    let trail = audit_trail(store, tenant).await;
    let some = |s: &str| Some(s.to_owned());
    let expected: Vec<(String, String, Option<String>)> = [
        ("access", "sign_in", None),
        ("access", "sign_in", None),
        ("access", "sign_out", None),
        ("administration", "api_key_created", some(&key_id)),
        ("administration", "api_key_revoked", some(&key_id)),
        ("administration", "user_invited:auditor", some(INVITEE)),
        ("access", "download_proof", some(&event_id)),
        ("access", "download_bundle", some(&event_id)),
        ("administration", "password_changed", some(ADMIN_EMAIL)),
    ]
    .into_iter()
    .map(|(t, a, target)| (t.to_owned(), a.to_owned(), target))
    .collect();
    assert_eq!(trail, expected, "every action, in order, in the ledger");
    for record in store.records(tenant, seq(0), 1000).await.expect("ledger") {
        let payload = record.payload.as_str();
        if matches!(record.event_type.as_str(), "access" | "administration") {
            let p: Value = serde_json::from_str(payload).expect("JSON");
            assert_eq!(p["actor"], ADMIN_EMAIL, "who acted");
        }
        assert!(
            !payload.contains(&key_text) && !payload.contains(NEW_PASSWORD),
            "no secret in the ledger"
        );
    }
    server.stop().await;
}

/// Another server on the same store (the same database) with other portal settings, as after a
/// restart with a changed key file.
struct SecondServer {
    base: String,
    pem: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl SecondServer {
    async fn start(store: &Store, config: PortalConfig) -> SecondServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let http = HttpConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            tls: TlsMode::SelfSigned(dir.path().join("tls")),
            rate_per_second: 1000,
            rate_burst: 1000,
            ingest_rate_per_second: 1000,
            request_bodies_bytes_max: auditex::app::bodies::REQUEST_BODIES_BYTES_MAX,
        };
        let app = Application::build_with_portal(store.clone(), &http, Some(config))
            .await
            .expect("server builds");
        let pem = app.tls_certificate_pem().expect("tls").to_owned();
        let base = format!("https://localhost:{}", app.port());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        SecondServer {
            base,
            pem,
            stop,
            task,
            _dir: dir,
        }
    }

    fn browser(&self, session: &str) -> Browser {
        let mut browser = Browser::at(&self.base, &self.pem);
        browser
            .cookies
            .insert(SESSION_COOKIE.to_owned(), session.to_owned());
        browser
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

fn key_line(id: &str) -> String {
    let secret = hex::encode(rand::random::<[u8; 32]>());
    secret_scan::register("session-signing key", &secret);
    format!("{id} {secret}")
}

async fn rotating_the_session_keys_signs_no_one_out_and_retiring_one_ends_only_its_sessions(
    backend: Backend,
) {
    let path = std::path::Path::new("test keys");
    let (old_line, new_line) = (key_line("old"), key_line("new"));
    let ring = |text: &str| KeyRing::parse(text, path).expect("key ring");
    let before = ring(&old_line);
    let rotated = ring(&format!("{new_line}\n{old_line}"));
    let retired = ring(&new_line);

    let server = PortalServer::start_with(&backend, false, before.clone()).await;
    secret_scan::register("portal test password", PASSWORD);
    let mut first = Browser::new(&server);
    let old_cookie = first.sign_in_ok(ADMIN_EMAIL, PASSWORD).await;
    let old_csrf = first.csrf().await;
    let kept_cookie = Browser::new(&server)
        .sign_in_ok(ADMIN_EMAIL, PASSWORD)
        .await;
    assert!(old_cookie.contains(".old."), "signed by the only key");
    let id = before.open_session(&old_cookie).expect("valid");
    assert_eq!(
        rotated.open_session(&old_cookie).as_deref(),
        Some(id.as_str()),
        "the rotated ring opens the cookie to the same session"
    );

    // The service restarted with the rotated ring, on the same database.
    let after_rotation = SecondServer::start(
        &server.store,
        PortalConfig {
            keys: rotated,
            ..server.config.clone()
        },
    )
    .await;
    let mut carried = after_rotation.browser(&old_cookie);
    carried
        .get("/account/sessions")
        .await
        .assert_status(StatusCode::OK, "a session from before the rotation");
    let mut fresh = Browser::at(&after_rotation.base, &after_rotation.pem);
    let new_cookie = fresh.sign_in_ok(ADMIN_EMAIL, PASSWORD).await;
    assert!(new_cookie.contains(".new."), "the newest key signs");
    // A form rendered before the rotation still submits.
    let out = carried.post("/sign-out", &[("csrf", &old_csrf)]).await;
    assert_eq!(
        (out.status, out.location()),
        (StatusCode::SEE_OTHER, Some("/sign-in?done=signed-out")),
        "a CSRF token from before the rotation"
    );
    after_rotation.stop().await;

    // Restarted again with the old key retired: only its sessions end.
    let after_retiring = SecondServer::start(
        &server.store,
        PortalConfig {
            keys: retired,
            ..server.config.clone()
        },
    )
    .await;
    after_retiring
        .browser(&kept_cookie)
        .get("/")
        .await
        .assert_sign_in_redirect("a session signed by the retired key");
    after_retiring
        .browser(&new_cookie)
        .get("/")
        .await
        .assert_status(StatusCode::OK, "a session signed by the newest key");
    after_retiring.stop().await;
    server.stop().await;
}

#[test]
fn the_key_file_keeps_older_keys_verifying_until_they_are_retired() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("session-keys");
    let register_file_keys = || {
        let text = std::fs::read_to_string(&path).expect("key file");
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            if let Some((_, secret)) = line.split_once(' ') {
                secret_scan::register("session-signing key", secret);
            }
        }
    };

    let first = KeyRing::load_or_create(&path).expect("created");
    register_file_keys();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the key file is private");
    }
    let first_id = first.ids()[0].clone();
    let session = random_token();
    let cookie = first.sign_session(&session);
    let csrf = first.csrf_token(&session);

    let new_id = rotate_key_file(&path).expect("rotate");
    register_file_keys();
    let rotated = KeyRing::load_or_create(&path).expect("load");
    assert_eq!(
        rotated.ids(),
        [new_id.clone(), first_id.clone()],
        "newest first"
    );
    assert_eq!(
        rotated.open_session(&cookie).as_deref(),
        Some(session.as_str()),
        "a cookie of the older key still opens"
    );
    assert!(
        rotated.check_csrf(&session, &csrf),
        "and its CSRF tokens verify"
    );
    let new_cookie = rotated.sign_session(&session);
    assert!(
        new_cookie.contains(&format!(".{new_id}.")),
        "the new key signs"
    );

    assert!(
        retire_key_file(&path, &new_id).is_err(),
        "the signing key cannot be retired"
    );
    assert!(
        retire_key_file(&path, "feedbeef").is_err(),
        "an unknown key"
    );
    retire_key_file(&path, &first_id).expect("retire the older key");
    let retired = KeyRing::load_or_create(&path).expect("load");
    assert_eq!(retired.ids(), [new_id]);
    assert_eq!(retired.open_session(&cookie), None, "its cookies end");
    assert!(!retired.check_csrf(&session, &csrf));
    assert_eq!(
        retired.open_session(&new_cookie).as_deref(),
        Some(session.as_str()),
        "the newer key's cookies go on"
    );
}

// ---------------------------------------------------------------- the audit trail is atomic

/// Makes the database refuse every insert into `table` for which `condition` holds (an SQL
/// expression over `NEW`), as the schema owner; `false` lifts it again. `name` names the trigger.
/// This is how a ledger that will not take a record (storage full, a failing database) looks to
/// the portal, without filling a disk.
async fn refuse_inserts(db: &TestDb, table: &str, name: &str, condition: &str, on: bool) {
    use sqlx::Connection;
    let statements: Vec<String> = if db.is_postgres() {
        if on {
            vec![
                format!(
                    "CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF {condition} THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$"
                ),
                format!(
                    "CREATE TRIGGER {name} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {name}()"
                ),
            ]
        } else {
            vec![
                format!("DROP TRIGGER {name} ON {table}"),
                format!("DROP FUNCTION {name}()"),
            ]
        }
    } else if on {
        vec![format!(
            "CREATE TRIGGER {name} BEFORE INSERT ON {table} WHEN {condition} BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        )]
    } else {
        vec![format!("DROP TRIGGER {name}")]
    };
    if db.is_postgres() {
        let mut c = sqlx::PgConnection::connect(db.postgres_owner_url())
            .await
            .expect("owner connects");
        for sql in statements {
            // Test-made DDL from constants of this file.
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut c)
                .await
                .expect("owner DDL");
        }
    } else {
        let url = format!("sqlite://{}", db.sqlite_path().display());
        let mut c = sqlx::SqliteConnection::connect(&url)
            .await
            .expect("sqlite connects");
        for sql in statements {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut c)
                .await
                .expect("DDL");
        }
    }
}

/// Makes the ledger refuse every record of `event_type` (or lifts that).
async fn refuse_records_of_type(server: &PortalServer, event_type: &str, on: bool) {
    let name = format!("refuse_{event_type}");
    let condition = format!("NEW.event_type = '{event_type}'");
    refuse_inserts(server.db(), "records", &name, &condition, on).await;
}

/// Asserts the page that refuses an action for want of its audit record: 503, Retry-After, and
/// words that say the action was not done.
#[track_caller]
fn assert_refused_unrecorded(page: &Page, what: &str) {
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE, "{what}");
    assert_eq!(
        page.retry_after(),
        Some(auditex::portal::AUDIT_UNAVAILABLE_RETRY_AFTER_S),
        "{what}: Retry-After"
    );
    assert!(
        page.body.contains(auditex::portal::AUDIT_UNAVAILABLE_TITLE)
            && page.body.contains("This action was not performed"),
        "{what}: the page says the action was not done: {}",
        page.body
    );
}

/// While the ledger refuses `administration` records, every administrative action of the
/// portal is refused with a 503 page and has no effect: no key is created or revoked, nobody is
/// invited (no account, no mail), no role or password changes, no account is disabled, no check
/// starts. Once the ledger takes records again the same action is done and recorded.
async fn an_administrative_action_whose_record_the_ledger_refuses_is_not_done(backend: Backend) {
    const INVITEE: &str = "invitee@acme.test";
    let server = start(&backend, false).await;
    let store = &server.store;
    let tenant = &server.tenant;
    server
        .create_user(AUDITOR_EMAIL, PortalRole::Auditor, None)
        .await;
    let auditor = user(&server, AUDITOR_EMAIL).await;
    let existing = store
        .create_api_key(tenant, Role::Read, "existing", None)
        .await
        .expect("key");
    secret_scan::register_api_key(&existing.reveal());
    let existing_id = existing.id().to_string();
    let mut admin = Browser::signed_in(&server, ADMIN_EMAIL).await;
    let csrf = admin.csrf().await;
    let admin_hash = user(&server, ADMIN_EMAIL).await.password_hash;

    refuse_records_of_type(&server, "administration", true).await;
    let created = admin
        .post(
            "/api-keys",
            &[
                ("csrf", &csrf),
                ("role", "read"),
                ("label", "refused key"),
                ("expires_in_days", ""),
            ],
        )
        .await;
    assert_refused_unrecorded(&created, "creating a key");
    assert!(!created.body.contains("id=\"new-key\""), "no key is shown");
    let keys = store.api_keys(tenant).await.expect("keys");
    assert_eq!(
        keys.iter().map(|k| k.key_id.as_str()).collect::<Vec<_>>(),
        [existing_id.as_str()],
        "no key was created"
    );

    let revoked = admin
        .post(
            &format!("/api-keys/{existing_id}/revoke"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_refused_unrecorded(&revoked, "revoking a key");
    assert!(
        store.api_keys(tenant).await.expect("keys")[0]
            .revoked_at_us
            .is_none(),
        "the key is still active"
    );
    assert!(
        store
            .authenticate(&existing.reveal())
            .await
            .expect("auth")
            .is_some(),
        "and still authenticates"
    );

    let invited = admin
        .post(
            "/users",
            &[
                ("csrf", &csrf),
                ("email", INVITEE),
                ("role", "auditor"),
                ("expires_on", ""),
            ],
        )
        .await;
    assert_refused_unrecorded(&invited, "inviting someone");
    assert!(
        store
            .user_by_email(tenant, INVITEE)
            .await
            .expect("read")
            .is_none(),
        "no account was created"
    );
    let_mail_settle().await;
    assert_eq!(mail_count(&server), 0, "no invitation was sent");

    let role_set = admin
        .post(
            &format!("/users/{}/role", auditor.user_id),
            &[("csrf", &csrf), ("role", "admin"), ("expires_on", "")],
        )
        .await;
    assert_refused_unrecorded(&role_set, "changing a role");
    let disabled = admin
        .post(
            &format!("/users/{}/disable", auditor.user_id),
            &[("csrf", &csrf)],
        )
        .await;
    assert_refused_unrecorded(&disabled, "disabling an account");
    let after = user(&server, AUDITOR_EMAIL).await;
    assert_eq!(after.role, PortalRole::Auditor, "the role is unchanged");
    assert!(
        after.disabled_at_us.is_none(),
        "the account is not disabled"
    );

    let check = admin.post("/integrity/start", &[("csrf", &csrf)]).await;
    assert_refused_unrecorded(&check, "starting an integrity check");
    let integrity = admin.get("/integrity").await;
    integrity.assert_status(StatusCode::OK, "the integrity page");
    assert!(
        integrity.body.contains("Start a full check"),
        "no check runs: it may be started"
    );

    let changed = change_password(&mut admin, NEW_PASSWORD).await;
    assert_refused_unrecorded(&changed, "changing the password");
    assert_eq!(
        user(&server, ADMIN_EMAIL).await.password_hash,
        admin_hash,
        "the password is unchanged"
    );
    admin
        .get("/account/sessions")
        .await
        .assert_status(StatusCode::OK, "and the session goes on");

    // A password reset through a mailed link is refused the same way, and the link is not
    // used up by the refusal.
    let token = request_reset(&server, AUDITOR_EMAIL).await;
    let mut visitor = Browser::new(&server);
    let reset = submit_reset(&mut visitor, &token, NEW_PASSWORD, NEW_PASSWORD).await;
    assert_refused_unrecorded(&reset, "resetting a password");
    assert_eq!(
        user(&server, AUDITOR_EMAIL).await.password_hash,
        auditor.password_hash,
        "the auditor's password is unchanged"
    );

    assert_eq!(
        audit_trail(store, tenant).await,
        [("access".to_owned(), "sign_in".to_owned(), None)],
        "nothing but the sign-in was recorded, and nothing else happened"
    );

    // The normal path: with the ledger taking records, the same action is done and recorded.
    refuse_records_of_type(&server, "administration", false).await;
    let reset = submit_reset(&mut visitor, &token, NEW_PASSWORD, NEW_PASSWORD).await;
    assert_eq!(
        (reset.status, reset.location()),
        (
            StatusCode::SEE_OTHER,
            Some("/sign-in?done=password-changed")
        ),
        "the same link works once the reset can be recorded"
    );
    let created = admin
        .post(
            "/api-keys",
            &[
                ("csrf", &csrf),
                ("role", "read"),
                ("label", "recorded key"),
                ("expires_in_days", ""),
            ],
        )
        .await;
    created.assert_status(StatusCode::CREATED, "the key is created");
    let keys = store.api_keys(tenant).await.expect("keys");
    assert_eq!(keys.len(), 2);
    let new_id = keys[1].key_id.clone();
    let marker = "id=\"new-key\">";
    let start_at = created.body.find(marker).expect("the key is shown") + marker.len();
    let key_text: String = created.body[start_at..]
        .chars()
        .take_while(|c| *c != '<')
        .collect();
    secret_scan::register_api_key(&key_text);
    assert_eq!(
        audit_trail(store, tenant).await[1..],
        [
            (
                "administration".to_owned(),
                "password_reset".to_owned(),
                Some(AUDITOR_EMAIL.to_owned())
            ),
            (
                "administration".to_owned(),
                "api_key_created".to_owned(),
                Some(new_id)
            )
        ],
        "and recorded"
    );
    server.stop().await;
}

/// While the ledger refuses `access` records, no evidence leaves (no proof file, no bundle),
/// nobody signs in (no session is created, no cookie set) and a sign-out is refused rather than
/// done unrecorded (the session stays, and says so).
async fn nothing_is_shown_or_signed_in_when_the_ledger_refuses_the_access_record(backend: Backend) {
    let server = start(&backend, false).await;
    let store = &server.store;
    let tenant = &server.tenant;
    let event_id = append_decision(store, tenant).await;
    store.publish_checkpoints().await.expect("checkpoint");
    let mut admin = Browser::signed_in(&server, ADMIN_EMAIL).await;
    let csrf = admin.csrf().await;
    let admin_id = user(&server, ADMIN_EMAIL).await.user_id;
    let live = || async {
        store
            .live_sessions(tenant, &admin_id, store.now_us())
            .await
            .expect("sessions")
            .len()
    };
    assert_eq!(live().await, 1);

    refuse_records_of_type(&server, "access", true).await;
    for what in ["proof", "bundle"] {
        let page = admin.get(&format!("/decisions/{event_id}/{what}")).await;
        assert_refused_unrecorded(&page, what);
        assert!(
            page.header("content-disposition").is_none(),
            "{what}: nothing is downloaded"
        );
        assert!(
            !page.body.contains(&event_id),
            "{what}: the page holds none of the evidence"
        );
    }
    let signed_out = admin.post("/sign-out", &[("csrf", &csrf)]).await;
    assert_refused_unrecorded(&signed_out, "signing out");
    assert_eq!(live().await, 1, "the session was not ended unrecorded");
    admin
        .get("/account/sessions")
        .await
        .assert_status(StatusCode::OK, "and still works");

    let mut other = Browser::new(&server);
    let refused = other.sign_in(ADMIN_EMAIL, PASSWORD).await;
    assert_refused_unrecorded(&refused, "signing in");
    assert!(other.session().is_none(), "no session cookie is set");
    assert_eq!(live().await, 1, "no session was created");

    assert_eq!(
        audit_trail(store, tenant).await,
        [("access".to_owned(), "sign_in".to_owned(), None)],
        "only the first sign-in is recorded, and only it happened"
    );

    refuse_records_of_type(&server, "access", false).await;
    other.sign_in_ok(ADMIN_EMAIL, PASSWORD).await;
    admin
        .get(&format!("/decisions/{event_id}/proof"))
        .await
        .assert_status(StatusCode::OK, "the proof, once recorded");
    assert_eq!(
        audited_actions(store, tenant).await,
        ["sign_in", "sign_in", "download_proof"],
        "each recorded"
    );
    server.stop().await;
}

/// An action is done only after its record is acknowledged; when the action itself then fails,
/// the failure page is shown and a second record says the action did not take effect, pointing
/// at the first, so the trail never claims an action that did not happen.
async fn an_action_that_fails_after_its_record_is_followed_by_a_record_saying_so(backend: Backend) {
    let server = start(&backend, false).await;
    let store = &server.store;
    let tenant = &server.tenant;
    let mut admin = Browser::signed_in(&server, ADMIN_EMAIL).await;
    let csrf = admin.csrf().await;
    refuse_inserts(server.db(), "api_keys", "refuse_keys", "1 = 1", true).await;
    let created = admin
        .post(
            "/api-keys",
            &[
                ("csrf", &csrf),
                ("role", "read"),
                ("label", "unstored key"),
                ("expires_in_days", ""),
            ],
        )
        .await;
    created.assert_status(StatusCode::INTERNAL_SERVER_ERROR, "the key is not stored");
    assert!(!created.body.contains("id=\"new-key\""), "no key is shown");
    assert!(store.api_keys(tenant).await.expect("keys").is_empty());

    let records: Vec<Value> = store
        .records(tenant, seq(0), 1000)
        .await
        .expect("ledger")
        .into_iter()
        .filter(|r| r.event_type.as_str() == "administration")
        .map(|r| serde_json::from_str(r.payload.as_str()).expect("JSON"))
        .collect();
    let event_ids: Vec<String> = store
        .records(tenant, seq(0), 1000)
        .await
        .expect("ledger")
        .into_iter()
        .filter(|r| r.event_type.as_str() == "administration")
        .map(|r| r.event_id.to_string())
        .collect();
    assert_eq!(
        records.len(),
        2,
        "the action's record and its outcome: {records:?}"
    );
    assert_eq!(records[0]["action"], "api_key_created");
    assert!(records[0].get("outcome").is_none());
    assert_eq!(records[1]["action"], "api_key_created");
    assert_eq!(records[1]["target"], records[0]["target"]);
    assert_eq!(records[1]["outcome"], "failed");
    assert_eq!(records[1]["reason"], "the key could not be stored");
    assert_eq!(records[1]["refers_to"], event_ids[0].as_str());
    assert_eq!(records[1]["actor"], ADMIN_EMAIL);
    server.stop().await;
}

/// The portal draws on the tenant's hourly allowance of integrity checks like the API: the 7th
/// start within the hour is a 429 page with Retry-After, starts nothing, and appends nothing
/// (the allowance is asked before the start is recorded, so pressing the button again cannot
/// fill the ledger). Each of the six accepted starts is recorded once.
async fn the_portal_refuses_the_seventh_check_of_an_hour_without_recording_it(backend: Backend) {
    use auditex::app::integrity::CHECK_STARTS_PER_WINDOW_MAX;
    let server = start(&backend, false).await;
    let store = &server.store;
    let tenant = &server.tenant;
    append_decision(store, tenant).await;
    store.publish_checkpoints().await.expect("checkpoint");
    let mut admin = Browser::signed_in(&server, ADMIN_EMAIL).await;
    let csrf = admin.csrf().await;
    for n in 0..CHECK_STARTS_PER_WINDOW_MAX {
        let started = admin.post("/integrity/start", &[("csrf", &csrf)]).await;
        assert_eq!(
            (started.status, started.location()),
            (StatusCode::SEE_OTHER, Some("/integrity?done=started")),
            "start {n}"
        );
        // Wait until it has ended: the page offers a new start again.
        let mut ended = false;
        for _ in 0..600 {
            if admin
                .get("/integrity")
                .await
                .body
                .contains("Start a full check")
            {
                ended = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ended, "check {n} ended");
    }
    let size = store.tree_size(tenant).await.expect("size");
    for _ in 0..3 {
        let refused = admin.post("/integrity/start", &[("csrf", &csrf)]).await;
        refused.assert_status(StatusCode::TOO_MANY_REQUESTS, "the 7th start");
        assert!(
            refused.retry_after().is_some_and(|s| s > 3000 && s <= 3601),
            "Retry-After: {:?}",
            refused.retry_after()
        );
        assert!(
            refused.body.contains("Check not started")
                && refused
                    .body
                    .contains("integrity checks per hour are used up"),
            "{}",
            refused.body
        );
    }
    assert_eq!(
        store.tree_size(tenant).await.expect("size"),
        size,
        "refused starts append nothing"
    );
    let started: Vec<String> = audited_actions(store, tenant)
        .await
        .into_iter()
        .filter(|a| a.starts_with("integrity_check"))
        .collect();
    assert_eq!(started.len(), CHECK_STARTS_PER_WINDOW_MAX, "{started:?}");
    server.stop().await;
}

// ---------------------------------------------------------------- the Subjects page (issue 20)

backend_tests!(
    a_compliance_officer_erases_a_field_and_the_subjects_page_names_the_erasure,
    an_erasure_without_a_reason_or_with_a_wrong_confirmation_erases_and_records_nothing,
    an_erasure_with_a_missing_wrong_or_foreign_csrf_token_erases_and_records_nothing,
    another_tenants_subject_is_not_found_on_the_subjects_page_and_cannot_be_erased,
    auditors_and_regulators_read_the_subjects_page_but_their_erasures_are_refused,
    an_erasure_whose_administration_record_the_ledger_refuses_is_not_done,
    the_subjects_page_lists_fifty_records_a_page,
);

/// The subject of [`PortalServer::append_personal_decision`]'s records in these tests.
const SUBJECT: &str = "subj-4711";
/// The subject's page.
const SUBJECT_PAGE: &str = "/subjects?subject_ref=subj-4711";
/// The erase form's action, present only where erasing is offered.
const ERASE_FORM: &str = "action=\"/subjects/erase\"";
/// How the list marks a field still stored.
const STORED: &str = "<span class=\"stored\">stored</span>";

/// A complete erase form for [`SUBJECT`]: `scope` is `subject` or `fields` (then `fields`).
fn erase_form<'a>(csrf: &'a str, scope: &'a str, fields: &[&'a str]) -> FormFields<'a> {
    let mut form = vec![
        ("csrf", csrf),
        ("subject_ref", SUBJECT),
        ("scope", scope),
        ("legal_basis", LEGAL_BASES[1]),
        ("legal_basis_other", ""),
        (
            "reason",
            "The customer withdrew consent by letter of 2 December",
        ),
        ("confirm", SUBJECT),
    ];
    form.extend(fields.iter().map(|f| ("field", *f)));
    form
}

/// Replaces the value of `name` in `form` (or adds it).
fn with_value<'a>(mut form: FormFields<'a>, name: &'a str, value: &'a str) -> FormFields<'a> {
    form.retain(|(n, _)| *n != name);
    form.push((name, value));
    form
}

/// The tenant's `erasure` records, as (seq, payload).
async fn erasure_records(store: &Store, tenant: &TenantId) -> Vec<(u64, Value)> {
    store
        .records(tenant, seq(0), 1000)
        .await
        .expect("read the ledger")
        .into_iter()
        .filter(|r| r.event_type.as_str() == "erasure")
        .map(|r| {
            let payload = serde_json::from_str(r.payload.as_str()).expect("JSON payload");
            (r.seq.get(), payload)
        })
        .collect()
}

/// The seq of the tenant's last `administration` record with this action.
async fn administration_seq(store: &Store, tenant: &TenantId, action: &str) -> Option<u64> {
    store
        .records(tenant, seq(0), 1000)
        .await
        .expect("read the ledger")
        .into_iter()
        .filter(|r| r.event_type.as_str() == "administration")
        .filter(|r| {
            serde_json::from_str::<Value>(r.payload.as_str())
                .is_ok_and(|p| p["action"] == action && p.get("outcome").is_none())
        })
        .map(|r| r.seq.get())
        .next_back()
}

#[track_caller]
fn assert_values_not_shown(page: &Page, what: &str) {
    for (field, value) in PERSONAL_FIELDS {
        assert!(
            !page.body.contains(value),
            "{what}: the value of {field} is never shown on the list"
        );
    }
}

/// A compliance officer sees both fields stored, erases `email` with a typed confirmation, and
/// the page (and the store) name the erasure record that erased it; the request is recorded
/// before the erasure; asking again appends nothing and names the same erasure; erasing the
/// whole subject then takes the rest.
async fn a_compliance_officer_erases_a_field_and_the_subjects_page_names_the_erasure(
    backend: Backend,
) {
    let server = start(&backend, false).await;
    let store = &server.store;
    let tenant = &server.tenant;
    server
        .create_user(OFFICER_EMAIL, PortalRole::Compliance, None)
        .await;
    let decision = server.append_personal_decision(tenant, SUBJECT).await;
    let mut officer = Browser::signed_in(&server, OFFICER_EMAIL).await;

    let search = officer.get("/subjects").await;
    search.assert_status(StatusCode::OK, "the search form");
    assert!(search.body.contains("href=\"/subjects\""), "the navigation");
    let page = officer.get(SUBJECT_PAGE).await;
    page.assert_status(StatusCode::OK, "the subject's page");
    assert_eq!(page.body.matches(STORED).count(), 2, "both fields stored");
    assert!(page.body.contains("<code>email</code>"));
    assert!(page.body.contains("<code>full_name</code>"));
    assert!(page.body.contains(ERASE_FORM), "an officer may erase");
    assert_values_not_shown(&page, "the subject's page");

    let csrf = page.csrf();
    let done = officer
        .post("/subjects/erase", &erase_form(&csrf, "fields", &["email"]))
        .await;
    done.assert_status(StatusCode::OK, "the erasure");
    let erasures = erasure_records(store, tenant).await;
    assert_eq!(erasures.len(), 1, "one erasure record");
    let (erasure, payload) = &erasures[0];
    assert!(
        done.body.contains(&format!(
            "Erased 1 stored value: erasure record #{erasure}."
        )),
        "the result names the erasure: {}",
        done.body
    );
    assert!(done.body.contains(&format!("erased by #{erasure}")));
    assert_eq!(done.body.matches(STORED).count(), 1, "full_name is stored");
    assert_values_not_shown(&done, "the result");
    assert_eq!(payload["subject_ref"], SUBJECT);
    assert_eq!(payload["fields"], serde_json::json!(["email"]));
    assert_eq!(payload["legal_basis"], LEGAL_BASES[1]);
    assert_eq!(
        payload["reason"],
        "The customer withdrew consent by letter of 2 December"
    );
    assert_eq!(
        server.stored_fields(tenant, decision).await,
        ["full_name"],
        "the email is gone from the store"
    );
    let erased = store
        .erased_fields(tenant, seq(decision))
        .await
        .expect("erased fields");
    assert_eq!(
        erased
            .iter()
            .map(|(f, by)| (f.as_str(), *by))
            .collect::<Vec<_>>(),
        [("email", *erasure)]
    );
    let recorded = administration_seq(store, tenant, "subject_erasure:fields=email")
        .await
        .expect("the request is recorded");
    assert!(
        recorded < *erasure,
        "the request's record ({recorded}) comes before the erasure ({erasure})"
    );
    assert!(
        audit_trail(store, tenant).await.contains(&(
            "administration".to_owned(),
            "subject_erasure:fields=email".to_owned(),
            Some(SUBJECT.to_owned())
        )),
        "the record names the subject"
    );

    // The same request again: nothing is left, nothing is appended.
    let again = officer
        .post("/subjects/erase", &erase_form(&csrf, "fields", &["email"]))
        .await;
    again.assert_status(StatusCode::OK, "the repeated erasure");
    assert!(
        again.body.contains(&format!(
            "Nothing was left to erase: already erased by #{erasure}."
        )),
        "{}",
        again.body
    );
    assert_eq!(
        erasure_records(store, tenant).await.len(),
        1,
        "no new record"
    );

    // The whole subject: the rest goes.
    let all = officer
        .post("/subjects/erase", &erase_form(&csrf, "subject", &[]))
        .await;
    all.assert_status(StatusCode::OK, "the whole subject");
    let erasures = erasure_records(store, tenant).await;
    assert_eq!(erasures.len(), 2);
    let (second, payload) = &erasures[1];
    assert!(
        payload.get("fields").is_none(),
        "the whole subject: {payload}"
    );
    assert!(
        all.body
            .contains(&format!("Erased 1 stored value: erasure record #{second}.")),
        "{}",
        all.body
    );
    assert_eq!(all.body.matches(STORED).count(), 0, "nothing stored");
    assert!(server.stored_fields(tenant, decision).await.is_empty());
    server.stop().await;
}

/// Every incomplete or unconfirmed erase form comes back with its problem (422), erases
/// nothing and records nothing; a field the subject never had is refused by the store after
/// the request was recorded, and the record of its failure follows.
async fn an_erasure_without_a_reason_or_with_a_wrong_confirmation_erases_and_records_nothing(
    backend: Backend,
) {
    let server = start(&backend, false).await;
    let store = &server.store;
    let tenant = &server.tenant;
    server
        .create_user(OFFICER_EMAIL, PortalRole::Compliance, None)
        .await;
    let decision = server.append_personal_decision(tenant, SUBJECT).await;
    let mut officer = Browser::signed_in(&server, OFFICER_EMAIL).await;
    let csrf = officer.get(SUBJECT_PAGE).await.csrf();
    let complete = erase_form(&csrf, "fields", &["email"]);

    let refused: Vec<(&str, FormFields, &str)> = vec![
        (
            "no reason",
            with_value(complete.clone(), "reason", ""),
            "Give the reason for the erasure",
        ),
        (
            "a blank reason",
            with_value(complete.clone(), "reason", "   "),
            "Give the reason for the erasure",
        ),
        (
            "a wrong confirmation",
            with_value(complete.clone(), "confirm", "subj-471"),
            CONFIRMATION_MISMATCH,
        ),
        (
            "a confirmation in other case",
            with_value(complete.clone(), "confirm", "SUBJ-4711"),
            CONFIRMATION_MISMATCH,
        ),
        (
            "no confirmation",
            complete
                .iter()
                .copied()
                .filter(|(n, _)| *n != "confirm")
                .collect(),
            CONFIRMATION_MISMATCH,
        ),
        (
            "no legal basis",
            with_value(complete.clone(), "legal_basis", ""),
            "Choose the legal basis",
        ),
        (
            "a legal basis not offered",
            with_value(complete.clone(), "legal_basis", "GDPR Art. 99"),
            "Choose one of the legal bases offered",
        ),
        (
            "other without saying which",
            with_value(complete.clone(), "legal_basis", "other"),
            "Say which legal basis applies",
        ),
        (
            "chosen fields but none chosen",
            erase_form(&csrf, "fields", &[]),
            "Choose at least one field",
        ),
        (
            "no scope",
            with_value(complete.clone(), "scope", ""),
            "Choose what to erase",
        ),
    ];
    for (what, form, message) in &refused {
        let page = officer.post("/subjects/erase", form).await;
        page.assert_status(StatusCode::UNPROCESSABLE_ENTITY, what);
        assert!(
            page.body.contains(message),
            "{what}: says {message:?}: {}",
            page.body
        );
        assert!(page.body.contains(ERASE_FORM), "{what}: the form again");
    }
    // What was typed stays in the form.
    let page = officer
        .post(
            "/subjects/erase",
            &with_value(complete.clone(), "confirm", "nope"),
        )
        .await;
    assert!(
        page.body
            .contains("The customer withdrew consent by letter of 2 December</textarea>"),
        "the reason is kept"
    );
    assert_eq!(
        server.stored_fields(tenant, decision).await,
        ["email", "full_name"],
        "nothing erased"
    );
    assert!(
        erasure_records(store, tenant).await.is_empty(),
        "no erasure"
    );
    assert_eq!(
        audited_actions(store, tenant).await,
        ["sign_in"],
        "nothing but the sign-in recorded"
    );

    // A field the subject's records never had: refused by the store, naming it.
    let unknown = officer
        .post("/subjects/erase", &erase_form(&csrf, "fields", &["salary"]))
        .await;
    unknown.assert_status(StatusCode::UNPROCESSABLE_ENTITY, "an unknown field");
    assert!(
        unknown
            .body
            .contains("Not erased: the subject&#39;s records have no erasable field named salary.")
            || unknown
                .body
                .contains("Not erased: the subject's records have no erasable field named salary."),
        "{}",
        unknown.body
    );
    assert_eq!(
        server.stored_fields(tenant, decision).await,
        ["email", "full_name"],
        "nothing erased"
    );
    assert!(
        erasure_records(store, tenant).await.is_empty(),
        "no erasure"
    );
    assert_eq!(
        audited_actions(store, tenant).await,
        [
            "sign_in",
            "subject_erasure:fields=salary",
            "subject_erasure:fields=salary"
        ],
        "the request and the record of its failure"
    );
    let failure = store
        .records(tenant, seq(0), 1000)
        .await
        .expect("ledger")
        .into_iter()
        .filter(|r| r.event_type.as_str() == "administration")
        .map(|r| serde_json::from_str::<Value>(r.payload.as_str()).expect("JSON"))
        .next_back()
        .expect("the failure record");
    assert_eq!(failure["outcome"], "failed");
    server.stop().await;
}

/// A forged erase form (no token, an empty, tampered or made-up one, or another session's of
/// the same officer) is refused with 403 before anything else: nothing erased, nothing recorded.
async fn an_erasure_with_a_missing_wrong_or_foreign_csrf_token_erases_and_records_nothing(
    backend: Backend,
) {
    let server = start(&backend, false).await;
    let store = &server.store;
    let tenant = &server.tenant;
    server
        .create_user(OFFICER_EMAIL, PortalRole::Compliance, None)
        .await;
    let decision = server.append_personal_decision(tenant, SUBJECT).await;
    let mut officer = Browser::signed_in(&server, OFFICER_EMAIL).await;
    let mut other = Browser::signed_in(&server, OFFICER_EMAIL).await;
    let own = officer.get(SUBJECT_PAGE).await.csrf();
    let foreign = other.get(SUBJECT_PAGE).await.csrf();
    let (own_key, own_mac) = own.split_once('.').expect("key.mac");
    let tampered = format!("{own_key}.{}", flip_char(own_mac, 10));
    let made_up = "00000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    for (what, token) in [
        ("an empty", ""),
        ("a tampered", tampered.as_str()),
        ("a made-up", made_up),
        ("another session's", foreign.as_str()),
    ] {
        let page = officer
            .post("/subjects/erase", &erase_form(token, "subject", &[]))
            .await;
        page.assert_status(StatusCode::FORBIDDEN, &format!("{what} token"));
        assert!(page.body.contains(CSRF_REFUSED), "{what} token");
    }
    let without: FormFields = erase_form("", "subject", &[])
        .into_iter()
        .filter(|(n, _)| *n != "csrf")
        .collect();
    let page = officer.post("/subjects/erase", &without).await;
    page.assert_status(StatusCode::FORBIDDEN, "no token");
    assert!(page.body.contains(CSRF_REFUSED), "no token");
    assert_eq!(
        server.stored_fields(tenant, decision).await,
        ["email", "full_name"],
        "nothing erased"
    );
    assert!(
        erasure_records(store, tenant).await.is_empty(),
        "no erasure"
    );
    assert_eq!(
        audited_actions(store, tenant).await,
        ["sign_in", "sign_in"],
        "nothing but the sign-ins recorded"
    );
    // The session's own token works: the refusals were about the token.
    officer
        .post("/subjects/erase", &erase_form(&own, "subject", &[]))
        .await
        .assert_status(StatusCode::OK, "the right token");
    assert!(server.stored_fields(tenant, decision).await.is_empty());
    server.stop().await;
}

/// Another tenant's subject is not found — the same page as a subject nobody has — and an
/// erase form naming it is not found either: nothing erased there, nothing recorded here.
async fn another_tenants_subject_is_not_found_on_the_subjects_page_and_cannot_be_erased(
    backend: Backend,
) {
    const THEIR_SUBJECT: &str = "globex-cust-9";
    const THEIR_OFFICER: &str = "officer@globex.test";
    let server = start(&backend, false).await;
    let store = &server.store;
    let tenant = &server.tenant;
    let other = tenant_id("globex-bank");
    store.create_tenant(&other).await.expect("second tenant");
    let hash = hash_password(PASSWORD.to_owned()).await.expect("hash");
    store
        .create_user(
            &other,
            THEIR_OFFICER,
            PortalRole::Compliance,
            &hash,
            None,
            store.now_us(),
        )
        .await
        .expect("their officer");
    server
        .create_user(OFFICER_EMAIL, PortalRole::Compliance, None)
        .await;
    server.append_personal_decision(tenant, SUBJECT).await;
    let theirs = server.append_personal_decision(&other, THEIR_SUBJECT).await;

    let mut officer = Browser::signed_in(&server, OFFICER_EMAIL).await;
    let nobody = officer.get("/subjects?subject_ref=nobody-at-all").await;
    nobody.assert_status(StatusCode::NOT_FOUND, "an unknown subject");
    let foreign = officer
        .get(&format!("/subjects?subject_ref={THEIR_SUBJECT}"))
        .await;
    foreign.assert_status(StatusCode::NOT_FOUND, "another tenant's subject");
    assert_eq!(
        foreign.body, nobody.body,
        "another tenant's subject is answered like one nobody has"
    );
    assert!(!foreign.body.contains(THEIR_SUBJECT));

    let csrf = officer.get(SUBJECT_PAGE).await.csrf();
    let form: FormFields = erase_form(&csrf, "subject", &[])
        .into_iter()
        .map(|(n, v)| match n {
            "subject_ref" | "confirm" => (n, THEIR_SUBJECT),
            _ => (n, v),
        })
        .collect();
    let page = officer.post("/subjects/erase", &form).await;
    page.assert_status(StatusCode::NOT_FOUND, "erasing another tenant's subject");
    assert_eq!(page.body, nobody.body, "the same not-found page");
    assert_eq!(
        server.stored_fields(&other, theirs).await,
        ["email", "full_name"],
        "nothing erased in the other tenant"
    );
    assert!(erasure_records(store, &other).await.is_empty());
    assert!(erasure_records(store, tenant).await.is_empty());
    assert_eq!(
        audited_actions(store, tenant).await,
        ["sign_in"],
        "nothing recorded here"
    );

    // Their officer sees their subject, and not ours.
    let mut them = Browser::new(&server);
    them.sign_in_to("globex-bank", THEIR_OFFICER, PASSWORD)
        .await;
    them.get(&format!("/subjects?subject_ref={THEIR_SUBJECT}"))
        .await
        .assert_status(StatusCode::OK, "their subject, for them");
    them.get(SUBJECT_PAGE)
        .await
        .assert_status(StatusCode::NOT_FOUND, "our subject, for them");
    server.stop().await;
}

/// Auditors and regulators read the Subjects page without the erase form, and their erase
/// forms are refused (403) even with a valid token; administrators do not see the page.
async fn auditors_and_regulators_read_the_subjects_page_but_their_erasures_are_refused(
    backend: Backend,
) {
    let server = start(&backend, false).await;
    let store = &server.store;
    let tenant = &server.tenant;
    server
        .create_user(AUDITOR_EMAIL, PortalRole::Auditor, None)
        .await;
    let week_us = 7 * 24 * 3600 * 1_000_000;
    server
        .create_user(
            REGULATOR_EMAIL,
            PortalRole::Regulator,
            Some(store.now_us() + week_us),
        )
        .await;
    let decision = server.append_personal_decision(tenant, SUBJECT).await;
    for email in [AUDITOR_EMAIL, REGULATOR_EMAIL] {
        let mut reader = Browser::signed_in(&server, email).await;
        let page = reader.get(SUBJECT_PAGE).await;
        page.assert_status(StatusCode::OK, email);
        assert!(
            page.body.contains("href=\"/subjects\""),
            "{email}: the navigation"
        );
        assert_eq!(page.body.matches(STORED).count(), 2, "{email}: the fields");
        assert!(!page.body.contains(ERASE_FORM), "{email}: no erase form");
        assert!(
            !page.body.contains("name=\"confirm\""),
            "{email}: no erase form"
        );
        assert_values_not_shown(&page, email);
        let refused = reader
            .post("/subjects/erase", &erase_form(&page.csrf(), "subject", &[]))
            .await;
        refused.assert_status(StatusCode::FORBIDDEN, &format!("{email} erases"));
        assert!(refused.body.contains(ROLE_REFUSED), "{email}: the role");
    }
    let mut admin = Browser::signed_in(&server, ADMIN_EMAIL).await;
    let page = admin.get(SUBJECT_PAGE).await;
    page.assert_status(StatusCode::FORBIDDEN, "an administrator");
    assert!(page.body.contains(ROLE_REFUSED));
    let dashboard = admin.get("/").await;
    assert!(
        !dashboard.body.contains("href=\"/subjects\""),
        "no Subjects link for an administrator"
    );
    assert_eq!(
        server.stored_fields(tenant, decision).await,
        ["email", "full_name"],
        "nothing erased"
    );
    assert!(erasure_records(store, tenant).await.is_empty());
    assert_eq!(
        audited_actions(store, tenant).await,
        ["sign_in", "sign_in", "sign_in"],
        "nothing but the sign-ins recorded"
    );
    server.stop().await;
}

/// While the ledger refuses `administration` records an erasure is refused with the 503 page
/// and nothing is erased; once it takes them again, the same form erases.
async fn an_erasure_whose_administration_record_the_ledger_refuses_is_not_done(backend: Backend) {
    let server = start(&backend, false).await;
    let store = &server.store;
    let tenant = &server.tenant;
    server
        .create_user(OFFICER_EMAIL, PortalRole::Compliance, None)
        .await;
    let decision = server.append_personal_decision(tenant, SUBJECT).await;
    let mut officer = Browser::signed_in(&server, OFFICER_EMAIL).await;
    let csrf = officer.get(SUBJECT_PAGE).await.csrf();

    refuse_records_of_type(&server, "administration", true).await;
    let page = officer
        .post("/subjects/erase", &erase_form(&csrf, "subject", &[]))
        .await;
    assert_refused_unrecorded(&page, "an erasure without its record");
    assert_eq!(
        server.stored_fields(tenant, decision).await,
        ["email", "full_name"],
        "nothing erased"
    );
    assert!(
        erasure_records(store, tenant).await.is_empty(),
        "no erasure"
    );

    refuse_records_of_type(&server, "administration", false).await;
    officer
        .post("/subjects/erase", &erase_form(&csrf, "subject", &[]))
        .await
        .assert_status(StatusCode::OK, "the erasure, recorded");
    assert!(server.stored_fields(tenant, decision).await.is_empty());
    assert_eq!(erasure_records(store, tenant).await.len(), 1);
    server.stop().await;
}

/// A subject with 51 records is listed 50 to a page, oldest first, with a link to the rest.
async fn the_subjects_page_lists_fifty_records_a_page(backend: Backend) {
    let server = start(&backend, false).await;
    let tenant = &server.tenant;
    server
        .create_user(AUDITOR_EMAIL, PortalRole::Auditor, None)
        .await;
    let mut seqs = Vec::new();
    for _ in 0..51 {
        seqs.push(server.append_personal_decision(tenant, SUBJECT).await);
    }
    let mut auditor = Browser::signed_in(&server, AUDITOR_EMAIL).await;
    let first = auditor.get(SUBJECT_PAGE).await;
    first.assert_status(StatusCode::OK, "the first page");
    let rows = |page: &Page| page.body.matches("<tr>").count() - 1;
    assert_eq!(rows(&first), 50, "fifty records");
    assert_eq!(first.body.matches(STORED).count(), 100, "two fields each");
    let next = format!("/subjects?subject_ref={SUBJECT}&amp;after={}", seqs[49]);
    assert!(first.body.contains(&next), "the next page's link: {next}");
    let second = auditor
        .get(&format!(
            "/subjects?subject_ref={SUBJECT}&after={}",
            seqs[49]
        ))
        .await;
    second.assert_status(StatusCode::OK, "the second page");
    assert_eq!(rows(&second), 1, "the last record");
    assert!(second.body.contains(&format!("<td>{}</td>", seqs[50])));
    assert!(!second.body.contains("Next page"));
    server.stop().await;
}

// ---------------------------------------------------------------- access package, holds, retention

backend_tests!(
    auditors_regulators_and_officers_download_a_verifiable_access_package_and_each_download_is_recorded,
    an_access_package_is_refused_with_try_again_while_the_subject_index_lags,
    a_compliance_officers_hold_refuses_the_erasure_until_it_is_lifted,
    a_hold_form_without_a_reason_or_with_a_bad_decision_or_hold_changes_nothing,
    auditors_and_regulators_see_the_holds_but_their_hold_forms_are_refused,
    the_retention_schedule_shows_the_rules_and_when_each_stored_value_is_due,
);

/// Makes the subject's records part of a checkpoint the subject index has caught up with.
async fn checkpointed(server: &PortalServer) {
    server
        .store
        .publish_checkpoints()
        .await
        .expect("checkpoint");
    server
        .store
        .views_runner()
        .catch_up(&server.store)
        .await
        .expect("catch up");
}

/// Each reading role downloads the JSON Lines package (an attachment `ledger::package` verifies
/// against the keys it names, of the right subject) and the printable page (with its own style
/// policy); every download is an `access` record naming the subject; administrators are
/// refused and another tenant's or an unknown subject is not found.
async fn auditors_regulators_and_officers_download_a_verifiable_access_package_and_each_download_is_recorded(
    backend: Backend,
) {
    let server = start(&backend, false).await;
    let store = &server.store;
    let tenant = &server.tenant;
    let week_us = 7 * 24 * 3600 * 1_000_000;
    server
        .create_user(OFFICER_EMAIL, PortalRole::Compliance, None)
        .await;
    server
        .create_user(AUDITOR_EMAIL, PortalRole::Auditor, None)
        .await;
    server
        .create_user(
            REGULATOR_EMAIL,
            PortalRole::Regulator,
            Some(store.now_us() + week_us),
        )
        .await;
    server.append_personal_decision(tenant, SUBJECT).await;
    checkpointed(&server).await;
    let package = format!("/subjects/package?subject_ref={SUBJECT}");
    let printable = format!("{package}&format=html");
    for email in [OFFICER_EMAIL, AUDITOR_EMAIL, REGULATOR_EMAIL] {
        let mut reader = Browser::signed_in(&server, email).await;
        let page = reader.get(SUBJECT_PAGE).await;
        assert!(
            page.body
                .contains(&format!("href=\"{}\"", package.replace('&', "&amp;"))),
            "{email}: the package link"
        );
        assert!(
            page.body
                .contains(&format!("href=\"{}\"", printable.replace('&', "&amp;"))),
            "{email}: the printable link"
        );
        let jsonl = reader.get(&package).await;
        jsonl.assert_status(StatusCode::OK, email);
        assert_eq!(
            jsonl.header("content-type"),
            Some("application/x-ndjson"),
            "{email}"
        );
        assert!(
            jsonl
                .header("content-disposition")
                .is_some_and(|d| d.starts_with("attachment;")),
            "{email}: an attachment"
        );
        let header: Value = serde_json::from_str(jsonl.body.lines().next().expect("a header line"))
            .expect("JSON header");
        assert_eq!(header["format"], ledger::package::PACKAGE_FORMAT, "{email}");
        assert_eq!(header["subject_ref"], SUBJECT, "{email}");
        let trusted: Vec<ledger::note::VerifierKey> = header["verifier_keys"]
            .as_array()
            .expect("verifier keys")
            .iter()
            .map(|v| ledger::note::VerifierKey::parse(v.as_str().expect("text")).expect("vkey"))
            .collect();
        let report = ledger::package::verify_package(&jsonl.body, &trusted).expect("verifies");
        assert_eq!((report.records, report.decisions), (1, 1), "{email}");

        let html = reader.get(&printable).await;
        html.assert_status(StatusCode::OK, &format!("{email}: printable"));
        assert!(
            html.body
                .contains("Your data and the automated decisions about you")
        );
        assert!(
            html.header("content-security-policy")
                .is_some_and(|p| p.contains("style-src 'sha256-")),
            "{email}: the rendering keeps its own policy"
        );
    }
    let downloads: Vec<(String, String, Option<String>)> = audit_trail(store, tenant)
        .await
        .into_iter()
        .filter(|(_, action, _)| action.starts_with("download_subject_package"))
        .collect();
    let one = |action: &str| {
        (
            "access".to_owned(),
            action.to_owned(),
            Some(SUBJECT.to_owned()),
        )
    };
    assert_eq!(
        downloads,
        (0..3)
            .flat_map(|_| [
                one("download_subject_package"),
                one("download_subject_package_html")
            ])
            .collect::<Vec<_>>(),
        "each download recorded, naming the subject"
    );

    let mut officer = Browser::signed_in(&server, OFFICER_EMAIL).await;
    officer
        .get("/subjects/package?subject_ref=nobody-at-all")
        .await
        .assert_status(StatusCode::NOT_FOUND, "an unknown subject");
    officer
        .get(&format!("{package}&format=pdf"))
        .await
        .assert_status(StatusCode::BAD_REQUEST, "an unknown format");
    let mut admin = Browser::signed_in(&server, ADMIN_EMAIL).await;
    admin
        .get(&package)
        .await
        .assert_status(StatusCode::FORBIDDEN, "an administrator");
    assert_eq!(
        audit_trail(store, tenant)
            .await
            .iter()
            .filter(|(_, action, _)| action.starts_with("download_subject_package"))
            .count(),
        6,
        "refused downloads are not recorded"
    );
    server.stop().await;
}

/// While the subject index lags the latest checkpoint the download is refused with the
/// try-again page (503, Retry-After) and nothing is recorded; once it catches up it is served.
async fn an_access_package_is_refused_with_try_again_while_the_subject_index_lags(
    backend: Backend,
) {
    let server = start(&backend, false).await;
    let store = &server.store;
    let tenant = &server.tenant;
    server
        .create_user(AUDITOR_EMAIL, PortalRole::Auditor, None)
        .await;
    server.append_personal_decision(tenant, SUBJECT).await;
    checkpointed(&server).await;
    let mut auditor = Browser::signed_in(&server, AUDITOR_EMAIL).await;
    store.views_runner().stop();
    // Let the runner see the stop before anything new arrives.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let draft = ledger::draft::prepare_client_draft(
        &new_event_id(),
        "decision",
        &{
            let mut p = crate::support::decision_payload("approve");
            p["subject_ref"] = serde_json::json!(SUBJECT);
            p
        },
        &BTreeMap::new(),
        rand::random,
    )
    .expect("a valid decision");
    store.append(tenant, vec![draft]).await.expect("append");
    store.publish_checkpoints().await.expect("checkpoint");
    let package = format!("/subjects/package?subject_ref={SUBJECT}");
    let refused = auditor.get(&package).await;
    refused.assert_status(StatusCode::SERVICE_UNAVAILABLE, "the index lags");
    assert_eq!(refused.retry_after(), Some(1));
    assert!(
        refused.body.contains("Try again in a few seconds"),
        "{}",
        refused.body
    );
    assert!(
        !audited_actions(store, tenant)
            .await
            .iter()
            .any(|a| a.starts_with("download_subject_package")),
        "a refused download is not recorded"
    );
    store
        .views_runner()
        .catch_up(store)
        .await
        .expect("catch up");
    auditor
        .get(&package)
        .await
        .assert_status(StatusCode::OK, "caught up");
    server.stop().await;
}

/// The place-hold form's action, present only where holds may be placed.
const HOLD_FORM: &str = "action=\"/subjects/hold\"";
/// What the page says of a subject without an active hold.
const NO_HOLD: &str = "No legal hold is in force for this subject.";
/// A hold's reason in these tests.
const HOLD_REASON: &str = "Litigation pending before the district court";

/// The tenant's `legal_hold` records, as (seq, payload).
async fn hold_records(store: &Store, tenant: &TenantId) -> Vec<(u64, Value)> {
    store
        .records(tenant, seq(0), 1000)
        .await
        .expect("read the ledger")
        .into_iter()
        .filter(|r| r.event_type.as_str() == "legal_hold")
        .map(|r| {
            let payload = serde_json::from_str(r.payload.as_str()).expect("JSON payload");
            (r.seq.get(), payload)
        })
        .collect()
}

/// A compliance officer places a hold (a `legal_hold` record, preceded by the request's
/// `administration` record naming the subject); the page lists it and the erase form names it;
/// an erasure is refused (409) naming the hold and erases nothing; lifting the hold (a second
/// `legal_hold` record) lets the same erasure through.
async fn a_compliance_officers_hold_refuses_the_erasure_until_it_is_lifted(backend: Backend) {
    let server = start(&backend, false).await;
    let store = &server.store;
    let tenant = &server.tenant;
    server
        .create_user(OFFICER_EMAIL, PortalRole::Compliance, None)
        .await;
    let decision = server.append_personal_decision(tenant, SUBJECT).await;
    let mut officer = Browser::signed_in(&server, OFFICER_EMAIL).await;
    let page = officer.get(SUBJECT_PAGE).await;
    assert!(page.body.contains(NO_HOLD));
    assert!(page.body.contains(HOLD_FORM), "an officer may place a hold");
    let csrf = page.csrf();

    let placed = officer
        .post(
            "/subjects/hold",
            &[
                ("csrf", csrf.as_str()),
                ("subject_ref", SUBJECT),
                ("reason", HOLD_REASON),
                ("reference", "Case 2026-118"),
                ("decision_id", ""),
            ],
        )
        .await;
    placed.assert_status(StatusCode::OK, "the hold");
    let holds = hold_records(store, tenant).await;
    assert_eq!(holds.len(), 1, "one legal_hold record");
    let (hold, payload) = &holds[0];
    assert_eq!(payload["action"], "placed");
    assert_eq!(payload["subject_ref"], SUBJECT);
    assert_eq!(payload["reason"], HOLD_REASON);
    assert_eq!(payload["reference"], "Case 2026-118");
    assert!(
        placed.body.contains(&format!("Legal hold #{hold} placed.")),
        "{}",
        placed.body
    );
    assert!(placed.body.contains(&format!("Hold #{hold}</strong>")));
    assert!(
        placed.body.contains(&format!(
            "by record #{hold}. Reason: {HOLD_REASON}. Reference: Case 2026-118. The whole subject."
        )),
        "{}",
        placed.body
    );
    assert!(!placed.body.contains(NO_HOLD));
    let recorded = administration_seq(store, tenant, "legal_hold_place")
        .await
        .expect("the request is recorded");
    assert!(recorded < *hold, "the request's record comes first");
    assert!(audit_trail(store, tenant).await.contains(&(
        "administration".to_owned(),
        "legal_hold_place".to_owned(),
        Some(SUBJECT.to_owned())
    )));

    let page = officer.get(SUBJECT_PAGE).await;
    assert!(
        page.body.contains(&format!(
            "Under legal hold #{hold} ({HOLD_REASON}): an erasure of what it holds is refused"
        )),
        "the erase form names the hold"
    );
    let refused = officer
        .post("/subjects/erase", &erase_form(&csrf, "subject", &[]))
        .await;
    refused.assert_status(StatusCode::CONFLICT, "the held erasure");
    assert!(
        refused.body.contains(&format!(
            "Not erased: what the request would erase is under legal hold {hold} ({HOLD_REASON})."
        )),
        "{}",
        refused.body
    );
    assert_eq!(
        server.stored_fields(tenant, decision).await,
        ["email", "full_name"],
        "nothing erased"
    );
    assert!(erasure_records(store, tenant).await.is_empty());

    let hold_seq = hold.to_string();
    let lifted = officer
        .post(
            "/subjects/hold/lift",
            &[
                ("csrf", csrf.as_str()),
                ("subject_ref", SUBJECT),
                ("hold_seq", hold_seq.as_str()),
                ("reason", "The court dismissed the case"),
            ],
        )
        .await;
    lifted.assert_status(StatusCode::OK, "the lift");
    let holds = hold_records(store, tenant).await;
    assert_eq!(holds.len(), 2, "a second legal_hold record");
    let (lift, payload) = &holds[1];
    assert_eq!(payload["action"], "lifted");
    assert_eq!(payload["hold_seq"], *hold);
    assert!(
        lifted
            .body
            .contains(&format!("Legal hold #{hold} lifted: record #{lift}.")),
        "{}",
        lifted.body
    );
    assert!(lifted.body.contains(NO_HOLD));
    assert!(
        audited_actions(store, tenant)
            .await
            .contains(&format!("legal_hold_lift:hold_seq={hold}"))
    );

    officer
        .post("/subjects/erase", &erase_form(&csrf, "subject", &[]))
        .await
        .assert_status(StatusCode::OK, "the erasure after the lift");
    assert!(server.stored_fields(tenant, decision).await.is_empty());
    assert_eq!(erasure_records(store, tenant).await.len(), 1);
    server.stop().await;
}

/// A hold without a reason or naming something that is not a decision id comes back (422) and
/// records nothing; a decision that is not the subject's and a hold that does not exist are
/// refused by the store (422) after the request was recorded, and the failure is recorded.
async fn a_hold_form_without_a_reason_or_with_a_bad_decision_or_hold_changes_nothing(
    backend: Backend,
) {
    let server = start(&backend, false).await;
    let store = &server.store;
    let tenant = &server.tenant;
    server
        .create_user(OFFICER_EMAIL, PortalRole::Compliance, None)
        .await;
    server.append_personal_decision(tenant, SUBJECT).await;
    let mut officer = Browser::signed_in(&server, OFFICER_EMAIL).await;
    let csrf = officer.get(SUBJECT_PAGE).await.csrf();
    let before = audited_actions(store, tenant).await;
    for (reason, decision, says) in [
        (
            "  ",
            "",
            "Give the reason: it is recorded in the ledger. No hold was placed.",
        ),
        (
            HOLD_REASON,
            "not-a-uuid",
            "is not an event id (a UUID). No hold was placed.",
        ),
    ] {
        let page = officer
            .post(
                "/subjects/hold",
                &[
                    ("csrf", csrf.as_str()),
                    ("subject_ref", SUBJECT),
                    ("reason", reason),
                    ("decision_id", decision),
                ],
            )
            .await;
        page.assert_status(StatusCode::UNPROCESSABLE_ENTITY, says);
        assert!(page.body.contains(says), "{}", page.body);
    }
    assert_eq!(
        audited_actions(store, tenant).await,
        before,
        "nothing recorded"
    );

    let foreign = new_event_id();
    let page = officer
        .post(
            "/subjects/hold",
            &[
                ("csrf", csrf.as_str()),
                ("subject_ref", SUBJECT),
                ("reason", HOLD_REASON),
                ("decision_id", foreign.as_str()),
            ],
        )
        .await;
    page.assert_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        "a decision not of the subject",
    );
    assert!(
        page.body.contains(&format!(
            "Not done: decision_id: no decision of this subject has event id {foreign}."
        )),
        "{}",
        page.body
    );
    let page = officer
        .post(
            "/subjects/hold/lift",
            &[
                ("csrf", csrf.as_str()),
                ("subject_ref", SUBJECT),
                ("hold_seq", "9999"),
                ("reason", "no such hold"),
            ],
        )
        .await;
    page.assert_status(StatusCode::UNPROCESSABLE_ENTITY, "an unknown hold");
    assert!(
        page.body
            .contains("Not done: no legal hold 9999 of this subject."),
        "{}",
        page.body
    );
    assert!(
        hold_records(store, tenant).await.is_empty(),
        "no legal_hold record"
    );
    let failures = store
        .records(tenant, seq(0), 1000)
        .await
        .expect("read the ledger")
        .into_iter()
        .filter(|r| {
            serde_json::from_str::<Value>(r.payload.as_str())
                .is_ok_and(|p| p["outcome"] == "failed")
        })
        .count();
    assert_eq!(failures, 2, "each refused request's failure is recorded");
    server.stop().await;
}

/// Auditors and regulators see the subject's holds without the forms, and their hold forms are
/// refused (403) even with a valid token; the hold stays.
async fn auditors_and_regulators_see_the_holds_but_their_hold_forms_are_refused(backend: Backend) {
    let server = start(&backend, false).await;
    let store = &server.store;
    let tenant = &server.tenant;
    server
        .create_user(AUDITOR_EMAIL, PortalRole::Auditor, None)
        .await;
    let week_us = 7 * 24 * 3600 * 1_000_000;
    server
        .create_user(
            REGULATOR_EMAIL,
            PortalRole::Regulator,
            Some(store.now_us() + week_us),
        )
        .await;
    server.append_personal_decision(tenant, SUBJECT).await;
    let hold = store
        .place_hold(
            tenant,
            auditex::store::holds::PlaceHold {
                subject_ref: SUBJECT.to_owned(),
                decision_id: None,
                reason: HOLD_REASON.to_owned(),
                reference: None,
            },
        )
        .await
        .expect("hold")
        .seq;
    let hold_seq = hold.to_string();
    for email in [AUDITOR_EMAIL, REGULATOR_EMAIL] {
        let mut reader = Browser::signed_in(&server, email).await;
        let page = reader.get(SUBJECT_PAGE).await;
        page.assert_status(StatusCode::OK, email);
        assert!(
            page.body.contains(&format!("Hold #{hold}</strong>")),
            "{email}: the hold"
        );
        assert!(!page.body.contains(HOLD_FORM), "{email}: no hold form");
        assert!(
            !page.body.contains("action=\"/subjects/hold/lift\""),
            "{email}: no lift form"
        );
        let csrf = page.csrf();
        reader
            .post(
                "/subjects/hold",
                &[
                    ("csrf", csrf.as_str()),
                    ("subject_ref", SUBJECT),
                    ("reason", "forged"),
                ],
            )
            .await
            .assert_status(StatusCode::FORBIDDEN, &format!("{email} places a hold"));
        reader
            .post(
                "/subjects/hold/lift",
                &[
                    ("csrf", csrf.as_str()),
                    ("subject_ref", SUBJECT),
                    ("hold_seq", hold_seq.as_str()),
                    ("reason", "forged"),
                ],
            )
            .await
            .assert_status(StatusCode::FORBIDDEN, &format!("{email} lifts a hold"));
    }
    assert_eq!(hold_records(store, tenant).await.len(), 1, "only the hold");
    assert_eq!(
        audited_actions(store, tenant).await,
        ["sign_in", "sign_in"],
        "nothing but the sign-ins recorded"
    );
    server.stop().await;
}

/// Without a policy the schedule says that nothing is erased by retention; with one, it lists
/// the rules and, per listed record that stores values, when they are due (capture time plus
/// the applicable rule's days), or that no rule applies to a record of another model.
async fn the_retention_schedule_shows_the_rules_and_when_each_stored_value_is_due(
    backend: Backend,
) {
    let server = start(&backend, false).await;
    let store = &server.store;
    let tenant = &server.tenant;
    server
        .create_user(AUDITOR_EMAIL, PortalRole::Auditor, None)
        .await;
    let decision = server.append_personal_decision(tenant, SUBJECT).await;
    let mut auditor = Browser::signed_in(&server, AUDITOR_EMAIL).await;
    let page = auditor.get(SUBJECT_PAGE).await;
    assert!(
        page.body.contains(
            "The tenant has no retention rule: stored values are kept until they are erased."
        ),
        "{}",
        page.body
    );
    assert!(page.body.contains("no rule applies"));

    let model = crate::support::decision_payload("approve")["model_id"]
        .as_str()
        .expect("a model id")
        .to_owned();
    let rules = vec![
        auditex::store::retention::RetentionRule::parse(
            "event_type=decision,model_id=another-model,days=200",
        )
        .expect("rule"),
        auditex::store::retention::RetentionRule::parse(&format!(
            "event_type=decision,model_id={model},days=400"
        ))
        .expect("rule"),
    ];
    let set = store
        .set_retention_policy(tenant, rules, "dpo@acme.test", None)
        .await
        .expect("policy")
        .seq;
    let page = auditor.get(SUBJECT_PAGE).await;
    page.assert_status(StatusCode::OK, "the page with a policy");
    assert!(
        page.body.contains(&format!(
            "The tenant's retention rules (set by record #{set}):"
        )),
        "{}",
        page.body
    );
    assert!(page.body.contains("<li>decision records of model another-model: stored values erased 200 days after capture</li>"));
    assert!(page.body.contains(&format!(
        "<li>decision records of model {model}: stored values erased 400 days after capture</li>"
    )));
    let captured = store
        .record(tenant, seq(decision))
        .await
        .expect("read")
        .expect("the decision")
        .captured_at_us
        .unix_micros();
    let due = chrono::DateTime::from_timestamp_micros(
        i64::try_from(captured + 400 * 86_400_000_000).expect("in range"),
    )
    .expect("a time")
    .format("%Y-%m-%d %H:%M:%S UTC")
    .to_string();
    assert!(
        page.body.contains(&format!(
            "#{decision} <code>email</code>, <code>full_name</code> — erased after {due} (rule 2)"
        )),
        "{}",
        page.body
    );
    assert!(!page.body.contains("no rule applies"));
    server.stop().await;
}

mod oversight;
