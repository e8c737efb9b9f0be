//! Portal accounts in the store: what ends a user's access ends all of it, in one step, and
//! touches no one else's.

use auditex::store::Store;
use auditex::store::users::{PortalRole, Session};
use ledger::types::TenantId;

use crate::support::{Backend, TestDb, backend_tests};

backend_tests!(
    sign_in_failures_counted_by_one_node_back_off_the_account_on_every_node,
    changing_a_password_or_disabling_a_user_ends_all_their_sessions_and_reset_links_and_no_one_elses,
);

const HOUR_US: i64 = 3_600_000_000;

/// Two sessions and one reset link for `user_id`; the session id hashes and the token hash are
/// derived from `mark` so that every user's differ.
async fn sign_in_twice_and_ask_for_a_reset(
    store: &Store,
    tenant: &TenantId,
    user_id: &str,
    mark: u8,
) -> [u8; 32] {
    let now = store.now_us();
    for n in 0..2u8 {
        store
            .create_session(&Session {
                id_hash: session_id_hash(mark, n),
                user_id: user_id.to_owned(),
                tenant: tenant.clone(),
                created_at_us: now,
                last_seen_us: now,
                expires_at_us: now + HOUR_US,
                ended_at_us: None,
                client: format!("browser {n}"),
            })
            .await
            .expect("session");
    }
    let token = [mark; 32];
    store
        .create_password_reset(tenant, user_id, &token, now, now + HOUR_US)
        .await
        .expect("reset");
    token
}

/// A 32-byte session id hash (what the schema requires), distinct per user and session.
fn session_id_hash(mark: u8, n: u8) -> Vec<u8> {
    let mut hash = vec![mark; 32];
    hash[31] = n;
    hash
}

async fn live(store: &Store, tenant: &TenantId, user_id: &str) -> usize {
    store
        .live_sessions(tenant, user_id, store.now_us())
        .await
        .expect("sessions")
        .len()
}

async fn reset_usable(store: &Store, token: &[u8; 32]) -> bool {
    store
        .password_reset_user(token, store.now_us())
        .await
        .expect("reset")
        .is_some()
}

async fn changing_a_password_or_disabling_a_user_ends_all_their_sessions_and_reset_links_and_no_one_elses(
    backend: Backend,
) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("alpha").await;
    let now = store.now_us();
    let mut ids = Vec::new();
    for email in ["jo@bank.test", "kim@bank.test", "lee@bank.test"] {
        let user = store
            .create_user(&tenant, email, PortalRole::Auditor, "old-hash", None, now)
            .await
            .expect("user");
        ids.push(user.user_id);
    }
    let (jo, kim, lee) = (&ids[0], &ids[1], &ids[2]);
    let jo_token = sign_in_twice_and_ask_for_a_reset(&store, &tenant, jo, 1).await;
    let kim_token = sign_in_twice_and_ask_for_a_reset(&store, &tenant, kim, 2).await;
    let lee_token = sign_in_twice_and_ask_for_a_reset(&store, &tenant, lee, 3).await;

    let changed_at = store.now_us();
    store
        .set_password(&tenant, jo, "new-hash", changed_at)
        .await
        .expect("set password");
    let after = store
        .user_by_id(&tenant, jo)
        .await
        .expect("read")
        .expect("jo");
    assert_eq!(
        (
            after.password_hash.as_str(),
            after.password_changed_at_us,
            after.failed_logins,
            after.locked_until_us,
            after.disabled_at_us,
        ),
        ("new-hash", changed_at, 0, None, None),
        "the new password is set and the lock-out cleared"
    );
    assert_eq!(live(&store, &tenant, jo).await, 0, "jo's sessions ended");
    assert!(
        !reset_usable(&store, &jo_token).await,
        "jo's reset link is dead"
    );
    assert_eq!(
        live(&store, &tenant, kim).await,
        2,
        "kim's sessions live on"
    );
    assert!(
        reset_usable(&store, &kim_token).await,
        "kim's reset link works"
    );

    let disabled_at = changed_at + 1;
    store
        .disable_user(&tenant, kim, disabled_at)
        .await
        .expect("disable");
    store
        .disable_user(&tenant, kim, disabled_at + 1)
        .await
        .expect("disable again");
    let kim_now = store
        .user_by_id(&tenant, kim)
        .await
        .expect("read")
        .expect("kim");
    assert_eq!(
        kim_now.disabled_at_us,
        Some(disabled_at),
        "disabling again keeps the first time"
    );
    assert_eq!(kim_now.password_hash, "old-hash");
    assert_eq!(live(&store, &tenant, kim).await, 0, "kim's sessions ended");
    assert!(
        !reset_usable(&store, &kim_token).await,
        "kim's reset link is dead"
    );
    assert_eq!(
        store
            .take_password_reset(&kim_token, store.now_us())
            .await
            .expect("take"),
        None,
        "a dead link cannot be taken"
    );

    assert_eq!(live(&store, &tenant, lee).await, 2, "lee was never touched");
    assert!(
        reset_usable(&store, &lee_token).await,
        "lee's link still works"
    );
    let lee_now = store
        .user_by_id(&tenant, lee)
        .await
        .expect("read")
        .expect("lee");
    assert_eq!(
        (lee_now.password_hash.as_str(), lee_now.disabled_at_us),
        ("old-hash", None)
    );
}

/// Two service nodes on one database (two stores, two pools): the portal's sign-in back-off is
/// the database's, so a node counts the failures another saw and honours its wait.
async fn sign_in_failures_counted_by_one_node_back_off_the_account_on_every_node(backend: Backend) {
    const DAY_US: i64 = 24 * HOUR_US;
    let db = TestDb::new(&backend).await;
    let (first, second) = (db.open().await, db.open().await);
    let (account, other) = ([1u8; 32], [2u8; 32]);
    let t0 = 1_000_000;
    assert_eq!(
        first.sign_in_locked_until(&account).await.expect("read"),
        None
    );
    for n in 1..=6i64 {
        let node = if n % 2 == 0 { &second } else { &first };
        assert_eq!(
            node.count_sign_in_failure(&account, t0)
                .await
                .expect("count"),
            n,
            "failure {n} counts the other node's too"
        );
    }
    first
        .lock_sign_in(&account, t0 + 8_000_000)
        .await
        .expect("lock");
    assert_eq!(
        second.sign_in_locked_until(&account).await.expect("read"),
        Some(t0 + 8_000_000),
        "the other node sees the wait"
    );
    // A shorter wait set later (a node that counted fewer failures) does not shorten it.
    second
        .lock_sign_in(&account, t0 + 2_000_000)
        .await
        .expect("lock");
    assert_eq!(
        first.sign_in_locked_until(&account).await.expect("read"),
        Some(t0 + 8_000_000)
    );
    // Another account is not affected; a success on one node clears the account everywhere.
    assert_eq!(
        first.sign_in_locked_until(&other).await.expect("read"),
        None
    );
    second
        .count_sign_in_failure(&other, t0)
        .await
        .expect("count");
    second.clear_sign_in(&account).await.expect("clear");
    assert_eq!(
        first.sign_in_locked_until(&account).await.expect("read"),
        None
    );
    assert_eq!(
        first
            .count_sign_in_failure(&account, t0)
            .await
            .expect("count"),
        1
    );
    // Failures untouched for a day are forgotten when another failure is counted.
    assert_eq!(
        first
            .count_sign_in_failure(&account, t0 + DAY_US + 1)
            .await
            .expect("count"),
        1,
        "a failure more than a day after the last starts a new count"
    );
    assert_eq!(
        first.sign_in_locked_until(&other).await.expect("read"),
        None,
        "the other account's row, last touched at t0, is gone"
    );
    assert_eq!(
        second
            .count_sign_in_failure(&other, t0 + DAY_US + 2)
            .await
            .expect("count"),
        1
    );
    first.shutdown().await;
    second.shutdown().await;
}
