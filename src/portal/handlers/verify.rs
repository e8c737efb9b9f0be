//! `/verify`: verification in the browser, with nothing uploaded. Public (no sign-in), for a
//! regulator who received a bundle, proof file, subject access package or export and wants to
//! check it against the log's public keys now.
//!
//! The page is the portal's one page with a script: a hand-written ES module
//! (`static/verifier.js`) that runs the `verifier-wasm` crate — `ledger::evidence`, the code
//! behind `auditex verify`, compiled to WebAssembly — on the file in the browser. The file is
//! read with the File API and never leaves the browser: the page has no form, and after the
//! module and the WebAssembly are fetched nothing else is requested. Both are embedded in this
//! binary (the `.wasm` as committed, see `scripts/build-verifier-wasm`) and pinned by
//! Subresource Integrity hashes computed here at start-up.
//!
//! Its Content-Security-Policy ([`VERIFY_PAGE_CSP`]) is the portal's strict one plus exactly
//! what the page needs: scripts from this origin, WebAssembly compilation
//! (`'wasm-unsafe-eval'`, which allows no JavaScript `eval`), and fetches from this origin for
//! the `.wasm`. Every other page keeps the script-free policy of `super::super::security_headers`.

use std::sync::LazyLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use maud::{Markup, html};
use sha2::{Digest, Sha384};

use super::super::pages::{self, Chrome};

/// The ES module that drives the verifier, served at [`SCRIPT_PATH`].
pub const SCRIPT: &str = include_str!("../static/verifier.js");
/// The verifier compiled to WebAssembly (`scripts/build-verifier-wasm`), served at
/// [`WASM_PATH`].
pub const WASM: &[u8] = include_bytes!("../static/verifier.wasm");

/// The page's own styles, beside the portal's stylesheet, served at [`STYLE_PATH`].
pub const STYLESHEET: &str = include_str!("../static/verify.css");

/// Where the page's styles are served.
pub const STYLE_PATH: &str = "/static/verify.css";
/// Where the page's script is served.
pub const SCRIPT_PATH: &str = "/static/verifier.js";
/// Where the WebAssembly module is served.
pub const WASM_PATH: &str = "/static/verifier.wasm";

/// The Content-Security-Policy of `/verify` alone: no source of anything but this origin's
/// script, stylesheet and `.wasm`; WebAssembly may be compiled, JavaScript may not be `eval`ed;
/// no form may be submitted anywhere.
pub const VERIFY_PAGE_CSP: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self'; style-src 'self'; img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// `sha384-<base64>`, a Subresource Integrity value.
fn integrity(bytes: &[u8]) -> String {
    format!("sha384-{}", STANDARD.encode(Sha384::digest(bytes)))
}

static SCRIPT_INTEGRITY: LazyLock<String> = LazyLock::new(|| integrity(SCRIPT.as_bytes()));
static WASM_INTEGRITY: LazyLock<String> = LazyLock::new(|| integrity(WASM));

/// GET /verify.
pub async fn page() -> Response {
    let head = html! {
        link rel="stylesheet" href=(STYLE_PATH);
        script type="module" src=(SCRIPT_PATH) integrity=(SCRIPT_INTEGRITY.as_str()) {}
    };
    let chrome = Chrome {
        user: None,
        csrf: "",
    };
    let markup = pages::layout_with_head("Verify evidence", &chrome, head, body());
    let mut response = markup.into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(VERIFY_PAGE_CSP),
    );
    response
}

fn body() -> Markup {
    html! {
        div.verify #verifier data-wasm=(WASM_PATH) data-wasm-integrity=(WASM_INTEGRITY.as_str()) {
            h1 { "Verify evidence" }
            p.lead {
                "Check a custody bundle, tlog-proof file, subject access package or ledger export "
                "against the log's public keys. The file is verified "
                strong { "in this browser" }
                ", by the same verifier as " code { "auditex verify" }
                " compiled to WebAssembly: it is never uploaded, and you need no account."
            }
            noscript {
                p.error role="alert" {
                    "This page verifies files with JavaScript and WebAssembly, which your browser "
                    "has turned off. Without them, verify on the command line: "
                    code { "auditex verify FILE --key VKEY" } "."
                }
            }
            div.steps {
                section.step aria-labelledby="step-file" {
                    h2 #step-file { span.step-number { "1" } "The evidence" }
                    label.dropzone #dropzone for="evidence" {
                        span.drop-title { "Drop a file here, or choose one" }
                        span.muted { "A bundle (.json), proof file, subject package or export (.jsonl)" }
                        input #evidence type="file" name="evidence";
                    }
                    p.muted #chosen aria-live="polite" { "No file chosen." }
                }
                section.step aria-labelledby="step-keys" {
                    h2 #step-keys { span.step-number { "2" } "The keys you trust" }
                    label for="keys" {
                        "Verifier keys of the log, one per line"
                        textarea #keys name="keys" rows="4" spellcheck="false" autocomplete="off"
                            placeholder="auditex.example/ledger/acme-bank+1a2b3c4d+AbCd…" {}
                    }
                    label for="key-history" {
                        span { "or its key history (JSON, as " code { "auditex key history" } " prints it)" }
                        input #key-history type="file" name="key-history" accept=".json,application/json";
                    }
                    p.muted {
                        "Take the keys from the bank, not from the file: the keys inside the evidence are checked, never trusted."
                    }
                }
            }
            p.actions {
                button #verify-button type="button" disabled { "Verify" }
                span.muted #verifier-state aria-live="polite" { "Loading the verifier…" }
            }
            section.result #result hidden aria-live="polite" aria-labelledby="verify-status" {
                h2 #verify-status tabindex="-1" {}
                p #verify-subject {}
                div #verify-failure hidden {
                    p { "First failure: " strong #verify-failure-kind {} span #verify-failure-place {} }
                    p #verify-failure-message {}
                    dl #verify-failure-detail {}
                }
                ul.proven #verify-proven {}
                details {
                    summary { "As " code { "auditex verify" } " prints it" }
                    pre #verify-report {}
                }
            }
        }
    }
}

/// GET /static/verifier.js.
pub async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

/// GET /static/verify.css.
pub async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        STYLESHEET,
    )
        .into_response()
}

/// GET /static/verifier.wasm. `application/wasm` is what `instantiateStreaming` requires.
pub async fn wasm() -> Response {
    ([(header::CONTENT_TYPE, "application/wasm")], WASM).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wasm_module_is_embedded_and_exports_the_verifier_abi() {
        assert!(WASM.starts_with(b"\0asm"), "a WebAssembly binary");
        for export in [
            "verifier_alloc",
            "verifier_free",
            "verifier_verify",
            "memory",
        ] {
            assert!(
                WASM.windows(export.len()).any(|w| w == export.as_bytes()),
                "the module exports {export}"
            );
        }
    }

    #[test]
    fn the_page_pins_the_script_and_the_module_by_their_hashes() {
        let html = body().into_string();
        assert!(html.contains(&format!("data-wasm-integrity=\"{}\"", *WASM_INTEGRITY)));
        assert!(WASM_INTEGRITY.starts_with("sha384-"));
        assert_eq!(SCRIPT_INTEGRITY.len(), "sha384-".len() + 64);
        // No form: nothing on the page can submit the file.
        assert!(!html.contains("<form"), "{html}");
    }
}
