#!/usr/bin/env python3
"""An independent verifier of Auditex evidence, written from FORMAT.md alone.

It checks the four kinds of evidence Auditex produces, two checkpoints against each other, and a
tenant's log as the service serves it in the C2SP tlog-tiles layout:

    auditex_verify.py export FILE  --key-history HISTORY.json   (FORMAT.md sections 12, 13)
    auditex_verify.py bundle FILE  --key VKEY                   (section 11)
    auditex_verify.py package FILE --key-history HISTORY.json   (section 12b)
    auditex_verify.py proof  FILE  --keys VKEYS.txt             (section 10)
    auditex_verify.py consistency --old SAVED --new LATEST --proof PROOF --keys VKEYS.txt
                                                                (sections 8, 9, 13 item 8)
    auditex_verify.py tiles URL --key VKEY [--cafile PEM] [--leaf N ...] [--old SAVED] [--all]
                                                                (sections 3, 4, 8, 9; tlog-tiles)

using only the standard library (hashlib; urllib and ssl for `tiles`), the `cryptography` package
(Ed25519) and the `rfc8785` package (JSON Canonicalization Scheme). Trust comes only from the
command line: C2SP verifier keys (--key, --keys), a key history as `auditex key history` prints
it (--key-history), or the logs of a tlog-policy file (--policy). Keys listed inside the evidence
are checked, never trusted.

`tiles` reads the log under its prefix URL (`https://HOST/<origin path>/`): the checkpoint, opened
with the trusted keys; its root recomputed from the tiles of the compact range of its size; with
--leaf, the RFC 9162 inclusion proof of record N computed from tiles and the record read from the
entry and record bundles at its position; with --old, the consistency proof from a saved
checkpoint computed from tiles; with --all, every leaf, entry and record. The API key of a private
log is read from the environment variable AUDITEX_API_KEY, never from the command line.

Every kind also takes a witness policy (FORMAT.md section 9a, C2SP tlog-cosignature):
`--witness VKEY` (repeatable; a vkey of type 0x04, as `auditex witness vkey` prints it) and
`--quorum N` (default: every distinct witness given). Evidence that otherwise verifies must then
carry, on its checkpoint (for consistency, the --new one; for tiles, the served one), valid Ed25519
`cosignature/v1` lines of at least N of those witnesses, none timestamped before the latest capture
time of the records it proves; the checkpoint existed no later than the N-th earliest of their
timestamps (its witnessed time), which is printed, and --json lists the cosignatures counted.
Without --witness, cosignature lines are ignored like every signature line of an unknown key.

Instead of --witness/--quorum, `--policy FILE` takes a C2SP tlog-policy file (`log <vkey> [<url>]`,
`witness <name> <vkey> [<url>]`, `group <name> all|any|<k> <name>...`, `quorum <name>|none`): its
logs' keys are trusted like --key, and the checkpoint's valid cosignatures by its witnesses must
satisfy its quorum, groups evaluated in order (`quorum none` needs none). The capture-time check
holds for every cosignature counted, and the witnessed time is the latest of them. A policy that
breaks the specification's rules is unusable (exit 2, naming its line); --policy with --witness or
--quorum is a usage error (exit 2).

Exit codes: 0 verified; 1 verification failed (the first failure is printed with its sequence
number) — whatever was read and does not verify, including a file that is not the kind of evidence
asked for, since a changed byte can make evidence into anything, a tile or bundle the verified
checkpoint says exists but the server answers 404 for, and a witness quorum not met or a
cosignature made before the records were captured; 2 a file could not be opened or read, the
server could not be reached or answered another HTTP error (its status is printed), or the command
line is unusable (no trusted key, a malformed trusted key, witness key or key history, --quorum
without --witness, of 0 or above the number of distinct witness keys, a policy file that cannot be
read or breaks a rule, --policy with --witness or --quorum, a grown tree without its consistency
proof, a --leaf beyond the checkpoint's tree).
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import http.client
import io
import ipaddress
import json
import os
import re
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
import zlib
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
PACKAGE_FORMAT = "auditex-subject-package/v1"
TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"
CONSISTENCY_PROOF_FORMAT = "auditex-consistency-proof/v1"
NOTE_BYTES_MAX = 256 * 1024
U64_MAX = 2**64 - 1
CONTROL_BYTE = re.compile(rb"[\x00-\x1f]")
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


def is_int(x) -> bool:
    """FORMAT.md section 1: an integer member is written as an integer literal. `1.0`, `1e0` (read
    as floats) and booleans are not integers, though Python compares them equal to 1."""
    return type(x) is int


def b64decode_canonical(text, what: str) -> bytes:
    """Standard padded base64 in its one canonical form (FORMAT.md section 1): the alphabet only,
    correct padding and zero padding bits, which Python's decoder alone does not check."""
    if not isinstance(text, str):
        raise Failed(f"{what} is not base64")
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError as e:
        raise Failed(f"{what} is not standard base64") from e
    if base64.b64encode(raw).decode() != text:
        raise Failed(f"{what} is not canonical base64 (padding or padding bits)")
    return raw


def read_text(path: str, limit: int | None = None) -> str:
    """A file's text. Only a file that cannot be opened or read is unusable (exit 2): bytes that
    are not UTF-8, or too many of them, are evidence that does not verify (exit 1)."""
    if path == "-":
        data = sys.stdin.buffer.read()
    else:
        with open(path, "rb") as f:
            data = f.read() if limit is None else f.read(limit + 1)
    if limit is not None and len(data) > limit:
        raise Failed(f"{path}: larger than {limit} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Failed(f"{path}: not UTF-8 text") from e


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
        if not isinstance(e, dict) or set(e) != {"key_id", "public_key", "from_seq", "until_seq"}:
            raise Failed(f"key history entry {i} is not an object of exactly key_id, public_key, from_seq, until_seq")
        pk = unhex(e.get("public_key"), 32, f"key {i} public_key")
        check_public_key(pk, f"key history entry {i}")
        if e.get("key_id") != key_id_of(pk):
            raise Failed(f"key history entry {i}: key_id does not match its public key")
        f, u = e.get("from_seq"), e.get("until_seq")
        if not is_int(f) or f != expected_from:
            raise Failed(f"key history entry {i} starts at {f}, expected {expected_from}")
        if u is None:
            if i != len(entries) - 1:
                raise Failed(f"key history entry {i} is open-ended but not the last")
        elif not is_int(u) or u <= f:
            raise Failed(f"key history entry {i} has an empty or malformed interval")
        else:
            expected_from = u
        keys.append(KeyInterval(e["key_id"], pk, f, u))
    return keys


# FORMAT.md section 5, Ed25519 strictness: the encodings of the points of small order (the eight
# torsion points, canonical and not; the list libsodium uses). A public key or a signature's R
# equal to one of them is rejected, as ed25519-dalek's verify_strict does; OpenSSL (behind the
# `cryptography` package) already rejects a non-canonical S (S >= L) and, comparing encodings, a
# non-canonical R.
SMALL_ORDER_ENCODINGS = {bytes.fromhex(h) for h in (
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "0100000000000000000000000000000000000000000000000000000000000080",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
)}
FIELD_P = 2**255 - 19


def is_canonical_point(encoding: bytes) -> bool:
    """The y coordinate (the low 255 bits) is below p: the one encoding of the point."""
    return int.from_bytes(encoding, "little") & (2**255 - 1) < FIELD_P


def check_public_key(public_key: bytes, what: str):
    if len(public_key) != 32 or public_key in SMALL_ORDER_ENCODINGS or not is_canonical_point(public_key):
        raise Failed(f"{what}: not a canonical Ed25519 public key of large order")
    try:
        Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError as e:
        raise Failed(f"{what}: not an Ed25519 public key") from e


def ed25519_verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Strict RFC 8032 verification (FORMAT.md section 5): besides the equation, S < L, and
    neither the key nor R of small order or encoded non-canonically."""
    if len(signature) != 64 or len(public_key) != 32:
        return False
    r = signature[:32]
    if r in SMALL_ORDER_ENCODINGS or public_key in SMALL_ORDER_ENCODINGS:
        return False
    if not is_canonical_point(r) or not is_canonical_point(public_key):
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
        return True
    except (InvalidSignature, ValueError):
        return False


def check_key_name(name: str):
    """C2SP key names: non-empty, no `+`, no white space, no control characters."""
    if not name or "+" in name or any(c.isspace() or ord(c) < 0x20 for c in name):
        raise Failed(f"malformed key name {name!r}")


# --- C2SP signed notes and checkpoints (section 9) -----------------------------------------------


# Signature types of C2SP vkeys: a log's checkpoint key (signed-note Ed25519) and a witness's
# cosigning key (tlog-cosignature Ed25519, `cosignature/v1`). The type byte enters the key id, so
# one public key has a different id, and name, in each role.
KEY_TYPE_ED25519 = 0x01
KEY_TYPE_COSIGNATURE_V1 = 0x04
KEY_TYPE_NAMES = {KEY_TYPE_ED25519: "an Ed25519 key", KEY_TYPE_COSIGNATURE_V1: "an Ed25519 cosignature/v1 (0x04) key"}


@dataclass(frozen=True)
class VerifierKey:
    name: str
    key_id: bytes  # 4 bytes
    public_key: bytes
    kind: int = KEY_TYPE_ED25519

    @staticmethod
    def of(name: str, public_key: bytes, kind: int = KEY_TYPE_ED25519) -> "VerifierKey":
        kid = sha256(name.encode(), b"\x0a", bytes([kind]), public_key)[:4]
        return VerifierKey(name, kid, public_key, kind)

    @staticmethod
    def parse(text: str, kind: int = KEY_TYPE_ED25519) -> "VerifierKey":
        """A C2SP vkey `<name>+<8 lower-case hex>+<base64(kind || key)>`: a checkpoint key (0x01)
        or, with `kind` 0x04, a witness's cosignature key. The name holds no `+`, so the first two
        `+` are the separators and any further `+` belongs to the base64 (FORMAT.md section 9).
        Raises Failed; a caller reading a trusted key turns that into Unusable."""
        parts = text.split("+", 2)
        if len(parts) != 3:
            raise Failed(f"not a verifier key: {text!r}")
        name, kid_hex, b64 = parts
        check_key_name(name)
        if not re.fullmatch(r"[0-9a-f]{8}", kid_hex):
            raise Failed(f"verifier key {text!r}: the key id is not 8 lower-case hex digits")
        raw = b64decode_canonical(b64, f"verifier key {text!r}")
        if len(raw) != 33 or raw[0] != kind:
            raise Failed(f"verifier key {text!r}: not {KEY_TYPE_NAMES[kind]}")
        check_public_key(raw[1:], f"verifier key {text!r}")
        key = VerifierKey.of(name, raw[1:], kind)
        if key.key_id.hex() != kid_hex:
            raise Failed(f"verifier key {text!r}: key id does not match the key")
        return key

    def __str__(self):
        encoded = base64.b64encode(bytes([self.kind]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"


@dataclass
class Checkpoint:
    origin: str
    size: int
    root: bytes
    signed_by: list[VerifierKey]
    # The note text (origin, size and root lines, each ending with a newline), which every
    # signature and cosignature covers, and every signature line as (key name, key id ||
    # signature), those of keys not trusted here too: the cosignatures are among them.
    text: str
    signatures: tuple[tuple[str, bytes], ...]


def open_checkpoint(note: str, trusted: list[VerifierKey], origin: str | None = None) -> Checkpoint:
    """Parses a signed checkpoint and verifies it against trusted keys (FORMAT.md section 9)."""
    if len(note.encode()) > NOTE_BYTES_MAX:
        raise Failed("the checkpoint note is too large")
    if any(ord(c) < 0x20 and c != "\n" for c in note):
        raise Failed("the checkpoint note holds a control character (only \\n ends lines)")
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
    if not cp_origin.strip():
        raise Failed("the checkpoint's origin is empty")
    if not re.fullmatch(r"0|[1-9][0-9]*", size_text) or int(size_text) > U64_MAX:
        raise Failed("the checkpoint's tree size is malformed")
    root = b64decode_canonical(root_text, "the checkpoint's root")
    if len(root) != 32:
        raise Failed("the checkpoint's root is not 32 bytes")
    if origin is not None and cp_origin != origin:
        raise Failed(f"the checkpoint is of {cp_origin!r}, not {origin!r}")
    if not signature_block:
        raise Failed("the checkpoint note has no signature lines")
    signed_by, signatures = [], []
    # As ledger::note: a note carries at most 100 signature lines, known keys or not.
    if signature_block.count("\n") > SIGNATURE_LINES_MAX:
        raise Failed(f"the checkpoint note has more than the {SIGNATURE_LINES_MAX} signature lines a note may carry")
    for line in signature_block[:-1].split("\n") if signature_block.endswith("\n") else [None]:
        if line is None or not line.startswith("\u2014 "):
            raise Failed("malformed signature line in the checkpoint note")
        # A key name holds no space, so the first space ends it.
        name, sep, b64 = line[2:].partition(" ")
        if not sep:
            raise Failed("malformed signature line in the checkpoint note")
        check_key_name(name)
        blob = b64decode_canonical(b64, "a signature in the checkpoint note")
        if len(blob) <= 4:
            raise Failed("a signature in the checkpoint note is too short")
        # Every line is kept for the witness policy; beyond that, a line of a key not trusted here
        # is ignored, as C2SP signed notes require (a witness's cosignature is one).
        signatures.append((name, blob))
        for key in trusted:
            if key.name == name and blob[:4] == key.key_id:
                if key in signed_by:
                    raise Failed(f"trusted key {key} signed the checkpoint twice")
                if len(blob) != 68 or not ed25519_verify(key.public_key, blob[4:], text.encode()):
                    raise Failed(f"the checkpoint signature by trusted key {key} does not verify")
                signed_by.append(key)
    if not any(k.name == cp_origin for k in signed_by):
        raise Failed("the checkpoint is not signed by a trusted key of its log")
    return Checkpoint(cp_origin, int(size_text), root, signed_by, text, tuple(signatures))


def check_checkpoint_interval(checkpoint: Checkpoint, keys: list[KeyInterval], origin: str):
    """FORMAT.md section 9: a checkpoint is rejected unless a trusted key of its log that signed
    it may sign a checkpoint of its size, per the key history."""
    if not any(
        k.public_key == v.public_key and k.may_sign_checkpoint(checkpoint.size)
        for v in checkpoint.signed_by if v.name == origin
        for k in keys
    ):
        raise Failed(
            f"the key that signed the checkpoint of size {checkpoint.size} is not in the key history (or not current at that size)"
        )


# --- Witness cosignatures (C2SP tlog-cosignature, Ed25519 cosignature/v1) ----------------------


COSIGNATURE_BYTES = 4 + 8 + 64  # key id, timestamp (u64, big-endian), Ed25519 signature
COSIGNATURE_TIMESTAMP_MAX = 2**63 - 1


@dataclass(frozen=True)
class WitnessPolicy:
    """--witness VKEY ... --quorum N: the checkpoint must carry valid cosignatures of `quorum` of
    the distinct trusted `witnesses`."""

    witnesses: tuple[VerifierKey, ...]
    quorum: int

    def satisfied(self, cosigned: Iterable[VerifierKey]) -> bool:
        return len(set(cosigned) & set(self.witnesses)) >= self.quorum

    def requirement(self, met: bool) -> str:
        return f"the policy asks for {self.quorum}"

    def witnessed_time(self, timestamps: list[int]) -> int | None:
        """`quorum` witnesses had seen the tree by the quorum-th earliest cosignature."""
        ordered = sorted(timestamps)
        return ordered[self.quorum - 1] if len(ordered) >= self.quorum else None


@dataclass(frozen=True)
class Cosignature:
    witness: VerifierKey
    timestamp: int  # POSIX seconds


def parse_witness_policy(vkeys: list[str], quorum: int | None) -> WitnessPolicy | None:
    """The witness policy of the command line, None without --witness. It is trust, not evidence:
    anything wrong with it makes the command unusable (exit 2)."""
    if not vkeys:
        if quorum is not None:
            raise Unusable("--quorum needs the witnesses it counts: pass --witness VKEY (repeatable)")
        return None
    witnesses: list[VerifierKey] = []
    for text in vkeys:
        try:
            key = VerifierKey.parse(text.strip(), KEY_TYPE_COSIGNATURE_V1)
        except Failed as e:
            raise Unusable(f"--witness {text}: {e}") from e
        if key in witnesses:
            continue
        # One key under two names would count one witness twice (a policy file refuses it too).
        if any(w.public_key == key.public_key for w in witnesses):
            raise Unusable(f"--witness {text}: the same public key is given under another name; a witness counts once")
        witnesses.append(key)
    quorum = len(witnesses) if quorum is None else quorum
    if not 1 <= quorum <= len(witnesses):
        raise Unusable(f"--quorum {quorum}: must be between 1 and the {len(witnesses)} distinct witness key(s) given")
    return WitnessPolicy(tuple(witnesses), quorum)


# --- Trust policy files (C2SP tlog-policy) --------------------------------------------------------


POLICY_ITEMS_MAX = 256  # logs, witnesses and groups together (the spec recommends at least 32 each)
POLICY_BYTES_MAX = 1024 * 1024
POLICY_THRESHOLD = re.compile(r"[1-9][0-9]*")


class PolicyError(Unusable):
    """A policy file that breaks the tlog-policy rules, with the 1-based line that does (the last
    line, 0 for an empty file, when the quorum line is missing)."""

    def __init__(self, line: int, problem: str):
        super().__init__(f"policy line {line}: {problem}")
        self.line = line
        self.problem = problem


@dataclass(frozen=True)
class PolicyFile:
    """--policy FILE, a C2SP tlog-policy: the logs' checkpoint keys are trusted, and the checkpoint
    must be cosigned by the witnesses as the quorum says. A member of a group, and the quorum, is
    (is_group, index) into `groups` or `witnesses`; the quorum is None for `quorum none`."""

    logs: tuple[VerifierKey, ...]
    witnesses: tuple[VerifierKey, ...]
    groups: tuple[tuple[int, tuple[tuple[bool, int], ...]], ...]  # (threshold k, members)
    quorum: tuple[bool, int] | None

    def satisfied(self, cosigned: Iterable[VerifierKey]) -> bool:
        """Whether the witnesses with a valid cosignature satisfy the quorum. A group only names
        earlier definitions, so one pass in order settles every group."""
        if self.quorum is None:
            return True
        cosigned = set(cosigned)
        witnessed = [w in cosigned for w in self.witnesses]
        groups: list[bool] = []
        for threshold, members in self.groups:
            count = sum(1 for is_group, i in members if (groups if is_group else witnessed)[i])
            groups.append(count >= threshold)
        is_group, i = self.quorum
        return (groups if is_group else witnessed)[i]

    def requirement(self, met: bool) -> str:
        return "the policy file's quorum is " + ("met" if met else "not met")

    def witnessed_time(self, timestamps: list[int]) -> int | None:
        """Which witnesses had seen the tree when depends on the groups: by the latest of the
        cosignatures counted, all of them had."""
        return max(timestamps, default=None)


def parse_policy(text: str) -> PolicyFile:
    """A C2SP tlog-policy file (c2sp.org/tlog-policy):

        log <vkey> [<url>]
        witness <name> <vkey> [<url>]
        group <name> all|any|<k> <name>...
        quorum <name>|none

    Lines end in LF (the last one may lack it); items are separated by spaces and tabs only; empty
    lines and lines whose first item starts with `#` are ignored; no control character but tab.
    Log keys are Ed25519 checkpoint keys (type 0x01), witness keys Ed25519 cosignature/v1 keys
    (type 0x04); no two keys wrap the same public key. Witnesses and groups share one namespace, in
    which `none` is reserved; a group or the quorum names only what earlier lines defined, a group
    lists a name at most once, and its threshold k is decimal without leading zeros, 1 <= k <= n.
    Exactly one quorum line. Names are compared as exact strings (no Unicode folding).
    Raises PolicyError naming the first line that breaks a rule."""
    logs: list[VerifierKey] = []
    witnesses: list[VerifierKey] = []
    groups: list[tuple[int, tuple[tuple[bool, int], ...]]] = []
    names: dict[str, tuple[bool, int]] = {}
    # "Each defined name can be listed as a group member at most once" (in all groups together),
    # so that a witness contributes to the quorum in one way only.
    listed: set[tuple[bool, int]] = set()
    quorum: list[tuple[bool, int] | None] = []
    keys_seen: set[bytes] = set()
    body = text[:-1] if text.endswith("\n") else text
    lines = body.split("\n") if text else []
    for n, raw in enumerate(lines, start=1):
        bad = next((c for c in raw if (c < " " and c != "\t") or c == "\x7f"), None)
        if bad is not None:
            raise PolicyError(n, f"control character 0x{ord(bad):02x}")
        # Spaces and tabs only: str.split() would also split on other (Unicode) white space, and
        # the spec's names are opaque octets.
        items = [item for item in re.split(r"[ \t]", raw) if item]
        if not items or items[0].startswith("#"):
            continue
        keyword = items[0]
        if keyword in ("log", "witness", "group") and len(logs) + len(witnesses) + len(groups) >= POLICY_ITEMS_MAX:
            raise PolicyError(n, f"more than {POLICY_ITEMS_MAX} definitions")

        def key(text: str, kind: int, what: str) -> VerifierKey:
            try:
                k = VerifierKey.parse(text, kind)
            except Failed as e:
                raise PolicyError(n, f"{what} key: {e}") from e
            if k.public_key in keys_seen:
                raise PolicyError(n, "a duplicate key")
            keys_seen.add(k.public_key)
            return k

        def new_name(name: str):
            if name == "none" or name in names:
                raise PolicyError(n, f"the name {name!r} is taken")

        if keyword == "log":
            if len(items) not in (2, 3):
                raise PolicyError(n, "a log line is `log <vkey> [<url>]`")
            logs.append(key(items[1], KEY_TYPE_ED25519, "log"))
        elif keyword == "witness":
            if len(items) not in (3, 4):
                raise PolicyError(n, "a witness line is `witness <name> <vkey> [<url>]`")
            new_name(items[1])
            witness = key(items[2], KEY_TYPE_COSIGNATURE_V1, "witness")
            names[items[1]] = (False, len(witnesses))
            witnesses.append(witness)
        elif keyword == "group":
            if len(items) < 4:
                raise PolicyError(n, "a group line is `group <name> all|any|<k> <name>...`")
            new_name(items[1])
            members: list[tuple[bool, int]] = []
            for member in items[3:]:
                if member not in names:
                    raise PolicyError(n, f"{member!r} is not defined above")
                if names[member] in members or names[member] in listed:
                    raise PolicyError(n, f"{member!r} is listed twice")
                members.append(names[member])
            listed.update(members)
            if items[2] == "all":
                threshold = len(members)
            elif items[2] == "any":
                threshold = 1
            elif not POLICY_THRESHOLD.fullmatch(items[2]) or int(items[2]) > U64_MAX:
                raise PolicyError(n, f"threshold {items[2]!r} is not all, any or a decimal")
            elif int(items[2]) > len(members):
                raise PolicyError(n, f"threshold {items[2]} is not between 1 and {len(members)}")
            else:
                threshold = int(items[2])
            names[items[1]] = (True, len(groups))
            groups.append((threshold, tuple(members)))
        elif keyword == "quorum":
            if len(items) != 2:
                raise PolicyError(n, "a quorum line is `quorum <name>`")
            if quorum:
                raise PolicyError(n, "a second quorum line")
            if items[1] != "none" and items[1] not in names:
                raise PolicyError(n, f"{items[1]!r} is not defined above")
            quorum.append(None if items[1] == "none" else names[items[1]])
        else:
            raise PolicyError(n, f"unknown keyword {keyword!r}")
    if not quorum:
        raise PolicyError(len(lines), "no quorum line")
    return PolicyFile(tuple(logs), tuple(witnesses), tuple(groups), quorum[0])


def read_policy(path: str) -> PolicyFile:
    """The policy file at `path` (a file: `-` is not standard input, as for `auditex verify`). It
    is trust, not evidence: a file that cannot be read, is not UTF-8 or breaks a rule makes the
    command unusable (exit 2)."""
    with open(path, "rb") as f:
        data = f.read(POLICY_BYTES_MAX + 1)
    if len(data) > POLICY_BYTES_MAX:
        raise Unusable(f"{path}: larger than {POLICY_BYTES_MAX} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Unusable(f"{path}: not UTF-8 text") from None
    try:
        return parse_policy(text)
    except PolicyError as e:
        raise Unusable(f"{path}: {e}") from e


def cosigned_message(timestamp: int, text: str) -> bytes:
    """What an Ed25519 cosignature signs: `cosignature/v1`, the time line, the checkpoint's note
    text (its signature lines left out)."""
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


def verify_cosignatures(checkpoint: Checkpoint, witnesses: tuple[VerifierKey, ...] | list[VerifierKey]) -> list[Cosignature]:
    """The valid cosignatures on the checkpoint by the trusted witnesses, at most one per witness
    key (the earliest if a key cosigned twice), in the order of their lines. A line of a trusted
    witness's name and key id that is not 76 bytes, has a timestamp of 0 or beyond 2^63 - 1, or
    does not verify is not counted; lines of other keys are ignored."""
    found: dict[VerifierKey, int] = {}
    for name, blob in checkpoint.signatures:
        for witness in witnesses:
            if witness.name != name or blob[:4] != witness.key_id or len(blob) != COSIGNATURE_BYTES:
                continue
            timestamp = int.from_bytes(blob[4:12], "big")
            if not 1 <= timestamp <= COSIGNATURE_TIMESTAMP_MAX:
                continue
            if ed25519_verify(witness.public_key, blob[12:], cosigned_message(timestamp, checkpoint.text)):
                found[witness] = min(found.get(witness, timestamp), timestamp)
    return [Cosignature(w, t) for w, t in found.items()]


def rfc3339(seconds: int) -> str:
    try:
        return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat()
    except (OverflowError, ValueError, OSError):
        return f"{seconds} s since the epoch"


def check_witnessed(cosigned: list[Cosignature], policy: WitnessPolicy | PolicyFile, captured_us: int | None) -> str:
    """The witness policy (--witness/--quorum, or a --policy file) on the valid cosignatures of the
    evidence's checkpoint: they must satisfy its quorum, and none may be made before the latest
    capture time (µs) of the records the evidence proves (a witness cannot have seen a tree before
    its records were captured). Returns what is proven: the tree existed no later than its
    witnessed time — with --quorum N the N-th earliest cosignature, under a policy file the latest
    one counted — when there is one."""
    names = ", ".join(c.witness.name for c in cosigned) or "none"
    if not policy.satisfied(c.witness for c in cosigned):
        missing = ", ".join(w.name for w in policy.witnesses if w not in {c.witness for c in cosigned}) or "none"
        raise Failed(
            f"witness quorum not met: the checkpoint carries valid cosignatures of {len(cosigned)} of the "
            f"{len(policy.witnesses)} trusted witnesses ({names}), {policy.requirement(False)}; "
            f"no valid cosignature of {missing}"
        )
    if captured_us is not None:
        for c in cosigned:
            if (c.timestamp + 1) * 1_000_000 <= captured_us:
                raise Failed(
                    f"signed time before capture: witness {c.witness.name} cosigned the checkpoint at "
                    f"{rfc3339(c.timestamp)} ({c.timestamp} s), before the latest capture time of its records "
                    f"({captured_us} µs since the epoch): the capture times or the witness's clock are wrong"
                )
    by = policy.witnessed_time([c.timestamp for c in cosigned])
    return (
        f"the checkpoint is cosigned by {len(cosigned)} of the trusted witnesses ({names}; {policy.requirement(True)})"
        + ("" if by is None else
           f": it existed, consistent with what each of them had seen, no later than {rfc3339(by)} (witnessed time)")
        + (", and not before its records were captured" if captured_us is not None else "")
    )


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
    if not is_int(rec["v"]) or rec["v"] != 1:
        raise Failed(f"record {seq}: unsupported version {rec['v']}", seq, event_id)
    if not is_int(seq) or not 0 <= seq <= SAFE_INTEGER_MAX:
        raise Failed(f"record {seq}: malformed seq", seq, event_id)
    if not isinstance(event_id, str) or not UUID7.fullmatch(event_id):
        raise Failed(f"record {seq}: event_id is not a lowercase UUIDv7", seq, event_id)
    if not isinstance(rec["tenant"], str) or not TENANT.fullmatch(rec["tenant"]):
        raise Failed(f"record {seq}: malformed tenant", seq, event_id)
    if tenant is not None and rec["tenant"] != tenant:
        raise Failed(f"record {seq} belongs to tenant {rec['tenant']}, not {tenant}", seq, event_id)
    t = rec["captured_at_us"]
    if not is_int(t) or not 0 <= t <= SAFE_INTEGER_MAX:
        raise Failed(f"record {seq}: malformed captured_at_us", seq, event_id)
    if not isinstance(rec["payload"], dict) or not isinstance(rec["erasable"], dict):
        raise Failed(f"record {seq}: payload and erasable must be objects", seq, event_id)
    for name, commitment in rec["erasable"].items():
        if not isinstance(commitment, str) or not HEX64.fullmatch(commitment):
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
        # A payload number is compared by value, as RFC 8785 hashes it (FORMAT.md section 1):
        # 5.0 is 5 there, and a boolean is no number.
        type(p.get("effective_from_seq")) in (int, float)
        and p.get("effective_from_seq") == seq + 1
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
        if self.time is not None and is_int(t) and t < self.time:
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
    witnessing: WitnessPolicy | PolicyFile | None = None


@dataclass
class Verdict:
    """What verified evidence proves (one sentence each), the checkpoint it was judged against,
    and the latest capture time (µs) of the records it proves, None when it proves none."""

    proven: list[str]
    checkpoint: Checkpoint
    captured_us: int | None = None


def open_head(doc, trust: Trust) -> tuple[Checkpoint, list[KeyInterval]]:
    tenant, origin = doc.get("tenant"), doc.get("origin")
    if not isinstance(tenant, str) or not isinstance(origin, str) or not origin.endswith("/" + tenant) or origin == "/" + tenant:
        raise Failed(f"origin {origin!r} is not the log of tenant {tenant!r}")
    if not isinstance(doc.get("checkpoint"), str):
        raise Failed("the checkpoint is not a string")
    checkpoint = open_checkpoint(doc["checkpoint"], trust.keys, origin)
    keys = parse_key_history(doc.get("keys"))
    check_checkpoint_interval(checkpoint, keys, origin)
    if not isinstance(doc.get("verifier_keys"), list):
        raise Failed("verifier_keys is not a list")
    for text in doc["verifier_keys"]:
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


def read_header(lines: Iterator[str], kind: str, title: str, fmt: str, members: set[str], section: str, at: str = ""):
    """The first line of JSON Lines evidence: JSON, of the format `fmt`, with exactly `members`."""
    try:
        header = parse_json(next(lines))
    except StopIteration:
        raise Failed(f"{at}the {kind} has no header line")
    except ValueError as e:
        raise Failed(f"{at}not {title}: the header is not JSON: {e}") from e
    if not isinstance(header, dict) or header.get("format") != fmt:
        raise Failed(f"{at}not {title} (no format {fmt} header)")
    if set(header) != members:
        raise Failed(f"{at}the {kind} header's members are not those of FORMAT.md section {section}")
    return header


def verify_export(lines: Iterator[str], trust: Trust) -> Verdict:
    allowed = {"format", "tenant", "origin", "from_seq", "checkpoint", "keys", "verifier_keys"}
    header = read_header(lines, "export", "an Auditex export", EXPORT_FORMAT, allowed, "12")
    checkpoint, keys = open_head(header, trust)
    from_seq = header["from_seq"]
    if not is_int(from_seq) or not 0 <= from_seq <= checkpoint.size:
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
        if isinstance(doc, dict) and is_int(doc.get("seq")) and doc["seq"] >= checkpoint.size:
            raise Failed(f"record {doc['seq']} is beyond the checkpoint's tree size {checkpoint.size}", doc["seq"])
        chain.push(doc)
    if trailer is None:
        raise Failed("the export ends without a trailer line (truncated?)")
    end = trailer.get("end")
    if set(trailer) != {"end"} or not isinstance(end, dict) or set(end) != {"records", "last_seq", "inclusion_proof"}:
        raise Failed("malformed trailer")
    last_seq = chain.next_seq - 1 if chain.count else None
    if (
        not is_int(end["records"]) or end["records"] != chain.count
        or not (end["last_seq"] is None or is_int(end["last_seq"])) or end["last_seq"] != last_seq
    ):
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
    # Capture times do not decrease along the chain: the last record's is the latest.
    return Verdict(proven, checkpoint, chain.time if chain.count else None)


# --- Bundle (section 11) -------------------------------------------------------------------------


FOLLOW_UP_TYPES = ("human_review", "override", "contest", "explanation_request")


def linked_decisions(rec) -> list[str]:
    """The decisions a record concerns (section 7): a follow-up's `decision_id`, a submission's
    `decision_ids`, nothing for any other type, even one whose payload carries such a member."""
    p = rec.get("payload", {})
    kind = rec.get("event_type")
    if kind in FOLLOW_UP_TYPES and isinstance(p.get("decision_id"), str):
        return [p["decision_id"]]
    if kind == "submission" and isinstance(p.get("decision_ids"), list):
        return [x for x in p["decision_ids"] if isinstance(x, str)]
    return []


class EntryChecker:
    """The checks every entry of a bundle (section 11) or of a subject access package (section 12b)
    passes: the record verifies and is the tenant's, comes after the previous entry, is proven in
    the checkpoint, its values match their commitments and its erased marks are well formed. An
    entry that an earlier entry names as the erasure of a field must be an erasure covering it;
    every other entry passes the caller's `role` check (what makes it belong in the evidence)."""

    def __init__(self, tenant: str, keys: list[KeyInterval], checkpoint: Checkpoint):
        self.tenant, self.keys, self.checkpoint = tenant, keys, checkpoint
        self.previous = None
        # Erasure seqs named by earlier entries -> [(seq, event_id, field)]: an erasure comes
        # after what it erases, so it is checked when its own entry is reached.
        self.named: dict[int, list[tuple[int, str, str, str | None]]] = {}
        # The subject the evidence concerns: the subject_ref of its first record naming one.
        self.subject: str | None = None
        # The latest capture time (µs) of the records checked so far.
        self.captured_us: int | None = None

    def check(self, entry, what: str, role) -> tuple[str, int, int, int]:
        """Checks one entry; returns the sentence it proves and how many values matched, how
        many fields were withheld and how many marked erased."""
        if not isinstance(entry, dict) or not {"record", "inclusion_proof"} <= set(entry) <= {"record", "inclusion_proof", "erasable_values", "erased"}:
            raise Failed(f"{what} is malformed")
        rec = entry["record"]
        seq, event_id, h = check_record(rec, self.keys, self.tenant)
        if self.previous is not None and seq <= self.previous:
            raise Failed(f"record {seq} follows record {self.previous}: entries must increase", seq, event_id)
        self.previous = seq
        self.captured_us = max(self.captured_us or 0, rec["captured_at_us"])
        checkpoint = self.checkpoint
        proof = [unhex(x, 32, "inclusion proof hash") for x in entry["inclusion_proof"]]
        if not verify_inclusion(leaf_hash(h), seq, checkpoint.size, proof, checkpoint.root):
            raise Failed(f"record {seq} (event {event_id}) is not proven to be in the tree of size {checkpoint.size}", seq, event_id)
        named_here = self.named.pop(seq, None)
        if named_here:
            check_named_erasure(rec, named_here)
        else:
            role(rec, seq, event_id)
        values = entry.get("erasable_values") or {}
        for field, v in values.items():
            commitment = rec["erasable"].get(field)
            if commitment is None:
                raise Failed(f"record {seq}: erasable value {field} has no commitment", seq, event_id)
            salt = unhex(v.get("salt"), 32, f"record {seq} salt of {field}")
            if sha256(ERASABLE_DOMAIN, b"\x00", salt, jcs(v.get("value"))).hex() != commitment:
                raise Failed(f"record {seq}: erasable value {field} does not match its commitment", seq, event_id)
        erased = check_erased(entry, rec, values)
        own = rec["payload"].get("subject_ref")
        own = own if isinstance(own, str) else None
        if self.subject is None:
            self.subject = own
        subject = own if own is not None else self.subject
        for field, erasure_seq in erased.items():
            self.named.setdefault(erasure_seq, []).append((seq, event_id, field, subject))
        by = ", ".join(f"{field} by seq {erasure_seq}" for field, erasure_seq in erased.items())
        withheld = len(rec["erasable"]) - len(values) - len(erased)
        proven = (
            f"record {seq} ({rec['event_type']} {event_id}) in the checkpoint of size {checkpoint.size}; "
            f"{len(values)} erasable value(s) matched, {withheld} absent (withheld), "
            f"{len(erased)} erased" + (f" ({by})" if by else "")
        )
        return proven, len(values), withheld, len(erased)


def verify_bundle(doc, trust: Trust) -> Verdict:
    if not isinstance(doc, dict) or doc.get("format") != BUNDLE_FORMAT:
        raise Failed("not a custody bundle (no format auditex-custody-bundle/v1)")
    allowed = {"format", "tenant", "origin", "decision_event_id", "checkpoint", "keys", "verifier_keys", "entries"}
    if set(doc) != allowed:
        raise Failed("the bundle's members are not those of FORMAT.md section 11")
    checkpoint, keys = open_head(doc, trust)
    entries = doc["entries"]
    if not isinstance(entries, list) or not entries:
        raise Failed("the bundle has no entries")
    decision, proven = doc["decision_event_id"], []
    checker = EntryChecker(doc["tenant"], keys, checkpoint)
    for i, entry in enumerate(entries):
        def role(rec, seq, event_id, i=i):
            if i == 0:
                if rec["event_type"] != "decision" or event_id != decision:
                    raise Failed(f"the first entry, record {seq}, is not the decision {decision}", seq, event_id)
            elif decision not in linked_decisions(rec):
                raise Failed(f"record {seq} (event {event_id}) does not link to decision {decision}", seq, event_id)
        proven.append(checker.check(entry, f"entry {i}", role)[0])
    return Verdict(proven, checkpoint, checker.captured_us)


# --- Subject access package (section 12b) --------------------------------------------------------


def verify_package(lines: Iterator[str], trust: Trust) -> Verdict:
    allowed = {"format", "tenant", "origin", "subject_ref", "checkpoint", "keys", "verifier_keys"}
    header = read_header(lines, "package", "an Auditex subject access package", PACKAGE_FORMAT, allowed, "12b", "line 1: ")
    subject = header["subject_ref"]
    if not isinstance(subject, str) or not 1 <= len(subject.encode("utf-8")) <= 1024:
        raise Failed("line 1: the header's subject_ref must be 1 to 1024 bytes")
    checkpoint, keys = open_head(header, trust)
    checker = EntryChecker(header["tenant"], keys, checkpoint)
    decisions: set[str] = set()
    count = matched = withheld = erased = 0
    trailer = None
    for n, line in enumerate(lines, start=2):
        if trailer is not None:
            raise Failed(f"line {n}: a line follows the trailer")
        try:
            doc = parse_json(line)
        except ValueError as e:
            raise Failed(f"line {n}: malformed JSON: {e}") from e
        if isinstance(doc, dict) and "end" in doc:
            end = doc["end"]
            if set(doc) != {"end"} or not isinstance(end, dict) or set(end) != {"records"} or not is_int(end["records"]):
                raise Failed(f"line {n}: malformed trailer (exactly {{\"end\":{{\"records\":N}}}})")
            if end["records"] != count:
                raise Failed(f"line {n}: the trailer counts {end['records']} records, but the package holds {count}")
            trailer = doc
            continue

        def role(rec, seq, event_id):
            payload = rec["payload"]
            if payload.get("subject_ref") == subject:
                if rec["event_type"] == "decision":
                    decisions.add(event_id)
                return
            if rec["event_type"] != "decision" and any(d in decisions for d in linked_decisions(rec)):
                return
            raise Failed(
                f"record {seq} (event {event_id}, {rec['event_type']}) does not concern subject {subject!r}",
                seq, event_id,
            )

        try:
            rec = doc.get("record") if isinstance(doc, dict) else None
            if isinstance(rec, dict) and rec.get("event_type") == "erasure" and isinstance(rec.get("payload"), dict):
                # An erasure an earlier entry names passes as that erasure, not through `role`:
                # in a package it must still be one of the subject's, which is the first thing
                # said of one that is not.
                role(rec, rec.get("seq"), rec.get("event_id"))
            _, m, w, e = checker.check(doc, "the entry", role)
        except Failed as f:
            raise Failed(f"line {n}: {f}", f.seq, f.event_id) from f
        count, matched, withheld, erased = count + 1, matched + m, withheld + w, erased + e
    if trailer is None:
        raise Failed("the package ends without its trailer line: it is incomplete")
    return Verdict([
        f"{count} record(s) concerning subject {subject!r} ({len(decisions)} decision(s)) in the checkpoint of size {checkpoint.size}",
        f"erasable values: {matched} matched their commitments, {withheld} withheld, {erased} erased",
    ], checkpoint, checker.captured_us)


def check_erased(entry, rec, values) -> dict[str, int]:
    """The fields an entry marks erased (section 11), by name, each with its erasure's seq."""
    seq, event_id = rec["seq"], rec["event_id"]
    erased = entry.get("erased")
    if erased is None:
        erased = {}
    if not isinstance(erased, dict):
        raise Failed(f"record {seq}: erased is not an object", seq, event_id)
    out = {}
    # In name order, as `auditex verify` checks them, so both name the same field first.
    for field, mark in sorted(erased.items()):
        if not isinstance(mark, dict) or set(mark) != {"erasure_seq"}:
            raise Failed(f"record {seq}: erased field {field} is malformed (exactly erasure_seq)", seq, event_id)
        erasure_seq = mark["erasure_seq"]
        if not is_int(erasure_seq) or not 0 <= erasure_seq <= SAFE_INTEGER_MAX:
            raise Failed(f"record {seq}: erased field {field} has a malformed erasure_seq", seq, event_id)
        if field not in rec["erasable"]:
            raise Failed(f"record {seq}: erased field {field} has no commitment in the record", seq, event_id)
        if field in values:
            raise Failed(f"record {seq}: field {field} is both given a value and marked erased", seq, event_id)
        if erasure_seq <= seq:
            raise Failed(
                f"record {seq}: field {field} is marked erased by record {erasure_seq}, which does not come after it",
                seq, event_id,
            )
        out[field] = erasure_seq
    return out


def check_named_erasure(rec, named: list[tuple[int, str, str, str | None]]):
    """A record that earlier entries name as the erasure of their fields must be an `erasure`
    of their subject (when it names no records) whose `event_ids` and `fields`, where given,
    include each of them (section 11)."""
    erasure_seq, erasure_id = rec["seq"], rec["event_id"]
    for seq, event_id, field, subject in named:
        what = f"record {erasure_seq} (event {erasure_id}) is named as the erasure of field {field} of record {seq}, but"
        if rec["event_type"] != "erasure":
            raise Failed(f"{what} is a {rec['event_type']} event", erasure_seq, erasure_id)
        if not isinstance(rec["payload"].get("event_ids"), list) and rec["payload"].get("subject_ref") != subject:
            raise Failed(f"{what} its subject_ref do not include it", erasure_seq, erasure_id)
        for member, wanted in (("event_ids", event_id), ("fields", field)):
            listed = rec["payload"].get(member)
            if isinstance(listed, list) and wanted not in listed:
                raise Failed(f"{what} its {member} do not include it", erasure_seq, erasure_id)


# --- tlog-proof file (section 10) ----------------------------------------------------------------


def verify_proof(text: str, trust: Trust) -> Verdict:
    if not text.startswith(TLOG_PROOF_HEADER + "\n"):
        raise Failed("not a C2SP tlog-proof file (no c2sp.org/tlog-proof@v1 header line)")
    rest = text[len(TLOG_PROOF_HEADER) + 1 :]
    if not rest.startswith("extra "):
        raise Failed("the proof file carries no record in its extra line")
    extra, rest = rest[len("extra ") :].split("\n", 1)
    if not rest.startswith("index "):
        raise Failed("the proof file has no index line")
    index_text, rest = rest[len("index ") :].split("\n", 1)
    if not re.fullmatch(r"0|[1-9][0-9]*", index_text) or int(index_text) > U64_MAX:
        raise Failed("malformed index")
    proof = []
    while True:
        line, rest = rest.split("\n", 1)
        if line == "":
            break
        h = b64decode_canonical(line, "a proof hash")
        if len(h) != 32 or len(proof) == 64:
            raise Failed("a proof hash is not 32 bytes")
        proof.append(h)
    note = rest
    try:
        rec = parse_json(b64decode_canonical(extra, "the extra data"))
    except ValueError as e:
        raise Failed(f"the extra data is not a record: {e}") from e
    origin = note.split("\n", 1)[0]
    tenant = rec.get("tenant") if isinstance(rec, dict) else None
    if not isinstance(tenant, str) or not origin.endswith("/" + tenant):
        raise Failed(f"origin {origin!r} is not the log of the record's tenant")
    checkpoint = open_checkpoint(note, trust.keys, origin)
    keys = trusted_intervals(trust, origin)
    # FORMAT.md section 9: a checkpoint signed outside its key's interval is rejected.
    check_checkpoint_interval(checkpoint, keys, origin)
    seq, event_id, h = check_record(rec, keys)
    if int(index_text) != seq:
        raise Failed(f"the proof is for leaf {index_text}, but the record is number {seq}", seq, event_id)
    if not verify_inclusion(leaf_hash(h), seq, checkpoint.size, proof, checkpoint.root):
        raise Failed(f"record {seq} (event {event_id}) is not proven to be in the tree of size {checkpoint.size}", seq, event_id)
    return Verdict(
        [f"record {seq} ({rec['event_type']} {event_id}) is leaf {seq} of the checkpoint of size {checkpoint.size}"],
        checkpoint, rec["captured_at_us"],
    )


# --- Two checkpoints of one log (sections 8, 9, 13 item 8) ---------------------------------------


def trusted_intervals(trust: Trust, origin: str) -> list[KeyInterval]:
    """Where a verifier of a tlog-proof file or of two checkpoints gets key intervals (FORMAT.md
    section 5): the trusted key history of the origin; else a single trusted key of the origin,
    valid for every size; several keys without a history cannot be told apart in time."""
    if trust.history and trust.history[0] == origin:
        return trust.history[1]
    named = [k for k in trust.keys if k.name == origin]
    if len(named) > 1:
        raise Unusable(f"several trusted keys are named {origin!r}: pass --key-history so that key validity intervals can be checked")
    return [KeyInterval(key_id_of(k.public_key), k.public_key, 0, None) for k in named]


def checkpoint_note_of(path: str) -> str:
    """The signed checkpoint in a file: a bare note, or the one inside an export, bundle or proof.
    A file that was read but holds no checkpoint fails verification (exit 1)."""
    text = read_text(path)
    if text.startswith(TLOG_PROOF_HEADER + "\n"):
        if "\n\n" not in text:
            raise Failed(f"{path}: the tlog-proof file holds no checkpoint")
        return text.split("\n\n", 1)[1]
    if text.startswith("{"):
        first = text.split("\n", 1)[0]
        try:
            doc = parse_json(first)
        except ValueError:
            doc = None
        if not (isinstance(doc, dict) and doc.get("format") == EXPORT_FORMAT):
            try:
                doc = parse_json(text)
            except ValueError as e:
                raise Failed(f"{path}: neither a checkpoint nor an export, bundle or proof file: {e}") from e
        if not isinstance(doc, dict) or doc.get("format") not in (EXPORT_FORMAT, BUNDLE_FORMAT):
            raise Failed(f"{path}: JSON, but not an Auditex export or bundle")
        if not isinstance(doc.get("checkpoint"), str):
            raise Failed(f"{path}: the {doc['format']} holds no checkpoint")
        return doc["checkpoint"]
    if "\n\n" not in text or not text.endswith("\n"):
        raise Failed(f"{path}: not a signed checkpoint, export, bundle or proof file")
    return text


def read_consistency_proof(path: str, older: Checkpoint, newer: Checkpoint, trust: Trust) -> list[bytes]:
    """The consistency-proof file (FORMAT.md section 9): one JSON object of exactly format, from,
    to, proof, from_checkpoint and to_checkpoint, as GET /v1/proofs/consistency serves it and
    `auditex proof --old-size` writes it. It must speak of exactly the two checkpoints compared:
    from and to are their sizes, and each embedded checkpoint opens under the trusted keys to the
    same origin, size and root."""
    text = read_text(path, 4 * NOTE_BYTES_MAX + 64 * 70 + 1024)
    try:
        doc = parse_json(text)
    except ValueError as e:
        raise Failed(f"{path}: not a consistency-proof file: {e}") from e
    members = {"format", "from", "to", "proof", "from_checkpoint", "to_checkpoint"}
    if not isinstance(doc, dict) or set(doc) != members or doc["format"] != CONSISTENCY_PROOF_FORMAT:
        raise Failed(f"{path}: not a consistency-proof file ({CONSISTENCY_PROOF_FORMAT}, exactly {sorted(members)})")
    for member, c in (("from", older), ("to", newer)):
        if not is_int(doc[member]) or not 0 <= doc[member] <= U64_MAX or doc[member] != c.size:
            raise Failed(f"{path}: {member} is {doc[member]!r}, but the checkpoint it stands for has size {c.size}")
    hashes = doc["proof"]
    if not isinstance(hashes, list) or len(hashes) > 64 or not all(isinstance(h, str) and HEX64.fullmatch(h) for h in hashes):
        raise Failed(f"{path}: proof is not a list of at most 64 hashes in lower-case hex")
    for member, c in (("from_checkpoint", older), ("to_checkpoint", newer)):
        if not isinstance(doc[member], str):
            raise Failed(f"{path}: {member} is not a signed checkpoint")
        embedded = open_checkpoint(doc[member], trust.keys, c.origin)
        if (embedded.origin, embedded.size, embedded.root) != (c.origin, c.size, c.root):
            raise Failed(f"{path}: {member} is not the checkpoint being compared (origin, size and root must be equal)")
    return [bytes.fromhex(h) for h in hashes]


def verify_checkpoint_consistency(old_path: str, new_path: str, proof_path: str | None, trust: Trust) -> Verdict:
    """The newer checkpoint extends the older one: same origin, no smaller tree (a rollback), no
    other root at the same size (a fork), and for a larger tree an RFC 9162 consistency proof.
    Each checkpoint must be signed by a key current at its size (FORMAT.md section 9). The newer
    checkpoint is the one a witness policy judges; no record is proven."""
    older = open_saved_checkpoint("old", old_path, trust)
    newer = open_saved_checkpoint("new", new_path, trust)
    needs_proof = older.origin == newer.origin and newer.size > older.size and older.size > 0
    if needs_proof and proof_path is None:
        raise Unusable(
            f"a consistency proof is needed from size {older.size} to {newer.size}: pass --proof FILE "
            f"(from `auditex proof --tenant T --old-size {older.size}` or GET /v1/proofs/consistency)"
        )
    # A proof given where none is needed is checked all the same: nothing supplied goes unchecked.
    return Verdict(check_extends(
        older, newer, lambda: read_consistency_proof(proof_path, older, newer, trust) if proof_path is not None else []
    ), newer)


def open_saved_checkpoint(label: str, path: str, trust: Trust) -> Checkpoint:
    """A checkpoint from a file (a bare note, or the one an export, bundle or proof file holds),
    signed by a trusted key current at its size (FORMAT.md section 9)."""
    note = checkpoint_note_of(path)
    try:
        c = open_checkpoint(note, trust.keys)
        check_checkpoint_interval(c, trusted_intervals(trust, c.origin), c.origin)
    except Failed as e:
        raise Failed(f"the {label} checkpoint ({path}): {e}") from e
    return c


def check_extends(older: Checkpoint, newer: Checkpoint, proof_of) -> list[str]:
    """The newer checkpoint extends the older: the same log, no smaller tree, no other root at the
    same size, and the consistency proof `proof_of()` gives (asked for only once those hold)."""
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
    verify_consistency(older.size, newer.size, proof_of(), older.root, newer.root)
    return [
        f"the checkpoint of size {newer.size} (root {newer.root.hex()}) extends the one of size {older.size} "
        f"(root {older.root.hex()}) of {newer.origin}: nothing in the older tree was changed"
    ]


# --- A tiled log over HTTP(S) (C2SP tlog-tiles) ------------------------------------------------------


TILE_HEIGHT = 8  # Merkle levels per tile
TILE_WIDTH = 1 << TILE_HEIGHT  # hashes in a full tile, entries in a full bundle
HASH_BYTES = 32
ENTRY_BYTES_MAX = 0xFFFF  # what a uint16 length prefix can say
ENTRY_HASH_BYTES = 32  # an entry of an Auditex log is its record hash
SIGNATURE_LINES_MAX = 100  # the most signature lines a note may carry (ledger::note)
RECORD_LINE_BYTES_MAX = 4 * 1024 * 1024  # this verifier's bound on one record's line
HTTP_TIMEOUT_S = 60
API_KEY_VARIABLE = "AUDITEX_API_KEY"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is answered as the HTTP error it is: following one would send the API key to
    wherever it points."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def tile_index_path(index: int, width: int) -> str:
    """`<N>[.p/<W>]` (tlog-tiles): the index in zero-padded groups of three digits, every group but
    the last prefixed with `x` (1234067 is `x001/x234/067`), and `.p/<W>` for a partial width."""
    groups = []
    while True:
        index, group = divmod(index, 1000)
        groups.append(f"{group:03d}")
        if index == 0:
            break
    groups.reverse()
    path = "/".join([f"x{g}" for g in groups[:-1]] + [groups[-1]])
    return path if width == TILE_WIDTH else f"{path}.p/{width}"


class TileFetcher:
    """GETs the resources under a log prefix URL. Network trouble and HTTP error statuses make the
    command unusable (exit 2, with the status); a 404 for a resource the verified checkpoint says
    must exist is a failed verification (exit 1). The API key goes only into the Authorization
    header of requests to the prefix's own host, never into a message."""

    def __init__(self, url: str, api_key: str | None, cafile: str | None):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Unusable(f"the log URL {url!r} is not an http or https URL")
        if parts.username is not None or parts.password is not None:
            raise Unusable(f"the log URL must not hold credentials: the API key is read from {API_KEY_VARIABLE}")
        if parts.query or parts.fragment:
            raise Unusable("the log URL is a prefix: no query and no fragment")
        if api_key is not None and any(not 0x21 <= ord(c) <= 0x7E for c in api_key):
            raise Unusable(f"{API_KEY_VARIABLE} is not an API key (printable ASCII without spaces)")
        if api_key is not None and parts.scheme == "http" and not self._loopback(parts.hostname):
            raise Unusable(f"refusing to send the API key over plain http to {parts.hostname}: use https")
        self.prefix = url if url.endswith("/") else url + "/"
        self.api_key = api_key
        handlers: list = [_NoRedirect()]
        if parts.scheme == "https":
            try:
                context = ssl.create_default_context(cafile=cafile)
            except (OSError, ssl.SSLError) as e:
                raise Unusable(f"cannot load the CA certificates {cafile}: {e}") from e
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self.opener = urllib.request.build_opener(*handlers)
        self.requests = 0
        self.bytes = 0

    @staticmethod
    def _loopback(host: str) -> bool:
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def get(self, path: str, limit: int, must_exist: str | None = None) -> bytes:
        """The body of `prefix + path`, at most `limit` bytes once decoded. `must_exist` says why
        the resource must exist, which makes a 404 a failure rather than an error."""
        url = self.prefix + path
        request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip, identity", "User-Agent": "auditex-verify-python"})
        if self.api_key is not None:
            request.add_unredirected_header("Authorization", f"Bearer {self.api_key}")
        self.requests += 1
        try:
            with self.opener.open(request, timeout=HTTP_TIMEOUT_S) as response:
                encoding = (response.headers.get("Content-Encoding") or "identity").strip().lower()
                # gzip adds at most a few bytes per 16 KiB block to what does not compress.
                raw = response.read(limit + limit // 256 + 1024)
        except urllib.error.HTTPError as e:
            e.close()
            if e.code == 404 and must_exist is not None:
                raise Failed(f"GET {url}: 404 Not Found, but {must_exist}") from None
            hint = f" (a private log needs {API_KEY_VARIABLE}: a read or verify key of the tenant)" if e.code == 401 else ""
            raise Unusable(f"GET {url}: HTTP {e.code} {e.reason}{hint}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            reason = e.reason if isinstance(e, urllib.error.URLError) else e
            raise Unusable(f"GET {url}: {reason}") from None
        self.bytes += len(raw)
        if encoding == "gzip":
            inflate = zlib.decompressobj(wbits=31)
            try:
                body = inflate.decompress(raw, limit + 1)
            except zlib.error as e:
                raise Failed(f"GET {url}: the gzip body does not decode: {e}") from None
            if len(body) <= limit and not inflate.eof:
                raise Failed(f"GET {url}: the gzip body is truncated")
        elif encoding == "identity":
            body = raw
        else:
            raise Unusable(f"GET {url}: unrequested Content-Encoding {encoding!r}")
        if len(body) > limit:
            raise Failed(f"GET {url}: larger than the {limit} bytes it can be")
        return body


def parse_entry_bundle(body: bytes, width: int, what: str) -> list[bytes]:
    """An entry bundle (tlog-tiles): exactly `width` big-endian uint16 length-prefixed entries,
    nothing after the last."""
    entries, at = [], 0
    while at < len(body):
        if at + 2 > len(body):
            raise Failed(f"{what}: truncated at byte {at} (half a length prefix)")
        end = at + 2 + int.from_bytes(body[at : at + 2], "big")
        if end > len(body):
            raise Failed(f"{what}: truncated at byte {at} (the entry runs past the end)")
        entries.append(body[at + 2 : end])
        at = end
    if len(entries) != width:
        raise Failed(f"{what}: {len(entries)} entries, but the bundle asked for has {width}")
    return entries


def parse_records_bundle(body: bytes, first: int, width: int, what: str) -> list:
    """A records bundle: exactly `width` JSON Lines records, each line ending with \\n alone, the
    records of sequence numbers `first` .. `first + width - 1` in order. Only their places are
    checked here; what they hold is checked by the caller."""
    records = []
    try:
        for line in checked_lines(io.BytesIO(body), "records bundle"):
            seq = first + len(records)
            try:
                rec = parse_json(line)
            except ValueError as e:
                raise Failed(f"line {len(records) + 1}: malformed JSON: {e}", seq) from e
            if not isinstance(rec, dict) or not is_int(rec.get("seq")) or rec["seq"] != seq:
                found = rec.get("seq") if isinstance(rec, dict) else None
                raise Failed(f"line {len(records) + 1}: record {found} stands where record {seq} belongs", seq)
            records.append(rec)
    except Failed as e:
        raise Failed(f"{what}: {e}", e.seq, e.event_id) from e
    if len(records) != width:
        raise Failed(f"{what}: {len(records)} records, but the bundle asked for has {width}", first + len(records))
    return records


class TiledLog:
    """The Merkle tree of a checkpoint's size, read from tiles (tlog-tiles): the level-L tile N
    holds the hashes of the nodes at Merkle level 8L with indices N*256 .. N*256+255; a node at a
    level in between is the root of the perfect subtree over 2^(level mod 8) consecutive hashes of
    one tile. Every tile is fetched at the width it has at this size, so only tiles the checkpoint
    says exist are asked for."""

    def __init__(self, fetcher: TileFetcher, size: int):
        self.fetcher, self.size = fetcher, size
        self.tiles: dict[tuple[int, int], list[bytes]] = {}

    def width(self, level: int, index: int) -> int:
        """floor(size / 256^level) - index*256, at most 256: the tile's width at this size."""
        return min((self.size >> (TILE_HEIGHT * level)) - index * TILE_WIDTH, TILE_WIDTH)

    def must_exist(self, what: str) -> str:
        return f"the checkpoint of size {self.size} says {what} exists"

    def tile(self, level: int, index: int, keep: bool = True) -> list[bytes]:
        cached = self.tiles.get((level, index))
        if cached is not None:
            return cached
        width = self.width(level, index)
        if width <= 0:
            raise Failed(f"tile {level}/{index} is outside the tree of size {self.size}")
        path = f"tile/{level}/{tile_index_path(index, width)}"
        body = self.fetcher.get(path, width * HASH_BYTES, self.must_exist(path))
        if len(body) % HASH_BYTES:
            raise Failed(f"{path}: {len(body)} bytes is not a whole number of {HASH_BYTES}-byte hashes")
        if len(body) != width * HASH_BYTES:
            raise Failed(f"{path}: {len(body) // HASH_BYTES} hashes, but the tile asked for has {width}")
        hashes = [body[i : i + HASH_BYTES] for i in range(0, len(body), HASH_BYTES)]
        if keep:
            self.tiles[(level, index)] = hashes
        return hashes

    def node(self, level: int, index: int) -> bytes:
        """The hash of the perfect subtree at Merkle `level` with `index` (leaves index*2^level ..)."""
        tile_level, within = divmod(level, TILE_HEIGHT)
        first = index << within
        begin = first % TILE_WIDTH
        hashes = self.tile(tile_level, first // TILE_WIDTH)[begin : begin + (1 << within)]
        while len(hashes) > 1:
            hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
        return hashes[0]

    def subtree(self, lo: int, hi: int) -> bytes:
        """RFC 9162 MTH(D[lo:hi]) for a range the recursions below visit: split at the largest power
        of two below its size, so each perfect part starts at a multiple of its size."""
        n = hi - lo
        if n & (n - 1) == 0:
            level = n.bit_length() - 1
            return self.node(level, lo >> level)
        k = 1 << ((n - 1).bit_length() - 1)
        return node_hash(self.subtree(lo, lo + k), self.subtree(lo + k, hi))

    def root(self) -> bytes:
        return EMPTY_ROOT if self.size == 0 else self.subtree(0, self.size)

    def inclusion_proof(self, index: int) -> list[bytes]:
        """RFC 9162 section 2.1.3.1 PATH(index, D[0:size]), the leaf's sibling first."""

        def path(m: int, lo: int, hi: int) -> list[bytes]:
            n = hi - lo
            if n == 1:
                return []
            k = 1 << ((n - 1).bit_length() - 1)
            if m < k:
                return path(m, lo, lo + k) + [self.subtree(lo + k, hi)]
            return path(m - k, lo + k, hi) + [self.subtree(lo, lo + k)]

        return path(index, 0, self.size)

    def consistency_proof(self, old_size: int) -> list[bytes]:
        """RFC 9162 section 2.1.4.1 PROOF(old_size, D[0:size]); empty from the empty tree or to the
        same size."""

        def subproof(m: int, lo: int, hi: int, whole: bool) -> list[bytes]:
            n = hi - lo
            if m == n:
                return [] if whole else [self.subtree(lo, hi)]
            k = 1 << ((n - 1).bit_length() - 1)
            if m <= k:
                return subproof(m, lo, lo + k, whole) + [self.subtree(lo + k, hi)]
            return subproof(m - k, lo + k, hi, False) + [self.subtree(lo, lo + k)]

        if old_size == 0 or old_size >= self.size:
            return []
        return subproof(old_size, 0, self.size, True)

    def bundle(self, index: int, keep: bool = True) -> tuple[list[bytes], list]:
        """The entries and records at the positions of level-0 tile `index`, each entry checked
        against its leaf hash (RFC 6962: SHA-256(0x00 || entry)). The records are parsed, not yet
        checked."""
        width = self.width(0, index)
        leaves = self.tile(0, index, keep)
        suffix = tile_index_path(index, width)
        path = f"tile/entries/{suffix}"
        entries = parse_entry_bundle(
            self.fetcher.get(path, width * (2 + ENTRY_BYTES_MAX), self.must_exist(path)), width, path
        )
        # Auditex's entries are record hashes, as the Rust verifier requires of every entry.
        for entry in entries:
            if len(entry) != ENTRY_HASH_BYTES:
                raise Failed(f"{path}: an entry of {len(entry)} bytes, not a 32-byte record hash")
        for i, (entry, leaf) in enumerate(zip(entries, leaves)):
            if leaf_hash(entry) != leaf:
                seq = index * TILE_WIDTH + i
                raise Failed(f"{path}: entry {seq} does not hash to leaf {seq} of tile/0/{suffix}", seq)
        path = f"records/{suffix}"
        records = parse_records_bundle(
            self.fetcher.get(path, width * RECORD_LINE_BYTES_MAX, self.must_exist(path)), index * TILE_WIDTH, width, path
        )
        return entries, records


def check_signing_key_known(rec, keys: list[KeyInterval], trust: Trust, origin: str):
    """Without a trusted key history of the log a record can be checked only against the trusted
    key of its log; one signed by another key (before a rotation) says so, and what would check it."""
    has_history = trust.history is not None and trust.history[0] == origin
    if not has_history and rec.get("key_id") not in {k.key_id for k in keys}:
        raise Failed(
            f"record {rec.get('seq')} is signed by key {rec.get('key_id')}, not by the trusted key of the log: "
            "if the log's key was rotated, pass its key history (--key-history, as `auditex key history` prints it)",
            rec.get("seq"), rec.get("event_id"),
        )


def check_record_is_entry(record_hash: bytes, entry: bytes, rec, what: str):
    """The record's hash (FORMAT.md section 4, recomputed) is the entry at its position."""
    if record_hash != entry:
        seq, event_id = rec.get("seq"), rec.get("event_id")
        raise Failed(f"{what}: record {seq} (event {event_id}) hashes to {record_hash.hex()}, but the entry there is {entry.hex()}", seq, event_id)


def verify_tiles(url: str, trust: Trust, leaves: list[int], old_path: str | None, check_all: bool,
                 api_key: str | None, cafile: str | None) -> Verdict:
    """A tenant's log served as a C2SP tlog-tiles log: its checkpoint under the trusted keys, the
    checkpoint's root recomputed from tiles, and on request leaves proven from tiles and bundles,
    the consistency of a checkpoint saved earlier, or every entry and record of the tree."""
    fetcher = TileFetcher(url, api_key, cafile)
    # An unusable --old is found before anything is fetched.
    older = open_saved_checkpoint("old", old_path, trust) if old_path is not None else None
    try:
        note = fetcher.get("checkpoint", NOTE_BYTES_MAX).decode("utf-8")
    except UnicodeDecodeError as e:
        raise Failed("the checkpoint is not UTF-8 text") from e
    try:
        checkpoint = open_checkpoint(note, trust.keys)
        keys = trusted_intervals(trust, checkpoint.origin)
        check_checkpoint_interval(checkpoint, keys, checkpoint.origin)
    except Failed as e:
        raise Failed(f"the served checkpoint: {e}") from e
    origin, size = checkpoint.origin, checkpoint.size
    tenant = origin.rsplit("/", 1)[-1]
    log = TiledLog(fetcher, size)
    proven = [f"checkpoint of {origin}: size {size}, root {checkpoint.root.hex()}, signed by a trusted key"]

    root = log.root()
    if root != checkpoint.root:
        raise Failed(f"the tiles hash to root {root.hex()}, but the checkpoint of size {size} says {checkpoint.root.hex()}")
    proven.append(f"root recomputed from {len(log.tiles)} tile(s) = checkpoint root")

    # A leaf the checkpoint does not cover is a question the log cannot answer, not tampering.
    beyond = [seq for seq in leaves if seq >= size]
    if beyond:
        raise Unusable(f"--leaf {beyond[0]}: the checkpoint's tree has {size} records")
    bundles: dict[int, tuple[list[bytes], list]] = {}
    captured: int | None = None  # the latest capture time (µs) of the records read
    for seq in leaves:
        index, position = divmod(seq, TILE_WIDTH)
        proof = log.inclusion_proof(seq)
        if index not in bundles:
            bundles[index] = log.bundle(index)
        entries, records = bundles[index]
        rec = records[position]
        check_signing_key_known(rec, keys, trust, origin)
        _, _, record_hash = check_record(rec, keys, tenant)
        captured = max(captured or 0, rec["captured_at_us"])
        check_record_is_entry(record_hash, entries[position], rec, f"records/{tile_index_path(index, log.width(0, index))}")
        if not verify_inclusion(leaf_hash(record_hash), seq, size, proof, checkpoint.root):
            raise Failed(f"record {seq} is not proven to be in the tree of size {size}", seq, rec.get("event_id"))
        proven.append(
            f"record {seq} ({rec['event_type']} {rec['event_id']}) hash {record_hash.hex()}: leaf {seq} of the checkpoint "
            f"of size {size} (inclusion proof of {len(proof)} hash(es) from tiles); entry and level-0 tile agree"
        )

    if older is not None:
        consistency: list[bytes] = []

        def proof_from_tiles() -> list[bytes]:
            consistency.extend(log.consistency_proof(older.size))
            return consistency

        proven.extend(check_extends(older, checkpoint, proof_from_tiles))
        proven[-1] += f" (consistency proof of {len(consistency)} hash(es) from tiles)"

    if check_all:
        chain = Chain(tenant, keys, 0, ZERO_HASH)
        tree = TreeBuilder()
        count = (size + TILE_WIDTH - 1) // TILE_WIDTH
        for index in range(count):
            entries, records = log.bundle(index, keep=False)
            what = f"records/{tile_index_path(index, log.width(0, index))}"
            for rec, entry in zip(records, entries):
                check_signing_key_known(rec, keys, trust, origin)
                chain.push(rec)
                check_record_is_entry(chain.last_hash, entry, rec, what)
                tree.push(leaf_hash(entry))
        if tree.root() != checkpoint.root:
            raise Failed(f"the {size} leaves hash to root {tree.root().hex()}, but the checkpoint says {checkpoint.root.hex()}")
        if chain.count:
            captured = max(captured or 0, chain.time)
        last = f"0..{size - 1}" if size else "(none)"
        proven.append(
            f"{size} records {last} in {count} bundle(s): every entry hashes to its leaf and every record to its entry; "
            "record hashes, links, sequence, capture times, signatures, key intervals"
        )
        proven.append(f"Merkle root recomputed from all {size} leaves = checkpoint root")
    proven.append(f"{fetcher.requests} request(s), {fetcher.bytes} bytes received")
    return Verdict(proven, checkpoint, captured)


# --- Command line -----------------------------------------------------------------------------------


def load_trust(args) -> Trust:
    """The keys trusted on the command line. These are not evidence: anything wrong with them
    makes the command unusable (exit 2)."""
    try:
        keys = [VerifierKey.parse(k.strip()) for k in args.key]
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
            history = parse_key_history_document(doc)
            keys.extend(VerifierKey.of(history[0], k.public_key) for k in history[1])
    except (Failed, ValueError) as e:
        raise Unusable(f"a trusted key or key history is malformed: {e}") from e
    if args.policy is not None:
        # The policy's logs are trusted like --key; its witnesses and quorum are the witness policy.
        policy = read_policy(args.policy)
        keys.extend(k for k in policy.logs if k not in keys)
    if not keys:
        raise Unusable("no trusted key: pass --key, --keys, --key-history or a --policy listing logs")
    if args.policy is not None:
        return Trust(keys, history, policy)
    return Trust(keys, history, parse_witness_policy(args.witness, args.quorum))


def parse_key_history_document(doc) -> tuple[str, list[KeyInterval]]:
    """The key-history document `auditex key history` publishes (FORMAT.md section 5): exactly
    {"origin", "keys"}; each entry exactly key_id, public_key, from_seq, until_seq, verifier_key,
    the verifier key being the one derived from the public key and the origin."""
    if not isinstance(doc, dict) or set(doc) != {"origin", "keys"} or not isinstance(doc["origin"], str):
        raise Failed("the key history must be an object of exactly origin and keys")
    check_key_name(doc["origin"])
    entries = doc["keys"]
    if not isinstance(entries, list):
        raise Failed("the key history's keys is not a list")
    members = {"key_id", "public_key", "from_seq", "until_seq", "verifier_key"}
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or set(e) != members:
            raise Failed(f"key history entry {i} is not an object of exactly {sorted(members)}")
    intervals = parse_key_history([{k: e[k] for k in members - {"verifier_key"}} for e in entries])
    for e, k in zip(entries, intervals):
        if e["verifier_key"] != str(VerifierKey.of(doc["origin"], k.public_key)):
            raise Failed(f"the verifier key of {k.key_id} does not match its public key and the origin")
    return doc["origin"], intervals


def read_lines(path: str) -> Iterator[str]:
    """An export's lines without their newlines (see `checked_lines`)."""
    f = sys.stdin.buffer if path == "-" else open(path, "rb")
    with f:
        yield from checked_lines(f, "export")


def checked_lines(raw_lines: Iterable[bytes], what: str) -> Iterator[str]:
    """JSON Lines without their newlines. FORMAT.md section 1: every line, the last one too, ends
    with \\n alone, and none holds another control character (no \\r, no tab), which JSON would
    otherwise read as white space."""
    for n, raw in enumerate(raw_lines, start=1):
        if not raw.endswith(b"\n"):
            raise Failed(f"line {n}: the {what} does not end with a newline")
        raw = raw[:-1]
        bad = CONTROL_BYTE.search(raw)
        if bad is not None:
            raise Failed(f"line {n}: control character 0x{raw[bad.start()]:02x} at byte {bad.start()}; lines end with \\n alone")
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise Failed(f"line {n}: not UTF-8") from e


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify Auditex evidence offline (FORMAT.md).")
    parser.add_argument("kind", choices=["export", "bundle", "package", "proof", "consistency", "tiles"])
    parser.add_argument("file", nargs="?", help="the evidence (not for consistency); for tiles, the log's prefix URL")
    parser.add_argument("--key", action="append", default=[], help="trusted C2SP verifier key (repeatable)")
    parser.add_argument("--keys", help="file of trusted verifier keys, one per line")
    parser.add_argument("--key-history", help="trusted key history, as `auditex key history` prints it")
    parser.add_argument("--old", help="consistency, tiles: the checkpoint saved earlier (a signed note, or an export, bundle or proof file holding one)")
    parser.add_argument("--new", help="consistency: the newer checkpoint, in the same forms")
    parser.add_argument("--proof", help="consistency: the consistency-proof file, as `auditex proof --old-size` writes it")
    parser.add_argument("--cafile", "--ca-cert", dest="cafile", help="tiles: PEM file of the certificate authorities (or self-signed certificate) to trust for https, instead of the system's")
    parser.add_argument("--leaf", type=int, action="append", default=[], metavar="N",
                        help="tiles: prove record N from tiles and bundles (repeatable)")
    parser.add_argument("--all", action="store_true", help="tiles: fetch and check every leaf, entry and record of the tree")
    parser.add_argument("--witness", action="append", default=[], metavar="VKEY",
                        help="a trusted witness key, C2SP vkey of type 0x04 (repeatable): the evidence's checkpoint "
                             "must carry valid cosignatures of --quorum of them")
    parser.add_argument("--quorum", type=int, metavar="N",
                        help="how many of the --witness keys must have cosigned the checkpoint (default: all)")
    parser.add_argument("--policy", metavar="FILE",
                        help="a C2SP tlog-policy file: its logs' keys are trusted, and the checkpoint must be "
                             "cosigned by its witnesses as its quorum says (not with --witness or --quorum)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.policy is not None and (args.witness or args.quorum is not None):
        parser.error("--policy cannot be used with --witness or --quorum: the policy file names the witnesses and the quorum")
    if args.kind != "tiles" and (args.cafile is not None or args.leaf or args.all):
        parser.error("--cafile, --leaf and --all belong to tiles")
    if args.kind == "consistency":
        if args.file is not None or args.old is None or args.new is None:
            parser.error("consistency takes --old FILE and --new FILE (and --proof FILE when the tree grew), no positional file")
        args.file = f"{args.old} -> {args.new}"
    elif args.kind == "tiles":
        if args.file is None or args.new is not None or args.proof is not None:
            parser.error("tiles takes the log's prefix URL (and --leaf N, --old FILE, --all), not --new or --proof")
        if any(n < 0 for n in args.leaf):
            parser.error("--leaf takes a record's sequence number (0 or more)")
    elif args.file is None:
        parser.error(f"{args.kind} needs the evidence file")
    result = {"verified": False, "evidence": args.kind, "file": args.file}
    try:
        trust = load_trust(args)
        if args.kind == "consistency":
            verdict = verify_checkpoint_consistency(args.old, args.new, args.proof, trust)
        elif args.kind == "tiles":
            verdict = verify_tiles(args.file, trust, args.leaf, args.old, args.all,
                                   os.environ.get(API_KEY_VARIABLE) or None, args.cafile)
        elif args.kind == "export":
            verdict = verify_export(read_lines(args.file), trust)
        elif args.kind == "package":
            verdict = verify_package(read_lines(args.file), trust)
        elif args.kind == "bundle":
            try:
                doc = parse_json(read_text(args.file))
            except ValueError as e:
                raise Failed(f"not a custody bundle: not JSON: {e}") from e
            verdict = verify_bundle(doc, trust)
        else:
            verdict = verify_proof(read_text(args.file), trust)
        if trust.witnessing is not None:
            # Only evidence that verified otherwise is held to the witness policy.
            cosigned = verify_cosignatures(verdict.checkpoint, trust.witnessing.witnesses)
            result["cosignatures"] = [{"witness": c.witness.name, "timestamp": c.timestamp} for c in cosigned]
            verdict.proven.append(check_witnessed(cosigned, trust.witnessing, verdict.captured_us))
        result.update(verified=True, proven=verdict.proven)
        code = EXIT_VERIFIED
    except Failed as e:
        result["failure"] = {"seq": e.seq, "event_id": e.event_id, "message": str(e)}
        code = EXIT_FAILED
    except (Unusable, OSError) as e:
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
