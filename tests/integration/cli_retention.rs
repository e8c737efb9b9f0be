//! `auditex retention` (the real binary): a policy under six months for decision records is
//! refused without an override, accepted with one (both recorded in the ledger), shown back,
//! and a run reports its progress and summary.

use ledger::record::EventType;
use serde_json::Value;

use crate::support::{Backend, TestDb, backend_tests, read_chain, tenant_id};
use crate::verify::{Bin, stderr};

backend_tests!(
    auditex_retention_refuses_a_short_policy_without_override_records_the_override_and_runs,
);

async fn auditex_retention_refuses_a_short_policy_without_override_records_the_override_and_runs(
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
    let t = tenant.as_str();
    let short = "event_type=decision,days=30";

    let out = bin.run(&[
        "retention",
        "set",
        "--tenant",
        t,
        "--rule",
        short,
        "--actor",
        "dpo",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let message = stderr(&out);
    assert!(
        message.contains("rule 1 (event_type=decision,days=30)"),
        "{message}"
    );
    assert!(
        message.contains("below the minimum of 183 days"),
        "{message}"
    );

    let out = bin.run(&[
        "retention",
        "set",
        "--tenant",
        t,
        "--rule",
        "days=ten",
        "--actor",
        "dpo",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--rule 1: days must be a whole number"),
        "{}",
        stderr(&out)
    );
    // An override without its reason is a usage error.
    let out = bin.run(&[
        "retention",
        "set",
        "--tenant",
        t,
        "--rule",
        short,
        "--override-minimum",
    ]);
    // Refused by the argument parser (exit 2, naming the missing --reason), not by the store.
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--reason"), "{}", stderr(&out));

    let out = bin.run(&[
        "retention",
        "set",
        "--tenant",
        t,
        "--rule",
        short,
        "--rule",
        "days=3650",
        "--override-minimum",
        "--reason",
        "pilot agreed with the supervisory authority",
        "--actor",
        "dpo",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let receipt: Value = serde_json::from_slice(&out.stdout).expect("receipt json");

    let out = bin.run(&["retention", "show", "--tenant", t]);
    assert!(out.status.success(), "{}", stderr(&out));
    let policy: Value = serde_json::from_slice(&out.stdout).expect("policy json");
    assert_eq!(policy["set_by_seq"], receipt["seq"]);
    assert_eq!(policy["rules"][0]["erase_after_days"], 30);
    assert_eq!(policy["rules"][0]["event_type"], "decision");
    assert_eq!(policy["rules"][1]["erase_after_days"], 3650);

    let out = bin.run(&["retention", "run", "--tenant", t]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run: Value = serde_json::from_slice(&out.stdout).expect("run json");
    assert_eq!(run["values"], 0);
    assert!(
        stderr(&out).contains("retention acme-bank done: 0 value(s) of 0 subject(s)"),
        "{}",
        stderr(&out)
    );

    let store = bin.open(&db).await;
    let chain = read_chain(&store, &tenant).await;
    let admin: Vec<Value> = chain
        .iter()
        .filter(|r| r.event_type == EventType::Administration)
        .map(|r| serde_json::from_str(r.payload.as_str()).expect("json"))
        .collect();
    let actions: Vec<&str> = admin.iter().filter_map(|a| a["action"].as_str()).collect();
    assert_eq!(
        actions,
        ["retention_minimum_override", "retention_policy_set"]
    );
    assert_eq!(admin[0]["actor"], "dpo");
    assert_eq!(
        admin[0]["reason"],
        "pilot agreed with the supervisory authority"
    );
    store.shutdown().await;
}
