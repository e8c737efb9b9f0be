//! The compliance portal: server-rendered pages for compliance officers, auditors, administrators
//! and (time-boxed, read-only) regulators, served by the same HTTPS listener as the API.
//!
//! Authentication follows OWASP ASVS level 2: Argon2id passwords, server-side sessions behind a
//! signed `__Host-` cookie (`Secure`, `HttpOnly`, `SameSite=Strict`), idle and absolute expiry,
//! a new session id at every sign-in, every session ended on a password change or when the
//! account is disabled, CSRF tokens on every form, per-account back-off and per-address rate
//! limits on sign-in, identical answers for unknown and known emails, single-use reset tokens
//! stored as hashes. Every action that changes something or exports evidence is appended to the
//! tenant's ledger as an `access` or `administration` record *before* it is done, and refused
//! when the ledger does not acknowledge that record ([`audit`]): the portal is audited by the
//! ledger, and nothing is done unrecorded.
//!
//! - [`security`]: passwords, the session key ring, CSRF tokens;
//! - [`mail`]: SMTP or the outbox folder;
//! - [`charts`]: the SVG charts of the dashboard and the model pages;
//! - [`input`]: form bodies and query strings, decoded strictly (UTF-8, no field given twice, no
//!   parameter a page does not take) before any handler reads them;
//! - [`pages`]: the layout; the page handlers are in [`handlers`], where every form that changes
//!   something passes one preamble (`admit`: CSRF token, then role; then the lookup of its
//!   target and its `administration` record).
//!
//! The pages run over the application state (`app::AppState`) that the API also uses; the portal
//! imports nothing from `http`, and `server` merges its routes with the API's.

pub mod charts;
pub mod handlers;
pub mod input;
pub mod mail;
pub(crate) mod pages;
pub mod security;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use ledger::record::EventType;
use ledger::types::TenantId;
use serde_json::json;

use crate::app::AppState;
use crate::store::users::{PortalRole, Session, User};
use crate::store::{ServiceDraft, Store};
use security::KeyRing;

/// The session cookie's name. The `__Host-` prefix makes browsers insist on `Secure`, `Path=/`
/// and no `Domain`, so no other host can set or overwrite it.
pub const SESSION_COOKIE: &str = "__Host-auditex-session";

/// The pre-session cookie that CSRF tokens of the sign-in and reset forms are bound to.
pub const PRE_SESSION_COOKIE: &str = "__Host-auditex-pre";

/// Failed sign-ins of one account allowed before it is backed off.
pub const FREE_ATTEMPTS: u32 = 5;

/// Longest back-off of one account, in seconds.
pub const BACKOFF_SECONDS_MAX: u64 = 15 * 60;

/// Default idle expiry of a session.
pub const IDLE_MINUTES_DEFAULT: u64 = 30;
/// Default absolute expiry of a session.
pub const ABSOLUTE_HOURS_DEFAULT: u64 = 12;
/// Default lifetime of a password-reset (or invitation) link.
pub const RESET_MINUTES_DEFAULT: u64 = 120;

/// The portal's settings.
#[derive(Debug, Clone)]
pub struct PortalConfig {
    /// Session-signing keys.
    pub keys: KeyRing,
    /// The public base URL (`https://auditex.example.com`), the only source of links in mail.
    pub public_url: String,
    /// A session ends after this long without a request.
    pub idle: Duration,
    /// A session ends this long after sign-in, whatever happens.
    pub absolute: Duration,
    /// A reset link works this long.
    pub reset_ttl: Duration,
    /// Where mail goes.
    pub mailer: mail::Mailer,
}

/// The portal's shared state.
#[derive(Clone)]
pub struct Portal {
    inner: Arc<PortalInner>,
}

struct PortalInner {
    config: PortalConfig,
}

impl std::fmt::Debug for Portal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Portal")
            .field("public_url", &self.inner.config.public_url)
            .finish_non_exhaustive()
    }
}

impl Portal {
    /// The portal with these settings.
    pub fn new(config: PortalConfig) -> Portal {
        // Computed now, so that the first sign-in with an unknown email costs one hash, not two.
        std::sync::LazyLock::force(&security::DUMMY_HASH);
        Portal {
            inner: Arc::new(PortalInner { config }),
        }
    }

    /// The settings.
    pub fn config(&self) -> &PortalConfig {
        &self.inner.config
    }
}

/// Failed sign-ins are counted per account, known or not (so that back-off says nothing about
/// which accounts exist), in the database: every service node sees the same count, so adding
/// nodes does not multiply the attempts an attacker gets. An account is named there only by
/// this hash of the organisation and email as typed.
fn account_key(tenant_text: &str, email: &str) -> Vec<u8> {
    security::token_hash(&format!("auditex sign-in back-off\n{tenant_text}\n{email}"))
}

/// Seconds the account must wait before another attempt, if it is backed off.
async fn backoff(
    store: &crate::store::Store,
    account: &[u8],
    now_us: i64,
) -> Result<Option<u64>, crate::store::StoreError> {
    Ok(store
        .sign_in_locked_until(account)
        .await?
        .filter(|&until| until > now_us)
        .map(|until| u64::try_from((until - now_us) / 1_000_000).unwrap_or(0) + 1))
}

/// Counts a failure; after [`FREE_ATTEMPTS`] each further one doubles the wait.
async fn failed(
    store: &crate::store::Store,
    account: &[u8],
    now_us: i64,
) -> Result<(), crate::store::StoreError> {
    let failures = store.count_sign_in_failure(account, now_us).await?;
    let failures = u32::try_from(failures).unwrap_or(u32::MAX);
    if failures >= FREE_ATTEMPTS {
        let exponent = (failures - FREE_ATTEMPTS).min(16);
        let seconds = (1u64 << exponent).min(BACKOFF_SECONDS_MAX);
        let until = now_us.saturating_add(i64::try_from(seconds * 1_000_000).unwrap_or(i64::MAX));
        store.lock_sign_in(account, until).await?;
    }
    Ok(())
}

/// The signed-in person of a request.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The account.
    pub user: User,
    /// The session id (from the cookie; never logged).
    pub session_id: String,
    /// Its SHA-256, as stored.
    pub id_hash: Vec<u8>,
    /// The CSRF token of this session.
    pub csrf: String,
}

impl Viewer {
    /// The tenant.
    pub fn tenant(&self) -> &TenantId {
        &self.user.tenant
    }

    /// The role.
    pub fn role(&self) -> PortalRole {
        self.user.role
    }

    /// Appends an `access` or `administration` record of this person's action, before the
    /// action is done (see [`audit`]).
    ///
    /// # Errors
    /// [`PortalError::AuditUnavailable`] when the ledger did not acknowledge the record: the
    /// action must then not be done.
    pub async fn audit(
        &self,
        store: &Store,
        event_type: &'static str,
        action: &str,
        target: Option<&str>,
    ) -> Result<Audited, PortalError> {
        audit(
            store,
            self.tenant(),
            event_type,
            &self.user.email,
            action,
            target,
        )
        .await
    }

    /// The layout's view of the viewer.
    pub fn chrome(&self) -> pages::Chrome<'_> {
        pages::Chrome {
            user: Some((&self.user.email, self.user.role)),
            csrf: &self.csrf,
        }
    }
}

/// Why a page was refused.
#[derive(Debug)]
pub enum PortalError {
    /// Not signed in (or the session ended): back to the sign-in page.
    SignIn,
    /// Signed in, but the role may not do this.
    Forbidden,
    /// No such thing (or another tenant's).
    NotFound,
    /// A form without a valid CSRF token.
    Csrf,
    /// A malformed request.
    BadRequest(String),
    /// A store failure.
    Internal(String),
    /// The ledger did not acknowledge the action's audit record, so the action was not done.
    AuditUnavailable(String),
    /// The action was refused for a reason the person can act on.
    Refused {
        /// The HTTP status.
        status: StatusCode,
        /// The page's title.
        title: &'static str,
        /// What to do.
        message: String,
        /// Seconds to wait, when waiting helps (`Retry-After`).
        retry_after: Option<u64>,
    },
}

impl From<crate::store::StoreError> for PortalError {
    fn from(e: crate::store::StoreError) -> Self {
        PortalError::Internal(e.to_string())
    }
}

impl IntoResponse for PortalError {
    fn into_response(self) -> Response {
        let (status, title, message) = match self {
            PortalError::SignIn => return Redirect::to("/sign-in").into_response(),
            PortalError::Forbidden => (
                StatusCode::FORBIDDEN,
                "Not allowed",
                "Your role does not give access to this page.".to_owned(),
            ),
            PortalError::NotFound => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing here.".to_owned(),
            ),
            PortalError::Csrf => (
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form was not issued to this session (or it expired). Go back, reload the page and try again.".to_owned(),
            ),
            PortalError::BadRequest(m) => (StatusCode::BAD_REQUEST, "Bad request", m),
            PortalError::Refused {
                status,
                title,
                message,
                retry_after,
            } => {
                let mut response = (status, pages::error_page(title, &message)).into_response();
                if let Some(wait) = retry_after {
                    response
                        .headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(wait));
                }
                return response;
            }
            PortalError::AuditUnavailable(detail) => {
                tracing::error!(
                    error = %detail,
                    "portal action refused: its audit record could not be appended to the ledger"
                );
                let mut response = (
                    StatusCode::SERVICE_UNAVAILABLE,
                    pages::error_page(AUDIT_UNAVAILABLE_TITLE, AUDIT_UNAVAILABLE_MESSAGE),
                )
                    .into_response();
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(AUDIT_UNAVAILABLE_RETRY_AFTER_S),
                );
                return response;
            }
            PortalError::Internal(detail) => {
                tracing::error!(error = %detail, "portal request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The request failed; it has been logged.".to_owned(),
                )
            }
        };
        (status, pages::error_page(title, &message)).into_response()
    }
}

/// A cookie's value from the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value with the portal's flags.
pub fn set_cookie(name: &str, value: &str, max_age: Option<Duration>) -> HeaderValue {
    let age = max_age.map_or(String::new(), |d| format!("; Max-Age={}", d.as_secs()));
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Secure; HttpOnly; SameSite=Strict{age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A `Set-Cookie` that removes a cookie.
pub fn clear_cookie(name: &str) -> HeaderValue {
    set_cookie(name, "", Some(Duration::ZERO))
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = PortalError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let portal = portal_of(parts)?;
        let config = portal.config();
        let value = cookie(&parts.headers, SESSION_COOKIE).ok_or(PortalError::SignIn)?;
        let session_id = config.keys.open_session(value).ok_or(PortalError::SignIn)?;
        let id_hash = security::token_hash(&session_id);
        let store = &state.store;
        let now = store.now_us();
        let session: Session = store.session(&id_hash).await?.ok_or(PortalError::SignIn)?;
        let idle = i64::try_from(config.idle.as_micros()).unwrap_or(i64::MAX);
        if session.ended_at_us.is_some()
            || session.expires_at_us <= now
            || session.last_seen_us.saturating_add(idle) <= now
        {
            return Err(PortalError::SignIn);
        }
        let user = store
            .user_by_id(&session.tenant, &session.user_id)
            .await?
            .ok_or(PortalError::SignIn)?;
        if !user.is_active(now) {
            return Err(PortalError::SignIn);
        }
        // Idle expiry needs the last request's time; one write per request is cheap next to
        // Argon2 and keeps the rule exact.
        store.touch_session(&session.tenant, &id_hash, now).await?;
        let csrf = config.keys.csrf_token(&session_id);
        Ok(Viewer {
            user,
            session_id,
            id_hash,
            csrf,
        })
    }
}

fn portal_of(parts: &Parts) -> Result<Portal, PortalError> {
    parts
        .extensions
        .get::<Portal>()
        .cloned()
        .ok_or_else(|| PortalError::Internal("the portal is not configured".into()))
}

/// The title of the page that refuses an action whose audit record was not acknowledged.
pub const AUDIT_UNAVAILABLE_TITLE: &str = "Not done: the audit trail is unavailable";

/// What that page says. It promises only what is true: the action was not performed.
pub const AUDIT_UNAVAILABLE_MESSAGE: &str = "This action was not performed, because its record \
could not be written to the ledger and nothing happens here without its record. Nothing was \
changed. Try again in a minute; if this persists, tell your operator.";

/// Seconds a person refused for want of an audit record is told to wait (`Retry-After`).
pub const AUDIT_UNAVAILABLE_RETRY_AFTER_S: u64 = 30;

/// A portal action's audit record, acknowledged by the ledger before the action is done.
///
/// The portal's tables and the ledger are written by different transactions (the ledger only
/// through the tenant's appender, which signs and chains), so an action and its record cannot
/// commit together. The record therefore comes first and the action only after the ledger has
/// acknowledged it: an action is never done without its record. When the action then fails,
/// [`Audited::settle`] appends a second record saying so (`outcome: failed`, `refers_to` the
/// first record's event id), so that the trail does not claim an action that did not happen.
#[derive(Debug)]
#[must_use = "an audited action must be settled with its outcome"]
pub struct Audited {
    tenant: TenantId,
    event_type: &'static str,
    actor: String,
    action: String,
    target: Option<String>,
    event_id: String,
}

impl Audited {
    /// Passes the action's result through; a failure is first recorded in the ledger as the
    /// outcome of this record (`reason` says why in words fit for a permanent record: no error
    /// detail, which may name internals).
    ///
    /// # Errors
    /// The action's own error, unchanged.
    pub async fn settle<T>(
        self,
        store: &Store,
        result: Result<T, PortalError>,
        reason: &str,
    ) -> Result<T, PortalError> {
        if result.is_err() {
            self.failed(store, reason).await;
        }
        result
    }

    /// Records that the action of this record did not take effect. When even that record is
    /// refused, the ledger holds a record of an action that was authorised but not done (never
    /// the reverse); the ERROR line below names it for the operator.
    pub async fn failed(self, store: &Store, reason: &str) {
        let mut payload = self.payload();
        payload["outcome"] = json!("failed");
        payload["reason"] = json!(reason);
        payload["refers_to"] = json!(self.event_id);
        let id = uuid::Uuid::now_v7().to_string();
        if let Err(e) = append_audit(store, &self.tenant, self.event_type, &id, &payload).await {
            tracing::error!(
                tenant = %self.tenant,
                action = %self.action,
                refers_to = %self.event_id,
                error = %e,
                "a portal action failed after its audit record was appended, and the record of \
                 the failure could not be appended: the ledger shows the action as authorised only"
            );
        }
    }

    fn payload(&self) -> serde_json::Value {
        let mut payload = json!({"actor": self.actor, "action": self.action});
        if let Some(t) = &self.target {
            payload["target"] = json!(t);
        }
        payload
    }
}

/// Appends an `access` or `administration` record of a portal action and waits for the ledger
/// to acknowledge it. Call it *before* doing the action (after every check that may refuse it),
/// do the action only on `Ok`, and settle the returned [`Audited`] with the action's result.
/// For reads the record is appended before the data is shown, and nothing is shown without it.
///
/// # Errors
/// [`PortalError::AuditUnavailable`] when the record was not acknowledged (the ledger refused
/// or failed, the tenant is held after a rollback, storage is full, the service is stopping).
pub async fn audit(
    store: &Store,
    tenant: &TenantId,
    event_type: &'static str,
    actor: &str,
    action: &str,
    target: Option<&str>,
) -> Result<Audited, PortalError> {
    let audited = Audited {
        tenant: tenant.clone(),
        event_type,
        actor: actor.to_owned(),
        action: action.to_owned(),
        target: target.map(str::to_owned),
        event_id: uuid::Uuid::now_v7().to_string(),
    };
    append_audit(
        store,
        tenant,
        event_type,
        &audited.event_id,
        &audited.payload(),
    )
    .await
    .map_err(|e| PortalError::AuditUnavailable(format!("tenant {tenant}, action {action}: {e}")))?;
    Ok(audited)
}

async fn append_audit(
    store: &Store,
    tenant: &TenantId,
    event_type: &str,
    event_id: &str,
    payload: &serde_json::Value,
) -> Result<(), String> {
    let draft = EventType::parse(event_type)
        .map_err(|e| e.to_string())
        .and_then(|t| ServiceDraft::prepare(event_id, t, payload).map_err(|e| e.to_string()))?;
    store
        .append_service(tenant, vec![draft])
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The portal routes, sharing the API's state; `portal` travels as a request extension.
pub fn routes(portal: Portal) -> Router<AppState> {
    handlers::routes().layer(axum::Extension(portal))
}

/// Security headers for every portal page: a Content-Security-Policy that allows only this
/// origin's stylesheet (no scripts at all), no framing, no sniffing, no referrer leaks.
pub async fn security_headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    // A response with a policy of its own keeps it: the printable access package carries a
    // stricter one that allows exactly its inline style sheet, and `/verify` the one exception
    // that allows a script (`handlers::verify::VERIFY_PAGE_CSP`).
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        );
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
