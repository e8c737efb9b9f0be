#!/usr/bin/env python3
"""An independent verifier of Auditex evidence, written from FORMAT.md alone.

It checks the three kinds of evidence Auditex produces, and two checkpoints against each other:

    auditex_verify.py export FILE  --key-history HISTORY.json   (FORMAT.md sections 12, 13)
    auditex_verify.py bundle FILE  --key VKEY                   (section 11)
    auditex_verify.py proof  FILE  --keys VKEYS.txt             (section 10)
    auditex_verify.py consistency --old SAVED --new LATEST --proof PROOF --keys VKEYS.txt
                                                                (sections 8, 9, 13 item 8)

using only hashlib, the `cryptography` package (Ed25519) and the `rfc8785` package (JSON
Canonicalization Scheme). Trust comes only from the command line: C2SP verifier keys (--key,
--keys) or a key history as `auditex key history` prints it (--key-history). Keys listed inside
the evidence are checked, never trusted.

Exit codes: 0 verified; 1 verification failed (the first failure is printed with its sequence
number); 2 the input could not be read or the command line is unusable.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import sys
from dataclasses import dataclass
from typing import Iterable, Iterator

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

EXIT_VERIFIED, EXIT_FAILED, EXIT_UNREADABLE = 0, 1, 2

RECORD_DOMAIN = b"auditex:record:v1"
ERASABLE_DOMAIN = b"auditex:erasable:v1"
KEY_ID_DOMAIN = b"auditex:key:v1"
EXPORT_FORMAT = "auditex-export/v1"
BUNDLE_FORMAT = "auditex-custody-bundle/v1"
TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"
RECORD_MEMBERS = {
    "v", "tenant", "seq", "prev", "captured_at_us", "event_id", "event_type",
    "payload", "erasable", "key_id", "hash", "sig",
}
SAFE_INTEGER_MAX = 2**53 - 1
ZERO_HASH = bytes(32)
HEX64 = re.compile(r"^[0-9a-f]{64}$")
HEX128 = re.compile(r"^[0-9a-f]{128}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")
TENANT = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


class Failed(Exception):
    """The evidence does not verify. `seq` is the first affected record, when there is one."""

    def __init__(self, message: str, seq: int | None = None, event_id: str | None = None):
        super().__init__(message)
        self.seq = seq
        self.event_id = event_id


class Unusable(Exception):
    """The input cannot be read, or the command line cannot be acted on."""


# --- JSON and hashing (FORMAT.md sections 1, 4, 6) -------------------------------------------


def _no_duplicates(pairs):
    obj = {}
    for k, v in pairs:
        if k in obj:
            raise ValueError(f"duplicate member {k!r}")
        obj[k] = v
    return obj


def parse_json(text: str | bytes):
    return json.loads(text, object_pairs_hook=_no_duplicates)


def jcs(value) -> bytes:
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as e:  # numbers beyond 2^53 - 1, NaN, ...
        raise Failed(f"value cannot be canonicalized (RFC 8785): {e}") from e


def sha256(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


def unhex(text, length: int, what: str) -> bytes:
    if not isinstance(text, str) or not re.fullmatch(f"[0-9a-f]{{{2 * length}}}", text):
        raise Failed(f"{what} is not {length} bytes of lowercase hex")
    return bytes.fromhex(text)


def b64decode_canonical(text: str) -> bytes:
    """Standard padded base64 in its one canonical form (FORMAT.md section 1): `validate` refuses
    other characters, and the re-encoding refuses non-zero unused bits."""
    raw = base64.b64decode(text, validate=True)
    if base64.b64encode(raw).decode("ascii") != text:
        raise ValueError("base64 is not canonical")
    return raw


def key_id_of(public_key: bytes) -> str:
    return sha256(KEY_ID_DOMAIN, b"\x00", public_key)[:8].hex()


# --- Keys (section 5) --------------------------------------------------------------------------


@dataclass
class KeyInterval:
    key_id: str
    public_key: bytes
    from_seq: int
    until_seq: int | None

    def valid_for(self, seq: int) -> bool:
        return self.from_seq <= seq and (self.until_seq is None or seq < self.until_seq)

    def may_sign_checkpoint(self, size: int) -> bool:
        return self.from_seq <= size and (self.until_seq is None or size <= self.until_seq)


def parse_key_history(entries) -> list[KeyInterval]:
    if not isinstance(entries, list) or not entries:
        raise Failed("the key history is not a non-empty list")
    keys, expected_from = [], 0
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            raise Failed(f"key history entry {i} is not an object")
        if set(e) != {"key_id", "public_key", "from_seq", "until_seq"}:
            raise Failed(f"key history entry {i}: members are not exactly key_id, public_key, from_seq, until_seq")
        pk = unhex(e.get("public_key"), 32, f"key {i} public_key")
        if e.get("key_id") != key_id_of(pk):
            raise Failed(f"key history entry {i}: key_id does not match its public key")
        f, u = e.get("from_seq"), e.get("until_seq")
        if type(f) is not int or f != expected_from:
            raise Failed(f"key history entry {i} starts at {f}, expected {expected_from}")
        if u is None:
            if i != len(entries) - 1:
                raise Failed(f"key history entry {i} is open-ended but not the last")
        elif type(u) is not int or u <= f:
            raise Failed(f"key history entry {i} has an empty or malformed interval")
        else:
            expected_from = u
        keys.append(KeyInterval(e["key_id"], pk, f, u))
    return keys


def ed25519_verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
        return True
    except (InvalidSignature, ValueError):
        return False


# --- C2SP signed notes and checkpoints (section 9) -----------------------------------------------


@dataclass(frozen=True)
class VerifierKey:
    name: str
    key_id: bytes  # 4 bytes
    public_key: bytes

    @staticmethod
    def of(name: str, public_key: bytes) -> "VerifierKey":
        kid = sha256(name.encode(), b"\x0a\x01", public_key)[:4]
        return VerifierKey(name, kid, public_key)

    @staticmethod
    def parse(text: str) -> "VerifierKey":
        parts = text.strip().split("+", 2)
        if len(parts) != 3:
            raise Unusable(f"not a verifier key: {text!r}")
        name, kid_hex, b64 = parts
        try:
            raw = b64decode_canonical(b64)
        except ValueError as e:
            raise Unusable(f"verifier key {text!r}: bad base64") from e
        if len(raw) != 33 or raw[0] != 0x01:
            raise Unusable(f"verifier key {text!r}: not an Ed25519 key")
        key = VerifierKey.of(name, raw[1:])
        if key.key_id.hex() != kid_hex:  # lower-case hex only (FORMAT.md section 1)
            raise Unusable(f"verifier key {text!r}: key id does not match the key")
        return key

    def __str__(self):
        encoded = base64.b64encode(bytes([1]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"


@dataclass
class Checkpoint:
    origin: str
    size: int
    root: bytes
    signed_by: list[VerifierKey]


def open_checkpoint(note: str, trusted: list[VerifierKey], origin: str | None = None) -> Checkpoint:
    """Parses a signed checkpoint and verifies it against trusted keys."""
    if "\n\n" not in note or not note.endswith("\n"):
        raise Failed("the checkpoint is not a signed note")
    split = note.rindex("\n\n")
    text, signature_block = note[: split + 1], note[split + 2 :]
    lines = text.split("\n")
    if len(lines) < 4:
        raise Failed("the checkpoint has no origin, size and root lines")
    if len(lines) > 4:
        # FORMAT.md section 9: exactly origin, size and root; no C2SP extension lines.
        raise Failed("the checkpoint has extension lines; it must be exactly origin, size and root")
    cp_origin, size_text, root_text = lines[0], lines[1], lines[2]
    if not re.fullmatch(r"0|[1-9][0-9]*", size_text):
        raise Failed("the checkpoint's tree size is malformed")
    try:
        root = b64decode_canonical(root_text)
    except ValueError as e:
        raise Failed("the checkpoint's root is not base64") from e
    if len(root) != 32:
        raise Failed("the checkpoint's root is not 32 bytes")
    if origin is not None and cp_origin != origin:
        raise Failed(f"the checkpoint is of {cp_origin!r}, not {origin!r}")
    signed_by = []
    for line in signature_block.rstrip("\n").split("\n"):
        if not line.startswith("\u2014 "):
            raise Failed("malformed signature line in the checkpoint note")
        name, _, b64 = line[2:].rpartition(" ")
        try:
            blob = b64decode_canonical(b64)
        except ValueError as e:
            raise Failed("malformed signature in the checkpoint note") from e
        for key in trusted:
            if key.name == name and blob[:4] == key.key_id:
                if key in signed_by:
                    # As `auditex verify`: a known key on two lines is a malformed note.
                    raise Failed(f"trusted key {key} signed the checkpoint twice")
                if len(blob) != 68 or not ed25519_verify(key.public_key, blob[4:], text.encode()):
                    raise Failed(f"the checkpoint signature by trusted key {key} does not verify")
                signed_by.append(key)
    if not any(k.name == cp_origin for k in signed_by):
        raise Failed("the checkpoint is not signed by a trusted key of its log")
    return Checkpoint(cp_origin, int(size_text), root, signed_by)


# --- Merkle trees (section 8, RFC 9162) ---------------------------------------------------------


def leaf_hash(record_hash: bytes) -> bytes:
    return sha256(b"\x00", record_hash)


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01", left, right)


class TreeBuilder:
    """The RFC 9162 root of a growing tree, with O(log n) memory."""

    def __init__(self):
        self.stack: list[tuple[int, bytes]] = []  # (height, hash), left to right
        self.size = 0

    def push(self, leaf: bytes):
        height, h = 0, leaf
        while self.stack and self.stack[-1][0] == height:
            _, left = self.stack.pop()
            h, height = node_hash(left, h), height + 1
        self.stack.append((height, h))
        self.size += 1

    def root(self) -> bytes:
        if not self.stack:
            return sha256(b"")
        h = self.stack[-1][1]
        for _, left in reversed(self.stack[:-1]):
            h = node_hash(left, h)
        return h


def verify_inclusion(leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


EMPTY_ROOT = sha256(b"")


def verify_consistency(size1: int, size2: int, proof: list[bytes], root1: bytes, root2: bytes):
    """RFC 9162 section 2.1.4.2: the tree of size2 and root2 extends the tree of size1 and root1.

    Raises Failed naming what does not hold. As in RFC 9162 a proof between equal sizes is empty
    and the roots must be equal; no proof exists from the empty tree, which every tree extends
    provided its root really is the empty root (section 8).
    """
    if size1 > size2:
        raise Failed(f"a consistency proof cannot lead from tree size {size1} to the smaller {size2}")
    if size1 == 0 and root1 != EMPTY_ROOT:
        raise Failed(f"a checkpoint of size 0 has root {root1.hex()}, not the empty tree's {EMPTY_ROOT.hex()}")
    if size1 == size2 or size1 == 0:
        if proof:
            raise Failed(f"the consistency proof from size {size1} to {size2} must be empty, but has {len(proof)} hashes")
        if size1 == size2 and root1 != root2:
            raise Failed(f"two different roots {root1.hex()} and {root2.hex()} for tree size {size1}")
        return
    # Step 2: when size1 is a power of two the old root is a node of the new tree, which the
    # prover leaves out because the verifier knows it.
    path = [root1] + proof if size1 & (size1 - 1) == 0 else list(proof)
    if not path:
        raise Failed("the consistency proof is empty")
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:  # step 4: skip the levels where the old tree's last node is a right child
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise Failed(f"the consistency proof from size {size1} to {size2} has too many hashes")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise Failed(f"the consistency proof from size {size1} to {size2} has too few hashes")
    if fr != root1:
        raise Failed(f"the consistency proof leads to old root {fr.hex()}, but the older checkpoint says {root1.hex()}")
    if sr != root2:
        raise Failed(f"the consistency proof leads to new root {sr.hex()}, but the newer checkpoint says {root2.hex()}")


# --- Records and chains (sections 3, 4, 5, 13) ---------------------------------------------------


def check_record(rec, keys: list[KeyInterval], tenant: str | None = None) -> tuple[int, str, bytes]:
    """Checks one record on its own; returns (seq, event_id, hash)."""
    if not isinstance(rec, dict):
        raise Failed("a record is not a JSON object")
    seq, event_id = rec.get("seq"), rec.get("event_id")
    if set(rec) != RECORD_MEMBERS:
        raise Failed(f"record {seq}: members are not exactly those of FORMAT.md section 3", seq, event_id)
    if type(rec["v"]) is not int or rec["v"] != 1:  # 1.0 and true are not the integer 1
        raise Failed(f"record {seq}: unsupported version {rec['v']}", seq, event_id)
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq <= SAFE_INTEGER_MAX:
        raise Failed(f"record {seq}: malformed seq", seq, event_id)
    if not isinstance(event_id, str) or not UUID7.match(event_id):
        raise Failed(f"record {seq}: event_id is not a lowercase UUIDv7", seq, event_id)
    if not isinstance(rec["tenant"], str) or not TENANT.match(rec["tenant"]):
        raise Failed(f"record {seq}: malformed tenant", seq, event_id)
    if tenant is not None and rec["tenant"] != tenant:
        raise Failed(f"record {seq} belongs to tenant {rec['tenant']}, not {tenant}", seq, event_id)
    t = rec["captured_at_us"]
    if not isinstance(t, int) or isinstance(t, bool) or not 0 <= t <= SAFE_INTEGER_MAX:
        raise Failed(f"record {seq}: malformed captured_at_us", seq, event_id)
    if not isinstance(rec["payload"], dict) or not isinstance(rec["erasable"], dict):
        raise Failed(f"record {seq}: payload and erasable must be objects", seq, event_id)
    for name, commitment in rec["erasable"].items():
        if not HEX64.match(str(commitment)):
            raise Failed(f"record {seq}: erasable commitment {name} is malformed", seq, event_id)
    unhex(rec["prev"], 32, f"record {seq} prev")
    stored = unhex(rec["hash"], 32, f"record {seq} hash")
    sig = unhex(rec["sig"], 64, f"record {seq} sig")
    body = {k: v for k, v in rec.items() if k not in ("hash", "sig")}
    try:
        computed = sha256(RECORD_DOMAIN, b"\x00", jcs(body))
    except Failed as e:
        raise Failed(f"record {seq}: {e}", seq, event_id) from e
    if computed != stored:
        raise Failed(
            f"record {seq} (event {event_id}): stored hash {stored.hex()} but the content hashes to {computed.hex()}",
            seq, event_id,
        )
    key = next((k for k in keys if k.key_id == rec["key_id"]), None)
    if key is None:
        raise Failed(f"record {seq} (event {event_id}) is signed by unknown key {rec['key_id']}", seq, event_id)
    if not key.valid_for(seq):
        raise Failed(
            f"record {seq} (event {event_id}) is signed by key {key.key_id}, valid only for {key.from_seq}..{key.until_seq or ''}",
            seq, event_id,
        )
    if not ed25519_verify(key.public_key, sig, stored):
        raise Failed(f"record {seq} (event {event_id}): the signature by key {key.key_id} does not verify", seq, event_id)
    return seq, event_id, stored


def check_rotation(rec, keys: list[KeyInterval]):
    """Section 5 and section 13 item 7."""
    seq, event_id = rec["seq"], rec["event_id"]
    starts_next = next((k for k in keys if k.from_seq == seq + 1), None)
    if rec["event_type"] != "key_rotation":
        if starts_next is not None:
            raise Failed(
                f"the key history starts key {starts_next.key_id} at {seq + 1}, but record {seq} is not a key rotation",
                seq, event_id,
            )
        return
    p = rec["payload"]
    new = next((k for k in keys if k.key_id == p.get("new_key_id")), None)
    old = next((k for k in keys if k.key_id == rec["key_id"]), None)
    ok = (
        p.get("effective_from_seq") == seq + 1
        and new is not None
        and new.public_key.hex() == p.get("new_public_key")
        and new.from_seq == seq + 1
        and old is not None
        and old.until_seq == seq + 1
    )
    if not ok:
        raise Failed(f"key rotation record {seq} (event {event_id}) disagrees with the key history", seq, event_id)


class Chain:
    """Checks records in sequence order (section 13 items 1-7) and builds the Merkle tree."""

    def __init__(self, tenant: str, keys: list[KeyInterval], first_seq: int, prev: bytes | None):
        self.tenant, self.keys = tenant, keys
        self.next_seq, self.prev, self.time = first_seq, prev, None
        self.tree = TreeBuilder() if first_seq == 0 else None
        self.count, self.last_hash = 0, None
        self.event_ids: dict[str, int] = {}

    def push(self, rec):
        seq = rec.get("seq") if isinstance(rec, dict) else None
        event_id = rec.get("event_id") if isinstance(rec, dict) else None
        if seq != self.next_seq:
            raise Failed(
                f"expected record {self.next_seq} but found record {seq}: a record is missing, repeated or out of order",
                self.next_seq, event_id,
            )
        if isinstance(rec.get("tenant"), str) and rec["tenant"] != self.tenant:
            raise Failed(f"record {seq} belongs to tenant {rec['tenant']}", seq, event_id)
        prev = unhex(rec.get("prev"), 32, f"record {seq} prev")
        if self.prev is not None and prev != self.prev:
            raise Failed(
                f"record {seq} (event {event_id}) links to {prev.hex()}, but the previous record's hash is {self.prev.hex()}",
                seq, event_id,
            )
        t = rec.get("captured_at_us")
        if self.time is not None and isinstance(t, int) and t < self.time:
            raise Failed(f"record {seq} (event {event_id}) was captured before the previous record", seq, event_id)
        if isinstance(event_id, str) and event_id in self.event_ids:
            raise Failed(
                f"record {seq} repeats event id {event_id}, already used by record {self.event_ids[event_id]}",
                seq, event_id,
            )
        _, _, h = check_record(rec, self.keys, self.tenant)
        check_rotation(rec, self.keys)
        self.event_ids[event_id] = seq
        if self.tree is not None:
            self.tree.push(leaf_hash(h))
        self.next_seq, self.prev, self.time = seq + 1, h, t
        self.count, self.last_hash = self.count + 1, h


# --- Evidence heads: checkpoint + key history (sections 11, 12) ----------------------------------


@dataclass
class Trust:
    keys: list[VerifierKey]
    history: tuple[str, list[KeyInterval]] | None = None


def open_head(doc, trust: Trust) -> tuple[Checkpoint, list[KeyInterval]]:
    tenant, origin = doc.get("tenant"), doc.get("origin")
    if not isinstance(tenant, str) or not isinstance(origin, str) or not origin.endswith("/" + tenant) or origin == "/" + tenant:
        raise Failed(f"origin {origin!r} is not the log of tenant {tenant!r}")
    checkpoint = open_checkpoint(doc.get("checkpoint", ""), trust.keys, origin)
    keys = parse_key_history(doc.get("keys"))
    signer_ok = any(
        k.public_key == v.public_key and k.may_sign_checkpoint(checkpoint.size)
        for v in checkpoint.signed_by if v.name == origin
        for k in keys
    )
    if not signer_ok:
        raise Failed(
            f"the key that signed the checkpoint of size {checkpoint.size} is not in the key history (or not current at that size)"
        )
    for text in doc.get("verifier_keys", []):
        v = VerifierKey.parse(text) if isinstance(text, str) else None
        if v is None or v.name != origin or not any(k.public_key == v.public_key for k in keys):
            raise Failed(f"verifier key {text!r} is not a key of {origin} in the key history")
    if trust.history and trust.history[0] == origin:
        for t in trust.history[1]:
            for k in keys:
                if k.key_id == t.key_id and (
                    k.public_key != t.public_key or k.from_seq != t.from_seq
                    or (k.until_seq != t.until_seq and None not in (k.until_seq, t.until_seq))
                ):
                    raise Failed(f"the key history disagrees with the trusted history about key {t.key_id}", k.from_seq)
    return checkpoint, keys


# --- Export (section 12) -------------------------------------------------------------------------


def verify_export(lines: Iterator[str], trust: Trust) -> list[str]:
    try:
        header = parse_json(next(lines))
    except StopIteration:
        raise Failed("the export has no header line")
    except ValueError as e:
        raise Unusable(f"not an Auditex export: {e}") from e
    if not isinstance(header, dict) or header.get("format") != EXPORT_FORMAT:
        raise Unusable("not an Auditex export (no format auditex-export/v1 header)")
    allowed = {"format", "tenant", "origin", "from_seq", "checkpoint", "keys", "verifier_keys"}
    if set(header) != allowed:
        raise Failed("the export header's members are not those of FORMAT.md section 12")
    checkpoint, keys = open_head(header, trust)
    from_seq = header["from_seq"]
    if not isinstance(from_seq, int) or not 0 <= from_seq <= checkpoint.size:
        raise Failed(f"from_seq {from_seq} is beyond the checkpoint's tree size {checkpoint.size}")
    chain = Chain(header["tenant"], keys, from_seq, ZERO_HASH if from_seq == 0 else None)
    trailer = None
    for n, line in enumerate(lines, start=2):
        if trailer is not None:
            raise Failed(f"line {n}: a line follows the trailer")
        try:
            doc = parse_json(line)
        except ValueError as e:
            raise Failed(f"line {n}: malformed JSON: {e}", from_seq + n - 2) from e
        if isinstance(doc, dict) and "end" in doc:
            trailer = doc
            continue
        if isinstance(doc, dict) and isinstance(doc.get("seq"), int) and doc["seq"] >= checkpoint.size:
            raise Failed(f"record {doc['seq']} is beyond the checkpoint's tree size {checkpoint.size}", doc["seq"])
        chain.push(doc)
    if trailer is None:
        raise Failed("the export ends without a trailer line (truncated?)")
    end = trailer.get("end")
    if set(trailer) != {"end"} or not isinstance(end, dict) or set(end) != {"records", "last_seq", "inclusion_proof"}:
        raise Failed("malformed trailer")
    last_seq = chain.next_seq - 1 if chain.count else None
    if end["records"] != chain.count or end["last_seq"] != last_seq:
        raise Failed(f"the trailer states {end['records']} records ending at {end['last_seq']}, but {chain.count} were read")
    if from_seq + chain.count != checkpoint.size:
        raise Failed(
            f"the export holds {chain.count} records, but the checkpoint of size {checkpoint.size} needs records up to {checkpoint.size - 1}",
            from_seq + chain.count,
        )
    proof = [unhex(h, 32, "inclusion proof hash") for h in end["inclusion_proof"]]
    if chain.count:
        if not verify_inclusion(leaf_hash(chain.last_hash), last_seq, checkpoint.size, proof, checkpoint.root):
            raise Failed(f"record {last_seq} is not proven to be the checkpoint's last leaf", last_seq)
    elif proof:
        raise Failed("an export without records carries an inclusion proof")
    proven = [f"{chain.count} records {from_seq}..{last_seq}: hashes, links, sequence, capture times, signatures, key intervals"]
    if chain.tree is not None:
        root = chain.tree.root()
        if root != checkpoint.root:
            raise Failed(
                f"the {checkpoint.size} records hash to root {root.hex()}, but the checkpoint says {checkpoint.root.hex()}",
                checkpoint.size - 1,
            )
        proven.append(f"Merkle root recomputed from all records = checkpoint root {checkpoint.root.hex()} (size {checkpoint.size})")
    else:
        proven.append(f"last record is the last leaf of the checkpoint of size {checkpoint.size}")
    return proven


# --- Bundle (section 11) -------------------------------------------------------------------------


def linked_decisions(rec) -> list[str]:
    p = rec.get("payload", {})
    out = []
    if isinstance(p.get("decision_id"), str):
        out.append(p["decision_id"])
    if isinstance(p.get("decision_ids"), list):
        out.extend(x for x in p["decision_ids"] if isinstance(x, str))
    return out


def verify_bundle(doc, trust: Trust) -> list[str]:
    if not isinstance(doc, dict) or doc.get("format") != BUNDLE_FORMAT:
        raise Unusable("not a custody bundle (no format auditex-custody-bundle/v1)")
    allowed = {"format", "tenant", "origin", "decision_event_id", "checkpoint", "keys", "verifier_keys", "entries"}
    if set(doc) != allowed:
        raise Failed("the bundle's members are not those of FORMAT.md section 11")
    checkpoint, keys = open_head(doc, trust)
    entries = doc["entries"]
    if not isinstance(entries, list) or not entries:
        raise Failed("the bundle has no entries")
    decision, previous, proven = doc["decision_event_id"], None, []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not {"record", "inclusion_proof"} <= set(entry) <= {"record", "inclusion_proof", "erasable_values"}:
            raise Failed(f"entry {i} is malformed")
        rec = entry["record"]
        seq, event_id, h = check_record(rec, keys, doc["tenant"])
        if previous is not None and seq <= previous:
            raise Failed(f"record {seq} follows record {previous}: entries must increase", seq, event_id)
        previous = seq
        proof = [unhex(x, 32, "inclusion proof hash") for x in entry["inclusion_proof"]]
        if not verify_inclusion(leaf_hash(h), seq, checkpoint.size, proof, checkpoint.root):
            raise Failed(f"record {seq} (event {event_id}) is not proven to be in the tree of size {checkpoint.size}", seq, event_id)
        if i == 0:
            if rec["event_type"] != "decision" or event_id != decision:
                raise Failed(f"the first entry, record {seq}, is not the decision {decision}", seq, event_id)
        elif decision not in linked_decisions(rec):
            raise Failed(f"record {seq} (event {event_id}) does not link to decision {decision}", seq, event_id)
        values = entry.get("erasable_values") or {}
        for field, v in values.items():
            commitment = rec["erasable"].get(field)
            if commitment is None:
                raise Failed(f"record {seq}: erasable value {field} has no commitment", seq, event_id)
            salt = unhex(v.get("salt"), 32, f"record {seq} salt of {field}")
            if sha256(ERASABLE_DOMAIN, b"\x00", salt, jcs(v.get("value"))).hex() != commitment:
                raise Failed(f"record {seq}: erasable value {field} does not match its commitment", seq, event_id)
        proven.append(
            f"record {seq} ({rec['event_type']} {event_id}) in the checkpoint of size {checkpoint.size}; "
            f"{len(values)} erasable value(s) matched, {len(rec['erasable']) - len(values)} absent"
        )
    return proven


# --- tlog-proof file (section 10) ----------------------------------------------------------------


def verify_proof(text: str, trust: Trust) -> list[str]:
    if not text.startswith(TLOG_PROOF_HEADER + "\n"):
        raise Unusable("not a C2SP tlog-proof file")
    rest = text[len(TLOG_PROOF_HEADER) + 1 :]
    if not rest.startswith("extra "):
        raise Failed("the proof file carries no record in its extra line")
    extra, rest = rest[len("extra ") :].split("\n", 1)
    if not rest.startswith("index "):
        raise Failed("the proof file has no index line")
    index_text, rest = rest[len("index ") :].split("\n", 1)
    if not re.fullmatch(r"0|[1-9][0-9]*", index_text):
        raise Failed("malformed index")
    proof = []
    while True:
        line, rest = rest.split("\n", 1)
        if line == "":
            break
        h = b64decode_canonical(line)
        if len(h) != 32:
            raise Failed("a proof hash is not 32 bytes")
        proof.append(h)
    note = rest
    try:
        rec = parse_json(b64decode_canonical(extra))
    except ValueError as e:
        raise Failed(f"the extra data is not a record: {e}") from e
    origin = note.split("\n", 1)[0]
    tenant = rec.get("tenant") if isinstance(rec, dict) else None
    if not isinstance(tenant, str) or not origin.endswith("/" + tenant):
        raise Failed(f"origin {origin!r} is not the log of the record's tenant")
    checkpoint = open_checkpoint(note, trust.keys, origin)
    if trust.history and trust.history[0] == origin:
        keys = trust.history[1]
    else:
        named = [k for k in trust.keys if k.name == origin]
        if len(named) != 1:
            raise Unusable("pass --key-history so that the record key's validity interval can be checked")
        keys = [KeyInterval(key_id_of(named[0].public_key), named[0].public_key, 0, None)]
    # FORMAT.md section 9: a checkpoint signed outside its key's interval is rejected.
    if not any(
        k.public_key == v.public_key and k.may_sign_checkpoint(checkpoint.size)
        for v in checkpoint.signed_by if v.name == origin
        for k in keys
    ):
        raise Failed(
            f"the key that signed the checkpoint of size {checkpoint.size} is not in the key history (or not current at that size)"
        )
    seq, event_id, h = check_record(rec, keys)
    if int(index_text) != seq:
        raise Failed(f"the proof is for leaf {index_text}, but the record is number {seq}", seq, event_id)
    if not verify_inclusion(leaf_hash(h), seq, checkpoint.size, proof, checkpoint.root):
        raise Failed(f"record {seq} (event {event_id}) is not proven to be in the tree of size {checkpoint.size}", seq, event_id)
    return [f"record {seq} ({rec['event_type']} {event_id}) is leaf {seq} of the checkpoint of size {checkpoint.size}"]


# --- Two checkpoints of one log (sections 8, 9, 13 item 8) ---------------------------------------


def checkpoint_note_of(path: str) -> str:
    """The signed checkpoint in a file: a bare note, or the one inside an export, bundle or proof."""
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    if text.startswith(TLOG_PROOF_HEADER + "\n"):
        if "\n\n" not in text:
            raise Unusable(f"{path}: the tlog-proof file holds no checkpoint")
        return text.split("\n\n", 1)[1]
    if text.lstrip().startswith("{"):
        try:
            first = parse_json(text.split("\n", 1)[0])
        except ValueError:
            first = None
        if isinstance(first, dict) and first.get("format") == EXPORT_FORMAT:
            doc = first
        else:
            try:
                doc = parse_json(text)
            except ValueError as e:
                raise Unusable(f"{path}: neither a checkpoint nor an export, bundle or proof file: {e}") from e
        if not isinstance(doc, dict) or doc.get("format") not in (EXPORT_FORMAT, BUNDLE_FORMAT):
            raise Unusable(f"{path}: JSON, but not an Auditex export or bundle")
        if not isinstance(doc.get("checkpoint"), str):
            raise Unusable(f"{path}: the {doc['format']} holds no checkpoint")
        return doc["checkpoint"]
    if "\n\n" not in text or not text.endswith("\n"):
        raise Unusable(f"{path}: not a signed checkpoint, export, bundle or proof file")
    return text


def read_proof_hashes(path: str) -> list[bytes]:
    """A consistency proof: one 32-byte hash per line in hex or standard base64 (blank lines and
    `#` comments ignored), as `auditex proof --old-size` writes it; or a JSON array of hex hashes,
    or the JSON answer of GET /v1/proofs/consistency (its `proof` member)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    stripped = text.lstrip()
    if stripped.startswith("[") or stripped.startswith("{"):
        try:
            doc = parse_json(text)
        except ValueError as e:
            raise Unusable(f"{path}: malformed JSON: {e}") from e
        hashes = doc.get("proof") if isinstance(doc, dict) else doc
        if not isinstance(hashes, list) or not all(isinstance(h, str) and HEX64.match(h) for h in hashes):
            raise Unusable(f"{path}: not a list of 64-hex-digit hashes")
        return [bytes.fromhex(h) for h in hashes]
    out = []
    for n, line in enumerate(text.split("\n"), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if HEX64.match(line):
            out.append(bytes.fromhex(line))
            continue
        try:
            raw = base64.b64decode(line, validate=True)
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise Unusable(f"{path} line {n}: not a 32-byte hash in hex or base64")
        out.append(raw)
    return out


def verify_checkpoint_consistency(old_path: str, new_path: str, proof_path: str | None, trust: Trust) -> list[str]:
    """The newer checkpoint extends the older one: same origin, no smaller tree (a rollback), no
    other root at the same size (a fork), and for a larger tree an RFC 9162 consistency proof."""
    opened = []
    for label, path in (("old", old_path), ("new", new_path)):
        note = checkpoint_note_of(path)
        try:
            opened.append(open_checkpoint(note, trust.keys))
        except Failed as e:
            raise Failed(f"the {label} checkpoint ({path}): {e}") from e
    older, newer = opened
    if older.origin != newer.origin:
        raise Failed(f"the checkpoints are of two logs: {older.origin!r} and {newer.origin!r}")
    if newer.size < older.size:
        raise Failed(
            f"the log was rolled back: a checkpoint of size {older.size} was seen, but the newer one has only {newer.size}",
            newer.size,
        )
    if newer.size == older.size and newer.root != older.root:
        raise Failed(
            f"the log forked: two different roots {older.root.hex()} and {newer.root.hex()} for tree size {older.size}"
        )
    needs_proof = newer.size > older.size and older.size > 0
    if needs_proof and proof_path is None:
        raise Unusable(
            f"a consistency proof is needed from size {older.size} to {newer.size}: pass --proof FILE "
            f"(from `auditex proof --tenant T --old-size {older.size}`)"
        )
    proof = read_proof_hashes(proof_path) if needs_proof else []
    verify_consistency(older.size, newer.size, proof, older.root, newer.root)
    return [
        f"the checkpoint of size {newer.size} (root {newer.root.hex()}) extends the one of size {older.size} "
        f"(root {older.root.hex()}) of {newer.origin}: nothing in the older tree was changed"
    ]


# --- Command line -----------------------------------------------------------------------------------


def load_trust(args) -> Trust:
    keys = [VerifierKey.parse(k) for k in args.key]
    if args.keys:
        with open(args.keys, encoding="utf-8") as f:
            for line in f:
                line = line.split("#", 1)[0].strip()
                if line:
                    keys.append(VerifierKey.parse(line))
    history = None
    if args.key_history:
        with open(args.key_history, encoding="utf-8") as f:
            doc = parse_json(f.read())
        if not isinstance(doc, dict) or set(doc) != {"origin", "keys"} or not isinstance(doc["origin"], str):
            raise Unusable("the key history must be an object with exactly origin and keys")
        # FORMAT.md section 1: a closed set of members, and each verifier_key derived from its
        # public key and the origin.
        members = {"key_id", "public_key", "from_seq", "until_seq", "verifier_key"}
        if not isinstance(doc["keys"], list) or not all(isinstance(e, dict) and set(e) == members for e in doc["keys"]):
            raise Unusable(f"key history: every key must have exactly the members {sorted(members)}")
        try:
            intervals = parse_key_history([{k: e[k] for k in members - {"verifier_key"}} for e in doc["keys"]])
        except Failed as e:
            raise Unusable(f"key history: {e}") from e
        for e, k in zip(doc["keys"], intervals):
            if e["verifier_key"] != str(VerifierKey.of(doc["origin"], k.public_key)):
                raise Unusable(f"key history: the verifier key of {k.key_id} does not match its public key and the origin")
        history = (doc["origin"], intervals)
        keys.extend(VerifierKey.of(doc["origin"], k.public_key) for k in intervals)
    if not keys:
        raise Unusable("no trusted key: pass --key, --keys or --key-history")
    return Trust(keys, history)


def read_lines(path: str) -> Iterator[str]:
    # JSON Lines end at a line feed only: newline="" would also end them at a lone carriage
    # return, which `auditex verify` (and JSON) reads as whitespace inside one line.
    f = sys.stdin if path == "-" else open(path, encoding="utf-8", newline="\n")
    with f:
        for line in f:
            yield line[:-1] if line.endswith("\n") else line


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify Auditex evidence offline (FORMAT.md).")
    parser.add_argument("kind", choices=["export", "bundle", "proof", "consistency"])
    parser.add_argument("file", nargs="?", help="the evidence (not for consistency)")
    parser.add_argument("--key", action="append", default=[], help="trusted C2SP verifier key (repeatable)")
    parser.add_argument("--keys", help="file of trusted verifier keys, one per line")
    parser.add_argument("--key-history", help="trusted key history, as `auditex key history` prints it")
    parser.add_argument("--old", help="consistency: the checkpoint saved earlier (a signed note, or an export, bundle or proof file holding one)")
    parser.add_argument("--new", help="consistency: the newer checkpoint, in the same forms")
    parser.add_argument("--proof", help="consistency: the RFC 9162 consistency proof, one hash per line, as `auditex proof --old-size` writes it")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.kind == "consistency":
        if args.file is not None or args.old is None or args.new is None:
            parser.error("consistency takes --old FILE and --new FILE (and --proof FILE when the tree grew), no positional file")
        args.file = f"{args.old} -> {args.new}"
    elif args.file is None:
        parser.error(f"{args.kind} needs the evidence file")
    result = {"verified": False, "evidence": args.kind, "file": args.file}
    try:
        trust = load_trust(args)
        if args.kind == "consistency":
            proven = verify_checkpoint_consistency(args.old, args.new, args.proof, trust)
        elif args.kind == "export":
            proven = verify_export(read_lines(args.file), trust)
        elif args.kind == "bundle":
            with open(args.file, encoding="utf-8") as f:
                try:
                    doc = parse_json(f.read())
                except ValueError as e:
                    raise Unusable(f"not JSON: {e}") from e
            proven = verify_bundle(doc, trust)
        else:
            with open(args.file, encoding="utf-8", newline="") as f:
                proven = verify_proof(f.read(), trust)
        result.update(verified=True, proven=proven)
        code = EXIT_VERIFIED
    except Failed as e:
        result["failure"] = {"seq": e.seq, "event_id": e.event_id, "message": str(e)}
        code = EXIT_FAILED
    except (Unusable, OSError, UnicodeDecodeError) as e:
        result["error"] = f"could not read input: {e}"
        code = EXIT_UNREADABLE
    except (KeyError, TypeError, AttributeError, ValueError) as e:  # malformed evidence
        result["failure"] = {"seq": None, "event_id": None, "message": f"malformed evidence: {e!r}"}
        code = EXIT_FAILED
    if args.json:
        print(json.dumps(result, indent=2))
    elif code == EXIT_VERIFIED:
        print(f"VERIFIED {args.kind} {args.file}")
        for p in result["proven"]:
            print(f"  - {p}")
    elif code == EXIT_FAILED:
        f = result["failure"]
        at = f" at record {f['seq']}" if f["seq"] is not None else ""
        print(f"FAILED{at}: {f['message']}")
    else:
        print(result["error"], file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
