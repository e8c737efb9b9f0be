"""Tests of the independent verifier's checkpoint consistency checking.

Run from this folder with the verifier's requirements installed:

    python -m unittest -v

Proofs come from a slow, obviously-correct prover written here from RFC 9162 section 2.1.4.1
(the recursive SUBPROOF), never from the code under test; checkpoints are signed here as C2SP
signed notes (FORMAT.md section 9) with keys made up for the test. Tiled logs (C2SP tlog-tiles) are
built here from the specification and served from a local HTTP server on loopback.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import http.server
import io
import json
import os
import re
import socket
import tempfile
import threading
import unittest
from unittest import mock

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import auditex_verify as av

ORIGIN = "auditex.test/ledger/acme-bank"


def h(*parts: bytes) -> bytes:
    d = hashlib.sha256()
    for p in parts:
        d.update(p)
    return d.digest()


def record_hashes(n: int, salt: bytes = b"") -> list[bytes]:
    return [h(salt, i.to_bytes(8, "big")) for i in range(n)]


def mth(d: list[bytes]) -> bytes:
    """RFC 9162 section 2.1.1, by recursion; leaves are record hashes (FORMAT.md section 8)."""
    if not d:
        return h(b"")
    if len(d) == 1:
        return h(b"\x00", d[0])
    k = 1
    while k * 2 < len(d):
        k *= 2
    return h(b"\x01", mth(d[:k]), mth(d[k:]))


def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    """RFC 9162 section 2.1.4.1."""
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return subproof(m, d[:k], b) + [mth(d[k:])]
    return subproof(m - k, d[k:], False) + [mth(d[:k])]


def prove(m: int, d: list[bytes]) -> list[bytes]:
    return subproof(m, d, True)


class Signer:
    """A checkpoint signer for one origin."""

    def __init__(self, origin: str = ORIGIN, seed: bytes = bytes([7]) * 32):
        self.origin = origin
        self.key = Ed25519PrivateKey.from_private_bytes(seed)
        public = self.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.vkey = str(av.VerifierKey.of(origin, public))
        self.key_id = h(origin.encode(), b"\x0a\x01", public)[:4]

    def note(self, size: int, root: bytes) -> str:
        text = f"{self.origin}\n{size}\n{base64.b64encode(root).decode()}\n"
        sig = self.key.sign(text.encode())
        return f"{text}\n\u2014 {self.origin} {base64.b64encode(self.key_id + sig).decode()}\n"


class RfcConsistencyProofs(unittest.TestCase):
    """verify_consistency against the reference prover."""

    def test_every_proof_between_trees_of_up_to_40_leaves_verifies(self):
        d = record_hashes(40)
        for n in range(1, 41):
            for m in range(1, n + 1):
                with self.subTest(m=m, n=n):
                    av.verify_consistency(m, n, prove(m, d[:n]), mth(d[:m]), mth(d[:n]))

    def test_a_changed_proof_hash_fails(self):
        d = record_hashes(37)
        for m, n in [(1, 2), (3, 7), (4, 8), (5, 37), (16, 37), (36, 37)]:
            proof = prove(m, d[:n])
            for i in range(len(proof)):
                bad = list(proof)
                bad[i] = bytes([bad[i][0] ^ 1]) + bad[i][1:]
                with self.subTest(m=m, n=n, i=i), self.assertRaises(av.Failed):
                    av.verify_consistency(m, n, bad, mth(d[:m]), mth(d[:n]))

    def test_a_truncated_or_extended_proof_fails(self):
        d = record_hashes(21)
        for m, n in [(3, 21), (8, 21), (13, 21)]:
            proof = prove(m, d[:n])
            for bad in (proof[:-1], proof + [proof[-1]], [], [h(b"x")] + proof):
                with self.subTest(m=m, n=n, length=len(bad)), self.assertRaises(av.Failed):
                    av.verify_consistency(m, n, bad, mth(d[:m]), mth(d[:n]))

    def test_a_rewritten_older_tree_fails(self):
        d = record_hashes(30)
        other = list(d)
        other[4] = h(b"forged")
        proof = prove(10, d[:30])
        with self.assertRaises(av.Failed):
            av.verify_consistency(10, 30, proof, mth(other[:10]), mth(d[:30]))
        with self.assertRaises(av.Failed):
            av.verify_consistency(10, 30, proof, mth(d[:10]), mth(other[:30]))

    def test_equal_sizes_need_equal_roots_and_no_proof(self):
        d = record_hashes(9)
        av.verify_consistency(9, 9, [], mth(d), mth(d))
        with self.assertRaises(av.Failed):
            av.verify_consistency(9, 9, [], mth(d), mth(record_hashes(9, b"other")))
        with self.assertRaises(av.Failed):
            av.verify_consistency(9, 9, [mth(d)], mth(d), mth(d))

    def test_every_tree_extends_the_empty_tree_and_nothing_else_is_empty(self):
        d = record_hashes(5)
        av.verify_consistency(0, 5, [], h(b""), mth(d))
        with self.assertRaises(av.Failed):
            av.verify_consistency(0, 5, [], mth(d[:1]), mth(d))
        with self.assertRaises(av.Failed):
            av.verify_consistency(0, 5, [mth(d)], h(b""), mth(d))

    def test_a_smaller_newer_tree_fails(self):
        d = record_hashes(8)
        with self.assertRaises(av.Failed):
            av.verify_consistency(8, 4, [], mth(d), mth(d[:4]))


def consistency_file(m: int, n: int, proof: list[bytes], signer: Signer, d: list[bytes] | None = None) -> str:
    """The consistency-proof file (FORMAT.md section 9) from size m to n of the tree of
    record_hashes(50) (or d)."""
    d = d if d is not None else record_hashes(50)
    return json.dumps({
        "format": av.CONSISTENCY_PROOF_FORMAT, "from": m, "to": n, "proof": [p.hex() for p in proof],
        "from_checkpoint": signer.note(m, mth(d[:m])), "to_checkpoint": signer.note(n, mth(d[:n])),
    }) + "\n"


class ConsistencyCommand(unittest.TestCase):
    """`auditex_verify.py consistency` on files, with its exit codes and JSON output."""

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.signer = Signer()
        self.d = record_hashes(50)
        self.old = self.write("old.checkpoint", self.signer.note(13, mth(self.d[:13])))
        self.new = self.write("new.checkpoint", self.signer.note(50, mth(self.d)))
        self.proof = self.write("c.proof", consistency_file(13, 50, prove(13, self.d), self.signer))

    def tearDown(self):
        self.dir.cleanup()

    def write(self, name: str, text: str) -> str:
        path = os.path.join(self.dir.name, name)
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        return path

    def run_verifier(self, *args: str, key: str | None = None) -> tuple[int, dict]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = av.main(["consistency", *args, "--key", key or self.signer.vkey, "--json"])
        return code, json.loads(out.getvalue())

    def test_a_newer_checkpoint_with_its_proof_verifies(self):
        code, out = self.run_verifier("--old", self.old, "--new", self.new, "--proof", self.proof)
        self.assertEqual(code, 0, out)
        self.assertTrue(out["verified"])
        self.assertIn("extends the one of size 13", out["proven"][0])

    def test_only_the_consistency_proof_file_is_accepted_and_every_other_form_fails(self):
        proof = prove(13, self.d)
        good = json.loads(consistency_file(13, 50, proof, self.signer))
        forms = {
            "hex-lines.proof": "".join(p.hex() + "\n" for p in proof),
            "b64.proof": "".join(base64.b64encode(p).decode() + "\n" for p in proof),
            "array.json": json.dumps([p.hex() for p in proof]),
            "no-format.json": json.dumps({k: v for k, v in good.items() if k != "format"}),
            "extra-member.json": json.dumps(dict(good, note="x")),
            "upper-hex.json": json.dumps(dict(good, proof=[p.hex().upper() for p in proof])),
            "float-size.json": json.dumps(dict(good, **{"from": 13.0})),
            "wrong-size.json": json.dumps(dict(good, **{"from": 12})),
            "other-checkpoint.json": json.dumps(dict(good, from_checkpoint=self.signer.note(13, mth(record_hashes(13, b"x"))))),
            "duplicate.json": consistency_file(13, 50, proof, self.signer).replace('{"format"', '{"to":50,"format"', 1),
        }
        for name, text in forms.items():
            with self.subTest(form=name):
                code, out = self.run_verifier("--old", self.old, "--new", self.new, "--proof", self.write(name, text))
                self.assertEqual(code, 1, out)

    def test_a_checkpoint_is_read_from_an_export_bundle_or_proof_file(self):
        note = self.signer.note(50, mth(self.d))
        export = self.write("e.jsonl", json.dumps({"format": av.EXPORT_FORMAT, "checkpoint": note}) + "\n{}\n")
        bundle = self.write("b.json", json.dumps({"format": av.BUNDLE_FORMAT, "checkpoint": note}))
        tlog = self.write("r.proof", f"{av.TLOG_PROOF_HEADER}\nextra e30=\nindex 0\n{base64.b64encode(h(b'x')).decode()}\n\n{note}")
        for newer in (export, bundle, tlog):
            with self.subTest(file=newer):
                code, out = self.run_verifier("--old", self.old, "--new", newer, "--proof", self.proof)
                self.assertEqual(code, 0, out)

    def test_a_changed_proof_is_rejected(self):
        doc = json.loads(consistency_file(13, 50, prove(13, self.d), self.signer))
        first = doc["proof"][0]
        doc["proof"][0] = ("0" if first[0] != "0" else "1") + first[1:]
        code, out = self.run_verifier("--old", self.old, "--new", self.new, "--proof", self.write("bad.proof", json.dumps(doc)))
        self.assertEqual(code, 1, out)
        self.assertFalse(out["verified"])

    def test_swapped_checkpoints_are_a_rollback(self):
        code, out = self.run_verifier("--old", self.new, "--new", self.old, "--proof", self.proof)
        self.assertEqual(code, 1, out)
        self.assertIn("rolled back", out["failure"]["message"])
        self.assertEqual(out["failure"]["seq"], 13)

    def test_another_root_at_the_same_size_is_a_fork(self):
        forked = self.write("fork.checkpoint", self.signer.note(13, mth(record_hashes(13, b"fork"))))
        code, out = self.run_verifier("--old", self.old, "--new", forked)
        self.assertEqual(code, 1, out)
        self.assertIn("forked", out["failure"]["message"])

    def test_a_rewritten_older_tree_is_not_proven_consistent(self):
        rewritten = self.write("rewritten.checkpoint", self.signer.note(13, mth(record_hashes(13, b"other"))))
        code, out = self.run_verifier("--old", rewritten, "--new", self.new, "--proof", self.proof)
        self.assertEqual(code, 1, out)

    def test_a_checkpoint_not_signed_by_a_trusted_key_fails(self):
        stranger = Signer(seed=bytes([9]) * 32)
        code, out = self.run_verifier("--old", self.old, "--new", self.new, "--proof", self.proof, key=stranger.vkey)
        self.assertEqual(code, 1, out)

    def test_checkpoints_of_two_logs_are_not_consistent(self):
        other = Signer(origin="auditex.test/ledger/other-bank")
        theirs = self.write("theirs.checkpoint", other.note(50, mth(self.d)))
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = av.main(["consistency", "--old", self.old, "--new", theirs, "--proof", self.proof,
                            "--key", self.signer.vkey, "--key", other.vkey, "--json"])
        self.assertEqual(code, 1, out.getvalue())
        self.assertIn("two logs", json.loads(out.getvalue())["failure"]["message"])

    def test_a_grown_tree_without_a_proof_cannot_be_judged(self):
        code, out = self.run_verifier("--old", self.old, "--new", self.new)
        self.assertEqual(code, 2, out)
        self.assertIn("--proof", out["error"])

    def test_a_file_that_holds_no_checkpoint_fails_and_a_missing_one_cannot_be_read(self):
        code, out = self.run_verifier("--old", self.write("junk.txt", "hello"), "--new", self.new, "--proof", self.proof)
        self.assertEqual(code, 1, out)
        code, out = self.run_verifier("--old", os.path.join(self.dir.name, "absent"), "--new", self.new, "--proof", self.proof)
        self.assertEqual(code, 2, out)

    def test_the_command_line_needs_old_and_new(self):
        with contextlib.redirect_stderr(io.StringIO()), self.assertRaises(SystemExit) as exit_:
            av.main(["consistency", "--old", self.old, "--key", self.signer.vkey])
        self.assertEqual(exit_.exception.code, 2)


def key_history(origin: str, signers_and_intervals) -> str:
    """The key-history document (FORMAT.md section 5) of (signer, from_seq, until_seq) triples."""
    keys = []
    for signer, f, u in signers_and_intervals:
        public = signer.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        keys.append({"key_id": av.key_id_of(public), "public_key": public.hex(), "from_seq": f, "until_seq": u,
                     "verifier_key": str(av.VerifierKey.of(origin, public))})
    return json.dumps({"origin": origin, "keys": keys})


class CheckpointKeyIntervals(unittest.TestCase):
    """FORMAT.md section 9: a checkpoint signed by a key outside its interval is rejected."""

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.retired = Signer(seed=bytes([1]) * 32)
        self.current = Signer(seed=bytes([2]) * 32)
        self.d = record_hashes(50)
        # The first key signed records 0..9 and checkpoints up to size 10; the second from 10 on.
        self.history = self.write("history.json", key_history(ORIGIN, [(self.retired, 0, 10), (self.current, 10, None)]))

    def tearDown(self):
        self.dir.cleanup()

    def write(self, name: str, text: str) -> str:
        path = os.path.join(self.dir.name, name)
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        return path

    def run_verifier(self, old: Signer, new: Signer) -> tuple[int, dict]:
        old_cp = self.write("old.cp", old.note(8, mth(self.d[:8])))
        new_cp = self.write("new.cp", new.note(50, mth(self.d)))
        proof = self.write("p.json", json.dumps({
            "format": av.CONSISTENCY_PROOF_FORMAT, "from": 8, "to": 50, "proof": [p.hex() for p in prove(8, self.d)],
            "from_checkpoint": old.note(8, mth(self.d[:8])), "to_checkpoint": new.note(50, mth(self.d)),
        }))
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = av.main(["consistency", "--old", old_cp, "--new", new_cp, "--proof", proof,
                            "--key-history", self.history, "--json"])
        return code, json.loads(out.getvalue())

    def test_checkpoints_signed_by_the_key_current_at_their_size_verify(self):
        code, out = self.run_verifier(self.retired, self.current)
        self.assertEqual(code, 0, out)

    def test_a_retired_key_signing_a_checkpoint_past_its_until_seq_is_rejected(self):
        code, out = self.run_verifier(self.retired, self.retired)
        self.assertEqual(code, 1, out)
        self.assertIn("not current at that size", out["failure"]["message"])

    def test_a_key_signing_a_checkpoint_before_its_from_seq_is_rejected(self):
        code, out = self.run_verifier(self.current, self.current)
        self.assertEqual(code, 1, out)
        self.assertIn("the old checkpoint", out["failure"]["message"])


class ExitCodes(unittest.TestCase):
    """Tampered or wrong input is exit 1; only a file that cannot be opened is exit 2."""

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.signer = Signer()
        self.d = record_hashes(50)
        self.old = self.write("old.cp", self.signer.note(13, mth(self.d[:13])))
        self.new = self.write("new.cp", self.signer.note(50, mth(self.d)))
        self.proof = self.write("p.json", consistency_file(13, 50, prove(13, self.d), self.signer))

    def tearDown(self):
        self.dir.cleanup()

    def write(self, name: str, data: str | bytes) -> str:
        path = os.path.join(self.dir.name, name)
        with open(path, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        return path

    def code(self, *args: str) -> int:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return av.main([*args, "--key", self.signer.vkey, "--json"])

    def test_every_tampered_or_wrong_kind_input_exits_1(self):
        note = self.signer.note(50, mth(self.d))
        tampered = {
            "no final newline": note[:-1],
            "CR LF line endings": note.replace("\n", "\r\n"),
            "a blank line added": note + "\n",
            "not UTF-8": note.encode()[:-3] + b"\xff\xfe\n",
            "empty": "",
            "an extension line": note.replace("\n\n", "\nextra\n\n", 1),
            "non-canonical base64 root": note.replace("=\n", "=\n", 1).replace(
                note.split("\n")[2], note.split("\n")[2][:-2] + chr(ord(note.split("\n")[2][-2]) ^ 1) + "="),
        }
        for what, data in tampered.items():
            with self.subTest(new=what):
                self.assertEqual(self.code("consistency", "--old", self.old, "--new", self.write("t.cp", data), "--proof", self.proof), 1)
        for kind in ("export", "bundle", "proof"):
            for what, data in {"a checkpoint": note, "not UTF-8": b"\xff\xfe", "empty": "", "JSON of another kind": "{}\n"}.items():
                with self.subTest(kind=kind, file=what):
                    self.assertEqual(self.code(kind, self.write("t.any", data)), 1)

    def test_a_file_that_cannot_be_opened_exits_2(self):
        absent = os.path.join(self.dir.name, "absent")
        for args in (("export", absent), ("bundle", absent), ("proof", absent),
                     ("consistency", "--old", absent, "--new", self.new, "--proof", self.proof),
                     ("consistency", "--old", self.old, "--new", self.new, "--proof", absent)):
            with self.subTest(args=args):
                self.assertEqual(self.code(*args), 2)


class Encodings(unittest.TestCase):
    """FORMAT.md section 1 and 5: one encoding per value, strict Ed25519."""

    # RFC 8032 section 7.1, TEST 1.
    PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    SIG = bytes.fromhex("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b")
    L = 2**252 + 27742317777372353535851937790883648493

    def test_the_rfc_8032_vector_verifies(self):
        self.assertTrue(av.ed25519_verify(self.PUBLIC, self.SIG, b""))

    def test_a_non_canonical_s_is_rejected(self):
        s = int.from_bytes(self.SIG[32:], "little") + self.L
        self.assertLess(s, 2**256)
        self.assertFalse(av.ed25519_verify(self.PUBLIC, self.SIG[:32] + s.to_bytes(32, "little"), b""))

    def test_a_small_order_key_is_rejected_even_with_a_signature_that_satisfies_the_equation(self):
        identity = bytes([1]) + bytes(31)
        # [S]B = R + [k]A holds for A = R = identity and S = 0, for every message.
        for message in (b"", b"any message"):
            self.assertFalse(av.ed25519_verify(identity, identity + bytes(32), message))
        with self.assertRaises(av.Failed):
            av.check_public_key(identity, "key")
        entry = {"key_id": av.key_id_of(identity), "public_key": identity.hex(), "from_seq": 0, "until_seq": None}
        with self.assertRaises(av.Failed):
            av.parse_key_history([entry])

    def test_a_non_canonical_public_key_encoding_is_rejected(self):
        # y = p + 2 (the low 255 bits at or above p) is not the one encoding of any point.
        y = (2**255 - 19 + 2).to_bytes(32, "little")
        self.assertFalse(av.is_canonical_point(y))
        with self.assertRaises(av.Failed):
            av.check_public_key(y, "key")

    def test_base64_must_be_canonical(self):
        self.assertEqual(av.b64decode_canonical("AA==", "x"), b"\x00")
        for bad in ("AB==", "AA", "AA=", "A A=", "AA==\n", "_-=="):
            with self.subTest(text=bad), self.assertRaises(av.Failed):
                av.b64decode_canonical(bad, "x")

    def test_integers_are_integer_literals(self):
        self.assertTrue(av.is_int(1))
        for x in (1.0, True, "1", None):
            self.assertFalse(av.is_int(x), x)
        entry = {"key_id": av.key_id_of(self.PUBLIC), "public_key": self.PUBLIC.hex(), "from_seq": 0.0, "until_seq": None}
        with self.assertRaises(av.Failed):
            av.parse_key_history([entry])

    def test_export_lines_end_with_a_newline_alone(self):
        with tempfile.TemporaryDirectory() as d:
            for what, data in {"CR LF": b'{"a":1}\r\n', "no final newline": b'{"a":1}\n{"b":2}',
                               "a tab": b'{"a":\t1}\n', "not UTF-8": b'{"a":"\xff"}\n'}.items():
                path = os.path.join(d, "e.jsonl")
                with open(path, "wb") as f:
                    f.write(data)
                with self.subTest(what), self.assertRaises(av.Failed):
                    list(av.read_lines(path))
            with open(path, "wb") as f:
                f.write(b'{"a":1}\n{"b": 2}\n')
            self.assertEqual(list(av.read_lines(path)), ['{"a":1}', '{"b": 2}'])

    def test_a_verifier_key_whose_base64_holds_a_plus_splits_at_the_first_two_plus_signs(self):
        for seed in range(256):
            signer = Signer(seed=bytes([seed]) * 32)
            if "+" in signer.vkey.split("+", 2)[2]:
                break
        else:
            self.fail("no key with + in its base64")
        key = av.VerifierKey.parse(signer.vkey)
        self.assertEqual(str(key), signer.vkey)
        self.assertEqual(key.name, ORIGIN)


class StrictReading(unittest.TestCase):
    """Inputs that `auditex verify` refuses, refused here too (scripts/verifier-differential)."""

    def setUp(self):
        self.signer = Signer()
        self.key = av.VerifierKey.parse(self.signer.vkey)

    def test_a_checkpoint_signed_twice_by_one_trusted_key_is_rejected(self):
        note = self.signer.note(3, h(b"root"))
        av.open_checkpoint(note, [self.key])
        signature_line = note.split("\n\n")[1]
        with self.assertRaisesRegex(av.Failed, "twice"):
            av.open_checkpoint(note + signature_line, [self.key])

    def test_a_checkpoint_with_more_than_100_signature_lines_is_rejected(self):
        # As ledger::note::SIGNATURE_LINES_MAX: unknown keys' lines count too.
        note = self.signer.note(3, h(b"root"))
        junk = "".join(f"\u2014 other.example/k{i} {b64(bytes(68))}\n" for i in range(99))
        av.open_checkpoint(note + junk, [self.key])
        with self.assertRaisesRegex(av.Failed, "more than the 100 signature lines"):
            av.open_checkpoint(note + junk + f"\u2014 other.example/k99 {b64(bytes(68))}\n", [self.key])

    def test_a_record_version_written_as_a_fraction_or_boolean_is_rejected(self):
        for v in (1.0, True):
            rec = {m: None for m in av.RECORD_MEMBERS}
            rec.update(v=v, seq=0)
            with self.assertRaisesRegex(av.Failed, "unsupported version"):
                av.check_record(rec, [])

    def test_a_key_history_from_seq_of_false_is_not_zero(self):
        public = self.key.public_key
        entry = {"key_id": av.key_id_of(public), "public_key": public.hex(), "from_seq": 0, "until_seq": None}
        self.assertEqual(len(av.parse_key_history([entry])), 1)
        with self.assertRaises(av.Failed):
            av.parse_key_history([dict(entry, from_seq=False)])

    def history_file(self, doc) -> str:
        f = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8")
        self.addCleanup(os.unlink, f.name)
        with f:
            json.dump(doc, f)
        return f.name

    def load(self, doc):
        class Args:
            key, keys = [], None
            witness, quorum, policy = [], None, None
        args = Args()
        args.key_history = self.history_file(doc)
        return av.load_trust(args)

    def test_a_key_history_is_a_closed_document_with_derived_verifier_keys(self):
        public = self.key.public_key
        entry = {"key_id": av.key_id_of(public), "public_key": public.hex(), "from_seq": 0,
                 "until_seq": None, "verifier_key": self.signer.vkey}
        doc = {"origin": ORIGIN, "keys": [entry]}
        self.assertEqual(len(self.load(doc).keys), 1)
        other = Signer(seed=bytes([8]) * 32)
        for bad in (
            dict(doc, note="x"),
            dict(doc, keys=[dict(entry, verifer_key=entry["verifier_key"])]),
            dict(doc, keys=[{k: v for k, v in entry.items() if k != "until_seq"}]),
            dict(doc, keys=[dict(entry, verifier_key=other.vkey)]),
        ):
            with self.assertRaises(av.Unusable, msg=bad):
                self.load(bad)

    def test_base64_with_nonzero_unused_bits_is_rejected(self):
        note = self.signer.note(3, h(b"root"))
        av.open_checkpoint(note, [self.key])
        text, signature = note.split("\n\n")
        # 68 bytes are 92 characters ending in one `=`; the character before it carries two
        # unused bits, set here without changing the decoded bytes.
        b64 = signature.rstrip("\n").rsplit(" ", 1)[1]
        last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".index(b64[-2])
        changed = b64[:-2] + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[last ^ 1] + "="
        self.assertNotEqual(changed, b64)
        self.assertEqual(base64.b64decode(changed), base64.b64decode(b64))
        with self.assertRaisesRegex(av.Failed, "not canonical base64"):
            av.open_checkpoint(text + "\n\n" + signature.replace(b64, changed), [self.key])

    def test_a_header_key_entry_with_another_member_is_rejected(self):
        public = self.key.public_key
        entry = {"key_id": av.key_id_of(public), "public_key": public.hex(), "from_seq": 0, "until_seq": None}
        renamed = {("until_sEq" if k == "until_seq" else k): v for k, v in entry.items()}
        for bad in (renamed, dict(entry, note="x"), {k: v for k, v in entry.items() if k != "until_seq"}):
            with self.assertRaisesRegex(av.Failed, "not an object of exactly"):
                av.parse_key_history([bad])

    def test_a_verifier_key_with_an_upper_case_key_id_is_refused(self):
        name, kid, b64 = self.signer.vkey.split("+")
        self.assertNotEqual(kid.upper(), kid)
        with self.assertRaisesRegex(av.Failed, "key id"):
            av.VerifierKey.parse(f"{name}+{kid.upper()}+{b64}")

    def test_export_lines_end_at_a_line_feed_only(self):
        f = tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False)
        self.addCleanup(os.unlink, f.name)
        with f:
            f.write(b'{"a":1}\r{"b":2}\n{"c":3}\r\n')
        # A carriage return is neither a line end nor allowed inside a line: the file fails.
        with self.assertRaisesRegex(av.Failed, "control character 0x0d"):
            list(av.read_lines(f.name))


def canonical(value) -> bytes:
    """RFC 8785 for the objects, strings and integers of these records, written here."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def inclusion_path(m: int, d: list[bytes]) -> list[bytes]:
    """RFC 9162 section 2.1.3.1 PATH(m, D[n]), by recursion, leaf's sibling first."""
    n = len(d)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return inclusion_path(m, d[:k]) + [mth(d[k:])]
    return inclusion_path(m - k, d[k:]) + [mth(d[:k])]


def event_id(n: int) -> str:
    return f"01936f5e-7a2b-7c3d-8e4f-{n:012x}"


class ErasedFields(unittest.TestCase):
    """A bundle entry's `erased` member (FORMAT.md section 11), on records signed here: 0 is a
    decision with an erasable applicant name, 1 its review, 2 an erasure of that name, 3 an
    erasure of another event only, 4 an erasure of another field only."""

    def setUp(self):
        self.signer = Signer()
        public = self.signer.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.key_id = av.key_id_of(public)
        self.history = [{"key_id": self.key_id, "public_key": public.hex(), "from_seq": 0, "until_seq": None}]
        self.salt = bytes([0x11]) * 32
        self.value = "Jane Q. Doe"
        commitment = h(av.ERASABLE_DOMAIN, b"\x00", self.salt, canonical(self.value)).hex()
        erasure = lambda ids, fields: {  # noqa: E731
            "subject_ref": "subj-5d41402a", "reason": "erasure requested", "event_ids": ids, "fields": fields}
        contents = [
            ("decision", {"model_id": "credit-limit", "model_version": "4.2.0", "outcome": "approved",
                          "subject_ref": "subj-5d41402a", "oversight_mode": "automated"},
             {"applicant_name": commitment}),
            ("human_review", {"decision_id": event_id(0), "reviewer": "analyst-17", "action": "confirmed"}, {}),
            ("erasure", erasure([event_id(0)], ["applicant_name"]), {}),
            ("erasure", erasure([event_id(9)], ["applicant_name"]), {}),
            ("erasure", erasure([event_id(0)], ["birth_date"]), {}),
        ]
        self.records, prev = [], bytes(32)
        for seq, (event_type, payload, erasable) in enumerate(contents):
            body = {"v": 1, "tenant": "acme-bank", "seq": seq, "prev": prev.hex(),
                    "captured_at_us": 1_795_000_000_000_000 + seq, "event_id": event_id(seq),
                    "event_type": event_type, "payload": payload, "erasable": erasable, "key_id": self.key_id}
            digest = h(av.RECORD_DOMAIN, b"\x00", canonical(body))
            self.records.append(dict(body, hash=digest.hex(), sig=self.signer.key.sign(digest).hex()))
            prev = digest
        self.hashes = [bytes.fromhex(r["hash"]) for r in self.records]
        self.trust = av.Trust(keys=[av.VerifierKey.parse(self.signer.vkey)])

    def bundle(self, seqs, erased=None, values=False):
        """The bundle of decision 0 with the entries `seqs`, the decision's applicant name marked
        erased as `erased` says (or its value given)."""
        entries = []
        for seq in seqs:
            entry = {"record": self.records[seq],
                     "inclusion_proof": [x.hex() for x in inclusion_path(seq, self.hashes)]}
            entries.append(entry)
        if values:
            entries[0]["erasable_values"] = {"applicant_name": {"salt": self.salt.hex(), "value": self.value}}
        if erased is not None:
            entries[0]["erased"] = erased
        return {"format": av.BUNDLE_FORMAT, "tenant": "acme-bank", "origin": ORIGIN,
                "decision_event_id": event_id(0), "checkpoint": self.signer.note(len(self.hashes), mth(self.hashes)),
                "keys": self.history, "verifier_keys": [self.signer.vkey], "entries": entries}

    def fails(self, doc, message: str, seq: int):
        with self.assertRaises(av.Failed) as caught:
            av.verify_bundle(doc, self.trust)
        self.assertEqual(str(caught.exception), message)
        self.assertEqual(caught.exception.seq, seq)

    def test_a_bundle_with_its_value_or_no_erased_member_verifies_as_before(self):
        proven = av.verify_bundle(self.bundle([0, 1], values=True), self.trust).proven
        self.assertIn("1 erasable value(s) matched, 0 absent (withheld), 0 erased", proven[0])
        proven = av.verify_bundle(self.bundle([0, 1], erased={}), self.trust).proven
        self.assertIn("0 erasable value(s) matched, 1 absent (withheld), 0 erased", proven[0])

    def test_a_bundle_marking_a_field_erased_verifies_and_says_by_which_record(self):
        # With the erasure record, which then need not link to the decision, and without it.
        for seqs in ([0, 1, 2], [0, 2], [0, 1]):
            with self.subTest(entries=seqs):
                doc = self.bundle(seqs, erased={"applicant_name": {"erasure_seq": 2}})
                proven = av.verify_bundle(doc, self.trust).proven
                self.assertIn("0 erasable value(s) matched, 0 absent (withheld), 1 erased (applicant_name by seq 2)", proven[0])
                self.assertEqual(len(proven), len(seqs))
        path = os.path.join(tempfile.mkdtemp(), "bundle.json")
        self.addCleanup(os.unlink, path)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.bundle([0, 1, 2], erased={"applicant_name": {"erasure_seq": 2}}), f)
        with contextlib.redirect_stdout(io.StringIO()) as out:
            self.assertEqual(av.main(["bundle", path, "--key", self.signer.vkey]), 0)
        self.assertIn("1 erased (applicant_name by seq 2)", out.getvalue())

    def test_an_erased_field_without_a_commitment_fails(self):
        doc = self.bundle([0, 1], erased={"applicant_name": {"erasure_seq": 2}, "birth_date": {"erasure_seq": 2}})
        self.fails(doc, "record 0: erased field birth_date has no commitment in the record", 0)
        doc = self.bundle([0, 1])
        doc["entries"][1]["erased"] = {"applicant_name": {"erasure_seq": 2}}
        self.fails(doc, "record 1: erased field applicant_name has no commitment in the record", 1)

    def test_a_field_both_given_a_value_and_marked_erased_fails(self):
        doc = self.bundle([0, 1], erased={"applicant_name": {"erasure_seq": 2}}, values=True)
        self.fails(doc, "record 0: field applicant_name is both given a value and marked erased", 0)

    def test_an_erasure_seq_that_does_not_come_after_the_record_fails(self):
        doc = self.bundle([0, 1], erased={"applicant_name": {"erasure_seq": 0}})
        self.fails(doc, "record 0: field applicant_name is marked erased by record 0, which does not come after it", 0)
        # The next record may be the erasure; here one the bundle does not hold.
        av.verify_bundle(self.bundle([0], erased={"applicant_name": {"erasure_seq": 1}}), self.trust)

    def test_a_malformed_or_unknown_member_inside_an_erased_entry_fails(self):
        for mark in ({"erasure_seq": 2, "by": "x"}, {"erasure_sEq": 2}, {}, {"erasure_seq": 2.0},
                     {"erasure_seq": True}, {"erasure_seq": -1}, {"erasure_seq": 2**53}, {"erasure_seq": "2"}, 2):
            with self.subTest(mark=mark):
                with self.assertRaisesRegex(av.Failed, "record 0: erased field applicant_name (is malformed|has a malformed erasure_seq)"):
                    av.verify_bundle(self.bundle([0, 1], erased={"applicant_name": mark}), self.trust)
        for erased in ([], "applicant_name", False):
            with self.subTest(erased=erased):
                self.fails(self.bundle([0, 1], erased=erased), "record 0: erased is not an object", 0)
        doc = self.bundle([0, 1])
        doc["entries"][0]["erased_fields"] = {}
        self.fails(doc, "entry 0 is malformed", None)

    def test_a_held_record_named_as_the_erasure_must_be_an_erasure(self):
        doc = self.bundle([0, 1], erased={"applicant_name": {"erasure_seq": 1}})
        self.fails(doc, f"record 1 (event {event_id(1)}) is named as the erasure of field applicant_name of record 0, "
                        "but is a human_review event", 1)

    def test_a_held_erasure_that_does_not_erase_the_field_fails(self):
        for seq, member in ((3, "event_ids"), (4, "fields")):
            with self.subTest(erasure=seq):
                doc = self.bundle([0, 1, seq], erased={"applicant_name": {"erasure_seq": seq}})
                self.fails(doc, f"record {seq} (event {event_id(seq)}) is named as the erasure of field applicant_name "
                                f"of record 0, but its {member} do not include it", seq)

    def append(self, event_type, payload):
        """Signs one more record onto the fixture's chain; its seq."""
        seq, prev = len(self.records), self.hashes[-1]
        body = {"v": 1, "tenant": "acme-bank", "seq": seq, "prev": prev.hex(),
                "captured_at_us": 1_795_000_000_000_000 + seq, "event_id": event_id(seq),
                "event_type": event_type, "payload": payload, "erasable": {}, "key_id": self.key_id}
        digest = h(av.RECORD_DOMAIN, b"\x00", canonical(body))
        self.records.append(dict(body, hash=digest.hex(), sig=self.signer.key.sign(digest).hex()))
        self.hashes.append(digest)
        return seq

    def test_an_erasure_naming_no_records_proves_only_marks_of_its_own_subject(self):
        other = self.append("erasure", {"subject_ref": "subj-other", "reason": "erasure requested"})
        own = self.append("erasure", {"subject_ref": "subj-5d41402a", "reason": "erasure requested"})
        self.fails(self.bundle([0, other], erased={"applicant_name": {"erasure_seq": other}}),
                   f"record {other} (event {event_id(other)}) is named as the erasure of field applicant_name "
                   "of record 0, but its subject_ref do not include it", other)
        av.verify_bundle(self.bundle([0, own], erased={"applicant_name": {"erasure_seq": own}}), self.trust)

    def test_an_erasure_record_no_entry_names_must_link_to_the_decision(self):
        self.fails(self.bundle([0, 1, 2]), f"record 2 (event {event_id(2)}) does not link to decision {event_id(0)}", 2)


class SubjectPackage(unittest.TestCase):
    """The subject access package (FORMAT.md section 12b) on the records of `ErasedFields`, plus
    5, a decision of another subject, and 6, a review of it."""

    def setUp(self):
        ErasedFields.setUp(self)
        prev = self.hashes[-1]
        for event_type, payload in (
            ("decision", {"model_id": "credit-limit", "model_version": "4.2.0", "outcome": "declined",
                          "subject_ref": "subj-other", "oversight_mode": "automated"}),
            ("human_review", {"decision_id": event_id(5), "reviewer": "analyst-17", "action": "confirmed"}),
        ):
            seq = len(self.records)
            body = {"v": 1, "tenant": "acme-bank", "seq": seq, "prev": prev.hex(),
                    "captured_at_us": 1_795_000_000_000_000 + seq, "event_id": event_id(seq),
                    "event_type": event_type, "payload": payload, "erasable": {}, "key_id": self.key_id}
            digest = h(av.RECORD_DOMAIN, b"\x00", canonical(body))
            self.records.append(dict(body, hash=digest.hex(), sig=self.signer.key.sign(digest).hex()))
            prev = digest
        self.hashes = [bytes.fromhex(r["hash"]) for r in self.records]

    def lines(self, seqs, erased=None, trailer=None, subject="subj-5d41402a") -> list[str]:
        header = {"format": av.PACKAGE_FORMAT, "tenant": "acme-bank", "origin": ORIGIN, "subject_ref": subject,
                  "checkpoint": self.signer.note(len(self.hashes), mth(self.hashes)),
                  "keys": self.history, "verifier_keys": [self.signer.vkey]}
        out = [json.dumps(header)]
        for seq in seqs:
            entry = {"record": self.records[seq],
                     "inclusion_proof": [x.hex() for x in inclusion_path(seq, self.hashes)]}
            if seq == 0:
                if erased is None:
                    entry["erasable_values"] = {"applicant_name": {"salt": self.salt.hex(), "value": self.value}}
                else:
                    entry["erased"] = erased
            out.append(json.dumps(entry))
        out.append(json.dumps({"end": {"records": len(seqs) if trailer is None else trailer}}))
        return out

    def fails(self, lines: list[str], message: str, seq: int | None = None):
        with self.assertRaises(av.Failed) as caught:
            av.verify_package(iter(lines), self.trust)
        self.assertEqual(str(caught.exception), message)
        self.assertEqual(caught.exception.seq, seq)

    def test_a_package_of_the_subjects_records_verifies(self):
        proven = av.verify_package(iter(self.lines([0, 1, 2])), self.trust).proven
        self.assertEqual(proven[0], "3 record(s) concerning subject 'subj-5d41402a' (1 decision(s)) in the checkpoint of size 7")
        self.assertEqual(proven[1], "erasable values: 1 matched their commitments, 0 withheld, 0 erased")
        proven = av.verify_package(iter(self.lines([0, 1, 2], erased={"applicant_name": {"erasure_seq": 2}})), self.trust).proven
        self.assertEqual(proven[1], "erasable values: 0 matched their commitments, 0 withheld, 1 erased")
        # The other subject's own package.
        av.verify_package(iter(self.lines([5, 6], subject="subj-other")), self.trust)
        path = os.path.join(tempfile.mkdtemp(), "package.jsonl")
        self.addCleanup(os.unlink, path)
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(self.lines([0, 1, 2])) + "\n")
        with contextlib.redirect_stdout(io.StringIO()):
            self.assertEqual(av.main(["package", path, "--key", self.signer.vkey]), 0)

    def test_another_subjects_erasure_named_by_a_mark_does_not_concern_the_subject(self):
        # 7: a whole-subject erasure of subj-other; a forged mark names it for record 0's field.
        seq, prev = len(self.records), self.hashes[-1]
        body = {"v": 1, "tenant": "acme-bank", "seq": seq, "prev": prev.hex(),
                "captured_at_us": 1_795_000_000_000_000 + seq, "event_id": event_id(seq),
                "event_type": "erasure", "payload": {"subject_ref": "subj-other", "reason": "asked"},
                "erasable": {}, "key_id": self.key_id}
        digest = h(av.RECORD_DOMAIN, b"\x00", canonical(body))
        self.records.append(dict(body, hash=digest.hex(), sig=self.signer.key.sign(digest).hex()))
        self.hashes.append(digest)
        self.fails(self.lines([0, seq], erased={"applicant_name": {"erasure_seq": seq}}),
                   f"line 3: record {seq} (event {event_id(seq)}, erasure) does not concern subject 'subj-5d41402a'", seq)

    def test_a_record_of_another_subject_fails_naming_its_line(self):
        self.fails(self.lines([0, 1, 5]), f"line 4: record 5 (event {event_id(5)}, decision) does not concern subject 'subj-5d41402a'", 5)
        self.fails(self.lines([0, 6]), f"line 3: record 6 (event {event_id(6)}, human_review) does not concern subject 'subj-5d41402a'", 6)
        # A follow-up needs its decision earlier in the package.
        self.fails(self.lines([1, 2]), f"line 2: record 1 (event {event_id(1)}, human_review) does not concern subject 'subj-5d41402a'", 1)

    def test_a_changed_dropped_or_reordered_line_fails(self):
        changed = self.lines([0, 1, 2])
        changed[1] = changed[1].replace(self.value, "Jane Q. Roe")
        self.fails(changed, "line 2: record 0: erasable value applicant_name does not match its commitment", 0)
        dropped = self.lines([0, 1, 2])
        del dropped[2]
        self.fails(dropped, "line 4: the trailer counts 3 records, but the package holds 2")
        reordered = self.lines([0, 1, 2])
        reordered[2], reordered[3] = reordered[3], reordered[2]
        self.fails(reordered, "line 4: record 1 follows record 2: entries must increase", 1)
        self.fails(self.lines([0, 1, 2])[:-1], "the package ends without its trailer line: it is incomplete")
        self.fails(self.lines([0, 1]) + ['{"end":{"records":2}}'], "line 5: a line follows the trailer")

    def test_a_malformed_header_or_trailer_fails(self):
        lines = self.lines([0])
        header = json.loads(lines[0])
        for change in ({"from_seq": 0}, {"subject_ref": ""}, {"subject_ref": 7}):
            with self.subTest(change=change):
                bad = [json.dumps(dict(header, **change))] + lines[1:]
                with self.assertRaisesRegex(av.Failed, "^line 1: "):
                    av.verify_package(iter(bad), self.trust)
        for trailer in ('{"end":{"records":1,"last_seq":0}}', '{"end":{"records":"1"}}', '{"end":1}'):
            with self.subTest(trailer=trailer):
                self.fails(lines[:-1] + [trailer], 'line 3: malformed trailer (exactly {"end":{"records":N}})')


# --- The tiled log (C2SP tlog-tiles) ---------------------------------------------------------------

TILE_PATH = re.compile(
    r"^(?:tile/(?P<level>0|[1-9][0-9]*)|tile/(?P<entries>entries)|(?P<records>records))"
    r"/(?P<index>(?:x[0-9]{3}/)*[0-9]{3})(?:\.p/(?P<width>[1-9][0-9]*))?$"
)


def perfect_root(hashes: list[bytes]) -> bytes:
    while len(hashes) > 1:
        hashes = [h(b"\x01", hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
    return hashes[0]


def signed_records(signer: Signer, seqs, prev: bytes = bytes(32), wrong_prev_at: int | None = None) -> list[dict]:
    """Records `seqs` of tenant acme-bank, signed by `signer`, each linked to the one before (the
    first to `prev`); record `wrong_prev_at` links to a made-up hash instead."""
    public = signer.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key_id = av.key_id_of(public)
    records = []
    for seq in seqs:
        link = h(b"not the previous record") if seq == wrong_prev_at else prev
        body = {"v": 1, "tenant": "acme-bank", "seq": seq, "prev": link.hex(),
                "captured_at_us": 1_795_000_000_000_000 + seq, "event_id": event_id(seq),
                "event_type": "human_review", "payload": {"decision_id": event_id(0), "reviewer": f"analyst-{seq}"},
                "erasable": {}, "key_id": key_id}
        digest = h(av.RECORD_DOMAIN, b"\x00", canonical(body))
        records.append(dict(body, hash=digest.hex(), sig=signer.key.sign(digest).hex()))
        prev = digest
    return records


class SyntheticLog:
    """A tiled log built here from the spec, not from the code under test: the entries are record
    hashes, the level-0 tile hashes are SHA-256(0x00 || entry), each hash of level L+1 is the root
    of 256 hashes of level L, and the checkpoint is signed over the recursive RFC 9162 root.
    Like Auditex it serves the first W hashes of whatever it holds; `overrides` replaces a
    resource's body (bytes) or answers it with a status (int)."""

    def __init__(self, signer: Signer, entries: list[bytes], records: dict[int, dict] | None = None):
        self.entries, self.records = entries, records or {}
        leaves = [h(b"\x00", e) for e in entries]
        self.levels = [leaves]
        while len(self.levels[-1]) >= 256:
            below = self.levels[-1]
            self.levels.append([perfect_root(below[i : i + 256]) for i in range(0, len(below) - 255, 256)])
        self.checkpoint = signer.note(len(entries), mth(entries))
        self.overrides: dict[str, bytes | int] = {}
        self.requests: list[str] = []
        self.api_key: str | None = None
        self.authorizations: list[str | None] = []
        self.gzip = False

    @staticmethod
    def of_records(signer: Signer, records: list[dict]) -> "SyntheticLog":
        return SyntheticLog(signer, [bytes.fromhex(r["hash"]) for r in records], {r["seq"]: r for r in records})

    def resource(self, path: str) -> bytes | None:
        if path == "checkpoint":
            return self.checkpoint.encode()
        m = TILE_PATH.fullmatch(path)
        if m is None:
            return None
        index = int("".join(g.lstrip("x") for g in m["index"].split("/")))
        width = int(m["width"] or 256)
        first, end = index * 256, index * 256 + width
        if m["level"] is not None:
            level = int(m["level"])
            if level >= len(self.levels) or len(self.levels[level]) < end:
                return None
            return b"".join(self.levels[level][first:end])
        if len(self.entries) < end:
            return None
        if m["entries"]:
            return b"".join(len(e).to_bytes(2, "big") + e for e in self.entries[first:end])
        if not all(seq in self.records for seq in range(first, end)):
            return None
        return b"".join((json.dumps(self.records[s], separators=(",", ":")) + "\n").encode() for s in range(first, end))


class _LogHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        log: SyntheticLog = self.server.log
        self.server.log.requests.append(self.path)
        log.authorizations.append(self.headers.get("Authorization"))
        if log.api_key is not None and self.headers.get("Authorization") != f"Bearer {log.api_key}":
            return self.answer(401, b"")
        path = self.path[len("/log/"):] if self.path.startswith("/log/") else None
        override = log.overrides.get(path)
        if isinstance(override, int):
            return self.answer(override, b"", {"Location": "/log/elsewhere"} if 300 <= override < 400 else {})
        body = override if override is not None else (log.resource(path) if path is not None else None)
        if body is None:
            return self.answer(404, b"")
        headers = {}
        if log.gzip and "gzip" in (self.headers.get("Accept-Encoding") or ""):
            body, headers = gzip.compress(body), {"Content-Encoding": "gzip"}
        self.answer(200, body, headers)

    def answer(self, status: int, body: bytes, headers: dict | None = None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class ServesLogs:
    """For a test class: a local HTTP server on loopback serving the SyntheticLog set as
    `server.log` under the prefix `url`."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _LogHandler)
        cls.thread = threading.Thread(target=cls.server.serve_forever, daemon=True)
        cls.thread.start()
        cls.url = f"http://127.0.0.1:{cls.server.server_address[1]}/log/"

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()
        super().tearDownClass()


class TiledLogFromTiles(ServesLogs, unittest.TestCase):
    """`auditex_verify.py tiles` against a synthetic log served over plain HTTP on loopback."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.signer = Signer()
        cls.records = signed_records(cls.signer, range(600))
        cls.dir = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()
        super().tearDownClass()

    def serve(self, log: SyntheticLog) -> SyntheticLog:
        self.server.log = log
        return log

    def serve_records(self, size: int) -> SyntheticLog:
        return self.serve(SyntheticLog.of_records(self.signer, self.records[:size]))

    def saved(self, size: int, entries: list[bytes] | None = None) -> str:
        """A checkpoint of the first `size` entries saved to a file."""
        entries = entries if entries is not None else [bytes.fromhex(r["hash"]) for r in self.records]
        path = os.path.join(self.dir.name, f"saved-{size}.checkpoint")
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(self.signer.note(size, mth(entries[:size])))
        return path

    def run_tiles(self, *args: str, api_key: str | None = None, key: str | None = None, url: str | None = None,
                  trust: list[str] | None = None) -> tuple[int, dict]:
        """Runs `tiles` with AUDITEX_API_KEY set to `api_key` (or unset), trusting `trust` (by
        default --key of `key` or of the test's signer)."""
        out = io.StringIO()
        env = {k: v for k, v in os.environ.items() if k != av.API_KEY_VARIABLE}
        if api_key is not None:
            env[av.API_KEY_VARIABLE] = api_key
        with mock.patch.dict(os.environ, env, clear=True), contextlib.redirect_stdout(out):
            code = av.main(["tiles", url or self.url, *args, *(trust or ["--key", key or self.signer.vkey]), "--json"])
        return code, json.loads(out.getvalue())

    def assert_fails(self, *args: str, message: str, seq: int | None = None):
        code, out = self.run_tiles(*args)
        self.assertEqual(code, 1, out)
        self.assertFalse(out["verified"])
        self.assertIn(message, out["failure"]["message"])
        if seq is not None:
            self.assertEqual(out["failure"]["seq"], seq)

    def test_tile_paths_group_the_index_in_threes_and_name_partial_widths(self):
        self.assertEqual(av.tile_index_path(0, 256), "000")
        self.assertEqual(av.tile_index_path(273, 112), "273.p/112")
        self.assertEqual(av.tile_index_path(1000, 256), "x001/000")
        self.assertEqual(av.tile_index_path(1_234_067, 1), "x001/x234/067.p/1")

    def test_root_leaves_consistency_and_every_record_verify_at_sizes_around_a_tile_edge(self):
        for size in (1, 2, 255, 256, 257, 511, 512, 513, 600):
            leaves = sorted({0, size // 2, size - 1})
            for old in sorted({1, size // 3, size - 1, size} - {0}):
                with self.subTest(size=size, old=old):
                    self.serve_records(size)
                    args = [a for n in leaves for a in ("--leaf", str(n))]
                    code, out = self.run_tiles(*args, "--old", self.saved(old), "--all")
                    self.assertEqual(code, 0, out)
                    proven = out["proven"]
                    self.assertEqual(proven[0].split(", signed")[0],
                                     f"checkpoint of {ORIGIN}: size {size}, root {mth([bytes.fromhex(r['hash']) for r in self.records[:size]]).hex()}")
                    for n, line in zip(leaves, proven[2:]):
                        self.assertIn(f"record {n} (human_review {event_id(n)}) hash {self.records[n]['hash']}: leaf {n} ", line)
                    self.assertIn(f"extends the one of size {old} ", proven[2 + len(leaves)])
                    self.assertIn(f"{size} records 0..{size - 1} in {(size + 255) // 256} bundle(s)", proven[3 + len(leaves)])

    def test_the_root_needs_only_the_tiles_of_the_compact_range(self):
        self.serve_records(600)
        code, out = self.run_tiles()
        self.assertEqual(code, 0, out)
        # 600 = 512 + 64 + 16 + 8: node 0 of level 9 (tile 1/000.p/2, both hashes), the rest in the
        # partial level-0 tile 002 of width 88; nothing else is fetched.
        self.assertEqual(self.server.log.requests, ["/log/checkpoint", "/log/tile/1/000.p/2", "/log/tile/0/002.p/88"])

    def test_a_tree_bigger_than_65536_leaves_verifies_from_a_couple_of_tiles_per_level(self):
        size = 70_000
        entries = record_hashes(size)
        records = {}
        for index in (0, 137, 273):  # the bundles of the leaves asked for, as real records
            first = index * 256
            for r in signed_records(self.signer, range(first, min(first + 256, size))):
                records[r["seq"]] = r
                entries[r["seq"]] = bytes.fromhex(r["hash"])
        log = self.serve(SyntheticLog(self.signer, entries, records))
        code, out = self.run_tiles()
        self.assertEqual(code, 0, out)
        # tlog-tiles: a tree of 70,000 has a partial level-2 tile of width 1, a partial level-1 tile
        # of width 17 and a partial level-0 tile of width 112; its root needs exactly those.
        self.assertEqual(log.requests, ["/log/checkpoint", "/log/tile/2/000.p/1", "/log/tile/1/001.p/17", "/log/tile/0/273.p/112"])
        code, out = self.run_tiles("--leaf", "0", "--leaf", "35100", "--leaf", "69999",
                                   "--old", self.saved(65_536, entries))
        self.assertEqual(code, 0, out)
        self.assertIn("record 69999 ", out["proven"][4])
        for old in (1, 256, 65_535, 69_999, 70_000):
            with self.subTest(old=old):
                code, out = self.run_tiles("--old", self.saved(old, entries))
                self.assertEqual(code, 0, out)

    def test_an_empty_log_verifies_without_a_tile_and_a_leaf_beyond_the_tree_cannot_be_proven(self):
        log = self.serve(SyntheticLog(self.signer, []))
        code, out = self.run_tiles("--all")
        self.assertEqual(code, 0, out)
        self.assertEqual(log.requests, ["/log/checkpoint"])
        code, out = self.run_tiles("--leaf", "0")
        self.assertEqual(code, 2, out)
        self.assertEqual(out["error"], "could not read input: --leaf 0: the checkpoint's tree has 0 records")
        self.serve_records(10)
        code, out = self.run_tiles("--leaf", "3", "--leaf", "10")
        self.assertEqual(code, 2, out)
        self.assertIn("--leaf 10: the checkpoint's tree has 10 records", out["error"])

    def test_a_flipped_byte_in_a_tile_fails(self):
        for path in ("tile/1/000.p/2", "tile/0/002.p/88"):
            with self.subTest(path=path):
                log = self.serve_records(600)
                body = bytearray(log.resource(path))
                body[40] ^= 1
                log.overrides[path] = bytes(body)
                self.assert_fails(message="the tiles hash to root")
        # A level-0 tile outside the root's compact range is checked against its entries and
        # through the inclusion proof.
        log = self.serve_records(600)
        body = bytearray(log.resource("tile/0/000"))
        body[32 * 7] ^= 1
        log.overrides["tile/0/000"] = bytes(body)
        self.assert_fails("--leaf", "9", message="entry 7 does not hash to leaf 7 of tile/0/000", seq=7)

    def test_a_tile_of_another_width_or_of_broken_hashes_fails(self):
        log = self.serve_records(600)
        full = log.resource("tile/0/002.p/88")
        for what, body, message in (
            ("one hash short", full[:-32], "87 hashes, but the tile asked for has 88"),
            ("one hash more", full + full[:32], "larger than the 2816 bytes it can be"),
            ("a byte short", full[:-1], "is not a whole number of 32-byte hashes"),
            ("empty", b"", "0 hashes, but the tile asked for has 88"),
        ):
            with self.subTest(what):
                log.overrides["tile/0/002.p/88"] = body
                self.assert_fails(message=message)

    def test_a_truncated_or_overlong_entry_bundle_fails(self):
        log = self.serve_records(600)
        bundle = log.resource("tile/entries/001")
        for what, body, message in (
            ("a byte short", bundle[:-1], "tile/entries/001: truncated at byte 8670 (the entry runs past the end)"),
            ("half a length prefix more", bundle + b"\x00", "tile/entries/001: truncated at byte 8704 (half a length prefix)"),
            ("an entry more", bundle + bundle[:34], "tile/entries/001: 257 entries, but the bundle asked for has 256"),
            ("an entry less", bundle[:-34], "tile/entries/001: 255 entries, but the bundle asked for has 256"),
        ):
            with self.subTest(what):
                log.overrides["tile/entries/001"] = body
                self.assert_fails("--leaf", "300", message=message)

    def test_an_entry_that_is_not_a_32_byte_record_hash_fails_wherever_it_is(self):
        # As the Rust verifier: every entry of a bundle is a record hash, also at positions not
        # asked for. The last entry is replaced by a 33-byte one; --leaf asks for the first.
        log = self.serve_records(600)
        bundle = log.resource("tile/entries/001")
        log.overrides["tile/entries/001"] = bundle[:-34] + b"\x00\x21" + bundle[-32:] + b"\x00"
        self.assert_fails("--leaf", "256", message="tile/entries/001: an entry of 33 bytes, not a 32-byte record hash")

    def test_an_entry_that_is_not_its_leafs_preimage_fails(self):
        log = self.serve_records(600)
        bundle = bytearray(log.resource("tile/entries/001"))
        bundle[34 * 5 + 2] ^= 0x80
        log.overrides["tile/entries/001"] = bytes(bundle)
        self.assert_fails("--all", message="entry 261 does not hash to leaf 261 of tile/0/001", seq=261)

    def test_a_changed_missing_or_misplaced_record_fails(self):
        lines = self.serve_records(600).resource("records/001").decode().splitlines(keepends=True)
        changed = lines[4].replace("analyst-260", "analyst-999")
        for what, body, message, seq in (
            ("changed", lines[:4] + [changed] + lines[5:], "record 260 (event", 260),
            ("missing", lines[:-1], "records/001: 255 records, but the bundle asked for has 256", 511),
            ("swapped", lines[:4] + [lines[5], lines[4]] + lines[6:], "record 261 stands where record 260 belongs", 260),
            ("no final newline", lines[:-1] + [lines[-1][:-1]], "line 256: the records bundle does not end with a newline", None),
        ):
            with self.subTest(what):
                log = self.serve_records(600)
                log.overrides["records/001"] = "".join(body).encode()
                self.assert_fails("--leaf", "260", message=message, seq=seq)

    def test_a_record_that_is_not_its_entry_fails(self):
        # Record 300 of another log, well signed, in the place of this log's record 300.
        other = signed_records(self.signer, range(300, 301), prev=h(b"another log"))[0]
        log = self.serve_records(600)
        log.records = {**log.records, 300: other}
        self.assert_fails("--leaf", "300", message="hashes to " + other["hash"], seq=300)

    def test_a_leaf_rewritten_in_its_record_entry_and_level_0_tile_is_caught_by_its_inclusion_proof(self):
        # The root's tiles (1/000.p/2 and 0/002.p/88) are untouched, so only the proof of leaf 7
        # through the level-8 hash of tile 0/000 can tell.
        log = self.serve_records(600)
        forged = signed_records(self.signer, [7], prev=h(b"forged"))[0]
        log.records = {**log.records, 7: forged}
        log.entries = list(log.entries)
        log.entries[7] = bytes.fromhex(forged["hash"])
        log.levels[0] = list(log.levels[0])
        log.levels[0][7] = h(b"\x00", log.entries[7])
        # A leaf whose proof passes tile 0/000 only as its level-8 hash still verifies.
        code, out = self.run_tiles("--leaf", "300")
        self.assertEqual(code, 0, out)
        self.assert_fails("--leaf", "7", message="record 7 is not proven to be in the tree of size 600", seq=7)
        self.assert_fails("--all", message="record 7 (event", seq=7)

    def test_all_recomputes_the_root_from_every_leaf(self):
        # The last record of a 512-leaf log rewritten (well linked and signed) in its record, entry
        # and level-0 tile: the root's one tile (1/000.p/2) is untouched, so the tiles' root still
        # matches and only the root of all the leaves read tells.
        log = self.serve_records(512)
        forged = signed_records(self.signer, [511], prev=bytes.fromhex(self.records[510]["hash"]))[0]
        forged["payload"]["reviewer"] = "someone else"
        body = {k: v for k, v in forged.items() if k not in ("hash", "sig")}
        digest = h(av.RECORD_DOMAIN, b"\x00", canonical(body))
        forged = dict(body, hash=digest.hex(), sig=self.signer.key.sign(digest).hex())
        log.records = {**log.records, 511: forged}
        log.entries = log.entries[:511] + [digest]
        log.levels[0] = log.levels[0][:511] + [h(b"\x00", digest)]
        code, out = self.run_tiles()
        self.assertEqual(code, 0, out)
        self.assert_fails("--all", message="the 512 leaves hash to root")

    def test_a_record_signed_before_a_key_rotation_needs_the_key_history(self):
        retired, current = Signer(seed=bytes([1]) * 32), Signer(seed=bytes([2]) * 32)
        records = signed_records(retired, range(100))
        self.serve(SyntheticLog.of_records(current, records))
        code, out = self.run_tiles("--leaf", "42", key=current.vkey)
        self.assertEqual(code, 1, out)
        self.assertIn("record 42 is signed by key", out["failure"]["message"])
        self.assertIn("--key-history", out["failure"]["message"])
        history = os.path.join(self.dir.name, "history.json")
        with open(history, "w", encoding="utf-8") as f:
            f.write(key_history(ORIGIN, [(retired, 0, 100), (current, 100, None)]))
        code, out = self.run_tiles("--leaf", "42", trust=["--key-history", history])
        self.assertEqual(code, 0, out)

    def test_every_record_links_to_the_one_before_with_all(self):
        records = signed_records(self.signer, range(400), wrong_prev_at=300)
        self.serve(SyntheticLog.of_records(self.signer, records))
        # Every record hashes to its entry, so proving one leaf passes; reading them all does not.
        code, out = self.run_tiles("--leaf", "300")
        self.assertEqual(code, 0, out)
        self.assert_fails("--all", message="record 300 (event", seq=300)
        self.assertIn("links to", self.run_tiles("--all")[1]["failure"]["message"])

    def test_a_rolled_back_forked_or_rewritten_log_is_not_consistent_with_a_saved_checkpoint(self):
        self.serve_records(300)
        self.assert_fails("--old", self.saved(600), message="the log was rolled back", seq=300)
        forked = [bytes.fromhex(r["hash"]) for r in signed_records(self.signer, range(300), prev=h(b"fork"))]
        self.assert_fails("--old", self.saved(300, forked), message="the log forked")
        self.assert_fails("--old", self.saved(200, forked), message="the consistency proof leads to old root")

    def test_a_checkpoint_under_an_untrusted_key_or_of_a_saved_other_log_fails(self):
        self.serve_records(300)
        code, out = self.run_tiles(key=Signer(seed=bytes([9]) * 32).vkey)
        self.assertEqual(code, 1, out)
        self.assertIn("the served checkpoint: the checkpoint is not signed by a trusted key", out["failure"]["message"])
        other = Signer(origin="auditex.test/ledger/other-bank")
        path = os.path.join(self.dir.name, "other.checkpoint")
        with open(path, "w", encoding="utf-8") as f:
            f.write(other.note(10, mth(record_hashes(10))))
        code, out = self.run_tiles("--old", path, trust=["--key", self.signer.vkey, "--key", other.vkey])
        self.assertEqual(code, 1, out)
        self.assertIn("two logs", out["failure"]["message"])

    def test_a_404_for_a_tile_the_checkpoint_needs_fails_and_other_http_errors_cannot_be_judged(self):
        log = self.serve_records(600)
        log.overrides["tile/0/002.p/88"] = 404
        self.assert_fails(message="404 Not Found, but the checkpoint of size 600 says tile/0/002.p/88 exists")
        log.overrides = {"records/000": 404}
        self.assert_fails("--leaf", "1", message="says records/000 exists")
        for path, status in (("tile/0/002.p/88", 500), ("checkpoint", 404), ("checkpoint", 503), ("tile/entries/000", 302)):
            with self.subTest(path=path, status=status):
                log.overrides = {path: status}
                code, out = self.run_tiles("--leaf", "1")
                self.assertEqual(code, 2, out)
                self.assertIn(f"GET {self.url}{path}: HTTP {status} ", out["error"])
        # Nothing listens on a port just closed.
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            closed = s.getsockname()[1]
        code, out = self.run_tiles(url=f"http://127.0.0.1:{closed}/log")
        self.assertEqual(code, 2, out)

    def test_the_api_key_comes_from_the_environment_as_a_bearer_token_and_is_never_printed(self):
        log = self.serve_records(300)
        log.api_key = "atx_0123456789abcdef"
        code, out = self.run_tiles("--leaf", "7")
        self.assertEqual(code, 2, out)
        self.assertIn("HTTP 401", out["error"])
        log.requests, log.authorizations = [], []
        code, out = self.run_tiles("--leaf", "7", "--all", api_key=log.api_key)
        self.assertEqual(code, 0, out)
        self.assertEqual(set(log.authorizations), {"Bearer atx_0123456789abcdef"})
        code, out = self.run_tiles(api_key="atx_wrong")
        self.assertEqual(code, 2, out)
        self.assertNotIn("atx_wrong", json.dumps(out))
        # A key is sent over plain http to a loopback address only.
        code, out = self.run_tiles(api_key=log.api_key, url="http://ledger.example.invalid/log/")
        self.assertEqual(code, 2, out)
        self.assertIn("refusing to send the API key over plain http", out["error"])
        self.assertNotIn(log.api_key, json.dumps(out))

    def test_gzip_bodies_are_accepted(self):
        log = self.serve_records(600)
        log.gzip = True
        code, out = self.run_tiles("--leaf", "599", "--all")
        self.assertEqual(code, 0, out)

    def test_the_url_works_with_or_without_its_trailing_slash(self):
        self.serve_records(10)
        for url in (self.url, self.url.rstrip("/")):
            with self.subTest(url=url):
                self.assertEqual(self.run_tiles("--leaf", "3", url=url)[0], 0)

    def test_the_command_line_needs_a_url_and_only_tiles_options(self):
        for args in (["tiles", "--key", self.signer.vkey],
                     ["tiles", self.url, "--leaf", "-1", "--key", self.signer.vkey],
                     ["tiles", self.url, "--new", "x", "--key", self.signer.vkey],
                     ["export", "x.jsonl", "--all", "--key", self.signer.vkey]):
            with self.subTest(args=args), contextlib.redirect_stderr(io.StringIO()), self.assertRaises(SystemExit) as exit_:
                av.main(args)
            self.assertEqual(exit_.exception.code, 2)
        for url in ("ftp://127.0.0.1/log/", "http://user:pw@127.0.0.1/log/", "http://127.0.0.1/log/?x=1"):
            with self.subTest(url=url):
                self.assertEqual(self.run_tiles(url=url)[0], 2)


# --- Witness cosignatures (C2SP tlog-cosignature) ---------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Witness:
    """A witness with a key made up for the test, cosigning as the C2SP tlog-cosignature spec says
    (Ed25519, cosignature/v1), written here from the spec, not from the code under test."""

    def __init__(self, name: str, seed: int):
        self.name = name
        self.key = Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)
        public = self.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.key_id = h(name.encode(), b"\n", b"\x04", public)[:4]
        self.vkey = f"{name}+{self.key_id.hex()}+{b64(bytes([4]) + public)}"

    def line(self, note: str, timestamp: int, signer: Ed25519PrivateKey | None = None,
             signed_timestamp: int | None = None) -> str:
        """The cosignature line on `note` (a signed checkpoint) at `timestamp`; made with another
        key (`signer`) or over another time (`signed_timestamp`) for forgeries."""
        text = note[: note.index("\n\n") + 1]
        signed = timestamp if signed_timestamp is None else signed_timestamp
        sig = (signer or self.key).sign(f"cosignature/v1\ntime {signed}\n{text}".encode())
        return f"\u2014 {self.name} {b64(self.key_id + timestamp.to_bytes(8, 'big') + sig)}\n"


# The records of the fixtures below are captured at CAPTURED_S seconds and a few µs.
CAPTURED_S = 1_795_000_000


class WitnessPolicyOnEveryKind(ServesLogs, unittest.TestCase):
    """--witness VKEY ... --quorum N on evidence of every kind, built on the records of
    `SubjectPackage` (0..6, captured at CAPTURED_S seconds + seq µs), whose checkpoint of size 7
    carries cosignature lines made here."""

    KINDS = ("export", "bundle", "package", "proof", "consistency", "tiles")
    # The latest capture time of the records each kind proves, in µs past CAPTURED_S seconds.
    CAPTURED_OFFSET_US = {"export": 6, "bundle": 1, "package": 2, "proof": 1, "tiles": 1}

    write = ConsistencyCommand.write

    def setUp(self):
        SubjectPackage.setUp(self)
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.note = self.signer.note(len(self.hashes), mth(self.hashes))
        self.w1, self.w2, self.w3 = (Witness(f"witness.test/w{i}", 40 + i) for i in (1, 2, 3))
        self.stranger = Witness("witness.test/stranger", 49)

    def evidence(self, kind: str, checkpoint: str) -> list[str]:
        """The command line verifying evidence of `kind` whose checkpoint is `checkpoint`."""
        if kind == "bundle":
            return ["bundle", self.write("b.json", json.dumps(dict(ErasedFields.bundle(self, [0, 1]), checkpoint=checkpoint)))]
        if kind == "package":
            lines = SubjectPackage.lines(self, [0, 1, 2])
            lines[0] = json.dumps(dict(json.loads(lines[0]), checkpoint=checkpoint))
            return ["package", self.write("p.jsonl", "\n".join(lines) + "\n")]
        if kind == "export":
            header = {"format": av.EXPORT_FORMAT, "tenant": "acme-bank", "origin": ORIGIN, "from_seq": 0,
                      "checkpoint": checkpoint, "keys": self.history, "verifier_keys": [self.signer.vkey]}
            last = len(self.records) - 1
            trailer = {"end": {"records": len(self.records), "last_seq": last,
                               "inclusion_proof": [x.hex() for x in inclusion_path(last, self.hashes)]}}
            return ["export", self.write("e.jsonl", "".join(json.dumps(x) + "\n" for x in [header, *self.records, trailer]))]
        if kind == "proof":
            hashes = "".join(b64(x) + "\n" for x in inclusion_path(1, self.hashes))
            text = f"{av.TLOG_PROOF_HEADER}\nextra {b64(json.dumps(self.records[1]).encode())}\nindex 1\n{hashes}\n{checkpoint}"
            return ["proof", self.write("r.proof", text)]
        if kind == "consistency":
            old = self.signer.note(3, mth(self.hashes[:3]))
            proof = json.dumps({"format": av.CONSISTENCY_PROOF_FORMAT, "from": 3, "to": len(self.hashes),
                                "proof": [p.hex() for p in prove(3, self.hashes)], "from_checkpoint": old,
                                "to_checkpoint": checkpoint})
            return ["consistency", "--old", self.write("old.cp", old), "--new", self.write("new.cp", checkpoint),
                    "--proof", self.write("c.proof", proof)]
        assert kind == "tiles"
        log = SyntheticLog.of_records(self.signer, self.records)
        log.checkpoint = checkpoint
        self.server.log = log
        return ["tiles", self.url, "--leaf", "1"]

    def run_verifier(self, argv: list[str], *policy: str) -> tuple[int, dict]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            code = av.main([*argv, "--key", self.signer.vkey, *policy, "--json"])
        return code, json.loads(out.getvalue())

    @staticmethod
    def policy(*witnesses: Witness, quorum: int | None = None) -> list[str]:
        args = [a for w in witnesses for a in ("--witness", w.vkey)]
        return args + (["--quorum", str(quorum)] if quorum is not None else [])

    def test_cosignature_lines_are_ignored_without_a_witness_policy(self):
        # A signed note's lines of unknown keys are ignored: cosignatures, even one made before the
        # records were captured, and a line of no known type leave the evidence verified.
        junk = f"\u2014 example.com/other {b64(bytes([1, 2, 3, 4]) + bytes(40))}\n"
        note = self.note + self.w1.line(self.note, CAPTURED_S + 5) + self.stranger.line(self.note, 7) + junk
        for kind in self.KINDS:
            with self.subTest(kind=kind):
                code, out = self.run_verifier(self.evidence(kind, note))
                self.assertEqual(code, 0, out)
                self.assertNotIn("cosignatures", out)
                self.assertNotIn("witness", out["proven"][-1])

    def test_a_quorum_of_two_of_three_witnesses_verifies_every_kind_and_names_the_witnessed_time(self):
        t1, t2 = CAPTURED_S + 60, CAPTURED_S + 3600
        note = self.note + self.w2.line(self.note, t2) + self.w1.line(self.note, t1)
        for kind in self.KINDS:
            with self.subTest(kind=kind):
                code, out = self.run_verifier(self.evidence(kind, note), *self.policy(self.w1, self.w2, self.w3, quorum=2))
                self.assertEqual(code, 0, out)
                self.assertEqual(out["cosignatures"], [{"witness": self.w2.name, "timestamp": t2},
                                                       {"witness": self.w1.name, "timestamp": t1}])
                # Two witnesses had seen it by the later of the two cosignatures (t2).
                self.assertEqual(
                    out["proven"][-1],
                    f"the checkpoint is cosigned by 2 of the trusted witnesses ({self.w2.name}, {self.w1.name}; the "
                    f"policy asks for 2): it existed, consistent with what each of them had seen, no later than "
                    f"2026-11-18T12:06:40+00:00 (witnessed time)"
                    + ("" if kind == "consistency" else ", and not before its records were captured"))
        # One witness of the two given suffices with --quorum 1: then it is the earlier time.
        code, out = self.run_verifier(self.evidence("proof", note), *self.policy(self.w1, self.w2, quorum=1))
        self.assertEqual(code, 0, out)
        self.assertIn("no later than 2026-11-18T11:07:40+00:00 (witnessed time)", out["proven"][-1])
        # Without --json: one more proven line.
        text = io.StringIO()
        with contextlib.redirect_stdout(text):
            code = av.main([*self.evidence("proof", note), "--key", self.signer.vkey, *self.policy(self.w1, self.w2)])
        self.assertEqual(code, 0)
        self.assertIn(f"  - the checkpoint is cosigned by 2 of the trusted witnesses ({self.w2.name}, {self.w1.name};",
                      text.getvalue())

    def test_a_quorum_not_met_fails_naming_the_count_and_the_witnesses_missing(self):
        note = self.note + self.w1.line(self.note, CAPTURED_S + 60) + self.w2.line(self.note, CAPTURED_S + 61)
        for kind in self.KINDS:
            with self.subTest(kind=kind):
                # Without --quorum every witness given must have cosigned.
                code, out = self.run_verifier(self.evidence(kind, note), *self.policy(self.w1, self.w2, self.w3))
                self.assertEqual(code, 1, out)
                self.assertFalse(out["verified"])
                self.assertEqual(
                    out["failure"]["message"],
                    "witness quorum not met: the checkpoint carries valid cosignatures of 2 of the 3 trusted witnesses "
                    f"({self.w1.name}, {self.w2.name}), the policy asks for 3; no valid cosignature of {self.w3.name}")
                self.assertEqual(len(out["cosignatures"]), 2)
        code, out = self.run_verifier(self.evidence("bundle", self.note), *self.policy(self.w1))
        self.assertEqual(code, 1, out)
        self.assertIn("valid cosignatures of 0 of the 1 trusted witnesses (none)", out["failure"]["message"])

    def test_a_forged_cosignature_is_not_counted(self):
        t = CAPTURED_S + 60
        other = self.signer.note(len(self.hashes) - 1, mth(self.hashes[:-1]))
        forged = {
            "signed by another key": self.w1.line(self.note, t, signer=self.stranger.key),
            "a changed timestamp": self.w1.line(self.note, t, signed_timestamp=t + 1),
            "made for another checkpoint": self.w1.line(other, t),
            "the log's signature line renamed": self.note.split("\n\n")[1].replace(ORIGIN, self.w1.name),
            "timestamp 0": self.w1.line(self.note, 0),
            "timestamp 2^63": self.w1.line(self.note, 2**63),
            "a short signature": f"\u2014 {self.w1.name} {b64(self.w1.key_id + t.to_bytes(8, 'big') + bytes(60))}\n",
        }
        for what, line in forged.items():
            with self.subTest(forged=what):
                code, out = self.run_verifier(self.evidence("proof", self.note + line), *self.policy(self.w1))
                self.assertEqual(code, 1, out)
                self.assertEqual(out["cosignatures"], [])
                self.assertIn("cosignatures of 0 of the 1", out["failure"]["message"])
                # Next to a valid line of the same witness, only the valid one counts.
                good = self.w1.line(self.note, t + 5)
                code, out = self.run_verifier(self.evidence("proof", self.note + line + good), *self.policy(self.w1))
                self.assertEqual(code, 0, out)
                self.assertEqual(out["cosignatures"], [{"witness": self.w1.name, "timestamp": t + 5}])

    def test_a_witness_counts_once_with_its_earliest_valid_cosignature(self):
        note = (self.note + self.w1.line(self.note, CAPTURED_S + 60) + self.w1.line(self.note, CAPTURED_S + 30)
                + self.w1.line(self.note, CAPTURED_S + 90))
        code, out = self.run_verifier(self.evidence("export", note), *self.policy(self.w1, self.w2, quorum=1))
        self.assertEqual(code, 0, out)
        self.assertEqual(out["cosignatures"], [{"witness": self.w1.name, "timestamp": CAPTURED_S + 30}])
        code, out = self.run_verifier(self.evidence("export", note), *self.policy(self.w1, self.w2, quorum=2))
        self.assertEqual(code, 1, out)
        # One key given twice is one witness: the default quorum is 1.
        code, out = self.run_verifier(self.evidence("export", note), *self.policy(self.w1, self.w1))
        self.assertEqual(code, 0, out)

    def test_a_line_of_a_witness_not_trusted_is_ignored(self):
        note = self.note + self.stranger.line(self.note, CAPTURED_S + 10) + self.w1.line(self.note, CAPTURED_S + 20)
        code, out = self.run_verifier(self.evidence("bundle", note), *self.policy(self.w1))
        self.assertEqual(code, 0, out)
        self.assertEqual(out["cosignatures"], [{"witness": self.w1.name, "timestamp": CAPTURED_S + 20}])
        # The stranger's line under a trusted witness's name (its key id is the stranger's) neither.
        renamed = self.stranger.line(self.note, CAPTURED_S + 10).replace(self.stranger.name, self.w2.name)
        code, out = self.run_verifier(self.evidence("bundle", self.note + renamed), *self.policy(self.w2))
        self.assertEqual(code, 1, out)
        self.assertEqual(out["cosignatures"], [])

    def test_a_cosignature_made_before_the_records_were_captured_fails(self):
        for kind in self.KINDS:
            captured_us = CAPTURED_S * 1_000_000 + self.CAPTURED_OFFSET_US.get(kind, 0)
            with self.subTest(kind=kind):
                # A cosignature in the second the last record was captured in is not before it.
                in_time = self.note + self.w1.line(self.note, CAPTURED_S) + self.w2.line(self.note, CAPTURED_S + 1)
                code, out = self.run_verifier(self.evidence(kind, in_time), *self.policy(self.w1, self.w2))
                self.assertEqual(code, 0, out)
                # Every counted cosignature is held to it, not only the quorum's.
                early = self.note + self.w1.line(self.note, CAPTURED_S + 1) + self.w2.line(self.note, CAPTURED_S - 1)
                code, out = self.run_verifier(self.evidence(kind, early), *self.policy(self.w1, self.w2, quorum=1))
                if kind == "consistency":  # no record, no capture time
                    self.assertEqual(code, 0, out)
                    continue
                self.assertEqual(code, 1, out)
                self.assertEqual(
                    out["failure"]["message"],
                    f"signed time before capture: witness {self.w2.name} cosigned the checkpoint at "
                    f"2026-11-18T11:06:39+00:00 ({CAPTURED_S - 1} s), before the latest capture time of its records "
                    f"({captured_us} µs since the epoch): the capture times or the witness's clock are wrong")

    def test_a_cosignature_in_the_second_of_the_capture_time_is_not_before_it(self):
        # Cosignature times are whole seconds, capture times microseconds: t is before a capture at
        # c µs only when all of second t is, (t + 1) * 10^6 <= c.
        policy = av.WitnessPolicy((av.VerifierKey.parse(self.w1.vkey, av.KEY_TYPE_COSIGNATURE_V1),), 1)
        cosigned = [av.Cosignature(policy.witnesses[0], CAPTURED_S)]
        for captured_us in (CAPTURED_S * 1_000_000, (CAPTURED_S + 1) * 1_000_000 - 1):
            self.assertIn("witnessed time", av.check_witnessed(cosigned, policy, captured_us))
        with self.assertRaisesRegex(av.Failed, "^signed time before capture: "):
            av.check_witnessed(cosigned, policy, (CAPTURED_S + 1) * 1_000_000)

    def test_a_quorum_without_witnesses_beyond_them_or_a_bad_witness_key_cannot_be_used(self):
        note = self.note + self.w1.line(self.note, CAPTURED_S + 60)
        argv = self.evidence("proof", note)
        for policy in (["--quorum", "1"], self.policy(self.w1, quorum=2), self.policy(self.w1, quorum=0),
                       self.policy(self.w1, self.w1, quorum=2), self.policy(self.w1, quorum=-1),
                       ["--witness", self.signer.vkey], ["--witness", self.w1.vkey.replace("+", "-", 1)],
                       ["--witness", self.w1.vkey.replace("witness.test/w1", "witness.test/w2")]):
            with self.subTest(policy=policy):
                code, out = self.run_verifier(argv, *policy)
                self.assertEqual(code, 2, out)
                self.assertIn("error", out)
        # Evidence that fails is not judged under an unusable policy either.
        code, _ = self.run_verifier(self.evidence("proof", note.replace("\n7\n", "\n8\n")), "--quorum", "1")
        self.assertEqual(code, 2)

    def test_one_key_under_two_names_cannot_make_a_quorum_of_two(self):
        # The same private key as w1 under another name: its two lines would otherwise count as
        # two witnesses. The Rust verifier refuses such a command line too.
        twin = Witness("witness.test/twin", 0)
        twin.key = self.w1.key
        public = twin.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        twin.key_id = h(twin.name.encode(), b"\n", b"\x04", public)[:4]
        twin.vkey = f"{twin.name}+{twin.key_id.hex()}+{b64(bytes([4]) + public)}"
        note = self.note + self.w1.line(self.note, CAPTURED_S + 60) + twin.line(self.note, CAPTURED_S + 61)
        code, out = self.run_verifier(self.evidence("proof", note), "--witness", self.w1.vkey,
                                      "--witness", twin.vkey, "--quorum", "2")
        self.assertEqual(code, 2, out)
        self.assertIn("same public key", out["error"])

    # A known answer from the other implementation: `auditex witness serve` (the Rust witness),
    # watching the test signer's key, cosigned this class's checkpoint (size 7) when it was
    # submitted to its add-checkpoint endpoint with old size 0.
    RUST_WITNESS_VKEY = "witness.example.org/rust+7be2845e+BJa/8vfZKuhNRs6nFdv7ZCdMQQN9E7rAuf61RSKMES1q"
    RUST_COSIGNATURE = ("\u2014 witness.example.org/rust e+KEXgAAAABrEzBU/vM40deg2/4cOoHlsufJ0ocaElZz+ucrVcs1sn1SLpFiCFBb"
                        "DI0EPrhfKN7WwjVe5wx286cNU4lAgeP70fdvDg==\n")
    RUST_COSIGNED_AT = 1_796_419_668

    def test_a_cosignature_made_by_the_rust_witness_verifies_on_every_kind(self):
        self.assertEqual(self.note.split("\n")[:3], [ORIGIN, "7", "RLMLvGKfhYakAI8bQGmVzDSShZAKMdrQ8crOHgeBkks="])
        self.assertEqual(str(av.VerifierKey.parse(self.RUST_WITNESS_VKEY, av.KEY_TYPE_COSIGNATURE_V1)), self.RUST_WITNESS_VKEY)
        note = self.note + self.RUST_COSIGNATURE
        for kind in self.KINDS:
            with self.subTest(kind=kind):
                code, out = self.run_verifier(self.evidence(kind, note), "--witness", self.RUST_WITNESS_VKEY)
                self.assertEqual(code, 0, out)
                self.assertEqual(out["cosignatures"], [{"witness": "witness.example.org/rust", "timestamp": self.RUST_COSIGNED_AT}])
                self.assertIn("no later than 2026-12-04T21:27:48+00:00 (witnessed time)", out["proven"][-1])
        # On another checkpoint of the same log, or with its signature's last byte changed, it is
        # not counted.
        trusted = [av.VerifierKey.parse(self.RUST_WITNESS_VKEY, av.KEY_TYPE_COSIGNATURE_V1)]
        other = self.signer.note(6, mth(self.hashes[:6]))
        changed = self.RUST_COSIGNATURE.replace("fdvDg==", "fdvDA==")
        for bad in (other + self.RUST_COSIGNATURE, self.note + changed):
            checkpoint = av.open_checkpoint(bad, [av.VerifierKey.parse(self.signer.vkey)])
            self.assertEqual(len(checkpoint.signatures), 2)
            self.assertEqual(av.verify_cosignatures(checkpoint, trusted), [])
        self.assertEqual(len(av.verify_cosignatures(av.open_checkpoint(note, [av.VerifierKey.parse(self.signer.vkey)]), trusted)), 1)

    def test_a_witness_key_is_a_vkey_of_type_4_whose_id_commits_to_the_name(self):
        key = av.VerifierKey.parse(self.w1.vkey, av.KEY_TYPE_COSIGNATURE_V1)
        self.assertEqual((key.name, key.key_id, str(key)), (self.w1.name, self.w1.key_id, self.w1.vkey))
        with self.assertRaisesRegex(av.Failed, "not an Ed25519 cosignature/v1"):
            av.VerifierKey.parse(self.signer.vkey, av.KEY_TYPE_COSIGNATURE_V1)
        with self.assertRaisesRegex(av.Failed, "key id does not match"):
            av.VerifierKey.parse(self.w1.vkey.replace(self.w1.name, "witness.test/other"), av.KEY_TYPE_COSIGNATURE_V1)
        # The spec's example message (c2sp.org/tlog-cosignature, "Ed25519 signed message").
        text = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
        self.assertEqual(av.cosigned_message(1679315147, text), b"cosignature/v1\ntime 1679315147\n" + text.encode())


def broken_policies(w: str, v: str, log: str) -> list[tuple[str, int]]:
    """Policy files that break a tlog-policy rule and the line that does (0 for an empty file), as
    the Rust parser's test lists them; `w` and `v` are witness vkeys, `log` a checkpoint vkey."""
    return [
        ("", 0),  # no quorum line
        (f"witness W {w}\n", 1),  # no quorum line: the last line is named
        (f"quorum W\nwitness W {w}\n", 1),  # a name used before it is defined
        (f"witness W {w}\nwitness W {v}\nquorum W\n", 2),  # a name defined twice
        (f"witness W {w}\nwitness V {w}\nquorum W\n", 2),  # a duplicate key
        (f"witness W {w}\ngroup G 2 W\nquorum G\n", 2),  # k > n
        (f"witness W {w}\ngroup G 0 W\nquorum G\n", 2),  # k = 0
        (f"witness W {w}\ngroup G any W W\nquorum G\n", 2),  # a member listed twice
        (f"witness W {w}\ngroup G any W\ngroup H any W\nquorum H\n", 3),  # ... in two groups
        (f"witness W {w}\ngroup G any X\nquorum G\n", 2),  # a member not defined
        (f"witness W {w}\nquorum W\nquorum W\n", 3),  # two quorum lines
        (f"witness none {w}\nquorum none\n", 1),  # `none` is reserved
        (f"witness W {log}\nquorum W\n", 1),  # a checkpoint key (0x01) as a witness key
        (f"log {w}\nquorum none\n", 1),  # a cosignature key (0x04) as a log key
        ("frobnicate\nquorum none\n", 1),  # an unknown keyword
        (f"witness W {w}\r\nquorum W\n", 1),  # CR LF: lines end in LF alone
        (f"witness W {w}\ngroup G 01 W\nquorum G\n", 2),  # a leading zero
    ]


class PolicyFiles(unittest.TestCase):
    """C2SP tlog-policy files (c2sp.org/tlog-policy): the parser and the quorum, on keys made up
    for the test."""

    def setUp(self):
        self.log = Signer()
        self.w = {s: Witness(f"witness.example/{s}", s) for s in range(11, 17)}

    def key(self, seed: int) -> av.VerifierKey:
        return av.VerifierKey.parse(self.w[seed].vkey if seed in self.w else Witness(f"witness.example/{seed}", seed).vkey,
                                    av.KEY_TYPE_COSIGNATURE_V1)

    def example(self) -> str:
        """The specification's example, with keys, a comment, an indented line and a URL."""
        w = [self.w[s].vkey for s in range(11, 17)]
        return (f"log {self.log.vkey}\n\n# the X organization\nwitness X1 {w[0]}\nwitness X2 {w[1]}\n"
                f"witness X3 {w[2]} https://x3.example/\ngroup X-witnesses 2 X1 X2 X3\n\n\twitness Y1 {w[3]}\n"
                f"witness Y2 {w[4]}\nwitness Y3 {w[5]}\ngroup Y-witnesses any Y1 Y2 Y3\n\n"
                f"group X-and-Y all X-witnesses Y-witnesses\nquorum X-and-Y\n")

    def test_the_spec_s_example_needs_two_x_witnesses_and_one_y_witness(self):
        p = av.parse_policy(self.example())
        self.assertEqual(p.logs, (av.VerifierKey.parse(self.log.vkey),))
        self.assertEqual(p.witnesses, tuple(self.key(s) for s in range(11, 17)))
        k = self.key
        self.assertTrue(p.satisfied([k(11), k(12), k(14)]))
        self.assertTrue(p.satisfied([k(11), k(13), k(16)]))
        self.assertTrue(p.satisfied([k(s) for s in range(11, 17)]))
        self.assertFalse(p.satisfied([k(11), k(14), k(15)]), "one X witness")
        self.assertFalse(p.satisfied([k(11), k(12)]), "no Y witness")
        self.assertFalse(p.satisfied([k(14), k(15), k(16)]), "no X witness")
        self.assertFalse(p.satisfied([]))
        # A key not in the policy counts for nothing, nor does a policy witness's name on another key.
        self.assertFalse(p.satisfied([k(11), k(12), k(99)]))
        self.assertFalse(p.satisfied([k(11), k(12), av.VerifierKey.parse(
            Witness("witness.example/14", 99).vkey, av.KEY_TYPE_COSIGNATURE_V1)]))

    def test_quorum_none_needs_no_cosignature_and_a_single_witness_needs_that_one(self):
        p = av.parse_policy(f"log {self.log.vkey}\nquorum none\n")
        self.assertIsNone(p.quorum)
        self.assertTrue(p.satisfied([]))
        p = av.parse_policy(f"witness W {self.w[13].vkey}\nquorum W\n")
        self.assertEqual(p.logs, ())
        self.assertTrue(p.satisfied([self.key(13)]))
        self.assertFalse(p.satisfied([self.key(14)]))
        self.assertFalse(p.satisfied([]))

    def test_policies_that_break_the_rules_are_refused_with_their_line(self):
        for text, line in broken_policies(self.w[13].vkey, self.w[14].vkey, self.log.vkey):
            with self.subTest(text=text), self.assertRaises(av.PolicyError) as refused:
                av.parse_policy(text)
            self.assertEqual(refused.exception.line, line, refused.exception)
            self.assertTrue(str(refused.exception).startswith(f"policy line {line}: "), refused.exception)
            # It is unusable trust (exit 2), not evidence that fails.
            self.assertIsInstance(refused.exception, av.Unusable)

    def test_more_rules_of_the_spec_and_the_limits_shared_with_auditex_verify(self):
        w, v, u = self.w[13].vkey, self.w[14].vkey, self.w[15].vkey
        refused = {
            "a comment after the items": (f"witness W {w} # mine\nquorum W\n", 1),
            "a log line without its key": ("log\nquorum none\n", 1),
            "a witness line with two URLs": (f"witness W {w} https://a.example/ https://b.example/\nquorum W\n", 1),
            "a group without members": (f"witness W {w}\ngroup G any\nquorum G\n", 2),
            "a group named none": (f"witness W {w}\ngroup none any W\nquorum W\n", 2),
            "none as a group member": (f"witness W {w}\ngroup G any W none\nquorum G\n", 2),
            "a group named like a witness": (f"witness W {w}\ngroup W any W\nquorum W\n", 2),
            "a group naming itself": (f"witness W {w}\ngroup G any W G\nquorum G\n", 2),
            "a threshold with a sign": (f"witness W {w}\ngroup G +1 W\nquorum G\n", 2),
            "a threshold in other digits": (f"witness W {w}\ngroup G \u0661 W\nquorum G\n", 2),
            "a threshold beyond 2^64": (f"witness W {w}\ngroup G {2**64} W\nquorum G\n", 2),
            "a quorum of two names": (f"witness W {w}\nwitness V {v}\nquorum W V\n", 3),
            "a quorum line alone": ("quorum\n", 1),
            "a quorum of an undefined name": ("quorum W\n", 1),
            "a log key twice": (f"log {self.log.vkey}\nlog {self.log.vkey}\nquorum none\n", 2),
            # One public key as a log's and as a witness's (another type, name and key id).
            "a log's key as a witness's": (f"log {self.log.vkey}\nwitness W {Witness('witness.example/7', 7).vkey}\nquorum W\n", 2),
            "DEL in a comment": (f"witness W {w}\n# \x7f\nquorum W\n", 2),
            "a vertical tab between items": (f"witness W {w}\nquorum\x0bW\n", 2),
            "a form feed in a name": (f"witness W\x0c {w}\nquorum W\x0c\n", 1),
            "a NUL in a comment": (f"# a\x00 comment\nwitness W {w}\nquorum W\n", 1),
            "case-folded keywords": (f"Witness W {w}\nquorum W\n", 1),
            "a second quorum line after a none": ("quorum none\nquorum none\n", 2),
            # Kelvin sign (U+212A) and K are different names: octets are opaque.
            "a name matched by Unicode folding": (f"witness K {w}\ngroup G any \u212a\nquorum G\n", 2),
            "a line with only CR": (f"witness W {w}\n\r\nquorum W\n", 2),
        }
        for what, (text, line) in refused.items():
            with self.subTest(what), self.assertRaises(av.PolicyError) as e:
                av.parse_policy(text)
            self.assertEqual(e.exception.line, line, e.exception)
        # Items are split on spaces and tabs only: a no-break space belongs to the name.
        p = av.parse_policy(f" \t witness\tW\u00a0X  {w}\t\n  # indented comment\n#\n\t\nquorum W\u00a0X \n")
        self.assertTrue(p.satisfied([self.key(13)]))
        with self.assertRaises(av.PolicyError):
            av.parse_policy(f"witness W\u00a0X {w}\nquorum W\n")
        # Non-ASCII names, and the last line without its LF (auditex verify accepts it too).
        p = av.parse_policy(f"witness \u212a {w}\nwitness K {v}\ngroup \u00e9quipe 2 \u212a K\nquorum \u00e9quipe")
        self.assertTrue(p.satisfied([self.key(13), self.key(14)]))
        self.assertFalse(p.satisfied([self.key(13)]))
        # A threshold equal to n; groups of groups; a witness outside the quorum.
        p = av.parse_policy(f"witness A {w}\nwitness B {v}\nwitness C {u}\ngroup AB 2 A B\n"
                            f"group Q any AB\nquorum Q\n")
        self.assertTrue(p.satisfied([self.key(13), self.key(14)]))
        self.assertFalse(p.satisfied([self.key(13), self.key(15)]))
        # A name listed in two groups is refused: each name is a group member at most once.
        with self.assertRaisesRegex(av.PolicyError, "^policy line 5: 'B' is listed twice$"):
            av.parse_policy(f"witness A {w}\nwitness B {v}\nwitness C {u}\ngroup AB 2 A B\ngroup BC any B C\n"
                            f"group Q 2 AB BC\nquorum Q\n")
        p = av.parse_policy(f"witness A {w}\nwitness B {v}\nquorum A\n")
        self.assertTrue(p.satisfied([self.key(13)]))
        self.assertFalse(p.satisfied([self.key(14)]))
        # Up to 256 logs, witnesses and groups together, as auditex verify allows (only definition
        # lines count: the quorum line after the 256th is allowed).
        witnesses = "".join(f"witness W{i} {Witness(f'w.example/{i}', i).vkey}\n" for i in range(1, 201))
        groups = "".join(f"group G{i} any W{i + 1}\n" for i in range(56))
        p = av.parse_policy(witnesses + groups + "quorum G54\n")
        self.assertTrue(p.satisfied([av.VerifierKey.parse(Witness("w.example/55", 55).vkey, av.KEY_TYPE_COSIGNATURE_V1)]))
        with self.assertRaisesRegex(av.PolicyError, "^policy line 257: more than 256 definitions$"):
            av.parse_policy(witnesses + groups + "group G56 any W1\nquorum G56\n")


class PolicyFileOnEveryKind(ServesLogs, unittest.TestCase):
    """--policy FILE on evidence of every kind: the evidence and cosignatures of
    `WitnessPolicyOnEveryKind`, the witnesses and quorum from a tlog-policy file whose log key is
    the only trusted key."""

    KINDS = WitnessPolicyOnEveryKind.KINDS
    CAPTURED_OFFSET_US = WitnessPolicyOnEveryKind.CAPTURED_OFFSET_US
    setUp = WitnessPolicyOnEveryKind.setUp
    evidence = WitnessPolicyOnEveryKind.evidence
    write = ConsistencyCommand.write

    def policy_file(self, body: str, log: bool = True) -> list[str]:
        """`--policy FILE` for a policy of `body`, listing the test's log first when `log`; a new
        file each time."""
        self.policies = getattr(self, "policies", 0) + 1
        name = f"policy-{self.policies}.txt"
        return ["--policy", self.write(name, (f"log {self.signer.vkey}\n" if log else "") + body)]

    def witnesses(self) -> str:
        return f"witness W1 {self.w1.vkey}\nwitness W2 {self.w2.vkey}\nwitness W3 {self.w3.vkey}\n"

    def run_verifier(self, argv: list[str], *extra: str) -> tuple[int, dict]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            code = av.main([*argv, *extra, "--json"])
        return code, json.loads(out.getvalue())

    def test_a_group_quorum_verifies_every_kind_under_the_policy_s_log_key_and_names_the_latest_time(self):
        t1, t2, t3 = CAPTURED_S + 60, CAPTURED_S + 3600, CAPTURED_S + 7200
        note = self.note + self.w2.line(self.note, t2) + self.w3.line(self.note, t3) + self.w1.line(self.note, t1)
        policy = self.policy_file(self.witnesses() + "group both all W1 W2\nquorum both\n")
        for kind in self.KINDS:
            with self.subTest(kind=kind):
                # No --key: the policy's log key is the trust.
                code, out = self.run_verifier(self.evidence(kind, note), *policy)
                self.assertEqual(code, 0, out)
                # Every valid cosignature of a policy witness is counted, W3's outside the quorum too.
                self.assertEqual(out["cosignatures"], [{"witness": self.w2.name, "timestamp": t2},
                                                       {"witness": self.w3.name, "timestamp": t3},
                                                       {"witness": self.w1.name, "timestamp": t1}])
                self.assertEqual(
                    out["proven"][-1],
                    f"the checkpoint is cosigned by 3 of the trusted witnesses ({self.w2.name}, {self.w3.name}, "
                    f"{self.w1.name}; the policy file's quorum is met): it existed, consistent with what each of "
                    f"them had seen, no later than 2026-11-18T13:06:40+00:00 (witnessed time)"
                    + ("" if kind == "consistency" else ", and not before its records were captured"))
        # The spec's example shape, `2 of X` and `any of Y`, on a proof: met by W1, W2 and the Rust
        # witness, not without the Rust witness.
        rust = av.VerifierKey.parse(WitnessPolicyOnEveryKind.RUST_WITNESS_VKEY, av.KEY_TYPE_COSIGNATURE_V1)
        example = self.policy_file(self.witnesses() + f"witness R {rust}\ngroup X 2 W1 W2 W3\ngroup Y any R\n"
                                   "group X-and-Y all X Y\nquorum X-and-Y\n")
        with_rust = note + WitnessPolicyOnEveryKind.RUST_COSIGNATURE
        code, out = self.run_verifier(self.evidence("proof", with_rust), *example)
        self.assertEqual(code, 0, out)
        self.assertIn("no later than 2026-12-04T21:27:48+00:00 (witnessed time)", out["proven"][-1])
        code, out = self.run_verifier(self.evidence("proof", note), *example)
        self.assertEqual(code, 1, out)

    def test_a_policy_not_met_fails_every_kind_naming_the_witnesses_missing(self):
        note = self.note + self.w1.line(self.note, CAPTURED_S + 60) + self.w2.line(self.note, CAPTURED_S + 61)
        # A cosignature of a witness the policy does not list is ignored.
        note += self.stranger.line(self.note, CAPTURED_S + 62)
        policy = self.policy_file(self.witnesses() + "group all3 all W1 W2 W3\nquorum all3\n")
        for kind in self.KINDS:
            with self.subTest(kind=kind):
                code, out = self.run_verifier(self.evidence(kind, note), *policy)
                self.assertEqual(code, 1, out)
                self.assertEqual(
                    out["failure"]["message"],
                    "witness quorum not met: the checkpoint carries valid cosignatures of 2 of the 3 trusted witnesses "
                    f"({self.w1.name}, {self.w2.name}), the policy file's quorum is not met; no valid cosignature of "
                    f"{self.w3.name}")
                self.assertEqual(len(out["cosignatures"]), 2)
        # A single witness as the quorum, and a threshold, likewise.
        for body in ("quorum W3\n", "group two-of-W2-W3 2 W2 W3\nquorum two-of-W2-W3\n"):
            with self.subTest(body=body):
                code, out = self.run_verifier(self.evidence("bundle", note), *self.policy_file(self.witnesses() + body))
                self.assertEqual(code, 1, out)
        code, out = self.run_verifier(self.evidence("bundle", note), *self.policy_file(self.witnesses() + "group a any W2 W3\nquorum a\n"))
        self.assertEqual(code, 0, out)

    def test_quorum_none_needs_no_cosignature_but_holds_those_counted_to_the_capture_time(self):
        for kind in self.KINDS:
            captured_us = CAPTURED_S * 1_000_000 + self.CAPTURED_OFFSET_US.get(kind, 0)
            with self.subTest(kind=kind):
                code, out = self.run_verifier(self.evidence(kind, self.note), *self.policy_file("quorum none\n"))
                self.assertEqual(code, 0, out)
                self.assertEqual(out["cosignatures"], [])
                self.assertEqual(out["proven"][-1],
                                 "the checkpoint is cosigned by 0 of the trusted witnesses (none; the policy file's quorum "
                                 "is met)" + ("" if kind == "consistency" else ", and not before its records were captured"))
                # A listed witness's cosignature is counted even so, and one made before the records
                # were captured fails, as under --witness.
                early = self.note + self.w1.line(self.note, CAPTURED_S - 1)
                code, out = self.run_verifier(self.evidence(kind, early), *self.policy_file(self.witnesses() + "quorum none\n"))
                if kind == "consistency":  # no record, no capture time
                    self.assertEqual(code, 0, out)
                    self.assertIn("no later than 2026-11-18T11:06:39+00:00 (witnessed time)", out["proven"][-1])
                    continue
                self.assertEqual(code, 1, out)
                self.assertEqual(
                    out["failure"]["message"],
                    f"signed time before capture: witness {self.w1.name} cosigned the checkpoint at "
                    f"2026-11-18T11:06:39+00:00 ({CAPTURED_S - 1} s), before the latest capture time of its records "
                    f"({captured_us} µs since the epoch): the capture times or the witness's clock are wrong")
                # A witness the policy does not list is not held to it.
                code, out = self.run_verifier(self.evidence(kind, early), *self.policy_file("quorum none\n"))
                self.assertEqual(code, 0, out)

    def test_the_policy_s_logs_are_trusted_keys_and_only_they_or_the_command_line_s(self):
        note = self.note + self.w1.line(self.note, CAPTURED_S + 60)
        for kind in self.KINDS:
            with self.subTest(kind=kind):
                # Another log's key alone: the checkpoint is not signed by a trusted key.
                other = self.policy_file(f"log {Signer(seed=bytes([8]) * 32).vkey}\nquorum none\n", log=False)
                code, out = self.run_verifier(self.evidence(kind, note), *other)
                self.assertEqual(code, 1, out)
                # No log and no --key: no trusted key at all.
                code, out = self.run_verifier(self.evidence(kind, note), *self.policy_file("quorum none\n", log=False))
                self.assertEqual(code, 2, out)
                self.assertIn("no trusted key", out["error"])
                # No log, with --key; and the policy's log key also given as --key.
                for policy in (self.policy_file(self.witnesses() + "quorum W1\n", log=False),
                               self.policy_file(self.witnesses() + "quorum W1\n")):
                    code, out = self.run_verifier(self.evidence(kind, note), *policy, "--key", self.signer.vkey)
                    self.assertEqual(code, 0, out)

    def test_a_policy_that_breaks_the_rules_or_cannot_be_read_is_unusable(self):
        note = self.note + self.w1.line(self.note, CAPTURED_S + 60)
        argv = [*self.evidence("proof", note), "--key", self.signer.vkey]
        for text, line in broken_policies(self.w1.vkey, self.w2.vkey, self.signer.vkey):
            with self.subTest(text=text):
                code, out = self.run_verifier(argv, *self.policy_file(text, log=False))
                self.assertEqual(code, 2, out)
                self.assertRegex(out["error"], f": policy line {line}: ")
        # On every kind, and before evidence that fails is judged.
        broken = self.policy_file(f"witness W {self.w1.vkey}\ngroup G 2 W\nquorum G\n")
        for kind in self.KINDS:
            with self.subTest(kind=kind):
                code, out = self.run_verifier(self.evidence(kind, note), *broken)
                self.assertEqual(code, 2, out)
                self.assertRegex(out["error"], r"policy-\d+\.txt: policy line 3: threshold 2 is not between 1 and 1$")
        code, _ = self.run_verifier(self.evidence("proof", note.replace("\n7\n", "\n8\n")), *broken)
        self.assertEqual(code, 2)
        # A missing file, and one that is not UTF-8.
        code, out = self.run_verifier(argv, "--policy", os.path.join(self.dir.name, "absent.txt"))
        self.assertEqual(code, 2, out)
        latin1 = os.path.join(self.dir.name, "latin1.txt")
        with open(latin1, "wb") as f:
            f.write(f"witness \xe9 {self.w1.vkey}\nquorum \xe9\n".encode("latin-1"))
        code, out = self.run_verifier(argv, "--policy", latin1)
        self.assertEqual(code, 2, out)
        self.assertIn("not UTF-8", out["error"])

    def test_a_policy_with_witness_or_quorum_is_a_usage_error(self):
        argv = [*self.evidence("proof", self.note + self.w1.line(self.note, CAPTURED_S + 60)),
                *self.policy_file(self.witnesses() + "quorum W1\n")]
        for extra in (["--witness", self.w1.vkey], ["--quorum", "1"], ["--witness", self.w1.vkey, "--quorum", "1"]):
            with self.subTest(extra=extra), contextlib.redirect_stderr(io.StringIO()) as err, \
                    self.assertRaises(SystemExit) as exit_:
                av.main([*argv, *extra])
            self.assertEqual(exit_.exception.code, 2)
            self.assertIn("--policy cannot be used with --witness or --quorum", err.getvalue())
        code, out = self.run_verifier(argv)
        self.assertEqual(code, 0, out)


if __name__ == "__main__":
    unittest.main()
