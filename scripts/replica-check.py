#!/usr/bin/env python3
"""The HTTP side of scripts/pg-replica-drill: reads of `auditex serve` with a read replica.

Phase `reads` (the service started with a lag bound the paused replica stays within):
  1. appends, waits for the replica to be in reads and for a checkpoint covering the appends;
  2. every read endpoint answers from the replica (Auditex-Read-From: replica …), and the
     replica's reads counter moves; a tlog-proof and an export read from the replica verify
     with `auditex verify` against the key history;
  3. read-your-writes: each of 30 records appended is read back at once by sequence number, by
     event id and as a receipt, every time found (on the replica or, on a miss, the primary);
  4. the standby's replay is paused and more is appended: the replica serves its own older
     checkpoint, and proofs of what it holds against it verify (never a checkpoint newer than its
     data); a record only the primary has is found; `min_tree_size` above the replica's
     checkpoint is answered by the primary; above every checkpoint, 409; the views are read from
     the primary (their tables exist only there); a value erased on the primary is never shown
     by a bundle the replica serves (personal data is read on the primary).
Phase `lag` (the service restarted with a bound of 1 s; the replay still paused):
  5. the replica is taken out of reads, reads are answered by the primary with the newest data;
     replay resumed, it comes back into reads.
"""

import argparse
import http.client
import importlib.util
import json
import os
import pathlib
import ssl
import subprocess
import sys
import time
import uuid


def _sdk_new_event_id():
    """The Python SDK's event-id generator (a UUIDv7 string; standard library only), loaded from
    its file so that the drill needs none of the SDK's dependencies."""
    path = pathlib.Path(__file__).resolve().parent.parent / "clients/python/src/auditex/_uuid7.py"
    spec = importlib.util.spec_from_file_location("auditex_uuid7", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.new_event_id


new_event_id = _sdk_new_event_id()


def fail(message):
    print(f"replica-check: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def log(message):
    print(f"replica-check: {message}", file=sys.stderr)


class Api:
    def __init__(self, args):
        self.args = args
        self.ctx = ssl.create_default_context(cafile=args.cafile)
        self.conn = None

    def call(self, method, path, key, body=None):
        headers = {"Authorization": f"Bearer {key}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
            body = json.dumps(body)
        for attempt in range(3):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPSConnection("localhost", self.args.port, context=self.ctx, timeout=30)
                self.conn.request(method, path, body=body, headers=headers)
                r = self.conn.getresponse()
                data = r.read()
                return r.status, {k.lower(): v for k, v in r.getheaders()}, data
            except (OSError, http.client.HTTPException):
                self.conn = None
                if attempt == 2:
                    raise
                time.sleep(0.5)

    def get(self, path, key=None):
        return self.call("GET", path, key or self.args.read_key)

    def append(self, n, erasable=None, subject=None):
        records = [{
            "event_id": new_event_id(),
            "event_type": "decision",
            "payload": {
                "model_id": "replica-drill", "model_version": "1.0.0",
                "input_commitment": "00" * 32, "outcome": "approved", "score": 0.5,
                "subject_ref": subject or f"replica-{uuid.uuid4().hex[:12]}", "decided_at": "2026-12-01T00:00:00Z",
                "oversight_mode": "human_on_the_loop",
            },
            **({"erasable": erasable} if erasable else {}),
        } for _ in range(n)]
        status, _, data = self.call("POST", "/v1/records/batch", self.args.ingest_key, {"records": records})
        if status != 200:
            fail(f"append answered {status}: {data[:300]!r}")
        return json.loads(data)["receipts"]

    def metrics(self):
        status, _, data = self.get("/metrics")
        if status != 200:
            fail(f"/metrics answered {status}")
        values = {}
        for line in data.decode().splitlines():
            if line.startswith("auditex_replica_"):
                name, value = line.rsplit(" ", 1)
                values[name.split("{")[0]] = float(value)
        return values

    def latest_size(self, path="/v1/checkpoints/latest"):
        status, headers, data = self.get(path)
        if status != 200:
            return status, None, headers
        return status, int(data.decode().split("\n")[1]), headers


def read_from(headers):
    return headers.get("auditex-read-from", "")


def wait(what, check, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.25)
    fail(f"timed out waiting for {what}")


def psql_standby(args, sql):
    out = subprocess.run(args.standby_psql.split() + ["-c", sql], capture_output=True, text=True)
    if out.returncode != 0:
        fail(f"psql on the standby: {out.stderr}")
    return out.stdout.strip()


def verify(args, path, what):
    out = subprocess.run([args.auditex, "verify", *what, path, "--key-history", os.path.join(args.work, "keys.json"), "--json", "--no-progress"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        fail(f"auditex verify {' '.join(what)} {path}: {out.stdout} {out.stderr}")
    return out.stdout


def phase_reads(args, api):
    log("1. appends; the replica comes into reads and a checkpoint covers them")
    receipts = []
    for _ in range(3):
        receipts += api.append(100)
    size = len(receipts)
    wait("the replica in reads", lambda: api.metrics().get("auditex_replica_in_reads") == 1)
    wait("a checkpoint of 300 on the replica",
         lambda: (api.latest_size()[1] or 0) >= size and "replica" in read_from(api.latest_size()[2]))

    log("2. every read endpoint answers from the replica, and what it serves verifies")
    before = api.metrics()["auditex_replica_reads_total"]
    seq = receipts[150]["seq"]
    event = receipts[150]["event_id"]
    status, _, page = api.get("/v1/checkpoints?limit=1")
    if status != 200:
        fail(f"/v1/checkpoints: {status}")
    first = json.loads(page)["checkpoints"][0]["tree_size"]
    reads = [
        f"/v1/records/{seq}", f"/v1/events/{event}", f"/v1/receipts/{event}", "/v1/records?limit=50",
        f"/v1/proofs/inclusion?seq={seq}", f"/v1/proofs/inclusion/{seq}/tlog-proof",
        f"/v1/proofs/consistency?from={first}", "/v1/checkpoints/latest", "/v1/checkpoints", "/v1/keys",
        f"/v1/decisions/{event}/bundle",
    ]
    for path in reads:
        status, headers, data = api.get(path)
        if status != 200 or not read_from(headers).startswith("replica "):
            fail(f"GET {path}: {status}, read from {read_from(headers)!r}: {data[:200]!r}")
    after = api.metrics()["auditex_replica_reads_total"]
    if after < before + len(reads):
        fail(f"the replica's reads went from {before} to {after} for {len(reads)} requests")
    status, _, keys = api.get("/v1/keys")
    with open(os.path.join(args.work, "keys.json"), "wb") as f:
        f.write(keys)
    status, headers, proof = api.get(f"/v1/proofs/inclusion/{seq}/tlog-proof")
    with open(os.path.join(args.work, "replica.tlog-proof"), "wb") as f:
        f.write(proof)
    verify(args, os.path.join(args.work, "replica.tlog-proof"), ["proof"])
    status, headers, export = api.get("/v1/export")
    if status != 200 or not read_from(headers).startswith("replica "):
        fail(f"export: {status}, read from {read_from(headers)!r}")
    with open(os.path.join(args.work, "replica-export.jsonl"), "wb") as f:
        f.write(export)
    verdict = verify(args, os.path.join(args.work, "replica-export.jsonl"), ["export"])
    log(f"   {len(reads)} endpoints read from the replica; a tlog-proof and an export of {json.loads(verdict).get('records')} records from it verify")

    log("3. read-your-writes: what was just appended is found at once")
    fallbacks = 0
    for _ in range(30):
        r = api.append(1)[0]
        for path in (f"/v1/records/{r['seq']}", f"/v1/events/{r['event_id']}", f"/v1/receipts/{r['event_id']}"):
            status, headers, data = api.get(path)
            if status != 200:
                fail(f"GET {path} right after its append: {status} {data[:200]!r}")
            fallbacks += read_from(headers) == "primary"
    log(f"   90 reads right after their appends all found; {fallbacks} of them answered by the primary after a miss on the replica")

    log("4. replay paused: the replica serves its own checkpoint, never one newer than its data")
    def caught_up():
        status, size, headers = api.latest_size()
        return status == 200 and size >= size_now and "replica" in read_from(headers)
    # A decision holding personal data, erased below while the replica cannot know it.
    jane = api.append(1, erasable={"applicant_name": "Jane Replica-Doe"}, subject="replica-subject-jane")[0]
    size_now = size + 31
    wait("the replica's checkpoint of every record so far", caught_up)
    status, headers, bundle = api.get(f"/v1/decisions/{jane['event_id']}/bundle")
    if status != 200 or b"Jane Replica-Doe" not in bundle or "replica" not in read_from(headers):
        fail(f"the bundle before the erasure: {status} {read_from(headers)!r}, value shown: {b'Jane Replica-Doe' in bundle}")
    psql_standby(args, "SELECT pg_wal_replay_pause()")
    wait("replay paused", lambda: psql_standby(args, "SELECT pg_get_wal_replay_pause_state()") == "paused")
    _, replica_size, headers = api.latest_size()
    if "replica" not in read_from(headers):
        fail(f"the latest checkpoint was not read from the replica: {read_from(headers)!r}")
    # Erased on the primary; the paused replica still holds the value and its key, but personal
    # data is only ever read on the primary: the bundle served from the replica shows it erased.
    status, _, data = api.call("POST", "/v1/subjects/replica-subject-jane/erasure", args.privacy_key,
                               {"reason": "replica drill", "legal_basis": "GDPR Art. 17(1)(a)"})
    if status not in (200, 201):
        fail(f"the erasure answered {status}: {data[:300]!r}")
    status, headers, bundle = api.get(f"/v1/decisions/{jane['event_id']}/bundle")
    if status != 200 or "replica" not in read_from(headers):
        fail(f"the bundle after the erasure: {status} {read_from(headers)!r}")
    if b"Jane Replica-Doe" in bundle:
        fail("the paused replica's bundle shows a value erased on the primary")
    newer = api.append(100)
    primary_target = newer[-1]["seq"] + 1
    wait("the primary's checkpoint of the new records",
         lambda: api.latest_size(f"/v1/checkpoints/latest?min_tree_size={primary_target}")[0] == 200)
    status, size, headers = api.latest_size()
    if status != 200 or size != replica_size or "replica" not in read_from(headers):
        fail(f"the paused replica's latest checkpoint: {status} {size} {read_from(headers)!r}, expected {replica_size} from the replica")
    for seq in (0, replica_size // 2, replica_size - 1):
        status, headers, proof = api.get(f"/v1/proofs/inclusion/{seq}/tlog-proof")
        if status != 200 or "replica" not in read_from(headers):
            fail(f"proof of {seq} on the paused replica: {status} {read_from(headers)!r}")
        path = os.path.join(args.work, f"paused-{seq}.tlog-proof")
        with open(path, "wb") as f:
            f.write(proof)
        verify(args, path, ["proof"])
    # A record only the primary has: found there, with a proof against the primary's checkpoint.
    only_primary = newer[50]
    for path in (f"/v1/records/{only_primary['seq']}", f"/v1/receipts/{only_primary['event_id']}",
                 f"/v1/proofs/inclusion/{only_primary['seq']}/tlog-proof"):
        status, headers, data = api.get(path)
        if status != 200 or read_from(headers) != "primary":
            fail(f"GET {path} of a record the paused replica lacks: {status}, read from {read_from(headers)!r}")
    status, size, headers = api.latest_size(f"/v1/checkpoints/latest?min_tree_size={primary_target}")
    if status != 200 or size < primary_target or read_from(headers) != "primary":
        fail(f"min_tree_size={primary_target}: {status} {size} {read_from(headers)!r}")
    status, headers, data = api.get(f"/v1/checkpoints/latest?min_tree_size={primary_target + 10**6}")
    if status != 409:
        fail(f"min_tree_size beyond every checkpoint answered {status}, expected 409")
    status, headers, data = api.get("/v1/decisions?limit=5")
    if status != 200 or read_from(headers):
        fail(f"the views' query: {status}, read from {read_from(headers)!r} (views are read on the primary)")
    log(f"   paused at checkpoint {replica_size}: an erased value is not shown by the replica's bundle; 3 proofs from the replica verify; the primary answered record {only_primary['seq']} and min_tree_size={primary_target}; 409 beyond")
    with open(os.path.join(args.work, "primary-target"), "w") as f:
        f.write(str(primary_target))


def phase_lag(args, api):
    log("5. lag bound: the paused replica is taken out of reads, then back in once replay resumes")
    api.append(50)
    wait("the lagging replica out of reads", lambda: api.metrics().get("auditex_replica_in_reads") == 0)
    lag = api.metrics().get("auditex_replica_lag_seconds")
    status, size, headers = api.latest_size()
    target = int(open(os.path.join(args.work, "primary-target")).read())
    if status != 200 or size < target or read_from(headers):
        fail(f"with the replica out of reads: {status} {size} {read_from(headers)!r}")
    psql_standby(args, "SELECT pg_wal_replay_resume()")
    wait("the replica back in reads", lambda: api.metrics().get("auditex_replica_in_reads") == 1)
    wait("reads on the replica again", lambda: "replica" in read_from(api.latest_size()[2]))
    log(f"   out of reads at a lag of {lag:.1f} s, reads answered by the primary (checkpoint {size}); back in reads after replay resumed")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cafile", required=True)
    p.add_argument("--ingest-key", required=True)
    p.add_argument("--read-key", required=True)
    p.add_argument("--privacy-key", required=True)
    p.add_argument("--standby-psql", required=True)
    p.add_argument("--auditex", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--phase", choices=["reads", "lag"], required=True)
    args = p.parse_args()
    api = Api(args)
    {"reads": phase_reads, "lag": phase_lag}[args.phase](args, api)


if __name__ == "__main__":
    main()
