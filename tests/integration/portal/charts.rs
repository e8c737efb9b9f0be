//! The charts' pages over HTTP on both backends: a model version's page is the tenant's own
//! (another tenant's admin gets 404 for the same model), the charts come as labelled SVG images
//! with data tables, and parameters the pages do not accept are refused with 400 naming them.

use std::time::Duration;

use auditex::store::users::PortalRole;
use reqwest::StatusCode;

use super::{ADMIN_EMAIL, Browser, PASSWORD, append_decision, start};
use crate::support::{Backend, backend_tests, tenant_id};

backend_tests!(a_model_versions_page_is_the_tenants_own_and_bad_parameters_are_refused_by_name);

/// The model version of `support::decision_payload`.
const MODEL_PAGE: &str = "/models/version?model_id=credit-limit&model_version=2.3.1";

async fn a_model_versions_page_is_the_tenants_own_and_bad_parameters_are_refused_by_name(
    backend: Backend,
) {
    const OTHER_ADMIN: &str = "admin@globex.test";
    let server = start(&backend, false).await;
    let store = &server.store;
    let other = tenant_id("globex-bank");
    store.create_tenant(&other).await.expect("second tenant");
    let hash = auditex::portal::security::hash_password(PASSWORD.to_owned())
        .await
        .expect("hash");
    store
        .create_user(
            &other,
            OTHER_ADMIN,
            PortalRole::Admin,
            &hash,
            None,
            store.now_us(),
        )
        .await
        .expect("second tenant's admin");
    append_decision(store, &server.tenant).await;
    let mut listed = false;
    for _ in 0..600 {
        let models = store.model_inventory(&server.tenant, None).await;
        if models.is_ok_and(|m| m.iter().any(|m| m.model_version == "2.3.1")) {
            listed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(listed, "the models view lists the decision's model version");

    let mut ours = Browser::signed_in(&server, ADMIN_EMAIL).await;
    let page = ours.get(MODEL_PAGE).await;
    page.assert_status(StatusCode::OK, "our model version, for us");
    for id in [
        "chart-volume",
        "chart-mix",
        "chart-scores",
        "chart-overridden",
    ] {
        assert!(
            page.body
                .contains(&format!(r#"aria-labelledby="{id}-title {id}-desc""#)),
            "{id} is a labelled image"
        );
        assert!(page.body.contains(&format!(r#"<title id="{id}-title">"#)));
    }
    assert_eq!(page.body.matches(r#"role="img""#).count(), 4);
    assert!(
        page.body
            .contains("<summary>Data table: Score distribution</summary>")
    );
    let models = ours.get("/models").await;
    assert!(
        models
            .body
            .contains(r#"href="/models/version?model_id=credit-limit&amp;model_version=2.3.1""#),
        "the inventory links the version's page"
    );

    let mut theirs = Browser::new(&server);
    theirs
        .sign_in_to("globex-bank", OTHER_ADMIN, PASSWORD)
        .await;
    theirs
        .get(MODEL_PAGE)
        .await
        .assert_status(StatusCode::NOT_FOUND, "our model version, for them");
    let dashboard = theirs.get("/").await;
    dashboard.assert_status(StatusCode::OK, "their dashboard");
    assert!(
        dashboard
            .body
            .contains("No decisions were recorded in this period."),
        "their dashboard counts none of our decisions"
    );

    for (path, named) in [
        ("/?days=7", "days"),
        ("/?days=thirty", "days"),
        ("/models/version?model_id=credit-limit", "model_version"),
        ("/models/version?model_version=2.3.1", "model_id"),
        (
            "/models/version?model_id=%20&model_version=2.3.1",
            "model_id",
        ),
        (&format!("{MODEL_PAGE}&days=365"), "days"),
    ] {
        let page = ours.get(path).await;
        page.assert_status(StatusCode::BAD_REQUEST, path);
        assert!(
            page.body.contains(&format!("The parameter {named} ")),
            "{path} names {named}: {}",
            page.body
        );
    }
    let ninety = ours.get("/?days=90").await;
    ninety.assert_status(StatusCode::OK, "the 90-day dashboard");
    assert!(
        ninety
            .body
            .contains(r#"<a href="/?days=90" aria-current="page">Last 90 days</a>"#)
    );
    assert!(ninety.body.contains("Trends, last 90 days"));
    server.stop().await;
}
