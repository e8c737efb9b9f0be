// The /verify page: verifies a file of evidence in this browser with Auditex's verifier compiled
// to WebAssembly (the `verifier-wasm` crate). The file is read with the File API and handed to
// the module in memory; nothing is sent anywhere. The only requests this script makes are for
// the module itself, pinned by its Subresource Integrity hash.
//
// The module's ABI (verifier-wasm/src/lib.rs): verifier_alloc(len) -> ptr; verifier_free(ptr,
// len); verifier_verify(file, file_len, name, name_len, keys, keys_len, history, history_len)
// -> ptr to a 4-byte little-endian length n and n bytes of JSON.

const root = document.getElementById("verifier");
const $ = (id) => document.getElementById(id);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

let evidence = null;
let exports = null;

// Names people read for the kinds of evidence (`evidence` in the verdict).
const KINDS = {
  bundle: "Custody bundle",
  "tlog-proof": "Proof file (C2SP tlog-proof)",
  package: "Subject access package",
  export: "Ledger export",
  unknown: "Unrecognized file",
};

async function loadVerifier() {
  const response = fetch(root.dataset.wasm, {
    integrity: root.dataset.wasmIntegrity,
    credentials: "same-origin",
  });
  const { instance } = await WebAssembly.instantiateStreaming(response, {});
  return instance.exports;
}

function setState(text) {
  $("verifier-state").textContent = text;
}

function refreshButton() {
  $("verify-button").disabled = !(exports && evidence);
}

function choose(file) {
  evidence = file || null;
  $("chosen").textContent = evidence
    ? `${evidence.name} (${evidence.size.toLocaleString("en")} bytes)`
    : "No file chosen.";
  $("dropzone").classList.toggle("has-file", !!evidence);
  $("result").hidden = true;
  refreshButton();
}

// Copies `bytes` into the module's memory; returns [pointer, length].
function put(bytes) {
  const ptr = exports.verifier_alloc(bytes.length) >>> 0;
  new Uint8Array(exports.memory.buffer, ptr, bytes.length).set(bytes);
  return [ptr, bytes.length];
}

function runVerifier(file, name, keys, history) {
  const inputs = [file, name, keys, history].map(put);
  try {
    const out = exports.verifier_verify(...inputs.flat()) >>> 0;
    // The memory may have grown during the call: take fresh views of it.
    const n = new DataView(exports.memory.buffer).getUint32(out, true);
    const json = decoder.decode(new Uint8Array(exports.memory.buffer, out + 4, n));
    exports.verifier_free(out, 4 + n);
    return JSON.parse(json);
  } finally {
    for (const [ptr, len] of inputs) exports.verifier_free(ptr, len);
  }
}

function item(parent, tag, text, className) {
  const element = document.createElement(tag);
  element.textContent = text;
  if (className) element.className = className;
  parent.append(element);
  return element;
}

function show(result) {
  const outcome = result.outcome;
  const status = $("verify-status");
  status.textContent = result.verified ? "Verified" : "Not verified";
  $("result").className = `result ${result.verified ? "verified" : "failed"}`;
  let subject = "";
  if (outcome) {
    subject = `${KINDS[outcome.evidence] || outcome.evidence}: ${outcome.file}`;
    if (outcome.tenant) subject += ` — tenant ${outcome.tenant}`;
    if (outcome.origin) subject += ` (${outcome.origin})`;
    if (outcome.checkpoint) {
      subject += `, checkpoint of size ${outcome.checkpoint.size}`;
    }
  } else {
    subject = "The keys given could not be used.";
  }
  $("verify-subject").textContent = subject;

  const proven = $("verify-proven");
  proven.replaceChildren();
  for (const sentence of (outcome && outcome.proven) || []) item(proven, "li", sentence);
  proven.hidden = proven.children.length === 0;

  const failure = outcome ? outcome.failure : null;
  $("verify-failure").hidden = !(failure || result.error);
  const detail = $("verify-failure-detail");
  detail.replaceChildren();
  if (failure) {
    $("verify-failure-kind").textContent = failure.kind;
    const at = [];
    if (failure.seq !== undefined && failure.seq !== null) at.push(`record ${failure.seq}`);
    if (failure.event_id) at.push(`event ${failure.event_id}`);
    if (failure.line !== undefined && failure.line !== null) at.push(`line ${failure.line}`);
    $("verify-failure-place").textContent = at.length ? ` at ${at.join(", ")}` : "";
    $("verify-failure-message").textContent = failure.message;
    for (const [label, value] of [["Expected", failure.expected], ["Found", failure.found]]) {
      if (value === undefined || value === null) continue;
      item(detail, "dt", label);
      item(detail, "dd", value);
    }
  } else if (result.error) {
    $("verify-failure-kind").textContent = "unusable_input";
    $("verify-failure-place").textContent = "";
    $("verify-failure-message").textContent = result.error;
  }
  $("verify-report").textContent = result.report;
  $("result").hidden = false;
  status.focus();
}

async function verify() {
  if (!exports || !evidence) return;
  $("verify-button").disabled = true;
  setState("Verifying in this browser…");
  try {
    const historyFile = $("key-history").files[0];
    const started = performance.now();
    const result = runVerifier(
      new Uint8Array(await evidence.arrayBuffer()),
      encoder.encode(evidence.name),
      encoder.encode($("keys").value),
      historyFile ? new Uint8Array(await historyFile.arrayBuffer()) : new Uint8Array(),
    );
    show(result);
    setState(`Checked in ${((performance.now() - started) / 1000).toFixed(2)} s, in this browser.`);
  } catch (error) {
    // A trap leaves the instance unusable: load a fresh one for the next file.
    exports = null;
    setState(`The verifier stopped on this input (${error}); loading it afresh…`);
    try {
      exports = await loadVerifier();
      setState(`The verifier stopped on this input (${error}); it is ready for another file.`);
    } catch (reloadError) {
      setState(`The verifier stopped on this input (${error}) and could not be loaded again (${reloadError}); reload the page.`);
    }
  } finally {
    refreshButton();
  }
}

const dropzone = $("dropzone");
for (const type of ["dragenter", "dragover"]) {
  dropzone.addEventListener(type, (event) => {
    event.preventDefault();
    dropzone.classList.add("dragging");
  });
}
dropzone.addEventListener("dragleave", () => dropzone.classList.remove("dragging"));
dropzone.addEventListener("drop", (event) => {
  event.preventDefault();
  dropzone.classList.remove("dragging");
  choose(event.dataTransfer.files[0]);
});
// A file dropped beside the zone must not make the browser open it.
window.addEventListener("dragover", (event) => event.preventDefault());
window.addEventListener("drop", (event) => event.preventDefault());
$("evidence").addEventListener("change", (event) => choose(event.target.files[0]));
$("verify-button").addEventListener("click", verify);

loadVerifier().then(
  (loaded) => {
    exports = loaded;
    setState("Ready. Nothing you choose leaves this browser.");
    root.dataset.ready = "true";
    refreshButton();
  },
  (error) => setState(`The verifier could not be loaded: ${error}`),
);
