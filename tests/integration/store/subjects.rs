//! The subjects view across its buckets of sequence numbers (migrations 0027 on SQLite and 0030
//! on PostgreSQL), on both backends: a subject's records paged in order from every cursor,
//! whatever bucket a page starts or ends in; the decisions' subject filter finding the same
//! records; another tenant's records of the same subject never shown; an unknown subject empty.

use std::collections::BTreeMap;

use auditex::store::Store;
use auditex::store::views::DecisionQuery;
use ledger::draft::{ClientDraft, prepare_client_draft};
use serde_json::json;

use crate::support::{Backend, TestDb, backend_tests, tenant_id};

backend_tests!(a_subjects_records_are_paged_in_order_across_buckets_of_sequence_numbers,);

/// Records per bucket of the subjects view (`1 << 12`).
const BUCKET: usize = 4096;

const SUBJECT: &str = "subj-across-buckets";

fn decision(subject: &str) -> ClientDraft {
    let id = uuid::Uuid::now_v7().to_string();
    let payload = json!({
        "model_id": "credit",
        "model_version": "1",
        "input_commitment": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "outcome": "approved",
        "subject_ref": subject,
        "decided_at": "2026-01-01T00:00:00Z",
        "oversight_mode": "human_on_the_loop",
    });
    prepare_client_draft(&id, "decision", &payload, &BTreeMap::new(), rand::random)
        .expect("valid decision draft")
}

async fn a_subjects_records_are_paged_in_order_across_buckets_of_sequence_numbers(
    backend: Backend,
) {
    let db = TestDb::new(&backend).await;
    let store = Store::open_with_workers(db.config()).await.expect("open");
    let (a, b) = (tenant_id("bank-a"), tenant_id("bank-b"));
    for t in [&a, &b] {
        store.create_tenant(t).await.expect("tenant");
    }
    // Three buckets and a part of a fourth; the subject's records at the first and last places
    // of buckets and in between, the others spread over 300 other subjects.
    let total = 3 * BUCKET + 500;
    let picks = [
        0,
        1,
        BUCKET - 1,
        BUCKET,
        BUCKET + 1,
        2 * BUCKET - 1,
        2 * BUCKET + 7,
        3 * BUCKET,
        total - 1,
    ];
    let mut seqs = Vec::new();
    let mut position = 0;
    while position < total {
        let end = (position + 1000).min(total);
        let drafts: Vec<ClientDraft> = (position..end)
            .map(|i| {
                if picks.contains(&i) {
                    decision(SUBJECT)
                } else {
                    decision(&format!("other-{}", i % 300))
                }
            })
            .collect();
        let receipts = store.append(&a, drafts).await.expect("append");
        for (i, r) in (position..end).zip(&receipts) {
            if picks.contains(&i) {
                seqs.push(r.seq);
            }
        }
        position = end;
    }
    let theirs: Vec<u64> = store
        .append(&b, vec![decision(SUBJECT), decision(SUBJECT)])
        .await
        .expect("append")
        .iter()
        .map(|r| r.seq)
        .collect();
    assert!(
        seqs.last().is_some_and(|&s| s >= 3 * BUCKET as u64),
        "the records reach a fourth bucket: {seqs:?}"
    );
    ::projections::runner::catch_up(&store)
        .await
        .expect("catch up");

    // One page of everything, then pages of every size from every cursor.
    let all = store
        .subject_records(&a, SUBJECT, None, 100)
        .await
        .expect("subject records");
    assert_eq!(all.items.iter().map(|r| r.seq).collect::<Vec<_>>(), seqs);
    assert!(all.next_cursor.is_none());
    assert!(all.items.iter().all(|r| r.subject_ref == SUBJECT));
    for limit in [1, 2, 4] {
        for start in 0..=seqs.len() {
            let mut after = start.checked_sub(1).map(|i| seqs[i]);
            let mut got = Vec::new();
            loop {
                let page = store
                    .subject_records(&a, SUBJECT, after, limit)
                    .await
                    .expect("subject page");
                assert!(page.items.len() <= limit as usize);
                got.extend(page.items.iter().map(|r| r.seq));
                match page.next_cursor {
                    Some(c) => after = Some(c.parse().expect("numeric cursor")),
                    None => break,
                }
            }
            assert_eq!(got, seqs[start..], "limit {limit} from place {start}");
        }
    }
    // A cursor between two of the subject's records that names no record of it.
    let page = store
        .subject_records(&a, SUBJECT, Some(seqs[6] + 5), 100)
        .await
        .expect("subject page");
    assert_eq!(
        page.items.iter().map(|r| r.seq).collect::<Vec<_>>(),
        seqs[7..]
    );

    // The decisions' subject filter finds the same records, newest first and oldest first.
    let mut query = DecisionQuery {
        subject_ref: Some(SUBJECT.to_owned()),
        limit: 100,
        ..DecisionQuery::default()
    };
    let newest_first = store.search_decisions(&a, &query).await.expect("search");
    let mut expected = seqs.clone();
    expected.reverse();
    assert_eq!(
        newest_first.items.iter().map(|r| r.seq).collect::<Vec<_>>(),
        expected
    );
    query.ascending = true;
    let oldest_first = store.search_decisions(&a, &query).await.expect("search");
    assert_eq!(
        oldest_first.items.iter().map(|r| r.seq).collect::<Vec<_>>(),
        seqs
    );

    // The same search from a cursor, both ways: only the buckets on the cursor's side.
    query.after = Some(seqs[4]);
    let later = store.search_decisions(&a, &query).await.expect("search");
    assert_eq!(
        later.items.iter().map(|r| r.seq).collect::<Vec<_>>(),
        seqs[5..]
    );
    query.ascending = false;
    let earlier = store.search_decisions(&a, &query).await.expect("search");
    let mut before: Vec<u64> = seqs[..4].to_vec();
    before.reverse();
    assert_eq!(
        earlier.items.iter().map(|r| r.seq).collect::<Vec<_>>(),
        before
    );
    query.after = None;

    // The other tenant sees its own two records of the same subject, and nothing else.
    let other = store
        .subject_records(&b, SUBJECT, None, 100)
        .await
        .expect("subject records");
    assert_eq!(
        other.items.iter().map(|r| r.seq).collect::<Vec<_>>(),
        theirs
    );
    let other = store.search_decisions(&b, &query).await.expect("search");
    assert_eq!(other.items.len(), 2);

    // A tenant whose views hold nothing: empty, with no cursor.
    let c = tenant_id("bank-c");
    store.create_tenant(&c).await.expect("tenant");
    let none = store
        .subject_records(&c, SUBJECT, None, 10)
        .await
        .expect("subject records");
    assert!(none.items.is_empty() && none.next_cursor.is_none());
    assert!(
        store
            .search_decisions(&c, &query)
            .await
            .expect("search")
            .items
            .is_empty()
    );

    // A subject never seen: empty, from any cursor.
    for after in [None, Some(0), Some(seqs[8])] {
        let page = store
            .subject_records(&a, "nobody-at-all", after, 10)
            .await
            .expect("subject records");
        assert!(page.items.is_empty() && page.next_cursor.is_none());
    }
}
