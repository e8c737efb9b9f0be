"""Mutates evidence and requires `auditex verify` and the Python verifier to judge it alike.

Run by scripts/verifier-differential, which produces the evidence; see its header for what is
checked and which bytes nothing signs. Every input is written to a file and given to both
verifiers: `auditex verify` as a process (the debug binary), the Python verifier in this process
(its `main`, with the same arguments), two inputs at a time.

A verdict is the exit code: 0 verified, 1 failed, 2 unusable (FORMAT.md, "Verdicts"). Both
verifiers must give the same one; both codes are printed for every disagreement.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import importlib.util
import io
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

# Single-byte mutations per file in the CI sample.
PER_FILE_DEFAULT = 300
WORKERS = 2
RUST_TIMEOUT_S = 120

# The Python verifier prints to sys.stdout, which is redirected while it runs; the report goes
# here.
OUT = sys.stdout


@dataclass
class Target:
    name: str  # the evidence file mutated
    kind: str  # "jsonl", "json", "tlog-proof" or "text": how a neutral change is recognized
    args: list  # verifier arguments, with "{}" for the mutated file


@dataclass
class Case:
    target: Target
    what: str
    data: bytes


# Targets on which a disagreement is reported but does not fail the run, with the reason (none
# today: add one only with the change that will remove it).
KNOWN_DISAGREEMENTS: dict[str, str] = {}

# Requests both verifiers wrongly accept, reported without failing the run while a fix is under
# way (none today); a run in which both reject one says to remove its entry.
KNOWN_ACCEPTED: dict[str, str] = {}

# Structural changes that both verifiers accept by design, with the reason.
ACCEPTED_BY_DESIGN = {
    # A bundle proves that each record it holds is in the log, not that it holds every record
    # that links to the decision: nothing in the log can prove an absence.
    "the follow-up entry dropped": "a bundle proves inclusion, not completeness",
    # Without the erasure record it names, an `erased` mark is the service's statement
    # (FORMAT.md section 11); without the mark, the value is withheld, as a bundle may always do.
    "the erasure entry dropped": "an erased mark is proven only with its erasure record",
    "the erased mark and its erasure entry dropped": "a bundle may withhold an erasable value",
}


def targets(ev: str) -> list[Target]:
    e = lambda name: os.path.join(ev, name)  # noqa: E731
    h = ["--key-history", e("history.json")]
    cons = ["consistency", "--old", e("early.checkpoint"), "--new", e("latest.checkpoint"), "--proof", e("consistency.proof")] + h

    def swap(option):
        out = list(cons)
        out[out.index(option) + 1] = "{}"
        return out

    return [
        Target("export.jsonl", "jsonl", ["export", "{}"] + h),
        Target("export-9.jsonl", "jsonl", ["export", "{}"] + h),
        Target("bundle.json", "json", ["bundle", "{}"] + h),
        Target("bundle-erased.json", "json", ["bundle", "{}"] + h),
        Target("package.jsonl", "jsonl", ["package", "{}"] + h),
        Target("proof-5.txt", "tlog-proof", ["proof", "{}"] + h),
        Target("proof-25.txt", "tlog-proof", ["proof", "{}"] + h),
        Target("early.checkpoint", "text", swap("--old")),
        Target("latest.checkpoint", "text", swap("--new")),
        Target("consistency.proof", "json", swap("--proof")),
        # The trusted key history itself, with the export it must agree with.
        Target("history.json", "json", ["export", e("export.jsonl"), "--key-history", "{}"]),
    ]


# ----------------------------------------------------------------------------------------------
# What counts as the same document.

def _typed(pairs):
    names = [k for k, _ in pairs]
    if len(names) != len(set(names)):
        raise ValueError("duplicate member")
    return {k: v for k, v in pairs}


def json_value(text: bytes):
    """The JSON value with integers and fractions told apart (`5` is not `5.0`), or None."""
    try:
        return json.loads(
            text.decode("utf-8"),
            object_pairs_hook=_typed,
            parse_int=lambda s: ("int", int(s)),
            parse_float=lambda s: ("float", float(s)),
            parse_constant=lambda s: ("const", s),
        )
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def neutral(kind: str, original: bytes, mutated: bytes) -> bool:
    """Whether `mutated` says what `original` says, in bytes that nothing signs."""
    if kind == "text":
        return original == mutated
    if kind == "tlog-proof":
        # The `extra` line carries the record as JSON (in base64): its JSON layout is JSON's.
        a, b = original.split(b"\n"), mutated.split(b"\n")
        if len(a) != len(b) or any(x != y for x, y in zip(a, b) if not x.startswith(b"extra ")):
            return False
        for x, y in zip(a, b):
            if x.startswith(b"extra ") and x != y:
                try:
                    vx = json_value(base64.b64decode(x[6:], validate=True))
                    raw = base64.b64decode(y[6:], validate=True)
                except ValueError:
                    return False
                if base64.b64encode(raw) != y[6:] or vx is None or vx != json_value(raw):
                    return False
        return True
    if kind == "json":
        a, b = json_value(original), json_value(mutated)
        return a is not None and a == b
    # JSON Lines: the same number of lines, each the same value; the final newline is optional.
    if mutated.endswith(b"\n"):
        mutated = mutated[:-1]
    a, b = original.rstrip(b"\n").split(b"\n"), mutated.split(b"\n")
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        vx, vy = json_value(x), json_value(y)
        if vx is None or vx != vy:
            return False
    return True


# ----------------------------------------------------------------------------------------------
# Mutations.

HEX = b"0123456789abcdef"


def replacements(byte: int, rng: random.Random, full: bool) -> list[int]:
    """Byte values to try at a position: its other case, a neighbour, a hex digit, a random one."""
    out = []
    c = bytes([byte])
    if c.isalpha():
        out.append(byte ^ 0x20)
    out.append((byte + 1) % 256)
    if c in HEX and c.isdigit():
        out.append(HEX[(HEX.index(c) + 7) % 16])
    out.append(rng.choice(b' \n\r\t"\\{}[],:0-+./=\x00\xff') )
    out.append(rng.randrange(256))
    out = [b for b in dict.fromkeys(out) if b != byte]
    return out if full else [rng.choice(out)]


def byte_cases(t: Target, data: bytes, rng: random.Random, per_file: int, full: bool) -> list[Case]:
    positions = range(len(data)) if full else sorted(rng.sample(range(len(data)), min(per_file, len(data))))
    cases = []
    for i in positions:
        for r in replacements(data[i], rng, full):
            m = bytearray(data)
            m[i] = r
            cases.append(Case(t, f"byte {i} {data[i]:#04x} -> {r:#04x}", bytes(m)))
    return cases


def upper_hex_member(text: str, member: str, nth: int = 0) -> str | None:
    """Upper-cases the value of the nth occurrence of a hex member."""
    hits = list(re.finditer(r'"%s": ?"([0-9a-f]+)"' % re.escape(member), text))
    if len(hits) <= nth:
        return None
    m = hits[nth]
    if m.group(1).upper() == m.group(1):
        return None
    return text[: m.start(1)] + m.group(1).upper() + text[m.end(1):]


def structural_cases(t: Target, data: bytes, ev: str) -> list[Case]:
    text = data.decode("utf-8")
    cases: list[tuple[str, str | bytes]] = []
    lines = text.split("\n")
    # The lines of the file without the empty string after its final newline.
    body = lines[:-1] if lines and lines[-1] == "" else lines
    n = len(body)

    def joined(ls):
        return "\n".join(ls) + "\n"

    # Line-level attacks on every file.
    for i in sorted({0, 1, n // 2, n - 2, n - 1}):
        if 0 <= i < n:
            cases.append((f"drop line {i + 1}", joined(body[:i] + body[i + 1:])))
            cases.append((f"duplicate line {i + 1}", joined(body[: i + 1] + [body[i]] + body[i + 1:])))
    for i in sorted({0, 1, n // 2, n - 2}):
        if 0 <= i < n - 1:
            swapped = list(body)
            swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
            if swapped != body:
                cases.append((f"swap lines {i + 1} and {i + 2}", joined(swapped)))
    cases.append(("CRLF line endings", text.replace("\n", "\r\n")))
    cases.append(("a blank line at the end", text + "\n"))
    cases.append(("a byte-order mark first", "\ufeff" + text))
    cases.append(("a trailing space on the first line", joined([body[0] + " "] + body[1:])))
    if t.kind != "jsonl":
        cases.append(("no final newline", text.rstrip("\n")))

    if t.name.endswith(".checkpoint"):
        note_text, _, sigs = text.partition("\n\n")
        cases.append(("an extension line in the checkpoint", note_text + "\nextension line\n\n" + sigs))
        cases.append(("the signature line twice", text + sigs))

    if t.kind == "jsonl":
        other = open(os.path.join(ev, "export-other.jsonl"), encoding="utf-8").read().split("\n")
        for k in (1, n // 2, n - 2):
            if 1 <= k < n - 1 and k < len(other) - 2:
                cases.append((f"line {k + 1} replaced by the other tenant's record", joined(body[:k] + [other[k]] + body[k + 1:])))
        r = body[1]
        cases.append(("two record lines joined by a carriage return", joined([body[0], body[1] + "\r" + body[2]] + body[3:])))
        cases.append(("a duplicate member in the payload (unsigned value first)", joined([body[0], r.replace('"payload":{', '"payload":{"outcome":"declined",', 1)] + body[2:])))
        cases.append(("a duplicate seq member", joined([body[0], r.replace('{"v":1,', '{"v":1,"seq":0,', 1)] + body[2:])))
        cases.append(("a duplicate header member", joined([body[0].replace('"from_seq":', '"from_seq":0,"from_seq":', 1)] + body[1:])))
        cases.append(("a duplicate trailer member", joined(body[:-1] + [body[-1].replace('{"end":{', '{"end":{"records":0,', 1)])))
        cases.append(("v written 1.0", joined([body[0], r.replace('{"v":1,', '{"v":1.0,', 1)] + body[2:])))
        cases.append(("seq written as a fraction", joined([body[0], re.sub(r'"seq":(\d+)', r'"seq":\1.0', r, count=1)] + body[2:])))
        cases.append(("an unknown member in a record", joined([body[0], r[:-1] + ',"note":"x"}'] + body[2:])))
        cases.append(("an unknown member in the header", joined([body[0][:-1] + ',"note":"x"}'] + body[1:])))
        cases.append(("records member spelled Records", joined(body[:-1] + [body[-1].replace('"records"', '"Records"', 1)])))
        erasable_at = next((i for i, line in enumerate(body) if '"erasable":{"' in line), None)
        if erasable_at is not None:
            line = body[erasable_at]
            cases.append(("a duplicate erasable member", joined(body[:erasable_at] + [line.replace('"erasable":{', '"erasable":{"applicant_name":"' + "0" * 64 + '",', 1)] + body[erasable_at + 1:])))
            up = upper_hex_member(line, "applicant_name")
            if up:
                cases.append(("upper-case hex in an erasable commitment", joined(body[:erasable_at] + [up] + body[erasable_at + 1:])))
        for member in ("hash", "prev", "sig", "key_id"):
            up = upper_hex_member(r, member) if member != "prev" else upper_hex_member(body[2], member)
            at = 2 if member == "prev" else 1
            if up:
                cases.append((f"upper-case hex in a record's {member}", joined(body[:at] + [up] + body[at + 1:])))
        up = upper_hex_member(body[0], "public_key")
        if up:
            cases.append(("upper-case hex in the header's public key", joined([up] + body[1:])))
        trailer = body[-1]
        m = re.search(r'"inclusion_proof":\["([0-9a-f]+)"', trailer)
        if m:
            cases.append(("upper-case hex in the trailer's proof", joined(body[:-1] + [trailer[: m.start(1)] + m.group(1).upper() + trailer[m.end(1):]])))

    if t.name.startswith("bundle"):
        doc = json.loads(text)
        for member in ("hash", "sig", "prev"):
            up = upper_hex_member(text, member)
            if up:
                cases.append((f"upper-case hex in the bundle's {member}", up))
        cases.append(("a duplicate member in a bundled payload", text.replace('"payload": {', '"payload": {"outcome":"declined",', 1)))
        cases.append(("a duplicate top-level member", text.replace('{\n  "format"', '{\n  "tenant": "diff-b",\n  "format"', 1)))
        if len(doc["entries"]) > 1:
            d = dict(doc, entries=doc["entries"][:1])
            cases.append(("the follow-up entry dropped", json.dumps(d, indent=2)))
            d = dict(doc, entries=list(reversed(doc["entries"])))
            cases.append(("the entries swapped", json.dumps(d, indent=2)))
        other = open(os.path.join(ev, "export-other.jsonl"), encoding="utf-8").read().split("\n")
        d = json.loads(text)
        d["entries"][0]["record"] = json.loads(other[1])
        cases.append(("the decision replaced by the other tenant's record", json.dumps(d, indent=2)))
        values = doc["entries"][0].get("erasable_values")
        if values:
            d = json.loads(text)
            name = next(iter(values))
            d["entries"][0]["erasable_values"][name]["value"] = "Someone Else"
            cases.append(("an erasable value changed", json.dumps(d, indent=2)))

    if t.name == "bundle-erased.json":
        cases.extend(erased_cases(text, ev))

    if t.name == "history.json":
        for member in ("public_key", "key_id"):
            up = upper_hex_member(text, member)
            if up:
                cases.append((f"upper-case hex in the history's {member}", up))
        cases.append(("a duplicate member in the history", text.replace('"from_seq":', '"from_seq": 0, "from_seq":', 1)))
        cases.append(("until_seq spelled until_sEq", text.replace('"until_seq"', '"until_sEq"', 1)))
        d = json.loads(text)
        if len(d["keys"]) > 1:
            d["keys"][0]["until_seq"] = None
            cases.append(("the retired key never retired", json.dumps(d, indent=2)))
            d = json.loads(text)
            d["keys"] = d["keys"][:1]
            cases.append(("the new key dropped", json.dumps(d, indent=2)))

    if t.name.startswith("proof-"):
        other_proof = os.path.join(ev, "proof-25.txt" if t.name == "proof-5.txt" else "proof-5.txt")
        other_lines = open(other_proof, encoding="utf-8").read().split("\n")
        if other_lines[1].startswith("extra ") and body[1].startswith("extra "):
            cases.append(("the extra of the other proof", joined([body[0], other_lines[1]] + body[2:])))
        idx = next((i for i, line in enumerate(body) if line.startswith("index ")), None)
        if idx is not None:
            number = int(body[idx].split()[1])
            cases.append(("the index plus one", joined(body[:idx] + [f"index {number + 1}"] + body[idx + 1:])))
            cases.append(("the index with a leading zero", joined(body[:idx] + [f"index 0{number}"] + body[idx + 1:])))

    out = []
    for what, content in cases:
        data_m = content.encode("utf-8") if isinstance(content, str) else content
        if data_m != data:
            out.append(Case(t, what, data_m))
    return out


def erased_cases(text: str, ev: str) -> list[tuple[str, str]]:
    """Attacks on the `erased` mark of bundle-erased.json: entry 0 (the decision) marks its
    applicant name erased by the erasure record the bundle holds last."""
    doc = json.loads(text)
    entries = doc["entries"]
    seq = entries[0]["record"]["seq"]
    erasure_seq = entries[0]["erased"]["applicant_name"]["erasure_seq"]
    at = next(i for i, e in enumerate(entries) if e["record"]["seq"] == erasure_seq)
    source = json.load(open(os.path.join(ev, "bundle-unerased.json"), encoding="utf-8"))
    other = json.load(open(os.path.join(ev, "erasure-other.json"), encoding="utf-8"))
    cases = []

    def case(what, change):
        d = json.loads(text)
        change(d)
        cases.append((what, json.dumps(d, indent=2, ensure_ascii=False)))

    def mark(value):
        return lambda d: d["entries"][0]["erased"].__setitem__("applicant_name", value)

    def seq_to(n):
        return mark({"erasure_seq": n})

    case("the erasure entry dropped", lambda d: d["entries"].pop(at))
    # The held erasure record is then named by nothing and does not link to the decision.
    case("the erased mark dropped", lambda d: d["entries"][0].pop("erased"))
    case("the erased mark and its erasure entry dropped",
         lambda d: (d["entries"][0].pop("erased"), d["entries"].pop(at)))
    case("the erased field given its value as well",
         lambda d: d["entries"][0].__setitem__("erasable_values", source["entries"][0]["erasable_values"]))
    case("the erasure_seq naming the held review", seq_to(entries[1]["record"]["seq"]))
    case("the erasure_seq naming the decision itself", seq_to(seq))
    case("the erasure_seq before the decision", seq_to(seq - 1))
    case("the erasure_seq naming a later record the bundle does not hold", seq_to(erasure_seq + 1))
    case("the erasure_seq beyond 2^53 - 1", seq_to(2**53))
    case("the erasure_seq negative", seq_to(-erasure_seq))
    case("the erasure_seq as a string", seq_to(str(erasure_seq)))
    case("the erasure_seq as a fraction", seq_to(erasure_seq + 0.5))
    case("an unknown member in the erased mark", mark({"erasure_seq": erasure_seq, "by": "x"}))
    case("the erased mark without erasure_seq", mark({}))
    case("the erased mark as a number", mark(erasure_seq))
    case("an erased field without a commitment",
         lambda d: d["entries"][0]["erased"].__setitem__("birth_date", {"erasure_seq": erasure_seq}))
    case("erased as a list", lambda d: d["entries"][0].__setitem__("erased", [{"erasure_seq": erasure_seq}]))
    case("the erased mark moved to the review", lambda d: d["entries"][1].__setitem__("erased", d["entries"][0].pop("erased")))
    case("the erased mark moved to the erasure record", lambda d: d["entries"][at].__setitem__("erased", d["entries"][0].pop("erased")))

    def other_erasure(d):
        d["entries"][at] = other
        d["entries"][0]["erased"]["applicant_name"]["erasure_seq"] = other["record"]["seq"]
        d["entries"].sort(key=lambda e: e["record"]["seq"])
    case("the erasure entry replaced by the erasure of another decision, and named", other_erasure)
    case("the erasure entry placed before the review",
         lambda d: d["entries"].insert(1, d["entries"].pop(at)))
    cases.append(("a duplicate member in the erased mark",
                  text.replace('"erasure_seq": ', f'"erasure_seq": {erasure_seq + 1}, "erasure_seq": ', 1)))
    cases.append(("erased spelled Erased", text.replace('"erased"', '"Erased"', 1)))
    return cases


def erased_span_cases(t: Target, data: bytes, rng: random.Random) -> list[Case]:
    """Every replacement at every byte of the `erased` member: the sample rarely lands there."""
    m = re.search(rb'"erased": \{.*?\}\s*\}', data, re.DOTALL)
    if m is None:
        return []
    cases = []
    for i in range(m.start(), m.end()):
        for r in replacements(data[i], rng, True):
            changed = bytearray(data)
            changed[i] = r
            cases.append(Case(t, f"erased byte {i} {data[i]:#04x} -> {r:#04x}", bytes(changed)))
    return cases


def sha256(*parts: bytes) -> bytes:
    d = hashlib.sha256()
    for p in parts:
        d.update(p)
    return d.digest()


def merkle_root(leaves: list[bytes]) -> bytes:
    """RFC 9162 MTH over leaf hashes."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return sha256(b"\x01", merkle_root(leaves[:k]), merkle_root(leaves[k:]))


def merkle_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 9162 PATH(m, D[n]), leaf's sibling first."""
    if len(leaves) == 1:
        return []
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    if m < k:
        return merkle_path(m, leaves[:k]) + [merkle_root(leaves[k:])]
    return merkle_path(m - k, leaves[k:]) + [merkle_root(leaves[:k])]


def write_erased_bundle(ev: str, source: str, stored: str, erasures: str) -> None:
    """bundle-erased.json: the bundle `source` with its decision's applicant name marked erased by
    the first erasure record of `erasures` (receipts), which it then holds with its inclusion
    proof (the service marks and holds it itself; this makes sure of it); bundle-unerased.json,
    the same bundle with the value as it was stored before the erasure (from `stored`, a bundle
    taken then) and neither the mark nor the erasure entry; and erasure-other.json, the entry of
    the second erasure (another decision's)."""
    doc = json.load(open(source, encoding="utf-8"))
    before = json.load(open(stored, encoding="utf-8"))
    seqs_early = [json.loads(line)["seq"] for line in open(erasures, encoding="utf-8") if line.strip()]
    unerased = json.loads(json.dumps(doc))
    unerased["entries"] = [e for e in unerased["entries"] if e["record"]["seq"] not in seqs_early]
    unerased["entries"][0].pop("erased", None)
    unerased["entries"][0]["erasable_values"] = before["entries"][0]["erasable_values"]
    with open(os.path.join(ev, "bundle-unerased.json"), "w", encoding="utf-8") as f:
        json.dump(unerased, f, indent=2, ensure_ascii=False)
    seqs = [json.loads(line)["seq"] for line in open(erasures, encoding="utf-8") if line.strip()]
    lines = open(os.path.join(ev, "export.jsonl"), encoding="utf-8").read().split("\n")
    records = {r["seq"]: r for r in (json.loads(line) for line in lines[1:] if line and not line.startswith('{"end"'))}
    size = int(doc["checkpoint"].split("\n")[1])
    leaves = [sha256(b"\x00", bytes.fromhex(records[i]["hash"])) for i in range(size)]
    if merkle_root(leaves).hex() != base64.b64decode(doc["checkpoint"].split("\n")[2]).hex():
        raise SystemExit("verifier-differential: the export's records do not make the bundle's checkpoint")

    def entry(seq):
        return {"record": records[seq], "inclusion_proof": [x.hex() for x in merkle_path(seq, leaves)]}

    decision = doc["entries"][0]
    decision.pop("erasable_values", None)
    decision.setdefault("erased", {})["applicant_name"] = {"erasure_seq": seqs[0]}
    if all(e["record"]["seq"] != seqs[0] for e in doc["entries"]):
        doc["entries"].append(entry(seqs[0]))
        doc["entries"].sort(key=lambda e: e["record"]["seq"])
    with open(os.path.join(ev, "bundle-erased.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2, ensure_ascii=False)
    with open(os.path.join(ev, "erasure-other.json"), "w", encoding="utf-8") as f:
        json.dump(entry(seqs[1]), f, indent=2, ensure_ascii=False)


def rollback_cases(ev: str) -> list[tuple[str, list[str]]]:
    """Whole-request attacks that change no file: swapped checkpoints (a rollback)."""
    e = lambda name: os.path.join(ev, name)  # noqa: E731
    h = ["--key-history", e("history.json")]
    return [
        ("consistency with the checkpoints swapped (a rollback)",
         ["consistency", "--old", e("latest.checkpoint"), "--new", e("early.checkpoint"), "--proof", e("consistency.proof")] + h),
        ("the export under the other tenant's key history", ["export", e("export.jsonl"), "--key-history", e("history-other.json")]),
        ("the other tenant's export under this key history", ["export", e("export-other.jsonl"), "--key-history", e("history.json")]),
        ("a proof under the other tenant's key history", ["proof", e("proof-5.txt"), "--key-history", e("history-other.json")]),
        # The first key retired at 10, before the early checkpoint (size 12) it signed and the
        # records 10 on that it signed: out of its interval.
        ("the export under a history that retires the first key early", ["export", e("export.jsonl"), "--key-history", e("history-early-retirement.json")]),
        ("the early checkpoint under a history that retires its key before its size",
         ["consistency", "--old", e("early.checkpoint"), "--new", e("latest.checkpoint"), "--proof", e("consistency.proof"), "--key-history", e("history-early-retirement.json")]),
    ]


def write_early_retirement(ev: str) -> None:
    """The key history with its first key retired at 10 (and the second from 10)."""
    doc = json.load(open(os.path.join(ev, "history.json"), encoding="utf-8"))
    if len(doc["keys"]) > 1:
        doc["keys"][0]["until_seq"] = 10
        doc["keys"][1]["from_seq"] = 10
    with open(os.path.join(ev, "history-early-retirement.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2)


# ----------------------------------------------------------------------------------------------
# Running the verifiers.

def load_python_verifier(path: str):
    spec = importlib.util.spec_from_file_location("auditex_verify", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["auditex_verify"] = module
    spec.loader.exec_module(module)
    return module


_py_lock = threading.Lock()


def run_python(module, args: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    # The verifier prints; its output is captured per call (one call at a time: it holds the
    # interpreter anyway).
    with _py_lock, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            code = module.main(args)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 2
        except Exception as e:  # an uncaught exception is a finding of its own
            return 99, f"uncaught {type(e).__name__}: {e}"
    return code, out.getvalue()


def run_rust(auditex: str, args: list[str]) -> tuple[int, str]:
    try:
        p = subprocess.run([auditex, "verify"] + args, capture_output=True, timeout=RUST_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return 98, "timed out"
    return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")


def first_line(text: str) -> str:
    text = text.strip()
    return text.splitlines()[0][:200] if text else ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--auditex", required=True)
    ap.add_argument("--python-verifier", required=True)
    ap.add_argument("--evidence", required=True)
    ap.add_argument("--erased-from", required=True, help="a bundle whose decision's applicant name the first of --erasures erased")
    ap.add_argument("--stored-from", required=True, help="a bundle of the same decision taken before the erasure")
    ap.add_argument("--erasures", required=True, help="the receipts of two erasure records, as `auditex append` prints them")
    args = ap.parse_args()
    full = os.environ.get("VERIFIER_DIFFERENTIAL_FULL", "") not in ("", "0")
    seed = int(os.environ.get("VERIFIER_DIFFERENTIAL_SEED", "1"))
    per_file = int(os.environ.get("VERIFIER_DIFFERENTIAL_PER_FILE", str(PER_FILE_DEFAULT)))
    verbose = os.environ.get("VERIFIER_DIFFERENTIAL_VERBOSE", "") not in ("", "0")
    module = load_python_verifier(args.python_verifier)
    ev = args.evidence
    failures = 0
    write_early_retirement(ev)
    write_erased_bundle(ev, args.erased_from, args.stored_from, args.erasures)

    with tempfile.TemporaryDirectory() as scratch:
        jobs = []  # (label, target or None, original or None, case data or None, argv)
        only = [n for n in os.environ.get("VERIFIER_DIFFERENTIAL_ONLY", "").split(",") if n]
        for t in targets(ev):
            if only and t.name not in only:
                continue
            path = os.path.join(ev, t.name)
            data = open(path, "rb").read()
            jobs.append((f"{t.name}: as produced", t, None, None, [a if a != "{}" else path for a in t.args]))
            rng = random.Random(f"{seed}:{t.name}")
            extra = erased_span_cases(t, data, rng) if t.name == "bundle-erased.json" and not full else []
            for case in byte_cases(t, data, rng, per_file, full) + extra + structural_cases(t, data, ev):
                jobs.append((f"{t.name}: {case.what}", t, data, case.data, None))
        for what, argv in rollback_cases(ev):
            jobs.append((what, None, None, None, argv))

        def run(index_job):
            index, (label, t, original, mutated, argv) = index_job
            path = None
            if argv is None:
                ext = os.path.splitext(t.name)[1]
                path = os.path.join(scratch, f"m{index}{ext}")
                with open(path, "wb") as f:
                    f.write(mutated)
                argv = [a if a != "{}" else path for a in t.args]
            rust = run_rust(args.auditex, argv)
            py = run_python(module, argv)
            if path is not None:
                os.unlink(path)
            return label, t, original, mutated, rust, py

        stats: dict[str, dict[str, int]] = {}
        accepted_neutral: dict[str, int] = {}
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            for label, t, original, mutated, (rc, rout), (pc, pout) in pool.map(run, enumerate(jobs)):
                name = t.name if t else "requests"
                s = stats.setdefault(name, {"inputs": 0, "rejected": 0, "accepted": 0, "problems": 0})
                s["inputs"] += 1
                problem = None
                if rc != pc or rc in (98, 99) or pc in (98, 99):
                    # The exit code is the verdict: 0 verified, 1 failed (anything tampered with),
                    # 2 unusable (a file that cannot be read, or no trusted key).
                    problem = "the verifiers disagree" if rc != pc else "a verifier crashed"
                elif original is None and mutated is None and t is not None:
                    if rc != 0:
                        problem = "the evidence as produced does not verify"
                elif rc == 0:
                    if t is not None and neutral(t.kind, original, mutated):
                        accepted_neutral[name] = accepted_neutral.get(name, 0) + 1
                        if verbose:
                            print(f"ok    {label}: accepted by both (unsigned bytes)", file=OUT)
                    elif label in KNOWN_ACCEPTED:
                        s["known"] = s.get("known", 0) + 1
                        print(f"KNOWN {label}: accepted by both ({KNOWN_ACCEPTED[label]})", file=OUT)
                    elif label.split(": ", 1)[-1] in ACCEPTED_BY_DESIGN:
                        print(f"ok    {label}: accepted by both, by design ({ACCEPTED_BY_DESIGN[label.split(': ', 1)[-1]]})", file=OUT)
                    else:
                        problem = "both verifiers accept a change of what the evidence says"
                if label in KNOWN_ACCEPTED and rc != 0 and pc != 0:
                    print(f"NOTE  {label}: now rejected by both; remove it from KNOWN_ACCEPTED", file=OUT)
                if rc == 0:
                    s["accepted"] += 1
                else:
                    s["rejected"] += 1
                if problem and name in KNOWN_DISAGREEMENTS and problem == "the verifiers disagree":
                    s["known"] = s.get("known", 0) + 1
                    print(f"KNOWN {label}: {problem} ({KNOWN_DISAGREEMENTS[name]})", file=OUT)
                    print(f"      auditex exit {rc}: {first_line(rout)}", file=OUT)
                    print(f"      python  exit {pc}: {first_line(pout)}", file=OUT)
                    problem = None
                if problem:
                    s["problems"] += 1
                    failures += 1
                    print(f"FAIL  {label}: {problem}", file=OUT)
                    print(f"      auditex exit {rc}: {first_line(rout)}", file=OUT)
                    print(f"      python  exit {pc}: {first_line(pout)}", file=OUT)

    total = sum(s["inputs"] for s in stats.values())
    mode = "full (every position)" if full else f"sample of {per_file} positions per file, seed {seed}"
    print(f"verifier-differential: {mode}", file=OUT)
    for name, s in stats.items():
        extra = f", {accepted_neutral[name]} unsigned-byte changes accepted by both" if name in accepted_neutral else ""
        print(file=OUT, *[f"  {name:22} {s['inputs']:5} inputs: {s['rejected']} rejected, {s['accepted']} accepted{extra}; {s['problems']} problems" + (f", {s['known']} known problems" if s.get("known") else "")])
    print(f"{total} inputs, {failures} problems", file=OUT)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
