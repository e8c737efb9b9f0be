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
form.inline { display: flex; gap: .4rem; align-items: center; } form.inline input { width: 7rem; }
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
.section-head { display: flex; flex-wrap: wrap; align-items: baseline; justify-content: space-between; gap: .5rem 1rem; margin-top: 2rem; }
.section-head h2 { margin: 0; }
nav.window { display: flex; gap: .5rem; }
nav.window a { padding: .2rem .8rem; border: 1px solid var(--line); border-radius: 999px; text-decoration: none; font-size: .9rem; }
nav.window a[aria-current=page] { background: var(--accent); border-color: var(--accent); color: #fff; }
.chart-grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(26rem, 1fr)); gap: 1.25rem; margin-top: 1rem; }
figure.chart { margin: 0; padding: 1rem 1rem .75rem; border: 1px solid var(--line); border-radius: 6px; background: #fff; }
figure.chart figcaption { font-weight: 600; margin-bottom: .5rem; }
svg.chart { display: block; width: 100%; height: auto; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
svg.chart text { fill: var(--muted); stroke: none; font-size: 15px; }
svg.chart text.label, svg.chart text.value { fill: var(--fg); }
svg.chart .grid { stroke: #e5e7eb; }
svg.chart .baseline { stroke: #6b7280; }
svg.chart rect { stroke: none; }
svg.chart polyline.line { fill: none; stroke-width: 2.5; stroke-linejoin: round; }
svg.chart circle.point { stroke: #fff; stroke-width: 1.5; }
svg.chart .s1 polyline { stroke-dasharray: 8 4; }
svg.chart .s2 polyline { stroke-dasharray: 2 3; }
svg.chart .s3 polyline { stroke-dasharray: 10 3 2 3; }
svg.chart .warn { fill: var(--bad); }
.s0 { fill: #0072b2; stroke: #0072b2; background: #0072b2; }
.s1 { fill: #e69f00; stroke: #e69f00; background: #e69f00; }
.s2 { fill: #009e73; stroke: #009e73; background: #009e73; }
.s3 { fill: #cc79a7; stroke: #cc79a7; background: #cc79a7; }
.s4 { fill: #56b4e9; stroke: #56b4e9; background: #56b4e9; }
.s5 { fill: #d55e00; stroke: #d55e00; background: #d55e00; }
.s6 { fill: #332288; stroke: #332288; background: #332288; }
.s7 { fill: #6b7280; stroke: #6b7280; background: #6b7280; }
ul.legend { display: flex; flex-wrap: wrap; gap: .25rem 1rem; list-style: none; margin: .5rem 0 0; padding: 0; font-size: .9rem; }
.swatch { display: inline-block; width: .8rem; height: .8rem; margin-right: .4rem; border-radius: 2px; vertical-align: -.05rem; }
details.data { margin-top: .5rem; font-size: .9rem; }
details.data summary { cursor: pointer; color: var(--accent); }
details.data table { margin: .5rem 0 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.empty-state { margin: 0; padding: 2.5rem 1rem; text-align: center; color: var(--muted); background: #f9fafb; border-radius: 4px; }
.breadcrumb { margin: 0 0 .25rem; color: var(--muted); }
h1 .version { color: var(--muted); font-weight: 400; }
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
    layout_with_head(title, chrome, html! {}, body)
}

/// The whole page around `body`, with more in its `head` after the stylesheet (the one page
/// with a script, `/verify`, names it there).
pub fn layout_with_head(title: &str, chrome: &Chrome<'_>, head: Markup, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — Auditex" }
                link rel="stylesheet" href="/static/portal.css";
                (head)
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
