"""Local verification of what the service answers, with the independent verifier.

Nothing here re-implements the ledger format: record hashes (RFC 8785 + SHA-256, FORMAT.md
section 4), strict Ed25519 (section 5), key histories, checkpoints (section 9), Merkle proofs
(section 8), bundles (section 11), tlog-proof files (section 10) and exports (section 12) are
checked by `auditex_verify` (verifiers/python), the verifier regulators run. This module only
connects API answers to it and turns its `Failed` into `VerificationError`.

Trust comes from a `KeyRing`: the tenant's key history. Fetched from the service it proves that
answers are consistent with the keys the service publishes; pinned (a history saved earlier, or
handed over out of band) it proves they come from the keys you trust.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import auditex_verify as av

from . import models
from .errors import VerificationError
from .events import Event

__all__ = [
    "KeyRing",
    "VerificationError",
    "verify_bundle",
    "verify_export",
    "verify_inclusion_proof",
    "verify_receipt_signature",
    "verify_record_of_receipt",
    "verify_tlog_proof",
]


@dataclass(frozen=True)
class KeyRing:
    """A tenant's key history (`GET /v1/keys`, `auditex key history`): its checkpoint origin and
    every signing key with the sequence numbers it may sign."""

    origin: str
    keys: tuple[av.KeyInterval, ...]

    @staticmethod
    def from_document(doc: Any) -> KeyRing:
        """Reads a key-history document, as strictly as `auditex verify` (FORMAT.md section 5).

        Raises VerificationError when it breaks a rule."""
        try:
            origin, keys = av.parse_key_history_document(doc)
        except (av.Failed, ValueError, TypeError, KeyError, AttributeError) as e:
            raise VerificationError(f"the key history is malformed: {e}") from e
        return KeyRing(origin, tuple(keys))

    @property
    def tenant(self) -> str:
        """The tenant whose log the origin names (its last path segment)."""
        return self.origin.rsplit("/", 1)[-1]

    def knows(self, key_id: str) -> bool:
        return any(k.key_id == key_id for k in self.keys)

    def trust(self) -> av.Trust:
        """The verifier's trust: each key as the checkpoint key of the origin, and the history."""
        vkeys = [av.VerifierKey.of(self.origin, k.public_key) for k in self.keys]
        return av.Trust(vkeys, (self.origin, list(self.keys)))

    def check_extended_by(self, newer: KeyRing) -> None:
        """A later history may close the current key and add keys; it may not change the origin
        or any key's public key or start, nor drop a key, nor reopen a closed interval.

        Raises VerificationError."""
        if newer.origin != self.origin:
            raise VerificationError(f"the key history's origin changed from {self.origin} to {newer.origin}")
        for old in self.keys:
            new = next((k for k in newer.keys if k.key_id == old.key_id), None)
            if new is None or new.public_key != old.public_key or new.from_seq != old.from_seq:
                raise VerificationError(f"key {old.key_id} changed or vanished from the tenant's key history")
            if old.until_seq is not None and new.until_seq != old.until_seq:
                raise VerificationError(f"the interval of key {old.key_id} changed in the tenant's key history")


def _failed(e: av.Failed) -> VerificationError:
    return VerificationError(str(e), e.seq, e.event_id)


def verify_receipt_signature(receipt: models.ReceiptBody, ring: KeyRing) -> None:
    """The receipt's signature is the Ed25519 signature (strict, FORMAT.md section 5) of its 32
    hash bytes by the key it names, and that key was valid at its sequence number.

    Raises VerificationError."""
    seq, event_id = receipt.get("seq"), receipt.get("event_id")
    try:
        h = av.unhex(receipt.get("hash"), 32, "the receipt's hash")
        sig = av.unhex(receipt.get("sig"), 64, "the receipt's signature")
    except av.Failed as e:
        raise VerificationError(str(e), seq if isinstance(seq, int) else None, event_id) from e
    key = next((k for k in ring.keys if k.key_id == receipt.get("key_id")), None)
    if key is None:
        raise VerificationError(f"receipt {seq}: signed by key {receipt.get('key_id')}, not in the key history", seq, event_id)
    if not av.is_int(seq) or not key.valid_for(seq):
        raise VerificationError(f"receipt {seq}: key {key.key_id} was not the signing key at that sequence number", seq, event_id)
    if not av.ed25519_verify(key.public_key, sig, h):
        raise VerificationError(f"receipt {seq}: the signature does not verify under key {key.key_id}", seq, event_id)


def verify_record_of_receipt(
    record: models.RecordBody, receipt: models.ReceiptBody, ring: KeyRing, event: Event | None = None
) -> None:
    """The record verifies on its own (exact members, the hash recomputed from them, the
    signature by the key valid at its `seq`, the tenant of the key history), it is the record the
    receipt names, and — given the event that was sent — it records what was sent: the same event
    id, type, payload (compared in RFC 8785 form, as hashed) and erasable field names (the values
    themselves are committed with salts the service keeps; a bundle proves them).

    Raises VerificationError."""
    try:
        seq, event_id, _ = av.check_record(record, list(ring.keys), ring.tenant)
    except av.Failed as e:
        raise _failed(e) from e
    for member in ("seq", "event_id", "hash", "sig", "key_id", "captured_at_us"):
        if record.get(member) != receipt.get(member):
            raise VerificationError(
                f"record {seq}: its {member} is {record.get(member)!r}, the receipt says {receipt.get(member)!r}",
                seq, event_id,
            )
    if event is None:
        return
    if record["event_id"] != event.event_id or record["event_type"] != event.event_type:
        raise VerificationError(f"record {seq} is not the event that was sent ({event.event_type} {event.event_id})", seq, event_id)
    try:
        same_payload = av.jcs(record["payload"]) == av.jcs(event.payload)
    except av.Failed as e:
        raise _failed(e) from e
    if not same_payload:
        raise VerificationError(f"record {seq}: the payload differs from the one sent", seq, event_id)
    if set(record["erasable"]) != set(event.erasable or {}):
        raise VerificationError(f"record {seq}: the erasable fields differ from the ones sent", seq, event_id)


def verify_inclusion_proof(proof: models.InclusionProofBody, receipt: models.ReceiptBody, ring: KeyRing) -> None:
    """The proof's checkpoint is signed by the tenant's key that may sign a checkpoint of its
    size, and its RFC 9162 path leads from the receipt's record hash at the receipt's sequence
    number to the checkpoint's root.

    Raises VerificationError."""
    seq = receipt["seq"]
    try:
        checkpoint = av.open_checkpoint(proof["checkpoint"], ring.trust().keys, ring.origin)
        av.check_checkpoint_interval(checkpoint, list(ring.keys), ring.origin)
        record_hash = av.unhex(receipt["hash"], 32, "the receipt's hash")
        path = [av.unhex(h, 32, "a proof hash") for h in proof["proof"]]
    except av.Failed as e:
        raise VerificationError(f"record {seq}: {e}", seq, receipt["event_id"]) from e
    except (KeyError, TypeError) as e:
        raise VerificationError(f"record {seq}: the inclusion proof is malformed ({e!r})", seq) from e
    if proof.get("leaf_index") != seq or proof.get("tree_size") != checkpoint.size:
        raise VerificationError(f"record {seq}: the proof is for another leaf or tree size", seq, receipt["event_id"])
    if not av.verify_inclusion(av.leaf_hash(record_hash), seq, checkpoint.size, path, checkpoint.root):
        raise VerificationError(
            f"record {seq} is not proven to be in the tree of size {checkpoint.size}", seq, receipt["event_id"]
        )


def verify_tlog_proof(text: str, ring: KeyRing) -> list[str]:
    """A C2SP tlog-proof file (FORMAT.md section 10), as `auditex verify proof` checks it; returns
    what it proves. Raises VerificationError."""
    try:
        return av.verify_proof(text, ring.trust()).proven
    except av.Failed as e:
        raise _failed(e) from e
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise VerificationError(f"malformed tlog-proof file: {e!r}") from e


def verify_bundle(raw: bytes | str, ring: KeyRing) -> tuple[dict[str, Any], list[str]]:
    """A chain-of-custody bundle (FORMAT.md section 11) as `auditex verify bundle` checks it,
    read strictly (duplicate JSON members refused); returns the bundle and what it proves.

    Raises VerificationError."""
    try:
        doc = av.parse_json(raw)
        return doc, av.verify_bundle(doc, ring.trust()).proven
    except av.Failed as e:
        raise _failed(e) from e
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise VerificationError(f"malformed bundle: {e!r}") from e


def verify_export(raw: bytes | str, ring: KeyRing) -> list[str]:
    """An export (FORMAT.md section 12), as `auditex verify export` checks it (every line ends
    with a newline; no other control character); returns what it proves.

    Raises VerificationError."""
    data = raw.encode("utf-8") if isinstance(raw, str) else raw
    try:
        return av.verify_export(av.checked_lines(io.BytesIO(data), "export"), ring.trust()).proven
    except av.Failed as e:
        raise _failed(e) from e
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise VerificationError(f"malformed export: {e!r}") from e
