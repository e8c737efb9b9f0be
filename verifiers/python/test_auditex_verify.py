"""Tests of the independent verifier's checkpoint consistency checking.

Run from this folder with the verifier's requirements installed:

    python -m unittest -v

Proofs come from a slow, obviously-correct prover written here from RFC 9162 section 2.1.4.1
(the recursive SUBPROOF), never from the code under test; checkpoints are signed here as C2SP
signed notes (FORMAT.md section 9) with keys made up for the test.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import tempfile
import unittest

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


class ConsistencyCommand(unittest.TestCase):
    """`auditex_verify.py consistency` on files, with its exit codes and JSON output."""

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.signer = Signer()
        self.d = record_hashes(50)
        self.old = self.write("old.checkpoint", self.signer.note(13, mth(self.d[:13])))
        self.new = self.write("new.checkpoint", self.signer.note(50, mth(self.d)))
        self.proof = self.write("c.proof", "# proof 13 -> 50\n" + "".join(p.hex() + "\n" for p in prove(13, self.d)))

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

    def test_proofs_in_base64_or_json_verify_too(self):
        proof = prove(13, self.d)
        forms = {
            "b64.proof": "".join(base64.b64encode(p).decode() + "\n" for p in proof),
            "array.json": json.dumps([p.hex() for p in proof]),
            "api.json": json.dumps({"from": 13, "to": 50, "proof": [p.hex() for p in proof]}),
        }
        for name, text in forms.items():
            with self.subTest(form=name):
                code, out = self.run_verifier("--old", self.old, "--new", self.new, "--proof", self.write(name, text))
                self.assertEqual(code, 0, out)

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
        with open(self.proof, encoding="utf-8") as f:
            lines = f.read().split("\n")
        lines[2] = ("0" if lines[2][0] != "0" else "1") + lines[2][1:]
        code, out = self.run_verifier("--old", self.old, "--new", self.new, "--proof", self.write("bad.proof", "\n".join(lines)))
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

    def test_a_file_that_holds_no_checkpoint_cannot_be_read(self):
        code, out = self.run_verifier("--old", self.write("junk.txt", "hello"), "--new", self.new, "--proof", self.proof)
        self.assertEqual(code, 2, out)

    def test_the_command_line_needs_old_and_new(self):
        with contextlib.redirect_stderr(io.StringIO()), self.assertRaises(SystemExit) as exit_:
            av.main(["consistency", "--old", self.old, "--key", self.signer.vkey])
        self.assertEqual(exit_.exception.code, 2)


if __name__ == "__main__":
    unittest.main()


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
        with self.assertRaisesRegex(av.Failed, "malformed signature"):
            av.open_checkpoint(text + "\n\n" + signature.replace(b64, changed), [self.key])

    def test_a_header_key_entry_with_another_member_is_rejected(self):
        public = self.key.public_key
        entry = {"key_id": av.key_id_of(public), "public_key": public.hex(), "from_seq": 0, "until_seq": None}
        renamed = {("until_sEq" if k == "until_seq" else k): v for k, v in entry.items()}
        for bad in (renamed, dict(entry, note="x"), {k: v for k, v in entry.items() if k != "until_seq"}):
            with self.assertRaisesRegex(av.Failed, "members"):
                av.parse_key_history([bad])

    def test_a_verifier_key_with_an_upper_case_key_id_is_refused(self):
        name, kid, b64 = self.signer.vkey.split("+")
        self.assertNotEqual(kid.upper(), kid)
        with self.assertRaisesRegex(av.Unusable, "key id"):
            av.VerifierKey.parse(f"{name}+{kid.upper()}+{b64}")

    def test_export_lines_end_at_a_line_feed_only(self):
        f = tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False)
        self.addCleanup(os.unlink, f.name)
        with f:
            f.write(b'{"a":1}\r{"b":2}\n{"c":3}\r\n')
        self.assertEqual(list(av.read_lines(f.name)), ['{"a":1}\r{"b":2}', '{"c":3}\r'])
