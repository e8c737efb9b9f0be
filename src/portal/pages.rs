//! The portal's HTML: one layout and small page fragments, rendered with `maud`, which escapes
//! every interpolated value. No JavaScript and no external assets: the stylesheet is served by
//! the binary, so the Content-Security-Policy can forbid everything else.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::store::users::PortalRole;

/// The stylesheet, served at `/static/portal.css`.
pub const STYLESHEET: &str = r#"
:root { --fg: #1b1f24; --muted: #4b5563; --bg: #ffffff; --accent: #0b4f8a; --line: #d1d5db; --bad: #9b1c1c; --good: #14532d; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
a { color: var(--accent); }
a:focus, button:focus, input:focus, select:focus, textarea:focus { outline: 3px solid #f59e0b; outline-offset: 2px; }
header { display: flex; flex-wrap: wrap; align-items: center; gap: 1rem; padding: .75rem 1.5rem; border-bottom: 1px solid var(--line); }
header .brand { font-weight: 700; text-decoration: none; color: var(--fg); }
nav ul { display: flex; flex-wrap: wrap; gap: 1rem; list-style: none; margin: 0; padding: 0; }
header form { margin-left: auto; }
main { max-width: 72rem; margin: 0 auto; padding: 1.5rem; }
h1 { font-size: 1.6rem; margin-top: 0; }
table { border-collapse: collapse; width: 100%; margin: 1rem 0; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; }
form.stack { display: grid; gap: .75rem; max-width: 28rem; }
form.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(14rem, 1fr)); gap: .75rem; align-items: end; }
label { display: grid; gap: .25rem; font-weight: 600; }
input, select, textarea { font: inherit; padding: .45rem .5rem; border: 1px solid #6b7280; border-radius: 4px; }
fieldset { display: grid; gap: .4rem; border: 1px solid var(--line); border-radius: 4px; }
label.choice { display: flex; gap: .5rem; align-items: center; font-weight: 400; }
ul.fields { margin: 0; padding-left: 1rem; }
.erased { color: var(--muted); }
button { font: inherit; padding: .45rem 1rem; border: 0; border-radius: 4px; background: var(--accent); color: #fff; cursor: pointer; }
button.secondary { background: #374151; }
.notice { padding: .75rem 1rem; border-left: 4px solid var(--accent); background: #eff6ff; }
.error { padding: .75rem 1rem; border-left: 4px solid var(--bad); background: #fef2f2; color: var(--bad); }
.ok { color: var(--good); font-weight: 600; }
.bad { color: var(--bad); font-weight: 600; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(14rem, 1fr)); gap: 1rem; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 1rem; }
.card .figure { font-size: 1.8rem; font-weight: 700; }
.muted { color: var(--muted); }
ol.timeline { border-left: 3px solid var(--line); padding-left: 1.25rem; }
ol.timeline li { margin-bottom: .75rem; }
pre { white-space: pre-wrap; word-break: break-all; background: #f3f4f6; padding: .75rem; border-radius: 4px; }
.tag { display: inline-block; padding: 0 .45rem; border-radius: 999px; background: #eef2ff; color: #312e81; font-size: .85rem; font-weight: 600; }
.tag.warn { background: #fef3c7; color: #78350f; }
form.grid select { width: 100%; min-width: 0; }
table.queue td:nth-child(-n+3) { white-space: nowrap; }
nav.tabs ul { border-bottom: 1px solid var(--line); gap: 0; }
nav.tabs a { display: block; padding: .5rem 1rem; text-decoration: none; border-bottom: 3px solid transparent; }
nav.tabs a[aria-current=page] { border-bottom-color: var(--accent); font-weight: 600; color: var(--fg); }
table.queue tr.overdue td { background: #fef2f2; }
table.queue tr.overdue td:first-child { box-shadow: inset 4px 0 0 var(--bad); }
section.pending { border: 1px solid #f59e0b; border-left-width: 6px; border-radius: 6px; padding: .75rem 1rem; background: #fffbeb; margin: 1rem 0; }
section.pending h3 { margin-top: 0; }
div.actions { display: grid; grid-template-columns: repeat(auto-fit, minmax(18rem, 1fr)); gap: 2rem; }
div.actions form.stack { max-width: none; }
.secret { font-family: ui-monospace, monospace; font-size: 1.05rem; padding: .75rem; border: 2px dashed var(--accent); word-break: break-all; }
"#;

/// Who is looking at a page, for the layout.
pub struct Chrome<'a> {
    /// Signed-in user's email and role, or nothing on the sign-in pages.
    pub user: Option<(&'a str, PortalRole)>,
    /// The CSRF token of the session (for the sign-out form).
    pub csrf: &'a str,
}

/// Pages the role may see in the navigation.
fn nav(role: PortalRole) -> Markup {
    html! {
        nav aria-label="Main" {
            ul {
                li { a href="/" { "Dashboard" } }
                li { a href="/decisions" { "Decisions" } }
                @if matches!(role, PortalRole::Admin | PortalRole::Compliance | PortalRole::Auditor) {
                    li { a href="/oversight" { "Oversight" } }
                }
                @if matches!(role, PortalRole::Compliance | PortalRole::Auditor | PortalRole::Regulator) {
                    li { a href="/subjects" { "Subjects" } }
                }
                li { a href="/models" { "Models" } }
                li { a href="/integrity" { "Integrity" } }
                @if role == PortalRole::Admin {
                    li { a href="/api-keys" { "API keys" } }
                    li { a href="/users" { "Users" } }
                    li { a href="/settings" { "Settings" } }
                }
                li { a href="/account/sessions" { "My sessions" } }
                li { a href="/account/password" { "Password" } }
            }
        }
    }
}

/// The whole page around `body`.
pub fn layout(title: &str, chrome: &Chrome<'_>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — Auditex" }
                link rel="stylesheet" href="/static/portal.css";
            }
            body {
                header {
                    a.brand href="/" { "Auditex" }
                    @if let Some((email, role)) = chrome.user {
                        (nav(role))
                        form method="post" action="/sign-out" {
                            input type="hidden" name="csrf" value=(chrome.csrf);
                            span.muted { (email) " (" (role.as_str()) ") " }
                            button.secondary type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" { (body) }
            }
        }
    }
}

/// A message box.
pub fn notice(text: &str) -> Markup {
    html! { p.notice role="status" { (text) } }
}

/// An error box.
pub fn error(text: &str) -> Markup {
    html! { p.error role="alert" { (text) } }
}

/// A CSRF field.
pub fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

/// A full error page (for a status without a form to show).
pub fn error_page(title: &str, message: &str) -> Markup {
    layout(
        title,
        &Chrome {
            user: None,
            csrf: "",
        },
        html! {
            h1 { (title) }
            (error(message))
            p { a href="/" { "Back to the dashboard" } }
        },
    )
}

/// Formats µs since the epoch as `YYYY-MM-DD HH:MM:SS UTC`, for people to read.
pub fn when(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "—".into())
}

/// Non-breaking text for an optional value.
pub fn opt(value: Option<&str>) -> PreEscaped<String> {
    PreEscaped(
        value
            .map(|v| maud::html! { (v) }.into_string())
            .unwrap_or_else(|| "—".into()),
    )
}
