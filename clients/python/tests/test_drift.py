"""The SDK against docs/openapi.json and the service's code: every `/v1` operation has a method on
both clients, the generated files are current, and the batch limit is the service's."""

import inspect
import json
import re
import subprocess
import sys

import pytest
from conftest import REPO

from auditex import BATCH_RECORDS_MAX, AsyncClient, Client

OPENAPI = json.loads((REPO / "docs" / "openapi.json").read_text())

# operationId → the method of Client and AsyncClient that performs it.
OPERATIONS = {
    "append_batch": "append_batch",
    "append_one": "append",
    "cancel_check": "cancel_check",
    "consistency_proof": "consistency_proof",
    "custody_bundle": "get_bundle",
    "daily_volumes": "daily_volumes",
    "erase_subject": "erase_subject",
    "export": "export",
    "get_check": "get_check",
    "get_decision": "get_decision",
    "get_receipt": "get_receipt",
    "get_record": "get_record",
    "get_record_by_event": "get_record_by_event",
    "inclusion_proof": "inclusion_proof",
    "key_history": "key_history",
    "latest_checkpoint": "latest_checkpoint",
    "lift_hold": "lift_hold",
    "list_checkpoints": "list_checkpoints",
    "list_checks": "list_checks",
    "list_holds": "list_holds",
    "list_records": "list_records",
    "model_inventory": "model_inventory",
    "oversight_actions": "oversight_actions",
    "oversight_queue": "oversight_queue",
    "place_hold": "place_hold",
    "projection_status": "projection_status",
    "search_decisions": "search_decisions",
    "start_check": "start_check",
    "subject_package": "subject_package",
    "subject_records": "subject_records",
    "tlog_proof": "tlog_proof",
}


def v1_operations():
    for path, item in OPENAPI["paths"].items():
        for method, op in item.items():
            if path.startswith("/v1/") and method in ("get", "post", "put", "patch", "delete"):
                yield op["operationId"], method.upper(), path


@pytest.mark.parametrize("operation_id,method,path", list(v1_operations()))
def test_every_v1_operation_of_the_openapi_document_has_a_method_on_both_clients(operation_id, method, path):
    name = OPERATIONS.get(operation_id)
    assert name is not None, f"{method} {path} ({operation_id}) has no client method: add one and map it here"
    sync, async_ = getattr(Client, name, None), getattr(AsyncClient, name, None)
    assert callable(sync), f"Client.{name} is missing"
    assert inspect.iscoroutinefunction(async_), f"AsyncClient.{name} is missing or not async"
    # The method says which operation it performs; a mapping to the wrong method fails here.
    assert f"`{method} {path}` ({operation_id})" in (sync.__doc__ or ""), f"Client.{name} does not document {method} {path}"


def test_the_operation_map_names_no_operation_the_document_lacks():
    assert set(OPERATIONS) == {op for op, _, _ in v1_operations()}


def test_every_query_and_path_parameter_of_an_operation_is_a_parameter_of_its_method():
    renamed = {"from": {"from_", "from_size"}, "to": {"to_size"}, "id": {"check_id"}}
    for operation_id, method, path in v1_operations():
        op = OPENAPI["paths"][path][method.lower()]
        params = set(inspect.signature(getattr(Client, OPERATIONS[operation_id])).parameters)
        for p in op.get("parameters", []):
            names = renamed.get(p["name"], {p["name"]})
            assert names & params, f"{method} {path}: parameter {p['name']} has no argument in {OPERATIONS[operation_id]}"


def test_the_models_module_is_what_the_generator_writes_from_the_openapi_document():
    tool = REPO / "clients" / "python" / "tools" / "generate_models.py"
    assert subprocess.run([sys.executable, str(tool), "--check"], check=False).returncode == 0


def test_the_sync_client_is_what_unasync_writes_from_the_async_client():
    tool = REPO / "clients" / "python" / "tools" / "unasync.py"
    assert subprocess.run([sys.executable, str(tool), "--check"], check=False).returncode == 0


def test_the_batch_limit_is_the_services_and_the_documents():
    source = (REPO / "src" / "store" / "mod.rs").read_text()
    assert re.search(rf"pub const BATCH_RECORDS_MAX: usize = {BATCH_RECORDS_MAX};", source)
    described = OPENAPI["components"]["schemas"]["BatchRequest"]["properties"]["records"]["description"]
    assert f"At most {BATCH_RECORDS_MAX} events" in described
