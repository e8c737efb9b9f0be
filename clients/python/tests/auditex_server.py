#!/usr/bin/env python3
"""A real `auditex serve` for the SDK's tests, examples and benchmark.

Starts the service as a user does: its own process over TLS (the self-signed certificate it
generates for a loopback address), embedded SQLite in a throwaway data folder, one tenant and an
API key of each role made with the CLI beforehand. Used as a module (`start()`, by the pytest
fixtures) and as a command that runs another command against a fresh server:

    auditex_server.py [--bin PATH] [--set NAME=VALUE]... -- COMMAND ARGS...

The command gets AUDITEX_URL, AUDITEX_CA_CERT, AUDITEX_TENANT and AUDITEX_{INGEST,READ,VERIFY,
PRIVACY}_KEY in its environment; the server is stopped when it ends, and its exit status is the
command's. The binary is `--bin`, else `$AUDITEX_BIN`, else the repository's target/debug/auditex.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field

REPO = pathlib.Path(__file__).resolve().parents[3]
ROLES = ("ingest", "read", "verify", "privacy")
START_TIMEOUT_S = 60


@dataclass
class Server:
    url: str
    ca_cert: str
    tenant: str
    keys: dict[str, str]
    data_dir: str
    process: subprocess.Popen
    log_path: str
    _owned_dir: bool = field(default=True, repr=False)

    def env(self) -> dict[str, str]:
        """What a client needs, as environment variables."""
        env = {"AUDITEX_URL": self.url, "AUDITEX_CA_CERT": self.ca_cert, "AUDITEX_TENANT": self.tenant}
        env.update({f"AUDITEX_{role.upper()}_KEY": key for role, key in self.keys.items()})
        return env

    def log(self) -> str:
        return pathlib.Path(self.log_path).read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._owned_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def binary() -> str:
    return os.environ.get("AUDITEX_BIN") or str(REPO / "target" / "debug" / "auditex")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(
    bin_path: str | None = None,
    *,
    tenant: str = "sdk-test",
    settings: dict[str, str] | None = None,
) -> Server:
    """Starts a server; `settings` are extra `AUDITEX_…` variables (rate limits, intervals).

    Raises RuntimeError, with the server's log, when it does not come up."""
    bin_path = bin_path or binary()
    data_dir = tempfile.mkdtemp(prefix="auditex-sdk-")
    env = dict(os.environ, AUDITEX_DATA_DIR=data_dir, RUST_LOG="warn")
    env.update(settings or {})

    def cli(*args: str) -> str:
        return subprocess.run([bin_path, *args], env=env, check=True, capture_output=True, text=True).stdout.strip()

    cli("tenant", "create", tenant)
    keys = {role: cli("apikey", "create", "--tenant", tenant, "--role", role, "--label", f"sdk-{role}") for role in ROLES}
    port = _free_port()
    log_path = os.path.join(data_dir, "serve.log")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [bin_path, "serve"], env=dict(env, AUDITEX_LISTEN=f"127.0.0.1:{port}"), stdout=log, stderr=subprocess.STDOUT
        )
    server = Server(f"https://localhost:{port}", os.path.join(data_dir, "tls", "tls-cert.pem"), tenant, keys,
                    data_dir, process, log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"auditex serve exited with {process.returncode}:\n{server.log()}")
        if os.path.exists(server.ca_cert):
            try:
                ctx = ssl.create_default_context(cafile=server.ca_cert)
                with urllib.request.urlopen(f"{server.url}/healthz", context=ctx, timeout=2):
                    return server
            except (OSError, ssl.SSLError):
                pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"auditex serve did not answer /healthz within {START_TIMEOUT_S} s:\n{server.log()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", help="the auditex binary")
    parser.add_argument("--tenant", default="sdk-example")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a server setting")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    settings = dict(s.split("=", 1) for s in args.set)
    server = start(args.bin, tenant=args.tenant, settings=settings)
    try:
        return subprocess.run(command, env=dict(os.environ, **server.env()), check=False).returncode
    finally:
        if server.process.poll() is not None:
            print(server.log(), file=sys.stderr)
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
