//! `auditex append` (the real binary reading JSON lines) holds clients to the same rule as the
//! API: an event type only the service writes is refused with the line and the type, nothing of
//! that input is appended, and the ledger still verifies offline.

use std::io::Write;
use std::process::{Output, Stdio};

use ledger::record::EventType;
use ledger::types::TenantId;
use serde_json::{Value, json};

use crate::support::{Backend, TestDb, backend_tests, decision_payload, new_event_id, tenant_id};
use crate::verify::{Bin, path_str, stderr};

backend_tests!(
    auditex_append_refuses_a_service_only_line_naming_line_and_type_and_appends_nothing_of_its_input,
);

/// Runs `auditex append --tenant TENANT` with `lines` on standard input.
fn append(bin: &Bin, tenant: &TenantId, lines: &[Value]) -> Output {
    let mut child = bin
        .command(&["append", "--tenant", tenant.as_str()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run auditex append");
    let mut input = String::new();
    for line in lines {
        input.push_str(&line.to_string());
        input.push('\n');
    }
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("auditex append ends")
}

fn decision_line() -> Value {
    json!({
        "event_id": new_event_id(),
        "event_type": "decision",
        "payload": decision_payload("approved"),
    })
}

/// A line a forger would send: well-formed in every field but its type.
fn service_line(event_type: EventType) -> Value {
    let payload = match event_type {
        EventType::KeyRotation => json!({
            "new_key_id": "0123456789abcdef",
            "new_public_key": "ab".repeat(32),
            "effective_from_seq": 4,
        }),
        EventType::IntegrityCheck => json!({"outcome": "passed"}),
        EventType::Access | EventType::Administration => {
            json!({"actor": "admin@bank.example", "action": "sign_in"})
        }
        EventType::RollbackAcknowledged => json!({"operator": "ops", "reason": "restored"}),
        other => panic!("{other} is not a service-only type"),
    };
    json!({
        "event_id": new_event_id(),
        "event_type": event_type.as_str(),
        "payload": payload,
    })
}

async fn auditex_append_refuses_a_service_only_line_naming_line_and_type_and_appends_nothing_of_its_input(
    backend: Backend,
) {
    let db = TestDb::new(&backend).await;
    let bin = Bin::new(&db);
    let tenant = tenant_id("acme-bank");
    {
        let store = bin.open(&db).await;
        store.create_tenant(&tenant).await.expect("tenant");
        store.shutdown().await;
    }
    let out = append(&bin, &tenant, &[decision_line(), decision_line()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);

    for t in [
        EventType::KeyRotation,
        EventType::IntegrityCheck,
        EventType::Access,
        EventType::Administration,
        EventType::RollbackAcknowledged,
    ] {
        // A valid line first: it shares the refused line's input and must not be appended.
        let out = append(&bin, &tenant, &[decision_line(), service_line(t)]);
        assert!(!out.status.success(), "a {t} line was accepted");
        assert_eq!(out.status.code(), Some(1));
        let message = stderr(&out);
        assert!(
            message.contains(&format!(
                "line 2: /event_type: {t} events are written by the service itself and cannot be appended"
            )),
            "{message}"
        );
        assert!(out.stdout.is_empty(), "no receipt is printed");
    }

    let store = bin.open(&db).await;
    assert_eq!(
        store.tree_size(&tenant).await.expect("size").get(),
        2,
        "only the first run's decisions are in the chain"
    );
    let keys = store.key_history(&tenant).await.expect("keys");
    assert_eq!(keys.intervals().len(), 1, "the key history is untouched");
    store.publish_checkpoints().await.expect("publish");
    store.shutdown().await;

    let history = bin.key_history(&tenant);
    let (export, damaged) = bin.export(&tenant, 0);
    assert!(!damaged);
    let (code, out) = bin.verify(&[
        "export",
        path_str(&export),
        "--key-history",
        path_str(&history),
    ]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["verified"], true);
    assert_eq!(out["records"], 2);
}
