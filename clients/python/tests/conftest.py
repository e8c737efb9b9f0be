"""Fixtures: a real `auditex serve` per test session (tests/auditex_server.py) and clients of
each role. Fault injection the real server cannot produce (a lost response, a refused
connection) wraps the real transport or, only where no server is needed, an httpx.MockTransport.

The integration tests need the `auditex` binary (`$AUDITEX_BIN`, else target/debug/auditex);
without it they are skipped, unless `CI` is set, when they fail."""

from __future__ import annotations

import os
import pathlib
import sys
from collections.abc import Iterator

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import auditex_server

from auditex import Client

REPO = auditex_server.REPO


def _need_binary() -> str:
    path = auditex_server.binary()
    if not os.path.exists(path):
        if os.environ.get("CI"):
            pytest.fail(f"the auditex binary {path} is missing (set AUDITEX_BIN)")
        pytest.skip(f"no auditex binary at {path} (build it, or set AUDITEX_BIN)")
    return path


@pytest.fixture(scope="session")
def server() -> Iterator[auditex_server.Server]:
    """A server that publishes checkpoints every 100 ms, so proofs are soon available."""
    s = auditex_server.start(
        _need_binary(),
        tenant="sdk-tests",
        settings={
            "AUDITEX_CHECKPOINT_INTERVAL_MS": "100",
            "AUDITEX_RATE_PER_SECOND": "100000",
            "AUDITEX_RATE_BURST": "100000",
        },
    )
    yield s
    s.stop()


@pytest.fixture(scope="session")
def slow_server() -> Iterator[auditex_server.Server]:
    """A server that allows one request per second per key (an ingest key: two at once): it answers
    429 with Retry-After."""
    s = auditex_server.start(
        _need_binary(),
        tenant="sdk-rate",
        settings={"AUDITEX_RATE_PER_SECOND": "1", "AUDITEX_RATE_BURST": "1", "AUDITEX_INGEST_RATE_PER_SECOND": "1"},
    )
    yield s
    s.stop()


def client_of(server: auditex_server.Server, role: str, **kwargs) -> Client:
    return Client(server.url, server.keys[role], verify_tls=server.ca_cert, **kwargs)


@pytest.fixture
def ingest(server) -> Iterator[Client]:
    with client_of(server, "ingest") as c:
        yield c


@pytest.fixture
def reader(server) -> Iterator[Client]:
    with client_of(server, "read") as c:
        yield c
