#!/usr/bin/env python3
"""Continuous appends over HTTPS for scripts/pg-failover-drill (Python standard library only).

Each of --clients threads appends decision records one at a time with event ids of its own and
writes every receipt it is given (201 or a 200 duplicate) to <out>/receipts-<n>.jsonl. A failed
request (503, a reset connection, a time-out) is retried with the same event id and body until it
is answered with a receipt, so the set of receipts is exactly what the service acknowledged. One
more thread reads the latest signed checkpoint twice a second and writes each tree size it saw,
in order, to <out>/checkpoints.txt with its root and who answered (`replica`, `primary` after a
replica's miss, `-` without replicas), asking for at least the largest size seen so far. Every thread stops once the file <out>/stop exists.

While the file <out>/pause exists, each append client finishes the event it is on (until it is
acknowledged) and then waits, saying so with the file <out>/paused-<n>; it removes that file
when it goes on.

<out>/outages.jsonl lists each interval during which no append was acknowledged for longer than
half a second (start, end, seconds), as the clients saw it.
"""

import argparse
import http.client
import json
import os
import ssl
import sys
import threading
import time
import uuid


def uuid7():
    """A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, version 7, 74 random bits."""
    value = (int(time.time() * 1000) & ((1 << 48) - 1)) << 80
    value |= int.from_bytes(os.urandom(10), "big") & ((1 << 80) - 1)
    value = (value & ~(0xF << 76)) | (0x7 << 76)
    value = (value & ~(0x3 << 62)) | (0x2 << 62)
    return str(uuid.UUID(int=value))


def connect(host, port, ctx, timeout):
    return http.client.HTTPSConnection(host, port, context=ctx, timeout=timeout)


class Progress:
    """When an append was last acknowledged, across all clients; gaps become outages."""

    def __init__(self, path):
        self.lock = threading.Lock()
        self.last = time.time()
        self.out = open(path, "w", encoding="utf-8")
        self.acknowledged = 0

    def acknowledged_now(self):
        now = time.time()
        with self.lock:
            gap = now - self.last
            if gap > 0.5:
                self.out.write(json.dumps({"start": self.last, "end": now, "seconds": round(gap, 3)}) + "\n")
                self.out.flush()
            self.last = now
            self.acknowledged += 1


def appender(n, args, ctx, progress, stop):
    out = open(os.path.join(args.out, f"receipts-{n}.jsonl"), "w", encoding="utf-8")
    headers = {"Authorization": f"Bearer {args.ingest_key}", "Content-Type": "application/json"}
    conn = None
    i = 0
    pause, paused = os.path.join(args.out, "pause"), os.path.join(args.out, f"paused-{n}")
    while not stop.is_set():
        if os.path.exists(pause):
            open(paused, "w").close()
            while os.path.exists(pause) and not stop.is_set():
                time.sleep(0.05)
            os.remove(paused)
            continue
        i += 1
        event_id = uuid7()
        body = json.dumps({
            "event_id": event_id,
            "event_type": "decision",
            "payload": {
                "model_id": "failover-drill", "model_version": "1.0.0",
                "input_commitment": "00" * 32, "outcome": "approved", "score": 0.5,
                "subject_ref": f"drill-{n}-{i}", "decided_at": "2026-12-01T00:00:00Z",
                "oversight_mode": "human_on_the_loop",
            },
        })
        # Retried with the same event id until acknowledged: the service answers a repeat with
        # the original receipt, so a retry never appends twice.
        while True:
            try:
                if conn is None:
                    conn = connect(args.host, args.port, ctx, args.timeout)
                conn.request("POST", "/v1/records", body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                if resp.status in (200, 201):
                    receipt = json.loads(data)
                    receipt["client"] = n
                    out.write(json.dumps(receipt) + "\n")
                    out.flush()
                    progress.acknowledged_now()
                    break
                if resp.status in (429, 503):
                    time.sleep(min(float(resp.getheader("Retry-After", "1")), 1.0) / 4)
                    continue
                # A thread's SystemExit is silent: say why before the main thread notices.
                print(f"client {n}: unexpected {resp.status} for {event_id}: {data[:300]!r}", file=sys.stderr, flush=True)
                sys.exit(1)
            except (OSError, http.client.HTTPException):
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.1)
            # Once told to stop, an unanswered event is abandoned: it was never acknowledged,
            # so whether the ledger holds it does not matter to the drill.
            if stop.is_set():
                return


def checkpoint_reader(args, ctx, stop):
    out = open(os.path.join(args.out, "checkpoints.txt"), "w", encoding="utf-8")
    headers = {"Authorization": f"Bearer {args.read_key}"}
    conn = None
    seen = 0
    while not stop.is_set():
        try:
            if conn is None:
                conn = connect(args.host, args.port, ctx, args.timeout)
            # Read-your-writes: never a checkpoint older than one already seen, even when a read
            # replica that is behind answers first (it then sends the request to the primary).
            path = f"/v1/checkpoints/latest?min_tree_size={seen}" if seen else "/v1/checkpoints/latest"
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            if resp.status == 200:
                lines = data.decode().split("\n")
                seen = max(seen, int(lines[1]))
                source = (resp.getheader("auditex-read-from") or "-").split(" ")[0]
                out.write(f"{int(lines[1])} {lines[2]} {source}\n")
                out.flush()
        except (OSError, http.client.HTTPException, ValueError, IndexError):
            if conn is not None:
                conn.close()
            conn = None
        time.sleep(0.5)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="localhost")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cafile", required=True)
    p.add_argument("--ingest-key", required=True)
    p.add_argument("--read-key", required=True)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    ctx = ssl.create_default_context(cafile=args.cafile)
    progress = Progress(os.path.join(args.out, "outages.jsonl"))
    stop = threading.Event()
    threads = [threading.Thread(target=appender, args=(n, args, ctx, progress, stop), daemon=True)
               for n in range(args.clients)]
    threads.append(threading.Thread(target=checkpoint_reader, args=(args, ctx, stop), daemon=True))
    for t in threads:
        t.start()
    stop_file = os.path.join(args.out, "stop")
    while not os.path.exists(stop_file):
        time.sleep(0.2)
        if not all(t.is_alive() for t in threads):
            sys.exit("a client thread failed")
    stop.set()
    for t in threads:
        t.join(timeout=args.timeout + 5)
    with open(os.path.join(args.out, "acknowledged"), "w", encoding="utf-8") as f:
        f.write(f"{progress.acknowledged}\n")


if __name__ == "__main__":
    main()
