//! The in-browser verifier: `ledger::evidence` compiled to `wasm32-unknown-unknown`, behind a
//! plain C ABI that a hand-written ES module (`src/portal/static/verifier.js`) drives with
//! `WebAssembly.instantiateStreaming` — no bindings generator, no toolchain beyond cargo.
//!
//! The protocol: the page asks for buffers with [`verifier_alloc`], copies the file, the pasted
//! verifier keys and the key history into them, calls [`verifier_verify`], reads the result (a
//! 4-byte little-endian length, then that many bytes of UTF-8 JSON, see [`verify_json`]) and
//! gives every buffer back with [`verifier_free`]. Nothing here does I/O: the bytes come in as
//! arguments and the verdict goes out as a value, so the same code is unit-tested on the host.
//!
//! The module is built by `scripts/build-verifier-wasm` with pinned flags and committed; the
//! service embeds the committed file (ARCHITECTURE.md, "The in-browser verifier").

use ledger::evidence::{self, Trust, Unusable, parse_key_lines};
use serde::Serialize;

/// The result handed to the page.
#[derive(Debug, Serialize)]
pub struct PageResult {
    /// Whether everything verified.
    pub verified: bool,
    /// The outcome, exactly as `auditex verify --json` prints it; absent when the input could
    /// not be used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<evidence::Outcome>,
    /// Why the input could not be used (no trusted key, a malformed key or key history), as
    /// `auditex verify` words it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The verdict for people, the text `auditex verify` prints (without its timing line).
    pub report: String,
}

/// The keys the user gave: verifier keys pasted one per line (`#` comments allowed) and an
/// optional key history as `auditex key history` prints it.
///
/// # Errors
/// [`Unusable`] naming the key or history that is malformed, or saying that no key is trusted.
pub fn trust_from(keys: &str, history: &str) -> Result<Trust, Unusable> {
    let mut trust = Trust {
        vkeys: parse_key_lines(keys)
            .map_err(|(line, e)| Unusable(format!("verifier keys, line {line}: {e}")))?,
        history: None,
    };
    if !history.trim().is_empty() {
        trust.add_key_history(history, "the key history")?;
    }
    if trust.vkeys.is_empty() {
        return Err(Unusable(
            "no trusted key: paste the log's verifier keys or load its key history (the keys inside the evidence are checked, never trusted)"
                .into(),
        ));
    }
    Ok(trust)
}

/// Verifies `file` (named `name` in the report) against the keys given, and returns the
/// [`PageResult`] as JSON.
pub fn verify_json(file: &[u8], name: &str, keys: &str, history: &str) -> String {
    let result = match trust_from(keys, history).and_then(|t| evidence::verify(file, name, &t)) {
        Ok(outcome) => PageResult {
            verified: outcome.verified,
            report: outcome.report(),
            outcome: Some(outcome),
            error: None,
        },
        Err(Unusable(why)) => PageResult {
            verified: false,
            report: format!("auditex verify: could not read input: {why}\n"),
            outcome: None,
            error: Some(why),
        },
    };
    serde_json::to_string(&result).unwrap_or_else(|e| {
        format!(r#"{{"verified":false,"error":"the result could not be encoded: {e}","report":""}}"#)
    })
}

/// Reserves `len` bytes for the page to write into; returns their address (dangling but
/// non-null for 0 bytes). The page gives them back with [`verifier_free`].
#[unsafe(no_mangle)]
pub extern "C" fn verifier_alloc(len: usize) -> *mut u8 {
    let mut buffer = Vec::<u8>::with_capacity(len);
    let ptr = buffer.as_mut_ptr();
    std::mem::forget(buffer);
    ptr
}

/// Gives back `len` bytes at `ptr` that [`verifier_alloc`] (or [`verifier_verify`], for its
/// result) handed out.
///
/// # Safety
/// `ptr` and `len` must be exactly those of one earlier allocation of this module, not yet
/// freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn verifier_free(ptr: *mut u8, len: usize) {
    // SAFETY: the caller passes back an allocation of `len` bytes' capacity made by this module
    // (a `Vec<u8>` forgotten in `verifier_alloc` or `verifier_verify`).
    drop(unsafe { Vec::from_raw_parts(ptr, 0, len) });
}

/// Reads `len` bytes at `ptr`, or nothing for a null pointer.
///
/// # Safety
/// `ptr` must be null or point to `len` initialized bytes that stay unchanged during the call.
unsafe fn input<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: guaranteed by the caller, see above.
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

/// Verifies the file at `file_ptr` (its name at `name_ptr`, UTF-8) against the verifier keys at
/// `keys_ptr` and the key history at `history_ptr` (UTF-8 text; either may be empty). Returns
/// the address of the result: a 4-byte little-endian length `n`, then `n` bytes of JSON (see
/// [`verify_json`]); the page frees `4 + n` bytes at that address with [`verifier_free`].
///
/// # Safety
/// Each pointer must be null or point to its length of initialized bytes, unchanged during the
/// call (buffers from [`verifier_alloc`] that the page filled).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn verifier_verify(
    file_ptr: *const u8,
    file_len: usize,
    name_ptr: *const u8,
    name_len: usize,
    keys_ptr: *const u8,
    keys_len: usize,
    history_ptr: *const u8,
    history_len: usize,
) -> *mut u8 {
    // SAFETY: the caller's guarantee, passed on.
    let (file, name, keys, history) = unsafe {
        (
            input(file_ptr, file_len),
            input(name_ptr, name_len),
            input(keys_ptr, keys_len),
            input(history_ptr, history_len),
        )
    };
    // Text that is not UTF-8 is replaced, not trusted: a key that does not parse is refused.
    let json = verify_json(
        file,
        &String::from_utf8_lossy(name),
        &String::from_utf8_lossy(keys),
        &String::from_utf8_lossy(history),
    );
    let n = u32::try_from(json.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(4 + json.len());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(json.as_bytes());
    // A boxed slice's allocation is exactly its length, which is what the page frees.
    Box::into_raw(out.into_boxed_slice()).cast::<u8>()
}
