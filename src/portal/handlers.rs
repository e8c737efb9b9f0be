//! The portal's pages and form handlers.
//!
//! Every handler that shows data takes a [`Viewer`] (a live session, or a redirect to sign-in)
//! and reads only the viewer's tenant. Every form carries a CSRF token checked before anything
//! else; every change and every evidence download is appended to the ledger via [`audit`]
//! before it is done (or shown), and refused with a 503 page when the ledger does not
//! acknowledge that record.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::PeerIpKeyExtractor;

use super::input::{NoQuery, PortalForm, PortalQuery, has_control, number};
use super::pages::{self, Chrome, csrf_field, error, layout, notice, when};
use super::security::{self, DUMMY_HASH, password_problem, random_token, token_hash};
use super::{
    Audited, PRE_SESSION_COOKIE, Portal, PortalError, SESSION_COOKIE, Viewer, audit, clear_cookie,
    cookie, set_cookie,
};
use ledger::types::TenantId;

use crate::app::AppState;
use crate::auth::Role;
use crate::store::Store;
use crate::store::users::{PortalRole, Session, User};
use crate::store::views::DecisionQuery;

pub mod oversight;
pub mod subjects;
pub mod trends;
pub mod verify;

/// Sign-in, reset and forgot-password attempts allowed in a burst per client address.
pub const SIGN_IN_BURST: u32 = 20;
/// Seconds until one more such attempt is allowed per client address.
pub const SIGN_IN_REFILL_SECONDS: u64 = 3;

/// The portal routes.
pub fn routes() -> Router<AppState> {
    let limited = Arc::new(
        GovernorConfigBuilder::default()
            .per_second(SIGN_IN_REFILL_SECONDS)
            .burst_size(SIGN_IN_BURST)
            .key_extractor(PeerIpKeyExtractor)
            .finish()
            .unwrap_or_else(|| unreachable!("constant, valid governor settings")),
    );
    let attempts = Router::new()
        .route("/sign-in", post(sign_in))
        .route("/forgot-password", post(forgot_password))
        .route("/reset-password", post(reset_password))
        .layer(GovernorLayer::new(limited).error_handler(|e| {
            let wait = match e {
                // `wait_time` is truncated to whole seconds: never tell a client to wait 0.
                tower_governor::GovernorError::TooManyRequests { wait_time, .. } => {
                    wait_time.max(1)
                }
                _ => 1,
            };
            too_many(wait)
        }));
    Router::new()
        .merge(attempts)
        .route("/sign-in", get(sign_in_page))
        .route("/sign-out", post(sign_out))
        .route("/forgot-password", get(forgot_page))
        .route("/reset-password", get(reset_page))
        .route(
            "/account/password",
            get(password_page).post(change_password),
        )
        .route("/account/sessions", get(sessions_page))
        .route("/account/sessions/end-others", post(end_other_sessions))
        .route("/", get(dashboard))
        .route("/decisions", get(decisions_page))
        .route("/decisions/{id}", get(decision_page))
        .route("/decisions/{id}/proof", get(download_proof))
        .route("/decisions/{id}/bundle", get(download_bundle))
        .route("/subjects", get(subjects::page))
        .route("/subjects/erase", post(subjects::erase))
        .route("/subjects/package", get(subjects::package))
        .route("/subjects/hold", post(subjects::place_hold))
        .route("/subjects/hold/lift", post(subjects::lift_hold))
        .route("/oversight", get(oversight::queue_page))
        .route("/decisions/{id}/oversight", post(oversight::record))
        .route(
            "/oversight/proposals/{id}/approve",
            post(oversight::approve),
        )
        .route("/oversight/proposals/{id}/close", post(oversight::close))
        .route("/settings", get(oversight::settings_page))
        .route("/settings/oversight", post(oversight::save_settings))
        .route("/models", get(models_page))
        .route("/models/version", get(trends::model_page))
        .route("/integrity", get(integrity_page))
        .route("/integrity/start", post(start_integrity))
        .route("/api-keys", get(api_keys_page).post(create_api_key))
        .route("/api-keys/{id}/revoke", post(revoke_api_key))
        .route("/api-keys/{id}/rate", post(set_api_key_rate))
        .route("/users", get(users_page).post(invite_user))
        .route("/users/{id}/role", post(set_role))
        .route("/users/{id}/disable", post(disable_user))
        .route("/static/portal.css", get(stylesheet))
        .route("/verify", get(verify::page))
        .route(verify::SCRIPT_PATH, get(verify::script))
        .route(verify::WASM_PATH, get(verify::wasm))
        .route(verify::STYLE_PATH, get(verify::stylesheet))
        .layer(axum::middleware::from_fn(super::security_headers))
}

fn too_many(wait_seconds: u64) -> Response {
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        pages::error_page(
            "Too many attempts",
            &format!("Too many attempts. Wait {wait_seconds} seconds and try again."),
        ),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&wait_seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        pages::STYLESHEET,
    )
        .into_response()
}

fn require(viewer: &Viewer, allowed: &[PortalRole]) -> Result<(), PortalError> {
    if allowed.contains(&viewer.role()) {
        Ok(())
    } else {
        Err(PortalError::Forbidden)
    }
}

fn check_csrf(portal: &Portal, viewer: &Viewer, token: &str) -> Result<(), PortalError> {
    if portal.config().keys.check_csrf(&viewer.session_id, token) {
        Ok(())
    } else {
        Err(PortalError::Csrf)
    }
}

/// Roles that may change something (start checks); regulators only read.
const ACTORS: &[PortalRole] = &[
    PortalRole::Admin,
    PortalRole::Compliance,
    PortalRole::Auditor,
];
const ADMINS: &[PortalRole] = &[PortalRole::Admin];

/// A form that changes something, admitted: the preamble every such portal action goes through,
/// in one place and one order. The session's CSRF token first (403 without saying more, so that
/// a forged request learns nothing of roles), then the role.
struct Admitted<'a> {
    viewer: &'a Viewer,
    store: &'a Store,
}

/// Admits `viewer`'s form carrying `csrf` when their role is one of `allowed`.
///
/// # Errors
/// [`PortalError::Csrf`] for a token that is not this session's; [`PortalError::Forbidden`]
/// for another role.
fn admit<'a>(
    state: &'a AppState,
    portal: &Portal,
    viewer: &'a Viewer,
    csrf: &str,
    allowed: &[PortalRole],
) -> Result<Admitted<'a>, PortalError> {
    check_csrf(portal, viewer, csrf)?;
    require(viewer, allowed)?;
    Ok(Admitted {
        viewer,
        store: &state.store,
    })
}

impl Admitted<'_> {
    /// The account `id` of the viewer's tenant; another tenant's is not found (404).
    async fn user(&self, id: &str) -> Result<User, PortalError> {
        self.store
            .user_by_id(self.viewer.tenant(), id)
            .await?
            .ok_or(PortalError::NotFound)
    }

    /// Appends the `administration` record of `action` on `target`, before it is done: the
    /// action is refused when the ledger does not acknowledge it (see `portal::audit`).
    async fn record(&self, action: &str, target: Option<&str>) -> Result<Audited, PortalError> {
        self.viewer
            .audit(self.store, "administration", action, target)
            .await
    }
}

// ---------------------------------------------------------------- sign-in and sessions

/// An anonymous page's CSRF binding: the pre-session cookie, made when missing.
fn pre_session(headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    match cookie(headers, PRE_SESSION_COOKIE) {
        Some(v) if v.len() == 43 => (v.to_owned(), None),
        _ => {
            let value = random_token();
            let set = set_cookie(PRE_SESSION_COOKIE, &value, Some(Duration::from_secs(3600)));
            (value, Some(set))
        }
    }
}

/// Checks the CSRF token of an anonymous form against the pre-session cookie; returns the
/// cookie's value (to issue the next token with).
fn pre_session_csrf<'h>(
    portal: &Portal,
    headers: &'h HeaderMap,
    token: &str,
) -> Result<&'h str, PortalError> {
    match cookie(headers, PRE_SESSION_COOKIE) {
        Some(binding) if portal.config().keys.check_csrf(binding, token) => Ok(binding),
        _ => Err(PortalError::Csrf),
    }
}

fn anonymous(title: &str, set: Option<HeaderValue>, status: StatusCode, body: Markup) -> Response {
    let page = layout(
        title,
        &Chrome {
            user: None,
            csrf: "",
        },
        body,
    );
    let mut response = (status, page).into_response();
    if let Some(v) = set {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

#[derive(Deserialize)]
struct MessageQuery {
    done: Option<String>,
}

fn message_for(done: Option<&str>) -> Option<&'static str> {
    match done {
        Some("signed-out") => Some("You have signed out."),
        Some("password-changed") => Some(
            "Your password has been changed and every session ended. Sign in with the new password.",
        ),
        Some("expired") => Some("Your session ended. Sign in again."),
        _ => None,
    }
}

/// The sign-in form names the organisation (tenant id): accounts belong to one tenant, an email
/// may have accounts in several, and the form never says which.
fn sign_in_form(
    token: &str,
    tenant: &str,
    email: &str,
    problem: Option<&str>,
    message: Option<&str>,
) -> Markup {
    html! {
        h1 { "Sign in" }
        @if let Some(m) = message { (notice(m)) }
        @if let Some(p) = problem { (error(p)) }
        form.stack method="post" action="/sign-in" {
            (csrf_field(token))
            label { "Organisation" input type="text" name="tenant" autocomplete="organization" required value=(tenant); }
            label { "Email" input type="email" name="email" autocomplete="username" required value=(email); }
            label { "Password" input type="password" name="password" autocomplete="current-password" required; }
            button type="submit" { "Sign in" }
        }
        p { a href="/forgot-password" { "Forgot your password?" } }
        p { a href="/verify" { "Verify a bundle or proof file without signing in" } }
    }
}

async fn sign_in_page(
    axum::Extension(portal): axum::Extension<Portal>,
    headers: HeaderMap,
    PortalQuery(q): PortalQuery<MessageQuery>,
) -> Response {
    let (binding, set) = pre_session(&headers);
    let token = portal.config().keys.csrf_token(&binding);
    anonymous(
        "Sign in",
        set,
        StatusCode::OK,
        sign_in_form(&token, "", "", None, message_for(q.done.as_deref())),
    )
}

#[derive(Deserialize)]
struct SignInForm {
    // A missing token is a CSRF failure (403), not a malformed form (422).
    #[serde(default)]
    csrf: String,
    tenant: String,
    email: String,
    password: String,
}

/// The one answer to a failed sign-in, whatever failed.
const SIGN_IN_FAILED: &str =
    "The organisation, email or password is not right, or the account is not active.";

async fn sign_in(
    State(state): State<AppState>,
    axum::Extension(portal): axum::Extension<Portal>,
    headers: HeaderMap,
    PortalForm(form): PortalForm<SignInForm>,
) -> Result<Response, PortalError> {
    let binding = pre_session_csrf(&portal, &headers, &form.csrf)?;
    let email = form.email.trim().to_lowercase();
    let tenant_text = form.tenant.trim().to_owned();
    // No account's organisation or email holds a control character, and a NUL cannot even be
    // looked up (PostgreSQL text refuses it): such a sign-in is malformed, not a failed one.
    if email.len() > 254
        || tenant_text.len() > 254
        || has_control(&email)
        || has_control(&tenant_text)
        || form.password.len() > 4 * security::PASSWORD_CHARS_MAX
    {
        return Err(PortalError::BadRequest(
            "That is not an organisation, email and password.".into(),
        ));
    }
    let store = &state.store;
    let now = store.now_us();
    // Back-off counts per account: the same email in another organisation is another account.
    let account = super::account_key(&tenant_text, &email);
    if let Some(wait) = super::backoff(store, &account, now).await? {
        return Ok(too_many(wait));
    }
    // Only the named tenant's accounts are looked at. An organisation that is not a tenant id
    // or has no such account costs the same Argon2 run as a wrong password below.
    let user = match TenantId::parse(&tenant_text) {
        Ok(tenant) => store.user_by_email(&tenant, &email).await?,
        Err(_) => None,
    };
    // Unknown emails are checked against a dummy hash, so both cases cost one Argon2 run.
    let hash = user
        .as_ref()
        .map_or_else(|| DUMMY_HASH.clone(), |u| u.password_hash.clone());
    let password_ok = security::verify_password(form.password, hash).await;
    let user = match user {
        Some(u) if password_ok && u.is_active(now) => u,
        _ => {
            super::failed(store, &account, now).await?;
            let token = portal.config().keys.csrf_token(binding);
            return Ok(anonymous(
                "Sign in",
                None,
                StatusCode::UNAUTHORIZED,
                sign_in_form(&token, &tenant_text, &email, Some(SIGN_IN_FAILED), None),
            ));
        }
    };
    store.clear_sign_in(&account).await?;
    // A new session id at every sign-in: nothing from before sign-in is reused.
    let session_id = random_token();
    let config = portal.config();
    let absolute = i64::try_from(config.absolute.as_micros()).unwrap_or(i64::MAX);
    let client = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown client")
        .chars()
        .take(200)
        .collect::<String>();
    // Recorded first: no session exists that the ledger does not know of.
    let audited = audit(store, &user.tenant, "access", &user.email, "sign_in", None).await?;
    let created = store
        .create_session(&Session {
            id_hash: token_hash(&session_id),
            user_id: user.user_id.clone(),
            tenant: user.tenant.clone(),
            created_at_us: now,
            last_seen_us: now,
            expires_at_us: now.saturating_add(absolute),
            ended_at_us: None,
            client,
        })
        .await
        .map_err(PortalError::from);
    audited
        .settle(store, created, "the session could not be stored")
        .await?;
    let mut response = Redirect::to("/").into_response();
    let h = response.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &config.keys.sign_session(&session_id), None),
    );
    h.append(header::SET_COOKIE, clear_cookie(PRE_SESSION_COOKIE));
    Ok(response)
}

#[derive(Deserialize)]
struct CsrfForm {
    // A missing token is a CSRF failure (403), not a malformed form (422).
    #[serde(default)]
    csrf: String,
}

async fn sign_out(
    State(state): State<AppState>,
    axum::Extension(portal): axum::Extension<Portal>,
    viewer: Viewer,
    PortalForm(form): PortalForm<CsrfForm>,
) -> Result<Response, PortalError> {
    check_csrf(&portal, &viewer, &form.csrf)?;
    let store = &state.store;
    let audited = viewer.audit(store, "access", "sign_out", None).await?;
    let ended = store
        .end_session(
            &viewer.user.tenant,
            &viewer.user.user_id,
            &viewer.id_hash,
            store.now_us(),
        )
        .await
        .map_err(PortalError::from);
    audited
        .settle(store, ended, "the session could not be ended")
        .await?;
    let mut response = Redirect::to("/sign-in?done=signed-out").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, clear_cookie(SESSION_COOKIE));
    Ok(response)
}

async fn forgot_page(
    axum::Extension(portal): axum::Extension<Portal>,
    headers: HeaderMap,
) -> Response {
    let (binding, set) = pre_session(&headers);
    let token = portal.config().keys.csrf_token(&binding);
    anonymous(
        "Forgot password",
        set,
        StatusCode::OK,
        forgot_form(&token, None),
    )
}

fn forgot_form(token: &str, message: Option<&str>) -> Markup {
    html! {
        h1 { "Forgot your password?" }
        @if let Some(m) = message { (notice(m)) }
        p { "Enter your organisation and email. If they belong to an active account, we send a link to choose a new password." }
        form.stack method="post" action="/forgot-password" {
            (csrf_field(token))
            label { "Organisation" input type="text" name="tenant" autocomplete="organization" required; }
            label { "Email" input type="email" name="email" autocomplete="username" required; }
            button type="submit" { "Send the link" }
        }
        p { a href="/sign-in" { "Back to sign in" } }
    }
}

#[derive(Deserialize)]
struct ForgotForm {
    // A missing token is a CSRF failure (403), not a malformed form (422).
    #[serde(default)]
    csrf: String,
    tenant: String,
    email: String,
}

async fn forgot_password(
    State(state): State<AppState>,
    axum::Extension(portal): axum::Extension<Portal>,
    headers: HeaderMap,
    PortalForm(form): PortalForm<ForgotForm>,
) -> Result<Response, PortalError> {
    let binding = pre_session_csrf(&portal, &headers, &form.csrf)?;
    let email = form.email.trim().to_lowercase();
    let tenant = TenantId::parse(form.tenant.trim()).ok();
    // The work happens after the answer, so that the answer (and its timing) is the same
    // whether or not the account exists.
    let store = state.store.clone();
    let worker = portal.clone();
    tokio::spawn(async move {
        // The account is looked for in the named tenant only.
        let Some(tenant) = tenant.filter(|_| email.len() <= 254 && !has_control(&email)) else {
            return;
        };
        match store.user_by_email(&tenant, &email).await {
            Ok(Some(user)) if user.is_active(store.now_us()) => {
                if let Err(e) = send_reset_link(&store, &worker, &user, "reset").await {
                    tracing::error!(error = %e, "could not send a password-reset link");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "password-reset lookup failed"),
        }
    });
    let token = portal.config().keys.csrf_token(binding);
    Ok(anonymous(
        "Forgot password",
        None,
        StatusCode::OK,
        forgot_form(
            &token,
            Some(
                "If that organisation and email belong to an active account, a link is on its way. It works once, for a limited time.",
            ),
        ),
    ))
}

/// Issues a reset token (invalidating older ones) and mails its link, built from the configured
/// public URL only.
async fn send_reset_link(
    store: &crate::store::Store,
    portal: &Portal,
    user: &crate::store::users::User,
    purpose: &str,
) -> Result<(), String> {
    let config = portal.config();
    let token = random_token();
    let now = store.now_us();
    let ttl = i64::try_from(config.reset_ttl.as_micros()).unwrap_or(i64::MAX);
    store
        .create_password_reset(
            &user.tenant,
            &user.user_id,
            &token_hash(&token),
            now,
            now.saturating_add(ttl),
        )
        .await
        .map_err(|e| e.to_string())?;
    let link = format!(
        "{}/reset-password?token={token}",
        config.public_url.trim_end_matches('/')
    );
    let minutes = config.reset_ttl.as_secs() / 60;
    let (subject, intro) = if purpose == "invite" {
        (
            "You have been invited to Auditex",
            "An administrator created an Auditex account for you. Choose your password here:",
        )
    } else {
        (
            "Reset your Auditex password",
            "Someone (hopefully you) asked to reset the password of your Auditex account. Choose a new one here:",
        )
    };
    // Sign-in names the organisation, so the message says which one the account belongs to.
    let tenant = &user.tenant;
    let body = format!(
        "{intro}\n\n{link}\n\nThe link works once, for {minutes} minutes. Sign in afterwards with the organisation \"{tenant}\" and this email address. If you did not expect this message, ignore it: nothing changes.\n"
    );
    config.mailer.send(&user.email, subject, &body).await
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

fn reset_form(csrf: &str, reset: &str, problem: Option<&str>) -> Markup {
    html! {
        h1 { "Choose a new password" }
        @if let Some(p) = problem { (error(p)) }
        p { "At least 12 characters. A few unrelated words make a good password." }
        form.stack method="post" action="/reset-password" {
            (csrf_field(csrf))
            input type="hidden" name="token" value=(reset);
            label { "New password" input type="password" name="password" autocomplete="new-password" required minlength="12" maxlength="128"; }
            label { "Repeat it" input type="password" name="confirm" autocomplete="new-password" required; }
            button type="submit" { "Set the password" }
        }
    }
}

fn link_invalid(set: Option<HeaderValue>) -> Response {
    anonymous(
        "Link not valid",
        set,
        StatusCode::BAD_REQUEST,
        html! {
            h1 { "This link does not work" }
            (error("The link has expired, was already used, or a newer one was sent. Ask for a new one."))
            p { a href="/forgot-password" { "Ask for a new link" } }
        },
    )
}

async fn reset_page(
    State(state): State<AppState>,
    axum::Extension(portal): axum::Extension<Portal>,
    headers: HeaderMap,
    PortalQuery(q): PortalQuery<TokenQuery>,
) -> Result<Response, PortalError> {
    let (binding, set) = pre_session(&headers);
    let reset = q.token.unwrap_or_default();
    let store = &state.store;
    if reset.len() != 43
        || store
            .password_reset_user(&token_hash(&reset), store.now_us())
            .await?
            .is_none()
    {
        return Ok(link_invalid(set));
    }
    let token = portal.config().keys.csrf_token(&binding);
    Ok(anonymous(
        "Choose a new password",
        set,
        StatusCode::OK,
        reset_form(&token, &reset, None),
    ))
}

#[derive(Deserialize)]
struct ResetForm {
    // A missing token is a CSRF failure (403), not a malformed form (422).
    #[serde(default)]
    csrf: String,
    token: String,
    password: String,
    confirm: String,
}

async fn reset_password(
    State(state): State<AppState>,
    axum::Extension(portal): axum::Extension<Portal>,
    headers: HeaderMap,
    PortalForm(form): PortalForm<ResetForm>,
) -> Result<Response, PortalError> {
    let binding = pre_session_csrf(&portal, &headers, &form.csrf)?;
    let store = &state.store;
    let hash = token_hash(&form.token);
    let now = store.now_us();
    // The policy is checked before the token is used up, so a refused password costs nothing.
    let problem = if form.password != form.confirm {
        Some("The two passwords differ.".to_owned())
    } else {
        password_problem(&form.password)
    };
    if let Some(problem) = problem {
        if store.password_reset_user(&hash, now).await?.is_none() {
            return Ok(link_invalid(None));
        }
        let token = portal.config().keys.csrf_token(binding);
        return Ok(anonymous(
            "Choose a new password",
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            reset_form(&token, &form.token, Some(&problem)),
        ));
    }
    // The token names its user's tenant: the user is looked up there, never across tenants.
    // It is only looked at here; it is used up after the record of the reset is acknowledged.
    let Some(owner) = store.password_reset_user(&hash, now).await? else {
        return Ok(link_invalid(None));
    };
    let Some(user) = store.user_by_id(&owner.tenant, &owner.user_id).await? else {
        return Ok(link_invalid(None));
    };
    let phc = security::hash_password(form.password)
        .await
        .map_err(PortalError::Internal)?;
    let audited = audit(
        store,
        &user.tenant,
        "administration",
        &user.email,
        "password_reset",
        Some(&user.email),
    )
    .await?;
    let taken = match store.take_password_reset(&hash, now).await {
        // Used or replaced meanwhile (another tab): the same answer as an unusable link.
        Ok(None) => {
            audited
                .failed(store, "the reset link was no longer valid")
                .await;
            return Ok(link_invalid(None));
        }
        Ok(Some(taken)) if taken.user_id != user.user_id || taken.tenant != user.tenant => {
            audited
                .failed(store, "the reset link was no longer valid")
                .await;
            return Ok(link_invalid(None));
        }
        other => other.map(|_| ()).map_err(PortalError::from),
    };
    let set = match taken {
        Ok(()) => store
            .set_password(&user.tenant, &user.user_id, &phc, store.now_us())
            .await
            .map_err(PortalError::from),
        Err(e) => Err(e),
    };
    audited
        .settle(store, set, "the password could not be stored")
        .await?;
    // After a reset the user signs in with the new password; no session is created here.
    Ok(Redirect::to("/sign-in?done=password-changed").into_response())
}

/// The query of a page that says what was just done; it takes no other parameter.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DoneQuery {
    done: Option<String>,
}

fn password_form(viewer: &Viewer, problem: Option<&str>) -> Markup {
    layout(
        "Change password",
        &viewer.chrome(),
        html! {
            h1 { "Change your password" }
            @if let Some(p) = problem { (error(p)) }
            p { "Changing it signs you out everywhere, this browser included." }
            form.stack method="post" action="/account/password" {
                (csrf_field(&viewer.csrf))
                label { "Current password" input type="password" name="current" autocomplete="current-password" required; }
                label { "New password" input type="password" name="password" autocomplete="new-password" required minlength="12" maxlength="128"; }
                label { "Repeat it" input type="password" name="confirm" autocomplete="new-password" required; }
                button type="submit" { "Change the password" }
            }
        },
    )
}

async fn password_page(viewer: Viewer) -> Markup {
    password_form(&viewer, None)
}

#[derive(Deserialize)]
struct ChangeForm {
    // A missing token is a CSRF failure (403), not a malformed form (422).
    #[serde(default)]
    csrf: String,
    current: String,
    password: String,
    confirm: String,
}

async fn change_password(
    State(state): State<AppState>,
    axum::Extension(portal): axum::Extension<Portal>,
    viewer: Viewer,
    PortalForm(form): PortalForm<ChangeForm>,
) -> Result<Response, PortalError> {
    check_csrf(&portal, &viewer, &form.csrf)?;
    if !security::verify_password(form.current, viewer.user.password_hash.clone()).await {
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            password_form(&viewer, Some("The current password is not right.")),
        )
            .into_response());
    }
    let problem = if form.password != form.confirm {
        Some("The two new passwords differ.".to_owned())
    } else {
        password_problem(&form.password)
    };
    if let Some(p) = problem {
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            password_form(&viewer, Some(&p)),
        )
            .into_response());
    }
    let phc = security::hash_password(form.password)
        .await
        .map_err(PortalError::Internal)?;
    let store = &state.store;
    let audited = viewer
        .audit(
            store,
            "administration",
            "password_changed",
            Some(&viewer.user.email),
        )
        .await?;
    let set = store
        .set_password(viewer.tenant(), &viewer.user.user_id, &phc, store.now_us())
        .await
        .map_err(PortalError::from);
    audited
        .settle(store, set, "the password could not be stored")
        .await?;
    let mut response = Redirect::to("/sign-in?done=password-changed").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, clear_cookie(SESSION_COOKIE));
    Ok(response)
}

async fn sessions_page(
    State(state): State<AppState>,
    viewer: Viewer,
    PortalQuery(q): PortalQuery<DoneQuery>,
) -> Result<Markup, PortalError> {
    let store = &state.store;
    let sessions = store
        .live_sessions(&viewer.user.tenant, &viewer.user.user_id, store.now_us())
        .await?;
    Ok(layout(
        "My sessions",
        &viewer.chrome(),
        html! {
            h1 { "My sessions" }
            @if q.done.as_deref() == Some("ended") { (notice("Your other sessions have ended.")) }
            table {
                thead { tr { th { "Signed in" } th { "Last active" } th { "Client" } th { "" } } }
                tbody {
                    @for s in &sessions {
                        tr {
                            td { (when(s.created_at_us)) }
                            td { (when(s.last_seen_us)) }
                            td { (s.client) }
                            td { @if s.id_hash == viewer.id_hash { strong { "this session" } } }
                        }
                    }
                }
            }
            form method="post" action="/account/sessions/end-others" {
                (csrf_field(&viewer.csrf))
                button type="submit" { "Sign out all other sessions" }
            }
        },
    ))
}

async fn end_other_sessions(
    State(state): State<AppState>,
    axum::Extension(portal): axum::Extension<Portal>,
    viewer: Viewer,
    PortalForm(form): PortalForm<CsrfForm>,
) -> Result<Response, PortalError> {
    check_csrf(&portal, &viewer, &form.csrf)?;
    let store = &state.store;
    let audited = viewer
        .audit(store, "access", "sessions_ended", None)
        .await?;
    let ended = store
        .end_other_sessions(
            &viewer.user.tenant,
            &viewer.user.user_id,
            &viewer.id_hash,
            store.now_us(),
        )
        .await
        .map_err(PortalError::from);
    audited
        .settle(store, ended, "the sessions could not be ended")
        .await?;
    Ok(Redirect::to("/account/sessions?done=ended").into_response())
}

// ---------------------------------------------------------------- the working pages

async fn dashboard(
    State(state): State<AppState>,
    viewer: Viewer,
    PortalQuery(q): PortalQuery<trends::WindowQuery>,
) -> Result<Markup, PortalError> {
    let store = &state.store;
    let tenant = viewer.tenant();
    let window = trends::window(store, &q)?;
    // Before the views are first built (a fresh start) the dashboard still answers, without
    // its charts, as it does without its volumes.
    let charts = match store.dashboard_charts(tenant, &window).await {
        Ok(c) => Some(c),
        Err(crate::store::StoreError::ViewNotReady(_)) => None,
        Err(e) => return Err(e.into()),
    };
    // The store's clock, so that the day matches the capture times of the records.
    let today = chrono::DateTime::from_timestamp_micros(store.now_us())
        .map_or_else(|| chrono::Utc::now().date_naive(), |t| t.date_naive());
    let week_ago = today - chrono::Duration::days(6);
    let day = |d: chrono::NaiveDate| d.format("%Y-%m-%d").to_string();
    let volumes = store
        .daily_volumes(tenant, &day(week_ago), &day(today), None)
        .await
        .unwrap_or_default();
    let today_text = day(today);
    let today_count: i64 = volumes
        .iter()
        .filter(|v| v.day == today_text)
        .map(|v| v.decisions)
        .sum();
    let week_count: i64 = volumes.iter().map(|v| v.decisions).sum();
    let mut per_model: BTreeMap<(String, String), i64> = BTreeMap::new();
    for v in &volumes {
        *per_model
            .entry((v.model_id.clone(), v.model_version.clone()))
            .or_default() += v.decisions;
    }
    let checkpoint = store.latest_checkpoint(tenant).await?;
    let now = store.now_us();
    let last_check = store
        .records_of_type(tenant, ledger::record::EventType::IntegrityCheck, None, 1)
        .await?
        .into_iter()
        .next();
    let lag = store.projection_status(tenant).await?;
    // The tenant's witnesses: configured, and how the cosigning client last found each.
    let statuses = store.witness_statuses();
    let witnesses: Vec<(String, Option<crate::store::witnesses::WitnessStatus>)> = store
        .witnesses(tenant)
        .await?
        .into_iter()
        .map(|w| {
            let status = statuses
                .iter()
                .find(|s| s.tenant == tenant.as_str() && s.witness == w.key.name())
                .cloned();
            (w.key.name().to_owned(), status)
        })
        .collect();
    Ok(layout(
        "Dashboard",
        &viewer.chrome(),
        html! {
            h1 { "Dashboard" }
            div.cards {
                div.card { div.muted { "Decisions today" } div.figure { (today_count) } }
                div.card { div.muted { "Decisions, last 7 days" } div.figure { (week_count) } }
                div.card {
                    div.muted { "Latest checkpoint" }
                    @if let Some(c) = &checkpoint {
                        div.figure { (c.size.get()) }
                        div { "records, signed " (age(now, i64::try_from(c.published_at_us).unwrap_or(0))) " ago" }
                    } @else {
                        div { "none yet" }
                    }
                }
                div.card {
                    div.muted { "Last integrity check" }
                    @if let Some(r) = &last_check {
                        @let outcome = serde_json::from_str::<serde_json::Value>(r.payload.as_str()).ok().and_then(|p| p["outcome"].as_str().map(str::to_owned)).unwrap_or_default();
                        div.figure class=(if outcome == "passed" { "ok" } else { "bad" }) { (outcome) }
                        div { (r.captured_at_us.to_rfc3339()) }
                    } @else {
                        div { "never run" } a href="/integrity" { "Run one" }
                    }
                }
            }
            @if let Some(charts) = &charts {
                (trends::dashboard_section(charts, &lag, checkpoint.as_ref().map(|c| (now - i64::try_from(c.published_at_us).unwrap_or(0)).max(0) / 1_000_000)))
            } @else {
                (notice("The charts appear once the views have been built, a few moments after the service starts."))
            }
            h2 { "Decisions per model, last 7 days" }
            table {
                thead { tr { th { "Model" } th { "Version" } th { "Decisions" } } }
                tbody {
                    @for ((m, v), n) in &per_model { tr { td { (m) } td { (v) } td { (n) } } }
                }
            }
            @if !witnesses.is_empty() {
                h2 { "Witnesses" }
                p.muted { "Independent parties that cosign each checkpoint only if it extends the last one they cosigned. Checkpoints are published whether they answer or not." }
                table {
                    thead { tr { th { "Witness" } th { "Last cosigned size" } th { "Records behind" } th { "State" } } }
                    tbody {
                        @for (name, status) in &witnesses {
                            tr {
                                td { (name) }
                                @if let Some(s) = status {
                                    td { (s.cosigned_size) } td { (s.lag_records()) }
                                    @if let Some(e) = &s.last_error {
                                        td.bad { "failing: " (e) }
                                    } @else if s.lag_records() == 0 {
                                        td { "current" }
                                    } @else {
                                        td { "catching up" }
                                    }
                                } @else {
                                    td { "–" } td { "–" } td { "not contacted yet" }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Views" }
            @if lag.iter().any(|p| p.stuck_at_seq.is_some()) {
                p.bad.stuck { "Some views have stopped at a record they cannot apply and fall further behind with every new record. The ledger still accepts, seals and proves every record; your operator has been alerted and can retry them." }
            }
            table {
                thead { tr { th { "View" } th { "Records behind" } th { "Seconds behind" } th { "State" } } }
                tbody {
                    @for p in &lag {
                        tr {
                            td { (p.name) } td { (p.lag_records) } td { (format!("{:.1}", p.lag_seconds)) }
                            @if let Some(seq) = p.stuck_at_seq {
                                td.bad { "stuck at record " (seq) }
                            } @else if p.lag_records == 0 {
                                td { "current" }
                            } @else {
                                td { "catching up" }
                            }
                        }
                    }
                }
            }
        },
    ))
}

fn age(now_us: i64, then_us: i64) -> String {
    let s = (now_us - then_us).max(0) / 1_000_000;
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        _ => format!("{} h", s / 3600),
    }
}

/// The decision list's search form, and its next page (`after`); a parameter the list does not
/// take is refused, so that a search is never answered with results it did not ask for.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SearchForm {
    model_id: Option<String>,
    model_version: Option<String>,
    outcome: Option<String>,
    subject_ref: Option<String>,
    from: Option<String>,
    until: Option<String>,
    after: Option<String>,
}

fn nonempty(v: &Option<String>) -> Option<String> {
    v.as_ref()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty() && s.len() <= ledger::payload::STRING_BYTES_MAX)
}

fn day_start_us(text: &Option<String>, plus_days: i64) -> Result<Option<i64>, PortalError> {
    match nonempty(text) {
        None => Ok(None),
        Some(t) => chrono::NaiveDate::parse_from_str(&t, "%Y-%m-%d")
            .map(|d| {
                (d + chrono::Duration::days(plus_days))
                    .and_hms_opt(0, 0, 0)
                    .map(|t| t.and_utc().timestamp_micros())
            })
            .map_err(|_| PortalError::BadRequest("Dates are written like 2026-11-29.".into())),
    }
}

async fn decisions_page(
    State(state): State<AppState>,
    viewer: Viewer,
    PortalQuery(q): PortalQuery<SearchForm>,
) -> Result<Markup, PortalError> {
    let query = DecisionQuery {
        model_id: nonempty(&q.model_id),
        model_version: nonempty(&q.model_version),
        outcome: nonempty(&q.outcome),
        subject_ref: nonempty(&q.subject_ref),
        decided_from: day_start_us(&q.from, 0)?,
        decided_until: day_start_us(&q.until, 1)?,
        after: number("after", q.after.as_deref())?,
        limit: 50,
        ..DecisionQuery::default()
    };
    let page = state
        .store
        .search_decisions(viewer.tenant(), &query)
        .await?;
    let v = |o: &Option<String>| o.clone().unwrap_or_default();
    let next = page.next_cursor.as_ref().map(|c| {
        let mut params = url::form_urlencoded::Serializer::new(String::new());
        for (k, val) in [
            ("model_id", &q.model_id),
            ("model_version", &q.model_version),
            ("outcome", &q.outcome),
            ("subject_ref", &q.subject_ref),
            ("from", &q.from),
            ("until", &q.until),
        ] {
            if let Some(val) = val {
                params.append_pair(k, val);
            }
        }
        params.append_pair("after", c);
        format!("/decisions?{}", params.finish())
    });
    Ok(layout(
        "Decisions",
        &viewer.chrome(),
        html! {
            h1 { "Decisions" }
            form.grid method="get" action="/decisions" role="search" {
                label { "Model" input type="text" name="model_id" value=(v(&q.model_id)); }
                label { "Version" input type="text" name="model_version" value=(v(&q.model_version)); }
                label { "Outcome in force" input type="text" name="outcome" value=(v(&q.outcome)); }
                label { "Subject reference" input type="text" name="subject_ref" value=(v(&q.subject_ref)); }
                label { "Decided from" input type="date" name="from" value=(v(&q.from)); }
                label { "Decided until" input type="date" name="until" value=(v(&q.until)); }
                button type="submit" { "Search" }
            }
            @if page.items.is_empty() {
                p { "No decision matches." }
            } @else {
                table {
                    caption.muted { "Newest first" }
                    thead { tr { th { "#" } th { "Decided" } th { "Model" } th { "Outcome" } th { "Score" } th { "Subject" } th { "Status" } } }
                    tbody {
                        @for d in &page.items {
                            tr {
                                td { a href={ "/decisions/" (d.event_id) } { (d.seq) } }
                                td { (d.decided_at_us.map(when).unwrap_or_default()) }
                                td { (d.model_id) " " (d.model_version) }
                                td { (d.current_outcome) @if d.current_outcome != d.outcome { " (model: " (d.outcome) ")" } }
                                td { (d.score.map(|s| format!("{s:.3}")).unwrap_or_default()) }
                                td { (d.subject_ref) }
                                td { (d.status) }
                            }
                        }
                    }
                }
                @if let Some(n) = next { p { a href=(n) { "Next page" } } }
            }
        },
    ))
}

fn parse_id(id: &str) -> Result<ledger::types::EventId, PortalError> {
    ledger::types::EventId::parse(id).map_err(|_| PortalError::NotFound)
}

/// The decision page's query: the seq of a record the viewer just appended.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionPageQuery {
    recorded: Option<String>,
}

async fn decision_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    PortalQuery(q): PortalQuery<DecisionPageQuery>,
) -> Result<Markup, PortalError> {
    let id = parse_id(&id)?;
    let recorded: Option<u64> = number("recorded", q.recorded.as_deref())?;
    let store = &state.store;
    let tenant = viewer.tenant();
    let (decision, oversight) = store
        .decision_view(tenant, id)
        .await?
        .ok_or(PortalError::NotFound)?;
    let record = store
        .record_by_event_id(tenant, id)
        .await?
        .ok_or(PortalError::NotFound)?;
    let verification = verify_record(store, tenant, &record).await;
    let review = oversight::DecisionOversight::load(&state, &viewer, &oversight).await?;
    let record_json = serde_json::to_string_pretty(&record).unwrap_or_default();
    Ok(layout(
        "Decision",
        &viewer.chrome(),
        html! {
            h1 { "Decision " (decision.seq) }
            @if let Some(seq) = recorded {
                (notice(&format!("Recorded as ledger record {seq}, in your name. The timeline shows it as soon as the views have caught up (usually within a second).")))
            }
            table {
                tbody {
                    tr { th { "Event id" } td { (decision.event_id.to_string()) } }
                    tr { th { "Model" } td { (decision.model_id) " " (decision.model_version) } }
                    tr { th { "Outcome" } td { (decision.outcome) } }
                    tr { th { "Outcome in force" } td { (decision.current_outcome) } }
                    tr { th { "Score" } td { (decision.score.map(|s| s.to_string()).unwrap_or_default()) } }
                    tr { th { "Subject" } td { (decision.subject_ref) } }
                    tr { th { "Decided" } td { (decision.decided_at_us.map(when).unwrap_or_default()) } }
                    tr { th { "Captured" } td { (when(decision.captured_at_us)) } }
                    tr { th { "Oversight" } td { (decision.oversight_mode) } }
                    tr { th { "Status" } td { (decision.status) @if review.pending() { " " span.tag.warn { "override pending approval" } } } }
                    tr { th { "Verification" } td {
                        @match &verification {
                            Ok(text) => span.ok { (text) },
                            Err(text) => span.bad { (text) },
                        }
                    } }
                }
            }
            h2 { "Chain of custody" }
            ol.timeline {
                // The model's own decision time, then when the ledger captured it (they differ
                // when a pipeline reports late).
                li { strong { "Decided" } " — " (decision.decided_at_us.map(when).unwrap_or_else(|| "—".into())) "; recorded " (when(decision.captured_at_us)) " (record " (decision.seq) ")" }
                @for a in &oversight {
                    li {
                        strong { (a.event_type.replace('_', " ")) }
                        " — " (when(a.captured_at_us)) " (record " (a.seq) ")"
                        @if let Some(actor) = &a.actor { " by " (actor) }
                        @if let Some(action) = &a.action { ": " (action.replace('_', " ")) }
                        @if let Some(note) = review.note(&a.event_id.to_string()) { " " span.tag { (note) } }
                        @if let Some(reason) = &a.reason { br; span.muted { (reason) } }
                    }
                }
                @if decision.submissions > 0 {
                    li { strong { "Submitted" } " in " (decision.submissions) " regulatory submission(s)" }
                }
            }
            (review.section(&viewer, &decision.event_id.to_string()))
            h2 { "Evidence" }
            ul {
                li { a href={ "/decisions/" (decision.event_id) "/proof" } download { "Proof file (C2SP tlog-proof)" } " — check it with " code { "auditex verify" } }
                li { a href={ "/decisions/" (decision.event_id) "/bundle" } download { "Chain-of-custody bundle (JSON)" } }
            }
            h2 { "The record" }
            pre { (record_json) }
        },
    ))
}

/// Checks the record's hash, signature and inclusion in the latest checkpoint, from the store's
/// data and the tenant's key history.
async fn verify_record(
    store: &crate::store::Store,
    tenant: &ledger::types::TenantId,
    record: &ledger::record::Record,
) -> Result<String, String> {
    let proof = store
        .tlog_proof(tenant, record.seq)
        .await
        .map_err(|e| format!("no proof yet: {e}"))?;
    let ring = store.key_history(tenant).await.map_err(|e| e.to_string())?;
    let origin = store.origin(tenant).await.map_err(|e| e.to_string())?;
    let vkeys: Vec<ledger::note::VerifierKey> = ring
        .intervals()
        .iter()
        .filter_map(|k| ledger::note::VerifierKey::new(&origin, k.public_key).ok())
        .collect();
    let text = proof.format();
    ledger::verify::verify_tlog_proof_file(text.as_bytes(), &vkeys, &ring, &origin)
        .map(|p| {
            format!(
                "hash, signature and inclusion in the signed checkpoint of {} records verified",
                p.checkpoint.size().get()
            )
        })
        .map_err(|e| format!("does not verify: {e}"))
}

async fn download_proof(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, PortalError> {
    let id = parse_id(&id)?;
    let store = &state.store;
    let record = store
        .record_by_event_id(viewer.tenant(), id)
        .await?
        .ok_or(PortalError::NotFound)?;
    let proof = store
        .tlog_proof(viewer.tenant(), record.seq)
        .await
        .map_err(|e| {
            PortalError::BadRequest(format!("No proof yet: {e}. Try again in a second."))
        })?;
    // The proof leaves only once the ledger has acknowledged the record of its download.
    let _recorded = viewer
        .audit(store, "access", "download_proof", Some(&id.to_string()))
        .await?;
    Ok(download(
        proof.format(),
        "text/plain; charset=utf-8",
        &format!("record-{}.tlog-proof", record.seq),
    ))
}

/// What a person sees when evidence cannot be produced: not found for what is not (or not
/// this tenant's), a retry hint before the first checkpoint, and a logged failure otherwise.
fn evidence_error(e: crate::store::EvidenceError) -> PortalError {
    use crate::store::EvidenceError as E;
    match e {
        E::EventNotFound(_) | E::NotADecision { .. } | E::RecordNotFound(_) => {
            PortalError::NotFound
        }
        E::NoCheckpoint | E::NotYetCheckpointed { .. } => {
            PortalError::BadRequest(format!("{e}. Try again in a second."))
        }
        other => PortalError::Internal(other.to_string()),
    }
}

async fn download_bundle(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, PortalError> {
    let id = parse_id(&id)?;
    let store = &state.store;
    let bundle = store
        .custody_bundle(viewer.tenant(), id)
        .await
        .map_err(evidence_error)?;
    // The bundle leaves only once the ledger has acknowledged the record of its download.
    let _recorded = viewer
        .audit(store, "access", "download_bundle", Some(&id.to_string()))
        .await?;
    Ok(download(
        bundle.to_json(),
        "application/json",
        &format!("custody-{id}.json"),
    ))
}

fn download(body: String, content_type: &'static str, filename: &str) -> Response {
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

async fn models_page(
    State(state): State<AppState>,
    viewer: Viewer,
    PortalQuery(NoQuery {}): PortalQuery<NoQuery>,
) -> Result<Markup, PortalError> {
    let models = state.store.model_inventory(viewer.tenant(), None).await?;
    Ok(layout(
        "Models",
        &viewer.chrome(),
        html! {
            h1 { "Model inventory" }
            p.muted { "Per model version (SR 11-7): use, outcomes, human overrides and the latest validation and approval recorded in the ledger." }
            table {
                thead { tr {
                    th { "Model" } th { "Version" } th { "Status" } th { "Decisions" } th { "Outcomes" }
                    th { "Override rate" } th { "First seen" } th { "Last seen" } th { "Validation" } th { "Approval" }
                } }
                tbody {
                    @for m in &models {
                        tr {
                            td { (m.model_id) }
                            td { a href=(trends::model_href(&m.model_id, &m.model_version, None)) { (m.model_version) } }
                            td { (m.status) } td { (m.decisions) }
                            td { @for (o, n) in &m.outcomes { (o) ": " (n) br; } }
                            td { @if m.decisions > 0 { (format!("{:.1} %", 100.0 * m.overrides as f64 / m.decisions as f64)) } }
                            td { (m.first_seen_us.map(when).unwrap_or_default()) }
                            td { (m.last_seen_us.map(when).unwrap_or_default()) }
                            td { (pages::opt(m.validation_ref.as_deref())) }
                            td { (pages::opt(m.approval_ref.as_deref())) }
                        }
                    }
                }
            }
        },
    ))
}

async fn integrity_page(
    State(state): State<AppState>,
    viewer: Viewer,
    PortalQuery(q): PortalQuery<DoneQuery>,
) -> Result<Markup, PortalError> {
    let store = &state.store;
    let tenant = viewer.tenant();
    let running = state.integrity.running(store, tenant).await;
    let past = store
        .records_of_type(tenant, ledger::record::EventType::IntegrityCheck, None, 50)
        .await?;
    Ok(layout(
        "Integrity",
        &viewer.chrome(),
        html! {
            h1 { "Integrity checks" }
            p { "A full check re-reads every record of the ledger, recomputes every hash, signature and link and the Merkle root, and compares them with every checkpoint ever published. Its result is recorded in the ledger." }
            @if q.done.as_deref() == Some("started") { (notice("The check has started.")) }
            @if let Some(c) = &running {
                h2 { "Running" }
                p role="status" {
                    (c.progress.checked) " of " (c.progress.total) " records checked"
                    @if c.progress.records_per_second > 0.0 { ", " (format!("{:.0}", c.progress.records_per_second)) " records/s" }
                    @if let Some(eta) = c.progress.eta_seconds { ", about " (eta) " s left" }
                    ". Reload the page to follow it."
                }
            } @else if viewer.role() != PortalRole::Regulator {
                form method="post" action="/integrity/start" {
                    (csrf_field(&viewer.csrf))
                    button type="submit" { "Start a full check" }
                }
            }
            h2 { "Past results" }
            table {
                thead { tr { th { "Recorded" } th { "Outcome" } th { "Records checked" } th { "First failure" } } }
                tbody {
                    @for r in &past {
                        @let p = serde_json::from_str::<serde_json::Value>(r.payload.as_str()).unwrap_or_default();
                        tr {
                            td { (r.captured_at_us.to_rfc3339()) }
                            td class=(if p["outcome"] == "passed" { "ok" } else { "bad" }) { (p["outcome"].as_str().unwrap_or("")) }
                            td { (p["records_checked"].as_u64().map(|n| n.to_string()).unwrap_or_default()) }
                            td { (p["first_failure"]["message"].as_str().unwrap_or("")) }
                        }
                    }
                }
            }
        },
    ))
}

async fn start_integrity(
    State(state): State<AppState>,
    axum::Extension(portal): axum::Extension<Portal>,
    viewer: Viewer,
    PortalForm(form): PortalForm<CsrfForm>,
) -> Result<Response, PortalError> {
    let actor = admit(&state, &portal, &viewer, &form.csrf, ACTORS)?;
    let store = &state.store;
    // One already runs: show it (nothing is started, so nothing is recorded).
    if state
        .integrity
        .running(store, viewer.tenant())
        .await
        .is_some()
    {
        return Ok(Redirect::to("/integrity").into_response());
    }
    let refused = |(why, retry_after): (String, Option<u64>)| PortalError::Refused {
        status: if retry_after.is_some() {
            StatusCode::TOO_MANY_REQUESTS
        } else {
            StatusCode::CONFLICT
        },
        title: "Check not started",
        message: why,
        retry_after,
    };
    // The hour's allowance is asked before the start is recorded, so a refused start appends
    // nothing: pressing the button again cannot fill the ledger with records.
    state
        .integrity
        .may_start(store, viewer.tenant())
        .await
        .map_err(refused)?;
    // The check's id is made when it starts, after its record: the record names no target, and
    // the check's own `integrity_check` record carries the id when it ends.
    let audited = actor.record("integrity_check_started", None).await?;
    let started = state
        .integrity
        .start_for(store, viewer.tenant())
        .await
        .map_err(refused);
    audited
        .settle(store, started, "the check could not be started")
        .await?;
    Ok(Redirect::to("/integrity?done=started").into_response())
}

// ---------------------------------------------------------------- administration

fn role_options(selected: Option<PortalRole>) -> Markup {
    html! {
        @for r in PortalRole::ALL {
            option value=(r.as_str()) selected[Some(r) == selected] { (r.as_str()) }
        }
    }
}

async fn api_keys_page(
    State(state): State<AppState>,
    viewer: Viewer,
    PortalQuery(NoQuery {}): PortalQuery<NoQuery>,
) -> Result<Markup, PortalError> {
    require(&viewer, ADMINS)?;
    api_keys_view(&state, &viewer, None).await
}

async fn api_keys_view(
    state: &AppState,
    viewer: &Viewer,
    created: Option<(&str, &str)>,
) -> Result<Markup, PortalError> {
    let keys = state.store.api_keys(viewer.tenant()).await?;
    let when_u = |t: u64| when(i64::try_from(t).unwrap_or(0));
    Ok(layout(
        "API keys",
        &viewer.chrome(),
        html! {
            h1 { "API keys" }
            @if let Some((id, text)) = created {
                (notice("The key has been created. Copy it now: it is shown this once and cannot be shown again."))
                p { "Key " code { (id) } ":" }
                p.secret id="new-key" { (text) }
            }
            table {
                thead { tr { th { "Key id" } th { "Role" } th { "Label" } th { "Created" } th { "Last used" } th { "Requests a second" } th { "State" } th { "" } } }
                tbody {
                    @for k in &keys {
                        tr {
                            td { code { (k.key_id) } }
                            td { (k.role.as_str()) }
                            td { (k.label) }
                            td { (when_u(k.created_at_us)) }
                            td { (k.last_used_at_us.map(when_u).unwrap_or_else(|| "never".into())) }
                            td {
                                @if k.revoked_at_us.is_none() {
                                    form.inline method="post" action={ "/api-keys/" (k.key_id) "/rate" } {
                                        (csrf_field(&viewer.csrf))
                                        input type="number" name="rate" min="1" max=(crate::store::API_KEY_RATE_MAX)
                                            value=[k.rate_per_second] placeholder="default"
                                            aria-label={ "Requests a second for key " (k.key_id) ", empty for the default of its role" };
                                        button.secondary type="submit" aria-label={ "Set the rate of key " (k.key_id) } { "Set" }
                                    }
                                } @else {
                                    (k.rate_per_second.map_or_else(|| "default".to_owned(), |r| r.to_string()))
                                }
                            }
                            td { @if k.revoked_at_us.is_some() { "revoked" } @else { "active" } }
                            td {
                                @if k.revoked_at_us.is_none() {
                                    form method="post" action={ "/api-keys/" (k.key_id) "/revoke" } {
                                        (csrf_field(&viewer.csrf))
                                        button.secondary type="submit" aria-label={ "Revoke key " (k.key_id) } { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Create a key" }
            form.stack method="post" action="/api-keys" {
                (csrf_field(&viewer.csrf))
                label { "Role"
                    select name="role" {
                        option value="ingest" { "ingest — pipelines append decisions" }
                        option value="read" { "read — compliance tools read records and views" }
                        option value="verify" { "verify — regulators fetch proofs" }
                        option value="privacy" { "privacy — the data-protection office erases subjects' data" }
                    }
                }
                label { "Label" input type="text" name="label" maxlength="200" required; }
                label { "Expires after (days, optional)" input type="number" name="expires_in_days" min="1" max="3650"; }
                button type="submit" { "Create the key" }
            }
        },
    ))
}

#[derive(Deserialize)]
struct ApiKeyForm {
    // A missing token is a CSRF failure (403), not a malformed form (422).
    #[serde(default)]
    csrf: String,
    role: String,
    label: String,
    expires_in_days: Option<String>,
}

async fn create_api_key(
    State(state): State<AppState>,
    axum::Extension(portal): axum::Extension<Portal>,
    viewer: Viewer,
    PortalForm(form): PortalForm<ApiKeyForm>,
) -> Result<Response, PortalError> {
    let admin = admit(&state, &portal, &viewer, &form.csrf, ADMINS)?;
    let role = Role::parse(&form.role).map_err(PortalError::BadRequest)?;
    let label = form.label.trim();
    if label.is_empty() || label.len() > crate::store::API_KEY_LABEL_BYTES_MAX {
        return Err(PortalError::BadRequest(format!(
            "The label must be 1 to {} characters.",
            crate::store::API_KEY_LABEL_BYTES_MAX
        )));
    }
    if let Some(problem) = crate::store::api_key_label_problem(label) {
        return Err(PortalError::BadRequest(format!(
            "The label {problem}. No key was created."
        )));
    }
    let store = &state.store;
    let expires = match form
        .expires_in_days
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(d) => {
            let days: u64 = d
                .parse()
                .ok()
                .filter(|d| (1..=3650).contains(d))
                .ok_or_else(|| PortalError::BadRequest("Expiry is 1 to 3650 days.".into()))?;
            Some(u64::try_from(store.now_us()).unwrap_or(0) + days * 86_400 * 1_000_000)
        }
    };
    // The key is made first (in memory only) so that its record can name it; it is stored only
    // once the ledger has acknowledged that record.
    let key = crate::auth::ApiKeySecret::generate();
    let id = key.id().to_string();
    let audited = admin.record("api_key_created", Some(&id)).await?;
    let stored = store
        .store_api_key(viewer.tenant(), &key, role, label, expires)
        .await
        .map_err(PortalError::from);
    audited
        .settle(store, stored, "the key could not be stored")
        .await?;
    let text = key.reveal();
    let page = api_keys_view(&state, &viewer, Some((&id, &text))).await?;
    Ok((StatusCode::CREATED, page).into_response())
}

async fn revoke_api_key(
    State(state): State<AppState>,
    axum::Extension(portal): axum::Extension<Portal>,
    viewer: Viewer,
    Path(id): Path<String>,
    PortalForm(form): PortalForm<CsrfForm>,
) -> Result<Response, PortalError> {
    let admin = admit(&state, &portal, &viewer, &form.csrf, ADMINS)?;
    let key_id = crate::auth::ApiKeyId::parse(&id).map_err(|_| PortalError::NotFound)?;
    let store = &state.store;
    // Only an active key of this tenant is revoked, and only such a revocation is recorded.
    require_active_key(store, viewer.tenant(), &key_id).await?;
    let audited = admin.record("api_key_revoked", Some(&id)).await?;
    let revoked = match store.revoke_api_key(viewer.tenant(), &key_id).await {
        Ok(true) => Ok(()),
        // Revoked meanwhile by another request.
        Ok(false) => Err(PortalError::NotFound),
        Err(e) => Err(e.into()),
    };
    audited
        .settle(store, revoked, "the key was not revoked")
        .await?;
    Ok(Redirect::to("/api-keys").into_response())
}

/// 404 unless `key_id` is an active key of `tenant` (another tenant's key is not found either).
async fn require_active_key(
    store: &crate::store::Store,
    tenant: &ledger::types::TenantId,
    key_id: &crate::auth::ApiKeyId,
) -> Result<(), PortalError> {
    let active = store
        .api_keys(tenant)
        .await?
        .iter()
        .any(|k| k.key_id == key_id.as_str() && k.revoked_at_us.is_none());
    if active {
        Ok(())
    } else {
        Err(PortalError::NotFound)
    }
}

#[derive(Deserialize)]
struct ApiKeyRateForm {
    // A missing token is a CSRF failure (403), not a malformed form (422).
    #[serde(default)]
    csrf: String,
    /// Requests a second; empty for the default of the key's role.
    #[serde(default)]
    rate: String,
}

/// Sets an active key's own request rate (empty: the default of its role), recorded in the
/// ledger as an administration record naming the key and the rate.
async fn set_api_key_rate(
    State(state): State<AppState>,
    axum::Extension(portal): axum::Extension<Portal>,
    viewer: Viewer,
    Path(id): Path<String>,
    PortalForm(form): PortalForm<ApiKeyRateForm>,
) -> Result<Response, PortalError> {
    let admin = admit(&state, &portal, &viewer, &form.csrf, ADMINS)?;
    let key_id = crate::auth::ApiKeyId::parse(&id).map_err(|_| PortalError::NotFound)?;
    let max = crate::store::API_KEY_RATE_MAX;
    let rate = match form.rate.trim() {
        "" => None,
        r => Some(
            r.parse::<u32>()
                .ok()
                .filter(|r| (1..=max).contains(r))
                .ok_or_else(|| {
                    PortalError::BadRequest(format!(
                        "The rate is a whole number of requests a second from 1 to {max}, or empty for the default."
                    ))
                })?,
        ),
    };
    let store = &state.store;
    require_active_key(store, viewer.tenant(), &key_id).await?;
    let target = match rate {
        Some(r) => format!("{id} {r}/s"),
        None => format!("{id} default"),
    };
    let audited = admin.record("api_key_rate_set", Some(&target)).await?;
    let set = match store.set_api_key_rate(viewer.tenant(), &key_id, rate).await {
        Ok(true) => Ok(()),
        // Revoked meanwhile by another request.
        Ok(false) => Err(PortalError::NotFound),
        Err(e) => Err(e.into()),
    };
    audited
        .settle(store, set, "the key's rate was not changed")
        .await?;
    Ok(Redirect::to("/api-keys").into_response())
}

async fn users_page(
    State(state): State<AppState>,
    viewer: Viewer,
    PortalQuery(q): PortalQuery<DoneQuery>,
) -> Result<Markup, PortalError> {
    require(&viewer, ADMINS)?;
    let users = state.store.users(viewer.tenant()).await?;
    let now = state.store.now_us();
    Ok(layout(
        "Users",
        &viewer.chrome(),
        html! {
            h1 { "Users" }
            @if q.done.as_deref() == Some("invited") { (notice("The invitation has been sent.")) }
            table {
                thead { tr { th { "Email" } th { "Role" } th { "Access until" } th { "State" } th { "Change" } } }
                tbody {
                    @for u in &users {
                        tr {
                            td { (u.email) }
                            td { (u.role.as_str()) }
                            td { (u.expires_at_us.map(when).unwrap_or_else(|| "—".into())) }
                            td { @if u.disabled_at_us.is_some() { "disabled" } @else if !u.is_active(now) { "expired" } @else { "active" } }
                            td {
                                @if u.user_id != viewer.user.user_id && u.disabled_at_us.is_none() {
                                    form method="post" action={ "/users/" (u.user_id) "/role" } {
                                        (csrf_field(&viewer.csrf))
                                        label { "Role" select name="role" aria-label={ "Role of " (u.email) } { (role_options(Some(u.role))) } }
                                        label { "Access until" input type="date" name="expires_on" aria-label={ "Access of " (u.email) " until" }; }
                                        button type="submit" aria-label={ "Set the role of " (u.email) } { "Set" }
                                    }
                                    form method="post" action={ "/users/" (u.user_id) "/disable" } {
                                        (csrf_field(&viewer.csrf))
                                        button.secondary type="submit" aria-label={ "Disable " (u.email) } { "Disable" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Invite someone" }
            p { "They receive a link to choose a password. Regulators need an end date for their access." }
            form.stack method="post" action="/users" {
                (csrf_field(&viewer.csrf))
                label { "Email" input type="email" name="email" required maxlength="254"; }
                label { "Role" select name="role" { (role_options(Some(PortalRole::Auditor))) } }
                label { "Access until (required for regulators)" input type="date" name="expires_on"; }
                button type="submit" { "Invite" }
            }
        },
    ))
}

#[derive(Deserialize)]
struct InviteForm {
    // A missing token is a CSRF failure (403), not a malformed form (422).
    #[serde(default)]
    csrf: String,
    email: String,
    role: String,
    expires_on: Option<String>,
}

fn role_and_expiry(
    role: &str,
    expires_on: &Option<String>,
    now_us: i64,
) -> Result<(PortalRole, Option<i64>), PortalError> {
    let role =
        PortalRole::parse(role).ok_or_else(|| PortalError::BadRequest("Unknown role.".into()))?;
    let expires = day_start_us(expires_on, 1)?;
    if role == PortalRole::Regulator && expires.is_none() {
        return Err(PortalError::BadRequest(
            "Regulator access needs an end date.".into(),
        ));
    }
    if expires.is_some_and(|e| e <= now_us) {
        return Err(PortalError::BadRequest(
            "The end date must be in the future.".into(),
        ));
    }
    Ok((role, expires))
}

async fn invite_user(
    State(state): State<AppState>,
    axum::Extension(portal): axum::Extension<Portal>,
    viewer: Viewer,
    PortalForm(form): PortalForm<InviteForm>,
) -> Result<Response, PortalError> {
    let admin = admit(&state, &portal, &viewer, &form.csrf, ADMINS)?;
    let store = &state.store;
    let email = form.email.trim().to_lowercase();
    // Control characters (NUL among them) are refused here, with the same words as whitespace:
    // no address has them, and the ledger, which records the address before the account is
    // made, refuses a NUL, so it would otherwise fail there as if the ledger were unavailable.
    if email.len() > 254
        || !email.contains('@')
        || email.chars().any(char::is_whitespace)
        || has_control(&email)
    {
        return Err(PortalError::BadRequest(
            "That is not an email address.".into(),
        ));
    }
    let (role, expires) = role_and_expiry(&form.role, &form.expires_on, store.now_us())?;
    let exists = || {
        PortalError::BadRequest(
            "An account with that email exists already in this organisation.".into(),
        )
    };
    // Refused before anything is recorded; the insert below still catches a concurrent invite.
    if store
        .user_by_email(viewer.tenant(), &email)
        .await?
        .is_some()
    {
        return Err(exists());
    }
    // The account starts with an unusable password: a random one nobody knows.
    let placeholder = security::hash_password(random_token())
        .await
        .map_err(PortalError::Internal)?;
    let audited = admin
        .record(&format!("user_invited:{}", role.as_str()), Some(&email))
        .await?;
    let user = match store
        .create_user(
            viewer.tenant(),
            &email,
            role,
            &placeholder,
            expires,
            store.now_us(),
        )
        .await
    {
        Ok(u) => u,
        Err(crate::store::StoreError::Duplicate(_)) => {
            audited
                .failed(store, "an account with that email exists")
                .await;
            return Err(exists());
        }
        Err(e) => {
            audited
                .failed(store, "the account could not be stored")
                .await;
            return Err(e.into());
        }
    };
    // The account exists from here on; the failure record says the invitation did not go out.
    let sent = send_reset_link(store, &portal, &user, "invite")
        .await
        .map_err(PortalError::Internal);
    audited
        .settle(
            store,
            sent,
            "the account was created but the invitation could not be sent",
        )
        .await?;
    Ok(Redirect::to("/users?done=invited").into_response())
}

#[derive(Deserialize)]
struct RoleForm {
    // A missing token is a CSRF failure (403), not a malformed form (422).
    #[serde(default)]
    csrf: String,
    role: String,
    expires_on: Option<String>,
}

async fn set_role(
    State(state): State<AppState>,
    axum::Extension(portal): axum::Extension<Portal>,
    viewer: Viewer,
    Path(id): Path<String>,
    PortalForm(form): PortalForm<RoleForm>,
) -> Result<Response, PortalError> {
    let admin = admit(&state, &portal, &viewer, &form.csrf, ADMINS)?;
    let store = &state.store;
    let target = admin.user(&id).await?;
    let (role, expires) = role_and_expiry(&form.role, &form.expires_on, store.now_us())?;
    let audited = admin
        .record(
            &format!("user_role_set:{}", role.as_str()),
            Some(&target.email),
        )
        .await?;
    let set = store
        .set_user_role(viewer.tenant(), &target.user_id, role, expires)
        .await
        .map_err(PortalError::from);
    audited
        .settle(store, set, "the role could not be stored")
        .await?;
    Ok(Redirect::to("/users").into_response())
}

async fn disable_user(
    State(state): State<AppState>,
    axum::Extension(portal): axum::Extension<Portal>,
    viewer: Viewer,
    Path(id): Path<String>,
    PortalForm(form): PortalForm<CsrfForm>,
) -> Result<Response, PortalError> {
    let admin = admit(&state, &portal, &viewer, &form.csrf, ADMINS)?;
    let store = &state.store;
    let target = admin.user(&id).await?;
    if target.user_id == viewer.user.user_id {
        return Err(PortalError::BadRequest(
            "You cannot disable your own account.".into(),
        ));
    }
    let audited = admin.record("user_disabled", Some(&target.email)).await?;
    let disabled = store
        .disable_user(viewer.tenant(), &target.user_id, store.now_us())
        .await
        .map_err(PortalError::from);
    audited
        .settle(store, disabled, "the account could not be disabled")
        .await?;
    Ok(Redirect::to("/users").into_response())
}
